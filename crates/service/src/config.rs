//! Validated runtime settings with their documented defaults. The limits
//! and defaults themselves are constants of [`authzd_core::limits`]. Must
//! not read files at request time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use authzd_core::limits::*;
/// How a read replica follows its primary (`serve --follow`).
#[derive(Debug, Clone)]
pub struct Follow {
    /// The primary, `HOST:PORT` or an `http(s)://` URL, for the log.
    pub primary: String,
    /// Only these tenants are held; empty: every tenant the follow token
    /// may see.
    pub tenants: Vec<authzd_core::model::TenantId>,
    /// How far behind (in seconds since it was last known in step with
    /// the primary) the replica may be before its health is NOT_SERVING.
    pub max_lag: Duration,
}

/// A database several nodes share (`serve --store postgres://…`): each
/// node writes it and follows the others' commits.
#[derive(Clone)]
pub struct SharedStore {
    /// The database's URL, password included: never logged (its
    /// [`std::fmt::Debug`] and [`SharedStore::location`] leave it out).
    pub url: String,
    /// Pool size, timeouts, poll interval.
    pub options: authzd_store_postgres::Options,
    /// How far behind the database (in seconds since the node last knew
    /// it had applied every revision the database held) the node may be
    /// before its health is NOT_SERVING.
    pub max_lag: Duration,
}

impl SharedStore {
    /// The database, without its password: for logs.
    pub fn location(&self) -> String {
        authzd_store_postgres::redacted(&self.url)
    }
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("location", &self.location())
            .field("options", &self.options)
            .finish()
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The folder holding the redb file (unused with `store`).
    pub data_dir: PathBuf,
    /// A database shared with other nodes instead of the redb file in
    /// `data_dir`; `None`: the redb file.
    pub store: Option<SharedStore>,
    /// A schema file to apply at start-up; `None` keeps the stored schema, or
    /// installs the built-in example on a new store.
    pub schema: Option<PathBuf>,
    /// Committed change sets the live feed keeps for subscribers that are
    /// momentarily behind (and at most [`FEED_BUFFER_BYTES`] of them); one
    /// further behind is ended with RESOURCE_EXHAUSTED and resumes from its
    /// last revision.
    pub feed_capacity: usize,
    /// Most messages a Watch stream hands its transport in one go (and at
    /// most [`SUBSCRIBER_BUFFER_BYTES`] of them).
    pub subscriber_buffer: usize,
    /// Estimated bytes every Watch subscription holds together (the
    /// messages its transport took last, replay pages): when it is full, the subscribers furthest behind are ended
    /// first with RESOURCE_EXHAUSTED naming the revision to resume after.
    pub watch_memory: usize,
    /// Estimated size a Watch message is filled to: a revision whose
    /// visible changes are larger is sent in several pieces, the last marked
    /// complete; a single record larger than this travels alone.
    pub watch_piece_bytes: usize,
    /// Idle time after which a Watch subscriber gets a progress event.
    pub progress_interval: Duration,
    /// Change sets the changelog keeps at least; older ones may be pruned
    /// (subscribers asking for them are told to resync).
    pub retain_revisions: u64,
    /// Writes waiting for the sequencer at most; one more is refused with
    /// RESOURCE_EXHAUSTED rather than queued without bound.
    pub write_queue: usize,
    /// The tokens file; `None`: no tokens, every caller is trusted (and
    /// the server serves only loopback unless `insecure`).
    pub tokens: Option<PathBuf>,
    /// Serve beyond loopback without tokens.
    pub insecure: bool,
    /// Unary requests one token may have in progress; one more is refused
    /// with RESOURCE_EXHAUSTED. The anonymous caller is not bounded.
    pub token_requests: usize,
    /// `Watch` streams one token may have open; one more is refused with
    /// RESOURCE_EXHAUSTED.
    pub token_watches: usize,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: no
    /// metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Where to serve the HTTP/JSON API (the gRPC stack behind a second
    /// listener, with the same TLS files); `None`: no HTTP listener.
    pub http_listen: Option<SocketAddr>,
    /// Origins whose pages may call the HTTP/JSON API (CORS); empty: none.
    pub http_cors_origins: Vec<String>,
    /// Where to export OpenTelemetry traces (an OTLP/gRPC `http://` or
    /// `https://` URL); `None`: no spans are made.
    pub otlp_endpoint: Option<String>,
    /// How long audit entries are kept; older ones are pruned by later
    /// commits, independently of the changelog's retention.
    pub audit_retention: Duration,
    /// Set on a read replica: the store follows this primary and takes no
    /// writes of its own (they are forwarded).
    pub follow: Option<Follow>,
    /// How long calls in progress at shutdown may take to finish; then the
    /// server stops whatever its clients still hold open.
    pub shutdown_grace: Duration,
}

impl Config {
    /// Where the data lives, for logs: the data folder, or the shared
    /// database without its password.
    pub fn store_location(&self) -> String {
        match &self.store {
            Some(shared) => shared.location(),
            None => self.data_dir.display().to_string(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("authzd-data"),
            store: None,
            schema: None,
            feed_capacity: 4096,
            subscriber_buffer: 256,
            watch_memory: DEFAULT_WATCH_MEMORY,
            watch_piece_bytes: WATCH_PIECE_BYTES,
            progress_interval: Duration::from_secs(10),
            retain_revisions: 1_000_000,
            write_queue: 4096,
            tokens: None,
            insecure: false,
            token_requests: DEFAULT_TOKEN_REQUESTS,
            token_watches: DEFAULT_TOKEN_WATCHES,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            metrics_listen: None,
            http_listen: None,
            http_cors_origins: Vec::new(),
            otlp_endpoint: None,
            follow: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
