//! `AccessService` over gRPC against the built-in schema: CheckAccess (levels,
//! follows, inheritance, non-inheriting and derived permissions, `*`, groups,
//! locks, switched-off types, targets), its explanations, BatchCheckAccess,
//! ListEffectivePermissions and ListSubjectsWithPermission.

use authzd_testkit as common;
use common::*;

/// The scope tree most tests use: root → eu → berlin → team, and root → us.
async fn tree(server: &TestServer) {
    create_scope(server, ACME, "eu", "").await;
    create_scope(server, ACME, "berlin", "eu").await;
    create_scope(server, ACME, "team", "berlin").await;
    create_scope(server, ACME, "us", "").await;
}

/// Creates `subject` and assigns it `role` at `scope`.
async fn grant_role(server: &TestServer, subject: &str, role: &str, scope: &str) {
    create_subject(server, ACME, subject).await;
    manage(
        server,
        ACME,
        vec![assign(
            role,
            subject_principal(subject),
            scope_target(scope),
        )],
    )
    .await;
}

/// A higher level implies every lower one and nothing above it.
#[tokio::test]
async fn levels_ladder_implies_lower_levels_only() {
    let server = TestServer::start().await;
    grant_role(&server, "mia", "manager", "").await;
    grant_role(&server, "vic", "viewer", "").await;
    for (permission, expected) in [
        ("document:read", true),
        ("document:edit", true),
        ("document:manage", true),
        ("document:admin", false),
    ] {
        assert_eq!(
            check(&server, ACME, "mia", permission, "").await,
            expected,
            "manager {permission}"
        );
    }
    assert!(check(&server, ACME, "vic", "document:read", "").await);
    assert!(!check(&server, ACME, "vic", "document:edit", "").await);
    server.stop().await;
}

/// A grant on document also grants the same level on comment (comment
/// follows document), not the other way round.
#[tokio::test]
async fn comment_follows_document() {
    let server = TestServer::start().await;
    grant_role(&server, "ed", "editor", "").await;
    assert!(check(&server, ACME, "ed", "comment:edit", "").await);
    assert!(check(&server, ACME, "ed", "comment:read", "").await);
    assert!(!check(&server, ACME, "ed", "comment:manage", "").await);

    create_role(&server, ACME, "commenter", vec![grant("comment:edit", &[])]).await;
    grant_role(&server, "cam", "commenter", "").await;
    assert!(check(&server, ACME, "cam", "comment:edit", "").await);
    assert!(!check(&server, ACME, "cam", "document:read", "").await);
    server.stop().await;
}

/// A grant at a scope holds there and in every descendant, not above it nor
/// in a sibling branch.
#[tokio::test]
async fn grants_inherit_down_the_scope_tree() {
    let server = TestServer::start().await;
    tree(&server).await;
    grant_role(&server, "ed", "editor", "eu").await;
    for (scope, expected) in [
        ("eu", true),
        ("berlin", true),
        ("team", true),
        ("", false),
        ("root", false),
        ("us", false),
    ] {
        assert_eq!(
            check(&server, ACME, "ed", "document:edit", scope).await,
            expected,
            "at {scope:?}"
        );
    }
    server.stop().await;
}

/// `approval:approve` (inherit = false) holds exactly at the scope it was
/// assigned at, not below it.
#[tokio::test]
async fn non_inheriting_permission_holds_only_at_its_exact_scope() {
    let server = TestServer::start().await;
    tree(&server).await;
    grant_role(&server, "ann", "approver", "eu").await;
    assert!(check(&server, ACME, "ann", "approval:approve", "eu").await);
    assert!(!check(&server, ACME, "ann", "approval:approve", "berlin").await);
    assert!(!check(&server, ACME, "ann", "approval:approve", "team").await);
    assert!(!check(&server, ACME, "ann", "approval:approve", "").await);

    let (allowed, why) = explain(&server, ACME, "ann", "approval:approve", "berlin").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), [pb::DenialReason::OutOfScope]);
    assert!(
        why.denials[0].detail.contains("eu") && why.denials[0].detail.contains("does not inherit"),
        "{:?}",
        why.denials[0].detail
    );
    server.stop().await;
}

/// `document:publish` needs both `document:edit` and `approval:approve` at
/// the place checked; either alone is not enough.
#[tokio::test]
async fn derived_publish_needs_edit_and_approve_at_the_place() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_subject(&server, ACME, "pat").await;
    manage(
        &server,
        ACME,
        vec![
            assign("editor", subject_principal("pat"), scope_target("eu")),
            assign("approver", subject_principal("pat"), scope_target("berlin")),
        ],
    )
    .await;
    assert!(check(&server, ACME, "pat", "document:publish", "berlin").await);
    // Edit holds at eu but approve does not; approve does not reach team.
    assert!(!check(&server, ACME, "pat", "document:publish", "eu").await);
    assert!(!check(&server, ACME, "pat", "document:publish", "team").await);

    let (allowed, why) = explain(&server, ACME, "pat", "document:publish", "berlin").await;
    assert!(allowed);
    let roles: Vec<&str> = why.sources.iter().map(|s| s.role.as_str()).collect();
    assert!(
        roles.contains(&"editor") && roles.contains(&"approver"),
        "{why:?}"
    );
    assert!(
        why.sources
            .iter()
            .all(|s| s.implication.contains("document:publish")),
        "{why:?}"
    );

    let (allowed, why) = explain(&server, ACME, "pat", "document:publish", "eu").await;
    assert!(!allowed);
    assert!(
        why.denials
            .iter()
            .any(|d| d.detail.contains("approval:approve")),
        "{why:?}"
    );

    // Without the edit right, approve alone does not publish.
    grant_role(&server, "ann", "approver", "berlin").await;
    assert!(!check(&server, ACME, "ann", "document:publish", "berlin").await);
    server.stop().await;
}

/// A `*` grant gives every permission of every type, at and below its scope.
#[tokio::test]
async fn star_grant_gives_every_permission() {
    let server = TestServer::start().await;
    tree(&server).await;
    grant_role(&server, "root-admin", "admin", "").await;
    for (permission, scope) in [
        ("document:admin", "team"),
        ("comment:admin", "us"),
        ("users:invite", ""),
        ("users:admin", "berlin"),
        ("approval:approve", ""),
        ("document:publish", ""),
    ] {
        assert!(
            check(&server, ACME, "root-admin", permission, scope).await,
            "{permission} at {scope:?}"
        );
    }
    let (_, why) = explain(&server, ACME, "root-admin", "users:invite", "").await;
    assert_eq!(why.sources.len(), 1, "{why:?}");
    assert_eq!(why.sources[0].grant, "*");
    assert!(!why.sources[0].implication.is_empty());
    server.stop().await;
}

/// A role assigned to an outer group reaches the members of a group nested
/// in it, and stops when the nesting is removed.
#[tokio::test]
async fn nested_groups_pass_roles_down() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "inner").await;
    create_group(&server, ACME, "outer").await;
    manage(
        &server,
        ACME,
        vec![
            add_member("inner", subject_principal("alice")),
            add_member("outer", group_principal("inner")),
            assign("editor", group_principal("outer"), scope_target("eu")),
        ],
    )
    .await;
    assert!(check(&server, ACME, "alice", "document:edit", "berlin").await);
    let (_, why) = explain(&server, ACME, "alice", "document:edit", "berlin").await;
    assert_eq!(why.sources.len(), 1, "{why:?}");
    // Innermost first, outermost last.
    assert_eq!(why.sources[0].groups, ["inner", "outer"]);

    manage(
        &server,
        ACME,
        vec![remove_member("outer", group_principal("inner"))],
    )
    .await;
    assert!(!check(&server, ACME, "alice", "document:edit", "berlin").await);
    server.stop().await;
}

/// A locked subject is denied everything at once, keeps its memberships and
/// assignments, and is allowed again once unlocked.
#[tokio::test]
async fn locked_subject_is_denied_and_keeps_memberships() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "writers").await;
    manage(
        &server,
        ACME,
        vec![
            add_member("writers", subject_principal("alice")),
            assign("editor", group_principal("writers"), None),
            assign("viewer", subject_principal("alice"), None),
        ],
    )
    .await;
    assert!(check(&server, ACME, "alice", "document:edit", "").await);

    set_locked(&server, ACME, "alice", true).await;
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    assert!(!check(&server, ACME, "alice", "document:read", "").await);
    let (allowed, why) = explain(&server, ACME, "alice", "document:read", "").await;
    assert!(!allowed);
    assert!(
        reasons(&why).contains(&pb::DenialReason::SubjectLocked),
        "{why:?}"
    );
    assert!(why.sources.is_empty());
    assert_eq!(members(&server, ACME, "writers").await, ["subject:alice"]);
    assert_eq!(assignments(&server, ACME).await.len(), 2);

    set_locked(&server, ACME, "alice", false).await;
    assert!(check(&server, ACME, "alice", "document:edit", "").await);
    assert!(check(&server, ACME, "alice", "document:read", "").await);
    server.stop().await;
}

/// A resource type switched off for the tenant grants nothing there
/// (derived permissions on it included) and explains why; `follows` is
/// closed before the switch-off (docs/policy-model.md), so comment, which is on,
/// still holds. Switching it back on restores the grants.
#[tokio::test]
async fn switched_off_resource_type_grants_nothing() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "pat").await;
    manage(
        &server,
        ACME,
        vec![
            assign("editor", subject_principal("pat"), None),
            assign("approver", subject_principal("pat"), None),
        ],
    )
    .await;
    assert!(check(&server, ACME, "pat", "document:publish", "").await);

    set_disabled(&server, ACME, &["document"]).await;
    assert!(!check(&server, ACME, "pat", "document:read", "").await);
    assert!(!check(&server, ACME, "pat", "document:edit", "").await);
    assert!(!check(&server, ACME, "pat", "document:publish", "").await);
    assert!(check(&server, ACME, "pat", "approval:approve", "").await);
    assert!(check(&server, ACME, "pat", "comment:edit", "").await);
    let (allowed, why) = explain(&server, ACME, "pat", "document:edit", "").await;
    assert!(!allowed);
    assert!(
        reasons(&why).contains(&pb::DenialReason::ResourceDisabled),
        "{why:?}"
    );
    let effective = server
        .access()
        .await
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: ACME.into(),
            subject: "pat".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<&str> = effective
        .targets
        .iter()
        .flat_map(|t| &t.permissions)
        .map(|p| p.permission.as_str())
        .collect();
    assert!(
        !listed.iter().any(|p| p.starts_with("document:")),
        "{listed:?}"
    );

    set_disabled(&server, ACME, &[]).await;
    assert!(check(&server, ACME, "pat", "document:publish", "").await);
    server.stop().await;
}

/// An unknown acting subject is a deny, not an error, and the explanation
/// says SUBJECT_NOT_FOUND.
#[tokio::test]
async fn unknown_subject_is_denied_with_reason() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    assert!(!check(&server, ACME, "ghost", "document:read", "").await);
    let (allowed, why) = explain(&server, ACME, "ghost", "document:read", "").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), [pb::DenialReason::SubjectNotFound]);
    server.stop().await;
}

/// An explained allow names every path: the role, the groups it came
/// through, the scope of the assignment, the grant and the implication.
#[tokio::test]
async fn explain_on_allow_names_role_group_scope_and_implication() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "writers").await;
    manage(
        &server,
        ACME,
        vec![
            add_member("writers", subject_principal("alice")),
            assign("editor", group_principal("writers"), scope_target("eu")),
            assign("viewer", subject_principal("alice"), None),
        ],
    )
    .await;
    let (allowed, why) = explain(&server, ACME, "alice", "document:read", "berlin").await;
    assert!(allowed);
    assert!(why.denials.is_empty(), "{why:?}");
    assert_eq!(why.sources.len(), 2, "{why:?}");
    let via_group = why
        .sources
        .iter()
        .find(|s| s.role == "editor")
        .expect("the editor path");
    assert_eq!(via_group.groups, ["writers"]);
    assert_eq!(via_group.scope, "eu");
    assert_eq!(via_group.grant, "document:edit");
    assert!(
        via_group
            .implication
            .contains("document:edit implies document:read"),
        "{:?}",
        via_group.implication
    );
    let direct = why
        .sources
        .iter()
        .find(|s| s.role == "viewer")
        .expect("the viewer path");
    assert!(direct.groups.is_empty());
    assert_eq!(direct.scope, "root");
    assert_eq!(direct.grant, "document:read");
    assert_eq!(direct.implication, "", "a literal grant implies nothing");
    server.stop().await;
}

/// An explained deny lists its reasons: no grant at all, or a grant whose
/// scope does not cover the place (naming that scope).
#[tokio::test]
async fn explain_on_deny_lists_reasons() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_subject(&server, ACME, "nobody").await;
    let (allowed, why) = explain(&server, ACME, "nobody", "document:read", "").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), [pb::DenialReason::NoGrant]);
    assert!(why.sources.is_empty());

    grant_role(&server, "ed", "editor", "eu").await;
    let (allowed, why) = explain(&server, ACME, "ed", "document:edit", "us").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), [pb::DenialReason::OutOfScope], "{why:?}");
    assert!(
        why.denials[0].detail.contains("editor") && why.denials[0].detail.contains("eu"),
        "{:?}",
        why.denials[0].detail
    );
    assert!(why.sources.is_empty());
    server.stop().await;
}

/// An assignment whose expiry is already past is refused (INVALID_ARGUMENT
/// naming expires_at) and changes nothing; one expiring in the future
/// allows, and the explanation carries its expiry.
#[tokio::test]
async fn expiring_assignments() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "tmp").await;
    let before = revision(&server).await;
    let refused = server
        .membership()
        .await
        .manage_membership(batch(
            ACME,
            vec![assign_until(
                "editor",
                subject_principal("tmp"),
                None,
                from_now(-60),
            )],
            None,
        ))
        .await;
    assert_status(refused, Code::InvalidArgument, "expires_at");
    assert_eq!(revision(&server).await, before);
    assert!(!check(&server, ACME, "tmp", "document:edit", "").await);

    let until = from_now(3600);
    manage(
        &server,
        ACME,
        vec![assign_until(
            "editor",
            subject_principal("tmp"),
            None,
            until,
        )],
    )
    .await;
    assert!(check(&server, ACME, "tmp", "document:edit", "").await);
    let (_, why) = explain(&server, ACME, "tmp", "document:edit", "").await;
    assert_eq!(why.sources.len(), 1);
    assert_eq!(why.sources[0].expires_at, Some(until));
    server.stop().await;
}

/// A check over a target subject applies at that subject's home scope, and
/// follows it when the home scope changes.
#[tokio::test]
async fn target_subject_checks_apply_at_its_home_scope() {
    let server = TestServer::start().await;
    tree(&server).await;
    grant_role(&server, "boss", "editor", "eu").await;
    create_subject_at(&server, ACME, "bob", "berlin").await;
    create_subject_at(&server, ACME, "carol", "us").await;
    create_subject_at(&server, ACME, "dave", "").await;
    assert!(check_over(&server, ACME, "boss", "document:edit", "bob").await);
    assert!(!check_over(&server, ACME, "boss", "document:edit", "carol").await);
    assert!(!check_over(&server, ACME, "boss", "document:edit", "dave").await);

    server
        .directory()
        .await
        .update_subject(pb::UpdateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: "bob".into(),
                home_scope: "us".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["home_scope".into()],
            }),
            options: None,
        })
        .await
        .unwrap();
    assert!(!check_over(&server, ACME, "boss", "document:edit", "bob").await);
    server.stop().await;
}

/// A role assigned over a population group holds for target subjects inside
/// the group only (explained as OUTSIDE_POPULATION otherwise), and not at
/// plain scopes.
#[tokio::test]
async fn population_grants_hold_for_members_of_the_group() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "hr").await;
    create_subject(&server, ACME, "bob").await;
    create_subject(&server, ACME, "carol").await;
    create_group(&server, ACME, "staff").await;
    manage(
        &server,
        ACME,
        vec![
            add_member("staff", subject_principal("bob")),
            assign(
                "viewer",
                subject_principal("hr"),
                population_target("staff"),
            ),
        ],
    )
    .await;
    assert!(check_over(&server, ACME, "hr", "document:read", "bob").await);
    assert!(!check_over(&server, ACME, "hr", "document:read", "carol").await);
    assert!(!check(&server, ACME, "hr", "document:read", "").await);

    let reply = server
        .access()
        .await
        .check_access(pb::CheckAccessRequest {
            tenant: ACME.into(),
            subject: "hr".into(),
            permission: "document:read".into(),
            target_subject: "carol".into(),
            explain: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let why = reply.explanation.unwrap();
    assert_eq!(reasons(&why), [pb::DenialReason::OutsidePopulation]);
    assert!(why.denials[0].detail.contains("staff"));

    manage(
        &server,
        ACME,
        vec![remove_member("staff", subject_principal("bob"))],
    )
    .await;
    assert!(!check_over(&server, ACME, "hr", "document:read", "bob").await);
    server.stop().await;
}

/// A custom role's pinned grant holds at the pinned scope (and below), not
/// at the assignment's own scope.
#[tokio::test]
async fn pinned_grants_hold_only_at_their_scopes() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_role(
        &server,
        ACME,
        "berlin-reader",
        vec![grant("document:read", &["berlin"])],
    )
    .await;
    grant_role(&server, "pia", "berlin-reader", "").await;
    assert!(check(&server, ACME, "pia", "document:read", "berlin").await);
    assert!(check(&server, ACME, "pia", "document:read", "team").await);
    assert!(!check(&server, ACME, "pia", "document:read", "eu").await);
    assert!(!check(&server, ACME, "pia", "document:read", "").await);
    server.stop().await;
}

/// BatchCheckAccess answers every check in the order given, each as the
/// single check would, all at one revision.
#[tokio::test]
async fn batch_check_keeps_order_and_answers_at_one_revision() {
    let server = TestServer::start().await;
    tree(&server).await;
    grant_role(&server, "ed", "editor", "eu").await;
    grant_role(&server, "vic", "viewer", "").await;
    let questions = [
        ("ed", "document:edit", "berlin"),
        ("ed", "document:edit", "us"),
        ("vic", "document:read", "team"),
        ("vic", "document:edit", ""),
        ("ghost", "document:read", ""),
        ("ed", "comment:edit", "eu"),
    ];
    let reply = server
        .access()
        .await
        .batch_check_access(pb::BatchCheckAccessRequest {
            tenant: ACME.into(),
            checks: questions
                .iter()
                .map(|(s, p, at)| pb::CheckItem {
                    subject: s.to_string(),
                    permission: p.to_string(),
                    scope: at.to_string(),
                    target_subject: String::new(),
                })
                .collect(),
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.revision, revision(&server).await);
    let got: Vec<bool> = reply.results.iter().map(|r| r.allowed).collect();
    let mut expected = Vec::new();
    for (s, p, at) in questions {
        expected.push(check(&server, ACME, s, p, at).await);
    }
    assert_eq!(got, expected);
    assert_eq!(got, [true, false, true, false, false, true]);
    server.stop().await;
}

/// ListEffectivePermissions reports, per target in id order, every
/// permission held there with each of its sources; with a scope it reports
/// that scope only, inherited grants included; populations come last.
#[tokio::test]
async fn list_effective_permissions_per_target_with_sources() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "staff").await;
    manage(
        &server,
        ACME,
        vec![
            assign("viewer", subject_principal("alice"), None),
            assign("editor", subject_principal("alice"), scope_target("eu")),
            assign(
                "approver",
                subject_principal("alice"),
                scope_target("berlin"),
            ),
            assign(
                "manager",
                subject_principal("alice"),
                population_target("staff"),
            ),
        ],
    )
    .await;
    let list = |scope: &str| pb::ListEffectivePermissionsRequest {
        tenant: ACME.into(),
        subject: "alice".into(),
        scope: scope.into(),
        at_least_revision: 0,
    };
    let all = server
        .access()
        .await
        .list_effective_permissions(list(""))
        .await
        .unwrap()
        .into_inner();
    let targets: Vec<(String, String)> = all
        .targets
        .iter()
        .map(|t| (t.scope.clone(), t.population.clone()))
        .collect();
    assert_eq!(
        targets,
        [
            ("berlin".into(), "".into()),
            ("eu".into(), "".into()),
            ("root".into(), "".into()),
            ("".into(), "staff".into()),
        ]
    );
    let names = |t: &pb::EffectiveTarget| -> Vec<String> {
        t.permissions.iter().map(|p| p.permission.clone()).collect()
    };
    for t in &all.targets {
        let mut sorted = names(t);
        sorted.sort();
        assert_eq!(names(t), sorted, "sorted at {t:?}");
    }
    let berlin = names(&all.targets[0]);
    for p in [
        "approval:approve",
        "comment:edit",
        "document:edit",
        "document:publish",
        "document:read",
    ] {
        assert!(berlin.contains(&p.to_string()), "{p} at berlin: {berlin:?}");
    }
    let eu = names(&all.targets[1]);
    assert!(eu.contains(&"document:edit".to_string()), "{eu:?}");
    assert!(!eu.contains(&"approval:approve".to_string()), "{eu:?}");
    assert_eq!(
        names(&all.targets[2]),
        ["comment:read", "document:read"],
        "only the viewer grant at the root"
    );
    let staff = names(&all.targets[3]);
    assert!(staff.contains(&"document:manage".to_string()), "{staff:?}");
    assert!(staff.contains(&"users:invite".to_string()), "{staff:?}");

    // At eu, document:read has two sources: viewer at the root (literal)
    // and editor at eu (ladder).
    let read_at_eu = all.targets[1]
        .permissions
        .iter()
        .find(|p| p.permission == "document:read")
        .unwrap();
    let mut sources: Vec<(String, String, bool)> = read_at_eu
        .sources
        .iter()
        .map(|s| (s.role.clone(), s.scope.clone(), s.implication.is_empty()))
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            ("editor".into(), "eu".into(), false),
            ("viewer".into(), "root".into(), true)
        ]
    );

    // One scope: inherited grants count there; nothing else is listed.
    let team = server
        .access()
        .await
        .list_effective_permissions(list("team"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(team.targets.len(), 1);
    assert_eq!(team.targets[0].scope, "team");
    assert_eq!(
        names(&team.targets[0]),
        [
            "comment:edit",
            "comment:read",
            "document:edit",
            "document:read"
        ]
    );
    assert_eq!(team.revision, revision(&server).await);
    server.stop().await;
}

/// ListSubjectsWithPermission lists holders in subject id order, pages with
/// page_size / page_token without loss or repetition, and marks a holder
/// `implied` exactly when no grant names the permission literally.
#[tokio::test]
async fn list_subjects_with_permission_pages_and_marks_implied() {
    let server = TestServer::start().await;
    tree(&server).await;
    create_group(&server, ACME, "readers").await;
    for id in [
        "a-admin", "b-viewer", "c-editor", "d-none", "e-group", "f-locked", "g-both",
    ] {
        create_subject(&server, ACME, id).await;
    }
    manage(
        &server,
        ACME,
        vec![
            assign("admin", subject_principal("a-admin"), None),
            assign("viewer", subject_principal("b-viewer"), None),
            assign("editor", subject_principal("c-editor"), None),
            add_member("readers", subject_principal("e-group")),
            assign("viewer", group_principal("readers"), None),
            assign("viewer", subject_principal("f-locked"), None),
            assign("viewer", subject_principal("g-both"), None),
            assign("editor", subject_principal("g-both"), None),
        ],
    )
    .await;
    set_locked(&server, ACME, "f-locked", true).await;

    let page = |size: u32, token: &str| pb::ListSubjectsWithPermissionRequest {
        tenant: ACME.into(),
        permission: "document:read".into(),
        scope: "berlin".into(),
        page_size: size,
        page_token: token.into(),
        ..Default::default()
    };
    let full = server
        .access()
        .await
        .list_subjects_with_permission(page(0, ""))
        .await
        .unwrap()
        .into_inner();
    let holders: Vec<(String, bool)> = full
        .holders
        .iter()
        .map(|h| (h.subject.clone(), h.implied))
        .collect();
    assert_eq!(
        holders,
        [
            ("a-admin".into(), true),
            ("b-viewer".into(), false),
            ("c-editor".into(), true),
            ("e-group".into(), false),
            ("g-both".into(), false),
        ]
    );
    assert!(full.next_page_token.is_empty());
    assert!(full.holders.iter().all(|h| !h.sources.is_empty()));

    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let reply = server
            .access()
            .await
            .list_subjects_with_permission(page(2, &token))
            .await
            .unwrap()
            .into_inner();
        assert!(reply.holders.len() <= 2);
        paged.extend(reply.holders.into_iter().map(|h| h.subject));
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = holders.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(paged, expected);

    // Who may approve at berlin? Nobody: the admin's `*` is at the root and
    // approve does not inherit; at the root, the admin holds it (implied).
    let approve = |scope: &str| pb::ListSubjectsWithPermissionRequest {
        tenant: ACME.into(),
        permission: "approval:approve".into(),
        scope: scope.into(),
        ..Default::default()
    };
    let at_berlin = server
        .access()
        .await
        .list_subjects_with_permission(approve("berlin"))
        .await
        .unwrap()
        .into_inner();
    assert!(at_berlin.holders.is_empty(), "{at_berlin:?}");
    let at_root = server
        .access()
        .await
        .list_subjects_with_permission(approve(""))
        .await
        .unwrap()
        .into_inner();
    let at_root: Vec<(String, bool)> = at_root
        .holders
        .iter()
        .map(|h| (h.subject.clone(), h.implied))
        .collect();
    assert_eq!(at_root, [("a-admin".into(), true)]);
    server.stop().await;
}

/// A role class's `cannot_grant` masks what its roles grant, whatever their
/// definition says, and the explanation says MASKED_BY_CLASS.
#[tokio::test]
async fn role_class_masks_what_its_roles_grant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.toml");
    let schema = format!(
        "{}\n[roles.guest_plus]\ngrants = [\"document:read\", \"users:invite\"]\nclass = \"guest\"\n",
        authzd_core::schema::DEFAULT_SCHEMA
    );
    std::fs::write(&path, schema).unwrap();
    let server = TestServer::start_with_schema(&path).await;
    grant_role(&server, "gus", "guest_plus", "").await;
    assert!(check(&server, ACME, "gus", "document:read", "").await);
    assert!(!check(&server, ACME, "gus", "users:invite", "").await);
    let (allowed, why) = explain(&server, ACME, "gus", "users:invite", "").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), [pb::DenialReason::MaskedByClass], "{why:?}");
    assert!(why.denials[0].detail.contains("guest_plus"));
    server.stop().await;
}

/// A role whose `requires` the subject no longer meets stops counting
/// (docs/policy-model.md), explained as PREREQUISITE_MISSING, and counts again once
/// the prerequisite is back.
#[tokio::test]
async fn unmet_role_prerequisite_drops_the_role() {
    let server = TestServer::start().await;
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: ACME.into(),
            role: Some(pb::Role {
                requires: vec!["document:read".into()],
                ..custom_role("moderator", vec![grant("comment:manage", &[])])
            }),
            options: None,
        })
        .await
        .unwrap();
    create_subject(&server, ACME, "mo").await;
    manage(
        &server,
        ACME,
        vec![
            assign("viewer", subject_principal("mo"), None),
            assign("moderator", subject_principal("mo"), None),
        ],
    )
    .await;
    assert!(check(&server, ACME, "mo", "comment:manage", "").await);
    manage(
        &server,
        ACME,
        vec![unassign("viewer", subject_principal("mo"), None)],
    )
    .await;
    assert!(!check(&server, ACME, "mo", "comment:manage", "").await);
    let (_, why) = explain(&server, ACME, "mo", "comment:manage", "").await;
    assert!(
        reasons(&why).contains(&pb::DenialReason::PrerequisiteMissing),
        "{why:?}"
    );
    manage(
        &server,
        ACME,
        vec![assign("viewer", subject_principal("mo"), None)],
    )
    .await;
    assert!(check(&server, ACME, "mo", "comment:manage", "").await);
    server.stop().await;
}
