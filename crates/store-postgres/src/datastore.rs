//! [`Datastore`] on PostgreSQL: the pool, the group commit (counter row
//! locked and compared with the base, every row of the group written by a
//! few pipelined statements, `pg_notify`, `COMMIT`), pruning after it,
//! and the reads (changelog, snapshot, idempotency keys, audit trail).
//!
//! Must not plan or validate writes (the sequencer did) and must not hold
//! the counter row's lock longer than the group's own statements: pruning
//! runs after `COMMIT`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use authzd_core::limits::{MAX_PRUNED_PER_COMMIT, SNAPSHOT_BATCH, SNAPSHOT_BATCHES_AHEAD};
use authzd_core::model::{
    AuditEntry, AuditKey, AuditQuery, ChangeSet, Revision, TenantId, Timestamp,
};
use authzd_store::keys::STORE_WIDE;
use authzd_store::{
    AuditPage, CommitId, CommitOutcome, Datastore, Epoch, PendingWrite, Record, SnapshotStream,
    StoreError,
};
use deadpool_postgres::{Object, Pool};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_stream::wrappers::ReceiverStream;

use crate::records::Staged;
use crate::{Options, pool_error, query_error};

/// The notification channel commits announce their head on.
pub(crate) const CHANNEL: &str = "authzd_commit";

/// Most times a group is tried again after the database refused it only
/// because of a concurrent transaction (a serialization failure, as
/// databases running every transaction serializable report).
const MAX_SERIALIZATION_RETRIES: usize = 8;

/// What [`Datastore::wait_beyond`] watches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    /// The latest revision this handle knows the database holds.
    pub(crate) latest: Revision,
    /// Set by [`Datastore::close`].
    pub(crate) closed: bool,
}

/// Everything a handle shares with its tasks.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    /// For the dedicated `LISTEN` connection.
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) location: String,
    pub(crate) head: watch::Sender<Head>,
    pub(crate) closed: AtomicBool,
    /// Whether commits send `pg_notify` (off when the database refused
    /// `LISTEN`, or by [`Options::listen`]).
    pub(crate) notify: AtomicBool,
    pub(crate) options: Options,
    /// Whether this handle holds the housekeeping lease (see
    /// `crate::lease`): only then does it prune and sweep expiries.
    pub(crate) lease_held: AtomicBool,
    retention: AtomicU64,
    audit_retention: AtomicU64,
}

impl Inner {
    /// A pooled connection; [`StoreError::Closed`] after close.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.pool.get().await.map_err(pool_error)
    }

    /// The counter row's revision, read now.
    pub(crate) async fn read_head(&self) -> Result<Revision, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT revision FROM authzd_meta WHERE id = 1", &[])
            .await
            .map_err(query_error)?;
        Ok(revision_of(row.try_get(0).map_err(query_error)?))
    }

    /// Tells waiters the database holds at least `latest`.
    pub(crate) fn announce(&self, latest: Revision) {
        self.head.send_if_modified(|head| {
            let newer = latest > head.latest;
            if newer {
                head.latest = latest;
            }
            newer
        });
    }
}

/// A revision read from a `bigint` column (never negative).
fn revision_of(value: i64) -> Revision {
    Revision(u64::try_from(value).unwrap_or(0))
}

/// A revision as a `bigint`.
fn db_revision(revision: Revision) -> Result<i64, StoreError> {
    i64::try_from(revision.0).map_err(|_| StoreError::RevisionExhausted)
}

/// A count bound as a `LIMIT`.
fn db_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A handle on the database: a node's store.
pub(crate) struct PgDatastore(Arc<Inner>);

impl std::fmt::Debug for PgDatastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatastore")
            .field("location", &self.0.location)
            .finish_non_exhaustive()
    }
}

impl PgDatastore {
    /// Builds the pool, reads the head and starts following.
    pub(crate) async fn start(
        config: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        location: String,
        options: Options,
    ) -> Result<PgDatastore, StoreError> {
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tls.clone(),
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .wait_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Open {
                location: location.clone(),
                source: Box::new(e),
            })?;
        let inner = Arc::new(Inner {
            pool,
            config,
            tls,
            location,
            head: watch::Sender::new(Head {
                latest: Revision(0),
                closed: false,
            }),
            closed: AtomicBool::new(false),
            notify: AtomicBool::new(options.listen),
            options,
            lease_held: AtomicBool::new(false),
            retention: AtomicU64::new(u64::MAX),
            audit_retention: AtomicU64::new(u64::MAX),
        });
        let latest = inner.read_head().await?;
        inner.announce(latest);
        crate::follow::spawn(&inner);
        // Tried once before the handle is used, so a node alone on its
        // database prunes from its first commit.
        let mut lease = crate::lease::Lease::new();
        if lease.try_take(&inner).await {
            crate::lease::announce_taken(&inner);
        }
        crate::lease::spawn(&inner, lease);
        Ok(PgDatastore(inner))
    }
}

/// A group's statements, gathered before any is sent.
#[derive(Default)]
struct Batch {
    put_kinds: Vec<i16>,
    put_tenants: Vec<String>,
    put_keys: Vec<String>,
    put_bodies: Vec<String>,
    del_kinds: Vec<i16>,
    del_tenants: Vec<String>,
    del_keys: Vec<String>,
    log_revisions: Vec<i64>,
    log_bodies: Vec<String>,
    key_scopes: Vec<String>,
    key_names: Vec<String>,
    key_revisions: Vec<i64>,
    audit_at: Vec<i64>,
    audit_bodies: Vec<String>,
}

impl Batch {
    fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.audit_at.push(entry.key.at.0);
        let body = serde_json::to_string(entry).map_err(|source| StoreError::Encode {
            what: "audit entry",
            source,
        })?;
        self.audit_bodies.push(body);
        Ok(())
    }
}

const PUT_RECORDS: &str = "INSERT INTO authzd_records (kind, tenant, key, body) \
    SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[], $4::text[]) \
    ON CONFLICT (kind, tenant, key) DO UPDATE SET body = excluded.body";
const DELETE_RECORDS: &str = "DELETE FROM authzd_records WHERE (kind, tenant, key) IN \
    (SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[]))";
const PUT_CHANGELOG: &str = "INSERT INTO authzd_changelog (revision, body) \
    SELECT * FROM unnest($1::bigint[], $2::text[])";
const PUT_KEYS: &str = "INSERT INTO authzd_idempotency (scope, key, revision) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])";
const PUT_AUDIT: &str = "INSERT INTO authzd_audit (at, body) \
    SELECT * FROM unnest($1::bigint[], $2::text[])";
const PUT_SCHEMA: &str = "INSERT INTO authzd_schema_text (id, body) VALUES (1, $1) \
    ON CONFLICT (id) DO UPDATE SET body = excluded.body";
const PUT_COMMIT: &str = "INSERT INTO authzd_commits (revision, commit_id) VALUES ($1, $2)";
const SET_HEAD: &str = "UPDATE authzd_meta SET revision = $1 WHERE id = 1 AND revision = $2";
const PUT_TENANT_HEADS: &str = "INSERT INTO authzd_tenant_heads (tenant, revision) \
    SELECT * FROM unnest($1::text[], $2::bigint[]) \
    ON CONFLICT (tenant) DO UPDATE SET revision = excluded.revision";
const NOTIFY: &str = "SELECT pg_notify('authzd_commit', $1)";

/// Why one attempt at a group failed.
enum Failure {
    /// Definite: nothing was written.
    Store(StoreError),
    /// The database refused only because of a concurrent transaction:
    /// nothing was written, and the same group may be tried again.
    Retry(tokio_postgres::Error),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// A failed statement before `COMMIT`: nothing was written.
fn statement(e: tokio_postgres::Error) -> Failure {
    if crate::is_serialization_failure(&e) {
        Failure::Retry(e)
    } else {
        Failure::Store(query_error(e))
    }
}

/// One attempt at committing a group, as [`Datastore::commit_group`]
/// documents; returns the outcomes and the last committed revision.
async fn attempt(
    inner: &Inner,
    base: Revision,
    id: CommitId,
    writes: &[PendingWrite],
    denied: &[AuditEntry],
) -> Result<(Vec<CommitOutcome>, Option<Revision>), Failure> {
    let mut client = inner.client().await?;
    let txn = client.transaction().await.map_err(statement)?;
    let mut batch = Batch::default();
    let mut staged = Staged::default();
    let mut outcomes = Vec::with_capacity(writes.len());
    // The revision the group's writes follow: the store's head, which
    // commits to other tenants may have moved past the base.
    let mut start = base;
    let mut current = base;
    let mut heads: HashMap<&str, Revision> = HashMap::new();
    if !writes.is_empty() {
        // The compare-and-set: the row lock orders every writer of the
        // database; under it, the head read is the latest committed, and
        // so are the tenants' heads checked beside it.
        let row = txn
            .query_one(
                "SELECT revision FROM authzd_meta WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(statement)?;
        let head = revision_of(row.try_get(0).map_err(statement)?);
        if head != base && moved_under(&txn, base, head, writes).await? {
            return Err(StoreError::Conflict { base, head }.into());
        }
        start = head;
        current = head;
        let mut keys = known_keys(&txn, writes).await?;
        for write in writes {
            let scope = write.tenant.as_ref().map_or(STORE_WIDE, TenantId::as_str);
            if let Some(key) = &write.idempotency_key {
                if let Some(first) = keys.get(&(scope.to_owned(), key.clone())) {
                    outcomes.push(CommitOutcome::Replayed(*first));
                    continue;
                }
            }
            if let Some(expected) = write.expected_revision {
                if expected != current {
                    return Err(StoreError::RevisionMismatch {
                        expected,
                        actual: current,
                    }
                    .into());
                }
            }
            let revision = Revision(
                current
                    .0
                    .checked_add(1)
                    .ok_or(StoreError::RevisionExhausted)?,
            );
            if let Some(given) = write.revision {
                if given != revision {
                    return Err(StoreError::OutOfSequence {
                        given,
                        latest: current,
                    }
                    .into());
                }
            }
            for (index, change) in write.changes.iter().enumerate() {
                staged.apply(write.tenant.as_ref(), index, change)?;
            }
            let set = write.entry(revision);
            heads.insert(
                write.tenant.as_ref().map_or(STORE_WIDE, TenantId::as_str),
                revision,
            );
            batch.log_revisions.push(db_revision(revision)?);
            batch
                .log_bodies
                .push(
                    serde_json::to_string(&set).map_err(|source| StoreError::Encode {
                        what: "change set",
                        source,
                    })?,
                );
            if let Some(key) = &write.idempotency_key {
                keys.insert((scope.to_owned(), key.clone()), revision);
                batch.key_scopes.push(scope.to_owned());
                batch.key_names.push(key.clone());
                batch.key_revisions.push(db_revision(revision)?);
            }
            // A replica's copy of a primary's write is audited on the
            // primary, which knows who asked.
            if write.revision.is_none() {
                batch.audit(&write.audit_entry(revision))?;
            }
            current = revision;
            outcomes.push(CommitOutcome::Committed(set));
        }
    }
    for entry in denied {
        batch.audit(entry)?;
    }
    let last = (current != start).then_some(current);
    if last.is_none() && denied.is_empty() {
        // Only replays: nothing to write.
        return Ok((outcomes, None));
    }
    for ((kind, tenant, key), body) in staged.rows {
        match body {
            Some(body) => {
                batch.put_kinds.push(kind);
                batch.put_tenants.push(tenant);
                batch.put_keys.push(key);
                batch.put_bodies.push(body);
            }
            None => {
                batch.del_kinds.push(kind);
                batch.del_tenants.push(tenant);
                batch.del_keys.push(key);
            }
        }
    }
    // Every statement touches rows no other statement of the group
    // touches, so they are sent at once (pipelined) and may complete in
    // any order.
    let mut sent: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> = Vec::new();
    if !batch.put_kinds.is_empty() {
        sent.push((
            PUT_RECORDS,
            vec![
                &batch.put_kinds,
                &batch.put_tenants,
                &batch.put_keys,
                &batch.put_bodies,
            ],
        ));
    }
    if !batch.del_kinds.is_empty() {
        sent.push((
            DELETE_RECORDS,
            vec![&batch.del_kinds, &batch.del_tenants, &batch.del_keys],
        ));
    }
    if !batch.log_revisions.is_empty() {
        sent.push((PUT_CHANGELOG, vec![&batch.log_revisions, &batch.log_bodies]));
    }
    if !batch.key_scopes.is_empty() {
        sent.push((
            PUT_KEYS,
            vec![&batch.key_scopes, &batch.key_names, &batch.key_revisions],
        ));
    }
    if !batch.audit_at.is_empty() {
        sent.push((PUT_AUDIT, vec![&batch.audit_at, &batch.audit_bodies]));
    }
    if let Some(schema) = &staged.schema {
        sent.push((PUT_SCHEMA, vec![schema]));
    }
    let first = outcomes.iter().find_map(|o| match o {
        CommitOutcome::Committed(set) => Some(set.revision),
        CommitOutcome::Replayed(_) => None,
    });
    let first_db = first.map(db_revision).transpose()?;
    let id_text = id.to_string();
    if let Some(first_db) = &first_db {
        sent.push((PUT_COMMIT, vec![first_db, &id_text]));
    }
    let head_db = db_revision(current)?;
    let start_db = db_revision(start)?;
    let payload = current.0.to_string();
    let head_tenants: Vec<&str> = heads.keys().copied().collect();
    let head_revisions = heads
        .values()
        .map(|r| db_revision(*r))
        .collect::<Result<Vec<i64>, _>>()?;
    if last.is_some() {
        sent.push((SET_HEAD, vec![&head_db, &start_db]));
        sent.push((PUT_TENANT_HEADS, vec![&head_tenants, &head_revisions]));
        if inner.notify.load(Ordering::SeqCst) {
            sent.push((NOTIFY, vec![&payload]));
        }
    }
    let mut statements = Vec::with_capacity(sent.len());
    for (sql, _) in &sent {
        statements.push(txn.prepare_cached(sql).await.map_err(statement)?);
    }
    let runs = statements
        .iter()
        .zip(&sent)
        .map(|(prepared, (_, params))| txn.execute(prepared, params));
    futures_util::future::try_join_all(runs)
        .await
        .map_err(statement)?;
    match txn.commit().await {
        Ok(()) => Ok((outcomes, last)),
        // The server answered the COMMIT: it refused it, nothing landed.
        Err(e) if crate::is_serialization_failure(&e) => Err(Failure::Retry(e)),
        Err(e) if e.as_db_error().is_some() => Err(StoreError::Database(Box::new(e)).into()),
        // The connection failed during COMMIT: it may or may not have
        // landed; the commit id tells.
        Err(e) => Err(StoreError::CommitUncertain(Box::new(e)).into()),
    }
}

/// Whether `writes`, planned on `base`, conflict with what the database
/// committed up to `head` (the counter row locked): a commit since `base`
/// wrote one of their tenants or the whole store, or one of them needs
/// the whole store unchanged. Commits to other tenants do not conflict.
async fn moved_under(
    txn: &deadpool_postgres::Transaction<'_>,
    base: Revision,
    head: Revision,
    writes: &[PendingWrite],
) -> Result<bool, Failure> {
    if base > head {
        return Ok(true);
    }
    let mut tenants = vec![STORE_WIDE];
    for write in writes {
        match write.conflict_scope() {
            Some(tenant) => tenants.push(tenant.as_str()),
            None => return Ok(true),
        }
    }
    let row = txn
        .query_one(
            "SELECT coalesce(max(revision), 0) FROM authzd_tenant_heads WHERE tenant = ANY($1)",
            &[&tenants],
        )
        .await
        .map_err(statement)?;
    let latest: i64 = row.try_get(0).map_err(statement)?;
    Ok(revision_of(latest) > base)
}

/// The revisions the idempotency keys of `writes` were first committed
/// at, for the keys the database holds.
async fn known_keys(
    txn: &deadpool_postgres::Transaction<'_>,
    writes: &[PendingWrite],
) -> Result<HashMap<(String, String), Revision>, Failure> {
    let mut scopes = Vec::new();
    let mut names = Vec::new();
    for write in writes {
        if let Some(key) = &write.idempotency_key {
            scopes.push(write.tenant.as_ref().map_or(STORE_WIDE, TenantId::as_str));
            names.push(key.as_str());
        }
    }
    let mut known = HashMap::new();
    if scopes.is_empty() {
        return Ok(known);
    }
    let rows = txn
        .query(
            "SELECT scope, key, revision FROM authzd_idempotency WHERE (scope, key) IN \
             (SELECT * FROM unnest($1::text[], $2::text[]))",
            &[&scopes, &names],
        )
        .await
        .map_err(statement)?;
    for row in rows {
        let scope: String = row.try_get(0).map_err(statement)?;
        let key: String = row.try_get(1).map_err(statement)?;
        let revision: i64 = row.try_get(2).map_err(statement)?;
        known.insert((scope, key), revision_of(revision));
    }
    Ok(known)
}

/// Prunes what fell out of the retention windows, after a commit (this
/// node's, or another's this node learnt of) and outside its transaction
/// (no lock on the counter row is held): at most [`MAX_PRUNED_PER_COMMIT`]
/// rows of each table, and only on the node holding the housekeeping
/// lease. A failure is logged; the next commit tries again.
pub(crate) async fn prune(inner: &Inner, last: Option<Revision>, latest_at: Option<Timestamp>) {
    if !inner.lease_held.load(Ordering::SeqCst) {
        return;
    }
    let retain = inner.retention.load(Ordering::SeqCst);
    let keep_from = last.and_then(|l| l.0.checked_sub(retain).map(|r| r + 1));
    let age = inner.audit_retention.load(Ordering::SeqCst);
    let before = latest_at.and_then(|at| i64::try_from(age).ok().and_then(|a| at.0.checked_sub(a)));
    if keep_from.is_none() && before.is_none() {
        return;
    }
    let pruned = async {
        let client = inner.client().await?;
        let bound = db_limit(MAX_PRUNED_PER_COMMIT);
        if let Some(keep_from) = keep_from {
            let keep_from = db_revision(Revision(keep_from))?;
            for sql in [
                "DELETE FROM authzd_changelog WHERE revision IN (SELECT revision FROM \
                 authzd_changelog WHERE revision < $1 ORDER BY revision LIMIT $2)",
                "DELETE FROM authzd_commits WHERE revision IN (SELECT revision FROM \
                 authzd_commits WHERE revision < $1 ORDER BY revision LIMIT $2)",
            ] {
                client
                    .execute(sql, &[&keep_from, &bound])
                    .await
                    .map_err(query_error)?;
            }
        }
        if let Some(before) = before {
            client
                .execute(
                    "DELETE FROM authzd_audit WHERE (at, seq) IN (SELECT at, seq FROM \
                     authzd_audit WHERE at < $1 ORDER BY at, seq LIMIT $2)",
                    &[&before, &bound],
                )
                .await
                .map_err(query_error)?;
        }
        Ok::<_, StoreError>(())
    };
    if let Err(e) = pruned.await {
        tracing::warn!(store = %inner.location, error = %e, "pruning failed; the next commit tries again");
    }
}

#[async_trait::async_trait]
impl Datastore for PgDatastore {
    async fn commit_group(
        &self,
        base: Revision,
        id: CommitId,
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let inner = self.0.clone();
        // Once started, the task finishes (commits or rolls back) whether
        // or not this future is still polled; if it died, whether it
        // committed is unknown.
        tokio::spawn(async move {
            let mut tries = 0;
            loop {
                match attempt(&inner, base, id, &writes, &denied).await {
                    Ok((outcomes, last)) => {
                        if let Some(last) = last {
                            inner.announce(last);
                        }
                        let latest_at = writes
                            .iter()
                            .map(|w| w.committed_at)
                            .chain(denied.iter().map(|e| e.key.at))
                            .max();
                        prune(&inner, last, latest_at).await;
                        return Ok(outcomes);
                    }
                    Err(Failure::Store(e)) => return Err(e),
                    Err(Failure::Retry(e)) if tries < MAX_SERIALIZATION_RETRIES => {
                        tries += 1;
                        tracing::debug!(error = %e, tries, "the database refused the group for a concurrent transaction; trying again");
                    }
                    Err(Failure::Retry(e)) => return Err(StoreError::Database(Box::new(e))),
                }
            }
        })
        .await
        .map_err(|e| StoreError::CommitUncertain(Box::new(e)))?
    }

    async fn find_commit(
        &self,
        id: CommitId,
        after: Revision,
    ) -> Result<Option<Revision>, StoreError> {
        let client = self.0.client().await?;
        let after = i64::try_from(after.0).unwrap_or(i64::MAX);
        let row = client
            .query_opt(
                "SELECT revision FROM authzd_commits WHERE commit_id = $1 AND revision > $2 \
                 ORDER BY revision LIMIT 1",
                &[&id.to_string(), &after],
            )
            .await
            .map_err(query_error)?;
        row.map(|r| r.try_get(0).map(revision_of))
            .transpose()
            .map_err(query_error)
    }

    async fn wait_beyond(&self, revision: Revision) -> Result<Revision, StoreError> {
        let mut head = self.0.head.subscribe();
        // Asked once, so a wait for a revision already passed returns at
        // once even before a notification or a poll told this handle.
        if !head.borrow().closed && head.borrow().latest <= revision {
            if let Ok(latest) = self.0.read_head().await {
                self.0.announce(latest);
            }
        }
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
        let client = self.0.client().await?;
        let row = client
            .query_one("SELECT epoch FROM authzd_meta WHERE id = 1", &[])
            .await
            .map_err(query_error)?;
        let epoch: i64 = row.try_get(0).map_err(query_error)?;
        // The stored bits, signed in the column.
        Ok(Epoch(epoch as u64))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        let latest = self.0.read_head().await?;
        self.0.announce(latest);
        Ok(latest)
    }

    async fn oldest_retained(&self) -> Result<Revision, StoreError> {
        let client = self.0.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce(min(revision), 0) FROM authzd_changelog",
                &[],
            )
            .await
            .map_err(query_error)?;
        Ok(revision_of(row.try_get(0).map_err(query_error)?))
    }

    async fn changes_after(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        let Some(first) = after.0.checked_add(1) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.0.client().await?;
        let after_db = i64::try_from(after.0).unwrap_or(i64::MAX);
        // One statement, so one snapshot: the head, the oldest entry and
        // the page agree.
        let rows = client
            .query(
                "SELECT m.revision, (SELECT min(revision) FROM authzd_changelog), NULL::bigint, NULL::text \
                 FROM authzd_meta m WHERE m.id = 1 \
                 UNION ALL \
                 (SELECT NULL, NULL, revision, body FROM authzd_changelog \
                  WHERE revision > $1 ORDER BY revision LIMIT $2)",
                &[&after_db, &db_limit(limit)],
            )
            .await
            .map_err(query_error)?;
        let mut latest = Revision(0);
        let mut oldest = None;
        let mut page: Vec<(Revision, String)> = Vec::new();
        for row in rows {
            let head: Option<i64> = row.try_get(0).map_err(query_error)?;
            match head {
                Some(head) => {
                    latest = revision_of(head);
                    let min: Option<i64> = row.try_get(1).map_err(query_error)?;
                    oldest = min.map(revision_of);
                }
                None => {
                    let revision: i64 = row.try_get(2).map_err(query_error)?;
                    let body: String = row.try_get(3).map_err(query_error)?;
                    page.push((revision_of(revision), body));
                }
            }
        }
        if after >= latest {
            return Ok(Vec::new());
        }
        let oldest = oldest.unwrap_or(latest.next());
        if oldest.0 > first {
            return Err(StoreError::Pruned { after, oldest });
        }
        page.sort_by_key(|(revision, _)| *revision);
        let mut out = Vec::with_capacity(page.len());
        let mut bytes = 0usize;
        for (_, body) in page {
            bytes = bytes.saturating_add(body.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(
                serde_json::from_str(&body).map_err(|source| StoreError::Decode {
                    what: "change set",
                    source,
                })?,
            );
        }
        Ok(out)
    }

    async fn snapshot(&self) -> Result<SnapshotStream, StoreError> {
        let client = self.0.client().await?;
        let (header_tx, header_rx) = oneshot::channel();
        let (batches_tx, batches_rx) = mpsc::channel(SNAPSHOT_BATCHES_AHEAD);
        // Not awaited: the reader runs as long as the stream is consumed
        // and stops at the first batch nobody takes.
        tokio::spawn(read_snapshot(client, header_tx, batches_tx));
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
        let client = self.0.client().await?;
        let scope = tenant.as_ref().map_or(STORE_WIDE, TenantId::as_str);
        let row = client
            .query_opt(
                "SELECT revision FROM authzd_idempotency WHERE scope = $1 AND key = $2",
                &[&scope, &key],
            )
            .await
            .map_err(query_error)?;
        row.map(|r| r.try_get(0).map(revision_of))
            .transpose()
            .map_err(query_error)
    }

    async fn audit_page(
        &self,
        query: AuditQuery,
        limit: usize,
        max_scanned: usize,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.max(1);
        let max_scanned = max_scanned.max(1);
        let low = query.since.map_or((i64::MIN, 0), |t| (t.0, 0));
        let mut high = query.until.map_or((i64::MAX, i64::MAX), |t| (t.0, 0));
        if let Some(before) = query.before {
            let seq = i64::try_from(before.seq).unwrap_or(i64::MAX);
            high = high.min((before.at.0, seq));
        }
        let mut page = AuditPage::default();
        if low >= high {
            return Ok(page);
        }
        let client = self.0.client().await?;
        let rows = client
            .query(
                "SELECT at, seq, body FROM authzd_audit \
                 WHERE (at, seq) >= ($1, $2) AND (at, seq) < ($3, $4) \
                 ORDER BY at DESC, seq DESC LIMIT $5",
                &[
                    &low.0,
                    &low.1,
                    &high.0,
                    &high.1,
                    &db_limit(max_scanned.saturating_add(1)),
                ],
            )
            .await
            .map_err(query_error)?;
        // The next page starts right below the last entry examined,
        // matched or not: every entry above it has been looked at.
        let mut last_examined = None;
        for (scanned, row) in rows.into_iter().enumerate() {
            if page.entries.len() == limit || scanned == max_scanned {
                page.next = last_examined;
                break;
            }
            let at: i64 = row.try_get(0).map_err(query_error)?;
            let seq: i64 = row.try_get(1).map_err(query_error)?;
            let body: String = row.try_get(2).map_err(query_error)?;
            let key = AuditKey {
                at: Timestamp(at),
                seq: u64::try_from(seq).unwrap_or(0),
            };
            last_examined = Some(key);
            let mut entry: AuditEntry =
                serde_json::from_str(&body).map_err(|source| StoreError::Decode {
                    what: "audit entry",
                    source,
                })?;
            entry.key = key;
            if query.matches(&entry) {
                page.entries.push(entry);
            }
        }
        Ok(page)
    }

    fn holds_housekeeping(&self) -> bool {
        self.0.lease_held.load(Ordering::SeqCst)
    }

    fn retain(&self, revisions: u64) {
        self.0.retention.store(revisions.max(1), Ordering::SeqCst);
    }

    fn retain_audit(&self, age: Duration) {
        let nanos = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
        self.0.audit_retention.store(nanos, Ordering::SeqCst);
    }

    async fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.pool.close();
        self.0.head.send_modify(|head| head.closed = true);
    }
}

/// The snapshot reader: one read-only repeatable-read transaction on its
/// own connection; sends the header, then the records in batches.
async fn read_snapshot(
    mut client: Object,
    header_tx: oneshot::Sender<Result<(Revision, Option<String>), StoreError>>,
    batches: mpsc::Sender<Result<Vec<Record>, StoreError>>,
) {
    let mut header_tx = Some(header_tx);
    let read = async {
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(query_error)?;
        let head = txn
            .query_one("SELECT revision FROM authzd_meta WHERE id = 1", &[])
            .await
            .map_err(query_error)?;
        let revision = revision_of(head.try_get(0).map_err(query_error)?);
        let schema = txn
            .query_opt("SELECT body FROM authzd_schema_text WHERE id = 1", &[])
            .await
            .map_err(query_error)?
            .map(|row| row.try_get::<_, String>(0))
            .transpose()
            .map_err(query_error)?;
        let sent = header_tx.take().map(|tx| tx.send(Ok((revision, schema))));
        if !matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        let statement = txn
            .prepare("SELECT kind, tenant, body FROM authzd_records ORDER BY kind, tenant, key")
            .await
            .map_err(query_error)?;
        let portal = txn.bind(&statement, &[]).await.map_err(query_error)?;
        let batch_rows = i32::try_from(SNAPSHOT_BATCH).unwrap_or(i32::MAX);
        let mut last_tenant: Option<TenantId> = None;
        loop {
            let rows = txn
                .query_portal(&portal, batch_rows)
                .await
                .map_err(query_error)?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut batch = Vec::with_capacity(rows.len());
            for row in rows {
                let kind: i16 = row.try_get(0).map_err(query_error)?;
                let tenant: &str = row.try_get(1).map_err(query_error)?;
                let body: &str = row.try_get(2).map_err(query_error)?;
                // Rows come grouped by tenant: parse each run's id once.
                let id = match &last_tenant {
                    Some(last) if last.as_str() == tenant => last.clone(),
                    _ => {
                        let id = TenantId::try_from(tenant).map_err(|source| {
                            StoreError::InvalidKey {
                                what: "tenant",
                                source,
                            }
                        })?;
                        last_tenant = Some(id.clone());
                        id
                    }
                };
                batch.push((id, crate::records::change_of(kind, body)?));
            }
            if batches.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
    };
    let result: Result<(), StoreError> = read.await;
    if let Err(e) = result {
        match header_tx.take() {
            Some(tx) => {
                let _ = tx.send(Err(e));
            }
            None => {
                let _ = batches.send(Err(e)).await;
            }
        }
    }
}
