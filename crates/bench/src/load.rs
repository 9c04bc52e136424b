//! The bench's load loops: `concurrency` workers spread over the given
//! HTTP/2 channels make one kind of call until a deadline or a shared request
//! budget runs out, whichever comes first, and record each latency in an
//! HDR histogram. Every loop stops by itself: each worker checks the
//! deadline and the budget before each call, each call is bounded by
//! [`CALL_TIMEOUT`], and a worker stops at its first failure. `CheckAccess`
//! is also made as JSON over HTTP/1.1 (one keep-alive connection per worker,
//! HTTP/1.1 having one call in flight per connection). Must not decide what
//! is measured or how it is reported (that is `bench`'s job).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use authzd_client::ClientChannel;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::writes::{membership, writer_group};
use super::{BenchError, CALL_TIMEOUT};
use authzd_proto::pb;
use authzd_proto::pb::access_service_client::AccessServiceClient;
use authzd_proto::pb::membership_service_client::MembershipServiceClient;
use authzd_testkit::dataset::{
    COMMON_PERMISSION, Dataset, MEMBER_OF_ALL, Question, RARE_PERMISSION, Rng,
};

/// Longest warm-up before each measured call (unrecorded).
const MAX_WARMUP: Duration = Duration::from_secs(1);
/// Latencies are recorded in nanoseconds, up to this bound.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// The measurement of one call.
#[derive(Debug, Clone)]
pub struct CallStats {
    /// The call's name.
    pub name: &'static str,
    /// Calls that succeeded.
    pub count: u64,
    /// Calls that failed or timed out (each stops its worker).
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Calls that answered "allowed" (CheckAccess) or "serving" (Health).
    pub positive: u64,
    /// Wall time from the first call to the last answer.
    pub elapsed: Duration,
    /// Latency percentiles in microseconds: p50, p99, p99.9.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

impl CallStats {
    /// Successful calls per second.
    pub fn throughput(&self) -> f64 {
        per_second(self.count, self.elapsed)
    }
}

/// `n` per second of `elapsed` (0 when no time passed).
pub(super) fn per_second(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Which call a load phase makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `grpc.health.v1.Health/Check`, the floor.
    Health,
    /// `authzd.v1.AccessService/CheckAccess` with a random question.
    Check,
    /// `BatchCheckAccess` of [`BATCH_CHECKS`] random questions.
    BatchCheck,
    /// `CheckAccess` with a random question, as JSON to the HTTP/JSON
    /// listener at this address.
    JsonCheck(SocketAddr),
    /// `ManageMembership` with one operation: each worker adds its subject
    /// to its own group, then removes it, and so on.
    Write,
    /// `ListSubjectsWithPermission` of [`RARE_PERMISSION`] at the last
    /// scope (a leaf), first page of 100.
    HoldersRare,
    /// The same for [`COMMON_PERMISSION`].
    HoldersCommon,
    /// `ListEffectivePermissions` of [`MEMBER_OF_ALL`], everywhere.
    Effective,
}

/// The questions in one measured `BatchCheckAccess`.
pub(super) const BATCH_CHECKS: usize = 100;

/// Where the HTTP/JSON listener takes `CheckAccess`.
const JSON_CHECK_PATH: &str = "/authzd.v1.AccessService/CheckAccess";

/// The page size of the listings measured.
const LISTING_PAGE: u32 = 100;

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Health => "Health/Check",
            Kind::Check => "CheckAccess",
            Kind::BatchCheck => "BatchCheckAccess (100)",
            Kind::JsonCheck(_) => "CheckAccess (HTTP/JSON)",
            Kind::Write => "ManageMembership (1 op)",
            Kind::HoldersRare => "ListSubjectsWithPermission (rare)",
            Kind::HoldersCommon => "ListSubjectsWithPermission (common)",
            Kind::Effective => "ListEffectivePermissions",
        }
    }
}

/// How long, and for how many calls at most, one call is measured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    /// Wall time of the measurement (a tenth of it, at most
    /// [`MAX_WARMUP`], is spent warming up first).
    pub(super) duration: Duration,
    /// Calls issued by all workers together, at most.
    pub(super) requests: u64,
}

/// One worker's way of making calls.
enum Probe {
    Health(HealthClient<ClientChannel>),
    Check {
        client: AccessServiceClient<ClientChannel>,
        tenant: String,
        data: Arc<Dataset>,
        rng: Rng,
    },
    Batch {
        client: AccessServiceClient<ClientChannel>,
        tenant: String,
        data: Arc<Dataset>,
        rng: Rng,
    },
    Json {
        /// The worker's own HTTP/1.1 connection, kept alive between calls.
        sender: SendRequest<Full<Bytes>>,
        /// The `Host` header.
        host: String,
        tenant: String,
        data: Arc<Dataset>,
        rng: Rng,
    },
    Write {
        client: MembershipServiceClient<ClientChannel>,
        tenant: String,
        worker: usize,
        /// Whether the next write adds (else removes) the member.
        add: bool,
    },
    Holders {
        client: AccessServiceClient<ClientChannel>,
        request: pb::ListSubjectsWithPermissionRequest,
    },
    Effective {
        client: AccessServiceClient<ClientChannel>,
        request: pb::ListEffectivePermissionsRequest,
    },
}

impl Probe {
    /// Makes one call; true for "serving" or "allowed".
    async fn call(&mut self) -> Result<bool, tonic::Status> {
        match self {
            Probe::Health(client) => {
                let reply = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok(reply.into_inner().status == ServingStatus::Serving as i32)
            }
            Probe::Check {
                client,
                tenant,
                data,
                rng,
            } => {
                let Question {
                    subject,
                    permission,
                    scope,
                } = data.question(rng);
                let reply = client
                    .check_access(pb::CheckAccessRequest {
                        tenant: tenant.clone(),
                        subject: Dataset::subject_id(subject),
                        permission: permission.to_string(),
                        scope: Dataset::scope_id(scope),
                        ..Default::default()
                    })
                    .await?;
                Ok(reply.into_inner().allowed)
            }
            Probe::Batch {
                client,
                tenant,
                data,
                rng,
            } => {
                let checks = (0..BATCH_CHECKS)
                    .map(|_| {
                        let Question {
                            subject,
                            permission,
                            scope,
                        } = data.question(rng);
                        pb::CheckItem {
                            subject: Dataset::subject_id(subject),
                            permission: permission.to_string(),
                            scope: Dataset::scope_id(scope),
                            ..Default::default()
                        }
                    })
                    .collect();
                let reply = client
                    .batch_check_access(pb::BatchCheckAccessRequest {
                        tenant: tenant.clone(),
                        checks,
                        ..Default::default()
                    })
                    .await?;
                Ok(reply.into_inner().results.iter().any(|r| r.allowed))
            }
            Probe::Json {
                sender,
                host,
                tenant,
                data,
                rng,
            } => {
                let Question {
                    subject,
                    permission,
                    scope,
                } = data.question(rng);
                let body = serde_json::json!({
                    "tenant": tenant,
                    "subject": Dataset::subject_id(subject),
                    "permission": permission,
                    "scope": Dataset::scope_id(scope),
                });
                let request = http::Request::post(JSON_CHECK_PATH)
                    .header(http::header::HOST, host.as_str())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .map_err(http_failure)?;
                sender.ready().await.map_err(http_failure)?;
                let reply = sender.send_request(request).await.map_err(http_failure)?;
                let status = reply.status();
                let body = reply
                    .into_body()
                    .collect()
                    .await
                    .map_err(http_failure)?
                    .to_bytes();
                if !status.is_success() {
                    return Err(tonic::Status::unknown(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body)
                    )));
                }
                let reply: serde_json::Value =
                    serde_json::from_slice(&body).map_err(http_failure)?;
                // Canonical proto3 JSON may leave a false `allowed` out.
                Ok(reply.get("allowed").and_then(serde_json::Value::as_bool) == Some(true))
            }
            Probe::Write {
                client,
                tenant,
                worker,
                add,
            } => {
                let operation =
                    membership(&writer_group(*worker), Dataset::subject_id(*worker), *add);
                *add = !*add;
                client
                    .manage_membership(pb::ManageMembershipRequest {
                        tenant: tenant.clone(),
                        operations: vec![operation],
                        options: None,
                        dry_run: false,
                    })
                    .await?;
                Ok(true)
            }
            Probe::Holders { client, request } => {
                let reply = client
                    .list_subjects_with_permission(request.clone())
                    .await?;
                Ok(!reply.into_inner().holders.is_empty())
            }
            Probe::Effective { client, request } => {
                let reply = client.list_effective_permissions(request.clone()).await?;
                Ok(!reply.into_inner().targets.is_empty())
            }
        }
    }
}

/// An HTTP call's failure, reported the way a gRPC call's is.
fn http_failure(e: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::unavailable(format!("HTTP/JSON: {e}"))
}

/// An HTTP/1.1 connection to `addr`, its driver spawned (it ends when the
/// returned sender is dropped).
async fn http_connection(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, BenchError> {
    let failed =
        |e: String| BenchError::Server(format!("connecting to the HTTP/JSON listener {addr}: {e}"));
    let stream = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| BenchError::Timeout {
            what: format!("connecting to the HTTP/JSON listener {addr}"),
            after: CALL_TIMEOUT,
        })?
        .map_err(|e| failed(e.to_string()))?;
    // The same TCP setting the gRPC channels have.
    stream
        .set_nodelay(true)
        .map_err(|e| failed(e.to_string()))?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What one worker saw.
struct Tally {
    histogram: Histogram<u64>,
    count: u64,
    errors: u64,
    positive: u64,
    first_error: Option<String>,
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Calls until `deadline` or until `budget` calls have been issued by all
/// workers together, whichever comes first; stops at its first failure.
async fn worker(
    mut probe: Probe,
    deadline: Instant,
    issued: Arc<AtomicU64>,
    budget: u64,
) -> Result<Tally, BenchError> {
    let mut tally = Tally {
        histogram: histogram()?,
        count: 0,
        errors: 0,
        positive: 0,
        first_error: None,
    };
    while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < budget {
        let started = Instant::now();
        match tokio::time::timeout(CALL_TIMEOUT, probe.call()).await {
            Ok(Ok(positive)) => {
                let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                tally.histogram.saturating_record(ns);
                tally.count += 1;
                tally.positive += u64::from(positive);
            }
            Ok(Err(status)) => {
                tally.errors += 1;
                tally.first_error = Some(authzd_client::status::status_text(&status));
                break;
            }
            Err(_) => {
                tally.errors += 1;
                tally.first_error = Some(format!("no answer within {CALL_TIMEOUT:?}"));
                break;
            }
        }
    }
    Ok(tally)
}

/// The load phases' shared setup.
#[derive(Clone)]
pub(super) struct Load {
    /// The channels, at least one; worker `w` uses channel `w % len`.
    pub(super) channels: Vec<ClientChannel>,
    /// The tenant the questions are asked in.
    pub(super) tenant: String,
    /// Where the questions come from.
    pub(super) data: Arc<Dataset>,
    /// Seeds each worker's question generator.
    pub(super) seed: u64,
    /// Workers, one call in flight each.
    pub(super) concurrency: usize,
}

impl Load {
    async fn probe(&self, kind: Kind, worker: usize, round: u64) -> Result<Probe, BenchError> {
        let channel = self.channels[worker % self.channels.len()].clone();
        let rng = Rng::new(
            self.seed
                .wrapping_mul(1_000_003)
                .wrapping_add(round << 32)
                .wrapping_add(worker as u64),
        );
        Ok(match kind {
            Kind::Health => Probe::Health(HealthClient::new(channel)),
            Kind::Check => Probe::Check {
                client: AccessServiceClient::new(channel),
                tenant: self.tenant.clone(),
                data: self.data.clone(),
                rng,
            },
            Kind::BatchCheck => Probe::Batch {
                client: AccessServiceClient::new(channel),
                tenant: self.tenant.clone(),
                data: self.data.clone(),
                rng,
            },
            Kind::JsonCheck(addr) => Probe::Json {
                sender: http_connection(addr).await?,
                host: addr.to_string(),
                tenant: self.tenant.clone(),
                data: self.data.clone(),
                rng,
            },
            Kind::Write => Probe::Write {
                client: MembershipServiceClient::new(channel),
                tenant: self.tenant.clone(),
                worker,
                add: true,
            },
            Kind::HoldersRare | Kind::HoldersCommon => Probe::Holders {
                client: AccessServiceClient::new(channel),
                request: pb::ListSubjectsWithPermissionRequest {
                    tenant: self.tenant.clone(),
                    permission: match kind {
                        Kind::HoldersRare => RARE_PERMISSION,
                        _ => COMMON_PERMISSION,
                    }
                    .to_string(),
                    scope: Dataset::scope_id(self.data.sizes.scopes.checked_sub(1)),
                    page_size: LISTING_PAGE,
                    ..Default::default()
                },
            },
            Kind::Effective => Probe::Effective {
                client: AccessServiceClient::new(channel),
                request: pb::ListEffectivePermissionsRequest {
                    tenant: self.tenant.clone(),
                    subject: Dataset::subject_id(MEMBER_OF_ALL),
                    ..Default::default()
                },
            },
        })
    }

    /// Runs `concurrency` workers for `duration` or `budget` calls.
    async fn phase(
        &self,
        kind: Kind,
        duration: Duration,
        budget: u64,
        round: u64,
    ) -> Result<(Tally, Duration), BenchError> {
        // Connections are made before the clock starts.
        let mut probes = Vec::with_capacity(self.concurrency);
        for w in 0..self.concurrency {
            probes.push(self.probe(kind, w, round).await?);
        }
        let issued = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let mut workers = JoinSet::new();
        for probe in probes {
            workers.spawn(worker(probe, deadline, issued.clone(), budget));
        }
        let mut total = Tally {
            histogram: histogram()?,
            count: 0,
            errors: 0,
            positive: 0,
            first_error: None,
        };
        while let Some(joined) = workers.join_next().await {
            let t = joined??;
            total
                .histogram
                .add(&t.histogram)
                .map_err(|e| BenchError::Histogram(e.to_string()))?;
            total.count += t.count;
            total.errors += t.errors;
            total.positive += t.positive;
            total.first_error = total.first_error.or(t.first_error);
        }
        Ok((total, started.elapsed()))
    }

    /// Warms up (unrecorded), then measures one call.
    pub(super) async fn call(&self, kind: Kind, budget: Budget) -> Result<CallStats, BenchError> {
        let warmup = (budget.duration / 10).min(MAX_WARMUP);
        let (warm, _) = self.phase(kind, warmup, budget.requests / 10, 0).await?;
        let (t, elapsed) = if warm.errors > 0 {
            (warm, Duration::ZERO)
        } else {
            self.phase(kind, budget.duration, budget.requests, 1)
                .await?
        };
        let us = |q: f64| t.histogram.value_at_quantile(q) as f64 / 1000.0;
        Ok(CallStats {
            name: kind.name(),
            count: t.count,
            errors: t.errors,
            first_error: t.first_error.clone(),
            positive: t.positive,
            elapsed,
            p50_us: us(0.50),
            p99_us: us(0.99),
            p999_us: us(0.999),
        })
    }
}
