//! Three `authzd serve --store postgres://…` processes on one database, as
//! real processes on loopback: writes of every kind sent to all three at
//! once, every node's Watch from revision 0 the same feed, holding every
//! acknowledged write once; a write answered by one node read on another
//! with `at_least_revision`; one idempotency key retried on the other
//! nodes yields one revision; writers on every node hammering one tenant
//! all land, once each.
//!
//! Needs a PostgreSQL server (`AUTHZD_TEST_POSTGRES_URL`, a fresh database
//! per test); without one the test skips with a notice, and fails under
//! `CI=true`.

use authzd_testkit as common;
use authzd_testkit::feed as feed_support;

use std::ffi::OsString;

use authzd_server::api::pb;
use authzd_store_postgres::test_database;
use authzd_testkit::Rng;
use common::*;
use feed_support::{SCHEMA_A, Writer};
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Writes each node takes from its own writer.
const WRITES_PER_NODE: usize = 30;

/// Starts a node on the database at `url`, over a data folder it does not
/// use (redb stays closed), with the test schema if `schema` is given.
pub(super) async fn node(
    dir: &std::path::Path,
    name: &str,
    url: &str,
    schema: Option<&std::path::Path>,
) -> Binary {
    let mut args: Vec<OsString> = vec![
        "--store".into(),
        url.into(),
        "--store-poll-millis".into(),
        "200".into(),
    ];
    if let Some(schema) = schema {
        args.extend(["--schema".into(), schema.into()]);
    }
    spawn_binary_with(&dir.join(name), &args).await
}

/// Every revision of `tenant` up to `through` that `ch`'s Watch from 0
/// delivers, whole and rendered, with its number.
pub(super) async fn feed(ch: &Channel, through: u64) -> Vec<(u64, String)> {
    let mut stream = watch_over(ch, ACME, 0).await;
    let mut out = Vec::new();
    loop {
        let m = next_whole_revision(&mut stream).await;
        let revision = m.revision;
        out.push((revision, format!("{m:?}")));
        if revision >= through {
            return out;
        }
    }
}

/// Creates subject `id` through `ch` under `key`; the revision answered.
async fn create_keyed(ch: &Channel, id: &str, key: &str) -> u64 {
    DirectoryServiceClient::new(ch.clone())
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: id.into(),
                ..Default::default()
            }),
            options: Some(pb::WriteOptions {
                idempotency_key: key.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_database_write_and_follow_each_other() {
    let Some(server) = test_database::server_url("three authzd nodes on one PostgreSQL") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    std::fs::write(&schema, SCHEMA_A).unwrap();
    // One after the other: the first installs the schema, the others find it.
    let mut nodes = vec![node(dir.path(), "a", &url, Some(&schema)).await];
    for name in ["b", "c"] {
        nodes.push(node(dir.path(), name, &url, None).await);
    }
    let mut channels = Vec::new();
    for n in &nodes {
        channels.push(n.channel().await);
    }
    Writer {
        channel: channels[0].clone(),
        tenant: ACME.into(),
    }
    .seed()
    .await;

    // Every node writes at once; each answer is read on the next node at
    // the answered revision.
    let mut writers = tokio::task::JoinSet::new();
    for (i, channel) in channels.iter().enumerate() {
        let writer = Writer {
            channel: channel.clone(),
            tenant: ACME.into(),
        };
        let next = channels[(i + 1) % channels.len()].clone();
        writers.spawn(async move {
            let mut rng = Rng::new(17 + i as u64);
            let mut acknowledged = Vec::new();
            for _ in 0..WRITES_PER_NODE {
                let Some(revision) = writer.write(&mut rng).await else {
                    continue;
                };
                let read = AccessServiceClient::new(next.clone())
                    .check_access(pb::CheckAccessRequest {
                        tenant: ACME.into(),
                        subject: "s0".into(),
                        permission: "document:read".into(),
                        at_least_revision: revision,
                        ..Default::default()
                    })
                    .await;
                assert!(
                    read.is_ok(),
                    "revision {revision} of node {i} not readable on the next: {read:?}"
                );
                acknowledged.push(revision);
            }
            acknowledged
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(done) = writers.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    // A write that changed nothing is answered with the revision it was
    // planned on, so answers may repeat; each revision is in the feed once.
    assert!(!acknowledged.is_empty(), "no write committed");

    // One key, retried on the other nodes: one revision.
    let first = create_keyed(&channels[0], "once", "the-one-key").await;
    for ch in &channels[1..] {
        assert_eq!(create_keyed(ch, "once", "the-one-key").await, first);
    }

    let feeds = futures_util::future::join_all(channels.iter().map(|ch| feed(ch, first))).await;
    let revisions: Vec<u64> = feeds[0].iter().map(|(r, _)| *r).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "the feed is out of order: {revisions:?}"
    );
    for r in &acknowledged {
        assert!(
            revisions.contains(r),
            "acknowledged revision {r} is missing from the feed"
        );
    }
    assert_eq!(revisions.last(), Some(&first));
    for (i, other) in feeds.iter().enumerate().skip(1) {
        assert_eq!(other, &feeds[0], "node {i}'s feed differs from node 0's");
    }
    for mut n in nodes {
        assert!(n.terminate().success());
    }
}

/// Nodes hammering one tenant.
const HAMMERING_NODES: usize = 3;
/// Writers per node, each with a connection of its own.
const HAMMERING_WRITERS: usize = 8;
/// Subjects each writer creates, one write each.
const HAMMERED_WRITES: usize = 25;

/// Many writers on several nodes creating subjects in one tenant, so the
/// nodes keep losing the race for its head to each other: every write is
/// acknowledged (none gives up after losing too often), each at a revision
/// of its own, and the changelog holds exactly those revisions, gapless,
/// the same on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_several_nodes_hammering_one_tenant_all_land_once() {
    let Some(server) = test_database::server_url("several nodes writing one tenant") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    std::fs::write(&schema, SCHEMA_A).unwrap();
    let mut nodes = vec![node(dir.path(), "n0", &url, Some(&schema)).await];
    for i in 1..HAMMERING_NODES {
        nodes.push(node(dir.path(), &format!("n{i}"), &url, None).await);
    }
    let mut writers = tokio::task::JoinSet::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..HAMMERING_WRITERS {
            let channel = node.channel().await;
            writers.spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0..HAMMERED_WRITES {
                    let id = format!("n{n}-w{w}-{i}");
                    match create(&channel, &id).await {
                        Ok(revision) => acknowledged.push(revision),
                        Err(status) => panic!("creating {id} on node {n} failed: {status:?}"),
                    }
                }
                acknowledged
            });
        }
    }
    let mut acknowledged = Vec::new();
    while let Some(done) = writers.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    acknowledged.sort_unstable();
    let total = HAMMERING_NODES * HAMMERING_WRITERS * HAMMERED_WRITES;
    assert_eq!(acknowledged.len(), total);
    let first = acknowledged[0];
    let last = acknowledged[total - 1];
    let expected: Vec<u64> = (first..=last).collect();
    assert_eq!(
        acknowledged, expected,
        "the acknowledged revisions repeat or leave gaps"
    );
    let mut channels = Vec::new();
    for n in &nodes {
        channels.push(n.channel().await);
    }
    let feeds = futures_util::future::join_all(channels.iter().map(|ch| feed(ch, last))).await;
    let revisions: Vec<u64> = feeds[0]
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| *r >= first)
        .collect();
    assert_eq!(
        revisions, expected,
        "the feed is not the acknowledged writes, gapless"
    );
    for (i, other) in feeds.iter().enumerate().skip(1) {
        assert_eq!(other, &feeds[0], "node {i}'s feed differs from node 0's");
    }
    for mut n in nodes {
        assert!(n.terminate().success());
    }
}

/// A TCP proxy on loopback to `target` that can be cut: cut, it drops
/// every connection it carries and each new one as it comes (a partition
/// between a node and the database); healed, it forwards again.
async fn proxy(target: String) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (cut, cuts) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if *cuts.borrow() {
                continue;
            }
            let mut cuts = cuts.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cuts.wait_for(|c| *c) => {}
                }
            });
        }
    });
    (port, cut)
}

/// Creates subject `id` through `ch`.
pub(super) async fn create(ch: &Channel, id: &str) -> Result<u64, tonic::Status> {
    DirectoryServiceClient::new(ch.clone())
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: id.into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .map(|r| r.into_inner().revision)
}

/// Checks through `ch` at `at_least_revision`.
async fn read_at(ch: &Channel, at_least_revision: u64) -> Result<bool, tonic::Status> {
    AccessServiceClient::new(ch.clone())
        .check_access(pb::CheckAccessRequest {
            tenant: ACME.into(),
            subject: "p0".into(),
            permission: "document:read".into(),
            at_least_revision,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().allowed)
}

/// Waits on `ch`'s health Watch (of the whole server) until it reports
/// `wanted`.
async fn health_becomes(ch: &Channel, wanted: ServingStatus) {
    let mut statuses = HealthClient::new(ch.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    loop {
        let status = statuses
            .message()
            .await
            .unwrap()
            .expect("the health stream ended");
        if status.status == wanted as i32 {
            return;
        }
    }
}

/// A node cut off from the database (a proxy between them that stops
/// forwarding) refuses writes with UNAVAILABLE and keeps answering reads
/// at the revision it applied; `at_least_revision` beyond it fails with
/// UNAVAILABLE naming that revision; past `--max-lag-secs` its health is
/// NOT_SERVING. Healed, it writes again, catches up with what another
/// node wrote meanwhile and is SERVING again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_the_database_refuses_writes_and_serves_reads() {
    let Some(server) = test_database::server_url("a node cut off from PostgreSQL") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let (port, cut) = proxy(test_database::address(&url).to_owned()).await;
    let proxied = test_database::via(&url, &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let direct = node(dir.path(), "direct", &url, None).await;
    let args: Vec<OsString> = vec![
        "--store".into(),
        proxied.into(),
        "--store-poll-millis".into(),
        "200".into(),
        "--store-connect-timeout-secs".into(),
        "1".into(),
        "--max-lag-secs".into(),
        "1".into(),
    ];
    let cut_off = spawn_binary_with(&dir.path().join("cut-off"), &args).await;
    let (ch_direct, ch_cut) = (direct.channel().await, cut_off.channel().await);
    health_becomes(&ch_cut, ServingStatus::Serving).await;
    let before = create(&ch_cut, "p0").await.unwrap();

    cut.send_replace(true);
    let refused = create(&ch_cut, "p1").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert_eq!(
        read_at(&ch_cut, before).await.map_err(|e| e.code()),
        Ok(false)
    );
    let meanwhile = create(&ch_direct, "p2").await.unwrap();
    let beyond = read_at(&ch_cut, meanwhile).await.unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::Unavailable, "{beyond:?}");
    assert!(
        beyond.message().contains(&format!(
            "beyond revision {before}, the latest this node has applied"
        )),
        "{beyond:?}"
    );
    health_becomes(&ch_cut, ServingStatus::NotServing).await;
    cut_off.wait_for_line("node behind the database past the bound");

    cut.send_replace(false);
    health_becomes(&ch_cut, ServingStatus::Serving).await;
    let mut healed = None;
    for _ in 0..100 {
        match create(&ch_cut, "p3").await {
            Ok(revision) => {
                healed = Some(revision);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    let healed = healed.expect("the node never wrote again after the database came back");
    assert!(healed > meanwhile);
    read_at(&ch_cut, meanwhile).await.unwrap();
    read_at(&ch_direct, healed).await.unwrap();
}

/// How many sessions hold the housekeeping lease (the advisory lock on a
/// connection named `authzd-housekeeping`).
const LEASE_HOLDERS: &str = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
     WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() \
     AND a.application_name = 'authzd-housekeeping'";

/// Waits (bounded) until the changelog's oldest entry is at least `oldest`:
/// pruning runs in the background, on the lease holder.
async fn pruned_to(url: &str, oldest: i64) {
    for _ in 0..200 {
        let found = test_database::query_i64(
            url,
            "SELECT coalesce(min(revision), 0) FROM authzd_changelog",
        )
        .await
        .unwrap();
        if found >= oldest {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the changelog was not pruned to revision {oldest}");
}

/// Housekeeping runs on one node at a time: the first node takes the lease
/// (one advisory lock, one holder) and prunes the changelog behind the
/// other node's writes, which does not; killed (`kill -9`), it loses the
/// lease with its connection, the other node takes it over and prunes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_keeps_house_and_another_takes_over_when_it_dies() {
    let Some(server) = test_database::server_url("housekeeping lease on PostgreSQL") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = |name: &str| -> (std::path::PathBuf, Vec<OsString>) {
        (
            dir.path().join(name),
            vec![
                "--store".into(),
                url.clone().into(),
                "--store-poll-millis".into(),
                "200".into(),
                "--retain-revisions".into(),
                "2".into(),
            ],
        )
    };
    let (data, a_args) = args("a");
    let mut a = spawn_binary_with(&data, &a_args).await;
    a.wait_for_line("holding the housekeeping lease");
    let (data, b_args) = args("b");
    let b = spawn_binary_with(&data, &b_args).await;
    let ch_b = b.channel().await;
    assert_eq!(
        test_database::query_i64(&url, LEASE_HOLDERS).await.unwrap(),
        1
    );

    let mut head = 0;
    for i in 0..6 {
        head = create(&ch_b, &format!("before-{i}")).await.unwrap();
    }
    pruned_to(&url, head as i64 - 1).await;

    a.child.kill().unwrap();
    a.child.wait().unwrap();
    b.wait_for_line("holding the housekeeping lease");
    assert_eq!(
        test_database::query_i64(&url, LEASE_HOLDERS).await.unwrap(),
        1
    );
    for i in 0..6 {
        head = create(&ch_b, &format!("after-{i}")).await.unwrap();
    }
    pruned_to(&url, head as i64 - 1).await;
}
