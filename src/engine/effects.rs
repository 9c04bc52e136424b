//! The effective consequences of a write: which subjects gained or lost
//! which permission where, computed as the exact difference between each
//! concerned subject's *picture* before and after.
//!
//! A subject's picture is every (permission, target) it holds, where the
//! targets are the scopes at which it has grants (what it holds there,
//! inherited and derived permissions included) and every subject inside one
//! of its populations (what it holds over that subject through them). A
//! subscriber that applies every gain and loss in order keeps an exact copy
//! of all pictures. Expiry does not enter pictures: an expired assignment
//! leaves them when the server removes it (a `RoleExpired` write), so the
//! loss is an event with a revision like any other.
//!
//! Must not know about protobuf or redb.

use std::collections::{BTreeMap, BTreeSet};

use super::eval::Place;
use super::tenant::{Affected, Compiled, TenantState};
use crate::model::{Effect, EffectTarget, GroupId, SubjectId, Target, TenantId, Timestamp};
use crate::schema::PermBit;

/// The instant pictures are evaluated at: before every expiry, so that
/// every assignment still present counts (see the module doc).
const PICTURE_TIME: Timestamp = Timestamp(i64::MIN);

/// What a subject holds, per target, as permission names (names, not bits:
/// a schema change renumbers bits).
pub type Picture = BTreeMap<EffectTarget, BTreeSet<String>>;

/// One tenant's state with the catalog it was compiled against.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The catalog.
    pub compiled: &'a Compiled,
    /// The tenant, or `None` where it does not exist (yet).
    pub state: Option<&'a TenantState>,
}

impl View<'_> {
    fn held(&self, subject: &SubjectId, place: Place<'_>) -> BTreeSet<String> {
        let (Some(state), catalog) = (self.state, &self.compiled.catalog) else {
            return BTreeSet::new();
        };
        let Some(entry) = state.subjects.get(subject) else {
            return BTreeSet::new();
        };
        catalog
            .all()
            .iter()
            .filter(|bit: &PermBit| {
                state.check(
                    self.compiled,
                    &entry.subject,
                    &entry.grants,
                    *bit,
                    place,
                    PICTURE_TIME,
                )
            })
            .map(|bit| catalog.name(bit).to_string())
            .collect()
    }

    /// What `subject` holds over `target` through its populations.
    fn over(&self, subject: &SubjectId, target: &SubjectId) -> BTreeSet<String> {
        let Some(target_entry) = self.state.and_then(|s| s.subjects.get(target)) else {
            return BTreeSet::new();
        };
        let place = Place {
            scope: "",
            target: Some(&target_entry.grants),
            target_id: Some(target),
        };
        self.held(subject, place)
    }

    /// A subject's whole picture.
    pub fn picture(&self, subject: &SubjectId) -> Picture {
        let Some(state) = self.state else {
            return Picture::new();
        };
        let Some(entry) = state.subjects.get(subject) else {
            return Picture::new();
        };
        let mut picture = Picture::new();
        let scopes: BTreeSet<_> = entry.grants.scopes.iter().map(|e| e.at.clone()).collect();
        for scope in scopes {
            let held = self.held(subject, Place::scope(scope.as_str()));
            if !held.is_empty() {
                picture.insert(EffectTarget::Scope(scope), held);
            }
        }
        let populations: BTreeSet<&GroupId> =
            entry.grants.populations.iter().map(|e| &e.at).collect();
        let targets: BTreeSet<SubjectId> = populations
            .into_iter()
            .flat_map(|g| state.subjects_in(g))
            .collect();
        for target in targets {
            let held = self.over(subject, &target);
            if !held.is_empty() {
                picture.insert(EffectTarget::Subject(target), held);
            }
        }
        picture
    }

    /// The subjects holding a role over population `group`.
    fn population_holders(&self, group: &GroupId) -> BTreeSet<SubjectId> {
        let Some(state) = self.state else {
            return BTreeSet::new();
        };
        state
            .assignments
            .keys()
            .filter(|k| k.target == Target::Population(group.clone()))
            .flat_map(|k| state.subjects_of(&k.principal))
            .collect()
    }

    fn groups(&self, subject: &SubjectId) -> BTreeSet<GroupId> {
        self.state
            .and_then(|s| s.subjects.get(subject))
            .map(|e| e.grants.groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn subjects(&self) -> BTreeSet<SubjectId> {
        self.state
            .map(|s| s.subjects.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn push_diff(
    tenant: &TenantId,
    subject: &SubjectId,
    target: &EffectTarget,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
    out: &mut Vec<Effect>,
) {
    let changed = after
        .difference(before)
        .map(|p| (p, true))
        .chain(before.difference(after).map(|p| (p, false)));
    for (permission, gained) in changed {
        // Names come from the catalog, so they always parse.
        if let Ok(permission) = permission.parse() {
            out.push(Effect {
                tenant: tenant.clone(),
                subject: subject.clone(),
                target: target.clone(),
                permission,
                gained,
            });
        }
    }
}

/// The gains and losses between two states of one tenant, given what the
/// write affected: subjects whose grants it recomputed, and those whose
/// answers it changed otherwise (status, deletion).
pub fn diff(
    tenant: &TenantId,
    before: View<'_>,
    after: View<'_>,
    affected: &Affected,
) -> Vec<Effect> {
    let whole: BTreeSet<SubjectId> = if affected.everyone {
        before
            .subjects()
            .union(&after.subjects())
            .cloned()
            .collect()
    } else {
        affected
            .subjects
            .union(&affected.answers)
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    for subject in &whole {
        let (b, a) = (before.picture(subject), after.picture(subject));
        let targets: BTreeSet<&EffectTarget> = b.keys().chain(a.keys()).collect();
        let empty = BTreeSet::new();
        for target in targets {
            let (old, new) = (
                b.get(target).unwrap_or(&empty),
                a.get(target).unwrap_or(&empty),
            );
            push_diff(tenant, subject, target, old, new, &mut out);
        }
    }
    // Subjects moving in or out of a population change what its holders
    // hold over them, though the holders' own grants did not change.
    let mut pairs: BTreeSet<(SubjectId, SubjectId)> = BTreeSet::new();
    for target in &whole {
        let (gb, ga) = (before.groups(target), after.groups(target));
        for group in gb.symmetric_difference(&ga) {
            for holder in before
                .population_holders(group)
                .union(&after.population_holders(group))
            {
                if !whole.contains(holder) {
                    pairs.insert((holder.clone(), target.clone()));
                }
            }
        }
    }
    for (holder, target) in pairs {
        let (b, a) = (before.over(&holder, &target), after.over(&holder, &target));
        push_diff(
            tenant,
            &holder,
            &EffectTarget::Subject(target),
            &b,
            &a,
            &mut out,
        );
    }
    out.sort();
    out
}
