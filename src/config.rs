//! Validated runtime settings with documented defaults and limits.
//!
//! Everything a request can be refused for being too large is a constant
//! here, so the README's limits table and the code cannot drift apart.
//! Must not read files at request time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Most operations in one `ManageMembership` batch.
pub const MAX_BATCH_OPERATIONS: usize = 1000;
/// Most checks in one `BatchCheckAccess`.
pub const MAX_BATCH_CHECKS: usize = 1000;
/// Page size when a request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page a request may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Longest an `at_least_revision` read waits for the cache to catch up.
pub const MAX_REVISION_WAIT: Duration = Duration::from_secs(5);
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Largest schema text accepted by `WriteSchema`, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;
/// Largest gRPC message the server decodes, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// Change sets read from the changelog per step of a Watch replay.
pub const REPLAY_PAGE: usize = 256;
/// Deepest syntax tree of a group condition (a leaf is one level):
/// evaluating a condition recurses once per level, and this keeps it well
/// within any thread's stack.
pub const MAX_CONDITION_DEPTH: usize = 32;
/// Largest estimated cost of evaluating a group condition once, in steps (a
/// step per node, a step per element a list operation scans, a
/// comprehension's body once per element of its list): about a millisecond.
/// Every condition of [`crate::engine::MAX_CONDITION_LEN`] bytes without
/// comprehensions fits; nested comprehensions over long lists do not.
pub const MAX_CONDITION_COST: u64 = 10_000;
/// Longest error message sent to a client, in bytes; a longer one is cut
/// at a character boundary and says how long it was.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The folder holding the redb file.
    pub data_dir: PathBuf,
    /// A schema file to apply at start-up; `None` keeps the stored schema, or
    /// installs the built-in example on a new store.
    pub schema: Option<PathBuf>,
    /// Committed change sets the live feed keeps for subscribers that are
    /// momentarily behind; one further behind is ended with
    /// RESOURCE_EXHAUSTED and resumes from its last revision.
    pub feed_capacity: usize,
    /// Messages buffered per Watch subscriber on their way to the network.
    pub subscriber_buffer: usize,
    /// Idle time after which a Watch subscriber gets a progress event.
    pub progress_interval: Duration,
    /// Change sets the changelog keeps at least; older ones may be pruned
    /// (subscribers asking for them are told to resync).
    pub retain_revisions: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("authzd-data"),
            schema: None,
            feed_capacity: 4096,
            subscriber_buffer: 256,
            progress_interval: Duration::from_secs(10),
            retain_revisions: 1_000_000,
        }
    }
}
