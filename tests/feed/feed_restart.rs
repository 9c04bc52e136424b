//! The feed across a crash of the real binary: a subscriber resuming after
//! `kill -9` and a restart over the same folder gets every revision after
//! the last one it saw exactly once, and the stored permission changes are
//! identical to those first delivered live.

use authzd_testkit as common;
use authzd_testkit::feed as feed_support;

use authzd_server::api::pb;
use authzd_testkit::Rng;
use common::*;
use feed_support::{Folded, Writer};

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

/// Reads revisions `from..=to` in order, each exactly once (its pieces
/// joined).
async fn read_range(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    from: u64,
    to: u64,
) -> Vec<pb::WatchResponse> {
    let mut out = Vec::new();
    for expected in from..=to {
        let m = next_whole_revision(stream).await;
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
    let ch = first.channel().await;
    let writer = Writer {
        channel: ch.clone(),
        tenant: ACME.into(),
    };
    let mut record_stream = open(&ch, 0).await;
    let mut half_stream = open(&ch, 0).await;
    let mut rng = Rng::new(42);
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
    let ch = second.channel().await;
    assert_eq!(latest_over(&ch).await, acked, "the restart wrote nothing");
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
    let now = latest_over(&ch).await;
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
