//! `ListEffectivePermissions` computes what a subject holds at a place in
//! one pass (every bit at once, the routes that reach the place found once);
//! a check explains one permission at a time. This proves the two agree on
//! a tenant that meets every part of evaluation: ladders and follows, a
//! non-inheriting action, a derived permission, a class mask, pinned grants,
//! prerequisites, nested groups, a population, an expired assignment and a
//! locked subject. At every scope, for every subject and every permission,
//! the listing holds exactly what the check allows, with exactly the
//! sources its explanation names.

use std::collections::BTreeMap;
use std::sync::Arc;

use authzd_core::engine::{Engine, PlaceRef, Question};
use authzd_core::model::{
    Assignment, AssignmentKey, Change, Grant, Group, GroupId, Membership, Permission, Principal,
    Revision, Role, RoleId, Scope, ScopeId, Subject, SubjectId, SubjectKind, SubjectStatus, Target,
    TenantId, TenantSettings, Timestamp,
};

const TENANT: &str = "t";
const NOW: Timestamp = Timestamp(10_000);

const SCHEMA: &str = r#"
    [resources.doc]
    levels = ["read", "edit", "manage"]

    [resources.note]
    levels = ["read", "edit", "manage"]
    follows = ["doc"]

    [resources.sign]
    actions = ["approve"]
    inherit = false

    [resources.pay]
    actions = ["read"]

    [permissions."doc:publish"]
    all_of = ["doc:edit", "sign:approve"]

    [role_classes.limited]
    cannot_grant = ["pay:*"]

    [roles.editor]
    grants = ["doc:edit"]

    [roles.signer]
    grants = ["sign:approve"]

    [roles.payroll]
    grants = ["pay:read"]

    [roles.capped]
    grants = ["doc:manage", "pay:read"]
    class = "limited"

    [roles.auditor]
    grants = ["doc:read"]
    requires = ["pay:read"]
"#;

fn scope(id: &str, parent: &str) -> Change {
    Change::ScopePut(Scope {
        id: ScopeId::try_from(id).unwrap(),
        scope_type: "unit".into(),
        parent: ScopeId::try_from(parent).unwrap(),
    })
}

fn subject(id: &str, status: SubjectStatus) -> Change {
    Change::SubjectPut(Subject {
        id: SubjectId::try_from(id).unwrap(),
        kind: SubjectKind::User,
        status,
        attributes: Default::default(),
        home_scope: Some(ScopeId::try_from("leaf").unwrap()),
    })
}

fn group(id: &str) -> Change {
    Change::GroupPut(Group {
        id: GroupId::try_from(id).unwrap(),
        title: id.into(),
        condition: None,
    })
}

fn principal(who: &str) -> Principal {
    match who.strip_prefix("group:") {
        Some(g) => Principal::Group(GroupId::try_from(g).unwrap()),
        None => Principal::Subject(SubjectId::try_from(who).unwrap()),
    }
}

fn member(group: &str, who: &str) -> Change {
    Change::MemberAdded(Membership {
        group: GroupId::try_from(group).unwrap(),
        member: principal(who),
    })
}

fn assign(role: &str, who: &str, target: Target, expires_at: Option<Timestamp>) -> Change {
    Change::RoleAssigned(Assignment {
        key: AssignmentKey {
            role: RoleId::try_from(role).unwrap(),
            principal: principal(who),
            target,
        },
        expires_at,
    })
}

fn at(scope: &str) -> Target {
    Target::Scope(ScopeId::try_from(scope).unwrap())
}

/// A custom role granting `doc:read` at the two leaves only.
fn pinned_role() -> Change {
    let pinned = |p: &str, scopes: &[&str]| Grant {
        permission: p.parse::<Permission>().unwrap(),
        scopes: scopes
            .iter()
            .map(|s| ScopeId::try_from(*s).unwrap())
            .collect(),
    };
    Change::RolePut(Role {
        id: RoleId::try_from("leaves").unwrap(),
        title: "Leaves".into(),
        grants: vec![
            pinned("doc:read", &["leaf", "other"]),
            pinned("sign:approve", &["leaf"]),
        ],
        class: None,
        rank: 0,
        requires: Vec::new(),
        managed_by: None,
        grantable_by: None,
        self_removable: false,
    })
}

const SUBJECTS: [&str; 5] = ["ann", "bob", "cat", "dan", "eve"];
const SCOPES: [&str; 5] = ["", "unit", "leaf", "other", "side"];

fn world() -> Vec<Change> {
    vec![
        Change::TenantPut(TenantSettings::default()),
        scope("unit", "root"),
        scope("leaf", "unit"),
        scope("other", "unit"),
        scope("side", "root"),
        pinned_role(),
        subject("ann", SubjectStatus::Active),
        subject("bob", SubjectStatus::Active),
        subject("cat", SubjectStatus::Active),
        subject("dan", SubjectStatus::Locked),
        subject("eve", SubjectStatus::Active),
        group("staff"),
        group("team"),
        group("watched"),
        member("staff", "group:team"),
        member("team", "ann"),
        member("team", "bob"),
        member("staff", "cat"),
        member("staff", "dan"),
        member("watched", "eve"),
        assign("editor", "group:staff", at("unit"), None),
        assign("signer", "group:team", at("root"), None),
        assign("leaves", "group:team", at("unit"), None),
        assign("capped", "cat", at("side"), None),
        assign("auditor", "ann", at("leaf"), None),
        assign("payroll", "ann", at("root"), Some(Timestamp(50_000))),
        assign("auditor", "bob", at("leaf"), None),
        assign("payroll", "bob", at("root"), Some(Timestamp(5_000))),
        assign("editor", "eve", at("other"), None),
        assign(
            "signer",
            "cat",
            Target::Population(GroupId::try_from("watched").unwrap()),
            None,
        ),
    ]
}

/// At every scope, the permissions listed for a subject are those the
/// check allows, each with the sources its explanation gives.
#[test]
fn the_listing_holds_what_the_check_explains() {
    let catalog = Arc::new(authzd_core::schema::load("agree.toml", SCHEMA).unwrap());
    let names: Vec<String> = catalog.names().map(str::to_string).collect();
    let tenant = TenantId::try_from(TENANT).unwrap();
    let engine = Engine::new(catalog, Revision(1), vec![(tenant, world())], NOW);
    let snapshot = engine.snapshot();
    let mut allowed_somewhere = 0;
    for subject in SUBJECTS {
        for scope in SCOPES {
            let listed = snapshot
                .effective_permissions(TENANT, subject, Some(scope), NOW)
                .unwrap();
            let listed: BTreeMap<String, Vec<_>> = listed
                .into_iter()
                .flat_map(|t| t.permissions)
                .map(|p| (p.permission, p.sources))
                .collect();
            for permission in &names {
                let q = Question {
                    subject,
                    permission,
                    at: PlaceRef::Scope(scope),
                };
                let (allowed, why) = snapshot.explain(TENANT, &q, NOW).unwrap();
                allowed_somewhere += usize::from(allowed);
                let expected = allowed.then_some(&why.sources);
                assert_eq!(
                    listed.get(permission),
                    expected,
                    "{subject} {permission} at scope {scope:?}"
                );
            }
        }
    }
    // The world is meant to allow a good share of its questions.
    assert!(allowed_somewhere > 20, "only {allowed_somewhere} allowed");
}
