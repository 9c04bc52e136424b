//! `MembershipService.ManageMembership` over gRPC: atomic batches, one
//! revision per batch, preconditions, idempotency keys, expected revisions,
//! group cycles and unassignment.

use authzd_testkit as common;
use common::*;

use pb::Precondition::{MustExist, MustNotExist};

/// alice and bob, and the group "writers".
async fn setup(server: &TestServer) {
    create_subject(server, ACME, "alice").await;
    create_subject(server, ACME, "bob").await;
    create_group(server, ACME, "writers").await;
}

/// A batch whose third operation is invalid changes nothing: neither the
/// first two operations' effects nor the revision are visible afterwards,
/// and the error names the failing operation.
#[tokio::test]
async fn a_batch_with_an_invalid_operation_changes_nothing() {
    let server = TestServer::start().await;
    setup(&server).await;
    let before = revision(&server).await;
    let refused = server
        .membership()
        .await
        .manage_membership(batch(
            ACME,
            vec![
                add_member("writers", subject_principal("alice")),
                assign("editor", group_principal("writers"), None),
                assign("no-such-role", subject_principal("bob"), None),
            ],
            None,
        ))
        .await;
    assert_status(refused, Code::NotFound, "operations[2]");
    assert_eq!(revision(&server).await, before);
    assert!(members(&server, ACME, "writers").await.is_empty());
    assert!(assignments(&server, ACME).await.is_empty());
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);

    // The same holds when the failure is a rule (a precondition), not a
    // missing thing, and for an operation that fails conversion.
    let refused = server
        .membership()
        .await
        .manage_membership(batch(
            ACME,
            vec![
                add_member("writers", subject_principal("alice")),
                assign("editor", group_principal("writers"), None),
                with_precondition(
                    remove_member("writers", subject_principal("bob")),
                    MustExist,
                ),
            ],
            None,
        ))
        .await;
    assert_status(refused, Code::FailedPrecondition, "operations[2]");
    assert_eq!(revision(&server).await, before);
    assert!(members(&server, ACME, "writers").await.is_empty());
    server.stop().await;
}

/// A successful batch commits as exactly one new revision, whatever the
/// number of operations, and every operation's effect is visible at it.
#[tokio::test]
async fn a_batch_commits_as_one_revision() {
    let server = TestServer::start().await;
    setup(&server).await;
    create_group(&server, ACME, "readers").await;
    let before = revision(&server).await;
    let rev = manage(
        &server,
        ACME,
        vec![
            add_member("writers", subject_principal("alice")),
            add_member("readers", subject_principal("bob")),
            add_member("readers", group_principal("writers")),
            assign("editor", group_principal("writers"), None),
            assign("viewer", group_principal("readers"), None),
        ],
    )
    .await;
    assert_eq!(rev, before + 1);
    assert_eq!(revision(&server).await, rev);
    assert!(check(&server, ACME, "alice", "document:edit", "").await);
    assert!(check(&server, ACME, "bob", "document:read", "").await);
    assert!(!check(&server, ACME, "bob", "document:edit", "").await);

    // Later operations of a batch see the earlier ones: remove what the
    // batch itself added.
    let rev2 = manage(
        &server,
        ACME,
        vec![
            add_member("writers", subject_principal("bob")),
            with_precondition(
                remove_member("writers", subject_principal("bob")),
                MustExist,
            ),
        ],
    )
    .await;
    assert_eq!(rev2, rev + 1);
    assert_eq!(members(&server, ACME, "writers").await, ["subject:alice"]);
    server.stop().await;
}

/// MUST_NOT_EXIST fails with FAILED_PRECONDITION when the membership or
/// assignment exists, MUST_EXIST when it does not; both succeed otherwise.
#[tokio::test]
async fn preconditions_fail_with_failed_precondition() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut m = server.membership().await;
    let one = |op| batch(ACME, vec![op], None);

    // Absent: MUST_EXIST removals fail, MUST_NOT_EXIST additions succeed.
    assert_status(
        m.manage_membership(one(with_precondition(
            remove_member("writers", subject_principal("alice")),
            MustExist,
        )))
        .await,
        Code::FailedPrecondition,
        "MUST_EXIST",
    );
    assert_status(
        m.manage_membership(one(with_precondition(
            unassign("editor", subject_principal("alice"), None),
            MustExist,
        )))
        .await,
        Code::FailedPrecondition,
        "MUST_EXIST",
    );
    m.manage_membership(one(with_precondition(
        add_member("writers", subject_principal("alice")),
        MustNotExist,
    )))
    .await
    .unwrap();
    m.manage_membership(one(with_precondition(
        assign("editor", subject_principal("alice"), None),
        MustNotExist,
    )))
    .await
    .unwrap();

    // Present: MUST_NOT_EXIST additions fail, MUST_EXIST removals succeed.
    let before = revision(&server).await;
    assert_status(
        m.manage_membership(one(with_precondition(
            add_member("writers", subject_principal("alice")),
            MustNotExist,
        )))
        .await,
        Code::FailedPrecondition,
        "MUST_NOT_EXIST",
    );
    assert_status(
        m.manage_membership(one(with_precondition(
            assign("editor", subject_principal("alice"), None),
            MustNotExist,
        )))
        .await,
        Code::FailedPrecondition,
        "MUST_NOT_EXIST",
    );
    assert_eq!(revision(&server).await, before);
    m.manage_membership(one(with_precondition(
        remove_member("writers", subject_principal("alice")),
        MustExist,
    )))
    .await
    .unwrap();
    m.manage_membership(one(with_precondition(
        unassign("editor", subject_principal("alice"), None),
        MustExist,
    )))
    .await
    .unwrap();
    assert!(members(&server, ACME, "writers").await.is_empty());
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    server.stop().await;
}

/// Without a precondition, adding what exists and removing what does not
/// are no-ops: they succeed and write no revision.
#[tokio::test]
async fn unconditional_noops_write_nothing() {
    let server = TestServer::start().await;
    setup(&server).await;
    let rev = manage(
        &server,
        ACME,
        vec![add_member("writers", subject_principal("alice"))],
    )
    .await;
    let again = manage(
        &server,
        ACME,
        vec![
            add_member("writers", subject_principal("alice")),
            remove_member("writers", subject_principal("bob")),
            unassign("viewer", subject_principal("bob"), None),
        ],
    )
    .await;
    assert_eq!(again, rev);
    assert_eq!(revision(&server).await, rev);
    server.stop().await;
}

fn keyed(key: &str) -> Option<pb::WriteOptions> {
    Some(pb::WriteOptions {
        idempotency_key: key.into(),
        ..Default::default()
    })
}

/// A request replayed with the same idempotency key returns the first
/// attempt's revision and writes nothing (even if its body differs).
#[tokio::test]
async fn idempotency_key_replay_returns_the_first_revision() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut m = server.membership().await;
    // A batch that is not a no-op when repeated: it changes state each time.
    let toggle = || {
        vec![
            add_member("writers", subject_principal("bob")),
            remove_member("writers", subject_principal("bob")),
            assign("viewer", subject_principal("alice"), None),
        ]
    };
    let first = m
        .manage_membership(batch(ACME, toggle(), keyed("req-1")))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let replay = m
        .manage_membership(batch(ACME, toggle(), keyed("req-1")))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(replay, first);
    assert_eq!(revision(&server).await, first);

    let other_body = m
        .manage_membership(batch(
            ACME,
            vec![assign("editor", subject_principal("bob"), None)],
            keyed("req-1"),
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(other_body, first);
    assert_eq!(revision(&server).await, first);
    assert!(!check(&server, ACME, "bob", "document:edit", "").await);

    // A new key writes.
    let fresh = m
        .manage_membership(batch(
            ACME,
            vec![assign("editor", subject_principal("bob"), None)],
            keyed("req-2"),
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(fresh, first + 1);
    server.stop().await;
}

/// A retry of an acknowledged write, after other writes have committed,
/// still returns the first attempt's revision and writes nothing, even when
/// the retried batch would now be a no-op or fail its precondition.
#[tokio::test]
async fn idempotent_retry_after_other_writes_returns_the_first_revision() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut m = server.membership().await;
    let op = || {
        vec![with_precondition(
            add_member("writers", subject_principal("alice")),
            MustNotExist,
        )]
    };
    let first = m
        .manage_membership(batch(ACME, op(), keyed("add-alice")))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let later = create_subject(&server, ACME, "carol").await;
    assert!(later > first);

    let retry = m
        .manage_membership(batch(ACME, op(), keyed("add-alice")))
        .await
        .map(|r| r.into_inner().revision);
    assert_eq!(retry.map_err(|s| s.code()), Ok(first));

    let unconditional = m
        .manage_membership(batch(
            ACME,
            vec![add_member("writers", subject_principal("alice"))],
            keyed("add-alice"),
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(unconditional, first);
    assert_eq!(revision(&server).await, later);
    server.stop().await;
}

/// expected_revision must equal the latest revision: a stale one fails with
/// FAILED_PRECONDITION and writes nothing; the current one commits.
#[tokio::test]
async fn expected_revision_mismatch_is_refused() {
    let server = TestServer::start().await;
    setup(&server).await;
    let current = revision(&server).await;
    let mut m = server.membership().await;
    let expecting = |r: u64| {
        Some(pb::WriteOptions {
            expected_revision: r,
            ..Default::default()
        })
    };
    let stale = m
        .manage_membership(batch(
            ACME,
            vec![add_member("writers", subject_principal("alice"))],
            expecting(current - 1),
        ))
        .await;
    let status = assert_status(stale, Code::FailedPrecondition, "expected revision");
    assert!(status.message().contains(&current.to_string()));
    assert_eq!(revision(&server).await, current);
    assert!(members(&server, ACME, "writers").await.is_empty());

    let ahead = m
        .manage_membership(batch(
            ACME,
            vec![add_member("writers", subject_principal("alice"))],
            expecting(current + 1),
        ))
        .await;
    assert_status(ahead, Code::FailedPrecondition, "expected revision");

    let ok = m
        .manage_membership(batch(
            ACME,
            vec![add_member("writers", subject_principal("alice"))],
            expecting(current),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.revision, current + 1);
    assert_eq!(members(&server, ACME, "writers").await, ["subject:alice"]);
    server.stop().await;
}

/// Nesting groups into a cycle (directly, through a chain, or a group into
/// itself) is refused with FAILED_PRECONDITION and changes nothing.
#[tokio::test]
async fn group_nesting_cycles_are_refused() {
    let server = TestServer::start().await;
    for g in ["a", "b", "c"] {
        create_group(&server, ACME, g).await;
    }
    manage(
        &server,
        ACME,
        vec![
            add_member("a", group_principal("b")),
            add_member("b", group_principal("c")),
        ],
    )
    .await;
    let before = revision(&server).await;
    let mut m = server.membership().await;
    for (group, member) in [("c", "a"), ("b", "a"), ("a", "a")] {
        let refused = m
            .manage_membership(batch(
                ACME,
                vec![add_member(group, group_principal(member))],
                None,
            ))
            .await;
        assert_status(refused, Code::FailedPrecondition, "cycle");
    }
    assert_eq!(revision(&server).await, before);
    assert_eq!(members(&server, ACME, "a").await, ["group:b"]);
    assert_eq!(members(&server, ACME, "b").await, ["group:c"]);
    assert!(members(&server, ACME, "c").await.is_empty());
    // A cycle closed inside one batch is refused too.
    create_group(&server, ACME, "x").await;
    create_group(&server, ACME, "y").await;
    let before_pair = revision(&server).await;
    let refused = m
        .manage_membership(batch(
            ACME,
            vec![
                add_member("x", group_principal("y")),
                add_member("y", group_principal("x")),
            ],
            None,
        ))
        .await;
    assert_status(refused, Code::FailedPrecondition, "operations[1]");
    assert_eq!(revision(&server).await, before_pair);
    assert!(members(&server, ACME, "x").await.is_empty());
    server.stop().await;
}

/// Unassigning a role takes exactly that assignment away (same role,
/// principal and target); other assignments stay.
#[tokio::test]
async fn unassign_removes_exactly_that_assignment() {
    let server = TestServer::start().await;
    setup(&server).await;
    create_scope(&server, ACME, "eu", "").await;
    manage(
        &server,
        ACME,
        vec![
            assign("editor", subject_principal("alice"), None),
            assign("editor", subject_principal("alice"), scope_target("eu")),
            assign("viewer", subject_principal("alice"), None),
        ],
    )
    .await;
    manage(
        &server,
        ACME,
        vec![unassign("editor", subject_principal("alice"), None)],
    )
    .await;
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    assert!(check(&server, ACME, "alice", "document:edit", "eu").await);
    assert!(check(&server, ACME, "alice", "document:read", "").await);
    let mut left = assignments(&server, ACME).await;
    left.sort();
    assert_eq!(
        left,
        [
            "editor subject:alice scope:eu",
            "viewer subject:alice scope:root"
        ]
    );
    server.stop().await;
}

/// Operations naming a subject, group, role or scope that does not exist
/// are refused with NOT_FOUND naming it.
#[tokio::test]
async fn operations_on_missing_things_are_not_found() {
    let server = TestServer::start().await;
    setup(&server).await;
    let mut m = server.membership().await;
    for (op, named) in [
        (add_member("nogroup", subject_principal("alice")), "nogroup"),
        (add_member("writers", subject_principal("nobody")), "nobody"),
        (assign("norole", subject_principal("alice"), None), "norole"),
        (
            assign(
                "viewer",
                subject_principal("alice"),
                scope_target("nowhere"),
            ),
            "nowhere",
        ),
        (
            assign(
                "viewer",
                subject_principal("alice"),
                population_target("nogroup"),
            ),
            "nogroup",
        ),
    ] {
        let refused = m.manage_membership(batch(ACME, vec![op], None)).await;
        assert_status(refused, Code::NotFound, named);
    }
    server.stop().await;
}

/// An actor must hold the role's `managed_by` permission at the target and
/// may not grant a role ranked above its own (docs/policy-model.md, Actors): otherwise
/// PERMISSION_DENIED, and nothing is written.
#[tokio::test]
async fn actor_needs_managed_by_and_rank() {
    let server = TestServer::start().await;
    setup(&server).await;
    create_subject(&server, ACME, "boss").await;
    create_role(&server, ACME, "user-admin", vec![grant("users:admin", &[])]).await;
    manage(
        &server,
        ACME,
        vec![assign("user-admin", subject_principal("boss"), None)],
    )
    .await;
    let as_actor = |actor: &str, role: &str| {
        batch(
            ACME,
            vec![assign(role, subject_principal("bob"), None)],
            Some(pb::WriteOptions {
                actor: actor.into(),
                ..Default::default()
            }),
        )
    };
    let mut m = server.membership().await;
    let before = revision(&server).await;
    // alice holds nothing, so not users:admin.
    assert_status(
        m.manage_membership(as_actor("alice", "viewer")).await,
        Code::PermissionDenied,
        "users:admin",
    );
    // boss holds users:admin at rank 0; admin is ranked 100.
    assert_status(
        m.manage_membership(as_actor("boss", "admin")).await,
        Code::PermissionDenied,
        "rank",
    );
    assert_eq!(revision(&server).await, before);
    assert!(!check(&server, ACME, "bob", "document:read", "").await);
    server.stop().await;
}
