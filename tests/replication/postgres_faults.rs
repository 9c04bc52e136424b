//! Faults with real `authzd serve --store postgres://…` processes: a node
//! killed (`kill -9`) just before and just after its `COMMIT` reached the
//! database, then the write retried with the same idempotency key on
//! another node; PostgreSQL restarted (`pg_ctl restart -m immediate`)
//! under load; a replica (`serve --follow`) of a PostgreSQL-backed node.
//! Each run ends with a history check: every acknowledged write once in
//! the feed at the revision it was answered with, writes that did not
//! overlap in time at increasing revisions, every node's feed a prefix of
//! one sequence.
//!
//! The moment of a kill is found by a proxy between the node and the
//! database that reads the protocol: it holds the node's `COMMIT` (the
//! simple query `tokio-postgres` sends to end a transaction), or lets it
//! through and holds the server's reply to it; no sleep decides when.
//! Needs a PostgreSQL server (`AUTHZD_TEST_POSTGRES_URL`); the restart
//! test starts a server of its own with `.ci/postgres`, so restarting it
//! disturbs no other test.

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use authzd_server::api::pb;
use authzd_store_postgres::test_database;
use authzd_testkit as common;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

use super::postgres_cluster::{create, feed, node};

/// The `COMMIT` query as the client sends it: `Q`, its length, the text.
const COMMIT_QUERY: &[u8] = b"Q\x00\x00\x00\x0bCOMMIT\x00";
/// The server's reply to it: `CommandComplete` with the tag `COMMIT`.
const COMMIT_DONE: &[u8] = b"C\x00\x00\x00\x0bCOMMIT\x00";

/// Where the proxy stops the first connection that commits once armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The `COMMIT` is never sent: the transaction is open when the node dies.
    BeforeCommit,
    /// The `COMMIT` is sent, and its reply held: committed, never answered.
    AfterCommit,
}

/// A TCP proxy to the database that can stop one connection around its
/// `COMMIT`.
struct CommitProxy {
    port: u16,
    armed: Arc<Mutex<Option<Stop>>>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl CommitProxy {
    async fn start(target: String) -> CommitProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(Mutex::new(None));
        let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
        let stopped_tx = Arc::new(stopped_tx);
        let shared = armed.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(carry(
                    inbound,
                    target.clone(),
                    shared.clone(),
                    stopped_tx.clone(),
                ));
            }
        });
        CommitProxy {
            port,
            armed,
            stopped,
        }
    }

    /// Stops the next connection that commits, as `stop` says.
    fn arm(&self, stop: Stop) {
        *self.armed.lock().unwrap() = Some(stop);
    }

    /// Resolves once a connection has been stopped.
    async fn stopped(&mut self) {
        self.stopped.wait_for(|s| *s).await.unwrap();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Carries one connection; a stopped direction forwards nothing more but
/// keeps reading, so the connection ends (and the database rolls back an
/// open transaction) as soon as the node's side closes.
async fn carry(
    inbound: tokio::net::TcpStream,
    target: String,
    armed: Arc<Mutex<Option<Stop>>>,
    stopped: Arc<tokio::sync::watch::Sender<bool>>,
) {
    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
        return;
    };
    let (mut from_node, mut to_node) = inbound.into_split();
    let (mut from_db, mut to_db) = outbound.into_split();
    let hold_reply = AtomicBool::new(false);
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut held = false;
        loop {
            let n = match from_node.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if held {
                continue;
            }
            let chunk = &buf[..n];
            let stop = find(chunk, COMMIT_QUERY).and_then(|at| {
                let stop = armed.lock().unwrap().take();
                stop.map(|s| (s, at))
            });
            match stop {
                Some((Stop::BeforeCommit, at)) => {
                    if to_db.write_all(&chunk[..at]).await.is_err() {
                        return;
                    }
                    held = true;
                    stopped.send_replace(true);
                }
                Some((Stop::AfterCommit, _)) => {
                    hold_reply.store(true, Ordering::SeqCst);
                    if to_db.write_all(chunk).await.is_err() {
                        return;
                    }
                }
                None => {
                    if to_db.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut held = false;
        loop {
            let n = match from_db.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if held {
                continue;
            }
            let chunk = &buf[..n];
            let done = hold_reply
                .load(Ordering::SeqCst)
                .then(|| find(chunk, COMMIT_DONE))
                .flatten();
            let forward = match done {
                Some(at) => {
                    held = true;
                    &chunk[..at]
                }
                None => chunk,
            };
            if to_node.write_all(forward).await.is_err() {
                return;
            }
            if held {
                stopped.send_replace(true);
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// One acknowledged write: the subject it created, the revision it was
/// answered with, and when it was sent (first attempt) and answered.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    revision: u64,
    sent: Instant,
    answered: Instant,
}

/// Creates subject `id` through `ch` under idempotency key `key`.
async fn create_keyed(ch: &Channel, id: &str, key: &str) -> Result<u64, tonic::Status> {
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
        .map(|r| r.into_inner().revision)
}

/// Creates `id` (keyed by its name) through `ch`, trying again (bounded)
/// while the write is refused as the database restarts; the codes of the
/// refusals seen.
async fn create_until_acknowledged(ch: &Channel, id: &str, refusals: &mut Vec<tonic::Code>) -> Ack {
    let sent = Instant::now();
    for _ in 0..300 {
        match create_keyed(ch, id, id).await {
            Ok(revision) => {
                return Ack {
                    id: id.to_owned(),
                    revision,
                    sent,
                    answered: Instant::now(),
                };
            }
            Err(e) => {
                refusals.push(e.code());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    panic!("{id} was never acknowledged");
}

/// The history check: every acknowledged write is in `feed` exactly once,
/// at the revision it was answered with; writes that did not overlap in
/// time got increasing revisions; the feed's revisions increase.
fn check_history(acks: &[Ack], feed: &[(u64, String)]) {
    let revisions: Vec<u64> = feed.iter().map(|(r, _)| *r).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "the feed is out of order: {revisions:?}"
    );
    for ack in acks {
        let quoted = format!("\"{}\"", ack.id);
        let holding: Vec<u64> = feed
            .iter()
            .filter(|(_, body)| body.contains(&quoted))
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(
            holding,
            vec![ack.revision],
            "{} was answered with revision {} but the feed holds it at {holding:?}",
            ack.id,
            ack.revision
        );
    }
    for a in acks {
        for b in acks {
            if a.answered < b.sent {
                assert!(
                    a.revision < b.revision,
                    "{} (revision {}) was answered before {} was sent, which got revision {}",
                    a.id,
                    a.revision,
                    b.id,
                    b.revision
                );
            }
        }
    }
}

/// Every node's feed is a prefix of the longest one.
fn one_sequence(feeds: &[Vec<(u64, String)>]) {
    let longest = feeds.iter().max_by_key(|f| f.len()).unwrap();
    for (i, f) in feeds.iter().enumerate() {
        assert_eq!(
            f.as_slice(),
            &longest[..f.len()],
            "node {i}'s feed is not a prefix of the longest"
        );
    }
}

/// A node killed (`kill -9`) with its write stopped at `stop`; the write
/// retried with the same key on another node gives exactly one revision,
/// and the history of every acknowledged write holds.
async fn killed_around_commit(stop: Stop) {
    let Some(server) = test_database::server_url("kill -9 around a COMMIT") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let survivor = node(dir.path(), "survivor", &url, None).await;
    let mut proxy = CommitProxy::start(test_database::address(&url).to_owned()).await;
    let proxied = test_database::via(&url, &format!("127.0.0.1:{}", proxy.port));
    let mut victim = node(dir.path(), "victim", &proxied, None).await;
    let (ch_survivor, ch_victim) = (survivor.channel().await, victim.channel().await);

    let mut acks = Vec::new();
    let mut refusals = Vec::new();
    for i in 0..5 {
        for (name, ch) in [("s", &ch_survivor), ("v", &ch_victim)] {
            acks.push(create_until_acknowledged(ch, &format!("{name}-{i}"), &mut refusals).await);
        }
    }

    let id = format!("{stop:?}").to_lowercase();
    let first_sent = Instant::now();
    proxy.arm(stop);
    let lost = tokio::spawn({
        let ch = ch_victim.clone();
        let id = id.clone();
        async move { create_keyed(&ch, &id, &id).await }
    });
    proxy.stopped().await;
    // The survivor writes on meanwhile (blocked by the open transaction's
    // lock before the COMMIT, free after it).
    let meanwhile = tokio::spawn({
        let ch = ch_survivor.clone();
        async move {
            let mut refusals = Vec::new();
            let mut acks = Vec::new();
            for i in 0..5 {
                acks.push(create_until_acknowledged(&ch, &format!("m-{i}"), &mut refusals).await);
            }
            acks
        }
    });
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    assert!(lost.await.unwrap().is_err(), "the killed node answered");
    acks.extend(meanwhile.await.unwrap());

    let landed = test_database::query_i64(
        &url,
        &format!("SELECT count(*) FROM authzd_idempotency WHERE key = '{id}'"),
    )
    .await
    .unwrap();
    assert_eq!(
        landed,
        i64::from(stop == Stop::AfterCommit),
        "whether the killed node's write landed"
    );
    let retried = create_keyed(&ch_survivor, &id, &id).await.unwrap();
    // Sent when its first attempt was: the commit it answers may be that one.
    acks.push(Ack {
        id: id.clone(),
        revision: retried,
        sent: first_sent,
        answered: Instant::now(),
    });
    let keyed = test_database::query_i64(
        &url,
        &format!("SELECT revision FROM authzd_idempotency WHERE key = '{id}'"),
    )
    .await
    .unwrap();
    assert_eq!(keyed as u64, retried, "the key's revision");
    let entries = test_database::query_i64(
        &url,
        &format!("SELECT count(*) FROM authzd_changelog WHERE body LIKE '%\"{id}\"%'"),
    )
    .await
    .unwrap();
    assert_eq!(entries, 1, "changelog entries creating {id}");

    // A node joining now reads the same history as the survivor.
    let late = node(dir.path(), "late", &url, None).await;
    let head = acks.iter().map(|a| a.revision).max().unwrap();
    let feeds = vec![
        feed(&ch_survivor, head).await,
        feed(&late.channel().await, head).await,
    ];
    check_history(&acks, &feeds[0]);
    one_sequence(&feeds);
}

/// Killed with its transaction open and its `COMMIT` not sent: the
/// database rolls it back; the retry on another node commits it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_before_its_commit_loses_the_write_and_a_retry_commits_it_once() {
    killed_around_commit(Stop::BeforeCommit).await;
}

/// Killed after its `COMMIT` landed, before it answered: the retry on
/// another node with the same key answers the revision it landed at.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_after_its_commit_and_a_retry_elsewhere_answers_that_revision() {
    killed_around_commit(Stop::AfterCommit).await;
}

/// A replica (`serve --follow`) of a PostgreSQL-backed node bootstraps from
/// it, follows its writes (and the other nodes' it follows), and forwards
/// writes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_follows_a_postgres_backed_node() {
    let Some(server) = test_database::server_url("serve --follow of a PostgreSQL node") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "a", &url, None).await;
    let b = node(dir.path(), "b", &url, None).await;
    let (ch_a, ch_b) = (a.channel().await, b.channel().await);
    create(&ch_a, "p0").await.unwrap();
    let follow: Vec<OsString> = vec!["--follow".into(), format!("127.0.0.1:{}", a.port).into()];
    let replica = spawn_binary_with(&dir.path().join("replica"), &follow).await;
    let ch_replica = replica.channel().await;
    let on_b = create(&ch_b, "p1").await.unwrap();
    let forwarded = create(&ch_replica, "p2").await.unwrap();
    assert!(forwarded > on_b);
    // The replica's changelog starts at the snapshot it bootstrapped from,
    // taken before `on_b`.
    let feeds = [
        feed_after(&ch_a, on_b - 1, forwarded).await,
        feed_after(&ch_replica, on_b - 1, forwarded).await,
    ];
    assert_eq!(
        feeds[0], feeds[1],
        "the replica's feed differs from its primary's"
    );
    assert_eq!(
        feeds[0].iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        vec![on_b, forwarded]
    );
}

/// The revisions of `tenant` after `after` up to `through` that `ch`'s
/// Watch delivers, whole and rendered, with their numbers.
async fn feed_after(ch: &Channel, after: u64, through: u64) -> Vec<(u64, String)> {
    let mut stream = watch_over(ch, ACME, after).await;
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

/// A PostgreSQL server of the test's own (`.ci/postgres start`), stopped and
/// removed when dropped.
struct OwnServer {
    dir: std::path::PathBuf,
    url: String,
}

impl OwnServer {
    fn start() -> OwnServer {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // Not under a private temporary folder: initdb runs as the
        // `postgres` user when the test runs as root.
        let dir =
            std::env::temp_dir().join(format!("authzd-pg-restart-{}-{nanos}", std::process::id()));
        let out = Self::script("start", &dir);
        let url = out
            .lines()
            .find_map(|l| l.strip_prefix("export AUTHZD_TEST_POSTGRES_URL="))
            .expect("`.ci/postgres start` printed no URL")
            .to_owned();
        OwnServer { dir, url }
    }

    fn script(action: &str, dir: &std::path::Path) -> String {
        let out = std::process::Command::new("bash")
            .arg(workspace_root().join(".ci/postgres"))
            .arg(action)
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            ".ci/postgres {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pg_ctl restart -m immediate`: every session cut at once, crash
    /// recovery, on the same port.
    fn restart(&self) {
        Self::script("restart", &self.dir);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(workspace_root().join(".ci/postgres"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Two nodes under load while PostgreSQL restarts (`-m immediate`):
/// writes are refused with UNAVAILABLE meanwhile, the nodes reconnect, no
/// acknowledged write is lost, none is at two revisions, and both feeds are
/// one gapless history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_loses_no_acknowledged_write() {
    if test_database::server_url("PostgreSQL restarted under load").is_none() {
        return;
    }
    let server = tokio::task::spawn_blocking(OwnServer::start).await.unwrap();
    let url = test_database::fresh(&server.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "a", &url, None).await;
    let b = node(dir.path(), "b", &url, None).await;
    let channels = [a.channel().await, b.channel().await];
    // Each writer writes at least EACH, and on until it has written AFTER
    // more once the restart is over; at most MAX.
    const EACH: usize = 20;
    const AFTER: usize = 5;
    const MAX: usize = 2_000;
    let restarted = Arc::new(AtomicBool::new(false));
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut writers = tokio::task::JoinSet::new();
    for (n, ch) in channels.iter().enumerate() {
        let ch = ch.clone();
        let progress_tx = progress_tx.clone();
        let restarted = restarted.clone();
        writers.spawn(async move {
            let mut acks = Vec::new();
            let mut refusals = Vec::new();
            let mut after = 0;
            for i in 0..MAX {
                let was_restarted = restarted.load(Ordering::SeqCst);
                acks.push(
                    create_until_acknowledged(&ch, &format!("n{n}-{i}"), &mut refusals).await,
                );
                let _ = progress_tx.send(());
                if was_restarted {
                    after += 1;
                }
                if i + 1 >= EACH && after >= AFTER {
                    break;
                }
            }
            (acks, refusals)
        });
    }
    drop(progress_tx);
    // Restart once a few writes are acknowledged.
    for _ in 0..EACH / 2 {
        progress.recv().await.unwrap();
    }
    let restarting = tokio::task::spawn_blocking({
        let restarted = restarted.clone();
        move || {
            server.restart();
            restarted.store(true, Ordering::SeqCst);
            server
        }
    });
    let mut acks = Vec::new();
    let mut refusals = Vec::new();
    while let Some(done) = writers.join_next().await {
        let (a, r) = done.unwrap();
        acks.extend(a);
        refusals.extend(r);
    }
    let _server = restarting.await.unwrap();
    assert!(
        refusals.contains(&tonic::Code::Unavailable),
        "no write was refused with UNAVAILABLE while the database restarted: {refusals:?}"
    );
    for code in &refusals {
        assert!(
            matches!(
                code,
                tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::Aborted
            ),
            "a write was refused with {code:?} while the database restarted"
        );
    }
    let head = acks.iter().map(|a| a.revision).max().unwrap();
    let feeds = vec![
        feed(&channels[0], head).await,
        feed(&channels[1], head).await,
    ];
    check_history(&acks, &feeds[0]);
    one_sequence(&feeds);
    let holes = test_database::query_i64(
        &url,
        "SELECT max(revision) - count(*) FROM authzd_changelog",
    )
    .await
    .unwrap();
    assert_eq!(holes, 0, "the changelog is not 1..N");
}
