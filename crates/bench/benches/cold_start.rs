//! Cold start of the real binary over a large store: the `authzd bench`
//! tenant written into a fresh data folder in one transaction (as a replica
//! installs a snapshot), then `authzd serve` started over it. Prints, per
//! size: the records and the data file's size, the time from spawning the
//! process to its announcement and the start-up lines it logs (store read,
//! cache built, with their elapsed times), and its
//! resident memory once serving (`VmRSS`) and at its peak (`VmHWM`).
//!
//! Sizes come from `AUTHZD_SCALE_SUBJECTS` (comma-separated subject counts,
//! default `100000`). The folder lives in the system temporary folder (a
//! real disk here) and is deleted afterwards. Run with
//! `cargo bench --bench cold_start`; without `--bench` (as `cargo test
//! --all-targets` runs it) it does nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup or an index out of range is a failed run"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use authzd_core::model::{Revision, TenantId};
use authzd_testkit::dataset::Dataset;

/// Longest the server may take to announce itself.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A `/proc/PID/status` figure in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Writes the tenant of `subjects` subjects into `dir`; returns the records.
fn fill(dir: &std::path::Path, subjects: usize) -> usize {
    let data = Dataset::generate(common::sizes(subjects), 1);
    let changes = common::changes(&data);
    let records = changes.len();
    let tenant = TenantId::try_from(common::TENANT).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = authzd_store_redb::open(dir).await.unwrap();
        store
            .restore()
            .unwrap()
            .replace_all(
                Revision(1),
                authzd_core::schema::DEFAULT_SCHEMA.to_string(),
                std::sync::Arc::new(vec![(tenant, changes)]),
            )
            .await
            .unwrap();
        store.close().await;
    });
    records
}

/// Starts `authzd serve` over `dir`; returns the child and, once it
/// announced itself, its start-up log lines.
fn serve(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(authzd_testkit::authzd_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Drains stderr for the child's whole life, so it never blocks.
    std::thread::spawn(move || {
        let mut built = String::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if [
                "loading the store",
                "store read",
                "grants computed",
                "cache built",
            ]
            .iter()
            .any(|l| line.contains(l))
            {
                built.push_str("\n  ");
                built.push_str(&line);
            }
            if line.contains("authzd serving") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(built.clone());
                }
            }
        }
    });
    let built = rx
        .recv_timeout(START_TIMEOUT)
        .expect("authzd serve did not announce itself");
    (child, built)
}

fn run(subjects: usize) {
    let dir = tempfile::Builder::new()
        .prefix("authzd-cold-start-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let records = fill(dir.path(), subjects);
    let bytes = std::fs::metadata(dir.path().join(authzd_store_redb::FILE_NAME))
        .unwrap()
        .len();
    let started = Instant::now();
    let (mut child, built) = serve(dir.path());
    let announced = started.elapsed();
    let (rss, peak) = (
        status_kib(child.id(), "VmRSS:"),
        status_kib(child.id(), "VmHWM:"),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    println!(
        "subjects {subjects}: {records} records, data file {} MiB; \
         announced after {:.2} s; RSS {} MiB, peak {} MiB{built}",
        bytes >> 20,
        announced.as_secs_f64(),
        rss >> 10,
        peak >> 10,
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    for subjects in common::subject_counts("100000") {
        run(subjects);
    }
}
