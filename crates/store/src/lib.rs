//! The contract of authzd's durable state, apart from any backend: the
//! [`Datastore`] trait, the write it commits ([`PendingWrite`]), what a
//! commit did ([`CommitOutcome`]), its errors ([`StoreError`]), the
//! snapshot stream, a wrapper that injects faults ([`faulty`]), and the
//! conformance suite every backend runs (`conformance`, behind the feature
//! of that name).
//!
//! Must name no backend (no redb, no SQL driver) and no protobuf: its
//! signatures hold model types and [`StoreError`] alone.

pub mod datastore;
pub mod faulty;
pub mod keys;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use authzd_core::model::{
    AuditEntry, AuditKey, AuditOutcome, Change, ChangeSet, Effect, InvalidValue, Origin, Revision,
    SubjectId, TenantId, Timestamp,
};

pub use datastore::{Datastore, Record, RecordBatches, Restore, SnapshotStream, TenantRecords};

/// One page of the audit trail, newest first.
#[derive(Debug, Default)]
pub struct AuditPage {
    /// The matching entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts (exclusive), if the trail may hold more
    /// matching entries: set when the page is full or when the scan
    /// stopped at its bound.
    pub next: Option<AuditKey>,
}

/// The length of `record`'s JSON encoding (the changelog's record format),
/// counted without keeping it.
pub fn encoded_len<T: serde::Serialize>(
    what: &'static str,
    record: &T,
) -> Result<usize, StoreError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, record)
        .map_err(|source| StoreError::Encode { what, source })?;
    Ok(count.0)
}

/// An error's underlying cause, boxed so that redb's types stay inside this
/// module.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store directory could not be created.
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data folder (or a folder on its path) is a file.
    #[error("the data folder {path} is not a directory")]
    NotADirectory {
        /// The data folder.
        path: PathBuf,
    },
    /// This user may not create or write the data folder or the store file.
    #[error("permission denied: this user may not write {path}")]
    PermissionDenied {
        /// The folder or file refused.
        path: PathBuf,
    },
    /// Another process holds redb's lock on the file.
    #[error("another authzd process is using {path}")]
    InUse {
        /// The data folder.
        path: PathBuf,
    },
    /// The file is not a redb database, or a damaged one.
    #[error("the store {location} is not an authzd store or is corrupt: {reason}")]
    Corrupt {
        /// The file.
        location: String,
        /// What redb found.
        reason: String,
    },
    /// The database file could not be opened, for a reason the variants
    /// above and below do not name.
    #[error("cannot open the store {location}: {source}")]
    Open {
        /// The file, or a description of a non-file backend.
        location: String,
        /// Why.
        source: Source,
    },
    /// The file was written in a format version this build does not read.
    #[error(
        "the store {location} has format version {found}; this build of authzd reads only version {supported}"
    )]
    UnknownFormat {
        /// The file.
        location: String,
        /// The version recorded in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The file is a redb database but records no authzd format version, so
    /// it was not written by authzd.
    #[error(
        "the store {location} holds tables but no authzd format version; it is not an authzd store"
    )]
    NotAStore {
        /// The file.
        location: String,
    },
    /// redb failed to read or write. Nothing of the operation was applied.
    #[error("store database error: {0}")]
    Database(#[source] Source),
    /// The final commit step failed: the write may or may not have become
    /// durable. Ask [`Datastore::find_commit`] with the group's
    /// [`CommitId`] whether it landed.
    #[error("the commit failed and may or may not have been persisted: {0}")]
    CommitUncertain(#[source] Source),
    /// The write's expected revision is not the store's current revision.
    #[error("expected revision {expected}, but the store is at revision {actual}")]
    RevisionMismatch {
        /// The revision the write was prepared against.
        expected: Revision,
        /// The store's latest committed revision.
        actual: Revision,
    },
    /// A change that belongs to a tenant came in a write that names no tenant
    /// (a bug in the caller).
    #[error("change {index} of the write belongs to a tenant, but the write names none")]
    MissingTenant {
        /// Position of the change in the write.
        index: usize,
    },
    /// A record could not be encoded.
    #[error("cannot encode a {what} record: {source}")]
    Encode {
        /// The kind of record.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored record could not be decoded (a corrupt or foreign file).
    #[error("cannot decode a stored {what} record: {source}")]
    Decode {
        /// The kind of record.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored key holds an id that is not valid (a corrupt or foreign file).
    #[error("a stored {what} key is invalid: {source}")]
    InvalidKey {
        /// The kind of key.
        what: &'static str,
        /// Why.
        source: InvalidValue,
    },
    /// Every revision number has been used.
    #[error("the revision counter is exhausted")]
    RevisionExhausted,
    /// A write meant to commit as a given revision does not follow the
    /// store's latest one.
    #[error("revision {given} does not follow the store's latest revision {latest}")]
    OutOfSequence {
        /// The revision the write was to commit as.
        given: Revision,
        /// The store's latest committed revision.
        latest: Revision,
    },
    /// The changelog no longer holds the revision after the one a read
    /// started from: it was pruned (or, after a snapshot install, never
    /// kept). The reader must resync from a snapshot.
    #[error(
        "the changelog no longer holds the revisions after {after}; the oldest retained is {oldest}"
    )]
    Pruned {
        /// The revision the read started after.
        after: Revision,
        /// The oldest revision the changelog retains (the one after the
        /// latest, when it retains none).
        oldest: Revision,
    },
    /// [`Datastore::close`] was called: the storage is no longer open.
    #[error("the store is closed")]
    Closed,
    /// Another writer committed since the revision a group was planned on:
    /// nothing of the group was written. Retryable: apply what the store
    /// holds after `base` up to `head`, plan the group again, commit again.
    #[error("the store moved from revision {base} to {head} while the writes were planned")]
    Conflict {
        /// The revision the group was planned on.
        base: Revision,
        /// The store's latest revision when the commit was refused.
        head: Revision,
    },
    /// The database server could not be reached at start-up (no server at
    /// that address, a refused or timed-out connection).
    #[error("cannot reach the database {location}: {source}")]
    Unreachable {
        /// Where, without any password.
        location: String,
        /// Why.
        source: Source,
    },
    /// The database server refused the credentials.
    #[error("the database {location} refused user {user}: authentication failed")]
    AuthenticationFailed {
        /// Where, without any password.
        location: String,
        /// The user named.
        user: String,
    },
    /// The database server has no database of that name.
    #[error("the database server at {location} has no database named {database}")]
    DatabaseMissing {
        /// Where, without any password.
        location: String,
        /// The database named.
        database: String,
    },
    /// The database was last written by a newer authzd, with a schema
    /// version this build does not know.
    #[error(
        "the database {location} has authzd schema version {found}, written by a newer authzd; this build knows versions up to {supported}: upgrade authzd"
    )]
    NewerSchema {
        /// Where, without any password.
        location: String,
        /// The version the database records.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The database's schema is older than this build's and the node was
    /// told not to migrate it (`authzd migrate` brings it up to date).
    #[error(
        "the database {location} has authzd schema version {found}; this build needs version {needed}: run `authzd migrate --store URL` (or start a node without --store-skip-migrations)"
    )]
    OlderSchema {
        /// Where, without any password.
        location: String,
        /// The version the database records (0: none).
        found: i64,
        /// The version this build needs.
        needed: i64,
    },
    /// The store cannot be reached now (a database connection lost, a
    /// database restarting): nothing of the operation was done. Retryable
    /// after a pause.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] Source),
    /// The store cannot do this at all (a backend without the capability).
    #[error("this store cannot {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether the operation may succeed if tried again as it is (after
    /// catching up, for a conflict): nothing of it was done.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. } | StoreError::Unavailable(_)
        )
    }
}

/// Who chose a commit: a random id the committer gives each group, so that
/// after a commit whose outcome is unknown it can ask the store whether
/// that group landed ([`Datastore::find_commit`]) even while other writers
/// commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommitId(pub u128);

impl CommitId {
    /// A fresh id, unique with overwhelming probability.
    pub fn random() -> Self {
        CommitId(random_u128())
    }
}

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Which data set a store holds: chosen at random when the data set is
/// created, and again when a restore replaces it whole, so that two
/// handles (or two nodes) can tell whether they serve the same data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

impl Epoch {
    /// A fresh epoch.
    pub fn random() -> Self {
        // The low half of a random u128 is as random as the whole.
        Epoch(random_u128() as u64)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// 128 random bits from the operating system; if it cannot give them (a
/// sandbox without `getrandom`), the time, the process and a counter, which
/// still never repeat within one machine.
fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_ok() {
        return u128::from_le_bytes(bytes);
    }
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    nanos ^ (u128::from(std::process::id()) << 96) ^ (u128::from(count) << 64)
}

/// One write, already validated, ready to commit as one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWrite {
    /// The tenant it changes; `None` for store-wide changes
    /// ([`Change::SchemaWritten`]).
    pub tenant: Option<TenantId>,
    /// On whose behalf; `None` for a system write.
    pub actor: Option<SubjectId>,
    /// The commit time recorded in the changelog.
    pub committed_at: Timestamp,
    /// The changes, applied in order.
    pub changes: Vec<Change>,
    /// Their effective consequences, recorded in the changelog beside them
    /// so a replay after a restart gives the same feed.
    pub effects: Vec<Effect>,
    /// If set, the write commits only if the store is at exactly this
    /// revision.
    pub expected_revision: Option<Revision>,
    /// If set, a second write with the same key in the same tenant (or
    /// store-wide, for `tenant: None`) is not applied again.
    pub idempotency_key: Option<String>,
    /// Who asked for it, for the audit entry recorded beside it.
    pub origin: Origin,
    /// If set, the write commits as exactly this revision or not at all: a
    /// replica's copy of a primary's entry, whose number the primary chose.
    /// It must be the revision after the store's (a hole is refused with
    /// [`StoreError::OutOfSequence`], never skipped).
    pub revision: Option<Revision>,
    /// Its changelog entry as the store that commits it encodes it, all
    /// but the revision, set by [`Datastore::prepare`] once every other
    /// field is final (the store trusts it to match them); `None`: the
    /// store encodes the entry while it commits.
    pub prepared: Option<Prepared>,
}

/// A write's changelog entry encoded ahead of its commit, all but its
/// revision (see [`Datastore::prepare`]): the part of storing a write that
/// grows with its size, done before the write takes its place in the
/// commit order, which every other write waits behind.
#[derive(Clone, PartialEq, Eq)]
pub struct Prepared(Arc<[u8]>);

impl Prepared {
    /// Wraps the bytes a store encoded.
    pub fn new(bytes: Vec<u8>) -> Self {
        Prepared(bytes.into())
    }

    /// The bytes, for the store that encoded them.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prepared({} bytes)", self.0.len())
    }
}

impl PendingWrite {
    /// The tenant whose commits alone this write conflicts with
    /// ([`Datastore::commit_group`]); `None` when it conflicts with any
    /// commit since its base: a store-wide write, one expecting a store
    /// revision, a replica's copy given its revision.
    pub fn conflict_scope(&self) -> Option<&TenantId> {
        match (&self.tenant, self.expected_revision, self.revision) {
            (Some(tenant), None, None) => Some(tenant),
            _ => None,
        }
    }

    /// The changelog entry this write becomes as `revision`.
    pub fn entry(&self, revision: Revision) -> ChangeSet {
        ChangeSet {
            revision,
            tenant: self.tenant.clone(),
            actor: self.actor.clone(),
            committed_at: self.committed_at,
            changes: self.changes.clone(),
            effects: self.effects.clone(),
        }
    }

    /// The changelog entry this write becomes as `revision`, taking its
    /// changes and effects rather than copying them.
    pub fn into_entry(self, revision: Revision) -> ChangeSet {
        ChangeSet {
            revision,
            tenant: self.tenant,
            actor: self.actor,
            committed_at: self.committed_at,
            changes: self.changes,
            effects: self.effects,
        }
    }

    /// The audit entry recording this write as committed at `revision`.
    pub fn audit_entry(&self, revision: Revision) -> AuditEntry {
        let mut entry = AuditEntry {
            key: AuditKey {
                at: self.committed_at,
                seq: 0,
            },
            tenant: self.tenant.clone(),
            actor: self.actor.clone(),
            origin: self.origin.clone(),
            concerned: Vec::new(),
            more_concerned: false,
            outcome: AuditOutcome::Committed(revision),
        };
        entry.concerning(self.changes.iter().flat_map(Change::principals));
        entry
    }
}

/// What a commit did with one write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The write committed as this change set.
    Committed(ChangeSet),
    /// The idempotency key was seen before: nothing was written, and this is
    /// the revision the first attempt committed as.
    Replayed(Revision),
}

impl PendingWrite {
    /// The size of the changelog entry this write becomes (without its
    /// revision's digits), so a caller can bound a group in bytes: as
    /// stored, once prepared; its JSON's otherwise.
    pub fn entry_bytes(&self) -> Result<usize, StoreError> {
        match &self.prepared {
            Some(prepared) => Ok(prepared.bytes().len()),
            None => encoded_len("change set", &self.entry(Revision(0))),
        }
    }
}
