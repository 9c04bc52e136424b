//! The write path as a client sees it: a write whose client gives up (a
//! deadline, a disconnect) is applied to store, cache and feed alike or to
//! none of them; concurrent writers share commits yet each keeps its own
//! revision, refusals change nothing, and every acknowledged write survives
//! `kill -9`.

use authzd_testkit as common;
use authzd_testkit::feed as feed_support;

use std::collections::BTreeSet;
use std::time::Duration;

use authzd_testkit::Rng;
use common::*;
use feed_support::{PERMISSIONS, SCOPES, SUBJECTS, Writer};
use tonic::transport::{Channel, Endpoint};

/// A channel whose every call has `timeout` as its deadline.
async fn impatient(port: u16, timeout: Duration) -> Channel {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .timeout(timeout)
        .connect()
        .await
        .unwrap()
}

/// Every revision after `after` up to `last`, each exactly once and in order
/// (a revision in several pieces joined into one message).
async fn expect_revisions(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    after: u64,
    last: u64,
) -> Vec<pb::WatchResponse> {
    let mut seen = Vec::new();
    while seen
        .last()
        .map_or(after, |m: &pb::WatchResponse| m.revision)
        < last
    {
        let m = next_whole_revision(stream).await;
        let expected = seen
            .last()
            .map_or(after, |m: &pb::WatchResponse| m.revision)
            + 1;
        assert_eq!(
            m.revision, expected,
            "the feed skipped or repeated a revision"
        );
        seen.push(m);
    }
    seen
}

/// Every answer for the feed fixtures' subjects, permissions and scopes.
async fn answers(server: &TestServer, revision: u64) -> Vec<bool> {
    let mut out = Vec::new();
    let mut access = server.access().await;
    for subject in SUBJECTS {
        for permission in PERMISSIONS {
            for scope in SCOPES {
                let r = access
                    .check_access(pb::CheckAccessRequest {
                        tenant: ACME.into(),
                        subject: subject.into(),
                        permission: permission.into(),
                        scope: if scope == "root" { "" } else { scope }.into(),
                        at_least_revision: revision,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                out.push(r.allowed);
            }
        }
    }
    out
}

/// The scenario: a revocation whose client deadline (2 ms) passes
/// while the server recomputes 3,000 members. Whether or not the client saw
/// it succeed, the cache, the feed and the store agree afterwards: the
/// members lost `document:edit` in the cache, the feed delivered the
/// revocation's revision with their losses, and a restart answers the same.
#[tokio::test]
async fn a_revocation_whose_client_gave_up_is_enforced_everywhere() {
    let server = TestServer::start().await;
    seed_group(&server, ACME, "g", 3000, "m").await;
    let assigned = manage(
        &server,
        ACME,
        vec![assign("editor", group_principal("g"), scope_target("root"))],
    )
    .await;
    assert!(check(&server, ACME, "m00007", "document:edit", "").await);
    let mut feed = watch(&server, ACME, assigned, "").await;

    let mut m =
        MembershipServiceClient::new(impatient(server.addr.port(), Duration::from_millis(2)).await);
    let (outcome, revoked, last) =
        revoke_until_accepted(&server, &mut m, &mut feed, assigned).await;
    let losers: BTreeSet<&str> = revoked
        .permission_changes
        .iter()
        .filter(|c| c.permission == "document:edit" && !c.gained)
        .map(|c| c.subject.as_str())
        .collect();
    assert_eq!(losers.len(), 3000, "every member's loss is in the feed");
    if let Ok(reply) = outcome {
        assert_eq!(reply.into_inner().revision, revoked.revision);
    }
    assert!(!check(&server, ACME, "m00007", "document:edit", "").await);
    assert_eq!(
        revision(&server).await,
        last,
        "the cache is at the store's revision"
    );

    let dir = server.stop().await;
    let data = dir.as_ref().unwrap().path().to_path_buf();
    let restarted = TestServer::start_at(&data, None).await;
    assert_eq!(revision(&restarted).await, last);
    assert!(!check(&restarted, ACME, "m00007", "document:edit", "").await);
    restarted.stop().await;
}

/// Sends the group's revocation through a client that gives up after 2 ms
/// until the server has accepted it once. On a busy machine the deadline
/// can pass before the request reaches the handler, and then nothing was
/// decided: the feed up to a later write shows no revocation and the write
/// is sent again. A server that drops a write it accepted would show no
/// revocation on every attempt, so the test still fails after the last.
/// Returns the client's outcome, the revocation's feed message and the
/// later write's revision.
async fn revoke_until_accepted(
    server: &TestServer,
    client: &mut MembershipServiceClient<tonic::transport::Channel>,
    feed: &mut tonic::Streaming<pb::WatchResponse>,
    mut after: u64,
) -> (
    Result<tonic::Response<pb::ManageMembershipResponse>, tonic::Status>,
    pb::WatchResponse,
    u64,
) {
    const ATTEMPTS: usize = 10;
    for attempt in 0..ATTEMPTS {
        let outcome = client
            .manage_membership(pb::ManageMembershipRequest {
                tenant: ACME.into(),
                operations: vec![unassign(
                    "editor",
                    group_principal("g"),
                    scope_target("root"),
                )],
                options: None,
                dry_run: false,
            })
            .await;
        if let Err(status) = &outcome {
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ),
                "{status:?}"
            );
        }
        // A later write is sequenced after the revocation, so once it is
        // acknowledged the revocation has been decided one way or the other.
        let last = create_subject(server, ACME, &format!("after{attempt}")).await;
        let delivered = expect_revisions(feed, after, last).await;
        let revoked = delivered.into_iter().find(|m| {
            m.permission_changes
                .iter()
                .any(|c| c.permission == "document:edit" && !c.gained)
        });
        match revoked {
            Some(revoked) => return (outcome, revoked, last),
            None => assert!(
                outcome.is_err(),
                "an acknowledged revocation is missing from the feed"
            ),
        }
        after = last;
    }
    panic!("no revocation reached the feed in {ATTEMPTS} attempts");
}

/// Random writes of every kind, many of them through channels whose
/// deadlines (0.5 to 4 ms) expire during planning, commit or publishing.
/// Afterwards the live subscriber has received every revision exactly once,
/// the cache's revision is the store's, and a restarted server answers
/// every check exactly like the running one did.
#[tokio::test]
async fn random_writes_with_random_cancellations_leave_store_cache_and_feed_agreeing() {
    for seed in 1..=3u64 {
        let server = TestServer::start().await;
        let patient = Writer {
            channel: server.channel().await,
            tenant: ACME.into(),
        };
        let seeded = patient.seed().await;
        let mut feed = watch(&server, ACME, seeded, "").await;
        let port = server.addr.port();
        let mut impatient_writers = Vec::new();
        for micros in [500, 1000, 2000, 4000] {
            impatient_writers.push(Writer {
                channel: impatient(port, Duration::from_micros(micros)).await,
                tenant: ACME.into(),
            });
        }
        let mut rng = Rng::new(seed);
        for _ in 0..60 {
            let writer = if rng.one_in(2) {
                &impatient_writers[rng.below(impatient_writers.len())]
            } else {
                &patient
            };
            writer.write(&mut rng).await;
        }
        let last = create_subject(&server, ACME, "closing-write").await;
        expect_revisions(&mut feed, seeded, last).await;
        assert_eq!(revision(&server).await, last);
        let before = answers(&server, last).await;

        let dir = server.stop().await;
        let data = dir.as_ref().unwrap().path().to_path_buf();
        let restarted = TestServer::start_at(&data, None).await;
        assert_eq!(revision(&restarted).await, last, "seed {seed}");
        assert_eq!(answers(&restarted, last).await, before, "seed {seed}");
        restarted.stop().await;
    }
}

/// What one concurrent writer did, to be checked after the crash.
enum Outcome {
    /// Acknowledged at this revision: subject `id` must exist.
    Acknowledged(String, u64),
    /// Refused by the planner: its valid first operation must not stick.
    Refused,
    /// Gave up before the answer: either outcome is allowed.
    Unknown,
}

/// One writer's share: create subjects, some batches refused (their valid
/// first operation must not stick), some through a channel that gives up.
async fn concurrent_writer(channel: Channel, impatient: Channel, writer: usize) -> Vec<Outcome> {
    let mut d = DirectoryServiceClient::new(channel.clone());
    let mut m = MembershipServiceClient::new(channel);
    let mut hasty = DirectoryServiceClient::new(impatient);
    let mut out = Vec::new();
    for k in 0..6 {
        let id = format!("w{writer}-{k}");
        let request = pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: id.clone(),
                ..Default::default()
            }),
            options: None,
        };
        match k {
            2 => {
                let refused = m
                    .manage_membership(pb::ManageMembershipRequest {
                        tenant: ACME.into(),
                        operations: vec![
                            add_member("g", subject_principal("base")),
                            add_member("g", subject_principal("nobody")),
                        ],
                        options: None,
                        dry_run: false,
                    })
                    .await
                    .unwrap_err();
                assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
                out.push(Outcome::Refused);
            }
            4 => {
                // Whether or not the answer makes it in time, both
                // outcomes are allowed; only its neighbours are checked.
                let _ = hasty.create_subject(request).await;
                out.push(Outcome::Unknown);
            }
            _ => {
                let r = d.create_subject(request).await.unwrap().into_inner();
                out.push(Outcome::Acknowledged(id, r.revision));
            }
        }
    }
    out
}

/// 64 writers at once on the real binary: every acknowledged write has a
/// revision of its own, the changelog holds every revision once, refused
/// batches left nothing behind, and after `kill -9` a new process has every
/// acknowledged write.
#[tokio::test]
async fn concurrent_writers_share_commits_and_every_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let binary = spawn_binary(dir.path(), None).await;
    let channel = binary.channel().await;
    let mut d = DirectoryServiceClient::new(channel.clone());
    d.create_subject(pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(pb::Subject {
            id: "base".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
    d.create_group(pb::CreateGroupRequest {
        tenant: ACME.into(),
        group: Some(pb::Group {
            id: "g".into(),
            title: "g".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
    let hasty = impatient(binary.port, Duration::from_micros(800)).await;
    let writers: Vec<_> = (0..64)
        .map(|w| tokio::spawn(concurrent_writer(channel.clone(), hasty.clone(), w)))
        .collect();
    let mut outcomes = Vec::new();
    for w in writers {
        outcomes.extend(w.await.unwrap());
    }
    let revisions: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Acknowledged(_, r) => Some(*r),
            _ => None,
        })
        .collect();
    let distinct: BTreeSet<u64> = revisions.iter().copied().collect();
    assert_eq!(distinct.len(), revisions.len(), "no revision is shared");

    drop(binary); // SIGKILL, no graceful shutdown
    let server = TestServer::start_at(dir.path(), None).await;
    let latest = revision(&server).await;
    let mut feed = watch(&server, ACME, 0, "").await;
    let all = expect_revisions(&mut feed, 0, latest).await;
    assert_eq!(
        all.len() as u64,
        latest,
        "the changelog holds every revision once"
    );
    let mut directory = server.directory().await;
    for outcome in &outcomes {
        match outcome {
            Outcome::Acknowledged(id, _) => {
                directory
                    .get_subject(pb::GetRequest {
                        tenant: ACME.into(),
                        id: id.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged {id} is gone: {e:?}"));
            }
            Outcome::Refused | Outcome::Unknown => {}
        }
    }
    assert!(
        members(&server, ACME, "g").await.is_empty(),
        "a refused batch left a member behind"
    );
    server.stop().await;
}
