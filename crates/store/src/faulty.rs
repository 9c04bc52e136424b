//! A [`Datastore`] wrapper that fails on command, for tests of what a
//! store failure leaves behind: in the store (the conformance suite's
//! crash-safety checks) and above it (the sequencer answering, cache and
//! feed untouched).
//!
//! It owns the fault model at the trait's level only: a commit that fails
//! before anything is durable, one lost as in a crash before its fsync, one
//! that reaches the disk but whose acknowledgement is lost, failing reads,
//! and a snapshot that breaks off. Faults at the level of redb's pages live
//! in the embedded implementation's own tests. Must not be used to serve:
//! nothing in the server constructs it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_stream::StreamExt;

use crate::{
    AuditPage, CommitId, CommitOutcome, Datastore, Epoch, PendingWrite, Restore, SnapshotStream,
    StoreError, TenantRecords,
};
use authzd_core::model::{AuditEntry, AuditQuery, ChangeSet, Revision, TenantId};

/// What an armed fault makes fail, until [`Faulty::heal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Commits fail before anything is durable, and say so
    /// ([`StoreError::Database`]): nothing was written.
    FailCommit,
    /// Commits are lost as in a crash before their fsync: nothing was
    /// written, but the caller is told only that the outcome is unknown
    /// ([`StoreError::CommitUncertain`]).
    LoseCommit,
    /// Commits reach the disk, then their acknowledgement is lost: the
    /// write landed, and the caller is told the outcome is unknown.
    FailAfterCommit,
    /// Every read (revision, changelog, snapshot, idempotency, audit) fails.
    FailReads,
    /// A snapshot's record stream fails after this many batches.
    FailSnapshotAfter(usize),
}

/// A store whose operations fail while a [`Fault`] is armed, and which
/// counts the commits it passes on.
#[derive(Debug)]
pub struct Faulty {
    inner: Arc<dyn Datastore>,
    fail_commit: AtomicBool,
    lose_commit: AtomicBool,
    fail_after_commit: AtomicBool,
    fail_reads: AtomicBool,
    /// Batches a snapshot yields before failing; `usize::MAX` when healthy.
    snapshot_batches: AtomicUsize,
    /// Commits handed to the inner store.
    commits: AtomicU64,
    /// Runs before each preparation is handed on (see
    /// [`Faulty::before_prepare`]).
    before_prepare: BeforePrepare,
}

/// A test's hook on [`Datastore::prepare`]: lets it hold a write's
/// preparation open, on whichever thread prepares.
type PrepareHook = Arc<dyn Fn(&PendingWrite) + Send + Sync>;

/// The hook, if set; a `Mutex` since it is set after the store is shared.
#[derive(Default)]
struct BeforePrepare(Mutex<Option<PrepareHook>>);

impl std::fmt::Debug for BeforePrepare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforePrepare")
    }
}

impl Faulty {
    /// Wraps `inner`, healthy.
    pub fn new(inner: Arc<dyn Datastore>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            fail_commit: AtomicBool::new(false),
            lose_commit: AtomicBool::new(false),
            fail_after_commit: AtomicBool::new(false),
            fail_reads: AtomicBool::new(false),
            snapshot_batches: AtomicUsize::new(usize::MAX),
            commits: AtomicU64::new(0),
            before_prepare: BeforePrepare::default(),
        })
    }

    /// Arms `fault` (alongside any armed already).
    pub fn arm(&self, fault: Fault) {
        match fault {
            Fault::FailCommit => self.fail_commit.store(true, Ordering::SeqCst),
            Fault::LoseCommit => self.lose_commit.store(true, Ordering::SeqCst),
            Fault::FailAfterCommit => self.fail_after_commit.store(true, Ordering::SeqCst),
            Fault::FailReads => self.fail_reads.store(true, Ordering::SeqCst),
            Fault::FailSnapshotAfter(n) => self.snapshot_batches.store(n, Ordering::SeqCst),
        }
    }

    /// Clears every fault.
    pub fn heal(&self) {
        for flag in [
            &self.fail_commit,
            &self.lose_commit,
            &self.fail_after_commit,
            &self.fail_reads,
        ] {
            flag.store(false, Ordering::SeqCst);
        }
        self.snapshot_batches.store(usize::MAX, Ordering::SeqCst);
    }

    /// Runs `hook` before each write's preparation is handed to the inner
    /// store (a test holds one open with it).
    pub fn before_prepare(&self, hook: impl Fn(&PendingWrite) + Send + Sync + 'static) {
        let mut slot = self
            .before_prepare
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(Arc::new(hook));
    }

    /// How many commits reached the inner store.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    fn read(&self) -> Result<(), StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Database("injected read failure".into()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Datastore for Faulty {
    async fn commit_group(
        &self,
        base: Revision,
        id: CommitId,
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        if self.fail_commit.load(Ordering::SeqCst) {
            return Err(StoreError::Database("injected commit failure".into()));
        }
        if self.lose_commit.load(Ordering::SeqCst) {
            return Err(StoreError::CommitUncertain(
                "injected crash before the fsync".into(),
            ));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        let outcomes = self.inner.commit_group(base, id, writes, denied).await?;
        if self.fail_after_commit.load(Ordering::SeqCst) {
            return Err(StoreError::CommitUncertain(
                "injected failure after the fsync".into(),
            ));
        }
        Ok(outcomes)
    }

    fn prepare(&self, write: &mut PendingWrite) -> Result<(), StoreError> {
        let hook = self
            .before_prepare
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook(write);
        }
        self.inner.prepare(write)
    }

    async fn find_commit(
        &self,
        id: CommitId,
        after: Revision,
    ) -> Result<Option<Revision>, StoreError> {
        self.read()?;
        self.inner.find_commit(id, after).await
    }

    async fn wait_beyond(&self, revision: Revision) -> Result<Revision, StoreError> {
        self.inner.wait_beyond(revision).await
    }

    async fn epoch(&self) -> Result<Epoch, StoreError> {
        self.read()?;
        self.inner.epoch().await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.read()?;
        self.inner.revision().await
    }

    async fn oldest_retained(&self) -> Result<Revision, StoreError> {
        self.read()?;
        self.inner.oldest_retained().await
    }

    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.read()?;
        self.inner.changes_after(after, limit, max_bytes).await
    }

    async fn snapshot(&self) -> Result<SnapshotStream, StoreError> {
        self.read()?;
        let snapshot = self.inner.snapshot().await?;
        let healthy = self.snapshot_batches.load(Ordering::SeqCst);
        if healthy == usize::MAX {
            return Ok(snapshot);
        }
        let failure = tokio_stream::once(Err(StoreError::Database(
            "injected snapshot failure".into(),
        )));
        Ok(SnapshotStream {
            records: Box::pin(snapshot.records.take(healthy).chain(failure)),
            ..snapshot
        })
    }

    async fn idempotent_revision(
        &self,
        tenant: Option<TenantId>,
        key: String,
    ) -> Result<Option<Revision>, StoreError> {
        self.read()?;
        self.inner.idempotent_revision(tenant, key).await
    }

    async fn audit_page(
        &self,
        query: AuditQuery,
        limit: usize,
        max_scanned: usize,
    ) -> Result<AuditPage, StoreError> {
        self.read()?;
        self.inner.audit_page(query, limit, max_scanned).await
    }

    fn retain(&self, revisions: u64) {
        self.inner.retain(revisions);
    }

    fn retain_audit(&self, age: Duration) {
        self.inner.retain_audit(age);
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn holds_housekeeping(&self) -> bool {
        self.inner.holds_housekeeping()
    }

    fn restore(&self) -> Option<&dyn Restore> {
        self.inner.restore().map(|_| self as &dyn Restore)
    }
}

#[async_trait::async_trait]
impl Restore for Faulty {
    async fn replace_all(
        &self,
        revision: Revision,
        schema: String,
        tenants: Arc<TenantRecords>,
    ) -> Result<(), StoreError> {
        if self.fail_commit.load(Ordering::SeqCst) || self.lose_commit.load(Ordering::SeqCst) {
            return Err(StoreError::Database("injected commit failure".into()));
        }
        match self.inner.restore() {
            Some(inner) => inner.replace_all(revision, schema, tenants).await,
            None => Err(StoreError::Unsupported("replace its data set")),
        }
    }
}
