//! authzd's service layer: one async façade over store, engine and feed —
//! writes, reads at a revision, schema changes and subscriptions — and,
//! above it, the use cases every edge calls.
//!
//! # Layout
//!
//! - [`ops`]: the edge-neutral operations, one module per family, each
//!   taking the caller's [`ops::Call`] and model types and returning model
//!   types or one [`ops::Page`]; [`ops::UseCase`] is the authorization table.
//! - `sequencer`: the one thread that plans, commits, publishes to cache and
//!   feed, and replies, in revision order and in groups; after a conflict
//!   with another writer of the store it observes their commits and plans
//!   again.
//! - [`watch`]: the change feed (replay from the changelog, then live,
//!   bounded per subscriber).
//! - [`auth`]: callers and tokens, and what a token's kind and tenant allow.
//! - [`config`]: runtime settings (their limits and defaults are
//!   `authzd_core::limits`); [`metrics`]: the metrics' names; [`clock`]:
//!   where "now" comes from.
//! - `replica`: what a primary exports to replicas and how a replica takes
//!   it in; backups and the inspection of a store folder.
//!
//! An RPC only submits its write and awaits the reply, so a client that
//! goes away can never leave a write half-applied. Reads never wait for
//! writes: they take the cache's current snapshot. The store is reached
//! through the [`Datastore`] trait; only opening one (at start-up, to write
//! a backup, to inspect a folder) names a backend: the embedded redb file,
//! or a PostgreSQL database shared with other nodes, whose commits this
//! node follows. CPU-heavy
//! work (the start-up load, schema parsing, big listings) runs off the
//! async workers. Must not know about protobuf, tonic or HTTP.

pub mod auth;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod ops;
mod replica;
mod store_lag;
pub mod watch;

pub use replica::{
    Export, StoreSummary, Tenants, decode_record, encode_record, inspect_store, write_backup,
};
mod sequencer;
pub use store_lag::StoreLag;

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::watch::{Feed, Filter, Pacing, Start, Subscription, WatchError};
use authzd_core::engine::{self, Engine, EngineError, Operation, Snapshot, Violation};
pub use authzd_core::model::Origin;
use authzd_core::model::{AuditEntry, AuditQuery, Revision, SubjectId, TenantId, Timestamp};
use authzd_core::schema::{self, Catalog, SchemaError};
pub use authzd_store::AuditPage;
use authzd_store::{Datastore, SnapshotStream, StoreError};
use authzd_store_redb as storage;
pub use authzd_store_redb::FILE_NAME;
pub use sequencer::WhatIf;
use sequencer::{Job, Reply, Sequencer};
use store_lag::LagTracker;

/// Why the service refused or failed a request.
#[derive(Debug, thiserror::Error)]
// Not `#[non_exhaustive]`: the edges map every variant exhaustively, so
// a new one cannot reach a client unmapped.
pub enum Error {
    /// The engine refused the request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// One item of a batch was refused; nothing was written.
    #[error("{list}[{index}]: {error}")]
    Refused {
        /// The request's list field ("operations", "checks").
        list: &'static str,
        /// Its position in the batch.
        index: usize,
        /// Why.
        error: EngineError,
    },
    /// A request field is malformed or over a limit.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field, as named in the request.
        field: String,
        /// Why.
        reason: String,
    },
    /// A schema did not validate.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// `expected_revision` did not match the latest revision.
    #[error("expected revision {expected}, but the latest revision is {actual}")]
    RevisionMismatch {
        /// What the client expected.
        expected: Revision,
        /// What it is.
        actual: Revision,
    },
    /// `at_least_revision` names a revision that has not been committed.
    #[error("at_least_revision {requested} is ahead of the latest committed revision {latest}")]
    RevisionAhead {
        /// What was asked for.
        requested: Revision,
        /// The latest committed revision.
        latest: Revision,
    },
    /// On a node of a shared store: `at_least_revision` is beyond what the
    /// node has applied, and it cannot catch up in time (the database is
    /// unreachable, or the node is far behind). Another node, or a retry,
    /// may answer.
    #[error(
        "at_least_revision {requested} is beyond revision {applied}, the latest this node has applied, and it cannot catch up now ({why}); try again or ask another node"
    )]
    NotApplied {
        /// What was asked for.
        requested: Revision,
        /// The latest revision this node has applied.
        applied: Revision,
        /// Why it cannot catch up.
        why: &'static str,
    },
    /// `options.actor` names no subject of the tenant.
    #[error("options.actor: subject {actor} not found in tenant {tenant}")]
    UnknownActor {
        /// The actor named.
        actor: SubjectId,
        /// The tenant of the write.
        tenant: TenantId,
    },
    /// The subscription could not start or ended early.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The store failed; details are logged, not returned, except for the
    /// retryable classes, which tell the client to try again. Shared: one
    /// failed group answers all of its writes with it.
    #[error("{}", store_message(.0))]
    Store(Arc<StoreError>),
    /// The store could not be opened at start-up; says why in full, for
    /// the operator (never sent to a client).
    #[error(transparent)]
    Open(StoreError),
    /// A blocking task died.
    #[error("internal task failure")]
    Task(#[from] tokio::task::JoinError),
    /// The write queue is full: the server is taking writes slower than
    /// they arrive. Nothing was written; retry later.
    #[error("the write queue is full ({capacity} writes waiting); retry later")]
    Busy {
        /// How many writes the queue holds.
        capacity: usize,
    },
    /// The server is shutting down and takes no more writes.
    #[error("the server is shutting down")]
    Stopped,
    /// As many snapshots as the server streams at once are being streamed.
    #[error("{limit} snapshots are being streamed already; retry later")]
    SnapshotsBusy {
        /// How many it streams at once.
        limit: usize,
    },
    /// A replication record could not be encoded (a bug) or decoded (a
    /// primary of another record format, or a corrupt message).
    #[error("replication {what}: {source}")]
    Record {
        /// What kind of record.
        what: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// A read replica could not reach its primary to forward a write.
    #[error(
        "this server is a read replica and cannot reach its primary; retry, or write to the primary"
    )]
    PrimaryUnreachable,
    /// A read replica takes no writes of its own (the API forwards them to
    /// its primary).
    #[error("this server is a read replica; send writes to its primary")]
    ReadOnly,
    /// A replicated change set does not follow the replica's latest
    /// revision: a hole in what the primary sent. Nothing of it was applied.
    #[error("replicated revision {given} does not follow the replica's latest revision {latest}")]
    OutOfSequence {
        /// The revision received.
        given: Revision,
        /// The replica's latest applied revision.
        latest: Revision,
    },
    /// The caller may not make this request: no or an unknown token, a
    /// token outside its kind or tenant, or one at its bound.
    #[error(transparent)]
    Caller(#[from] crate::auth::Refusal),
}

impl Error {
    /// The rule of the engine that refused the request, if one did: what
    /// the edges carry as a reason code and the sequencer audits.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            Error::Engine(EngineError::Violation(v))
            | Error::Refused {
                error: EngineError::Violation(v),
                ..
            } => Some(v.as_ref()),
            _ => None,
        }
    }
}

/// A write's options besides its operations.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// On whose behalf; `None` for a system write. The API admits a write
    /// without an actor only from an admin token.
    pub actor: Option<SubjectId>,
    /// Who asked for it.
    pub origin: Origin,
    /// Fail unless the latest revision is exactly this one.
    pub expected_revision: Option<Revision>,
    /// Makes a retry return the first attempt's revision.
    pub idempotency_key: Option<String>,
    /// How a refused operation is named: to the caller and, in the same
    /// words, in the audit trail.
    pub naming: Naming,
}

/// How a refused operation of a write is named in its error: the words the
/// caller gets, which the audit trail records as they are.
#[derive(Debug, Clone, Default)]
pub enum Naming {
    /// By its index in the request's `operations` (`operations[3]: …`).
    #[default]
    Operations,
    /// Without an index: the request names one record.
    Single,
    /// By its own list and index there (`memberships[3]: …`): each list
    /// with the index of its first operation, in the order applied.
    Lists(Vec<(&'static str, usize)>),
}

impl Naming {
    /// The error of operation `index` refused with `error`.
    pub(crate) fn refused(&self, index: usize, error: EngineError) -> Error {
        match self {
            Naming::Operations => Error::Refused {
                list: "operations",
                index,
                error,
            },
            Naming::Single => Error::Engine(error),
            Naming::Lists(lists) => {
                let (list, start) = lists
                    .iter()
                    .rev()
                    .find(|(_, start)| *start <= index)
                    .copied()
                    .unwrap_or(("operations", 0));
                Error::Refused {
                    list,
                    index: index - start,
                    error,
                }
            }
        }
    }
}

/// The running service. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    /// Shared with the sequencer, which alone writes it; reads (feed replay,
    /// retention) go to it directly.
    store: Arc<dyn Datastore>,
    /// The cache; the sequencer alone publishes to it.
    engine: Arc<Engine>,
    feed: Feed,
    /// The last revision applied to the cache, for `at_least_revision` waits.
    applied: Arc<tokio::sync::watch::Sender<Revision>>,
    /// The sequencer's queue. Bounded, so a flood of writes is refused
    /// (`Error::Busy`) instead of growing memory. The sequencer holds it
    /// weakly (its planner threads send their plans through it).
    jobs: Arc<SyncSender<Job>>,
    /// The sequencer's thread, joined at [`Service::stop`].
    sequencer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// What "now" is for evaluation, commit times and the expiry timer.
    clock: Arc<dyn Clock>,
    /// Flips to true at shutdown: background tasks end.
    closing: tokio::sync::watch::Sender<bool>,
    /// On a node of a shared store, how far behind the database it is;
    /// `None` otherwise.
    lag: Option<LagTracker>,
    config: Config,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("revision", &self.inner.engine.revision())
            .finish()
    }
}

impl Service {
    /// Opens the store, rebuilds the cache, and installs the configured (or,
    /// on a new store, the built-in) schema.
    pub async fn open(config: Config) -> Result<Service, Error> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Service::open`] with a given clock (tests move time with a
    /// [`crate::clock::ManualClock`] instead of sleeping).
    pub async fn open_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Service, Error> {
        // Read first, so that a schema file that is missing or invalid stops
        // the start before anything is created on disk.
        let configured = match &config.schema {
            Some(path) => Some(Arc::new(schema::load_file(path)?)),
            None => None,
        };
        let store = match &config.store {
            Some(shared) => authzd_store_postgres::open(&shared.url, shared.options.clone()).await,
            None => storage::open(&config.data_dir).await,
        }
        .map_err(Error::Open)?;
        store.retain(config.retain_revisions);
        store.retain_audit(config.audit_retention);
        let snapshot = store.snapshot().await.map_err(Error::Open)?;
        let revision = snapshot.revision;
        let stored = match &snapshot.schema {
            Some(text) => Some(Arc::new(schema::load("stored schema", text)?)),
            None => None,
        };
        // The stored schema is what the stored data was validated against;
        // a different configured one is installed through the write path,
        // which checks it against that data first.
        let (start, install) = match (stored, configured) {
            // A replica's schema is its primary's, replicated like any change.
            (stored, _) if config.follow.is_some() => (
                match stored {
                    Some(stored) => stored,
                    None => Arc::new(schema::load("built-in schema", schema::DEFAULT_SCHEMA)?),
                },
                None,
            ),
            (Some(stored), Some(wanted)) if stored.source() != wanted.source() => {
                (stored, Some(wanted))
            }
            (Some(stored), _) => (stored, None),
            (None, Some(wanted)) => (wanted.clone(), Some(wanted)),
            (None, None) => {
                let default = Arc::new(schema::load("built-in schema", schema::DEFAULT_SCHEMA)?);
                (default.clone(), Some(default))
            }
        };
        let now = clock.now();
        let engine =
            Arc::new(tokio::task::spawn_blocking(move || load(snapshot, start, now)).await??);
        let applied = Arc::new(tokio::sync::watch::Sender::new(revision));
        let feed = Feed::new(
            config.feed_capacity,
            authzd_core::limits::FEED_BUFFER_BYTES,
            config.watch_memory,
        );
        let (jobs, queue) = std::sync::mpsc::sync_channel(config.write_queue.max(1));
        let jobs = Arc::new(jobs);
        let sequencer = Sequencer {
            store: store.clone(),
            runtime: tokio::runtime::Handle::current(),
            engine: engine.clone(),
            feed: feed.clone(),
            applied: applied.clone(),
            clock: clock.clone(),
            results: Arc::downgrade(&jobs),
            queue_bound: config.write_queue.max(1),
            lanes: Default::default(),
            #[cfg(test)]
            hold: None,
        };
        let thread = std::thread::Builder::new()
            .name("authzd-sequencer".into())
            .spawn(move || sequencer.run(queue))
            .map_err(|e| Error::from(StoreError::Database(Box::new(e))))?;
        let service = Service {
            inner: Arc::new(Inner {
                store,
                engine,
                feed,
                applied,
                jobs,
                sequencer: Mutex::new(Some(thread)),
                clock,
                closing: tokio::sync::watch::Sender::new(false),
                lag: config.store.is_some().then(|| LagTracker::new(revision)),
                config,
            }),
        };
        if let Some(catalog) = install {
            service
                .submit(|reply| Job::Schema {
                    catalog,
                    expected_revision: None,
                    origin: Origin::default(),
                    reply,
                })
                .await?;
        }
        // A replica's expiries are its primary's system writes, replicated.
        if !service.is_replica() {
            tokio::spawn(service.clone().expire());
        }
        if service.is_shared() {
            tokio::spawn(service.clone().follow_store());
        }
        Ok(service)
    }

    /// Whether this server is a read replica following a primary.
    pub fn is_replica(&self) -> bool {
        self.following().is_some()
    }

    /// How this replica follows its primary; `None` on a primary.
    pub fn following(&self) -> Option<&config::Follow> {
        self.inner.config.follow.as_ref()
    }

    /// Whether other nodes write the same store (a shared database): this
    /// node follows their commits.
    pub fn is_shared(&self) -> bool {
        self.inner.config.store.is_some()
    }

    /// On a node of a shared store, how far behind the database it is (as
    /// last measured, at most a poll interval ago); `None` on other nodes.
    pub fn store_lag(&self) -> Option<StoreLag> {
        let lag = self.inner.lag.as_ref()?;
        Some(lag.measure(self.snapshot().revision))
    }

    fn refuse_on_replica(&self) -> Result<(), Error> {
        if self.is_replica() {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    /// The current time, as evaluation sees it.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The current snapshot, without waiting.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.engine.snapshot()
    }

    /// A snapshot that reflects at least `revision`, waiting (at most
    /// [`authzd_core::limits::MAX_REVISION_WAIT`]) for an in-flight write to be applied.
    pub async fn snapshot_at(&self, revision: Revision) -> Result<Arc<Snapshot>, Error> {
        let snapshot = self.snapshot();
        if snapshot.revision >= revision {
            return Ok(snapshot);
        }
        // A client can only know a revision the store committed, and at most
        // one group of writes is between commit and apply; anything further
        // ahead is not a revision this server has produced. A replica's
        // revisions are its primary's, any number of which may be on their
        // way: it waits for the bound.
        let latest = snapshot.revision;
        // On a shared store other nodes commit too: a revision is known
        // if the store holds it, however far this node is behind.
        if self.is_shared() {
            let stored = match self.inner.store.revision().await {
                Ok(stored) => stored,
                Err(StoreError::Unavailable(e)) => {
                    tracing::debug!(error = %e, "at_least_revision beyond the applied revision, and the database is unreachable");
                    return Err(Error::NotApplied {
                        requested: revision,
                        applied: latest,
                        why: "the database cannot be reached",
                    });
                }
                Err(e) => return Err(e.into()),
            };
            if revision > stored {
                return Err(Error::RevisionAhead {
                    requested: revision,
                    latest: stored,
                });
            }
        } else if !self.is_replica()
            && revision.0
                > latest
                    .0
                    .saturating_add(authzd_core::limits::MAX_GROUP_WRITES as u64)
        {
            return Err(Error::RevisionAhead {
                requested: revision,
                latest,
            });
        }
        let mut applied = self.inner.applied.subscribe();
        let reached = tokio::time::timeout(
            authzd_core::limits::MAX_REVISION_WAIT,
            applied.wait_for(|r| *r >= revision),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(self.snapshot()),
            // Committed (the database holds it), not yet applied here.
            _ if self.is_shared() => Err(Error::NotApplied {
                requested: revision,
                applied: self.snapshot().revision,
                why: "this node is still catching up with the database",
            }),
            _ => Err(Error::RevisionAhead {
                requested: revision,
                latest: self.snapshot().revision,
            }),
        }
    }

    /// Plans, commits, applies and publishes one batch of operations, through
    /// the sequencer.
    pub async fn write(
        &self,
        tenant: TenantId,
        operations: Vec<Operation>,
        options: WriteOptions,
    ) -> Result<Revision, Error> {
        self.refuse_on_replica()?;
        self.submit(|reply| Job::Write {
            tenant,
            operations,
            options,
            reply,
        })
        .await
    }

    /// What `operations` would do to `tenant` if written now, planned by
    /// the path [`Service::write`] takes and committed never: no revision
    /// is used and nothing is recorded. The idempotency key is not
    /// consulted (a dry run is never a retry).
    pub async fn what_if(
        &self,
        tenant: TenantId,
        operations: Vec<Operation>,
        options: WriteOptions,
    ) -> Result<WhatIf, Error> {
        self.refuse_on_replica()?;
        let current = self.snapshot();
        let now = self.now();
        self.off_runtime(move || sequencer::what_if(&current, &tenant, operations, &options, now))
            .await
    }

    /// Validates a schema against the catalog's users and, unless `dry_run`,
    /// installs it, on behalf of `origin`.
    pub async fn write_schema(
        &self,
        text: String,
        dry_run: bool,
        expected_revision: Option<Revision>,
        origin: Origin,
    ) -> Result<Revision, Error> {
        self.refuse_on_replica()?;
        let current = self.snapshot();
        let (catalog, current) = self
            .off_runtime(move || -> Result<_, Error> {
                let catalog = schema::load("schema", &text)?;
                if dry_run {
                    check_schema_fits(&catalog, &current)?;
                }
                Ok((catalog, current.revision))
            })
            .await??;
        if dry_run {
            return Ok(current);
        }
        self.submit(|reply| Job::Schema {
            catalog: Arc::new(catalog),
            expected_revision,
            origin,
            reply,
        })
        .await
    }

    /// Runs CPU-heavy or blocking work on tokio's blocking pool, so the
    /// async workers keep answering checks meanwhile.
    pub async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        Ok(tokio::task::spawn_blocking(work).await?)
    }

    /// Hands a job to the sequencer and waits for its answer. Dropping this
    /// future (a client deadline, a disconnect) does not stop the job.
    async fn submit(&self, job: impl FnOnce(Reply) -> Job) -> Result<Revision, Error> {
        let (reply, answer) = oneshot::channel();
        match self.inner.jobs.try_send(job(reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::Busy {
                    capacity: self.inner.config.write_queue,
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(Error::Stopped),
        }
        answer.await.unwrap_or(Err(Error::Stopped))
    }

    /// Records a write refused by the caller's token in the audit trail,
    /// with the sequencer's next commit. Never waits: with the write queue
    /// full the entry is logged instead (the refusal itself stands).
    pub fn deny(&self, entry: AuditEntry) {
        if let Err(e) = self.inner.jobs.try_send(Job::Denied(Box::new(entry))) {
            let (TrySendError::Full(job) | TrySendError::Disconnected(job)) = e;
            if let Job::Denied(entry) = job {
                tracing::warn!(
                    caller = %entry.origin.caller,
                    request_id = %entry.origin.request_id,
                    method = %entry.origin.method,
                    "the write queue is full: a refused write is logged but not in the audit trail"
                );
            }
        }
    }

    /// A page of the audit trail, newest first (see [`Datastore::audit_page`]):
    /// at most `limit` matching entries, having examined at most
    /// [`authzd_core::limits::MAX_AUDIT_SCANNED`].
    pub async fn audit_page(&self, query: AuditQuery, limit: usize) -> Result<AuditPage, Error> {
        // Refusals queued before this call are committed first.
        self.submit(|reply| Job::Flush { reply }).await?;
        let page = self
            .inner
            .store
            .audit_page(query, limit, authzd_core::limits::MAX_AUDIT_SCANNED)
            .await?;
        Ok(page)
    }

    /// Subscribes to a tenant's change sets from `start`. A revision after
    /// the latest committed one is refused (it was never written: progress
    /// events for it would let a subscriber checkpoint past real revisions
    /// later); so is one before the retained changelog.
    pub async fn watch(&self, filter: Filter, start: Start) -> Result<Subscription, Error> {
        let store = &self.inner.store;
        // Read at subscription time, so a revision committed between a
        // client's write reply and its Watch counts as written.
        let oldest = store.oldest_retained().await?;
        let latest = store.revision().await?;
        let after = match start {
            Start::After(after) if after > latest => {
                return Err(WatchError::Ahead {
                    requested: after,
                    latest,
                }
                .into());
            }
            Start::After(after) if oldest.0 > 1 && after.0 < oldest.0 - 1 => {
                return Err(WatchError::TooOld {
                    requested: after,
                    oldest,
                }
                .into());
            }
            Start::After(after) => after,
            // An empty changelog retains nothing to replay.
            Start::OldestRetained if oldest.0 == 0 => latest,
            Start::OldestRetained => Revision(oldest.0 - 1),
        };
        let store = self.inner.store.clone();
        let replay = move |from: Revision, bytes: usize| {
            let store = store.clone();
            async move {
                store
                    .changes_after(
                        from,
                        authzd_core::limits::REPLAY_PAGE,
                        bytes.min(authzd_core::limits::REPLAY_PAGE_BYTES),
                    )
                    .await
                    .map_err(|e| match changelog_error(e) {
                        // Pruning may have overtaken a slow replay: never
                        // skip ahead.
                        Error::Watch(e) => e,
                        Error::Store(e) => {
                            tracing::error!(error = %e, "changelog replay failed");
                            WatchError::Replay
                        }
                        _ => WatchError::Replay,
                    })
            }
        };
        let pacing = Pacing {
            buffer: self.inner.config.subscriber_buffer,
            buffer_bytes: authzd_core::limits::SUBSCRIBER_BUFFER_BYTES,
            piece_bytes: self.inner.config.watch_piece_bytes,
            progress_every: self.inner.config.progress_interval,
        };
        Ok(self.inner.feed.subscribe(filter, after, pacing, replay))
    }

    /// What the Watch streams hold together, against `Config::watch_memory`.
    pub fn watch_held(&self) -> crate::watch::Held {
        self.inner.feed.held()
    }

    /// Whether the server is shutting down.
    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// Ends every subscription, so a graceful shutdown is not held open by
    /// streams that would otherwise never finish, and stops the expiry timer.
    pub fn close(&self) {
        self.inner.feed.close();
        self.inner.closing.send_replace(true);
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Resolves once [`Service::close`] has been called (at once if it has).
    pub async fn closed(&self) {
        let mut closing = self.inner.closing.subscribe();
        let _ = closing.wait_for(|c| *c).await;
    }

    /// After the last request: lets the sequencer finish the writes it has
    /// taken, waits for its thread, and closes the store file, so the data
    /// folder can be opened again at once (by a restart, or a test).
    pub async fn stop(&self) {
        self.close();
        let jobs = SyncSender::clone(&self.inner.jobs);
        let thread = self
            .inner
            .sequencer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let stopped = tokio::task::spawn_blocking(move || {
            // Blocks only while the queue is full, which the sequencer is
            // draining.
            let _ = jobs.send(Job::Stop);
            if let Some(thread) = thread {
                if thread.join().is_err() {
                    tracing::error!("the write sequencer panicked");
                }
            }
        })
        .await;
        if let Err(e) = stopped {
            tracing::error!(error = %e, "stopping the write sequencer failed");
        }
        self.inner.store.close().await;
    }

    /// Follows the other nodes of a shared store: woken by the store when
    /// a revision beyond the cache's is committed (by any node), it lets
    /// the sequencer finish what this node committed, then hands the
    /// changelog entries still missing to the observe path, so cache and
    /// feed follow every node's commits in revision order. Every poll
    /// interval it also reads the database's head, which measures the
    /// node's lag (and finds the database unreachable). A failure (the
    /// database unreachable) is logged and retried after a pause; ends
    /// when the service or the store closes.
    async fn follow_store(self) {
        let mut closing = self.inner.closing.subscribe();
        let every = self
            .inner
            .config
            .store
            .as_ref()
            .map_or(FOLLOW_RETRY, |s| s.options.poll_interval);
        let mut measure = tokio::time::interval(every);
        measure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let applied = self.snapshot().revision;
            let woke = tokio::select! {
                woke = self.inner.store.wait_beyond(applied) => Some(woke),
                _ = measure.tick() => None,
                _ = async { closing.wait_for(|c| *c).await.is_ok() } => return,
            };
            let Some(woke) = woke else {
                self.measure_lag().await;
                continue;
            };
            let followed = match woke {
                Ok(latest) => self.catch_up_with(latest).await.map(|()| latest),
                Err(StoreError::Closed) => return,
                Err(e) => Err(e.into()),
            };
            match followed {
                Ok(latest) => {
                    if let Some(lag) = &self.inner.lag {
                        lag.heard(latest, self.snapshot().revision);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, applied = %self.snapshot().revision, "following the other nodes failed; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(FOLLOW_RETRY) => {}
                        _ = closing.wait_for(|c| *c) => return,
                    }
                }
            }
        }
    }

    /// Reads the database's head and records the node's lag behind it (in
    /// the metrics too).
    async fn measure_lag(&self) {
        let Some(lag) = &self.inner.lag else { return };
        // Bounded: a database that does not answer is an unreachable one.
        let read = tokio::time::timeout(LAG_READ_TIMEOUT, self.inner.store.revision()).await;
        match read {
            Ok(Ok(head)) => lag.heard(head, self.snapshot().revision),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "reading the database's head failed");
                lag.unreachable();
            }
            Err(_) => lag.unreachable(),
        }
        if let Some(measured) = self.store_lag() {
            metrics::store_lag(&measured);
        }
    }

    /// Applies what the store holds beyond the cache, up to `latest`.
    async fn catch_up_with(&self, latest: Revision) -> Result<(), Error> {
        // This node's own commits reach the cache through the sequencer:
        // once it has finished its group, only other nodes' are missing.
        // Only the waiting matters: a flush answered with its group's
        // refusal (a conflict with another node) must not stop the
        // catch-up, which is what lets the next group plan on fresh state.
        if let Err(e) = self.submit(|reply| Job::Flush { reply }).await {
            tracing::debug!(error = %e, "the sequencer's group failed before catching up; catching up anyway");
        }
        loop {
            let applied = self.snapshot().revision;
            if applied >= latest {
                return Ok(());
            }
            let sets = self
                .inner
                .store
                .changes_after(
                    applied,
                    authzd_core::limits::REPLAY_PAGE,
                    authzd_core::limits::REPLAY_PAGE_BYTES,
                )
                .await
                .map_err(changelog_error)?;
            if sets.is_empty() {
                return Ok(());
            }
            self.observe(sets).await?;
        }
    }

    /// The expiry timer: sleeps until the soonest assignment expiry (or
    /// until a write may have changed it), then has the sequencer remove what
    /// has expired with a system write per tenant, so each loss reaches the
    /// feed at its instant with a revision. On a shared store only the node
    /// holding the housekeeping lease does; the others look again every
    /// [`HOUSEKEEPING_RECHECK`] in case the lease passes to them. Checks never wait for it:
    /// evaluation ignores expired assignments by itself.
    async fn expire(self) {
        let mut applied = self.inner.applied.subscribe();
        let mut closing = self.inner.closing.subscribe();
        loop {
            let sleep = match self.snapshot().next_expiry() {
                Some(at) => self.inner.clock.sleep_until(at),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                _ = sleep => {
                    // On a shared store one node sweeps (the one holding
                    // the housekeeping lease); the others apply its writes
                    // as they follow, which moves their next expiry.
                    if !self.inner.store.holds_housekeeping() {
                        tokio::select! {
                            _ = tokio::time::sleep(HOUSEKEEPING_RECHECK) => {}
                            changed = applied.changed() => if changed.is_err() { return },
                            _ = async { closing.wait_for(|c| *c).await.is_ok() } => return,
                        }
                        continue;
                    }
                    if let Err(e) = self.submit(|reply| Job::Expire { reply }).await {
                        tracing::error!(error = %e, "removing expired assignments failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
                changed = applied.changed() => if changed.is_err() { return },
                _ = async { closing.wait_for(|c| *c).await.is_ok() } => return,
            }
        }
    }
}

/// How often a node of a shared store without the housekeeping lease looks
/// again whether it holds it, while an expiry is due.
const HOUSEKEEPING_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a node of a shared store waits for the database's head when
/// measuring its lag before taking the database for unreachable.
const LAG_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The pause before a node of a shared store tries again to follow the
/// others after a failure (the database unreachable).
const FOLLOW_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(Arc::new(e))
    }
}

/// What a client is told of a store failure: whether trying again may help,
/// and nothing of its cause (which the log has).
fn store_message(e: &StoreError) -> &'static str {
    match e {
        StoreError::Conflict { .. } => {
            "the write conflicted with other writers again and again; try again"
        }
        StoreError::Unavailable(_) => "the store is unavailable; try again",
        _ => "storage failure",
    }
}

/// A failed changelog read as the service's error: revisions pruned past
/// the reader's are the feed's `TooOld` (resync from a snapshot), anything
/// else a storage failure.
fn changelog_error(e: StoreError) -> Error {
    match e {
        StoreError::Pruned { after, oldest } => WatchError::TooOld {
            requested: after,
            oldest,
        }
        .into(),
        e => e.into(),
    }
}

/// Refuses a schema that stored data depends on: custom roles naming
/// permissions it lacks, assignments of builtin roles it drops, tenants
/// switching off types it lacks. Linear in the stored data; the message
/// names at most [`authzd_core::limits::MAX_SCHEMA_ERRORS`] of them.
fn check_schema_fits(catalog: &Catalog, snapshot: &Snapshot) -> Result<(), Error> {
    let mut problems = Vec::new();
    let mut more = 0usize;
    let mut note = |problem: String| {
        if problems.len() < authzd_core::limits::MAX_SCHEMA_ERRORS {
            problems.push(problem);
        } else {
            more += 1;
        }
    };
    for (tenant, state) in snapshot.tenants.iter() {
        for role in state.roles.values() {
            for p in engine::unknown_role_permissions(catalog, &role.role) {
                note(format!(
                    "tenant {tenant}: custom role {} uses {p}",
                    role.role.id
                ));
            }
        }
        for key in state.assignments.keys() {
            let custom = state.roles.contains_key(&key.role);
            if !custom && !catalog.roles().contains_key(&key.role) {
                note(format!(
                    "tenant {tenant}: role {} is assigned but not defined",
                    key.role
                ));
            }
        }
        for r in &state.settings.disabled_resources {
            if catalog.resource_mask(r).is_none() {
                note(format!("tenant {tenant}: switches off resource type {r}"));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(EngineError::from(Violation::SchemaLacksStoredData { problems, more }).into())
}

/// Records between two progress lines of a start-up load.
const LOAD_PROGRESS_RECORDS: u64 = 1_000_000;

/// Builds the cache straight from the store's snapshot, a batch at a time,
/// logging progress. Runs on the blocking pool: it waits for each batch
/// there, so the async workers stay free.
fn load(
    mut snapshot: SnapshotStream,
    catalog: Arc<Catalog>,
    now: authzd_core::model::Timestamp,
) -> Result<Engine, Error> {
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Handle::current();
    let revision = snapshot.revision;
    let mut loader = engine::Loader::new(catalog);
    let mut records: u64 = 0;
    while let Some(batch) = runtime.block_on(snapshot.next_batch()) {
        for (tenant, change) in batch? {
            loader.apply(&tenant, &change);
            records += 1;
            if records % LOAD_PROGRESS_RECORDS == 0 {
                tracing::info!(
                    records,
                    elapsed_ms = started.elapsed().as_millis(),
                    "loading the store"
                );
            }
        }
    }
    tracing::info!(
        records,
        elapsed_ms = started.elapsed().as_millis(),
        "store read; computing grants"
    );
    let engine = Engine::with(loader.finish(revision, now));
    tracing::info!(
        records,
        elapsed_ms = started.elapsed().as_millis(),
        "cache built"
    );
    Ok(engine)
}
