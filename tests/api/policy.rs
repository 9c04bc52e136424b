//! The policy model over gRPC: prerequisites, expiring assignments (with a
//! clock the test moves), condition groups used as populations.

use authzd_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use authzd_core::model::Timestamp;
use authzd_server::api::pb;
use authzd_service::clock::ManualClock;
use common::*;
use tonic::Code;

const T: &str = "acme";

async fn explain(
    server: &TestServer,
    subject: &str,
    permission: &str,
    scope: &str,
    target: &str,
) -> pb::CheckAccessResponse {
    server
        .access()
        .await
        .check_access(pb::CheckAccessRequest {
            tenant: T.into(),
            subject: subject.into(),
            permission: permission.into(),
            scope: scope.into(),
            target_subject: target.into(),
            explain: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn reasons(r: &pb::CheckAccessResponse) -> Vec<pb::DenialReason> {
    r.explanation
        .as_ref()
        .unwrap()
        .denials
        .iter()
        .map(|d| pb::DenialReason::try_from(d.reason).unwrap())
        .collect()
}

async fn create_custom_role(server: &TestServer, id: &str, grants: &[&str], requires: &[&str]) {
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: T.into(),
            role: Some(pb::Role {
                id: id.into(),
                grants: grants
                    .iter()
                    .map(|g| pb::Grant {
                        permission: g.to_string(),
                        scopes: vec![],
                    })
                    .collect(),
                requires: requires.iter().map(|r| r.to_string()).collect(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
}

async fn set_attribute(server: &TestServer, subject: &str, key: &str, value: &str) {
    server
        .directory()
        .await
        .update_subject(pb::UpdateSubjectRequest {
            tenant: T.into(),
            subject: Some(pb::Subject {
                id: subject.into(),
                attributes: [(key.to_string(), value.to_string())].into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["attributes".into()],
            }),
            options: None,
        })
        .await
        .unwrap();
}

/// A role with a prerequisite cannot be given to a subject lacking it (the
/// refusal names the permission); once given, it stops counting as soon as
/// the prerequisite is lost, and explain says so.
#[tokio::test]
async fn prerequisites_gate_assignment_and_evaluation() {
    let server = TestServer::start().await;
    create_scope(&server, T, "eu", "").await;
    create_subject(&server, T, "alice").await;
    create_custom_role(&server, "signer", &["approval:approve"], &["users:invite"]).await;

    let refused = server
        .membership()
        .await
        .manage_membership(pb::ManageMembershipRequest {
            tenant: T.into(),
            operations: vec![assign(
                "signer",
                subject_principal("alice"),
                scope_target("eu"),
            )],
            options: None,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("users:invite"),
        "{}",
        refused.message()
    );

    // In one batch: first the prerequisite (manager grants users:invite), then the role.
    manage(
        &server,
        T,
        vec![
            assign("manager", subject_principal("alice"), scope_target("eu")),
            assign("signer", subject_principal("alice"), scope_target("eu")),
        ],
    )
    .await;
    assert!(check(&server, T, "alice", "approval:approve", "eu").await);

    manage(
        &server,
        T,
        vec![unassign(
            "manager",
            subject_principal("alice"),
            scope_target("eu"),
        )],
    )
    .await;
    let denied = explain(&server, "alice", "approval:approve", "eu", "").await;
    assert!(!denied.allowed);
    assert!(
        reasons(&denied).contains(&pb::DenialReason::PrerequisiteMissing),
        "{denied:?}"
    );
    server.stop().await;
}

/// An assignment with an expiry grants until that instant and not after;
/// explain then names the expiry. Time moves by the test's clock, not by sleeping.
#[tokio::test]
async fn expiring_assignments_stop_counting_at_their_instant() {
    let start = Timestamp(1_800_000_000_000_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let server = TestServer::start_with_clock(None, clock.clone()).await;
    create_subject(&server, T, "bob").await;
    let mut op = assign("editor", subject_principal("bob"), None);
    if let Some(pb::membership_operation::Operation::AssignRole(a)) = &mut op.operation {
        a.expires_at = Some(prost_types::Timestamp {
            seconds: start.0 / 1_000_000_000 + 3600,
            nanos: 0,
        });
    }
    manage(&server, T, vec![op]).await;
    assert!(check(&server, T, "bob", "document:edit", "").await);

    clock.advance(Duration::from_secs(3599));
    assert!(check(&server, T, "bob", "document:edit", "").await);
    let mut feed = watch(&server, T, revision(&server).await, "").await;
    clock.advance(Duration::from_secs(1));
    // The server's expiry timer removes the assignment at that instant
    // (a role_expired change); before and after it, explain names the expiry.
    let removal = next_whole_revision(&mut feed).await;
    assert!(
        removal
            .changes
            .iter()
            .any(|c| matches!(c.change, Some(pb::change::Change::RoleExpired(_)))),
        "{removal:?}"
    );
    let denied = explain(&server, "bob", "document:edit", "", "").await;
    assert!(!denied.allowed);
    assert_eq!(reasons(&denied), [pb::DenialReason::AssignmentExpired]);
    assert!(
        details(denied.explanation.as_ref().unwrap()).contains("has expired"),
        "{denied:?}"
    );
    server.stop().await;
}

/// A condition group used as a population: the right over a target subject
/// holds exactly while the target satisfies the condition, and explain on
/// the denial says the target is outside the population.
#[tokio::test]
async fn condition_population_follows_attributes() {
    let server = TestServer::start().await;
    for s in ["svc", "emp"] {
        create_subject(&server, T, s).await;
    }
    set_attribute(&server, "emp", "lifecycle_status", "employed").await;
    server
        .directory()
        .await
        .create_group(pb::CreateGroupRequest {
            tenant: T.into(),
            group: Some(pb::Group {
                id: "current_staff".into(),
                title: "Current staff".into(),
                condition: r#"attributes.lifecycle_status in ["employed", "leave"]"#.into(),
            }),
            options: None,
        })
        .await
        .unwrap();
    manage(
        &server,
        T,
        vec![assign(
            "viewer",
            subject_principal("svc"),
            population_target("current_staff"),
        )],
    )
    .await;

    assert!(
        explain(&server, "svc", "document:read", "", "emp")
            .await
            .allowed
    );
    set_attribute(&server, "emp", "lifecycle_status", "resigned").await;
    let denied = explain(&server, "svc", "document:read", "", "emp").await;
    assert!(!denied.allowed);
    assert!(
        reasons(&denied).contains(&pb::DenialReason::OutsidePopulation),
        "{denied:?}"
    );
    let detail = &denied.explanation.as_ref().unwrap().denials[0].detail;
    assert!(
        detail.contains("lifecycle_status in")
            && detail.contains(r#"lifecycle_status = "resigned""#),
        "the denial says why the target is outside: {detail}"
    );
    set_attribute(&server, "emp", "lifecycle_status", "leave").await;
    assert!(
        explain(&server, "svc", "document:read", "", "emp")
            .await
            .allowed
    );
    server.stop().await;
}

/// A condition that does not parse is refused with INVALID_ARGUMENT naming
/// the field and the position.
#[tokio::test]
async fn invalid_condition_is_refused_with_position() {
    let server = TestServer::start().await;
    let e = server
        .directory()
        .await
        .create_group(pb::CreateGroupRequest {
            tenant: T.into(),
            group: Some(pb::Group {
                id: "g".into(),
                title: String::new(),
                condition: r#"attributes.x == "#.into(),
            }),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("group.condition") && e.message().contains("column"),
        "{}",
        e.message()
    );
    server.stop().await;
}

fn as_actor(actor: &str, operations: Vec<pb::MembershipOperation>) -> pb::ManageMembershipRequest {
    pb::ManageMembershipRequest {
        tenant: T.into(),
        operations,
        options: Some(pb::WriteOptions {
            actor: actor.into(),
            ..Default::default()
        }),
        dry_run: false,
    }
}

/// Seeds a manager (users:admin via a custom role at rank 30, plus the
/// builtin manager role) and a plain member.
async fn seed_actors(server: &TestServer) {
    for s in ["mgr", "pat"] {
        create_subject(server, T, s).await;
    }
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: T.into(),
            role: Some(pb::Role {
                id: "people_admin".into(),
                grants: vec![pb::Grant {
                    permission: "users:admin".into(),
                    scopes: vec![],
                }],
                rank: 30,
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
    manage(
        server,
        T,
        vec![
            assign("people_admin", subject_principal("mgr"), None),
            assign("manager", subject_principal("mgr"), None),
        ],
    )
    .await;
}

/// An actor may not grant permissions it does not hold itself, even through
/// a role whose rank it may give: the refusal names what it lacks.
#[tokio::test]
async fn actors_cannot_escalate_through_roles() {
    let server = TestServer::start().await;
    seed_actors(&server).await;
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: T.into(),
            role: Some(pb::Role {
                id: "owner".into(),
                grants: vec![pb::Grant {
                    permission: "document:admin".into(),
                    scopes: vec![],
                }],
                rank: 10,
                managed_by: "users:admin".into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
    let mut m = server.membership().await;
    let e = m
        .manage_membership(as_actor(
            "mgr",
            vec![assign("owner", subject_principal("pat"), None)],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("document:admin"), "{}", e.message());
    // Within its own rights it may: editor (rank 20, document:edit ≤ manage).
    m.manage_membership(as_actor(
        "mgr",
        vec![assign("editor", subject_principal("pat"), None)],
    ))
    .await
    .unwrap();
    assert!(check(&server, T, "pat", "document:edit", "").await);
    server.stop().await;
}

/// Subjects may remove themselves from a self_removable role without any
/// management right, but not from one that is not self_removable.
#[tokio::test]
async fn self_removal_needs_self_removable() {
    let server = TestServer::start().await;
    seed_actors(&server).await;
    manage(
        &server,
        T,
        vec![
            assign("viewer", subject_principal("pat"), None),
            assign("approver", subject_principal("pat"), None),
        ],
    )
    .await;
    let mut m = server.membership().await;
    m.manage_membership(as_actor(
        "pat",
        vec![unassign("viewer", subject_principal("pat"), None)],
    ))
    .await
    .unwrap();
    assert!(!check(&server, T, "pat", "document:read", "").await);
    let e = m
        .manage_membership(as_actor(
            "pat",
            vec![unassign("approver", subject_principal("pat"), None)],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("users:admin"), "{}", e.message());
    server.stop().await;
}

/// Adding someone to a group gives them the group's roles, so the actor must
/// be allowed to give those roles.
#[tokio::test]
async fn group_membership_is_governed_by_the_groups_roles() {
    let server = TestServer::start().await;
    seed_actors(&server).await;
    create_group(&server, T, "admins").await;
    manage(
        &server,
        T,
        vec![assign("admin", group_principal("admins"), None)],
    )
    .await;
    let e = server
        .membership()
        .await
        .manage_membership(as_actor(
            "mgr",
            vec![add_member("admins", subject_principal("pat"))],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("group admins") && e.message().contains("role admin"),
        "{}",
        e.message()
    );
    assert!(!check(&server, T, "pat", "users:admin", "").await);
    server.stop().await;
}

/// Removing a role a subject is not assigned, while it holds everything the
/// role gives through another role (an administrator's `*`), is refused
/// with a message naming where the right comes from.
#[tokio::test]
async fn removing_an_implied_right_is_refused_with_its_source() {
    let server = TestServer::start().await;
    create_subject(&server, T, "root_admin").await;
    manage(
        &server,
        T,
        vec![assign("admin", subject_principal("root_admin"), None)],
    )
    .await;
    let e = server
        .membership()
        .await
        .manage_membership(pb::ManageMembershipRequest {
            tenant: T.into(),
            operations: vec![unassign("viewer", subject_principal("root_admin"), None)],
            options: None,
            dry_run: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("role admin (*)"), "{}", e.message());
    // Removing something neither assigned nor held is still a no-op.
    create_subject(&server, T, "nobody").await;
    manage(
        &server,
        T,
        vec![unassign("viewer", subject_principal("nobody"), None)],
    )
    .await;
    server.stop().await;
}

/// Replacing a set of principals' roles at a target is atomic and exact:
/// roles outside the set go, missing ones come, other targets are untouched;
/// removing principals from a scope removes what they hold there and below.
#[tokio::test]
async fn replace_roles_and_remove_from_target_in_bulk() {
    let server = TestServer::start().await;
    create_scope(&server, T, "app1", "").await;
    create_scope(&server, T, "deck", "app1").await;
    create_scope(&server, T, "app2", "").await;
    for s in ["u1", "u2"] {
        create_subject(&server, T, s).await;
    }
    let both = || vec![subject_principal("u1"), subject_principal("u2")];
    manage(
        &server,
        T,
        vec![
            assign("viewer", subject_principal("u1"), scope_target("app1")),
            assign("approver", subject_principal("u1"), scope_target("deck")),
            assign("editor", subject_principal("u2"), scope_target("app2")),
        ],
    )
    .await;
    manage(
        &server,
        T,
        vec![replace_roles(
            both(),
            scope_target("app1"),
            &["editor", "approver"],
        )],
    )
    .await;
    for u in ["u1", "u2"] {
        assert!(
            check(&server, T, u, "document:edit", "app1").await,
            "{u} edits app1"
        );
        assert!(
            check(&server, T, u, "approval:approve", "app1").await,
            "{u} approves app1"
        );
    }
    assert!(
        check(&server, T, "u2", "document:edit", "app2").await,
        "other targets untouched"
    );

    manage(
        &server,
        T,
        vec![remove_from_target(both(), scope_target("app1"))],
    )
    .await;
    for u in ["u1", "u2"] {
        assert!(
            !check(&server, T, u, "document:read", "app1").await,
            "{u} left app1"
        );
        assert!(
            !check(&server, T, u, "approval:approve", "deck").await,
            "{u} left app1's deck"
        );
    }
    assert!(
        check(&server, T, "u2", "document:edit", "app2").await,
        "app2 untouched"
    );
    server.stop().await;
}

/// Explain on a deny names the groups whose roles would grant the
/// permission there and that the subject is not in.
#[tokio::test]
async fn explain_names_groups_the_subject_is_not_in() {
    let server = TestServer::start().await;
    create_subject(&server, T, "outsider").await;
    create_group(&server, T, "writers").await;
    manage(
        &server,
        T,
        vec![assign("editor", group_principal("writers"), None)],
    )
    .await;
    let denied = explain(&server, "outsider", "document:edit", "", "").await;
    assert!(!denied.allowed);
    assert_eq!(reasons(&denied), vec![pb::DenialReason::NotAMember]);
    let detail = &denied.explanation.as_ref().unwrap().denials[0].detail;
    assert!(
        detail.contains("group writers") && detail.contains("role editor"),
        "{detail}"
    );
    server.stop().await;
}

fn acting(actor: &str) -> Option<pb::WriteOptions> {
    Some(pb::WriteOptions {
        actor: actor.into(),
        ..Default::default()
    })
}

fn subject_update(
    id: &str,
    status: pb::SubjectStatus,
    attrs: &[(&str, &str)],
    path: &str,
) -> pb::UpdateSubjectRequest {
    pb::UpdateSubjectRequest {
        tenant: T.into(),
        subject: Some(pb::Subject {
            id: id.into(),
            status: status as i32,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home_scope: if path == "home_scope" {
                "unit-1".into()
            } else {
                String::new()
            },
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![path.into()],
        }),
        options: None,
    }
}

/// Directory writes made on behalf of an actor follow the actor rules
/// wherever they change access: deleting a subject, a group or a custom
/// role removes what went with it (each removal a revocation); locking a
/// subject or changing its attributes takes or gives what it holds and the
/// condition groups it joins; a group's new condition changes its members;
/// moving a scope or a home scope, and tenant settings, need every
/// permission there. A plain member is refused each of these, nothing
/// changes, and a manager may do those within its rights.
#[tokio::test]
async fn directory_writes_with_an_actor_follow_the_actor_rules() {
    let server = TestServer::start().await;
    seed_actors(&server).await;
    create_scope(&server, T, "unit-1", "").await;
    create_group(&server, T, "admins").await;
    let mut d = server.directory().await;
    d.create_group(pb::CreateGroupRequest {
        tenant: T.into(),
        group: Some(pb::Group {
            id: "it".into(),
            title: "IT".into(),
            condition: r#"attributes.dept == "it""#.into(),
        }),
        options: None,
    })
    .await
    .unwrap();
    manage(
        &server,
        T,
        vec![
            assign("admin", group_principal("admins"), None),
            assign("admin", group_principal("it"), None),
            assign("viewer", subject_principal("pat"), None),
        ],
    )
    .await;
    let before = revision(&server).await;

    let delete = |id: &str| pb::DeleteRequest {
        tenant: T.into(),
        id: id.into(),
        options: acting("pat"),
    };
    let with_pat = |mut r: pb::UpdateSubjectRequest| {
        r.options = acting("pat");
        r
    };
    let active = pb::SubjectStatus::Active;
    let refusals = [
        (
            "delete subject mgr",
            d.delete_subject(delete("mgr")).await.map(drop),
        ),
        (
            "delete group admins",
            d.delete_group(delete("admins")).await.map(drop),
        ),
        (
            "delete role people_admin",
            d.delete_role(delete("people_admin")).await.map(drop),
        ),
        (
            "lock mgr",
            d.update_subject(with_pat(subject_update(
                "mgr",
                pb::SubjectStatus::Locked,
                &[],
                "status",
            )))
            .await
            .map(drop),
        ),
        (
            "join it by attributes",
            d.update_subject(with_pat(subject_update(
                "pat",
                active,
                &[("dept", "it")],
                "attributes",
            )))
            .await
            .map(drop),
        ),
        (
            "move home scope",
            d.update_subject(with_pat(subject_update("pat", active, &[], "home_scope")))
                .await
                .map(drop),
        ),
        (
            "widen the condition of it",
            d.update_group(pb::UpdateGroupRequest {
                tenant: T.into(),
                group: Some(pb::Group {
                    id: "it".into(),
                    title: "IT".into(),
                    condition: "true".into(),
                }),
                options: acting("pat"),
                ..Default::default()
            })
            .await
            .map(drop),
        ),
        (
            "retype a scope",
            d.update_scope(pb::UpdateScopeRequest {
                tenant: T.into(),
                scope: Some(pb::Scope {
                    id: "unit-1".into(),
                    r#type: "region".into(),
                    parent: String::new(),
                }),
                options: acting("pat"),
            })
            .await
            .map(drop),
        ),
        (
            "tenant settings",
            d.update_tenant_settings(pb::UpdateTenantSettingsRequest {
                tenant: T.into(),
                settings: Some(pb::TenantSettings::default()),
                options: acting("pat"),
            })
            .await
            .map(drop),
        ),
    ];
    for (what, refused) in refusals {
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
        assert!(
            status.message().contains("actor pat may not"),
            "{what}: {}",
            status.message()
        );
    }
    assert_eq!(revision(&server).await, before, "nothing was written");
    assert!(!check(&server, T, "pat", "users:admin", "").await);
    assert!(check(&server, T, "mgr", "users:admin", "").await);

    // The manager holds users:admin, which manages viewer: it may lock pat
    // and delete it; moving a scope needs more than it has.
    d.update_subject(pb::UpdateSubjectRequest {
        options: acting("mgr"),
        ..subject_update("pat", pb::SubjectStatus::Locked, &[], "status")
    })
    .await
    .unwrap();
    assert!(!check(&server, T, "pat", "document:read", "").await);
    d.delete_subject(pb::DeleteRequest {
        options: acting("mgr"),
        ..delete("pat")
    })
    .await
    .unwrap();
    let moved = d
        .update_scope(pb::UpdateScopeRequest {
            tenant: T.into(),
            scope: Some(pb::Scope {
                id: "unit-1".into(),
                r#type: "region".into(),
                parent: String::new(),
            }),
            options: acting("mgr"),
        })
        .await;
    assert_status(
        moved,
        Code::PermissionDenied,
        "needs every permission at scope root",
    );
    server.stop().await;
}
