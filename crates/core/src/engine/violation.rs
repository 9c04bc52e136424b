//! The rules of the engine a write can break: one [`Violation`] variant per
//! rule, each with the stable reason code a client branches on
//! ([`Violation::reason`]) and the class of refusal it is
//! ([`Violation::denies_actor`]: the actor may not make the write, or the
//! model forbids it for anyone).
//!
//! A variant holds what the refusal names (ids, permission names), so that
//! its message is rendered in one place and its code never depends on the
//! message. Codes are part of the wire contract: a code, once published, is
//! never renamed or reused for another rule. Must not decide anything (the
//! rules live in `plan` and `authorize`) nor know how an edge carries a
//! code (gRPC's `ErrorInfo` is the server's business).

use std::fmt;

use crate::model::{AssignmentKey, GroupId, Membership, Principal, RoleId, ScopeId, SubjectId};
use crate::model::{ROOT_SCOPE, Target};

/// How many names a list of missing permissions shows before it says
/// "and N more": a refusal's message stays short whatever the catalog's size.
const LISTED: usize = 5;

/// A rule of the engine that refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Not `#[non_exhaustive]`: `reason` and `denies_actor` match every variant,
// so a new rule cannot reach a client without a code.
pub enum Violation {
    /// The actor is no subject of the tenant (an earlier operation of the
    /// batch deleted it).
    #[error("actor {actor} does not exist in this tenant")]
    ActorNotInTenant {
        /// The actor.
        actor: SubjectId,
    },
    /// The actor does not hold what managing the role needs at the target:
    /// its `managed_by` permission, or every permission for a role that
    /// names none.
    #[error("{attempt}: {needs}")]
    NotManager {
        /// What the actor tried.
        attempt: Attempt,
        /// What managing the role needs.
        needs: Managing,
    },
    /// The role is ranked above the actor's highest rank at the target.
    #[error(
        "{attempt}: its rank {rank} is above the actor's highest rank there ({})",
        rank_text(.actor_rank)
    )]
    RankTooHigh {
        /// What the actor tried.
        attempt: Attempt,
        /// The role's rank.
        rank: i32,
        /// The actor's highest rank there; `None` when it holds no role there.
        actor_rank: Option<i32>,
    },
    /// The role grants permissions the actor does not hold where it would
    /// grant them.
    #[error("{attempt}: it grants {lacking}, which the actor does not hold there")]
    GrantsNotHeld {
        /// What the actor tried.
        attempt: Attempt,
        /// The permissions the actor lacks.
        lacking: Names,
    },
    /// A change whose effect on access is no list of grants needs an actor
    /// who holds every permission where it takes effect.
    #[error(
        "actor {actor} may not {change}: it needs every permission at scope {scope}, and the actor lacks {lacking}"
    )]
    NotAdministrator {
        /// The actor.
        actor: SubjectId,
        /// The change.
        change: AdminChange,
        /// Where it takes effect.
        scope: ScopeId,
        /// The permissions the actor lacks there.
        lacking: Names,
    },
    /// Changing a group's members changes who holds a role through it, and
    /// the actor may not change that. Its code is the inner rule's.
    #[error(
        "changing the members of group {group} means changing who holds role {role}: {violation}"
    )]
    ThroughGroup {
        /// The group whose members change.
        group: GroupId,
        /// The role that reaches its members.
        role: RoleId,
        /// The rule the change of holders breaks.
        violation: Box<Violation>,
    },
    /// The root scope always exists and never changes.
    #[error(
        "scope {ROOT_SCOPE} is every tenant's root: it always exists and cannot be created, changed or deleted"
    )]
    RootScopeFixed,
    /// A subject would hold more than one role of an `exactly_one` or
    /// `at_most_one` class.
    #[error(
        "subject {subject} would hold {} roles of class {class} ({}); it allows one",
        .roles.len(),
        joined(.roles, ", ")
    )]
    RoleClassExceeded {
        /// The subject.
        subject: SubjectId,
        /// The class.
        class: String,
        /// The roles of the class it would hold.
        roles: Vec<RoleId>,
    },
    /// A subject that held a role of an `exactly_one` class would be left
    /// with none.
    #[error(
        "subject {subject} would be left without a role of class {class}, which needs exactly one; replace it in the same batch"
    )]
    RoleClassRequired {
        /// The subject.
        subject: SubjectId,
        /// The class.
        class: String,
    },
    /// A subject lacks a permission the role `requires`.
    #[error(
        "role {role} requires {}, which subject {subject} does not hold at or below {target}",
        joined(.missing, ", ")
    )]
    PrerequisiteMissing {
        /// The role.
        role: RoleId,
        /// The required permissions the subject lacks.
        missing: Vec<String>,
        /// The subject.
        subject: SubjectId,
        /// Where the role was to be assigned.
        target: Target,
    },
    /// Removing an assignment the subject does not have, while it holds
    /// what the role gives through other grants: removing it would change
    /// nothing, which the caller would take for a revocation.
    #[error(
        "subject {subject} is not assigned role {role} at {scope}, so there is nothing to remove: what the role gives, {subject} holds through {}; remove that instead",
        joined(.sources, ", ")
    )]
    RightImplied {
        /// The subject.
        subject: SubjectId,
        /// The role asked to be removed.
        role: RoleId,
        /// Where.
        scope: ScopeId,
        /// Where the subject's rights come from ("role admin (*)").
        sources: Vec<String>,
    },
    /// Builtin roles belong to the schema.
    #[error("role {role} is builtin (defined by the schema) and cannot be changed through the API")]
    BuiltinRoleImmutable {
        /// The role.
        role: RoleId,
    },
    /// Nesting a group in itself, directly or not.
    #[error("adding group {member} to group {group} would make a cycle of nested groups")]
    GroupCycle {
        /// The group receiving the member.
        group: GroupId,
        /// The group that would be nested.
        member: GroupId,
    },
    /// Moving a scope under itself or one of its descendants.
    #[error("moving scope {scope} under {parent} would make it its own ancestor")]
    ScopeCycle {
        /// The scope moved.
        scope: ScopeId,
        /// The parent asked for.
        parent: ScopeId,
    },
    /// Deleting a scope that something still refers to.
    #[error("scope {scope} is still in use: {by}")]
    ScopeInUse {
        /// The scope.
        scope: ScopeId,
        /// The first thing found that uses it.
        by: ScopeUse,
    },
    /// A `MUST_EXIST` precondition failed.
    #[error("precondition MUST_EXIST failed: {holding} does not exist")]
    MustExist {
        /// What was to exist.
        holding: Holding,
    },
    /// A `MUST_NOT_EXIST` precondition failed.
    #[error("precondition MUST_NOT_EXIST failed: {holding} already exists")]
    MustNotExist {
        /// What was not to exist.
        holding: Holding,
    },
    /// A new schema lacks what stored data uses (a permission of a custom
    /// role, an assigned builtin role, a switched-off resource type).
    #[error(
        "the schema lacks what stored data uses: {}{}",
        joined(.problems, "; "),
        more_text(.more)
    )]
    SchemaLacksStoredData {
        /// The problems listed.
        problems: Vec<String>,
        /// How many more there are.
        more: usize,
    },
}

impl Violation {
    /// The stable reason code of the rule: SCREAMING_SNAKE_CASE, part of
    /// the wire contract (the table in docs/api.md lists them).
    pub fn reason(&self) -> &'static str {
        match self {
            Violation::ActorNotInTenant { .. } => "ACTOR_NOT_IN_TENANT",
            Violation::NotManager { .. } => "NOT_MANAGER",
            Violation::RankTooHigh { .. } => "ROLE_RANK_TOO_HIGH",
            Violation::GrantsNotHeld { .. } => "GRANTS_NOT_HELD",
            Violation::NotAdministrator { .. } => "NOT_ADMINISTRATOR",
            Violation::ThroughGroup { violation, .. } => violation.reason(),
            Violation::RootScopeFixed => "ROOT_SCOPE_FIXED",
            Violation::RoleClassExceeded { .. } => "ROLE_CLASS_EXCEEDED",
            Violation::RoleClassRequired { .. } => "ROLE_CLASS_REQUIRED",
            Violation::PrerequisiteMissing { .. } => "PREREQUISITE_MISSING",
            Violation::RightImplied { .. } => "RIGHT_IMPLIED",
            Violation::BuiltinRoleImmutable { .. } => "BUILTIN_ROLE_IMMUTABLE",
            Violation::GroupCycle { .. } => "GROUP_CYCLE",
            Violation::ScopeCycle { .. } => "SCOPE_CYCLE",
            Violation::ScopeInUse { .. } => "SCOPE_IN_USE",
            Violation::MustExist { .. } => "MUST_EXIST_FAILED",
            Violation::MustNotExist { .. } => "MUST_NOT_EXIST_FAILED",
            Violation::SchemaLacksStoredData { .. } => "SCHEMA_LACKS_STORED_DATA",
        }
    }

    /// Whether the rule refuses this actor (another actor, or a system
    /// write, could make the write: PERMISSION_DENIED, and audited) rather
    /// than the write itself (a rule of the model: FAILED_PRECONDITION).
    pub fn denies_actor(&self) -> bool {
        match self {
            Violation::ActorNotInTenant { .. }
            | Violation::NotManager { .. }
            | Violation::RankTooHigh { .. }
            | Violation::GrantsNotHeld { .. }
            | Violation::NotAdministrator { .. } => true,
            Violation::ThroughGroup { violation, .. } => violation.denies_actor(),
            Violation::RootScopeFixed
            | Violation::RoleClassExceeded { .. }
            | Violation::RoleClassRequired { .. }
            | Violation::PrerequisiteMissing { .. }
            | Violation::RightImplied { .. }
            | Violation::BuiltinRoleImmutable { .. }
            | Violation::GroupCycle { .. }
            | Violation::ScopeCycle { .. }
            | Violation::ScopeInUse { .. }
            | Violation::MustExist { .. }
            | Violation::MustNotExist { .. }
            | Violation::SchemaLacksStoredData { .. } => false,
        }
    }
}

/// What an actor tried, as the actor rules judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Giving a role.
    Assign {
        /// The actor.
        actor: SubjectId,
        /// The role.
        role: RoleId,
        /// Where.
        target: Target,
    },
    /// Taking a role away.
    Remove {
        /// The actor.
        actor: SubjectId,
        /// The role.
        role: RoleId,
        /// Where.
        target: Target,
    },
    /// Redefining a custom role, which gives the new definition to a
    /// current holder.
    Redefine {
        /// The actor.
        actor: SubjectId,
        /// The role.
        role: RoleId,
        /// One of its holders.
        holder: Principal,
        /// Where it holds the role.
        target: Target,
    },
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Assign {
                actor,
                role,
                target,
            } => write!(f, "actor {actor} may not assign role {role} at {target}"),
            Attempt::Remove {
                actor,
                role,
                target,
            } => write!(f, "actor {actor} may not remove role {role} at {target}"),
            Attempt::Redefine {
                actor,
                role,
                holder,
                target,
            } => write!(
                f,
                "actor {actor} may not redefine role {role}, which {holder} holds at {target}"
            ),
        }
    }
}

/// What managing a role needs, of which the actor lacks something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Managing {
    /// The role's `managed_by` permission.
    Permission(String),
    /// Every permission, for a role that names no `managed_by`.
    Everything {
        /// The permissions the actor lacks.
        lacking: Names,
    },
}

impl fmt::Display for Managing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Managing::Permission(p) => write!(
                f,
                "managing it needs {p} there, which the actor does not hold"
            ),
            Managing::Everything { lacking } => write!(
                f,
                "the role names no managed_by permission, so managing it needs every permission there; the actor lacks {lacking}"
            ),
        }
    }
}

/// A change only an actor holding every permission where it takes effect
/// may make: its effect on access is no list of grants to judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminChange {
    /// Replacing the tenant's settings.
    TenantSettings,
    /// Moving a scope or changing its type.
    Scope(ScopeId),
    /// Moving a subject's home scope.
    HomeScope(SubjectId),
}

impl fmt::Display for AdminChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminChange::TenantSettings => f.write_str("change the tenant's settings"),
            AdminChange::Scope(s) => write!(f, "move or retype scope {s}"),
            AdminChange::HomeScope(s) => write!(f, "move the home scope of subject {s}"),
        }
    }
}

/// A membership or an assignment, as a precondition names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// A member of a group.
    Membership(Membership),
    /// A role held at a target.
    Assignment(AssignmentKey),
}

impl fmt::Display for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holding::Membership(m) => write!(f, "{} in group {}", m.member, m.group),
            Holding::Assignment(k) => write!(
                f,
                "the assignment of role {} to {} at {}",
                k.role, k.principal, k.target
            ),
        }
    }
}

/// What keeps a scope from being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeUse {
    /// A child scope.
    Child(ScopeId),
    /// An assignment at it.
    Assignment(AssignmentKey),
    /// A custom role pinning a grant to it.
    PinnedBy(RoleId),
    /// A subject whose home scope it is.
    HomeOf(SubjectId),
}

impl fmt::Display for ScopeUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeUse::Child(s) => write!(f, "scope {s} is its child"),
            ScopeUse::Assignment(k) => Holding::Assignment(k.clone()).fmt(f),
            ScopeUse::PinnedBy(r) => write!(f, "role {r} pins a grant to it"),
            ScopeUse::HomeOf(s) => write!(f, "it is the home scope of subject {s}"),
        }
    }
}

/// Permission names a refusal lists: the first few, and how many more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The names shown, at most five.
    pub shown: Vec<String>,
    /// How many were left out.
    pub more: usize,
}

impl Names {
    /// The first five of `names`, counting the rest.
    pub fn of<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Names {
        let more = names.len().saturating_sub(LISTED);
        Names {
            shown: names.take(LISTED).map(str::to_owned).collect(),
            more,
        }
    }
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown.join(", "))?;
        match (self.more, self.shown.is_empty()) {
            (0, _) => Ok(()),
            (more, true) => write!(f, "and {more} more"),
            (more, false) => write!(f, ", and {more} more"),
        }
    }
}

fn joined<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

fn rank_text(rank: &Option<i32>) -> String {
    rank.map_or("none".to_string(), |r| r.to_string())
}

fn more_text(more: &usize) -> String {
    if *more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<T: TryFrom<&'static str>>(s: &'static str) -> T
    where
        T::Error: fmt::Debug,
    {
        T::try_from(s).unwrap()
    }

    /// A refusal through a group keeps the rule's code and class, and says
    /// both the group and the rule.
    #[test]
    fn a_refusal_through_a_group_is_the_rule_broken() {
        let attempt = Attempt::Assign {
            actor: id("bob"),
            role: id("editor"),
            target: Target::Scope(ScopeId::root()),
        };
        let inner = Violation::NotManager {
            attempt,
            needs: Managing::Permission("users:admin".into()),
        };
        let through = Violation::ThroughGroup {
            group: id("g"),
            role: id("editor"),
            violation: Box::new(inner.clone()),
        };
        assert_eq!(through.reason(), "NOT_MANAGER");
        assert!(through.denies_actor());
        assert_eq!(
            through.to_string(),
            format!(
                "changing the members of group g means changing who holds role editor: {inner}"
            )
        );
        assert_eq!(
            inner.to_string(),
            "actor bob may not assign role editor at scope root: managing it needs users:admin there, which the actor does not hold"
        );
    }

    /// Lists of missing permissions stop after a few and say how many more.
    #[test]
    fn long_lists_are_cut() {
        let names = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(
            Names::of(names.iter().copied()).to_string(),
            "a, b, c, d, e, and 2 more"
        );
        assert_eq!(Names::of(names[..2].iter().copied()).to_string(), "a, b");
    }
}
