//! authzd: a gRPC RBAC authorization service.
//!
//! Backend services ask it "may subject S do P here?", "what may S do?" and
//! "who may do P?"; administrators change groups and roles through it; and
//! subscribers follow a feed of every committed change. See the README for
//! use and the protobuf files in `proto/authzd/v1/` for the wire contract.
//!
//! # Layout
//!
//! Imports flow downward only: `api → service → engine, store, watch →
//! schema → model`.
//!
//! - [`model`]: checked value types shared by every layer (ids, permissions,
//!   revisions, directory records, changes).
//! - [`schema`]: the permission catalog, staged parse → validate → compile.
//! - [`store`]: the async `Datastore` trait and its embedded redb
//!   implementation: tables, codecs, one transaction per group of writes
//!   with their changelog and audit entries, consistent snapshots.
//! - [`engine`]: the compiled cache, evaluation, explanations and write planning.
//! - [`watch`]: the change feed: replay from the changelog, then live, bounded.
//! - [`service`]: the async façade: the write sequencer, reads at a
//!   revision, subscriptions, the audit trail's listing, and replication's
//!   two sides (what a primary exports, how a replica applies it).
//! - [`api`]: tonic services, protobuf conversions, the one error-to-status
//!   mapping; a replica's follower and the layer that forwards its writes;
//!   the span each call makes and the opt-in OTLP exporter.
//! - [`auth`]: callers: the token set, authentication, and what a token's
//!   kind and tenant allow.
//! - [`config`]: runtime settings and every documented limit.
//! - [`metrics`]: the Prometheus metrics' names and their opt-in listener.
//! - [`clock`]: where "now" comes from, and waiting for an instant.
//! - [`server`]: wiring the services onto a listener (plaintext or TLS) until
//!   shutdown.
//! - [`tls`]: the PEM files of TLS, read and checked at start-up.
//! - [`cli`]: the command line (`serve`, `schema check`, `schema test`,
//!   `bench`, `import`, `export`, `backup`, `restore`, the query commands,
//!   `token new`), the `--config` file, and how the binary logs.

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod model;
pub mod schema;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
pub mod watch;
