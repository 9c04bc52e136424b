//! The embedded implementation of [`Datastore`]: the redb [`Store`], each
//! blocking call run on tokio's blocking pool so that no caller blocks an
//! async worker.
//!
//! It owns only that hand-off (and the bounded channel a snapshot streams
//! through); the transactions, tables and codecs are the core's, in the
//! parent module. Must not add behaviour of its own: every guarantee of the
//! trait is the core's.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    AuditPage, CommitOutcome, Datastore, PendingWrite, Record, SnapshotStream, Store, StoreError,
    TenantRecords,
};
use authzd_core::model::{AuditEntry, AuditQuery, ChangeSet, Revision, TenantId};

/// Records per batch of a snapshot: large enough that the channel costs
/// little per record, small enough that a batch stays a few hundred KB.
const SNAPSHOT_BATCH: usize = 1024;

/// Batches a snapshot reads ahead of its consumer: the memory a slow
/// consumer can make the reader hold.
const SNAPSHOT_BATCHES_AHEAD: usize = 4;

/// Opens the store in `dir` (see [`Store::open`] for what it creates and
/// refuses), off the async workers.
pub async fn open(dir: &Path) -> Result<Arc<dyn Datastore>, StoreError> {
    let dir = dir.to_path_buf();
    let store = blocking(move || Store::open(&dir)).await?;
    Ok(Arc::new(RedbDatastore(Arc::new(store))))
}

/// A redb store on the blocking pool.
#[derive(Debug)]
struct RedbDatastore(Arc<Store>);

impl RedbDatastore {
    /// Runs `op` on the store, on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.0.clone();
        blocking(move || op(&store)).await
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
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let store = self.0.clone();
        // Once started, the blocking task commits whether or not this future
        // is still polled; if it died, whether it committed is unknown.
        tokio::task::spawn_blocking(move || store.commit_audited(&writes, &denied))
            .await
            .map_err(|e| StoreError::CommitUncertain(Box::new(e)))?
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
        let store = self.0.clone();
        // Not awaited: the reader runs as long as the stream is consumed and
        // stops at the first batch nobody takes.
        tokio::task::spawn_blocking(move || read_snapshot(&store, header_tx, &batches_tx));
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

    async fn replace_all(
        &self,
        revision: Revision,
        schema: String,
        tenants: Arc<TenantRecords>,
    ) -> Result<(), StoreError> {
        self.run(move |store| store.replace_all(revision, &schema, &tenants))
            .await
    }

    fn retain(&self, revisions: u64) {
        self.0.retain(revisions);
    }

    fn retain_audit(&self, age: Duration) {
        self.0.retain_audit(age);
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
