//! Evaluation: the check (docs/policy-model.md), its explanation, and the two listings
//! built on it (a subject's effective permissions, the holders of a
//! permission).
//!
//! The check reads only the memoised [`SubjectGrants`] and the scope tree: no
//! allocation, no lock, no store. Explanations and listings walk the
//! directory instead, because they must name every path, and they are not on
//! the hot path. Must not know about protobuf or redb.

use super::grants::SubjectGrants;
use super::roles::CompiledRole;
use super::tenant::{Compiled, TenantState};
use crate::model::{
    GroupId, Principal, Reach, ScopeId, Subject, SubjectId, SubjectStatus, Target, Timestamp,
};
use crate::schema::{Catalog, PermBit, PermSet, Rule, RuleKind};

/// Where a check applies, resolved against the tenant.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedPlace<'a> {
    /// The scope whose ancestor chain is searched.
    pub scope: &'a str,
    /// For checks over a subject: that subject's grants (which say which
    /// populations it is in).
    pub target: Option<&'a SubjectGrants>,
    /// For checks over a subject: its id, for explanations.
    pub target_id: Option<&'a SubjectId>,
    /// Set for a scope directly below `scope` that has no grants of its own
    /// (one created later, say): there only inheriting permissions granted at
    /// `scope` and above count. What holds here holds at every scope below
    /// `scope`, which is how a [`Reach`] is decided.
    pub below: bool,
}

impl<'a> ResolvedPlace<'a> {
    /// A check at a scope.
    pub fn scope(scope: &'a str) -> Self {
        Self {
            scope,
            target: None,
            target_id: None,
            below: false,
        }
    }

    /// Whether the place's target subject is in `group`.
    fn in_population(&self, group: &GroupId) -> bool {
        self.target.is_some_and(|t| t.in_group(group.as_str()))
    }

    /// A check at a scope directly below `scope` with no grants of its own.
    pub fn below(scope: &'a str) -> Self {
        Self {
            below: true,
            ..Self::scope(scope)
        }
    }
}

/// One way a permission is held (or would be, but for a reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The role.
    pub role: String,
    /// The groups it came through, innermost first; empty when direct.
    pub groups: Vec<GroupId>,
    /// The scope of the assignment or pinned grant; `None` for a population.
    pub scope: Option<ScopeId>,
    /// The population group, if the assignment targets one.
    pub population: Option<GroupId>,
    /// The grant as the role states it.
    pub grant: String,
    /// How the permission follows from the grant; empty when literal.
    pub implication: String,
    /// When the assignment expires.
    pub expires_at: Option<Timestamp>,
}

/// Why a permission is not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DenialReason {
    /// The subject does not exist.
    SubjectNotFound,
    /// The subject is locked.
    SubjectLocked,
    /// Nothing grants it.
    NoGrant,
    /// The resource type is switched off for the tenant.
    ResourceDisabled,
    /// Only expired assignments would grant it.
    AssignmentExpired,
    /// A role's prerequisite is not met.
    PrerequisiteMissing,
    /// The target subject is outside the population.
    OutsidePopulation,
    /// The role's class masks it.
    MaskedByClass,
    /// A grant exists, but at a scope that does not cover the target.
    OutOfScope,
    /// A group holds a role granting it at the place; the subject is not in it.
    NotAMember,
}

/// One reason for a deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The kind of reason.
    pub reason: DenialReason,
    /// A sentence naming what is concerned.
    pub detail: String,
}

/// The outcome of an explained check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Explanation {
    /// For an allow: every way it is held.
    pub sources: Vec<Source>,
    /// For a deny: every reason.
    pub denials: Vec<Denial>,
}

/// How a grant that names (or implies) the permission relates to the place.
enum Fit {
    Holds,
    Expired,
    Masked,
    PrerequisiteMissing(String),
    OutOfScope(String),
    OutsidePopulation(GroupId, String),
}

/// A subject as explanations see it: its record and grants, and every
/// assignment that reaches it with the groups it comes through, gathered
/// once so that explaining many permissions at many places (a listing)
/// walks its groups once.
#[derive(Debug)]
pub struct Traceable<'a> {
    /// The subject.
    pub subject: &'a Subject,
    /// Its memoised grants.
    pub grants: &'a SubjectGrants,
    /// Its own assignments, then its groups' in the order `groups_of` finds them.
    routes: Vec<Route<'a>>,
}

/// One assignment reaching a subject.
#[derive(Debug)]
struct Route<'a> {
    assignment: &'a crate::model::Assignment,
    role: &'a std::sync::Arc<CompiledRole>,
    /// The groups it comes through, innermost first; empty when direct.
    groups: Vec<GroupId>,
}

/// Which sources a trace must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traced {
    /// Those that hold: the explanation of an allow names only these.
    Holding,
    /// Every one, with why it does not hold: for the reasons of a deny.
    Every,
}

impl TenantState {
    /// The check of the policy model (docs/policy-model.md). Allocates nothing.
    pub fn check(
        &self,
        compiled: &Compiled,
        subject: &Subject,
        grants: &SubjectGrants,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        now: Timestamp,
    ) -> bool {
        subject.status == SubjectStatus::Active
            && self.holds(
                compiled,
                grants,
                bit,
                place,
                self.numbered(place.scope),
                now,
                0,
            )
    }

    /// [`TenantState::check`] of an active subject, with the place's
    /// numbered ancestor chain already found (the API's check resolves it
    /// while it checks that the scope exists). Allocates nothing.
    pub(super) fn check_on_chain(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        chain: &[u32],
        now: Timestamp,
    ) -> bool {
        self.holds(compiled, grants, bit, place, chain, now, 0)
    }

    /// Whether `bit` holds at `place`, whose scope's ancestor chain is
    /// `chain` (numbered; resolved once per check, not once per derived
    /// term).
    #[expect(
        clippy::too_many_arguments,
        reason = "the check path passes what it resolved once rather than bundling it per call"
    )]
    fn holds(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        chain: &[u32],
        now: Timestamp,
        depth: usize,
    ) -> bool {
        if self.disabled.contains(bit) {
            return false;
        }
        if self.granted(compiled, grants, bit, place, chain, now) {
            return true;
        }
        // Derived rules are acyclic (the schema refuses cycles); the depth
        // bound only guards against a catalog bug turning into a stack overflow.
        match compiled.catalog.rule(bit) {
            Some(rule) if depth < 64 => {
                let term =
                    |t: &PermBit| self.holds(compiled, grants, *t, place, chain, now, depth + 1);
                match rule.kind {
                    RuleKind::AllOf => rule.terms.iter().all(term),
                    RuleKind::AnyOf => rule.terms.iter().any(term),
                }
            }
            _ => false,
        }
    }

    /// Whether a grant names `bit` (after closure) at the place: at the scope,
    /// at an ancestor for inheriting permissions, or over a population the
    /// target subject is in.
    fn granted(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        chain: &[u32],
        now: Timestamp,
    ) -> bool {
        let inherits = compiled.catalog.inherits(bit);
        let exact = !place.below;
        if grants.holds_on_chain(chain, bit, inherits, exact, now) {
            return true;
        }
        place.target.is_some_and(|target| {
            grants.populations.iter().any(|e| {
                target.in_group(e.at.as_str()) && grants.holds_over(e.at.as_str(), bit, now)
            })
        })
    }

    /// How far below `scope` `bit` holds, given that it holds there (see
    /// [`Reach`]): `Subtree` when it also holds at a scope directly below
    /// that has no grants of its own, since every scope below `scope` holds
    /// at least what such a scope holds.
    pub fn reach(
        &self,
        compiled: &Compiled,
        subject: &Subject,
        grants: &SubjectGrants,
        bit: PermBit,
        scope: &str,
        now: Timestamp,
    ) -> Reach {
        if self.check(
            compiled,
            subject,
            grants,
            bit,
            ResolvedPlace::below(scope),
            now,
        ) {
            Reach::Subtree
        } else {
            Reach::Exact
        }
    }

    /// Every permission [`TenantState::check`] allows at the place, at
    /// once: what a listing needs, instead of one check per catalog bit.
    /// Derived bits come last in the catalog and their terms before them,
    /// so one pass in bit order settles every rule.
    pub fn held(
        &self,
        compiled: &Compiled,
        subject: &Subject,
        grants: &SubjectGrants,
        place: ResolvedPlace<'_>,
        now: Timestamp,
    ) -> PermSet {
        let catalog = &compiled.catalog;
        let mut set = PermSet::empty(catalog.len());
        if subject.status != SubjectStatus::Active {
            return set;
        }
        for (step, scope) in self.ancestors(place.scope).into_iter().enumerate() {
            let exact = step == 0 && !place.below;
            let mask = (!exact).then(|| catalog.inheriting());
            grants.gather_at(scope, now, mask, &mut set);
        }
        if let Some(target) = place.target {
            grants.gather_over(target, now, &mut set);
        }
        self.settle(catalog, &mut set);
        set
    }

    /// What [`Self::held`] answers at `scope` and below it
    /// ([`ResolvedPlace::scope`] and [`ResolvedPlace::below`]), from one
    /// walk of the scope's ancestors: the two differ only in what the
    /// grants at `scope` itself give that does not inherit. A write
    /// reaching a whole group asks both for every scope of every distinct
    /// shape of grants.
    pub fn held_here_and_below(
        &self,
        compiled: &Compiled,
        subject: &Subject,
        grants: &SubjectGrants,
        scope: &str,
        now: Timestamp,
    ) -> (PermSet, PermSet) {
        let catalog = &compiled.catalog;
        let (mut here, mut below) = (PermSet::empty(catalog.len()), PermSet::empty(catalog.len()));
        if subject.status != SubjectStatus::Active {
            return (here, below);
        }
        let inheriting = catalog.inheriting();
        for (step, at) in self.ancestors(scope).into_iter().enumerate() {
            let mask = (step > 0).then_some(inheriting);
            grants.gather_at(at, now, mask, &mut here);
        }
        // Below the scope, its own grants count as its ancestors' do: only
        // what inherits, so what holds below is what holds here, masked.
        below.union_masked(&here, inheriting);
        self.settle(catalog, &mut here);
        self.settle(catalog, &mut below);
        (here, below)
    }

    /// Removes what switched-off resource types would give and adds every
    /// derived permission whose rule the set meets.
    fn settle(&self, catalog: &Catalog, set: &mut PermSet) {
        set.subtract(&self.disabled);
        for &bit in catalog.derived() {
            if !self.disabled.contains(bit) && catalog.rule(bit).is_some_and(|r| r.holds(set)) {
                set.insert(bit);
            }
        }
    }

    /// Whether `bit` holds at `scope` or at any scope below it where the
    /// subject has a grant: where a prerequisite counts.
    pub(super) fn holds_within(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        bit: PermBit,
        scope: &ScopeId,
        now: Timestamp,
    ) -> bool {
        std::iter::once(scope)
            .chain(
                grants
                    .scopes
                    .iter()
                    .map(|e| &e.at)
                    .filter(|at| self.is_within(*at, scope)),
            )
            .any(|at| {
                let place = ResolvedPlace::scope(at.as_str());
                self.holds(
                    compiled,
                    grants,
                    bit,
                    place,
                    self.numbered(at.as_str()),
                    now,
                    0,
                )
            })
    }

    /// Whether `role`'s prerequisites hold at `now` for a subject with
    /// `grants`, for an assignment at `target` (a population assignment's
    /// prerequisites must hold somewhere in the tenant).
    pub(super) fn requires_met(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        role: &CompiledRole,
        target: &Target,
        now: Timestamp,
    ) -> bool {
        self.missing_requirements(compiled, grants, role, target, now)
            .is_empty()
    }

    /// The prerequisites of `role` a subject lacks for an assignment at `target`.
    pub fn missing_requirements(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        role: &CompiledRole,
        target: &Target,
        now: Timestamp,
    ) -> Vec<PermBit> {
        let root = ScopeId::root();
        let scope = match target {
            Target::Scope(s) => s,
            Target::Population(_) => &root,
        };
        role.requires
            .iter()
            .copied()
            .filter(|bit| !self.holds_within(compiled, grants, *bit, scope, now))
            .collect()
    }

    /// The check with its derivation or its reasons.
    pub fn explain(
        &self,
        compiled: &Compiled,
        subject: Option<(&Subject, &SubjectGrants)>,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        now: Timestamp,
    ) -> (bool, Explanation) {
        let mut out = Explanation::default();
        let Some((subject, grants)) = subject else {
            out.denials.push(Denial {
                reason: DenialReason::SubjectNotFound,
                detail: "the subject does not exist in this tenant".into(),
            });
            return (false, out);
        };
        let traceable = self.traceable(compiled, subject, grants);
        self.explain_traced(compiled, &traceable, bit, place, now)
    }

    /// [`TenantState::explain`] for a subject whose routes are gathered.
    pub fn explain_traced(
        &self,
        compiled: &Compiled,
        traceable: &Traceable<'_>,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        now: Timestamp,
    ) -> (bool, Explanation) {
        let mut out = Explanation::default();
        let (subject, grants) = (traceable.subject, traceable.grants);
        let allowed = self.check(compiled, subject, grants, bit, place, now);
        let catalog = &compiled.catalog;
        if subject.status == SubjectStatus::Locked {
            out.denials.push(Denial {
                reason: DenialReason::SubjectLocked,
                detail: format!("subject {} is locked", subject.id),
            });
        }
        if self.disabled.contains(bit) {
            out.denials.push(Denial {
                reason: DenialReason::ResourceDisabled,
                detail: format!(
                    "resource type {} is switched off for this tenant",
                    catalog.resource_of(bit)
                ),
            });
        }
        let wanted = if allowed {
            Traced::Holding
        } else {
            Traced::Every
        };
        for (source, fit) in self.trace(compiled, traceable, bit, place, now, wanted) {
            match fit {
                Fit::Holds => out.sources.push(source),
                other if !allowed => out.denials.push(denial(&source, other)),
                _ => {}
            }
        }
        if !allowed {
            self.explain_derived(compiled, traceable, bit, place, now, &mut out);
            // Joining a group cannot help a locked subject or a switched-off
            // type: naming groups there would send an administrator the
            // wrong way.
            if subject.status == SubjectStatus::Active && !self.disabled.contains(bit) {
                self.explain_groups(compiled, grants, bit, place, &mut out);
            }
            out.sources.clear();
            if out.denials.is_empty() {
                out.denials.push(Denial {
                    reason: DenialReason::NoGrant,
                    detail: format!(
                        "no role of subject {} grants {}",
                        subject.id,
                        catalog.name(bit)
                    ),
                });
            }
        } else if out.sources.is_empty() {
            self.explain_derived(compiled, traceable, bit, place, now, &mut out);
        }
        if allowed {
            out.denials.clear();
        }
        (allowed, out)
    }

    /// On a deny: the groups whose roles would grant the permission at the
    /// place, that the subject is not in (the memberships an administrator
    /// could add).
    fn explain_groups(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        out: &mut Explanation,
    ) {
        for key in self.assignments.keys() {
            let Principal::Group(group) = &key.principal else {
                continue;
            };
            let Some(role) = self.role(compiled, key.role.as_str()) else {
                continue;
            };
            let covers = match &key.target {
                Target::Scope(s) => ScopeId::try_from(place.scope).is_ok_and(|here| {
                    if compiled.catalog.inherits(bit) {
                        self.is_within(&here, s)
                    } else {
                        &here == s
                    }
                }),
                Target::Population(p) => place.in_population(p),
            };
            if covers && role.at_target.contains(bit) && !grants.in_group(group.as_str()) {
                out.denials.push(Denial {
                    reason: DenialReason::NotAMember,
                    detail: format!(
                        "group {group} holds role {} granting {} at {}; the subject is not a member",
                        key.role,
                        compiled.catalog.name(bit),
                        key.target
                    ),
                });
            }
        }
    }

    /// For a derived permission: the sources of the terms that hold (on an
    /// allow) or the terms that are missing (on a deny).
    fn explain_derived(
        &self,
        compiled: &Compiled,
        traceable: &Traceable<'_>,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        now: Timestamp,
        out: &mut Explanation,
    ) {
        let catalog = &compiled.catalog;
        let Some(rule) = catalog.rule(bit) else {
            return;
        };
        let kind = match rule.kind {
            RuleKind::AllOf => "all of",
            RuleKind::AnyOf => "any of",
        };
        for term in &rule.terms {
            let chain = self.numbered(place.scope);
            if self.holds(compiled, traceable.grants, *term, place, chain, now, 1) {
                for (source, fit) in
                    self.trace(compiled, traceable, *term, place, now, Traced::Holding)
                {
                    if matches!(fit, Fit::Holds) {
                        out.sources
                            .push(counted_toward(compiled, rule, *term, bit, source));
                    }
                }
            } else {
                out.denials.push(Denial {
                    reason: DenialReason::NoGrant,
                    detail: format!(
                        "{} needs {kind} {}; {} is not held",
                        catalog.name(bit),
                        term_names(compiled, &rule.terms),
                        catalog.name(*term)
                    ),
                });
            }
        }
    }

    /// Every (path, assignment, grant) whose closure contains `bit`, with how
    /// it relates to the place; with [`Traced::Holding`], at least those
    /// that hold there (the others may be left out).
    fn trace(
        &self,
        compiled: &Compiled,
        traceable: &Traceable<'_>,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        now: Timestamp,
        wanted: Traced,
    ) -> Vec<(Source, Fit)> {
        let chain = self.ancestors(place.scope);
        let routes = traceable.routes.iter().filter(|route| {
            wanted == Traced::Every
                || (gives(route.role, bit) && self.route_covers(route, place, &chain))
        });
        self.trace_routes(compiled, traceable.grants, routes, bit, place, now, wanted)
    }

    /// [`TenantState::trace`] over the routes given.
    #[expect(clippy::too_many_arguments, reason = "the trace's whole question")]
    fn trace_routes<'r>(
        &self,
        compiled: &Compiled,
        grants: &SubjectGrants,
        routes: impl Iterator<Item = &'r Route<'r>>,
        bit: PermBit,
        place: ResolvedPlace<'_>,
        now: Timestamp,
        wanted: Traced,
    ) -> Vec<(Source, Fit)> {
        let catalog = &compiled.catalog;
        let mut out = Vec::new();
        for route in routes {
            let (assignment, role, path) = (route.assignment, route.role, &route.groups);
            let key = &assignment.key;
            // What a route lacks depends on neither the grant nor the place.
            let mut lacking: Option<Vec<PermBit>> = None;
            let mask = role.class_mask(catalog);
            for grant in &role.role.grants {
                let Some(set) = catalog.grant_set(&grant.permission) else {
                    continue;
                };
                if !set.contains(bit) {
                    continue;
                }
                let implication = || match (&grant.permission, catalog.bit(&grant.permission)) {
                    (crate::model::Permission::All, _) => "every permission (*)".to_string(),
                    (_, Some(from)) => catalog.implication(from, bit).unwrap_or_default(),
                    (_, None) => String::new(),
                };
                let population = match &key.target {
                    Target::Population(g) => Some(g),
                    Target::Scope(_) => None,
                };
                let masked = mask.is_some_and(|m| m.contains(bit));
                let places: Vec<Option<ScopeId>> = match &key.target {
                    Target::Population(_) => vec![None],
                    Target::Scope(s) if grant.scopes.is_empty() => vec![Some(s.clone())],
                    Target::Scope(s) => grant
                        .scopes
                        .iter()
                        .filter(|p| self.is_within(*p, s))
                        .cloned()
                        .map(Some)
                        .collect(),
                };
                for at in places {
                    // Most of a subject's grants miss any one place:
                    // naming them costs more than the rest of the trace.
                    let reaches =
                        !masked && self.covers(compiled, bit, at.as_ref(), population, place);
                    if wanted == Traced::Holding && !reaches {
                        continue;
                    }
                    let source = Source {
                        role: key.role.to_string(),
                        groups: path.clone(),
                        scope: at.clone(),
                        population: population.cloned(),
                        grant: grant.permission.to_string(),
                        implication: implication(),
                        expires_at: assignment.expires_at,
                    };
                    let lacking = lacking.get_or_insert_with(|| {
                        self.missing_requirements(compiled, grants, role, &key.target, now)
                    });
                    let fit = if masked {
                        Fit::Masked
                    } else if let Some(miss) = self.misses(compiled, bit, &source, place) {
                        miss
                    } else if !lacking.is_empty() {
                        Fit::PrerequisiteMissing(term_names(compiled, lacking))
                    } else if assignment.expires_at.is_some_and(|t| t <= now) {
                        Fit::Expired
                    } else {
                        Fit::Holds
                    };
                    out.push((source, fit));
                }
            }
        }
        out
    }

    /// Whether a grant of `bit` at scope `at` (`None`: over `population`)
    /// reaches the place. Allocates nothing: a trace asks it of every
    /// grant of the subject, at every place a listing visits.
    fn covers(
        &self,
        compiled: &Compiled,
        bit: PermBit,
        at: Option<&ScopeId>,
        population: Option<&GroupId>,
        place: ResolvedPlace<'_>,
    ) -> bool {
        match (population, at) {
            (Some(group), _) => place.in_population(group),
            (None, Some(at)) => self.scope_covers(compiled, bit, at, place),
            (None, None) => true,
        }
    }

    /// Whether a grant of `bit` at scope `at` reaches the place's scope. A
    /// place that is not a scope (a population-only question, scope `""`)
    /// is reached by no scope grant.
    fn scope_covers(
        &self,
        compiled: &Compiled,
        bit: PermBit,
        at: &ScopeId,
        place: ResolvedPlace<'_>,
    ) -> bool {
        if compiled.catalog.inherits(bit) {
            self.is_within(place.scope, at)
        } else {
            place.scope == at.as_str()
        }
    }

    /// Why a source's place does not cover the checked place, if it does not.
    fn misses(
        &self,
        compiled: &Compiled,
        bit: PermBit,
        source: &Source,
        place: ResolvedPlace<'_>,
    ) -> Option<Fit> {
        if let Some(population) = &source.population {
            let inside = place.in_population(population);
            return (!inside).then(|| {
                Fit::OutsidePopulation(population.clone(), self.why_outside(population, place))
            });
        }
        let at = source.scope.as_ref()?;
        (!self.scope_covers(compiled, bit, at, place)).then(|| {
            Fit::OutOfScope(format!(
                "{} is granted at scope {at}, which does not cover scope {}{}",
                compiled.catalog.name(bit),
                place.scope,
                if compiled.catalog.inherits(bit) {
                    ""
                } else {
                    " (this permission does not inherit)"
                }
            ))
        })
    }

    /// Why the target of a check is not in a population group: the group's
    /// condition and the attributes it was evaluated on, when it has one.
    fn why_outside(&self, group: &GroupId, place: ResolvedPlace<'_>) -> String {
        let Some(target) = place.target_id else {
            return "the question names no target subject".into();
        };
        let condition = self.conditions.get(group).map(|c| c.source().to_string());
        let attributes = self
            .subjects
            .get(target)
            .map(|e| {
                e.subject
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k} = {}", crate::model::Quoted(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        match condition {
            Some(c) => format!(
                "target subject {target} is not a member and does not satisfy its condition `{c}` (its attributes: {})",
                if attributes.is_empty() {
                    "none"
                } else {
                    &attributes
                }
            ),
            None => format!("target subject {target} is not a member"),
        }
    }

    /// Every permission the subject holds at the place, with sources: the
    /// answer of [`TenantState::explain_traced`] for each bit that holds,
    /// with the routes that reach the place found once rather than per bit.
    pub fn effective_at(
        &self,
        compiled: &Compiled,
        traceable: &Traceable<'_>,
        place: ResolvedPlace<'_>,
        now: Timestamp,
    ) -> Vec<(PermBit, Vec<Source>)> {
        let held = self.held(compiled, traceable.subject, traceable.grants, place, now);
        if held.is_empty() {
            return Vec::new();
        }
        let chain = self.ancestors(place.scope);
        let covering: Vec<&Route<'_>> = traceable
            .routes
            .iter()
            .filter(|route| self.route_covers(route, place, &chain))
            .collect();
        let holding = |bit: PermBit| -> Vec<Source> {
            let routes = covering.iter().copied().filter(|r| gives(r.role, bit));
            let traced = self.trace_routes(
                compiled,
                traceable.grants,
                routes,
                bit,
                place,
                now,
                Traced::Holding,
            );
            traced
                .into_iter()
                .filter_map(|(source, fit)| matches!(fit, Fit::Holds).then_some(source))
                .collect()
        };
        held.iter()
            .map(|bit| {
                let mut sources = holding(bit);
                if let Some(rule) = compiled.catalog.rule(bit).filter(|_| sources.is_empty()) {
                    for term in rule.terms.iter().filter(|t| held.contains(**t)) {
                        sources.extend(
                            holding(*term)
                                .into_iter()
                                .map(|s| counted_toward(compiled, rule, *term, bit, s)),
                        );
                    }
                }
                (bit, sources)
            })
            .collect()
    }

    /// A subject ready to be explained: every assignment that reaches it,
    /// with the groups it comes through.
    pub fn traceable<'a>(
        &'a self,
        compiled: &'a Compiled,
        subject: &'a Subject,
        grants: &'a SubjectGrants,
    ) -> Traceable<'a> {
        let me = Principal::Subject(subject.id.clone());
        let paths = std::iter::once((me.clone(), Vec::new())).chain(
            self.groups_of(&me)
                .into_iter()
                .map(|(g, path)| (Principal::Group(g), path)),
        );
        let mut routes = Vec::new();
        for (principal, groups) in paths {
            // Expired assignments the timer already removed still explain a
            // denial (at most MAX_RECENTLY_EXPIRED; never on the check path).
            let live = self
                .by_principal
                .get(&principal)
                .into_iter()
                .flatten()
                .filter_map(|key| self.assignments.get(key));
            let expired = self
                .recently_expired
                .values()
                .filter(|a| a.key.principal == principal);
            for assignment in live.chain(expired) {
                if let Some(role) = self.role(compiled, assignment.key.role.as_str()) {
                    routes.push(Route {
                        assignment,
                        role,
                        groups: groups.clone(),
                    });
                }
            }
        }
        Traceable {
            subject,
            grants,
            routes,
        }
    }

    /// Whether a route's assignment targets the place, whose scope and
    /// ancestors are `chain`. Pinned grants lie at or below the
    /// assignment's scope, so a scope assignment that misses the place
    /// misses it with all its grants.
    fn route_covers(&self, route: &Route<'_>, place: ResolvedPlace<'_>, chain: &[&str]) -> bool {
        match &route.assignment.key.target {
            Target::Scope(at) => chain.contains(&at.as_str()),
            Target::Population(group) => place.in_population(group),
        }
    }
}

/// Whether a role gives `bit` anywhere (after its class mask).
fn gives(role: &CompiledRole, bit: PermBit) -> bool {
    role.at_target.contains(bit) || role.pinned.iter().any(|(_, set)| set.contains(bit))
}

/// A source of `term` named as counting toward the derived `bit`.
fn counted_toward(
    compiled: &Compiled,
    rule: &Rule,
    term: PermBit,
    bit: PermBit,
    mut source: Source,
) -> Source {
    let catalog = &compiled.catalog;
    let kind = match rule.kind {
        RuleKind::AllOf => "all of",
        RuleKind::AnyOf => "any of",
    };
    source.implication = join(
        &source.implication,
        &format!(
            "{} counts toward {} ({kind} {})",
            catalog.name(term),
            catalog.name(bit),
            term_names(compiled, &rule.terms)
        ),
    );
    source
}

fn denial(source: &Source, fit: Fit) -> Denial {
    let via = if source.groups.is_empty() {
        String::new()
    } else {
        format!(
            " (via group {})",
            source
                .groups
                .iter()
                .map(GroupId::as_str)
                .collect::<Vec<_>>()
                .join(" → ")
        )
    };
    let (reason, detail) = match fit {
        Fit::Holds => (DenialReason::NoGrant, String::new()),
        Fit::Expired => (
            DenialReason::AssignmentExpired,
            format!("the assignment of role {}{via} has expired", source.role),
        ),
        Fit::PrerequisiteMissing(lacking) => (
            DenialReason::PrerequisiteMissing,
            format!(
                "role {}{via} requires {lacking}, which the subject does not hold",
                source.role
            ),
        ),
        Fit::Masked => (
            DenialReason::MaskedByClass,
            format!(
                "role {}{via} grants {} but its role class may never grant it",
                source.role, source.grant
            ),
        ),
        Fit::OutOfScope(why) => (
            DenialReason::OutOfScope,
            format!("role {}{via}: {why}", source.role),
        ),
        Fit::OutsidePopulation(g, why) => (
            DenialReason::OutsidePopulation,
            format!(
                "role {}{via} applies to the subjects of group {g}; {why}",
                source.role
            ),
        ),
    };
    Denial { reason, detail }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}; {b}")
    }
}

fn term_names(compiled: &Compiled, terms: &[PermBit]) -> String {
    terms
        .iter()
        .map(|t| compiled.catalog.name(*t))
        .collect::<Vec<_>>()
        .join(", ")
}
