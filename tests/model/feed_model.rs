//! The permission-change feed is exact: folding every write's effects (the
//! gains and losses `Engine::prepare` computes and the service commits with
//! the changelog) onto an empty picture gives, after any sequence of writes,
//! exactly every subject's picture computed directly (`Snapshot::picture`);
//! and a mirror of those entries that answers by the rule of `Reach`, from
//! revision 0 or from a listing at any revision, answers exactly like the
//! check at every scope of the tree and over every target subject.

use std::collections::BTreeMap;
use std::sync::Arc;

use authzd_core::engine::{
    Engine, GroupUpdate, Operation, PlaceRef, Precondition, Question, Snapshot, SubjectUpdate,
    TenantState, plan,
};
use authzd_core::model::{
    Assignment, AssignmentKey, Change, Effect, Grant, Group, Membership, Place, Principal, Reach,
    Revision, Role, Scope, Subject, SubjectId, SubjectKind, SubjectStatus, Target, TenantId,
    TenantSettings, Timestamp,
};
use authzd_core::schema::{self, Catalog};
use authzd_testkit::feed::{GROUPS, MODULES, PERMISSIONS, SCHEMA_A, SCHEMA_B, SCOPES, SUBJECTS};
use proptest::prelude::*;

const TENANTS: [&str; 2] = ["t", "u"];
const ROLES: [&str; 7] = [
    "viewer", "editor", "approver", "admin", "inviter", "custom", "custom2",
];

fn sid(i: usize) -> SubjectId {
    SUBJECTS[i % SUBJECTS.len()].parse().unwrap()
}

fn principal(subject: bool, i: usize) -> Principal {
    if subject {
        Principal::Subject(sid(i))
    } else {
        Principal::Group(GROUPS[i % GROUPS.len()].parse().unwrap())
    }
}

fn target(population: bool, i: usize) -> Target {
    if population {
        Target::Population(GROUPS[i % GROUPS.len()].parse().unwrap())
    } else {
        Target::Scope(SCOPES[i % SCOPES.len()].parse().unwrap())
    }
}

fn key(role: usize, subject: bool, who: usize, population: bool, at: usize) -> AssignmentKey {
    AssignmentKey {
        role: ROLES[role % ROLES.len()].parse().unwrap(),
        principal: principal(subject, who),
        target: target(population, at),
    }
}

fn custom_role(id: &str, perms: &[usize], pinned: Option<usize>, requires: Option<usize>) -> Role {
    Role {
        id: id.parse().unwrap(),
        title: id.into(),
        grants: perms
            .iter()
            .map(|p| Grant {
                permission: PERMISSIONS[p % PERMISSIONS.len()].parse().unwrap(),
                scopes: pinned
                    .map(|s| vec![SCOPES[1 + s % 3].parse().unwrap()])
                    .unwrap_or_default(),
            })
            .collect(),
        class: None,
        rank: 0,
        requires: requires
            .map(|r| vec![PERMISSIONS[r % 3].parse().unwrap()])
            .unwrap_or_default(),
        managed_by: None,
        grantable_by: None,
        self_removable: false,
    }
}

fn subject(i: usize) -> Subject {
    Subject {
        id: sid(i),
        kind: SubjectKind::User,
        status: SubjectStatus::Active,
        attributes: Default::default(),
        home_scope: None,
    }
}

/// One step of a run.
#[derive(Debug, Clone)]
enum Step {
    /// A batch of operations in one tenant (one revision, or none if refused).
    Write(usize, Vec<Operation>),
    /// Switch the store-wide schema (A or B).
    Schema(bool),
    /// Time passes; expired assignments are removed, as the service's timer does.
    Expire,
}

fn operation() -> impl Strategy<Value = Operation> {
    let idx = 0usize..16;
    prop_oneof![
        6 => (idx.clone(), any::<bool>(), idx.clone(), prop::bool::weighted(0.3), idx.clone(), prop::option::weighted(0.15, 1i64..4))
            .prop_map(|(r, s, w, pop, at, exp)| Operation::AssignRole(
                Assignment { key: key(r, s, w, pop, at), expires_at: exp.map(Timestamp) },
                Precondition::None,
            )),
        3 => (idx.clone(), any::<bool>(), idx.clone(), prop::bool::weighted(0.3), idx.clone())
            .prop_map(|(r, s, w, pop, at)| Operation::UnassignRole(key(r, s, w, pop, at), Precondition::None)),
        4 => (idx.clone(), idx.clone(), prop::bool::weighted(0.7)).prop_map(|(g, m, s)| Operation::AddMember(
            Membership { group: GROUPS[g % 3].parse().unwrap(), member: principal(s, m) },
            Precondition::None,
        )),
        2 => (idx.clone(), idx.clone(), prop::bool::weighted(0.7)).prop_map(|(g, m, s)| Operation::RemoveMember(
            Membership { group: GROUPS[g % 3].parse().unwrap(), member: principal(s, m) },
            Precondition::None,
        )),
        2 => (any::<bool>(), prop::collection::vec(idx.clone(), 1..3), prop::option::of(idx.clone()), prop::option::weighted(0.4, idx.clone()))
            .prop_map(|(second, p, pin, req)| Operation::UpdateRole(custom_role(if second { "custom2" } else { "custom" }, &p, pin, req))),
        1 => (any::<bool>(), prop::collection::vec(idx.clone(), 1..3), prop::option::weighted(0.3, idx.clone()))
            .prop_map(|(second, p, req)| Operation::CreateRole(custom_role(if second { "custom2" } else { "custom" }, &p, None, req))),
        1 => any::<bool>().prop_map(|second| Operation::DeleteRole(if second { "custom2" } else { "custom" }.parse().unwrap())),
        1 => (idx.clone(), idx.clone()).prop_map(|(s, p)| Operation::UpdateScope(Scope {
            id: SCOPES[1 + s % 3].parse().unwrap(),
            scope_type: "unit".into(),
            parent: SCOPES[p % 4].parse().unwrap(),
        })),
        2 => (idx.clone(), any::<bool>()).prop_map(|(s, locked)| Operation::UpdateSubject(sid(s), SubjectUpdate {
            status: Some(if locked { SubjectStatus::Locked } else { SubjectStatus::Active }),
            ..Default::default()
        })),
        2 => (idx.clone(), prop::option::of(0usize..2)).prop_map(|(g, c)| Operation::UpdateGroup(
            GROUPS[g % 3].parse().unwrap(),
            GroupUpdate {
                title: Some(String::new()),
                condition: Some(c.map(|v| format!("attributes.tier == \"t{v}\""))),
            },
        )),
        3 => (idx.clone(), 0usize..3).prop_map(|(s, v)| Operation::UpdateSubject(sid(s), SubjectUpdate {
            attributes: Some([("tier".to_string(), format!("t{v}"))].into()),
            ..Default::default()
        })),
        1 => (idx.clone(), prop::option::of(idx.clone())).prop_map(|(s, h)| Operation::UpdateSubject(sid(s), SubjectUpdate {
            home_scope: Some(h.map(|h| SCOPES[1 + h % 3].parse().unwrap())),
            ..Default::default()
        })),
        1 => idx.clone().prop_map(|g| Operation::DeleteGroup(GROUPS[g % 3].parse().unwrap())),
        1 => idx.clone().prop_map(|g| Operation::CreateGroup(Group {
            id: GROUPS[g % 3].parse().unwrap(),
            title: String::new(),
            condition: None,
        })),
        1 => idx.clone().prop_map(|s| Operation::DeleteSubject(sid(s))),
        1 => idx.clone().prop_map(|s| Operation::CreateSubject(subject(s))),
        2 => prop::collection::btree_set(0usize..3, 0..3).prop_map(|off| Operation::UpdateTenantSettings(TenantSettings {
            disabled_resources: off.into_iter().map(|m| MODULES[m].parse().unwrap()).collect(),
        })),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (prop::bool::weighted(0.8), prop::collection::vec(operation(), 1..4))
            .prop_map(|(first, ops)| Step::Write(usize::from(!first), ops)),
        1 => any::<bool>().prop_map(Step::Schema),
        1 => Just(Step::Expire),
    ]
}

/// Scopes that no write names: d beside b, e below c. Nobody is ever granted
/// anything there, so they hold only what they inherit (what a mirror must
/// answer from a reach).
const BARE_SCOPES: [(&str, &str); 2] = [("d", "a"), ("e", "c")];

/// The records every tenant starts from: subjects, a scope chain a → b → c
/// with d beside b and e below c, groups (g1 nested in g0), a custom role.
fn seed() -> Vec<Operation> {
    let mut ops: Vec<Operation> = (0..SUBJECTS.len())
        .map(|i| Operation::CreateSubject(subject(i)))
        .collect();
    for (id, parent) in [("a", "root"), ("b", "a"), ("c", "b")]
        .into_iter()
        .chain(BARE_SCOPES)
    {
        ops.push(Operation::CreateScope(Scope {
            id: id.parse().unwrap(),
            scope_type: "unit".into(),
            parent: parent.parse().unwrap(),
        }));
    }
    for g in GROUPS {
        ops.push(Operation::CreateGroup(Group {
            id: g.parse().unwrap(),
            title: String::new(),
            condition: None,
        }));
    }
    ops.push(Operation::AddMember(
        Membership {
            group: "g0".parse().unwrap(),
            member: principal(false, 1),
        },
        Precondition::None,
    ));
    ops.push(Operation::CreateRole(custom_role(
        "custom",
        &[0],
        None,
        None,
    )));
    ops
}

/// A subscriber's copy of every picture: (tenant, subject, target) →
/// permissions with their reach.
type Folded = BTreeMap<(TenantId, SubjectId, Place), BTreeMap<String, Reach>>;

/// Applies one write's effects, refusing a gain of what is held (at any
/// reach) or a loss of what is not held at that reach (either would mean an
/// event twice or one missing).
fn fold(folded: &mut Folded, effects: &[Effect]) -> Result<(), TestCaseError> {
    for e in effects {
        let k = (e.tenant.clone(), e.subject.clone(), e.target.clone());
        let held = folded.entry(k).or_default();
        let name = e.permission.to_string();
        if e.gained {
            prop_assert!(
                held.insert(name, e.reach).is_none(),
                "gained what was held: {:?}",
                e
            );
        } else {
            prop_assert_eq!(
                held.remove(&name),
                Some(e.reach),
                "lost what was not held: {:?}",
                e
            );
        }
    }
    folded.retain(|_, held| !held.is_empty());
    Ok(())
}

/// Whether a mirror holding `entries` says `subject` holds `permission` at
/// `scope`, by the rule of `Reach`: an entry at the scope itself, or one of
/// reach `Subtree` at an ancestor. The tree is the tenant's.
fn mirror_allows(
    entries: &Folded,
    state: &TenantState,
    tenant: &TenantId,
    subject: &SubjectId,
    permission: &str,
    scope: &str,
) -> bool {
    let reach_at = |at: &str| {
        let target = Place::Scope(at.parse().unwrap());
        entries
            .get(&(tenant.clone(), subject.clone(), target))
            .and_then(|held| held.get(permission).copied())
    };
    if reach_at(scope).is_some() {
        return true;
    }
    let mut at = state.parent(scope);
    for _ in 0..16 {
        let Some(a) = at else { return false };
        if reach_at(a.as_str()) == Some(Reach::Subtree) {
            return true;
        }
        at = state.parent(a.as_str());
    }
    false
}

/// Every scope of the tenant's tree, the root included.
fn tree(state: &TenantState) -> Vec<String> {
    let mut scopes = vec!["root".to_string()];
    scopes.extend(
        SCOPES[1..]
            .iter()
            .chain(BARE_SCOPES.iter().map(|(s, _)| s))
            .filter(|s| state.has_scope(s))
            .map(|s| s.to_string()),
    );
    scopes
}

/// Compares a mirror's answers with `Snapshot::check` at every (tenant,
/// subject, permission, scope) of the tree; with `over_subjects`, also over
/// every target subject (the scope rule at its home scope, or an entry over
/// it).
fn assert_mirror(
    run: &Run,
    entries: &Folded,
    over_subjects: bool,
    what: &str,
) -> Result<(), TestCaseError> {
    let snapshot = run.engine.snapshot();
    let now = Timestamp(run.now);
    let permissions: Vec<String> = snapshot
        .compiled
        .catalog
        .all()
        .iter()
        .map(|b| snapshot.compiled.catalog.name(b).to_string())
        .collect();
    for t in TENANTS {
        let tenant: TenantId = t.parse().unwrap();
        let state = snapshot.tenants.get(&tenant).unwrap();
        let scopes = tree(state);
        for s in SUBJECTS {
            let subject: SubjectId = s.parse().unwrap();
            for p in &permissions {
                for scope in &scopes {
                    let q = Question {
                        subject: s,
                        permission: p,
                        at: PlaceRef::Scope(scope),
                    };
                    let truth = snapshot.check(t, &q, now).unwrap();
                    let mirror = mirror_allows(entries, state, &tenant, &subject, p, scope);
                    prop_assert_eq!(
                        mirror,
                        truth,
                        "{}: {}/{} {} at {} (r{})",
                        what,
                        t,
                        s,
                        p,
                        scope,
                        run.revision
                    );
                }
                if !over_subjects {
                    continue;
                }
                for over in SUBJECTS {
                    let Some(entry) = state.subjects.get(over) else {
                        continue;
                    };
                    let home = entry
                        .subject
                        .home_scope
                        .as_ref()
                        .map_or("root", |h| h.as_str());
                    let q = Question {
                        subject: s,
                        permission: p,
                        at: PlaceRef::Subject(over),
                    };
                    let truth = snapshot.check(t, &q, now).unwrap();
                    let target = Place::Subject(over.parse().unwrap());
                    let listed = entries
                        .get(&(tenant.clone(), subject.clone(), target))
                        .is_some_and(|held| held.contains_key(p));
                    let mirror =
                        listed || mirror_allows(entries, state, &tenant, &subject, p, home);
                    prop_assert_eq!(
                        mirror,
                        truth,
                        "{}: {}/{} {} over {} (r{})",
                        what,
                        t,
                        s,
                        p,
                        over,
                        run.revision
                    );
                }
            }
        }
    }
    Ok(())
}

/// A mirror's start: every subject's scope targets as
/// `Snapshot::effective_permissions` lists them (no scope given), with reach.
fn listing(run: &Run) -> Folded {
    let snapshot = run.engine.snapshot();
    let mut out = Folded::new();
    for t in TENANTS {
        for s in SUBJECTS {
            let Ok(targets) = snapshot.effective_permissions(t, s, None, Timestamp(run.now)) else {
                continue;
            };
            for target in targets {
                let Some(scope) = target.scope else { continue };
                let key = (t.parse().unwrap(), s.parse().unwrap(), Place::Scope(scope));
                out.insert(
                    key,
                    target
                        .permissions
                        .into_iter()
                        .map(|p| (p.permission, p.reach))
                        .collect(),
                );
            }
        }
    }
    out
}

struct Run {
    engine: Engine,
    revision: u64,
    folded: Folded,
    now: i64,
    /// A mirror that started from a listing (scope targets only) and
    /// applies the scope effects committed after it; `None` until it starts.
    listed: Option<Folded>,
}

impl Run {
    fn commit(
        &mut self,
        tenant: Option<&TenantId>,
        changes: &[Change],
        catalog: Option<Arc<Catalog>>,
    ) -> Result<(), TestCaseError> {
        let mut next = (*self.engine.snapshot()).clone();
        let effects = next.apply_changes(tenant, changes, catalog, Timestamp(self.now));
        self.publish(next, &effects)
    }

    fn publish(&mut self, mut next: Snapshot, effects: &[Effect]) -> Result<(), TestCaseError> {
        fold(&mut self.folded, effects)?;
        if let Some(listed) = &mut self.listed {
            let scoped: Vec<Effect> = effects
                .iter()
                .filter(|e| matches!(e.target, Place::Scope(_)))
                .cloned()
                .collect();
            fold(listed, &scoped)?;
        }
        self.revision += 1;
        next.revision = Revision(self.revision);
        self.engine.publish(next);
        Ok(())
    }

    fn write(&mut self, tenant: &TenantId, ops: &[Operation]) -> Result<(), TestCaseError> {
        let snapshot = self.engine.snapshot();
        let state = snapshot.tenants.get(tenant).map(|t| &**t);
        let now = Timestamp(self.now);
        // Like the server: the planner's state and effects are what is
        // published, nothing is applied twice.
        if let Ok(planned) = plan(&snapshot.compiled, tenant, None, state, ops, now)
            && !planned.changes.is_empty()
        {
            let mut next = (*snapshot).clone();
            next.install(tenant.clone(), planned.state);
            self.publish(next, &planned.effects)?;
        }
        Ok(())
    }

    /// Every subject's picture, straight from the snapshot, in folded form.
    fn truth(&self) -> Folded {
        let snapshot = self.engine.snapshot();
        let mut out = Folded::new();
        for t in TENANTS {
            for s in SUBJECTS {
                let s: SubjectId = s.parse().unwrap();
                for (target, perms) in snapshot.picture(t, &s) {
                    out.insert((t.parse().unwrap(), s.clone(), target), perms);
                }
            }
        }
        out
    }
}

impl Run {
    /// A run over both tenants, seeded, under schema A.
    fn start(a: &Arc<Catalog>) -> Result<Self, TestCaseError> {
        let mut run = Run {
            engine: Engine::new(a.clone(), Revision(0), vec![], Timestamp(0)),
            revision: 0,
            folded: Folded::new(),
            now: 0,
            listed: None,
        };
        for t in TENANTS {
            run.write(&t.parse().unwrap(), &seed())?;
        }
        Ok(run)
    }

    /// Commits one step, as the service would.
    fn step(
        &mut self,
        step: Step,
        a: &Arc<Catalog>,
        b: &Arc<Catalog>,
    ) -> Result<(), TestCaseError> {
        match step {
            Step::Write(t, ops) => self.write(&TENANTS[t].parse().unwrap(), &ops)?,
            Step::Schema(to_b) => {
                let catalog = if to_b { b.clone() } else { a.clone() };
                let changes = [Change::SchemaWritten(catalog.source().to_string())];
                self.commit(None, &changes, Some(catalog))?;
            }
            Step::Expire => {
                self.now += 1;
                let snapshot = self.engine.snapshot();
                for (tenant, state) in snapshot.tenants.iter() {
                    let expired = state.expired(Timestamp(self.now));
                    if !expired.is_empty() {
                        let changes: Vec<Change> =
                            expired.into_iter().map(Change::RoleExpired).collect();
                        self.commit(Some(tenant), &changes, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn schemas() -> (Arc<Catalog>, Arc<Catalog>) {
    (
        Arc::new(schema::load("a.toml", SCHEMA_A).unwrap()),
        Arc::new(schema::load("b.toml", SCHEMA_B).unwrap()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// After any sequence of writes of every kind (memberships and nesting,
    /// assignments at scopes and populations, custom role edits and
    /// deletion, lock/unlock, attributes moving subjects in and out of
    /// condition groups, home scopes, module switches, `requires` losing and
    /// regaining effect, schema switches, expiry removals, subject deletion),
    /// folding the effects in revision order onto an empty picture gives
    /// exactly `Snapshot::picture` of every subject, reaches included —
    /// checked after every revision, with no gain of what was held and no
    /// loss of what was not.
    #[test]
    fn folded_effects_equal_pictures(steps in prop::collection::vec(step(), 1..60)) {
        let (a, b) = schemas();
        let mut run = Run::start(&a)?;
        prop_assert_eq!(&run.folded, &run.truth());
        for step in steps {
            run.step(step, &a, &b)?;
            prop_assert_eq!(&run.folded, &run.truth(), "after revision {}", run.revision);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The feed is enough to mirror `CheckAccess`: after the same random
    /// writes of every kind (`*` grants, derived permissions over a
    /// non-inheriting type, pinned grants, ladders, follows, switched-off
    /// types, scope moves, populations and home scopes), over a five-level
    /// tree with scopes nobody is granted at, two mirrors answer exactly like
    /// `Snapshot::check` at every (subject, permission, scope) after every
    /// revision: one folded from revision 0, which also answers every check
    /// over a target subject; and one started from the listing
    /// (`effective_permissions` without a scope) at a random revision R and
    /// following the scope changes after R.
    #[test]
    fn mirror_answers_like_check(
        steps in prop::collection::vec(step(), 1..40),
        listed_at in 0usize..40,
    ) {
        let (a, b) = schemas();
        let mut run = Run::start(&a)?;
        assert_mirror(&run, &run.folded, true, "folded")?;
        for (i, step) in steps.into_iter().enumerate() {
            if i == listed_at % 40 {
                run.listed = Some(listing(&run));
            }
            run.step(step, &a, &b)?;
            assert_mirror(&run, &run.folded, true, "folded")?;
            if let Some(listed) = &run.listed {
                assert_mirror(&run, listed, false, "listed")?;
            }
        }
    }
}

/// A group-wide role write's effects are exact for every member, whatever
/// else each one holds: members through a nested group, with roles of
/// their own at other scopes, with a custom role, locked, in several
/// groups. The planner compares the pictures of members with the same
/// grants once; folding the effects of assigning roles to the whole group
/// (at the root, inside the tree, and one whose grants the members already
/// hold) and of removing them again still gives every picture exactly.
#[test]
fn group_wide_writes_fold_to_every_picture() -> Result<(), TestCaseError> {
    let (a, _) = schemas();
    let mut run = Run::start(&a)?;
    let tenant: TenantId = "t".parse().unwrap();
    let assignment = |role: &str, who: Principal, at: &str| {
        Operation::AssignRole(
            Assignment {
                key: AssignmentKey {
                    role: role.parse().unwrap(),
                    principal: who,
                    target: Target::Scope(at.parse().unwrap()),
                },
                expires_at: None,
            },
            Precondition::None,
        )
    };
    let join = |group: usize, subject: usize| {
        Operation::AddMember(
            Membership {
                group: GROUPS[group].parse().unwrap(),
                member: principal(true, subject),
            },
            Precondition::None,
        )
    };
    // g1 is nested in g0: s0 and s1 are in g0 through it.
    let setup = vec![
        join(1, 0),
        join(1, 1),
        join(0, 2),
        join(0, 3),
        join(0, 4),
        join(2, 4),
        assignment("viewer", principal(true, 0), "b"),
        assignment("approver", principal(true, 2), "a"),
        assignment("custom", principal(true, 4), "c"),
        assignment("viewer", principal(false, 2), "c"),
        Operation::UpdateSubject(
            sid(3),
            SubjectUpdate {
                status: Some(SubjectStatus::Locked),
                ..Default::default()
            },
        ),
    ];
    {
        let snapshot = run.engine.snapshot();
        let state = snapshot.tenants.get(&tenant).map(|t| &**t);
        if let Err(refused) = plan(
            &snapshot.compiled,
            &tenant,
            None,
            state,
            &setup,
            Timestamp(0),
        ) {
            return Err(TestCaseError::fail(format!(
                "setup operation {}: {}",
                refused.index, refused.error
            )));
        }
    }
    run.write(&tenant, &setup)?;
    prop_assert_eq!(run.revision, 3, "the setup is one write");
    prop_assert_eq!(&run.folded, &run.truth());
    let wide = [
        ("viewer", "root"),
        ("editor", "a"),
        ("viewer", "c"),
        ("admin", "b"),
    ];
    for (role, at) in wide {
        let revision = run.revision;
        run.write(&tenant, &[assignment(role, principal(false, 0), at)])?;
        prop_assert_eq!(run.revision, revision + 1, "{} at {} committed", role, at);
        prop_assert_eq!(&run.folded, &run.truth(), "{} at {}", role, at);
    }
    for (role, at) in wide.into_iter().rev() {
        let key = AssignmentKey {
            role: role.parse().unwrap(),
            principal: principal(false, 0),
            target: Target::Scope(at.parse().unwrap()),
        };
        let revision = run.revision;
        run.write(
            &tenant,
            &[Operation::UnassignRole(key, Precondition::MustExist)],
        )?;
        prop_assert_eq!(run.revision, revision + 1, "{} removed at {}", role, at);
        prop_assert_eq!(&run.folded, &run.truth(), "{} removed at {}", role, at);
    }
    Ok(())
}
