//! The compiled cache: every tenant's directory in memory, with per-subject
//! grants memoised so that a check is a few lookups and bit tests.
//!
//! Readers take an immutable [`Snapshot`] through `arc-swap` (no lock a
//! writer holds, no allocation); the single writer (the service's
//! sequencer) builds the next snapshot by copy-on-write of persistent maps
//! and publishes it atomically, so a batch becomes visible all at once at
//! its revision. Work per write is
//! proportional to what changed: only the subjects whose grants a change can
//! alter are recomputed. Must not know about protobuf, tonic or redb.

mod authorize;
mod candidates;
mod condition;
mod effects;
mod eval;
mod few;
mod grants;
mod plan;
mod query;
mod roles;
mod tenant;
mod violation;

use std::sync::Arc;

use arc_swap::ArcSwap;
use imbl::OrdMap;

pub use condition::{Condition, ConditionError};
pub use eval::{Denial, DenialReason, Explanation, ResolvedPlace, Source, Traceable};
pub use grants::SubjectGrants;
pub use plan::{
    GroupUpdate, Operation, Planned, Precondition, RefusedOperation, SubjectUpdate, plan,
};
pub use query::{Holder, PlaceRef, Question, TargetHoldings, page_from};
pub use roles::unknown_permissions as unknown_role_permissions;
pub use tenant::{Compiled, SubjectEntry, TenantState};
pub use violation::{AdminChange, Attempt, Holding, Managing, Names, ScopeUse, Violation};

use crate::model::{Change, ChangeSet, Effect, Revision, SubjectId, TenantId, Timestamp};
use crate::schema::Catalog;
pub use effects::Picture;
use effects::View;

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Not `#[non_exhaustive]`: the edges map every variant exhaustively, so
// a new one cannot reach a client unmapped.
pub enum EngineError {
    /// A named thing does not exist.
    #[error("{kind} {} not found", crate::model::Quoted(id))]
    NotFound {
        /// What kind of thing ("subject", "scope", ...).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A role named in a request exists neither in the schema nor in the
    /// tenant.
    #[error("role {} not found{hint}", crate::model::Quoted(id))]
    UnknownRole {
        /// The id asked for.
        id: String,
        /// A "did you mean" for the closest role, or empty.
        hint: String,
    },
    /// A thing to be created exists already.
    #[error("{kind} {} already exists", crate::model::Quoted(id))]
    AlreadyExists {
        /// What kind of thing.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A value is well-formed but not acceptable (an unknown permission).
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field concerned.
        field: String,
        /// Why.
        reason: String,
    },
    /// A rule of the engine refused the write: a rule of the model, or an
    /// actor rule ([`Violation::denies_actor`] tells which). Boxed: a
    /// violation names several ids, and errors travel in every `Result` of
    /// the write path.
    #[error(transparent)]
    Violation(Box<Violation>),
}

impl From<Violation> for EngineError {
    fn from(violation: Violation) -> Self {
        EngineError::Violation(Box::new(violation))
    }
}

/// An immutable view of every tenant at one revision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The last revision applied.
    pub revision: Revision,
    /// The catalog and builtin roles in force.
    pub compiled: Arc<Compiled>,
    /// Tenants by id.
    pub tenants: OrdMap<TenantId, Arc<TenantState>>,
}

impl TenantState {
    /// The refusal of a role id no role of the tenant or the schema has,
    /// with a suggestion of the closest one.
    pub fn unknown_role(&self, compiled: &Compiled, id: &str) -> EngineError {
        let candidates = compiled
            .builtin
            .keys()
            .chain(self.roles.keys())
            .map(|r| r.as_str());
        EngineError::UnknownRole {
            id: id.to_owned(),
            hint: crate::schema::suggestion(id, candidates),
        }
    }
}

impl Snapshot {
    /// What a subject holds, per target, in the terms of the feed's
    /// permission changes: applying every gain and loss of a tenant in
    /// revision order to an empty picture gives exactly this for each of
    /// its subjects. Empty for unknown tenants and subjects.
    pub fn picture(&self, tenant: &str, subject: &SubjectId) -> Picture {
        let view = View {
            compiled: &self.compiled,
            state: self.tenants.get(tenant).map(|t| &**t),
        };
        view.picture(subject)
    }

    /// The soonest assignment expiry in any tenant.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.tenants
            .values()
            .filter_map(|t| t.expiring.get_min().map(|(at, _)| *at))
            .min()
    }

    /// A tenant's state, or `NotFound`.
    pub fn tenant(&self, id: &str) -> Result<&TenantState, EngineError> {
        self.tenants
            .get(id)
            .map(|t| &**t)
            .ok_or_else(|| EngineError::NotFound {
                kind: "tenant",
                id: id.to_string(),
            })
    }
}

impl Snapshot {
    /// A snapshot of `tenants` (each tenant's records expressed as changes)
    /// under `catalog`, reflecting `revision`.
    pub fn build(
        catalog: Arc<Catalog>,
        revision: Revision,
        tenants: Vec<(TenantId, Vec<Change>)>,
        now: Timestamp,
    ) -> Snapshot {
        let mut loader = Loader::new(catalog);
        for (id, changes) in tenants {
            loader.apply(changes.into_iter().map(|c| (id.clone(), c)).collect());
        }
        loader.finish(revision, now)
    }

    /// Applies changes that were already planned (a committed change set
    /// replayed, or a schema install carrying its compiled catalog) to this
    /// snapshot in place, returning their permission changes. The revision
    /// is left to the caller.
    pub fn apply_changes(
        &mut self,
        tenant: Option<&TenantId>,
        changes: &[Change],
        catalog: Option<Arc<Catalog>>,
        at: Timestamp,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(catalog) = catalog {
            effects.extend(self.install_catalog(catalog, at));
        }
        if let Some(id) = tenant {
            let compiled = self.compiled.clone();
            let old = self.tenants.get(id).cloned();
            let mut state = old
                .as_deref()
                .cloned()
                .unwrap_or_else(|| TenantState::new(&compiled));
            let mut affected = tenant::Affected::default();
            for change in changes {
                state.apply(&compiled, change, &mut affected);
            }
            state.recompute(&compiled, &affected, at);
            let before = View {
                compiled: &compiled,
                state: old.as_deref(),
            };
            let after = View {
                compiled: &compiled,
                state: Some(&state),
            };
            effects.extend(effects::diff(id, before, after, &affected));
            self.tenants.insert(id.clone(), Arc::new(state));
        }
        effects
    }

    /// Puts a planned tenant state in place (see [`plan`]).
    pub fn install(&mut self, tenant: TenantId, state: TenantState) {
        self.tenants.insert(tenant, Arc::new(state));
    }

    /// Recompiles every tenant against a new catalog, returning everyone's
    /// permission changes.
    fn install_catalog(&mut self, catalog: Arc<Catalog>, at: Timestamp) -> Vec<Effect> {
        let old = std::mem::replace(&mut self.compiled, Arc::new(Compiled::new(catalog)));
        let compiled = self.compiled.clone();
        let everyone = tenant::Affected {
            everyone: true,
            ..Default::default()
        };
        let mut effects = Vec::new();
        self.tenants = self
            .tenants
            .iter()
            .map(|(id, state)| {
                let mut copy = (**state).clone();
                copy.recompile(&compiled);
                copy.recompute(&compiled, &everyone, at);
                let before = View {
                    compiled: &old,
                    state: Some(state),
                };
                let after = View {
                    compiled: &compiled,
                    state: Some(&copy),
                };
                effects.extend(effects::diff(id, before, after, &everyone));
                (id.clone(), Arc::new(copy))
            })
            .collect();
        effects
    }
}

/// Builds the cache from stored records streamed one at a time (see the
/// store's `stream`), so that no copy of the whole store is held beside it.
/// Records are applied without noting whose grants they change (everyone
/// is computed once, at the end), which is why they must arrive in an order
/// where each names only what came before it.
///
/// Records are applied on two threads of their own, so the store decodes
/// the next records while the last ones are applied: one applies them, and
/// hands subjects and memberships (most of a large tenant's records) on to
/// the second, which builds the maps that need nothing but those records
/// (see `tenant::Ordered`).
pub struct Loader {
    compiled: Arc<Compiled>,
    applier: Applier,
}

/// Tenants being built, by id.
type Tenants = std::collections::BTreeMap<TenantId, TenantState>;

/// Stored records, each with its tenant.
type Records = Vec<(TenantId, Change)>;

/// Batches queued for an applying thread; bounded, so that a slow apply
/// holds the store's reader back rather than the queue growing.
const LOAD_QUEUE_BATCHES: usize = 4;

/// Where records are applied.
enum Applier {
    /// On the applying thread, through a bounded queue of whole batches
    /// (one hand-over per batch, not per record: at a million subjects a
    /// send and a wake-up per record cost start-up seconds on two cores);
    /// the thread gives the tenants back once the queue closes.
    Thread {
        batches: std::sync::mpsc::SyncSender<Records>,
        done: std::thread::JoinHandle<Tenants>,
    },
    /// Here, when no thread could be started.
    Inline(Applying),
}

/// Records applied so far.
struct Applying {
    tenants: Tenants,
    /// The thread building each tenant's [`tenant::Ordered`] maps, until a
    /// record arrives that changes what it built (a deletion, which stored
    /// records never are): from then on everything is applied here.
    side: Option<Side>,
}

/// The second applying thread (see [`Loader`]).
struct Side {
    records: std::sync::mpsc::SyncSender<Vec<(TenantId, tenant::OrderedRecord)>>,
    done: std::thread::JoinHandle<std::collections::BTreeMap<TenantId, tenant::Ordered>>,
}

impl Side {
    /// Starts the thread; `None` if none could be started.
    fn start() -> Option<Side> {
        let (records, queue) = std::sync::mpsc::sync_channel::<
            Vec<(TenantId, tenant::OrderedRecord)>,
        >(LOAD_QUEUE_BATCHES);
        let started = std::thread::Builder::new()
            .name("authzd-load-2".into())
            .spawn(move || {
                let mut built = std::collections::BTreeMap::<TenantId, tenant::Ordered>::new();
                for batch in queue {
                    for (tenant, record) in batch {
                        built.entry(tenant).or_default().put(record);
                    }
                }
                built
            });
        match started {
            Ok(done) => Some(Side { records, done }),
            Err(e) => {
                tracing::warn!(error = %e, "no second thread to apply the store's records on");
                None
            }
        }
    }

    /// Hands a batch over.
    fn send(&self, batch: Vec<(TenantId, tenant::OrderedRecord)>) {
        // A send fails only once the thread is gone, which it is only by a
        // panic; `finish` carries that on.
        let _ = self.records.send(batch);
    }

    /// Waits for the thread and gives each tenant what it built.
    fn finish(self, tenants: &mut Tenants) {
        drop(self.records);
        // The thread panics only on a bug; carry it on here.
        let built = self
            .done
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        for (id, ordered) in built {
            if let Some(state) = tenants.get_mut(&id) {
                state.adopt(ordered);
            }
        }
    }
}

impl Applying {
    fn new(side: Option<Side>) -> Self {
        Self {
            tenants: Tenants::new(),
            side,
        }
    }

    /// Applies a batch of stored records, in order.
    fn batch(&mut self, compiled: &Compiled, batch: Records) {
        // Nothing is noted when everyone is recomputed at the end.
        let mut everyone = tenant::Affected {
            everyone: true,
            ..Default::default()
        };
        let mut ordered = Vec::with_capacity(if self.side.is_some() { batch.len() } else { 0 });
        for (tenant, change) in batch {
            if self.side.is_some()
                && matches!(
                    change,
                    Change::SubjectDeleted(_) | Change::GroupDeleted(_) | Change::MemberRemoved(_)
                )
                && let Some(side) = self.side.take()
            {
                side.send(std::mem::take(&mut ordered));
                side.finish(&mut self.tenants);
            }
            let state = match self.tenants.get_mut(&tenant) {
                Some(state) => state,
                None => self
                    .tenants
                    .entry(tenant.clone())
                    .or_insert_with(|| TenantState::new(compiled)),
            };
            match (&self.side, change) {
                (Some(_), Change::SubjectPut(subject)) => {
                    let subject = Arc::new(subject);
                    state.put_subject_entry(subject.clone(), &mut everyone);
                    ordered.push((tenant, tenant::OrderedRecord::Subject(subject)));
                }
                (Some(_), Change::MemberAdded(m)) => {
                    let (group, member) = state.canonical_member(&m);
                    ordered.push((tenant, tenant::OrderedRecord::Member(group, member)));
                }
                // Moved, not copied as `apply` would.
                (None, Change::SubjectPut(subject)) => {
                    state.put_subject(Arc::new(subject), &mut everyone);
                }
                (_, change) => state.apply(compiled, &change, &mut everyone),
            }
        }
        if let Some(side) = &self.side
            && !ordered.is_empty()
        {
            side.send(ordered);
        }
    }

    /// Every tenant with every record applied.
    fn finish(mut self) -> Tenants {
        if let Some(side) = self.side.take() {
            side.finish(&mut self.tenants);
        }
        self.tenants
    }
}

impl Loader {
    /// An empty cache for `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let compiled = Arc::new(Compiled::new(catalog));
        let (batches, queue) = std::sync::mpsc::sync_channel::<Records>(LOAD_QUEUE_BATCHES);
        let on_thread = compiled.clone();
        let started = std::thread::Builder::new()
            .name("authzd-load".into())
            .spawn(move || {
                let mut applying = Applying::new(Side::start());
                for batch in queue {
                    applying.batch(&on_thread, batch);
                }
                applying.finish()
            });
        let applier = match started {
            Ok(done) => Applier::Thread { batches, done },
            Err(e) => {
                tracing::warn!(error = %e, "no thread to apply the store's records on; applying them inline");
                Applier::Inline(Applying::new(None))
            }
        };
        Self { compiled, applier }
    }

    /// Applies a batch of stored records, in the stream's order.
    pub fn apply(&mut self, batch: Records) {
        match &mut self.applier {
            // A send fails only once the thread is gone, which it is only
            // by a panic; `finish` carries that on.
            Applier::Thread { batches, .. } => {
                let _ = batches.send(batch);
            }
            Applier::Inline(applying) => applying.batch(&self.compiled, batch),
        }
    }

    /// Every tenant with every record applied.
    fn tenants(self) -> (Arc<Compiled>, Tenants) {
        let tenants = match self.applier {
            Applier::Thread { batches, done } => {
                drop(batches);
                // The thread panics only on a bug; carry it on here.
                done.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
            }
            Applier::Inline(applying) => applying.finish(),
        };
        (self.compiled, tenants)
    }

    /// Computes everyone's grants as of `now` (each tenant on every core)
    /// and gives the snapshot at `revision`.
    pub fn finish(self, revision: Revision, now: Timestamp) -> Snapshot {
        let (compiled, tenants) = self.tenants();
        let tenants = tenants
            .into_iter()
            .map(|(id, mut state)| {
                let (subjects, computing, installing) = state.recompute_everyone(&compiled, now);
                tracing::info!(
                    tenant = %id,
                    subjects,
                    compute_ms = computing.as_millis(),
                    install_ms = installing.as_millis(),
                    "grants computed"
                );
                (id, Arc::new(state))
            })
            .collect();
        Snapshot {
            revision,
            compiled,
            tenants,
        }
    }
}

/// The cache: the snapshot readers see. One writer (the service's
/// sequencer) replaces it; nothing else serialises writers, because nothing
/// else writes.
pub struct Engine {
    /// What readers see. Replaced whole by the writer.
    current: ArcSwap<Snapshot>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("revision", &self.current.load().revision)
            .finish()
    }
}

impl Engine {
    /// Builds the cache from a catalog, the revision the data reflects and
    /// each tenant's records expressed as changes.
    pub fn new(
        catalog: Arc<Catalog>,
        revision: Revision,
        tenants: Vec<(TenantId, Vec<Change>)>,
        now: Timestamp,
    ) -> Self {
        Self::with(Snapshot::build(catalog, revision, tenants, now))
    }

    /// A cache holding `snapshot` (a store streamed through a [`Loader`]).
    pub fn with(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The revision of the current snapshot.
    pub fn revision(&self) -> Revision {
        self.current.load().revision
    }

    /// Applies a committed change set and publishes the next snapshot (for
    /// replays and tests; the write path plans, then publishes).
    pub fn apply(&self, set: &ChangeSet, catalog: Option<Arc<Catalog>>) -> Vec<Effect> {
        let mut next = (*self.snapshot()).clone();
        let effects =
            next.apply_changes(set.tenant.as_ref(), &set.changes, catalog, set.committed_at);
        next.revision = set.revision;
        self.publish(next);
        effects
    }

    /// Makes `next` what readers see. The caller is the only writer.
    pub fn publish(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Group, Membership, Principal, Subject, SubjectKind, SubjectStatus};

    fn subject(id: &str) -> Change {
        Change::SubjectPut(Subject {
            id: id.parse().unwrap(),
            kind: SubjectKind::User,
            status: SubjectStatus::Active,
            attributes: Default::default(),
            home_scope: None,
        })
    }

    fn member(group: &str, subject: &str) -> Membership {
        Membership {
            group: group.parse().unwrap(),
            member: Principal::Subject(subject.parse().unwrap()),
        }
    }

    /// What a tenant's ordered maps hold: subjects in order, and each
    /// group's members and each subject's groups.
    fn ordered(state: &TenantState) -> (Vec<String>, Vec<String>, Vec<String>) {
        let subjects = state.in_order.keys().map(|s| s.to_string()).collect();
        let mut members: Vec<String> = state
            .members
            .iter()
            .flat_map(|(g, set)| set.iter().map(move |p| format!("{g} has {p:?}")))
            .collect();
        members.sort();
        let mut member_of: Vec<String> = state
            .member_of
            .iter()
            .flat_map(|(p, set)| set.iter().map(move |g| format!("{p:?} in {g}")))
            .collect();
        member_of.sort();
        (subjects, members, member_of)
    }

    /// Tenant `t` built from `changes` twice: loaded as stored records,
    /// and applied change by change to an empty cache.
    fn loaded_and_applied(changes: &[Change]) -> (Snapshot, Snapshot) {
        let catalog =
            Arc::new(crate::schema::load("default", crate::schema::DEFAULT_SCHEMA).unwrap());
        let tenant: TenantId = "t".parse().unwrap();
        let loaded = Snapshot::build(
            catalog.clone(),
            Revision(1),
            vec![(tenant.clone(), changes.to_vec())],
            Timestamp(0),
        );
        let mut applied = Snapshot::build(catalog, Revision(0), vec![], Timestamp(0));
        applied.apply_changes(Some(&tenant), changes, None, Timestamp(0));
        (loaded, applied)
    }

    /// A load that meets a deletion (which stored records never are)
    /// takes back what the second thread built and goes on applying
    /// everything itself: the tenant ends as one built change by change.
    #[test]
    fn a_load_with_deletions_builds_what_changes_build() {
        let group = Change::GroupPut(Group {
            id: "g".parse().unwrap(),
            title: "g".into(),
            condition: None,
        });
        let changes = vec![
            Change::TenantPut(Default::default()),
            subject("c"),
            subject("a"),
            subject("b"),
            group,
            Change::MemberAdded(member("g", "a")),
            Change::MemberAdded(member("g", "b")),
            Change::MemberRemoved(member("g", "a")),
            Change::SubjectDeleted("c".parse().unwrap()),
            subject("d"),
            Change::MemberAdded(member("g", "d")),
        ];
        let (loaded, applied) = loaded_and_applied(&changes);
        let (loaded, applied) = (loaded.tenant("t").unwrap(), applied.tenant("t").unwrap());
        assert_eq!(ordered(loaded), ordered(applied));
        assert_eq!(
            ordered(loaded).0,
            vec!["a".to_string(), "b".to_string(), "d".to_string()]
        );
    }

    /// A load of puts only builds the ordered maps on the second thread
    /// and gives them to the tenant whole.
    #[test]
    fn a_load_of_records_builds_the_ordered_maps() {
        let mut changes = vec![
            Change::TenantPut(Default::default()),
            Change::GroupPut(Group {
                id: "g".parse().unwrap(),
                title: "g".into(),
                condition: None,
            }),
        ];
        changes.extend((0..3000).map(|i| subject(&format!("s{i:04}"))));
        changes.extend(
            (0..3000)
                .step_by(2)
                .map(|i| Change::MemberAdded(member("g", &format!("s{i:04}")))),
        );
        let (loaded, applied) = loaded_and_applied(&changes);
        let (loaded, applied) = (loaded.tenant("t").unwrap(), applied.tenant("t").unwrap());
        assert_eq!(ordered(loaded), ordered(applied));
        assert_eq!(loaded.in_order.len(), 3000);
        assert_eq!(loaded.member_of.len(), 1500);
    }
}
