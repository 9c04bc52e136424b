//! Who might hold a permission at a place, in subject id order: the
//! subjects reached by an assignment that applies there and whose role
//! could give it. The holders listing checks only these, so a page costs
//! in proportion to the assignments that apply and the holders it walks,
//! not to the tenant.
//!
//! A candidate is not a holder: the check decides (the subject may be
//! locked, lack a prerequisite, or hold only elsewhere). What this module
//! must guarantee is the converse: every holder is a candidate. Must not
//! evaluate checks itself.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Bound;

use super::eval::ResolvedPlace;
use super::tenant::{Compiled, TenantState};
use crate::model::{GroupId, Principal, ScopeId, SubjectId, Target};
use crate::schema::{PermBit, PermSet};

/// How deep derived rules are followed; the schema refuses cycles, this
/// only bounds a catalog bug (as the check does).
const MAX_RULE_DEPTH: usize = 64;

/// A sorted stream of subject ids.
type Ids<'a> = Box<dyn Iterator<Item = &'a SubjectId> + 'a>;

/// The candidates for `bit` at `place` after the id `after`, ascending,
/// each once.
pub(super) fn candidates<'a>(
    state: &'a TenantState,
    compiled: &Compiled,
    bit: PermBit,
    place: ResolvedPlace<'a>,
    after: Option<&'a str>,
) -> Merge<'a> {
    let support = support(compiled, bit);
    let mut direct: Vec<&'a SubjectId> = Vec::new();
    let mut groups: BTreeSet<&'a GroupId> = BTreeSet::new();
    for target in targets(state, place) {
        let Some(keys) = state.by_target.get(&target) else {
            continue;
        };
        for key in keys {
            let gives = state.role(compiled, key.role.as_str()).is_some_and(|role| {
                role.at_target.intersects(&support)
                    || role.pinned.iter().any(|(_, set)| set.intersects(&support))
            });
            match &key.principal {
                Principal::Subject(s) if gives => direct.push(s),
                Principal::Group(g) if gives => {
                    groups.insert(g);
                }
                _ => {}
            }
        }
    }
    direct.sort();
    direct.dedup();
    let start = direct.partition_point(|s| after.is_some_and(|a| s.as_str() <= a));
    let mut streams: Vec<Ids<'a>> = vec![Box::new(direct.into_iter().skip(start))];
    for group in nested(state, groups) {
        streams.extend(members_after(state, group, after));
    }
    Merge::new(streams)
}

/// `bit` and every permission a derived rule may build it from.
fn support(compiled: &Compiled, bit: PermBit) -> PermSet {
    let catalog = &compiled.catalog;
    let mut set = PermSet::empty(catalog.len());
    let mut stack = vec![(bit, 0usize)];
    while let Some((b, depth)) = stack.pop() {
        if set.contains(b) {
            continue;
        }
        set.insert(b);
        if let Some(rule) = catalog.rule(b).filter(|_| depth < MAX_RULE_DEPTH) {
            stack.extend(rule.terms.iter().map(|t| (*t, depth + 1)));
        }
    }
    set
}

/// The targets an assignment applying at `place` can have: the place's
/// scope and its ancestors, and the populations its target subject is in.
fn targets(state: &TenantState, place: ResolvedPlace<'_>) -> Vec<Target> {
    let mut out = Vec::new();
    let mut scope = ScopeId::try_from(place.scope).ok();
    // The tree is acyclic; the bound only guards the walk.
    for _ in 0..=state.scopes.len() {
        let Some(s) = scope else { break };
        scope = state.parent(s.as_str()).cloned();
        out.push(Target::Scope(s));
    }
    let populations = place.target.into_iter().flat_map(|t| t.groups.iter());
    out.extend(populations.cloned().map(Target::Population));
    out
}

/// `groups` and every group nested in them, each once.
fn nested<'a>(state: &'a TenantState, groups: BTreeSet<&'a GroupId>) -> BTreeSet<&'a GroupId> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&'a GroupId> = groups.into_iter().collect();
    while let Some(g) = stack.pop() {
        if !seen.insert(g) {
            continue;
        }
        stack.extend(state.subgroups.get(g).into_iter().flatten());
    }
    seen
}

/// The direct subject members of `group` and the subjects satisfying its
/// condition, after `after`: two sorted streams.
fn members_after<'a>(
    state: &'a TenantState,
    group: &'a GroupId,
    after: Option<&'a str>,
) -> [Ids<'a>; 2] {
    let explicit: Ids<'a> = match state.members.get(group) {
        Some(members) => {
            // Subjects sort before groups among principals.
            let from = match after.and_then(|a| SubjectId::try_from(a).ok()) {
                Some(a) => Bound::Excluded(Principal::Subject(a)),
                None => Bound::Unbounded,
            };
            // An `after` that is no subject id bounds nothing above; the
            // comparison still skips what sorts before it.
            Box::new(
                members
                    .range((from, Bound::Unbounded))
                    .map_while(|p| match p {
                        Principal::Subject(s) => Some(s),
                        Principal::Group(_) => None,
                    })
                    .skip_while(move |s| after.is_some_and(|a| s.as_str() <= a)),
            )
        }
        None => Box::new(std::iter::empty()),
    };
    let matched: Ids<'a> = match state.matched_members.get(group) {
        Some(subjects) => match after {
            Some(a) => Box::new(subjects.range::<_, str>((Bound::Excluded(a), Bound::Unbounded))),
            None => Box::new(subjects.iter()),
        },
        None => Box::new(std::iter::empty()),
    };
    [explicit, matched]
}

/// The union of sorted streams, ascending, without repeats.
pub(super) struct Merge<'a> {
    streams: Vec<Ids<'a>>,
    /// The head of each stream not yet taken, smallest on top.
    heads: BinaryHeap<Reverse<(&'a SubjectId, usize)>>,
    last: Option<&'a SubjectId>,
}

impl<'a> Merge<'a> {
    fn new(mut streams: Vec<Ids<'a>>) -> Self {
        let heads = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.next().map(|id| Reverse((id, i))))
            .collect();
        Self {
            streams,
            heads,
            last: None,
        }
    }
}

impl<'a> Iterator for Merge<'a> {
    type Item = &'a SubjectId;

    fn next(&mut self) -> Option<&'a SubjectId> {
        while let Some(Reverse((id, i))) = self.heads.pop() {
            if let Some(next) = self.streams.get_mut(i).and_then(Iterator::next) {
                self.heads.push(Reverse((next, i)));
            }
            if self.last != Some(id) {
                self.last = Some(id);
                return Some(id);
            }
        }
        None
    }
}
