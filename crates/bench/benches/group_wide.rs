//! Criterion benchmark of a group-wide role write's in-process cost, as the
//! sequencer pays it: the `authzd bench` tenant with one more group holding
//! every subject, and `viewer` assigned to (then removed from) that group
//! at the root. Each write is planned by the engine (its changes, the
//! tenant state it leaves and its exact per-subject effects), prepared for
//! its commit by the embedded store (the changelog entry encoded and
//! compressed, as [`Datastore::prepare`] does ahead of the commit) and
//! published to a watch feed. No gRPC, no fsync.
//!
//! Sizes come from `AUTHZD_SCALE_SUBJECTS` (default `20000`). For a
//! deterministic figure, count instructions of one assign and one remove
//! with `--test` (one run of each) under callgrind, collecting only inside
//! [`wide_write`]:
//!
//! ```text
//! AUTHZD_SCALE_SUBJECTS=20000 valgrind --tool=callgrind \
//!   --collect-atstart=no --toggle-collect='group_wide::wide_write*' \
//!   target/release/deps/group_wide-<hash> --bench --test
//! ```
//!
//! and divide the total by twice the subject count. Run with `cargo bench
//! --bench group_wide`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup or an index out of range is a failed run"
)]

mod common;

use std::hint::black_box;
use std::sync::Arc;

use authzd_core::engine::{Operation, Precondition, Snapshot, plan};
use authzd_core::model::{
    Assignment, AssignmentKey, ChangeSet, Group, GroupId, Membership, Origin, Principal, Revision,
    RoleId, ScopeId, Target, TenantId, Timestamp,
};
use authzd_service::watch::Feed;
use authzd_store::{Datastore, PendingWrite};
use authzd_testkit::dataset::Dataset;
use common::{TENANT, subject_id};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// The group holding every subject.
const WIDE_GROUP: &str = "bench-wide";

/// The role assigned to it, as `authzd bench`'s group-wide write does.
const WIDE_ROLE: &str = "viewer";

/// Operations per write while filling the group.
const FILL_CHUNK: usize = 10_000;

fn tenant() -> TenantId {
    TenantId::try_from(TENANT).unwrap()
}

/// Plans `operations` as a system write on `snapshot` and installs the
/// state it leaves, with its effects.
fn install(snapshot: &mut Snapshot, operations: &[Operation]) -> PendingWrite {
    let planned = plan(
        &snapshot.compiled,
        &tenant(),
        None,
        snapshot.tenants.get(TENANT).map(|t| &**t),
        operations,
        Timestamp(1),
    )
    .unwrap();
    snapshot.install(tenant(), planned.state);
    PendingWrite {
        tenant: Some(tenant()),
        actor: None,
        committed_at: Timestamp(1),
        changes: planned.changes,
        effects: planned.effects,
        expected_revision: None,
        idempotency_key: None,
        origin: Origin::default(),
        revision: None,
        prepared: None,
    }
}

/// The bench tenant of `subjects` subjects, all of them in [`WIDE_GROUP`].
fn fixture(subjects: usize) -> Snapshot {
    let data = Dataset::generate(common::sizes(subjects), 1);
    let mut snapshot = (*common::engine(&data).snapshot()).clone();
    let group = GroupId::try_from(WIDE_GROUP).unwrap();
    install(
        &mut snapshot,
        &[Operation::CreateGroup(Group {
            id: group.clone(),
            title: WIDE_GROUP.into(),
            condition: None,
        })],
    );
    let ids: Vec<usize> = (0..subjects).collect();
    for chunk in ids.chunks(FILL_CHUNK) {
        let joins: Vec<Operation> = chunk
            .iter()
            .map(|&i| {
                Operation::AddMember(
                    Membership {
                        group: group.clone(),
                        member: Principal::Subject(subject_id(i)),
                    },
                    Precondition::None,
                )
            })
            .collect();
        install(&mut snapshot, &joins);
    }
    snapshot
}

/// One group-wide write: planned, installed, its changelog entry prepared
/// by `store`, published to `feed` as `revision`. Returns how many effects
/// it had.
#[inline(never)]
fn wide_write(
    snapshot: &mut Snapshot,
    store: &dyn Datastore,
    feed: &Feed,
    revision: Revision,
    operation: &Operation,
) -> usize {
    let mut write = install(snapshot, std::slice::from_ref(operation));
    store.prepare(&mut write).unwrap();
    black_box(write.entry_bytes().unwrap());
    let effects = write.effects.len();
    feed.publish(Arc::new(ChangeSet {
        revision,
        tenant: write.tenant,
        actor: write.actor,
        committed_at: write.committed_at,
        changes: write.changes,
        effects: write.effects,
    }));
    effects
}

fn bench_group_wide(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(authzd_store_redb::open(dir.path()))
        .unwrap();
    let feed = Feed::new(16, 64 << 20, 64 << 20);
    let key = AssignmentKey {
        role: RoleId::try_from(WIDE_ROLE).unwrap(),
        principal: Principal::Group(GroupId::try_from(WIDE_GROUP).unwrap()),
        target: Target::Scope(ScopeId::root()),
    };
    let assign = Operation::AssignRole(
        Assignment {
            key: key.clone(),
            expires_at: None,
        },
        Precondition::MustNotExist,
    );
    let remove = Operation::UnassignRole(key, Precondition::MustExist);
    let mut revision = Revision(1);
    let mut group = c.benchmark_group("group_wide");
    group.sample_size(10);
    for subjects in common::subject_counts("20000") {
        let mut snapshot = fixture(subjects);
        group.bench_function(BenchmarkId::new("assign_and_remove", subjects), |b| {
            b.iter(|| {
                for operation in [&assign, &remove] {
                    revision = revision.next();
                    let effects = wide_write(&mut snapshot, &*store, &feed, revision, operation);
                    assert!(effects >= subjects / 2, "{effects} effects");
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_group_wide
}
criterion_main!(benches);
