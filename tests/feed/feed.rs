//! The permission-change feed over gRPC: effective gains and losses beside
//! the raw changes, and the filters on them.

use authzd_testkit as common;

use authzd_server::api::pb;
use common::*;

const T: &str = "acme";

async fn subscribe(
    server: &TestServer,
    request: pb::WatchRequest,
) -> tonic::Streaming<pb::WatchResponse> {
    server
        .watch()
        .await
        .watch(request)
        .await
        .unwrap()
        .into_inner()
}

/// Permission changes only, of tenant T after `after`, narrowed by the
/// filters set in `filter`.
async fn permission_changes(
    server: &TestServer,
    after: u64,
    filter: pb::WatchRequest,
) -> tonic::Streaming<pb::WatchResponse> {
    let request = pb::WatchRequest {
        tenant: T.into(),
        after_revision: after,
        kinds: vec![pb::EventKind::PermissionChanges as i32],
        ..filter
    };
    subscribe(server, request).await
}

fn effects(m: &pb::WatchResponse) -> Vec<(String, String, String, bool)> {
    m.permission_changes
        .iter()
        .map(|c| {
            let at = if c.scope.is_empty() {
                format!("subject:{}", c.target_subject)
            } else {
                c.scope.clone()
            };
            (c.subject.clone(), c.permission.clone(), at, c.gained)
        })
        .collect()
}

fn e(subject: &str, permission: &str, at: &str, gained: bool) -> (String, String, String, bool) {
    (subject.into(), permission.into(), at.into(), gained)
}

/// Assigning a role reports every permission it gives (ladder and follows
/// included) as gains at the assignment's scope; unassigning reports the
/// same as losses. A permission filter narrows to matching permissions.
#[tokio::test]
async fn assignments_gain_and_lose_exactly_what_the_role_gives() {
    let server = TestServer::start().await;
    create_scope(&server, T, "eu", "").await;
    let start = create_subject(&server, T, "alice").await;
    let mut all = permission_changes(&server, start, pb::WatchRequest::default()).await;
    let mut docs = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: start,
            permission: "document:*".into(),
            ..Default::default()
        },
    )
    .await;
    let given = manage(
        &server,
        T,
        vec![assign(
            "editor",
            subject_principal("alice"),
            scope_target("eu"),
        )],
    )
    .await;
    let m = next_event(&mut all).await;
    assert_eq!(m.revision, given);
    assert!(
        m.changes.is_empty(),
        "only permission changes were asked for"
    );
    assert_eq!(
        effects(&m),
        vec![
            e("alice", "comment:edit", "eu", true),
            e("alice", "comment:read", "eu", true),
            e("alice", "document:edit", "eu", true),
            e("alice", "document:read", "eu", true),
        ]
    );
    let m = next_event(&mut docs).await;
    assert_eq!(
        effects(&m),
        vec![
            e("alice", "document:edit", "eu", true),
            e("alice", "document:read", "eu", true),
        ]
    );
    assert_eq!(m.changes.len(), 1, "raw changes come along by default");

    manage(
        &server,
        T,
        vec![unassign(
            "editor",
            subject_principal("alice"),
            scope_target("eu"),
        )],
    )
    .await;
    let m = next_event(&mut docs).await;
    assert_eq!(
        effects(&m),
        vec![
            e("alice", "document:edit", "eu", false),
            e("alice", "document:read", "eu", false),
        ]
    );
    server.stop().await;
}

/// Locking a subject is a loss of everything it held; unlocking gains it
/// back — though no grant changed.
#[tokio::test]
async fn locking_loses_everything_and_unlocking_regains_it() {
    let server = TestServer::start().await;
    create_subject(&server, T, "bob").await;
    let start = manage(
        &server,
        T,
        vec![assign("viewer", subject_principal("bob"), None)],
    )
    .await;
    let mut feed = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: start,
            subject: "bob".into(),
            ..Default::default()
        },
    )
    .await;
    let lock = |status: pb::SubjectStatus| pb::UpdateSubjectRequest {
        tenant: T.into(),
        subject: Some(pb::Subject {
            id: "bob".into(),
            status: status as i32,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["status".into()],
        }),
        options: None,
    };
    let mut d = server.directory().await;
    d.update_subject(lock(pb::SubjectStatus::Locked))
        .await
        .unwrap();
    assert_eq!(
        effects(&next_event(&mut feed).await),
        vec![
            e("bob", "comment:read", "root", false),
            e("bob", "document:read", "root", false)
        ]
    );
    d.update_subject(lock(pb::SubjectStatus::Active))
        .await
        .unwrap();
    assert_eq!(
        effects(&next_event(&mut feed).await),
        vec![
            e("bob", "comment:read", "root", true),
            e("bob", "document:read", "root", true)
        ]
    );
    server.stop().await;
}

/// A subject leaving a condition population is a loss for the population's
/// holders over that subject, reported with the subject as target; a
/// target_subject filter sees exactly those.
#[tokio::test]
async fn leaving_a_population_is_a_loss_over_that_subject() {
    let server = TestServer::start().await;
    for s in ["svc", "emp"] {
        create_subject(&server, T, s).await;
    }
    let mut d = server.directory().await;
    let set_status = |value: &str| pb::UpdateSubjectRequest {
        tenant: T.into(),
        subject: Some(pb::Subject {
            id: "emp".into(),
            attributes: [("lifecycle_status".to_string(), value.to_string())].into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["attributes".into()],
        }),
        options: None,
    };
    d.update_subject(set_status("employed")).await.unwrap();
    d.create_group(pb::CreateGroupRequest {
        tenant: T.into(),
        group: Some(pb::Group {
            id: "staff".into(),
            title: String::new(),
            condition: r#"attributes.lifecycle_status == "employed""#.into(),
        }),
        options: None,
    })
    .await
    .unwrap();
    let start = manage(
        &server,
        T,
        vec![assign(
            "viewer",
            subject_principal("svc"),
            population_target("staff"),
        )],
    )
    .await;
    let mut feed = permission_changes(
        &server,
        start - 1,
        pb::WatchRequest {
            target_subject: "emp".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        effects(&next_event(&mut feed).await),
        vec![
            e("svc", "comment:read", "subject:emp", true),
            e("svc", "document:read", "subject:emp", true)
        ]
    );
    let left = d
        .update_subject(set_status("resigned"))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let m = next_event(&mut feed).await;
    assert_eq!(m.revision, left);
    assert_eq!(
        effects(&m),
        vec![
            e("svc", "comment:read", "subject:emp", false),
            e("svc", "document:read", "subject:emp", false)
        ]
    );
    server.stop().await;
}

/// An expiring assignment's loss reaches the feed at its instant, as a
/// server-made `role_expired` change with its own revision — driven by the
/// clock (here moved by the test), not by any client write.
#[tokio::test]
async fn expiry_is_a_loss_at_its_instant() {
    use std::sync::Arc;
    use std::time::Duration;

    use authzd_core::model::Timestamp;
    use authzd_service::clock::ManualClock;

    let start = Timestamp(1_800_000_000_000_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let server = TestServer::start_with_clock(None, clock.clone()).await;
    create_subject(&server, T, "temp").await;
    let mut op = assign("viewer", subject_principal("temp"), None);
    if let Some(pb::membership_operation::Operation::AssignRole(a)) = &mut op.operation {
        a.expires_at = Some(prost_types::Timestamp {
            seconds: start.0 / 1_000_000_000 + 60,
            nanos: 0,
        });
    }
    let given = manage(&server, T, vec![op]).await;
    let mut feed = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: given,
            ..Default::default()
        },
    )
    .await;
    clock.advance(Duration::from_secs(60));
    let m = next_event(&mut feed).await;
    assert_eq!(m.revision, given + 1);
    assert!(m.actor.is_empty(), "a system write");
    assert!(
        matches!(
            m.changes[0].change,
            Some(pb::change::Change::RoleExpired(ref a)) if a.role == "viewer"
        ),
        "{m:?}"
    );
    assert_eq!(
        effects(&m),
        vec![
            e("temp", "comment:read", "root", false),
            e("temp", "document:read", "root", false)
        ]
    );
    server.stop().await;
}

/// A subscriber asking for history older than the retained changelog is
/// refused with FAILED_PRECONDITION naming the oldest retained revision and
/// how to resync; one within the window gets everything after it.
#[tokio::test]
async fn too_old_a_revision_is_refused_with_the_oldest_retained() {
    let server = TestServer::start_with(|c| c.retain_revisions = 3).await;
    let mut last = 0;
    for i in 0..6 {
        last = create_subject(&server, T, &format!("s{i}")).await;
    }
    let e = server
        .watch()
        .await
        .watch(pb::WatchRequest {
            tenant: T.into(),
            after_revision: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message()
            .contains(&format!("oldest retained: {}", last - 2))
            && e.message().contains("resync"),
        "{}",
        e.message()
    );
    let mut within = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: last - 3,
            ..Default::default()
        },
    )
    .await;
    for revision in last - 2..=last {
        assert_eq!(next_event(&mut within).await.revision, revision);
    }
    server.stop().await;
}

/// An idle subscriber receives progress events carrying the revision the
/// stream has reached, so it can checkpoint.
#[tokio::test]
async fn idle_subscribers_get_progress() {
    let server =
        TestServer::start_with(|c| c.progress_interval = std::time::Duration::from_millis(50))
            .await;
    let last = create_subject(&server, T, "x").await;
    let mut feed = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: last,
            ..Default::default()
        },
    )
    .await;
    let m = next_event(&mut feed).await;
    assert!(
        m.progress && m.changes.is_empty() && m.permission_changes.is_empty(),
        "{m:?}"
    );
    assert_eq!(m.revision, last);
    server.stop().await;
}

/// A scope filter passes only permission changes at that scope: a write
/// whose effects are all elsewhere sends nothing to a subscriber of
/// permission changes.
#[tokio::test]
async fn scope_filter_passes_only_changes_at_that_scope() {
    let server = TestServer::start().await;
    create_scope(&server, T, "eu", "").await;
    create_scope(&server, T, "us", "").await;
    let start = create_subject(&server, T, "alice").await;
    let mut feed = permission_changes(
        &server,
        start,
        pb::WatchRequest {
            scope: "eu".into(),
            ..Default::default()
        },
    )
    .await;
    manage(
        &server,
        T,
        vec![assign(
            "viewer",
            subject_principal("alice"),
            scope_target("us"),
        )],
    )
    .await;
    let both = manage(
        &server,
        T,
        vec![
            assign("viewer", subject_principal("alice"), scope_target("eu")),
            assign("editor", subject_principal("alice"), scope_target("us")),
        ],
    )
    .await;
    let m = next_event(&mut feed).await;
    assert_eq!(m.revision, both, "the write only at us was passed: {m:?}");
    assert_eq!(
        effects(&m),
        vec![
            e("alice", "comment:read", "eu", true),
            e("alice", "document:read", "eu", true),
        ]
    );
    server.stop().await;
}

/// A subject filter passes the subject's own permission changes and those
/// of others over it (through a population), and nothing of anyone else.
#[tokio::test]
async fn subject_filter_passes_changes_of_and_over_the_subject() {
    let server = TestServer::start().await;
    for s in ["svc", "emp", "bob"] {
        create_subject(&server, T, s).await;
    }
    create_group(&server, T, "staff").await;
    let start = manage(
        &server,
        T,
        vec![
            add_member("staff", subject_principal("emp")),
            add_member("staff", subject_principal("bob")),
        ],
    )
    .await;
    let mut feed = permission_changes(
        &server,
        start,
        pb::WatchRequest {
            subject: "emp".into(),
            ..Default::default()
        },
    )
    .await;
    manage(
        &server,
        T,
        vec![assign("viewer", subject_principal("bob"), None)],
    )
    .await;
    let over = manage(
        &server,
        T,
        vec![assign(
            "viewer",
            subject_principal("svc"),
            population_target("staff"),
        )],
    )
    .await;
    let own = manage(
        &server,
        T,
        vec![assign("viewer", subject_principal("emp"), None)],
    )
    .await;
    let m = next_event(&mut feed).await;
    assert_eq!(m.revision, over, "bob's own gain was passed: {m:?}");
    assert_eq!(
        effects(&m),
        vec![
            e("svc", "comment:read", "subject:emp", true),
            e("svc", "document:read", "subject:emp", true),
        ],
        "svc's gains over bob were passed"
    );
    let m = next_event(&mut feed).await;
    assert_eq!(m.revision, own);
    assert_eq!(
        effects(&m),
        vec![
            e("emp", "comment:read", "root", true),
            e("emp", "document:read", "root", true),
        ]
    );
    server.stop().await;
}

/// Event kinds select what arrives: a subscriber of raw changes gets every
/// write with no permission changes; a subscriber of permission changes
/// gets no raw changes and nothing at all for a write without effects.
#[tokio::test]
async fn kinds_select_raw_changes_or_permission_changes() {
    let server = TestServer::start().await;
    let start = create_subject(&server, T, "alice").await;
    let open = |kind: pb::EventKind| {
        subscribe(
            &server,
            pb::WatchRequest {
                tenant: T.into(),
                after_revision: start,
                kinds: vec![kind as i32],
                ..Default::default()
            },
        )
    };
    let mut raw = open(pb::EventKind::Changes).await;
    let mut gains = open(pb::EventKind::PermissionChanges).await;
    let scope = create_scope(&server, T, "eu", "").await;
    let given = manage(
        &server,
        T,
        vec![assign(
            "viewer",
            subject_principal("alice"),
            scope_target("eu"),
        )],
    )
    .await;
    for expected in [scope, given] {
        let m = next_event(&mut raw).await;
        assert_eq!(m.revision, expected);
        assert_eq!(m.changes.len(), 1);
        assert!(m.permission_changes.is_empty(), "{m:?}");
    }
    let m = next_event(&mut gains).await;
    assert_eq!(m.revision, given, "a write without effects was sent");
    assert!(m.changes.is_empty(), "{m:?}");
    assert_eq!(m.permission_changes.len(), 2);
    server.stop().await;
}

/// With a tiny live buffer, a subscriber that does not read while many
/// writes commit is ended with RESOURCE_EXHAUSTED naming the last revision
/// it was sent; resuming from it delivers every later revision exactly
/// once; and writes and checks kept working all along.
#[tokio::test]
async fn a_slow_subscriber_is_ended_and_resumes_where_it_stopped() {
    let server = TestServer::start_with(|c| {
        c.feed_capacity = 2;
        c.subscriber_buffer = 1;
    })
    .await;
    let people: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    let mut start = 0;
    for p in &people {
        start = create_subject(&server, T, p).await;
    }
    // Small HTTP/2 windows, so that the transport holds little of what the
    // subscriber does not read (the client's default is megabytes).
    let narrow = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut slow = WatchServiceClient::new(narrow)
        .watch(pb::WatchRequest {
            tenant: T.into(),
            after_revision: start,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Each write gains or loses every permission for 20 subjects: big
    // messages, so the transport's buffers fill quickly too.
    let mut m = server.membership().await;
    let mut a = server.access().await;
    let mut latest = start;
    for i in 0..100 {
        let op = if i % 2 == 0 { assign } else { unassign };
        let operations = people
            .iter()
            .map(|p| op("admin", subject_principal(p), None))
            .collect();
        latest = m
            .manage_membership(pb::ManageMembershipRequest {
                tenant: T.into(),
                operations,
                options: None,
                dry_run: false,
            })
            .await
            .unwrap()
            .into_inner()
            .revision;
        let allowed = a
            .check_access(check_request(T, "u7", "users:admin", ""))
            .await
            .unwrap()
            .into_inner()
            .allowed;
        assert_eq!(allowed, i % 2 == 0, "checks work while the subscriber lags");
    }
    assert_eq!(latest, start + 100, "every write committed");
    let mut last = start;
    let status = loop {
        match guard("the slow stream", slow.message()).await {
            Ok(Some(m)) => {
                assert_eq!(m.revision, last + 1);
                last = m.revision;
                assert!(last < latest, "the subscriber was never ended");
            }
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("resume with after_revision = {last}")),
        "{}",
        status.message()
    );
    let mut resumed = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: last,
            ..Default::default()
        },
    )
    .await;
    for expected in last + 1..=latest {
        assert_eq!(next_event(&mut resumed).await.revision, expected);
    }
    server.stop().await;
}

type Reached = (String, String, String, bool, pb::Reach);

/// A message's permission changes with their reach.
fn reached(m: &pb::WatchResponse) -> Vec<Reached> {
    effects(m)
        .into_iter()
        .zip(&m.permission_changes)
        .map(|((s, p, at, gained), c)| (s, p, at, gained, c.reach()))
        .collect()
}

fn r(subject: &str, permission: &str, at: &str, gained: bool, reach: pb::Reach) -> Reached {
    (subject.into(), permission.into(), at.into(), gained, reach)
}

/// (holder, reach) of a permission at a scope, as ListSubjectsWithPermission
/// lists them.
async fn holders(server: &TestServer, permission: &str, scope: &str) -> Vec<(String, pb::Reach)> {
    holders_at(server, T, permission, scope)
        .await
        .iter()
        .map(|h| (h.subject.clone(), h.reach()))
        .collect()
}

/// The reach of each permission a subject holds at `scope`, as
/// ListEffectivePermissions lists it without a scope.
async fn reaches_at(server: &TestServer, subject: &str, scope: &str) -> Vec<(String, pb::Reach)> {
    effective_targets(server, T, subject, "")
        .await
        .iter()
        .filter(|t| t.scope == scope)
        .flat_map(|t| &t.permissions)
        .map(|p| (p.permission.clone(), p.reach()))
        .collect()
}

/// bob (`*` at a) and carol (editor and approver at a) both hold the derived
/// document:publish at a, but only bob holds it at a's child a1, because
/// approval does not inherit while `*` grants publish itself. The feed and
/// both listings tell them apart by reach (subtree for bob, exact for
/// carol), while `*` still gives bob approval:approve exactly at a; and
/// when carol's publish comes to hold below a too, the feed reports a loss
/// at the old reach followed by a gain at the new one.
#[tokio::test]
async fn reach_tells_a_subtree_from_an_exact_grant() {
    use pb::Reach::{Exact, Subtree};
    let server = TestServer::start().await;
    create_scope(&server, T, "a", "").await;
    create_scope(&server, T, "a1", "a").await;
    create_subject(&server, T, "bob").await;
    let start = create_subject(&server, T, "carol").await;
    let mut feed = permission_changes(
        &server,
        start,
        pb::WatchRequest {
            permission: "document:publish".into(),
            ..Default::default()
        },
    )
    .await;
    manage(
        &server,
        T,
        vec![
            assign("admin", subject_principal("bob"), scope_target("a")),
            assign("editor", subject_principal("carol"), scope_target("a")),
            assign("approver", subject_principal("carol"), scope_target("a")),
        ],
    )
    .await;
    assert_eq!(
        reached(&next_event(&mut feed).await),
        vec![
            r("bob", "document:publish", "a", true, Subtree),
            r("carol", "document:publish", "a", true, Exact),
        ]
    );
    for (who, at_a1) in [("bob", true), ("carol", false)] {
        assert!(check(&server, T, who, "document:publish", "a").await);
        assert_eq!(
            check(&server, T, who, "document:publish", "a1").await,
            at_a1
        );
    }
    assert_eq!(
        holders(&server, "document:publish", "a").await,
        vec![("bob".into(), Subtree), ("carol".into(), Exact)]
    );
    assert_eq!(
        holders(&server, "document:publish", "a1").await,
        vec![("bob".into(), Subtree)]
    );
    let carol = reaches_at(&server, "carol", "a").await;
    for expected in [
        ("approval:approve", Exact),
        ("document:edit", Subtree),
        ("document:publish", Exact),
    ] {
        assert!(
            carol.contains(&(expected.0.into(), expected.1)),
            "{carol:?}"
        );
    }
    let bob = reaches_at(&server, "bob", "a").await;
    for expected in [("approval:approve", Exact), ("document:publish", Subtree)] {
        assert!(bob.contains(&(expected.0.into(), expected.1)), "{bob:?}");
    }
    assert!(!check(&server, T, "bob", "approval:approve", "a1").await);

    manage(
        &server,
        T,
        vec![assign(
            "admin",
            subject_principal("carol"),
            scope_target("root"),
        )],
    )
    .await;
    assert_eq!(
        reached(&next_event(&mut feed).await),
        vec![
            r("carol", "document:publish", "a", false, Exact),
            r("carol", "document:publish", "a", true, Subtree),
            r("carol", "document:publish", "root", true, Subtree),
        ]
    );
    assert!(check(&server, T, "carol", "document:publish", "a1").await);
}

/// A derived permission can hold over a target subject only by combining a
/// population grant (approver over the group the target is in) with a grant
/// at the target's home scope (editor at the root): CheckAccess allows it,
/// and so the feed lists it over that subject, exactly, beside what the
/// population gives; when the target leaves the group, both are lost.
#[tokio::test]
async fn a_derived_permission_over_a_target_subject_can_need_both_kinds_of_grant() {
    use pb::Reach::{Exact, Subtree};
    let server = TestServer::start().await;
    create_group(&server, T, "staff").await;
    create_subject(&server, T, "dave").await;
    create_subject(&server, T, "erin").await;
    let start = manage(
        &server,
        T,
        vec![
            add_member("staff", subject_principal("erin")),
            assign("editor", subject_principal("dave"), scope_target("root")),
        ],
    )
    .await;
    let mut feed = permission_changes(
        &server,
        start,
        pb::WatchRequest {
            subject: "dave".into(),
            ..Default::default()
        },
    )
    .await;
    manage(
        &server,
        T,
        vec![assign(
            "approver",
            subject_principal("dave"),
            population_target("staff"),
        )],
    )
    .await;
    assert!(check_over(&server, T, "dave", "document:publish", "erin").await);
    assert!(!check(&server, T, "dave", "document:publish", "").await);
    assert_eq!(
        reached(&next_event(&mut feed).await),
        vec![
            r("dave", "approval:approve", "subject:erin", true, Exact),
            r("dave", "document:publish", "subject:erin", true, Exact),
        ]
    );
    manage(
        &server,
        T,
        vec![remove_member("staff", subject_principal("erin"))],
    )
    .await;
    assert!(!check_over(&server, T, "dave", "document:publish", "erin").await);
    assert_eq!(
        reached(&next_event(&mut feed).await),
        vec![
            r("dave", "approval:approve", "subject:erin", false, Exact),
            r("dave", "document:publish", "subject:erin", false, Exact),
        ]
    );
    assert_eq!(
        holders(&server, "document:edit", "").await,
        vec![("dave".into(), Subtree)]
    );
}
