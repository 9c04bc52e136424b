//! Planning per tenant: each tenant's writes wait in its own lane and are
//! planned, in their order, on a planner thread of their own, so that a
//! write to one tenant never waits for the planning of another tenant's
//! write (a role granted to a group of 100,000 members takes a second to
//! plan; a one-subject write beside it, a millisecond).
//!
//! A lane hands its waiting writes to a planner thread as one batch,
//! planned on the tenant's state as the writes before them leave it (the
//! sequencer's working state: committed, or planned into the open group).
//! Each planned write also has the store prepare its changelog entry
//! there ([`authzd_store::Datastore::prepare`]), so that the commit, which
//! every tenant's writes wait behind, does not encode it.
//! The plans come back to the sequencer as a [`Job::Planned`]; the
//! sequencer adds them to its group, numbers them at commit, and hands the
//! lane its next batch. Nothing planned here is visible to a reader before
//! the sequencer commits and publishes it.
//!
//! A plan is *stale* when the state it was planned on changed under it:
//! another writer's commit to the tenant (or a store-wide one) observed
//! meanwhile, or a conflict that made the sequencer plan its group again.
//! A stale batch is put back at the head of its lane and planned again.
//!
//! Jobs that read or change more than one tenant (a schema, a write with
//! an expected store revision, a replica's copies, a restore, stopping)
//! wait until no lane is planning, and every job after them waits behind
//! them ([`Lanes::held`]).
//!
//! Must not commit, publish or answer anything itself: it hands plans to
//! the sequencer, which alone does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use super::{Admitted, Answer, Group, Job, Landed, Reply, Retake, Sequencer, Work};
use super::{draft_expiry, draft_write};
use crate::{Error, WriteOptions};
use authzd_core::engine::{self, Snapshot, TenantState};
use authzd_core::model::{TenantId, Timestamp};
use authzd_store::{Datastore, PendingWrite};

/// Something a lane plans: a client's write, or the removal of the
/// tenant's expired assignments for an expiry round.
pub(in crate::sequencer) enum Lead {
    Write {
        operations: Vec<engine::Operation>,
        options: WriteOptions,
        reply: Reply,
    },
    Expire {
        round: u64,
    },
}

/// What planning a lead gave.
pub(in crate::sequencer) enum Drafted {
    /// A write to commit, its changelog entry's size, and the tenant's
    /// state after it.
    Write {
        write: Box<PendingWrite>,
        bytes: usize,
        state: Arc<TenantState>,
    },
    /// Nothing to change.
    Unchanged,
    /// Refused.
    Refused(Error),
}

/// A lane's planned batch, as it comes back to the sequencer.
pub(crate) struct Drafts {
    tenant: TenantId,
    planned: Vec<(Lead, Drafted)>,
}

/// One tenant's waiting writes.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Lead>,
    /// A batch of the lane is being planned.
    planning: bool,
    /// The batch being planned was planned on a state that changed since.
    stale: bool,
    /// Leads held: waiting and being planned.
    held: usize,
}

/// The lanes, and the jobs waiting for every lane to be idle.
#[derive(Default)]
pub(crate) struct Lanes {
    lanes: HashMap<TenantId, Lane>,
    /// Jobs that need every tenant idle, and every job after them.
    held: VecDeque<Job>,
    /// Lanes with a batch being planned.
    planning: usize,
    /// Leads held in every lane, and held jobs: what the bound in sum
    /// counts.
    total: usize,
    /// Expiry rounds waiting for lanes: the reply, and how many lanes
    /// still have the round's lead.
    rounds: HashMap<u64, (Reply, usize)>,
    next_round: u64,
    /// Lanes with leads to hand to a planner once the queue runs dry (so
    /// that what queued meanwhile goes in the same batch).
    ready: Vec<TenantId>,
    /// How long the last group commit took: the longest a group waits for
    /// plans in flight ([`Sequencer::plans_due`]).
    pub(in crate::sequencer) commit_took: Duration,
}

impl Lanes {
    /// Whether `tenant` has writes waiting or being planned.
    pub(in crate::sequencer) fn busy(&self, tenant: &TenantId) -> bool {
        self.lanes.contains_key(tenant)
    }

    /// Marks the batch being planned for `tenant` stale (every batch for
    /// `None`, a store-wide change).
    pub(in crate::sequencer) fn mark_stale(&mut self, tenant: Option<&TenantId>) {
        for (id, lane) in &mut self.lanes {
            if lane.planning && tenant.is_none_or(|t| t == id) {
                lane.stale = true;
            }
        }
    }

    /// Opens an expiry round answered through `reply` once `lanes` lanes
    /// have planned its lead.
    pub(in crate::sequencer) fn open_round(&mut self, reply: Reply, lanes: usize) -> u64 {
        let round = self.next_round;
        self.next_round += 1;
        self.rounds.insert(round, (reply, lanes));
        round
    }

    /// Queues `lead` in `tenant`'s lane without any bound (a lead the
    /// sequencer makes itself).
    pub(in crate::sequencer) fn push(&mut self, tenant: TenantId, lead: Lead) {
        let lane = self.lanes.entry(tenant.clone()).or_default();
        lane.waiting.push_back(lead);
        lane.held += 1;
        self.total += 1;
        if !lane.planning {
            self.ready.push(tenant);
        }
    }

    /// Whether a job that needs every tenant may run: no lane holds
    /// anything.
    fn idle(&self) -> bool {
        self.lanes.is_empty()
    }
}

/// Whether a job must wait until no lane is planning: it reads or changes
/// more than one tenant, or the store revision as a whole.
fn needs_every_tenant(job: &Job) -> bool {
    match job {
        Job::Write { options, .. } => options.expected_revision.is_some(),
        Job::Schema { .. } | Job::Replicate { .. } | Job::Install { .. } | Job::Stop => true,
        Job::Expire { .. }
        | Job::Denied(_)
        | Job::Flush { .. }
        | Job::Observe { .. }
        | Job::Follow { .. }
        | Job::Planned(_) => false,
    }
}

/// Answers a job that was not taken because a queue is full.
fn refuse_busy(job: Job, capacity: usize) {
    let reply = match job {
        Job::Write { reply, .. }
        | Job::Schema { reply, .. }
        | Job::Expire { reply }
        | Job::Flush { reply }
        | Job::Replicate { reply, .. }
        | Job::Observe { reply, .. }
        | Job::Follow { reply, .. }
        | Job::Install { reply, .. } => reply,
        Job::Denied(_) | Job::Planned(_) | Job::Stop => return,
    };
    let _ = reply.send(Err(Error::Busy { capacity }));
}

/// Plans `leads` for `tenant`, each on the state the ones before leave,
/// starting from `snapshot`: a planner thread's work.
fn plan_batch(
    store: &dyn Datastore,
    mut snapshot: Snapshot,
    tenant: TenantId,
    leads: Vec<Lead>,
    now: Timestamp,
) -> Drafts {
    let mut planned = Vec::with_capacity(leads.len());
    // A lane's writes carry no expected revision (those wait for every
    // tenant and are planned by the sequencer), so the revision is unused.
    let revision = snapshot.revision;
    for lead in leads {
        let drafted = match &lead {
            Lead::Write {
                operations,
                options,
                ..
            } => draft_write(
                store,
                &mut snapshot,
                revision,
                &tenant,
                operations,
                options,
                now,
            ),
            Lead::Expire { .. } => draft_expiry(store, &mut snapshot, &tenant, now),
        };
        planned.push((lead, drafted));
    }
    Drafts { tenant, planned }
}

impl Sequencer {
    /// Takes a job from the queue: held behind a job that needs every
    /// tenant if one waits (or if it is one and a lane is planning), else
    /// run now. Returns whether the job was [`Job::Stop`].
    pub(in crate::sequencer) fn receive(&self, group: &mut Group, job: Job) -> bool {
        if let Job::Planned(drafts) = job {
            self.integrate(group, *drafts);
            return self.release(group);
        }
        let hold = {
            let lanes = self.lanes.borrow();
            !lanes.held.is_empty() || (needs_every_tenant(&job) && !lanes.idle())
        };
        if hold {
            let mut lanes = self.lanes.borrow_mut();
            if lanes.total >= self.queue_bound && !matches!(job, Job::Stop) {
                drop(lanes);
                refuse_busy(job, self.queue_bound);
                return false;
            }
            lanes.total += 1;
            lanes.held.push_back(job);
            return false;
        }
        self.run_job(group, job)
    }

    /// How much longer a group ready to commit waits for the plans in
    /// flight, having waited since `since`; `None`: commit now. Writes that
    /// arrived while the last group committed are planned only once it
    /// has, and a commit started before their plans come back makes them
    /// wait for that whole commit too: waiting for them is cheaper, up to
    /// as long as a commit takes (then a plan as slow as a large write's
    /// delays the others by at most one commit).
    pub(in crate::sequencer) fn plans_due(&self, since: Instant) -> Option<Duration> {
        let lanes = self.lanes.borrow();
        if lanes.planning == 0 {
            return None;
        }
        lanes
            .commit_took
            .checked_sub(since.elapsed())
            .filter(|left| !left.is_zero())
    }

    /// Whether the first held job may run now. Checked after the lanes
    /// were dispatched too, since a lane can empty without a plan coming
    /// back (every waiting write's client gave up).
    pub(in crate::sequencer) fn releasable(&self) -> bool {
        let lanes = self.lanes.borrow();
        lanes
            .held
            .front()
            .is_some_and(|job| !needs_every_tenant(job) || lanes.idle())
    }

    /// Runs the held jobs that may run now, in order; returns whether one
    /// was [`Job::Stop`].
    pub(in crate::sequencer) fn release(&self, group: &mut Group) -> bool {
        loop {
            if !self.releasable() {
                return false;
            }
            let job = {
                let mut lanes = self.lanes.borrow_mut();
                lanes.total = lanes.total.saturating_sub(1);
                lanes.held.pop_front()
            };
            match job {
                Some(job) => {
                    if self.run_job(group, job) {
                        return true;
                    }
                }
                None => return false,
            }
        }
    }

    /// Runs one job now; returns whether it was [`Job::Stop`].
    fn run_job(&self, group: &mut Group, job: Job) -> bool {
        match job {
            Job::Stop => true,
            Job::Write {
                tenant,
                operations,
                options,
                reply,
            } if options.expected_revision.is_none() => {
                self.enqueue(tenant, operations, options, reply);
                false
            }
            job => {
                self.take(group, job);
                false
            }
        }
    }

    /// Queues a write in its tenant's lane (refused when the lane, or all
    /// lanes together, hold as many as they may) and starts planning it if
    /// the lane is idle.
    fn enqueue(
        &self,
        tenant: TenantId,
        operations: Vec<engine::Operation>,
        options: WriteOptions,
        reply: Reply,
    ) {
        // The client gave up before anything happened: doing nothing is one
        // of the two outcomes it must expect, and the cheaper.
        if reply.is_closed() {
            return;
        }
        tracing::debug!(
            %tenant,
            caller = %options.origin.caller,
            request_id = %options.origin.request_id,
            "write taken"
        );
        {
            let mut lanes = self.lanes.borrow_mut();
            let held = lanes.lanes.get(&tenant).map_or(0, |l| l.held);
            if held >= self.tenant_bound() {
                let _ = reply.send(Err(Error::Busy {
                    capacity: self.tenant_bound(),
                }));
                return;
            }
            if lanes.total >= self.queue_bound {
                let _ = reply.send(Err(Error::Busy {
                    capacity: self.queue_bound,
                }));
                return;
            }
            let lead = Lead::Write {
                operations,
                options,
                reply,
            };
            lanes.push(tenant, lead);
        }
    }

    /// Most writes one tenant's lane holds: a quarter of the queue, so
    /// that one tenant's flood leaves room for the others.
    fn tenant_bound(&self) -> usize {
        (self.queue_bound / 4).max(1)
    }

    /// Hands every ready lane's waiting leads to a planner thread; returns
    /// whether a batch started.
    pub(in crate::sequencer) fn dispatch_ready(&self, group: &mut Group) -> bool {
        let ready = std::mem::take(&mut self.lanes.borrow_mut().ready);
        let mut started = false;
        for tenant in ready {
            started |= self.dispatch(group, &tenant);
        }
        started
    }

    /// Hands `tenant`'s waiting leads to a planner thread as one batch,
    /// unless a batch of it is being planned; forgets an empty lane.
    /// Returns whether a batch started.
    fn dispatch(&self, group: &mut Group, tenant: &TenantId) -> bool {
        let mut leads = Vec::new();
        {
            let mut lanes = self.lanes.borrow_mut();
            let Lanes { lanes, total, .. } = &mut *lanes;
            let Some(lane) = lanes.get_mut(tenant) else {
                return false;
            };
            if lane.planning {
                return false;
            }
            let mut keys = HashSet::new();
            while let Some(lead) = lane.waiting.pop_front() {
                if let Lead::Write { options, reply, .. } = &lead {
                    if reply.is_closed() {
                        lane.held -= 1;
                        *total -= 1;
                        continue;
                    }
                    if let Some(key) = &options.idempotency_key {
                        // A retry of a write in this batch waits for the
                        // next one, where the group knows the key.
                        if keys.contains(key) {
                            lane.waiting.push_front(lead);
                            break;
                        }
                        if let Some(answer) = self.known_key(group, tenant, key) {
                            if let Lead::Write {
                                operations,
                                options,
                                reply,
                            } = lead
                            {
                                let work = Work::Write {
                                    tenant: tenant.clone(),
                                    operations,
                                    options,
                                };
                                group.answer(Some(reply), answer, Retake::Work(Box::new(work)));
                            }
                            lane.held -= 1;
                            *total -= 1;
                            continue;
                        }
                        keys.insert(key.clone());
                    }
                }
                leads.push(lead);
                if leads.len() >= authzd_core::limits::MAX_GROUP_WRITES {
                    break;
                }
            }
            if leads.is_empty() {
                if lane.held == 0 {
                    lanes.remove(tenant);
                }
                return false;
            }
            lane.planning = true;
        }
        self.lanes.borrow_mut().planning += 1;
        self.plan_aside(group.working.clone(), tenant.clone(), leads);
        true
    }

    /// Plans a batch on a thread of its own, which hands the plans back
    /// through the sequencer's queue.
    fn plan_aside(&self, snapshot: Snapshot, tenant: TenantId, leads: Vec<Lead>) {
        let now = self.clock.now();
        let count = leads.len();
        let lane = tenant.clone();
        #[cfg(test)]
        let hold = self.hold.clone();
        let store = self.store.clone();
        let results: Option<SyncSender<Job>> = self.results.upgrade().map(|s| (*s).clone());
        let spawned = results.map(|results| {
            std::thread::Builder::new()
                .name("authzd-planner".into())
                .spawn(move || {
                    #[cfg(test)]
                    if let Some(hold) = hold {
                        hold(&tenant);
                    }
                    let drafts = plan_batch(&*store, snapshot, tenant, leads, now);
                    // Blocks only while the queue is full, which the
                    // sequencer is draining.
                    let _ = results.send(Job::Planned(Box::new(drafts)));
                })
        });
        match spawned {
            Some(Ok(_)) => {}
            failed => {
                if let Some(Err(e)) = failed {
                    tracing::error!(error = %e, "a planner thread could not start");
                }
                // Without a planner the batch cannot be planned: its
                // replies went with the thread's closure, so its clients
                // are told the server is stopping, and the lane forgets it.
                let mut lanes = self.lanes.borrow_mut();
                lanes.planning = lanes.planning.saturating_sub(1);
                lanes.total = lanes.total.saturating_sub(count);
                let empty = lanes.lanes.get_mut(&lane).is_some_and(|l| {
                    l.planning = false;
                    l.held = l.held.saturating_sub(count);
                    l.held == 0
                });
                if empty {
                    lanes.lanes.remove(&lane);
                }
            }
        }
    }

    /// The answer to a write whose idempotency key was committed before or
    /// is in the group.
    pub(in crate::sequencer) fn known_key(
        &self,
        group: &Group,
        tenant: &TenantId,
        key: &str,
    ) -> Option<Answer> {
        if let Some(index) = group.keys.get(&(Some(tenant.clone()), key.to_owned())) {
            return Some(Answer::Unchanged(Some(*index)));
        }
        let known = self
            .store
            .idempotent_revision(Some(tenant.clone()), key.to_owned());
        match self.runtime.block_on(known) {
            Ok(Some(revision)) => Some(Answer::Earlier(revision)),
            Ok(None) => None,
            Err(e) => Some(Answer::Refused(e.into())),
        }
    }

    /// Takes a lane's plans into the group, in order, and starts the
    /// lane's next batch. A stale batch, and what follows a commit that
    /// did not land as planned, go back to the head of the lane.
    pub(in crate::sequencer) fn integrate(&self, group: &mut Group, drafts: Drafts) {
        let Drafts { tenant, planned } = drafts;
        let stale = {
            let mut lanes = self.lanes.borrow_mut();
            lanes.planning = lanes.planning.saturating_sub(1);
            match lanes.lanes.get_mut(&tenant) {
                Some(lane) => {
                    lane.planning = false;
                    std::mem::take(&mut lane.stale)
                }
                None => false,
            }
        };
        let mut again = Vec::new();
        let mut replanned = stale;
        for (lead, drafted) in planned {
            if replanned {
                again.push(lead);
                continue;
            }
            if let Some(lead) = self.settle(group, &tenant, lead, drafted) {
                again.push(lead);
                replanned = true;
            }
        }
        let mut lanes = self.lanes.borrow_mut();
        if let Some(lane) = lanes.lanes.get_mut(&tenant) {
            for lead in again.into_iter().rev() {
                lane.waiting.push_front(lead);
            }
            if lane.held == 0 {
                lanes.lanes.remove(&tenant);
            } else {
                lanes.ready.push(tenant);
            }
        }
    }

    /// Adds one plan to the group and records how to answer it; hands the
    /// lead back (`Some`) if the group had to commit first and that commit did not
    /// land as planned (the plan is then stale).
    fn settle(
        &self,
        group: &mut Group,
        tenant: &TenantId,
        lead: Lead,
        drafted: Drafted,
    ) -> Option<Lead> {
        if let Drafted::Write { bytes, .. } = &drafted {
            if group.would_overflow(*bytes) && self.commit(group) != Landed::AsPlanned {
                return Some(lead);
            }
        }
        {
            let mut lanes = self.lanes.borrow_mut();
            lanes.total = lanes.total.saturating_sub(1);
            if let Some(lane) = lanes.lanes.get_mut(tenant) {
                lane.held = lane.held.saturating_sub(1);
            }
        }
        let admitted = |group: &Group, write: Box<PendingWrite>, bytes, state| {
            let mut next = group.working.clone();
            next.tenants.insert(tenant.clone(), state);
            Admitted {
                write: *write,
                bytes,
                next,
            }
        };
        match lead {
            Lead::Write {
                operations,
                options,
                reply,
            } => {
                let work = Work::Write {
                    tenant: tenant.clone(),
                    operations,
                    options,
                };
                let answer = match drafted {
                    Drafted::Write {
                        write,
                        bytes,
                        state,
                    } => {
                        let admitted = admitted(group, write, bytes, state);
                        group.add(admitted, Some(reply), Retake::Work(Box::new(work)));
                        return None;
                    }
                    Drafted::Unchanged => Answer::Unchanged(group.last_write()),
                    Drafted::Refused(e) => Answer::Refused(e),
                };
                self.answer_work(group, work, reply, answer);
            }
            Lead::Expire { round } => {
                if let Drafted::Write {
                    write,
                    bytes,
                    state,
                } = drafted
                {
                    let admitted = admitted(group, write, bytes, state);
                    group.add(admitted, None, Retake::Never);
                }
                let finished = {
                    let mut lanes = self.lanes.borrow_mut();
                    match lanes.rounds.get_mut(&round) {
                        Some((_, left)) if *left > 1 => {
                            *left -= 1;
                            None
                        }
                        _ => lanes.rounds.remove(&round).map(|(reply, _)| reply),
                    }
                };
                if let Some(reply) = finished {
                    let answer = Answer::Unchanged(group.last_write());
                    group.answer(Some(reply), answer, Retake::Flush);
                }
            }
        }
        None
    }
}
