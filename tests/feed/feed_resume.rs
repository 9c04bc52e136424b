//! Resuming the feed over gRPC: a subscriber that reads a little, drops its
//! stream and resumes from the last revision it processed, again and again,
//! ends with exactly the picture of a subscriber that never disconnected and
//! of the server's own answers — nothing missing, nothing twice.

use authzd_testkit as common;
use authzd_testkit::feed as feed_support;

use authzd_server::api::pb;
use authzd_testkit::Rng;
use common::*;
use feed_support::{Folded, SUBJECTS, Writer};

/// A subscriber that disconnects and resumes at random points.
struct Resumer {
    stream: Option<tonic::Streaming<pb::WatchResponse>>,
    last: u64,
    folded: Folded,
    resumes: usize,
}

impl Resumer {
    /// Reads `n` messages (which must exist), resuming first if it had
    /// dropped its stream. Every revision touches the tenant, so each
    /// message must be exactly the next revision.
    async fn read(&mut self, server: &TestServer, n: u64) {
        if n == 0 {
            return;
        }
        if self.stream.is_none() {
            self.resumes += 1;
            self.stream = Some(open(server, self.last).await);
        }
        let stream = self.stream.as_mut().unwrap();
        for _ in 0..n {
            let m = next_event(stream).await;
            assert!(!m.progress, "no progress expected: {m:?}");
            assert_eq!(m.revision, self.last + 1, "a revision missing or twice");
            self.folded.apply(&m);
            self.last = m.revision;
        }
    }
}

async fn open(server: &TestServer, after: u64) -> tonic::Streaming<pb::WatchResponse> {
    server
        .watch()
        .await
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: after,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The scope targets of a subject's effective permissions, as the server
/// lists them (no scope given: every scope where it has grants).
async fn listed(
    server: &TestServer,
    subject: &str,
    at: u64,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let reply = server
        .access()
        .await
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: ACME.into(),
            subject: subject.into(),
            scope: String::new(),
            at_least_revision: at,
        })
        .await;
    match reply {
        Err(s) if s.code() == Code::NotFound => Default::default(),
        r => r
            .unwrap()
            .into_inner()
            .targets
            .into_iter()
            .filter(|t| !t.scope.is_empty() && !t.permissions.is_empty())
            .map(|t| {
                (
                    t.scope,
                    t.permissions.into_iter().map(|p| p.permission).collect(),
                )
            })
            .collect(),
    }
}

async fn run(seed: u64, writes: usize) {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let schema = dir.path().join("schema.toml");
    std::fs::write(&schema, feed_support::SCHEMA_A).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let server = TestServer::start_at(&data, Some(schema)).await;
    let writer = Writer {
        channel: server.channel().await,
        tenant: ACME.into(),
    };
    // The schema install is revision 1 and store-wide: it reaches every
    // tenant's subscribers too.
    let mut steady = open(&server, 0).await;
    let mut resumer = Resumer {
        stream: None,
        last: 0,
        folded: Folded::default(),
        resumes: 0,
    };
    let mut rng = Rng::new(seed);
    let mut latest = writer.seed().await;
    for _ in 0..writes {
        if let Some(r) = writer.write(&mut rng).await {
            latest = latest.max(r);
        }
        if rng.one_in(3) {
            let behind = latest - resumer.last;
            let n = rng.below(behind as usize + 1) as u64;
            resumer.read(&server, n).await;
            if rng.one_in(2) {
                resumer.stream = None;
            }
        }
    }
    assert_eq!(latest, revision(&server).await);
    resumer.read(&server, latest - resumer.last).await;
    assert!(
        resumer.resumes > 3,
        "seed {seed}: too few resumes to prove anything"
    );

    let mut folded = Folded::default();
    for expected in 1..=latest {
        let m = next_event(&mut steady).await;
        assert_eq!(m.revision, expected);
        folded.apply(&m);
    }
    assert_eq!(resumer.folded, folded, "seed {seed}: resumed vs steady");
    assert!(
        folded.1 > 100,
        "seed {seed}: only {} permission changes, the run proves little",
        folded.1
    );
    for s in SUBJECTS {
        assert_eq!(
            folded.scopes_of(s),
            listed(&server, s, latest).await,
            "seed {seed}: {s}'s scope picture vs ListEffectivePermissions"
        );
    }
    server.stop().await;
    drop(dir);
}

/// For several seeds, 150 random writes of every kind (memberships and
/// nesting, assignments at scopes and populations, custom role edits and
/// deletion, lock/unlock, attributes moving subjects in and out of
/// condition groups, module switches, schema switches, subject deletion):
/// a subscriber that drops its stream at random points and resumes with
/// `after_revision` = the last revision it processed receives every
/// revision exactly once, in order, and folds to the same picture as a
/// subscriber that never disconnected — whose scope part equals what
/// ListEffectivePermissions answers for every subject.
#[tokio::test]
async fn resuming_at_random_points_misses_nothing_and_repeats_nothing() {
    for seed in [1, 2, 3, 4] {
        run(seed, 150).await;
    }
}
