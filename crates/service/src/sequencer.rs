//! The sequencer: the one thread that owns the write side of the service.
//!
//! RPC handlers hand it a [`Job`] and wait for the reply on a oneshot; the
//! sequencer runs plan → commit → publish to the cache → publish to the
//! feed → reply, synchronously, in revision order, on its own thread (never
//! a tokio worker). Dropping an RPC's future drops only the reply receiver:
//! a write the sequencer has taken is applied to store, cache and feed, or
//! to none of them, whatever happens to its client.
//!
//! Writes that queue up while a commit is in flight form the next group:
//! each is planned on the state the ones before it leave, and the group is
//! committed as one store transaction (one fsync), each write keeping its
//! own revision and changelog entry. The store is async; the sequencer's
//! thread waits on its calls through the runtime's handle, which is what
//! makes this thread, and no tokio worker, the one that blocks. A write refused by the planner is
//! answered and leaves the others alone. A group holds at most
//! [`authzd_core::limits::MAX_GROUP_WRITES`] writes and about
//! [`authzd_core::limits::MAX_GROUP_BYTES`] of changelog (a single larger write commits
//! alone). Each group's transaction also prunes the changelog to its
//! retention window, so pruning never costs a write an fsync of its own.
//!
//! Must not know protobuf or tonic, and must not be called from async code
//! except through the job queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use tokio::sync::{oneshot, watch};

use super::replica::{Installed, Replicated};
use super::{Error, Origin, WriteOptions, check_schema_fits};
use crate::clock::Clock;
use crate::watch::Feed;
use authzd_core::engine::{self, Engine, Snapshot};
use authzd_core::model::{AuditEntry, AuditKey, AuditOutcome, Change, Revision, TenantId};
use authzd_core::schema::Catalog;
use authzd_store::{CommitOutcome, Datastore, PendingWrite, StoreError};

/// Where a job's answer goes. The receiver may be gone (the client gave
/// up); the job is finished all the same.
pub(super) type Reply = oneshot::Sender<Result<Revision, Error>>;

/// Work for the sequencer.
pub(super) enum Job {
    /// A batch of operations for one tenant.
    Write {
        tenant: TenantId,
        operations: Vec<engine::Operation>,
        options: WriteOptions,
        reply: Reply,
    },
    /// Install a schema (already parsed and validated on its own).
    Schema {
        catalog: Arc<Catalog>,
        expected_revision: Option<Revision>,
        origin: Origin,
        reply: Reply,
    },
    /// Remove every assignment that has expired by now, one system write
    /// per tenant; the reply carries the last revision written.
    Expire { reply: Reply },
    /// Record a write the API refused by token kind or tenant in the audit
    /// trail, with the next commit.
    Denied(Box<AuditEntry>),
    /// Answer once everything queued before has been committed (a reader
    /// of the audit trail sees the refusals recorded before it asked).
    Flush { reply: Reply },
    /// A replica's writes: a primary's committed change sets, applied in
    /// order, each as the revision the primary gave it; the reply carries
    /// the last revision applied. A set that does not follow the one before
    /// is refused with the rest of the job.
    Replicate { sets: Vec<Replicated>, reply: Reply },
    /// Replace store and cache with a primary's snapshot (after finishing
    /// the current group); the reply carries the snapshot's revision.
    Install {
        snapshot: Box<Installed>,
        reply: Reply,
    },
    /// Finish the current group and end the thread.
    Stop,
}

/// What the sequencer owns: the only handle that writes the store, and the
/// only writer of the cache and the feed.
pub(super) struct Sequencer {
    pub(super) store: Arc<dyn Datastore>,
    /// The runtime the store's futures run on, waited on from this thread.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) engine: Arc<Engine>,
    pub(super) feed: Feed,
    pub(super) applied: Arc<watch::Sender<Revision>>,
    pub(super) clock: Arc<dyn Clock>,
}

/// A write that passed planning, with the state it leaves.
struct Admitted {
    write: PendingWrite,
    /// Its changelog entry's size, for the group's byte bound.
    bytes: usize,
    /// The snapshot after it (revision not yet set), which becomes the
    /// group's working state once the write joins the group.
    next: Snapshot,
}

/// How a job of the group will be answered once the group has committed.
enum Answer {
    /// With the revision of the group's write at this index.
    Committed(usize),
    /// With the revision the state had when the job was planned: that of
    /// the group's write at this index, or the group's base if `None` (a
    /// write that changed nothing, or a retry of an earlier one in the
    /// group).
    Unchanged(Option<usize>),
    /// With a revision committed before the group began (a retry).
    Earlier(Revision),
    /// With this refusal, whatever the group's fate.
    Refused(Error),
}

/// The writes being collected for one commit.
struct Group {
    /// The last committed revision when the group began.
    base: Revision,
    /// The snapshot every admitted write leaves, published after the commit.
    working: Snapshot,
    writes: Vec<PendingWrite>,
    bytes: usize,
    /// Each job's reply (none for the sequencer's own expiry writes) and
    /// how to answer it.
    answers: Vec<(Option<Reply>, Answer)>,
    /// Idempotency keys of the group's writes, with their index, so a retry
    /// inside the same group is answered like one after it.
    keys: HashMap<(Option<TenantId>, String), usize>,
    /// Refused writes for the audit trail, committed with the group (at
    /// most [`authzd_core::limits::MAX_GROUP_WRITES`]).
    denied: Vec<AuditEntry>,
}

impl Group {
    fn new(current: &Snapshot) -> Self {
        Group {
            base: current.revision,
            working: current.clone(),
            writes: Vec::new(),
            bytes: 0,
            answers: Vec::new(),
            keys: HashMap::new(),
            denied: Vec::new(),
        }
    }

    /// The revision the working state will have once committed.
    fn revision(&self) -> Revision {
        Revision(self.base.0 + self.writes.len() as u64)
    }

    fn last_write(&self) -> Option<usize> {
        self.writes.len().checked_sub(1)
    }

    /// Whether `bytes` more would take the group past its bounds.
    fn would_overflow(&self, bytes: usize) -> bool {
        !self.writes.is_empty()
            && (self.writes.len() >= authzd_core::limits::MAX_GROUP_WRITES
                || self.bytes + bytes > authzd_core::limits::MAX_GROUP_BYTES)
    }

    fn add(&mut self, admitted: Admitted, reply: Option<Reply>) {
        self.working = admitted.next;
        if let Some(key) = &admitted.write.idempotency_key {
            self.keys.insert(
                (admitted.write.tenant.clone(), key.clone()),
                self.writes.len(),
            );
        }
        self.bytes += admitted.bytes;
        self.answers
            .push((reply, Answer::Committed(self.writes.len())));
        self.writes.push(admitted.write);
    }
}

/// A job's payload, without its reply.
enum Work {
    Write {
        tenant: TenantId,
        operations: Vec<engine::Operation>,
        options: WriteOptions,
    },
    Schema {
        catalog: Arc<Catalog>,
        expected_revision: Option<Revision>,
        origin: Origin,
    },
}

/// What planning a piece of work against the group's state gave.
enum Planned {
    Admitted(Box<Admitted>),
    Answer(Answer),
}

impl Sequencer {
    /// Runs jobs until [`Job::Stop`] or until every sender is gone.
    pub(super) fn run(self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut group = Group::new(&self.engine.snapshot());
            let mut next = Some(first);
            let mut stop = false;
            while let Some(job) = next.take() {
                if let Job::Stop = job {
                    stop = true;
                    break;
                }
                self.take(&mut group, job);
                next = jobs.try_recv().ok();
            }
            self.commit(&mut group);
            if stop {
                break;
            }
        }
        tracing::debug!("write sequencer stopped");
    }

    /// Plans one job into the group (committing the group first if the job
    /// would take it past its bounds).
    fn take(&self, group: &mut Group, job: Job) {
        let (work, reply) = match job {
            Job::Write {
                tenant,
                operations,
                options,
                reply,
            } => {
                // The client gave up before anything happened: doing nothing
                // is one of the two outcomes it must expect, and the cheaper.
                if reply.is_closed() {
                    return;
                }
                tracing::debug!(
                    %tenant,
                    caller = %options.origin.caller,
                    request_id = %options.origin.request_id,
                    "write taken"
                );
                let work = Work::Write {
                    tenant,
                    operations,
                    options,
                };
                (work, reply)
            }
            Job::Schema {
                catalog,
                expected_revision,
                origin,
                reply,
            } => {
                tracing::debug!(caller = %origin.caller, request_id = %origin.request_id, "schema write taken");
                let work = Work::Schema {
                    catalog,
                    expected_revision,
                    origin,
                };
                (work, reply)
            }
            Job::Expire { reply } => return self.expire(group, reply),
            Job::Denied(entry) => return self.deny(group, *entry),
            Job::Flush { reply } => {
                let answer = Answer::Unchanged(group.last_write());
                return group.answers.push((Some(reply), answer));
            }
            Job::Replicate { sets, reply } => return self.replicate(group, sets, reply),
            Job::Install { snapshot, reply } => return self.install(group, *snapshot, reply),
            Job::Stop => return,
        };
        match self.fit(group, |g| self.plan(g, &work)) {
            Planned::Admitted(admitted) => group.add(*admitted, Some(reply)),
            Planned::Answer(answer) => {
                if let (
                    Answer::Refused(e),
                    Work::Write {
                        tenant,
                        operations,
                        options,
                    },
                ) = (&answer, &work)
                {
                    if let Some(entry) = self.denial(tenant, operations, options, e) {
                        self.deny(group, entry);
                    }
                }
                group.answers.push((Some(reply), answer));
            }
        }
    }

    /// The audit entry of a write the actor rules refused, with the rule's
    /// reason code; `None` for any other refusal (bad input, rules of the
    /// model, preconditions), which is not audited.
    fn denial(
        &self,
        tenant: &TenantId,
        operations: &[engine::Operation],
        options: &WriteOptions,
        error: &Error,
    ) -> Option<AuditEntry> {
        let violation = error.violation().filter(|v| v.denies_actor())?;
        let mut entry = AuditEntry {
            key: AuditKey {
                at: self.clock.now(),
                seq: 0,
            },
            tenant: Some(tenant.clone()),
            actor: options.actor.clone(),
            origin: options.origin.clone(),
            concerned: Vec::new(),
            more_concerned: false,
            outcome: AuditOutcome::Denied {
                message: error.to_string(),
                reason: Some(violation.reason().to_owned()),
            },
        };
        entry.concerning(operations.iter().flat_map(engine::Operation::principals));
        Some(entry)
    }

    /// Adds a refusal to the group's audit entries, committing the group
    /// first if it holds as many as it may.
    fn deny(&self, group: &mut Group, entry: AuditEntry) {
        if group.denied.len() >= authzd_core::limits::MAX_GROUP_WRITES {
            self.commit(group);
        }
        group.denied.push(entry);
    }

    /// Plans with `plan` on the group's state; if the result does not fit
    /// the group, commits the group first. A successful commit leaves the
    /// state the plan was made on, so the plan stands; a failed one reverts
    /// the state to the cache's, so the plan is made again.
    fn fit(&self, group: &mut Group, plan: impl Fn(&Group) -> Planned) -> Planned {
        let planned = plan(group);
        let Planned::Admitted(admitted) = &planned else {
            return planned;
        };
        if !group.would_overflow(admitted.bytes) || self.commit(group) {
            return planned;
        }
        plan(group)
    }

    fn plan(&self, group: &Group, work: &Work) -> Planned {
        match work {
            Work::Write {
                tenant,
                operations,
                options,
            } => self.plan_write(group, tenant, operations, options),
            Work::Schema {
                catalog,
                expected_revision,
                origin,
            } => self.plan_schema(group, catalog, *expected_revision, origin),
        }
    }

    fn plan_write(
        &self,
        group: &Group,
        tenant: &TenantId,
        operations: &[engine::Operation],
        options: &WriteOptions,
    ) -> Planned {
        // A retry must get the first attempt's answer even if planning it
        // again would now fail (the subject it created exists) or do nothing.
        if let Some(key) = &options.idempotency_key {
            if let Some(index) = group.keys.get(&(Some(tenant.clone()), key.clone())) {
                return Planned::Answer(Answer::Unchanged(Some(*index)));
            }
            let known = self
                .store
                .idempotent_revision(Some(tenant.clone()), key.clone());
            match self.runtime.block_on(known) {
                Ok(Some(revision)) => return Planned::Answer(Answer::Earlier(revision)),
                Ok(None) => {}
                Err(e) => return Planned::Answer(Answer::Refused(Error::Store(e))),
            }
        }
        if let Err(e) = expect_revision(options.expected_revision, group.revision()) {
            return Planned::Answer(Answer::Refused(e));
        }
        let state = group.working.tenants.get(tenant).map(|t| &**t);
        if let Some(actor) = &options.actor {
            let known = state.is_some_and(|t| t.subjects.contains_key(actor));
            if !known {
                return Planned::Answer(Answer::Refused(Error::UnknownActor {
                    actor: actor.clone(),
                    tenant: tenant.clone(),
                }));
            }
        }
        let now = self.clock.now();
        let planned = match engine::plan(
            &group.working.compiled,
            tenant,
            options.actor.as_ref(),
            state,
            operations,
            now,
        ) {
            Ok(planned) => planned,
            Err(r) => {
                return Planned::Answer(Answer::Refused(Error::Refused {
                    list: "operations",
                    index: r.index,
                    error: r.error,
                }));
            }
        };
        if planned.changes.is_empty() {
            return Planned::Answer(Answer::Unchanged(group.last_write()));
        }
        let write = PendingWrite {
            tenant: Some(tenant.clone()),
            actor: options.actor.clone(),
            committed_at: now,
            changes: planned.changes,
            effects: planned.effects,
            expected_revision: options.expected_revision,
            idempotency_key: options.idempotency_key.clone(),
            origin: options.origin.clone(),
            revision: None,
        };
        let mut next = group.working.clone();
        next.install(tenant.clone(), planned.state);
        admit(write, next)
    }

    fn plan_schema(
        &self,
        group: &Group,
        catalog: &Arc<Catalog>,
        expected_revision: Option<Revision>,
        origin: &Origin,
    ) -> Planned {
        if let Err(e) = expect_revision(expected_revision, group.revision()) {
            return Planned::Answer(Answer::Refused(e));
        }
        if let Err(e) = check_schema_fits(catalog, &group.working) {
            return Planned::Answer(Answer::Refused(e));
        }
        let now = self.clock.now();
        let changes = vec![Change::SchemaWritten(catalog.source().to_string())];
        let mut next = group.working.clone();
        let effects = next.apply_changes(None, &changes, Some(catalog.clone()), now);
        let write = PendingWrite {
            tenant: None,
            actor: None,
            committed_at: now,
            changes,
            effects,
            expected_revision,
            idempotency_key: None,
            origin: origin.clone(),
            revision: None,
        };
        admit(write, next)
    }

    /// Removes what has expired by now in every tenant of the group's
    /// state, each tenant as one system write.
    fn expire(&self, group: &mut Group, reply: Reply) {
        let now = self.clock.now();
        let tenants: Vec<TenantId> = group
            .working
            .tenants
            .iter()
            .filter(|(_, state)| !state.expired(now).is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for tenant in tenants {
            if let Planned::Admitted(admitted) = self.fit(group, |g| plan_expiry(g, &tenant, now)) {
                group.add(*admitted, None);
            }
        }
        let answer = Answer::Unchanged(group.last_write());
        group.answers.push((Some(reply), answer));
    }

    /// Adds a primary's change sets to the group, each checked to follow the
    /// one before and applied to the working state as committed (its
    /// effects are the primary's, so the replica's feed is the primary's).
    fn replicate(&self, group: &mut Group, sets: Vec<Replicated>, reply: Reply) {
        for replicated in sets {
            let planned = self.fit(group, |g| plan_replicated(g, &replicated));
            match planned {
                Planned::Admitted(admitted) => group.add(*admitted, None),
                Planned::Answer(answer) => {
                    group.answers.push((Some(reply), answer));
                    return;
                }
            }
        }
        let answer = Answer::Unchanged(group.last_write());
        group.answers.push((Some(reply), answer));
    }

    /// Commits the group, then replaces store and cache with `snapshot`.
    fn install(&self, group: &mut Group, snapshot: Installed, reply: Reply) {
        self.commit(group);
        let Installed { export, catalog } = snapshot;
        let revision = export.revision;
        let tenants = Arc::new(export.tenants);
        let stored = self.runtime.block_on(self.store.replace_all(
            revision,
            catalog.source().to_string(),
            tenants.clone(),
        ));
        if let Err(e) = stored {
            tracing::error!(error = %e, "installing a snapshot failed; the replica keeps its state");
            send(Some(reply), Err(Error::Store(e)));
            return;
        }
        // The store has let go of its share by now, so this rarely copies.
        let tenants = Arc::unwrap_or_clone(tenants);
        let next = Snapshot::build(catalog, revision, tenants, self.clock.now());
        self.engine.publish(next);
        self.applied.send_replace(revision);
        *group = Group::new(&self.engine.snapshot());
        send(Some(reply), Ok(revision));
    }

    /// Commits the group's writes in one transaction, publishes them to the
    /// cache and the feed, and answers every job of the group. Returns
    /// whether the writes landed; either way the group is empty afterwards,
    /// its working state that of the cache.
    fn commit(&self, group: &mut Group) -> bool {
        let fresh = Group::new(&group.working);
        let finished = std::mem::replace(group, fresh);
        let started = std::time::Instant::now();
        let writes = finished.writes.len();
        let result = if finished.writes.is_empty() && finished.denied.is_empty() {
            Ok(Vec::new())
        } else {
            self.store_group(finished.base, finished.writes, finished.denied)
        };
        let took = started.elapsed();
        let sets = match result {
            Ok(sets) => sets,
            Err(e) => {
                tracing::error!(error = %e, writes, "a write group failed; nothing of it was applied");
                let failure = e.to_string();
                for (reply, answer) in finished.answers {
                    let result = match answer {
                        Answer::Refused(e) => Err(e),
                        Answer::Earlier(r) => Ok(r),
                        Answer::Unchanged(None) => Ok(finished.base),
                        Answer::Committed(_) | Answer::Unchanged(Some(_)) => {
                            Err(Error::Store(StoreError::Database(failure.clone().into())))
                        }
                    };
                    send(reply, result);
                }
                *group = Group::new(&self.engine.snapshot());
                return false;
            }
        };
        let revisions: Vec<Revision> = sets.iter().map(|s| s.revision).collect();
        if let Some(&last) = revisions.last() {
            crate::metrics::commit(sets.len(), took, last.0);
            for tenant in sets.iter().filter_map(|s| s.tenant.as_ref()) {
                if let Some(state) = finished.working.tenants.get(tenant) {
                    crate::metrics::tenant_size(
                        tenant.as_str(),
                        state.subjects.len(),
                        state.assignments.len(),
                    );
                }
            }
            let mut next = finished.working;
            next.revision = last;
            self.engine.publish(next);
            self.applied.send_replace(last);
            tracing::debug!(revision = %last, writes = sets.len(), "committed");
        }
        for set in sets {
            self.feed.publish(Arc::new(set));
        }
        let at = |index: Option<usize>| {
            index
                .and_then(|i| revisions.get(i).copied())
                .unwrap_or(finished.base)
        };
        for (reply, answer) in finished.answers {
            let result = match answer {
                Answer::Committed(i) => Ok(at(Some(i))),
                Answer::Unchanged(i) => Ok(at(i)),
                Answer::Earlier(r) => Ok(r),
                Answer::Refused(e) => Err(e),
            };
            send(reply, result);
        }
        *group = Group::new(&self.engine.snapshot());
        true
    }

    /// Writes the group to the store; on an uncertain commit, learns from the
    /// changelog whether it landed (a transaction lands whole or not at all).
    fn store_group(
        &self,
        base: Revision,
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<authzd_core::model::ChangeSet>, StoreError> {
        let count = writes.len();
        match self.runtime.block_on(self.store.commit_group(writes, denied)) {
            Ok(outcomes) => Ok(outcomes
                .into_iter()
                .filter_map(|o| match o {
                    CommitOutcome::Committed(set) => Some(set),
                    CommitOutcome::Replayed(revision) => {
                        // The sequencer answers retries before planning; a
                        // replay here means a key it did not see.
                        tracing::error!(%revision, "the store replayed a write the sequencer admitted");
                        None
                    }
                })
                .collect()),
            Err(StoreError::CommitUncertain(e)) => {
                tracing::error!(error = %e, "commit outcome unknown; re-reading the changelog");
                let landed = self
                    .runtime
                    .block_on(self.store.changes_after(base, count, usize::MAX))?;
                if landed.len() == count {
                    Ok(landed)
                } else {
                    Err(StoreError::CommitUncertain("the write did not land".into()))
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The system write removing a tenant's expired assignments, if it has any.
fn plan_expiry(group: &Group, tenant: &TenantId, now: authzd_core::model::Timestamp) -> Planned {
    let expired = group
        .working
        .tenants
        .get(tenant)
        .map(|state| state.expired(now))
        .unwrap_or_default();
    if expired.is_empty() {
        return Planned::Answer(Answer::Unchanged(group.last_write()));
    }
    let changes: Vec<Change> = expired.into_iter().map(Change::RoleExpired).collect();
    let mut next = group.working.clone();
    let effects = next.apply_changes(Some(tenant), &changes, None, now);
    let write = PendingWrite {
        tenant: Some(tenant.clone()),
        actor: None,
        committed_at: now,
        changes,
        effects,
        expected_revision: None,
        idempotency_key: None,
        origin: Origin::default(),
        revision: None,
    };
    admit(write, next)
}

/// A primary's change set as the group's next write, if it is the next
/// revision.
fn plan_replicated(group: &Group, replicated: &Replicated) -> Planned {
    let set = &replicated.set;
    let latest = group.revision();
    if set.revision != latest.next() {
        return Planned::Answer(Answer::Refused(Error::OutOfSequence {
            given: set.revision,
            latest,
        }));
    }
    let mut next = group.working.clone();
    next.apply_changes(
        set.tenant.as_ref(),
        &set.changes,
        replicated.catalog.clone(),
        set.committed_at,
    );
    let write = PendingWrite {
        tenant: set.tenant.clone(),
        actor: set.actor.clone(),
        committed_at: set.committed_at,
        changes: set.changes.clone(),
        effects: set.effects.clone(),
        expected_revision: None,
        idempotency_key: None,
        origin: Origin::default(),
        revision: Some(set.revision),
    };
    admit(write, next)
}

/// Wraps a write that passed planning, measuring its changelog entry.
fn admit(write: PendingWrite, next: Snapshot) -> Planned {
    match write.entry_bytes() {
        Ok(bytes) => Planned::Admitted(Box::new(Admitted { write, bytes, next })),
        Err(e) => Planned::Answer(Answer::Refused(Error::Store(e))),
    }
}

/// Answers a job; a client that is gone is no error (its write stands).
fn send(reply: Option<Reply>, result: Result<Revision, Error>) {
    if let Some(reply) = reply {
        let _ = reply.send(result);
    }
}

/// Refuses a write whose client expected another latest revision.
fn expect_revision(expected: Option<Revision>, actual: Revision) -> Result<(), Error> {
    match expected {
        Some(expected) if expected != actual => Err(Error::RevisionMismatch { expected, actual }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;
    use crate::clock::SystemClock;
    use authzd_core::model::{Subject, SubjectId, SubjectKind, SubjectStatus};
    use authzd_core::schema;
    use authzd_store::faulty::{Fault, Faulty};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Answers of the jobs handed to a sequencer.
    type Answers = Vec<oneshot::Receiver<Result<Revision, Error>>>;

    /// A sequencer over `store`, with an empty cache at the store's revision.
    fn sequencer(
        runtime: &tokio::runtime::Runtime,
        store: Arc<dyn Datastore>,
    ) -> Result<Sequencer, Box<dyn std::error::Error>> {
        let catalog = Arc::new(schema::load("built-in", schema::DEFAULT_SCHEMA)?);
        let revision = runtime.block_on(store.revision())?;
        let engine = Arc::new(Engine::new(
            catalog,
            revision,
            vec![],
            authzd_core::model::Timestamp::now(),
        ));
        Ok(Sequencer {
            store,
            runtime: runtime.handle().clone(),
            engine,
            feed: Feed::new(16, 1 << 20),
            applied: Arc::new(watch::Sender::new(revision)),
            clock: Arc::new(SystemClock),
        })
    }

    /// Runs `sequencer` on one subject creation per name in `names`, all
    /// queued before it starts; returns their answers.
    fn run_queued(
        sequencer: Sequencer,
        names: &[&str],
    ) -> Result<Vec<Result<Revision, Error>>, Box<dyn std::error::Error>> {
        let (jobs, queue) = sync_channel(names.len() + 1);
        let mut answers: Answers = Vec::new();
        for name in names {
            let (reply, answer) = oneshot::channel();
            let subject = Subject {
                id: SubjectId::try_from(*name)?,
                kind: SubjectKind::User,
                status: SubjectStatus::Active,
                attributes: Default::default(),
                home_scope: None,
            };
            jobs.send(Job::Write {
                tenant: TenantId::try_from("t")?,
                operations: vec![engine::Operation::CreateSubject(subject)],
                options: WriteOptions::default(),
                reply,
            })?;
            answers.push(answer);
        }
        jobs.send(Job::Stop)?;
        sequencer.run(queue);
        answers
            .into_iter()
            .map(|a| Ok(a.blocking_recv()?))
            .collect()
    }

    /// Writes that queue up while the sequencer is busy are committed in
    /// one transaction: ten queued writes cost the store exactly one
    /// commit, yet each gets its own revision, in order.
    #[test]
    fn queued_writes_share_one_commit() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = Faulty::new(runtime.block_on(authzd_store_redb::open(dir.path()))?);
        let solo = run_queued(sequencer(&runtime, store.clone())?, &["solo"])?;
        assert_eq!(
            solo.into_iter().collect::<Result<Vec<_>, _>>()?,
            vec![Revision(1)]
        );
        assert_eq!(store.commits(), 1);
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let revisions = run_queued(sequencer(&runtime, store.clone())?, &names)?;
        let revisions = revisions.into_iter().collect::<Result<Vec<_>, _>>()?;
        assert_eq!(revisions, (2..=11).map(Revision).collect::<Vec<_>>());
        assert_eq!(store.commits(), 2, "ten queued writes, one commit");
        Ok(())
    }

    /// A commit the store fails, or loses before its fsync, is answered
    /// with an error and leaves the cache and the applied revision as they
    /// were; one that landed but whose acknowledgement was lost is found in
    /// the changelog and answered, cached and published as committed.
    #[test]
    fn a_failed_commit_leaves_the_cache_alone() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = Faulty::new(runtime.block_on(authzd_store_redb::open(dir.path()))?);
        for fault in [Fault::FailCommit, Fault::LoseCommit] {
            store.arm(fault);
            let sequencer = sequencer(&runtime, store.clone())?;
            let (engine, applied) = (sequencer.engine.clone(), sequencer.applied.clone());
            let answers = run_queued(sequencer, &["a", "b"])?;
            assert!(
                answers.iter().all(|a| matches!(a, Err(Error::Store(_)))),
                "{fault:?}"
            );
            assert_eq!(engine.revision(), Revision(0), "{fault:?}");
            assert_eq!(*applied.borrow(), Revision(0), "{fault:?}");
            assert_eq!(runtime.block_on(store.revision())?, Revision(0));
            store.heal();
        }
        store.arm(Fault::FailAfterCommit);
        let sequencer = sequencer(&runtime, store.clone())?;
        let (engine, applied) = (sequencer.engine.clone(), sequencer.applied.clone());
        let answers = run_queued(sequencer, &["a", "b"])?;
        let revisions = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
        assert_eq!(revisions, vec![Revision(1), Revision(2)]);
        assert_eq!(engine.revision(), Revision(2));
        assert_eq!(*applied.borrow(), Revision(2));
        Ok(())
    }
}
