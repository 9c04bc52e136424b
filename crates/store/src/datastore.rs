//! The store's contract: what any backend of authzd's durable state must do,
//! as one async trait, so that the service runs on redb today and on a
//! distributed database later without the engine or the API changing.
//!
//! It owns the [`Datastore`] trait and the [`SnapshotStream`] a backend
//! hands out. It must name no backend (no redb, no SQL driver) and no
//! protobuf: its signatures hold model types and [`StoreError`] alone.
//! `tests/datastore/mod.rs` is the conformance suite every implementation
//! must pass.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::{Stream, StreamExt};

use crate::{AuditPage, CommitId, CommitOutcome, Epoch, PendingWrite, StoreError};
use authzd_core::model::{AuditEntry, AuditQuery, Change, ChangeSet, Revision, TenantId};

/// One stored directory record, as the change that recreates it in its
/// tenant.
pub type Record = (TenantId, Change);

/// Every tenant's records, each tenant's in an order that applies as it
/// comes: what a snapshot collects into and what [`Restore::replace_all`]
/// installs.
pub type TenantRecords = Vec<(TenantId, Vec<Change>)>;

/// The records of a snapshot, in batches, ending at the first error.
pub type RecordBatches = Pin<Box<dyn Stream<Item = Result<Vec<Record>, StoreError>> + Send>>;

/// Everything a store holds at one revision, read consistently (as by one
/// transaction) and streamed in batches, so that neither side holds the
/// whole store in memory at once.
///
/// Records come table by table (tenant settings, scopes, subjects, groups,
/// roles, memberships, assignments), each table in key order, so that
/// within a tenant a change only names what came before it. Dropping the
/// stream ends the read.
pub struct SnapshotStream {
    /// The revision the records reflect.
    pub revision: Revision,
    /// The schema text in force at that revision, if one was ever written.
    pub schema: Option<String>,
    /// The records.
    pub records: RecordBatches,
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl SnapshotStream {
    /// The next batch of records; `None` once every record was handed out.
    pub async fn next_batch(&mut self) -> Option<Result<Vec<Record>, StoreError>> {
        self.records.next().await
    }

    /// Every record, grouped by tenant in tenant order, each tenant's in
    /// stream order and opening with its settings (the defaults for a
    /// tenant that has rows but no settings row).
    pub async fn collect(mut self) -> Result<TenantRecords, StoreError> {
        let mut tenants: BTreeMap<TenantId, Vec<Change>> = BTreeMap::new();
        while let Some(batch) = self.next_batch().await {
            for (tenant, change) in batch? {
                let changes = tenants.entry(tenant).or_default();
                if changes.is_empty() && !matches!(change, Change::TenantPut(_)) {
                    changes.push(Change::TenantPut(Default::default()));
                }
                changes.push(change);
            }
        }
        Ok(tenants.into_iter().collect())
    }
}

/// A backend of authzd's durable state: the directory records, the
/// changelog, idempotency keys and the audit trail, under one store-wide
/// revision counter.
///
/// What every implementation guarantees (the conformance suite checks each):
///
/// - **Atomic, durable commits.** A commit applies all of its writes with
///   their changelog entries, idempotency keys and audit entries, or none
///   of them, and is durable before it returns `Ok`. On any error nothing
///   was written, except after [`StoreError::CommitUncertain`], when either
///   all or none was ([`Datastore::find_commit`] tells which). A commit
///   that has started finishes or fails as a unit even if its future is
///   dropped.
/// - **Commits planned on a base, conflicting per tenant.** A group names
///   the revision it was planned on; if a commit landed since that wrote
///   one of the group's tenants, or the whole store (a schema), the group
///   is refused whole with [`StoreError::Conflict`] naming the store's
///   head, so a write is never applied on a state its planner did not see.
///   Commits to other tenants do not conflict: the group's writes then
///   take the revisions after the store's head, not after its base. A
///   write that is not scoped to one tenant
///   ([`PendingWrite::conflict_scope`]: store-wide, expecting a revision,
///   given one) conflicts with any commit since the base. A backend that
///   cannot tell which tenants older commits wrote may refuse a base that
///   old whenever the store moved. Several writers (handles, processes,
///   nodes) may therefore share one store, and writers to different
///   tenants never make each other plan again.
/// - **Contiguous revisions.** Each committed write takes the next
///   revision, one more than the latest; a group's writes take consecutive
///   ones, in order. No revision is skipped or reused.
/// - **A changelog with a retention window.** Every committed revision is
///   readable from [`Datastore::changes_after`] until it falls out of the
///   window set by [`Datastore::retain`]; a read that would skip pruned
///   revisions fails with [`StoreError::Pruned`], never returns a gap.
/// - **Consistent snapshots.** [`Datastore::snapshot`] yields exactly the
///   state at its revision, whatever commits meanwhile.
/// - **Idempotency.** A write whose key (per tenant, or store-wide) was
///   committed before is not applied again; its commit reports
///   [`CommitOutcome::Replayed`] with the first revision.
#[async_trait::async_trait]
pub trait Datastore: Send + Sync + std::fmt::Debug {
    /// Commits `writes` as one transaction, each as its own revision (the
    /// next ones, in order) with its own changelog entry, and records
    /// `denied` (writes refused by the actor rules or by token kind) in the
    /// audit trail beside them; with no write to commit, the denials commit
    /// alone. With at least one write, no commit since `base` may have
    /// written one of the group's tenants or the whole store, and if one
    /// of the writes is not scoped to a tenant the store's latest revision
    /// must be `base` (else [`StoreError::Conflict`], nothing written); the
    /// writes then take the revisions after the store's latest. Each write
    /// is checked (idempotency key first, then expected or given revision)
    /// against the revision the writes before it leave; one failing check
    /// fails the whole group. `id` is recorded with the group's first
    /// revision for [`Datastore::find_commit`]. Each commit also prunes
    /// what fell out of the retention windows.
    async fn commit_group(
        &self,
        base: Revision,
        id: CommitId,
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<CommitOutcome>, StoreError>;

    /// Encodes what of storing `write` does not depend on the revision it
    /// will take (its changelog entry) into [`PendingWrite::prepared`], so
    /// that its commit, which every other write waits behind, only puts
    /// bytes in place. Called off the commit path (on a planner's thread),
    /// after the write's last change. A store that prepares nothing (the
    /// default) encodes at commit.
    fn prepare(&self, write: &mut PendingWrite) -> Result<(), StoreError> {
        let _ = write;
        Ok(())
    }

    /// Reserves this handle's next [`Datastore::commit_group`] for writes
    /// to `scope` (their tenants; `None` among them: the whole store) and
    /// returns the store's latest revision, read once reserved: other
    /// writers to those tenants wait until that commit ends, so a group of
    /// such writes planned on the state at that revision cannot get
    /// [`StoreError::Conflict`]. What a writer does after losing the race
    /// for a tenant several times in a row, so its writes complete however
    /// busy the tenant is. The reservation ends with the next
    /// `commit_group` of this handle, or [`Datastore::release`]. The
    /// default reserves nothing: for stores whose writers cannot keep
    /// beating each other (one process's handles, committing in turn).
    async fn reserve(&self, scope: &[Option<TenantId>]) -> Result<Revision, StoreError> {
        let _ = scope;
        self.revision().await
    }

    /// Ends a reservation [`Datastore::reserve`] made that no commit used
    /// (the writes it was for were refused when planned again).
    async fn release(&self) {}

    /// Commits one write on the store's latest revision, as
    /// [`Datastore::commit_group`] does: for callers that plan nothing (a
    /// test, a tool), since another writer may move the head in between.
    async fn commit(&self, write: PendingWrite) -> Result<CommitOutcome, StoreError> {
        let base = self.revision().await?;
        let mut outcomes = self
            .commit_group(base, CommitId::random(), vec![write], Vec::new())
            .await?;
        outcomes.pop().ok_or(StoreError::CommitUncertain(
            "a one-write group gave no outcome".into(),
        ))
    }

    /// The first revision of the group committed with `id`, if it landed
    /// after `after` and is still retained: how a committer learns the fate
    /// of a commit whose outcome it was not told.
    async fn find_commit(
        &self,
        id: CommitId,
        after: Revision,
    ) -> Result<Option<Revision>, StoreError>;

    /// Waits until the store holds a revision beyond `revision`, committed
    /// by any writer, and returns the latest. Ends with
    /// [`StoreError::Closed`] when the store closes.
    async fn wait_beyond(&self, revision: Revision) -> Result<Revision, StoreError>;

    /// The data set this store holds (see [`Epoch`]).
    async fn epoch(&self) -> Result<Epoch, StoreError>;

    /// The latest committed revision; 0 for an empty store.
    async fn revision(&self) -> Result<Revision, StoreError>;

    /// The lowest revision still in the changelog; 0 if it is empty.
    async fn oldest_retained(&self) -> Result<Revision, StoreError>;

    /// Changelog entries with a revision above `after`, ascending and
    /// starting at `after + 1`: at most `limit` of them, stopping before the
    /// entry that would take the stored bytes read past `max_bytes` (but
    /// never empty while entries remain). Empty when `after` is the latest
    /// revision or beyond; [`StoreError::Pruned`] when `after + 1` is no
    /// longer retained.
    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError>;

    /// What a node following the other writers of a shared store reads
    /// once [`Datastore::wait_beyond`] woke it: the change sets after
    /// `after`, as [`Datastore::changes_after`] gives them (ascending from
    /// `after + 1`, within `limit` and `max_bytes`, never a gap), except
    /// that a store told of commits together with their entries answers
    /// from what it was told when that holds `after + 1` onwards, without
    /// reading the changelog (and so without [`StoreError::Pruned`] for
    /// entries it still holds). The default reads the changelog.
    async fn followed_changes(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        self.changes_after(after, limit, max_bytes).await
    }

    /// Every stored record at the latest revision, read consistently.
    async fn snapshot(&self) -> Result<SnapshotStream, StoreError>;

    /// The revision an idempotency key was first committed at, if it was.
    /// Keys are scoped per tenant (`None`: store-wide writes).
    async fn idempotent_revision(
        &self,
        tenant: Option<TenantId>,
        key: String,
    ) -> Result<Option<Revision>, StoreError>;

    /// A page of the audit trail, newest first: at most `limit` entries
    /// matching `query`, having examined at most `max_scanned`.
    async fn audit_page(
        &self,
        query: AuditQuery,
        limit: usize,
        max_scanned: usize,
    ) -> Result<AuditPage, StoreError>;

    /// Keeps at least the latest `revisions` change sets in the changelog
    /// (at least one); later commits prune older ones. Until called,
    /// nothing is pruned.
    fn retain(&self, revisions: u64);

    /// Keeps audit entries for `age` after their time; later commits prune
    /// older ones. Until called, nothing is pruned.
    fn retain_audit(&self, age: Duration);

    /// Releases the storage now, whoever still holds the handle, so that a
    /// shutdown frees it for the next process; every later operation fails
    /// with [`StoreError::Closed`].
    async fn close(&self);

    /// Whether this handle should run the store-wide housekeeping that one
    /// writer at a time is enough for (the expiry sweeps): a store with
    /// one writer always; a store shared by several nodes while this
    /// handle holds the store's housekeeping lease (which is also when it
    /// prunes). Two handles may briefly both hold it (one losing it while
    /// the other takes it over): the work must be safe then.
    fn holds_housekeeping(&self) -> bool {
        true
    }

    /// This store's [`Restore`] capability, if it has one. A store shared
    /// by several writers has none: replacing the data set under them
    /// would pull it from under every other node.
    fn restore(&self) -> Option<&dyn Restore> {
        None
    }
}

/// Replacing a store's whole data set: a read replica installing its
/// primary's snapshot, a backup being written. Outside [`Datastore`]
/// because only a store with one writer may offer it.
#[async_trait::async_trait]
pub trait Restore: Send + Sync {
    /// Replaces everything the store holds with `tenants` and `schema` at
    /// `revision`, all or nothing, under a new [`Epoch`]. The changelog and
    /// idempotency keys start empty, so the next write must be `revision +
    /// 1`.
    async fn replace_all(
        &self,
        revision: Revision,
        schema: String,
        tenants: Arc<TenantRecords>,
    ) -> Result<(), StoreError>;
}
