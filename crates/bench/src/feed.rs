//! The bench's feed phase: `n` Watch subscribers on the filled tenant while
//! one writer commits a bounded number of writes that each change
//! permissions; every subscriber records, for every message, the time from
//! the write's commit (the message's `committed_at`, stamped by the server
//! on this machine's clock) to its receipt. Every loop stops by itself: the
//! writer after its writes, each subscriber after the last write's
//! revision or [`FEED_DEADLINE`]. Must not decide what is reported.

use std::time::Duration;

use authzd_client::ClientChannel;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::{BenchError, CALL_TIMEOUT, rpc_error};
use authzd_core::model::Timestamp;
use authzd_proto::pb;
use authzd_proto::pb::directory_service_client::DirectoryServiceClient;
use authzd_proto::pb::membership_service_client::MembershipServiceClient;
use authzd_proto::pb::watch_service_client::WatchServiceClient;

/// Longest a subscriber waits for the writes it expects.
pub const FEED_DEADLINE: Duration = Duration::from_secs(60);
/// Subscribers per HTTP/2 connection.
const PER_CONNECTION: usize = 100;
/// The subject whose role the writer toggles.
const SUBJECT: &str = "feed-bench-subject";

/// What one feed measurement found.
#[derive(Debug, Clone)]
pub struct FeedStats {
    /// Subscribers.
    pub subscribers: usize,
    /// Writes committed.
    pub writes: u64,
    /// Messages received, over all subscribers (a revision in several
    /// pieces counts each).
    pub received: u64,
    /// Commit-to-receipt percentiles, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Opens `n` subscriptions after `after`, over fresh connections.
pub(super) async fn subscribe(
    channels: &[ClientChannel],
    tenant: &str,
    n: usize,
    after: u64,
) -> Result<Vec<tonic::Streaming<pb::WatchResponse>>, BenchError> {
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let channel = channels[i % channels.len()].clone();
        let request = pb::WatchRequest {
            tenant: tenant.to_string(),
            after_revision: after,
            kinds: vec![pb::EventKind::PermissionChanges as i32],
            ..Default::default()
        };
        let stream = WatchServiceClient::new(channel)
            .watch(request)
            .await
            .map_err(rpc_error("Watch"))?
            .into_inner();
        streams.push(stream);
    }
    Ok(streams)
}

/// How many connections `n` subscribers need.
pub(super) fn connections_for(n: usize) -> usize {
    n.div_ceil(PER_CONNECTION).max(1)
}

/// Creates the subject the writer toggles; returns the revision after it.
pub(super) async fn prepare(channel: ClientChannel, tenant: &str) -> Result<u64, BenchError> {
    let reply = DirectoryServiceClient::new(channel)
        .create_subject(pb::CreateSubjectRequest {
            tenant: tenant.to_string(),
            subject: Some(pb::Subject {
                id: SUBJECT.into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .map_err(rpc_error("CreateSubject for the feed"))?;
    Ok(reply.into_inner().revision)
}

/// Commits `writes` writes, alternately giving and taking a role, one per
/// `period` (each as soon as the one before is answered if zero, or late);
/// returns the last revision.
pub(super) async fn write(
    channel: ClientChannel,
    tenant: &str,
    writes: u64,
    period: Duration,
) -> Result<u64, BenchError> {
    let acks = write_acked(channel, tenant, writes, period).await?;
    Ok(acks.last().map_or(0, |(revision, _)| *revision))
}

/// [`write`], returning each write's revision and when its answer came
/// (nanoseconds of the wall clock, as `committed_at` is).
pub(super) async fn write_acked(
    channel: ClientChannel,
    tenant: &str,
    writes: u64,
    period: Duration,
) -> Result<Vec<(u64, i64)>, BenchError> {
    let mut client = MembershipServiceClient::new(channel);
    let mut acks = Vec::with_capacity(usize::try_from(writes).unwrap_or(0));
    let mut ticks = (!period.is_zero()).then(|| {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    for i in 0..writes {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        let target = Some(pb::Target {
            kind: Some(pb::target::Kind::Scope("root".into())),
        });
        let principal = Some(pb::Principal {
            kind: Some(pb::principal::Kind::Subject(SUBJECT.into())),
        });
        let operation = if i % 2 == 0 {
            pb::membership_operation::Operation::AssignRole(pb::AssignRole {
                role: "viewer".into(),
                principal,
                target,
                ..Default::default()
            })
        } else {
            pb::membership_operation::Operation::UnassignRole(pb::UnassignRole {
                role: "viewer".into(),
                principal,
                target,
                ..Default::default()
            })
        };
        let request = pb::ManageMembershipRequest {
            tenant: tenant.to_string(),
            operations: vec![pb::MembershipOperation {
                operation: Some(operation),
            }],
            options: None,
            dry_run: false,
        };
        let reply = tokio::time::timeout(CALL_TIMEOUT, client.manage_membership(request))
            .await
            .map_err(|_| BenchError::Settings("a feed write timed out".into()))?
            .map_err(rpc_error("ManageMembership for the feed"))?;
        acks.push((reply.into_inner().revision, Timestamp::now().0));
    }
    Ok(acks)
}

/// Reads each stream until it has seen `last` (or the deadline), recording
/// commit-to-receipt latencies; also returns when each revision was
/// received in full (nanoseconds of the wall clock), over every stream.
pub(super) async fn drain(
    streams: Vec<tonic::Streaming<pb::WatchResponse>>,
    last: tokio::sync::watch::Receiver<u64>,
) -> Result<(Histogram<u64>, u64, Vec<(u64, i64)>), BenchError> {
    let mut tasks = JoinSet::new();
    for mut stream in streams {
        let mut last = last.clone();
        tasks.spawn(async move {
            let mut h = histogram()?;
            let mut received = 0u64;
            let mut receipts = Vec::new();
            let mut seen = 0u64;
            let deadline = tokio::time::Instant::now() + FEED_DEADLINE;
            loop {
                // The writer publishes its last revision when done; until
                // then `target` is 0 and the subscriber keeps reading.
                let target = *last.borrow_and_update();
                if target != 0 && seen >= target {
                    break;
                }
                tokio::select! {
                    m = stream.message() => {
                        let Ok(Some(message)) = m else { break };
                        let committed = message.committed_at.map_or(0, |t| {
                            t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos))
                        });
                        let now = Timestamp::now().0;
                        let latency = now.saturating_sub(committed).max(1);
                        h.saturating_record(u64::try_from(latency).unwrap_or(1));
                        received += 1;
                        if message.revision_complete {
                            seen = message.revision;
                            receipts.push((message.revision, now));
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                    changed = last.changed() => if changed.is_err() { break },
                }
            }
            Ok::<_, BenchError>((h, received, receipts))
        });
    }
    let mut total = histogram()?;
    let mut received = 0;
    let mut receipts = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (h, n, r) = done??;
        total
            .add(&h)
            .map_err(|e| BenchError::Histogram(e.to_string()))?;
        received += n;
        receipts.extend(r);
    }
    Ok((total, received, receipts))
}

/// Summarises one measurement.
pub(super) fn stats(
    subscribers: usize,
    writes: u64,
    h: &Histogram<u64>,
    received: u64,
) -> FeedStats {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    FeedStats {
        subscribers,
        writes,
        received,
        p50_us: us(0.5),
        p99_us: us(0.99),
        max_us: h.max() as f64 / 1000.0,
    }
}
