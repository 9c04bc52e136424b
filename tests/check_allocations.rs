#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]
//! The check path allocates nothing (docs/performance.md): proven by counting heap
//! allocations while answering checks against a populated snapshot.

use std::sync::Arc;

use authzd_core::engine::{Engine, Operation, PlaceRef, Precondition, Question, plan};
use authzd_core::model::{
    Assignment, AssignmentKey, ChangeSet, Group, Membership, Principal, Revision, Scope, Subject,
    SubjectKind, SubjectStatus, Target, TenantId, Timestamp,
};
use authzd_core::schema;

fn populated() -> Engine {
    let catalog = Arc::new(schema::load("default", schema::DEFAULT_SCHEMA).unwrap());
    let engine = Engine::new(catalog, Revision(0), vec![], Timestamp(0));
    let tenant: TenantId = "t".parse().unwrap();
    let subject = |id: &str| {
        Operation::CreateSubject(Subject {
            id: id.parse().unwrap(),
            kind: SubjectKind::User,
            status: SubjectStatus::Active,
            attributes: Default::default(),
            home_scope: Some("leaf".parse().unwrap()),
        })
    };
    let scope = |id: &str, parent: &str| {
        Operation::CreateScope(Scope {
            id: id.parse().unwrap(),
            scope_type: "unit".into(),
            parent: parent.parse().unwrap(),
        })
    };
    let assign = |role: &str, who: Principal, at: &str| {
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
    let ops = vec![
        scope("top", "root"),
        scope("mid", "top"),
        scope("leaf", "mid"),
        subject("alice"),
        subject("bob"),
        Operation::CreateGroup(Group {
            id: "editors".parse().unwrap(),
            title: String::new(),
            condition: None,
        }),
        Operation::AddMember(
            Membership {
                group: "editors".parse().unwrap(),
                member: Principal::Subject("alice".parse().unwrap()),
            },
            Precondition::None,
        ),
        assign(
            "editor",
            Principal::Group("editors".parse().unwrap()),
            "top",
        ),
        assign(
            "approver",
            Principal::Subject("alice".parse().unwrap()),
            "leaf",
        ),
    ];
    let snapshot = engine.snapshot();
    let changes = plan(&snapshot.compiled, &tenant, None, None, &ops, Timestamp(1))
        .unwrap()
        .changes;
    engine.apply(
        &ChangeSet {
            revision: Revision(1),
            tenant: Some(tenant),
            actor: None,
            committed_at: Timestamp(1),
            effects: vec![],
            changes,
        },
        None,
    );
    engine
}

/// Allowed and denied checks, inherited, derived and over a target subject,
/// make no heap allocation at all.
#[test]
fn checks_make_no_allocation() {
    let engine = populated();
    let snapshot = engine.snapshot();
    let questions = [
        ("alice", "document:read", PlaceRef::Scope("leaf"), true),
        ("alice", "document:publish", PlaceRef::Scope("leaf"), true),
        ("alice", "document:publish", PlaceRef::Scope("mid"), false),
        ("alice", "comment:edit", PlaceRef::Subject("bob"), true),
        ("bob", "document:read", PlaceRef::Scope("leaf"), false),
        ("nobody", "document:read", PlaceRef::Scope(""), false),
    ];
    let now = Timestamp(2);
    // The counter must see allocations for its zeros to mean anything.
    let control = allocation_counter::measure(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(8));
    });
    assert!(
        control.count_total >= 1,
        "the allocation counter is not active"
    );
    for (subject, permission, at, expected) in questions {
        let q = Question {
            subject,
            permission,
            at,
        };
        let mut answer = None;
        let counted = allocation_counter::measure(|| {
            answer = Some(snapshot.check("t", &q, now).unwrap());
        });
        assert_eq!(answer, Some(expected), "{subject} {permission} {at:?}");
        assert_eq!(
            counted.count_total, 0,
            "{subject} {permission} {at:?} allocated {} times",
            counted.count_total
        );
    }
}
