//! Who may change what (docs/policy-model.md, Actors): the rules an actor's membership and
//! role writes must pass. A write without an actor is a system write and is
//! not checked here.
//!
//! - Assigning or removing a role needs the role's `managed_by` permission
//!   at the target (a role without one needs every permission there, as a
//!   tenant administrator holds). A population target counts as the root.
//! - A subject may always remove itself from a `self_removable` role.
//! - Assigning also may not escalate: the role's rank may not exceed the
//!   actor's highest rank there, and the actor must itself hold every
//!   permission the role grants (pinned grants at their scopes). Permissions
//!   of resource types switched off for the tenant grant nothing, so they
//!   are not escalation. A role's `grantable_by` permission, held at the
//!   target, waives the holding requirement (like Kubernetes' `bind`): the
//!   schema says who may hand the role out without exercising it.
//! - Redefining a custom role is giving the new definition to every
//!   current holder: the actor must manage the role as it was, and each of
//!   its assignments must pass the assignment rules with the new definition
//!   (so nobody widens a role they hold, or one held by others, beyond what
//!   they could hand out). An unassigned role grants nothing: defining one
//!   is free, assigning it is checked.
//! - Changing a group's membership is (un)assigning every role that reaches
//!   members through the group: the group's own roles and those of the
//!   groups it is nested in, and roles others hold over the group (and its
//!   ancestors) as a population.
//!
//! - Deleting a subject, group or custom role is removing every membership
//!   and assignment that goes with it: each removal passes the rules above.
//! - Changing a subject's status or attributes is giving (or taking) what
//!   it holds: each of its memberships, the condition groups it joins or
//!   leaves, and its own roles pass the rules above. Changing a group's
//!   condition is changing its members.
//! - Changes whose effect on access is no list of grants (moving a scope or
//!   a subject's home scope, changing a scope's type, tenant settings) need
//!   an actor who holds every permission where they take effect.
//!
//! Must not know about protobuf; refusals are [`Violation`]s of the
//! actor's class ([`Violation::denies_actor`]) naming the rule and what was
//! missing.

use super::eval::ResolvedPlace;
use super::roles::CompiledRole;
use super::tenant::{Compiled, SubjectEntry, TenantState};
use super::violation::{AdminChange, Attempt, Managing, Names, Violation};
use crate::model::{
    AssignmentKey, GroupId, Membership, Principal, ScopeId, SubjectId, Target, Timestamp,
};
use crate::schema::PermBit;

/// The write being authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Giving a role (or a group membership that carries roles).
    Grant,
    /// Taking it away.
    Revoke,
}

/// The rules, evaluated against one state of the tenant.
pub struct Authorizer<'a> {
    /// The catalog in force.
    pub compiled: &'a Compiled,
    /// The tenant as planned so far (grants fresh).
    pub state: &'a TenantState,
    /// The actor.
    pub actor: &'a SubjectId,
    /// Evaluation time.
    pub now: Timestamp,
}

/// Where the rules for an assignment at `target` are evaluated: its scope,
/// or the root for a population.
fn rule_scope(target: &Target) -> ScopeId {
    match target {
        Target::Scope(s) => s.clone(),
        Target::Population(_) => ScopeId::root(),
    }
}

impl Authorizer<'_> {
    fn entry(&self) -> Result<&SubjectEntry, Violation> {
        self.state
            .subjects
            .get(self.actor)
            .ok_or_else(|| Violation::ActorNotInTenant {
                actor: self.actor.clone(),
            })
    }

    fn holds(&self, entry: &SubjectEntry, bit: PermBit, scope: &ScopeId) -> bool {
        self.state.check(
            self.compiled,
            &entry.subject,
            &entry.grants,
            bit,
            ResolvedPlace::scope(scope.as_str()),
            self.now,
        )
    }

    /// The permissions of `bits` the actor lacks at `scope`, ignoring those
    /// switched off for the tenant.
    fn lacking(
        &self,
        entry: &SubjectEntry,
        bits: impl Iterator<Item = PermBit>,
        scope: &ScopeId,
    ) -> Vec<PermBit> {
        bits.filter(|b| !self.state.disabled.contains(*b) && !self.holds(entry, *b, scope))
            .collect()
    }

    fn names(&self, bits: &[PermBit]) -> Names {
        Names::of(bits.iter().map(|b| self.compiled.catalog.name(*b)))
    }

    /// The highest rank among the actor's live roles that apply at `scope`.
    fn rank_at(&self, scope: &ScopeId) -> Option<i32> {
        let (_, assignments) = self.state.assignments_of(self.compiled, self.actor);
        assignments
            .into_iter()
            .filter(|(a, _)| a.expires_at.is_none_or(|t| self.now < t))
            .filter(|(a, _)| matches!(&a.key.target, Target::Scope(s) if self.state.is_within(scope, s)))
            .map(|(_, role)| role.role.rank)
            .max()
    }

    /// May the actor give or take `key`?
    pub fn role(&self, key: &AssignmentKey, action: Action) -> Result<(), Violation> {
        let Some(role) = self.state.role(self.compiled, key.role.as_str()) else {
            return Ok(()); // Unknown roles are refused by planning itself.
        };
        let entry = self.entry()?;
        let is_self = key.principal == Principal::Subject(self.actor.clone());
        if action == Action::Revoke && is_self && role.role.self_removable {
            return Ok(());
        }
        let scope = rule_scope(&key.target);
        let (actor, role_id, target) = (self.actor.clone(), key.role.clone(), key.target.clone());
        let attempt = match action {
            Action::Grant => Attempt::Assign {
                actor,
                role: role_id,
                target,
            },
            Action::Revoke => Attempt::Remove {
                actor,
                role: role_id,
                target,
            },
        };
        self.managed(entry, role, &scope, &attempt)?;
        if action == Action::Grant {
            self.no_escalation(entry, role, &scope, &attempt)?;
        }
        Ok(())
    }

    fn managed(
        &self,
        entry: &SubjectEntry,
        role: &CompiledRole,
        scope: &ScopeId,
        attempt: &Attempt,
    ) -> Result<(), Violation> {
        let catalog = &self.compiled.catalog;
        let needs = match role.role.managed_by.as_ref().and_then(|p| catalog.bit(p)) {
            Some(bit) if self.holds(entry, bit, scope) => return Ok(()),
            Some(bit) => Managing::Permission(catalog.name(bit).to_owned()),
            None => {
                let lacking = self.lacking(entry, catalog.all().iter(), scope);
                if lacking.is_empty() {
                    return Ok(());
                }
                Managing::Everything {
                    lacking: self.names(&lacking),
                }
            }
        };
        Err(Violation::NotManager {
            attempt: attempt.clone(),
            needs,
        })
    }

    fn no_escalation(
        &self,
        entry: &SubjectEntry,
        role: &CompiledRole,
        scope: &ScopeId,
        attempt: &Attempt,
    ) -> Result<(), Violation> {
        let rank = self.rank_at(scope);
        if rank.is_none_or(|r| role.role.rank > r) {
            return Err(Violation::RankTooHigh {
                attempt: attempt.clone(),
                rank: role.role.rank,
                actor_rank: rank,
            });
        }
        let catalog = &self.compiled.catalog;
        let delegated = role
            .role
            .grantable_by
            .as_ref()
            .and_then(|p| catalog.bit(p))
            .is_some_and(|bit| self.holds(entry, bit, scope));
        if delegated {
            return Ok(());
        }
        let mut lacking = self.lacking(entry, role.at_target.iter(), scope);
        for (pinned, set) in &role.pinned {
            if self.state.is_within(pinned, scope) {
                lacking.extend(self.lacking(entry, set.iter(), pinned));
            }
        }
        if lacking.is_empty() {
            return Ok(());
        }
        Err(Violation::GrantsNotHeld {
            attempt: attempt.clone(),
            lacking: self.names(&lacking),
        })
    }

    /// May the actor redefine a custom role as `new`, `holders` being the
    /// role's current assignments?
    pub fn redefine(&self, new: &CompiledRole, holders: &[AssignmentKey]) -> Result<(), Violation> {
        let entry = self.entry()?;
        let id = &new.role.id;
        for key in holders {
            let scope = rule_scope(&key.target);
            let attempt = Attempt::Redefine {
                actor: self.actor.clone(),
                role: id.clone(),
                holder: key.principal.clone(),
                target: key.target.clone(),
            };
            if let Some(old) = self.state.role(self.compiled, id.as_str()) {
                self.managed(entry, old, &scope, &attempt)?;
            }
            self.managed(entry, new, &scope, &attempt)?;
            self.no_escalation(entry, new, &scope, &attempt)?;
        }
        Ok(())
    }

    /// May the actor add `m.member` to (or remove it from) `m.group`?
    pub fn membership(&self, m: &Membership, action: Action) -> Result<(), Violation> {
        let is_self = m.member == Principal::Subject(self.actor.clone());
        self.members_of(&m.group, action, is_self)
    }

    /// May the actor change who is in `group` other than by naming a member
    /// (a new condition, a subject's attributes or status)? The membership
    /// rules, for someone other than the actor.
    pub fn group_change(&self, group: &GroupId, action: Action) -> Result<(), Violation> {
        self.members_of(group, action, false)
    }

    fn members_of(&self, group: &GroupId, action: Action, is_self: bool) -> Result<(), Violation> {
        for (key, through_population) in self.roles_through(group) {
            // Leaving a group oneself is removing oneself from its roles; a
            // population only gives others rights over its members.
            let self_removable = self
                .state
                .role(self.compiled, key.role.as_str())
                .is_some_and(|r| r.role.self_removable);
            if action == Action::Revoke && is_self && (through_population || self_removable) {
                continue;
            }
            self.role(&key, action)
                .map_err(|violation| Violation::ThroughGroup {
                    group: group.clone(),
                    role: key.role.clone(),
                    violation: Box::new(violation),
                })?;
        }
        // Even a group carrying no roles needs the actor to exist.
        self.entry().map(|_| ())
    }

    /// Does the actor administer `scope`: hold every permission there, as
    /// managing a role without `managed_by` takes? Asked of directory
    /// changes whose effect on access is no list of grants (moving a scope
    /// or a subject's home scope, tenant settings).
    pub fn administers(&self, scope: &ScopeId, change: &AdminChange) -> Result<(), Violation> {
        let entry = self.entry()?;
        let lacking = self.lacking(entry, self.compiled.catalog.all().iter(), scope);
        if lacking.is_empty() {
            return Ok(());
        }
        Err(Violation::NotAdministrator {
            actor: self.actor.clone(),
            change: change.clone(),
            scope: scope.clone(),
            lacking: self.names(&lacking),
        })
    }

    /// Every assignment that reaches a member through `group`, and whether it
    /// does so as a population (rights of others over the member).
    fn roles_through(&self, group: &GroupId) -> Vec<(AssignmentKey, bool)> {
        let mut groups: Vec<GroupId> = vec![group.clone()];
        groups.extend(
            self.state
                .groups_of(&Principal::Group(group.clone()))
                .into_iter()
                .map(|(g, _)| g),
        );
        let mut out = Vec::new();
        for g in &groups {
            let held = self.state.by_principal.get(&Principal::Group(g.clone()));
            out.extend(held.into_iter().flatten().map(|k| (k.clone(), false)));
        }
        out.extend(
            self.state
                .assignments
                .keys()
                .filter(|k| matches!(&k.target, Target::Population(p) if groups.contains(p)))
                .map(|k| (k.clone(), true)),
        );
        out
    }
}
