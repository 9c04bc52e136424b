//! Typed refusals over gRPC: every rule of the engine arrives as its status
//! code with a `google.rpc.ErrorInfo` (domain `authzd.dev`) whose reason is
//! the rule's stable code, decoded as a client decodes it; the actor rules'
//! refusals are in the audit trail with the same code, the model's rules
//! are not audited, and a token's refusal carries no code at all.

use authzd_testkit as common;
use common::*;

use std::sync::Arc;

use authzd_core::engine::{EngineError, Operation, Precondition, plan};
use authzd_core::model::{
    Assignment, AssignmentKey, Principal, Revision, Subject, SubjectKind, SubjectStatus, Target,
    TenantId, Timestamp,
};
use authzd_core::schema::{self, DEFAULT_SCHEMA};
use authzd_service::auth::Limits;
use pb::Precondition::{MustExist, MustNotExist};
use tonic_types::StatusExt;

/// The domain of every reason code.
const DOMAIN: &str = "authzd.dev";

/// Asserts that a call was refused with `code` carrying `reason` in an
/// ErrorInfo of authzd's domain; returns the status.
#[track_caller]
fn assert_reason<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    reason: &str,
) -> tonic::Status {
    let status = assert_status(result, code, "");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        (reason, DOMAIN),
        "{status:?}"
    );
    assert!(
        reason.len() <= 63
            && reason
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
        "ErrorInfo reasons are [A-Z0-9_]{{1,63}}: {reason}"
    );
    status
}

/// The trail's refusals, newest first.
async fn denied(server: &TestServer) -> Vec<pb::AuditEntry> {
    server
        .audit()
        .await
        .list_audit_entries(pb::ListAuditEntriesRequest {
            outcome: pb::AuditOutcome::Denied.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
}

/// Asserts that the trail holds exactly one refusal, of `status`, with
/// `reason`: the code and the message the caller got (which a directory
/// write's caller gets without the `operations[0]: ` the trail keeps).
async fn assert_audited(server: &TestServer, status: &tonic::Status, reason: &str) {
    let entries = denied(server).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].denial_reason, reason);
    assert!(
        entries[0].denial.ends_with(status.message()),
        "{:?} does not end with {:?}",
        entries[0].denial,
        status.message()
    );
}

/// Asserts that nothing was audited: the model's rules refuse the write
/// for anyone, so there is no actor to hold to account.
async fn assert_not_audited(server: &TestServer) {
    let entries = denied(server).await;
    assert!(entries.is_empty(), "{entries:?}");
}

fn acting(actor: &str) -> Option<pb::WriteOptions> {
    Some(pb::WriteOptions {
        actor: actor.into(),
        ..Default::default()
    })
}

/// A custom role request with a rank and a managing permission ("" for
/// none).
fn ranked_role(id: &str, grants: &[&str], rank: i32, managed_by: &str) -> pb::Role {
    pb::Role {
        rank,
        managed_by: managed_by.into(),
        ..custom_role(id, grants.iter().map(|g| grant(g, &[])).collect())
    }
}

async fn put_role(server: &TestServer, role: pb::Role) {
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: ACME.into(),
            role: Some(role),
            options: None,
        })
        .await
        .unwrap();
}

/// A server with alice and bob, and boss holding `users:admin` at rank
/// `rank` (through the custom role user-admin).
async fn with_boss(rank: i32) -> TestServer {
    let server = TestServer::start().await;
    for s in ["alice", "bob", "boss"] {
        create_subject(&server, ACME, s).await;
    }
    put_role(
        &server,
        ranked_role("user-admin", &["users:admin"], rank, "users:admin"),
    )
    .await;
    manage(
        &server,
        ACME,
        vec![assign("user-admin", subject_principal("boss"), None)],
    )
    .await;
    server
}

/// Assigns `role` to bob at the root on behalf of `actor`.
async fn assign_to_bob(
    server: &TestServer,
    actor: &str,
    role: &str,
) -> Result<tonic::Response<pb::ManageMembershipResponse>, tonic::Status> {
    try_manage(
        server,
        ACME,
        actor,
        vec![assign(role, subject_principal("bob"), None)],
    )
    .await
}

/// An actor without the role's `managed_by` permission, and one lacking
/// some permission when the role names none, are refused with NOT_MANAGER,
/// and each refusal is audited with it.
#[tokio::test]
async fn not_manager() {
    let server = with_boss(100).await;
    let refused = assign_to_bob(&server, "alice", "viewer").await;
    let status = assert_reason(refused, Code::PermissionDenied, "NOT_MANAGER");
    assert!(status.message().contains("needs users:admin"), "{status:?}");
    assert_audited(&server, &status, "NOT_MANAGER").await;

    put_role(&server, ranked_role("unmanaged", &["document:read"], 0, "")).await;
    let refused = assign_to_bob(&server, "boss", "unmanaged").await;
    let status = assert_reason(refused, Code::PermissionDenied, "NOT_MANAGER");
    assert!(
        status.message().contains("names no managed_by"),
        "{status:?}"
    );
    assert_eq!(denied(&server).await[0].denial_reason, "NOT_MANAGER");
    server.stop().await;
}

/// An actor may not assign a role ranked above its own highest rank there:
/// ROLE_RANK_TOO_HIGH, audited.
#[tokio::test]
async fn role_rank_too_high() {
    let server = with_boss(0).await;
    let refused = assign_to_bob(&server, "boss", "admin").await;
    let status = assert_reason(refused, Code::PermissionDenied, "ROLE_RANK_TOO_HIGH");
    assert!(status.message().contains("rank 100"), "{status:?}");
    assert_audited(&server, &status, "ROLE_RANK_TOO_HIGH").await;
    server.stop().await;
}

/// An actor may not assign a role granting what it does not hold itself:
/// GRANTS_NOT_HELD, audited.
#[tokio::test]
async fn grants_not_held() {
    let server = with_boss(50).await;
    let refused = assign_to_bob(&server, "boss", "editor").await;
    let status = assert_reason(refused, Code::PermissionDenied, "GRANTS_NOT_HELD");
    assert!(status.message().contains("document:edit"), "{status:?}");
    assert_audited(&server, &status, "GRANTS_NOT_HELD").await;
    server.stop().await;
}

/// Changing the tenant's settings on behalf of an actor who does not hold
/// every permission at the root is refused with NOT_ADMINISTRATOR, audited.
#[tokio::test]
async fn not_administrator() {
    let server = with_boss(50).await;
    let refused = server
        .directory()
        .await
        .update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant: ACME.into(),
            settings: Some(pb::TenantSettings {
                disabled_resources: vec!["comment".into()],
            }),
            options: acting("boss"),
        })
        .await;
    let status = assert_reason(refused, Code::PermissionDenied, "NOT_ADMINISTRATOR");
    assert!(
        status.message().contains("change the tenant's settings"),
        "{status:?}"
    );
    assert_audited(&server, &status, "NOT_ADMINISTRATOR").await;
    server.stop().await;
}

/// Adding a member to a group that holds a role the actor may not hand out
/// is refused with the code of the rule it breaks (here NOT_MANAGER), the
/// message saying it is through the group; audited with that code.
#[tokio::test]
async fn a_rule_broken_through_a_group_keeps_its_code() {
    let server = with_boss(100).await;
    create_group(&server, ACME, "editors").await;
    manage(
        &server,
        ACME,
        vec![assign("editor", group_principal("editors"), None)],
    )
    .await;
    let refused = try_manage(
        &server,
        ACME,
        "alice",
        vec![add_member("editors", subject_principal("bob"))],
    )
    .await;
    let status = assert_reason(refused, Code::PermissionDenied, "NOT_MANAGER");
    assert!(
        status
            .message()
            .contains("changing the members of group editors"),
        "{status:?}"
    );
    assert_audited(&server, &status, "NOT_MANAGER").await;
    server.stop().await;
}

/// The engine refuses an actor that is no subject of the tenant with
/// ACTOR_NOT_IN_TENANT, of the actor's class. The API refuses an unknown
/// actor before planning (NOT_FOUND, no reason), so this is proven on the
/// engine itself.
#[test]
fn actor_not_in_tenant() {
    let catalog = schema::load("default.toml", DEFAULT_SCHEMA).unwrap();
    let now = Timestamp(1);
    let engine = authzd_core::engine::Engine::new(Arc::new(catalog), Revision(0), vec![], now);
    let snapshot = engine.snapshot();
    let tenant: TenantId = ACME.parse().unwrap();
    let bob = Subject {
        id: "bob".parse().unwrap(),
        kind: SubjectKind::User,
        status: SubjectStatus::Active,
        attributes: Default::default(),
        home_scope: None,
    };
    let give = Assignment {
        key: AssignmentKey {
            role: "viewer".parse().unwrap(),
            principal: Principal::Subject(bob.id.clone()),
            target: Target::Scope(authzd_core::model::ScopeId::root()),
        },
        expires_at: None,
    };
    let operations = [
        Operation::CreateSubject(bob),
        Operation::AssignRole(give, Precondition::None),
    ];
    let ghost = "ghost".parse().unwrap();
    let refusal = plan(
        &snapshot.compiled,
        &tenant,
        Some(&ghost),
        None,
        &operations,
        now,
    )
    .unwrap_err();
    assert_eq!(refusal.index, 1);
    let EngineError::Violation(violation) = refusal.error else {
        panic!("not a violation: {:?}", refusal.error);
    };
    assert_eq!(violation.reason(), "ACTOR_NOT_IN_TENANT");
    assert!(violation.denies_actor());
    assert_eq!(
        violation.to_string(),
        "actor ghost does not exist in this tenant"
    );
}

/// Creating, changing or deleting the root scope is refused with
/// ROOT_SCOPE_FIXED; not audited.
#[tokio::test]
async fn root_scope_fixed() {
    let server = TestServer::start().await;
    let refused = server
        .directory()
        .await
        .delete_scope(pb::DeleteRequest {
            tenant: ACME.into(),
            id: "root".into(),
            options: None,
        })
        .await;
    assert_reason(refused, Code::FailedPrecondition, "ROOT_SCOPE_FIXED");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// A second role of an `at_most_one` class is refused with
/// ROLE_CLASS_EXCEEDED; not audited.
#[tokio::test]
async fn role_class_exceeded() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    de::create_class_role(
        &server,
        ACME,
        "visitor",
        "Visitor",
        "guest",
        &["comment:read"],
    )
    .await;
    let refused = de::manage_result(
        &server,
        ACME,
        vec![
            assign("guest", subject_principal("alice"), None),
            assign("visitor", subject_principal("alice"), None),
        ],
    )
    .await;
    let status = assert_reason(refused, Code::FailedPrecondition, "ROLE_CLASS_EXCEEDED");
    assert!(status.message().contains("class guest"), "{status:?}");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// The built-in schema with an `exactly_one` class "staff" and its role
/// "employee", and "signer", which requires `users:invite`.
fn staff_schema() -> String {
    format!(
        "{DEFAULT_SCHEMA}
[role_classes.staff]
per_subject = \"exactly_one\"

[roles.employee]
grants = [\"document:read\"]
class = \"staff\"

[roles.signer]
grants = [\"approval:approve\"]
requires = [\"users:invite\"]
"
    )
}

/// A server with `staff_schema` and alice.
async fn staff_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.toml");
    std::fs::write(&path, staff_schema()).unwrap();
    let server = TestServer::start_with_schema(&path).await;
    create_subject(&server, ACME, "alice").await;
    (server, dir)
}

/// Taking a subject's only role of an `exactly_one` class is refused with
/// ROLE_CLASS_REQUIRED; not audited.
#[tokio::test]
async fn role_class_required() {
    let (server, _dir) = staff_server().await;
    manage(
        &server,
        ACME,
        vec![assign("employee", subject_principal("alice"), None)],
    )
    .await;
    let refused = de::manage_result(
        &server,
        ACME,
        vec![unassign("employee", subject_principal("alice"), None)],
    )
    .await;
    assert_reason(refused, Code::FailedPrecondition, "ROLE_CLASS_REQUIRED");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// Giving a role to a subject lacking what it `requires` is refused with
/// PREREQUISITE_MISSING; not audited.
#[tokio::test]
async fn prerequisite_missing() {
    let (server, _dir) = staff_server().await;
    let refused = de::manage_result(
        &server,
        ACME,
        vec![assign("signer", subject_principal("alice"), None)],
    )
    .await;
    let status = assert_reason(refused, Code::FailedPrecondition, "PREREQUISITE_MISSING");
    assert!(status.message().contains("users:invite"), "{status:?}");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// Removing a role a subject is not assigned, while it holds what the role
/// gives through another (an administrator's `*`), is refused with
/// RIGHT_IMPLIED, with or without an actor; not audited.
#[tokio::test]
async fn right_implied() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    manage(
        &server,
        ACME,
        vec![assign("admin", subject_principal("alice"), None)],
    )
    .await;
    for actor in ["", "alice"] {
        let refused = try_manage(
            &server,
            ACME,
            actor,
            vec![unassign("viewer", subject_principal("alice"), None)],
        )
        .await;
        let status = assert_reason(refused, Code::FailedPrecondition, "RIGHT_IMPLIED");
        assert!(status.message().contains("role admin (*)"), "{status:?}");
    }
    assert_not_audited(&server).await;
    server.stop().await;
}

/// Changing or deleting a builtin role is refused with
/// BUILTIN_ROLE_IMMUTABLE; not audited.
#[tokio::test]
async fn builtin_role_immutable() {
    let server = TestServer::start().await;
    let mut d = server.directory().await;
    let deleted = d
        .delete_role(pb::DeleteRequest {
            tenant: ACME.into(),
            id: "viewer".into(),
            options: None,
        })
        .await;
    assert_reason(deleted, Code::FailedPrecondition, "BUILTIN_ROLE_IMMUTABLE");
    let updated = d
        .update_role(pb::UpdateRoleRequest {
            tenant: ACME.into(),
            role: Some(custom_role("viewer", vec![grant("document:edit", &[])])),
            options: None,
        })
        .await;
    assert_reason(updated, Code::FailedPrecondition, "BUILTIN_ROLE_IMMUTABLE");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// Nesting groups in a cycle is refused with GROUP_CYCLE; in a batch the
/// ErrorInfo also names the refused operation (list and index), as the
/// message does; not audited.
#[tokio::test]
async fn group_cycle() {
    let server = TestServer::start().await;
    for g in ["x", "y"] {
        create_group(&server, ACME, g).await;
    }
    let refused = de::manage_result(
        &server,
        ACME,
        vec![
            add_member("x", group_principal("y")),
            add_member("y", group_principal("x")),
        ],
    )
    .await;
    let status = assert_reason(refused, Code::FailedPrecondition, "GROUP_CYCLE");
    assert!(
        status.message().starts_with("operations[1]: "),
        "{status:?}"
    );
    let details = status.get_error_details();
    let metadata = &details.error_info().unwrap().metadata;
    assert_eq!(
        (metadata["list"].as_str(), metadata["index"].as_str()),
        ("operations", "1")
    );
    assert_not_audited(&server).await;
    server.stop().await;
}

/// Moving a scope under its own descendant is refused with SCOPE_CYCLE;
/// not audited.
#[tokio::test]
async fn scope_cycle() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_scope(&server, ACME, "de", "eu").await;
    let refused = server
        .directory()
        .await
        .update_scope(pb::UpdateScopeRequest {
            tenant: ACME.into(),
            scope: Some(pb::Scope {
                id: "eu".into(),
                r#type: "unit".into(),
                parent: "de".into(),
            }),
            options: None,
        })
        .await;
    assert_reason(refused, Code::FailedPrecondition, "SCOPE_CYCLE");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// Deleting a scope that has a child is refused with SCOPE_IN_USE; not
/// audited.
#[tokio::test]
async fn scope_in_use() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_scope(&server, ACME, "de", "eu").await;
    let refused = server
        .directory()
        .await
        .delete_scope(pb::DeleteRequest {
            tenant: ACME.into(),
            id: "eu".into(),
            options: None,
        })
        .await;
    let status = assert_reason(refused, Code::FailedPrecondition, "SCOPE_IN_USE");
    assert!(
        status.message().contains("scope de is its child"),
        "{status:?}"
    );
    assert_not_audited(&server).await;
    server.stop().await;
}

/// A MUST_EXIST precondition on what does not exist is refused with
/// MUST_EXIST_FAILED; not audited.
#[tokio::test]
async fn must_exist_failed() {
    let server = seeded_server().await;
    let refused = de::manage_result(
        &server,
        ACME,
        vec![with_precondition(
            remove_member("g", subject_principal("alice")),
            MustExist,
        )],
    )
    .await;
    assert_reason(refused, Code::FailedPrecondition, "MUST_EXIST_FAILED");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// A MUST_NOT_EXIST precondition on what exists is refused with
/// MUST_NOT_EXIST_FAILED; not audited.
#[tokio::test]
async fn must_not_exist_failed() {
    let server = seeded_server().await;
    let op = || assign("viewer", subject_principal("alice"), scope_target("eu"));
    manage(&server, ACME, vec![op()]).await;
    let refused =
        de::manage_result(&server, ACME, vec![with_precondition(op(), MustNotExist)]).await;
    assert_reason(refused, Code::FailedPrecondition, "MUST_NOT_EXIST_FAILED");
    assert_not_audited(&server).await;
    server.stop().await;
}

/// A schema lacking a permission a custom role uses is refused with
/// SCHEMA_LACKS_STORED_DATA, in a dry run too; not audited.
#[tokio::test]
async fn schema_lacks_stored_data() {
    let server = TestServer::start().await;
    create_role(&server, ACME, "commenter", vec![grant("comment:edit", &[])]).await;
    let without = DEFAULT_SCHEMA
        .replace(
            "[resources.comment]\nlevels = [\"read\", \"edit\", \"manage\", \"admin\"]\n",
            "",
        )
        .replace("follows = [\"document\"]\n", "");
    assert!(
        without != DEFAULT_SCHEMA,
        "the built-in schema changed shape"
    );
    for dry_run in [true, false] {
        let refused = server
            .schema()
            .await
            .write_schema(pb::WriteSchemaRequest {
                schema: without.clone(),
                dry_run,
                ..Default::default()
            })
            .await;
        let status = assert_reason(
            refused,
            Code::FailedPrecondition,
            "SCHEMA_LACKS_STORED_DATA",
        );
        assert!(status.message().contains("commenter"), "{status:?}");
    }
    assert_not_audited(&server).await;
    server.stop().await;
}

/// A refusal by the caller's token (not the engine) carries no reason
/// code: its status has no details, and its audit entry an empty
/// `denial_reason`.
#[tokio::test]
async fn token_refusals_carry_no_reason() {
    let tokens = token_entry("reader", "read", "", "s-read");
    let server = TestServer::start_with_tokens(&tokens, Limits::default()).await;
    create_subject(&server, ACME, "alice").await;
    let mut reader = server.clients_as("s-read").await;
    let refused = reader
        .membership
        .manage_membership(batch(
            ACME,
            vec![assign("viewer", subject_principal("alice"), None)],
            acting("alice"),
        ))
        .await;
    let status = assert_status(refused, Code::PermissionDenied, "needs write");
    assert!(status.details().is_empty(), "{status:?}");
    let entries = denied(&server).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (
            entries[0].denial.as_str(),
            entries[0].denial_reason.as_str()
        ),
        (status.message(), "")
    );
    server.stop().await;
}
