//! The effective consequences of a write: which subjects gained or lost
//! which permission where, computed as the exact difference between each
//! concerned subject's *picture* before and after.
//!
//! A subject's picture is every (permission, target, reach) it holds. The
//! targets are the scopes at which it has grants, where it holds what
//! [`TenantState::check`] answers there, each permission with its
//! [`Reach`]: `Subtree` when it also holds at every scope below, `Exact`
//! when only there. Every scope where a subject holds a permission is such
//! a target or lies below one where it holds with reach `Subtree` (a scope
//! without grants of its own holds only what it inherits), so a mirror that
//! answers by the rule of [`Reach`] answers every scope exactly. The other
//! targets are the subjects inside the holder's populations: over each, the
//! permissions the populations give, and the derived permissions that hold
//! over it only by combining them with grants at its home scope. A check
//! over a target subject therefore holds iff the scope rule holds at its
//! home scope or the picture lists the permission over it.
//!
//! A subscriber that applies every gain and loss in order keeps an exact
//! copy of all pictures. Expiry does not enter pictures: an expired
//! assignment leaves them when the server removes it (a `RoleExpired`
//! write), so the loss is an event with a revision like any other.
//!
//! Must not know about protobuf or redb.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use super::eval::ResolvedPlace;
use super::grants::GrantEntry;
use super::tenant::{Affected, Compiled, SubjectEntry, TenantState};
use crate::model::{
    Effect, GroupId, Permission, Place, ROOT_SCOPE, Reach, ScopeId, SubjectId, SubjectStatus,
    Target, TenantId, Timestamp,
};
use crate::schema::{Catalog, PermBit, PermSet};

/// The instant pictures are evaluated at: before every expiry, so that
/// every assignment still present counts (see the module doc).
const PICTURE_TIME: Timestamp = Timestamp(i64::MIN);

/// What a subject holds at one target: permission names (names, not bits:
/// a schema change renumbers bits) with their reach.
pub type Held = BTreeMap<String, Reach>;

/// What a subject holds, per target.
pub type Picture = BTreeMap<Place, Held>;

/// One tenant's state with the catalog it was compiled against.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// The catalog.
    pub compiled: &'a Compiled,
    /// The tenant, or `None` where it does not exist (yet).
    pub state: Option<&'a TenantState>,
}

impl<'a> View<'a> {
    fn entry(&self, subject: &SubjectId) -> Option<(&'a TenantState, &'a SubjectEntry)> {
        let state = self.state?;
        Some((state, state.subjects.get(subject)?))
    }

    /// What `subject` holds at `scope`, with reaches: every permission at
    /// once, as [`TenantState::held`] answers for a listing, where a
    /// check per permission would walk the grants once per bit.
    fn at_scope(&self, subject: &SubjectId, scope: &str) -> Held {
        let Some((state, entry)) = self.entry(subject) else {
            return Held::new();
        };
        let (here, below) = state.held_here_and_below(
            self.compiled,
            &entry.subject,
            &entry.grants,
            scope,
            PICTURE_TIME,
        );
        let catalog = &self.compiled.catalog;
        here.iter()
            .map(|bit| {
                let reach = if below.contains(bit) {
                    Reach::Subtree
                } else {
                    Reach::Exact
                };
                (catalog.name(bit).to_string(), reach)
            })
            .collect()
    }

    /// The scope part of a subject's picture (from its entry in this view)
    /// as bits of this view's catalog: for each scope where it has grants,
    /// in order, what holds there and what of that holds below too (reach
    /// `Subtree`), as [`Self::at_scope`] decides, without naming a
    /// permission. A write reaching a whole group compares these for every
    /// distinct shape of grants; names are given only to what changed.
    fn scope_bits(&self, entry: Option<(&TenantState, &SubjectEntry)>) -> ScopeBits {
        let Some((state, entry)) = entry else {
            return ScopeBits::new();
        };
        let (record, grants) = (&entry.subject, &entry.grants);
        let mut out = ScopeBits::with_capacity(grants.scopes.len());
        let mut last: Option<&ScopeId> = None;
        // Entries are sorted by scope: each scope once.
        for scope in grants.scopes.iter().map(|e| &e.at) {
            if last == Some(scope) {
                continue;
            }
            last = Some(scope);
            let (here, below) = state.held_here_and_below(
                self.compiled,
                record,
                grants,
                scope.as_str(),
                PICTURE_TIME,
            );
            if !here.is_empty() {
                out.push((scope.clone(), here, below));
            }
        }
        out
    }

    /// What `subject` holds over `target` that the scope rule at the
    /// target's home scope does not already answer: what its populations
    /// give, and derived permissions that need both (see the module doc).
    fn over(&self, subject: &SubjectId, target: &SubjectId) -> Held {
        let (Some((state, entry)), Some((_, target_entry))) =
            (self.entry(subject), self.entry(target))
        else {
            return Held::new();
        };
        let home = target_entry
            .subject
            .home_scope
            .as_ref()
            .map_or(ROOT_SCOPE, ScopeId::as_str);
        // A place with no scope: only population grants can apply.
        let through = ResolvedPlace {
            scope: "",
            target: Some(&target_entry.grants),
            target_id: Some(target),
            below: false,
        };
        let whole = ResolvedPlace {
            scope: home,
            ..through
        };
        let catalog = &self.compiled.catalog;
        let check = |bit, place| {
            state.check(
                self.compiled,
                &entry.subject,
                &entry.grants,
                bit,
                place,
                PICTURE_TIME,
            )
        };
        catalog
            .all()
            .iter()
            .filter(|bit| {
                // A level or action holds over the target iff the scope chain
                // or a population gives it; only a derived rule can combine
                // the two into something neither gives alone.
                check(*bit, through)
                    || (catalog.rule(*bit).is_some()
                        && check(*bit, whole)
                        && !check(*bit, ResolvedPlace::scope(home)))
            })
            .map(|bit| (catalog.name(bit).to_string(), Reach::Exact))
            .collect()
    }

    /// A subject's whole picture.
    pub fn picture(&self, subject: &SubjectId) -> Picture {
        let Some((state, entry)) = self.entry(subject) else {
            return Picture::new();
        };
        let mut picture = Picture::new();
        let scopes: BTreeSet<_> = entry.grants.scopes.iter().map(|e| e.at.clone()).collect();
        for scope in scopes {
            let held = self.at_scope(subject, scope.as_str());
            if !held.is_empty() {
                picture.insert(Place::Scope(scope), held);
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
                picture.insert(Place::Subject(target), held);
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
            .assignments_at(&Target::Population(group.clone()))
            .flat_map(|k| state.subjects_of(&k.principal))
            .collect()
    }

    fn groups(&self, subject: &SubjectId) -> BTreeSet<GroupId> {
        self.entry(subject)
            .map(|(_, e)| e.grants.groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn home(&self, subject: &SubjectId) -> Option<ScopeId> {
        self.entry(subject)
            .and_then(|(_, e)| e.subject.home_scope.clone())
    }

    fn subjects(&self) -> BTreeSet<SubjectId> {
        self.state
            .map(|s| s.subjects.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// One gain or loss of a subject, without the subject: what two pictures
/// differ by.
type Delta = (Place, Permission, bool, Reach);

/// The gains and losses at `target` between what was held there and what
/// is, in name order, losses before gains.
fn held_deltas(target: &Place, before: &Held, after: &Held, out: &mut Vec<Delta>) {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let (old, new) = (before.get(name), after.get(name));
        if old == new {
            continue;
        }
        // Names come from the catalog, so they always parse.
        let Ok(permission) = name.parse::<Permission>() else {
            continue;
        };
        // A change of reach is a loss and a gain (see `Effect`).
        let changes = [(old, false), (new, true)];
        for (reach, gained) in changes {
            if let Some(reach) = reach {
                out.push((target.clone(), permission.clone(), gained, *reach));
            }
        }
    }
}

/// Every gain and loss between two pictures.
fn picture_deltas(before: &Picture, after: &Picture) -> Vec<Delta> {
    let targets: BTreeSet<&Place> = before.keys().chain(after.keys()).collect();
    let empty = Held::new();
    let mut out = Vec::new();
    for target in targets {
        let (old, new) = (
            before.get(target).unwrap_or(&empty),
            after.get(target).unwrap_or(&empty),
        );
        held_deltas(target, old, new, &mut out);
    }
    out
}

/// A subject's picture at scopes, in bits of one catalog (see
/// [`View::scope_bits`]): scope, what holds there, what holds below it.
type ScopeBits = Vec<(ScopeId, PermSet, PermSet)>;

/// Each bit's permission in one catalog, parsed once per diff.
struct Names(Vec<Option<Permission>>);

impl Names {
    fn new(catalog: &Catalog) -> Self {
        Names(
            (0..catalog.len())
                .map(|i| PermBit::from_index(i).and_then(|bit| catalog.name(bit).parse().ok()))
                .collect(),
        )
    }

    fn get(&self, bit: PermBit) -> Option<&Permission> {
        self.0.get(bit.index()).and_then(Option::as_ref)
    }
}

/// Every gain and loss between two scope pictures of one catalog: what
/// [`picture_deltas`] finds between the same pictures named.
fn scope_bit_deltas(before: &ScopeBits, after: &ScopeBits, names: &Names, out: &mut Vec<Delta>) {
    type Side<'a> = Option<&'a (ScopeId, PermSet, PermSet)>;
    let reach = |side: Side<'_>, bit| {
        side.filter(|(_, here, _)| here.contains(bit))
            .map(|(_, _, below)| {
                if below.contains(bit) {
                    Reach::Subtree
                } else {
                    Reach::Exact
                }
            })
    };
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        let order = match (old.peek(), new.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((b, ..)), Some((a, ..))) => b.cmp(a),
        };
        let (b, a): (Side<'_>, Side<'_>) = match order {
            Ordering::Less => (old.next(), None),
            Ordering::Greater => (None, new.next()),
            Ordering::Equal => (old.next(), new.next()),
        };
        let Some((scope, ..)) = b.or(a) else {
            return;
        };
        let mut bits = b.map(|(_, here, _)| here.clone()).unwrap_or_default();
        if let Some((_, here, _)) = a {
            bits.union_with(here);
        }
        for bit in bits.iter() {
            let (was, is) = (reach(b, bit), reach(a, bit));
            if was == is {
                continue;
            }
            let Some(permission) = names.get(bit) else {
                continue;
            };
            // A change of reach is a loss and a gain (see `Effect`).
            for (reach, gained) in [(was, false), (is, true)] {
                if let Some(reach) = reach {
                    out.push((
                        Place::Scope(scope.clone()),
                        permission.clone(),
                        gained,
                        reach,
                    ));
                }
            }
        }
    }
}

/// `deltas` in the order of the effects they become (see [`diff`]).
fn sorted(mut deltas: Vec<Delta>) -> Vec<Delta> {
    deltas.sort_unstable();
    deltas
}

/// The deltas as `subject`'s effects.
fn push_effects(tenant: &TenantId, subject: &SubjectId, deltas: &[Delta], out: &mut Vec<Effect>) {
    out.extend(
        deltas
            .iter()
            .map(|(target, permission, gained, reach)| Effect {
                tenant: tenant.clone(),
                subject: subject.clone(),
                target: target.clone(),
                permission: permission.clone(),
                gained: *gained,
                reach: *reach,
            }),
    );
}

/// What a subject's picture in one view is a function of, when it is one
/// of its grants at scopes and its status alone: grants over no population
/// (a picture over populations names the subjects in them, the subject
/// itself among them). Most members of a large group hold the same grants
/// (those of the same few groups), so a write reaching a whole group
/// computes each distinct picture once instead of once per member.
type Shape<'a> = Option<(&'a [GrantEntry<ScopeId>], SubjectStatus)>;

/// Where a shape's grants are, with its status.
type Address = Option<(*const GrantEntry<ScopeId>, SubjectStatus)>;

/// The deltas computed for each pair of shapes (before, after), found by
/// the grants' allocations first (subjects with the same groups share
/// one), then by their content (hashing a subject's grants costs more than
/// comparing two pointers, less than computing two pictures). A content's
/// hash is taken once: the map of contents is keyed by it, so growing the
/// map never hashes grants again.
#[derive(Default)]
struct Shared<'a> {
    hasher: foldhash::fast::RandomState,
    by_content: HashMap<u64, Vec<(Shape<'a>, Shape<'a>, usize)>, foldhash::fast::RandomState>,
    by_allocation: HashMap<(Address, Address), usize, foldhash::fast::RandomState>,
    deltas: Vec<Vec<Delta>>,
}

impl<'a> Shared<'a> {
    fn deltas(
        &mut self,
        before: Shape<'a>,
        after: Shape<'a>,
        compute: impl FnOnce() -> Vec<Delta>,
    ) -> &[Delta] {
        let address = |shape: Shape<'_>| shape.map(|(grants, status)| (grants.as_ptr(), status));
        let by_address = (address(before), address(after));
        let index = match self.by_allocation.get(&by_address) {
            Some(&index) => index,
            None => {
                let same = self
                    .by_content
                    .entry(self.hasher.hash_one((before, after)))
                    .or_default();
                let index = match same.iter().find(|(b, a, _)| (*b, *a) == (before, after)) {
                    Some(&(_, _, index)) => index,
                    None => {
                        self.deltas.push(sorted(compute()));
                        let index = self.deltas.len() - 1;
                        same.push((before, after, index));
                        index
                    }
                };
                self.by_allocation.insert(by_address, index);
                index
            }
        };
        self.deltas.get(index).map_or(&[], Vec::as_slice)
    }
}

/// The shape of a subject's picture in a view, from its entry there;
/// `None` inside when it is absent, `None` outside when its picture depends
/// on more.
fn shape<'a>(entry: Option<(&'a TenantState, &'a SubjectEntry)>) -> Option<Shape<'a>> {
    match entry {
        None => Some(None),
        Some((_, e)) if e.grants.populations.is_empty() => {
            Some(Some((&e.grants.scopes, e.subject.status)))
        }
        Some(_) => None,
    }
}

/// The gains and losses between two states of one tenant, given what the
/// write affected: subjects whose grants it recomputed, and those whose
/// answers it changed otherwise (status, home scope, deletion).
pub fn diff(
    tenant: &TenantId,
    before: View<'_>,
    after: View<'_>,
    affected: &Affected,
) -> Vec<Effect> {
    let mut whole: Vec<SubjectId> = if affected.everyone {
        before
            .subjects()
            .into_iter()
            .chain(after.subjects())
            .collect()
    } else {
        let (grants, answers) = (&affected.subjects, &affected.answers);
        let mut whole = Vec::with_capacity(grants.len() + answers.len());
        whole.extend(grants.iter().chain(answers).cloned());
        whole
    };
    // Two sorted runs: a stable sort merges them.
    whole.sort();
    whole.dedup();
    // Bits compare only within one catalog; a schema change names them.
    let names = Arc::ptr_eq(&before.compiled.catalog, &after.compiled.catalog)
        .then(|| Names::new(&after.compiled.catalog));
    let mut out = Vec::with_capacity(whole.len());
    let mut shared = Shared::default();
    // Subjects moving in or out of a population change what its holders
    // hold over them, though the holders' own grants did not change; so does
    // a member's move to another home scope (derived permissions over it
    // may combine population grants with grants there).
    let mut moved: Vec<&SubjectId> = Vec::new();
    for subject in &whole {
        let (b, a) = (before.entry(subject), after.entry(subject));
        let stayed = match (b, a) {
            (Some((_, b)), Some((_, a))) => {
                b.grants.groups == a.grants.groups && b.subject.home_scope == a.subject.home_scope
            }
            _ => false,
        };
        if !stayed {
            moved.push(subject);
        }
        let deltas = || picture_deltas(&before.picture(subject), &after.picture(subject));
        match (shape(b), shape(a)) {
            (Some(shape_before), Some(shape_after)) => {
                // Pictures of scopes alone: compared as bits.
                let scoped = || match &names {
                    Some(names) => {
                        let mut out = Vec::new();
                        let (old, new) = (before.scope_bits(b), after.scope_bits(a));
                        scope_bit_deltas(&old, &new, names, &mut out);
                        out
                    }
                    None => deltas(),
                };
                let deltas = shared.deltas(shape_before, shape_after, scoped);
                push_effects(tenant, subject, deltas, &mut out);
            }
            _ => push_effects(tenant, subject, &sorted(deltas()), &mut out),
        }
    }
    let mut pairs: BTreeSet<(SubjectId, SubjectId)> = BTreeSet::new();
    for target in moved {
        let (gb, ga) = (before.groups(target), after.groups(target));
        let groups: BTreeSet<&GroupId> = if before.home(target) == after.home(target) {
            gb.symmetric_difference(&ga).collect()
        } else {
            gb.union(&ga).collect()
        };
        for group in groups {
            for holder in before
                .population_holders(group)
                .union(&after.population_holders(group))
            {
                if whole.binary_search(holder).is_err() {
                    pairs.insert((holder.clone(), target.clone()));
                }
            }
        }
    }
    for (holder, target) in pairs {
        let (b, a) = (before.over(&holder, &target), after.over(&holder, &target));
        let mut deltas = Vec::new();
        held_deltas(&Place::Subject(target), &b, &a, &mut deltas);
        push_effects(tenant, &holder, &sorted(deltas), &mut out);
    }
    // Each subject's deltas are sorted as its effects sort (a delta is an
    // effect's fields after the tenant and the subject, in their order),
    // and the subjects come in order: once for the concerned subjects,
    // then for the holders over the subjects that moved. The stable sort
    // merges those two runs in linear time where a sort of the whole would
    // compare a hundred thousand effects, strings and all, many times each.
    if !out.is_sorted() {
        out.sort();
    }
    out
}
