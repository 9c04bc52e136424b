//! Criterion benchmark of the check path alone: `Snapshot::check` on a cache
//! built in-process (no gRPC, no redb) from the same synthetic tenant the
//! `authzd bench` subcommand loads over the network. Sizes come from
//! `AUTHZD_SCALE_SUBJECTS` (comma-separated subject counts, default
//! `10000`), as in `scale.rs`; each size is its own group,
//! `check_<subjects>_subjects`.
//!
//! Run with `cargo bench --bench check`. It is built, not run, by
//! `cargo test --all-targets` and `cargo clippy --all-targets`.

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

use authzd_core::engine::{PlaceRef, Question as Ask, Snapshot};
use authzd_core::model::Timestamp;
use authzd_testkit::dataset::{Dataset, Rng};
use common::TENANT;
use criterion::{Criterion, criterion_group, criterion_main};

struct Fixture {
    snapshot: Arc<Snapshot>,
    data: Dataset,
    now: Timestamp,
}

impl Fixture {
    fn new(subjects: usize) -> Self {
        let data = Dataset::generate(common::sizes(subjects), 1);
        let engine = common::engine(&data);
        Self {
            snapshot: engine.snapshot(),
            data,
            now: Timestamp::now(),
        }
    }

    fn check(&self, subject: &str, permission: &str, scope: &str) -> bool {
        let ask = Ask {
            subject,
            permission,
            at: PlaceRef::Scope(scope),
        };
        self.snapshot.check(TENANT, &ask, self.now).unwrap()
    }

    /// The first random question (not by the administrator, not by a
    /// locked subject) whose answer is `wanted`.
    fn find(&self, wanted: bool) -> (String, &'static str, String) {
        let mut rng = Rng::new(42);
        loop {
            let q = self.data.question(&mut rng);
            if q.subject == 0 || self.data.locked.get(q.subject) == Some(&true) {
                continue;
            }
            let (s, sc) = (Dataset::subject_id(q.subject), Dataset::scope_id(q.scope));
            if self.check(&s, q.permission, &sc) == wanted {
                return (s, q.permission, sc);
            }
        }
    }
}

fn bench_check(c: &mut Criterion) {
    for subjects in common::subject_counts("10000") {
        bench_size(c, subjects);
    }
}

fn bench_size(c: &mut Criterion, subjects: usize) {
    let fx = Fixture::new(subjects);
    let mut group = c.benchmark_group(format!("check_{subjects}_subjects"));
    for (name, wanted) in [("allowed", true), ("denied", false)] {
        let (subject, permission, scope) = fx.find(wanted);
        let ask = Ask {
            subject: &subject,
            permission,
            at: PlaceRef::Scope(&scope),
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let allowed = fx
                    .snapshot
                    .check(black_box(TENANT), black_box(&ask), fx.now)
                    .unwrap();
                assert_eq!(allowed, wanted);
            })
        });
    }
    // A rotating mix of 1024 random questions, as the subcommand asks them.
    let mut rng = Rng::new(7);
    let mix: Vec<(String, &'static str, String)> = (0..1024)
        .map(|_| {
            let q = fx.data.question(&mut rng);
            (
                Dataset::subject_id(q.subject),
                q.permission,
                Dataset::scope_id(q.scope),
            )
        })
        .collect();
    let mut next = 0usize;
    group.bench_function("random_mix", |b| {
        b.iter(|| {
            let (s, p, sc) = &mix[next % mix.len()];
            next += 1;
            let ask = Ask {
                subject: s,
                permission: p,
                at: PlaceRef::Scope(sc),
            };
            black_box(fx.snapshot.check(TENANT, &ask, fx.now).unwrap())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_check
}
criterion_main!(benches);
