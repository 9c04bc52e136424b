//! The engine and the schema against references: property tests against a
//! naive evaluator, the incremental cache against a rebuild, the feed
//! against a model, and the schema's diagnostics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod engine_incremental;
mod feed_model;
mod reference_model;
mod schema_errors;
