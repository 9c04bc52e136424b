//! The RPC families over real gRPC, one module per family or concern: each
//! test starts the real server in-process on 127.0.0.1:0 and talks to it as
//! a client would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod access;
mod audit;
mod auth;
mod bad_input;
mod console;
mod directory;
mod effective_sources;
mod hostile_input;
mod http;
mod isolation;
mod membership;
mod policy;
mod read_your_writes;
mod refusals;
mod schema_api;
mod watch;
mod write_path;
