//! Criterion benchmark of the check path alone: `Snapshot::check` on a cache
//! built in-process (no gRPC, no redb) from the same synthetic tenant the
//! `authzd bench` subcommand loads over the network, at 10k subjects.
//!
//! Run with `cargo bench --bench check`. It is built, not run, by
//! `cargo test --all-targets` and `cargo clippy --all-targets`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authzd::cli::bench::dataset::{Dataset, Rng, Sizes, Who};
use authzd::engine::{At, Engine, Question as Ask, Snapshot};
use authzd::model::{
    Assignment, AssignmentKey, Change, Group, GroupId, Membership, Principal, Revision, RoleId,
    Scope, ScopeId, Subject, SubjectId, SubjectKind, SubjectStatus, Target, TenantId,
    TenantSettings, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};

const TENANT: &str = "bench";

fn scope_id(i: Option<usize>) -> ScopeId {
    match i {
        Some(_) => ScopeId::try_from(Dataset::scope_id(i).as_str()).unwrap(),
        None => ScopeId::root(),
    }
}

fn subject(i: usize) -> Principal {
    Principal::Subject(SubjectId::try_from(Dataset::subject_id(i).as_str()).unwrap())
}

fn group(i: usize) -> Principal {
    Principal::Group(GroupId::try_from(Dataset::group_id(i).as_str()).unwrap())
}

fn group_id(i: usize) -> GroupId {
    GroupId::try_from(Dataset::group_id(i).as_str()).unwrap()
}

/// The dataset as the changes that would create it.
fn changes(data: &Dataset) -> Vec<Change> {
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
            id: SubjectId::try_from(Dataset::subject_id(i).as_str()).unwrap(),
            kind: SubjectKind::User,
            status: if locked {
                SubjectStatus::Locked
            } else {
                SubjectStatus::Active
            },
            attributes: BTreeMap::new(),
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
    for &(parent, child) in &data.nestings {
        out.push(Change::MemberAdded(Membership {
            group: group_id(parent),
            member: group(child),
        }));
    }
    for &(g, s) in &data.memberships {
        out.push(Change::MemberAdded(Membership {
            group: group_id(g),
            member: subject(s),
        }));
    }
    for a in &data.assignments {
        out.push(Change::RoleAssigned(Assignment {
            key: AssignmentKey {
                role: RoleId::try_from(a.role).unwrap(),
                principal: match a.who {
                    Who::Subject(s) => subject(s),
                    Who::Group(g) => group(g),
                },
                target: Target::Scope(scope_id(a.scope)),
            },
            expires_at: None,
        }));
    }
    out
}

struct Fixture {
    snapshot: Arc<Snapshot>,
    data: Dataset,
    now: Timestamp,
}

impl Fixture {
    fn new() -> Self {
        let sizes = Sizes {
            subjects: 10_000,
            groups: 100,
            scopes: 1_000,
        };
        let data = Dataset::generate(sizes, 1);
        let catalog = Arc::new(
            authzd::schema::load("built-in schema", authzd::schema::DEFAULT_SCHEMA).unwrap(),
        );
        let tenant = TenantId::try_from(TENANT).unwrap();
        let engine = Engine::new(
            catalog,
            Revision(1),
            vec![(tenant, changes(&data))],
            Timestamp(0),
        );
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
            at: At::Scope(scope),
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
    let fx = Fixture::new();
    let mut group = c.benchmark_group("check_10k_subjects");
    for (name, wanted) in [("allowed", true), ("denied", false)] {
        let (subject, permission, scope) = fx.find(wanted);
        let ask = Ask {
            subject: &subject,
            permission,
            at: At::Scope(&scope),
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
                at: At::Scope(sc),
            };
            black_box(fx.snapshot.check(TENANT, &ask, fx.now).unwrap())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_check
}
criterion_main!(benches);
