//! The compiled cache is updated incrementally: a write recomputes only the
//! subjects it can affect. These properties prove the shortcut never drifts:
//! after any sequence of writes, the incremental cache answers every check
//! exactly as a cache rebuilt from scratch over the same records.

use std::sync::Arc;

use authzd_core::engine::{Engine, Operation, PlaceRef, Precondition, Question, plan};
use authzd_core::model::{
    Assignment, AssignmentKey, Change, Grant, Group, Membership, Principal, Revision, Role, Scope,
    Subject, SubjectKind, SubjectStatus, Target, TenantId, Timestamp,
};
use authzd_core::schema;
use proptest::prelude::*;

const SUBJECTS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const SCOPES: [&str; 4] = ["root", "a", "b", "c"];
const ROLES: [&str; 5] = ["viewer", "editor", "approver", "admin", "custom"];
const PERMISSIONS: [&str; 6] = [
    "document:read",
    "document:edit",
    "comment:manage",
    "approval:approve",
    "document:publish",
    "users:invite",
];

fn principal(subject: bool, i: usize) -> Principal {
    if subject {
        Principal::Subject(SUBJECTS[i % SUBJECTS.len()].parse().unwrap())
    } else {
        Principal::Group(GROUPS[i % GROUPS.len()].parse().unwrap())
    }
}

fn key(role: usize, subject: bool, who: usize, scope: usize) -> AssignmentKey {
    AssignmentKey {
        role: ROLES[role % ROLES.len()].parse().unwrap(),
        principal: principal(subject, who),
        target: Target::Scope(SCOPES[scope % SCOPES.len()].parse().unwrap()),
    }
}

fn custom_role(perm: usize, pinned: Option<usize>) -> Role {
    Role {
        id: "custom".parse().unwrap(),
        title: "custom".into(),
        grants: vec![Grant {
            permission: PERMISSIONS[perm % PERMISSIONS.len()].parse().unwrap(),
            scopes: pinned
                .map(|s| vec![SCOPES[1 + s % 3].parse().unwrap()])
                .unwrap_or_default(),
        }],
        class: None,
        rank: 0,
        requires: vec![],
        managed_by: None,
        grantable_by: None,
        self_removable: false,
    }
}

fn operation() -> impl Strategy<Value = Operation> {
    let idx = 0usize..8;
    prop_oneof![
        (idx.clone(), idx.clone(), any::<bool>(), idx.clone()).prop_map(|(r, w, s, sc)| {
            Operation::AssignRole(
                Assignment {
                    key: key(r, s, w, sc),
                    expires_at: None,
                },
                Precondition::None,
            )
        }),
        (idx.clone(), idx.clone(), any::<bool>(), idx.clone()).prop_map(|(r, w, s, sc)| {
            Operation::UnassignRole(key(r, s, w, sc), Precondition::None)
        }),
        (idx.clone(), idx.clone(), any::<bool>()).prop_map(|(g, m, s)| Operation::AddMember(
            Membership {
                group: GROUPS[g % 3].parse().unwrap(),
                member: principal(s, m),
            },
            Precondition::None
        )),
        (idx.clone(), idx.clone(), any::<bool>()).prop_map(|(g, m, s)| Operation::RemoveMember(
            Membership {
                group: GROUPS[g % 3].parse().unwrap(),
                member: principal(s, m),
            },
            Precondition::None
        )),
        (idx.clone(), proptest::option::of(idx.clone()))
            .prop_map(|(p, pin)| Operation::UpdateRole(custom_role(p, pin))),
        (idx.clone(), idx.clone()).prop_map(|(s, p)| Operation::UpdateScope(Scope {
            id: SCOPES[1 + s % 3].parse().unwrap(),
            scope_type: "unit".into(),
            parent: SCOPES[p % 4].parse().unwrap(),
        })),
        (idx.clone(), any::<bool>()).prop_map(|(s, locked)| Operation::UpdateSubject(
            SUBJECTS[s % 4].parse().unwrap(),
            authzd_core::engine::SubjectUpdate {
                status: Some(if locked {
                    SubjectStatus::Locked
                } else {
                    SubjectStatus::Active
                }),
                ..Default::default()
            }
        )),
        (idx.clone(), proptest::option::of(0usize..2)).prop_map(|(g, c)| Operation::UpdateGroup(
            GROUPS[g % 3].parse().unwrap(),
            authzd_core::engine::GroupUpdate {
                title: Some(String::new()),
                condition: Some(c.map(|v| format!("attributes.tier == \"t{v}\""))),
            }
        )),
        (idx.clone(), 0usize..3).prop_map(|(s, v)| Operation::UpdateSubject(
            SUBJECTS[s % 4].parse().unwrap(),
            authzd_core::engine::SubjectUpdate {
                attributes: Some([("tier".to_string(), format!("t{v}"))].into()),
                ..Default::default()
            }
        )),
        idx.clone()
            .prop_map(|g| Operation::DeleteGroup(GROUPS[g % 3].parse().unwrap())),
        idx.prop_map(|g| Operation::CreateGroup(Group {
            id: GROUPS[g % 3].parse().unwrap(),
            title: String::new(),
            condition: None,
        })),
    ]
}

/// The records every run starts from: subjects, a scope chain a → b → c, groups, a custom role.
fn seed() -> Vec<Operation> {
    let mut ops: Vec<Operation> = SUBJECTS
        .iter()
        .map(|s| {
            Operation::CreateSubject(Subject {
                id: s.parse().unwrap(),
                kind: SubjectKind::User,
                status: SubjectStatus::Active,
                attributes: Default::default(),
                home_scope: None,
            })
        })
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
    ops.push(Operation::CreateRole(custom_role(0, None)));
    ops
}

/// Every record of the tenant as changes, which is how start-up rebuilds.
fn records(engine: &Engine, tenant: &TenantId) -> Vec<Change> {
    let snapshot = engine.snapshot();
    let state = snapshot.tenant(tenant.as_str()).unwrap();
    let mut changes = vec![Change::TenantPut(state.settings.clone())];
    changes.extend(
        state
            .scopes
            .values()
            .map(|s| Change::ScopePut((**s).clone())),
    );
    changes.extend(
        state
            .subjects
            .values()
            .map(|e| Change::SubjectPut((*e.subject).clone())),
    );
    changes.extend(
        state
            .groups
            .values()
            .map(|g| Change::GroupPut((**g).clone())),
    );
    changes.extend(
        state
            .roles
            .values()
            .map(|r| Change::RolePut((*r.role).clone())),
    );
    for (group, members) in state.members.iter() {
        for m in members {
            changes.push(Change::MemberAdded(Membership {
                group: group.clone(),
                member: m.clone(),
            }));
        }
    }
    changes.extend(
        state
            .assignments
            .values()
            .cloned()
            .map(Change::RoleAssigned),
    );
    changes
}

/// Assigning and unassigning roles over populations, and homes for subjects, which
/// the holders listing over a target subject depends on.
fn population_operation() -> impl Strategy<Value = Operation> {
    let idx = 0usize..8;
    prop_oneof![
        (
            idx.clone(),
            idx.clone(),
            any::<bool>(),
            idx.clone(),
            any::<bool>()
        )
            .prop_map(|(r, w, s, g, assign)| {
                let key = AssignmentKey {
                    target: Target::Population(GROUPS[g % GROUPS.len()].parse().unwrap()),
                    ..key(r, s, w, 0)
                };
                if assign {
                    Operation::AssignRole(
                        Assignment {
                            key,
                            expires_at: None,
                        },
                        Precondition::None,
                    )
                } else {
                    Operation::UnassignRole(key, Precondition::None)
                }
            }),
        (idx.clone(), idx).prop_map(|(s, sc)| Operation::UpdateSubject(
            SUBJECTS[s % SUBJECTS.len()].parse().unwrap(),
            authzd_core::engine::SubjectUpdate {
                home_scope: Some(
                    SCOPES[sc % SCOPES.len()]
                        .parse()
                        .ok()
                        .filter(|_| sc % 4 != 0)
                ),
                ..Default::default()
            }
        )),
    ]
}

/// Plans each operation alone on the engine's current state and publishes
/// what it leaves, skipping refused ones; returns the last revision.
fn run(engine: &Engine, tenant: &TenantId, ops: Vec<Operation>, now: Timestamp) -> u64 {
    let mut revision = 0;
    for op in seed().into_iter().chain(ops) {
        let snapshot = engine.snapshot();
        let state = snapshot.tenants.get(tenant).map(|t| &**t);
        if let Ok(planned) = plan(&snapshot.compiled, tenant, None, state, &[op], now) {
            // The planner's state is what the server publishes.
            revision += 1;
            let mut next = (*snapshot).clone();
            next.install(tenant.clone(), planned.state);
            next.revision = Revision(revision);
            engine.publish(next);
        }
    }
    revision
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// After any sequence of writes, the holders listing, which checks only
    /// the subjects its index reaches, lists exactly the subjects for which
    /// the check allows, at every scope and over every target subject, and
    /// pages of one concatenate to the same list.
    #[test]
    fn holders_are_exactly_the_subjects_allowed(
        ops in proptest::collection::vec(prop_oneof![3 => operation(), 1 => population_operation()], 1..40)
    ) {
        let catalog = Arc::new(schema::load("default", schema::DEFAULT_SCHEMA).unwrap());
        let engine = Engine::new(catalog, Revision(0), vec![], Timestamp(0));
        let tenant: TenantId = "t".parse().unwrap();
        let now = Timestamp(1);
        run(&engine, &tenant, ops, now);
        let snapshot = engine.snapshot();
        let places = SCOPES.iter().map(|s| PlaceRef::Scope(s)).chain(SUBJECTS.iter().map(|s| PlaceRef::Subject(s)));
        for at in places {
            for permission in PERMISSIONS {
                let allowed: Vec<String> = SUBJECTS
                    .iter()
                    .filter(|s| snapshot.check("t", &Question { subject: s, permission, at }, now).unwrap())
                    .map(|s| s.to_string())
                    .collect();
                let (whole, more) = snapshot.holders("t", permission, at, None, SUBJECTS.len(), now).unwrap();
                let listed: Vec<String> = whole.into_iter().map(|h| h.subject).collect();
                prop_assert_eq!(&listed, &allowed, "{} at {:?}", permission, at);
                prop_assert!(more.is_none());
                let mut paged = Vec::new();
                let mut after: Option<String> = None;
                for _ in 0..=SUBJECTS.len() {
                    let (page, next) = snapshot.holders("t", permission, at, after.as_deref(), 1, now).unwrap();
                    paged.extend(page.into_iter().map(|h| h.subject));
                    match next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                prop_assert_eq!(&paged, &allowed, "paged, {} at {:?}", permission, at);
            }
        }
    }

    /// After any sequence of writes, the incrementally maintained cache gives
    /// the same answer as a from-scratch rebuild for every subject,
    /// permission and scope.
    #[test]
    fn incremental_cache_matches_rebuild(ops in proptest::collection::vec(operation(), 1..40)) {
        let catalog = Arc::new(schema::load("default", schema::DEFAULT_SCHEMA).unwrap());
        let engine = Engine::new(catalog.clone(), Revision(0), vec![], Timestamp(0));
        let tenant: TenantId = "t".parse().unwrap();
        let now = Timestamp(1);
        let revision = run(&engine, &tenant, ops, now);
        let rebuilt = Engine::new(catalog, Revision(revision), vec![(tenant.clone(), records(&engine, &tenant))], now);
        let (a, b) = (engine.snapshot(), rebuilt.snapshot());
        for subject in SUBJECTS {
            for permission in PERMISSIONS {
                for scope in SCOPES {
                    let q = Question { subject, permission, at: PlaceRef::Scope(scope) };
                    prop_assert_eq!(
                        a.check("t", &q, now).unwrap(),
                        b.check("t", &q, now).unwrap(),
                        "{} {} at {}", subject, permission, scope
                    );
                }
            }
            let (ga, gb) = (
                &a.tenant("t").unwrap().subjects.get(subject).unwrap().grants,
                &b.tenant("t").unwrap().subjects.get(subject).unwrap().grants,
            );
            prop_assert_eq!(ga, gb);
        }
    }
}
