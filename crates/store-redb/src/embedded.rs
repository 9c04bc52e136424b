//! The embedded implementation of [`Datastore`]: the redb [`Store`], each
//! blocking call run on tokio's blocking pool so that no caller blocks an
//! async worker.
//!
//! It owns only that hand-off (and the bounded channel a snapshot streams
//! through); the transactions, tables and codecs are the core's, in the
//! parent module. Must not add behaviour of its own: every guarantee of the
//! trait is the core's.

use authzd_core::limits::{SNAPSHOT_BATCH, SNAPSHOT_BATCHES_AHEAD};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    AuditPage, CommitId, CommitOutcome, Datastore, Epoch, PendingWrite, Record, SnapshotStream,
    Store, StoreError, TenantRecords,
};
use authzd_core::model::{AuditEntry, AuditQuery, ChangeSet, Revision, TenantId};
use authzd_store::Restore;

/// Opens the store in `dir` (see [`Store::open`] for what it creates and
/// refuses), off the async workers.
pub async fn open(dir: &Path) -> Result<Arc<dyn Datastore>, StoreError> {
    let dir = dir.to_path_buf();
    let (store, latest) = blocking(move || {
        let store = Store::open(&dir)?;
        let latest = store.revision()?;
        Ok((store, latest))
    })
    .await?;
    let head = watch::Sender::new(Head {
        latest,
        closed: false,
    });
    Ok(Arc::new(RedbDatastore(Arc::new(Shared { store, head }))))
}

/// What [`Datastore::wait_beyond`] watches.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// The latest revision committed through this store.
    latest: Revision,
    /// Set by [`Datastore::close`]: no revision will come.
    closed: bool,
}

/// The store and its head signal, shared by every handle and blocking task.
#[derive(Debug)]
struct Shared {
    store: Store,
    /// Every writer of the file is in this process (redb locks the file), so
    /// a local signal sent after each commit tells waiters all there is.
    head: watch::Sender<Head>,
}

impl Shared {
    /// Tells waiters the store's latest revision, as read now (after a
    /// commit, whatever its reported outcome).
    fn announce(&self) {
        if let Ok(latest) = self.store.revision() {
            self.head
                .send_modify(|head| head.latest = head.latest.max(latest));
        }
    }
}

/// A redb store on the blocking pool.
#[derive(Debug)]
struct RedbDatastore(Arc<Shared>);

impl RedbDatastore {
    /// Runs `op` on the store, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.0.clone();
        blocking(move || op(&shared.store)).await
    }
}

/// Runs `op` on the blocking pool. A task that died (a panic, or a runtime
/// shutting down) is reported as a database failure.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))?
}

#[async_trait::async_trait]
impl Datastore for RedbDatastore {
    async fn commit_group(
        &self,
        base: Revision,
        id: CommitId,
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let shared = self.0.clone();
        // Once started, the blocking task commits (and announces the new
        // head) whether or not this future is still polled; if it died,
        // whether it committed is unknown.
        tokio::task::spawn_blocking(move || {
            let wrote = !writes.is_empty();
            let outcome = shared.store.commit_audited(base, id, writes, &denied);
            if wrote {
                shared.announce();
            }
            outcome
        })
        .await
        .map_err(|e| StoreError::CommitUncertain(Box::new(e)))?
    }

    fn prepare(&self, write: &mut PendingWrite) -> Result<(), StoreError> {
        super::prepare(write)
    }

    async fn find_commit(
        &self,
        id: CommitId,
        after: Revision,
    ) -> Result<Option<Revision>, StoreError> {
        self.run(move |store| store.find_commit(id, after)).await
    }

    async fn wait_beyond(&self, revision: Revision) -> Result<Revision, StoreError> {
        let mut head = self.0.head.subscribe();
        let seen = head
            .wait_for(|h| h.closed || h.latest > revision)
            .await
            .map_err(|_| StoreError::Closed)?;
        if seen.closed {
            return Err(StoreError::Closed);
        }
        Ok(seen.latest)
    }

    async fn epoch(&self) -> Result<Epoch, StoreError> {
        self.run(Store::epoch).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.run(Store::revision).await
    }

    async fn oldest_retained(&self) -> Result<Revision, StoreError> {
        self.run(Store::oldest_retained).await
    }

    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.run(move |store| store.changes_within(after, limit, max_bytes))
            .await
    }

    async fn snapshot(&self) -> Result<SnapshotStream, StoreError> {
        let (header_tx, header_rx) = oneshot::channel();
        let (batches_tx, batches_rx) = mpsc::channel(SNAPSHOT_BATCHES_AHEAD);
        let shared = self.0.clone();
        // Not awaited: the reader runs as long as the stream is consumed and
        // stops at the first batch nobody takes.
        tokio::task::spawn_blocking(move || read_snapshot(&shared.store, header_tx, &batches_tx));
        let (revision, schema) = header_rx
            .await
            .map_err(|_| StoreError::Database("the snapshot reader ended early".into()))??;
        Ok(SnapshotStream {
            revision,
            schema,
            records: Box::pin(ReceiverStream::new(batches_rx)),
        })
    }

    async fn idempotent_revision(
        &self,
        tenant: Option<TenantId>,
        key: String,
    ) -> Result<Option<Revision>, StoreError> {
        self.run(move |store| store.idempotent_revision(tenant.as_ref(), &key))
            .await
    }

    async fn audit_page(
        &self,
        query: AuditQuery,
        limit: usize,
        max_scanned: usize,
    ) -> Result<AuditPage, StoreError> {
        self.run(move |store| store.audit_page(&query, limit, max_scanned))
            .await
    }

    fn retain(&self, revisions: u64) {
        self.0.store.retain(revisions);
    }

    fn retain_audit(&self, age: Duration) {
        self.0.store.retain_audit(age);
    }

    async fn close(&self) {
        // Waits for operations still holding the file, so off the workers.
        let closed = self
            .run(|store| {
                store.close();
                Ok(())
            })
            .await;
        if let Err(e) = closed {
            tracing::error!(error = %e, "closing the store failed");
        }
        self.0.head.send_modify(|head| head.closed = true);
    }

    fn restore(&self) -> Option<&dyn Restore> {
        Some(self)
    }
}

#[async_trait::async_trait]
impl Restore for RedbDatastore {
    async fn replace_all(
        &self,
        revision: Revision,
        schema: String,
        tenants: Arc<TenantRecords>,
    ) -> Result<(), StoreError> {
        let shared = self.0.clone();
        blocking(move || {
            shared.store.replace_all(revision, &schema, &tenants)?;
            // A replaced data set may stand at an older revision: waiters
            // learn its head as it now is.
            shared.head.send_modify(|head| head.latest = revision);
            Ok(())
        })
        .await
    }
}

/// The snapshot reader: sends the header, then the records in batches,
/// then ends; a failure goes where the consumer is waiting (the header, or
/// the next batch).
fn read_snapshot(
    store: &Store,
    header_tx: oneshot::Sender<Result<(Revision, Option<String>), StoreError>>,
    batches: &mpsc::Sender<Result<Vec<Record>, StoreError>>,
) {
    let mut header_tx = Some(header_tx);
    let mut batch = Vec::with_capacity(SNAPSHOT_BATCH);
    let read = store.snapshot(
        &mut |revision, schema| {
            let sent = header_tx.take().map(|tx| tx.send(Ok((revision, schema))));
            match sent {
                Some(Ok(())) => ControlFlow::Continue(()),
                _ => ControlFlow::Break(()),
            }
        },
        &mut |tenant, change| {
            batch.push((tenant.clone(), change));
            if batch.len() < SNAPSHOT_BATCH {
                return ControlFlow::Continue(());
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(SNAPSHOT_BATCH));
            match batches.blocking_send(Ok(full)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        },
    );
    let last = match read {
        Ok(()) if batch.is_empty() => return,
        Ok(()) => Ok(batch),
        Err(e) => match header_tx.take() {
            Some(tx) => {
                let _ = tx.send(Err(e));
                return;
            }
            None => Err(e),
        },
    };
    // The consumer may be gone; then nobody needs the rest.
    let _ = batches.blocking_send(last);
}
