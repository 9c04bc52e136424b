//! The `authzd` binary's command line: `serve`, `schema check`, `schema
//! test`, `import`, `export`, `backup`, `restore`, the query commands and
//! `token new`, the `--config` file, and how the binary logs.
//!
//! # Layout of the workspace
//!
//! Imports flow downward only, held by the crates' manifests:
//! `authzd` (this crate: `main.rs` and the command line) → `authzd-server`
//! (the gRPC adapters and wiring) → `authzd-service` (the sequencer, the
//! feed, callers) → `authzd-core` (model, schema, engine) and
//! `authzd-store` (the store contract), with `authzd-store-redb` its
//! embedded backend. `authzd-proto` holds the generated wire types,
//! `authzd-client` the channel to a server, `authzd-testkit` what tests
//! and benchmarks share, and `authzd-bench` (not a default member) the
//! load generator and benchmarks.

pub mod cli;
