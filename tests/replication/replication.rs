//! Read replicas (`authzd serve --follow`), as real processes on loopback:
//! they answer exactly like their primary at the same revision, through
//! random writes of every kind (some forwarded by a replica), `kill -9` of
//! either side, a changelog pruned past them, a tenant filter; writes are
//! read back where they were made; health follows the lag.

use authzd_testkit as common;
use authzd_testkit::feed as feed_support;

use std::ffi::OsString;
use std::path::Path;

use authzd_server::api::pb;
use authzd_testkit::Rng;
use common::*;
use feed_support::{PERMISSIONS, SCHEMA_A, SCOPES, SUBJECTS, Writer};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const OTHER: &str = "other";

/// Writes the test schema into `dir` and returns its path.
fn schema_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("schema.toml");
    std::fs::write(&path, SCHEMA_A).unwrap();
    path
}

/// Starts a primary over `data` with the test schema, on `port` (0: any).
async fn primary(data: &Path, schema: &Path, port: u16, extra: &[&str]) -> Binary {
    let mut args: Vec<OsString> = vec![
        "--schema".into(),
        schema.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    spawn_binary_with(data, &args).await
}

/// Starts a replica over `data` following the primary on `port`.
async fn replica(data: &Path, port: u16, extra: &[&str]) -> Binary {
    let mut args: Vec<OsString> = vec!["--follow".into(), format!("127.0.0.1:{port}").into()];
    args.extend(extra.iter().map(OsString::from));
    spawn_binary_with(data, &args).await
}

/// One random read, as asked of every server.
#[derive(Debug, Clone)]
enum Query {
    Check {
        subject: String,
        permission: String,
        scope: String,
    },
    Effective {
        subject: String,
    },
    Holders {
        permission: String,
        scope: String,
    },
}

fn queries(rng: &mut Rng, n: usize) -> Vec<Query> {
    (0..n)
        .map(|_| match rng.below(4) {
            0 | 1 => Query::Check {
                subject: rng.pick(&SUBJECTS).into(),
                permission: rng.pick(&PERMISSIONS).into(),
                scope: rng.pick(&SCOPES).into(),
            },
            2 => Query::Effective {
                subject: rng.pick(&SUBJECTS).into(),
            },
            _ => Query::Holders {
                permission: rng.pick(&PERMISSIONS).into(),
                scope: rng.pick(&SCOPES).into(),
            },
        })
        .collect()
}

/// The scope as the API names it: "root" is the tenant root.
fn scope_of(s: &str) -> String {
    if s == "root" { String::new() } else { s.into() }
}

/// What `ch` answers to `query` of `tenant` at `revision`, rendered whole
/// (explanations, sources, the revision) or as its error code and message.
async fn answer(ch: &Channel, tenant: &str, revision: u64, query: &Query) -> String {
    let mut access = AccessServiceClient::new(ch.clone());
    let rendered = match query {
        Query::Check {
            subject,
            permission,
            scope,
        } => access
            .check_access(pb::CheckAccessRequest {
                tenant: tenant.into(),
                subject: subject.clone(),
                permission: permission.clone(),
                scope: scope_of(scope),
                at_least_revision: revision,
                explain: true,
                ..Default::default()
            })
            .await
            .map(|r| format!("{:?}", r.into_inner())),
        Query::Effective { subject } => access
            .list_effective_permissions(pb::ListEffectivePermissionsRequest {
                tenant: tenant.into(),
                subject: subject.clone(),
                at_least_revision: revision,
                ..Default::default()
            })
            .await
            .map(|r| format!("{:?}", r.into_inner())),
        Query::Holders { permission, scope } => access
            .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
                tenant: tenant.into(),
                permission: permission.clone(),
                scope: scope_of(scope),
                at_least_revision: revision,
                ..Default::default()
            })
            .await
            .map(|r| format!("{:?}", r.into_inner())),
    };
    rendered.unwrap_or_else(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// Asks the primary and every replica the same random queries at the
/// primary's latest revision (no write in flight) and asserts identical
/// answers; returns that revision.
async fn assert_in_step(rng: &mut Rng, primary: &Channel, replicas: &[&Channel]) -> u64 {
    let revision = latest_over(primary).await;
    for query in queries(rng, 40) {
        let expected = answer(primary, ACME, revision, &query).await;
        assert!(
            expected.contains(&format!("revision: {revision}")) || expected.contains("NotFound"),
            "the primary answered at another revision: {expected}"
        );
        for (i, replica) in replicas.iter().enumerate() {
            let got = answer(replica, ACME, revision, &query).await;
            assert_eq!(got, expected, "replica {i} differs on {query:?}");
        }
    }
    revision
}

/// A primary and two replicas, random writes of every kind (schema
/// changes and tenant settings included) made alternately on the primary
/// and through a replica, which forwards them: at every checkpoint both
/// replicas answer checks (with explanations), effective permissions and
/// holders exactly like the primary at the same revision.
#[tokio::test]
async fn replicas_answer_like_the_primary_at_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let p = primary(&dir.path().join("p"), &schema, 0, &[]).await;
    let r1 = replica(&dir.path().join("r1"), p.port, &[]).await;
    let r2 = replica(&dir.path().join("r2"), p.port, &[]).await;
    let (pc, c1, c2) = (p.channel().await, r1.channel().await, r2.channel().await);
    let on_primary = Writer {
        channel: pc.clone(),
        tenant: ACME.into(),
    };
    let through_replica = Writer {
        channel: c1.clone(),
        tenant: ACME.into(),
    };
    on_primary.seed().await;
    let mut rng = Rng::new(9);
    let mut forwarded = 0;
    for _ in 0..6 {
        for i in 0..16 {
            let writer = if i % 2 == 0 {
                &on_primary
            } else {
                &through_replica
            };
            if writer.write(&mut rng).await.is_some() && i % 2 == 1 {
                forwarded += 1;
            }
        }
        assert_in_step(&mut rng, &pc, &[&c1, &c2]).await;
    }
    assert!(forwarded > 0, "no write went through the replica");
}

/// A write made on the primary is read on a replica by passing its
/// revision as `at_least_revision`; a write forwarded by a replica is
/// visible there, without `at_least_revision`, as soon as its reply
/// arrives; and one forwarded to the primary is read on the primary.
#[tokio::test]
async fn writes_are_read_back_on_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let p = primary(&dir.path().join("p"), &schema, 0, &[]).await;
    let r = replica(&dir.path().join("r"), p.port, &[]).await;
    let (pc, rc) = (p.channel().await, r.channel().await);
    for (i, (write_to, read_on, wait)) in [(&pc, &rc, true), (&rc, &rc, false), (&rc, &pc, false)]
        .into_iter()
        .enumerate()
    {
        let id = format!("u{i}");
        let written = create_subject_over(write_to, &id).await;
        let read = DirectoryServiceClient::new(read_on.clone())
            .get_subject(pb::GetRequest {
                tenant: ACME.into(),
                id: id.clone(),
                at_least_revision: if wait { written } else { 0 },
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            read.revision >= written,
            "{id}: read at {} < {written}",
            read.revision
        );
    }
}

/// `kill -9` of the primary while a replica follows it and writes keep
/// coming, and a restart on the same port and folder: the replica
/// reconnects and goes on; its own
/// Watch from the first revision replays exactly what the primary's does
/// (no revision missing, none twice, identical content), which a snapshot
/// taken meanwhile would have made impossible.
// Two workers: the flood writes while the test blocks on the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_survives_kill_9_of_its_primary() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let pdata = dir.path().join("p");
    let mut p = primary(&pdata, &schema, 0, &[]).await;
    let port = p.port;
    let r = replica(&dir.path().join("r"), port, &[]).await;
    let rc = r.channel().await;
    let bootstrapped = installed(&r);
    let writer = Writer {
        channel: p.channel().await,
        tenant: ACME.into(),
    };
    writer.seed().await;
    let mut rng = Rng::new(3);
    for _ in 0..30 {
        writer.write(&mut rng).await;
    }
    // Writes keep coming while the primary dies: some commit, some fail.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let flood = tokio::spawn(flood(p.channel().await, stopped));
    // flood-1 was sent, so flood-0 was acknowledged: writes are landing.
    p.wait_for_line("request_id=flood-1");
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    stop.send_replace(true);
    assert!(flood.await.unwrap() > 0, "no write landed before the kill");
    let p = primary(&pdata, &schema, port, &[]).await;
    let pc = p.channel().await;
    let writer = Writer {
        channel: pc.clone(),
        tenant: ACME.into(),
    };
    for _ in 0..30 {
        writer.write(&mut rng).await;
    }
    let revision = assert_in_step(&mut rng, &pc, &[&rc]).await;
    assert_eq!(
        watched(&pc, bootstrapped, revision).await,
        watched(&rc, bootstrapped, revision).await,
        "the replica's feed differs from the primary's"
    );
}

/// Creates subjects over `channel` one after another (request ids
/// `flood-N`), ignoring failures, until `stop` (at most 10 000); returns
/// how many were acknowledged.
async fn flood(channel: Channel, mut stop: tokio::sync::watch::Receiver<bool>) -> usize {
    let mut client = DirectoryServiceClient::new(channel);
    let mut acknowledged = 0;
    for i in 0..10_000 {
        if *stop.borrow_and_update() {
            break;
        }
        let mut request = tonic::Request::new(new_subject(ACME, &format!("flood{i}")));
        let id = format!("flood-{i}").parse().unwrap();
        request.metadata_mut().insert("x-request-id", id);
        let write = client.create_subject(request);
        tokio::select! {
            written = write => acknowledged += usize::from(written.is_ok()),
            _ = stop.changed() => break,
        }
    }
    acknowledged
}

/// The number after `key=` in a log line.
fn logged(line: &str, key: &str) -> u64 {
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

/// The revision of the snapshot a replica logged it installed.
fn installed(replica: &Binary) -> u64 {
    logged(
        &replica.wait_for_line("installed the primary's snapshot"),
        "revision",
    )
}

/// Every tenant revision after `after` up to `through`, as `ch`'s Watch
/// delivers them (whole, rendered).
async fn watched(ch: &Channel, after: u64, through: u64) -> Vec<String> {
    let mut stream = watch_over(ch, ACME, after).await;
    let mut out = Vec::new();
    loop {
        let m = next_whole_revision(&mut stream).await;
        let revision = m.revision;
        out.push(format!("{m:?}"));
        if revision >= through {
            return out;
        }
    }
}

/// `kill -9` of a replica, writes meanwhile, a restart over its folder: it
/// resumes from its local revision (its log says so, and it never says it
/// takes a snapshot) and catches up exactly.
#[tokio::test]
async fn a_killed_replica_resumes_from_its_local_revision() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let p = primary(&dir.path().join("p"), &schema, 0, &[]).await;
    let pc = p.channel().await;
    let rdata = dir.path().join("r");
    let mut r = replica(&rdata, p.port, &[]).await;
    installed(&r);
    let writer = Writer {
        channel: pc.clone(),
        tenant: ACME.into(),
    };
    let seeded = writer.seed().await;
    // Applied before the kill: read through the replica at that revision.
    check_at(&r.channel().await, seeded).await;
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    let mut rng = Rng::new(5);
    for _ in 0..20 {
        writer.write(&mut rng).await;
    }
    let r = replica(&rdata, p.port, &[]).await;
    let line = r.wait_for_any(&[
        "bootstrapping",
        "following the primary from the local revision",
    ]);
    assert!(
        line.contains("following"),
        "the restart took a snapshot: {line}"
    );
    let after = logged(&line, "after");
    assert!(after >= seeded, "resumed after {after}, before {seeded}");
    assert_in_step(&mut rng, &pc, &[&r.channel().await]).await;
}

/// A check on a replica at `revision`, which must succeed.
async fn check_at(ch: &Channel, revision: u64) {
    AccessServiceClient::new(ch.clone())
        .check_access(pb::CheckAccessRequest {
            tenant: ACME.into(),
            subject: SUBJECTS[0].into(),
            permission: PERMISSIONS[0].into(),
            at_least_revision: revision,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// A replica whose revision fell out of the primary's retained changelog
/// (the primary keeps 5 revisions; 30 are written while the replica is
/// down) takes a new snapshot by itself and is exact again.
#[tokio::test]
async fn a_replica_behind_the_retained_changelog_resnapshots() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let p = primary(
        &dir.path().join("p"),
        &schema,
        0,
        &["--retain-revisions", "5"],
    )
    .await;
    let pc = p.channel().await;
    let writer = Writer {
        channel: pc.clone(),
        tenant: ACME.into(),
    };
    let seeded = writer.seed().await;
    let rdata = dir.path().join("r");
    let mut r = replica(&rdata, p.port, &[]).await;
    check_at(&r.channel().await, seeded).await;
    r.child.kill().unwrap();
    r.child.wait().unwrap();
    let mut rng = Rng::new(8);
    for _ in 0..30 {
        writer.write(&mut rng).await;
    }
    let r = replica(&rdata, p.port, &[]).await;
    r.wait_for_line("taking a new snapshot");
    r.wait_for_line("installed the primary's snapshot");
    assert_in_step(&mut rng, &pc, &[&r.channel().await]).await;
}

/// A replica's changelog starts at the snapshot it installed: a Watch
/// resuming from before it is refused with FAILED_PRECONDITION (resync
/// from a snapshot), never a stream silently missing what the snapshot
/// folded in; one resuming at the snapshot gets the writes after it.
#[tokio::test]
async fn a_watch_from_before_the_replicas_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let p = primary(&dir.path().join("p"), &schema, 0, &[]).await;
    let pc = p.channel().await;
    let writer = Writer {
        channel: pc.clone(),
        tenant: ACME.into(),
    };
    let seeded = writer.seed().await;
    let r = replica(&dir.path().join("r"), p.port, &[]).await;
    let snapshot = installed(&r);
    assert!(snapshot >= seeded && seeded > 1, "{snapshot} {seeded}");
    let rc = r.channel().await;
    let mut refused = watch_over(&rc, ACME, 1).await;
    let status = refused.message().await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("oldest retained"), "{status:?}");
    let late = create_subject_over(&pc, "late").await;
    let seen = watched(&rc, snapshot, late).await;
    assert!(seen.last().is_some_and(|m| m.contains("late")), "{seen:?}");
}

/// A replica following one tenant holds only it: the other tenant is
/// NOT_FOUND there (while the primary has it), the followed one answers
/// like the primary, and its Watch serves a local subscriber resumably.
#[tokio::test]
async fn a_tenant_filtered_replica_holds_only_its_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let p = primary(&dir.path().join("p"), &schema, 0, &[]).await;
    let pc = p.channel().await;
    let r = replica(&dir.path().join("r"), p.port, &["--follow-tenant", ACME]).await;
    let rc = r.channel().await;
    let bootstrapped = installed(&r);
    let acme = Writer {
        channel: pc.clone(),
        tenant: ACME.into(),
    };
    let other = Writer {
        channel: pc.clone(),
        tenant: OTHER.into(),
    };
    acme.seed().await;
    other.seed().await;
    let mut rng = Rng::new(11);
    for _ in 0..20 {
        acme.write(&mut rng).await;
        other.write(&mut rng).await;
    }
    // The latest revision is the followed tenant's, so its feed reaches it.
    create_subject_over(&pc, "last").await;
    let revision = assert_in_step(&mut rng, &pc, &[&rc]).await;
    let get = |ch: Channel| async move {
        DirectoryServiceClient::new(ch)
            .get_tenant(pb::GetTenantRequest {
                tenant: OTHER.into(),
            })
            .await
    };
    get(pc.clone()).await.unwrap();
    assert_eq!(get(rc.clone()).await.unwrap_err().code(), Code::NotFound);
    // Resumable: half the feed, then the rest after the last one seen.
    let all = watched(&rc, bootstrapped, revision).await;
    assert_eq!(all, watched(&pc, bootstrapped, revision).await);
    let half = all.len() / 2;
    let resume_after: u64 = all[half - 1]
        .split("revision: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|r| r.parse().ok())
        .unwrap();
    let mut stream = watch_over(&rc, ACME, resume_after).await;
    for expected in &all[half..] {
        assert_eq!(
            &format!("{:?}", next_whole_revision(&mut stream).await),
            expected
        );
    }
}

/// The next status a Health/Watch stream reports that differs from `not`.
async fn next_status(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    want: ServingStatus,
) {
    guard("the health status change", async {
        loop {
            let m = stream.message().await.unwrap().unwrap();
            if m.status == want as i32 {
                return;
            }
        }
    })
    .await;
}

/// With `--max-lag-secs 1`, a replica's health turns NOT_SERVING once its
/// primary has been gone for more than a second, and SERVING again once
/// the restarted primary has been caught up with, as seen through
/// Health/Watch. Not yet being in step at start is logged at INFO; being
/// out of step once the primary is lost, at WARN.
#[tokio::test]
async fn health_follows_the_lag() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let pdata = dir.path().join("p");
    let mut p = primary(&pdata, &schema, 0, &[]).await;
    let port = p.port;
    let r = replica(&dir.path().join("r"), port, &["--max-lag-secs", "1"]).await;
    let mut health = HealthClient::new(r.channel().await)
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    next_status(&mut health, ServingStatus::Serving).await;
    let first = r.wait_for_any(&["NOT_SERVING", "with the primary: SERVING"]);
    if first.contains("NOT_SERVING") {
        assert!(
            first.contains("INFO") && first.contains("not yet in step"),
            "{first}"
        );
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    next_status(&mut health, ServingStatus::NotServing).await;
    let lost = r.wait_for_line("NOT_SERVING");
    assert!(lost.contains("WARN"), "{lost}");
    let p = primary(&pdata, &schema, port, &[]).await;
    create_subject_over(&p.channel().await, "late").await;
    next_status(&mut health, ServingStatus::Serving).await;
}

/// Creates subject `id` in acme through `ch`; returns the revision.
async fn create_subject_over(ch: &Channel, id: &str) -> u64 {
    DirectoryServiceClient::new(ch.clone())
        .create_subject(new_subject(ACME, id))
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// A primary with tokens and a replica that follows it with a read token
/// bound to acme (and, on loopback, trusts its own callers): the replica
/// holds acme alone; a write sent through it carries its caller's token
/// and request id to the primary, which takes it from an administrator and
/// refuses it from a reader.
#[tokio::test]
async fn forwarded_writes_carry_their_callers_token() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path());
    let tokens = dir.path().join("tokens.toml");
    let entries = [
        token_entry("admin", "admin", "", "s-admin"),
        token_entry("reader", "read", "", "s-read"),
        token_entry("acme-follower", "read", ACME, "s-follow"),
    ]
    .concat();
    std::fs::write(&tokens, entries).unwrap();
    let follow_token = dir.path().join("follow.token");
    std::fs::write(&follow_token, "s-follow\n").unwrap();
    let tokens_arg = tokens.to_str().unwrap();
    let p = primary(&dir.path().join("p"), &schema, 0, &["--tokens", tokens_arg]).await;
    let follow_arg = follow_token.to_str().unwrap();
    let r = replica(
        &dir.path().join("r"),
        p.port,
        &["--follow-token-file", follow_arg],
    )
    .await;
    installed(&r);
    let as_token = |port: u16, secret: &'static str| async move {
        tonic::service::interceptor::InterceptedService::new(
            channel_to(port).await,
            Bearer::from_secret(secret, "the test").unwrap(),
        )
    };
    let write = |channel, id: &'static str| async move {
        let mut request = tonic::Request::new(new_subject(OTHER, id));
        request
            .metadata_mut()
            .insert("x-request-id", format!("fwd-{id}").parse().unwrap());
        DirectoryServiceClient::new(channel)
            .create_subject(request)
            .await
    };
    let refused = write(as_token(r.port, "s-read").await, "by-reader").await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    let written = write(as_token(r.port, "s-admin").await, "by-writer").await;
    let revision = written.unwrap().into_inner().revision;
    p.wait_for_line("fwd-by-writer");
    // Landed on the primary, but the replica follows acme only.
    let get = |channel| async move {
        DirectoryServiceClient::new(channel)
            .get_subject(pb::GetRequest {
                tenant: OTHER.into(),
                id: "by-writer".into(),
                at_least_revision: revision,
            })
            .await
    };
    get(as_token(p.port, "s-read").await).await.unwrap();
    let missing = get(as_token(r.port, "s-read").await).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}
