//! [`Datastore`] on PostgreSQL: the pool, the group commit (its tenants'
//! head rows locked and compared with the base; then every row of the
//! group, the counter row's advance, `pg_notify` and `COMMIT` sent at
//! once), reservations of tenants for a group planned again, pruning
//! after commits, and the reads (changelog, snapshot, idempotency keys,
//! audit trail).
//!
//! Must not plan or validate writes (the sequencer did) and must not hold
//! the counter row's lock longer than the server's own work on the group
//! and its flush: no round trip to this process happens under it, and
//! pruning runs after `COMMIT`.

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

use crate::follow::Heard;
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
    /// Set while a task prunes the audit trail (see [`prune`]).
    audit_pruning: AtomicBool,
    /// The transaction [`Datastore::reserve`] opened, for the next group.
    reserved: std::sync::Mutex<Option<Session>>,
    /// The changelog entries notifications carried, for
    /// [`Datastore::followed_changes`].
    heard: std::sync::Mutex<Heard>,
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

    /// What notifications carried. Its data is sound whatever panicked
    /// while it was held (each change keeps it a run of revisions).
    pub(crate) fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// A changelog entry as stored.
fn change_set(body: &str) -> Result<ChangeSet, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Decode {
        what: "change set",
        source,
    })
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
            audit_pruning: AtomicBool::new(false),
            reserved: std::sync::Mutex::new(None),
            heard: std::sync::Mutex::new(Heard::default()),
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

/// A revision no commit reaches: change sets and audit entries are encoded
/// with it, and the text either side of it is what the database joins
/// around the revision it assigns under the counter row's lock.
const SENTINEL: Revision = Revision(u64::MAX);

/// `body`, encoded with [`SENTINEL`] as its revision, split around it (the
/// first occurrence, or with `last` the last one): the text before and
/// after the revision.
fn split_at_sentinel(body: String, last: bool) -> Result<(String, String), StoreError> {
    let mark = SENTINEL.0.to_string();
    let at = if last {
        body.rfind(&mark)
    } else {
        body.find(&mark)
    };
    let (Some(at), Some(end)) = (at, at.and_then(|a| a.checked_add(mark.len()))) else {
        return Err(StoreError::Database(
            "an encoded entry lacks the revision placeholder".into(),
        ));
    };
    let suffix = body.get(end..).unwrap_or_default().to_owned();
    let mut prefix = body;
    prefix.truncate(at);
    Ok((prefix, suffix))
}

/// A group's rows, gathered before any statement is sent. Rows that name
/// a revision carry its offset within the group (from 1; 0 for none): the
/// database adds the offsets to the head it reads under the counter row's
/// lock, so the group's revisions are known only once that lock is held.
#[derive(Default)]
struct Batch {
    put_kinds: Vec<i16>,
    put_tenants: Vec<String>,
    put_keys: Vec<String>,
    put_bodies: Vec<String>,
    del_kinds: Vec<i16>,
    del_tenants: Vec<String>,
    del_keys: Vec<String>,
    log_offsets: Vec<i64>,
    log_prefixes: Vec<String>,
    log_suffixes: Vec<String>,
    key_scopes: Vec<String>,
    key_names: Vec<String>,
    key_offsets: Vec<i64>,
    audit_at: Vec<i64>,
    audit_offsets: Vec<i64>,
    audit_prefixes: Vec<String>,
    audit_suffixes: Vec<String>,
    head_tenants: Vec<String>,
    head_offsets: Vec<i64>,
}

impl Batch {
    /// An audit entry; `offset` 0 for one that names no revision (a
    /// denial), whose body is sent whole.
    fn audit(&mut self, entry: &AuditEntry, offset: i64) -> Result<(), StoreError> {
        self.audit_at.push(entry.key.at.0);
        let body = serde_json::to_string(entry).map_err(|source| StoreError::Encode {
            what: "audit entry",
            source,
        })?;
        let (prefix, suffix) = match offset {
            0 => (body, String::new()),
            _ => split_at_sentinel(body, true)?,
        };
        self.audit_offsets.push(offset);
        self.audit_prefixes.push(prefix);
        self.audit_suffixes.push(suffix);
        Ok(())
    }
}

/// Inserts the tenants' head rows a group writes that do not exist yet
/// (at 0: no commit wrote them), so they can be locked.
const ADD_TENANT_HEADS: &str = "INSERT INTO authzd_tenant_heads (tenant, revision) \
    SELECT unnest($1::text[]), 0 ON CONFLICT (tenant) DO NOTHING";
/// Locks the tenants' head rows, in one order for every writer (no
/// deadlock): another writer of these tenants waits here, before it holds
/// anything every writer needs.
const LOCK_TENANT_HEADS: &str = "SELECT tenant FROM authzd_tenant_heads \
    WHERE tenant = ANY($1) ORDER BY tenant FOR UPDATE";
/// A store-wide group waits for every writer that holds tenant locks and
/// keeps new ones out; it is rare (a schema, a write expecting a store
/// revision), so it takes the counter row's lock at once too.
const LOCK_STORE: &str = "LOCK TABLE authzd_tenant_heads IN EXCLUSIVE MODE";
const LOCK_COUNTER: &str = "SELECT revision FROM authzd_meta WHERE id = 1 FOR UPDATE";
/// Read in a statement after the locks', so it sees every commit that
/// held them before: the counter, and the latest revision that wrote one
/// of the tenants (or the whole store, '').
const READ_HEADS: &str = "SELECT (SELECT revision FROM authzd_meta WHERE id = 1), \
    (SELECT coalesce(max(revision), 0) FROM authzd_tenant_heads WHERE tenant = ANY($1))";
const KNOWN_KEYS: &str = "SELECT scope, key, revision FROM authzd_idempotency WHERE (scope, key) IN \
    (SELECT * FROM unnest($1::text[], $2::text[]))";

const PUT_RECORDS: &str = "INSERT INTO authzd_records (kind, tenant, key, body) \
    SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[], $4::text[]) \
    ON CONFLICT (kind, tenant, key) DO UPDATE SET body = excluded.body";
const DELETE_RECORDS: &str = "DELETE FROM authzd_records WHERE (kind, tenant, key) IN \
    (SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[]))";
const PUT_SCHEMA: &str = "INSERT INTO authzd_schema_text (id, body) VALUES (1, $1) \
    ON CONFLICT (id) DO UPDATE SET body = excluded.body";
/// Records an audit trail without a revision (a group of refusals only):
/// nothing to number, so the counter row is not locked.
const PUT_AUDIT: &str = "INSERT INTO authzd_audit (at, body) \
    SELECT u.a, u.p || u.s FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(a, p, s)";

/// The statement that numbers a group, ended by `$tail`: the counter
/// row's advance, which takes its lock as late as can be (only `COMMIT`
/// follows), and everything that names the group's revisions — changelog
/// entries, idempotency keys, commit id, tenants' heads (an upsert: a
/// store-wide group did not add its tenants' rows first) and audit
/// entries — each reading the counter as the advance set it (the group's
/// revisions are its last `$1` values; an audit entry at offset 0 names
/// none). One statement rather than one each, so the server's work under
/// the lock, which every writer of the database waits for, is one
/// statement's.
macro_rules! number_group {
    ($tail:literal) => {
        concat!(
            "WITH m AS (UPDATE authzd_meta SET revision = revision + $1 WHERE id = 1 \
             RETURNING revision), \
             c AS (INSERT INTO authzd_changelog (revision, body) \
             SELECT m.revision - $1 + u.o, u.p || (m.revision - $1 + u.o)::text || u.s \
             FROM m, unnest($2::bigint[], $3::text[], $4::text[]) AS u(o, p, s) \
             RETURNING revision, body), \
             k AS (INSERT INTO authzd_idempotency (scope, key, revision) \
             SELECT u.c, u.k, m.revision - $1 + u.o \
             FROM m, unnest($5::text[], $6::text[], $7::bigint[]) AS u(c, k, o)), \
             i AS (INSERT INTO authzd_commits (revision, commit_id) \
             SELECT m.revision - $1 + 1, $8 FROM m), \
             h AS (INSERT INTO authzd_tenant_heads (tenant, revision) \
             SELECT u.t, m.revision - $1 + u.o FROM m, unnest($9::text[], $10::bigint[]) AS u(t, o) \
             ON CONFLICT (tenant) DO UPDATE SET revision = excluded.revision), \
             a AS (INSERT INTO authzd_audit (at, body) \
             SELECT u.a, u.p || CASE WHEN u.o = 0 THEN '' ELSE (m.revision - $1 + u.o)::text END || u.s \
             FROM m, unnest($11::bigint[], $12::bigint[], $13::text[], $14::text[]) AS u(a, o, p, s)) ",
            $tail
        )
    };
}
/// [`number_group!`] without a notification: returns the new head.
const NUMBER_GROUP: &str = number_group!("SELECT m.revision FROM m");
/// [`number_group!`] announcing the new head with `pg_notify` and, with
/// `$15`, the group's changelog entries after it, one a line (JSON holds
/// no raw newline), as the statement stored them: other nodes then apply
/// the group without reading the changelog (see [`Heard`]).
const NUMBER_GROUP_NOTIFY: &str = number_group!(
    "SELECT m.revision, pg_notify('authzd_commit', m.revision::text || CASE WHEN $15 THEN \
     coalesce((SELECT string_agg(chr(10) || c.body, '' ORDER BY c.revision) FROM c), '') \
     ELSE '' END) FROM m"
);

/// Most bytes a notification's payload may hold: PostgreSQL refuses one of
/// 8,000 or more (in its default build).
const NOTIFY_PAYLOAD_BYTES: usize = 7_999;

/// Most digits a revision takes in text.
const REVISION_DIGITS: usize = 20;

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

/// A connection inside a transaction. Ended by [`Session::rollback`] or a
/// `COMMIT`; dropped otherwise (an early return), its connection is
/// closed rather than pooled, so the server rolls the transaction back.
struct Session(Option<Object>);

impl Session {
    fn client(&self) -> Result<&Object, Failure> {
        self.0.as_ref().ok_or(Failure::Store(StoreError::Closed))
    }

    /// Rolls back and hands the connection back to the pool.
    async fn rollback(mut self) {
        if let Some(client) = self.0.take() {
            if client.batch_execute("ROLLBACK").await.is_err() {
                drop(Object::take(client));
            }
        }
    }

    /// The transaction ended (committed or rolled back by the server):
    /// the connection goes back to the pool.
    fn ended(mut self) {
        self.0.take();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

/// What a group's writes are scoped to: their tenants, sorted, without
/// repeats, or the whole store.
enum Scope {
    Tenants(Vec<String>),
    Store,
}

impl Scope {
    fn of<'a>(tenants: impl IntoIterator<Item = Option<&'a TenantId>>) -> Scope {
        let mut names = Vec::new();
        for tenant in tenants {
            match tenant {
                Some(tenant) => names.push(tenant.as_str().to_owned()),
                None => return Scope::Store,
            }
        }
        names.sort_unstable();
        names.dedup();
        Scope::Tenants(names)
    }
}

/// Sends the statements that lock `scope`'s writers out (and, for the
/// whole store, the counter row), then reads the counter and the latest
/// revision that wrote the scope; pipelined, after `BEGIN` when `begin`.
/// Also reads the idempotency keys `keys` names.
async fn lock(
    client: &Object,
    begin: bool,
    scope: &Scope,
    keys: (&[&str], &[&str]),
) -> Result<(Revision, Revision, HashMap<(String, String), Revision>), Failure> {
    let mut locks = Vec::new();
    let mut checked = vec![STORE_WIDE.to_owned()];
    match scope {
        Scope::Tenants(tenants) => {
            let add = client
                .prepare_cached(ADD_TENANT_HEADS)
                .await
                .map_err(statement)?;
            let lock = client
                .prepare_cached(LOCK_TENANT_HEADS)
                .await
                .map_err(statement)?;
            checked.extend(tenants.iter().cloned());
            let tenants: &(dyn ToSql + Sync) = tenants;
            locks.push((add, [tenants]));
            locks.push((lock, [tenants]));
        }
        Scope::Store => {}
    }
    let read = client.prepare_cached(READ_HEADS).await.map_err(statement)?;
    let known = client.prepare_cached(KNOWN_KEYS).await.map_err(statement)?;
    let (scopes, names) = keys;
    // One request, so it is sent before the reads below.
    let mut first = String::new();
    if begin {
        first.push_str("BEGIN;");
    }
    if let Scope::Store = scope {
        first.push_str(LOCK_STORE);
        first.push(';');
        first.push_str(LOCK_COUNTER);
    }
    let begun = async {
        match first.is_empty() {
            true => Ok(()),
            false => client.batch_execute(&first).await,
        }
    };
    let locked = futures_util::future::try_join_all(
        locks
            .iter()
            .map(|(prepared, params)| client.execute(prepared, params)),
    );
    let checked: [&(dyn ToSql + Sync); 1] = [&checked];
    let heads = client.query_one(&read, &checked);
    let keyed = async {
        match scopes.is_empty() {
            true => Ok(Vec::new()),
            false => client.query(&known, &[&scopes, &names]).await,
        }
    };
    let ((), _, heads, keyed) = futures_util::future::try_join4(begun, locked, heads, keyed)
        .await
        .map_err(statement)?;
    let counter: i64 = heads.try_get(0).map_err(statement)?;
    let written: i64 = heads.try_get(1).map_err(statement)?;
    let mut found = HashMap::new();
    for row in keyed {
        let scope: String = row.try_get(0).map_err(statement)?;
        let key: String = row.try_get(1).map_err(statement)?;
        let revision: i64 = row.try_get(2).map_err(statement)?;
        found.insert((scope, key), revision_of(revision));
    }
    Ok((revision_of(counter), revision_of(written), found))
}

/// Opens a transaction that locks `scope`'s writers out, as
/// [`Datastore::reserve`] documents, and keeps it for the handle's next
/// group; returns the counter read under the locks.
async fn reserve(inner: &Inner, scope: Scope) -> Result<Revision, StoreError> {
    release(inner).await;
    let session = Session(Some(inner.client().await?));
    let locked = async {
        let client = session.client()?;
        lock(client, true, &scope, (&[], &[])).await
    };
    let (counter, _, _) = locked.await.map_err(|f| match f {
        Failure::Store(e) => e,
        Failure::Retry(e) => StoreError::Database(Box::new(e)),
    })?;
    if let Ok(mut reserved) = inner.reserved.lock() {
        *reserved = Some(session);
    }
    Ok(counter)
}

/// Ends the reservation no group used, if any.
async fn release(inner: &Inner) {
    let held = inner.reserved.lock().ok().and_then(|mut r| r.take());
    if let Some(session) = held {
        session.rollback().await;
    }
}

/// Where a write's idempotency key was first committed.
#[derive(Clone, Copy)]
enum Keyed {
    /// Before this group, at this revision.
    Before(Revision),
    /// By this group's write at this offset.
    InGroup(u64),
}

/// What the group does with a write, before its revisions are known.
enum Planned {
    Committed(ChangeSet, u64),
    Replayed(Keyed),
}

/// One attempt at committing a group, as [`Datastore::commit_group`]
/// documents; returns the outcomes and the last committed revision.
///
/// Two trips to the database: first `BEGIN`, the locks of the group's
/// tenants (writers of other tenants pass by), the check that no commit
/// since the base wrote them, and the group's idempotency keys; then
/// every row, the counter row's update and `COMMIT`, sent at once — the
/// counter row, which every writer of the database waits for, is locked
/// only for the server's own work on the group and the commit's flush.
async fn attempt(
    inner: &Inner,
    base: Revision,
    id: CommitId,
    writes: &[PendingWrite],
    denied: &[AuditEntry],
) -> Result<(Vec<CommitOutcome>, Option<Revision>), Failure> {
    let reserved = inner.reserved.lock().ok().and_then(|mut r| r.take());
    let begin = reserved.is_none();
    let session = match reserved {
        Some(session) => session,
        None => Session(Some(inner.client().await?)),
    };
    let client = session.client()?;
    let mut batch = Batch::default();
    let mut staged = Staged::default();
    let mut planned = Vec::with_capacity(writes.len());
    let mut count: u64 = 0;
    if writes.is_empty() {
        if begin {
            client.batch_execute("BEGIN").await.map_err(statement)?;
        }
    } else {
        let scope = Scope::of(writes.iter().map(PendingWrite::conflict_scope));
        let mut key_scopes = Vec::new();
        let mut key_names = Vec::new();
        for write in writes {
            if let Some(key) = &write.idempotency_key {
                key_scopes.push(write.tenant.as_ref().map_or(STORE_WIDE, TenantId::as_str));
                key_names.push(key.as_str());
            }
        }
        let (counter, written, found) =
            lock(client, begin, &scope, (&key_scopes, &key_names)).await?;
        let conflict = match scope {
            Scope::Store => counter != base,
            Scope::Tenants(_) => base > counter || written > base,
        };
        if conflict {
            session.rollback().await;
            return Err(StoreError::Conflict {
                base,
                head: counter,
            }
            .into());
        }
        let mut keys: HashMap<(String, String), Keyed> = found
            .into_iter()
            .map(|(k, r)| (k, Keyed::Before(r)))
            .collect();
        let mut heads: HashMap<&str, u64> = HashMap::new();
        for write in writes {
            let scope = write.tenant.as_ref().map_or(STORE_WIDE, TenantId::as_str);
            if let Some(key) = &write.idempotency_key {
                if let Some(first) = keys.get(&(scope.to_owned(), key.clone())) {
                    planned.push(Planned::Replayed(*first));
                    continue;
                }
            }
            // Only store-wide groups expect or are given revisions, and
            // they hold the counter row's lock: `counter` is the head.
            let current = Revision(counter.0.saturating_add(count));
            if let Some(expected) = write.expected_revision {
                if expected != current {
                    session.rollback().await;
                    return Err(StoreError::RevisionMismatch {
                        expected,
                        actual: current,
                    }
                    .into());
                }
            }
            if let Some(given) = write.revision {
                if given != current.next() {
                    session.rollback().await;
                    return Err(StoreError::OutOfSequence {
                        given,
                        latest: current,
                    }
                    .into());
                }
            }
            if current.0.checked_add(1).is_none() {
                session.rollback().await;
                return Err(StoreError::RevisionExhausted.into());
            }
            count = count.saturating_add(1);
            let offset = db_offset(count)?;
            for (index, change) in write.changes.iter().enumerate() {
                staged.apply(write.tenant.as_ref(), index, change)?;
            }
            let set = write.entry(SENTINEL);
            let body = serde_json::to_string(&set).map_err(|source| StoreError::Encode {
                what: "change set",
                source,
            })?;
            let (prefix, suffix) = split_at_sentinel(body, false)?;
            batch.log_offsets.push(offset);
            batch.log_prefixes.push(prefix);
            batch.log_suffixes.push(suffix);
            heads.insert(scope, count);
            if let Some(key) = &write.idempotency_key {
                keys.insert((scope.to_owned(), key.clone()), Keyed::InGroup(count));
                batch.key_scopes.push(scope.to_owned());
                batch.key_names.push(key.clone());
                batch.key_offsets.push(offset);
            }
            // A replica's copy of a primary's write is audited on the
            // primary, which knows who asked.
            if write.revision.is_none() {
                batch.audit(&write.audit_entry(SENTINEL), offset)?;
            }
            planned.push(Planned::Committed(set, count));
        }
        for (tenant, offset) in heads {
            batch.head_tenants.push(tenant.to_owned());
            batch.head_offsets.push(db_offset(offset)?);
        }
    }
    for entry in denied {
        batch.audit(entry, 0)?;
    }
    if count == 0 && denied.is_empty() {
        // Only replays: nothing to write.
        session.rollback().await;
        return Ok((finish(planned, Revision(0)), None));
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
    let n = db_offset(count)?;
    let id_text = id.to_string();
    // The server runs the statements in the order sent: the records
    // first, outside the counter row's lock, then the one statement that
    // numbers the group under it ([`number_group!`]), then `COMMIT`.
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
    if let Some(schema) = &staged.schema {
        sent.push((PUT_SCHEMA, vec![schema]));
    }
    // Whether the entries fit in the notification, counted with the
    // widest revisions.
    let carried = batch
        .log_prefixes
        .iter()
        .zip(&batch.log_suffixes)
        .map(|(p, s)| 1 + p.len() + REVISION_DIGITS + s.len())
        .try_fold(REVISION_DIGITS, |total, entry| {
            total
                .checked_add(entry)
                .filter(|t| *t <= NOTIFY_PAYLOAD_BYTES)
        })
        .is_some();
    let numbered_at = sent.len();
    if count > 0 {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &n,
            &batch.log_offsets,
            &batch.log_prefixes,
            &batch.log_suffixes,
            &batch.key_scopes,
            &batch.key_names,
            &batch.key_offsets,
            &id_text,
            &batch.head_tenants,
            &batch.head_offsets,
            &batch.audit_at,
            &batch.audit_offsets,
            &batch.audit_prefixes,
            &batch.audit_suffixes,
        ];
        let sql = match inner.notify.load(Ordering::SeqCst) {
            true => {
                params.push(&carried);
                NUMBER_GROUP_NOTIFY
            }
            false => NUMBER_GROUP,
        };
        sent.push((sql, params));
    } else if !batch.audit_at.is_empty() {
        sent.push((
            PUT_AUDIT,
            vec![
                &batch.audit_at,
                &batch.audit_prefixes,
                &batch.audit_suffixes,
            ],
        ));
    }
    let mut statements = Vec::with_capacity(sent.len());
    for (sql, _) in &sent {
        statements.push(client.prepare_cached(sql).await.map_err(statement)?);
    }
    let runs = futures_util::future::try_join_all(
        statements
            .iter()
            .zip(&sent)
            .map(|(prepared, (_, params))| client.query(prepared, params)),
    );
    // Sent right behind the statements: if one of them fails, the
    // transaction is aborted and this `COMMIT` rolls it back.
    let committed = client.batch_execute("COMMIT");
    let (runs, committed) = futures_util::future::join(runs, committed).await;
    let rows = match runs {
        Ok(rows) => rows,
        Err(e) if e.as_db_error().is_some() => {
            session.ended();
            return Err(statement(e));
        }
        // The connection failed with the `COMMIT` sent: it may or may not
        // have landed; the commit id tells.
        Err(e) => return Err(StoreError::CommitUncertain(Box::new(e)).into()),
    };
    match committed {
        Ok(()) => session.ended(),
        // The server answered the COMMIT: it refused it, nothing landed.
        Err(e) if crate::is_serialization_failure(&e) => {
            session.ended();
            return Err(Failure::Retry(e));
        }
        Err(e) if e.as_db_error().is_some() => {
            session.ended();
            return Err(StoreError::Database(Box::new(e)).into());
        }
        Err(e) => return Err(StoreError::CommitUncertain(Box::new(e)).into()),
    }
    if count == 0 {
        return Ok((finish(planned, Revision(0)), None));
    }
    let head = rows
        .get(numbered_at)
        .and_then(|rows| rows.first())
        .map(|row| row.try_get::<_, i64>(0))
        .transpose()
        .map_err(|e| StoreError::CommitUncertain(Box::new(e)))?
        .map(revision_of)
        .ok_or_else(|| StoreError::CommitUncertain("the counter row gave no revision".into()))?;
    let start = Revision(head.0.saturating_sub(count));
    Ok((finish(planned, start), Some(head)))
}

/// An offset within a group as a `bigint`.
fn db_offset(offset: u64) -> Result<i64, StoreError> {
    i64::try_from(offset).map_err(|_| StoreError::RevisionExhausted)
}

/// The outcomes, the group's writes numbered from `start`.
fn finish(planned: Vec<Planned>, start: Revision) -> Vec<CommitOutcome> {
    let at = |offset: u64| Revision(start.0.saturating_add(offset));
    planned
        .into_iter()
        .map(|p| match p {
            Planned::Committed(mut set, offset) => {
                set.revision = at(offset);
                CommitOutcome::Committed(set)
            }
            Planned::Replayed(Keyed::Before(revision)) => CommitOutcome::Replayed(revision),
            Planned::Replayed(Keyed::InGroup(offset)) => CommitOutcome::Replayed(at(offset)),
        })
        .collect()
}

/// Prunes what fell out of the retention windows, after a commit (this
/// node's, or another's this node learnt of) and outside its transaction
/// (no lock on the counter row is held): at most [`MAX_PRUNED_PER_COMMIT`]
/// rows of each table, and only on the node holding the housekeeping
/// lease. The changelog and commit ids are pruned before this returns (a
/// commit leaves its retention window exact), in one trip; the audit
/// trail, whose window is a duration, in a task of its own, one at a time,
/// so the commit path never waits for it. A failure is logged; the next
/// commit tries again.
pub(crate) async fn prune(
    inner: &Arc<Inner>,
    last: Option<Revision>,
    latest_at: Option<Timestamp>,
) {
    if !inner.lease_held.load(Ordering::SeqCst) {
        return;
    }
    let retain = inner.retention.load(Ordering::SeqCst);
    let keep_from = last.and_then(|l| l.0.checked_sub(retain).map(|r| r + 1));
    let age = inner.audit_retention.load(Ordering::SeqCst);
    let before = latest_at.and_then(|at| i64::try_from(age).ok().and_then(|a| at.0.checked_sub(a)));
    if let Some(before) = before {
        if !inner.audit_pruning.swap(true, Ordering::SeqCst) {
            let inner = inner.clone();
            tokio::spawn(async move {
                if let Err(e) = prune_audit(&inner, before).await {
                    tracing::warn!(store = %inner.location, error = %e, "pruning the audit trail failed; the next commit tries again");
                }
                inner.audit_pruning.store(false, Ordering::SeqCst);
            });
        }
    }
    let Some(keep_from) = keep_from else { return };
    let pruned = async {
        let client = inner.client().await?;
        let bound = db_limit(MAX_PRUNED_PER_COMMIT);
        let keep_from = db_revision(Revision(keep_from))?;
        let params: [&(dyn ToSql + Sync); 2] = [&keep_from, &bound];
        futures_util::future::try_join(
            client.execute(
                "DELETE FROM authzd_changelog WHERE revision IN (SELECT revision FROM \
                 authzd_changelog WHERE revision < $1 ORDER BY revision LIMIT $2)",
                &params,
            ),
            client.execute(
                "DELETE FROM authzd_commits WHERE revision IN (SELECT revision FROM \
                 authzd_commits WHERE revision < $1 ORDER BY revision LIMIT $2)",
                &params,
            ),
        )
        .await
        .map_err(query_error)?;
        Ok::<_, StoreError>(())
    };
    if let Err(e) = pruned.await {
        tracing::warn!(store = %inner.location, error = %e, "pruning failed; the next commit tries again");
    }
}

/// Deletes at most [`MAX_PRUNED_PER_COMMIT`] audit entries older than
/// `before`.
async fn prune_audit(inner: &Inner, before: i64) -> Result<(), StoreError> {
    let client = inner.client().await?;
    client
        .execute(
            "DELETE FROM authzd_audit WHERE (at, seq) IN (SELECT at, seq FROM \
             authzd_audit WHERE at < $1 ORDER BY at, seq LIMIT $2)",
            &[&before, &db_limit(MAX_PRUNED_PER_COMMIT)],
        )
        .await
        .map_err(query_error)?;
    Ok(())
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

    async fn reserve(&self, scope: &[Option<TenantId>]) -> Result<Revision, StoreError> {
        reserve(&self.0, Scope::of(scope.iter().map(Option::as_ref))).await
    }

    async fn release(&self) {
        release(&self.0).await;
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
            out.push(change_set(&body)?);
        }
        Ok(out)
    }

    async fn followed_changes(
        &self,
        after: Revision,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ChangeSet>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let held = self.0.heard().after(after, limit, max_bytes);
        match held {
            Some(bodies) => bodies.iter().map(|b| change_set(b)).collect(),
            None => self.changes_after(after, limit, max_bytes).await,
        }
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

/// A batch of `authzd_records` rows (kind, tenant, body) as records.
/// Rows come grouped by tenant: each run's id is parsed once
/// (`last_tenant` carries it from one batch to the next).
fn decode_rows(
    rows: Vec<tokio_postgres::Row>,
    last_tenant: &mut Option<TenantId>,
) -> Result<Vec<Record>, StoreError> {
    let mut batch = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: i16 = row.try_get(0).map_err(query_error)?;
        let tenant: &str = row.try_get(1).map_err(query_error)?;
        let body: &str = row.try_get(2).map_err(query_error)?;
        let id = match last_tenant.as_ref() {
            Some(last) if last.as_str() == tenant => last.clone(),
            _ => {
                let id = TenantId::try_from(tenant).map_err(|source| StoreError::InvalidKey {
                    what: "tenant",
                    source,
                })?;
                *last_tenant = Some(id.clone());
                id
            }
        };
        batch.push((id, crate::records::change_of(kind, body)?));
    }
    Ok(batch)
}

/// The snapshot reader: one read-only repeatable-read transaction on its
/// own connection; sends the header, then the records in batches, each
/// batch asked of the server before the one before it is decoded (a node
/// joining a large database reads and decodes at once).
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
        let mut rows = txn
            .query_portal(&portal, batch_rows)
            .await
            .map_err(query_error)?;
        while !rows.is_empty() {
            // The next batch is asked for before this one is decoded, so
            // the server reads it meanwhile.
            let next = txn.query_portal(&portal, batch_rows);
            let handed = async {
                let batch = decode_rows(rows, &mut last_tenant)?;
                Ok::<_, StoreError>(batches.send(Ok(batch)).await.is_ok())
            };
            let (next, handed) = futures_util::future::join(next, handed).await;
            if !handed? {
                return Ok(());
            }
            rows = next.map_err(query_error)?;
        }
        Ok(())
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
