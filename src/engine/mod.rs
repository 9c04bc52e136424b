//! The compiled cache: every tenant's directory in memory, with per-subject
//! grants memoised so that a check is a few lookups and bit tests.
//!
//! Readers take an immutable [`Snapshot`] through `arc-swap` (no lock a
//! writer holds, no allocation); the single writer builds the next snapshot
//! by copy-on-write of persistent maps and publishes it atomically, so a
//! batch becomes visible all at once at its revision. Work per write is
//! proportional to what changed: only the subjects whose grants a change can
//! alter are recomputed. Must not know about protobuf, tonic or redb.

mod authorize;
mod condition;
mod effects;
mod eval;
mod grants;
mod plan;
mod query;
mod roles;
mod tenant;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use imbl::OrdMap;

pub use condition::{Condition, ConditionError, MAX_CONDITION_LEN};
pub use eval::{Denial, DenialReason, Explanation, Place, Source};
pub use grants::SubjectGrants;
pub use plan::{Operation, Precondition, Refusal, SubjectUpdate, plan};
pub use query::{At, EffectiveTarget, Holder, Question, page_from};
pub use roles::unknown_permissions as unknown_role_permissions;
pub use tenant::{Compiled, SubjectEntry, TenantState};

use crate::model::{Change, ChangeSet, Effect, Revision, SubjectId, TenantId, Timestamp};
use crate::schema::Catalog;
pub use effects::Picture;
use effects::View;

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A named thing does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What kind of thing ("subject", "scope", ...).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A thing to be created exists already.
    #[error("{kind} {id:?} already exists")]
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
    /// A rule of the model forbids the write.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The actor is not allowed to make the write.
    #[error("{0}")]
    PermissionDenied(String),
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

/// The cache: the published snapshot and the writer's lock.
pub struct Engine {
    /// What readers see. Replaced whole by the writer.
    current: ArcSwap<Snapshot>,
    /// Serialises writers, so that each builds on the last published snapshot.
    /// Readers never take it.
    writer: Mutex<()>,
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
        let compiled = Arc::new(Compiled::new(catalog));
        let mut map = OrdMap::new();
        for (id, changes) in tenants {
            let mut state = TenantState::new(&compiled);
            let mut affected = tenant::Affected::default();
            for change in &changes {
                state.apply(&compiled, change, &mut affected);
            }
            affected.everyone = true;
            state.recompute(&compiled, &affected, now);
            map.insert(id, Arc::new(state));
        }
        Self {
            current: ArcSwap::from_pointee(Snapshot {
                revision,
                compiled,
                tenants: map,
            }),
            writer: Mutex::new(()),
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
    /// start-up replays and tests; the write path uses [`Engine::prepare`]).
    pub fn apply(&self, set: &ChangeSet, catalog: Option<Arc<Catalog>>) {
        let prepared = self.prepare(set.tenant.as_ref(), &set.changes, catalog, set.committed_at);
        self.publish(prepared, set.revision);
    }

    /// Builds the snapshot a write would produce, and its effects, without
    /// publishing it: the write path commits the effects with the changes,
    /// then publishes. Callers serialise prepare → publish (the service's
    /// write gate); a schema change carries its compiled catalog.
    pub fn prepare(
        &self,
        tenant: Option<&TenantId>,
        changes: &[Change],
        catalog: Option<Arc<Catalog>>,
        at: Timestamp,
    ) -> Prepared {
        let base = self.current.load_full();
        let mut next = (*base).clone();
        let mut effects = Vec::new();
        if let Some(catalog) = catalog {
            next.compiled = Arc::new(Compiled::new(catalog));
            let compiled = next.compiled.clone();
            let everyone = tenant::Affected {
                everyone: true,
                ..Default::default()
            };
            next.tenants = next
                .tenants
                .iter()
                .map(|(id, state)| {
                    let mut copy = (**state).clone();
                    copy.recompile(&compiled);
                    copy.recompute(&compiled, &everyone, at);
                    let before = View {
                        compiled: &base.compiled,
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
        }
        if let Some(id) = tenant {
            let compiled = next.compiled.clone();
            let old = next.tenants.get(id).cloned();
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
            next.tenants.insert(id.clone(), Arc::new(state));
        }
        Prepared {
            base,
            next,
            effects,
        }
    }

    /// Publishes a prepared snapshot as `revision`.
    pub fn publish(&self, prepared: Prepared, revision: Revision) {
        // A poisoned lock only means an earlier writer panicked; the published
        // snapshot is still whole, so carry on from it.
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&prepared.base, &self.current.load()) {
            // The write gate makes this impossible; if it ever happens, the
            // other write's snapshot would be lost, so say so loudly.
            tracing::error!(%revision, "publishing a snapshot prepared on a stale base");
        }
        let mut next = prepared.next;
        next.revision = revision;
        self.current.store(Arc::new(next));
    }
}

/// A write's next snapshot and effects, not yet published.
#[derive(Debug)]
pub struct Prepared {
    /// The snapshot it was built on.
    base: Arc<Snapshot>,
    /// The snapshot to publish.
    next: Snapshot,
    /// The gains and losses it causes, sorted.
    pub effects: Vec<Effect>,
}
