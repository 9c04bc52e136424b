//! Write planning: turns requested operations into the validated list of
//! [`Change`]s that the store will persist and the cache will apply.
//!
//! Every rule about what a write may do lives here: things must exist (or not),
//! groups may not nest in a cycle, scopes may not move under themselves,
//! deletes cascade explicitly (so the changelog says everything that was
//! removed), builtin roles are read-only. Operations of one batch see the
//! effects of the earlier ones. Planning never mutates published state: it
//! works on a private copy of the tenant, and that copy, brought up to date,
//! is the state the write publishes (a batch is applied once). Must not do
//! I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::EngineError;
use super::authorize::{Action, Authorizer};
use super::condition::Condition;
use super::effects::{self, View};
use super::roles::{CompiledRole, unknown_permissions};
use super::tenant::{Affected, Compiled, TenantState, merge};
use super::violation::{AdminChange, Holding, ScopeUse, Violation};
use crate::model::{
    Assignment, AssignmentKey, Change, Effect, Group, GroupId, Membership, Principal, Role, RoleId,
    Scope, ScopeId, Subject, SubjectId, SubjectKind, SubjectStatus, Target, TenantId,
    TenantSettings, Timestamp,
};
use crate::schema::Cardinality;

/// How a write treats the current state of what it touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Adding what exists or removing what does not is a no-op.
    #[default]
    None,
    /// Fail unless it exists.
    MustExist,
    /// Fail if it exists.
    MustNotExist,
}

/// The fields of a subject an update replaces; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectUpdate {
    /// New kind.
    pub kind: Option<SubjectKind>,
    /// New status.
    pub status: Option<SubjectStatus>,
    /// New attributes (replacing all of them).
    pub attributes: Option<crate::model::Attributes>,
    /// New home scope (`Some(None)` moves it to the root).
    pub home_scope: Option<Option<ScopeId>>,
}

/// The fields of a group an update replaces; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupUpdate {
    /// New title.
    pub title: Option<String>,
    /// New condition (`Some(None)` removes it).
    pub condition: Option<Option<String>>,
}

/// One requested write operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Create the tenant (fails if it exists).
    CreateTenant(TenantSettings),
    /// Replace the tenant's settings.
    UpdateTenantSettings(TenantSettings),
    /// Create a subject.
    CreateSubject(Subject),
    /// Change some of a subject's fields.
    UpdateSubject(SubjectId, SubjectUpdate),
    /// Delete a subject with its memberships and assignments.
    DeleteSubject(SubjectId),
    /// Create a subject, or replace it whole where it exists (a bulk
    /// import's record: loading it again changes nothing).
    PutSubject(Subject),
    /// Create a scope.
    CreateScope(Scope),
    /// Change a scope's type or parent.
    UpdateScope(Scope),
    /// Delete an unused scope.
    DeleteScope(ScopeId),
    /// Create a group.
    CreateGroup(Group),
    /// Change some of a group's fields.
    UpdateGroup(GroupId, GroupUpdate),
    /// Create a group, or replace it whole where it exists.
    PutGroup(Group),
    /// Delete a group with its memberships and assignments.
    DeleteGroup(GroupId),
    /// Create a custom role.
    CreateRole(Role),
    /// Replace a custom role.
    UpdateRole(Role),
    /// Delete a custom role with its assignments.
    DeleteRole(RoleId),
    /// Put a member into a group.
    AddMember(Membership, Precondition),
    /// Take a member out of a group.
    RemoveMember(Membership, Precondition),
    /// Assign a role.
    AssignRole(Assignment, Precondition),
    /// Unassign a role.
    UnassignRole(AssignmentKey, Precondition),
    /// Make the roles each principal holds at exactly `target` equal to
    /// `roles` (assigning those missing with `expires_at`).
    ReplaceRoles {
        /// Whose roles.
        principals: Vec<Principal>,
        /// Where.
        target: Target,
        /// The roles afterwards.
        roles: BTreeSet<RoleId>,
        /// Expiry of the roles it assigns.
        expires_at: Option<Timestamp>,
    },
    /// Unassign every role the principals hold at `target` (and, for a
    /// scope, below it).
    RemoveFromTarget {
        /// Whose roles.
        principals: Vec<Principal>,
        /// Where.
        target: Target,
    },
}

impl Operation {
    /// The subjects and groups this operation names directly (for the
    /// audit trail of a refused write, which has no changes to look at).
    pub fn principals(&self) -> Vec<Principal> {
        match self {
            Operation::CreateSubject(s) | Operation::PutSubject(s) => {
                vec![Principal::Subject(s.id.clone())]
            }
            Operation::UpdateSubject(id, _) | Operation::DeleteSubject(id) => {
                vec![Principal::Subject(id.clone())]
            }
            Operation::CreateGroup(g) | Operation::PutGroup(g) => {
                vec![Principal::Group(g.id.clone())]
            }
            Operation::UpdateGroup(id, _) | Operation::DeleteGroup(id) => {
                vec![Principal::Group(id.clone())]
            }
            Operation::AddMember(m, _) | Operation::RemoveMember(m, _) => m.principals(),
            Operation::AssignRole(a, _) => a.key.principals(),
            Operation::UnassignRole(k, _) => k.principals(),
            Operation::ReplaceRoles {
                principals, target, ..
            }
            | Operation::RemoveFromTarget { principals, target } => {
                let mut named = principals.clone();
                if let Target::Population(g) = target {
                    named.push(Principal::Group(g.clone()));
                }
                named
            }
            Operation::CreateTenant(_)
            | Operation::UpdateTenantSettings(_)
            | Operation::CreateScope(_)
            | Operation::UpdateScope(_)
            | Operation::DeleteScope(_)
            | Operation::CreateRole(_)
            | Operation::UpdateRole(_)
            | Operation::DeleteRole(_) => Vec::new(),
        }
    }
}

/// A refused operation: which one of the batch, and why.
#[derive(Debug)]
pub struct RefusedOperation {
    /// Its position in the batch.
    pub index: usize,
    /// Why.
    pub error: EngineError,
}

/// A planned batch: what to persist, the tenant state it leaves (grants
/// recomputed), and the permission changes it causes.
#[derive(Debug)]
pub struct Planned {
    /// The validated changes, in the order they apply.
    pub changes: Vec<Change>,
    /// The tenant after the changes, ready to publish.
    pub state: TenantState,
    /// The gains and losses between the state planned on and `state`, sorted.
    pub effects: Vec<Effect>,
}

/// Plans a batch for one tenant. `state` is the tenant's current state, or
/// `None` if it does not exist yet (the plan then creates it first).
pub fn plan(
    compiled: &Compiled,
    tenant: &TenantId,
    actor: Option<&SubjectId>,
    state: Option<&TenantState>,
    operations: &[Operation],
    now: Timestamp,
) -> Result<Planned, RefusedOperation> {
    let mut planner = Planner {
        compiled,
        tenant,
        actor,
        state: state.cloned().unwrap_or_else(|| TenantState::new(compiled)),
        changes: Vec::new(),
        stale: Affected::default(),
        affected: Affected::default(),
        touched: BTreeMap::new(),
        current: 0,
        now,
    };
    let creates_tenant = matches!(operations.first(), Some(Operation::CreateTenant(_)));
    if state.is_none() && !creates_tenant {
        planner.emit(Change::TenantPut(TenantSettings::default()));
    }
    for (index, op) in operations.iter().enumerate() {
        planner.current = index;
        planner
            .operation(op, state.is_some() || index > 0)
            .map_err(|error| RefusedOperation { index, error })?;
    }
    planner.check_classes(state)?;
    planner.refresh();
    let effects = if planner.changes.is_empty() {
        Vec::new()
    } else {
        let before = View { compiled, state };
        let after = View {
            compiled,
            state: Some(&planner.state),
        };
        effects::diff(tenant, before, after, &planner.affected)
    };
    Ok(Planned {
        changes: planner.changes,
        state: planner.state,
        effects,
    })
}

struct Planner<'a> {
    compiled: &'a Compiled,
    tenant: &'a TenantId,
    /// On whose behalf; `None` for a system write, which no actor rule limits.
    actor: Option<&'a SubjectId>,
    state: TenantState,
    changes: Vec<Change>,
    /// Subjects whose grants in `state` are stale since the last refresh.
    stale: Affected,
    /// Everyone the whole batch may have affected: whose permission changes
    /// the write reports.
    affected: Affected,
    /// Every subject whose roles the batch may change, with the last
    /// operation that touched it (for class rules checked at the end).
    touched: BTreeMap<SubjectId, usize>,
    /// The operation being planned.
    current: usize,
    now: Timestamp,
}

fn not_found(kind: &'static str, id: impl ToString) -> EngineError {
    EngineError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn exists(kind: &'static str, id: impl ToString) -> EngineError {
    EngineError::AlreadyExists {
        kind,
        id: id.to_string(),
    }
}

impl Planner<'_> {
    fn emit(&mut self, change: Change) {
        let mut affected = Affected::default();
        self.state.apply(self.compiled, &change, &mut affected);
        // Bulk merges where a change touches many subjects (see `merge`).
        let touched: BTreeMap<SubjectId, usize> = affected
            .subjects
            .iter()
            .map(|s| (s.clone(), self.current))
            .collect();
        merge(&mut self.touched, touched);
        merge(&mut self.stale.subjects, affected.subjects.clone());
        self.stale.everyone |= affected.everyone;
        self.affected.absorb(affected);
        self.changes.push(change);
    }

    /// Role-class cardinality, checked once the whole batch is planned so
    /// that a batch may replace a subject's one role of a class with another.
    /// A subject may hold at most one role of an `exactly_one` or
    /// `at_most_one` class; a subject that held one of an `exactly_one`
    /// class may not be left with none (a subject that never had one may).
    fn check_classes(&self, before: Option<&TenantState>) -> Result<(), RefusedOperation> {
        let classes: Vec<_> = self
            .compiled
            .catalog
            .role_classes()
            .values()
            .filter(|c| c.per_subject != Cardinality::Many)
            .collect();
        if classes.is_empty() {
            return Ok(());
        }
        // Subjects whose roles all come through the same groups hold the
        // same roles: a write reaching a whole group gathers them once per
        // distinct set of groups (see `TenantState::grant_key`).
        let mut shared: HashMap<Vec<GroupId>, ClassRoles<'_>, foldhash::fast::RandomState> =
            HashMap::default();
        for (subject, index) in &self.touched {
            if !self.state.subjects.contains_key(subject) {
                continue;
            }
            // Each subject's roles are gathered once for every class, and
            // what it held before only where a class needs it.
            let gather = || class_roles(self.compiled, &self.state, subject);
            let owned;
            let now_held = match self.state.grant_key(subject) {
                Some(key) => &*shared.entry(key).or_insert_with(gather),
                None => {
                    owned = gather();
                    &owned
                }
            };
            let mut before_held = None;
            for class in &classes {
                let after = now_held.get(class.name.as_str());
                let violation = match class.per_subject {
                    _ if after.is_some_and(|a| a.len() > 1) => Some(Violation::RoleClassExceeded {
                        subject: subject.clone(),
                        class: class.name.clone(),
                        roles: after.into_iter().flatten().cloned().collect(),
                    }),
                    Cardinality::ExactlyOne if after.is_none() => {
                        let had = before_held.get_or_insert_with(|| {
                            before.map(|b| class_roles(self.compiled, b, subject))
                        });
                        had.as_ref()
                            .is_some_and(|h| h.contains_key(class.name.as_str()))
                            .then(|| Violation::RoleClassRequired {
                                subject: subject.clone(),
                                class: class.name.clone(),
                            })
                    }
                    _ => None,
                };
                if let Some(violation) = violation {
                    return Err(RefusedOperation {
                        index: *index,
                        error: violation.into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Brings the scratch state's grants up to date with the operations
    /// planned so far, for rules that depend on what subjects hold.
    fn refresh(&mut self) {
        let stale = std::mem::take(&mut self.stale);
        if stale.everyone || !stale.subjects.is_empty() {
            self.state.recompute(self.compiled, &stale, self.now);
        }
    }

    fn operation(&mut self, op: &Operation, tenant_exists: bool) -> Result<(), EngineError> {
        match op {
            Operation::CreateTenant(settings) => {
                if tenant_exists {
                    return Err(exists("tenant", self.tenant));
                }
                self.settings(settings)
            }
            Operation::UpdateTenantSettings(settings) => {
                self.authorize(|a| a.administers(&ScopeId::root(), &AdminChange::TenantSettings))?;
                self.settings(settings)
            }
            Operation::CreateSubject(s) => {
                if self.state.subjects.contains_key(&s.id) {
                    return Err(exists("subject", &s.id));
                }
                self.put_subject(s.clone())
            }
            Operation::UpdateSubject(id, update) => self.update_subject(id, update),
            Operation::PutSubject(s) => {
                let current = self.state.subjects.get(&s.id).map(|e| e.subject.clone());
                match current {
                    Some(old) if *old == *s => return Ok(()),
                    // Replacing a subject is updating it, under the same rules.
                    Some(old) if self.actor.is_some() => self.authorize_subject_update(&old, s)?,
                    _ => {}
                }
                self.put_subject(s.clone())
            }
            Operation::DeleteSubject(id) => self.delete_subject(id),
            // Every tenant's root scope exists without being created, and is
            // the ancestor of every scope.
            Operation::CreateScope(s) | Operation::UpdateScope(s) if s.id.is_root() => {
                Err(Violation::RootScopeFixed.into())
            }
            Operation::DeleteScope(id) if id.is_root() => Err(Violation::RootScopeFixed.into()),
            Operation::CreateScope(s) => {
                if self.state.has_scope(s.id.as_str()) {
                    return Err(exists("scope", &s.id));
                }
                self.put_scope(s)
            }
            Operation::UpdateScope(s) => {
                let Some(old) = self.state.scopes.get(&s.id).cloned() else {
                    return Err(not_found("scope", &s.id));
                };
                if old.parent != s.parent || old.scope_type != s.scope_type {
                    let change = AdminChange::Scope(s.id.clone());
                    self.authorize(|a| {
                        a.administers(&old.parent, &change)?;
                        a.administers(&s.parent, &change)
                    })?;
                }
                self.put_scope(s)
            }
            Operation::DeleteScope(id) => self.delete_scope(id),
            Operation::CreateGroup(g) => {
                if self.state.groups.contains_key(&g.id) {
                    return Err(exists("group", &g.id));
                }
                self.put_group(g)
            }
            Operation::UpdateGroup(id, u) => {
                let old = self
                    .state
                    .groups
                    .get(id)
                    .ok_or_else(|| not_found("group", id))?;
                let mut g = Group::clone(old);
                if let Some(title) = &u.title {
                    g.title = title.clone();
                }
                if let Some(condition) = &u.condition {
                    g.condition = condition.clone();
                }
                if old.condition != g.condition {
                    self.authorize(|a| a.group_change(id, Action::Grant))?;
                }
                self.put_group(&g)
            }
            Operation::DeleteGroup(id) => self.delete_group(id),
            Operation::PutGroup(g) => {
                let old = self.state.groups.get(&g.id).cloned();
                if old.as_ref().is_some_and(|old| **old == *g) {
                    return Ok(());
                }
                if old.is_some_and(|old| old.condition != g.condition) {
                    self.authorize(|a| a.group_change(&g.id, Action::Grant))?;
                }
                self.put_group(g)
            }
            Operation::CreateRole(r) => {
                if self.state.role(self.compiled, r.id.as_str()).is_some() {
                    return Err(exists("role", &r.id));
                }
                self.put_role(r)
            }
            Operation::UpdateRole(r) => {
                self.custom_role(&r.id)?;
                // A definition that does not compile is refused by put_role.
                let compiled = CompiledRole::compile(
                    &self.compiled.catalog,
                    std::sync::Arc::new(r.clone()),
                    false,
                );
                if let Ok(new) = compiled {
                    let holders: Vec<AssignmentKey> = self
                        .state
                        .by_role
                        .get(&r.id)
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect();
                    self.authorize(|a| a.redefine(&new, &holders))?;
                }
                self.put_role(r)
            }
            Operation::DeleteRole(id) => {
                self.custom_role(id)?;
                let keys: Vec<AssignmentKey> = self
                    .state
                    .by_role
                    .get(id)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                self.authorize_removals(&[], &keys)?;
                for key in keys {
                    self.emit(Change::RoleUnassigned(key));
                }
                self.emit(Change::RoleDeleted(id.clone()));
                Ok(())
            }
            Operation::AddMember(m, pre) => self.add_member(m, *pre),
            Operation::RemoveMember(m, pre) => {
                self.group(&m.group)?;
                let present = self.is_member(m);
                self.precondition(*pre, present, || Holding::Membership(m.clone()))?;
                if present {
                    self.authorize(|a| a.membership(m, Action::Revoke))?;
                    self.emit(Change::MemberRemoved(m.clone()));
                }
                Ok(())
            }
            Operation::AssignRole(a, pre) => self.assign(a, *pre),
            Operation::UnassignRole(key, pre) => self.unassign(key, *pre),
            Operation::ReplaceRoles {
                principals,
                target,
                roles,
                expires_at,
            } => {
                for principal in principals {
                    self.replace_roles(principal, target, roles, *expires_at)?;
                }
                Ok(())
            }
            Operation::RemoveFromTarget { principals, target } => {
                for principal in principals {
                    self.principal(principal)?;
                    for key in self.held(principal, |t| self.covers(target, t)) {
                        self.unassign(&key, Precondition::None)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Applies the actor rules of [`super::authorize`] (none for a system
    /// write) against the batch as planned so far.
    fn authorize(
        &mut self,
        rule: impl FnOnce(&Authorizer<'_>) -> Result<(), Violation>,
    ) -> Result<(), EngineError> {
        let Some(actor) = self.actor else {
            return Ok(());
        };
        self.refresh();
        Ok(rule(&Authorizer {
            compiled: self.compiled,
            state: &self.state,
            actor,
            now: self.now,
        })?)
    }

    fn precondition(
        &self,
        pre: Precondition,
        present: bool,
        holding: impl FnOnce() -> Holding,
    ) -> Result<(), EngineError> {
        match (pre, present) {
            (Precondition::MustExist, false) => {
                Err(Violation::MustExist { holding: holding() }.into())
            }
            (Precondition::MustNotExist, true) => {
                Err(Violation::MustNotExist { holding: holding() }.into())
            }
            _ => Ok(()),
        }
    }

    fn settings(&mut self, settings: &TenantSettings) -> Result<(), EngineError> {
        let catalog = &self.compiled.catalog;
        if let Some(unknown) = settings
            .disabled_resources
            .iter()
            .find(|r| catalog.resource_mask(r).is_none())
        {
            return Err(EngineError::InvalidArgument {
                field: "settings.disabled_resources".into(),
                reason: format!("unknown resource type \"{unknown}\""),
            });
        }
        self.emit(Change::TenantPut(settings.clone()));
        Ok(())
    }

    fn scope(&self, id: &ScopeId) -> Result<(), EngineError> {
        if self.state.has_scope(id.as_str()) {
            Ok(())
        } else {
            Err(not_found("scope", id))
        }
    }

    fn group(&self, id: &GroupId) -> Result<(), EngineError> {
        if self.state.groups.contains_key(id) {
            Ok(())
        } else {
            Err(not_found("group", id))
        }
    }

    fn principal(&self, p: &Principal) -> Result<(), EngineError> {
        match p {
            Principal::Subject(s) if !self.state.subjects.contains_key(s) => {
                Err(not_found("subject", s))
            }
            Principal::Group(g) => self.group(g),
            Principal::Subject(_) => Ok(()),
        }
    }

    fn custom_role(&self, id: &RoleId) -> Result<(), EngineError> {
        if self.state.roles.contains_key(id) {
            Ok(())
        } else if self.compiled.builtin.contains_key(id) {
            Err(Violation::BuiltinRoleImmutable { role: id.clone() }.into())
        } else {
            Err(self.state.unknown_role(self.compiled, id.as_str()))
        }
    }

    fn put_subject(&mut self, subject: Subject) -> Result<(), EngineError> {
        if let Some(home) = &subject.home_scope {
            self.scope(home)?;
        }
        self.emit(Change::SubjectPut(subject));
        Ok(())
    }

    fn update_subject(&mut self, id: &SubjectId, u: &SubjectUpdate) -> Result<(), EngineError> {
        let current = self
            .state
            .subjects
            .get(id)
            .ok_or_else(|| not_found("subject", id))?;
        let mut subject = (*current.subject).clone();
        if let Some(kind) = u.kind {
            subject.kind = kind;
        }
        if let Some(status) = u.status {
            subject.status = status;
        }
        if let Some(attributes) = &u.attributes {
            subject.attributes = attributes.clone();
        }
        if let Some(home) = &u.home_scope {
            subject.home_scope = home.clone();
        }
        if self.actor.is_some() {
            let old = current.subject.clone();
            self.authorize_subject_update(&old, &subject)?;
        }
        self.put_subject(subject)
    }

    /// The actor rules for changing `old` into `new`: a status change gives
    /// or takes everything the subject holds, an attribute change the
    /// condition groups it joins or leaves, a home-scope move needs an
    /// actor administering both places. Judged on the state before the
    /// change, so a subject cannot widen its own rights by it.
    fn authorize_subject_update(
        &mut self,
        old: &Subject,
        new: &Subject,
    ) -> Result<(), EngineError> {
        let id = &new.id;
        let before = self.state.matched.get(id).cloned().unwrap_or_default();
        let after = self.state.condition_groups_of(new);
        let (memberships, keys) = self.holdings(&Principal::Subject(id.clone()));
        let status = (old.status != new.status).then_some(if new.status == SubjectStatus::Locked {
            Action::Revoke
        } else {
            Action::Grant
        });
        let root = ScopeId::root();
        let homes = (old.home_scope != new.home_scope).then(|| {
            [&old.home_scope, &new.home_scope].map(|h| h.clone().unwrap_or_else(|| root.clone()))
        });
        self.authorize(|a| {
            for g in after.iter().filter(|g| !before.contains(*g)) {
                a.group_change(g, Action::Grant)?;
            }
            for g in before.iter().filter(|g| !after.contains(*g)) {
                a.group_change(g, Action::Revoke)?;
            }
            if let Some(action) = status {
                for m in &memberships {
                    a.membership(m, action)?;
                }
                for g in before.iter().filter(|g| after.contains(*g)) {
                    a.group_change(g, action)?;
                }
                for k in &keys {
                    a.role(k, action)?;
                }
            }
            if let Some(homes) = &homes {
                let change = AdminChange::HomeScope(id.clone());
                for home in homes {
                    a.administers(home, &change)?;
                }
            }
            Ok(())
        })
    }

    /// The actor rules for removing these memberships and assignments (what
    /// a delete takes with it), each as a revocation. The rules depend on
    /// the group or the role and target, and on whether the actor removes
    /// itself, not on whom else: each distinct case is judged once, so a
    /// delete touching many members costs one judgement per group.
    fn authorize_removals(
        &mut self,
        memberships: &[Membership],
        keys: &[AssignmentKey],
    ) -> Result<(), EngineError> {
        let Some(actor) = self.actor else {
            return Ok(());
        };
        let me = Principal::Subject(actor.clone());
        let mut groups: BTreeMap<&GroupId, &Membership> = BTreeMap::new();
        let mut crowded: BTreeSet<&GroupId> = BTreeSet::new();
        for m in memberships {
            if groups.insert(&m.group, m).is_some() {
                crowded.insert(&m.group);
            }
        }
        let mut cases: BTreeMap<(&RoleId, &Target, bool), &AssignmentKey> = BTreeMap::new();
        for k in keys {
            cases
                .entry((&k.role, &k.target, k.principal == me))
                .or_insert(k);
        }
        self.authorize(|a| {
            for (group, m) in &groups {
                if crowded.contains(group) {
                    a.group_change(group, Action::Revoke)?;
                } else {
                    a.membership(m, Action::Revoke)?;
                }
            }
            for k in cases.values() {
                a.role(k, Action::Revoke)?;
            }
            Ok(())
        })
    }

    fn delete_subject(&mut self, id: &SubjectId) -> Result<(), EngineError> {
        if !self.state.subjects.contains_key(id) {
            return Err(not_found("subject", id));
        }
        let (memberships, keys) = self.holdings(&Principal::Subject(id.clone()));
        self.authorize_removals(&memberships, &keys)?;
        self.remove(memberships, keys);
        self.emit(Change::SubjectDeleted(id.clone()));
        Ok(())
    }

    /// Every explicit membership and assignment a principal holds.
    fn holdings(&self, p: &Principal) -> (Vec<Membership>, Vec<AssignmentKey>) {
        let memberships = self
            .state
            .member_of
            .get(p)
            .into_iter()
            .flatten()
            .map(|group| Membership {
                group: group.clone(),
                member: p.clone(),
            })
            .collect();
        let keys = self
            .state
            .by_principal
            .get(p)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        (memberships, keys)
    }

    /// Emits the removal of these memberships and assignments.
    fn remove(&mut self, memberships: Vec<Membership>, keys: Vec<AssignmentKey>) {
        for m in memberships {
            self.emit(Change::MemberRemoved(m));
        }
        for key in keys {
            self.emit(Change::RoleUnassigned(key));
        }
    }

    fn put_scope(&mut self, s: &Scope) -> Result<(), EngineError> {
        self.scope(&s.parent)?;
        if self.state.is_within(&s.parent, &s.id) {
            return Err(Violation::ScopeCycle {
                scope: s.id.clone(),
                parent: s.parent.clone(),
            }
            .into());
        }
        self.emit(Change::ScopePut(s.clone()));
        Ok(())
    }

    fn delete_scope(&mut self, id: &ScopeId) -> Result<(), EngineError> {
        if !self.state.scopes.contains_key(id) {
            return Err(not_found("scope", id));
        }
        let in_use = |by: ScopeUse| {
            Err(Violation::ScopeInUse {
                scope: id.clone(),
                by,
            }
            .into())
        };
        if let Some(child) = self.state.children.get(id).and_then(|c| c.get_min()) {
            return in_use(ScopeUse::Child(child.clone()));
        }
        if let Some(key) = self.state.assignments_at(&Target::Scope(id.clone())).next() {
            return in_use(ScopeUse::Assignment(key.clone()));
        }
        if let Some(role) = self
            .state
            .roles
            .values()
            .find(|r| r.role.grants.iter().any(|g| g.scopes.contains(id)))
        {
            return in_use(ScopeUse::PinnedBy(role.role.id.clone()));
        }
        if let Some(subject) = self.state.homed.get(id).and_then(|h| h.get_min()) {
            return in_use(ScopeUse::HomeOf(subject.clone()));
        }
        self.emit(Change::ScopeDeleted(id.clone()));
        Ok(())
    }

    fn delete_group(&mut self, id: &GroupId) -> Result<(), EngineError> {
        self.group(id)?;
        let mut memberships: Vec<Membership> = self
            .state
            .members
            .get(id)
            .into_iter()
            .flatten()
            .map(|member| Membership {
                group: id.clone(),
                member: member.clone(),
            })
            .collect();
        let (own, mut keys) = self.holdings(&Principal::Group(id.clone()));
        memberships.extend(own);
        keys.extend(
            self.state
                .assignments_at(&Target::Population(id.clone()))
                .cloned(),
        );
        self.authorize_removals(&memberships, &keys)?;
        self.remove(memberships, keys);
        self.emit(Change::GroupDeleted(id.clone()));
        Ok(())
    }

    fn put_group(&mut self, group: &Group) -> Result<(), EngineError> {
        if let Some(condition) = &group.condition {
            Condition::parse(condition).map_err(|e| EngineError::InvalidArgument {
                field: "group.condition".into(),
                reason: e.message,
            })?;
        }
        self.emit(Change::GroupPut(group.clone()));
        Ok(())
    }

    fn put_role(&mut self, role: &Role) -> Result<(), EngineError> {
        let catalog = &self.compiled.catalog;
        let unknown = unknown_permissions(catalog, role);
        if !unknown.is_empty() {
            return Err(EngineError::InvalidArgument {
                field: "role.grants".into(),
                reason: format!(
                    "unknown permission{}: {}",
                    if unknown.len() == 1 { "" } else { "s" },
                    unknown
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        if role.requires.contains(&crate::model::Permission::All) {
            return Err(EngineError::InvalidArgument {
                field: "role.requires".into(),
                reason: "\"*\" cannot be a prerequisite".into(),
            });
        }
        if let Some(class) = &role.class {
            if catalog.role_class(class).is_none() {
                return Err(EngineError::InvalidArgument {
                    field: "role.class".into(),
                    reason: format!("unknown role class \"{class}\""),
                });
            }
        }
        for scope in role.grants.iter().flat_map(|g| &g.scopes) {
            self.scope(scope)?;
        }
        self.emit(Change::RolePut(role.clone()));
        Ok(())
    }

    /// Refuses to give a subject a role whose prerequisites it lacks. (A
    /// group may receive such a role: it then counts for exactly those
    /// members who meet them.)
    fn check_requirements(&mut self, key: &AssignmentKey) -> Result<(), EngineError> {
        let Principal::Subject(subject) = &key.principal else {
            return Ok(());
        };
        self.refresh();
        let (Some(role), Some(entry)) = (
            self.state.role(self.compiled, key.role.as_str()),
            self.state.subjects.get(subject),
        ) else {
            return Ok(());
        };
        let missing = self.state.missing_requirements(
            self.compiled,
            &entry.grants,
            role,
            &key.target,
            self.now,
        );
        if missing.is_empty() {
            return Ok(());
        }
        Err(Violation::PrerequisiteMissing {
            role: key.role.clone(),
            missing: missing
                .iter()
                .map(|b| self.compiled.catalog.name(*b).to_owned())
                .collect(),
            subject: subject.clone(),
            target: key.target.clone(),
        }
        .into())
    }

    fn is_member(&self, m: &Membership) -> bool {
        self.state
            .members
            .get(&m.group)
            .is_some_and(|ms| ms.contains(&m.member))
    }

    fn add_member(&mut self, m: &Membership, pre: Precondition) -> Result<(), EngineError> {
        self.group(&m.group)?;
        self.principal(&m.member)?;
        if let Principal::Group(inner) = &m.member {
            let closes_cycle = inner == &m.group
                || self
                    .state
                    .groups_of(&Principal::Group(m.group.clone()))
                    .iter()
                    .any(|(g, _)| g == inner);
            if closes_cycle {
                return Err(Violation::GroupCycle {
                    group: m.group.clone(),
                    member: inner.clone(),
                }
                .into());
            }
        }
        let present = self.is_member(m);
        self.precondition(pre, present, || Holding::Membership(m.clone()))?;
        if !present {
            self.authorize(|a| a.membership(m, Action::Grant))?;
            self.emit(Change::MemberAdded(m.clone()));
        }
        Ok(())
    }

    fn assign(&mut self, a: &Assignment, pre: Precondition) -> Result<(), EngineError> {
        let key = &a.key;
        if self.state.role(self.compiled, key.role.as_str()).is_none() {
            return Err(self.state.unknown_role(self.compiled, key.role.as_str()));
        }
        self.principal(&key.principal)?;
        match &key.target {
            Target::Scope(s) => self.scope(s)?,
            Target::Population(g) => self.group(g)?,
        }
        if a.expires_at.is_some_and(|t| t <= self.now) {
            return Err(EngineError::InvalidArgument {
                field: "expires_at".into(),
                reason: "the expiry is in the past".into(),
            });
        }
        self.check_requirements(key)?;
        let current = self.state.assignments.get(key);
        self.precondition(pre, current.is_some(), || Holding::Assignment(key.clone()))?;
        if current != Some(a) {
            self.authorize(|a| a.role(key, Action::Grant))?;
            self.emit(Change::RoleAssigned(a.clone()));
        }
        Ok(())
    }

    /// The keys of `principal`'s own assignments whose target passes `keep`.
    fn held(&self, principal: &Principal, keep: impl Fn(&Target) -> bool) -> Vec<AssignmentKey> {
        self.state
            .by_principal
            .get(principal)
            .into_iter()
            .flatten()
            .filter(|k| keep(&k.target))
            .cloned()
            .collect()
    }

    /// Whether removing a principal from `target` reaches an assignment at
    /// `t`: the same population, or a scope at or below the target scope.
    fn covers(&self, target: &Target, t: &Target) -> bool {
        match (target, t) {
            (Target::Scope(outer), Target::Scope(inner)) => self.state.is_within(inner, outer),
            (Target::Population(a), Target::Population(b)) => a == b,
            _ => false,
        }
    }

    fn replace_roles(
        &mut self,
        principal: &Principal,
        target: &Target,
        roles: &BTreeSet<RoleId>,
        expires_at: Option<Timestamp>,
    ) -> Result<(), EngineError> {
        self.principal(principal)?;
        let current = self.held(principal, |t| t == target);
        for key in current.iter().filter(|k| !roles.contains(&k.role)) {
            self.unassign(key, Precondition::None)?;
        }
        for role in roles
            .iter()
            .filter(|r| !current.iter().any(|k| &k.role == *r))
        {
            let key = AssignmentKey {
                role: role.clone(),
                principal: principal.clone(),
                target: target.clone(),
            };
            self.assign(&Assignment { key, expires_at }, Precondition::None)?;
        }
        Ok(())
    }

    fn unassign(&mut self, key: &AssignmentKey, pre: Precondition) -> Result<(), EngineError> {
        let present = self.state.assignments.contains_key(key);
        self.precondition(pre, present, || Holding::Assignment(key.clone()))?;
        if present {
            self.authorize(|a| a.role(key, Action::Revoke))?;
            self.emit(Change::RoleUnassigned(key.clone()));
            return Ok(());
        }
        self.refuse_implied(key)
    }

    /// Removing an assignment that does not exist is a no-op, unless the
    /// subject holds what the role gives anyway: then the caller believes it
    /// is removing a right that in truth comes from elsewhere (an
    /// administrator's `*`), and is told where.
    fn refuse_implied(&mut self, key: &AssignmentKey) -> Result<(), EngineError> {
        let (Principal::Subject(subject), Target::Scope(scope)) = (&key.principal, &key.target)
        else {
            return Ok(());
        };
        self.refresh();
        let (Some(role), Some(entry)) = (
            self.state.role(self.compiled, key.role.as_str()),
            self.state.subjects.get(subject),
        ) else {
            return Ok(());
        };
        let bits: Vec<_> = role.at_target.iter().collect();
        let place = super::ResolvedPlace::scope(scope.as_str());
        let holds_all = !bits.is_empty()
            && bits.iter().all(|b| {
                self.state.check(
                    self.compiled,
                    &entry.subject,
                    &entry.grants,
                    *b,
                    place,
                    self.now,
                )
            });
        if !holds_all {
            return Ok(());
        }
        let Some(&first) = bits.first() else {
            return Ok(());
        };
        let (_, why) = self.state.explain(
            self.compiled,
            Some((&entry.subject, &entry.grants)),
            first,
            place,
            self.now,
        );
        let from: Vec<String> = why
            .sources
            .iter()
            .map(|s| {
                let via = if s.groups.is_empty() {
                    String::new()
                } else {
                    format!(
                        " via group {}",
                        s.groups
                            .iter()
                            .map(GroupId::as_str)
                            .collect::<Vec<_>>()
                            .join(" → ")
                    )
                };
                format!("role {}{via} ({})", s.role, s.grant)
            })
            .collect();
        Err(Violation::RightImplied {
            subject: subject.clone(),
            role: key.role.clone(),
            scope: scope.clone(),
            sources: from,
        }
        .into())
    }
}

/// The distinct roles with a class a subject holds, by class name.
type ClassRoles<'a> = BTreeMap<&'a str, BTreeSet<RoleId>>;

/// The distinct roles with a class a subject holds, directly or through
/// groups.
fn class_roles<'a>(
    compiled: &'a Compiled,
    state: &'a TenantState,
    subject: &SubjectId,
) -> ClassRoles<'a> {
    let (_, assignments) = state.assignments_of(compiled, subject);
    let mut out: BTreeMap<&str, BTreeSet<RoleId>> = BTreeMap::new();
    for (a, role) in assignments {
        if let Some(class) = role.role.class.as_deref() {
            out.entry(class).or_default().insert(a.key.role.clone());
        }
    }
    out
}
