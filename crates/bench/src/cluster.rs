//! `authzd-bench cluster`: several `authzd serve --store postgres://…`
//! nodes on one database, next to one redb node in the same run.
//! Measures acknowledged single-operation writes per second, with their
//! p50/p99, for each number of nodes × writers per node (every writer
//! toggling one subject's membership of a group of its own, through its
//! node; spread over `--tenants` tenants, writer *k* writing tenant
//! *k mod n*), and the cross-node propagation: one writer commits on the first
//! node at 100 writes a second while a Watch subscriber on the second
//! records, for each, the time to its receipt there from its
//! `committed_at` (stamped when the first node planned it, so its whole
//! commit is inside), from the first node's answer (its commit done) and
//! from its receipt by a Watch subscriber on the first node (which
//! publishes it once its `COMMIT` returned). Each node serves its metrics (`--metrics-listen`), and
//! every write row says how many writes each commit held and how long a
//! commit took, from the nodes' commit histograms read before and after
//! the measurement. With `--cold-start-subjects N`, also the cold start of
//! a node joining a database that holds a tenant of N subjects, next to a
//! redb node's restart over the same tenant. Every loop stops by itself
//! (its deadline, or a count).
//! Must not reach into the server: everything goes through gRPC.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::bulk;
use super::child::ChildServer;
use super::writes::membership;
use super::{BenchError, CALL_TIMEOUT, feed, parse_seconds, rpc_error};
use authzd_client::ClientChannel;
use authzd_proto::pb;
use authzd_proto::pb::directory_service_client::DirectoryServiceClient;
use authzd_proto::pb::membership_service_client::MembershipServiceClient;

/// Longest one node's start may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one node's stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Most writes one writer sends in one measurement, whatever the duration.
const MAX_WRITES_PER_WRITER: usize = 100_000;
/// The propagation writer's period: 100 writes a second.
const PROPAGATION_PERIOD: Duration = Duration::from_millis(10);
/// Slowest write latency recorded, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// `authzd-bench cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The PostgreSQL database the nodes share: `postgres://USER@HOST:PORT/DB`
    /// (give the password in AUTHZD_STORE rather than on the command line).
    /// Each run writes to tenants of its own, so a database may be reused.
    #[arg(long, env = "AUTHZD_STORE", value_name = "URL")]
    pub store: String,
    /// Numbers of nodes, comma-separated: one measurement per number.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// Writers per node, comma-separated: one measurement per number.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub writers: Vec<usize>,
    /// Tenants the writers of a measurement spread over (writer k writes
    /// tenant k mod this): 1 puts every writer in one tenant, where its
    /// writes keep one order.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Seconds each write measurement runs for (fractions allowed).
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Writes of the propagation measurement, at 100 a second.
    #[arg(long, default_value_t = 300)]
    pub propagation_writes: u64,
    /// Folder for the redb node's data folder [default: the system
    /// temporary folder, a real disk here, so that writes include the fsync].
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// The authzd binary run as the nodes [default: `authzd` beside this
    /// binary].
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Also measure the cold start of a node joining a database that holds
    /// a tenant of this many subjects (100 groups, 1,000 scopes), next to
    /// a redb node restarted over the same tenant. Off unless given.
    #[arg(long)]
    pub cold_start_subjects: Option<usize>,
}

/// One cold start.
#[derive(Debug, Clone)]
pub struct ColdStartRow {
    /// `redb` or `postgres`.
    pub store: &'static str,
    /// Subjects in the tenant.
    pub subjects: usize,
    /// Records the tenant's import wrote.
    pub records: usize,
    /// From spawning the process to its first SERVING answer.
    pub start: Duration,
}

/// One write measurement.
#[derive(Debug, Clone)]
pub struct WriteRow {
    /// `redb` or `postgres`.
    pub store: &'static str,
    /// Nodes written through.
    pub nodes: usize,
    /// Writers per node.
    pub writers: usize,
    /// Writes acknowledged.
    pub writes: u64,
    /// Writes refused or failed.
    pub errors: u64,
    /// Acknowledged writes per second, across the nodes.
    pub per_sec: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Group commits the nodes made during the measurement.
    pub commits: u64,
    /// Writes per commit, on average.
    pub per_commit: f64,
    /// A commit's mean duration (the store's transaction, waits for
    /// locks and the flush included), milliseconds.
    pub commit_ms: f64,
}

/// One propagation measurement.
#[derive(Debug, Clone)]
pub struct PropagationRow {
    /// Nodes running.
    pub nodes: usize,
    /// Writes committed on the first node.
    pub writes: u64,
    /// Revisions received by the subscriber on the second.
    pub received: u64,
    /// From the write's `committed_at` (stamped when the first node
    /// planned it, before its transaction) to its receipt, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// From the first node's answer to the write (its commit done) to the
    /// receipt, milliseconds.
    pub ack_p50_ms: f64,
    /// 99th percentile.
    pub ack_p99_ms: f64,
    /// Slowest.
    pub ack_max_ms: f64,
    /// From the receipt by a Watch subscriber on the first node (which
    /// publishes a write only once its `COMMIT` returned) to the receipt
    /// on the second, milliseconds: the clock the target is
    /// judged by (see docs/postgres.md).
    pub own_p50_ms: f64,
    /// 99th percentile.
    pub own_p99_ms: f64,
    /// Slowest.
    pub own_max_ms: f64,
}

/// What the cluster bench measured.
#[derive(Debug, Clone, Default)]
pub struct ClusterReport {
    /// Write throughput, redb first.
    pub writes: Vec<WriteRow>,
    /// Cross-node propagation, per number of nodes (from two).
    pub propagation: Vec<PropagationRow>,
    /// Cold starts, redb first (with `--cold-start-subjects`).
    pub cold_starts: Vec<ColdStartRow>,
}

impl ClusterReport {
    /// Whether every write was acknowledged and every revision received.
    pub fn ok(&self) -> bool {
        self.writes.iter().all(|r| r.errors == 0)
            && self.propagation.iter().all(|r| r.received >= r.writes)
    }
}

impl fmt::Display for ClusterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nsingle-operation writes (each writer toggles its own membership)\n"
        )?;
        writeln!(
            f,
            "| store | nodes | writers per node | writes | writes/s | p50 ms | p99 ms | errors | commits | writes/commit | commit ms |"
        )?;
        writeln!(
            f,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )?;
        for r in &self.writes {
            writeln!(
                f,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.1} | {:.2} |",
                r.store,
                r.nodes,
                r.writers,
                r.writes,
                r.per_sec,
                r.p50_ms,
                r.p99_ms,
                r.errors,
                r.commits,
                r.per_commit,
                r.commit_ms
            )?;
        }
        if !self.propagation.is_empty() {
            writeln!(
                f,
                "\ncross-node propagation: a write on node 1 -> receipt by a Watch on node 2, 100 writes/s, by three clocks: \
                 from its committed_at (planned on node 1: its two trips and flush included), from node 1's answer, \
                 and from its receipt by a Watch on node 1 (both after node 1's COMMIT returned)\n"
            )?;
            writeln!(
                f,
                "| nodes | writes | received | committed_at p50 ms | p99 ms | max ms | answer p50 ms | p99 ms | max ms | node 1 Watch p50 ms | p99 ms | max ms |"
            )?;
            writeln!(
                f,
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            )?;
            for r in &self.propagation {
                writeln!(
                    f,
                    "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    r.nodes,
                    r.writes,
                    r.received,
                    r.p50_us / 1000.0,
                    r.p99_us / 1000.0,
                    r.max_us / 1000.0,
                    r.ack_p50_ms,
                    r.ack_p99_ms,
                    r.ack_max_ms,
                    r.own_p50_ms,
                    r.own_p99_ms,
                    r.own_max_ms
                )?;
            }
        }
        if let Some(redb) = self.cold_starts.iter().find(|r| r.store == "redb") {
            writeln!(
                f,
                "\ncold start: spawn to first SERVING, over a tenant already stored (redb: the node restarted; postgres: a node joining)\n"
            )?;
            writeln!(f, "| store | subjects | records | start s | vs redb |")?;
            writeln!(f, "| --- | ---: | ---: | ---: | ---: |")?;
            for r in &self.cold_starts {
                writeln!(
                    f,
                    "| {} | {} | {} | {:.2} | {:.2}x |",
                    r.store,
                    r.subjects,
                    r.records,
                    r.start.as_secs_f64(),
                    r.start.as_secs_f64() / redb.start.as_secs_f64().max(1e-9)
                )?;
            }
        }
        Ok(())
    }
}

/// Runs `authzd-bench cluster` from the command line.
pub async fn command(args: &ClusterArgs) -> bool {
    // The URL may hold a password: the command line is not echoed.
    println!(
        "command: authzd-bench cluster --nodes {:?} --writers {:?} --tenants {} --duration {:?} (store {})",
        args.nodes,
        args.writers,
        args.tenants,
        args.duration,
        authzd_store_postgres::redacted(&args.store)
    );
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
            eprintln!("authzd bench cluster: {e}");
            false
        }
    }
}

/// The redb node, then each number of PostgreSQL nodes.
pub async fn run(args: &ClusterArgs) -> Result<ClusterReport, BenchError> {
    if args.nodes.contains(&0) || args.writers.contains(&0) || args.tenants == 0 {
        return Err(BenchError::Settings(
            "--nodes, --writers and --tenants take numbers from 1".into(),
        ));
    }
    let binary = match &args.server_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map(|bench| bench.with_file_name("authzd"))
            .map_err(|e| BenchError::Settings(format!("cannot find this binary: {e}")))?,
    };
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut report = ClusterReport::default();

    let parent = args.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    let folder = tempfile::Builder::new()
        .prefix("authzd-bench-cluster-")
        .tempdir_in(&parent)
        .map_err(|e| BenchError::Settings(format!("cannot make a data folder: {e}")))?;
    let (flags, redb_metrics) = metrics_flags(&[])?;
    let (redb, _) = ChildServer::start_with(
        &binary,
        &folder.path().join("redb"),
        &flags,
        START_TIMEOUT,
        "redb",
    )
    .await?;
    let channel = redb.remote()?.connect().await?;
    for &writers in &args.writers {
        let tenant = format!("bench-{run_id}-redb-{writers}");
        let row = throughput(
            std::slice::from_ref(&channel),
            &[redb_metrics],
            &tenant,
            (writers, args.tenants),
            args.duration,
        )
        .await?;
        report.writes.push(WriteRow {
            store: "redb",
            ..row
        });
    }
    redb.stop(STOP_TIMEOUT).await?;

    let store = vec!["--store".to_owned(), args.store.clone()];
    for &n in &args.nodes {
        let mut nodes = Vec::with_capacity(n);
        let mut channels = Vec::with_capacity(n);
        let mut metrics = Vec::with_capacity(n);
        for i in 0..n {
            let data = folder.path().join(format!("unused-{n}-{i}"));
            let (flags, at) = metrics_flags(&store)?;
            let (node, _) =
                ChildServer::start_with(&binary, &data, &flags, START_TIMEOUT, &format!("node{i}"))
                    .await?;
            channels.push(node.remote()?.connect().await?);
            metrics.push(at);
            nodes.push(node);
        }
        for &writers in &args.writers {
            let tenant = format!("bench-{run_id}-pg{n}-{writers}");
            let row = throughput(
                &channels,
                &metrics,
                &tenant,
                (writers, args.tenants),
                args.duration,
            )
            .await?;
            report.writes.push(row);
        }
        if let [first, second, ..] = channels.as_slice() {
            let tenant = format!("bench-{run_id}-propagation-{n}");
            report
                .propagation
                .push(propagation(first, second, &tenant, n, args.propagation_writes).await?);
        }
        for node in nodes {
            node.stop(STOP_TIMEOUT).await?;
        }
    }
    if let Some(subjects) = args.cold_start_subjects {
        let tenant = format!("bench-{run_id}-cold");
        report.cold_starts = cold_starts(&binary, folder.path(), &store, &tenant, subjects).await?;
    }
    Ok(report)
}

/// The same tenant of `subjects` subjects imported into a redb node (then
/// restarted) and through a PostgreSQL node (then another node joins):
/// each cold start from spawn to SERVING.
async fn cold_starts(
    binary: &std::path::Path,
    folder: &std::path::Path,
    store: &[String],
    tenant: &str,
    subjects: usize,
) -> Result<Vec<ColdStartRow>, BenchError> {
    let sizes = authzd_testkit::dataset::Sizes {
        subjects,
        groups: 100,
        scopes: 1_000,
    };
    let data = authzd_testkit::dataset::Dataset::generate(sizes, 17);
    let mut rows = Vec::with_capacity(2);
    let redb_data = folder.join("cold-redb");
    let (redb, _) =
        ChildServer::start_with(binary, &redb_data, &[], START_TIMEOUT, "cold-redb").await?;
    let imported =
        bulk::import(redb.remote()?.connect().await?, tenant, &data, "cold-redb").await?;
    redb.stop(STOP_TIMEOUT).await?;
    let (redb, start) =
        ChildServer::start_with(binary, &redb_data, &[], START_TIMEOUT, "cold-redb").await?;
    redb.stop(STOP_TIMEOUT).await?;
    rows.push(ColdStartRow {
        store: "redb",
        subjects,
        records: imported.records,
        start,
    });
    let (writer, _) = ChildServer::start_with(
        binary,
        &folder.join("cold-pg-writer"),
        store,
        START_TIMEOUT,
        "cold-pg-writer",
    )
    .await?;
    let imported =
        bulk::import(writer.remote()?.connect().await?, tenant, &data, "cold-pg").await?;
    writer.stop(STOP_TIMEOUT).await?;
    let (joining, start) = ChildServer::start_with(
        binary,
        &folder.join("cold-pg-joining"),
        store,
        START_TIMEOUT,
        "cold-pg-joining",
    )
    .await?;
    joining.stop(STOP_TIMEOUT).await?;
    rows.push(ColdStartRow {
        store: "postgres",
        subjects,
        records: imported.records,
        start,
    });
    Ok(rows)
}

/// `flags` and `--metrics-listen` on a free loopback port, which is
/// returned.
fn metrics_flags(flags: &[String]) -> Result<(Vec<String>, SocketAddr), BenchError> {
    // Bound and let go: the node binds it a moment later.
    let at = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::Settings(format!("no free port for a node's metrics: {e}")))?;
    let mut flags = flags.to_vec();
    flags.extend(["--metrics-listen".to_owned(), at.to_string()]);
    Ok((flags, at))
}

/// The nodes' group commits so far, from their metrics.
#[derive(Debug, Clone, Copy, Default)]
struct Commits {
    /// Group commits.
    count: f64,
    /// Writes they held.
    writes: f64,
    /// Seconds they took.
    seconds: f64,
}

impl Commits {
    /// Reads every node's metrics and adds them up.
    async fn read(nodes: &[SocketAddr]) -> Result<Commits, BenchError> {
        let mut total = Commits::default();
        for &node in nodes {
            let text = scrape(node).await?;
            let value = |name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            total.count += value("authzd_write_group_writes_count");
            total.writes += value("authzd_write_group_writes_sum");
            total.seconds += value("authzd_write_commit_duration_seconds_sum");
        }
        Ok(total)
    }

    /// The commits made between `before` and `self`: their number, writes
    /// per commit and mean milliseconds.
    fn since(self, before: Commits) -> (u64, f64, f64) {
        let count = self.count - before.count;
        if count <= 0.0 {
            return (0, 0.0, 0.0);
        }
        let per = |x: f64| x / count;
        (
            count as u64,
            per(self.writes - before.writes),
            per(self.seconds - before.seconds) * 1000.0,
        )
    }
}

/// `GET /metrics` of a node.
async fn scrape(node: SocketAddr) -> Result<String, BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = |e: std::io::Error| BenchError::Child(format!("reading metrics at {node}: {e}"));
    let read = async {
        let mut stream = tokio::net::TcpStream::connect(node).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok(text)
    };
    tokio::time::timeout(CALL_TIMEOUT, read)
        .await
        .map_err(|_| BenchError::Timeout {
            what: format!("metrics at {node}"),
            after: CALL_TIMEOUT,
        })?
        .map_err(failed)
}

/// `writers` writers on each of `channels` (one per node, whose metrics
/// are at `metrics`) for `duration`, spread over `tenants` tenants named
/// after `tenant`.
async fn throughput(
    channels: &[ClientChannel],
    metrics: &[SocketAddr],
    tenant: &str,
    (writers, tenants): (usize, usize),
    duration: Duration,
) -> Result<WriteRow, BenchError> {
    let total = channels.len() * writers;
    // Every writer has created its group before the clock starts.
    let ready = Arc::new(tokio::sync::Barrier::new(total + 1));
    let start = Arc::new(tokio::sync::watch::Sender::new(None::<Instant>));
    let mut tasks = tokio::task::JoinSet::new();
    for (node, channel) in channels.iter().enumerate() {
        for w in 0..writers {
            let channel = channel.clone();
            let tenant = match tenants {
                1 => tenant.to_owned(),
                _ => format!("{tenant}-t{}", (node * writers + w) % tenants),
            };
            let ready = ready.clone();
            let mut started = start.subscribe();
            tasks.spawn(async move {
                let id = format!("w{node}-{w}");
                let prepared = prepare(&channel, &tenant, &id).await;
                ready.wait().await;
                prepared?;
                let Ok(at) = started.wait_for(Option::is_some).await.map(|s| *s) else {
                    return Err(BenchError::Settings("the measurement never started".into()));
                };
                let deadline = at.unwrap_or_else(Instant::now) + duration;
                toggle(channel, &tenant, &id, deadline).await
            });
        }
    }
    ready.wait().await;
    let before = Commits::read(metrics).await?;
    let began = Instant::now();
    start.send_replace(Some(began));
    let mut histogram = latencies()?;
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (h, e) = done.map_err(|e| BenchError::Settings(format!("a writer failed: {e}")))??;
        histogram
            .add(&h)
            .map_err(|e| BenchError::Histogram(e.to_string()))?;
        errors += e;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let (commits, per_commit, commit_ms) = Commits::read(metrics).await?.since(before);
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1e6;
    Ok(WriteRow {
        store: "postgres",
        nodes: channels.len(),
        writers,
        writes: histogram.len(),
        errors,
        per_sec: if elapsed > 0.0 {
            histogram.len() as f64 / elapsed
        } else {
            0.0
        },
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        commits,
        per_commit,
        commit_ms,
    })
}

fn latencies() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Creates writer `id`'s subject and group.
async fn prepare(channel: &ClientChannel, tenant: &str, id: &str) -> Result<(), BenchError> {
    let mut directory = DirectoryServiceClient::new(channel.clone());
    directory
        .create_subject(pb::CreateSubjectRequest {
            tenant: tenant.to_owned(),
            subject: Some(pb::Subject {
                id: id.to_owned(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .map_err(rpc_error(format!("creating subject {id}")))?;
    directory
        .create_group(pb::CreateGroupRequest {
            tenant: tenant.to_owned(),
            group: Some(pb::Group {
                id: id.to_owned(),
                title: id.to_owned(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .map_err(rpc_error(format!("creating group {id}")))?;
    Ok(())
}

/// Toggles subject `id` in group `id` until `deadline`; the latencies of
/// the acknowledged writes and the count of the others.
async fn toggle(
    channel: ClientChannel,
    tenant: &str,
    id: &str,
    deadline: Instant,
) -> Result<(Histogram<u64>, u64), BenchError> {
    let mut client = MembershipServiceClient::new(channel);
    let mut histogram = latencies()?;
    let mut errors = 0;
    for i in 0..MAX_WRITES_PER_WRITER {
        if Instant::now() >= deadline {
            break;
        }
        let request = pb::ManageMembershipRequest {
            tenant: tenant.to_owned(),
            operations: vec![membership(id, id.to_owned(), i % 2 == 0)],
            options: None,
            dry_run: false,
        };
        let sent = Instant::now();
        match tokio::time::timeout(CALL_TIMEOUT, client.manage_membership(request)).await {
            Ok(Ok(_)) => {
                let ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(MAX_LATENCY_NS);
                histogram
                    .record(ns.clamp(1, MAX_LATENCY_NS))
                    .map_err(|e| BenchError::Histogram(e.to_string()))?;
            }
            _ => errors += 1,
        }
    }
    Ok((histogram, errors))
}

/// Writes on `first` at 100 a second while a Watch on `second` records
/// each commit's receipt.
async fn propagation(
    first: &ClientChannel,
    second: &ClientChannel,
    tenant: &str,
    nodes: usize,
    writes: u64,
) -> Result<PropagationRow, BenchError> {
    let after = feed::prepare(first.clone(), tenant).await?;
    // The Watch may start only once the second node holds `after`.
    let mut access = pb::access_service_client::AccessServiceClient::new(second.clone());
    access
        .check_access(pb::CheckAccessRequest {
            tenant: tenant.to_owned(),
            subject: "nobody".into(),
            permission: "document:read".into(),
            at_least_revision: after,
            ..Default::default()
        })
        .await
        .map_err(rpc_error("CheckAccess on the second node"))?;
    let streams = feed::subscribe(std::slice::from_ref(second), tenant, 1, after).await?;
    // A subscriber on the first node too: it receives each write only
    // once the first node's `COMMIT` returned (the write durable and
    // visible), through the same path as the second's.
    let own = feed::subscribe(std::slice::from_ref(first), tenant, 1, after).await?;
    let last = tokio::sync::watch::Sender::new(0);
    let drained = tokio::spawn(feed::drain(streams, last.subscribe()));
    let own_drained = tokio::spawn(feed::drain(own, last.subscribe()));
    let acks = feed::write_acked(first.clone(), tenant, writes, PROPAGATION_PERIOD).await?;
    last.send_replace(acks.last().map_or(0, |(revision, _)| *revision));
    let subscriber_failed = |e| BenchError::Settings(format!("the subscriber failed: {e}"));
    let (h, received, receipts) = drained.await.map_err(subscriber_failed)??;
    let (_, _, own_receipts) = own_drained.await.map_err(subscriber_failed)??;
    let s = feed::stats(1, writes, &h, received);
    let after_ack = since(&acks, &receipts)?;
    let after_own = since(&own_receipts, &receipts)?;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    Ok(PropagationRow {
        nodes,
        writes,
        received,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        max_us: s.max_us,
        ack_p50_ms: ms(&after_ack, 0.5),
        ack_p99_ms: ms(&after_ack, 0.99),
        ack_max_ms: after_ack.max() as f64 / 1e6,
        own_p50_ms: ms(&after_own, 0.5),
        own_p99_ms: ms(&after_own, 0.99),
        own_max_ms: after_own.max() as f64 / 1e6,
    })
}

/// From each revision's moment in `from` to its receipt in `receipts`
/// (wall-clock nanoseconds); a receipt before that moment counts as 0.
fn since(from: &[(u64, i64)], receipts: &[(u64, i64)]) -> Result<Histogram<u64>, BenchError> {
    let from: std::collections::HashMap<u64, i64> = from.iter().copied().collect();
    let mut h = latencies()?;
    for (revision, at) in receipts {
        if let Some(start) = from.get(revision) {
            let ns = u64::try_from(at.saturating_sub(*start)).unwrap_or(0);
            h.saturating_record(ns.max(1));
        }
    }
    Ok(h)
}
