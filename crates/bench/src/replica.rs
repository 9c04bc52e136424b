//! The bench's replica phase (`--replica ADDR`): a read replica following
//! the benched primary. It waits (bounded) until the replica has applied
//! the fill, measures the Health floor and CheckAccess on the replica with
//! the primary's settings, then the replication lag: one writer commits
//! `--replica-writes` writes on the primary, at 100 a second and then as
//! fast as it can, while one Watch subscriber on the replica records, for
//! each, the time from the primary's commit (`committed_at`, kept by the
//! replica) to its receipt there, after the replica applied it. Every loop
//! stops by itself. Must not decide what is reported.

use std::time::{Duration, Instant};

use super::load::{CallStats, Kind, Load};
use super::{BenchArgs, BenchError, CALL_TIMEOUT, feed, rpc_error};
use authzd_client::ClientChannel;
use authzd_client::Remote;
use authzd_proto::pb;
use authzd_proto::pb::access_service_client::AccessServiceClient;

/// Most attempts at reading the fill's revision on the replica, each
/// bounded by the server's own `at_least_revision` wait and
/// [`CALL_TIMEOUT`].
const CATCH_UP_ATTEMPTS: usize = 60;
/// The steady write rate of the first lag row.
const STEADY_PERIOD: Duration = Duration::from_millis(10);

/// One lag measurement.
#[derive(Debug, Clone)]
pub struct LagRow {
    /// How the writes were paced.
    pub pacing: &'static str,
    /// Writes committed on the primary.
    pub writes: u64,
    /// The rate they were committed at.
    pub writes_per_sec: f64,
    /// Revisions received on the replica.
    pub received: u64,
    /// Commit-on-primary to receipt-from-replica, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
}

/// What the replica phase measured.
#[derive(Debug, Clone)]
pub struct ReplicaStats {
    /// The replica's address.
    pub target: String,
    /// How long the replica took to apply the fill after the fill's reply.
    pub catch_up: Duration,
    /// The floor, on the replica.
    pub health: CallStats,
    /// CheckAccess on the replica.
    pub check: CallStats,
    /// Replication lag, per pacing.
    pub lag: Vec<LagRow>,
}

/// Runs the phase against the replica at `remote`, which follows the
/// primary `primary` was measured on; `filled` is the fill's revision.
pub(super) async fn measure(
    args: &BenchArgs,
    remote: &Remote,
    primary: &Load,
    filled: u64,
) -> Result<ReplicaStats, BenchError> {
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections.max(1) {
        channels.push(remote.connect().await?);
    }
    let started = Instant::now();
    catch_up(&channels[0], &primary.tenant, filled).await?;
    let caught_up = started.elapsed();
    let load = Load {
        channels,
        tenant: primary.tenant.clone(),
        data: primary.data.clone(),
        seed: primary.seed,
        concurrency: primary.concurrency,
    };
    let health = load.call(Kind::Health, args.budget()).await?;
    let check = load.call(Kind::Check, args.budget()).await?;
    let writer = primary.channels[0].clone();
    let mut after = feed::prepare(writer.clone(), &primary.tenant).await?;
    let mut lag = Vec::new();
    for (pacing, period) in [
        ("100 writes/s", STEADY_PERIOD),
        ("one writer, flat out", Duration::ZERO),
    ] {
        // A Watch may only start after a revision the replica has applied.
        catch_up(&load.channels[0], &primary.tenant, after).await?;
        let streams = feed::subscribe(&load.channels[..1], &primary.tenant, 1, after).await?;
        let last = tokio::sync::watch::Sender::new(0);
        let drained = tokio::spawn(feed::drain(streams, last.subscribe()));
        let writing = Instant::now();
        after = feed::write(writer.clone(), &primary.tenant, args.replica_writes, period).await?;
        let elapsed = writing.elapsed().as_secs_f64();
        last.send_replace(after);
        let (h, received, _) = drained.await??;
        let s = feed::stats(1, args.replica_writes, &h, received);
        lag.push(LagRow {
            pacing,
            writes: args.replica_writes,
            writes_per_sec: if elapsed > 0.0 {
                args.replica_writes as f64 / elapsed
            } else {
                0.0
            },
            received,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            max_us: s.max_us,
        });
    }
    Ok(ReplicaStats {
        target: remote.target().to_string(),
        catch_up: caught_up,
        health,
        check,
        lag,
    })
}

/// Waits until the replica answers at `revision`.
async fn catch_up(channel: &ClientChannel, tenant: &str, revision: u64) -> Result<(), BenchError> {
    let mut client = AccessServiceClient::new(channel.clone());
    let mut last = None;
    for _ in 0..CATCH_UP_ATTEMPTS {
        let request = pb::CheckAccessRequest {
            tenant: tenant.to_string(),
            subject: "nobody".into(),
            permission: "document:read".into(),
            at_least_revision: revision,
            ..Default::default()
        };
        match tokio::time::timeout(CALL_TIMEOUT * 2, client.check_access(request)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                last = Some(status);
            }
            Ok(Err(status)) => return Err(rpc_error("CheckAccess on the replica")(status)),
            Err(_) => {}
        }
    }
    Err(match last {
        Some(status) => rpc_error("the replica catching up with the fill")(status),
        None => BenchError::Settings("the replica did not catch up with the fill".into()),
    })
}
