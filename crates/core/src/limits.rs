//! Every documented limit and default of authzd, in one place, so the
//! limits table (`docs/limits.md`) and the code cannot drift apart: everything a
//! request can be refused for being too large, and the defaults of the
//! runtime settings ([the service's `config`] holds the settings
//! themselves). Must hold constants only.

use std::time::Duration;

/// Most operations in one `ManageMembership` batch, records in one
/// `Import` chunk, and principals in one bulk operation. Their bytes are
/// bounded by [`MAX_MESSAGE_BYTES`]: ten thousand records of typical size
/// (ids, a few attributes) take well under half of it.
pub const MAX_BATCH_OPERATIONS: usize = 10_000;
/// Most permission changes a dry run (`dry_run` of `ManageMembership`
/// and `Import`) lists; it counts the rest.
pub const MAX_WHAT_IF_CHANGES: usize = 1000;
/// Most refusals a dry run lists; it stops looking after the last.
pub const MAX_WHAT_IF_REFUSALS: usize = 100;
/// Most checks in one `BatchCheckAccess`.
pub const MAX_BATCH_CHECKS: usize = 1000;
/// Page size when a request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page a request may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Longest page token accepted, in characters: longer than any the server
/// issues (the longest cursor, an assignment's key, is five parts of at
/// most an id's length), so a longer one is refused before it is decoded.
pub const MAX_PAGE_TOKEN_LEN: usize = 2048;
/// Longest an `at_least_revision` read waits for the cache to catch up.
pub const MAX_REVISION_WAIT: Duration = Duration::from_secs(5);
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Largest schema text accepted by `WriteSchema`, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;
/// Largest gRPC message the server decodes, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// Most writes committed together in one transaction and one fsync.
pub const MAX_GROUP_WRITES: usize = 256;
/// Most changelog bytes one group commit gathers; a single larger write
/// commits alone.
pub const MAX_GROUP_BYTES: usize = 8 << 20;
/// Change sets read from the changelog per step of a Watch replay.
pub const REPLAY_PAGE: usize = 256;
/// Stored bytes of change sets read per step of a Watch replay (at least
/// one change set is read, whatever its size).
pub const REPLAY_PAGE_BYTES: usize = 16 << 20;
/// Estimated bytes of change sets the live feed keeps for subscribers that
/// are momentarily behind, besides the newest set (kept whatever its size);
/// together with the service's `Config::feed_capacity` it bounds the feed's memory.
pub const FEED_BUFFER_BYTES: usize = 64 << 20;
/// Most estimated bytes of Watch messages a stream hands its transport in
/// one go; with the service's `Config::subscriber_buffer` it bounds what the
/// transport takes of a subscriber's backlog at once. A larger message goes
/// alone.
pub const SUBSCRIBER_BUFFER_BYTES: usize = 4 << 20;
/// Default estimated bytes every `Watch` subscription holds together
/// (the service's `Config::watch_memory`): the messages each stream's
/// transport took last, the replay page being sent.
/// When it is full, the subscribers furthest behind are ended first,
/// resumably. The live feed's ring ([`FEED_BUFFER_BYTES`]) comes on top.
pub const DEFAULT_WATCH_MEMORY: usize = 256 << 20;
/// Default estimated size a Watch message is filled to
/// (the service's `Config::watch_piece_bytes`): a quarter of the 4 MiB a gRPC client
/// accepts by default, so estimates may be off by far without a message
/// being refused.
pub const WATCH_PIECE_BYTES: usize = 1 << 20;
/// Deepest syntax tree of a group condition (a leaf is one level):
/// evaluating a condition recurses once per level, and this keeps it well
/// within any thread's stack.
pub const MAX_CONDITION_DEPTH: usize = 32;
/// Largest estimated cost of evaluating a group condition once, in steps (a
/// step per node, a step per element a list operation scans, a
/// comprehension's body once per element of its list): about a millisecond.
/// Every condition of [`crate::limits::MAX_CONDITION_LEN`] bytes without
/// comprehensions fits; nested comprehensions over long lists do not.
pub const MAX_CONDITION_COST: u64 = 10_000;
/// Longest error message sent to a client, in bytes; a longer one is cut
/// at a character boundary and says how long it was.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;
/// Longest a client may take to finish its TLS handshake; a connection
/// that opens and stays silent is closed after it.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Unary requests one token may have in progress by default
/// (the service's `Config::token_requests`).
pub const DEFAULT_TOKEN_REQUESTS: usize = 256;
/// `Watch` streams one token may have open by default
/// (the service's `Config::token_watches`).
pub const DEFAULT_TOKEN_WATCHES: usize = 32;
/// Longest `x-request-id` a caller may send, in bytes; a longer (or
/// non-printable) one is replaced by a generated id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Most audit entries one `ListAuditEntries` call examines: a filter
/// that matches little returns a short page and a cursor instead of
/// walking the whole trail.
pub const MAX_AUDIT_SCANNED: usize = 10_000;
/// Longest `reason` a write may give for the audit trail, in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// How long the audit trail keeps entries by default
/// (the service's `Config::audit_retention`).
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// Most records one Snapshot message carries; with
/// [`REPLICATION_MESSAGE_BYTES`] it bounds a message.
pub const SNAPSHOT_CHUNK_RECORDS: usize = 1000;
/// Estimated bytes a replication message (a Snapshot chunk, a Follow batch)
/// is filled to: a quarter of the 4 MiB a gRPC client accepts by default.
/// A single larger record travels alone.
pub const REPLICATION_MESSAGE_BYTES: usize = 1 << 20;
/// Most tenants one Snapshot or Follow request may name.
pub const MAX_REPLICATED_TENANTS: usize = 1000;
/// Most Snapshot streams served at once: each holds a copy of the state it
/// sends; one more is refused with RESOURCE_EXHAUSTED.
pub const MAX_SNAPSHOTS: usize = 2;
/// Idle time after which a Follow stream sends a heartbeat carrying the
/// primary's latest revision, so a replica can tell "nothing happened" from
/// "the primary is gone" and measure its lag.
pub const FOLLOW_HEARTBEAT: Duration = Duration::from_secs(1);
/// First wait before a replica reconnects to its primary; doubled after
/// each failed attempt up to [`FOLLOW_BACKOFF_MAX`].
pub const FOLLOW_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between a replica's attempts to reach its primary.
pub const FOLLOW_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Default lag past which a replica's health is NOT_SERVING
/// (the service's `Follow::max_lag`).
pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(30);
/// Largest replication message a replica (or `authzd backup`) accepts: a
/// single committed write travels whole, and may be larger than a request.
pub const MAX_REPLICATION_MESSAGE_BYTES: usize = 64 << 20;
/// Longest a replication stream may stay silent (heartbeats come every
/// [`FOLLOW_HEARTBEAT`]) before its receiver gives up on it.
pub const REPLICATION_SILENCE: Duration = Duration::from_secs(5);
/// Longest id of a tenant, subject, scope, group or role, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest resource type or verb name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most attributes one subject may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 128;
/// Longest attribute value or title, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Most grants one role may carry.
pub const MAX_GRANTS: usize = 256;
/// Most principals an [`crate::model::AuditEntry`] names; a write that
/// names more records the first ones and
/// [`crate::model::AuditEntry::more_concerned`].
pub const MAX_AUDIT_CONCERNED: usize = 64;
/// Most permissions (levels, actions and derived permissions together) one
/// schema may declare; keeps every [`crate::schema::PermSet`] at most 512
/// bytes and every [`crate::schema::PermBit`] within `u16`.
pub const MAX_PERMISSIONS: usize = 4096;
/// Most diagnostics one refusal lists, in file order; the rest are counted
/// ("and N more errors"). Validation still looks at the whole text, but a
/// refusal stays readable, its size bounded, and typically within the 4 KiB
/// a client is sent ([`MAX_ERROR_MESSAGE_BYTES`]).
pub const MAX_SCHEMA_ERRORS: usize = 20;
/// Longest key or message of one diagnostic, in bytes: a key or value of the
/// file quoted in a message is cut there, so one line cannot echo megabytes.
pub const MAX_DIAGNOSTIC_TEXT: usize = 512;
/// Longest condition text, in bytes.
pub const MAX_CONDITION_LEN: usize = 4096;
/// Expired assignments each tenant remembers for explanations.
pub const MAX_RECENTLY_EXPIRED: usize = 1024;
/// Most changelog entries one commit prunes, so that shrinking the
/// retention window never makes a single commit long; the rest go with the
/// following commits.
pub const MAX_PRUNED_PER_COMMIT: usize = 1024;
/// Records per batch of a snapshot: large enough that the channel costs
/// little per record, small enough that a batch stays a few hundred KB.
pub const SNAPSHOT_BATCH: usize = 1024;
/// Batches a snapshot reads ahead of its consumer: the memory a slow
/// consumer can make the reader hold.
pub const SNAPSHOT_BATCHES_AHEAD: usize = 4;
/// Largest tenant file `authzd import` reads, in bytes.
pub const MAX_TENANT_FILE_BYTES: u64 = 256 << 20;
/// Largest test file read, in bytes.
pub const MAX_TEST_FILE_BYTES: u64 = 4 << 20;
/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Character pairs that "did you mean" suggestions may compare per schema
/// (about 16 million, a few milliseconds): past it, errors come without
/// suggestions, so a file full of unknown names cannot make the comparison
/// quadratic in its size.
pub const SUGGESTION_BUDGET: usize = 1 << 24;
/// Character pairs the "did you mean" of one request may compare (about a
/// million, well under a millisecond): a request naming a long unknown
/// permission or role gets no suggestion rather than a slow answer.
pub const REQUEST_SUGGESTION_BUDGET: usize = 1 << 20;
