//! `authzd bench scale`: how authzd's figures grow with the tenant, for
//! each of two data shapes ([`Shape`]). For each size and shape, a fresh
//! data folder and a real server process (see [`child`](super::child)):
//! the tenant is built (the bench shape through the bulk `Import` RPC,
//! [`bulk`](super::bulk); the CSV shape by `authzd import` of a generated
//! file, [`csv_shape`](super::csv_shape)), the server is stopped with
//! SIGTERM and started again on the same folder, and the calls are
//! measured on the cold-started server with the load loops of `authzd
//! bench`, last the group-wide role write with single writes to another
//! tenant beside it. The report is two markdown tables, one row per size
//! and shape with a row of growth per subject between sizes of a shape,
//! ready for docs/performance.md.
//!
//! Sizes run smallest first, each in every shape; a size that fails ends
//! the run, and the rows before it are still reported. Must not reach into
//! the server: memory comes from the OS, everything else from gRPC.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::bulk::{self, ImportStats};
use super::child::{ChildServer, Memory};
use super::csv_shape;
use super::load::{Budget, Kind, Load};
use super::{BenchError, CallStats, build_line, command_line, parse_seconds, ratio, writes};
use authzd_testkit::dataset::{Dataset, Sizes};

/// The tenant every size fills.
const TENANT: &str = "bench";
/// Longest a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// The fewest subjects a size may have (the data needs a handful of
/// subjects in each role, and the subject put in every group must exist).
pub const MIN_SUBJECTS: usize = 100;
/// The most subjects a size may have.
pub const MAX_SUBJECTS: usize = 10_000_000;
/// The most sizes in one run.
pub const MAX_SIZES: usize = 10;
/// The most groups, scopes, concurrency, connections and writers.
const MAX_GROUPS: usize = 10_000;
const MAX_SCOPES: usize = 100_000;
const MAX_CONCURRENCY: usize = 1024;
const MAX_CONNECTIONS: usize = 64;
const MAX_WRITERS: usize = 256;
/// Deepest a data folder is walked to add up its size.
const MAX_FOLDER_DEPTH: usize = 4;

/// The shape of a tenant's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// The bench's own data: nested groups, direct roles for one subject in
    /// ten, no attributes; loaded through the `Import` RPC.
    Bench,
    /// A CSV export's: one attribute on every subject (`dept`, a few
    /// distinct values), one or two flat groups each; the subjects loaded
    /// by `authzd import` from a CSV file.
    Csv,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::Bench => "bench",
            Shape::Csv => "csv",
        })
    }
}

/// `authzd bench scale`.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Tenant sizes to measure, in subjects, comma-separated (e.g.
    /// 10000,100000,1000000; each from 100 to 10,000,000); each gets a
    /// fresh data folder and server.
    #[arg(long, value_delimiter = ',', required = true)]
    pub subjects: Vec<usize>,
    /// Data shapes measured at each size, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "bench,csv")]
    pub shapes: Vec<Shape>,
    /// Groups per tenant (nested three to a parent under 10 top groups).
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// Scopes per tenant, as a tree of depth 4 under the root.
    #[arg(long, default_value_t = 1_000)]
    pub scopes: usize,
    /// Calls in flight at once for Health and CheckAccess, comma-separated:
    /// one measurement of each per number.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub concurrency: Vec<usize>,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Seconds each call is measured for (fractions allowed).
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Most requests measured per call.
    #[arg(long, default_value_t = 200_000)]
    pub requests: u64,
    /// Concurrent writers of single membership writes, comma-separated: one
    /// measurement per number.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub writers: Vec<usize>,
    /// Seed for the data and the questions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to create the data folders in [default: the system temporary
    /// folder, a real disk here, so that writes include the fsync].
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// The authzd binary run as the server [default: `authzd` beside this
    /// binary, as cargo builds them into one folder].
    #[arg(long)]
    pub server_binary: Option<PathBuf>,
    /// Seconds each start of the server may take, until it answers SERVING.
    #[arg(long, default_value = "600", value_parser = parse_seconds)]
    pub start_timeout: Duration,
}

impl ScaleArgs {
    fn budget(&self) -> Budget {
        Budget {
            duration: self.duration,
            requests: self.requests,
        }
    }

    /// Refuses settings out of their bounds, naming the flag.
    fn check(&self) -> Result<(), BenchError> {
        let within = |flag: &str, values: &[usize], low: usize, high: usize| match values
            .iter()
            .find(|v| !(low..=high).contains(*v))
        {
            Some(v) => Err(BenchError::Settings(format!(
                "--{flag}: {v} is outside {low}..={high}"
            ))),
            None => Ok(()),
        };
        within("subjects", &self.subjects, MIN_SUBJECTS, MAX_SUBJECTS)?;
        if self.subjects.len() > MAX_SIZES {
            return Err(BenchError::Settings(format!(
                "--subjects: at most {MAX_SIZES} sizes, got {}",
                self.subjects.len()
            )));
        }
        within("groups", &[self.groups], 1, MAX_GROUPS)?;
        within("scopes", &[self.scopes], 1, MAX_SCOPES)?;
        within("concurrency", &self.concurrency, 1, MAX_CONCURRENCY)?;
        within("connections", &[self.connections], 1, MAX_CONNECTIONS)?;
        within("writers", &self.writers, 1, MAX_WRITERS)?;
        match self.concurrency.is_empty() || self.writers.is_empty() || self.shapes.is_empty() {
            true => Err(BenchError::Settings(
                "--concurrency, --writers and --shapes need at least one value each".into(),
            )),
            false => Ok(()),
        }
    }
}

/// The group-wide role write of one size.
#[derive(Debug, Clone)]
pub struct WideWrite {
    /// Members of the group: every subject.
    pub members: usize,
    /// Time to put them all in it (batches of 10,000).
    pub fill: Duration,
    /// Writes timed (assign, remove, …).
    pub writes: usize,
    /// Their median end-to-end latency, in milliseconds.
    pub p50_ms: f64,
    /// The slowest, in milliseconds.
    pub max_ms: f64,
    /// One-subject writes to another tenant, alone: median and slowest, in
    /// milliseconds.
    pub other_idle_ms: (f64, f64),
    /// One-subject writes to another tenant while group-wide writes ran:
    /// how many, median and slowest.
    pub other_during: (usize, f64, f64),
}

/// Everything measured at one size.
#[derive(Debug, Clone)]
pub struct ScaleRow {
    /// The size.
    pub subjects: usize,
    /// The shape of the data.
    pub shape: Shape,
    /// The import (for the CSV shape, the `authzd import` run).
    pub import: ImportStats,
    /// The server's memory right after the import.
    pub after_import: Memory,
    /// Bytes in the data folder once the server stopped.
    pub data_bytes: u64,
    /// From spawning the server on the filled folder to its first SERVING.
    pub cold_start: Duration,
    /// The server's memory right after that cold start.
    pub after_start: Memory,
    /// `Health/Check` per concurrency.
    pub health: Vec<(usize, CallStats)>,
    /// `CheckAccess` per concurrency.
    pub check: Vec<(usize, CallStats)>,
    /// `ListSubjectsWithPermission` of a permission one subject holds.
    pub holders_rare: CallStats,
    /// `ListSubjectsWithPermission` of a permission most subjects hold.
    pub holders_common: CallStats,
    /// `ListEffectivePermissions` of a subject in every group.
    pub effective: CallStats,
    /// Single membership writes per number of writers.
    pub writers: Vec<(usize, CallStats)>,
    /// The group-wide role write, last, or why it failed (the figures
    /// before it still stand).
    pub wide: Result<WideWrite, String>,
}

impl ScaleRow {
    fn calls(&self) -> impl Iterator<Item = &CallStats> {
        let pairs = self.health.iter().chain(&self.check).chain(&self.writers);
        pairs
            .map(|(_, c)| c)
            .chain([&self.holders_rare, &self.holders_common, &self.effective])
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    /// The settings it ran with.
    pub args: ScaleArgs,
    /// One row per size that completed, smallest first.
    pub rows: Vec<ScaleRow>,
    /// The size and shape that failed, and why (the run stops there).
    pub failure: Option<(usize, Shape, String)>,
}

impl ScaleReport {
    /// Whether every size completed and every call succeeded.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && self
                .rows
                .iter()
                .all(|r| r.wide.is_ok() && r.calls().all(|c| c.errors == 0))
    }
}

/// Runs `authzd bench scale` from the command line: prints the command and
/// the report (or why it could not run); returns whether it succeeded. An
/// interrupt (Ctrl-C) stops the run, and its server, at once.
pub async fn command(args: &ScaleArgs) -> bool {
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
            eprintln!("authzd bench scale: {e}");
            false
        }
    }
}

/// Runs every size, smallest first, until one fails.
pub async fn run(args: &ScaleArgs) -> Result<ScaleReport, BenchError> {
    args.check()?;
    let binary = match &args.server_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map(|bench| bench.with_file_name("authzd"))
            .map_err(|e| BenchError::Settings(format!("cannot find this binary: {e}")))?,
    };
    let parent = args.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    let mut sizes = args.subjects.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let mut rows = Vec::new();
    let mut failure = None;
    'sizes: for subjects in sizes {
        for &shape in &args.shapes {
            match measure(args, subjects, shape, &binary, &parent).await {
                Ok(row) => rows.push(row),
                Err(e) => {
                    failure = Some((subjects, shape, e.to_string()));
                    break 'sizes;
                }
            }
        }
    }
    Ok(ScaleReport {
        args: args.clone(),
        rows,
        failure,
    })
}

/// Bytes in the regular files under `dir`.
fn folder_bytes(dir: &Path, depth: usize) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() {
            total += entry.metadata()?.len();
        } else if kind.is_dir() && depth < MAX_FOLDER_DEPTH {
            total += folder_bytes(&entry.path(), depth + 1)?;
        }
    }
    Ok(total)
}

/// One size in one shape: import, restart, measure, stop.
async fn measure(
    args: &ScaleArgs,
    subjects: usize,
    shape: Shape,
    binary: &Path,
    parent: &Path,
) -> Result<ScaleRow, BenchError> {
    let label = format!("authzd bench scale: {subjects} subjects, {shape} shape");
    let sizes = Sizes {
        subjects,
        groups: args.groups,
        scopes: args.scopes,
    };
    let data = match shape {
        Shape::Bench => Dataset::generate(sizes, args.seed),
        Shape::Csv => csv_shape::flatten(Dataset::generate(sizes, args.seed)),
    };
    let data = Arc::new(data);
    let mut folder = tempfile::Builder::new();
    folder.prefix("authzd-scale-");
    // The server warns of a data folder other users can read.
    #[cfg(unix)]
    folder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let dir = folder
        .tempdir_in(parent)
        .map_err(|source| BenchError::DataDir {
            parent: parent.to_path_buf(),
            source,
        })?;
    eprintln!("{label}: data folder {}", dir.path().display());

    let (server, _) = ChildServer::start(binary, dir.path(), args.start_timeout, &label).await?;
    let channel = server.remote()?.connect().await?;
    let import = match shape {
        Shape::Bench => bulk::import(channel, TENANT, &data, &label).await?,
        Shape::Csv => {
            let target = server.target();
            csv_shape::import(channel, target, binary, parent, TENANT, &data, &label).await?
        }
    };
    let after_import = server.memory()?;
    server.stop(STOP_TIMEOUT).await?;
    let data_bytes = folder_bytes(dir.path(), 0)
        .map_err(|e| BenchError::Child(format!("measuring {}: {e}", dir.path().display())))?;

    eprintln!("{label}: cold start");
    let (server, cold_start) =
        ChildServer::start(binary, dir.path(), args.start_timeout, &label).await?;
    let after_start = server.memory()?;
    let remote = server.remote()?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(remote.connect().await?);
    }
    let load = Load {
        channels,
        tenant: TENANT.to_string(),
        data,
        seed: args.seed,
        concurrency: 1,
    };
    let budget = args.budget();
    eprintln!("{label}: calls");
    let (mut health, mut check) = (Vec::new(), Vec::new());
    for &n in &args.concurrency {
        let at = Load {
            concurrency: n,
            ..load.clone()
        };
        health.push((n, at.call(Kind::Health, budget).await?));
        check.push((n, at.call(Kind::Check, budget).await?));
    }
    let holders_rare = load.call(Kind::HoldersRare, budget).await?;
    let holders_common = load.call(Kind::HoldersCommon, budget).await?;
    let effective = load.call(Kind::Effective, budget).await?;
    eprintln!("{label}: writes");
    let writers = writes::writers(&args.writers, budget, &load).await?;
    eprintln!("{label}: group-wide role write");
    let wide = wide_write(&load).await.map_err(|e| e.to_string());
    server.stop(STOP_TIMEOUT).await?;
    Ok(ScaleRow {
        subjects,
        shape,
        import,
        after_import,
        data_bytes,
        cold_start,
        after_start,
        health,
        check,
        holders_rare,
        holders_common,
        effective,
        writers,
        wide,
    })
}

/// Every subject into one group, then a role assigned to it and removed,
/// a few times, each timed; then single writes to another tenant, alone
/// and while more of those group-wide writes run.
async fn wide_write(load: &Load) -> Result<WideWrite, BenchError> {
    let filling = Instant::now();
    let members = writes::fill_wide_group(load).await?;
    let fill = filling.elapsed();
    let latencies = writes::toggle_alone(load, writes::IDLE_WIDE_WRITES).await?;
    let count = latencies.len();
    let (p50_ms, max_ms) = writes::median_and_max(latencies);
    let (other_idle_ms, other_during) = writes::other_tenant(load).await?;
    Ok(WideWrite {
        members,
        fill,
        writes: count,
        p50_ms,
        max_ms,
        other_idle_ms,
        other_during,
    })
}

/// How a figure grows from one size to the next.
#[derive(Debug, Clone, Copy)]
enum Growth {
    /// Bytes added per subject added, and the ratio.
    Bytes,
    /// Seconds added per subject added, and the ratio.
    Seconds,
    /// Only the ratio (rates, counts).
    Ratio,
    /// No figure (the phase failed): no growth either.
    Missing,
}

/// One cell: its text, and the figure its growth is computed from.
struct Cell {
    text: String,
    value: f64,
    growth: Growth,
}

/// One column of a table.
struct Column {
    title: String,
    cell: Box<dyn Fn(&ScaleRow) -> Cell>,
}

fn column(title: impl Into<String>, cell: impl Fn(&ScaleRow) -> Cell + 'static) -> Column {
    Column {
        title: title.into(),
        cell: Box::new(cell),
    }
}

/// `n` with thousands separators.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `value` with three significant digits (at most two decimals).
fn significant(value: f64, unit: &str) -> String {
    match value.abs() {
        a if a >= 100.0 => format!("{value:.0} {unit}"),
        a if a >= 10.0 => format!("{value:.1} {unit}"),
        _ => format!("{value:.2} {unit}"),
    }
}

/// Bytes in binary units.
fn bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    significant(value, units[unit])
}

/// Seconds in the unit that reads best.
fn seconds(s: f64) -> String {
    let (scale, unit) = match s.abs() {
        a if a >= 1.0 => (1.0, "s"),
        a if a >= 1e-3 => (1e3, "ms"),
        a if a >= 1e-6 => (1e6, "µs"),
        _ => (1e9, "ns"),
    };
    significant(s * scale, unit)
}

fn memory_cell(m: Memory) -> Cell {
    Cell {
        text: format!("{} ({})", bytes(m.rss as f64), bytes(m.peak as f64)),
        value: m.rss as f64,
        growth: Growth::Bytes,
    }
}

/// p50 / p99 of a call, in milliseconds.
fn latency_cell(c: &CallStats, note: String) -> Cell {
    Cell {
        text: format!("{:.2} / {:.2} ms{note}", c.p50_us / 1e3, c.p99_us / 1e3),
        value: c.p50_us / 1e6,
        growth: Growth::Seconds,
    }
}

fn at(calls: &[(usize, CallStats)], n: usize) -> Option<&CallStats> {
    calls.iter().find(|(k, _)| *k == n).map(|(_, c)| c)
}

fn missing() -> Cell {
    Cell {
        text: "-".into(),
        value: 0.0,
        growth: Growth::Missing,
    }
}

/// Data, import and start-up.
fn size_columns() -> Vec<Column> {
    vec![
        column("records imported", |r| Cell {
            text: count(r.import.records),
            value: r.import.records as f64,
            growth: Growth::Ratio,
        }),
        column("import", |r| Cell {
            text: seconds(r.import.elapsed.as_secs_f64()),
            value: r.import.elapsed.as_secs_f64(),
            growth: Growth::Seconds,
        }),
        column("import rate", |r| Cell {
            text: format!("{} subjects/s", count(r.import.subjects_per_sec() as usize)),
            value: r.import.subjects_per_sec(),
            growth: Growth::Ratio,
        }),
        column("RSS after import (peak)", |r| memory_cell(r.after_import)),
        column("data folder", |r| Cell {
            text: bytes(r.data_bytes as f64),
            value: r.data_bytes as f64,
            growth: Growth::Bytes,
        }),
        column("data folder per subject", |r| Cell {
            text: bytes(r.data_bytes as f64 / r.subjects as f64),
            value: r.data_bytes as f64 / r.subjects as f64,
            growth: Growth::Ratio,
        }),
        column("cold start", |r| Cell {
            text: seconds(r.cold_start.as_secs_f64()),
            value: r.cold_start.as_secs_f64(),
            growth: Growth::Seconds,
        }),
        column("RSS after cold start (peak)", |r| {
            memory_cell(r.after_start)
        }),
    ]
}

/// The calls, p50 / p99.
fn call_columns(args: &ScaleArgs) -> Vec<Column> {
    let mut columns = Vec::new();
    for &n in &args.concurrency {
        columns.push(column(format!("Health, {n} in flight"), move |r| {
            at(&r.health, n).map_or_else(missing, |c| latency_cell(c, String::new()))
        }));
        columns.push(column(
            format!("CheckAccess, {n} in flight (× Health)"),
            move |r| match (at(&r.check, n), at(&r.health, n)) {
                (Some(c), Some(h)) => latency_cell(c, format!(" ({})", ratio(c.p50_us, h.p50_us))),
                _ => missing(),
            },
        ));
    }
    columns.push(column("ListSubjectsWithPermission, rare, page 100", |r| {
        latency_cell(&r.holders_rare, String::new())
    }));
    columns.push(column(
        "ListSubjectsWithPermission, common, page 100",
        |r| latency_cell(&r.holders_common, String::new()),
    ));
    columns.push(column(
        "ListEffectivePermissions, subject in every group",
        |r| latency_cell(&r.effective, String::new()),
    ));
    for &n in &args.writers {
        let title = match n {
            1 => "membership write, 1 writer".to_string(),
            _ => format!("membership writes, {n} writers"),
        };
        columns.push(column(title, move |r| {
            at(&r.writers, n).map_or_else(missing, |c| {
                latency_cell(c, format!(", {:.0} writes/s", c.throughput()))
            })
        }));
    }
    columns.push(column("group-wide role write (p50, max)", |r| {
        match &r.wide {
            Ok(w) => Cell {
                text: format!(
                    "{:.1} ms, {:.1} ms ({} members)",
                    w.p50_ms,
                    w.max_ms,
                    count(w.members)
                ),
                value: w.p50_ms / 1e3,
                growth: Growth::Seconds,
            },
            Err(_) => Cell {
                text: "failed (below)".into(),
                ..missing()
            },
        }
    }));
    columns.push(column(
        "write to another tenant during it (p50, max; alone p50)",
        |r| match &r.wide {
            Ok(w) => Cell {
                text: format!(
                    "{:.1} ms, {:.1} ms ({} writes); {:.1} ms",
                    w.other_during.1,
                    w.other_during.2,
                    count(w.other_during.0),
                    w.other_idle_ms.0
                ),
                value: w.other_during.1 / 1e3,
                growth: Growth::Seconds,
            },
            Err(_) => missing(),
        },
    ));
    columns
}

/// How `b` grew from `a` over `subjects` more subjects.
fn growth(a: &Cell, b: &Cell, subjects: f64) -> String {
    let times = ratio(b.value, a.value);
    let per = (b.value - a.value) / subjects;
    let sign = if per >= 0.0 { "+" } else { "-" };
    match (a.growth, b.growth) {
        (Growth::Missing, _) | (_, Growth::Missing) => "-".into(),
        (Growth::Bytes, _) => format!("{sign}{}/subject ({times})", bytes(per.abs())),
        (Growth::Seconds, _) => format!("{sign}{}/subject ({times})", seconds(per.abs())),
        (Growth::Ratio, _) => times,
    }
}

fn table(f: &mut fmt::Formatter<'_>, rows: &[ScaleRow], columns: &[Column]) -> fmt::Result {
    let titles: Vec<&str> = columns.iter().map(|c| c.title.as_str()).collect();
    writeln!(f, "| subjects | shape | {} |", titles.join(" | "))?;
    writeln!(f, "|---:|:---|{}", "---:|".repeat(columns.len()))?;
    let cells = |r: &ScaleRow| -> Vec<Cell> { columns.iter().map(|c| (c.cell)(r)).collect() };
    // The last row of each shape, to grow from.
    let mut previous: Vec<(Shape, usize, Vec<Cell>)> = Vec::new();
    for row in rows {
        let now = cells(row);
        let last = previous.iter().position(|(s, _, _)| *s == row.shape);
        if let Some((_, n, before)) = last.and_then(|i| previous.get(i)) {
            let more = (row.subjects - n) as f64;
            let grown: Vec<String> = before
                .iter()
                .zip(&now)
                .map(|(a, b)| growth(a, b, more))
                .collect();
            writeln!(
                f,
                "| *growth, {} → {}* | {} | {} |",
                count(*n),
                count(row.subjects),
                row.shape,
                grown.join(" | ")
            )?;
        }
        let texts: Vec<&str> = now.iter().map(|c| c.text.as_str()).collect();
        writeln!(
            f,
            "| {} | {} | {} |",
            count(row.subjects),
            row.shape,
            texts.join(" | ")
        )?;
        if let Some(i) = last {
            previous.remove(i);
        }
        previous.push((row.shape, row.subjects, now));
    }
    Ok(())
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.args;
        writeln!(
            f,
            "settings: --groups {} --scopes {} --connections {} --duration {} --requests {} --seed {}",
            a.groups,
            a.scopes,
            a.connections,
            a.duration.as_secs_f64(),
            a.requests,
            a.seed
        )?;
        build_line(f)?;
        for r in &self.rows {
            let i = &r.import;
            let wide = match &r.wide {
                Ok(w) => format!("group-wide group filled in {:.2} s", w.fill.as_secs_f64()),
                Err(e) => format!("group-wide write failed: {e}"),
            };
            writeln!(
                f,
                "{} subjects, {} shape: {} groups, {} scopes (created first, {:.2} s), {} memberships, {} role assignments; {} records in {} Import chunks, revision {}; {wide}",
                count(r.subjects),
                r.shape,
                i.groups,
                i.scopes,
                i.scopes_elapsed.as_secs_f64(),
                count(i.memberships),
                count(i.assignments),
                count(i.records),
                i.chunks,
                i.revision,
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Data, import and start-up (RSS: VmRSS, with VmHWM in brackets; growth: per subject added, and the ratio):"
        )?;
        writeln!(f)?;
        table(f, &self.rows, &size_columns())?;
        writeln!(f)?;
        writeln!(
            f,
            "Calls on the cold-started server, p50 / p99 (CheckAccess: its p50 as a multiple of Health's at the same concurrency; growth: of the p50):"
        )?;
        writeln!(f)?;
        table(f, &self.rows, &call_columns(a))?;
        for call in self.rows.iter().flat_map(ScaleRow::calls) {
            if let Some(e) = &call.first_error {
                writeln!(f, "{} failed: {e}", call.name)?;
            }
        }
        if let Some((n, shape, e)) = &self.failure {
            writeln!(f)?;
            writeln!(f, "{} subjects, {shape} shape, failed: {e}", count(*n))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(999), "999");
        assert_eq!(bytes(2048.0), "2.00 KiB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.50 GiB");
        assert_eq!(bytes(300.0), "300 B");
        assert_eq!(seconds(0.0017), "1.70 ms");
        assert_eq!(seconds(17e-6), "17.0 µs");
        assert_eq!(seconds(250.0), "250 s");
    }

    #[test]
    fn growth_is_per_subject_and_a_ratio() {
        let cell = |value, growth| Cell {
            text: String::new(),
            value,
            growth,
        };
        let g = growth(
            &cell(1_000_000.0, Growth::Bytes),
            &cell(3_048_000.0, Growth::Bytes),
            1000.0,
        );
        assert_eq!(g, "+2.00 KiB/subject (3.05x)");
        let g = growth(
            &cell(2.0, Growth::Seconds),
            &cell(1.0, Growth::Seconds),
            1e6,
        );
        assert_eq!(g, "-1.00 µs/subject (0.50x)");
        assert_eq!(
            growth(&cell(10.0, Growth::Ratio), &cell(5.0, Growth::Ratio), 1.0),
            "0.50x"
        );
    }
}
