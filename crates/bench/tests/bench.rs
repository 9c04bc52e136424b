//! `authzd-bench` end to end at tiny sizes: its server, fill, load loops
//! and report all run under `cargo test -p authzd-bench`. Nothing here is
//! timed: only counts are asserted. `authzd-bench scale` runs the real
//! `authzd` binary as its server, so these tests need it built first
//! (`cargo build --bin authzd`; `.ci/run` does).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use authzd_testkit as common;

/// `authzd-bench` with these flags, parsed as the command line would be.
fn bench_args(flags: &[&str]) -> authzd_bench::BenchArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        bench: authzd_bench::BenchArgs,
    }
    let line = ["authzd-bench"].iter().chain(flags);
    Line::try_parse_from(line).unwrap().bench
}

/// The `authzd` binary, as the scale bench's server.
fn server_binary() -> String {
    common::authzd_binary().to_string_lossy().into_owned()
}

/// A run with 50 subjects fills the tenant, makes both calls without a
/// single error, gets a mix of answers, and prints the table with ratios.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_end_to_end_at_tiny_sizes() {
    let args = bench_args(&[
        "--subjects",
        "50",
        "--groups",
        "12",
        "--scopes",
        "20",
        "--concurrency",
        "4",
        "--connections",
        "2",
        "--duration",
        "0.2",
        "--requests",
        "2000",
    ]);
    let report = authzd_bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.fill.subjects, 50);
    assert_eq!(report.fill.scopes, 20);
    assert_eq!(report.fill.creates, 50 + 12 + 20);
    assert!(report.fill.batches >= 1);
    assert!(report.health.count > 0 && report.health.count <= 2000);
    assert!(report.check.count > 0 && report.check.count <= 2000);
    assert_eq!(
        report.health.positive, report.health.count,
        "health is SERVING"
    );
    let text = report.to_string();
    assert!(text.contains("CheckAccess / Health"), "{text}");
}

/// The request budget stops a run by itself, however long the duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stops_at_the_request_budget() {
    let args = bench_args(&[
        "--subjects",
        "5",
        "--groups",
        "2",
        "--scopes",
        "3",
        "--concurrency",
        "3",
        "--connections",
        "1",
        "--duration",
        "600",
        "--requests",
        "40",
    ]);
    let report = authzd_bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.health.count, 40);
    assert_eq!(report.check.count, 40);
}

/// Bad settings are refused before anything starts.
#[tokio::test]
async fn bench_refuses_zero_concurrency() {
    let args = bench_args(&["--concurrency", "0"]);
    assert!(authzd_bench::run(&args).await.is_err());
}

/// The feed phase delivers every write to every subscriber (each write
/// changes permissions, so each reaches each subscriber once) and reports a
/// row per number of subscribers and CheckAccess while they listen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_feed_phase_delivers_every_write_to_every_subscriber() {
    let args = bench_args(&[
        "--subjects",
        "20",
        "--groups",
        "3",
        "--scopes",
        "5",
        "--concurrency",
        "2",
        "--connections",
        "1",
        "--duration",
        "0.2",
        "--requests",
        "500",
        "--subscribers",
        "1,3",
        "--feed-writes",
        "10",
    ]);
    let report = authzd_bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let received: Vec<(usize, u64)> = report
        .feed
        .iter()
        .map(|s| (s.subscribers, s.received))
        .collect();
    assert_eq!(received, vec![(1, 10), (3, 30)]);
    let (n, check) = report.check_under_feed.as_ref().unwrap();
    assert_eq!(*n, 3);
    assert!(check.count > 0 && check.errors == 0);
    assert!(report.to_string().contains("subscribers"), "{report}");
}

/// The write phases at tiny sizes: each number of writers gets a row of
/// committed writes, and the group-wide phase assigns and removes a role on
/// a group of every subject while CheckAccess runs, without errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_write_phases_report_writers_and_the_group_wide_write() {
    let args = bench_args(&[
        "--subjects",
        "30",
        "--groups",
        "3",
        "--scopes",
        "5",
        "--concurrency",
        "2",
        "--connections",
        "1",
        "--duration",
        "0.2",
        "--requests",
        "300",
        "--writers",
        "1,4",
        "--wide-group",
    ]);
    let report = authzd_bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let rows: Vec<usize> = report.writers.iter().map(|(n, _)| *n).collect();
    assert_eq!(rows, vec![1, 4]);
    assert!(report.writers.iter().all(|(_, c)| c.count > 0), "{report}");
    let wide = report.wide.as_ref().unwrap();
    assert_eq!(wide.members, 30);
    assert!(wide.writes > 0 && wide.during.count > 0, "{report}");
    assert!(report.to_string().contains("group-wide"), "{report}");
}

/// `authzd bench scale` with these flags, parsed as the command line would be.
fn scale_args(flags: &[&str]) -> authzd_bench::scale::ScaleArgs {
    let all: Vec<&str> = ["scale"].iter().chain(flags).copied().collect();
    match bench_args(&all).command {
        Some(authzd_bench::BenchCommand::Scale(args)) => args,
        _ => panic!("not the scale bench"),
    }
}

/// Tiny sizes of the bench shape, short calls, the real binary as the
/// server.
fn tiny_scale(subjects: &str, server: &str) -> authzd_bench::scale::ScaleArgs {
    tiny_scale_of("bench", subjects, server)
}

/// [`tiny_scale`] in these shapes.
fn tiny_scale_of(shapes: &str, subjects: &str, server: &str) -> authzd_bench::scale::ScaleArgs {
    scale_args(&[
        "--shapes",
        shapes,
        "--subjects",
        subjects,
        "--groups",
        "12",
        "--scopes",
        "20",
        "--concurrency",
        "1,3",
        "--connections",
        "1",
        "--writers",
        "1,2",
        "--duration",
        "0.1",
        "--requests",
        "200",
        "--start-timeout",
        "60",
        "--server-binary",
        server,
    ])
}

/// The scale bench at two tiny sizes, on the real binary run as a child:
/// each size imports its tenant in chunks, restarts the server, and
/// reports every figure with a plausible value (memory read from the
/// process, a data file on disk, every call answered, p50 at most p99),
/// and the tables carry a row per size and a growth row between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scale_reports_every_figure_at_two_tiny_sizes() {
    let args = tiny_scale("200,100", &server_binary());
    let report = authzd_bench::scale::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let sizes: Vec<usize> = report.rows.iter().map(|r| r.subjects).collect();
    assert_eq!(sizes, vec![100, 200], "smallest first");
    for row in &report.rows {
        let i = &row.import;
        assert_eq!(i.subjects, row.subjects);
        assert!(i.records > i.subjects + i.groups, "{report}");
        assert!(
            i.chunks >= 3,
            "groups, subjects, one subject in every group"
        );
        assert!(i.revision > 0 && !i.elapsed.is_zero());
        for m in [row.after_import, row.after_start] {
            assert!(m.rss > 0 && m.peak >= m.rss, "{m:?}");
        }
        assert!(row.data_bytes > 0);
        assert!(!row.cold_start.is_zero());
        let calls = row
            .health
            .iter()
            .chain(&row.check)
            .chain(&row.writers)
            .map(|(_, c)| c)
            .chain([&row.holders_rare, &row.holders_common, &row.effective]);
        for c in calls {
            assert!(c.count > 0 && c.count <= 200, "{}: {}", c.name, c.count);
            assert!(c.p50_us > 0.0 && c.p50_us <= c.p99_us, "{}", c.name);
        }
        let concurrencies: Vec<usize> = row.check.iter().map(|(n, _)| *n).collect();
        assert_eq!(concurrencies, vec![1, 3]);
        assert_eq!(
            row.holders_rare.positive, row.holders_rare.count,
            "the administrator holds it"
        );
        assert_eq!(row.effective.positive, row.effective.count);
        let w = row.wide.as_ref().unwrap();
        assert_eq!(w.members, row.subjects);
        assert!(w.writes > 0 && w.p50_ms > 0.0 && w.p50_ms <= w.max_ms);
        let (others, p50, max) = w.other_during;
        assert!(others > 0 && p50 > 0.0 && p50 <= max, "{report}");
        assert!(w.other_idle_ms.0 > 0.0);
    }
    let text = report.to_string();
    assert!(text.contains("| *growth, 100 → 200* | bench |"), "{text}");
    assert_eq!(text.matches("\n| 200 | bench |").count(), 2, "{text}");
}

/// The CSV shape at a tiny size: its subjects come in through `authzd
/// import` of a generated file (every subject, with its attribute, in one
/// or two flat groups), and every figure is there as for the bench shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scale_loads_the_csv_shape_through_authzd_import() {
    let args = tiny_scale_of("csv", "150", &server_binary());
    let report = authzd_bench::scale::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let [row] = report.rows.as_slice() else {
        panic!("one row: {report}");
    };
    assert_eq!(row.shape, authzd_bench::scale::Shape::Csv);
    let i = &row.import;
    assert_eq!((i.subjects, i.groups), (150, 12));
    assert!(i.chunks >= 3 && i.revision > 0 && !i.elapsed.is_zero());
    assert!(row.data_bytes > 0 && row.after_start.rss > 0);
    assert_eq!(
        row.holders_rare.positive, row.holders_rare.count,
        "the administrator holds it"
    );
    assert_eq!(row.effective.positive, row.effective.count);
    for (_, c) in row.check.iter().chain(&row.writers) {
        assert!(c.count > 0 && c.errors == 0, "{}", c.name);
    }
    let w = row.wide.as_ref().unwrap();
    assert_eq!(w.members, 150);
    assert!(w.other_during.0 > 0, "{report}");
    let text = report.to_string();
    assert_eq!(text.matches("\n| 150 | csv |").count(), 2, "{text}");
}

/// `authzd-bench scale` as the binary runs it (`authzd` beside it as the
/// server) prints both tables and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scale_runs_as_a_command_of_the_binary() {
    let flags = [
        "scale",
        "--subjects",
        "100",
        "--groups",
        "5",
        "--scopes",
        "5",
        "--concurrency",
        "1",
        "--connections",
        "1",
        "--writers",
        "1",
        "--duration",
        "0.05",
        "--requests",
        "50",
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_authzd-bench"))
            .args(flags)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| subjects | shape | records imported |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| subjects | shape | Health, 1 in flight |"),
        "{stdout}"
    );
    for shape in ["bench", "csv"] {
        let row = format!("\n| 100 | {shape} |");
        assert_eq!(stdout.matches(&row).count(), 2, "{stdout}");
    }
}

/// Sizes and counts outside their bounds are refused, naming the flag,
/// before any server starts.
#[tokio::test]
async fn bench_scale_refuses_settings_out_of_bounds() {
    let server = &server_binary();
    for (subjects, flag) in [("99", "--subjects"), ("10000001", "--subjects")] {
        let e = authzd_bench::scale::run(&tiny_scale(subjects, server))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(flag), "{e}");
    }
    let mut args = tiny_scale("100", server);
    args.writers = vec![0];
    let e = authzd_bench::scale::run(&args).await.unwrap_err();
    assert!(e.to_string().contains("--writers"), "{e}");
}

/// A server that exits without serving ends the run with the reason, and
/// no row.
#[tokio::test]
async fn bench_scale_reports_a_server_that_never_serves() {
    let report = authzd_bench::scale::run(&tiny_scale("100", "false"))
        .await
        .unwrap();
    assert!(!report.ok());
    assert!(report.rows.is_empty());
    let (size, _, why) = report.failure.unwrap();
    assert_eq!(size, 100);
    assert!(why.contains("exited before serving"), "{why}");
}

/// `authzd-bench --target PRIMARY --replica REPLICA` at tiny sizes: the
/// replica catches up with the fill, both calls run on it without an error,
/// and every write of both lag rows reaches its Watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_measures_a_replica_next_to_its_primary() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::spawn_binary(&dir.path().join("p"), None).await;
    let follow: Vec<std::ffi::OsString> =
        vec!["--follow".into(), format!("127.0.0.1:{}", p.port).into()];
    let r = common::spawn_binary_with(&dir.path().join("r"), &follow).await;
    let (target, replica_addr) = (
        format!("127.0.0.1:{}", p.port),
        format!("127.0.0.1:{}", r.port),
    );
    let args = bench_args(&[
        "--target",
        &target,
        "--replica",
        &replica_addr,
        "--subjects",
        "40",
        "--groups",
        "12",
        "--scopes",
        "20",
        "--concurrency",
        "2",
        "--connections",
        "1",
        "--duration",
        "0.2",
        "--requests",
        "500",
        "--replica-writes",
        "20",
    ]);
    let report = authzd_bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let measured = report.replica.as_ref().unwrap();
    assert!(measured.check.count > 0 && measured.health.count > 0);
    assert_eq!(measured.lag.len(), 2);
    for row in &measured.lag {
        assert_eq!(row.received, 20, "{report}");
    }
    assert!(report.to_string().contains("replica / primary CheckAccess"));
}

/// `authzd-bench cluster` at tiny settings against a fresh PostgreSQL
/// database (skipped with a notice without one, failed under `CI=true`):
/// every write acknowledged, the redb row first, each propagation write
/// received, a cold start of each store, the tables printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_bench_measures_nodes_on_one_database() {
    use authzd_store_postgres::test_database;
    let Some(server) = test_database::server_url("authzd-bench cluster") else {
        return;
    };
    let url = test_database::fresh(&server).await.unwrap();
    let args = match bench_args(&[
        "cluster",
        "--store",
        &url,
        "--nodes",
        "1,2",
        "--writers",
        "1,2",
        // One tenant per writer: writers of one tenant on several nodes
        // may lose the race for its head 16 times running and be refused
        // with ABORTED (counted as errors), which this smoke test of the
        // bench must not depend on.
        "--tenants",
        "4",
        "--duration",
        "0.3",
        "--propagation-writes",
        "10",
        "--cold-start-subjects",
        "200",
        "--server-binary",
        &server_binary(),
    ])
    .command
    {
        Some(authzd_bench::BenchCommand::Cluster(args)) => args,
        _ => panic!("not the cluster bench"),
    };
    let report = authzd_bench::cluster::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let stores: Vec<(&str, usize, usize)> = report
        .writes
        .iter()
        .map(|r| (r.store, r.nodes, r.writers))
        .collect();
    assert_eq!(
        stores,
        [
            ("redb", 1, 1),
            ("redb", 1, 2),
            ("postgres", 1, 1),
            ("postgres", 1, 2),
            ("postgres", 2, 1),
            ("postgres", 2, 2)
        ]
    );
    assert!(report.writes.iter().all(|r| r.writes > 0), "{report}");
    assert_eq!(report.propagation.len(), 1);
    assert_eq!(report.propagation[0].received, 10, "{report}");
    // The subscriber on node 1 received them too: the third clock has
    // figures.
    assert!(report.propagation[0].own_max_ms > 0.0, "{report}");
    assert!(
        report.to_string().contains("cross-node propagation"),
        "{report}"
    );
    let cold: Vec<(&str, usize)> = report
        .cold_starts
        .iter()
        .map(|r| (r.store, r.subjects))
        .collect();
    assert_eq!(cold, [("redb", 200), ("postgres", 200)], "{report}");
    assert!(report.to_string().contains("cold start"), "{report}");
}

/// The stalled-subscriber phase at tiny settings, under a 1 MiB Watch
/// budget: both CheckAccess measurements succeed, and every stream either
/// received every write or was ended naming the revision to resume after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_stalled_phase_ends_every_stream_resumably_or_complete() {
    let args = stalled_args(&[
        "--subjects",
        "100",
        "--groups",
        "3",
        "--scopes",
        "5",
        "--stalled",
        "20",
        "--slow-readers",
        "2",
        "--writes",
        "200",
        "--watch-memory-mib",
        "1",
        "--concurrency",
        "2",
        "--connections",
        "1",
        "--duration",
        "0.2",
        "--requests",
        "500",
        "--server-binary",
        &server_binary(),
    ]);
    let report = authzd_bench::stalled::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    assert!(report.idle.count > 0 && report.during.count > 0);
    assert_eq!(report.stalled.resumable + report.stalled.complete, 20);
    assert_eq!(report.slow.resumable + report.slow.complete, 2);
    assert!(report.after_writes.peak > 0);
    let text = report.to_string();
    assert!(text.contains("targets:"), "{text}");
}

/// `authzd-bench stalled` with these flags.
fn stalled_args(flags: &[&str]) -> authzd_bench::stalled::StalledArgs {
    let args = bench_args(&[&["stalled"], flags].concat());
    match args.command {
        Some(authzd_bench::BenchCommand::Stalled(s)) => s,
        other => panic!("not the stalled bench: {other:?}"),
    }
}

/// `authzd-bench callpath` at tiny settings: every call of both servers
/// (gRPC and authzd's HTTP/JSON `CheckAccess`) answers at each concurrency,
/// and the report gives the ratios and the targets (the figures themselves
/// belong to the docs, not to a test).
#[tokio::test]
async fn callpath_measures_authzd_next_to_a_bare_tonic_server() {
    let args = match bench_args(&[
        "callpath",
        "--subjects",
        "50",
        "--groups",
        "5",
        "--scopes",
        "10",
        "--concurrency",
        "1,4",
        "--duration",
        "0.2",
        "--requests",
        "200",
        "--rounds",
        "1",
    ])
    .command
    {
        Some(authzd_bench::BenchCommand::Callpath(c)) => c,
        other => panic!("not the callpath bench: {other:?}"),
    };
    let report = authzd_bench::callpath::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert!(row.bare.count > 0 && row.health.count > 0, "{report}");
        assert!(row.check.count > 0 && row.batch.count > 0, "{report}");
        assert!(row.json.count > 0, "{report}");
        // The same questions over both edges: some are allowed over each.
        assert!(row.check.positive > 0 && row.json.positive > 0, "{report}");
    }
    let text = report.to_string();
    assert!(
        text.contains("BatchCheckAccess(100)/CheckAccess p50"),
        "{text}"
    );
    assert!(text.contains("JSON/gRPC CheckAccess: p50"), "{text}");
    assert!(text.contains("targets:"), "{text}");
}
