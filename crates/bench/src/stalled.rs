//! `authzd-bench stalled`: what many `Watch` subscribers that stop reading
//! cost a server with its bound on what all streams hold together
//! (`--watch-memory-mib`). An `authzd serve` child is filled by the bulk
//! import; CheckAccess is measured idle (no subscribers); then `--stalled`
//! streams that never read and `--slow-readers` that read one message per
//! pause are opened, and one writer commits `--writes` writes that each
//! change permissions while CheckAccess is measured again. The child's
//! resident memory is read from `/proc` (its peak, `VmHWM`, covers the whole
//! phase); afterwards every stream is read to its end to learn how it ended:
//! resumably (RESOURCE_EXHAUSTED naming `after_revision`), with every write,
//! or otherwise. Every loop is bounded in count and by [`FEED_DEADLINE`].
//! Must not reach into the server: it sees only what a client sees.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::task::JoinSet;

use super::child::{ChildServer, Memory};
use super::feed::{self, FEED_DEADLINE};
use super::load::{Budget, Kind, Load};
use super::{BenchError, CallStats, bulk, command_line, parse_seconds, ratio};
use authzd_proto::pb;
use authzd_testkit::dataset::{Dataset, Sizes};

/// The tenant filled.
const TENANT: &str = "bench";
/// Longest the server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// The most streams of either kind.
const MAX_STREAMS: usize = 20_000;
/// The most writes.
const MAX_WRITES: u64 = 1_000_000;
/// The targets: peak resident memory, and CheckAccess p99 against
/// idle.
const TARGET_RSS: u64 = 600 * 1000 * 1000;
const TARGET_P99_RATIO: f64 = 2.0;

/// `authzd-bench stalled`.
#[derive(Debug, Clone, Args)]
pub struct StalledArgs {
    /// Subjects in the tenant (at least 100).
    #[arg(long, default_value_t = 10_000)]
    pub subjects: usize,
    /// Groups in the tenant.
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// Scopes in the tenant.
    #[arg(long, default_value_t = 1_000)]
    pub scopes: usize,
    /// Watch streams that never read.
    #[arg(long, default_value_t = 2_000)]
    pub stalled: usize,
    /// Watch streams that read one message per --slow-pause.
    #[arg(long, default_value_t = 200)]
    pub slow_readers: usize,
    /// Milliseconds a slow reader waits after each message.
    #[arg(long, default_value_t = 5)]
    pub slow_pause_ms: u64,
    /// Each Watch stream's HTTP/2 receive window in bytes: what a stream
    /// that never reads takes from the server before the server must hold
    /// its messages (the HTTP/2 default; tonic's own is 2 MiB, which would
    /// take every write into this process and leave the bound untested).
    #[arg(long, default_value_t = 65_535)]
    pub watch_stream_window: u32,
    /// Writes committed, each changing one subject's permissions.
    #[arg(long, default_value_t = 6_000)]
    pub writes: u64,
    /// The server's `--watch-memory-mib` [default: the server's default].
    #[arg(long)]
    pub watch_memory_mib: Option<u64>,
    /// CheckAccess calls in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// HTTP/2 connections the CheckAccess calls are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds each CheckAccess measurement lasts (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Most CheckAccess calls per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    pub requests: u64,
    /// Seed for the data and the questions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to create the data folder in [default: the system temporary
    /// folder].
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// The authzd binary run as the server [default: `authzd` beside this
    /// binary].
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Seconds the server may take to start, until it answers SERVING.
    #[arg(long, default_value = "600", value_parser = parse_seconds)]
    pub start_timeout: Duration,
}

impl StalledArgs {
    fn check(&self) -> Result<(), BenchError> {
        let fine = self.subjects >= 100
            && (1..=1024).contains(&self.concurrency)
            && (1..=64).contains(&self.connections)
            && self.stalled <= MAX_STREAMS
            && self.slow_readers <= MAX_STREAMS
            && (1..=MAX_WRITES).contains(&self.writes)
            && self.watch_stream_window >= 65_535;
        match fine {
            true => Ok(()),
            false => Err(BenchError::Settings(format!(
                "give --subjects ≥ 100, --concurrency 1..=1024, --connections 1..=64, --stalled and --slow-readers ≤ {MAX_STREAMS}, --writes 1..={MAX_WRITES}, --watch-stream-window ≥ 65535"
            ))),
        }
    }
}

/// How a group of Watch streams ended.
#[derive(Debug, Clone, Default)]
pub struct Endings {
    /// Ended with RESOURCE_EXHAUSTED naming the revision to resume after.
    pub resumable: usize,
    /// Received every write.
    pub complete: usize,
    /// Ended any other way (or not by the deadline).
    pub other: usize,
    /// The first of those other endings.
    pub first_other: Option<String>,
}

impl Endings {
    fn add(&mut self, ending: Ending) {
        match ending {
            Ending::Resumable => self.resumable += 1,
            Ending::Complete => self.complete += 1,
            Ending::Other(why) => {
                self.other += 1;
                self.first_other.get_or_insert(why);
            }
        }
    }
}

enum Ending {
    Resumable,
    Complete,
    Other(String),
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct StalledReport {
    /// Its settings.
    pub args: StalledArgs,
    /// CheckAccess with no subscribers.
    pub idle: CallStats,
    /// The server's memory after the idle measurement.
    pub idle_memory: Memory,
    /// CheckAccess while the subscribers are open and the writes flow.
    pub during: CallStats,
    /// The server's memory once every write was committed (its peak covers
    /// the whole run).
    pub after_writes: Memory,
    /// The last write's revision.
    pub last_revision: u64,
    /// How the streams that never read ended.
    pub stalled: Endings,
    /// How the slow readers ended.
    pub slow: Endings,
}

impl StalledReport {
    /// Every call succeeded and every stream ended resumably or complete.
    pub fn ok(&self) -> bool {
        self.idle.errors == 0
            && self.during.errors == 0
            && self.stalled.other == 0
            && self.slow.other == 0
    }
}

/// Runs it from the command line: prints the command and the report or the
/// error; returns whether it succeeded.
pub async fn command(args: &StalledArgs) -> bool {
    println!("command: {}", command_line());
    let outcome = tokio::select! {
        outcome = run(args) => outcome,
        _ = tokio::signal::ctrl_c() => Err(BenchError::Settings("interrupted".into())),
    };
    match outcome {
        Ok(report) => {
            print!("{report}");
            report.ok()
        }
        Err(e) => {
            eprintln!("authzd-bench stalled: {e}");
            false
        }
    }
}

/// Starts the server, fills it, measures, stops it.
pub async fn run(args: &StalledArgs) -> Result<StalledReport, BenchError> {
    args.check()?;
    let binary = match &args.server_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map(|bench| bench.with_file_name("authzd"))
            .map_err(|e| BenchError::Settings(format!("cannot find this binary: {e}")))?,
    };
    let parent = args.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    let mut folder = tempfile::Builder::new();
    folder.prefix("authzd-stalled-");
    // The server warns of a data folder other users can read.
    #[cfg(unix)]
    folder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let dir = folder
        .tempdir_in(&parent)
        .map_err(|source| BenchError::DataDir { parent, source })?;
    let extra: Vec<String> = args
        .watch_memory_mib
        .map(|m| vec!["--watch-memory-mib".to_string(), m.to_string()])
        .unwrap_or_default();
    let label = "authzd-bench stalled";
    let (server, _) =
        ChildServer::start_with(&binary, dir.path(), &extra, args.start_timeout, label).await?;
    let outcome = measure(args, &server, label).await;
    let stopped = server.stop(STOP_TIMEOUT).await;
    let report = outcome?;
    stopped?;
    Ok(report)
}

async fn measure(
    args: &StalledArgs,
    server: &ChildServer,
    label: &str,
) -> Result<StalledReport, BenchError> {
    let sizes = Sizes {
        subjects: args.subjects,
        groups: args.groups,
        scopes: args.scopes,
    };
    let data = Arc::new(Dataset::generate(sizes, args.seed));
    let remote = server.remote()?;
    bulk::import(remote.connect().await?, TENANT, &data, label).await?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(remote.connect().await?);
    }
    let load = Load {
        channels,
        tenant: TENANT.to_string(),
        data,
        seed: args.seed,
        concurrency: args.concurrency,
    };
    let budget = Budget {
        duration: args.duration,
        requests: args.requests,
    };
    eprintln!("{label}: CheckAccess idle");
    let idle = load.call(Kind::Check, budget).await?;
    let idle_memory = server.memory()?;

    let after = feed::prepare(remote.connect().await?, TENANT).await?;
    let n = args.stalled + args.slow_readers;
    let window = args.watch_stream_window;
    let watch_remote = remote
        .clone()
        .with(|e| e.initial_stream_window_size(window));
    let mut watch_channels = Vec::new();
    for _ in 0..feed::connections_for(n) {
        watch_channels.push(watch_remote.connect().await?);
    }
    eprintln!("{label}: opening {n} Watch streams");
    let mut streams = feed::subscribe(&watch_channels, TENANT, n, after).await?;
    let slow_streams = streams.split_off(args.stalled);
    let pause = Duration::from_millis(args.slow_pause_ms);
    // A slow reader needs at least one pause per write just to read them
    // all; the feed's deadline counts beyond that (a machine whose timers
    // overshoot 5 ms sleeps must not make it read as lost).
    let reading = pause.saturating_mul(u32::try_from(args.writes).unwrap_or(u32::MAX));
    let deadline = tokio::time::Instant::now() + reading + FEED_DEADLINE;
    let (last_tx, last_rx) = tokio::sync::watch::channel(0u64);
    let mut slow = JoinSet::new();
    for stream in slow_streams {
        slow.spawn(follow(stream, last_rx.clone(), pause, deadline));
    }

    eprintln!("{label}: {} writes and CheckAccess", args.writes);
    let writer = feed::write(remote.connect().await?, TENANT, args.writes, Duration::ZERO);
    let (last_revision, during) = tokio::join!(writer, load.call(Kind::Check, budget));
    let (last_revision, during) = (last_revision?, during?);
    let after_writes = server.memory()?;
    let _ = last_tx.send(last_revision);

    eprintln!("{label}: reading how each stream ended");
    let deadline = tokio::time::Instant::now() + FEED_DEADLINE;
    let mut stalled = JoinSet::new();
    for stream in streams {
        stalled.spawn(follow(stream, last_rx.clone(), Duration::ZERO, deadline));
    }
    Ok(StalledReport {
        args: args.clone(),
        idle,
        idle_memory,
        during,
        after_writes,
        last_revision,
        stalled: endings(stalled).await?,
        slow: endings(slow).await?,
    })
}

async fn endings(mut tasks: JoinSet<Ending>) -> Result<Endings, BenchError> {
    let mut endings = Endings::default();
    while let Some(ending) = tasks.join_next().await {
        endings.add(ending?);
    }
    Ok(endings)
}

/// Reads `stream`, waiting `pause` after each message, until it has every
/// revision up to the one `last` names, ends, or `deadline` passes.
async fn follow(
    mut stream: tonic::Streaming<pb::WatchResponse>,
    mut last: tokio::sync::watch::Receiver<u64>,
    pause: Duration,
    deadline: tokio::time::Instant,
) -> Ending {
    let mut seen = 0u64;
    loop {
        let target = *last.borrow_and_update();
        if target != 0 && seen >= target {
            return Ending::Complete;
        }
        tokio::select! {
            m = stream.message() => match m {
                Ok(Some(message)) => {
                    if message.revision_complete {
                        seen = message.revision;
                    }
                }
                Ok(None) => return Ending::Other("the stream closed without an error".into()),
                Err(status)
                    if status.code() == tonic::Code::ResourceExhausted
                        && status.message().contains("after_revision") =>
                {
                    return Ending::Resumable;
                }
                Err(status) => {
                    return Ending::Other(format!("{:?}: {}", status.code(), status.message()));
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                return Ending::Other("still open at the deadline".into());
            }
            changed = last.changed() => if changed.is_err() {
                return Ending::Other("the writer went away".into());
            },
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "missed" }
}

impl fmt::Display for StalledReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        let budget = a
            .watch_memory_mib
            .map_or("the default".to_string(), |m| format!("{m} MiB"));
        writeln!(
            f,
            "{} subjects; {} stalled Watch streams and {} slow readers (one message per {} ms), each stream's HTTP/2 window {} bytes; {} writes that each change permissions (to revision {}); Watch budget {budget}",
            a.subjects,
            a.stalled,
            a.slow_readers,
            a.slow_pause_ms,
            a.watch_stream_window,
            a.writes,
            self.last_revision
        )?;
        writeln!(
            f,
            "{:<34} {:>10} {:>9} {:>9} {:>7} {:>10} {:>10}",
            "phase", "req/s", "p50 µs", "p99 µs", "errors", "RSS", "peak RSS"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, c: &CallStats, m: Memory| {
            writeln!(
                f,
                "{:<34} {:>10.0} {:>9.1} {:>9.1} {:>7} {:>10} {:>10}",
                name,
                c.throughput(),
                c.p50_us,
                c.p99_us,
                c.errors,
                mb(m.rss),
                mb(m.peak)
            )
        };
        row(f, "CheckAccess idle", &self.idle, self.idle_memory)?;
        row(
            f,
            "CheckAccess, streams open, writes",
            &self.during,
            self.after_writes,
        )?;
        writeln!(
            f,
            "against idle: req/s {}, p50 {}, p99 {}; peak RSS {} of idle RSS",
            ratio(self.during.throughput(), self.idle.throughput()),
            ratio(self.during.p50_us, self.idle.p50_us),
            ratio(self.during.p99_us, self.idle.p99_us),
            ratio(self.after_writes.peak as f64, self.idle_memory.rss as f64)
        )?;
        for (name, e) in [("stalled", &self.stalled), ("slow readers", &self.slow)] {
            writeln!(
                f,
                "{name}: {} ended resumably (RESOURCE_EXHAUSTED naming after_revision), {} received every write, {} otherwise{}",
                e.resumable,
                e.complete,
                e.other,
                e.first_other
                    .as_ref()
                    .map_or(String::new(), |w| format!(" (first: {w})"))
            )?;
        }
        let p99 = self.during.p99_us <= TARGET_P99_RATIO * self.idle.p99_us;
        writeln!(
            f,
            "targets: peak RSS ≤ {}: {}; every stream not ended received every write: {}; CheckAccess p99 ≤ {TARGET_P99_RATIO}x idle: {}",
            mb(TARGET_RSS),
            met(self.after_writes.peak <= TARGET_RSS),
            met(self.stalled.other == 0 && self.slow.other == 0),
            met(p99)
        )
    }
}
