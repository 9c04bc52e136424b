//! One tenant's directory held in memory, with the indexes and the
//! per-subject compiled grants that evaluation reads.
//!
//! Every collection is a persistent (structurally shared) map, so a writer
//! clones a `TenantState` in O(1), changes the copy, and publishes it while
//! readers keep using the old one. Applying a change never fails: changes
//! arrive already validated by [`super::plan`] (or from the store, which
//! only holds validated changes). Must not know about redb or protobuf.

use crate::limits::MAX_RECENTLY_EXPIRED;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

/// The tenant's hashed maps: imbl's hash trie with foldhash rather than
/// SipHash. Every check hashes a subject id and a scope id, and every write
/// hashes several ids per subject it touches; SipHash's rounds cost more
/// than the trie's probes at this key size. foldhash is the hasher
/// hashbrown (and so std's `HashMap` ecosystem) defaults to: maintained,
/// dependency-free, randomly seeded per process and per map, so ids
/// chosen by a client still land unpredictably.
pub type HashMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

use super::condition::Condition;
use super::few::Few;
use super::grants::{GrantEntry, SubjectGrants};
use super::roles::CompiledRole;
use crate::model::{
    Assignment, AssignmentKey, Change, Group, GroupId, Membership, Principal, Role, RoleId, Scope,
    ScopeId, Subject, SubjectId, SubjectStatus, Target, TenantSettings, Timestamp,
};
use crate::schema::{Catalog, PermSet};

/// A subject with its memoised grants.
#[derive(Debug, Clone)]
pub struct SubjectEntry {
    /// The directory record.
    pub subject: Arc<Subject>,
    /// Whether the record's status is active: what every check asks of
    /// the record, kept beside the grants so that a check does not follow
    /// the record's pointer (a cache miss per check among a million
    /// subjects).
    pub active: bool,
    /// Everything its roles give it, recomputed whenever a write could change
    /// it (memberships, assignments, role definitions, the schema).
    pub grants: Arc<SubjectGrants>,
}

/// The catalog plus the schema's builtin roles, compiled once per schema.
#[derive(Debug)]
pub struct Compiled {
    /// The permission catalog.
    pub catalog: Arc<Catalog>,
    /// Builtin roles, compiled. Builtin roles whose grants are unknown cannot
    /// occur: the schema validates them.
    pub builtin: std::collections::HashMap<RoleId, Arc<CompiledRole>>,
}

impl Compiled {
    /// Compiles the builtin roles of `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let builtin = catalog
            .roles()
            .values()
            .filter_map(|role| {
                CompiledRole::compile(&catalog, Arc::new(role.clone()), true)
                    .ok()
                    .map(|c| (role.id.clone(), Arc::new(c)))
            })
            .collect();
        Self { catalog, builtin }
    }
}

/// One tenant's state.
#[derive(Debug, Clone)]
pub struct TenantState {
    /// The settings as stored.
    pub settings: TenantSettings,
    /// Every permission of a switched-off resource type; checks deny these.
    pub disabled: PermSet,
    /// Subjects by id, hashed: finding one among a million is a few
    /// probes of a hash trie, where an ordered map compares the id with a
    /// score of others (each a pointer to follow). Every check and every
    /// recomputed subject looks one up.
    pub subjects: HashMap<SubjectId, SubjectEntry>,
    /// The subjects' records in id order: what listing them pages through.
    /// Holds no grants, so recomputing grants never touches it.
    pub in_order: OrdMap<SubjectId, Arc<Subject>>,
    /// Scopes by id, the root excluded.
    pub scopes: OrdMap<ScopeId, Arc<Scope>>,
    /// Each scope's ancestor chain, itself first and the root last, the
    /// root's own included: kept current on every scope write so that a
    /// check walks a slice instead of one ordered-map lookup per level.
    pub chains: HashMap<ScopeId, Chain>,
    /// The number each scope id was given when first created (the root's
    /// is 0), kept when the scope is deleted so that an id always has the
    /// same number: grants and chains compare numbers.
    pub scope_numbers: HashMap<ScopeId, u32>,
    /// The children of each scope, the root's included (reverse of each
    /// scope's `parent`): whether a scope may be deleted is a lookup.
    pub children: HashMap<ScopeId, OrdSet<ScopeId>>,
    /// The subjects whose home scope each scope is, for the same reason.
    pub homed: HashMap<ScopeId, OrdSet<SubjectId>>,
    /// Groups by id.
    pub groups: OrdMap<GroupId, Arc<Group>>,
    /// Custom roles, compiled.
    pub roles: OrdMap<RoleId, Arc<CompiledRole>>,
    /// Direct members of each group.
    pub members: HashMap<GroupId, OrdSet<Principal>>,
    /// The groups each principal is a direct member of (reverse of
    /// `members`); [`Few`] because there is an entry per subject.
    pub member_of: HashMap<Principal, Few<GroupId>>,
    /// The groups directly inside each group (the group part of
    /// `members`): walking down nested groups without visiting their
    /// subjects.
    pub subgroups: HashMap<GroupId, OrdSet<GroupId>>,
    /// Compiled conditions of condition groups.
    pub conditions: HashMap<GroupId, Arc<Condition>>,
    /// The condition groups each subject satisfies; kept current on every
    /// subject and group write so checks never evaluate a condition.
    pub matched: HashMap<SubjectId, OrdSet<GroupId>>,
    /// The subjects satisfying each condition group (reverse of `matched`).
    pub matched_members: HashMap<GroupId, OrdSet<SubjectId>>,
    /// Assignments by key.
    pub assignments: OrdMap<AssignmentKey, Assignment>,
    /// The keys of each principal's own assignments; [`Few`] for the same
    /// reason as `member_of`.
    pub by_principal: HashMap<Principal, Few<AssignmentKey>>,
    /// The keys of each role's assignments.
    pub by_role: HashMap<RoleId, OrdSet<AssignmentKey>>,
    /// The keys of the assignments at each target, so that who holds
    /// through a population, or what a scope or group still carries, is a
    /// lookup rather than a scan of every assignment of the tenant.
    pub by_target: HashMap<Target, OrdSet<AssignmentKey>>,
    /// Assignments that expire, soonest first: what the expiry timer waits
    /// for, without scanning every assignment.
    pub expiring: OrdSet<(Timestamp, AssignmentKey)>,
    /// The latest assignments the expiry timer removed, by expiry instant,
    /// at most [`MAX_RECENTLY_EXPIRED`] (the oldest go first): explain says
    /// `ASSIGNMENT_EXPIRED` for them rather than `NO_GRANT`. Only in memory,
    /// so forgotten on restart; one assigned again, unassigned, or whose
    /// principal is deleted leaves.
    pub recently_expired: OrdMap<(Timestamp, AssignmentKey), Assignment>,
}

/// The grants of a subject not computed yet: one shared value, not an
/// allocation per subject that a start-up load would free a moment later
/// for each of a million subjects.
static NO_GRANTS: std::sync::LazyLock<Arc<SubjectGrants>> =
    std::sync::LazyLock::new(|| Arc::new(SubjectGrants::default()));

/// The maps of a tenant that hold only what the subject and membership
/// records say, needing no other map to be built: a start-up load builds
/// them on a second thread, beside the applying one (see
/// [`TenantState::adopt`]).
#[derive(Debug, Default)]
pub(super) struct Ordered {
    in_order: OrdMap<SubjectId, Arc<Subject>>,
    members: HashMap<GroupId, OrdSet<Principal>>,
    member_of: HashMap<Principal, Few<GroupId>>,
    subgroups: HashMap<GroupId, OrdSet<GroupId>>,
}

/// What a record adds to [`Ordered`]: a subject's record, or a membership
/// with the held copies of its ids.
#[derive(Debug)]
pub(super) enum OrderedRecord {
    /// A subject, the same record the subjects' map holds.
    Subject(Arc<Subject>),
    /// A group and its member.
    Member(GroupId, Principal),
}

impl Ordered {
    /// Adds one record.
    pub(super) fn put(&mut self, record: OrderedRecord) {
        match record {
            OrderedRecord::Subject(subject) => {
                self.in_order.insert(subject.id.clone(), subject);
            }
            OrderedRecord::Member(group, member) => {
                add_member(
                    &mut self.members,
                    &mut self.member_of,
                    &mut self.subgroups,
                    group,
                    member,
                );
            }
        }
    }
}

/// Adds `member` to `group` in the three membership indexes.
fn add_member(
    members: &mut HashMap<GroupId, OrdSet<Principal>>,
    member_of: &mut HashMap<Principal, Few<GroupId>>,
    subgroups: &mut HashMap<GroupId, OrdSet<GroupId>>,
    group: GroupId,
    member: Principal,
) {
    insert_index(members, group.clone(), member.clone());
    if let Principal::Group(inner) = &member {
        insert_index(subgroups, group.clone(), inner.clone());
    }
    insert_index(member_of, member, group);
}

/// A scope's ancestors, itself first and the root last.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Their ids.
    pub ids: Arc<[ScopeId]>,
    /// Their numbers (see [`TenantState::scope_numbers`]).
    pub numbers: Arc<[u32]>,
}

/// The root scope's number.
const ROOT_NUMBER: u32 = 0;

/// The number of a scope id never created (and of every id past the
/// four-billionth, which no tenant reaches): no chain holds it.
pub const UNNUMBERED: u32 = u32::MAX;

/// Fewest subjects per thread when grants are recomputed in parallel:
/// below it a thread costs more than it saves.
const PARALLEL_RECOMPUTE_MIN: usize = 4096;

/// The cores this process may use, asked once: the standard library reads
/// the cgroup files on every call, which cost milliseconds per write that
/// recomputes grants (an import chunk's, say).
static CORES: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, usize::from));

/// The subjects whose grants a batch of changes may have altered.
#[derive(Debug, Default)]
pub struct Affected {
    /// Subjects to recompute.
    pub subjects: BTreeSet<SubjectId>,
    /// Set when every subject must be recomputed (schema or scope moves,
    /// switched modules).
    pub everyone: bool,
    /// Subjects whose grants did not change but whose answers may have:
    /// locked or unlocked, moved to another home scope, or deleted.
    pub answers: BTreeSet<SubjectId>,
}

impl Affected {
    /// Notes that `subject`'s grants may have changed; nothing to note once
    /// everyone is recomputed (a start-up load never fills the sets).
    fn note(&mut self, subject: SubjectId) {
        if !self.everyone {
            self.subjects.insert(subject);
        }
    }

    /// Notes every subject a principal stands for, without walking a
    /// group's members once everyone is recomputed.
    fn note_principal(&mut self, state: &TenantState, principal: &Principal) {
        if !self.everyone {
            merge(&mut self.subjects, state.subjects_of(principal));
        }
    }

    /// Notes a subject whose answers, not grants, may have changed.
    fn note_answers(&mut self, subject: SubjectId) {
        if !self.everyone {
            self.answers.insert(subject);
        }
    }

    /// Adds what a later change affected.
    pub fn absorb(&mut self, later: Affected) {
        merge(&mut self.subjects, later.subjects);
        merge(&mut self.answers, later.answers);
        self.everyone |= later.everyone;
    }
}

/// Adds `from` to `into`: as one bulk merge when `from` is at least as
/// large (a group-wide write's members, not an insert per member), else one
/// insert each (a merge rebuilds `into`, which a batch of many small
/// additions would pay for each of them).
pub(super) fn merge<C: Mergeable>(into: &mut C, mut from: C) {
    if from.len() >= into.len() {
        into.append(&mut from);
    } else {
        into.extend(from);
    }
}

/// The ordered collections [`merge`] joins: both keep the later value of
/// an equal key, whether appended or extended.
pub(super) trait Mergeable: IntoIterator + Extend<<Self as IntoIterator>::Item> {
    /// How many entries it holds.
    fn len(&self) -> usize;
    /// Moves every entry of `other` in, as one merge.
    fn append(&mut self, other: &mut Self);
}

impl<T: Ord> Mergeable for BTreeSet<T> {
    fn len(&self) -> usize {
        BTreeSet::len(self)
    }
    fn append(&mut self, other: &mut Self) {
        BTreeSet::append(self, other);
    }
}

impl<K: Ord, V> Mergeable for BTreeMap<K, V> {
    fn len(&self) -> usize {
        BTreeMap::len(self)
    }
    fn append(&mut self, other: &mut Self) {
        BTreeMap::append(self, other);
    }
}

/// The sets the tenant's indexes map keys to.
trait IndexSet<V>: Default {
    fn put(&mut self, value: V);
    fn take(&mut self, value: &V);
    fn is_void(&self) -> bool;
}

/// The same three calls for every set type an index uses.
macro_rules! index_set {
    ($set:ident) => {
        impl<V: Ord + Clone> IndexSet<V> for $set<V> {
            fn put(&mut self, value: V) {
                self.insert(value);
            }
            fn take(&mut self, value: &V) {
                self.remove(value);
            }
            fn is_void(&self) -> bool {
                self.is_empty()
            }
        }
    };
}

index_set!(OrdSet);
index_set!(Few);

fn insert_index<K, V, S>(index: &mut HashMap<K, S>, key: K, value: V)
where
    K: std::hash::Hash + Eq + Clone,
    S: IndexSet<V> + Clone,
{
    index.entry(key).or_default().put(value);
}

fn remove_index<K, V, S>(index: &mut HashMap<K, S>, key: &K, value: &V)
where
    K: std::hash::Hash + Eq + Clone,
    S: IndexSet<V> + Clone,
{
    if let Some(set) = index.get_mut(key) {
        set.take(value);
        if set.is_void() {
            index.remove(key);
        }
    }
}

impl TenantState {
    /// An empty tenant with default settings.
    pub fn new(compiled: &Compiled) -> Self {
        Self {
            settings: TenantSettings::default(),
            disabled: PermSet::empty(compiled.catalog.len()),
            subjects: HashMap::new(),
            in_order: OrdMap::new(),
            scopes: OrdMap::new(),
            chains: HashMap::new().update(
                ScopeId::root(),
                Chain {
                    ids: Arc::from([ScopeId::root()]),
                    numbers: Arc::from([ROOT_NUMBER]),
                },
            ),
            scope_numbers: HashMap::new().update(ScopeId::root(), ROOT_NUMBER),
            children: HashMap::new(),
            homed: HashMap::new(),
            groups: OrdMap::new(),
            roles: OrdMap::new(),
            members: HashMap::new(),
            member_of: HashMap::new(),
            subgroups: HashMap::new(),
            conditions: HashMap::new(),
            matched: HashMap::new(),
            matched_members: HashMap::new(),
            assignments: OrdMap::new(),
            by_principal: HashMap::new(),
            by_role: HashMap::new(),
            by_target: HashMap::new(),
            expiring: OrdSet::new(),
            recently_expired: OrdMap::new(),
        }
    }

    /// A role by id: custom roles first, then the schema's builtin roles.
    pub fn role<'a>(&'a self, compiled: &'a Compiled, id: &str) -> Option<&'a Arc<CompiledRole>> {
        self.roles.get(id).or_else(|| compiled.builtin.get(id))
    }

    /// Whether a scope exists (the root always does).
    pub fn has_scope(&self, id: &str) -> bool {
        // Every scope and the root have a chain: a hash probe, where the
        // ordered map of scopes compares the id with several others.
        self.chains.contains_key(id)
    }

    /// The parent of a scope; `None` for the root and unknown scopes.
    pub fn parent(&self, id: &str) -> Option<&ScopeId> {
        self.scopes.get(id).map(|s| &s.parent)
    }

    /// Whether `scope` is `ancestor` or lies below it.
    pub fn is_within(
        &self,
        scope: &(impl std::borrow::Borrow<str> + ?Sized),
        ancestor: &(impl std::borrow::Borrow<str> + ?Sized),
    ) -> bool {
        let ancestor = ancestor.borrow();
        let scope = scope.borrow();
        scope == ancestor || self.chain(scope).iter().any(|s| s.as_str() == ancestor)
    }

    /// The ancestor chain of `scope`, itself first and the root last;
    /// empty for an unknown scope.
    pub fn chain(&self, scope: &str) -> &[ScopeId] {
        self.chains.get(scope).map_or(&[], |c| &*c.ids)
    }

    /// The numbers of `scope`'s ancestor chain; empty for an unknown scope.
    pub fn numbered(&self, scope: &str) -> &[u32] {
        self.chains.get(scope).map_or(&[], |c| &*c.numbers)
    }

    /// The number of a scope id; [`UNNUMBERED`] for an id never created,
    /// which no chain holds.
    pub fn scope_number(&self, scope: &str) -> u32 {
        self.scope_numbers.get(scope).copied().unwrap_or(UNNUMBERED)
    }

    /// Gives `scope` a number if it has none.
    fn number_scope(&mut self, scope: &ScopeId) {
        if !self.scope_numbers.contains_key(scope) {
            let next = u32::try_from(self.scope_numbers.len()).unwrap_or(UNNUMBERED);
            self.scope_numbers.insert(scope.clone(), next);
        }
    }

    /// `scope` and its ancestors up to the root, nearest first (an unknown
    /// scope is its own chain).
    pub fn ancestors<'a>(&'a self, scope: &'a str) -> Vec<&'a str> {
        match self.chains.get(scope) {
            Some(chain) => chain.ids.iter().map(ScopeId::as_str).collect(),
            None => vec![scope],
        }
    }

    /// Recomputes the chains of `scope` and of every scope below it, after
    /// it was created or moved. A parent not known yet (a start-up load
    /// meets a moved scope before its new parent) ends the chain; putting
    /// that parent later recomputes it.
    fn rechain(&mut self, scope: &ScopeId) {
        let mut stack = vec![scope.clone()];
        // The tree is acyclic (moves that would close a cycle are refused),
        // but bound the walk by the number of scopes anyway.
        let mut budget = self.scopes.len() + 1;
        while let Some(s) = stack.pop() {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let mut ids = vec![s.clone()];
            let mut numbers = vec![self.scope_number(s.as_str())];
            if let Some(parent) = self.parent(s.as_str()) {
                match self.chains.get(parent) {
                    Some(above) => {
                        ids.extend(above.ids.iter().cloned());
                        numbers.extend(above.numbers.iter().copied());
                    }
                    None => {
                        let parent = parent.clone();
                        self.number_scope(&parent);
                        numbers.push(self.scope_number(parent.as_str()));
                        ids.push(parent);
                    }
                }
            }
            let chain = Chain {
                ids: Arc::from(ids),
                numbers: Arc::from(numbers),
            };
            self.chains.insert(s.clone(), chain);
            stack.extend(self.children.get(&s).into_iter().flatten().cloned());
        }
    }

    /// Whether a principal exists.
    pub fn has_principal(&self, p: &Principal) -> bool {
        match p {
            Principal::Subject(s) => self.subjects.contains_key(s),
            Principal::Group(g) => self.groups.contains_key(g),
        }
    }

    /// The groups `principal` is in without nesting: explicitly, or for a
    /// subject by condition (a group may come twice).
    pub fn direct_groups<'a>(&'a self, principal: &Principal) -> impl Iterator<Item = &'a GroupId> {
        let matched = match principal {
            Principal::Subject(s) => self.matched.get(s),
            Principal::Group(_) => None,
        };
        let explicit = self.member_of.get(principal).into_iter().flatten();
        explicit.chain(matched.into_iter().flatten())
    }

    /// Every group `principal` belongs to, directly or through nesting, with
    /// the chain of groups that leads there (the group itself last).
    pub fn groups_of(&self, principal: &Principal) -> Vec<(GroupId, Vec<GroupId>)> {
        let mut out: Vec<(GroupId, Vec<GroupId>)> = Vec::new();
        let mut queue: VecDeque<(GroupId, Vec<GroupId>)> = self
            .direct_groups(principal)
            .map(|g| (g.clone(), vec![g.clone()]))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some((group, path)) = queue.pop_front() {
            if !seen.insert(group.clone()) {
                continue;
            }
            for parent in self
                .member_of
                .get(&Principal::Group(group.clone()))
                .into_iter()
                .flatten()
            {
                let mut next = path.clone();
                next.push(parent.clone());
                queue.push_back((parent.clone(), next));
            }
            out.push((group, path));
        }
        out
    }

    /// Every group `principal` belongs to, directly or through nesting,
    /// nearest first: [`TenantState::groups_of`] without the chains, which
    /// computing a subject's grants does not need.
    pub fn all_groups(&self, principal: &Principal) -> Vec<GroupId> {
        let mut out: Vec<GroupId> = Vec::new();
        let mut queue: VecDeque<&GroupId> = self.direct_groups(principal).collect();
        while let Some(group) = queue.pop_front() {
            // A subject is in a handful of groups: a scan beats a set.
            if out.contains(group) {
                continue;
            }
            out.push(group.clone());
            let parents = self.member_of.get(&Principal::Group(group.clone()));
            queue.extend(parents.into_iter().flatten());
        }
        out
    }

    /// Every subject in `group`, directly or through nested groups.
    pub fn subjects_in(&self, group: &GroupId) -> BTreeSet<SubjectId> {
        let mut subjects = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![group.clone()];
        while let Some(g) = stack.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            subjects.extend(self.matched_members.get(&g).into_iter().flatten().cloned());
            for member in self.members.get(&g).into_iter().flatten() {
                match member {
                    Principal::Subject(s) => {
                        subjects.insert(s.clone());
                    }
                    Principal::Group(inner) => stack.push(inner.clone()),
                }
            }
        }
        subjects
    }

    /// The keys of the assignments at `target`.
    pub fn assignments_at(&self, target: &Target) -> impl Iterator<Item = &AssignmentKey> {
        self.by_target.get(target).into_iter().flatten()
    }

    /// The subjects a principal stands for.
    pub fn subjects_of(&self, p: &Principal) -> BTreeSet<SubjectId> {
        match p {
            Principal::Subject(s) => BTreeSet::from([s.clone()]),
            Principal::Group(g) => self.subjects_in(g),
        }
    }

    /// Applies one validated change, noting whose grants it may alter.
    pub fn apply(&mut self, compiled: &Compiled, change: &Change, affected: &mut Affected) {
        match change {
            Change::TenantPut(settings) => {
                // A switched-off type holds nothing, prerequisites included:
                // everyone's answers, and which roles count, may change.
                affected.everyone |= self.settings != *settings;
                self.settings = settings.clone();
                self.disabled = disabled_mask(compiled, settings);
            }
            Change::SubjectPut(subject) => self.put_subject(Arc::new(subject.clone()), affected),
            Change::SubjectDeleted(id) => {
                self.forget_expired(|k| k.principal == Principal::Subject(id.clone()));
                affected.note_answers(id.clone());
                self.in_order.remove(id);
                if let Some(old) = self.subjects.remove(id) {
                    self.move_home(id, old.subject.home_scope.as_ref(), None);
                }
                self.set_matches(id, OrdSet::new());
                affected.subjects.remove(id);
            }
            Change::ScopePut(scope) => {
                let moved = self.scopes.get(&scope.id).map(|s| &s.parent) != Some(&scope.parent);
                // Pinned grants count only below their assignment's scope, so
                // a move can change what they give: recompute everyone.
                affected.everyone |= moved && self.scopes.contains_key(&scope.id);
                let old = self
                    .scopes
                    .insert(scope.id.clone(), Arc::new(scope.clone()));
                if let Some(old) = old {
                    remove_index(&mut self.children, &old.parent, &scope.id);
                }
                insert_index(&mut self.children, scope.parent.clone(), scope.id.clone());
                if moved {
                    self.number_scope(&scope.id);
                    self.rechain(&scope.id);
                }
            }
            Change::ScopeDeleted(id) => {
                if let Some(old) = self.scopes.remove(id) {
                    remove_index(&mut self.children, &old.parent, id);
                }
                self.chains.remove(id);
            }
            Change::GroupPut(group) => self.put_group(group, affected),
            Change::GroupDeleted(id) => {
                self.forget_expired(|k| k.principal == Principal::Group(id.clone()));
                self.groups.remove(id);
                self.members.remove(id);
                self.subgroups.remove(id);
                self.conditions.remove(id);
                for s in self.matched_members.remove(id).into_iter().flatten() {
                    remove_index(&mut self.matched, &s, id);
                    affected.note(s);
                }
            }
            Change::RolePut(role) => self.put_role(compiled, role, affected),
            Change::RoleDeleted(id) => {
                self.roles.remove(id);
            }
            Change::MemberAdded(m) => {
                affected.note_principal(self, &m.member);
                let (group, member) = self.canonical_member(m);
                add_member(
                    &mut self.members,
                    &mut self.member_of,
                    &mut self.subgroups,
                    group,
                    member,
                );
            }
            Change::MemberRemoved(m) => {
                affected.note_principal(self, &m.member);
                remove_index(&mut self.members, &m.group, &m.member);
                remove_index(&mut self.member_of, &m.member, &m.group);
                if let Principal::Group(inner) = &m.member {
                    remove_index(&mut self.subgroups, &m.group, inner);
                }
            }
            Change::RoleAssigned(a) => {
                affected.note_principal(self, &a.key.principal);
                self.forget_expiry(&a.key);
                self.forget_expired(|k| *k == a.key);
                let a = &Assignment {
                    key: self.canonical_key(compiled, &a.key),
                    expires_at: a.expires_at,
                };
                if let Some(at) = a.expires_at {
                    self.expiring.insert((at, a.key.clone()));
                }
                insert_index(
                    &mut self.by_principal,
                    a.key.principal.clone(),
                    a.key.clone(),
                );
                insert_index(&mut self.by_role, a.key.role.clone(), a.key.clone());
                insert_index(&mut self.by_target, a.key.target.clone(), a.key.clone());
                self.assignments.insert(a.key.clone(), a.clone());
            }
            Change::RoleUnassigned(key) | Change::RoleExpired(key) => {
                self.forget_expired(|k| k == key);
                if let Change::RoleExpired(_) = change {
                    self.remember_expired(key);
                }
                affected.note_principal(self, &key.principal);
                self.forget_expiry(key);
                remove_index(&mut self.by_principal, &key.principal, key);
                remove_index(&mut self.by_role, &key.role, key);
                remove_index(&mut self.by_target, &key.target, key);
                self.assignments.remove(key);
            }
            Change::SchemaWritten(_) => affected.everyone = true,
        }
    }

    /// A membership's group and member as the held copies of their ids.
    pub(super) fn canonical_member(&self, m: &Membership) -> (GroupId, Principal) {
        (self.canonical_group(&m.group), self.canonical(&m.member))
    }

    /// Takes the maps a start-up load built beside this state, whole: its
    /// own are empty while that thread builds them (subjects are put with
    /// [`TenantState::put_subject_entry`], memberships only sent there, and
    /// the load takes them back before the first deletion).
    pub(super) fn adopt(&mut self, ordered: Ordered) {
        debug_assert!(
            self.in_order.is_empty() && self.members.is_empty() && self.member_of.is_empty(),
            "a tenant's ordered maps were built on two threads"
        );
        self.in_order = ordered.in_order;
        self.members = ordered.members;
        self.member_of = ordered.member_of;
        self.subgroups = ordered.subgroups;
    }

    /// The held copy of a group's id: every index then shares one
    /// allocation per id instead of one per record that names it (a
    /// million memberships name a hundred groups).
    fn canonical_group(&self, id: &GroupId) -> GroupId {
        held(self.groups.get_key_value(id), id)
    }

    /// The held copy of a principal's id (see `canonical_group`). A
    /// subject's is found by hash: a membership record's own copy of the id
    /// would stay held by the group's and the subject's indexes, about 48
    /// bytes per membership (77 MB at 1.6 million), for one probe of the
    /// hash trie.
    fn canonical(&self, principal: &Principal) -> Principal {
        match principal {
            Principal::Subject(id) => Principal::Subject(held(self.subjects.get_key_value(id), id)),
            Principal::Group(id) => Principal::Group(self.canonical_group(id)),
        }
    }

    /// An assignment key whose ids are the held copies (see
    /// `canonical_group`).
    fn canonical_key(&self, compiled: &Compiled, key: &AssignmentKey) -> AssignmentKey {
        let found = self.roles.get_key_value(&key.role);
        let role = held(
            found.or_else(|| compiled.builtin.get_key_value(&key.role)),
            &key.role,
        );
        let target = match &key.target {
            Target::Scope(id) => Target::Scope(held(self.scopes.get_key_value(id), id)),
            Target::Population(id) => Target::Population(self.canonical_group(id)),
        };
        AssignmentKey {
            role,
            principal: self.canonical(&key.principal),
            target,
        }
    }

    fn remember_expired(&mut self, key: &AssignmentKey) {
        let Some(a) = self.assignments.get(key) else {
            return;
        };
        let at = a.expires_at.unwrap_or_default();
        self.recently_expired.insert((at, key.clone()), a.clone());
        while self.recently_expired.len() > MAX_RECENTLY_EXPIRED {
            let Some((oldest, _)) = self.recently_expired.get_min().cloned() else {
                break;
            };
            self.recently_expired.remove(&oldest);
        }
    }

    /// Forgets the recently expired assignments whose key `gone` matches.
    fn forget_expired(&mut self, gone: impl Fn(&AssignmentKey) -> bool) {
        let keys: Vec<(Timestamp, AssignmentKey)> = self
            .recently_expired
            .keys()
            .filter(|(_, k)| gone(k))
            .cloned()
            .collect();
        for key in keys {
            self.recently_expired.remove(&key);
        }
    }

    /// Keeps `homed` current when a subject's home scope changes.
    fn move_home(&mut self, id: &SubjectId, from: Option<&ScopeId>, to: Option<&ScopeId>) {
        if from == to {
            return;
        }
        if let Some(from) = from {
            remove_index(&mut self.homed, from, id);
        }
        if let Some(to) = to {
            insert_index(&mut self.homed, to.clone(), id.clone());
        }
    }

    fn forget_expiry(&mut self, key: &AssignmentKey) {
        if let Some(at) = self.assignments.get(key).and_then(|a| a.expires_at) {
            self.expiring.remove(&(at, key.clone()));
        }
    }

    /// The assignments whose expiry is at or before `now`.
    pub fn expired(&self, now: Timestamp) -> Vec<AssignmentKey> {
        self.expiring
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// The condition groups `subject` (as given, stored or not) satisfies.
    pub fn condition_groups_of(&self, subject: &Subject) -> OrdSet<GroupId> {
        self.conditions
            .iter()
            .filter(|(_, c)| c.matches(subject))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Replaces the condition groups `subject` satisfies.
    fn set_matches(&mut self, subject: &SubjectId, groups: OrdSet<GroupId>) {
        let old = self.matched.get(subject).cloned().unwrap_or_default();
        for g in old.iter().filter(|g| !groups.contains(*g)) {
            remove_index(&mut self.matched_members, g, subject);
        }
        for g in groups.iter().filter(|g| !old.contains(*g)) {
            insert_index(&mut self.matched_members, g.clone(), subject.clone());
        }
        if groups.is_empty() {
            self.matched.remove(subject);
        } else {
            self.matched.insert(subject.clone(), groups);
        }
    }

    /// Re-evaluates every condition for one subject; notes it if its
    /// condition groups changed.
    fn match_subject(&mut self, subject: &Subject, affected: &mut Affected) {
        let groups = self.condition_groups_of(subject);
        if self.matched.get(&subject.id).cloned().unwrap_or_default() != groups {
            affected.note(subject.id.clone());
            self.set_matches(&subject.id, groups);
        }
    }

    fn put_group(&mut self, group: &Group, affected: &mut Affected) {
        let old = self
            .groups
            .insert(group.id.clone(), Arc::new(group.clone()));
        if old.as_ref().map(|g| &g.condition) == Some(&group.condition) {
            return;
        }
        // Planning refuses conditions that do not compile; one that fails
        // here was stored by a version with laxer checks, and matches no one
        // rather than being evaluated.
        let condition = group
            .condition
            .as_deref()
            .and_then(|c| match Condition::parse(c) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(group = %group.id, error = %e, "stored condition refused; it matches no one");
                    None
                }
            })
            .map(Arc::new);
        let before = self
            .matched_members
            .get(&group.id)
            .cloned()
            .unwrap_or_default();
        let after: OrdSet<SubjectId> = match &condition {
            Some(c) => self
                .subjects
                .values()
                .filter(|e| c.matches(&e.subject))
                .map(|e| e.subject.id.clone())
                .collect(),
            None => OrdSet::new(),
        };
        match condition {
            Some(c) => self.conditions.insert(group.id.clone(), c),
            None => self.conditions.remove(&group.id),
        };
        // Whoever joins or leaves may gain or lose what the group's roles
        // give, and moves in or out of the group as a population.
        let changed: Vec<SubjectId> = before
            .symmetric_difference(after.clone())
            .into_iter()
            .collect();
        for s in &changed {
            let mut groups = self.matched.get(s).cloned().unwrap_or_default();
            if after.contains(s) {
                groups.insert(group.id.clone());
            } else {
                groups.remove(&group.id);
            }
            self.set_matches(s, groups);
        }
        for s in changed {
            affected.note(s);
        }
    }

    /// Puts a subject's record.
    pub(super) fn put_subject(&mut self, subject: Arc<Subject>, affected: &mut Affected) {
        self.in_order.insert(subject.id.clone(), subject.clone());
        self.put_subject_entry(subject, affected);
    }

    /// Puts a subject's record in every map but `in_order`, which a
    /// start-up load builds on a thread of its own (see
    /// [`Ordered`]).
    pub(super) fn put_subject_entry(&mut self, record: Arc<Subject>, affected: &mut Affected) {
        let subject = &*record;
        // One lookup: at start-up this runs once per stored subject.
        let (old_home, grants) = match self.subjects.get(&subject.id) {
            Some(old) => {
                // A new home scope changes what population holders hold
                // over the subject (see `effects`), not its own grants.
                if old.subject.status != subject.status
                    || old.subject.home_scope != subject.home_scope
                {
                    affected.note_answers(subject.id.clone());
                }
                (old.subject.home_scope.clone(), old.grants.clone())
            }
            None => {
                affected.note(subject.id.clone());
                (None, NO_GRANTS.clone())
            }
        };
        self.move_home(&subject.id, old_home.as_ref(), subject.home_scope.as_ref());
        self.subjects.insert(
            subject.id.clone(),
            SubjectEntry {
                active: subject.status == SubjectStatus::Active,
                subject: record.clone(),
                grants,
            },
        );
        self.match_subject(&record, affected);
    }

    fn put_role(&mut self, compiled: &Compiled, role: &Role, affected: &mut Affected) {
        let compiled_role = compile_or_empty(compiled, Arc::new(role.clone()));
        self.roles.insert(role.id.clone(), Arc::new(compiled_role));
        let holders: Vec<Principal> = self
            .by_role
            .get(&role.id)
            .into_iter()
            .flatten()
            .map(|k| k.principal.clone())
            .collect();
        for principal in &holders {
            affected.note_principal(self, principal);
        }
    }

    /// Recompiles custom roles and the disabled mask against a new catalog.
    pub fn recompile(&mut self, compiled: &Compiled) {
        let roles: Vec<Arc<Role>> = self.roles.values().map(|r| r.role.clone()).collect();
        for role in roles {
            let c = compile_or_empty(compiled, role);
            self.roles.insert(c.role.id.clone(), Arc::new(c));
        }
        self.disabled = disabled_mask(compiled, &self.settings);
    }

    /// Recomputes the grants of every affected subject, as of `now` (which
    /// decides whether expiring assignments still support prerequisites).
    /// Many subjects are computed on every core: each subject's grants
    /// depend only on the directory, which no one changes meanwhile.
    pub fn recompute(&mut self, compiled: &Compiled, affected: &Affected, now: Timestamp) {
        let ids: Vec<SubjectId> = if affected.everyone {
            self.subjects.keys().cloned().collect()
        } else {
            affected.subjects.iter().cloned().collect()
        };
        let computed = self.compute_all(compiled, &ids, now);
        if affected.everyone {
            self.install_everyone(&ids, computed);
        } else {
            self.install_grants(&ids, computed);
        }
    }

    /// Every subject's grants, at start-up, with how long computing and
    /// installing them took (what the start-up log reports).
    pub(super) fn recompute_everyone(
        &mut self,
        compiled: &Compiled,
        now: Timestamp,
    ) -> (usize, std::time::Duration, std::time::Duration) {
        let started = std::time::Instant::now();
        let ids: Vec<SubjectId> = self.subjects.keys().cloned().collect();
        let computed = self.compute_all(compiled, &ids, now);
        let computing = started.elapsed();
        self.install_everyone(&ids, computed);
        (ids.len(), computing, started.elapsed() - computing)
    }

    /// Puts computed grants in place for `ids`, every subject in the map's
    /// iteration order (which the map keeps while it is not changed): one
    /// walk of the map instead of a lookup per subject, which at a million
    /// subjects is most of a start-up's install time. A subject found out
    /// of step (not expected) is installed by lookup.
    fn install_everyone(&mut self, ids: &[SubjectId], computed: Vec<Arc<SubjectGrants>>) {
        let mut stray = Vec::new();
        for ((id, entry), (expected, grants)) in
            self.subjects.iter_mut().zip(ids.iter().zip(computed))
        {
            if id == expected {
                entry.grants = grants;
            } else {
                stray.push((expected.clone(), grants));
            }
        }
        for (id, grants) in stray {
            if let Some(entry) = self.subjects.get_mut(&id) {
                entry.grants = grants;
            }
        }
    }

    /// The grants of `ids`, in order, computed on every core when there
    /// are many.
    fn compute_all(
        &self,
        compiled: &Compiled,
        ids: &[SubjectId],
        now: Timestamp,
    ) -> Vec<Arc<SubjectGrants>> {
        let threads = (*CORES).min(ids.len() / PARALLEL_RECOMPUTE_MIN).max(1);
        let compute = |ids: &[SubjectId]| -> Vec<Arc<SubjectGrants>> {
            let mut shared: std::collections::HashMap<
                Vec<GroupId>,
                Arc<SubjectGrants>,
                foldhash::fast::RandomState,
            > = std::collections::HashMap::default();
            ids.iter()
                .map(|id| match self.grant_key(id) {
                    Some(key) => shared
                        .entry(key)
                        .or_insert_with(|| Arc::new(self.compute_grants(compiled, id, now)))
                        .clone(),
                    None => Arc::new(self.compute_grants(compiled, id, now)),
                })
                .collect()
        };
        if threads == 1 {
            compute(ids)
        } else {
            let per = ids.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> = ids
                    .chunks(per)
                    .map(|part| scope.spawn(move || compute(part)))
                    .collect();
                parts
                    .into_iter()
                    // A worker panics only on a bug; carry it on here.
                    .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        }
    }

    /// Puts computed grants in place, `computed[i]` for `ids[i]`.
    fn install_grants(&mut self, ids: &[SubjectId], computed: Vec<Arc<SubjectGrants>>) {
        for (id, grants) in ids.iter().zip(computed) {
            if let Some(entry) = self.subjects.get_mut(id) {
                entry.grants = grants;
            }
        }
    }

    /// What a subject's grants depend on when it holds no assignment of its
    /// own: the groups it is directly in, sorted. Subjects with the same key
    /// have the same grants, so a recompute computes them once and shares
    /// them (most subjects of a large tenant hold roles only through
    /// groups). `None` for a subject with assignments of its own.
    pub(super) fn grant_key(&self, id: &SubjectId) -> Option<Vec<GroupId>> {
        let me = Principal::Subject(id.clone());
        if self.by_principal.contains_key(&me) {
            return None;
        }
        let mut groups: Vec<GroupId> = self.direct_groups(&me).cloned().collect();
        groups.sort();
        groups.dedup();
        Some(groups)
    }

    /// Every assignment that reaches a subject (its own and its groups'),
    /// with the compiled role.
    pub fn assignments_of<'a>(
        &'a self,
        compiled: &'a Compiled,
        id: &SubjectId,
    ) -> (Vec<GroupId>, Vec<(&'a Assignment, &'a Arc<CompiledRole>)>) {
        let me = Principal::Subject(id.clone());
        let groups = self.all_groups(&me);
        let principals = std::iter::once(me).chain(groups.iter().cloned().map(Principal::Group));
        let mut out = Vec::new();
        for principal in principals {
            for key in self.by_principal.get(&principal).into_iter().flatten() {
                if let (Some(a), Some(role)) = (
                    self.assignments.get(key),
                    self.role(compiled, key.role.as_str()),
                ) {
                    out.push((a, role));
                }
            }
        }
        (groups, out)
    }

    /// Builds a subject's grants from its own assignments and those of every
    /// group it is in. Roles with prerequisites count only once the subject
    /// holds them without that role: a fixpoint, since one role's grants may
    /// meet another's prerequisites.
    ///
    /// A role that counts now lapses at the first instant it would not:
    /// grants only ever expire, so the roles that qualify can only shrink
    /// with time, and the fixpoint is taken again at each expiry instant of
    /// the subject's assignments (not just from the support found first,
    /// which may expire while another, lasting one remains).
    fn compute_grants(&self, compiled: &Compiled, id: &SubjectId, now: Timestamp) -> SubjectGrants {
        let (groups, assignments) = self.assignments_of(compiled, id);
        let mut scopes = Vec::new();
        let mut populations = Vec::new();
        let (pending, ready): (Vec<_>, Vec<_>) = assignments
            .iter()
            .copied()
            .partition(|(_, role)| !role.requires.is_empty());
        for (a, role) in ready {
            self.push_entries(role, a, a.expires_at, &mut scopes, &mut populations);
        }
        if pending.is_empty() {
            return SubjectGrants::build(groups, scopes, populations, |s| {
                self.scope_number(s.as_str())
            });
        }
        let base = (scopes, populations);
        let counts_now = self.qualifying(compiled, &groups, &base, &pending, now);
        let mut instants: Vec<Timestamp> = assignments
            .iter()
            .filter_map(|(a, _)| a.expires_at)
            .filter(|t| *t > now)
            .collect();
        instants.sort();
        instants.dedup();
        let mut lapses: Vec<Option<Timestamp>> = vec![None; pending.len()];
        let mut alive = counts_now.clone();
        for at in instants {
            if !alive.contains(&true) {
                break;
            }
            let counts = self.qualifying(compiled, &groups, &base, &pending, at);
            for ((still, live), lapse) in counts.iter().zip(&mut alive).zip(&mut lapses) {
                if *live && !still {
                    *live = false;
                    *lapse = Some(at);
                }
            }
        }
        let (mut scopes, mut populations) = base;
        for (((a, role), counts), lapse) in pending.iter().zip(&counts_now).zip(&lapses) {
            if *counts {
                let expires = match (a.expires_at, *lapse) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                self.push_entries(role, a, expires, &mut scopes, &mut populations);
            }
        }
        SubjectGrants::build(groups, scopes, populations, |s| {
            self.scope_number(s.as_str())
        })
    }

    /// Which of the `pending` roles (those with prerequisites) count at
    /// instant `at`, on top of the grants in `base`: the fixpoint of adding
    /// every role whose prerequisites the grants so far meet.
    fn qualifying(
        &self,
        compiled: &Compiled,
        groups: &[GroupId],
        base: &(Vec<GrantEntry<ScopeId>>, Vec<GrantEntry<GroupId>>),
        pending: &[(&Assignment, &Arc<CompiledRole>)],
        at: Timestamp,
    ) -> Vec<bool> {
        let mut counted = vec![false; pending.len()];
        let (mut scopes, mut populations) = base.clone();
        loop {
            let partial =
                SubjectGrants::build(groups.to_vec(), scopes.clone(), populations.clone(), |s| {
                    self.scope_number(s.as_str())
                });
            let mut added = false;
            for ((a, role), counts) in pending.iter().zip(&mut counted) {
                if !*counts && self.requires_met(compiled, &partial, role, &a.key.target, at) {
                    *counts = true;
                    added = true;
                    self.push_entries(role, a, a.expires_at, &mut scopes, &mut populations);
                }
            }
            if !added {
                return counted;
            }
        }
    }

    /// The grant entries one assignment contributes.
    fn push_entries(
        &self,
        role: &CompiledRole,
        a: &Assignment,
        expires_at: Option<Timestamp>,
        scopes: &mut Vec<GrantEntry<ScopeId>>,
        populations: &mut Vec<GrantEntry<GroupId>>,
    ) {
        match &a.key.target {
            Target::Scope(scope) => {
                scopes.push(GrantEntry::new(
                    scope.clone(),
                    role.at_target.clone(),
                    expires_at,
                ));
                for (pinned, set) in &role.pinned {
                    if self.is_within(pinned, scope) {
                        scopes.push(GrantEntry::new(pinned.clone(), set.clone(), expires_at));
                    }
                }
            }
            Target::Population(group) => {
                populations.push(GrantEntry::new_population(
                    group.clone(),
                    role.at_target.clone(),
                    expires_at,
                ));
            }
        }
    }
}

/// The key a map holds for `id`, if it holds one, else `id` itself.
fn held<K: Clone, V>(found: Option<(&K, &V)>, id: &K) -> K {
    found.map_or_else(|| id.clone(), |(key, _)| key.clone())
}

/// Compiles a custom role. Roles are validated before they are stored; one
/// that no longer compiles because the schema changed under it grants nothing
/// rather than failing the whole tenant.
fn compile_or_empty(compiled: &Compiled, role: Arc<Role>) -> CompiledRole {
    CompiledRole::compile(&compiled.catalog, role.clone(), false).unwrap_or_else(|_| CompiledRole {
        role,
        builtin: false,
        at_target: PermSet::empty(compiled.catalog.len()),
        pinned: Vec::new(),
        requires: Vec::new(),
    })
}

fn disabled_mask(compiled: &Compiled, settings: &TenantSettings) -> PermSet {
    let mut mask = PermSet::empty(compiled.catalog.len());
    for r in &settings.disabled_resources {
        if let Some(m) = compiled.catalog.resource_mask(r) {
            mask.union_with(m);
        }
    }
    mask
}
