//! `WatchService.Watch` over gRPC: one message per committed revision, in
//! order; replay from `after_revision` joined to the live feed without gap
//! or duplicate; subject and tenant filters; a clean end at shutdown.
//!
//! Nothing here sleeps: every expected message is awaited under a timeout
//! that only guards against a hang, and the absence of a message is proven
//! by a later sentinel write arriving next.

use authzd_testkit as common;
use common::*;

use pb::change::Change as C;

fn kinds(message: &pb::WatchResponse) -> Vec<&'static str> {
    message
        .changes
        .iter()
        .map(|c| match c.change.as_ref().unwrap() {
            C::TenantPut(_) => "tenant_put",
            C::SubjectPut(_) => "subject_put",
            C::SubjectDeleted(_) => "subject_deleted",
            C::ScopePut(_) => "scope_put",
            C::ScopeDeleted(_) => "scope_deleted",
            C::GroupPut(_) => "group_put",
            C::GroupDeleted(_) => "group_deleted",
            C::RolePut(_) => "role_put",
            C::RoleDeleted(_) => "role_deleted",
            C::MemberAdded(_) => "member_added",
            C::MemberRemoved(_) => "member_removed",
            C::RoleAssigned(_) => "role_assigned",
            C::RoleUnassigned(_) => "role_unassigned",
            C::SchemaWritten(_) => "schema_written",
            C::RoleExpired(_) => "role_expired",
        })
        .collect()
}

/// A batch write reaches a subscriber as exactly one message, at the
/// revision the write returned, with its changes in the order applied.
#[tokio::test]
async fn a_batch_arrives_as_one_message_at_its_revision() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "g").await;
    let mut stream = watch(&server, ACME, revision(&server).await, "").await;
    let rev = manage(
        &server,
        ACME,
        vec![
            add_member("g", subject_principal("alice")),
            assign("editor", group_principal("g"), None),
            assign("viewer", subject_principal("alice"), None),
        ],
    )
    .await;
    let message = next_event(&mut stream).await;
    assert_eq!(message.revision, rev);
    assert!(message.committed_at.is_some());
    assert_eq!(message.actor, "");
    assert_eq!(
        kinds(&message),
        ["member_added", "role_assigned", "role_assigned"]
    );
    match message.changes[1].change.as_ref().unwrap() {
        C::RoleAssigned(a) => assert_eq!(assignment_text(a), "editor group:g scope:root"),
        other => panic!("{other:?}"),
    }
    // The next message is the next write: the batch was not split.
    let sentinel = create_subject(&server, ACME, "sentinel").await;
    assert_eq!(next_event(&mut stream).await.revision, sentinel);
    server.stop().await;
}

/// Several writes arrive one message each, in revision order, carrying the
/// actor they were made on behalf of.
#[tokio::test]
async fn writes_arrive_in_revision_order_with_their_actor() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "boss").await;
    create_group(&server, ACME, "g").await;
    let mut stream = watch(&server, ACME, revision(&server).await, "").await;
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(create_subject(&server, ACME, &format!("s{i}")).await);
    }
    let acted = server
        .membership()
        .await
        .manage_membership(batch(
            ACME,
            vec![add_member("g", subject_principal("s0"))],
            Some(pb::WriteOptions {
                actor: "boss".into(),
                ..Default::default()
            }),
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    revisions.push(acted);
    let mut got = Vec::new();
    let mut last = None;
    for _ in 0..revisions.len() {
        let m = next_event(&mut stream).await;
        got.push(m.revision);
        last = Some(m);
    }
    assert_eq!(got, revisions);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(last.unwrap().actor, "boss");
    server.stop().await;
}

/// Subscribing with after_revision in the middle of history replays exactly
/// the later revisions, then delivers live writes, with no gap and no
/// duplicate at the seam.
#[tokio::test]
async fn after_revision_replays_history_then_goes_live() {
    let server = TestServer::start().await;
    let mut history = Vec::new();
    for i in 0..4 {
        history.push(create_subject(&server, ACME, &format!("old{i}")).await);
    }
    let mut stream = watch(&server, ACME, history[1], "").await;
    let mut live = Vec::new();
    for i in 0..2 {
        live.push(create_subject(&server, ACME, &format!("new{i}")).await);
    }
    let expected: Vec<u64> = history[2..].iter().chain(&live).copied().collect();
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        got.push(next_event(&mut stream).await.revision);
    }
    assert_eq!(got, expected);
    let first = next_event_after_sentinel(&server, &mut stream).await;
    assert_eq!(first, 1, "exactly the sentinel followed");

    // From 0, the whole retained changelog, starting at revision 1 (the
    // built-in schema) or at the tenant's first write.
    let mut all = watch(&server, ACME, 0, "").await;
    let m = next_event(&mut all).await;
    assert!(m.revision <= history[0]);
    server.stop().await;
}

/// Writes a sentinel and counts the messages up to and including it.
async fn next_event_after_sentinel(
    server: &TestServer,
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> usize {
    let sentinel =
        create_subject(server, ACME, &format!("sentinel{}", revision(server).await)).await;
    let mut count = 0;
    loop {
        let m = next_event(stream).await;
        count += 1;
        assert!(m.revision <= sentinel, "skipped past the sentinel");
        if m.revision == sentinel {
            return count;
        }
    }
}

/// Writes racing with a subscription's replay are each delivered exactly
/// once, in order: the seam between changelog and live feed has no gap and
/// no duplicate.
#[tokio::test]
async fn replay_racing_with_writes_has_no_gap_and_no_duplicate() {
    let server = TestServer::start().await;
    let mut first = 0;
    for i in 0..20 {
        let r = create_subject(&server, ACME, &format!("h{i}")).await;
        if i == 9 {
            first = r;
        }
    }
    let addr = server.addr;
    let writer = tokio::spawn(async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut d = DirectoryServiceClient::new(channel);
        let mut revisions = Vec::new();
        for i in 0..40 {
            revisions.push(
                d.create_subject(pb::CreateSubjectRequest {
                    tenant: ACME.into(),
                    subject: Some(pb::Subject {
                        id: format!("race{i}"),
                        ..Default::default()
                    }),
                    options: None,
                })
                .await
                .unwrap()
                .into_inner()
                .revision,
            );
        }
        revisions
    });
    let mut stream = watch(&server, ACME, first, "").await;
    let written = guard("the writer", writer).await.unwrap();
    let last = *written.last().unwrap();
    let mut got = Vec::new();
    loop {
        let r = next_event(&mut stream).await.revision;
        got.push(r);
        if r == last {
            break;
        }
        assert!(r < last, "skipped past the last write");
    }
    // Every revision after `first` is one of this tenant's writes, so the
    // stream must be exactly first+1 ..= last.
    let expected: Vec<u64> = (first + 1..=last).collect();
    assert_eq!(got, expected);
    server.stop().await;
}

/// With a subject filter, only the changes naming that subject arrive, and
/// a batch naming it among others arrives reduced to its changes.
#[tokio::test]
async fn subject_filter_passes_only_that_subjects_changes() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "g").await;
    let mut stream = watch(&server, ACME, revision(&server).await, "alice").await;
    create_subject(&server, ACME, "bob").await;
    manage(
        &server,
        ACME,
        vec![add_member("g", subject_principal("bob"))],
    )
    .await;
    let mixed = manage(
        &server,
        ACME,
        vec![
            assign("viewer", subject_principal("bob"), None),
            assign("editor", subject_principal("alice"), None),
            assign("viewer", group_principal("g"), None),
        ],
    )
    .await;
    let locked = set_locked(&server, ACME, "alice", true).await;

    let m = next_event(&mut stream).await;
    assert_eq!(m.revision, mixed);
    assert_eq!(kinds(&m), ["role_assigned"]);
    match m.changes[0].change.as_ref().unwrap() {
        C::RoleAssigned(a) => assert_eq!(assignment_text(a), "editor subject:alice scope:root"),
        other => panic!("{other:?}"),
    }
    let m = next_event(&mut stream).await;
    assert_eq!(m.revision, locked);
    match m.changes[0].change.as_ref().unwrap() {
        C::SubjectPut(s) => {
            assert_eq!(s.id, "alice");
            assert_eq!(s.status, pb::SubjectStatus::Locked as i32);
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

/// A tenant's stream carries nothing of another tenant, live or replayed.
#[tokio::test]
async fn tenant_filter_shows_nothing_of_other_tenants() {
    let server = TestServer::start().await;
    let start = revision(&server).await;
    let mut a = watch(&server, "tenant-a", start, "").await;
    let mut b_writes = Vec::new();
    for i in 0..3 {
        b_writes.push(create_subject(&server, "tenant-b", &format!("b{i}")).await);
    }
    let a_write = create_subject(&server, "tenant-a", "a0").await;
    let m = next_event(&mut a).await;
    assert_eq!(m.revision, a_write);
    let ids: Vec<String> = m
        .changes
        .iter()
        .filter_map(|c| match c.change.as_ref().unwrap() {
            C::SubjectPut(s) => Some(s.id.clone()),
            C::TenantPut(t) => Some(t.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["tenant-a", "a0"]);

    // Replayed from the start: only B's own writes.
    let mut b = watch(&server, "tenant-b", start, "").await;
    for expected in &b_writes {
        assert_eq!(next_event(&mut b).await.revision, *expected);
    }
    let b_sentinel = create_subject(&server, "tenant-b", "b-last").await;
    assert_eq!(next_event(&mut b).await.revision, b_sentinel);
    server.stop().await;
}

/// When the server shuts down, an open stream ends with UNAVAILABLE naming
/// the revision to resume after (so a subscriber tells it from a normal
/// end), and the shutdown is not held open by it.
#[tokio::test]
async fn the_stream_ends_unavailable_at_shutdown() {
    let server = TestServer::start().await;
    let mut stream = watch(&server, ACME, 0, "").await;
    let first = create_subject(&server, ACME, "alice").await;
    loop {
        if next_event(&mut stream).await.revision == first {
            break;
        }
    }
    let (_, end) = guard("shutdown and end of stream", async {
        tokio::join!(server.stop(), stream.message())
    })
    .await;
    match end {
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            assert!(
                status
                    .message()
                    .contains(&format!("resume with after_revision = {first}")),
                "{status:?}"
            );
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
}

/// `after_revision` beyond the latest committed revision is refused at once
/// with OUT_OF_RANGE naming the latest, instead of streaming progress for a
/// revision that was never written; the latest itself is accepted, and the
/// stream goes on with the next write.
#[tokio::test]
async fn a_future_revision_is_refused_naming_the_latest() {
    let server = TestServer::start().await;
    let latest = create_subject(&server, ACME, "alice").await;
    let mut client = server.watch().await;
    for ahead in [latest + 1, 1000] {
        let refused = client
            .watch(pb::WatchRequest {
                tenant: ACME.into(),
                after_revision: ahead,
                ..Default::default()
            })
            .await;
        assert_status(
            refused,
            Code::OutOfRange,
            &format!("latest committed revision {latest}"),
        );
    }
    let mut stream = watch(&server, ACME, latest, "").await;
    let next = create_subject(&server, ACME, "bob").await;
    assert_eq!(next_event(&mut stream).await.revision, next);
    server.stop().await;
}

/// `after_revision = 0` means from the first revision ever: it replays the
/// whole history while nothing is pruned, and once the changelog is pruned
/// it is refused with FAILED_PRECONDITION naming the oldest retained
/// revision (never a stream silently missing the start).
/// `from_oldest_retained` then starts exactly at that oldest revision, goes
/// live, and refuses being combined with an `after_revision`.
#[tokio::test]
async fn after_revision_zero_is_the_whole_history_and_from_oldest_retained_what_is_left() {
    let server = TestServer::start().await;
    let first = create_subject(&server, ACME, "alice").await;
    let mut whole = watch(&server, ACME, 0, "").await;
    assert_eq!(next_event(&mut whole).await.revision, 1);
    server.stop().await;
    assert!(first >= 1);

    let server = TestServer::start_with(|c| c.retain_revisions = 3).await;
    let mut last = 0;
    for i in 0..6 {
        last = create_subject(&server, ACME, &format!("s{i}")).await;
    }
    let oldest = last - 2;
    let mut client = server.watch().await;
    let refused = client
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: 0,
            ..Default::default()
        })
        .await;
    assert_status(
        refused,
        Code::FailedPrecondition,
        &format!("oldest retained: {oldest}"),
    );
    let both = client
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: 2,
            from_oldest_retained: true,
            ..Default::default()
        })
        .await;
    assert_status(both, Code::InvalidArgument, "after_revision");
    let mut retained = client
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            from_oldest_retained: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for revision in oldest..=last {
        assert_eq!(next_event(&mut retained).await.revision, revision);
    }
    let live = create_subject(&server, ACME, "live").await;
    assert_eq!(next_event(&mut retained).await.revision, live);
    server.stop().await;
}

/// Every permission change carries its direction, DIRECTION_GAINED or
/// DIRECTION_LOST (never the zero value), so a loss shows in proto3 JSON
/// as a gain does; `gained` agrees with it.
#[tokio::test]
async fn permission_changes_say_gained_or_lost() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    let mut feed = watch(&server, ACME, revision(&server).await, "alice").await;
    manage(
        &server,
        ACME,
        vec![assign("viewer", subject_principal("alice"), None)],
    )
    .await;
    manage(
        &server,
        ACME,
        vec![unassign("viewer", subject_principal("alice"), None)],
    )
    .await;
    for (expected, gained) in [(pb::Direction::Gained, true), (pb::Direction::Lost, false)] {
        let message = next_whole_revision(&mut feed).await;
        assert!(!message.permission_changes.is_empty(), "{message:?}");
        for change in &message.permission_changes {
            assert_eq!(change.direction(), expected, "{change:?}");
            assert_eq!(change.gained, gained, "{change:?}");
        }
    }
    server.stop().await;
}
