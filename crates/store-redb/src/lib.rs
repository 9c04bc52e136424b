//! The embedded backend of authzd's store: the only crate that names redb.
//!
//! The layers above reach it through the async [`Datastore`] trait of
//! `authzd-store`, opened with [`open`]; [`embedded`] runs each call of the
//! synchronous core on tokio's blocking pool, and the core here owns the
//! database file, the transactions that apply a write's changes together
//! with its changelog entry, the revision counter, idempotency keys and the
//! consistent snapshot read. The core's calls block; the embedded
//! implementation runs them on tokio's blocking pool.
//!
//! It must not leak redb types upward (errors reach callers as
//! [`StoreError`], whose sources are boxed), must not know protobuf, and must
//! not hold rules of the model: it applies the changes it is given, in order,
//! and trusts that the layer above validated them.

mod audit;
mod codec;
mod embedded;
#[cfg(test)]
mod failing_disk;
mod heads;
mod private;
mod tables;

use authzd_core::limits::MAX_PRUNED_PER_COMMIT;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{
    Builder, Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableHandle,
    WriteTransaction,
};
use serde::de::DeserializeOwned;

use audit::AuditTable;
use authzd_store::{
    AuditPage, CommitId, CommitOutcome, Datastore, Epoch, PendingWrite, Prepared, Record,
    SnapshotStream, StoreError, TenantRecords,
};
pub use embedded::open;

use authzd_core::model::{
    AuditEntry, AuditQuery, Change, ChangeSet, Revision, TenantId, Timestamp,
};

use tables::{
    ASSIGNMENTS, CHANGELOG, COMMITS, FORMAT_VERSION, GROUPS, IDEMPOTENCY, MEMBERSHIPS, META,
    META_EPOCH, META_FORMAT_VERSION, META_REVISION, ROLES, SCHEMA, SCHEMA_CURRENT, SCOPES,
    SUBJECTS, TENANTS,
};

/// Name of the database file inside the store directory.
pub const FILE_NAME: &str = "authzd.redb";

/// Most memory redb may use to cache pages. The compiled cache answers reads,
/// so redb only needs enough for a write's working set and the start-up scan;
/// its own default (1 GiB) would double the memory footprint for nothing.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Whether redb's handle is unusable after this error: after a failed
/// commit or an I/O error redb refuses further writes until the file is
/// closed and reopened, which also repairs whatever the failure left.
fn needs_reopen(err: &StoreError) -> bool {
    match err {
        StoreError::CommitUncertain(_) => true,
        StoreError::Database(source) => matches!(
            source.downcast_ref::<redb::Error>(),
            Some(redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::Backend(_))
        ),
        _ => false,
    }
}

/// Wraps any redb error; the concrete type stays in [`StoreError::Database`]'s
/// boxed source so [`needs_reopen`] can still inspect it.
fn db_err(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(Box::new(err.into()))
}

/// Makes a fresh redb handle on the same storage; called at open and again
/// after a failure that left the previous handle unusable.
type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The redb file, synchronously: the embedded implementation's core, whose
/// every call blocks. `Send + Sync`: shared behind an `Arc`.
struct Store {
    /// The open database, or `None` after a failure that requires a reopen
    /// (or a reopen that failed); the next operation reopens. A `RwLock`
    /// because operations share the handle (redb orders writers itself) and
    /// only swapping the handle needs it alone.
    slot: RwLock<Option<Database>>,
    /// Reopens the storage the store was opened on.
    opener: Opener,
    /// Where the data lives, for error messages.
    location: String,
    /// Set by [`Store::close`]: no operation reopens the file after it.
    closed: AtomicBool,
    /// How many of the latest revisions the changelog keeps at least
    /// ([`Store::retain`]); every commit prunes what falls out of it.
    retention: AtomicU64,
    /// How long, in nanoseconds, the audit trail keeps entries
    /// ([`Store::retain_audit`]); every commit prunes older ones.
    audit_retention: AtomicU64,
    /// Which tenants the latest commits wrote, for the conflict rule per
    /// tenant; locked by a commit from its head check to its end.
    heads: Mutex<heads::Heads>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `dir`, creating the directory and the file
    /// [`FILE_NAME`] if missing. Fails if another process has it open or the
    /// file has an unknown format version.
    ///
    /// A folder it creates is `0700` and a file it creates `0600` (on
    /// Unix), whatever the umask: the file holds every tenant's directory.
    /// An existing folder or file readable by others is left as it is (an
    /// operator may share it on purpose) with a warning naming it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        private::create(dir, &path).map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => StoreError::PermissionDenied {
                path: dir.to_path_buf(),
            },
            std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
                StoreError::NotADirectory {
                    path: dir.to_path_buf(),
                }
            }
            _ => StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            },
        })?;
        let location = path.display().to_string();
        let folder = dir.to_path_buf();
        Store::with_opener(
            location,
            Box::new(move || Builder::new().set_cache_size(CACHE_BYTES).create(&path)),
        )
        .map_err(|e| match e {
            StoreError::InUse { .. } => StoreError::InUse { path: folder },
            other => other,
        })
    }

    /// Opens a store on any redb storage, so tests can inject faults.
    #[cfg(test)]
    fn open_with_backend<B: redb::StorageBackend>(
        location: &str,
        backend: impl Fn() -> B + Send + Sync + 'static,
    ) -> Result<Store, StoreError> {
        Store::with_opener(
            location.to_owned(),
            Box::new(move || {
                Builder::new()
                    .set_cache_size(CACHE_BYTES)
                    .create_with_backend(backend())
            }),
        )
    }

    fn with_opener(location: String, opener: Opener) -> Result<Store, StoreError> {
        // Opened eagerly so that a locked file or an unknown format stops the
        // server at start-up instead of failing its first request.
        let db = open_db(&opener, &location)?;
        Ok(Store {
            slot: RwLock::new(Some(db)),
            opener,
            location,
            closed: AtomicBool::new(false),
            retention: AtomicU64::new(u64::MAX),
            audit_retention: AtomicU64::new(u64::MAX),
            heads: Mutex::default(),
        })
    }

    /// Keeps at least the latest `revisions` change sets in the changelog
    /// (at least one): each later commit also removes, in its own
    /// transaction, up to [`MAX_PRUNED_PER_COMMIT`] older ones. Until
    /// called, nothing is pruned.
    pub fn retain(&self, revisions: u64) {
        self.retention.store(revisions.max(1), Ordering::SeqCst);
    }

    /// Keeps audit entries for `age` after their time: each later commit
    /// also removes, in its own transaction, up to
    /// [`MAX_PRUNED_PER_COMMIT`] older ones (older than `age` before the
    /// commit's time). Until called, nothing is pruned.
    pub fn retain_audit(&self, age: std::time::Duration) {
        let nanos = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
        self.audit_retention.store(nanos, Ordering::SeqCst);
    }

    /// A page of the audit trail, newest first: at most `limit` entries
    /// matching `query`, having examined at most `max_scanned`.
    pub fn audit_page(
        &self,
        query: &AuditQuery,
        limit: usize,
        max_scanned: usize,
    ) -> Result<AuditPage, StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            audit::page(&txn, query, limit.max(1), max_scanned.max(1))
        })
    }

    /// Closes the file now, whoever still holds the store, so that a
    /// shutdown releases it for the next process (or a restart in the same
    /// process). Every later operation fails with [`StoreError::Closed`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        *self.write_slot() = None;
    }

    /// Reads every stored record in one transaction: hands `header` the
    /// revision and schema text the records reflect, then `each` the records
    /// one at a time as they are decoded, without collecting them, in the
    /// order [`SnapshotStream`] documents. Either callback stops the read by
    /// breaking.
    pub fn snapshot(
        &self,
        header: &mut dyn FnMut(Revision, Option<String>) -> ControlFlow<()>,
        each: &mut dyn FnMut(&TenantId, Change) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            if header(read_revision_of(&txn)?, read_schema(&txn)?).is_break() {
                return Ok(());
            }
            each_record(&txn, each)
        })
    }

    /// The latest committed revision; 0 for an empty store.
    pub fn revision(&self) -> Result<Revision, StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(META).map_err(db_err)?;
            read_revision(&meta)
        })
    }

    /// Commits a write as one transaction and the next revision, durably
    /// (fsynced before this returns). On any error nothing was written, except
    /// for [`StoreError::CommitUncertain`], whose outcome is unknown.
    ///
    /// An idempotency key seen before wins over `expected_revision`: a retry
    /// of a write that did commit is answered with its revision, not with a
    /// mismatch caused by that very write.
    #[cfg(test)]
    fn commit(&self, write: &PendingWrite) -> Result<CommitOutcome, StoreError> {
        let mut outcomes = self.commit_group(std::slice::from_ref(write))?;
        outcomes.pop().ok_or(StoreError::CommitUncertain(
            "a one-write group gave no outcome".into(),
        ))
    }

    /// Commits several writes in one transaction and one fsync on the
    /// latest revision, as [`Datastore::commit_group`] documents.
    #[cfg(test)]
    fn commit_group(&self, writes: &[PendingWrite]) -> Result<Vec<CommitOutcome>, StoreError> {
        let base = self.revision()?;
        self.commit_audited(base, CommitId::random(), writes.to_vec(), &[])
    }

    /// Commits `writes` and records `denied` in one transaction and one
    /// fsync, as [`Datastore::commit_group`] documents. Takes the writes
    /// whole: their changes and effects move into the change sets returned
    /// (a group-wide write's are hundreds of thousands, not copied inside
    /// the commit that every other write waits behind).
    pub fn commit_audited(
        &self,
        base: Revision,
        id: CommitId,
        writes: Vec<PendingWrite>,
        denied: &[AuditEntry],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        self.run(|db| {
            let mut txn = db.begin_write().map_err(db_err)?;
            // Immediate is redb's default; stated because an acknowledged
            // write must survive `kill -9`.
            txn.set_durability(Durability::Immediate).map_err(db_err)?;
            // redb runs one write transaction at a time, so the head read
            // here cannot move before this one commits.
            let mut heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
            if !writes.is_empty() {
                let head = read_revision(&txn.open_table(META).map_err(db_err)?)?;
                if heads.conflict(base, head, &writes) {
                    abort(txn);
                    return Err(StoreError::Conflict { base, head });
                }
            }
            let staged = self.stage_all(&txn, writes, denied);
            let outcomes = match staged {
                Ok(outcomes) => outcomes,
                Err(err) => {
                    abort(txn);
                    return Err(err);
                }
            };
            let last = outcomes
                .iter()
                .filter_map(|o| match o {
                    CommitOutcome::Committed(set) => Some(set.revision),
                    CommitOutcome::Replayed(_) => None,
                })
                .max();
            if last.is_none() && denied.is_empty() {
                abort(txn);
                return Ok(outcomes);
            }
            if let Some(first) = first_committed(&outcomes) {
                if let Err(err) = record_commit(&txn, first, id) {
                    abort(txn);
                    return Err(err);
                }
            }
            let retain = self.retention.load(Ordering::SeqCst);
            let keep_from = last.and_then(|l| l.0.checked_sub(retain).map(|r| Revision(r + 1)));
            if let Some(keep_from) = keep_from {
                if let Err(err) = prune_in(&txn, keep_from) {
                    abort(txn);
                    return Err(err);
                }
            }
            if let Err(err) = commit(txn) {
                // It may have landed: which tenants it wrote is unknown.
                if let Some(last) = last {
                    heads.reset(last);
                }
                return Err(err);
            }
            for outcome in &outcomes {
                if let CommitOutcome::Committed(set) = outcome {
                    heads.record(set);
                }
            }
            Ok(outcomes)
        })
    }

    /// Stages every write and its audit entry, the denials, and the audit
    /// trail's pruning, in `txn`.
    fn stage_all(
        &self,
        txn: &WriteTransaction,
        writes: Vec<PendingWrite>,
        denied: &[AuditEntry],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let latest = writes
            .iter()
            .map(|w| w.committed_at)
            .chain(denied.iter().map(|e| e.key.at))
            .max();
        let mut tables = WriteTables::open(txn)?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for write in writes {
            let outcome = match stage(&mut tables, &write)? {
                Staged::Committed(revision) => {
                    // A replica's copy of a primary's write is audited on
                    // the primary, which knows who asked.
                    if write.revision.is_none() {
                        tables.audit.record(write.audit_entry(revision))?;
                    }
                    CommitOutcome::Committed(write.into_entry(revision))
                }
                Staged::Replayed(first) => CommitOutcome::Replayed(first),
            };
            outcomes.push(outcome);
        }
        for entry in denied {
            tables.audit.record(entry.clone())?;
        }
        let age = self.audit_retention.load(Ordering::SeqCst);
        if let Some(latest) = latest {
            if let Some(before) = i64::try_from(age)
                .ok()
                .and_then(|a| latest.0.checked_sub(a))
            {
                tables.audit.prune(Timestamp(before))?;
            }
        }
        tables.audit.finish(&mut tables.meta)?;
        Ok(outcomes)
    }

    /// Replaces everything the store holds with `tenants` (each tenant's
    /// records as the changes that recreate it) and `schema`, at
    /// `revision`, in one transaction: a replica installing a primary's
    /// snapshot. The changelog and idempotency keys start empty, so the
    /// next entry must be `revision + 1`. All or nothing.
    pub fn replace_all(
        &self,
        revision: Revision,
        schema: &str,
        tenants: &[(TenantId, Vec<Change>)],
    ) -> Result<(), StoreError> {
        self.run(|db| {
            let mut txn = db.begin_write().map_err(db_err)?;
            txn.set_durability(Durability::Immediate).map_err(db_err)?;
            let mut heads = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
            let staged = replace_in(&txn, revision, schema, tenants);
            if let Err(err) = staged {
                abort(txn);
                return Err(err);
            }
            // A new data set: no commit of the old one is known per tenant.
            heads.reset(revision);
            commit(txn)
        })
    }

    /// Changelog entries with a revision above `after`, ascending, at most
    /// `limit` of them.
    #[cfg(test)]
    fn changes_after(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.changes_within(after, limit, usize::MAX)
    }

    /// Changelog entries after `after`, as [`Datastore::changes_after`]
    /// documents: bounded in count and in stored bytes, and never skipping a
    /// pruned revision.
    pub fn changes_within(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.run(|db| {
            let Some(first) = after.0.checked_add(1) else {
                return Ok(Vec::new());
            };
            let txn = db.begin_read().map_err(db_err)?;
            let latest = read_revision_of(&txn)?;
            if after >= latest {
                return Ok(Vec::new());
            }
            let log = txn.open_table(CHANGELOG).map_err(db_err)?;
            let oldest = log
                .first()
                .map_err(db_err)?
                .map_or(latest.next(), |(key, _)| Revision(key.value()));
            if oldest.0 > first {
                return Err(StoreError::Pruned { after, oldest });
            }
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for row in log.range(first..).map_err(db_err)?.take(limit) {
                let (_, value) = row.map_err(db_err)?;
                // Bounded by the entries' size once decompressed: what the
                // page costs in memory.
                let entry = codec::plain("change set", value.value())?;
                bytes = bytes.saturating_add(entry.len());
                if bytes > max_bytes && !out.is_empty() {
                    break;
                }
                out.push(codec::from_json("change set", &entry)?);
            }
            Ok(out)
        })
    }

    /// The revision an idempotency key was first committed at, if it was.
    /// Keys are scoped per tenant (`None`: store-wide writes).
    pub fn idempotent_revision(
        &self,
        tenant: Option<&TenantId>,
        key: &str,
    ) -> Result<Option<Revision>, StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            let keys = txn.open_table(IDEMPOTENCY).map_err(db_err)?;
            let scope = tenant.map_or(codec::STORE_WIDE, TenantId::as_str);
            let first = keys.get((scope, key)).map_err(db_err)?;
            Ok(first.map(|r| Revision(r.value())))
        })
    }

    /// The first revision of the group committed as `id` after `after`,
    /// if it landed and is still retained.
    pub fn find_commit(
        &self,
        id: CommitId,
        after: Revision,
    ) -> Result<Option<Revision>, StoreError> {
        self.run(|db| {
            let Some(first) = after.0.checked_add(1) else {
                return Ok(None);
            };
            let txn = db.begin_read().map_err(db_err)?;
            let commits = match txn.open_table(COMMITS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(err) => return Err(db_err(err)),
            };
            for row in commits.range(first..).map_err(db_err)? {
                let (revision, committed) = row.map_err(db_err)?;
                if committed.value() == id.0 {
                    return Ok(Some(Revision(revision.value())));
                }
            }
            Ok(None)
        })
    }

    /// The data set's epoch.
    pub fn epoch(&self) -> Result<Epoch, StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            let meta = txn.open_table(META).map_err(db_err)?;
            let epoch = meta.get(META_EPOCH).map_err(db_err)?;
            epoch
                .map(|e| Epoch(e.value()))
                .ok_or_else(|| StoreError::Database("the store records no epoch".into()))
        })
    }

    /// The lowest revision still in the changelog; 0 if it is empty.
    pub fn oldest_retained(&self) -> Result<Revision, StoreError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(db_err)?;
            let log = txn.open_table(CHANGELOG).map_err(db_err)?;
            let first = log.first().map_err(db_err)?;
            Ok(Revision(first.map_or(0, |(key, _)| key.value())))
        })
    }

    /// Runs `op` on the open database, reopening it first if an earlier
    /// failure closed it, and closing it if `op` fails in a way that leaves
    /// redb's handle unusable.
    fn run<T>(&self, op: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let result = {
            let shared = self.read_slot();
            if let Some(db) = shared.as_ref() {
                op(db)
            } else {
                drop(shared);
                let mut exclusive = self.write_slot();
                if self.closed.load(Ordering::SeqCst) {
                    return Err(StoreError::Closed);
                }
                let db = match &mut *exclusive {
                    Some(db) => db,
                    empty @ None => empty.insert(open_db(&self.opener, &self.location)?),
                };
                op(db)
            }
        };
        if let Err(err) = &result {
            if needs_reopen(err) {
                tracing::warn!(store = %self.location, error = %err, "closing the store to reopen it");
                // Dropping the handle closes the file; the next operation
                // reopens it, which runs redb's recovery.
                *self.write_slot() = None;
            }
        }
        result
    }

    // A panic while the lock was held cannot leave the database half-changed
    // (redb transactions are atomic and roll back on drop), so a poisoned lock
    // is safe to keep using.
    fn read_slot(&self) -> RwLockReadGuard<'_, Option<Database>> {
        self.slot.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_slot(&self) -> RwLockWriteGuard<'_, Option<Database>> {
        self.slot.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Opens a handle and checks (or, for a new file, records) the format
/// version.
fn open_db(opener: &Opener, location: &str) -> Result<Database, StoreError> {
    let db = opener().map_err(|err| open_error(err, location))?;
    let txn = db.begin_read().map_err(db_err)?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(db_err)?
        .map(|table| table.name().to_owned())
        .collect();
    if names.is_empty() {
        drop(txn);
        initialize(&db)?;
        return Ok(db);
    }
    if !names.iter().any(|name| name == META.name()) {
        return Err(StoreError::NotAStore {
            location: location.to_owned(),
        });
    }
    let meta = txn.open_table(META).map_err(db_err)?;
    let format = meta
        .get(META_FORMAT_VERSION)
        .map_err(db_err)?
        .map(|v| v.value());
    match format {
        Some(FORMAT_VERSION | tables::FORMAT_VERSION_JSON) => {}
        Some(found) => {
            return Err(StoreError::UnknownFormat {
                location: location.to_owned(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        None => {
            return Err(StoreError::NotAStore {
                location: location.to_owned(),
            });
        }
    }
    let has_epoch = meta.get(META_EPOCH).map_err(db_err)?.is_some();
    drop(meta);
    drop(txn);
    if !has_epoch {
        ensure_epoch(&db)?;
    }
    if format == Some(tables::FORMAT_VERSION_JSON) {
        upgrade_format(&db, location)?;
    }
    Ok(db)
}

/// Marks a format 1 file as format 2, once, in place. Format 2 reads every
/// value format 1 wrote (JSON, a membership's JSON beside its key), so
/// nothing is rewritten: new values are written the compact way, old ones
/// are read as they are. From then on a build that knows only format 1
/// refuses the file instead of misreading a compressed change set.
fn upgrade_format(db: &Database, location: &str) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)
            .map_err(db_err)?;
    }
    txn.commit().map_err(db_err)?;
    tracing::info!(
        file = location,
        from = tables::FORMAT_VERSION_JSON,
        to = FORMAT_VERSION,
        "store format upgraded in place; builds older than this one no longer open the file"
    );
    Ok(())
}

/// Names the cause of a failed open: the lock of another process, a file
/// that is not (or no longer) a redb database, a permission; anything else
/// keeps redb's own description.
fn open_error(err: redb::DatabaseError, location: &str) -> StoreError {
    use redb::{DatabaseError, StorageError};
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::InUse {
                path: PathBuf::from(location),
            }
        }
        DatabaseError::UpgradeRequired(version) => StoreError::Corrupt {
            location: location.to_owned(),
            reason: format!("redb file format {version}, which this build does not read"),
        },
        DatabaseError::Storage(StorageError::Corrupted(reason)) => StoreError::Corrupt {
            location: location.to_owned(),
            reason,
        },
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            StoreError::PermissionDenied {
                path: PathBuf::from(location),
            }
        }
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData
                || io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            StoreError::Corrupt {
                location: location.to_owned(),
                reason: io.to_string(),
            }
        }
        other => StoreError::Open {
            location: location.to_owned(),
            source: Box::new(redb::Error::from(other)),
        },
    }
}

/// Creates every table and records the format version in a new file, so that
/// readers never meet a missing table.
fn initialize(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        meta.insert(META_FORMAT_VERSION, FORMAT_VERSION)
            .map_err(db_err)?;
        meta.insert(META_EPOCH, Epoch::random().0).map_err(db_err)?;
        txn.open_table(SCHEMA).map_err(db_err)?;
        txn.open_table(TENANTS).map_err(db_err)?;
        for table in [SUBJECTS, SCOPES, GROUPS, ROLES, ASSIGNMENTS] {
            txn.open_table(table).map_err(db_err)?;
        }
        txn.open_table(MEMBERSHIPS).map_err(db_err)?;
        txn.open_table(CHANGELOG).map_err(db_err)?;
        txn.open_table(IDEMPOTENCY).map_err(db_err)?;
        txn.open_table(tables::AUDIT).map_err(db_err)?;
        txn.open_table(COMMITS).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)
}

/// Gives a file written before epochs existed its epoch, once.
fn ensure_epoch(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut meta = txn.open_table(META).map_err(db_err)?;
        if meta.get(META_EPOCH).map_err(db_err)?.is_some() {
            drop(meta);
            abort(txn);
            return Ok(());
        }
        meta.insert(META_EPOCH, Epoch::random().0).map_err(db_err)?;
    }
    txn.commit().map_err(db_err)
}

/// The first revision a group's outcomes committed, if any.
fn first_committed(outcomes: &[CommitOutcome]) -> Option<Revision> {
    outcomes.iter().find_map(|o| match o {
        CommitOutcome::Committed(set) => Some(set.revision),
        CommitOutcome::Replayed(_) => None,
    })
}

/// Records that the group starting at `first` was committed as `id`.
fn record_commit(txn: &WriteTransaction, first: Revision, id: CommitId) -> Result<(), StoreError> {
    let mut commits = txn.open_table(COMMITS).map_err(db_err)?;
    commits.insert(first.0, id.0).map_err(db_err)?;
    Ok(())
}

/// Commits `txn`; a failure of the final step leaves the outcome unknown.
fn commit(txn: WriteTransaction) -> Result<(), StoreError> {
    txn.commit().map_err(|err| match err {
        // A poisoned transaction is rolled back: certainly not written.
        redb::CommitError::TransactionPoisoned => db_err(err),
        other => StoreError::CommitUncertain(Box::new(redb::Error::from(other))),
    })
}

/// Aborts explicitly so that a failing abort is logged rather than lost in
/// `Drop`; the caller's own outcome stands either way, since nothing of an
/// uncommitted transaction is ever visible.
fn abort(txn: WriteTransaction) {
    if let Err(err) = txn.abort() {
        tracing::warn!(error = %err, "aborting a store transaction failed");
    }
}

/// Every table a write may touch, opened once per transaction.
struct WriteTables<'txn> {
    meta: redb::Table<'txn, &'static str, u64>,
    schema: redb::Table<'txn, &'static str, &'static str>,
    tenants: redb::Table<'txn, &'static str, &'static [u8]>,
    subjects: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    scopes: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    groups: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    roles: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    memberships: redb::Table<'txn, (&'static str, &'static str, &'static str), &'static [u8]>,
    assignments: redb::Table<'txn, (&'static str, &'static str), &'static [u8]>,
    changelog: redb::Table<'txn, u64, &'static [u8]>,
    idempotency: redb::Table<'txn, (&'static str, &'static str), u64>,
    audit: AuditTable<'txn>,
}

impl<'txn> WriteTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let meta = txn.open_table(META).map_err(db_err)?;
        let audit = AuditTable::open(txn, &meta)?;
        Ok(Self {
            meta,
            audit,
            schema: txn.open_table(SCHEMA).map_err(db_err)?,
            tenants: txn.open_table(TENANTS).map_err(db_err)?,
            subjects: txn.open_table(SUBJECTS).map_err(db_err)?,
            scopes: txn.open_table(SCOPES).map_err(db_err)?,
            groups: txn.open_table(GROUPS).map_err(db_err)?,
            roles: txn.open_table(ROLES).map_err(db_err)?,
            memberships: txn.open_table(MEMBERSHIPS).map_err(db_err)?,
            assignments: txn.open_table(ASSIGNMENTS).map_err(db_err)?,
            changelog: txn.open_table(CHANGELOG).map_err(db_err)?,
            idempotency: txn.open_table(IDEMPOTENCY).map_err(db_err)?,
        })
    }
}

/// Stages one write of a transaction: checks idempotency and the expected
/// revision, applies the changes, appends the changelog entry and advances
/// the revision, all in `t`, for the caller to commit.
fn stage(t: &mut WriteTables<'_>, write: &PendingWrite) -> Result<Staged, StoreError> {
    let tenant = write.tenant.as_ref().map(TenantId::as_str);
    let scope = tenant.unwrap_or(codec::STORE_WIDE);
    if let Some(key) = &write.idempotency_key {
        if let Some(first) = t.idempotency.get((scope, key.as_str())).map_err(db_err)? {
            return Ok(Staged::Replayed(Revision(first.value())));
        }
    }
    let current = read_revision(&t.meta)?;
    match write.expected_revision {
        Some(expected) if expected != current => {
            return Err(StoreError::RevisionMismatch {
                expected,
                actual: current,
            });
        }
        _ => {}
    }
    let revision = Revision(
        current
            .0
            .checked_add(1)
            .ok_or(StoreError::RevisionExhausted)?,
    );
    match write.revision {
        Some(given) if given != revision => {
            return Err(StoreError::OutOfSequence {
                given,
                latest: current,
            });
        }
        _ => {}
    }
    for (index, change) in write.changes.iter().enumerate() {
        apply(t, tenant, index, change)?;
    }
    let entry = match &write.prepared {
        Some(prepared) => codec::entry(prepared.bytes(), revision)?,
        None => codec::entry(&codec::entry_tail(write)?, revision)?,
    };
    t.changelog
        .insert(revision.0, entry.as_slice())
        .map_err(db_err)?;
    if let Some(key) = &write.idempotency_key {
        t.idempotency
            .insert((scope, key.as_str()), revision.0)
            .map_err(db_err)?;
    }
    t.meta.insert(META_REVISION, revision.0).map_err(db_err)?;
    Ok(Staged::Committed(revision))
}

/// What [`stage`] did with a write.
enum Staged {
    /// Staged as this revision.
    Committed(Revision),
    /// Not staged: its idempotency key was committed before, as this
    /// revision.
    Replayed(Revision),
}

/// Encodes `write`'s changelog entry but for its revision, as
/// [`Datastore::prepare`] documents: [`stage`] then only adds the revision.
fn prepare(write: &mut PendingWrite) -> Result<(), StoreError> {
    write.prepared = Some(Prepared::new(codec::entry_tail(write)?));
    Ok(())
}

/// Empties every data table, the changelog and the idempotency keys of
/// `txn`, then writes `tenants` and `schema` at `revision`.
fn replace_in(
    txn: &WriteTransaction,
    revision: Revision,
    schema: &str,
    tenants: &[(TenantId, Vec<Change>)],
) -> Result<(), StoreError> {
    txn.delete_table(SCHEMA).map_err(db_err)?;
    txn.delete_table(TENANTS).map_err(db_err)?;
    for table in [SUBJECTS, SCOPES, GROUPS, ROLES, ASSIGNMENTS] {
        txn.delete_table(table).map_err(db_err)?;
    }
    txn.delete_table(MEMBERSHIPS).map_err(db_err)?;
    txn.delete_table(CHANGELOG).map_err(db_err)?;
    txn.delete_table(IDEMPOTENCY).map_err(db_err)?;
    txn.delete_table(COMMITS).map_err(db_err)?;
    txn.open_table(COMMITS).map_err(db_err)?;
    let mut tables = WriteTables::open(txn)?;
    apply(
        &mut tables,
        None,
        0,
        &Change::SchemaWritten(schema.to_owned()),
    )?;
    for (tenant, changes) in tenants {
        for (index, change) in changes.iter().enumerate() {
            apply(&mut tables, Some(tenant.as_str()), index, change)?;
        }
    }
    tables
        .meta
        .insert(META_REVISION, revision.0)
        .map_err(db_err)?;
    // A replaced data set is a new one: nothing planned on the old one
    // applies to it.
    tables
        .meta
        .insert(META_EPOCH, Epoch::random().0)
        .map_err(db_err)?;
    Ok(())
}

/// Removes changelog entries below `keep_from` (the retention window), at
/// most [`MAX_PRUNED_PER_COMMIT`] of them, inside the commit's transaction.
fn prune_in(txn: &WriteTransaction, keep_from: Revision) -> Result<(), StoreError> {
    prune_below(txn, CHANGELOG, keep_from)?;
    prune_below(txn, COMMITS, keep_from)
}

/// Removes the rows of a revision-keyed table below `keep_from`, at most
/// [`MAX_PRUNED_PER_COMMIT`] of them.
fn prune_below<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    table: redb::TableDefinition<u64, V>,
    keep_from: Revision,
) -> Result<(), StoreError> {
    let mut rows = txn.open_table(table).map_err(db_err)?;
    let old: Vec<u64> = rows
        .range(..keep_from.0)
        .map_err(db_err)?
        .take(MAX_PRUNED_PER_COMMIT)
        .map(|row| row.map(|(k, _)| k.value()).map_err(db_err))
        .collect::<Result<_, _>>()?;
    for key in &old {
        rows.remove(key).map_err(db_err)?;
    }
    Ok(())
}

/// Applies one change to the state tables.
fn apply(
    t: &mut WriteTables<'_>,
    tenant: Option<&str>,
    index: usize,
    change: &Change,
) -> Result<(), StoreError> {
    if let Change::SchemaWritten(text) = change {
        t.schema
            .insert(SCHEMA_CURRENT, text.as_str())
            .map_err(db_err)?;
        return Ok(());
    }
    let tenant = tenant.ok_or(StoreError::MissingTenant { index })?;
    match change {
        Change::TenantPut(settings) => {
            let value = codec::encode("tenant settings", settings)?;
            t.tenants.insert(tenant, value.as_slice()).map_err(db_err)?;
        }
        Change::SubjectPut(subject) => {
            let value = codec::encode("subject", subject)?;
            t.subjects
                .insert((tenant, subject.id.as_str()), value.as_slice())
                .map_err(db_err)?;
        }
        Change::SubjectDeleted(id) => {
            t.subjects.remove((tenant, id.as_str())).map_err(db_err)?;
        }
        Change::ScopePut(scope) => {
            let value = codec::encode("scope", scope)?;
            t.scopes
                .insert((tenant, scope.id.as_str()), value.as_slice())
                .map_err(db_err)?;
        }
        Change::ScopeDeleted(id) => {
            t.scopes.remove((tenant, id.as_str())).map_err(db_err)?;
        }
        Change::GroupPut(group) => {
            let value = codec::encode("group", group)?;
            t.groups
                .insert((tenant, group.id.as_str()), value.as_slice())
                .map_err(db_err)?;
        }
        Change::GroupDeleted(id) => {
            t.groups.remove((tenant, id.as_str())).map_err(db_err)?;
        }
        Change::RolePut(role) => {
            let value = codec::encode("role", role)?;
            t.roles
                .insert((tenant, role.id.as_str()), value.as_slice())
                .map_err(db_err)?;
        }
        Change::RoleDeleted(id) => {
            t.roles.remove((tenant, id.as_str())).map_err(db_err)?;
        }
        Change::MemberAdded(membership) => {
            let member = codec::principal_key(&membership.member);
            t.memberships
                .insert(
                    (tenant, membership.group.as_str(), member.as_str()),
                    codec::MEMBERSHIP_VALUE,
                )
                .map_err(db_err)?;
        }
        Change::MemberRemoved(membership) => {
            let member = codec::principal_key(&membership.member);
            t.memberships
                .remove((tenant, membership.group.as_str(), member.as_str()))
                .map_err(db_err)?;
        }
        Change::RoleAssigned(assignment) => {
            let key = codec::assignment_key(&assignment.key);
            let value = codec::encode("assignment", assignment)?;
            t.assignments
                .insert((tenant, key.as_str()), value.as_slice())
                .map_err(db_err)?;
        }
        Change::RoleUnassigned(key) | Change::RoleExpired(key) => {
            let key = codec::assignment_key(key);
            t.assignments
                .remove((tenant, key.as_str()))
                .map_err(db_err)?;
        }
        Change::SchemaWritten(_) => {}
    }
    Ok(())
}

fn read_revision(meta: &impl ReadableTable<&'static str, u64>) -> Result<Revision, StoreError> {
    let stored = meta.get(META_REVISION).map_err(db_err)?;
    Ok(Revision(stored.map_or(0, |value| value.value())))
}

/// A table keyed by (tenant id, record id).
type PairTable = redb::TableDefinition<'static, (&'static str, &'static str), &'static [u8]>;

fn read_revision_of(txn: &ReadTransaction) -> Result<Revision, StoreError> {
    read_revision(&txn.open_table(META).map_err(db_err)?)
}

fn read_schema(txn: &ReadTransaction) -> Result<Option<String>, StoreError> {
    Ok(txn
        .open_table(SCHEMA)
        .map_err(db_err)?
        .get(SCHEMA_CURRENT)
        .map_err(db_err)?
        .map(|text| text.value().to_owned()))
}

/// Parses tenant ids of consecutive rows, which arrive grouped by tenant:
/// the same id is parsed (and allocated) once per run of rows.
#[derive(Default)]
struct TenantIds {
    last: Option<TenantId>,
}

impl TenantIds {
    fn parse(&mut self, tenant: &str) -> Result<TenantId, StoreError> {
        match &self.last {
            Some(last) if last.as_str() == tenant => Ok(last.clone()),
            _ => {
                let id = TenantId::try_from(tenant).map_err(|source| StoreError::InvalidKey {
                    what: "tenant",
                    source,
                })?;
                self.last = Some(id.clone());
                Ok(id)
            }
        }
    }
}

/// Hands every directory record to `each`, in the order [`SnapshotStream`]
/// documents, until `each` breaks.
fn each_record(
    txn: &ReadTransaction,
    each: &mut dyn FnMut(&TenantId, Change) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let mut ids = TenantIds::default();
    let mut read = || -> Result<(), Halt> {
        each_tenant(txn, &mut ids, each)?;
        each_pair(txn, SCOPES, "scope", &mut ids, each, Change::ScopePut)?;
        each_pair(txn, SUBJECTS, "subject", &mut ids, each, Change::SubjectPut)?;
        each_pair(txn, GROUPS, "group", &mut ids, each, Change::GroupPut)?;
        each_pair(txn, ROLES, "role", &mut ids, each, Change::RolePut)?;
        each_membership(txn, &mut ids, each)?;
        let assignment = Change::RoleAssigned;
        each_pair(txn, ASSIGNMENTS, "assignment", &mut ids, each, assignment)
    };
    match read() {
        Ok(()) | Err(Halt::Stopped) => Ok(()),
        Err(Halt::Failed(e)) => Err(e),
    }
}

/// Why a read of the records ended early.
enum Halt {
    /// The reader broke off.
    Stopped,
    /// The store failed.
    Failed(StoreError),
}

impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Halt::Failed(e)
    }
}

/// Hands `each` one record, turning its break into [`Halt::Stopped`].
fn hand(
    each: &mut dyn FnMut(&TenantId, Change) -> ControlFlow<()>,
    tenant: &TenantId,
    change: Change,
) -> Result<(), Halt> {
    match each(tenant, change) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Halt::Stopped),
    }
}

fn each_tenant(
    txn: &ReadTransaction,
    ids: &mut TenantIds,
    each: &mut dyn FnMut(&TenantId, Change) -> ControlFlow<()>,
) -> Result<(), Halt> {
    for row in txn
        .open_table(TENANTS)
        .map_err(db_err)?
        .iter()
        .map_err(db_err)?
    {
        let (key, value) = row.map_err(db_err)?;
        let settings = codec::decode("tenant settings", value.value())?;
        hand(each, &ids.parse(key.value())?, Change::TenantPut(settings))?;
    }
    Ok(())
}

fn each_membership(
    txn: &ReadTransaction,
    ids: &mut TenantIds,
    each: &mut dyn FnMut(&TenantId, Change) -> ControlFlow<()>,
) -> Result<(), Halt> {
    for row in txn
        .open_table(MEMBERSHIPS)
        .map_err(db_err)?
        .iter()
        .map_err(db_err)?
    {
        let (key, value) = row.map_err(db_err)?;
        let (tenant, group, member) = key.value();
        let membership = codec::membership(group, member, value.value())?;
        hand(each, &ids.parse(tenant)?, Change::MemberAdded(membership))?;
    }
    Ok(())
}

fn each_pair<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: PairTable,
    what: &'static str,
    ids: &mut TenantIds,
    each: &mut dyn FnMut(&TenantId, Change) -> ControlFlow<()>,
    change: fn(T) -> Change,
) -> Result<(), Halt> {
    for row in txn
        .open_table(table)
        .map_err(db_err)?
        .iter()
        .map_err(db_err)?
    {
        let (key, value) = row.map_err(db_err)?;
        let (tenant, _) = key.value();
        let record = codec::decode(what, value.value())?;
        hand(each, &ids.parse(tenant)?, change(record))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use std::collections::BTreeMap;

    use super::failing_disk::Disk;
    use super::*;
    use authzd_core::model::{
        Assignment, AssignmentKey, AuditKey, AuditOutcome, Grant, Group, GroupId, Membership,
        Origin, OutcomeFilter, Principal, Role, RoleId, Scope, ScopeId, Subject, SubjectId,
        SubjectKind, SubjectStatus, Target, TenantSettings,
    };

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// The whole store, as read by one transaction, to compare states.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct Loaded {
        /// The revision the data reflects.
        revision: Revision,
        /// The schema text, if one was ever written.
        schema: Option<String>,
        /// Every tenant, in id order.
        tenants: Vec<TenantData>,
    }

    /// One tenant's records, each vector in key order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct TenantData {
        /// The tenant.
        id: TenantId,
        /// Its settings; the defaults if rows exist without a tenant row (which
        /// only a caller that skipped `TenantPut` can cause).
        settings: TenantSettings,
        /// By subject id.
        subjects: Vec<Subject>,
        /// By scope id.
        scopes: Vec<Scope>,
        /// By group id.
        groups: Vec<Group>,
        /// Custom roles, by role id.
        roles: Vec<Role>,
        /// By group, then member.
        memberships: Vec<Membership>,
        /// By role, then principal, then target.
        assignments: Vec<Assignment>,
    }

    impl TenantData {
        fn empty(id: TenantId) -> Self {
            Self {
                id,
                settings: TenantSettings::default(),
                subjects: Vec::new(),
                scopes: Vec::new(),
                groups: Vec::new(),
                roles: Vec::new(),
                memberships: Vec::new(),
                assignments: Vec::new(),
            }
        }
    }

    fn load_all(txn: &ReadTransaction) -> Result<Loaded, StoreError> {
        let mut tenants: BTreeMap<TenantId, TenantData> = BTreeMap::new();
        each_record(txn, &mut |tenant, change| {
            let t = tenants
                .entry(tenant.clone())
                .or_insert_with(|| TenantData::empty(tenant.clone()));
            match change {
                Change::TenantPut(settings) => t.settings = settings,
                Change::ScopePut(r) => t.scopes.push(r),
                Change::SubjectPut(r) => t.subjects.push(r),
                Change::GroupPut(r) => t.groups.push(r),
                Change::RolePut(r) => t.roles.push(r),
                Change::MemberAdded(r) => t.memberships.push(r),
                Change::RoleAssigned(r) => t.assignments.push(r),
                // `each_record` produces no other kind.
                _ => {}
            }
            ControlFlow::Continue(())
        })?;
        Ok(Loaded {
            revision: read_revision_of(txn)?,
            schema: read_schema(txn)?,
            tenants: tenants.into_values().collect(),
        })
    }

    /// Everything `store` holds, read in one transaction.
    fn load(store: &Store) -> Result<Loaded, StoreError> {
        store.run(|db| load_all(&db.begin_read().map_err(db_err)?))
    }

    fn tenant(id: &str) -> TenantId {
        TenantId::try_from(id).unwrap()
    }

    fn subject(id: &str) -> Subject {
        Subject {
            id: SubjectId::try_from(id).unwrap(),
            kind: SubjectKind::User,
            status: SubjectStatus::Active,
            attributes: [("department".to_owned(), "HR".to_owned())].into(),
            home_scope: None,
        }
    }

    fn scope(id: &str) -> Scope {
        Scope {
            id: ScopeId::try_from(id).unwrap(),
            scope_type: "app".to_owned(),
            parent: ScopeId::root(),
        }
    }

    fn group(id: &str) -> Group {
        Group {
            id: GroupId::try_from(id).unwrap(),
            title: format!("Group {id}"),
            condition: None,
        }
    }

    fn role(id: &str) -> Role {
        Role {
            id: RoleId::try_from(id).unwrap(),
            title: format!("Role {id}"),
            grants: vec![Grant {
                permission: "product:edit".parse().unwrap(),
                scopes: vec![],
            }],
            class: None,
            rank: 10,
            requires: vec![],
            managed_by: Some("users:admin".parse().unwrap()),
            grantable_by: None,
            self_removable: true,
        }
    }

    fn membership(group: &str, subject: &str) -> Membership {
        Membership {
            group: GroupId::try_from(group).unwrap(),
            member: Principal::Subject(SubjectId::try_from(subject).unwrap()),
        }
    }

    fn assignment(role: &str, subject: &str, scope: &str) -> Assignment {
        Assignment {
            key: AssignmentKey {
                role: RoleId::try_from(role).unwrap(),
                principal: Principal::Subject(SubjectId::try_from(subject).unwrap()),
                target: Target::Scope(ScopeId::try_from(scope).unwrap()),
            },
            expires_at: None,
        }
    }

    fn settings(disabled: &[&str]) -> TenantSettings {
        TenantSettings {
            disabled_resources: disabled.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    fn write(tenant_id: Option<&str>, changes: Vec<Change>) -> PendingWrite {
        PendingWrite {
            tenant: tenant_id.map(tenant),
            actor: Some(SubjectId::try_from("admin").unwrap()),
            committed_at: Timestamp(1_700_000_000_000_000_000),
            changes,
            effects: Vec::new(),
            expected_revision: None,
            idempotency_key: None,
            origin: Origin {
                caller: "tester".into(),
                request_id: "r-1".into(),
                method: "Test/Write".into(),
                reason: Some("because".into()),
            },
            revision: None,
            prepared: None,
        }
    }

    fn committed(outcome: CommitOutcome) -> ChangeSet {
        match outcome {
            CommitOutcome::Committed(changeset) => changeset,
            CommitOutcome::Replayed(revision) => {
                panic!("replayed at {revision}, expected a commit")
            }
        }
    }

    /// Writes touching every kind of change across two tenants, including
    /// deletes and removals, ending in a known state.
    fn sample_writes() -> Vec<PendingWrite> {
        vec![
            write(None, vec![Change::SchemaWritten("[resources]".to_owned())]),
            write(
                Some("acme"),
                vec![
                    Change::TenantPut(settings(&[])),
                    Change::SubjectPut(subject("zoe")),
                    Change::SubjectPut(subject("alice")),
                    Change::SubjectPut(subject("bob")),
                    Change::ScopePut(scope("app-1")),
                    Change::GroupPut(group("staff")),
                    Change::RolePut(role("editor")),
                ],
            ),
            write(
                Some("beta"),
                vec![
                    Change::TenantPut(settings(&["reports"])),
                    Change::SubjectPut(subject("alice")),
                    Change::GroupPut(group("staff")),
                    Change::MemberAdded(membership("staff", "alice")),
                ],
            ),
            write(
                Some("acme"),
                vec![
                    Change::MemberAdded(membership("staff", "alice")),
                    Change::MemberAdded(membership("staff", "bob")),
                    Change::RoleAssigned(assignment("editor", "alice", "app-1")),
                    Change::RoleAssigned(assignment("editor", "bob", "root")),
                ],
            ),
            write(
                Some("acme"),
                vec![
                    Change::MemberRemoved(membership("staff", "bob")),
                    Change::RoleUnassigned(assignment("editor", "bob", "root").key),
                    Change::SubjectDeleted(SubjectId::try_from("bob").unwrap()),
                    Change::TenantPut(settings(&["widgets"])),
                ],
            ),
        ]
    }

    /// The state [`sample_writes`] must leave.
    fn sample_state() -> Loaded {
        let acme = TenantData {
            id: tenant("acme"),
            settings: settings(&["widgets"]),
            subjects: vec![subject("alice"), subject("zoe")],
            scopes: vec![scope("app-1")],
            groups: vec![group("staff")],
            roles: vec![role("editor")],
            memberships: vec![membership("staff", "alice")],
            assignments: vec![assignment("editor", "alice", "app-1")],
        };
        let beta = TenantData {
            id: tenant("beta"),
            settings: settings(&["reports"]),
            subjects: vec![subject("alice")],
            scopes: vec![],
            groups: vec![group("staff")],
            roles: vec![],
            memberships: vec![membership("staff", "alice")],
            assignments: vec![],
        };
        Loaded {
            revision: Revision(5),
            schema: Some("[resources]".to_owned()),
            tenants: vec![acme, beta],
        }
    }

    fn memory_store(disk: &Arc<Disk>) -> Result<Store, StoreError> {
        let disk = Arc::clone(disk);
        Store::open_with_backend("memory", move || disk.backend())
    }

    /// Everything observable about a store: revision, changelog, state.
    fn observe(store: &Store) -> Result<(Revision, Vec<ChangeSet>, Loaded), StoreError> {
        Ok((
            store.revision()?,
            store.changes_after(Revision(0), usize::MAX)?,
            load(store)?,
        ))
    }

    #[test]
    fn store_and_its_errors_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
        check::<StoreError>();
    }

    /// An empty store is at revision 0 with nothing in it.
    #[test]
    fn empty_store_is_at_revision_zero() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("nested/data"))?;
        assert_eq!(store.revision()?, Revision(0));
        assert_eq!(store.oldest_retained()?, Revision(0));
        assert_eq!(store.changes_after(Revision(0), 10)?, vec![]);
        assert_eq!(load(&store)?, Loaded::default());
        assert!(dir.path().join("nested/data").join(FILE_NAME).is_file());
        Ok(())
    }

    /// Commits across two tenants survive a reopen exactly, each tenant
    /// holding only its own rows, in key order; revisions step by one.
    #[test]
    fn state_round_trips_through_a_reopen() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut changesets = Vec::new();
        {
            let store = Store::open(dir.path())?;
            for (i, w) in sample_writes().iter().enumerate() {
                let changeset = committed(store.commit(w)?);
                assert_eq!(changeset.revision, Revision(i as u64 + 1));
                assert_eq!(changeset.tenant, w.tenant);
                assert_eq!(changeset.actor, w.actor);
                assert_eq!(changeset.committed_at, w.committed_at);
                assert_eq!(changeset.changes, w.changes);
                assert_eq!(store.revision()?, changeset.revision);
                changesets.push(changeset);
            }
        }
        let store = Store::open(dir.path())?;
        assert_eq!(load(&store)?, sample_state());
        assert_eq!(store.revision()?, Revision(5));
        assert_eq!(store.changes_after(Revision(0), 100)?, changesets);
        Ok(())
    }

    /// `changes_after` pages through the changelog in order and honours its
    /// limit; `oldest_retained` is the first entry.
    #[test]
    fn changes_after_pages_in_order() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        let all: Vec<ChangeSet> = sample_writes()
            .iter()
            .map(|w| store.commit(w).map(committed))
            .collect::<Result<_, _>>()?;
        assert_eq!(store.oldest_retained()?, Revision(1));
        assert_eq!(store.changes_after(Revision(0), 2)?, all[0..2]);
        assert_eq!(store.changes_after(Revision(2), 2)?, all[2..4]);
        assert_eq!(store.changes_after(Revision(4), 2)?, all[4..5]);
        assert_eq!(store.changes_after(Revision(5), 2)?, vec![]);
        assert_eq!(store.changes_after(Revision(0), 0)?, vec![]);
        assert_eq!(store.changes_after(Revision(u64::MAX), 9)?, vec![]);
        Ok(())
    }

    /// A write against a stale revision is refused and writes nothing.
    #[test]
    fn revision_mismatch_writes_nothing() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        for w in &sample_writes()[..2] {
            store.commit(w)?;
        }
        let before = observe(&store)?;
        let mut stale = write(Some("acme"), vec![Change::SubjectPut(subject("mallory"))]);
        stale.expected_revision = Some(Revision(1));
        stale.idempotency_key = Some("k1".to_owned());
        let err = store.commit(&stale).err();
        assert!(
            matches!(
                err,
                Some(StoreError::RevisionMismatch {
                    expected: Revision(1),
                    actual: Revision(2)
                })
            ),
            "{err:?}"
        );
        assert_eq!(observe(&store)?, before);

        // The refused attempt did not record its idempotency key.
        stale.expected_revision = Some(Revision(2));
        assert_eq!(committed(store.commit(&stale)?).revision, Revision(3));
        Ok(())
    }

    /// A retried write is answered with the first attempt's revision and
    /// writes nothing, even when its expected revision is now stale.
    #[test]
    fn idempotent_retry_replays_without_writing() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        store.commit(&sample_writes()[1])?;
        let mut w = write(Some("acme"), vec![Change::SubjectPut(subject("carol"))]);
        w.idempotency_key = Some("req-1".to_owned());
        w.expected_revision = Some(Revision(1));
        assert_eq!(committed(store.commit(&w)?).revision, Revision(2));
        let after_first = observe(&store)?;

        assert_eq!(store.commit(&w)?, CommitOutcome::Replayed(Revision(2)));
        // Even with different content, the key decides.
        w.changes = vec![Change::SubjectPut(subject("dave"))];
        assert_eq!(store.commit(&w)?, CommitOutcome::Replayed(Revision(2)));
        assert_eq!(observe(&store)?, after_first);
        Ok(())
    }

    /// The same idempotency key in two tenants, or store-wide, names three
    /// different writes.
    #[test]
    fn idempotency_keys_are_per_tenant() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        let mut revisions = BTreeSet::new();
        for (t, change) in [
            (Some("acme"), Change::TenantPut(settings(&[]))),
            (Some("beta"), Change::TenantPut(settings(&[]))),
            (None, Change::SchemaWritten(String::new())),
        ] {
            let mut w = write(t, vec![change]);
            w.idempotency_key = Some("same".to_owned());
            revisions.insert(committed(store.commit(&w)?).revision);
            assert!(matches!(store.commit(&w)?, CommitOutcome::Replayed(_)));
        }
        assert_eq!(revisions.len(), 3);
        assert_eq!(store.revision()?, Revision(3));
        Ok(())
    }

    /// A tenant change in a write without a tenant is an error, and the
    /// changes before it in the same write are not applied.
    #[test]
    fn tenant_change_without_tenant_is_refused_whole() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        let before = observe(&store)?;
        let w = write(
            None,
            vec![
                Change::SchemaWritten("x".to_owned()),
                Change::SubjectPut(subject("alice")),
            ],
        );
        let err = store.commit(&w).err();
        assert!(
            matches!(err, Some(StoreError::MissingTenant { index: 1 })),
            "{err:?}"
        );
        assert_eq!(observe(&store)?, before);
        Ok(())
    }

    /// Rows a caller wrote without `TenantPut` still load, under default
    /// settings, rather than vanishing or blocking start-up.
    #[test]
    fn rows_without_a_tenant_row_load_with_default_settings() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        store.commit(&write(Some("gamma"), vec![Change::GroupPut(group("g"))]))?;
        let loaded = load(&store)?;
        assert_eq!(loaded.tenants.len(), 1);
        assert_eq!(loaded.tenants[0].id, tenant("gamma"));
        assert_eq!(loaded.tenants[0].settings, TenantSettings::default());
        assert_eq!(loaded.tenants[0].groups, vec![group("g")]);
        Ok(())
    }

    /// A tenant whose id is a prefix of another's keeps its own rows.
    #[test]
    fn tenant_ranges_do_not_bleed_into_prefixed_ids() -> TestResult {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        store.commit(&write(Some("a"), vec![Change::SubjectPut(subject("x"))]))?;
        store.commit(&write(Some("ab"), vec![Change::SubjectPut(subject("y"))]))?;
        store.commit(&write(Some("a"), vec![Change::SubjectPut(subject("z"))]))?;
        let loaded = load(&store)?;
        let subjects: Vec<(String, Vec<Subject>)> = loaded
            .tenants
            .into_iter()
            .map(|t| (t.id.to_string(), t.subjects))
            .collect();
        assert_eq!(
            subjects,
            vec![
                ("a".to_owned(), vec![subject("x"), subject("z")]),
                ("ab".to_owned(), vec![subject("y")]),
            ]
        );
        Ok(())
    }

    /// A file from another format version is refused with a clear error.
    /// A write large enough that its change set is stored compressed.
    fn large_write() -> PendingWrite {
        let subjects = (0..100).map(|i| Change::SubjectPut(subject(&format!("user-{i:03}"))));
        write(Some("acme"), subjects.collect())
    }

    /// A file of format 1 (every value JSON, memberships with their JSON
    /// value) opens, reads as it was written, is marked format 2, and takes
    /// further writes.
    #[test]
    fn a_format_1_file_is_upgraded_in_place() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut writes = sample_writes();
        writes.push(large_write());
        let before = {
            let store = Store::open(dir.path())?;
            for w in &writes {
                store.commit(w)?;
            }
            observe(&store)?
        };
        // Rewrite the file as format 1 wrote it.
        {
            let db = Database::create(dir.path().join(FILE_NAME))?;
            let txn = db.begin_write()?;
            {
                let mut log = txn.open_table(CHANGELOG)?;
                let rows: Vec<(u64, Vec<u8>)> = log
                    .iter()?
                    .map(|row| row.map(|(k, v)| (k.value(), v.value().to_vec())))
                    .collect::<Result<_, _>>()?;
                let compressed = rows.iter().filter(|(_, v)| v.first() != Some(&b'{'));
                assert_eq!(compressed.count(), 1, "the large change set is compressed");
                for (revision, value) in rows {
                    let json = codec::plain("change set", &value)?.into_owned();
                    log.insert(revision, json.as_slice())?;
                }
                let mut members = txn.open_table(MEMBERSHIPS)?;
                let keys: Vec<(String, String, String)> = members
                    .iter()?
                    .map(|row| {
                        row.map(|(k, _)| {
                            let (t, g, m) = k.value();
                            (t.to_owned(), g.to_owned(), m.to_owned())
                        })
                    })
                    .collect::<Result<_, _>>()?;
                assert!(!keys.is_empty());
                for (t, g, m) in keys {
                    let record = codec::membership(&g, &m, codec::MEMBERSHIP_VALUE)?;
                    let json = serde_json::to_vec(&record)?;
                    members.insert((t.as_str(), g.as_str(), m.as_str()), json.as_slice())?;
                }
                txn.open_table(META)?
                    .insert(META_FORMAT_VERSION, tables::FORMAT_VERSION_JSON)?;
            }
            txn.commit()?;
        }
        let store = Store::open(dir.path())?;
        assert_eq!(observe(&store)?, before);
        store.commit(&write(
            Some("acme"),
            vec![Change::MemberAdded(membership("staff", "zoe"))],
        ))?;
        assert_eq!(store.revision()?, Revision(before.0.0 + 1));
        store.close();
        let db = Database::create(dir.path().join(FILE_NAME))?;
        let txn = db.begin_read()?;
        let format = txn
            .open_table(META)?
            .get(META_FORMAT_VERSION)?
            .map(|v| v.value());
        assert_eq!(format, Some(FORMAT_VERSION));
        Ok(())
    }

    #[test]
    fn unknown_format_version_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        drop(Store::open(dir.path())?);
        {
            let db = Database::create(dir.path().join(FILE_NAME))?;
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert(META_FORMAT_VERSION, 99)?;
            txn.commit()?;
        }
        let err = Store::open(dir.path()).err();
        assert!(
            matches!(
                err,
                Some(StoreError::UnknownFormat {
                    found: 99,
                    supported: FORMAT_VERSION,
                    ..
                })
            ),
            "{err:?}"
        );
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("format version 99"), "{message}");
        Ok(())
    }

    /// A redb file written by something else is not mistaken for a store.
    #[test]
    fn foreign_redb_file_is_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        {
            let db = Database::create(dir.path().join(FILE_NAME))?;
            let txn = db.begin_write()?;
            let other: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("other");
            txn.open_table(other)?.insert("x", 1)?;
            txn.commit()?;
        }
        let err = Store::open(dir.path()).err();
        assert!(matches!(err, Some(StoreError::NotAStore { .. })), "{err:?}");
        Ok(())
    }

    /// A second open of an open store fails instead of sharing the file.
    #[test]
    fn second_open_of_the_same_file_fails() -> TestResult {
        let dir = tempfile::tempdir()?;
        let _first = Store::open(dir.path())?;
        let err = Store::open(dir.path()).err();
        match err {
            Some(StoreError::InUse { path }) => assert_eq!(path, dir.path()),
            other => panic!("expected InUse, got {other:?}"),
        }
        Ok(())
    }

    /// Opens a store on a fresh disk holding the first sample writes.
    fn faulty_store_with_data() -> Result<(Arc<Disk>, Store), StoreError> {
        let disk = Disk::new();
        let store = memory_store(&disk)?;
        for w in &sample_writes()[..3] {
            store.commit(w)?;
        }
        Ok((disk, store))
    }

    /// Proves a failed commit left everything as it was, and that the store
    /// commits normally (as the next revision) once the fault clears.
    fn assert_failed_commit_left_no_trace(
        disk: &Disk,
        store: &Store,
        before: &(Revision, Vec<ChangeSet>, Loaded),
    ) -> TestResult {
        // While the fault lasts, writes keep failing without effect.
        assert!(store.commit(&sample_writes()[3]).is_err());
        disk.heal();
        assert_eq!(&observe(store)?, before);
        let next = committed(store.commit(&sample_writes()[3])?);
        assert_eq!(next.revision, before.0.next());
        store.commit(&sample_writes()[4])?;
        assert_eq!(load(store)?, sample_state());
        Ok(())
    }

    /// A commit whose writes fail leaves revision, changelog and state as
    /// they were; the store recovers once the disk does.
    #[test]
    fn failed_write_leaves_no_trace() -> TestResult {
        let (disk, store) = faulty_store_with_data()?;
        let before = observe(&store)?;
        disk.fail_writes_after(0);
        let err = store.commit(&sample_writes()[3]).err();
        assert!(
            matches!(
                err,
                Some(StoreError::CommitUncertain(_) | StoreError::Database(_))
            ),
            "{err:?}"
        );
        assert_failed_commit_left_no_trace(&disk, &store, &before)
    }

    /// A commit whose fsync fails (its writes lost, as in a crash) leaves
    /// revision, changelog and state as they were; the store recovers once
    /// the disk does.
    #[test]
    fn failed_sync_leaves_no_trace() -> TestResult {
        let (disk, store) = faulty_store_with_data()?;
        let before = observe(&store)?;
        disk.fail_syncs();
        let err = store.commit(&sample_writes()[3]).err();
        assert!(
            matches!(err, Some(StoreError::CommitUncertain(_))),
            "{err:?}"
        );
        assert_failed_commit_left_no_trace(&disk, &store, &before)
    }

    /// Whichever write of a commit fails, the commit is all or nothing: the
    /// store then shows exactly the state before it or exactly the state
    /// after it, with revision and changelog to match.
    #[test]
    fn commit_interrupted_at_any_write_is_all_or_nothing() -> TestResult {
        let w = &sample_writes()[3];
        let (_, reference) = faulty_store_with_data()?;
        let before = observe(&reference)?;
        reference.commit(w)?;
        let after = observe(&reference)?;

        let mut failures = 0;
        for allowed in 0.. {
            let (disk, store) = faulty_store_with_data()?;
            disk.fail_writes_after(allowed);
            let result = store.commit(w);
            let fired = disk.write_fault_fired();
            disk.heal();
            let seen = observe(&store)?;
            match result {
                Ok(_) if !fired => break,
                Ok(_) => assert_eq!(seen, after, "write {allowed} failed after the commit"),
                Err(_) => {
                    failures += 1;
                    assert!(
                        seen == before || seen == after,
                        "torn commit when write {allowed} failed: {seen:?}"
                    );
                }
            }
            assert_eq!(
                store.commit(&sample_writes()[4]).map(committed)?.revision,
                seen.0.next()
            );
        }
        assert!(failures > 0, "no write of the commit was interrupted");
        Ok(())
    }

    /// A group commit gives each write its own revision and changelog
    /// entry, in order, and leaves the same state as committing them one by
    /// one.
    #[test]
    fn a_group_commits_each_write_as_its_own_revision() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let outcomes = store.commit_group(&sample_writes())?;
        let revisions: Vec<Revision> = outcomes
            .into_iter()
            .map(|o| committed(o).revision)
            .collect();
        assert_eq!(revisions, (1..=5).map(Revision).collect::<Vec<_>>());
        assert_eq!(load(&store)?, sample_state());
        let log = store.changes_after(Revision(0), usize::MAX)?;
        assert_eq!(log.len(), 5);
        for (entry, write) in log.iter().zip(sample_writes()) {
            assert_eq!(entry.changes, write.changes);
        }
        Ok(())
    }

    /// A group is all or nothing: one bad write in it (here a stale
    /// expected revision) leaves nothing of the others, and so does a disk
    /// that fails during the group's commit.
    #[test]
    fn a_group_fails_whole() -> TestResult {
        let (disk, store) = faulty_store_with_data()?;
        let before = observe(&store)?;
        let mut stale = sample_writes()[4].clone();
        stale.expected_revision = Some(Revision(1));
        let err = store
            .commit_group(&[sample_writes()[3].clone(), stale])
            .err();
        assert!(
            matches!(err, Some(StoreError::RevisionMismatch { .. })),
            "{err:?}"
        );
        assert_eq!(observe(&store)?, before);
        disk.fail_syncs();
        assert!(store.commit_group(&sample_writes()[3..]).is_err());
        disk.heal();
        assert_eq!(observe(&store)?, before);
        store.commit_group(&sample_writes()[3..])?;
        assert_eq!(load(&store)?, sample_state());
        Ok(())
    }

    /// A byte-bounded page stops before the entry that would pass the
    /// bound, but never returns nothing while entries remain.
    #[test]
    fn a_byte_bounded_page_holds_at_least_one_entry() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        store.commit_group(&sample_writes())?;
        assert_eq!(store.changes_within(Revision(0), 100, 1)?.len(), 1);
        assert_eq!(store.changes_within(Revision(4), 100, 1)?.len(), 1);
        assert_eq!(store.changes_within(Revision(0), 100, usize::MAX)?.len(), 5);
        Ok(())
    }

    /// With a retention window, every commit prunes what falls out of it in
    /// its own transaction: the oldest retained revision follows the latest.
    #[test]
    fn commits_prune_to_the_retention_window() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        store.retain(2);
        for w in &sample_writes() {
            store.commit(w)?;
            let latest = store.revision()?;
            assert_eq!(
                store.oldest_retained()?,
                Revision(latest.0.saturating_sub(1).max(1))
            );
        }
        assert_eq!(load(&store)?, sample_state());
        Ok(())
    }

    /// A write given its revision commits only as the store's next one: a
    /// hole or a repeat is refused and writes nothing.
    #[test]
    fn a_given_revision_must_follow_the_latest() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut first = write(Some("t"), vec![Change::SubjectPut(subject("a"))]);
        first.revision = Some(Revision(1));
        store.commit(&first)?;
        for given in [1, 3] {
            let mut w = write(Some("t"), vec![Change::SubjectPut(subject("b"))]);
            w.revision = Some(Revision(given));
            let before = observe(&store)?;
            let e = store.commit(&w).unwrap_err();
            assert!(matches!(e, StoreError::OutOfSequence { .. }), "{e}");
            assert_eq!(observe(&store)?, before);
        }
        Ok(())
    }

    /// Replacing the whole store leaves exactly the given state at the given
    /// revision, with an empty changelog the next revision continues.
    #[test]
    fn replace_all_installs_a_state_at_a_revision() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        for w in &sample_writes() {
            store.commit(w)?;
        }
        let tenants = vec![(tenant("x"), vec![Change::SubjectPut(subject("z"))])];
        store.replace_all(Revision(40), "schema text", &tenants)?;
        let loaded = load(&store)?;
        assert_eq!(loaded.revision, Revision(40));
        assert_eq!(loaded.schema.as_deref(), Some("schema text"));
        assert_eq!(loaded.tenants.len(), 1);
        assert_eq!(loaded.tenants[0].subjects, vec![subject("z")]);
        assert_eq!(store.oldest_retained()?, Revision(0));
        let mut next = write(Some("x"), vec![Change::SubjectPut(subject("y"))]);
        next.revision = Some(Revision(41));
        store.commit(&next)?;
        assert_eq!(store.revision()?, Revision(41));
        Ok(())
    }

    /// After `close`, the file is released (it opens again at once) and the
    /// closed handle refuses every operation instead of reopening it.
    #[test]
    fn close_releases_the_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        store.commit(&sample_writes()[0])?;
        store.close();
        let err = store.revision().err();
        assert!(matches!(err, Some(StoreError::Closed)), "{err:?}");
        let again = Store::open(dir.path())?;
        assert_eq!(again.revision()?, Revision(1));
        Ok(())
    }
    /// Every committed write leaves an audit entry in its transaction,
    /// listed newest first with its caller, revision and the principals it
    /// names; filters narrow the listing and pages walk it without gaps or
    /// repeats.
    #[test]
    fn commits_record_audit_entries() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut writes = sample_writes();
        for (i, w) in writes.iter_mut().enumerate() {
            w.committed_at = Timestamp(1_000 + i as i64);
        }
        store.commit_group(&writes)?;
        let all = store.audit_page(&AuditQuery::default(), 100, 100)?;
        let revisions: Vec<AuditOutcome> = all.entries.iter().map(|e| e.outcome.clone()).collect();
        let expected: Vec<AuditOutcome> = (1..=5)
            .rev()
            .map(|r| AuditOutcome::Committed(Revision(r)))
            .collect();
        assert_eq!(revisions, expected);
        assert!(all.next.is_none());
        let newest = &all.entries[0];
        assert_eq!(newest.origin.caller, "tester");
        assert_eq!(newest.origin.reason.as_deref(), Some("because"));
        assert_eq!(newest.tenant.as_ref().map(TenantId::as_str), Some("acme"));
        let bob = Principal::Subject(SubjectId::try_from("bob")?);
        assert!(newest.concerned.contains(&bob));
        let about_bob = AuditQuery {
            concerning: Some(bob),
            ..AuditQuery::default()
        };
        let bobs: Vec<AuditOutcome> = store
            .audit_page(&about_bob, 100, 100)?
            .entries
            .into_iter()
            .map(|e| e.outcome)
            .collect();
        let expected: Vec<AuditOutcome> = [5, 4, 2]
            .map(|r| AuditOutcome::Committed(Revision(r)))
            .into();
        assert_eq!(bobs, expected);
        // Pages of two: all five, in order, once each.
        let mut seen = Vec::new();
        let mut query = AuditQuery::default();
        for _ in 0..10 {
            let page = store.audit_page(&query, 2, 100)?;
            seen.extend(page.entries.into_iter().map(|e| e.outcome));
            match page.next {
                Some(next) => query.before = Some(next),
                None => break,
            }
        }
        assert_eq!(
            seen,
            (1..=5)
                .rev()
                .map(|r| AuditOutcome::Committed(Revision(r)))
                .collect::<Vec<_>>()
        );
        Ok(())
    }

    /// A listing examines a bounded number of entries: a filter matching
    /// only the oldest entry returns short pages with cursors until it
    /// reaches it.
    #[test]
    fn audit_listing_scans_a_bounded_number_of_entries() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        store.commit_group(&sample_writes())?;
        let store_wide = AuditQuery {
            tenant: Some(TenantId::try_from("beta")?),
            outcome: Some(OutcomeFilter::Committed),
            ..AuditQuery::default()
        };
        let mut query = store_wide.clone();
        let mut pages = 0;
        let mut found = Vec::new();
        while pages < 10 {
            pages += 1;
            let page = store.audit_page(&query, 10, 2)?;
            found.extend(page.entries);
            match page.next {
                Some(next) => query.before = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3, "five entries, two examined per call");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].outcome, AuditOutcome::Committed(Revision(3)));
        Ok(())
    }

    /// Refusals commit alone when no write goes with them (no revision is
    /// taken), and every commit prunes entries older than the audit
    /// retention, whatever the changelog keeps.
    #[test]
    fn denials_commit_alone_and_old_entries_are_pruned() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let hour = 3_600_000_000_000i64;
        store.retain_audit(std::time::Duration::from_secs(3600));
        let mut first = sample_writes().remove(0);
        first.committed_at = Timestamp(10 * hour);
        store.commit(&first)?;
        let denied = AuditEntry {
            key: AuditKey {
                at: Timestamp(10 * hour + 1),
                seq: 0,
            },
            tenant: Some(TenantId::try_from("acme")?),
            actor: None,
            origin: Origin::default(),
            concerned: Vec::new(),
            more_concerned: false,
            outcome: AuditOutcome::Denied {
                message: "no".into(),
                reason: None,
            },
        };
        store.commit_audited(
            store.revision()?,
            CommitId::random(),
            Vec::new(),
            std::slice::from_ref(&denied),
        )?;
        assert_eq!(store.revision()?, Revision(1));
        let listed = store.audit_page(&AuditQuery::default(), 10, 10)?.entries;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].outcome, denied.outcome);
        let mut later = sample_writes().remove(1);
        later.committed_at = Timestamp(11 * hour + 2);
        store.commit(&later)?;
        let listed = store.audit_page(&AuditQuery::default(), 10, 10)?.entries;
        let outcomes: Vec<AuditOutcome> = listed.into_iter().map(|e| e.outcome).collect();
        assert_eq!(outcomes, vec![AuditOutcome::Committed(Revision(2))]);
        assert_eq!(
            store.oldest_retained()?,
            Revision(1),
            "the changelog keeps its own"
        );
        Ok(())
    }
}
