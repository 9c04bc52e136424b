//! Fuzzing over real gRPC and in-process: every RPC with arbitrary messages
//! built from the server's descriptors, and hostile schemas and conditions.
//! `AUTHZD_FUZZ_CASES` sets the cases per target (CI runs more).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod fuzz_requests;
mod hostile_fuzz;
