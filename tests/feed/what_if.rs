//! The what-if of a write (`dry_run` of `ManageMembership` and `Import`):
//! for random writes, the dry run's permission changes are exactly what
//! the committed write then publishes on Watch, its refusals exactly
//! whether the write is refused, and the dry run itself changes nothing.

use authzd_testkit as common;
use authzd_testkit::feed as feed_support;

use authzd_server::api::code_name;
use authzd_server::api::pb;
use authzd_testkit::Rng;
use common::*;
use feed_support::{Writer, membership_batch};

/// A change as a comparable tuple, in the feed's order.
fn change(c: &pb::PermissionChange) -> (String, String, String, String, bool, i32) {
    (
        c.subject.clone(),
        c.permission.clone(),
        c.scope.clone(),
        c.target_subject.clone(),
        c.gained,
        c.reach,
    )
}

/// What the server holds, to show a dry run changed none of it.
async fn state(server: &TestServer) -> (u64, Vec<String>) {
    (revision(server).await, assignments(server, ACME).await)
}

/// For seeded random batches (assignments, unassignments, members added,
/// several per batch so that some batches are partly refused), each first
/// as a dry run then for real, interleaved with random writes of every
/// kind: the dry run leaves revision and assignments untouched; it lists
/// refusals exactly when the write is refused (the same code and reason
/// as the write's error); and when the write commits, the permission
/// changes Watch publishes for its revision are the dry run's, in order.
#[tokio::test]
async fn a_dry_run_previews_exactly_what_the_write_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    std::fs::write(&schema, feed_support::SCHEMA_A).unwrap();
    let server = TestServer::start_with_schema(&schema).await;
    let writer = Writer {
        channel: server.channel().await,
        tenant: ACME.into(),
    };
    let seeded = writer.seed().await;
    let mut stream = server
        .watch()
        .await
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: seeded,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut membership = server.membership().await;
    let (mut previewed, mut refused, mut changes) = (0, 0, 0);
    for seed in 0..120u64 {
        let mut rng = Rng::new(seed);
        let mut request = batch(ACME, membership_batch(&mut rng, 4), None);
        request.dry_run = true;
        let before = state(&server).await;
        let dry = membership
            .manage_membership(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            state(&server).await,
            before,
            "seed {seed}: the dry run wrote"
        );
        assert_eq!(dry.revision, before.0, "seed {seed}");
        let what_if = dry.what_if.unwrap();
        request.dry_run = false;
        match membership.manage_membership(request).await {
            Ok(reply) => {
                assert!(what_if.refusals.is_empty(), "seed {seed}: {what_if:?}");
                let revision = reply.into_inner().revision;
                let expected: Vec<_> = what_if.permission_changes.iter().map(change).collect();
                if revision == before.0 {
                    assert!(
                        expected.is_empty(),
                        "seed {seed}: no write, yet {expected:?}"
                    );
                    continue;
                }
                let mut published = Vec::new();
                for piece in next_revision(&mut stream).await {
                    assert_eq!(piece.revision, revision, "seed {seed}");
                    published.extend(piece.permission_changes.iter().map(change));
                }
                assert_eq!(published, expected, "seed {seed}");
                previewed += 1;
                changes += expected.len();
            }
            Err(status) => {
                let first = what_if.refusals.first().unwrap_or_else(|| {
                    panic!("seed {seed}: refused ({status:?}) but the dry run saw no refusal")
                });
                assert_eq!(first.code, code_name(status.code()), "seed {seed}");
                assert_eq!(first.message, status.message(), "seed {seed}");
                refused += 1;
            }
        }
        // Other writes in between, so that batches meet varied states;
        // their revisions are read off the stream.
        if rng.one_in(3) {
            let before = revision(&server).await;
            writer.write(&mut rng).await;
            for _ in before..revision(&server).await {
                next_revision(&mut stream).await;
            }
        }
    }
    assert!(
        previewed > 30 && refused > 5 && changes > 100,
        "{previewed} committed, {refused} refused, {changes} changes: the run proves little"
    );
    server.stop().await;
}

/// An import chunk's dry run names each refused record by its list and
/// index, lists every refusal (not only the first), and writes nothing;
/// a bad actor refuses the whole write.
#[tokio::test]
async fn an_import_dry_run_names_every_refused_record() {
    let server = seeded_server().await;
    let before = revision(&server).await;
    let assign = |role: &str, who: &str| pb::AssignRole {
        role: role.into(),
        principal: subject_principal(who),
        ..Default::default()
    };
    let reply = server
        .membership()
        .await
        .import(pb::ImportRequest {
            tenant: ACME.into(),
            subjects: vec![pb::Subject {
                id: "zed".into(),
                ..Default::default()
            }],
            assignments: vec![
                assign("viewer", "zed"),
                assign("no-such-role", "zed"),
                assign("viewer", "nobody"),
            ],
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.revision, before);
    assert_eq!(revision(&server).await, before);
    let what_if = reply.what_if.unwrap();
    let refused: Vec<_> = what_if
        .refusals
        .iter()
        .map(|r| (r.list.as_str(), r.index, r.code.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            ("assignments", 1, "NOT_FOUND"),
            ("assignments", 2, "NOT_FOUND")
        ],
        "{what_if:?}"
    );
    assert!(what_if.refusals[0].message.starts_with("assignments[1]: "));
    assert!(
        what_if
            .permission_changes
            .iter()
            .any(|c| c.subject == "zed" && c.permission == "document:read" && c.gained),
        "{what_if:?}"
    );
    let mut request = batch(
        ACME,
        vec![add_member("g", subject_principal("alice"))],
        None,
    );
    request.dry_run = true;
    request.options = Some(pb::WriteOptions {
        actor: "ghost".into(),
        ..Default::default()
    });
    let what_if = server
        .membership()
        .await
        .manage_membership(request)
        .await
        .unwrap()
        .into_inner()
        .what_if
        .unwrap();
    assert_eq!(what_if.refusals.len(), 1, "{what_if:?}");
    assert_eq!(
        (
            what_if.refusals[0].list.as_str(),
            what_if.refusals[0].code.as_str()
        ),
        ("", "NOT_FOUND")
    );
    assert!(what_if.permission_changes.is_empty());
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}
