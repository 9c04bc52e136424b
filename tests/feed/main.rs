//! The change feed over gRPC: live delivery, pieces of large revisions,
//! resuming, and restarts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod feed;
mod feed_memory;
mod feed_pieces;
mod feed_restart;
mod feed_resume;
mod what_if;
