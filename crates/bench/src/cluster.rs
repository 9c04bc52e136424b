//! `authzd-bench cluster`: several `authzd serve --store postgres://…`
//! nodes on one database, next to one redb node in the same run.
//! Measures acknowledged single-operation writes per second, with their
//! p50/p99, for each number of nodes × writers per node (every writer
//! toggling one subject's membership of a group of its own, through its
//! node; spread over `--tenants` tenants, writer *k* writing tenant
//! *k mod n*), and the cross-node propagation: one writer commits on the first
//! node at 100 writes a second while a Watch subscriber on the second
//! records, for each, the time from the commit (`committed_at`) to its
//! receipt there. With `--cold-start-subjects N`, also the cold start of
//! a node joining a database that holds a tenant of N subjects, next to a
//! redb node's restart over the same tenant. Every loop stops by itself
//! (its deadline, or a count).
//! Must not reach into the server: everything goes through gRPC.

use std::fmt;
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
    /// Commit to receipt, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
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
            "| store | nodes | writers per node | writes | writes/s | p50 ms | p99 ms | errors |"
        )?;
        writeln!(
            f,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )?;
        for r in &self.writes {
            writeln!(
                f,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
                r.store, r.nodes, r.writers, r.writes, r.per_sec, r.p50_ms, r.p99_ms, r.errors
            )?;
        }
        if !self.propagation.is_empty() {
            writeln!(
                f,
                "\ncross-node propagation: commit on node 1 -> receipt by a Watch on node 2, 100 writes/s\n"
            )?;
            writeln!(
                f,
                "| nodes | writes | received | p50 ms | p99 ms | max ms |"
            )?;
            writeln!(f, "| ---: | ---: | ---: | ---: | ---: | ---: |")?;
            for r in &self.propagation {
                writeln!(
                    f,
                    "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
                    r.nodes,
                    r.writes,
                    r.received,
                    r.p50_us / 1000.0,
                    r.p99_us / 1000.0,
                    r.max_us / 1000.0
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
    let (redb, _) = ChildServer::start_with(
        &binary,
        &folder.path().join("redb"),
        &[],
        START_TIMEOUT,
        "redb",
    )
    .await?;
    let channel = redb.remote()?.connect().await?;
    for &writers in &args.writers {
        let tenant = format!("bench-{run_id}-redb-{writers}");
        let row = throughput(
            std::slice::from_ref(&channel),
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
        for i in 0..n {
            let data = folder.path().join(format!("unused-{n}-{i}"));
            let (node, _) =
                ChildServer::start_with(&binary, &data, &store, START_TIMEOUT, &format!("node{i}"))
                    .await?;
            channels.push(node.remote()?.connect().await?);
            nodes.push(node);
        }
        for &writers in &args.writers {
            let tenant = format!("bench-{run_id}-pg{n}-{writers}");
            report.writes.push(
                throughput(&channels, &tenant, (writers, args.tenants), args.duration).await?,
            );
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

/// `writers` writers on each of `channels` (one per node) for `duration`,
/// spread over `tenants` tenants named after `tenant`.
async fn throughput(
    channels: &[ClientChannel],
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
    let last = tokio::sync::watch::Sender::new(0);
    let drained = tokio::spawn(feed::drain(streams, last.subscribe()));
    let through = feed::write(first.clone(), tenant, writes, PROPAGATION_PERIOD).await?;
    last.send_replace(through);
    let (h, received) = drained
        .await
        .map_err(|e| BenchError::Settings(format!("the subscriber failed: {e}")))??;
    let s = feed::stats(1, writes, &h, received);
    Ok(PropagationRow {
        nodes,
        writes,
        received,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        max_us: s.max_us,
    })
}
