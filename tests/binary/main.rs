//! The real `authzd` binary and its command line: start-up and its
//! refusals, the configuration file, logs, metrics, traces, TLS, shutdown,
//! persistence across restarts, the client commands (import, export,
//! backup, restore, queries, schema tests), and the README's sessions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod bulk_import;
mod cli_backup;
mod cli_export;
mod cli_query;
mod cli_write;
mod config_file;
mod front_door;
mod http_listen;
mod import;
mod logs;
mod metrics;
mod otlp;
mod persistence;
mod schema_test_command;
mod shutdown;
mod smoke;
mod startup;
mod sync_client;
mod tls;
