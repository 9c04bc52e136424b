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
//! The group is committed on the revision it was planned on. When another
//! writer of a shared store committed first, the store refuses the group
//! (a conflict): the sequencer then applies what the other writer
//! committed to cache and feed — the *observe* path, which stores nothing
//! — and plans every job of the group again on the new state before
//! committing it, so each write is planned on exactly the state its
//! predecessor left. [`Job::Follow`] takes the same path for another
//! node's commits (read from the store when the node learns of them), and
//! [`Job::Observe`] for change sets a caller learned of; a commit of
//! another node to tenants the open group has not written is applied
//! beside the group, whose base moves past it, rather than cutting the
//! group short.
//!
//! Must not know protobuf or tonic, and must not be called from async code
//! except through the job queue.

mod lanes;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::replica::{Installed, Replicated};
use super::{Error, Origin, WriteOptions, check_schema_fits};
use crate::clock::Clock;
use crate::watch::Feed;
use authzd_core::engine::{self, Engine, Snapshot, TenantState};
use authzd_core::limits::MAX_WHAT_IF_REFUSALS;
use authzd_core::model::{AuditEntry, AuditKey, AuditOutcome, Change, Revision, TenantId};
use authzd_core::schema::Catalog;
use authzd_store::{CommitId, CommitOutcome, Datastore, PendingWrite, StoreError};

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
    /// Apply to cache and feed what other writers of this store committed,
    /// up to `through` (beside the group being gathered while they wrote
    /// other tenants, after finishing it from the first that did not), as
    /// the store's [`Datastore::followed_changes`] gives it; the reply
    /// carries the cache's revision. How a node of a shared store follows the others:
    /// one hop to this thread, with the entries its store's notification
    /// carried in hand.
    Follow { through: Revision, reply: Reply },
    /// Change sets another writer committed to this store, applied to cache
    /// and feed without storing them (after finishing the current group):
    /// those at or below the cache's revision are skipped, the rest must
    /// follow it without a gap. The reply carries the cache's revision.
    Observe { sets: Vec<Replicated>, reply: Reply },
    /// Replace store and cache with a primary's snapshot (after finishing
    /// the current group); the reply carries the snapshot's revision.
    Install {
        snapshot: Box<Installed>,
        reply: Reply,
    },
    /// Finish the current group and end the thread.
    Stop,
    /// A tenant's lane's plans, from its planner thread (never sent by
    /// anyone else).
    Planned(Box<lanes::Drafts>),
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
    /// The sequencer's own queue, where planner threads hand their plans
    /// back; weak, so that the thread ends once every other sender is gone.
    pub(super) results: Weak<SyncSender<Job>>,
    /// Most jobs held in the tenants' lanes and behind jobs that need
    /// every tenant, together (a quarter of it per tenant).
    pub(super) queue_bound: usize,
    /// The tenants' lanes.
    pub(super) lanes: RefCell<lanes::Lanes>,
    /// Called on a planner thread before it plans a batch of the tenant:
    /// lets a test hold one tenant's planning open.
    #[cfg(test)]
    pub(super) hold: Option<Hold>,
}

/// A test's hook on a planner thread (see [`Sequencer::hold`]).
#[cfg(test)]
pub(super) type Hold = Arc<dyn Fn(&TenantId) + Send + Sync>;

/// A write that passed planning, with the state it leaves.
struct Admitted {
    write: PendingWrite,
    /// Its changelog entry's size, for the group's byte bound.
    bytes: usize,
    /// The snapshot after it (revision not yet set), which becomes the
    /// group's working state once the write joins the group.
    next: Snapshot,
}

/// Most times one group is planned again after conflicts with other
/// writers before its jobs are answered with the conflict. From the
/// [`RESERVE_AFTER`]th on, the group is planned under a reservation of its
/// tenants ([`Datastore::reserve`]), which no other writer can beat: only a
/// store that reserves nothing under a storm of writes exhausts it.
const MAX_REPLANS: usize = 16;

/// After how many conflicts in a row a group is planned again under a
/// reservation of its tenants rather than optimistically: optimistic
/// planning can lose the race to other nodes' writers to the same tenant
/// every time.
const RESERVE_AFTER: usize = 2;

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

/// How a job is taken into a new group when its group met a conflict.
enum Retake {
    /// Planned again (boxed: a write's request is far larger than the
    /// other variants).
    Work(Box<Work>),
    /// Expiry recomputed on the new state.
    Expire,
    /// Answered with the new group's state.
    Flush,
    /// Not at all: its answer is the conflict (a replica's copies, whose
    /// revisions the primary chose), or it is part of a job retaken whole
    /// (an expiry's writes).
    Never,
}

/// A job of the group: where its answer goes, what the answer will be, and
/// how to take it again.
struct Taken {
    reply: Option<Reply>,
    answer: Answer,
    retake: Retake,
}

/// A refused write for the audit trail.
struct Denial {
    entry: AuditEntry,
    /// Made by the sequencer from a refused job (which makes it again when
    /// retaken), rather than handed in by the API.
    derived: bool,
}

/// The writes being collected for one commit.
struct Group {
    /// The last committed revision when the group began.
    base: Revision,
    /// The snapshot every admitted write leaves, published after the commit.
    working: Snapshot,
    writes: Vec<PendingWrite>,
    bytes: usize,
    /// Each job's reply (none for the sequencer's own expiry writes), how
    /// to answer it, and how to take it again.
    answers: Vec<Taken>,
    /// Idempotency keys of the group's writes, with their index, so a retry
    /// inside the same group is answered like one after it.
    keys: HashMap<(Option<TenantId>, String), usize>,
    /// Refused writes for the audit trail, committed with the group (at
    /// most [`authzd_core::limits::MAX_GROUP_WRITES`]).
    denied: Vec<Denial>,
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

    /// Whether the group has nothing to commit and no job to answer.
    fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.answers.is_empty() && self.denied.is_empty()
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

    fn add(&mut self, admitted: Admitted, reply: Option<Reply>, retake: Retake) {
        self.working = admitted.next;
        if let Some(key) = &admitted.write.idempotency_key {
            self.keys.insert(
                (admitted.write.tenant.clone(), key.clone()),
                self.writes.len(),
            );
        }
        self.bytes += admitted.bytes;
        let answer = Answer::Committed(self.writes.len());
        self.answer(reply, answer, retake);
        self.writes.push(admitted.write);
    }

    fn answer(&mut self, reply: Option<Reply>, answer: Answer, retake: Retake) {
        self.answers.push(Taken {
            reply,
            answer,
            retake,
        });
    }
}

/// How a group's commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// Committed on the state its jobs were planned on.
    AsPlanned,
    /// Committed after conflicts made it plan its jobs again on a newer
    /// state.
    Replanned,
    /// Not committed; its jobs were answered with the failure.
    Failed,
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
    ///
    /// Jobs are taken while the queue has some; when it runs dry, the group
    /// commits, once the plans in flight came back (for at most as long as
    /// the last commit took: [`Sequencer::plans_due`]). Writes are planned
    /// in their tenants' lanes (see [`lanes`]) meanwhile, and join the
    /// group as their plans come back.
    pub(super) fn run(self, jobs: Receiver<Job>) {
        let mut group = Group::new(&self.engine.snapshot());
        // Since when the group, ready to commit, waits for plans in flight.
        let mut waiting: Option<Instant> = None;
        loop {
            let job = match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Empty) => {
                    // The lanes plan while the group commits.
                    if self.dispatch_ready(&mut group) {
                        continue;
                    }
                    if self.releasable() {
                        if self.release(&mut group) {
                            break;
                        }
                        continue;
                    }
                    if group.is_empty() {
                        waiting = None;
                        jobs.recv().ok()
                    } else {
                        let since = *waiting.get_or_insert_with(Instant::now);
                        match self.plans_due(since).map(|left| jobs.recv_timeout(left)) {
                            Some(Ok(job)) => Some(job),
                            Some(Err(RecvTimeoutError::Timeout)) => continue,
                            Some(Err(RecvTimeoutError::Disconnected)) => None,
                            None => {
                                waiting = None;
                                self.commit(&mut group);
                                continue;
                            }
                        }
                    }
                }
                Err(TryRecvError::Disconnected) => None,
            };
            let Some(job) = job else { break };
            if self.receive(&mut group, job) {
                break;
            }
        }
        self.commit(&mut group);
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
            Job::Denied(entry) => {
                let denial = Denial {
                    entry: *entry,
                    derived: false,
                };
                return self.deny(group, denial);
            }
            Job::Flush { reply } => return flush(group, reply),
            Job::Replicate { sets, reply } => return self.replicate(group, sets, reply),
            Job::Observe { sets, reply } => return self.observe(group, sets, reply),
            Job::Follow { through, reply } => return self.follow(group, through, reply),
            Job::Install { snapshot, reply } => return self.install(group, *snapshot, reply),
            Job::Planned(drafts) => return self.integrate(group, *drafts),
            Job::Stop => return,
        };
        self.take_work(group, work, reply);
    }

    /// Plans a write or a schema change into the group and records how to
    /// answer it (and the audit entry of a refusal by the actor rules).
    fn take_work(&self, group: &mut Group, work: Work, reply: Reply) {
        match self.fit(group, |g| self.plan(g, &work)) {
            Planned::Admitted(admitted) => {
                group.add(*admitted, Some(reply), Retake::Work(Box::new(work)))
            }
            Planned::Answer(answer) => self.answer_work(group, work, reply, answer),
        }
    }

    /// Records how to answer a write or schema change that commits nothing
    /// (and the audit entry of a refusal by the actor rules).
    fn answer_work(&self, group: &mut Group, work: Work, reply: Reply, answer: Answer) {
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
                let denial = Denial {
                    entry,
                    derived: true,
                };
                self.deny(group, denial);
            }
        }
        group.answer(Some(reply), answer, Retake::Work(Box::new(work)));
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
    fn deny(&self, group: &mut Group, denial: Denial) {
        if group.denied.len() >= authzd_core::limits::MAX_GROUP_WRITES {
            self.commit(group);
        }
        group.denied.push(denial);
    }

    /// Plans with `plan` on the group's state; if the result does not fit
    /// the group, commits the group first. A commit as planned leaves the
    /// state the plan was made on, so the plan stands; a failed or
    /// re-planned one leaves another state, so the plan is made again.
    fn fit(&self, group: &mut Group, plan: impl Fn(&Group) -> Planned) -> Planned {
        let planned = plan(group);
        let Planned::Admitted(admitted) = &planned else {
            return planned;
        };
        if !group.would_overflow(admitted.bytes) || self.commit(group) == Landed::AsPlanned {
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
            if let Some(answer) = self.known_key(group, tenant, key) {
                return Planned::Answer(answer);
            }
        }
        let mut next = group.working.clone();
        let drafted = draft_write(
            &*self.store,
            &mut next,
            group.revision(),
            tenant,
            operations,
            options,
            self.clock.now(),
        );
        settled(group, drafted, next)
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
            prepared: None,
        };
        admit(&*self.store, write, next)
    }

    /// Removes what has expired by now in every tenant of the group's
    /// state, each tenant as one system write: at once for a tenant whose
    /// lane is idle, after the writes waiting in it otherwise (the reply
    /// then waits for those lanes).
    fn expire(&self, group: &mut Group, reply: Reply) {
        let now = self.clock.now();
        let tenants: Vec<TenantId> = group
            .working
            .tenants
            .iter()
            .filter(|(_, state)| !state.expired(now).is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let mut busy = Vec::new();
        for tenant in tenants {
            if self.lanes.borrow().busy(&tenant) {
                busy.push(tenant);
                continue;
            }
            let plan = |g: &Group| {
                let mut next = g.working.clone();
                let drafted = draft_expiry(&*self.store, &mut next, &tenant, now);
                settled(g, drafted, next)
            };
            if let Planned::Admitted(admitted) = self.fit(group, plan) {
                group.add(*admitted, None, Retake::Never);
            }
        }
        if busy.is_empty() {
            let answer = Answer::Unchanged(group.last_write());
            group.answer(Some(reply), answer, Retake::Expire);
            return;
        }
        let mut lanes = self.lanes.borrow_mut();
        let round = lanes.open_round(reply, busy.len());
        for tenant in busy {
            lanes.push(tenant, lanes::Lead::Expire { round });
        }
    }

    /// Adds a primary's change sets to the group, each checked to follow the
    /// one before and applied to the working state as committed (its
    /// effects are the primary's, so the replica's feed is the primary's).
    fn replicate(&self, group: &mut Group, sets: Vec<Replicated>, reply: Reply) {
        for replicated in sets {
            let planned = self.fit(group, |g| plan_replicated(&*self.store, g, &replicated));
            match planned {
                Planned::Admitted(admitted) => group.add(*admitted, None, Retake::Never),
                Planned::Answer(answer) => {
                    group.answer(Some(reply), answer, Retake::Never);
                    return;
                }
            }
        }
        let answer = Answer::Unchanged(group.last_write());
        group.answer(Some(reply), answer, Retake::Never);
    }

    /// Commits the group, then applies another writer's change sets to
    /// cache and feed.
    fn observe(&self, group: &mut Group, sets: Vec<Replicated>, reply: Reply) {
        self.commit(group);
        let result = sets
            .into_iter()
            .try_for_each(|set| self.observe_one(set))
            .map(|()| self.engine.revision());
        *group = Group::new(&self.engine.snapshot());
        send(Some(reply), result);
    }

    /// Applies what other writers committed up to `through`; nothing at
    /// all when the cache holds `through` already (this node's own commits
    /// woke the follower). Commits to tenants the group being gathered has
    /// not written are applied beside it (see [`Sequencer::follow_beside`]),
    /// so other nodes' commits do not cut this node's groups short; from
    /// the first that touches the group's tenants (or the whole store), the
    /// group is committed first, which is then refused and planned again.
    fn follow(&self, group: &mut Group, through: Revision, reply: Reply) {
        if self.engine.revision() >= through {
            send(Some(reply), Ok(self.engine.revision()));
            return;
        }
        match self.follow_beside(group, through) {
            Ok(true) => {
                send(Some(reply), Ok(self.engine.revision()));
                return;
            }
            Ok(false) => {}
            Err(e) => {
                send(Some(reply), Err(Error::from(e)));
                return;
            }
        }
        self.commit(group);
        let result = self
            .catch_up(through)
            .map(|()| self.engine.revision())
            .map_err(Error::from);
        *group = Group::new(&self.engine.snapshot());
        send(Some(reply), result);
    }

    /// Applies other writers' commits up to `through` to cache and feed
    /// while `group` stays open, each moving the group's base past it (the
    /// group's writes were planned on tenants it did not touch, so they
    /// stand on the newer base as they stood on the old). Returns whether
    /// it got to `through`; stops (false) before a commit that wrote one of
    /// the group's tenants or the whole store, or when the group holds a
    /// write not scoped to one tenant.
    fn follow_beside(&self, group: &mut Group, through: Revision) -> Result<bool, StoreError> {
        let mut written = std::collections::HashSet::new();
        for write in &group.writes {
            match write.conflict_scope() {
                Some(tenant) => written.insert(tenant.clone()),
                None => return Ok(false),
            };
        }
        self.observe_until(
            through,
            |set| set.tenant.as_ref().is_some_and(|t| !written.contains(t)),
            || {
                group.base = self.engine.revision();
                group.working = self.merged(&group.working, written.iter());
            },
        )
    }

    /// Applies one change set committed elsewhere to the cache and
    /// publishes it to the feed, as the writer computed it; one already
    /// applied is skipped, so each reaches cache and feed exactly once.
    fn observe_one(&self, replicated: Replicated) -> Result<(), Error> {
        let Replicated { set, catalog } = replicated;
        let mut next = Snapshot::clone(&self.engine.snapshot());
        if set.revision <= next.revision {
            return Ok(());
        }
        if set.revision != next.revision.next() {
            return Err(Error::OutOfSequence {
                given: set.revision,
                latest: next.revision,
            });
        }
        next.apply_changes(set.tenant.as_ref(), &set.changes, catalog, set.committed_at);
        next.revision = set.revision;
        // A lane planning on this tenant's former state plans again.
        self.lanes.borrow_mut().mark_stale(set.tenant.as_ref());
        self.engine.publish(next);
        self.applied.send_replace(set.revision);
        self.feed.publish(Arc::new(set));
        Ok(())
    }

    /// Observes what the store holds beyond the cache, up to `head`: from
    /// what the store's notifications carried when they hold it, without
    /// reading the changelog.
    fn catch_up(&self, head: Revision) -> Result<(), StoreError> {
        self.observe_until(head, |_| true, || {}).map(|_| ())
    }

    /// [`Sequencer::catch_up`] while `admit` accepts each change set,
    /// calling `observed` after each; whether it got to `head` (false: it
    /// stopped before the first change set `admit` refused).
    fn observe_until(
        &self,
        head: Revision,
        admit: impl Fn(&authzd_core::model::ChangeSet) -> bool,
        mut observed: impl FnMut(),
    ) -> Result<bool, StoreError> {
        loop {
            let after = self.engine.revision();
            if after >= head {
                return Ok(true);
            }
            let missing = usize::try_from(head.0 - after.0).unwrap_or(usize::MAX);
            let sets = self.runtime.block_on(self.store.followed_changes(
                after,
                missing.min(authzd_core::limits::REPLAY_PAGE),
                authzd_core::limits::REPLAY_PAGE_BYTES,
            ))?;
            if sets.is_empty() {
                return Ok(true);
            }
            for set in sets.into_iter().filter(|s| s.revision <= head) {
                if !admit(&set) {
                    return Ok(false);
                }
                Replicated::prepare(set)
                    .and_then(|set| self.observe_one(set))
                    .map_err(|e| StoreError::Database(Box::new(e)))?;
                observed();
            }
        }
    }

    /// Commits the group, then replaces store and cache with `snapshot`.
    fn install(&self, group: &mut Group, snapshot: Installed, reply: Reply) {
        self.commit(group);
        let Installed { export, catalog } = snapshot;
        let revision = export.revision;
        let tenants = Arc::new(export.tenants);
        let stored = match self.store.restore() {
            Some(restore) => self.runtime.block_on(restore.replace_all(
                revision,
                catalog.source().to_string(),
                tenants.clone(),
            )),
            None => Err(StoreError::Unsupported("replace its data set")),
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "installing a snapshot failed; the replica keeps its state");
            send(Some(reply), Err(e.into()));
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
    /// cache and the feed, and answers every job of the group; after a
    /// conflict with another writer, catches up and plans the jobs again
    /// first. Either way the group is empty afterwards, its working state
    /// that of the cache.
    fn commit(&self, group: &mut Group) -> Landed {
        let mut replans = 0;
        // Once a reservation was made, ended on the way out: the group
        // planned under it may have been refused whole, and then nothing
        // committed to end it.
        let release = |replans: usize, landed: Landed| {
            if replans >= RESERVE_AFTER {
                self.runtime.block_on(self.store.release());
            }
            landed
        };
        loop {
            let fresh = Group::new(&group.working);
            let finished = std::mem::replace(group, fresh);
            let Group {
                base,
                working,
                writes,
                answers,
                denied,
                ..
            } = finished;
            let started = std::time::Instant::now();
            let count = writes.len();
            let scope: Vec<Option<TenantId>> = match replans + 1 >= RESERVE_AFTER {
                true => writes.iter().map(|w| w.conflict_scope().cloned()).collect(),
                false => Vec::new(),
            };
            let result = if writes.is_empty() && denied.is_empty() {
                Ok(Vec::new())
            } else {
                let denied = denied.iter().map(|d| d.entry.clone()).collect();
                self.store_group(base, writes, denied)
            };
            // Commits of other writers to other tenants may have landed
            // since the base (the store refuses only those to the same
            // tenants): they reach cache and feed first, in revision order.
            let result = result.and_then(|sets| {
                let before = sets
                    .first()
                    .map(|s| Revision(s.revision.0.saturating_sub(1)));
                match before {
                    Some(before) if before > base => {
                        self.catch_up(before)?;
                        Ok((sets, true))
                    }
                    _ => Ok((sets, false)),
                }
            });
            match result {
                Ok((sets, interleaved)) => {
                    self.lanes.borrow_mut().commit_took = started.elapsed();
                    let working = match interleaved {
                        false => working,
                        true => {
                            self.merged(&working, sets.iter().filter_map(|s| s.tenant.as_ref()))
                        }
                    };
                    self.publish(working, sets, started.elapsed(), base, answers);
                    *group = Group::new(&self.engine.snapshot());
                    return match replans {
                        0 => Landed::AsPlanned,
                        _ => release(replans, Landed::Replanned),
                    };
                }
                Err(StoreError::Conflict { head, .. }) if replans < MAX_REPLANS => {
                    replans += 1;
                    tracing::debug!(%base, %head, replans, "another writer committed first; planning the group again");
                    // The lanes planned on the group's state, which is
                    // planned again: so are their batches.
                    self.lanes.borrow_mut().mark_stale(None);
                    // Planned on what the store holds once the group's
                    // tenants are reserved, the next attempt cannot lose.
                    let latest = match replans >= RESERVE_AFTER {
                        true => self.runtime.block_on(self.store.reserve(&scope)),
                        false => Ok(head),
                    };
                    if let Err(e) = latest.and_then(|latest| self.catch_up(latest)) {
                        tracing::error!(error = %e, "catching up after a conflict failed");
                        fail(answers, base, &Arc::new(e));
                        *group = Group::new(&self.engine.snapshot());
                        return release(replans, Landed::Failed);
                    }
                    *group = Group::new(&self.engine.snapshot());
                    let conflict = Arc::new(StoreError::Conflict { base, head });
                    self.retake(group, answers, denied, &conflict);
                }
                Err(e) => {
                    tracing::error!(error = %e, writes = count, "a write group failed; nothing of it was applied");
                    fail(answers, base, &Arc::new(e));
                    *group = Group::new(&self.engine.snapshot());
                    return release(replans, Landed::Failed);
                }
            }
        }
    }

    /// The cache's state (which holds other writers' commits to other
    /// tenants by now) with `tenants` (those a group wrote) as `working`
    /// has them.
    fn merged<'a>(
        &self,
        working: &Snapshot,
        tenants: impl Iterator<Item = &'a TenantId>,
    ) -> Snapshot {
        let mut next = Snapshot::clone(&self.engine.snapshot());
        for tenant in tenants {
            match working.tenants.get(tenant) {
                Some(state) => next.tenants.insert(tenant.clone(), state.clone()),
                None => next.tenants.remove(tenant),
            };
        }
        next
    }

    /// Takes a conflicted group's jobs into `group` again, in their order,
    /// each planned on `group`'s (newer) state; refusals handed in by the
    /// API are carried over, those the sequencer derived are made again.
    fn retake(
        &self,
        group: &mut Group,
        answers: Vec<Taken>,
        denied: Vec<Denial>,
        conflict: &Arc<StoreError>,
    ) {
        for denial in denied.into_iter().filter(|d| !d.derived) {
            self.deny(group, denial);
        }
        for taken in answers {
            match (taken.retake, taken.reply) {
                (Retake::Work(work), Some(reply)) => self.take_work(group, *work, reply),
                (Retake::Expire, Some(reply)) => self.expire(group, reply),
                (Retake::Flush, Some(reply)) => flush(group, reply),
                (_, reply) => send(reply, Err(Error::Store(conflict.clone()))),
            }
        }
    }

    /// Publishes a committed group to cache and feed, and answers its jobs.
    fn publish(
        &self,
        working: Snapshot,
        sets: Vec<authzd_core::model::ChangeSet>,
        took: std::time::Duration,
        base: Revision,
        answers: Vec<Taken>,
    ) {
        let revisions: Vec<Revision> = sets.iter().map(|s| s.revision).collect();
        if let Some(&last) = revisions.last() {
            crate::metrics::commit(sets.len(), took, last.0);
            for tenant in sets.iter().filter_map(|s| s.tenant.as_ref()) {
                if let Some(state) = working.tenants.get(tenant) {
                    crate::metrics::tenant_size(
                        tenant.as_str(),
                        state.subjects.len(),
                        state.assignments.len(),
                    );
                }
            }
            let mut next = working;
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
                .unwrap_or(base)
        };
        for taken in answers {
            let result = match taken.answer {
                Answer::Committed(i) => Ok(at(Some(i))),
                Answer::Unchanged(i) => Ok(at(i)),
                Answer::Earlier(r) => Ok(r),
                Answer::Refused(e) => Err(e),
            };
            send(taken.reply, result);
        }
    }

    /// Writes the group to the store as one commit planned on `base`; on an
    /// uncertain commit, asks the store whether the group's commit id
    /// landed (a transaction lands whole or not at all).
    fn store_group(
        &self,
        base: Revision,
        writes: Vec<PendingWrite>,
        denied: Vec<AuditEntry>,
    ) -> Result<Vec<authzd_core::model::ChangeSet>, StoreError> {
        let count = writes.len();
        let id = CommitId::random();
        let committed = self.store.commit_group(base, id, writes, denied);
        match self.runtime.block_on(committed) {
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
                tracing::error!(error = %e, commit = %id, "commit outcome unknown; asking the store whether it landed");
                let Some(first) = self.runtime.block_on(self.store.find_commit(id, base))? else {
                    return Err(StoreError::CommitUncertain("the write did not land".into()));
                };
                let before = Revision(first.0.saturating_sub(1));
                let landed = self
                    .runtime
                    .block_on(self.store.changes_after(before, count, usize::MAX))?;
                if landed.len() == count {
                    Ok(landed)
                } else {
                    Err(StoreError::CommitUncertain(
                        "the write landed but its changelog entries are gone".into(),
                    ))
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Answers every job of a group that did not commit: refusals and earlier
/// revisions as they were, everything else with the failure.
fn fail(answers: Vec<Taken>, base: Revision, failure: &Arc<StoreError>) {
    for taken in answers {
        let result = match taken.answer {
            Answer::Refused(e) => Err(e),
            Answer::Earlier(r) => Ok(r),
            Answer::Unchanged(None) => Ok(base),
            Answer::Committed(_) | Answer::Unchanged(Some(_)) => Err(Error::Store(failure.clone())),
        };
        send(taken.reply, result);
    }
}

/// Answers a flush with the revision the group's state will have.
fn flush(group: &mut Group, reply: Reply) {
    let answer = Answer::Unchanged(group.last_write());
    group.answer(Some(reply), answer, Retake::Flush);
}

/// Plans one tenant's batch on `working` (whose last committed revision is
/// `revision`): the expected revision, the actor, then the engine's
/// planner. The one planning path of a write, which its dry run
/// ([`what_if`]) takes too.
fn plan_tenant_write(
    working: &Snapshot,
    revision: Revision,
    tenant: &TenantId,
    operations: &[engine::Operation],
    options: &WriteOptions,
    now: authzd_core::model::Timestamp,
) -> Result<engine::Planned, Error> {
    expect_revision(options.expected_revision, revision)?;
    let state = working.tenants.get(tenant).map(|t| &**t);
    if let Some(actor) = &options.actor {
        let known = state.is_some_and(|t| t.subjects.contains_key(actor));
        if !known {
            return Err(Error::UnknownActor {
                actor: actor.clone(),
                tenant: tenant.clone(),
            });
        }
    }
    engine::plan(
        &working.compiled,
        tenant,
        options.actor.as_ref(),
        state,
        operations,
        now,
    )
    .map_err(|r| Error::Refused {
        list: "operations",
        index: r.index,
        error: r.error,
    })
}

/// What a write would do if committed now on `current`, committing
/// nothing: planned by the write's own path ([`plan_tenant_write`]). A
/// refused operation is recorded (named as the write's [`Naming`] says) and
/// the rest planned again without it, so that every refusal shows, up to
/// [`MAX_WHAT_IF_REFUSALS`]; the effects are then those of the operations
/// that pass. A refusal of the whole write (its actor, its expected
/// revision) ends the preview with no effects.
pub(super) fn what_if(
    current: &Snapshot,
    tenant: &TenantId,
    mut operations: Vec<engine::Operation>,
    options: &WriteOptions,
    now: authzd_core::model::Timestamp,
) -> WhatIf {
    let mut indices: Vec<usize> = (0..operations.len()).collect();
    let mut what_if = WhatIf {
        revision: current.revision,
        effects: Vec::new(),
        refusals: Vec::new(),
        more_refusals: false,
    };
    loop {
        match plan_tenant_write(current, current.revision, tenant, &operations, options, now) {
            Ok(planned) => {
                what_if.effects = planned.effects;
                return what_if;
            }
            Err(Error::Refused { index, error, .. }) if index < operations.len() => {
                operations.remove(index);
                let index = indices.remove(index);
                what_if.refusals.push(options.naming.refused(index, error));
                if what_if.refusals.len() >= MAX_WHAT_IF_REFUSALS {
                    what_if.more_refusals = !operations.is_empty();
                    return what_if;
                }
                if operations.is_empty() {
                    return what_if;
                }
            }
            Err(other) => {
                what_if.refusals.push(other);
                return what_if;
            }
        }
    }
}

/// A write's dry run: what it would change, and why it would be refused.
#[derive(Debug)]
pub struct WhatIf {
    /// The revision it was planned on.
    pub revision: Revision,
    /// The gains and losses, as the feed would publish them (of the
    /// operations that pass, when some are refused).
    pub effects: Vec<authzd_core::model::Effect>,
    /// The refusals, in the order the planner met them; empty: the write
    /// would commit.
    pub refusals: Vec<Error>,
    /// Whether the preview stopped looking at [`MAX_WHAT_IF_REFUSALS`].
    pub more_refusals: bool,
}

/// Removes what has expired by `now` from `tenant` in `working`, as a
/// system write.
fn draft_expiry(
    store: &dyn Datastore,
    working: &mut Snapshot,
    tenant: &TenantId,
    now: authzd_core::model::Timestamp,
) -> lanes::Drafted {
    let expired = working
        .tenants
        .get(tenant)
        .map(|state| state.expired(now))
        .unwrap_or_default();
    if expired.is_empty() {
        return lanes::Drafted::Unchanged;
    }
    let changes: Vec<Change> = expired.into_iter().map(Change::RoleExpired).collect();
    let effects = working.apply_changes(Some(tenant), &changes, None, now);
    let Some(state) = working.tenants.get(tenant).cloned() else {
        return lanes::Drafted::Unchanged;
    };
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
        prepared: None,
    };
    drafted(store, write, state)
}

/// Plans `tenant`'s batch into `working` (whose last committed revision is
/// `revision`), as a write to commit: the one planning path of a write,
/// in a lane or in the sequencer.
fn draft_write(
    store: &dyn Datastore,
    working: &mut Snapshot,
    revision: Revision,
    tenant: &TenantId,
    operations: &[engine::Operation],
    options: &WriteOptions,
    now: authzd_core::model::Timestamp,
) -> lanes::Drafted {
    let planned = match plan_tenant_write(working, revision, tenant, operations, options, now) {
        Ok(planned) => planned,
        Err(Error::Refused { index, error, .. }) => {
            return lanes::Drafted::Refused(options.naming.refused(index, error));
        }
        Err(e) => return lanes::Drafted::Refused(e),
    };
    if planned.changes.is_empty() {
        return lanes::Drafted::Unchanged;
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
        prepared: None,
    };
    let state = Arc::new(planned.state);
    working.tenants.insert(tenant.clone(), state.clone());
    drafted(store, write, state)
}

/// A planned write, prepared for its commit and measured, with its
/// tenant's state after it.
fn drafted(store: &dyn Datastore, write: PendingWrite, state: Arc<TenantState>) -> lanes::Drafted {
    match prepared(store, write) {
        Ok((write, bytes)) => lanes::Drafted::Write {
            write: Box::new(write),
            bytes,
            state,
        },
        Err(e) => lanes::Drafted::Refused(e.into()),
    }
}

/// A write planned on the group's state (into `next`) as the group takes
/// it.
fn settled(group: &Group, drafted: lanes::Drafted, next: Snapshot) -> Planned {
    match drafted {
        lanes::Drafted::Write { write, bytes, .. } => Planned::Admitted(Box::new(Admitted {
            write: *write,
            bytes,
            next,
        })),
        lanes::Drafted::Unchanged => Planned::Answer(Answer::Unchanged(group.last_write())),
        lanes::Drafted::Refused(e) => Planned::Answer(Answer::Refused(e)),
    }
}

/// A primary's change set as the group's next write, if it is the next
/// revision.
fn plan_replicated(store: &dyn Datastore, group: &Group, replicated: &Replicated) -> Planned {
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
        prepared: None,
    };
    admit(store, write, next)
}

/// Wraps a write that passed planning, prepared for its commit and
/// measured.
fn admit(store: &dyn Datastore, write: PendingWrite, next: Snapshot) -> Planned {
    match prepared(store, write) {
        Ok((write, bytes)) => Planned::Admitted(Box::new(Admitted { write, bytes, next })),
        Err(e) => Planned::Answer(Answer::Refused(e.into())),
    }
}

/// `write` with what the store prepares ahead of its commit (see
/// [`Datastore::prepare`]), and the size of its changelog entry.
fn prepared(
    store: &dyn Datastore,
    mut write: PendingWrite,
) -> Result<(PendingWrite, usize), StoreError> {
    store.prepare(&mut write)?;
    let bytes = write.entry_bytes()?;
    Ok((write, bytes))
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

    /// Where the answer of a job handed to a sequencer arrives.
    type Awaited = oneshot::Receiver<Result<Revision, Error>>;

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
            feed: Feed::new(16, 1 << 20, 1 << 30),
            applied: Arc::new(watch::Sender::new(revision)),
            clock: Arc::new(SystemClock),
            results: Weak::new(),
            queue_bound: 1024,
            lanes: Default::default(),
            hold: None,
        })
    }

    /// The queue `sequencer` takes its jobs from (and its planners hand
    /// their plans back through), holding `capacity` jobs.
    fn queue(sequencer: &mut Sequencer, capacity: usize) -> (Arc<SyncSender<Job>>, Receiver<Job>) {
        let (jobs, queue) = sync_channel(capacity);
        let jobs = Arc::new(jobs);
        sequencer.results = Arc::downgrade(&jobs);
        (jobs, queue)
    }

    /// Runs `sequencer` on one subject creation per name in `names`, all
    /// queued before it starts; returns their answers.
    fn run_queued(
        mut sequencer: Sequencer,
        names: &[&str],
    ) -> Result<Vec<Result<Revision, Error>>, Box<dyn std::error::Error>> {
        let (jobs, queue) = queue(&mut sequencer, names.len() + 1);
        let mut answers: Vec<Awaited> = Vec::new();
        for name in names {
            let (job, answer) = create(name)?;
            jobs.send(job)?;
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

    /// A subject creation in tenant `t`, as a job.
    fn create(name: &str) -> Result<(Job, Awaited), Box<dyn std::error::Error>> {
        create_in("t", name)
    }

    /// A subject creation in `tenant`, as a job.
    fn create_in(tenant: &str, name: &str) -> Result<(Job, Awaited), Box<dyn std::error::Error>> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Write {
            tenant: TenantId::try_from(tenant)?,
            operations: vec![engine::Operation::CreateSubject(subject(name)?)],
            options: WriteOptions::default(),
            reply,
        };
        Ok((job, answer))
    }

    fn subject(name: &str) -> Result<Subject, Box<dyn std::error::Error>> {
        Ok(Subject {
            id: SubjectId::try_from(name)?,
            kind: SubjectKind::User,
            status: SubjectStatus::Active,
            attributes: Default::default(),
            home_scope: None,
        })
    }

    /// Another writer's commit to tenant `t` creating `name`, through its
    /// own handle on the store.
    fn rival_write(name: &str) -> Result<PendingWrite, Box<dyn std::error::Error>> {
        rival_write_in("t", name)
    }

    /// [`rival_write`] in `tenant`.
    fn rival_write_in(
        tenant: &str,
        name: &str,
    ) -> Result<PendingWrite, Box<dyn std::error::Error>> {
        Ok(PendingWrite {
            tenant: Some(TenantId::try_from(tenant)?),
            actor: None,
            committed_at: authzd_core::model::Timestamp::now(),
            changes: vec![
                Change::TenantPut(Default::default()),
                Change::SubjectPut(subject(name)?),
            ],
            effects: Vec::new(),
            expected_revision: None,
            idempotency_key: None,
            origin: Origin::default(),
            revision: None,
            prepared: None,
        })
    }

    /// Every revision the feed delivers to a subscriber of tenant `t` from
    /// revision 0 until `last`, one entry per complete revision.
    fn delivered(
        runtime: &tokio::runtime::Runtime,
        feed: &Feed,
        last: Revision,
    ) -> Result<Vec<Revision>, Box<dyn std::error::Error>> {
        delivered_to(runtime, feed, "t", last)
    }

    /// Every revision the feed delivers to a subscriber of `tenant` from
    /// revision 0 until `last`, one entry per complete revision.
    fn delivered_to(
        runtime: &tokio::runtime::Runtime,
        feed: &Feed,
        tenant: &str,
        last: Revision,
    ) -> Result<Vec<Revision>, Box<dyn std::error::Error>> {
        use crate::watch::{Event, Filter, Pacing};
        runtime.block_on(async {
            let pacing = Pacing {
                buffer: 16,
                buffer_bytes: 1 << 20,
                piece_bytes: 1 << 20,
                progress_every: std::time::Duration::from_secs(3600),
            };
            // The feed must hold every revision: nothing is replayed.
            let mut subscription = feed.subscribe(
                Filter::tenant(TenantId::try_from(tenant)?),
                Revision(0),
                pacing,
                |_, _| async { Ok(Vec::new()) },
            );
            let mut seen = Vec::new();
            while seen.last() != Some(&last) {
                let next =
                    tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next());
                match next.await? {
                    Some(Ok(Event::Committed(piece))) if piece.complete => {
                        seen.push(piece.revision)
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                }
            }
            Ok(seen)
        })
    }

    /// A group whose commit meets another writer's commit is refused by the
    /// store, and the sequencer applies the other commit to cache and feed,
    /// then plans the group again on the newer state: a creation of the
    /// subject the other writer created is now refused, the other write
    /// commits after it; the feed carries each revision once.
    #[test]
    fn a_conflicting_group_is_planned_again_on_the_newer_state() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let rival = Faulty::new(store.clone());
        let mut sequencer = sequencer(&runtime, store.clone())?;
        let (engine, feed) = (sequencer.engine.clone(), sequencer.feed.clone());
        runtime.block_on(rival.commit(rival_write("alice")?))?;

        let (jobs, queue) = queue(&mut sequencer, 4);
        let (same, same_answer) = create("alice")?;
        let (other, other_answer) = create("bob")?;
        jobs.send(same)?;
        jobs.send(other)?;
        jobs.send(Job::Stop)?;
        sequencer.run(queue);

        let refused = same_answer.blocking_recv()?;
        assert!(
            matches!(
                refused,
                Err(Error::Refused {
                    error: authzd_core::engine::EngineError::AlreadyExists { .. },
                    ..
                })
            ),
            "{refused:?}"
        );
        assert_eq!(other_answer.blocking_recv()??, Revision(2));
        let snapshot = engine.snapshot();
        let tenant = snapshot
            .tenants
            .get(&TenantId::try_from("t")?)
            .ok_or("no tenant t")?;
        for name in ["alice", "bob"] {
            assert!(
                tenant.subjects.contains_key(&SubjectId::try_from(name)?),
                "{name}"
            );
        }
        assert_eq!(snapshot.revision, Revision(2));
        assert_eq!(
            delivered(&runtime, &feed, Revision(2))?,
            vec![Revision(1), Revision(2)]
        );
        assert_eq!(runtime.block_on(store.revision())?, Revision(2));
        Ok(())
    }

    /// Another writer's commit to another tenant, followed while a group
    /// is open, reaches cache and feed at once and leaves the group open
    /// on the newer base (nothing is committed for it); one to the group's
    /// tenant makes the group commit first, which is refused, planned again
    /// on the newer state and committed after it.
    #[test]
    fn followed_commits_to_other_tenants_leave_the_open_group_open() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let rival = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let store = Faulty::new(rival.clone());
        let sequencer = sequencer(&runtime, store.clone())?;
        let mut group = Group::new(&sequencer.engine.snapshot());
        let (write, answer) = create("alice")?;
        sequencer.take(&mut group, write);
        assert_eq!(group.writes.len(), 1);

        runtime.block_on(rival.commit(rival_write_in("u", "carol")?))?;
        let (reply, followed) = oneshot::channel();
        sequencer.follow(&mut group, Revision(1), reply);
        assert_eq!(followed.blocking_recv()??, Revision(1));
        assert_eq!(sequencer.engine.revision(), Revision(1));
        assert_eq!(store.commits(), 0, "the open group was not committed");
        assert_eq!((group.writes.len(), group.base), (1, Revision(1)));
        assert!(
            group
                .working
                .tenants
                .contains_key(&TenantId::try_from("u")?)
        );

        runtime.block_on(rival.commit(rival_write("bob")?))?;
        let (reply, followed) = oneshot::channel();
        sequencer.follow(&mut group, Revision(2), reply);
        assert_eq!(followed.blocking_recv()??, Revision(3));
        assert_eq!(answer.blocking_recv()??, Revision(3));
        assert_eq!(store.commits(), 2, "refused once, then committed");
        assert!(group.is_empty());
        assert_eq!(
            delivered_to(&runtime, &sequencer.feed, "u", Revision(1))?,
            vec![Revision(1)]
        );
        assert_eq!(
            delivered(&runtime, &sequencer.feed, Revision(3))?,
            vec![Revision(2), Revision(3)]
        );
        Ok(())
    }

    /// Change sets another writer committed, handed to the observe path
    /// (twice over), reach cache and feed exactly once and are not stored
    /// again; the next write then commits after them without a conflict.
    #[test]
    fn observed_change_sets_reach_cache_and_feed_once_and_are_not_stored() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = Faulty::new(runtime.block_on(authzd_store_redb::open(dir.path()))?);
        let rival = Faulty::new(store.clone());
        let mut sequencer = sequencer(&runtime, store.clone())?;
        let (engine, feed) = (sequencer.engine.clone(), sequencer.feed.clone());
        let committed = runtime.block_on(rival.commit(rival_write("alice")?))?;
        let CommitOutcome::Committed(set) = committed else {
            return Err("the rival's write was replayed".into());
        };
        let prepared = || Replicated::prepare(set.clone());

        let (jobs, queue) = queue(&mut sequencer, 4);
        let (reply, observed) = oneshot::channel();
        jobs.send(Job::Observe {
            sets: vec![prepared()?, prepared()?],
            reply,
        })?;
        let (next, next_answer) = create("bob")?;
        jobs.send(next)?;
        jobs.send(Job::Stop)?;
        let commits_before = store.commits();
        sequencer.run(queue);

        assert_eq!(observed.blocking_recv()??, Revision(1));
        assert_eq!(next_answer.blocking_recv()??, Revision(2));
        assert_eq!(
            store.commits() - commits_before,
            1,
            "only the next write was stored"
        );
        assert_eq!(engine.revision(), Revision(2));
        assert_eq!(
            delivered(&runtime, &feed, Revision(2))?,
            vec![Revision(1), Revision(2)]
        );
        let log = runtime.block_on(store.changes_after(Revision(0), 10, usize::MAX))?;
        assert_eq!(log.len(), 2);
        Ok(())
    }

    /// Holds the first batch of `tenant`'s planning open until the sender
    /// returned is used (or dropped).
    fn hold_first(sequencer: &mut Sequencer, tenant: &str) -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Mutex::new(Some(released));
        let tenant = tenant.to_owned();
        sequencer.hold = Some(Arc::new(move |t: &TenantId| {
            if t.as_str() != tenant {
                return;
            }
            let first = held.lock().ok().and_then(|mut h| h.take());
            if let Some(released) = first {
                let _ = released.recv();
            }
        }));
        release
    }

    /// Waits for a job's answer; the bound only turns a hang (a write
    /// waiting for another tenant's planning) into a failure.
    fn answer(
        runtime: &tokio::runtime::Runtime,
        awaited: Awaited,
    ) -> Result<Revision, Box<dyn std::error::Error>> {
        let bound = std::time::Duration::from_secs(60);
        let answer = runtime.block_on(async { tokio::time::timeout(bound, awaited).await });
        Ok(answer.map_err(|_| "no answer: the write waited for another tenant")???)
    }

    /// A write to one tenant never waits for the planning of another
    /// tenant's write: with `t1`'s planning held open until `t2`'s write
    /// has been answered, `t2`'s write commits first (a sequencer that
    /// planned one write at a time for all tenants never answers it);
    /// revisions are given at commit, so `t1`'s comes after.
    /// Sends a write to `t1`, held by the caller until `release`, then one
    /// to `t2`: `t2`'s must be answered first, at revision 1, `t1`'s next,
    /// and the changelog must hold them in that order.
    fn another_tenant_commits_first(
        runtime: &tokio::runtime::Runtime,
        store: Arc<dyn Datastore>,
        mut sequencer: Sequencer,
        release: std::sync::mpsc::Sender<()>,
    ) -> TestResult {
        let (jobs, queue) = queue(&mut sequencer, 16);
        let thread = std::thread::spawn(move || sequencer.run(queue));

        let (big, big_answer) = create_in("t1", "alice")?;
        jobs.send(big)?;
        let (small, small_answer) = create_in("t2", "bob")?;
        jobs.send(small)?;
        assert_eq!(answer(runtime, small_answer)?, Revision(1));
        release.send(())?;
        assert_eq!(answer(runtime, big_answer)?, Revision(2));
        jobs.send(Job::Stop)?;
        thread.join().map_err(|_| "the sequencer panicked")?;
        let log = runtime.block_on(store.changes_after(Revision(0), 10, usize::MAX))?;
        let order: Vec<_> = log.iter().map(|s| (s.revision, s.tenant.clone())).collect();
        assert_eq!(
            order,
            vec![
                (Revision(1), Some(TenantId::try_from("t2")?)),
                (Revision(2), Some(TenantId::try_from("t1")?)),
            ]
        );
        Ok(())
    }

    #[test]
    fn a_write_to_another_tenant_does_not_wait_for_planning() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let mut sequencer = sequencer(&runtime, store.clone())?;
        let release = hold_first(&mut sequencer, "t1");
        another_tenant_commits_first(&runtime, store, sequencer, release)
    }

    /// A write to one tenant never waits for another tenant's changelog
    /// entry being encoded: with the encoding of `t1`'s entry held open
    /// until `t2`'s write has been answered, `t2`'s write commits first (a
    /// sequencer that encoded entries inside the commit, which every write
    /// waits behind, never answers it); `t1`'s then commits as the next
    /// revision, and its stored entry reads back with that revision.
    #[test]
    fn a_write_to_another_tenant_does_not_wait_for_an_entry_being_encoded() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = Faulty::new(runtime.block_on(authzd_store_redb::open(dir.path()))?);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let held = std::sync::Mutex::new(Some(released));
        store.before_prepare(move |write| {
            if write.tenant.as_ref().is_some_and(|t| t.as_str() == "t1") {
                let first = held.lock().ok().and_then(|mut h| h.take());
                if let Some(released) = first {
                    let _ = released.recv();
                }
            }
        });
        let sequencer = sequencer(&runtime, store.clone())?;
        another_tenant_commits_first(&runtime, store, sequencer, release)
    }

    /// Writes to the same tenant keep their order: the second, queued while
    /// the first is being planned, is planned on the state the first
    /// leaves (so creating the same subject again is refused) and is not
    /// answered before it, while another tenant's write goes past both.
    #[test]
    fn writes_to_the_same_tenant_keep_their_order() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let mut sequencer = sequencer(&runtime, store.clone())?;
        let release = hold_first(&mut sequencer, "t1");
        let (jobs, queue) = queue(&mut sequencer, 16);
        let thread = std::thread::spawn(move || sequencer.run(queue));

        let (first, first_answer) = create_in("t1", "alice")?;
        jobs.send(first)?;
        let (again, mut again_answer) = create_in("t1", "alice")?;
        jobs.send(again)?;
        let (other, other_answer) = create_in("t2", "bob")?;
        jobs.send(other)?;
        assert_eq!(answer(&runtime, other_answer)?, Revision(1));
        assert!(
            matches!(
                again_answer.try_recv(),
                Err(oneshot::error::TryRecvError::Empty)
            ),
            "the second write to t1 was answered before the first"
        );
        release.send(())?;
        assert_eq!(answer(&runtime, first_answer)?, Revision(2));
        let refused = runtime.block_on(again_answer)?;
        assert!(
            matches!(
                refused,
                Err(Error::Refused {
                    error: authzd_core::engine::EngineError::AlreadyExists { .. },
                    ..
                })
            ),
            "{refused:?}"
        );
        jobs.send(Job::Stop)?;
        thread.join().map_err(|_| "the sequencer panicked")?;
        assert_eq!(runtime.block_on(store.revision())?, Revision(2));
        Ok(())
    }

    /// A schema change reads every tenant: it waits until no lane is
    /// planning, and the writes after it wait behind it, so the schema's
    /// revision follows the held tenant's write and precedes the later one.
    #[test]
    fn a_schema_change_waits_for_every_tenant() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let mut sequencer = sequencer(&runtime, store.clone())?;
        let release = hold_first(&mut sequencer, "t1");
        let catalog = sequencer.engine.snapshot().compiled.catalog.clone();
        let (jobs, queue) = queue(&mut sequencer, 16);
        let thread = std::thread::spawn(move || sequencer.run(queue));

        let (held, held_answer) = create_in("t1", "alice")?;
        jobs.send(held)?;
        let (reply, mut schema_answer) = oneshot::channel();
        jobs.send(Job::Schema {
            catalog,
            expected_revision: None,
            origin: Origin::default(),
            reply,
        })?;
        let (after, mut after_answer) = create_in("t2", "bob")?;
        jobs.send(after)?;
        let (reply, flushed) = oneshot::channel();
        jobs.send(Job::Flush { reply })?;
        assert!(matches!(
            schema_answer.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert!(matches!(
            after_answer.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        release.send(())?;
        assert_eq!(answer(&runtime, held_answer)?, Revision(1));
        assert_eq!(answer(&runtime, schema_answer)?, Revision(2));
        assert_eq!(answer(&runtime, after_answer)?, Revision(3));
        answer(&runtime, flushed)?;
        jobs.send(Job::Stop)?;
        thread.join().map_err(|_| "the sequencer panicked")?;
        Ok(())
    }

    /// A job held until no lane holds anything runs once the last lane
    /// empties, also when it empties because the clients of its waiting
    /// writes gave up (no plan comes back then to release the job).
    #[test]
    fn a_held_job_runs_when_a_lane_empties_by_clients_giving_up() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let mut sequencer = sequencer(&runtime, store)?;
        let release = hold_first(&mut sequencer, "t1");
        let catalog = sequencer.engine.snapshot().compiled.catalog.clone();
        let (jobs, queue) = queue(&mut sequencer, 16);
        let thread = std::thread::spawn(move || sequencer.run(queue));

        // Each write to t2 is answered only after the jobs sent before it
        // were taken: alice's batch is then being planned (held), and bob's
        // write waits in t1's lane behind it.
        let (held, held_answer) = create_in("t1", "alice")?;
        jobs.send(held)?;
        let (other, other_answer) = create_in("t2", "carol")?;
        jobs.send(other)?;
        assert_eq!(answer(&runtime, other_answer)?, Revision(1));
        let (waiting, abandoned) = create_in("t1", "bob")?;
        jobs.send(waiting)?;
        let (other, other_answer) = create_in("t2", "dave")?;
        jobs.send(other)?;
        assert_eq!(answer(&runtime, other_answer)?, Revision(2));
        drop(abandoned);
        let (reply, schema_answer) = oneshot::channel();
        jobs.send(Job::Schema {
            catalog,
            expected_revision: None,
            origin: Origin::default(),
            reply,
        })?;
        release.send(())?;
        assert_eq!(answer(&runtime, held_answer)?, Revision(3));
        assert_eq!(answer(&runtime, schema_answer)?, Revision(4));
        jobs.send(Job::Stop)?;
        thread.join().map_err(|_| "the sequencer panicked")?;
        Ok(())
    }

    /// A write to tenant `tenant`: `subject` created in group `g`, and
    /// the group made editor at the root first (so each member's creation
    /// gains permissions: effects that depend on the tenant's earlier
    /// writes).
    fn tenant_write(
        tenant: &str,
        subject_name: &str,
        first: bool,
    ) -> Result<(Job, Awaited), Box<dyn std::error::Error>> {
        use authzd_core::model::{
            Assignment, AssignmentKey, Group as ModelGroup, GroupId, Membership, Principal, RoleId,
            ScopeId, Target,
        };
        let group = GroupId::try_from("g")?;
        let mut operations = Vec::new();
        if first {
            operations.push(engine::Operation::CreateGroup(ModelGroup {
                id: group.clone(),
                title: "g".into(),
                condition: None,
            }));
            operations.push(engine::Operation::AssignRole(
                Assignment {
                    key: AssignmentKey {
                        role: RoleId::try_from("editor")?,
                        principal: Principal::Group(group.clone()),
                        target: Target::Scope(ScopeId::root()),
                    },
                    expires_at: None,
                },
                engine::Precondition::None,
            ));
        }
        operations.push(engine::Operation::CreateSubject(subject(subject_name)?));
        operations.push(engine::Operation::AddMember(
            Membership {
                group,
                member: Principal::Subject(SubjectId::try_from(subject_name)?),
            },
            engine::Precondition::None,
        ));
        let (reply, answer) = oneshot::channel();
        let job = Job::Write {
            tenant: TenantId::try_from(tenant)?,
            operations,
            options: WriteOptions::default(),
            reply,
        };
        Ok((job, answer))
    }

    /// Writes to many tenants at once, from several threads: every write
    /// is answered with its own revision, together exactly 1..=N; the
    /// changelog holds them in that order, the feed publishes each once in
    /// revision order, and replaying the changelog one entry at a time
    /// (the reference: one write at a time, in revision order) gives the
    /// effects each write recorded and the cache's final state.
    #[test]
    fn concurrent_writes_to_many_tenants_keep_revisions_gapless() -> TestResult {
        const TENANTS: usize = 6;
        const EACH: usize = 15;
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = runtime.block_on(authzd_store_redb::open(dir.path()))?;
        let mut sequencer = sequencer(&runtime, store.clone())?;
        // The feed must hold every revision: nothing is replayed.
        sequencer.feed = Feed::new(1024, 1 << 24, 1 << 30);
        let (engine, feed) = (sequencer.engine.clone(), sequencer.feed.clone());
        let start = engine.snapshot();
        let (jobs, queue) = queue(&mut sequencer, 64);
        let thread = std::thread::spawn(move || sequencer.run(queue));
        let mut senders = Vec::new();
        for t in 0..TENANTS {
            let jobs = SyncSender::clone(&jobs);
            senders.push(std::thread::spawn(move || {
                let mut answers = Vec::new();
                for i in 0..EACH {
                    let (job, answer) = tenant_write(&format!("t{t}"), &format!("s{i}"), i == 0)
                        .map_err(|e| e.to_string())?;
                    jobs.send(job).map_err(|e| e.to_string())?;
                    answers.push(answer);
                }
                Ok::<_, String>(answers)
            }));
        }
        let mut revisions = Vec::new();
        for sender in senders {
            let answers = sender.join().map_err(|_| "a sender panicked")??;
            let mine: Vec<Revision> = answers
                .into_iter()
                .map(|a| answer(&runtime, a))
                .collect::<Result<_, _>>()?;
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "a tenant's writes out of order: {mine:?}"
            );
            revisions.extend(mine);
        }
        jobs.send(Job::Stop)?;
        thread.join().map_err(|_| "the sequencer panicked")?;
        revisions.sort();
        let total = (TENANTS * EACH) as u64;
        assert_eq!(revisions, (1..=total).map(Revision).collect::<Vec<_>>());

        let log = runtime.block_on(store.changes_after(Revision(0), 1000, usize::MAX))?;
        assert_eq!(
            log.iter().map(|s| s.revision).collect::<Vec<_>>(),
            revisions
        );
        let mut reference = Snapshot::clone(&start);
        for set in &log {
            let effects =
                reference.apply_changes(set.tenant.as_ref(), &set.changes, None, set.committed_at);
            assert_eq!(effects, set.effects, "revision {}", set.revision);
            assert!(
                !effects.is_empty(),
                "revision {} changed no permission",
                set.revision
            );
        }
        let cached = engine.snapshot();
        assert_eq!(cached.revision, Revision(total));
        for (tenant, state) in &reference.tenants {
            let mine = cached
                .tenants
                .get(tenant)
                .ok_or("a tenant is missing from the cache")?;
            assert_eq!(mine.subjects.len(), state.subjects.len(), "{tenant}");
            assert_eq!(mine.assignments.len(), state.assignments.len(), "{tenant}");
        }
        for t in 0..TENANTS {
            let tenant = format!("t{t}");
            let expected: Vec<Revision> = log
                .iter()
                .filter(|s| s.tenant.as_ref().is_some_and(|id| id.as_str() == tenant))
                .map(|s| s.revision)
                .collect();
            let last = *expected.last().ok_or("a tenant has no write")?;
            assert_eq!(
                delivered_to(&runtime, &feed, &tenant, last)?,
                expected,
                "{tenant}"
            );
        }
        Ok(())
    }

    /// Another writer's commit to another tenant does not make the group
    /// plan again: the store takes the group after it, and the sequencer
    /// brings the other commit to cache and feed first, in revision order.
    #[test]
    fn another_writers_commit_to_another_tenant_is_observed_not_replanned() -> TestResult {
        let runtime = tokio::runtime::Runtime::new()?;
        let dir = tempfile::tempdir()?;
        let store = Faulty::new(runtime.block_on(authzd_store_redb::open(dir.path()))?);
        let rival = Faulty::new(store.clone());
        let mut sequencer = sequencer(&runtime, store.clone())?;
        let (engine, feed) = (sequencer.engine.clone(), sequencer.feed.clone());
        let mut other = rival_write("carol")?;
        other.tenant = Some(TenantId::try_from("u")?);
        runtime.block_on(rival.commit(other))?;

        let (jobs, queue) = queue(&mut sequencer, 4);
        let (mine, mine_answer) = create("bob")?;
        jobs.send(mine)?;
        jobs.send(Job::Stop)?;
        let before = store.commits();
        sequencer.run(queue);
        assert_eq!(mine_answer.blocking_recv()??, Revision(2));
        assert_eq!(
            store.commits() - before,
            1,
            "the group was committed once, not planned again"
        );
        let snapshot = engine.snapshot();
        assert_eq!(snapshot.revision, Revision(2));
        for tenant in ["t", "u"] {
            assert!(
                snapshot.tenants.contains_key(&TenantId::try_from(tenant)?),
                "{tenant}"
            );
        }
        assert_eq!(
            delivered_to(&runtime, &feed, "u", Revision(1))?,
            vec![Revision(1)]
        );
        assert_eq!(delivered(&runtime, &feed, Revision(2))?, vec![Revision(2)]);
        Ok(())
    }
}
