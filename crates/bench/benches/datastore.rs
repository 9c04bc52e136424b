//! Criterion benchmark of the store through its `Datastore` trait (the
//! embedded redb implementation on a real disk, the system temp folder),
//! each figure read against a floor measured in the same run:
//!
//! - `revision`: one read through the trait (a hop to the blocking pool and
//!   a read transaction): the floor.
//! - `snapshot`: the whole `authzd bench` tenant of 10,000 subjects (their
//!   scopes, groups, memberships and assignments) streamed from one
//!   snapshot, as the start-up load reads it; records counted, not applied.
//! - `commit`: one single-change write, committed and fsynced.
//!
//! Run with `cargo bench --bench datastore`.

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

use authzd_core::model::{
    Change, Origin, Subject, SubjectKind, SubjectStatus, TenantId, Timestamp,
};
use authzd_store::{Datastore, PendingWrite};
use authzd_testkit::dataset::Dataset;
use criterion::{Criterion, criterion_group, criterion_main};

/// Subjects of the tenant the snapshot streams.
const SUBJECTS: usize = 10_000;

/// Records per write while filling the store.
const FILL_CHUNK: usize = 5_000;

fn write(changes: Vec<Change>) -> PendingWrite {
    PendingWrite {
        tenant: Some(TenantId::try_from(common::TENANT).unwrap()),
        actor: None,
        committed_at: Timestamp(0),
        changes,
        effects: Vec::new(),
        expected_revision: None,
        idempotency_key: None,
        origin: Origin::default(),
        revision: None,
        prepared: None,
    }
}

/// A store holding the bench tenant, and how many records it streams.
fn fill(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> (Arc<dyn Datastore>, usize) {
    let data = Dataset::generate(common::sizes(SUBJECTS), 1);
    let store = runtime.block_on(authzd_store_redb::open(dir)).unwrap();
    for chunk in common::changes(&data).chunks(FILL_CHUNK) {
        runtime
            .block_on(store.commit(write(chunk.to_vec())))
            .unwrap();
    }
    let records = runtime.block_on(count(&*store));
    (store, records)
}

/// How many records a snapshot of `store` streams.
async fn count(store: &dyn Datastore) -> usize {
    let mut snapshot = store.snapshot().await.unwrap();
    let mut seen = 0usize;
    while let Some(batch) = snapshot.next_batch().await {
        seen += batch.unwrap().len();
    }
    seen
}

fn bench_datastore(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, records) = fill(&runtime, dir.path());
    let mut group = c.benchmark_group("datastore");
    group.bench_function("revision", |b| {
        b.iter(|| black_box(runtime.block_on(store.revision()).unwrap()))
    });
    group.bench_function(format!("snapshot_{records}_records"), |b| {
        b.iter(|| assert_eq!(runtime.block_on(count(&*store)), records))
    });
    let mut n = 0u64;
    group.bench_function("commit", |b| {
        b.iter(|| {
            n += 1;
            let subject = Subject {
                id: format!("extra-{n}").as_str().try_into().unwrap(),
                kind: SubjectKind::User,
                status: SubjectStatus::Active,
                attributes: Default::default(),
                home_scope: None,
            };
            let one = write(vec![Change::SubjectPut(subject)]);
            black_box(runtime.block_on(store.commit(one)).unwrap())
        })
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_datastore
}
criterion_main!(benches);
