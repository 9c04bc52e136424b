//! `authzd-bench`: a loopback load generator.
//!
//! It starts a server in-process on 127.0.0.1:0 over a temporary data
//! folder (or uses one given with `--target`), fills one tenant with
//! `authzd_testkit::dataset` data through the public gRPC API, then measures two calls in
//! turn at a fixed concurrency: `grpc.health.v1.Health/Check`, an empty call
//! that is the floor of what any call costs on this server, and
//! `CheckAccess` with random questions. Speed is quoted as a ratio of the two,
//! both measured in the same run, so figures from different machines compare.
//!
//! Every load loop is bounded in time and in count and stops by itself; each
//! call is also bounded by [`CALL_TIMEOUT`]. This module owns the flags, the
//! run (server, fill, measurements) and the report; `fill` sends the data,
//! `load` runs the loops. Must not talk to redb or reach into the server's
//! internals: everything it measures goes through gRPC, as a client would
//! see it. `authzd-bench scale` ([`scale`]) measures how the figures grow
//! with the tenant, on a server run as a child process; `authzd-bench
//! stalled` ([`stalled`]) what Watch streams that stop reading cost one;
//! `authzd-bench callpath` ([`callpath`]) authzd's calls next to a bare
//! tonic server's empty call.

#![allow(
    clippy::indexing_slicing,
    reason = "a benchmark: an index out of range is a failed run"
)]

mod bulk;
pub mod callpath;
mod child;
pub mod cluster;
mod csv_shape;
mod feed;
mod fill;
mod load;
mod replica;
pub mod scale;
pub mod stalled;
mod writes;

pub use bulk::ImportStats;
pub use child::Memory;
pub use fill::FillStats;
pub use load::CallStats;
pub use replica::{LagRow, ReplicaStats};
pub use writes::WideStats;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::load::{Budget, Kind, Load};
use authzd_client::{ClientArgs, ClientError, Remote};
use authzd_server::{self as server, ServerError};
use authzd_service::Service;
use authzd_service::auth::Callers;
use authzd_service::config::Config;
use authzd_testkit::dataset::{Dataset, Sizes};

/// Longest a single call may take before the bench gives up on it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest the bench waits for the in-process server to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `authzd bench`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another bench instead of this one.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Use the server at this address instead of starting one in-process.
    /// It must run the built-in schema; the filled tenant stays there.
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// The tenant to fill [default: "bench"; with --target, "bench-", the Unix time and the process id].
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
    /// Feed phase: measure commit-to-receipt latency with each of these
    /// numbers of Watch subscribers (comma-separated, e.g. 1,100,1000),
    /// then CheckAccess while the largest number is subscribed and writes
    /// flow. Empty: no feed phase.
    #[arg(long, value_delimiter = ',')]
    pub subscribers: Vec<usize>,
    /// Writes committed per feed measurement.
    #[arg(long, default_value_t = 200)]
    pub feed_writes: u64,
    /// Write phase: measure single-operation writes with each of these
    /// numbers of concurrent writers (comma-separated, e.g. 1,16,64).
    /// Empty: no write phase.
    #[arg(long, value_delimiter = ',')]
    pub writers: Vec<usize>,
    /// Group-wide phase: put every subject into one group, then measure
    /// CheckAccess while a role is assigned to and removed from that group
    /// over and over, next to CheckAccess just before.
    #[arg(long)]
    pub wide_group: bool,
    /// Folder to create the temporary data folder in [default: the system
    /// temporary folder, a real disk here, so that write figures include
    /// the fsync; /dev/shm fills faster but hides it].
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// Replica phase: the read replica at this address follows --target;
    /// measure Health and CheckAccess on it next to the primary's, then
    /// the replication lag (primary commit to receipt through the
    /// replica's Watch). Uses the same TLS and token options.
    #[arg(long, requires = "target", conflicts_with = "subscribers")]
    pub replica: Option<SocketAddr>,
    /// Writes committed per replication-lag measurement.
    #[arg(long, default_value_t = 500)]
    pub replica_writes: u64,
    /// TLS and token, for --target.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The benches besides the default one.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Build a tenant of each given size through the bulk import in a real
    /// server process, restart it, and measure import, memory, cold start,
    /// data size, checks, listings and writes; prints markdown tables with
    /// the growth per subject.
    Scale(scale::ScaleArgs),
    /// Start 1, 2, 3… `authzd serve --store postgres://…` nodes on one
    /// database (and one redb node, in the same run) and measure
    /// acknowledged writes per second with 1, 16, 64… writers per node, and
    /// the propagation from a commit on one node to a Watch on another;
    /// prints markdown tables.
    Cluster(cluster::ClusterArgs),
    /// Start a server, measure CheckAccess idle, then open many Watch
    /// streams that never read and a few slow readers, commit writes that
    /// each change permissions, and report CheckAccess, the server's peak
    /// resident memory (next to idle) and how every stream ended.
    Stalled(stalled::StalledArgs),
    /// Start authzd and a bare tonic server (an empty call, nothing else)
    /// in this process and measure, with the same client at each
    /// concurrency, the bare call, authzd's Health, CheckAccess and
    /// BatchCheckAccess of 100 checks; prints the ratios.
    Callpath(callpath::CallPathArgs),
}

impl BenchArgs {
    fn budget(&self) -> Budget {
        Budget {
            duration: self.duration,
            requests: self.requests,
        }
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let quoted = authzd_core::model::Quoted(s);
    let secs: f64 = s.parse().map_err(|e| format!("{quoted}: {e}"))?;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{quoted}: give 0 to 3600 seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{quoted}: {e}"))
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
    /// The server process of `bench scale` failed, or did not stop cleanly.
    #[error("the server process: {0}")]
    Child(String),
    /// A connection could not be made, or the TLS or token options could
    /// not be used.
    #[error(transparent)]
    Connect(#[from] ClientError),
    /// A call of the fill failed.
    #[error("{what}: {}: {message}", authzd_client::status::code_name(*code))]
    Rpc {
        /// What the call was doing.
        what: String,
        /// Its status code.
        code: tonic::Code,
        /// Its status message.
        message: String,
    },
    /// A call or a step did not finish in time.
    #[error("{what}: no answer within {} s", after.as_secs_f64())]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
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
    /// The feed phase, per number of subscribers.
    pub feed: Vec<feed::FeedStats>,
    /// CheckAccess while the most subscribers listen and writes flow.
    pub check_under_feed: Option<(usize, CallStats)>,
    /// Single-operation writes, per number of concurrent writers.
    pub writers: Vec<(usize, CallStats)>,
    /// The group-wide phase.
    pub wide: Option<WideStats>,
    /// The replica phase.
    pub replica: Option<ReplicaStats>,
}

impl Report {
    /// Every measured call.
    fn calls(&self) -> impl Iterator<Item = &CallStats> {
        let wide = self.wide.iter().flat_map(|w| [&w.idle, &w.during]);
        let replica = self.replica.iter().flat_map(|r| [&r.health, &r.check]);
        [&self.health, &self.check]
            .into_iter()
            .chain(self.writers.iter().map(|(_, c)| c))
            .chain(wide)
            .chain(replica)
    }

    /// Whether every measured call succeeded.
    pub fn ok(&self) -> bool {
        self.calls().all(|c| c.errors == 0)
    }
}

/// Runs `authzd bench` from the command line: prints the command, the
/// report or the error; returns whether it succeeded.
pub async fn command(args: &BenchArgs) -> bool {
    match &args.command {
        Some(BenchCommand::Scale(scale)) => return scale::command(scale).await,
        Some(BenchCommand::Cluster(cluster)) => return cluster::command(cluster).await,
        Some(BenchCommand::Stalled(stalled)) => return stalled::command(stalled).await,
        Some(BenchCommand::Callpath(callpath)) => return callpath::command(callpath).await,
        None => {}
    }
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

/// A server started in-process over a temporary folder, every caller
/// trusted, with its HTTP/JSON listener on a port of its own (idle unless a
/// bench calls it).
struct InProcess {
    addr: SocketAddr,
    /// The HTTP/JSON listener.
    http: SocketAddr,
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
        let http_listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| BenchError::Start(e.to_string()))?;
        let http = http_listener
            .local_addr()
            .map_err(|e| BenchError::Start(e.to_string()))?;
        let edge = server::http::HttpEdge {
            listener: http_listener,
            cors_origins: Vec::new(),
            playground: None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::serve_edges(
                service,
                Arc::new(Callers::trust_all()),
                listener,
                None,
                None,
                Some(edge),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        Ok(Self {
            addr,
            http,
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
    std::env::temp_dir()
}

/// Runs the bench: server, fill, the two measured calls.
pub async fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    if args.subjects == 0 || args.concurrency == 0 || args.connections == 0 {
        return Err(BenchError::Settings(
            "--subjects, --concurrency and --connections must be at least 1".into(),
        ));
    }
    let (remote, in_process) = match args.target {
        Some(addr) => (Remote::new(&addr.to_string(), &args.client)?, None),
        None if args.client.any() => {
            return Err(BenchError::Settings(
                "TLS and token options need --target; the in-process server is plaintext on loopback".into(),
            ));
        }
        None => {
            let parent = args.data_parent.clone().unwrap_or_else(default_data_parent);
            let server = InProcess::start(parent).await?;
            let remote = Remote::new(&server.addr.to_string(), &ClientArgs::default())?;
            (remote, Some(server))
        }
    };
    let remote = remote.with(|endpoint| endpoint.tcp_nodelay(true).connect_timeout(CALL_TIMEOUT));
    let data_dir = in_process.as_ref().map(|s| s.dir.path().to_path_buf());
    let outcome = measure(args, &remote).await;
    // Stop the server whatever happened, and report its failure only if
    // the run itself went well.
    let stopped = match in_process {
        Some(server) => server.stop().await,
        None => Ok(()),
    };
    let measured = outcome?;
    stopped?;
    Ok(Report {
        args: args.clone(),
        server: match args.target {
            Some(a) => format!("{a} (--target)"),
            None => format!("{} (in-process)", remote.target()),
        },
        data_dir,
        fill: measured.fill,
        health: measured.health,
        check: measured.check,
        feed: measured.feed.0,
        check_under_feed: measured.feed.1,
        writers: measured.writers,
        wide: measured.wide,
        replica: measured.replica,
        tenant: measured.tenant,
    })
}

/// What [`measure`] found.
struct Measured {
    tenant: String,
    fill: FillStats,
    health: CallStats,
    check: CallStats,
    feed: FeedOutcome,
    writers: Vec<(usize, CallStats)>,
    wide: Option<WideStats>,
    replica: Option<ReplicaStats>,
}

type FeedOutcome = (Vec<feed::FeedStats>, Option<(usize, CallStats)>);

/// The feed phase: commit-to-receipt latency per number of subscribers,
/// then CheckAccess with the most subscribers listening to a steady
/// trickle of writes.
async fn measure_feed(
    args: &BenchArgs,
    remote: &Remote,
    load: &Load,
) -> Result<FeedOutcome, BenchError> {
    let Some(&most) = args.subscribers.iter().max() else {
        return Ok((Vec::new(), None));
    };
    let writer = remote.connect().await?;
    let mut after = feed::prepare(writer.clone(), &load.tenant).await?;
    let mut results = Vec::new();
    for &n in &args.subscribers {
        let (streams, last) = listen(remote, &load.tenant, n, after).await?;
        let drained = tokio::spawn(feed::drain(streams, last.subscribe()));
        after = feed::write(
            writer.clone(),
            &load.tenant,
            args.feed_writes,
            Duration::ZERO,
        )
        .await?;
        last.send_replace(after);
        let (h, received, _) = drained.await??;
        results.push(feed::stats(n, args.feed_writes, &h, received));
    }
    let (streams, last) = listen(remote, &load.tenant, most, after).await?;
    let drained = tokio::spawn(feed::drain(streams, last.subscribe()));
    let trickle = tokio::spawn({
        let (writer, tenant, writes) = (writer.clone(), load.tenant.clone(), args.feed_writes);
        async move { feed::write(writer, &tenant, writes, Duration::from_millis(10)).await }
    });
    let check = load.call(Kind::Check, args.budget()).await?;
    let final_revision = trickle.await??;
    last.send_replace(final_revision);
    drained.await??;
    Ok((results, Some((most, check))))
}

/// `n` subscriptions after `after` over their own connections, and the
/// sender that later tells them the last revision to wait for.
async fn listen(
    remote: &Remote,
    tenant: &str,
    n: usize,
    after: u64,
) -> Result<
    (
        Vec<tonic::Streaming<authzd_proto::pb::WatchResponse>>,
        tokio::sync::watch::Sender<u64>,
    ),
    BenchError,
> {
    let mut channels = Vec::new();
    for _ in 0..feed::connections_for(n) {
        channels.push(remote.connect().await?);
    }
    let streams = feed::subscribe(&channels, tenant, n, after).await?;
    Ok((streams, tokio::sync::watch::Sender::new(0)))
}

async fn measure(args: &BenchArgs, remote: &Remote) -> Result<Measured, BenchError> {
    let tenant = match (&args.tenant, args.target) {
        (Some(t), _) => t.clone(),
        (None, None) => "bench".to_string(),
        (None, Some(_)) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            format!("bench-{secs}-{}", std::process::id())
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
        channels.push(remote.connect().await?);
    }
    let fill_channel = channels
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Settings("--connections must be at least 1".to_string()))?;
    let fill = fill::fill(fill_channel, &tenant, &data).await?;
    let load = Load {
        channels,
        tenant: tenant.clone(),
        data,
        seed: args.seed,
        concurrency: args.concurrency,
    };
    let health = load.call(Kind::Health, args.budget()).await?;
    let check = load.call(Kind::Check, args.budget()).await?;
    let replica = match args.replica {
        Some(addr) => {
            let remote = Remote::new(&addr.to_string(), &args.client)?
                .with(|e| e.tcp_nodelay(true).connect_timeout(CALL_TIMEOUT));
            Some(replica::measure(args, &remote, &load, fill.revision).await?)
        }
        None => None,
    };
    let feed = measure_feed(args, remote, &load).await?;
    let writers = writes::writers(&args.writers, args.budget(), &load).await?;
    let wide = match args.wide_group {
        true => Some(writes::wide_group(args, &load).await?),
        false => None,
    };
    Ok(Measured {
        tenant,
        fill,
        health,
        check,
        feed,
        writers,
        wide,
        replica,
    })
}

/// The line saying how the bench was built and on how many CPUs it runs.
fn build_line(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let build = if cfg!(debug_assertions) {
        "debug (numbers not representative: use --release)"
    } else {
        "release"
    };
    writeln!(f, "build: {build}; {cpus} CPUs available")
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".to_string()
    }
}

/// One measured call as a table row, with `note` after it.
fn stats_row(f: &mut fmt::Formatter<'_>, label: &str, c: &CallStats, note: &str) -> fmt::Result {
    writeln!(
        f,
        "{:<26} {:>10} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>7}{note}",
        label,
        c.count,
        c.throughput(),
        c.p50_us,
        c.p99_us,
        c.p999_us,
        c.errors
    )
}

/// The row of ratios of `a` to `b`, column by column.
fn ratio_row(f: &mut fmt::Formatter<'_>, label: &str, a: &CallStats, b: &CallStats) -> fmt::Result {
    writeln!(
        f,
        "{:<26} {:>10} {:>10} {:>9} {:>9} {:>9}",
        label,
        "",
        ratio(a.throughput(), b.throughput()),
        ratio(a.p50_us, b.p50_us),
        ratio(a.p99_us, b.p99_us),
        ratio(a.p999_us, b.p999_us)
    )
}

/// The replica phase's rows: its calls (and their ratios to its floor and
/// to the primary's CheckAccess), then the lag table.
fn write_replica(f: &mut fmt::Formatter<'_>, r: &ReplicaStats, primary: &CallStats) -> fmt::Result {
    writeln!(f)?;
    writeln!(
        f,
        "replica: {} (applied the fill {:.2} s after its last reply)",
        r.target,
        r.catch_up.as_secs_f64()
    )?;
    stats_row(f, "replica Health/Check", &r.health, "")?;
    stats_row(f, "replica CheckAccess", &r.check, "")?;
    ratio_row(f, "replica CheckAccess / Health", &r.check, &r.health)?;
    ratio_row(f, "replica / primary CheckAccess", &r.check, primary)?;
    writeln!(f)?;
    writeln!(
        f,
        "replication lag: commit on the primary to receipt through the replica's Watch, after the replica applied it"
    )?;
    writeln!(
        f,
        "{:<26} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "writes", "received", "writes/s", "p50 µs", "p99 µs", "max µs"
    )?;
    for row in &r.lag {
        writeln!(
            f,
            "{:<26} {:>10} {:>10.0} {:>9.1} {:>9.1} {:>9.1}",
            format!("{} ({})", row.writes, row.pacing),
            row.received,
            row.writes_per_sec,
            row.p50_us,
            row.p99_us,
            row.max_us
        )?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
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
        build_line(f)?;
        writeln!(f, "server: {}", self.server)?;
        if let Some(dir) = &self.data_dir {
            writeln!(f, "data folder: {} (removed at exit)", dir.display())?;
        }
        let d = &self.fill;
        writeln!(
            f,
            "data: tenant {}: {} subjects ({} locked), {} groups ({} nested), {} scopes (depth {}), {} memberships, {} role assignments",
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
            stats_row(f, c.name, c, "")?;
        }
        let (h, c) = (&self.health, &self.check);
        ratio_row(f, "CheckAccess / Health", c, h)?;
        if let Some(r) = &self.replica {
            write_replica(f, r, c)?;
        }
        if !self.feed.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "feed: {} writes per row, each changing permissions; latency from commit to receipt at each subscriber",
                a.feed_writes
            )?;
            writeln!(
                f,
                "{:<26} {:>10} {:>9} {:>9} {:>9}",
                "subscribers", "received", "p50 µs", "p99 µs", "max µs"
            )?;
            for s in &self.feed {
                writeln!(
                    f,
                    "{:<26} {:>10} {:>9.1} {:>9.1} {:>9.1}",
                    s.subscribers, s.received, s.p50_us, s.p99_us, s.max_us
                )?;
            }
        }
        if let Some((n, c)) = &self.check_under_feed {
            writeln!(
                f,
                "CheckAccess with {n} subscribers and a write every 10 ms: {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs ({} / {} / {} of CheckAccess alone)",
                c.throughput(),
                c.p50_us,
                c.p99_us,
                ratio(c.throughput(), self.check.throughput()),
                ratio(c.p50_us, self.check.p50_us),
                ratio(c.p99_us, self.check.p99_us)
            )?;
        }
        if !self.writers.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "writes: each writer toggles its own subject's membership of its own group (one operation, one revision, fsynced before the reply)"
            )?;
            writeln!(
                f,
                "{:<26} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}",
                "writers", "count", "writes/s", "p50 µs", "p99 µs", "p999 µs", "errors"
            )?;
            let single = self.writers.first().map(|(_, c)| c);
            for (n, c) in &self.writers {
                let versus = single.map_or(String::new(), |s| {
                    format!(
                        "  ({} of the first row's writes/s)",
                        ratio(c.throughput(), s.throughput())
                    )
                });
                stats_row(f, &n.to_string(), c, &versus)?;
            }
        }
        if let Some(w) = &self.wide {
            writeln!(f)?;
            writeln!(
                f,
                "group-wide: viewer assigned to / removed from a group of {} members at the root (each write changing every member's permissions), end to end: p50 {:.1} ms alone; {} times while CheckAccess ran: p50 {:.1} ms, max {:.1} ms",
                w.members, w.idle_p50_ms, w.writes, w.p50_ms, w.max_ms
            )?;
            writeln!(
                f,
                "another tenant: one-subject CreateSubject end to end: p50 {:.1} ms, max {:.1} ms alone; {} times during {} group-wide writes: p50 {:.1} ms, max {:.1} ms",
                w.other_idle_ms.0,
                w.other_idle_ms.1,
                w.other_during.0,
                writes::IDLE_WIDE_WRITES,
                w.other_during.1,
                w.other_during.2
            )?;
            for (label, c) in [
                ("CheckAccess idle", &w.idle),
                ("CheckAccess during", &w.during),
            ] {
                stats_row(f, label, c, "")?;
            }
            ratio_row(f, "during / idle", &w.during, &w.idle)?;
        }
        writeln!(f)?;
        if c.count > 0 {
            writeln!(
                f,
                "CheckAccess answers: {:.1}% allowed",
                100.0 * c.positive as f64 / c.count as f64
            )?;
        }
        for call in self.calls() {
            if let Some(e) = &call.first_error {
                writeln!(f, "{} failed: {e}", call.name)?;
            }
        }
        Ok(())
    }
}
