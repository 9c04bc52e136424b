//! `authzd-bench callpath`: what authzd's call path costs next to an empty
//! gRPC call. A bare tonic server (tonic-health's `Check` and nothing else:
//! no guard, no access log, no metrics, no layers) and authzd (in-process,
//! over a temporary folder, filled through the public API) run in this
//! process; the same load generator and client then measure, at each
//! concurrency: the bare server's `Health/Check`, authzd's `Health/Check`,
//! `CheckAccess` and `BatchCheckAccess` of 100 checks, and `CheckAccess` as
//! JSON over HTTP/1.1 to its HTTP/JSON listener (one keep-alive connection
//! per call in flight), and print the ratios authzd/bare,
//! BatchCheckAccess(100)/CheckAccess at the median, and JSON/gRPC
//! `CheckAccess` at the median, the 99th percentile and in throughput. Every
//! round runs each call in turn, so load from elsewhere on the machine
//! falls on all of them alike; the best round of each call is reported.
//! Must not reach into either server: it sees only what a client sees.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use super::CallStats;
use super::load::{Budget, Kind, Load};
use super::{BenchError, InProcess, command_line, default_data_parent, fill, parse_seconds, ratio};
use authzd_client::{ClientArgs, ClientChannel, Remote};
use authzd_testkit::dataset::{Dataset, Sizes};

/// The tenant filled.
const TENANT: &str = "bench";
/// The issues' targets: CheckAccess throughput against the bare server's,
/// BatchCheckAccess(100)'s median against CheckAccess's, and JSON
/// CheckAccess's median and 99th percentile against gRPC's.
const TARGET_CHECK_RATIO: f64 = 0.9;
const TARGET_BATCH_RATIO: f64 = 1.5;
const TARGET_JSON_RATIO: f64 = 1.5;

/// `authzd-bench callpath`.
#[derive(Debug, Clone, Args)]
pub struct CallPathArgs {
    /// Subjects in authzd's tenant.
    #[arg(long, default_value_t = 10_000)]
    pub subjects: usize,
    /// Groups in the tenant.
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// Scopes in the tenant.
    #[arg(long, default_value_t = 1_000)]
    pub scopes: usize,
    /// Calls in flight at once, one measurement each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency: Vec<usize>,
    /// Most HTTP/2 connections the calls are spread over (never more than
    /// the calls in flight).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds each call is measured for in each round (fractions allowed).
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Most calls per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    pub requests: u64,
    /// Rounds: each measures every call once, in turn; the best round of
    /// each call (by throughput) is reported.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Seed for the data and the questions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to create authzd's temporary data folder in [default: the
    /// system temporary folder].
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
}

/// The calls of one concurrency.
#[derive(Debug, Clone)]
pub struct CallPathRow {
    /// Calls in flight.
    pub concurrency: usize,
    /// The bare tonic server's `Health/Check`.
    pub bare: CallStats,
    /// authzd's `Health/Check`.
    pub health: CallStats,
    /// authzd's `CheckAccess`.
    pub check: CallStats,
    /// authzd's `BatchCheckAccess` of 100.
    pub batch: CallStats,
    /// authzd's `CheckAccess` as JSON over HTTP/1.1.
    pub json: CallStats,
}

impl CallPathRow {
    fn calls(&self) -> [(&'static str, &CallStats); 5] {
        [
            ("bare tonic Health/Check", &self.bare),
            ("authzd Health/Check", &self.health),
            ("authzd CheckAccess", &self.check),
            ("authzd BatchCheckAccess (100)", &self.batch),
            ("authzd CheckAccess HTTP/JSON", &self.json),
        ]
    }

    fn check_ratio(&self) -> f64 {
        self.check.throughput() / self.bare.throughput()
    }

    fn batch_ratio(&self) -> f64 {
        self.batch.p50_us / self.check.p50_us
    }

    fn json_met(&self) -> bool {
        self.json.p50_us <= TARGET_JSON_RATIO * self.check.p50_us
            && self.json.p99_us <= TARGET_JSON_RATIO * self.check.p99_us
    }
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct CallPathReport {
    /// Its settings.
    pub args: CallPathArgs,
    /// One row per concurrency.
    pub rows: Vec<CallPathRow>,
}

impl CallPathReport {
    /// Every call succeeded.
    pub fn ok(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.calls().iter().all(|(_, c)| c.errors == 0))
    }
}

/// Runs it from the command line: prints the command and the report or the
/// error; returns whether it succeeded.
pub async fn command(args: &CallPathArgs) -> bool {
    println!("command: {}", command_line());
    match run(args).await {
        Ok(report) => {
            print!("{report}");
            report.ok()
        }
        Err(e) => {
            eprintln!("authzd-bench callpath: {e}");
            false
        }
    }
}

/// A bare tonic server: tonic-health's service and nothing else.
struct Bare {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Bare {
    async fn start() -> Result<Bare, BenchError> {
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| BenchError::Start(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::Start(e.to_string()))?;
        // The same TCP setting authzd's listener has.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Ok(Bare { addr, stop, task })
    }

    async fn stop(self) -> Result<(), BenchError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BenchError::Server(format!("the bare tonic server: {e}"))),
            Err(e) => Err(BenchError::Task(e)),
        }
    }
}

/// Starts both servers, fills authzd, measures, stops them.
pub async fn run(args: &CallPathArgs) -> Result<CallPathReport, BenchError> {
    let fine = args.subjects >= 1
        && !args.concurrency.is_empty()
        && args.concurrency.iter().all(|c| (1..=1024).contains(c))
        && (1..=64).contains(&args.connections)
        && (1..=20).contains(&args.rounds);
    if !fine {
        return Err(BenchError::Settings(
            "give --subjects ≥ 1, --concurrency of 1..=1024 each, --connections 1..=64, --rounds 1..=20".into(),
        ));
    }
    let parent = args.data_parent.clone().unwrap_or_else(default_data_parent);
    let authzd = InProcess::start(parent).await?;
    let bare = match Bare::start().await {
        Ok(bare) => bare,
        Err(e) => {
            authzd.stop().await?;
            return Err(e);
        }
    };
    let outcome = measure(args, &authzd, bare.addr).await;
    let stopped = (authzd.stop().await, bare.stop().await);
    let rows = outcome?;
    stopped.0?;
    stopped.1?;
    Ok(CallPathReport {
        args: args.clone(),
        rows,
    })
}

async fn channels(remote: &Remote, n: usize) -> Result<Vec<ClientChannel>, BenchError> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(remote.connect().await?);
    }
    Ok(channels)
}

/// The better of two measurements of one call: the higher throughput.
fn best(a: Option<CallStats>, b: CallStats) -> CallStats {
    match a {
        Some(a) if a.errors > 0 || a.throughput() >= b.throughput() => a,
        _ => b,
    }
}

async fn measure(
    args: &CallPathArgs,
    authzd: &InProcess,
    bare: SocketAddr,
) -> Result<Vec<CallPathRow>, BenchError> {
    let json = Kind::JsonCheck(authzd.http);
    let remote = |addr: SocketAddr| {
        Remote::new(&addr.to_string(), &ClientArgs::default())
            .map(|r| r.with(|e| e.tcp_nodelay(true).connect_timeout(super::CALL_TIMEOUT)))
    };
    let (authzd, bare) = (remote(authzd.addr)?, remote(bare)?);
    let sizes = Sizes {
        subjects: args.subjects,
        groups: args.groups,
        scopes: args.scopes,
    };
    let data = Arc::new(Dataset::generate(sizes, args.seed));
    eprintln!("authzd-bench callpath: filling {} subjects", args.subjects);
    fill::fill(authzd.connect().await?, TENANT, &data).await?;
    let budget = Budget {
        duration: args.duration,
        requests: args.requests,
    };
    let mut rows = Vec::new();
    for &concurrency in &args.concurrency {
        let n = args.connections.min(concurrency);
        let load = |channels| Load {
            channels,
            tenant: TENANT.to_string(),
            data: data.clone(),
            seed: args.seed,
            concurrency,
        };
        let on_bare = load(channels(&bare, n).await?);
        let on_authzd = load(channels(&authzd, n).await?);
        let mut measured: [Option<CallStats>; 5] = Default::default();
        for round in 1..=args.rounds {
            eprintln!("authzd-bench callpath: concurrency {concurrency}, round {round}");
            let calls = [
                (&on_bare, Kind::Health),
                (&on_authzd, Kind::Health),
                (&on_authzd, Kind::Check),
                (&on_authzd, Kind::BatchCheck),
                (&on_authzd, json),
            ];
            for (slot, (load, kind)) in measured.iter_mut().zip(calls) {
                let stats = load.call(kind, budget).await?;
                *slot = Some(best(slot.take(), stats));
            }
        }
        let [
            Some(bare),
            Some(health),
            Some(check),
            Some(batch),
            Some(json),
        ] = measured
        else {
            return Err(BenchError::Settings("no round ran".into()));
        };
        rows.push(CallPathRow {
            concurrency,
            bare,
            health,
            check,
            batch,
            json,
        });
    }
    Ok(rows)
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "missed" }
}

impl fmt::Display for CallPathReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        writeln!(
            f,
            "authzd in-process ({} subjects) and a bare tonic server (tonic-health's Check only) in this process; one client (gRPC over at most {} HTTP/2 connections, JSON over one HTTP/1.1 keep-alive connection per call in flight); best of {} rounds of {} s per call",
            a.subjects,
            a.connections,
            a.rounds,
            a.duration.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:>5} {:<30} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "conc", "call", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "errors"
        )?;
        for row in &self.rows {
            for (name, c) in row.calls() {
                writeln!(
                    f,
                    "{:>5} {:<30} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                    row.concurrency,
                    name,
                    c.throughput(),
                    c.p50_us,
                    c.p99_us,
                    c.p999_us,
                    c.errors
                )?;
                if let Some(e) = &c.first_error {
                    writeln!(f, "      first error: {e}")?;
                }
            }
            writeln!(
                f,
                "{:>5} authzd/bare req/s: Health {}, CheckAccess {}; p50: Health {}, CheckAccess {}; BatchCheckAccess(100)/CheckAccess p50 {}",
                "",
                ratio(row.health.throughput(), row.bare.throughput()),
                ratio(row.check.throughput(), row.bare.throughput()),
                ratio(row.health.p50_us, row.bare.p50_us),
                ratio(row.check.p50_us, row.bare.p50_us),
                ratio(row.batch.p50_us, row.check.p50_us),
            )?;
            writeln!(
                f,
                "{:>5} JSON/gRPC CheckAccess: p50 {}, p99 {}, req/s {}",
                "",
                ratio(row.json.p50_us, row.check.p50_us),
                ratio(row.json.p99_us, row.check.p99_us),
                ratio(row.json.throughput(), row.check.throughput()),
            )?;
        }
        let checks = self
            .rows
            .iter()
            .all(|r| r.check_ratio() >= TARGET_CHECK_RATIO);
        let batches = self
            .rows
            .iter()
            .all(|r| r.batch_ratio() <= TARGET_BATCH_RATIO);
        let json = self.rows.iter().all(CallPathRow::json_met);
        writeln!(
            f,
            "targets: CheckAccess ≥ {TARGET_CHECK_RATIO}x bare req/s at every concurrency: {}; BatchCheckAccess(100) p50 ≤ {TARGET_BATCH_RATIO}x CheckAccess p50 at every concurrency: {}; JSON CheckAccess p50 and p99 ≤ {TARGET_JSON_RATIO}x gRPC CheckAccess's at every concurrency: {}",
            met(checks),
            met(batches),
            met(json)
        )
    }
}
