//! `authzd bench`: a loopback load generator.
//!
//! It starts a server in-process on 127.0.0.1:0 over a temporary data
//! folder (or uses one given with `--target`), fills one tenant with
//! [`dataset`] data through the public gRPC API, then measures two calls in
//! turn at a fixed concurrency: `grpc.health.v1.Health/Check`, an empty call
//! that is the floor of what any call costs on this server, and
//! `CheckAccess` with random questions. Speed is quoted as a ratio of the two,
//! both measured in the same run, so figures from different machines compare.
//!
//! Every load loop is bounded in time and in count and stops by itself; each
//! call is also bounded by [`CALL_TIMEOUT`]. Must not talk to redb or reach
//! into the server's internals: everything it measures goes through gRPC, as
//! a client would see it.

pub mod dataset;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{StreamExt, TryStreamExt, stream};
use hdrhistogram::Histogram;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use self::dataset::{Dataset, Question, Rng, Sizes, Who};
use crate::api::pb;
use crate::api::pb::access_service_client::AccessServiceClient;
use crate::api::pb::directory_service_client::DirectoryServiceClient;
use crate::api::pb::membership_service_client::MembershipServiceClient;
use crate::config::{Config, MAX_BATCH_OPERATIONS};
use crate::server::{self, ServerError};
use crate::service::Service;

/// Longest a single call may take before the bench gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Directory creates in flight during the fill. Writes are serialised by
/// the server's write gate; a few in flight hide the round trips.
const FILL_IN_FLIGHT: usize = 16;
/// Longest the bench waits for the in-process server to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest warm-up before each measured call (unrecorded).
const MAX_WARMUP: Duration = Duration::from_secs(1);
/// Latencies are recorded in nanoseconds, up to this bound.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// `authzd bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Use the server at this address instead of starting one in-process.
    /// It must run the built-in schema; the filled tenant stays there.
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// The tenant to fill [default: "bench"; with --target "bench-<unix time>"].
    #[arg(long)]
    pub tenant: Option<String>,
    /// Subjects to create.
    #[arg(long, default_value_t = 10_000)]
    pub subjects: usize,
    /// Groups to create (nested three to a parent under 10 top groups).
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// Scopes to create, as a tree of depth 4 under the root.
    #[arg(long, default_value_t = 1_000)]
    pub scopes: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds each call is measured for (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Most requests measured per call.
    #[arg(long, default_value_t = 2_000_000)]
    pub requests: u64,
    /// Seed for the data and the questions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to create the temporary data folder in [default: /dev/shm
    /// when present, so fsyncs do not dominate the fill; else the system
    /// temporary folder].
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{s:?}: give 0 to 3600 seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Why the bench stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A flag is out of range.
    #[error("{0}")]
    Settings(String),
    /// The temporary data folder could not be created.
    #[error("creating a data folder in {parent}: {source}")]
    DataDir {
        /// Where it was to be created.
        parent: PathBuf,
        /// Why it could not be.
        source: std::io::Error,
    },
    /// The in-process server could not start.
    #[error("starting the in-process server: {0}")]
    Start(String),
    /// The in-process server failed, or did not stop in time.
    #[error("the in-process server: {0}")]
    Server(String),
    /// A connection could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A call of the fill failed.
    #[error("{what}: {code:?}: {message}")]
    Rpc {
        /// What the call was doing.
        what: String,
        /// Its status code.
        code: tonic::Code,
        /// Its status message.
        message: String,
    },
    /// A latency histogram could not be built or merged.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A load task died.
    #[error("load task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn rpc_error(what: impl Into<String>) -> impl FnOnce(tonic::Status) -> BenchError {
    let what = what.into();
    move |status| BenchError::Rpc {
        what,
        code: status.code(),
        message: status.message().to_string(),
    }
}

/// What the fill made and how long it took.
#[derive(Debug, Clone)]
pub struct FillStats {
    /// Subjects created.
    pub subjects: usize,
    /// Of which locked.
    pub locked: usize,
    /// Groups created.
    pub groups: usize,
    /// Group nestings (group in group).
    pub nestings: usize,
    /// Scopes created.
    pub scopes: usize,
    /// Depth of the scope tree below the root.
    pub depth: u32,
    /// Subject memberships.
    pub memberships: usize,
    /// Role assignments (to groups and subjects).
    pub assignments: usize,
    /// Directory create calls.
    pub creates: usize,
    /// `ManageMembership` batches.
    pub batches: usize,
    /// Revision after the fill.
    pub revision: u64,
    /// Wall time of the whole fill.
    pub elapsed: Duration,
}

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
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The settings it ran with.
    pub args: BenchArgs,
    /// The tenant filled.
    pub tenant: String,
    /// The server's address, and whether it ran in-process.
    pub server: String,
    /// The data folder of the in-process server.
    pub data_dir: Option<PathBuf>,
    /// What the fill made.
    pub fill: FillStats,
    /// The floor: `grpc.health.v1.Health/Check`.
    pub health: CallStats,
    /// `authzd.v1.AccessService/CheckAccess`.
    pub check: CallStats,
}

impl Report {
    /// Whether every measured call succeeded.
    pub fn ok(&self) -> bool {
        self.health.errors == 0 && self.check.errors == 0
    }
}

/// Runs `authzd bench` from the command line: prints the command, the
/// report or the error; returns whether it succeeded.
pub async fn command(args: &BenchArgs) -> bool {
    println!("command: {}", command_line());
    match run(args).await {
        Ok(report) => {
            print!("{report}");
            report.ok()
        }
        Err(e) => {
            eprintln!("authzd bench: {e}");
            false
        }
    }
}

/// The command line this process was started with, quoted for a shell.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A server started in-process over a temporary folder.
struct InProcess {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
    /// Removed when dropped, after the server has let go of the store.
    dir: tempfile::TempDir,
}

impl InProcess {
    async fn start(parent: PathBuf) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("authzd-bench-")
            .tempdir_in(&parent)
            .map_err(|source| BenchError::DataDir { parent, source })?;
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let service = Service::open(config)
            .await
            .map_err(|e| BenchError::Start(e.to_string()))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| BenchError::Start(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::Start(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(service, listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            stop,
            task,
            dir,
        })
    }

    async fn stop(self) -> Result<(), BenchError> {
        let _ = self.stop.send(());
        let outcome = tokio::time::timeout(STOP_TIMEOUT, self.task).await;
        drop(self.dir);
        match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(BenchError::Server(e.to_string())),
            Ok(Err(e)) => Err(BenchError::Server(e.to_string())),
            Err(_) => Err(BenchError::Server(format!(
                "did not stop within {STOP_TIMEOUT:?}"
            ))),
        }
    }
}

fn default_data_parent() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// Runs the bench: server, fill, the two measured calls.
pub async fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    if args.subjects == 0 || args.concurrency == 0 || args.connections == 0 {
        return Err(BenchError::Settings(
            "--subjects, --concurrency and --connections must be at least 1".into(),
        ));
    }
    let (addr, in_process) = match args.target {
        Some(addr) => (addr, None),
        None => {
            let parent = args.data_parent.clone().unwrap_or_else(default_data_parent);
            let server = InProcess::start(parent).await?;
            (server.addr, Some(server))
        }
    };
    let data_dir = in_process.as_ref().map(|s| s.dir.path().to_path_buf());
    let outcome = measure(args, addr).await;
    // Stop the server whatever happened, and report its failure only if
    // the run itself went well.
    let stopped = match in_process {
        Some(server) => server.stop().await,
        None => Ok(()),
    };
    let (tenant, fill, health, check) = outcome?;
    stopped?;
    Ok(Report {
        args: args.clone(),
        tenant,
        server: match args.target {
            Some(a) => format!("{a} (--target)"),
            None => format!("{addr} (in-process)"),
        },
        data_dir,
        fill,
        health,
        check,
    })
}

async fn measure(
    args: &BenchArgs,
    addr: SocketAddr,
) -> Result<(String, FillStats, CallStats, CallStats), BenchError> {
    let tenant = match (&args.tenant, args.target) {
        (Some(t), _) => t.clone(),
        (None, None) => "bench".to_string(),
        (None, Some(_)) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            format!("bench-{secs}")
        }
    };
    let sizes = Sizes {
        subjects: args.subjects,
        groups: args.groups,
        scopes: args.scopes,
    };
    let data = Arc::new(Dataset::generate(sizes, args.seed));
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(connect(addr).await?);
    }
    let fill_channel = channels
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Settings("--connections must be at least 1".to_string()))?;
    let fill = fill(fill_channel, &tenant, &data).await?;
    let load = Load {
        channels,
        tenant: tenant.clone(),
        data,
        seed: args.seed,
        concurrency: args.concurrency,
    };
    let health = load.call(Kind::Health, args).await?;
    let check = load.call(Kind::Check, args).await?;
    Ok((tenant, fill, health, check))
}

async fn connect(addr: SocketAddr) -> Result<Channel, BenchError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|source| BenchError::Connect { addr, source })?
        .tcp_nodelay(true)
        .connect_timeout(CALL_TIMEOUT);
    endpoint
        .connect()
        .await
        .map_err(|source| BenchError::Connect { addr, source })
}

/// Creates the dataset in `tenant` through the directory and membership APIs.
async fn fill(channel: Channel, tenant: &str, data: &Dataset) -> Result<FillStats, BenchError> {
    let started = Instant::now();
    let directory = DirectoryServiceClient::new(channel.clone());
    let mut revision = 0;

    // Scopes level by level, so every parent exists before its children.
    for level in data.scope_levels() {
        let r = stream::iter(level)
            .map(|i| {
                let mut d = directory.clone();
                let request = pb::CreateScopeRequest {
                    tenant: tenant.to_string(),
                    scope: Some(pb::Scope {
                        id: Dataset::scope_id(Some(i)),
                        r#type: format!("level{}", data.scope_depths.get(i).unwrap_or(&0)),
                        parent: Dataset::scope_id(data.scope_parents.get(i).copied().flatten()),
                    }),
                    options: None,
                };
                async move {
                    d.create_scope(request)
                        .await
                        .map(|r| r.into_inner().revision)
                        .map_err(rpc_error(format!(
                            "creating scope {}",
                            Dataset::scope_id(Some(i))
                        )))
                }
            })
            .buffer_unordered(FILL_IN_FLIGHT)
            .try_fold(0, |a, b| async move { Ok(a.max(b)) })
            .await?;
        revision = revision.max(r);
    }

    let r = stream::iter(0..data.sizes.subjects)
        .map(|i| {
            let mut d = directory.clone();
            let locked = data.locked.get(i).copied().unwrap_or(false);
            let request = pb::CreateSubjectRequest {
                tenant: tenant.to_string(),
                subject: Some(pb::Subject {
                    id: Dataset::subject_id(i),
                    status: if locked {
                        pb::SubjectStatus::Locked
                    } else {
                        pb::SubjectStatus::Active
                    } as i32,
                    ..Default::default()
                }),
                options: None,
            };
            async move {
                d.create_subject(request)
                    .await
                    .map(|r| r.into_inner().revision)
                    .map_err(rpc_error(format!(
                        "creating subject {}",
                        Dataset::subject_id(i)
                    )))
            }
        })
        .buffer_unordered(FILL_IN_FLIGHT)
        .try_fold(0, |a, b| async move { Ok(a.max(b)) })
        .await?;
    revision = revision.max(r);

    let r = stream::iter(0..data.sizes.groups)
        .map(|i| {
            let mut d = directory.clone();
            let request = pb::CreateGroupRequest {
                tenant: tenant.to_string(),
                group: Some(pb::Group {
                    id: Dataset::group_id(i),
                    title: format!("Group {i}"),
                }),
                options: None,
            };
            async move {
                d.create_group(request)
                    .await
                    .map(|r| r.into_inner().revision)
                    .map_err(rpc_error(format!(
                        "creating group {}",
                        Dataset::group_id(i)
                    )))
            }
        })
        .buffer_unordered(FILL_IN_FLIGHT)
        .try_fold(0, |a, b| async move { Ok(a.max(b)) })
        .await?;
    revision = revision.max(r);

    // Nestings and group roles first, while groups are empty and cheap to
    // change; then members; then direct roles.
    let operations: Vec<pb::MembershipOperation> = data
        .nestings
        .iter()
        .map(|&(parent, child)| add_member(parent, group(child)))
        .chain(
            data.assignments
                .iter()
                .filter(|a| matches!(a.who, Who::Group(_)))
                .map(assign),
        )
        .chain(
            data.memberships
                .iter()
                .map(|&(g, s)| add_member(g, subject(s))),
        )
        .chain(
            data.assignments
                .iter()
                .filter(|a| matches!(a.who, Who::Subject(_)))
                .map(assign),
        )
        .collect();
    let mut membership = MembershipServiceClient::new(channel);
    let mut batches = 0;
    for (n, chunk) in operations.chunks(MAX_BATCH_OPERATIONS).enumerate() {
        let reply = membership
            .manage_membership(pb::ManageMembershipRequest {
                tenant: tenant.to_string(),
                operations: chunk.to_vec(),
                options: None,
            })
            .await
            .map_err(rpc_error(format!("membership batch {n}")))?;
        revision = revision.max(reply.into_inner().revision);
        batches += 1;
    }

    Ok(FillStats {
        subjects: data.sizes.subjects,
        locked: data.locked_count(),
        groups: data.sizes.groups,
        nestings: data.nestings.len(),
        scopes: data.sizes.scopes,
        depth: data.depth(),
        memberships: data.memberships.len(),
        assignments: data.assignments.len(),
        creates: data.sizes.scopes + data.sizes.subjects + data.sizes.groups,
        batches,
        revision,
        elapsed: started.elapsed(),
    })
}

fn subject(i: usize) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Subject(Dataset::subject_id(i))),
    })
}

fn group(i: usize) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Group(Dataset::group_id(i))),
    })
}

fn add_member(group: usize, member: Option<pb::Principal>) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AddMember(
            pb::AddMember {
                group: Dataset::group_id(group),
                member,
                precondition: 0,
            },
        )),
    }
}

fn assign(a: &dataset::Assign) -> pb::MembershipOperation {
    let principal = match a.who {
        Who::Subject(s) => subject(s),
        Who::Group(g) => group(g),
    };
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AssignRole(
            pb::AssignRole {
                role: a.role.to_string(),
                principal,
                target: Some(pb::Target {
                    kind: Some(pb::target::Kind::Scope(Dataset::scope_id(a.scope))),
                }),
                expires_at: None,
                precondition: 0,
            },
        )),
    }
}

/// Which call a load phase makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Health,
    Check,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Health => "Health/Check",
            Kind::Check => "CheckAccess",
        }
    }
}

/// One worker's way of making calls.
enum Probe {
    Health(HealthClient<Channel>),
    Check {
        client: AccessServiceClient<Channel>,
        tenant: String,
        data: Arc<Dataset>,
        rng: Rng,
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
        }
    }
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
                tally.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
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
struct Load {
    channels: Vec<Channel>,
    tenant: String,
    data: Arc<Dataset>,
    seed: u64,
    concurrency: usize,
}

impl Load {
    fn probe(&self, kind: Kind, worker: usize, round: u64) -> Probe {
        let channel = self.channels[worker % self.channels.len()].clone();
        match kind {
            Kind::Health => Probe::Health(HealthClient::new(channel)),
            Kind::Check => Probe::Check {
                client: AccessServiceClient::new(channel),
                tenant: self.tenant.clone(),
                data: self.data.clone(),
                rng: Rng::new(
                    self.seed
                        .wrapping_mul(1_000_003)
                        .wrapping_add(round << 32)
                        .wrapping_add(worker as u64),
                ),
            },
        }
    }

    /// Runs `concurrency` workers for `duration` or `budget` calls.
    async fn phase(
        &self,
        kind: Kind,
        duration: Duration,
        budget: u64,
        round: u64,
    ) -> Result<(Tally, Duration), BenchError> {
        let issued = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let mut workers = JoinSet::new();
        for w in 0..self.concurrency {
            workers.spawn(worker(
                self.probe(kind, w, round),
                deadline,
                issued.clone(),
                budget,
            ));
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
                .map_err(|e| BenchError::Histogram(format!("{e:?}")))?;
            total.count += t.count;
            total.errors += t.errors;
            total.positive += t.positive;
            total.first_error = total.first_error.or(t.first_error);
        }
        Ok((total, started.elapsed()))
    }

    /// Warms up (unrecorded), then measures one call.
    async fn call(&self, kind: Kind, args: &BenchArgs) -> Result<CallStats, BenchError> {
        let warmup = (args.duration / 10).min(MAX_WARMUP);
        let (warm, _) = self.phase(kind, warmup, args.requests / 10, 0).await?;
        let (t, elapsed) = if warm.errors > 0 {
            (warm, Duration::ZERO)
        } else {
            self.phase(kind, args.duration, args.requests, 1).await?
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

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let build = if cfg!(debug_assertions) {
            "debug (numbers not representative: use --release)"
        } else {
            "release"
        };
        writeln!(
            f,
            "settings: --subjects {} --groups {} --scopes {} --concurrency {} --connections {} --duration {} --requests {} --seed {}",
            a.subjects,
            a.groups,
            a.scopes,
            a.concurrency,
            a.connections,
            a.duration.as_secs_f64(),
            a.requests,
            a.seed
        )?;
        writeln!(f, "build: {build}; {cpus} CPUs available")?;
        writeln!(f, "server: {}", self.server)?;
        if let Some(dir) = &self.data_dir {
            writeln!(f, "data folder: {} (removed at exit)", dir.display())?;
        }
        let d = &self.fill;
        writeln!(
            f,
            "data: tenant {:?}: {} subjects ({} locked), {} groups ({} nested), {} scopes (depth {}), {} memberships, {} role assignments",
            self.tenant,
            d.subjects,
            d.locked,
            d.groups,
            d.nestings,
            d.scopes,
            d.depth,
            d.memberships,
            d.assignments
        )?;
        writeln!(
            f,
            "fill: {:.2} s ({} directory creates, {} ManageMembership batches), revision {}",
            d.elapsed.as_secs_f64(),
            d.creates,
            d.batches,
            d.revision
        )?;
        writeln!(
            f,
            "load: {} in flight over {} HTTP/2 connections, each call for {} s or {} requests, after an unrecorded warm-up",
            a.concurrency,
            a.connections,
            a.duration.as_secs_f64(),
            a.requests
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<26} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}",
            "call", "count", "req/s", "p50 µs", "p99 µs", "p999 µs", "errors"
        )?;
        for c in [&self.health, &self.check] {
            writeln!(
                f,
                "{:<26} {:>10} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                c.name,
                c.count,
                c.throughput(),
                c.p50_us,
                c.p99_us,
                c.p999_us,
                c.errors
            )?;
        }
        let (h, c) = (&self.health, &self.check);
        writeln!(
            f,
            "{:<26} {:>10} {:>10} {:>9} {:>9} {:>9}",
            "CheckAccess / Health",
            "",
            ratio(c.throughput(), h.throughput()),
            ratio(c.p50_us, h.p50_us),
            ratio(c.p99_us, h.p99_us),
            ratio(c.p999_us, h.p999_us)
        )?;
        writeln!(f)?;
        if c.count > 0 {
            writeln!(
                f,
                "CheckAccess answers: {:.1}% allowed",
                100.0 * c.positive as f64 / c.count as f64
            )?;
        }
        for call in [h, c] {
            if let Some(e) = &call.first_error {
                writeln!(f, "{} failed: {e}", call.name)?;
            }
        }
        Ok(())
    }
}
