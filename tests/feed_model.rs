#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The permission-change feed is exact: folding every write's effects (the
//! gains and losses `Engine::prepare` computes and the service commits with
//! the changelog) onto an empty picture gives, after any sequence of writes,
//! exactly every subject's picture computed directly (`Snapshot::picture`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use authzd::engine::{Engine, Operation, Precondition, Snapshot, SubjectUpdate, plan};
use authzd::model::{
    Assignment, AssignmentKey, Change, Effect, EffectTarget, Grant, Group, Membership, Principal,
    Revision, Role, Scope, Subject, SubjectId, SubjectKind, SubjectStatus, Target, TenantId,
    TenantSettings, Timestamp,
};
use authzd::schema::{self, Catalog};
use proptest::prelude::*;

const TENANTS: [&str; 2] = ["t", "u"];
const SUBJECTS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const SCOPES: [&str; 4] = ["root", "a", "b", "c"];
const ROLES: [&str; 7] = [
    "viewer", "editor", "approver", "admin", "inviter", "custom", "custom2",
];
const PERMISSIONS: [&str; 7] = [
    "document:read",
    "document:edit",
    "document:manage",
    "comment:edit",
    "approval:approve",
    "document:publish",
    "users:invite",
];
const MODULES: [&str; 3] = ["comment", "approval", "users"];

/// Two schemas over the same permissions whose builtin roles differ (grants
/// and `requires`), so switching between them changes pictures everywhere.
const SCHEMA_A: &str = include_str!("fixtures/feed_schema_a.toml");

const SCHEMA_B: &str = include_str!("fixtures/feed_schema_b.toml");

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
        2 => (idx.clone(), prop::option::of(0usize..2)).prop_map(|(g, c)| Operation::UpdateGroup(Group {
            id: GROUPS[g % 3].parse().unwrap(),
            title: String::new(),
            condition: c.map(|v| format!("attributes.tier == \"t{v}\"")),
        })),
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

/// The records every tenant starts from: subjects, a scope chain a → b → c,
/// groups (g1 nested in g0), a custom role.
fn seed() -> Vec<Operation> {
    let mut ops: Vec<Operation> = (0..SUBJECTS.len())
        .map(|i| Operation::CreateSubject(subject(i)))
        .collect();
    for (id, parent) in [("a", "root"), ("b", "a"), ("c", "b")] {
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

/// A subscriber's copy of every picture: (tenant, subject, target) → permissions.
type Folded = BTreeMap<(TenantId, SubjectId, EffectTarget), BTreeSet<String>>;

/// Applies one write's effects, refusing a gain of what is held or a loss of
/// what is not (either would mean an event twice or one missing).
fn fold(folded: &mut Folded, effects: &[Effect]) -> Result<(), TestCaseError> {
    for e in effects {
        let k = (e.tenant.clone(), e.subject.clone(), e.target.clone());
        let set = folded.entry(k).or_default();
        let name = e.permission.to_string();
        if e.gained {
            prop_assert!(set.insert(name), "gained what was held: {:?}", e);
        } else {
            prop_assert!(set.remove(&name), "lost what was not held: {:?}", e);
        }
    }
    folded.retain(|_, set| !set.is_empty());
    Ok(())
}

struct Run {
    engine: Engine,
    revision: u64,
    folded: Folded,
    now: i64,
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// After any sequence of writes of every kind (memberships and nesting,
    /// assignments at scopes and populations, custom role edits and
    /// deletion, lock/unlock, attributes moving subjects in and out of
    /// condition groups, home scopes, module switches, `requires` losing and
    /// regaining effect, schema switches, expiry removals, subject deletion),
    /// folding the effects in revision order onto an empty picture gives
    /// exactly `Snapshot::picture` of every subject — checked after every
    /// revision, with no gain of what was held and no loss of what was not.
    #[test]
    fn folded_effects_equal_pictures(steps in prop::collection::vec(step(), 1..60)) {
        let a = Arc::new(schema::load("a.toml", SCHEMA_A).unwrap());
        let b = Arc::new(schema::load("b.toml", SCHEMA_B).unwrap());
        let mut run = Run {
            engine: Engine::new(a.clone(), Revision(0), vec![], Timestamp(0)),
            revision: 0,
            folded: Folded::new(),
            now: 0,
        };
        for t in TENANTS {
            run.write(&t.parse().unwrap(), &seed())?;
        }
        prop_assert_eq!(&run.folded, &run.truth());
        for step in steps {
            match step {
                Step::Write(t, ops) => run.write(&TENANTS[t].parse().unwrap(), &ops)?,
                Step::Schema(to_b) => {
                    let catalog = if to_b { b.clone() } else { a.clone() };
                    let changes = [Change::SchemaWritten(catalog.source().to_string())];
                    run.commit(None, &changes, Some(catalog))?;
                }
                Step::Expire => {
                    run.now += 1;
                    let snapshot = run.engine.snapshot();
                    for (tenant, state) in snapshot.tenants.iter() {
                        let expired = state.expired(Timestamp(run.now));
                        if !expired.is_empty() {
                            let changes: Vec<Change> =
                                expired.into_iter().map(Change::RoleExpired).collect();
                            run.commit(Some(tenant), &changes, None)?;
                        }
                    }
                }
            }
            prop_assert_eq!(&run.folded, &run.truth(), "after revision {}", run.revision);
        }
    }
}
