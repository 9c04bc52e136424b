//! Read replicas: the replication API of a primary and replicas following
//! it; several nodes sharing one PostgreSQL database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod postgres_cluster;
mod postgres_faults;
mod replication;
mod replication_api;
