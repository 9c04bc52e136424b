//! What authzd's tests and benchmarks share, so that there is one of each:
//! the harness that starts the real server (in-process on 127.0.0.1:0, or
//! the real binary) and hands out clients ([`harness`], re-exported at the
//! root), the folding of Watch feeds ([`feed`]), every paged list behind
//! one signature ([`lists`]), a plain HTTP client for the JSON edge
//! ([`http`]), and the synthetic data set with its
//! deterministic random generator ([`dataset`]).
//!
//! Must not be needed by the server: only tests and benchmarks depend on
//! this crate.

#![allow(
    clippy::indexing_slicing,
    reason = "a test harness: an index out of range is a failed test or benchmark run"
)]

pub mod dataset;
pub mod feed;
pub mod harness;
pub mod http;
pub mod lists;

pub use dataset::Rng;
pub use harness::*;

use std::path::PathBuf;

/// The repository's root folder (the workspace), for the files tests read
/// from it: examples, fixtures.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `authzd` binary: `AUTHZD_BIN` if set, else the one cargo built
/// beside the running test (`target/<profile>/authzd`; a test binary runs
/// from `target/<profile>/deps/`). Cargo builds it for the root package's
/// integration tests; other crates' tests need `cargo build --bin authzd`
/// first.
pub fn authzd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("AUTHZD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    profile.join("authzd")
}
