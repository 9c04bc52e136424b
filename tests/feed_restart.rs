#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The feed across a crash of the real binary: a subscriber resuming after
//! `kill -9` and a restart over the same folder gets every revision after
//! the last one it saw exactly once, and the stored permission changes are
//! identical to those first delivered live.

mod common;
mod feed_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use authzd::api::pb;
use common::*;
use feed_support::{Folded, Rng, Writer};

/// The real binary, killed when dropped so a failing test leaves nothing.
struct Binary {
    child: Child,
    port: u16,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `authzd serve` on port 0 over `data` and waits for the
/// "authzd serving ... listen=" line (logs are uncoloured with NO_COLOR).
async fn spawn_binary(data: &Path, schema: Option<&Path>) -> Binary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authzd"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data);
    if let Some(schema) = schema {
        command.arg("--schema").arg(schema);
    }
    let mut child = command
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !line.contains("authzd serving") {
                continue;
            }
            let port = line.split_once("listen=").and_then(|(_, rest)| {
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                addr.rsplit_once(':')?.1.parse::<u16>().ok()
            });
            if let (Some(port), Some(tx)) = (port, tx.take()) {
                let _ = tx.send(port);
            }
        }
    });
    let port = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the binary did not announce `authzd serving ... listen=`");
    Binary { child, port }
}

async fn channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn open(ch: &tonic::transport::Channel, after: u64) -> tonic::Streaming<pb::WatchResponse> {
    WatchServiceClient::new(ch.clone())
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: after,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn latest(ch: &tonic::transport::Channel) -> u64 {
    SchemaServiceClient::new(ch.clone())
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Reads revisions `from..=to` in order, each exactly once.
async fn read_range(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    from: u64,
    to: u64,
) -> Vec<pb::WatchResponse> {
    let mut out = Vec::new();
    for expected in from..=to {
        let m = next_event(stream).await;
        assert_eq!(m.revision, expected, "a revision missing or twice");
        out.push(m);
    }
    out
}

/// Random writes to the real binary; a subscriber reads all of them live
/// (the record of first deliveries) and another only half; the server is
/// killed with SIGKILL while the second has messages in flight and
/// restarted over the same folder. The second resumes from the last
/// revision it processed and receives every later revision exactly once,
/// each identical (raw changes, permission changes, time, actor) to its
/// first live delivery; a replay from 0 after the restart is identical to
/// the whole record; and after further writes, both fold to the same
/// pictures.
#[tokio::test]
async fn resuming_after_kill_9_replays_exactly_what_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    std::fs::write(&schema, feed_support::SCHEMA_A).unwrap();
    let data = dir.path().join("data");
    let mut first = spawn_binary(&data, Some(&schema)).await;
    let ch = channel(first.port).await;
    let writer = Writer {
        channel: ch.clone(),
        tenant: ACME.into(),
    };
    let mut record_stream = open(&ch, 0).await;
    let mut half_stream = open(&ch, 0).await;
    let mut rng = Rng(42);
    let mut acked = writer.seed().await;
    for _ in 0..80 {
        if let Some(r) = writer.write(&mut rng).await {
            acked = acked.max(r);
        }
    }
    let record = read_range(&mut record_stream, 1, acked).await;
    assert!(
        record
            .iter()
            .map(|m| m.permission_changes.len())
            .sum::<usize>()
            > 30,
        "too few permission changes to prove anything"
    );
    let seen = acked / 2;
    let mut half = Folded::default();
    for m in read_range(&mut half_stream, 1, seen).await {
        half.apply(&m);
    }

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop((record_stream, half_stream, writer, ch));

    let second = spawn_binary(&data, None).await;
    let ch = channel(second.port).await;
    assert_eq!(latest(&ch).await, acked, "the restart wrote nothing");
    let mut resumed = open(&ch, seen).await;
    for (m, original) in read_range(&mut resumed, seen + 1, acked)
        .await
        .iter()
        .zip(&record[seen as usize..])
    {
        assert_eq!(m, original, "revision {} replayed differently", m.revision);
        half.apply(m);
    }
    let mut replay = open(&ch, 0).await;
    assert_eq!(read_range(&mut replay, 1, acked).await, record);

    let writer = Writer {
        channel: ch.clone(),
        tenant: ACME.into(),
    };
    for _ in 0..20 {
        writer.write(&mut rng).await;
    }
    let now = latest(&ch).await;
    assert!(now > acked);
    let mut whole = Folded::default();
    for m in record
        .iter()
        .chain(&read_range(&mut replay, acked + 1, now).await)
    {
        whole.apply(m);
    }
    for m in read_range(&mut resumed, acked + 1, now).await {
        half.apply(&m);
    }
    assert_eq!(half, whole);
    drop(second);
}
