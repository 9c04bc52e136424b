//! Tenant isolation: two tenants using the same ids (subjects, groups,
//! scopes, custom roles) with different grants. Nothing of one is visible,
//! listable, changeable or streamed through the other.

use authzd_testkit as common;
use common::*;

const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// Both tenants get alice, bob, group g, scope eu and custom role r; only A
/// gets "a-only" (subject, group and scope). A: alice edits at eu through g,
/// r grants document:manage. B: alice views at the root, r grants
/// users:invite.
async fn setup(server: &TestServer) {
    for t in [A, B] {
        create_scope(server, t, "eu", "").await;
        create_subject(server, t, "alice").await;
        create_subject(server, t, "bob").await;
        create_group(server, t, "g").await;
    }
    create_subject(server, A, "a-only").await;
    create_group(server, A, "a-only").await;
    create_scope(server, A, "a-only", "").await;
    create_role(server, A, "r", vec![grant("document:manage", &[])]).await;
    create_role(server, B, "r", vec![grant("users:invite", &[])]).await;
    manage(
        server,
        A,
        vec![
            add_member("g", subject_principal("alice")),
            add_member("g", subject_principal("a-only")),
            assign("editor", group_principal("g"), scope_target("eu")),
            assign("r", subject_principal("bob"), None),
        ],
    )
    .await;
    manage(
        server,
        B,
        vec![
            assign("viewer", subject_principal("alice"), None),
            assign("r", subject_principal("bob"), None),
        ],
    )
    .await;
}

/// Checks in each tenant see only that tenant's memberships, assignments
/// and custom role definitions.
#[tokio::test]
async fn checks_see_only_their_tenant() {
    let server = TestServer::start().await;
    setup(&server).await;
    assert!(check(&server, A, "alice", "document:edit", "eu").await);
    assert!(!check(&server, B, "alice", "document:edit", "eu").await);
    assert!(!check(&server, A, "alice", "document:read", "").await);
    assert!(check(&server, B, "alice", "document:read", "").await);
    assert!(check(&server, A, "bob", "document:manage", "").await);
    assert!(!check(&server, A, "bob", "users:invite", "").await);
    assert!(check(&server, B, "bob", "users:invite", "").await);
    assert!(!check(&server, B, "bob", "document:manage", "").await);
    assert!(!check(&server, B, "a-only", "document:edit", "eu").await);
    let (_, why) = explain(&server, B, "a-only", "document:edit", "eu").await;
    assert_eq!(reasons(&why), [pb::DenialReason::SubjectNotFound]);
    let mut a = server.access().await;
    assert_status(
        a.check_access(check_request(B, "alice", "document:read", "a-only"))
            .await,
        Code::NotFound,
        "a-only",
    );
    assert_status(
        a.check_access(pb::CheckAccessRequest {
            target_subject: "a-only".into(),
            ..check_request(B, "alice", "document:read", "")
        })
        .await,
        Code::NotFound,
        "a-only",
    );
    server.stop().await;
}

/// Reads and listings through B show only B's records.
#[tokio::test]
async fn reads_and_listings_show_only_their_tenant() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut d = server.directory().await;
    let get = |id: &str| pb::GetRequest {
        tenant: B.into(),
        id: id.into(),
        at_least_revision: 0,
    };
    assert_status(d.get_subject(get("a-only")).await, Code::NotFound, "a-only");
    assert_status(d.get_group(get("a-only")).await, Code::NotFound, "a-only");
    assert_status(d.get_scope(get("a-only")).await, Code::NotFound, "a-only");
    let role = d
        .get_role(get("r"))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    assert_eq!(role.grants, [grant("users:invite", &[])]);

    let list = || pb::ListRequest {
        tenant: B.into(),
        page: None,
        at_least_revision: 0,
    };
    let subjects: Vec<String> = d
        .list_subjects(list())
        .await
        .unwrap()
        .into_inner()
        .subjects
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(subjects, ["alice", "bob"]);
    let groups: Vec<String> = d
        .list_groups(list())
        .await
        .unwrap()
        .into_inner()
        .groups
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(groups, ["g"]);
    let scopes: Vec<String> = d
        .list_scopes(list())
        .await
        .unwrap()
        .into_inner()
        .scopes
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(scopes, ["eu"]);
    assert!(members(&server, B, "g").await.is_empty());
    let mut b_assignments = assignments(&server, B).await;
    b_assignments.sort();
    assert_eq!(
        b_assignments,
        [
            "r subject:bob scope:root",
            "viewer subject:alice scope:root"
        ]
    );

    let holders = server
        .access()
        .await
        .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
            tenant: B.into(),
            permission: "document:edit".into(),
            scope: "eu".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(holders.holders.is_empty(), "{holders:?}");
    let effective = server
        .access()
        .await
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: B.into(),
            subject: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let targets: Vec<&str> = effective.targets.iter().map(|t| t.scope.as_str()).collect();
    assert_eq!(targets, ["root"]);
    server.stop().await;
}

/// Writes through B cannot reach A's records, and changes in B (deletes,
/// locks, settings) leave A untouched.
#[tokio::test]
async fn writes_through_one_tenant_leave_the_other_untouched() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut m = server.membership().await;
    for (op, named) in [
        (
            assign("viewer", subject_principal("a-only"), None),
            "a-only",
        ),
        (add_member("a-only", subject_principal("alice")), "a-only"),
        (
            assign("viewer", subject_principal("alice"), scope_target("a-only")),
            "a-only",
        ),
    ] {
        assert_status(
            m.manage_membership(batch(B, vec![op], None)).await,
            Code::NotFound,
            named,
        );
    }
    let mut d = server.directory().await;
    let delete = |id: &str| pb::DeleteRequest {
        tenant: B.into(),
        id: id.into(),
        options: None,
    };
    assert_status(
        d.delete_subject(delete("a-only")).await,
        Code::NotFound,
        "a-only",
    );

    set_locked(&server, B, "bob", true).await;
    d.delete_subject(delete("alice")).await.unwrap();
    d.delete_group(delete("g")).await.unwrap();
    d.delete_role(delete("r")).await.unwrap();
    set_disabled(&server, B, &["document"]).await;

    assert!(check(&server, A, "alice", "document:edit", "eu").await);
    assert!(check(&server, A, "bob", "document:manage", "").await);
    assert_eq!(
        members(&server, A, "g").await,
        ["subject:a-only", "subject:alice"]
    );
    let a = server
        .directory()
        .await
        .get_tenant(pb::GetTenantRequest { tenant: A.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        a.tenant
            .unwrap()
            .settings
            .unwrap()
            .disabled_resources
            .is_empty()
    );
    server.stop().await;
}

/// Idempotency keys are per tenant: the same key in A and in B are two
/// different writes.
#[tokio::test]
async fn idempotency_keys_are_per_tenant() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut m = server.membership().await;
    let keyed = |tenant: &str| {
        batch(
            tenant,
            vec![assign("manager", subject_principal("alice"), None)],
            Some(pb::WriteOptions {
                idempotency_key: "same-key".into(),
                ..Default::default()
            }),
        )
    };
    let in_a = m
        .manage_membership(keyed(A))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let in_b = m
        .manage_membership(keyed(B))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(in_b, in_a + 1);
    assert!(check(&server, A, "alice", "document:manage", "").await);
    assert!(check(&server, B, "alice", "document:manage", "").await);
    server.stop().await;
}

/// A's stream, replayed from the beginning and then live, carries none of
/// B's changes.
#[tokio::test]
async fn streams_carry_only_their_tenant() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut stream = watch(&server, B, 0, "").await;
    create_subject(&server, A, "a-later").await;
    let sentinel = create_subject(&server, B, "b-later").await;
    loop {
        let m = next_event(&mut stream).await;
        // The schema is store-wide and reaches every tenant's stream.
        let own: Vec<_> = m
            .changes
            .iter()
            .filter(|c| !matches!(c.change, Some(pb::change::Change::SchemaWritten(_))))
            .collect();
        let text = format!("{own:?}");
        for c in &own {
            if let Some(pb::change::Change::TenantPut(t)) = &c.change {
                assert_eq!(t.id, B);
            }
        }
        assert!(!text.contains("a-only"), "A's change on B's stream: {text}");
        assert!(
            !text.contains("a-later"),
            "A's change on B's stream: {text}"
        );
        assert!(
            !text.contains("document:manage"),
            "A's role on B's stream: {text}"
        );
        if m.revision == sentinel {
            break;
        }
    }
    server.stop().await;
}
