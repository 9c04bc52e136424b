//! The audit trail over gRPC: an entry for every committed write of every
//! kind, and for every write refused by the actor rules or by token kind
//! or tenant, with caller, request id, method, actor and reason; filters
//! and key-based paging; a tenant-bound token sees only its tenant; the
//! trail survives a restart.

use authzd_testkit as common;
use common::*;

use authzd_service::auth::Limits;
use tonic::Request;

const OTHER: &str = "globex";

fn tokens() -> String {
    [
        token_entry("reader", "read", "", "s-read"),
        token_entry("writer", "write", "", "s-write"),
        token_entry("acme-writer", "write", ACME, "s-acme-write"),
        token_entry("acme-admin", "admin", ACME, "s-acme-admin"),
    ]
    .concat()
}

/// A tokens server with acme and globex, each with alice (a tenant
/// administrator) and bob.
async fn server() -> TestServer {
    let server = TestServer::start_with_tokens(&tokens(), Limits::default()).await;
    for tenant in [ACME, OTHER] {
        create_subject(&server, tenant, "alice").await;
        create_subject(&server, tenant, "bob").await;
        manage(
            &server,
            tenant,
            vec![assign("admin", subject_principal("alice"), None)],
        )
        .await;
    }
    server
}

fn acting(actor: &str, reason: &str) -> Option<pb::WriteOptions> {
    Some(pb::WriteOptions {
        actor: actor.into(),
        reason: reason.into(),
        ..Default::default()
    })
}

/// `message` with an `x-request-id`.
fn with_id<T>(message: T, id: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

/// Every entry `query` selects, page by page (`page_size` each), checking
/// that pages follow each other newest first without repeats.
async fn all_entries(
    audit: &mut AuditServiceClient<Authed>,
    mut query: pb::ListAuditEntriesRequest,
) -> Vec<pb::AuditEntry> {
    let mut out: Vec<pb::AuditEntry> = Vec::new();
    for _ in 0..1000 {
        let page = audit
            .list_audit_entries(query.clone())
            .await
            .unwrap()
            .into_inner();
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            let times: Vec<(i64, i32)> = out
                .iter()
                .map(|e| {
                    let t = e.time.unwrap();
                    (t.seconds, t.nanos)
                })
                .collect();
            let mut sorted = times.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(times, sorted, "newest first");
            return out;
        }
        query.page_token = page.next_page_token;
    }
    panic!("the trail did not end within 1000 pages");
}

fn everything() -> pb::ListAuditEntriesRequest {
    pb::ListAuditEntriesRequest::default()
}

/// Writes of every kind, made by a write token on behalf of alice with a
/// request id and a reason (and the tenant and schema writes by the
/// harness's admin token), each leave one COMMITTED entry: every revision
/// the store committed has exactly one, and the trail reads the same after
/// a restart.
#[tokio::test]
async fn every_write_kind_is_audited_and_survives_a_restart() {
    let server = server().await;
    let mut w = server.clients_as("s-write").await;
    let d = &mut w.directory;
    let opts = || acting("alice", "ticket-7");
    d.create_scope(with_id(
        pb::CreateScopeRequest {
            tenant: ACME.into(),
            scope: Some(pb::Scope {
                id: "emea".into(),
                r#type: "unit".into(),
                parent: String::new(),
            }),
            options: opts(),
        },
        "req-scope",
    ))
    .await
    .unwrap();
    d.create_group(pb::CreateGroupRequest {
        tenant: ACME.into(),
        group: Some(pb::Group {
            id: "team".into(),
            title: "Team".into(),
            ..Default::default()
        }),
        options: opts(),
    })
    .await
    .unwrap();
    d.create_subject(pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(pb::Subject {
            id: "carol".into(),
            ..Default::default()
        }),
        options: opts(),
    })
    .await
    .unwrap();
    d.create_role(pb::CreateRoleRequest {
        tenant: ACME.into(),
        role: Some(custom_role("reader2", vec![grant("document:read", &[])])),
        options: opts(),
    })
    .await
    .unwrap();
    let ops = vec![
        add_member("team", subject_principal("carol")),
        assign("viewer", group_principal("team"), scope_target("emea")),
        assign("viewer", subject_principal("bob"), None),
    ];
    w.membership
        .manage_membership(with_id(batch(ACME, ops, opts()), "req-batch"))
        .await
        .unwrap();
    let ops = vec![
        unassign("viewer", subject_principal("bob"), None),
        remove_member("team", subject_principal("carol")),
    ];
    w.membership
        .manage_membership(batch(ACME, ops, opts()))
        .await
        .unwrap();
    let d = &mut w.directory;
    for (kind, id) in [("role", "reader2"), ("group", "team"), ("subject", "carol")] {
        let request = pb::DeleteRequest {
            tenant: ACME.into(),
            id: id.into(),
            options: opts(),
        };
        match kind {
            "role" => d.delete_role(request).await.unwrap(),
            "group" => d.delete_group(request).await.unwrap(),
            _ => d.delete_subject(request).await.unwrap(),
        };
    }
    set_disabled(&server, ACME, &["comment"]).await;
    let current = server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
        .schema;
    server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: format!("{current}\n# audited\n"),
            reason: "schema review 12".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let latest = revision(&server).await;

    let mut audit = server.audit().await;
    let entries = all_entries(&mut audit, everything()).await;
    let mut revisions: Vec<u64> = entries.iter().map(|e| e.revision).collect();
    revisions.sort_unstable();
    assert_eq!(
        revisions,
        (1..=latest).collect::<Vec<_>>(),
        "one entry per revision"
    );
    assert!(
        entries
            .iter()
            .all(|e| e.outcome() == pb::AuditOutcome::Committed)
    );

    let by_id = |id: &str| entries.iter().find(|e| e.request_id == id).unwrap();
    let scope = by_id("req-scope");
    assert_eq!(scope.method, "DirectoryService/CreateScope");
    assert_eq!(
        (
            scope.caller.as_str(),
            scope.actor.as_str(),
            scope.reason.as_str()
        ),
        ("writer", "alice", "ticket-7")
    );
    assert_eq!(scope.tenant, ACME);
    let batch_entry = by_id("req-batch");
    assert_eq!(batch_entry.method, "MembershipService/ManageMembership");
    let named: Vec<String> = batch_entry.concerned.iter().map(principal_text).collect();
    for who in ["subject:carol", "group:team", "subject:bob"] {
        assert!(named.iter().any(|n| n == who), "{who} in {named:?}");
    }
    let schema = entries.iter().find(|e| e.revision == latest).unwrap();
    assert_eq!(
        (
            schema.method.as_str(),
            schema.tenant.as_str(),
            schema.reason.as_str()
        ),
        ("SchemaService/WriteSchema", "", "schema review 12")
    );
    assert_eq!(schema.caller, "harness");
    let first = entries.iter().find(|e| e.revision == 1).unwrap();
    assert_eq!(
        first.caller, "authzd",
        "the start-up schema is the server's own"
    );

    let dir = server.stop().await.unwrap();
    let restarted = TestServer::start_at(&dir.path().join("data"), None).await;
    let mut audit = restarted.audit().await;
    assert_eq!(all_entries(&mut audit, everything()).await, entries);
    restarted.stop().await;
}

/// Filters by tenant, subject or group concerned, actor, caller, time and
/// outcome each select exactly the matching entries; small pages walk the
/// trail without gaps; a garbage page token or outcome is INVALID_ARGUMENT.
#[tokio::test]
async fn filters_and_pages() {
    let server = server().await;
    let mut w = server.clients_as("s-write").await;
    for (tenant, who) in [(ACME, "bob"), (OTHER, "bob"), (ACME, "alice")] {
        w.membership
            .manage_membership(batch(
                tenant,
                vec![assign("viewer", subject_principal(who), None)],
                acting("alice", ""),
            ))
            .await
            .unwrap();
    }
    let mut audit = server.audit().await;
    let all = all_entries(&mut audit, everything()).await;
    let paged = all_entries(
        &mut audit,
        pb::ListAuditEntriesRequest {
            page_size: 2,
            ..everything()
        },
    )
    .await;
    assert_eq!(paged, all, "pages of two give the same trail");

    let select = |keep: &dyn Fn(&pb::AuditEntry) -> bool| -> Vec<pb::AuditEntry> {
        all.iter().filter(|e| keep(e)).cloned().collect()
    };
    let cases: Vec<(pb::ListAuditEntriesRequest, Vec<pb::AuditEntry>)> = vec![
        (
            pb::ListAuditEntriesRequest {
                tenant: OTHER.into(),
                ..everything()
            },
            select(&|e| e.tenant == OTHER),
        ),
        (
            pb::ListAuditEntriesRequest {
                concerning: subject_principal("bob"),
                ..everything()
            },
            select(&|e| {
                e.concerned
                    .iter()
                    .any(|p| principal_text(p) == "subject:bob")
            }),
        ),
        (
            pb::ListAuditEntriesRequest {
                actor: "alice".into(),
                ..everything()
            },
            select(&|e| e.actor == "alice"),
        ),
        (
            pb::ListAuditEntriesRequest {
                caller: "writer".into(),
                ..everything()
            },
            select(&|e| e.caller == "writer"),
        ),
        (
            pb::ListAuditEntriesRequest {
                outcome: pb::AuditOutcome::Denied.into(),
                ..everything()
            },
            Vec::new(),
        ),
    ];
    for (query, expected) in cases {
        assert!(!expected.is_empty() || query.outcome != 0, "{query:?}");
        assert_eq!(
            all_entries(&mut audit, query.clone()).await,
            expected,
            "{query:?}"
        );
    }
    assert_eq!(select(&|e| e.caller == "writer").len(), 3);

    // A time window around the middle entry selects it alone.
    let middle = all[all.len() / 2].time.unwrap();
    let after = prost_types::Timestamp {
        seconds: middle.seconds,
        nanos: middle.nanos + 1,
    };
    let window = pb::ListAuditEntriesRequest {
        since: Some(middle),
        until: Some(after),
        ..everything()
    };
    let within = all_entries(&mut audit, window).await;
    assert!(within.contains(&all[all.len() / 2]));
    assert!(within.iter().all(|e| e.time == Some(middle)));

    for (request, field) in [
        (
            pb::ListAuditEntriesRequest {
                page_token: "not-a-token".into(),
                ..everything()
            },
            "page_token",
        ),
        (
            pb::ListAuditEntriesRequest {
                outcome: 9,
                ..everything()
            },
            "outcome",
        ),
        (
            pb::ListAuditEntriesRequest {
                page_size: 100_000,
                ..everything()
            },
            "page_size",
        ),
    ] {
        assert_status(
            audit.list_audit_entries(request).await,
            Code::InvalidArgument,
            field,
        );
    }
    server.stop().await;
}

/// Escalation attempts with a write token (a custom role granting `*`,
/// the builtin admin role, joining a group that holds it), a write from a
/// read token, a system write from a write token and a bound token's write
/// to another tenant are all refused and all in the trail as DENIED, with
/// the caller, actor, request id and the message the caller got. An
/// unauthenticated call is refused but names no token, so it is not.
#[tokio::test]
async fn refused_writes_are_audited() {
    let server = server().await;
    manage(
        &server,
        ACME,
        vec![assign("manager", subject_principal("bob"), None)],
    )
    .await;
    create_group(&server, ACME, "admins").await;
    manage(
        &server,
        ACME,
        vec![assign("admin", group_principal("admins"), None)],
    )
    .await;
    create_role(&server, ACME, "god", vec![grant("*", &[])]).await;
    let mut w = server.clients_as("s-write").await;
    let attempts = [
        ("esc-custom", assign("god", subject_principal("bob"), None)),
        ("esc-admin", assign("admin", subject_principal("bob"), None)),
        ("esc-group", add_member("admins", subject_principal("bob"))),
    ];
    for (id, op) in attempts.clone() {
        let refused = w
            .membership
            .manage_membership(with_id(batch(ACME, vec![op], acting("bob", "please")), id))
            .await;
        assert_status(refused, Code::PermissionDenied, "actor bob may not");
    }
    let system = w
        .membership
        .manage_membership(with_id(
            batch(ACME, vec![attempts[1].1.clone()], None),
            "sys",
        ))
        .await;
    assert_status(system, Code::PermissionDenied, "a system write needs admin");
    let mut reader = server.clients_as("s-read").await;
    let from_reader = reader
        .membership
        .manage_membership(with_id(
            batch(ACME, vec![attempts[1].1.clone()], acting("bob", "")),
            "from-reader",
        ))
        .await;
    assert_status(from_reader, Code::PermissionDenied, "needs write");
    let mut bound = server.clients_as("s-acme-write").await;
    let elsewhere = bound
        .membership
        .manage_membership(with_id(
            batch(OTHER, vec![attempts[1].1.clone()], acting("alice", "")),
            "elsewhere",
        ))
        .await;
    assert_status(elsewhere, Code::PermissionDenied, "bound to tenant acme");
    let mut nobody = server.clients_as("").await;
    let anonymous = nobody
        .membership
        .manage_membership(with_id(batch(ACME, vec![], None), "anonymous"))
        .await;
    assert_status(anonymous, Code::Unauthenticated, "missing credentials");
    assert!(!check(&server, ACME, "bob", "users:admin", "").await);

    let mut audit = server.audit().await;
    let denied = all_entries(
        &mut audit,
        pb::ListAuditEntriesRequest {
            outcome: pb::AuditOutcome::Denied.into(),
            ..everything()
        },
    )
    .await;
    let mut ids: Vec<&str> = denied.iter().map(|e| e.request_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "elsewhere",
            "esc-admin",
            "esc-custom",
            "esc-group",
            "from-reader",
            "sys"
        ]
    );
    let entry = |id: &str| denied.iter().find(|e| e.request_id == id).unwrap();
    for id in ["esc-custom", "esc-admin", "esc-group"] {
        let e = entry(id);
        assert_eq!(
            (
                e.caller.as_str(),
                e.actor.as_str(),
                e.reason.as_str(),
                e.tenant.as_str()
            ),
            ("writer", "bob", "please", ACME),
            "{id}"
        );
        assert!(e.denial.contains("actor bob may not"), "{id}: {}", e.denial);
        assert_eq!(e.revision, 0);
        assert!(
            e.concerned
                .iter()
                .any(|p| principal_text(p) == "subject:bob")
        );
    }
    assert!(entry("sys").denial.contains("system write needs admin"));
    let e = entry("from-reader");
    assert_eq!((e.caller.as_str(), e.tenant.as_str()), ("reader", ""));
    assert_eq!(e.method, "MembershipService/ManageMembership");
    // The request was read: the actor it named is recorded.
    let e = entry("elsewhere");
    assert_eq!(
        (e.caller.as_str(), e.tenant.as_str(), e.actor.as_str()),
        ("acme-writer", OTHER, "alice")
    );
    server.stop().await;
}

/// A refused write of one record (UpdateRole) is recorded with exactly
/// the message its caller got, without the batch index the request does
/// not have; a refused import record with its own list and index, as its
/// caller got it.
#[tokio::test]
async fn a_refusal_is_recorded_with_the_callers_message() {
    let server = server().await;
    create_role(&server, ACME, "helper", vec![grant("document:read", &[])]).await;
    manage(
        &server,
        ACME,
        vec![assign("helper", subject_principal("bob"), None)],
    )
    .await;
    let mut w = server.clients_as("s-write").await;
    let redefine = pb::UpdateRoleRequest {
        tenant: ACME.into(),
        role: Some(custom_role("helper", vec![grant("*", &[])])),
        options: acting("bob", ""),
    };
    let refused = w
        .directory
        .update_role(with_id(redefine, "redefine"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let import = pb::ImportRequest {
        tenant: ACME.into(),
        subjects: vec![pb::Subject {
            id: "carol".into(),
            ..Default::default()
        }],
        assignments: vec![pb::AssignRole {
            role: "admin".into(),
            principal: subject_principal("bob"),
            ..Default::default()
        }],
        options: acting("bob", ""),
        ..Default::default()
    };
    let refused_import = w
        .membership
        .import(with_id(import, "import"))
        .await
        .unwrap_err();
    assert!(
        refused_import.message().starts_with("assignments[0]: "),
        "{refused_import:?}"
    );

    let mut audit = server.audit().await;
    let denied = all_entries(
        &mut audit,
        pb::ListAuditEntriesRequest {
            outcome: pb::AuditOutcome::Denied.into(),
            ..everything()
        },
    )
    .await;
    let entry = |id: &str| denied.iter().find(|e| e.request_id == id).unwrap();
    assert_eq!(entry("redefine").denial, refused.message());
    assert_eq!(entry("import").denial, refused_import.message());
    server.stop().await;
}

/// A token bound to acme lists only acme's entries, is refused another
/// tenant's, and does not see store-wide ones; the id the server generated
/// for a write without `x-request-id` is the one in the response and in
/// the trail; a bad reason is refused before anything is written.
#[tokio::test]
async fn bound_tokens_see_their_tenant_and_ids_match() {
    let server = server().await;
    let mut w = server.clients_as("s-acme-write").await;
    let reply = w
        .directory
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: "dave".into(),
                ..Default::default()
            }),
            options: acting("alice", ""),
        })
        .await
        .unwrap();
    let generated = reply
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let committed = reply.into_inner().revision;

    let mut bound = server.clients_as("s-acme-admin").await;
    let mine = all_entries(&mut bound.audit, everything()).await;
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|e| e.tenant == ACME), "{mine:?}");
    let created = mine.iter().find(|e| e.revision == committed).unwrap();
    assert_eq!(created.request_id, generated);
    let asked_other = bound
        .audit
        .list_audit_entries(pb::ListAuditEntriesRequest {
            tenant: OTHER.into(),
            ..everything()
        })
        .await;
    assert_status(asked_other, Code::PermissionDenied, "bound to tenant acme");
    let mut admin = server.audit().await;
    let every = all_entries(&mut admin, everything()).await;
    assert!(
        every.iter().any(|e| e.tenant.is_empty()),
        "store-wide entries"
    );
    assert!(every.len() > mine.len());

    let before = revision(&server).await;
    for (reason, why) in [
        ("x".repeat(1025), "limit is 1024"),
        ("a\nb".into(), "control character"),
    ] {
        let refused = w
            .directory
            .create_subject(pb::CreateSubjectRequest {
                tenant: ACME.into(),
                subject: Some(pb::Subject {
                    id: "erin".into(),
                    ..Default::default()
                }),
                options: acting("alice", &reason),
            })
            .await;
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with("options.reason") && status.message().contains(why),
            "{status:?}"
        );
    }
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}
