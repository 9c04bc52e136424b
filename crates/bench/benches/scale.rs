//! Criterion benchmark of how the cache's work grows with the tenant: the
//! `authzd bench` tenant built in-process at several sizes, and at each
//! size the engine's side of one write and of the two listings (planning
//! with its effects, then installing the planned state; no gRPC, no redb).
//!
//! - `membership_write`: one AddMember, then its RemoveMember, of one
//!   subject to one nested group.
//! - `assignment_write`: one AssignRole, then its UnassignRole, to one
//!   subject: the floor, whose work never depended on the tenant.
//! - `holders_rare`: `ListSubjectsWithPermission` of a permission only the
//!   tenant administrator holds, page of 100.
//! - `holders_page`: the same for a common permission, first page of 100.
//! - `effective_100_groups`: `ListEffectivePermissions` of a subject in
//!   every one of the 100 groups.
//!
//! Sizes come from `AUTHZD_SCALE_SUBJECTS` (comma-separated subject counts,
//! default `10000,100000`), so the ratios between sizes are measured in
//! one run. Run with `cargo bench --bench scale`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup or an index out of range is a failed run"
)]

mod common;

use std::hint::black_box;

use authzd_core::engine::{Operation, PlaceRef, Precondition, Snapshot, plan};
use authzd_core::model::{
    Assignment, AssignmentKey, Membership, Principal, RoleId, Target, TenantId, Timestamp,
};
use authzd_testkit::dataset::Dataset;
use common::{TENANT, group_id, scope_id, subject_id};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// The subject the writes move; not in the group it joins.
const WRITER: usize = 1;
/// The group it joins: nested three levels deep, with a role of its own.
const GROUP: usize = 99;
/// The subject put into every group for `effective_100_groups`.
const MEMBER_OF_ALL: usize = 2;

/// Plans `operations` as a system write on `snapshot` and installs the
/// state it leaves.
fn write(snapshot: &mut Snapshot, operations: &[Operation]) {
    let tenant = TenantId::try_from(TENANT).unwrap();
    let planned = plan(
        &snapshot.compiled,
        &tenant,
        None,
        snapshot.tenants.get(TENANT).map(|t| &**t),
        operations,
        Timestamp(1),
    )
    .unwrap();
    black_box(&planned.effects);
    snapshot.install(tenant, planned.state);
}

fn membership(group: usize, subject: usize) -> Membership {
    Membership {
        group: group_id(group),
        member: Principal::Subject(subject_id(subject)),
    }
}

fn assignment() -> Assignment {
    Assignment {
        key: AssignmentKey {
            role: RoleId::try_from("approver").unwrap(),
            principal: Principal::Subject(subject_id(WRITER)),
            target: Target::Scope(scope_id(Some(500))),
        },
        expires_at: None,
    }
}

/// The tenant of `subjects` subjects, with [`MEMBER_OF_ALL`] in every group
/// and [`WRITER`] outside [`GROUP`].
fn fixture(subjects: usize) -> Snapshot {
    let data = Dataset::generate(common::sizes(subjects), 1);
    let mut snapshot = (*common::engine(&data).snapshot()).clone();
    let everywhere: Vec<Operation> = (0..data.sizes.groups)
        .map(|g| Operation::AddMember(membership(g, MEMBER_OF_ALL), Precondition::None))
        .collect();
    write(&mut snapshot, &everywhere);
    let out = Operation::RemoveMember(membership(GROUP, WRITER), Precondition::None);
    write(&mut snapshot, &[out]);
    snapshot
}

fn bench_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("scale");
    group.sample_size(20);
    for subjects in common::subject_counts("10000,100000") {
        let mut snapshot = fixture(subjects);
        let join = [Operation::AddMember(
            membership(GROUP, WRITER),
            Precondition::None,
        )];
        let leave = [Operation::RemoveMember(
            membership(GROUP, WRITER),
            Precondition::None,
        )];
        group.bench_function(BenchmarkId::new("membership_write", subjects), |b| {
            b.iter(|| {
                write(&mut snapshot, &join);
                write(&mut snapshot, &leave);
            })
        });
        let assign = [Operation::AssignRole(assignment(), Precondition::None)];
        let unassign = [Operation::UnassignRole(
            assignment().key,
            Precondition::None,
        )];
        group.bench_function(BenchmarkId::new("assignment_write", subjects), |b| {
            b.iter(|| {
                write(&mut snapshot, &assign);
                write(&mut snapshot, &unassign);
            })
        });
        let leaf = Dataset::scope_id(Some(999));
        let now = Timestamp::now();
        for (name, permission) in [
            ("holders_rare", "users:admin"),
            ("holders_page", "document:read"),
        ] {
            group.bench_function(BenchmarkId::new(name, subjects), |b| {
                b.iter(|| {
                    let page = snapshot
                        .holders(TENANT, permission, PlaceRef::Scope(&leaf), None, 100, now)
                        .unwrap();
                    black_box(page)
                })
            });
        }
        let member = Dataset::subject_id(MEMBER_OF_ALL);
        group.bench_function(BenchmarkId::new("effective_100_groups", subjects), |b| {
            b.iter(|| {
                let targets = snapshot
                    .effective_permissions(TENANT, &member, None, now)
                    .unwrap();
                black_box(targets)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_scale
}
criterion_main!(benches);
