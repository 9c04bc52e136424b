//! Model-based property tests: the engine against a naive reference
//! evaluator written straight from the policy model (docs/policy-model.md).
//!
//! Each case generates a random schema (ladders and action sets, `follows`,
//! non-inheriting types, derived permissions, a role class with
//! `cannot_grant`, builtin roles with `*` and `requires`), renders it to TOML
//! and loads it with [`schema::load`]; then it drives random writes through
//! [`plan`] and [`Engine::apply`], mirroring every accepted write into a plain
//! record of its own. The reference reads only that record and its own view
//! of the schema (it never calls the catalog's closure or rule functions,
//! which are what is under test), recomputes everything from scratch with
//! sets of strings, and must agree with `Snapshot::check` and
//! `Snapshot::effective_permissions` for every subject, permission and
//! place.
//!
//! Time is fixed: writes are planned at [`PLAN_NOW`] (so that assignments
//! may carry an expiry that has passed by the time of the checks), committed
//! and checked at [`NOW`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use authzd_core::engine::{
    Engine, GroupUpdate, Operation, PlaceRef, Precondition, Question, SubjectUpdate, plan,
};
use authzd_core::model::{
    Assignment, AssignmentKey, ChangeSet, Grant, Group, Membership, Principal, Revision, Role,
    Scope, Subject, SubjectKind, SubjectStatus, Target, TenantId, TenantSettings, Timestamp,
};
use authzd_core::schema;
use proptest::prelude::*;

/// When writes are planned: every generated expiry lies after it.
const PLAN_NOW: Timestamp = Timestamp(100);
/// When writes commit and checks are asked.
const NOW: Timestamp = Timestamp(1_000);
/// An expiry that has passed at [`NOW`].
const EXPIRED: Timestamp = Timestamp(500);
/// An expiry still ahead at [`NOW`].
const LIVE: Timestamp = Timestamp(5_000);

const TENANT: &str = "t";
const ROOT: &str = "root";
/// Verbs of generated types: ladders take a prefix, action sets a subset, so
/// that one type often defines every verb of another and may follow it.
const VERBS: [&str; 5] = ["read", "edit", "manage", "admin", "approve"];
const SUBJECTS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const SCOPES: [&str; 4] = ["sa", "sb", "sc", "sd"];
const GROUPS: [&str; 4] = ["g0", "g1", "g2", "g3"];
const CUSTOM_ROLES: [&str; 2] = ["c0", "c1"];
const CLASS: &str = "cls";
/// The one attribute conditions read, and its values.
const ATTRIBUTE: &str = "dept";
const DEPTS: [&str; 2] = ["x", "y"];

// ---------------------------------------------------------------------------
// The schema: raw generated numbers, the test's own model of their meaning,
// and the TOML rendering handed to the loader.

#[derive(Debug, Clone)]
struct TypeSpec {
    ladder: bool,
    /// Ladder: length is `size % 4 + 1`. Actions: a non-empty bit mask over
    /// [`VERBS`].
    size: usize,
    inherit: bool,
    /// Bit `j`: follow type `j` (only earlier types, so no cycle; only if
    /// this type defines every verb of type `j`, as the schema requires).
    follows: u8,
}

#[derive(Debug, Clone)]
struct DerivedSpec {
    resource: usize,
    all_of: bool,
    /// Indices into the permissions declared before this one.
    terms: Vec<usize>,
}

#[derive(Debug, Clone)]
struct RoleSpec {
    /// `None` is `*`; otherwise an index into every permission.
    grants: Vec<Option<usize>>,
    class: bool,
    requires: Vec<usize>,
}

#[derive(Debug, Clone)]
struct SchemaSpec {
    types: Vec<TypeSpec>,
    derived: Vec<DerivedSpec>,
    /// (kind, index): kind 0 is `*`, 1-3 `type:*`, else one exact permission.
    patterns: Vec<(u8, usize)>,
    roles: Vec<RoleSpec>,
}

fn schema_spec() -> impl Strategy<Value = SchemaSpec> {
    let ty = (
        any::<bool>(),
        1usize..32,
        prop::bool::weighted(0.7),
        any::<u8>(),
    )
        .prop_map(|(ladder, size, inherit, follows)| TypeSpec {
            ladder,
            size,
            inherit,
            follows,
        });
    let derived = (
        any::<usize>(),
        any::<bool>(),
        prop::collection::vec(any::<usize>(), 1..=3),
    )
        .prop_map(|(resource, all_of, terms)| DerivedSpec {
            resource,
            all_of,
            terms,
        });
    let role = (
        prop::collection::vec(prop::option::weighted(0.93, any::<usize>()), 1..=3),
        prop::bool::weighted(0.35),
        prop::collection::vec(any::<usize>(), 0..=2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(grants, class, requires, has_requires)| RoleSpec {
            grants,
            class,
            requires: if has_requires { requires } else { Vec::new() },
        });
    (
        prop::collection::vec(ty, 2..=4),
        prop::collection::vec(derived, 0..=3),
        prop::collection::vec((0u8..8, any::<usize>()), 0..=2),
        prop::collection::vec(role, 3..=6),
    )
        .prop_map(|(types, derived, patterns, roles)| SchemaSpec {
            types,
            derived,
            patterns,
            roles,
        })
}

/// A resource type as the test understands it.
#[derive(Debug, Clone)]
struct ResourceType {
    name: String,
    verbs: Vec<String>,
    ladder: bool,
    inherit: bool,
    follows: Vec<String>,
}

/// A derived permission as the test understands it.
#[derive(Debug, Clone)]
struct Derived {
    name: String,
    all_of: bool,
    terms: Vec<String>,
}

/// A role definition (builtin or custom) as the test understands it.
#[derive(Debug, Clone, PartialEq)]
struct RoleDef {
    /// Each grant with the scopes it is pinned to (empty: not pinned).
    grants: Vec<(String, Vec<String>)>,
    class: bool,
    requires: Vec<String>,
}

/// The test's own view of the generated schema.
#[derive(Debug, Clone)]
struct SchemaModel {
    types: Vec<ResourceType>,
    derived: Vec<Derived>,
    patterns: Vec<String>,
    builtin: BTreeMap<String, RoleDef>,
}

fn pick<T: Clone>(list: &[T], i: usize) -> T {
    list[i % list.len()].clone()
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    list.into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

impl SchemaModel {
    fn build(spec: &SchemaSpec) -> SchemaModel {
        let mut types: Vec<ResourceType> = Vec::new();
        for (i, t) in spec.types.iter().enumerate() {
            let verbs: Vec<String> = if t.ladder {
                VERBS[..t.size % 4 + 1]
                    .iter()
                    .map(|v| v.to_string())
                    .collect()
            } else {
                VERBS
                    .iter()
                    .enumerate()
                    .filter(|(b, _)| t.size & (1 << b) != 0)
                    .map(|(_, v)| v.to_string())
                    .collect()
            };
            let follows = types
                .iter()
                .enumerate()
                .filter(|(j, leader)| {
                    t.follows & (1 << j) != 0 && leader.verbs.iter().all(|v| verbs.contains(v))
                })
                .map(|(_, leader)| leader.name.clone())
                .collect();
            types.push(ResourceType {
                name: format!("t{i}"),
                verbs,
                ladder: t.ladder,
                inherit: t.inherit,
                follows,
            });
        }
        let mut model = SchemaModel {
            types,
            derived: Vec::new(),
            patterns: Vec::new(),
            builtin: BTreeMap::new(),
        };
        for (i, d) in spec.derived.iter().enumerate() {
            let earlier = model.permissions();
            let resource = pick(&model.types, d.resource).name;
            let terms = dedup(d.terms.iter().map(|t| pick(&earlier, *t)).collect());
            model.derived.push(Derived {
                name: format!("{resource}:d{i}"),
                all_of: d.all_of,
                terms,
            });
        }
        let all = model.permissions();
        for (kind, i) in &spec.patterns {
            model.patterns.push(match kind {
                0 => "*".to_string(),
                1..=3 => format!("{}:*", pick(&model.types, *i).name),
                _ => pick(&all, *i),
            });
        }
        for (i, r) in spec.roles.iter().enumerate() {
            let grants = dedup(
                r.grants
                    .iter()
                    .map(|g| g.map_or("*".to_string(), |g| pick(&all, g)))
                    .collect(),
            );
            model.builtin.insert(
                format!("b{i}"),
                RoleDef {
                    grants: grants.into_iter().map(|g| (g, Vec::new())).collect(),
                    class: r.class,
                    requires: dedup(r.requires.iter().map(|p| pick(&all, *p)).collect()),
                },
            );
        }
        model
    }

    /// Every permission: each type's verbs, then the derived ones.
    fn permissions(&self) -> Vec<String> {
        self.types
            .iter()
            .flat_map(|t| t.verbs.iter().map(move |v| format!("{}:{v}", t.name)))
            .chain(self.derived.iter().map(|d| d.name.clone()))
            .collect()
    }

    fn render(&self) -> String {
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut out = String::new();
        for t in &self.types {
            writeln!(out, "[resources.{}]", t.name).unwrap();
            let key = if t.ladder { "levels" } else { "actions" };
            writeln!(out, "{key} = {}", list(&t.verbs)).unwrap();
            if !t.follows.is_empty() {
                writeln!(out, "follows = {}", list(&t.follows)).unwrap();
            }
            if !t.inherit {
                writeln!(out, "inherit = false").unwrap();
            }
            writeln!(out).unwrap();
        }
        for d in &self.derived {
            writeln!(out, "[permissions.{:?}]", d.name).unwrap();
            let key = if d.all_of { "all_of" } else { "any_of" };
            writeln!(out, "{key} = {}\n", list(&d.terms)).unwrap();
        }
        writeln!(out, "[role_classes.{CLASS}]").unwrap();
        writeln!(out, "per_subject = \"many\"").unwrap();
        writeln!(out, "cannot_grant = {}\n", list(&self.patterns)).unwrap();
        for (id, r) in &self.builtin {
            writeln!(out, "[roles.{id}]").unwrap();
            let grants: Vec<String> = r.grants.iter().map(|(g, _)| g.clone()).collect();
            writeln!(out, "grants = {}", list(&grants)).unwrap();
            if r.class {
                writeln!(out, "class = {CLASS:?}").unwrap();
            }
            if !r.requires.is_empty() {
                writeln!(out, "requires = {}", list(&r.requires)).unwrap();
            }
            writeln!(out).unwrap();
        }
        out
    }

    fn resource_type(&self, name: &str) -> &ResourceType {
        self.types.iter().find(|t| t.name == name).unwrap()
    }

    fn type_of(permission: &str) -> &str {
        permission.split_once(':').unwrap().0
    }

    fn derived_rule(&self, permission: &str) -> Option<&Derived> {
        self.derived.iter().find(|d| d.name == permission)
    }

    /// Whether a permission holds below the scope it is granted at: its type
    /// does not say `inherit = false` (derived permissions included).
    fn inherits(&self, permission: &str) -> bool {
        self.resource_type(Self::type_of(permission)).inherit
    }

    /// Everything a grant of `permission` gives: `*` gives every permission;
    /// a level gives the lower levels of its ladder; `A:v` gives `B:v` for
    /// every type B that follows A; all of it transitively. A derived
    /// permission gives itself only.
    fn implied(&self, permission: &str) -> BTreeSet<String> {
        if permission == "*" {
            return self.permissions().into_iter().collect();
        }
        let mut out = BTreeSet::new();
        let mut todo = vec![permission.to_string()];
        while let Some(p) = todo.pop() {
            if !out.insert(p.clone()) || self.derived_rule(&p).is_some() {
                continue;
            }
            let (resource, verb) = p.split_once(':').unwrap();
            let ty = self.resource_type(resource);
            if ty.ladder {
                let pos = ty.verbs.iter().position(|v| v == verb).unwrap();
                for lower in &ty.verbs[..pos] {
                    todo.push(format!("{resource}:{lower}"));
                }
            }
            for follower in self
                .types
                .iter()
                .filter(|t| t.follows.iter().any(|l| l == resource))
            {
                todo.push(format!("{}:{verb}", follower.name));
            }
        }
        out
    }

    /// Whether a `cannot_grant` pattern of the class matches `permission`.
    fn masked(&self, permission: &str) -> bool {
        self.patterns.iter().any(|pattern| match pattern.as_str() {
            "*" => true,
            p if p.ends_with(":*") => Self::type_of(permission) == Self::type_of(p),
            p => p == permission,
        })
    }
}

// ---------------------------------------------------------------------------
// Tenant data and writes: raw generated numbers turned into engine
// operations, and the test's own record of what was applied.

#[derive(Debug, Clone, Copy)]
enum Who {
    Subject(usize),
    Group(usize),
}

#[derive(Debug, Clone, Copy)]
enum Where {
    /// Index into root + [`SCOPES`].
    Scope(usize),
    Population(usize),
}

#[derive(Debug, Clone)]
struct SubjectSpec {
    /// Index into [`DEPTS`]; out of range means no attribute.
    dept: usize,
    home: Option<usize>,
    locked: bool,
}

#[derive(Debug, Clone)]
struct CustomRoleSpec {
    /// (`None` for `*`, pinned scopes).
    grants: Vec<(Option<usize>, Vec<usize>)>,
    class: bool,
    requires: Vec<usize>,
}

#[derive(Debug, Clone)]
enum OpSpec {
    Assign {
        role: usize,
        who: Who,
        at: Where,
        /// 0-2 no expiry, 3 expired at [`NOW`], 4 live at [`NOW`].
        expiry: u8,
    },
    Unassign {
        role: usize,
        who: Who,
        at: Where,
    },
    AddMember {
        group: usize,
        member: Who,
    },
    RemoveMember {
        group: usize,
        member: Who,
    },
    UpdateSubject {
        subject: usize,
        locked: Option<bool>,
        dept: Option<usize>,
        home: Option<Option<usize>>,
    },
    CreateSubject(usize, SubjectSpec),
    DeleteSubject(usize),
    PutGroup {
        group: usize,
        create: bool,
        condition: Option<usize>,
    },
    DeleteGroup(usize),
    PutRole {
        role: usize,
        create: bool,
        spec: CustomRoleSpec,
    },
    DeleteRole(usize),
    PutScope {
        scope: usize,
        create: bool,
        parent: usize,
    },
    DeleteScope(usize),
    /// Bit `i`: type `t{i}` is switched off.
    Settings(u8),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => (0..SUBJECTS.len()).prop_map(Who::Subject),
        2 => (0..GROUPS.len()).prop_map(Who::Group),
    ]
}

fn place() -> impl Strategy<Value = Where> {
    prop_oneof![
        2 => Just(Where::Scope(0)),
        4 => (1..=SCOPES.len()).prop_map(Where::Scope),
        2 => (0..GROUPS.len()).prop_map(Where::Population),
    ]
}

fn subject_spec() -> impl Strategy<Value = SubjectSpec> {
    (
        0usize..3,
        prop::option::of(0..SCOPES.len()),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(dept, home, locked)| SubjectSpec { dept, home, locked })
}

fn custom_role_spec() -> impl Strategy<Value = CustomRoleSpec> {
    let grant = (
        prop::option::weighted(0.93, any::<usize>()),
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(0..SCOPES.len(), 1..=2),
        ],
    );
    (
        prop::collection::vec(grant, 1..=3),
        prop::bool::weighted(0.3),
        prop::collection::vec(any::<usize>(), 0..=1),
    )
        .prop_map(|(grants, class, requires)| CustomRoleSpec {
            grants,
            class,
            requires,
        })
}

fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        16 => (any::<usize>(), who(), place(), 0u8..5)
            .prop_map(|(role, who, at, expiry)| OpSpec::Assign { role, who, at, expiry }),
        2 => (any::<usize>(), who(), place())
            .prop_map(|(role, who, at)| OpSpec::Unassign { role, who, at }),
        6 => (0..GROUPS.len(), who())
            .prop_map(|(group, member)| OpSpec::AddMember { group, member }),
        2 => (0..GROUPS.len(), who())
            .prop_map(|(group, member)| OpSpec::RemoveMember { group, member }),
        3 => (
            0..SUBJECTS.len(),
            prop::option::of(prop::bool::weighted(0.3)),
            prop::option::of(0usize..3),
            prop::option::of(prop::option::of(0..SCOPES.len())),
        )
            .prop_map(|(subject, locked, dept, home)| OpSpec::UpdateSubject {
                subject,
                locked,
                dept,
                home,
            }),
        1 => (0..SUBJECTS.len(), subject_spec()).prop_map(|(s, spec)| OpSpec::CreateSubject(s, spec)),
        1 => (0..SUBJECTS.len()).prop_map(OpSpec::DeleteSubject),
        2 => (0..GROUPS.len(), any::<bool>(), prop::option::of(0..DEPTS.len()))
            .prop_map(|(group, create, condition)| OpSpec::PutGroup { group, create, condition }),
        1 => (0..GROUPS.len()).prop_map(OpSpec::DeleteGroup),
        3 => (0..CUSTOM_ROLES.len(), any::<bool>(), custom_role_spec())
            .prop_map(|(role, create, spec)| OpSpec::PutRole { role, create, spec }),
        1 => (0..CUSTOM_ROLES.len()).prop_map(OpSpec::DeleteRole),
        2 => (0..SCOPES.len(), any::<bool>(), 0..=SCOPES.len())
            .prop_map(|(scope, create, parent)| OpSpec::PutScope { scope, create, parent }),
        1 => (0..SCOPES.len()).prop_map(OpSpec::DeleteScope),
        // Each type switched off with probability 1/8, so most checks
        // still have something to find.
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| OpSpec::Settings(a & b & c)),
    ]
}

/// Everything a case needs: the schema, the starting records and the writes.
#[derive(Debug, Clone)]
struct Case {
    schema: SchemaSpec,
    /// Parent of each of [`SCOPES`]: an index into root + earlier scopes.
    scope_parents: Vec<usize>,
    subjects: Vec<SubjectSpec>,
    /// Condition of each of [`GROUPS`], an index into [`DEPTS`].
    conditions: Vec<Option<usize>>,
    /// The first definition of each of [`CUSTOM_ROLES`].
    custom_roles: Vec<CustomRoleSpec>,
    /// Writes after the seed; most are one operation, some a batch that
    /// commits all or nothing.
    ops: Vec<Vec<OpSpec>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        schema_spec(),
        prop::collection::vec(any::<usize>(), SCOPES.len()),
        prop::collection::vec(subject_spec(), SUBJECTS.len()),
        prop::collection::vec(
            prop_oneof![2 => Just(None), 1 => (0..DEPTS.len()).prop_map(Some)],
            GROUPS.len(),
        ),
        prop::collection::vec(custom_role_spec(), CUSTOM_ROLES.len()),
        prop::collection::vec(
            prop_oneof![
                4 => op_spec().prop_map(|op| vec![op]),
                1 => prop::collection::vec(op_spec(), 2..=4),
            ],
            5..50,
        ),
    )
        .prop_map(
            |(schema, scope_parents, subjects, conditions, custom_roles, ops)| Case {
                schema,
                scope_parents,
                subjects,
                conditions,
                custom_roles,
                ops,
            },
        )
}

/// Root followed by [`SCOPES`]: what a scope index means.
fn scope_name(i: usize) -> String {
    if i == 0 {
        ROOT.to_string()
    } else {
        SCOPES[(i - 1) % SCOPES.len()].to_string()
    }
}

fn condition_text(dept: usize) -> String {
    format!("attributes.{ATTRIBUTE} == {:?}", DEPTS[dept])
}

fn attributes(dept: usize) -> BTreeMap<String, String> {
    DEPTS
        .get(dept)
        .map(|d| BTreeMap::from([(ATTRIBUTE.to_string(), d.to_string())]))
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Member {
    Subject(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Tgt {
    Scope(String),
    Population(String),
}

#[derive(Debug, Clone)]
struct SubjectRecord {
    locked: bool,
    attributes: BTreeMap<String, String>,
    home: Option<String>,
}

/// The test's own record of every write the engine accepted.
#[derive(Debug, Clone, Default)]
struct World {
    disabled: BTreeSet<String>,
    subjects: BTreeMap<String, SubjectRecord>,
    /// Scope → parent; the root is implicit.
    scopes: BTreeMap<String, String>,
    /// Group → the department its condition asks for, if it has one.
    groups: BTreeMap<String, Option<String>>,
    custom_roles: BTreeMap<String, RoleDef>,
    /// (group, member).
    members: BTreeSet<(String, Member)>,
    /// (role, principal, target) → expiry.
    assignments: BTreeMap<(String, Member, Tgt), Option<Timestamp>>,
}

/// One generated write: what the engine is asked, and how the record
/// changes if the engine accepts it.
struct Write {
    op: Operation,
    mirror: Box<dyn FnOnce(&mut World)>,
}

fn member(w: Who) -> Member {
    match w {
        Who::Subject(i) => Member::Subject(pick(&SUBJECTS, i).to_string()),
        Who::Group(i) => Member::Group(pick(&GROUPS, i).to_string()),
    }
}

fn principal(m: &Member) -> Principal {
    match m {
        Member::Subject(s) => Principal::Subject(s.parse().unwrap()),
        Member::Group(g) => Principal::Group(g.parse().unwrap()),
    }
}

fn target(t: &Tgt) -> Target {
    match t {
        Tgt::Scope(s) => Target::Scope(s.parse().unwrap()),
        Tgt::Population(g) => Target::Population(g.parse().unwrap()),
    }
}

fn tgt(at: Where) -> Tgt {
    match at {
        Where::Scope(i) => Tgt::Scope(scope_name(i % (SCOPES.len() + 1))),
        Where::Population(i) => Tgt::Population(pick(&GROUPS, i).to_string()),
    }
}

fn engine_role(id: &str, def: &RoleDef) -> Role {
    Role {
        id: id.parse().unwrap(),
        title: id.to_string(),
        grants: def
            .grants
            .iter()
            .map(|(p, pins)| Grant {
                permission: p.parse().unwrap(),
                scopes: pins.iter().map(|s| s.parse().unwrap()).collect(),
            })
            .collect(),
        class: def.class.then(|| CLASS.to_string()),
        rank: 0,
        requires: def.requires.iter().map(|p| p.parse().unwrap()).collect(),
        managed_by: None,
        grantable_by: None,
        self_removable: false,
    }
}

fn subject_write(id: &str, spec: &SubjectSpec) -> Write {
    let record = SubjectRecord {
        locked: spec.locked,
        attributes: attributes(spec.dept),
        home: spec.home.map(|h| SCOPES[h].to_string()),
    };
    let op = Operation::CreateSubject(Subject {
        id: id.parse().unwrap(),
        kind: SubjectKind::User,
        status: if record.locked {
            SubjectStatus::Locked
        } else {
            SubjectStatus::Active
        },
        attributes: record.attributes.clone().into(),
        home_scope: record.home.as_ref().map(|h| h.parse().unwrap()),
    });
    let id = id.to_string();
    Write {
        op,
        mirror: Box::new(move |w| {
            w.subjects.insert(id, record);
        }),
    }
}

fn scope_write(id: &str, parent: String, create: bool) -> Write {
    let scope = Scope {
        id: id.parse().unwrap(),
        scope_type: "unit".into(),
        parent: parent.parse().unwrap(),
    };
    let id = id.to_string();
    Write {
        op: if create {
            Operation::CreateScope(scope)
        } else {
            Operation::UpdateScope(scope)
        },
        mirror: Box::new(move |w| {
            w.scopes.insert(id, parent);
        }),
    }
}

fn group_write(id: &str, condition: Option<usize>, create: bool) -> Write {
    let group = Group {
        id: id.parse().unwrap(),
        title: String::new(),
        condition: condition.map(condition_text),
    };
    let id = id.to_string();
    Write {
        op: if create {
            Operation::CreateGroup(group)
        } else {
            Operation::UpdateGroup(
                group.id.clone(),
                GroupUpdate {
                    title: Some(group.title.clone()),
                    condition: Some(group.condition.clone()),
                },
            )
        },
        mirror: Box::new(move |w| {
            w.groups.insert(id, condition.map(|c| DEPTS[c].to_string()));
        }),
    }
}

impl Case {
    /// The starting records: scopes, subjects and groups.
    fn seed(&self, model: &SchemaModel) -> Vec<Write> {
        let mut writes = Vec::new();
        for (i, id) in SCOPES.iter().enumerate() {
            let parent = scope_name(self.scope_parents[i] % (i + 1));
            writes.push(scope_write(id, parent, true));
        }
        for (id, spec) in SUBJECTS.iter().zip(&self.subjects) {
            writes.push(subject_write(id, spec));
        }
        for (id, condition) in GROUPS.iter().zip(&self.conditions) {
            writes.push(group_write(id, *condition, true));
        }
        for (role, spec) in self.custom_roles.iter().enumerate() {
            let create = OpSpec::PutRole {
                role,
                create: true,
                spec: spec.clone(),
            };
            writes.push(create.write(model));
        }
        writes
    }
}

impl OpSpec {
    fn write(&self, model: &SchemaModel) -> Write {
        let roles: Vec<String> = model
            .builtin
            .keys()
            .cloned()
            .chain(CUSTOM_ROLES.iter().map(|r| r.to_string()))
            .collect();
        match self.clone() {
            OpSpec::Assign {
                role,
                who,
                at,
                expiry,
            } => {
                let key = (pick(&roles, role), member(who), tgt(at));
                let expires_at = match expiry {
                    3 => Some(EXPIRED),
                    4 => Some(LIVE),
                    _ => None,
                };
                Write {
                    op: Operation::AssignRole(
                        Assignment {
                            key: AssignmentKey {
                                role: key.0.parse().unwrap(),
                                principal: principal(&key.1),
                                target: target(&key.2),
                            },
                            expires_at,
                        },
                        Precondition::None,
                    ),
                    mirror: Box::new(move |w| {
                        w.assignments.insert(key, expires_at);
                    }),
                }
            }
            OpSpec::Unassign { role, who, at } => {
                let key = (pick(&roles, role), member(who), tgt(at));
                Write {
                    op: Operation::UnassignRole(
                        AssignmentKey {
                            role: key.0.parse().unwrap(),
                            principal: principal(&key.1),
                            target: target(&key.2),
                        },
                        Precondition::None,
                    ),
                    mirror: Box::new(move |w| {
                        w.assignments.remove(&key);
                    }),
                }
            }
            OpSpec::AddMember { group, member: m } | OpSpec::RemoveMember { group, member: m } => {
                let add = matches!(self, OpSpec::AddMember { .. });
                let entry = (pick(&GROUPS, group).to_string(), member(m));
                let membership = Membership {
                    group: entry.0.parse().unwrap(),
                    member: principal(&entry.1),
                };
                Write {
                    op: if add {
                        Operation::AddMember(membership, Precondition::None)
                    } else {
                        Operation::RemoveMember(membership, Precondition::None)
                    },
                    mirror: Box::new(move |w| {
                        if add {
                            w.members.insert(entry);
                        } else {
                            w.members.remove(&entry);
                        }
                    }),
                }
            }
            OpSpec::UpdateSubject {
                subject,
                locked,
                dept,
                home,
            } => {
                let id = pick(&SUBJECTS, subject).to_string();
                let home = home.map(|h| h.map(|h| SCOPES[h].to_string()));
                let update = SubjectUpdate {
                    kind: None,
                    status: locked.map(|l| {
                        if l {
                            SubjectStatus::Locked
                        } else {
                            SubjectStatus::Active
                        }
                    }),
                    attributes: dept.map(|d| attributes(d).into()),
                    home_scope: home.clone().map(|h| h.map(|h: String| h.parse().unwrap())),
                };
                Write {
                    op: Operation::UpdateSubject(id.parse().unwrap(), update),
                    mirror: Box::new(move |w| {
                        let s = w.subjects.get_mut(&id).unwrap();
                        if let Some(l) = locked {
                            s.locked = l;
                        }
                        if let Some(d) = dept {
                            s.attributes = attributes(d);
                        }
                        if let Some(h) = home {
                            s.home = h;
                        }
                    }),
                }
            }
            OpSpec::CreateSubject(i, spec) => subject_write(pick(&SUBJECTS, i), &spec),
            OpSpec::DeleteSubject(i) => {
                let id = pick(&SUBJECTS, i).to_string();
                Write {
                    op: Operation::DeleteSubject(id.parse().unwrap()),
                    mirror: Box::new(move |w| {
                        let me = Member::Subject(id.clone());
                        w.subjects.remove(&id);
                        w.members.retain(|(_, m)| m != &me);
                        w.assignments.retain(|(_, p, _), _| p != &me);
                    }),
                }
            }
            OpSpec::PutGroup {
                group,
                create,
                condition,
            } => group_write(pick(&GROUPS, group), condition, create),
            OpSpec::DeleteGroup(i) => {
                let id = pick(&GROUPS, i).to_string();
                Write {
                    op: Operation::DeleteGroup(id.parse().unwrap()),
                    mirror: Box::new(move |w| {
                        let me = Member::Group(id.clone());
                        let population = Tgt::Population(id.clone());
                        w.groups.remove(&id);
                        w.members.retain(|(g, m)| g != &id && m != &me);
                        w.assignments
                            .retain(|(_, p, t), _| p != &me && t != &population);
                    }),
                }
            }
            OpSpec::PutRole { role, create, spec } => {
                let id = pick(&CUSTOM_ROLES, role).to_string();
                let all = model.permissions();
                let def = RoleDef {
                    grants: spec
                        .grants
                        .iter()
                        .map(|(p, pins)| {
                            (
                                p.map_or("*".to_string(), |p| pick(&all, p)),
                                pins.iter().map(|s| SCOPES[*s].to_string()).collect(),
                            )
                        })
                        .collect(),
                    class: spec.class,
                    requires: dedup(spec.requires.iter().map(|p| pick(&all, *p)).collect()),
                };
                let role = engine_role(&id, &def);
                Write {
                    op: if create {
                        Operation::CreateRole(role)
                    } else {
                        Operation::UpdateRole(role)
                    },
                    mirror: Box::new(move |w| {
                        w.custom_roles.insert(id, def);
                    }),
                }
            }
            OpSpec::DeleteRole(i) => {
                let id = pick(&CUSTOM_ROLES, i).to_string();
                Write {
                    op: Operation::DeleteRole(id.parse().unwrap()),
                    mirror: Box::new(move |w| {
                        w.custom_roles.remove(&id);
                        w.assignments.retain(|(r, _, _), _| r != &id);
                    }),
                }
            }
            OpSpec::PutScope {
                scope,
                create,
                parent,
            } => scope_write(SCOPES[scope], scope_name(parent), create),
            OpSpec::DeleteScope(i) => {
                let id = SCOPES[i].to_string();
                Write {
                    op: Operation::DeleteScope(id.parse().unwrap()),
                    mirror: Box::new(move |w| {
                        w.scopes.remove(&id);
                    }),
                }
            }
            OpSpec::Settings(mask) => {
                let disabled: BTreeSet<String> = model
                    .types
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, t)| t.name.clone())
                    .collect();
                Write {
                    op: Operation::UpdateTenantSettings(TenantSettings {
                        disabled_resources: disabled.iter().map(|t| t.parse().unwrap()).collect(),
                    }),
                    mirror: Box::new(move |w| w.disabled = disabled),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The reference evaluator: the policy model (docs/policy-model.md), recomputed from scratch, over the
// record and the schema model only.

/// Where a question is asked: a scope, and for questions over a target
/// subject, the groups that subject is in.
struct Spot<'a> {
    scope: &'a str,
    target_groups: Option<BTreeSet<String>>,
}

/// What one counted assignment gives at one place.
enum Entry {
    Scope(String, BTreeSet<String>),
    Population(String, BTreeSet<String>),
}

struct Reference<'a> {
    schema: &'a SchemaModel,
    world: &'a World,
}

impl Reference<'_> {
    /// `scope` and its ancestors, up to the root.
    fn chain(&self, scope: &str) -> Vec<String> {
        let mut out = vec![scope.to_string()];
        while let Some(parent) = self.world.scopes.get(out.last().unwrap()) {
            out.push(parent.clone());
        }
        out
    }

    fn within(&self, scope: &str, ancestor: &str) -> bool {
        self.chain(scope).iter().any(|s| s == ancestor)
    }

    fn all_scopes(&self) -> Vec<String> {
        std::iter::once(ROOT.to_string())
            .chain(self.world.scopes.keys().cloned())
            .collect()
    }

    /// Every group the subject is in: explicitly, by condition, or through
    /// groups nested in those.
    fn groups_of(&self, subject: &str) -> BTreeSet<String> {
        let record = &self.world.subjects[subject];
        let mut groups: BTreeSet<String> = self
            .world
            .groups
            .iter()
            .filter(|(g, condition)| {
                let explicit = self
                    .world
                    .members
                    .contains(&((*g).clone(), Member::Subject(subject.to_string())));
                let by_condition = condition
                    .as_ref()
                    .is_some_and(|d| record.attributes.get(ATTRIBUTE) == Some(d));
                explicit || by_condition
            })
            .map(|(g, _)| g.clone())
            .collect();
        loop {
            let more: Vec<String> = self
                .world
                .members
                .iter()
                .filter(|(outer, m)| {
                    !groups.contains(outer)
                        && matches!(m, Member::Group(inner) if groups.contains(inner))
                })
                .map(|(outer, _)| outer.clone())
                .collect();
            if more.is_empty() {
                return groups;
            }
            groups.extend(more);
        }
    }

    fn role(&self, id: &str) -> Option<&RoleDef> {
        self.world
            .custom_roles
            .get(id)
            .or_else(|| self.schema.builtin.get(id))
    }

    /// What a grant of the role gives: the implied permissions, minus those
    /// its class may never grant.
    fn grant_gives(&self, role: &RoleDef, permission: &str) -> BTreeSet<String> {
        self.schema
            .implied(permission)
            .into_iter()
            .filter(|p| !(role.class && self.schema.masked(p)))
            .collect()
    }

    /// The entries one assignment contributes.
    fn entries(&self, role: &RoleDef, at: &Tgt) -> Vec<Entry> {
        let mut out = Vec::new();
        let unpinned: BTreeSet<String> = role
            .grants
            .iter()
            .filter(|(_, pins)| pins.is_empty())
            .flat_map(|(p, _)| self.grant_gives(role, p))
            .collect();
        match at {
            Tgt::Population(g) => out.push(Entry::Population(g.clone(), unpinned)),
            Tgt::Scope(s) => {
                out.push(Entry::Scope(s.clone(), unpinned));
                for (p, pins) in &role.grants {
                    for pin in pins.iter().filter(|pin| self.within(pin, s)) {
                        out.push(Entry::Scope(pin.clone(), self.grant_gives(role, p)));
                    }
                }
            }
        }
        out
    }

    /// What holds at a place without derived rules: grants at the scope,
    /// inheriting grants at its ancestors, population grants over a target
    /// subject's groups.
    fn direct(&self, entries: &[Entry], spot: &Spot<'_>) -> BTreeSet<String> {
        let chain = self.chain(spot.scope);
        let mut out = BTreeSet::new();
        for entry in entries {
            match entry {
                Entry::Scope(at, perms) => {
                    for p in perms {
                        if at == spot.scope || (chain.contains(at) && self.schema.inherits(p)) {
                            out.insert(p.clone());
                        }
                    }
                }
                Entry::Population(g, perms) => {
                    if spot.target_groups.as_ref().is_some_and(|t| t.contains(g)) {
                        out.extend(perms.iter().cloned());
                    }
                }
            }
        }
        out
    }

    /// Whether `permission` holds given what holds directly: never for a
    /// switched-off type; else if held directly or by its derived rule.
    fn holds(&self, permission: &str, direct: &BTreeSet<String>) -> bool {
        if self
            .world
            .disabled
            .contains(SchemaModel::type_of(permission))
        {
            return false;
        }
        if direct.contains(permission) {
            return true;
        }
        match self.schema.derived_rule(permission) {
            Some(rule) if rule.all_of => rule.terms.iter().all(|t| self.holds(t, direct)),
            Some(rule) => rule.terms.iter().any(|t| self.holds(t, direct)),
            None => false,
        }
    }

    /// Every entry of the assignments that count for the subject: live,
    /// reaching it directly or through a group, and whose role's
    /// prerequisites it holds (at the assignment's scope or below; anywhere
    /// for a population) through the other counted assignments. A least
    /// fixpoint: start from nothing, add what is supported, repeat.
    fn counted_entries(&self, subject: &str) -> Vec<Entry> {
        let mut principals: BTreeSet<Member> = self
            .groups_of(subject)
            .into_iter()
            .map(Member::Group)
            .collect();
        principals.insert(Member::Subject(subject.to_string()));
        let reaching: Vec<(&RoleDef, &Tgt)> = self
            .world
            .assignments
            .iter()
            .filter(|((_, p, _), expiry)| principals.contains(p) && expiry.is_none_or(|t| NOW < t))
            .filter_map(|((r, _, t), _)| self.role(r).map(|role| (role, t)))
            .collect();
        let mut counted = vec![false; reaching.len()];
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let mut progress = false;
            for (i, (role, at)) in reaching.iter().enumerate() {
                if counted[i] {
                    continue;
                }
                let top = match at {
                    Tgt::Scope(s) => s.as_str(),
                    Tgt::Population(_) => ROOT,
                };
                let met = role.requires.iter().all(|req| {
                    self.all_scopes().iter().any(|d| {
                        self.within(d, top)
                            && self.holds(
                                req,
                                &self.direct(
                                    &entries,
                                    &Spot {
                                        scope: d,
                                        target_groups: None,
                                    },
                                ),
                            )
                    })
                });
                if met {
                    counted[i] = true;
                    progress = true;
                    entries.extend(self.entries(role, at));
                }
            }
            if !progress {
                return entries;
            }
        }
    }

    /// The effective set of the policy model at a place; empty for a missing or
    /// locked subject.
    fn effective(&self, subject: &str, spot: &Spot<'_>) -> BTreeSet<String> {
        match self.world.subjects.get(subject) {
            Some(record) if !record.locked => {
                let direct = self.direct(&self.counted_entries(subject), spot);
                self.schema
                    .permissions()
                    .into_iter()
                    .filter(|p| self.holds(p, &direct))
                    .collect()
            }
            _ => BTreeSet::new(),
        }
    }

    /// Where a question over a target subject applies: its home scope and
    /// the groups it is in.
    fn target_spot(&self, target: &str) -> Spot<'_> {
        Spot {
            scope: self.world.subjects[target].home.as_deref().unwrap_or(ROOT),
            target_groups: Some(self.groups_of(target)),
        }
    }
}

// ---------------------------------------------------------------------------
// Running a case.

/// Schemas generated and refused by the loader, over the whole run.
static LOADED: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// A case after its writes: the engine, the record, and a log for failures.
struct Outcome {
    engine: Engine,
    schema: SchemaModel,
    world: World,
    log: String,
}

/// Loads the case's schema (`None` if the loader refuses it), then plans and
/// applies every write, mirroring the accepted ones into the record.
fn run(case: &Case) -> Option<Outcome> {
    let model = SchemaModel::build(&case.schema);
    let text = model.render();
    let catalog = match schema::load("generated.toml", &text) {
        Ok(catalog) => {
            LOADED.fetch_add(1, Ordering::Relaxed);
            catalog
        }
        Err(e) => {
            let refused = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            let loaded = LOADED.load(Ordering::Relaxed);
            assert!(
                refused < 8 || refused <= loaded,
                "the loader refused most generated schemas ({refused} of {}); the last:\n{text}\n{e}",
                refused + loaded
            );
            return None;
        }
    };
    let engine = Engine::new(Arc::new(catalog), Revision(0), vec![], NOW);
    let tenant: TenantId = TENANT.parse().unwrap();
    let mut world = World::default();
    let mut log = format!("schema:\n{text}\nwrites:\n");
    let batches = case.seed(&model).into_iter().map(|w| vec![w]).chain(
        case.ops
            .iter()
            .map(|batch| batch.iter().map(|op| op.write(&model)).collect()),
    );
    for (revision, batch) in (1..).zip(batches) {
        let (ops, mirrors): (Vec<Operation>, Vec<_>) =
            batch.into_iter().map(|w| (w.op, w.mirror)).unzip();
        let snapshot = engine.snapshot();
        let state = snapshot.tenants.get(&tenant).map(|t| &**t);
        let planned = plan(&snapshot.compiled, &tenant, None, state, &ops, PLAN_NOW);
        match planned {
            Ok(planned) => {
                writeln!(log, "  {ops:?}").unwrap();
                // What the server publishes: the planner's own state.
                let mut next = (*snapshot).clone();
                next.install(tenant.clone(), planned.state);
                next.revision = Revision(revision);
                engine.publish(next);
                for mirror in mirrors {
                    mirror(&mut world);
                }
            }
            Err(refusal) => {
                writeln!(log, "  refused: {ops:?}: {}", refusal.error).unwrap();
            }
        }
    }
    Some(Outcome {
        engine,
        schema: model,
        world,
        log,
    })
}

proptest! {
    // 256 cases per property; PROPTEST_CASES asks for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    })]

    /// Every check — each subject (deleted ones included) × each permission
    /// × each scope, and each subject × permission over each target subject —
    /// answers as the reference evaluator does.
    #[test]
    fn checks_match_the_reference(case in case()) {
        let Some(out) = run(&case) else { return Err(TestCaseError::reject("schema refused")) };
        let reference = Reference { schema: &out.schema, world: &out.world };
        let snapshot = out.engine.snapshot();
        let permissions = out.schema.permissions();
        for subject in SUBJECTS {
            for scope in reference.all_scopes() {
                let spot = Spot { scope: &scope, target_groups: None };
                let expected = reference.effective(subject, &spot);
                for permission in &permissions {
                    let q = Question { subject, permission, at: PlaceRef::Scope(&scope) };
                    let got = snapshot.check(TENANT, &q, NOW).unwrap();
                    prop_assert_eq!(
                        got,
                        expected.contains(permission),
                        "{} {} at scope {}\n{}", subject, permission, scope, out.log
                    );
                }
            }
            for target in out.world.subjects.keys() {
                let expected = reference.effective(subject, &reference.target_spot(target));
                for permission in &permissions {
                    let q = Question { subject, permission, at: PlaceRef::Subject(target) };
                    let got = snapshot.check(TENANT, &q, NOW).unwrap();
                    prop_assert_eq!(
                        got,
                        expected.contains(permission),
                        "{} {} over subject {}\n{}", subject, permission, target, out.log
                    );
                }
            }
        }
    }

    /// For each subject and scope, the permissions the engine lists as held
    /// there are exactly the reference's effective set.
    #[test]
    fn effective_permissions_match_the_reference(case in case()) {
        let Some(out) = run(&case) else { return Err(TestCaseError::reject("schema refused")) };
        let reference = Reference { schema: &out.schema, world: &out.world };
        let snapshot = out.engine.snapshot();
        for subject in SUBJECTS {
            for scope in reference.all_scopes() {
                let listed = snapshot.effective_permissions(TENANT, subject, Some(&scope), NOW);
                if !out.world.subjects.contains_key(subject) {
                    prop_assert!(listed.is_err(), "{} was deleted", subject);
                    continue;
                }
                let got: BTreeSet<String> = listed
                    .unwrap()
                    .into_iter()
                    .flat_map(|t| t.permissions.into_iter().map(|p| p.permission))
                    .collect();
                let expected =
                    reference.effective(subject, &Spot { scope: &scope, target_groups: None });
                prop_assert_eq!(got, expected, "{} at scope {}\n{}", subject, scope, out.log);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Regressions: counterexamples found by the properties (or by reading the
// engine while writing the reference), reduced to a few writes.

/// Plans and applies each operation as its own write, planned at
/// `planned_at` and committed at `committed_at`; every one must be accepted.
fn write_all(engine: &Engine, ops: Vec<Operation>, planned_at: Timestamp, committed_at: Timestamp) {
    let tenant: TenantId = TENANT.parse().unwrap();
    for op in ops {
        let snapshot = engine.snapshot();
        let state = snapshot.tenants.get(&tenant).map(|t| &**t);
        let planned = plan(
            &snapshot.compiled,
            &tenant,
            None,
            state,
            std::slice::from_ref(&op),
            planned_at,
        )
        .unwrap_or_else(|r| panic!("{op:?} refused: {}", r.error));
        engine.apply(
            &ChangeSet {
                revision: engine.revision().next(),
                tenant: Some(tenant.clone()),
                actor: None,
                committed_at,
                effects: vec![],
                changes: planned.changes,
            },
            None,
        );
    }
}

fn assign(role: &str, subject: &str, expires_at: Option<Timestamp>) -> Operation {
    Operation::AssignRole(
        Assignment {
            key: AssignmentKey {
                role: role.parse().unwrap(),
                principal: Principal::Subject(subject.parse().unwrap()),
                target: Target::Scope(ROOT.parse().unwrap()),
            },
            expires_at,
        },
        Precondition::None,
    )
}

fn user(id: &str) -> Operation {
    Operation::CreateSubject(Subject {
        id: id.parse().unwrap(),
        kind: SubjectKind::User,
        status: SubjectStatus::Active,
        attributes: Default::default(),
        home_scope: None,
    })
}

fn allowed(engine: &Engine, subject: &str, permission: &str, now: Timestamp) -> bool {
    let q = Question {
        subject,
        permission,
        at: PlaceRef::Scope(ROOT),
    };
    engine.snapshot().check(TENANT, &q, now).unwrap()
}

/// Switching a type off withdraws the roles whose prerequisites were met
/// only by permissions of that type, and switching it back on restores them
/// (docs/policy-model.md, tenant settings): settings changes must recompute
/// prerequisites, not only mask checks.
#[test]
fn switching_a_type_off_withdraws_roles_that_required_it() {
    let text = r#"
        [resources.doc]
        actions = ["read"]
        [resources.pay]
        actions = ["read"]
        [roles.payroll]
        grants = ["pay:read"]
        [roles.reader]
        grants = ["doc:read"]
        requires = ["pay:read"]
    "#;
    let engine = Engine::new(
        Arc::new(schema::load("regression.toml", text).unwrap()),
        Revision(0),
        vec![],
        NOW,
    );
    write_all(
        &engine,
        vec![
            user("u0"),
            assign("payroll", "u0", None),
            assign("reader", "u0", None),
        ],
        NOW,
        NOW,
    );
    assert!(allowed(&engine, "u0", "doc:read", NOW));
    let settings = |off: &[&str]| {
        Operation::UpdateTenantSettings(TenantSettings {
            disabled_resources: off.iter().map(|r| r.parse().unwrap()).collect(),
        })
    };
    write_all(&engine, vec![settings(&["pay"])], NOW, NOW);
    assert!(
        !allowed(&engine, "u0", "doc:read", NOW),
        "pay:read is switched off, so reader's prerequisite is unmet"
    );
    write_all(&engine, vec![settings(&[])], NOW, NOW);
    assert!(allowed(&engine, "u0", "doc:read", NOW));
}

/// A role whose prerequisite is met only through an expiring assignment
/// counts for as long as that assignment lasts — not until the earliest
/// expiry among *all* the subject's grants. Here `reader` requires
/// `pay:read`, given by `payroll` until 5 000; an unrelated `extra` expires
/// at 2 000. At 3 000 (no write in between) `payroll` still holds, so
/// `reader` must still count.
#[test]
fn a_prerequisite_lasts_as_long_as_the_grant_that_meets_it() {
    let text = r#"
        [resources.doc]
        actions = ["read"]
        [resources.pay]
        actions = ["read"]
        [resources.misc]
        actions = ["read"]
        [roles.payroll]
        grants = ["pay:read"]
        [roles.extra]
        grants = ["misc:read"]
        [roles.reader]
        grants = ["doc:read"]
        requires = ["pay:read"]
    "#;
    let engine = Engine::new(
        Arc::new(schema::load("regression.toml", text).unwrap()),
        Revision(0),
        vec![],
        NOW,
    );
    write_all(
        &engine,
        vec![
            user("u0"),
            assign("payroll", "u0", Some(Timestamp(5_000))),
            assign("extra", "u0", Some(Timestamp(2_000))),
            assign("reader", "u0", None),
        ],
        NOW,
        NOW,
    );
    let later = Timestamp(3_000);
    assert!(allowed(&engine, "u0", "pay:read", later));
    assert!(!allowed(&engine, "u0", "misc:read", later));
    assert!(
        allowed(&engine, "u0", "doc:read", later),
        "reader's prerequisite pay:read is still held at 3000"
    );
}
