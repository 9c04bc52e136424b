//! Large revisions over gRPC: one write's permission changes for a whole
//! group arrive as several bounded `WatchResponse` pieces, numbered, the
//! last marked complete; they reassemble to exactly the picture the
//! listings give; resuming after the revision starts after its last piece,
//! resuming before it replays all of its pieces; and a client with gRPC's
//! default 4 MiB receive limit gets a revision whose changes exceed 4 MiB.

use authzd_testkit as common;

use std::collections::BTreeSet;

use common::*;
use prost::Message;

/// A revision with more permission changes than one piece holds (a role
/// given to a group of 250, with a small piece limit) arrives in
/// several pieces within the limit, reassembles to exactly the members ×
/// the role's permissions (the holders `ListSubjectsWithPermission` names),
/// replays identically from the changelog, and a resume after it begins
/// with the next revision.
#[tokio::test]
async fn a_revision_larger_than_a_piece_arrives_in_pieces_and_resumes_after_the_last() {
    const PIECE: usize = 4 << 10;
    let server = TestServer::start_with(|c| c.watch_piece_bytes = PIECE).await;
    let (members, seeded) = seed_group(&server, ACME, "everyone", 250, "m").await;
    let mut live = watch(&server, ACME, seeded, "").await;
    let given = manage(
        &server,
        ACME,
        vec![assign("editor", group_principal("everyone"), None)],
    )
    .await;

    let pieces = next_revision(&mut live).await;
    assert_eq!(pieces[0].revision, given);
    assert!(pieces.len() > 5, "only {} pieces", pieces.len());
    for p in &pieces {
        // The limit is an estimate of the encoded size, on the safe side.
        assert!(
            p.encoded_len() <= PIECE,
            "piece {} is {} bytes",
            p.part,
            p.encoded_len()
        );
        assert_eq!(p.committed_at, pieces[0].committed_at);
    }
    let changes: usize = pieces.iter().map(|p| p.changes.len()).sum();
    assert_eq!(changes, 1, "the one raw change travels once");
    let effects: Vec<&pb::PermissionChange> =
        pieces.iter().flat_map(|p| &p.permission_changes).collect();
    let distinct: BTreeSet<(&str, &str, &str)> = effects
        .iter()
        .map(|c| (c.subject.as_str(), c.permission.as_str(), c.scope.as_str()))
        .collect();
    assert_eq!(distinct.len(), effects.len(), "no change is sent twice");
    assert!(effects.iter().all(|c| c.gained));
    let editors: BTreeSet<&str> = effects
        .iter()
        .filter(|c| c.permission == "document:edit")
        .map(|c| c.subject.as_str())
        .collect();
    let holders = holders_at(&server, ACME, "document:edit", "").await;
    let listed: BTreeSet<&str> = holders.iter().map(|h| h.subject.as_str()).collect();
    assert_eq!(editors, listed, "the feed and the listing agree");
    assert_eq!(editors, members.iter().map(String::as_str).collect());
    assert_eq!(
        effects.len() % members.len(),
        0,
        "every member gains the same permissions"
    );

    // A subscriber that checkpointed the revision before resumes from it
    // and gets every piece again, from the changelog; one that checkpointed
    // this revision gets the next revision first, no leftover piece.
    let sentinel = create_subject(&server, ACME, "sentinel").await;
    let mut before = watch(&server, ACME, given - 1, "").await;
    assert_eq!(next_revision(&mut before).await, pieces);
    let mut after = watch(&server, ACME, given, "").await;
    let next = next_event(&mut after).await;
    assert_eq!(
        (next.revision, next.part, next.revision_complete),
        (sentinel, 0, true)
    );
    server.stop().await;
}

/// A client with tonic's default 4 MiB receive limit receives a revision
/// whose permission changes encode to more than 4 MiB: in pieces, each
/// within the limit, with nothing lost.
#[tokio::test]
async fn a_revision_over_4_mib_reaches_a_client_with_the_default_limit() {
    const DEFAULT_LIMIT: usize = 4 << 20;
    let server = TestServer::start().await;
    // A group's members made viewers over the group itself as a
    // population: each of 100 members gains document:read over each of the
    // 100, and with ids of 255 bytes that is over 5 MB of changes from a
    // group small enough to seed quickly.
    let prefix = "x".repeat(250);
    let (members, seeded) = seed_group(&server, ACME, "everyone", 100, &prefix).await;
    let mut stream = watch(&server, ACME, seeded, "").await;
    let given = manage(
        &server,
        ACME,
        vec![assign(
            "viewer",
            group_principal("everyone"),
            population_target("everyone"),
        )],
    )
    .await;
    let pieces = next_revision(&mut stream).await;
    assert_eq!(pieces[0].revision, given);
    let total: usize = pieces.iter().map(|p| p.encoded_len()).sum();
    assert!(
        total > DEFAULT_LIMIT,
        "the revision is only {total} bytes: the test needs more members"
    );
    assert!(pieces.iter().all(|p| p.encoded_len() < DEFAULT_LIMIT));
    let pairs: BTreeSet<(&str, &str)> = pieces
        .iter()
        .flat_map(|p| &p.permission_changes)
        .map(|c| (c.subject.as_str(), c.target_subject.as_str()))
        .collect();
    assert_eq!(
        pairs.len(),
        members.len() * members.len(),
        "every member over every member"
    );
    server.stop().await;
}
