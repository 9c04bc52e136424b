//! What the criterion benches share: the synthetic `authzd bench` tenant
//! (see `authzd_testkit::dataset`) expressed as the changes that would
//! create it, and a cache built from them in-process (no gRPC, no redb).
//!
//! Must not time anything itself: each bench decides what it measures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup or an index out of range is a failed run"
)]
#![allow(
    dead_code,
    reason = "every bench target compiles this module and each uses only part of it"
)]

use std::sync::Arc;

use authzd_core::engine::Engine;
use authzd_core::model::{
    Assignment, AssignmentKey, Change, Group, GroupId, Membership, Principal, Revision, RoleId,
    Scope, ScopeId, Subject, SubjectId, SubjectKind, SubjectStatus, Target, TenantId,
    TenantSettings, Timestamp,
};
use authzd_testkit::dataset::{Dataset, Sizes, Who};

/// The tenant every bench builds.
pub const TENANT: &str = "bench";

/// The `authzd bench` shape for `subjects` subjects: 100 groups nested
/// under 10 roots, 1,000 scopes of depth 4.
pub fn sizes(subjects: usize) -> Sizes {
    Sizes {
        subjects,
        groups: 100,
        scopes: 1_000,
    }
}

/// Scope `i`, or the root for `None`.
pub fn scope_id(i: Option<usize>) -> ScopeId {
    match i {
        Some(_) => ScopeId::try_from(Dataset::scope_id(i).as_str()).unwrap(),
        None => ScopeId::root(),
    }
}

/// Subject `i`'s id.
pub fn subject_id(i: usize) -> SubjectId {
    SubjectId::try_from(Dataset::subject_id(i).as_str()).unwrap()
}

/// Group `i`'s id.
pub fn group_id(i: usize) -> GroupId {
    GroupId::try_from(Dataset::group_id(i).as_str()).unwrap()
}

fn principal(who: Who) -> Principal {
    match who {
        Who::Subject(s) => Principal::Subject(subject_id(s)),
        Who::Group(g) => Principal::Group(group_id(g)),
    }
}

/// The dataset as the changes that would create it.
pub fn changes(data: &Dataset) -> Vec<Change> {
    let mut out = vec![Change::TenantPut(TenantSettings::default())];
    for (i, parent) in data.scope_parents.iter().enumerate() {
        out.push(Change::ScopePut(Scope {
            id: scope_id(Some(i)),
            scope_type: "unit".into(),
            parent: scope_id(*parent),
        }));
    }
    for (i, &locked) in data.locked.iter().enumerate() {
        out.push(Change::SubjectPut(Subject {
            id: subject_id(i),
            kind: SubjectKind::User,
            status: if locked {
                SubjectStatus::Locked
            } else {
                SubjectStatus::Active
            },
            attributes: Default::default(),
            home_scope: None,
        }));
    }
    for i in 0..data.sizes.groups {
        out.push(Change::GroupPut(Group {
            id: group_id(i),
            title: Dataset::group_id(i),
            condition: None,
        }));
    }
    let nestings = data.nestings.iter().map(|&(p, c)| (p, Who::Group(c)));
    let memberships = data.memberships.iter().map(|&(g, s)| (g, Who::Subject(s)));
    for (group, member) in nestings.chain(memberships) {
        out.push(Change::MemberAdded(Membership {
            group: group_id(group),
            member: principal(member),
        }));
    }
    for a in &data.assignments {
        out.push(Change::RoleAssigned(Assignment {
            key: AssignmentKey {
                role: RoleId::try_from(a.role).unwrap(),
                principal: principal(a.who),
                target: Target::Scope(scope_id(a.scope)),
            },
            expires_at: None,
        }));
    }
    out
}

/// A cache holding the dataset as tenant [`TENANT`], at revision 1.
pub fn engine(data: &Dataset) -> Engine {
    let catalog = Arc::new(
        authzd_core::schema::load("built-in schema", authzd_core::schema::DEFAULT_SCHEMA).unwrap(),
    );
    let tenant = TenantId::try_from(TENANT).unwrap();
    Engine::new(
        catalog,
        Revision(1),
        vec![(tenant, changes(data))],
        Timestamp(0),
    )
}

/// The subject counts to measure: `AUTHZD_SCALE_SUBJECTS` (comma-separated),
/// else `default`, so the ratios between sizes come from one run.
pub fn subject_counts(default: &str) -> Vec<usize> {
    std::env::var("AUTHZD_SCALE_SUBJECTS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("AUTHZD_SCALE_SUBJECTS: subject counts")
        })
        .collect()
}

/// The measurement settings both benches share: short warm-up and
/// measurement, so a full run fits a CI-sized machine.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}
