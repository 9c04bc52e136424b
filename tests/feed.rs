#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The permission-change feed over gRPC: effective gains and losses beside
//! the raw changes, and the filters on them.

mod common;

use authzd::api::pb;
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
    let mut all = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: start,
            kinds: vec![pb::EventKind::PermissionChanges as i32],
            ..Default::default()
        },
    )
    .await;
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
    let mut feed = subscribe(
        &server,
        pb::WatchRequest {
            tenant: T.into(),
            after_revision: start - 1,
            target_subject: "emp".into(),
            kinds: vec![pb::EventKind::PermissionChanges as i32],
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

    use authzd::clock::ManualClock;
    use authzd::model::Timestamp;

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
