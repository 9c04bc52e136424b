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
/// Records are applied on a thread of their own, so the store decodes the
/// next records while the last ones are applied.
pub struct Loader {
    compiled: Arc<Compiled>,
    applier: Applier,
}

/// Tenants being built, by id.
type Tenants = std::collections::BTreeMap<TenantId, TenantState>;

/// Batches queued for the applying thread; bounded, so that a slow apply
/// holds the store's reader back rather than the queue growing.
const LOAD_QUEUE_BATCHES: usize = 4;

/// Where records are applied.
enum Applier {
    /// On the applying thread, through a bounded queue of whole batches
    /// (one hand-over per batch, not per record: at a million subjects a
    /// send and a wake-up per record cost start-up seconds on two cores);
    /// the thread gives the tenants back once the queue closes.
    Thread {
        batches: std::sync::mpsc::SyncSender<Vec<(TenantId, Change)>>,
        done: std::thread::JoinHandle<Tenants>,
    },
    /// Here, when no thread could be started.
    Inline(Tenants),
}

/// Applies one stored record of `tenant` to `tenants`.
fn apply_record(compiled: &Compiled, tenants: &mut Tenants, tenant: &TenantId, change: &Change) {
    // Nothing is noted when everyone is recomputed at the end.
    let mut everyone = tenant::Affected {
        everyone: true,
        ..Default::default()
    };
    let state = match tenants.get_mut(tenant) {
        Some(state) => state,
        None => tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantState::new(compiled)),
    };
    state.apply(compiled, change, &mut everyone);
}

/// Applies a batch of stored records, in order.
fn apply_batch(compiled: &Compiled, tenants: &mut Tenants, batch: Vec<(TenantId, Change)>) {
    for (tenant, change) in batch {
        apply_record(compiled, tenants, &tenant, &change);
    }
}

impl Loader {
    /// An empty cache for `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let compiled = Arc::new(Compiled::new(catalog));
        let (batches, queue) =
            std::sync::mpsc::sync_channel::<Vec<(TenantId, Change)>>(LOAD_QUEUE_BATCHES);
        let on_thread = compiled.clone();
        let started = std::thread::Builder::new()
            .name("authzd-load".into())
            .spawn(move || {
                let mut tenants = Tenants::new();
                for batch in queue {
                    apply_batch(&on_thread, &mut tenants, batch);
                }
                tenants
            });
        let applier = match started {
            Ok(done) => Applier::Thread { batches, done },
            Err(e) => {
                tracing::warn!(error = %e, "no thread to apply the store's records on; applying them inline");
                Applier::Inline(Tenants::new())
            }
        };
        Self { compiled, applier }
    }

    /// Applies a batch of stored records, in the stream's order.
    pub fn apply(&mut self, batch: Vec<(TenantId, Change)>) {
        match &mut self.applier {
            // A send fails only once the thread is gone, which it is only
            // by a panic; `finish` carries that on.
            Applier::Thread { batches, .. } => {
                let _ = batches.send(batch);
            }
            Applier::Inline(tenants) => apply_batch(&self.compiled, tenants, batch),
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
            Applier::Inline(tenants) => tenants,
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
