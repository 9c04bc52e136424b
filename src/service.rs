//! One async façade over store, engine and feed: the write path, reads at a
//! revision, schema changes and subscriptions.
//!
//! The write path is the one place that orders things: under the write gate
//! it plans against the current snapshot, commits to redb (blocking work on
//! `spawn_blocking`), applies the committed change set to the cache,
//! publishes it to the feed, and only then replies. A failed commit leaves
//! cache and feed untouched. Reads never take the gate. Must not know about
//! protobuf or tonic.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, watch};

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::engine::{self, Engine, EngineError, Operation, Snapshot};
use crate::model::{Change, Revision, SubjectId, TenantId, Timestamp};
use crate::schema::{self, Catalog, SchemaError};
use crate::store::{CommitOutcome, Loaded, PendingWrite, Store, StoreError};
use crate::watch::{Event, Feed, Filter, Pacing, WatchError};

/// Why the service refused or failed a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The subscription could not start or ended early.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The store failed; details are logged, not returned.
    #[error("storage failure")]
    Store(#[from] StoreError),
    /// A blocking task died.
    #[error("internal task failure")]
    Task(#[from] tokio::task::JoinError),
}

/// A write's options besides its operations.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// On whose behalf; `None` for a system write.
    pub actor: Option<SubjectId>,
    /// Fail unless the latest revision is exactly this one.
    pub expected_revision: Option<Revision>,
    /// Makes a retry return the first attempt's revision.
    pub idempotency_key: Option<String>,
}

/// The running service. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    engine: Engine,
    /// Held across plan → commit → apply → publish, so writes are applied in
    /// revision order and each plans against the state it commits onto.
    gate: Mutex<()>,
    feed: Feed,
    /// The last revision applied to the cache, for `at_least_revision` waits.
    applied: watch::Sender<Revision>,
    /// What "now" is for evaluation, commit times and the expiry timer.
    clock: Arc<dyn Clock>,
    /// Flips to true at shutdown: background tasks end.
    closing: watch::Sender<bool>,
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
        let dir = config.data_dir.clone();
        let store = Arc::new(tokio::task::spawn_blocking(move || Store::open(&dir)).await??);
        let loader = store.clone();
        let loaded = tokio::task::spawn_blocking(move || loader.load()).await??;
        let configured = match &config.schema {
            Some(path) => Some(Arc::new(schema::load_file(path)?)),
            None => None,
        };
        let stored = match &loaded.schema {
            Some(text) => Some(Arc::new(schema::load("stored schema", text)?)),
            None => None,
        };
        // The stored schema is what the stored data was validated against;
        // a different configured one is installed through the write path,
        // which checks it against that data first.
        let (start, install) = match (stored, configured) {
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
        let revision = loaded.revision;
        let engine = Engine::new(start, revision, tenant_changes(loaded), clock.now());
        let (applied, _) = watch::channel(revision);
        let service = Service {
            inner: Arc::new(Inner {
                store,
                engine,
                gate: Mutex::new(()),
                feed: Feed::new(config.feed_capacity),
                applied,
                clock,
                closing: watch::Sender::new(false),
                config,
            }),
        };
        if let Some(catalog) = install {
            service.install_schema(catalog, None).await?;
        }
        tokio::spawn(service.clone().expire());
        Ok(service)
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
    /// [`config::MAX_REVISION_WAIT`]) for an in-flight write to be applied.
    pub async fn snapshot_at(&self, revision: Revision) -> Result<Arc<Snapshot>, Error> {
        let snapshot = self.snapshot();
        if snapshot.revision >= revision {
            return Ok(snapshot);
        }
        // A client can only know a revision the store committed, and at most
        // one write is between commit and apply; anything further ahead is
        // not a revision this server has produced.
        let latest = snapshot.revision;
        if revision > latest.next() {
            return Err(Error::RevisionAhead {
                requested: revision,
                latest,
            });
        }
        let mut applied = self.inner.applied.subscribe();
        let reached = tokio::time::timeout(
            config::MAX_REVISION_WAIT,
            applied.wait_for(|r| *r >= revision),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(self.snapshot()),
            _ => Err(Error::RevisionAhead {
                requested: revision,
                latest: self.snapshot().revision,
            }),
        }
    }

    /// Plans, commits, applies and publishes one batch of operations.
    pub async fn write(
        &self,
        tenant: TenantId,
        operations: Vec<Operation>,
        options: WriteOptions,
    ) -> Result<Revision, Error> {
        let _gate = self.inner.gate.lock().await;
        // A retry must get the first attempt's answer even if planning it
        // again would now fail (the subject it created exists) or do nothing.
        if let Some(key) = &options.idempotency_key {
            let (store, tenant, key) = (self.inner.store.clone(), tenant.clone(), key.clone());
            let first =
                tokio::task::spawn_blocking(move || store.idempotent_revision(Some(&tenant), &key))
                    .await??;
            if let Some(revision) = first {
                return Ok(revision);
            }
        }
        let snapshot = self.snapshot();
        let state = snapshot.tenants.get(&tenant).map(|t| &**t);
        let now = self.now();
        if let Some(actor) = &options.actor {
            let known = state.is_some_and(|t| t.subjects.contains_key(actor));
            if !known {
                return Err(Error::InvalidArgument {
                    field: "options.actor".into(),
                    reason: format!("subject {actor:?} does not exist in tenant {tenant:?}"),
                });
            }
        }
        let changes = engine::plan(
            &snapshot.compiled,
            &tenant,
            options.actor.as_ref(),
            state,
            &operations,
            now,
        )
        .map_err(|r| Error::Refused {
            list: "operations",
            index: r.index,
            error: r.error,
        })?;
        self.commit(Some(tenant), changes, options, None).await
    }

    /// Validates a schema against the catalog's users and, unless `dry_run`,
    /// installs it.
    pub async fn write_schema(
        &self,
        text: &str,
        dry_run: bool,
        expected_revision: Option<Revision>,
    ) -> Result<Revision, Error> {
        let catalog = schema::load("schema", text)?;
        if dry_run {
            self.check_schema_fits(&catalog)?;
            return Ok(self.snapshot().revision);
        }
        self.install_schema(Arc::new(catalog), expected_revision)
            .await
    }

    async fn install_schema(
        &self,
        catalog: Arc<Catalog>,
        expected_revision: Option<Revision>,
    ) -> Result<Revision, Error> {
        let _gate = self.inner.gate.lock().await;
        self.check_schema_fits(&catalog)?;
        let changes = vec![Change::SchemaWritten(catalog.source().to_string())];
        let options = WriteOptions {
            expected_revision,
            ..WriteOptions::default()
        };
        self.commit(None, changes, options, Some(catalog)).await
    }

    /// Refuses a schema that stored data depends on: custom roles naming
    /// permissions it lacks, assignments of builtin roles it drops, tenants
    /// switching off types it lacks.
    fn check_schema_fits(&self, catalog: &Catalog) -> Result<(), Error> {
        let snapshot = self.snapshot();
        let mut problems = Vec::new();
        for (tenant, state) in snapshot.tenants.iter() {
            for role in state.roles.values() {
                for p in engine::unknown_role_permissions(catalog, &role.role) {
                    problems.push(format!(
                        "tenant {tenant}: custom role {} uses {p}",
                        role.role.id
                    ));
                }
            }
            for key in state.assignments.keys() {
                let custom = state.roles.contains_key(&key.role);
                if !custom && !catalog.roles().contains_key(&key.role) {
                    problems.push(format!(
                        "tenant {tenant}: role {} is assigned but not defined",
                        key.role
                    ));
                }
            }
            for r in &state.settings.disabled_resources {
                if catalog.resource_mask(r).is_none() {
                    problems.push(format!("tenant {tenant}: switches off resource type {r}"));
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.truncate(20);
        Err(EngineError::FailedPrecondition(format!(
            "the schema lacks what stored data uses: {}",
            problems.join("; ")
        ))
        .into())
    }

    /// Under the gate (the caller holds it): prepares the next snapshot and
    /// the write's effects, commits changes and effects in one transaction,
    /// then publishes the snapshot and the change set.
    async fn commit(
        &self,
        tenant: Option<TenantId>,
        changes: Vec<Change>,
        options: WriteOptions,
        catalog: Option<Arc<Catalog>>,
    ) -> Result<Revision, Error> {
        let current = self.snapshot().revision;
        if changes.is_empty() {
            // Nothing to change: still honour the concurrency check.
            return match options.expected_revision {
                Some(expected) if expected != current => Err(Error::RevisionMismatch {
                    expected,
                    actual: current,
                }),
                _ => Ok(current),
            };
        }
        let at = self.now();
        let prepared = self
            .inner
            .engine
            .prepare(tenant.as_ref(), &changes, catalog, at);
        let write = PendingWrite {
            tenant,
            actor: options.actor,
            committed_at: at,
            changes,
            effects: prepared.effects.clone(),
            expected_revision: options.expected_revision,
            idempotency_key: options.idempotency_key,
        };
        let store = self.inner.store.clone();
        let outcome = match tokio::task::spawn_blocking(move || store.commit(&write)).await? {
            Ok(outcome) => outcome,
            Err(StoreError::RevisionMismatch { expected, actual }) => {
                return Err(Error::RevisionMismatch { expected, actual });
            }
            Err(StoreError::CommitUncertain(e)) => {
                tracing::error!(error = %e, "commit outcome unknown; re-reading the changelog");
                self.recover_uncertain(current).await?
            }
            Err(other) => return Err(Error::Store(other)),
        };
        match outcome {
            CommitOutcome::Replayed(revision) => Ok(revision),
            CommitOutcome::Committed(set) => {
                let revision = set.revision;
                self.inner.engine.publish(prepared, revision);
                self.inner.applied.send_replace(revision);
                self.inner.feed.publish(Arc::new(set));
                tracing::debug!(%revision, "committed");
                self.prune(revision).await;
                Ok(revision)
            }
        }
    }

    /// Keeps the changelog to the retention window, pruning in steps so the
    /// cost is spread over many writes. A failure only delays pruning.
    async fn prune(&self, revision: Revision) {
        const STEP: u64 = 64;
        let retain = self.inner.config.retain_revisions.max(1);
        if revision.0 <= retain || (retain >= STEP && revision.0 % STEP != 0) {
            return;
        }
        let keep_from = Revision(revision.0 - retain + 1);
        let store = self.inner.store.clone();
        match tokio::task::spawn_blocking(move || store.prune(keep_from)).await {
            Ok(Ok(removed)) if removed > 0 => {
                tracing::debug!(removed, %keep_from, "changelog pruned")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "pruning the changelog failed"),
            Err(e) => tracing::warn!(error = %e, "pruning the changelog failed"),
        }
    }

    /// After a commit whose outcome the store could not tell: if the write
    /// landed, it is the change set right after `current`, and the cache and
    /// feed must learn of it like any other; if not, the write failed.
    async fn recover_uncertain(&self, current: Revision) -> Result<CommitOutcome, Error> {
        let store = self.inner.store.clone();
        let landed = tokio::task::spawn_blocking(move || store.changes_after(current, 1)).await??;
        match landed.into_iter().next() {
            Some(set) => Ok(CommitOutcome::Committed(set)),
            None => Err(Error::Store(StoreError::CommitUncertain(
                "the write did not land".into(),
            ))),
        }
    }

    /// Subscribes to a tenant's change sets after `after`.
    pub async fn watch(
        &self,
        filter: Filter,
        after: Revision,
    ) -> Result<mpsc::Receiver<Result<Event, WatchError>>, Error> {
        let store = self.inner.store.clone();
        let oldest = tokio::task::spawn_blocking(move || store.oldest_retained()).await??;
        if oldest.0 > 1 && after.0 < oldest.0 - 1 {
            return Err(WatchError::TooOld {
                requested: after,
                oldest,
            }
            .into());
        }
        let store = self.inner.store.clone();
        let replay = move |from: Revision| {
            let store = store.clone();
            async move {
                let page = tokio::task::spawn_blocking(move || {
                    store.changes_after(from, config::REPLAY_PAGE)
                })
                .await
                .map_err(|_| WatchError::Replay)?
                .map_err(|e| {
                    tracing::error!(error = %e, "changelog replay failed");
                    WatchError::Replay
                })?;
                // Pruning may have overtaken a slow replay: never skip ahead.
                match page.first() {
                    Some(first) if first.revision != from.next() => Err(WatchError::TooOld {
                        requested: from,
                        oldest: first.revision,
                    }),
                    _ => Ok(page),
                }
            }
        };
        let pacing = Pacing {
            buffer: self.inner.config.subscriber_buffer,
            progress_every: self.inner.config.progress_interval,
        };
        Ok(self.inner.feed.subscribe(filter, after, pacing, replay))
    }

    /// Ends every subscription, so a graceful shutdown is not held open by
    /// streams that would otherwise never finish, and stops the expiry timer.
    pub fn close(&self) {
        self.inner.feed.close();
        self.inner.closing.send_replace(true);
    }

    /// The expiry timer: sleeps until the soonest assignment expiry (or
    /// until a write may have changed it), then removes what has expired
    /// with a system write per tenant, so each loss reaches the feed at its
    /// instant with a revision. Checks never wait for it: evaluation
    /// ignores expired assignments by itself.
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
                    if let Err(e) = self.remove_expired().await {
                        tracing::error!(error = %e, "removing expired assignments failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
                changed = applied.changed() => if changed.is_err() { return },
                _ = async { closing.wait_for(|c| *c).await.is_ok() } => return,
            }
        }
    }

    async fn remove_expired(&self) -> Result<(), Error> {
        let _gate = self.inner.gate.lock().await;
        let now = self.now();
        let snapshot = self.snapshot();
        for (tenant, state) in snapshot.tenants.iter() {
            let expired = state.expired(now);
            if expired.is_empty() {
                continue;
            }
            let changes = expired.into_iter().map(Change::RoleExpired).collect();
            self.commit(Some(tenant.clone()), changes, WriteOptions::default(), None)
                .await?;
        }
        Ok(())
    }
}

/// Expresses each stored tenant as the changes that would recreate it.
fn tenant_changes(loaded: Loaded) -> Vec<(TenantId, Vec<Change>)> {
    loaded
        .tenants
        .into_iter()
        .map(|t| {
            let changes = std::iter::once(Change::TenantPut(t.settings))
                .chain(t.scopes.into_iter().map(Change::ScopePut))
                .chain(t.subjects.into_iter().map(Change::SubjectPut))
                .chain(t.groups.into_iter().map(Change::GroupPut))
                .chain(t.roles.into_iter().map(Change::RolePut))
                .chain(t.memberships.into_iter().map(Change::MemberAdded))
                .chain(t.assignments.into_iter().map(Change::RoleAssigned))
                .collect();
            (t.id, changes)
        })
        .collect()
}
