//! Prometheus metrics: every metric's name and labels, in one place, and
//! the opt-in listener (`--metrics-listen`) that serves them as
//! `GET /metrics`.
//!
//! The other layers report through the small functions here; without the
//! listener no recorder is installed and a call's report costs a check of
//! a flag and nothing else (the `metrics` macros build their labelled keys,
//! allocating, before they look for a recorder). Labels are bounded: methods come from the
//! guard's table, codes from gRPC's, tenants from the store. Must not hold
//! logic, and must not label by subject, permission or anything a caller
//! chooses freely.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

/// Unary calls and streams, by method and gRPC status code.
pub const REQUESTS: &str = "authzd_requests_total";
/// Call (or stream) duration, by method.
pub const REQUEST_SECONDS: &str = "authzd_request_duration_seconds";
/// How long one group commit took: the redb transaction and its fsync.
pub const COMMIT_SECONDS: &str = "authzd_write_commit_duration_seconds";
/// Writes per group commit.
pub const GROUP_WRITES: &str = "authzd_write_group_writes";
/// The latest revision applied to the cache.
pub const REVISION: &str = "authzd_revision";
/// `Watch` streams open.
pub const WATCH_STREAMS: &str = "authzd_watch_streams";
/// How many revisions behind the cache a `Watch` message was when sent.
pub const WATCH_LAG: &str = "authzd_watch_lag_revisions";
/// On a node of a shared store: revisions the database holds beyond the
/// ones this node has applied (as last read from the database).
pub const STORE_LAG_REVISIONS: &str = "authzd_store_lag_revisions";
/// On a node of a shared store: seconds since the node last knew it had
/// applied every revision the database held (grows while the database
/// cannot be reached).
pub const STORE_LAG_SECONDS: &str = "authzd_store_lag_seconds";
/// On a node of a shared store: 1 while the database answers, 0 while it
/// cannot be reached.
pub const STORE_REACHABLE: &str = "authzd_store_reachable";
/// Subjects in a tenant's cache, by tenant.
pub const TENANT_SUBJECTS: &str = "authzd_tenant_subjects";
/// Assignments in a tenant's cache, by tenant.
pub const TENANT_ASSIGNMENTS: &str = "authzd_tenant_assignments";

/// Whether [`serve`] installed the recorder: until then, [`request`] (once
/// per call) reports nothing.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the recorder and serves `GET /metrics` on `listen` (plain
/// HTTP, meant for a scraper on a private network or loopback). Call
/// inside the tokio runtime, once.
pub fn serve(listen: SocketAddr) -> Result<(), BuildError> {
    let latency = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let counts = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)?
        .set_buckets_for_metric(Matcher::Full(GROUP_WRITES.into()), &counts)?
        .set_buckets_for_metric(Matcher::Full(WATCH_LAG.into()), &counts)?
        .install()?;
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// One finished call.
pub fn request(method: &'static str, code: &'static str, took: Duration) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    metrics::counter!(REQUESTS, "method" => method, "code" => code).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "method" => method).record(took.as_secs_f64());
}

/// A `Watch` stream opened (`+1`) or ended (`-1`).
pub fn watch_streams(delta: f64) {
    metrics::gauge!(WATCH_STREAMS).increment(delta);
}

/// A `Watch` message sent `behind` revisions after the cache's latest.
pub fn watch_lag(behind: u64) {
    metrics::histogram!(WATCH_LAG).record(behind as f64);
}

/// A group commit of `writes` writes that took `took`, leaving `revision`.
pub fn commit(writes: usize, took: Duration, revision: u64) {
    metrics::histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
    metrics::histogram!(GROUP_WRITES).record(writes as f64);
    metrics::gauge!(REVISION).set(revision as f64);
}

/// A shared-store node's lag, as last measured.
pub fn store_lag(lag: &crate::StoreLag) {
    metrics::gauge!(STORE_LAG_REVISIONS).set(lag.behind as f64);
    metrics::gauge!(STORE_LAG_SECONDS).set(lag.since_in_step.as_secs_f64());
    metrics::gauge!(STORE_REACHABLE).set(if lag.reachable { 1.0 } else { 0.0 });
}

/// A tenant's cache sizes after a write.
pub fn tenant_size(tenant: &str, subjects: usize, assignments: usize) {
    let tenant = tenant.to_string();
    metrics::gauge!(TENANT_SUBJECTS, "tenant" => tenant.clone()).set(subjects as f64);
    metrics::gauge!(TENANT_ASSIGNMENTS, "tenant" => tenant).set(assignments as f64);
}
