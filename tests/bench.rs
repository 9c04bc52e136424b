//! `authzd bench` end to end at tiny sizes: the subcommand's server, fill,
//! load loops and report all run under `cargo test`. Nothing here is timed:
//! only counts are asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::bench_args;

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
    let report = authzd::cli::bench::run(&args).await.unwrap();
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
    let report = authzd::cli::bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    assert_eq!(report.health.count, 40);
    assert_eq!(report.check.count, 40);
}

/// Bad settings are refused before anything starts.
#[tokio::test]
async fn bench_refuses_zero_concurrency() {
    let args = bench_args(&["--concurrency", "0"]);
    assert!(authzd::cli::bench::run(&args).await.is_err());
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
    let report = authzd::cli::bench::run(&args).await.unwrap();
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
    let report = authzd::cli::bench::run(&args).await.unwrap();
    assert!(report.ok(), "{report}");
    let rows: Vec<usize> = report.writers.iter().map(|(n, _)| *n).collect();
    assert_eq!(rows, vec![1, 4]);
    assert!(report.writers.iter().all(|(_, c)| c.count > 0), "{report}");
    let wide = report.wide.as_ref().unwrap();
    assert_eq!(wide.members, 30);
    assert!(wide.writes > 0 && wide.during.count > 0, "{report}");
    assert!(report.to_string().contains("group-wide"), "{report}");
}
