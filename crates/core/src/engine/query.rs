//! Read questions asked of a snapshot: resolve names to what the cache holds
//! (tenant, subject, permission bit, place), then evaluate.
//!
//! Name resolution refuses what cannot be answered (unknown tenant, scope,
//! target subject, permission) with errors naming the request field; an
//! unknown *acting* subject is not an error but a deny (docs/policy-model.md). Must not
//! know about protobuf.

use std::ops::Bound;

use imbl::OrdMap;

use super::candidates::candidates;
use super::eval::{Explanation, ResolvedPlace, Source};
use super::{EngineError, Snapshot, TenantState};
use crate::model::{Permission, ROOT_SCOPE, Reach, ScopeId, Timestamp};
use crate::schema::PermBit;

/// Where a question applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceRef<'a> {
    /// At a scope (the root when empty).
    Scope(&'a str),
    /// Over a subject: its home scope and the populations it is in.
    Subject(&'a str),
}

/// One check.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The acting subject.
    pub subject: &'a str,
    /// The permission's text.
    pub permission: &'a str,
    /// Where.
    pub at: PlaceRef<'a>,
}

/// The permissions held at one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHoldings {
    /// The scope, for scope targets.
    pub scope: Option<ScopeId>,
    /// The population group, for population targets.
    pub population: Option<crate::model::GroupId>,
    /// Each permission held there, in name order.
    pub permissions: Vec<EffectivePermission>,
}

/// One permission held at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePermission {
    /// The permission's name.
    pub permission: String,
    /// How far below the target it holds; `Exact` over a population.
    pub reach: Reach,
    /// Every way it is held.
    pub sources: Vec<Source>,
}

/// A subject holding a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The subject id.
    pub subject: String,
    /// True when no grant names the permission literally.
    pub implied: bool,
    /// How far below the listed scope it holds; `Exact` over a target
    /// subject.
    pub reach: Reach,
    /// Every way it is held.
    pub sources: Vec<Source>,
}

fn invalid(field: &str, reason: String) -> EngineError {
    EngineError::InvalidArgument {
        field: field.to_string(),
        reason,
    }
}

impl Snapshot {
    /// The bit of a permission, or an error naming `field`.
    pub fn permission_bit(&self, field: &str, text: &str) -> Result<PermBit, EngineError> {
        if let Some(bit) = self.compiled.catalog.lookup(text) {
            return Ok(bit);
        }
        Err(match text.parse::<Permission>() {
            Err(e) => invalid(field, e.reason),
            Ok(Permission::All) => invalid(field, "\"*\" can be granted, not checked".into()),
            Ok(p) => invalid(
                field,
                format!(
                    "unknown permission {p}{}",
                    crate::schema::suggestion(text, self.compiled.catalog.names())
                ),
            ),
        })
    }

    /// Resolves where a question applies.
    fn place<'s>(
        &self,
        tenant: &'s TenantState,
        at: PlaceRef<'s>,
    ) -> Result<ResolvedPlace<'s>, EngineError> {
        self.chained_place(tenant, at).map(|(place, _)| place)
    }

    /// Resolves where a question applies, with the numbered ancestor chain
    /// of its scope: one lookup both finds that the scope exists and gives
    /// what the check compares grants with.
    fn chained_place<'s>(
        &self,
        tenant: &'s TenantState,
        at: PlaceRef<'s>,
    ) -> Result<(ResolvedPlace<'s>, &'s [u32]), EngineError> {
        match at {
            PlaceRef::Scope("") => Ok((
                ResolvedPlace::scope(ROOT_SCOPE),
                tenant.numbered(ROOT_SCOPE),
            )),
            PlaceRef::Scope(scope) => match tenant.chains.get(scope) {
                Some(chain) => Ok((ResolvedPlace::scope(scope), &chain.numbers)),
                None => Err(EngineError::NotFound {
                    kind: "scope",
                    id: scope.to_string(),
                }),
            },
            PlaceRef::Subject(id) => {
                let (key, entry) =
                    tenant
                        .subjects
                        .get_key_value(id)
                        .ok_or_else(|| EngineError::NotFound {
                            kind: "target subject",
                            id: id.to_string(),
                        })?;
                let scope = entry
                    .subject
                    .home_scope
                    .as_ref()
                    .map_or(ROOT_SCOPE, ScopeId::as_str);
                let place = ResolvedPlace {
                    below: false,
                    scope,
                    target: Some(&entry.grants),
                    target_id: Some(key),
                };
                Ok((place, tenant.numbered(scope)))
            }
        }
    }

    /// Answers one check. Allocates nothing on success.
    pub fn check(
        &self,
        tenant: &str,
        q: &Question<'_>,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        self.check_in(self.tenant(tenant)?, q, now)
    }

    /// [`Snapshot::check`] in a tenant already found (a batch finds it
    /// once). Allocates nothing on success.
    pub fn check_in(
        &self,
        state: &TenantState,
        q: &Question<'_>,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        let bit = self.permission_bit("permission", q.permission)?;
        let (place, chain) = self.chained_place(state, q.at)?;
        Ok(state.subjects.get(q.subject).is_some_and(|entry| {
            entry.active
                && state.check_on_chain(&self.compiled, &entry.grants, bit, place, chain, now)
        }))
    }

    /// Answers one check with its derivation or reasons.
    pub fn explain(
        &self,
        tenant: &str,
        q: &Question<'_>,
        now: Timestamp,
    ) -> Result<(bool, Explanation), EngineError> {
        let state = self.tenant(tenant)?;
        let bit = self.permission_bit("permission", q.permission)?;
        let place = self.place(state, q.at)?;
        let subject = state
            .subjects
            .get(q.subject)
            .map(|e| (&*e.subject, &*e.grants));
        Ok(state.explain(&self.compiled, subject, bit, place, now))
    }

    /// A subject's effective permissions: at `scope` if given, else at every
    /// scope and population where one of its roles applies.
    pub fn effective_permissions(
        &self,
        tenant: &str,
        subject: &str,
        scope: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<TargetHoldings>, EngineError> {
        let state = self.tenant(tenant)?;
        let entry = state
            .subjects
            .get(subject)
            .ok_or_else(|| EngineError::NotFound {
                kind: "subject",
                id: subject.to_string(),
            })?;
        let scopes: Vec<ScopeId> = match scope {
            Some(s) => {
                self.place(state, PlaceRef::Scope(s))?;
                vec![
                    ScopeId::try_from(if s.is_empty() { ROOT_SCOPE } else { s })
                        .map_err(|e| invalid("scope", e.reason))?,
                ]
            }
            None => {
                let mut all: Vec<ScopeId> =
                    entry.grants.scopes.iter().map(|e| e.at.clone()).collect();
                all.dedup();
                all
            }
        };
        let traceable = state.traceable(&self.compiled, &entry.subject, &entry.grants);
        let (subject, grants) = (&*entry.subject, &*entry.grants);
        let mut out: Vec<TargetHoldings> = scopes
            .into_iter()
            .map(|s| {
                let held = state.effective_at(
                    &self.compiled,
                    &traceable,
                    ResolvedPlace::scope(s.as_str()),
                    now,
                );
                let below = ResolvedPlace::below(s.as_str());
                let subtree = state.held(&self.compiled, subject, grants, below, now);
                let reach = |bit| {
                    if subtree.contains(bit) {
                        Reach::Subtree
                    } else {
                        Reach::Exact
                    }
                };
                TargetHoldings {
                    scope: Some(s.clone()),
                    population: None,
                    permissions: held
                        .into_iter()
                        .map(|(b, sources)| self.effective(b, reach(b), sources))
                        .collect(),
                }
            })
            .collect();
        if scope.is_none() {
            out.extend(self.population_targets(state, &traceable, now));
        }
        out.retain(|t| !t.permissions.is_empty());
        // Catalog order is ladder order; the contract is name order.
        for t in &mut out {
            t.permissions
                .sort_by(|a, b| a.permission.cmp(&b.permission));
        }
        Ok(out)
    }

    fn effective(&self, bit: PermBit, reach: Reach, sources: Vec<Source>) -> EffectivePermission {
        EffectivePermission {
            permission: self.compiled.catalog.name(bit).to_string(),
            reach,
            sources,
        }
    }

    /// What a subject holds over each population it has a role for: the
    /// permissions it would hold over a subject inside that group.
    fn population_targets(
        &self,
        state: &TenantState,
        traceable: &super::Traceable<'_>,
        now: Timestamp,
    ) -> Vec<TargetHoldings> {
        let mut groups: Vec<_> = traceable
            .grants
            .populations
            .iter()
            .map(|e| e.at.clone())
            .collect();
        groups.dedup();
        groups
            .into_iter()
            .map(|g| {
                let inside =
                    super::SubjectGrants::build(vec![g.clone()], Vec::new(), Vec::new(), |_| 0);
                // A place with no scope: only population grants can apply.
                let place = ResolvedPlace {
                    scope: "",
                    target: Some(&inside),
                    target_id: None,
                    below: false,
                };
                let held = state.effective_at(&self.compiled, traceable, place, now);
                TargetHoldings {
                    scope: None,
                    population: Some(g),
                    permissions: held
                        .into_iter()
                        .map(|(b, sources)| self.effective(b, Reach::Exact, sources))
                        .collect(),
                }
            })
            .collect()
    }

    /// Who holds a permission at a place, in subject id order, after the
    /// subject id `after`, at most `limit`. Returns the holders and whether
    /// more may follow. Checks only the subjects an assignment applying at
    /// the place reaches (see `candidates`), so a page costs in proportion
    /// to those, not to the tenant.
    pub fn holders(
        &self,
        tenant: &str,
        permission: &str,
        at: PlaceRef<'_>,
        after: Option<&str>,
        limit: usize,
        now: Timestamp,
    ) -> Result<(Vec<Holder>, Option<String>), EngineError> {
        let state = self.tenant(tenant)?;
        let bit = self.permission_bit("permission", permission)?;
        let place = self.place(state, at)?;
        let mut holders = Vec::new();
        let mut next = None;
        for id in candidates(state, &self.compiled, bit, place, after) {
            let Some(entry) = state.subjects.get(id) else {
                continue;
            };
            if !state.check(
                &self.compiled,
                &entry.subject,
                &entry.grants,
                bit,
                place,
                now,
            ) {
                continue;
            }
            if holders.len() == limit {
                next = holders.last().map(|h: &Holder| h.subject.clone());
                break;
            }
            let (_, why) = state.explain(
                &self.compiled,
                Some((&entry.subject, &entry.grants)),
                bit,
                place,
                now,
            );
            let (subject, grants) = (&entry.subject, &entry.grants);
            // Over a target subject there is nothing below: the reach is exact.
            let reach = match at {
                PlaceRef::Scope(_) => {
                    state.reach(&self.compiled, subject, grants, bit, place.scope, now)
                }
                PlaceRef::Subject(_) => Reach::Exact,
            };
            holders.push(Holder {
                subject: id.to_string(),
                implied: why.sources.iter().all(|s| !s.implication.is_empty()),
                reach,
                sources: why.sources,
            });
        }
        Ok((holders, next))
    }
}

/// The entries of an ordered map after `after` (exclusive), for paging.
pub fn page_from<'m, K, V>(
    map: &'m OrdMap<K, V>,
    after: Option<&str>,
) -> Box<dyn Iterator<Item = (&'m K, &'m V)> + 'm>
where
    K: Ord + Clone + std::borrow::Borrow<str>,
    V: Clone,
{
    match after {
        Some(a) if !a.is_empty() => {
            Box::new(map.range::<_, str>((Bound::Excluded(a), Bound::Unbounded)))
        }
        _ => Box::new(map.iter()),
    }
}
