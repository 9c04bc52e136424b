//! Scenario C, `app-roles` (its schema, seed and README under `examples/`): an automation platform
//! whose roles are assigned per app, with builtin and custom roles, bulk
//! replace and removal, self-removal and tenant administrators. Starts the
//! real server with `examples/app-roles/schema.toml` and proves every rule
//! over gRPC.

use authzd_testkit as common;

use std::path::Path;

use common::*;
use pb::change::Change as C;

const T: &str = "acme_auto";
const SCHEMA: &str = "examples/app-roles/schema.toml";

/// Every permission of the schema.
const ALL: [&str; 16] = [
    "app:read",
    "app:edit",
    "presentation:read",
    "presentation:edit",
    "vault:read",
    "vault:manage",
    "config:read",
    "config:manage",
    "bots:read",
    "bots:add_to_cluster",
    "users:read",
    "users:add_business_users",
    "users:assign_roles",
    "import_export:import",
    "import_export:export",
    "tenant:admin",
];

/// A custom role: `grants` as (permission, pinned presentations), managed
/// by `users:assign_roles`, rank 10, self-removable.
async fn create_custom(server: &TestServer, id: &str, grants: &[(&str, &[&str])]) {
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: T.into(),
            role: Some(pb::Role {
                id: id.into(),
                title: id.into(),
                grants: grants.iter().map(|(p, s)| grant(p, s)).collect(),
                managed_by: "users:assign_roles".into(),
                rank: 10,
                self_removable: true,
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
}

fn at_app(role: &str, subject: &str, app: &str) -> pb::MembershipOperation {
    assign(role, subject_principal(subject), scope_target(app))
}

fn users(ids: &[&str]) -> Vec<Option<pb::Principal>> {
    ids.iter().map(|id| subject_principal(id)).collect()
}

/// The demo tenant of the example's seed:
///
/// - app `invoices` with presentations `invoice_requests`,
///   `invoice_approvals`, `invoice_reports`; app `hr_onboarding` with
///   presentation `onboarding_forms`;
/// - custom roles `approver` (app:read, presentation:edit pinned to
///   invoice_approvals) and `requester` (app:read, presentation:edit pinned
///   to invoice_requests, presentation:read pinned to invoice_approvals);
/// - `ada` tenant_admin; in `invoices`: `dan` designer, `rita`
///   release_manager + business_user, `sam` support, `bea` business_user,
///   `alex` approver, `rhea` requester; in `hr_onboarding`: `dan`
///   business_user, `rita` support.
async fn seed() -> TestServer {
    let server = TestServer::start_with_schema(Path::new(SCHEMA)).await;
    for (id, kind, parent) in [
        ("invoices", "app", ""),
        ("invoice_requests", "presentation", "invoices"),
        ("invoice_approvals", "presentation", "invoices"),
        ("invoice_reports", "presentation", "invoices"),
        ("hr_onboarding", "app", ""),
        ("onboarding_forms", "presentation", "hr_onboarding"),
    ] {
        create_typed_scope(&server, T, id, kind, parent).await;
    }
    for id in ["ada", "dan", "rita", "sam", "bea", "alex", "rhea"] {
        create_subject(&server, T, id).await;
    }
    create_custom(
        &server,
        "approver",
        &[
            ("app:read", &[]),
            ("presentation:edit", &["invoice_approvals"]),
        ],
    )
    .await;
    create_custom(
        &server,
        "requester",
        &[
            ("app:read", &[]),
            ("presentation:edit", &["invoice_requests"]),
            ("presentation:read", &["invoice_approvals"]),
        ],
    )
    .await;
    manage(
        &server,
        T,
        vec![
            assign("tenant_admin", subject_principal("ada"), None),
            at_app("designer", "dan", "invoices"),
            at_app("release_manager", "rita", "invoices"),
            at_app("business_user", "rita", "invoices"),
            at_app("support", "sam", "invoices"),
            at_app("business_user", "bea", "invoices"),
            at_app("approver", "alex", "invoices"),
            at_app("requester", "rhea", "invoices"),
            at_app("business_user", "dan", "hr_onboarding"),
            at_app("support", "rita", "hr_onboarding"),
        ],
    )
    .await;
    server
}

/// A subject's effective permissions at a scope, sorted.
async fn effective(server: &TestServer, subject: &str, scope: &str) -> Vec<String> {
    let reply = server
        .access()
        .await
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: T.into(),
            subject: subject.into(),
            scope: scope.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<String> = reply
        .targets
        .iter()
        .flat_map(|t| t.permissions.iter().map(|p| p.permission.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The roles a subject holds at exactly `app`, sorted.
async fn roles_at(server: &TestServer, subject: &str, app: &str) -> Vec<String> {
    let mut roles: Vec<String> = server
        .directory()
        .await
        .list_assignments(pb::ListAssignmentsRequest {
            tenant: T.into(),
            principal: subject_principal(subject),
            target: scope_target(app),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .assignments
        .into_iter()
        .map(|a| a.role)
        .collect();
    roles.sort();
    roles
}

/// Bullet 1: roles are assigned per app; one user holds several roles in
/// one app (their rights add up there) and different roles in another, and
/// nothing leaks from one app to the other.
#[tokio::test]
async fn roles_are_per_app_and_several_per_user() {
    let server = seed().await;
    assert_eq!(
        roles_at(&server, "rita", "invoices").await,
        vec!["business_user", "release_manager"]
    );
    assert_eq!(
        roles_at(&server, "rita", "hr_onboarding").await,
        vec!["support"]
    );
    // In invoices: release manager and business user together.
    assert!(check(&server, T, "rita", "vault:manage", "invoices").await);
    assert!(check(&server, T, "rita", "presentation:edit", "invoice_reports").await);
    // In hr_onboarding: support only.
    assert!(!check(&server, T, "rita", "vault:manage", "hr_onboarding").await);
    assert!(check(&server, T, "rita", "vault:read", "hr_onboarding").await);
    assert!(!check(&server, T, "rita", "presentation:edit", "onboarding_forms").await);
    // dan designs invoices and is a business user of hr_onboarding.
    assert!(check(&server, T, "dan", "app:edit", "invoices").await);
    assert!(!check(&server, T, "dan", "app:edit", "hr_onboarding").await);
    assert!(check(&server, T, "dan", "presentation:edit", "onboarding_forms").await);
    // No app role holds at the tenant root.
    for user in ["dan", "rita", "sam", "bea"] {
        assert!(
            !check(&server, T, user, "app:read", "").await,
            "{user} at root"
        );
    }
    // Someone with no role in hr_onboarding sees nothing of it, and explain
    // says where the grant is.
    let (allowed, why) = explain(&server, T, "sam", "app:read", "hr_onboarding").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), vec![pb::DenialReason::OutOfScope]);
    assert!(
        details(&why).contains(
            "app:read is granted at scope invoices, which does not cover scope hr_onboarding"
        ),
        "{why:?}"
    );
    server.stop().await;
}

/// Bullet 2: each builtin role gives exactly its privileges, at the app and
/// at every presentation in it, and nothing in another app: Designer (edit
/// the app, assign roles, import/export, and everything a Business User
/// has), Release Manager (vault and configuration management, add business
/// users, import/export, add a bot to a cluster, read-only on the rest),
/// Support (add business users, add a bot to a cluster, read-only on the
/// rest), Business User (view and edit all presentations).
#[tokio::test]
async fn builtin_roles_carry_exactly_their_privileges() {
    let server = seed().await;
    create_typed_scope(&server, T, "sandbox", "app", "").await;
    create_typed_scope(&server, T, "sandbox_home", "presentation", "sandbox").await;
    let business_user = sorted(&["app:read", "presentation:read", "presentation:edit"]);
    let cases: [(&str, Vec<String>); 4] = [
        (
            "designer",
            sorted(&[
                "app:read",
                "app:edit",
                "users:read",
                "users:add_business_users",
                "users:assign_roles",
                "import_export:import",
                "import_export:export",
                "presentation:read",
                "presentation:edit",
            ]),
        ),
        (
            "release_manager",
            sorted(&[
                "vault:read",
                "vault:manage",
                "config:read",
                "config:manage",
                "users:read",
                "users:add_business_users",
                "import_export:import",
                "import_export:export",
                "bots:read",
                "bots:add_to_cluster",
                "app:read",
                "presentation:read",
            ]),
        ),
        (
            "support",
            sorted(&[
                "users:read",
                "users:add_business_users",
                "bots:read",
                "bots:add_to_cluster",
                "app:read",
                "presentation:read",
                "vault:read",
                "config:read",
            ]),
        ),
        ("business_user", business_user.clone()),
    ];
    for (role, expected) in &cases {
        let user = format!("only_{role}");
        create_subject(&server, T, &user).await;
        manage(&server, T, vec![at_app(role, &user, "sandbox")]).await;
        assert_eq!(
            &effective(&server, &user, "sandbox").await,
            expected,
            "{role} at the app"
        );
        assert_eq!(
            &effective(&server, &user, "sandbox_home").await,
            expected,
            "{role} at a presentation"
        );
        assert!(
            effective(&server, &user, "invoices").await.is_empty(),
            "{role} elsewhere"
        );
        for permission in ALL {
            assert_eq!(
                check(&server, T, &user, permission, "sandbox_home").await,
                expected.iter().any(|p| p == permission),
                "{role} {permission}"
            );
        }
    }
    let designer = &cases[0].1;
    assert!(
        business_user.iter().all(|p| designer.contains(p)),
        "a designer has everything a business user has"
    );
    server.stop().await;
}

/// Bullet 2, "assign roles" and "add business users", as far as authzd's
/// no-escalation rule allows (see the ignored test below): a designer
/// assigns business users and custom roles in its app (actor rules), but
/// not in an app where it is only a business user; support may not make
/// designers; a business user may not add anyone. Refusals are
/// PERMISSION_DENIED naming the permission missing. Removing a business
/// user needs only `managed_by`, so support may.
#[tokio::test]
async fn designers_assign_roles_in_their_app() {
    let server = seed().await;
    create_subject(&server, T, "newcomer").await;
    try_manage(
        &server,
        T,
        "dan",
        vec![
            at_app("business_user", "newcomer", "invoices"),
            at_app("approver", "newcomer", "invoices"),
            at_app("designer", "newcomer", "invoices"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        roles_at(&server, "newcomer", "invoices").await,
        vec!["approver", "business_user", "designer"]
    );

    let refused = try_manage(
        &server,
        T,
        "dan",
        vec![at_app("business_user", "newcomer", "hr_onboarding")],
    )
    .await;
    assert_status(
        refused,
        Code::PermissionDenied,
        "needs users:add_business_users",
    );
    let refused = try_manage(
        &server,
        T,
        "sam",
        vec![at_app("designer", "bea", "invoices")],
    )
    .await;
    assert_status(refused, Code::PermissionDenied, "needs users:assign_roles");
    let refused = try_manage(
        &server,
        T,
        "bea",
        vec![at_app("business_user", "newcomer", "hr_onboarding")],
    )
    .await;
    assert_status(
        refused,
        Code::PermissionDenied,
        "needs users:add_business_users",
    );
    // Removing someone else's role needs the role's managed_by too.
    let refused = try_manage(
        &server,
        T,
        "sam",
        vec![unassign(
            "designer",
            subject_principal("dan"),
            scope_target("invoices"),
        )],
    )
    .await;
    assert_status(refused, Code::PermissionDenied, "needs users:assign_roles");
    assert!(
        roles_at(&server, "newcomer", "hr_onboarding")
            .await
            .is_empty()
    );
    // Removal needs only managed_by: support removes a business user.
    try_manage(
        &server,
        T,
        "sam",
        vec![unassign(
            "business_user",
            subject_principal("bea"),
            scope_target("invoices"),
        )],
    )
    .await
    .unwrap();
    assert!(roles_at(&server, "bea", "invoices").await.is_empty());
    server.stop().await;
}

/// Bullet 2 as the product states it: Release Managers and Support add
/// business users, and Designers assign roles, including Release Manager
/// and Support — though each grants what the actor does not hold itself
/// (support and release managers only read presentations, business users
/// edit them; designers do not manage the vault). The schema's
/// `grantable_by` names who may hand each role out without holding it.
#[tokio::test]
async fn support_and_release_managers_add_business_users() {
    let server = seed().await;
    create_subject(&server, T, "newcomer").await;
    for actor in ["sam", "rita"] {
        try_manage(
            &server,
            T,
            actor,
            vec![at_app("business_user", "newcomer", "invoices")],
        )
        .await
        .unwrap();
        assert!(
            check(
                &server,
                T,
                "newcomer",
                "presentation:edit",
                "invoice_reports"
            )
            .await
        );
        manage(
            &server,
            T,
            vec![unassign(
                "business_user",
                subject_principal("newcomer"),
                scope_target("invoices"),
            )],
        )
        .await;
    }
    for role in ["release_manager", "support"] {
        try_manage(
            &server,
            T,
            "dan",
            vec![at_app(role, "newcomer", "invoices")],
        )
        .await
        .unwrap();
    }
    server.stop().await;
}

/// Bullet 3: custom roles are created per tenant and open only the
/// presentations chosen for them: a pinned grant holds at its presentation
/// (and explain names it), not at the app's other presentations (explain:
/// out of scope), and not at all when the role is assigned in an app the
/// presentation is not in. Another tenant does not have the role.
#[tokio::test]
async fn custom_roles_open_only_their_presentations() {
    let server = seed().await;
    let roles = server
        .directory()
        .await
        .list_roles(pb::ListRequest {
            tenant: T.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .roles;
    let approver = roles.iter().find(|r| r.id == "approver").unwrap();
    assert!(!approver.builtin);
    assert!(approver.self_removable);

    for (presentation, alex_edits, rhea_edits, rhea_reads) in [
        ("invoice_approvals", true, false, true),
        ("invoice_requests", false, true, true),
        ("invoice_reports", false, false, false),
    ] {
        assert_eq!(
            check(&server, T, "alex", "presentation:edit", presentation).await,
            alex_edits,
            "alex edits {presentation}"
        );
        assert_eq!(
            check(&server, T, "rhea", "presentation:edit", presentation).await,
            rhea_edits,
            "rhea edits {presentation}"
        );
        assert_eq!(
            check(&server, T, "rhea", "presentation:read", presentation).await,
            rhea_reads,
            "rhea reads {presentation}"
        );
    }
    // The app itself is visible, not editable; no presentation at the app level.
    assert!(check(&server, T, "alex", "app:read", "invoices").await);
    assert!(!check(&server, T, "alex", "app:edit", "invoices").await);
    assert!(!check(&server, T, "alex", "presentation:read", "invoices").await);

    let (allowed, why) =
        explain(&server, T, "alex", "presentation:edit", "invoice_approvals").await;
    assert!(allowed);
    assert_eq!(why.sources.len(), 1, "{why:?}");
    assert_eq!(why.sources[0].role, "approver");
    assert_eq!(why.sources[0].scope, "invoice_approvals");
    let (allowed, why) = explain(&server, T, "alex", "presentation:edit", "invoice_requests").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), vec![pb::DenialReason::OutOfScope]);
    assert!(
        details(&why).contains(
            "presentation:edit is granted at scope invoice_approvals, which does not cover scope invoice_requests"
        ),
        "{why:?}"
    );

    // Assigned in another app, the pinned presentations are not below it.
    manage(&server, T, vec![at_app("approver", "bea", "hr_onboarding")]).await;
    assert!(!check(&server, T, "bea", "presentation:edit", "onboarding_forms").await);
    assert_eq!(
        effective(&server, "bea", "onboarding_forms").await,
        vec!["app:read"]
    );

    // Per tenant: another tenant has no such role.
    create_subject(&server, "other_tenant", "olga").await;
    let refused = try_manage(
        &server,
        "other_tenant",
        "",
        vec![assign("approver", subject_principal("olga"), None)],
    )
    .await;
    assert_status(refused, Code::NotFound, "approver");
    server.stop().await;
}

/// Bullet 4, first part: changing a user's roles in an app replaces the set
/// atomically: one ReplaceRoles, one revision (one feed message carrying
/// every unassignment and assignment), exactly the new set afterwards, the
/// user's roles in other apps untouched; a replacement that fails (an
/// unknown role) changes nothing.
#[tokio::test]
async fn replacing_roles_in_an_app_is_atomic() {
    let server = seed().await;
    let before = revision(&server).await;
    let mut feed = watch(&server, T, before, "rita").await;
    let rev = manage(
        &server,
        T,
        vec![replace_roles(
            users(&["rita"]),
            scope_target("invoices"),
            &["designer", "business_user"],
        )],
    )
    .await;
    assert_eq!(rev, before + 1);
    let message = next_event(&mut feed).await;
    assert_eq!(message.revision, rev);
    let changes: Vec<String> = message
        .changes
        .iter()
        .map(|c| match c.change.as_ref().unwrap() {
            C::RoleAssigned(a) => format!("+{}", assignment_text(a)),
            C::RoleUnassigned(a) => format!("-{}", assignment_text(a)),
            other => panic!("unexpected change {other:?}"),
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            "-release_manager subject:rita scope:invoices",
            "+designer subject:rita scope:invoices",
        ]
    );
    assert_eq!(
        roles_at(&server, "rita", "invoices").await,
        vec!["business_user", "designer"]
    );
    assert!(!check(&server, T, "rita", "vault:manage", "invoices").await);
    assert!(check(&server, T, "rita", "app:edit", "invoices").await);
    assert_eq!(
        roles_at(&server, "rita", "hr_onboarding").await,
        vec!["support"]
    );

    let refused = try_manage(
        &server,
        T,
        "",
        vec![replace_roles(
            users(&["rita"]),
            scope_target("invoices"),
            &["support", "no_such_role"],
        )],
    )
    .await;
    assert_status(refused, Code::NotFound, "no_such_role");
    assert_eq!(
        roles_at(&server, "rita", "invoices").await,
        vec!["business_user", "designer"]
    );
    assert_eq!(revision(&server).await, rev, "nothing was written");
    server.stop().await;
}

/// Bullet 4, second part: removing a user from an app removes all their
/// assignments there, at the app and at its presentations, in one
/// operation (one revision), and nothing elsewhere.
#[tokio::test]
async fn removing_a_user_from_an_app_removes_everything_there() {
    let server = seed().await;
    manage(
        &server,
        T,
        vec![assign(
            "approver",
            subject_principal("rita"),
            scope_target("invoice_approvals"),
        )],
    )
    .await;
    let before = revision(&server).await;
    let rev = manage(
        &server,
        T,
        vec![remove_from_target(
            users(&["rita"]),
            scope_target("invoices"),
        )],
    )
    .await;
    assert_eq!(rev, before + 1);
    assert!(roles_at(&server, "rita", "invoices").await.is_empty());
    assert!(
        roles_at(&server, "rita", "invoice_approvals")
            .await
            .is_empty()
    );
    for permission in ALL {
        assert!(
            !check(&server, T, "rita", permission, "invoice_approvals").await,
            "{permission}"
        );
    }
    assert_eq!(
        roles_at(&server, "rita", "hr_onboarding").await,
        vec!["support"]
    );
    assert!(check(&server, T, "rita", "bots:add_to_cluster", "hr_onboarding").await);
    server.stop().await;
}

/// Bullet 4, third part: the same operations work on many users in one
/// call: one ReplaceRoles gives several users the same set in an app, one
/// RemoveFromTarget takes several users out of an app, each one revision;
/// other users and apps are untouched.
#[tokio::test]
async fn bulk_operations_cover_many_users_in_one_call() {
    let server = seed().await;
    let before = revision(&server).await;
    let rev = manage(
        &server,
        T,
        vec![replace_roles(
            users(&["sam", "bea", "alex"]),
            scope_target("invoices"),
            &["business_user", "requester"],
        )],
    )
    .await;
    assert_eq!(rev, before + 1);
    for user in ["sam", "bea", "alex"] {
        assert_eq!(
            roles_at(&server, user, "invoices").await,
            vec!["business_user", "requester"],
            "{user}"
        );
    }
    assert_eq!(roles_at(&server, "dan", "invoices").await, vec!["designer"]);

    let rev = manage(
        &server,
        T,
        vec![remove_from_target(
            users(&["sam", "bea", "dan"]),
            scope_target("invoices"),
        )],
    )
    .await;
    assert_eq!(rev, before + 2);
    for user in ["sam", "bea", "dan"] {
        assert!(
            roles_at(&server, user, "invoices").await.is_empty(),
            "{user}"
        );
    }
    assert_eq!(
        roles_at(&server, "alex", "invoices").await,
        vec!["business_user", "requester"]
    );
    assert_eq!(
        roles_at(&server, "dan", "hr_onboarding").await,
        vec!["business_user"]
    );
    server.stop().await;
}

/// Bullet 5, first part: users can remove themselves from any app role,
/// builtin or custom, one at a time or all at once (leaving the app), with
/// no management right; removing someone else is still refused.
#[tokio::test]
async fn users_remove_themselves_from_any_role() {
    let server = seed().await;
    for (user, role) in [
        ("rita", "release_manager"),
        ("dan", "designer"),
        ("sam", "support"),
        ("bea", "business_user"),
        ("alex", "approver"),
        ("rhea", "requester"),
    ] {
        try_manage(
            &server,
            T,
            user,
            vec![unassign(
                role,
                subject_principal(user),
                scope_target("invoices"),
            )],
        )
        .await
        .unwrap_or_else(|e| panic!("{user} leaves {role}: {e:?}"));
        assert!(
            !roles_at(&server, user, "invoices")
                .await
                .contains(&role.to_string()),
            "{user} left {role}"
        );
    }
    // Leaving an app entirely: rita still had business_user there.
    try_manage(
        &server,
        T,
        "rita",
        vec![remove_from_target(
            users(&["rita"]),
            scope_target("invoices"),
        )],
    )
    .await
    .unwrap();
    assert!(roles_at(&server, "rita", "invoices").await.is_empty());
    // Self-removal is for oneself only: sam's support role in invoices
    // stays (sam removed it himself above, so give it back first).
    manage(&server, T, vec![at_app("support", "sam", "invoices")]).await;
    let refused = try_manage(
        &server,
        T,
        "rita",
        vec![unassign(
            "support",
            subject_principal("sam"),
            scope_target("invoices"),
        )],
    )
    .await;
    assert_status(
        refused,
        Code::PermissionDenied,
        "actor rita may not remove role support at scope invoices",
    );
    assert_eq!(roles_at(&server, "sam", "invoices").await, vec!["support"]);
    server.stop().await;
}

/// Bullet 5, second part: a tenant administrator holds every permission in
/// every app and presentation (listed as an implied holder), is not listed
/// among an app's shared users (ListAssignments at the app), and cannot be
/// "removed" from an app role it holds only through `*`.
#[tokio::test]
async fn tenant_admin_holds_everything_and_is_not_an_app_user() {
    let server = seed().await;
    for scope in [
        "",
        "invoices",
        "invoice_reports",
        "hr_onboarding",
        "onboarding_forms",
    ] {
        for permission in ALL {
            assert!(
                check(&server, T, "ada", permission, scope).await,
                "ada {permission} at {scope:?}"
            );
        }
    }
    let shared = assignments_at(&server, T, scope_target("invoices")).await;
    let mut shared_users: Vec<&str> = shared
        .iter()
        .map(|line| line.split(' ').nth(1).unwrap())
        .collect();
    shared_users.sort();
    shared_users.dedup();
    assert_eq!(
        shared_users,
        vec![
            "subject:alex",
            "subject:bea",
            "subject:dan",
            "subject:rhea",
            "subject:rita",
            "subject:sam"
        ]
    );

    let holders = holders_at(&server, T, "app:edit", "invoices").await;
    let listed: Vec<(&str, bool)> = holders
        .iter()
        .map(|h| (h.subject.as_str(), h.implied))
        .collect();
    assert_eq!(listed, vec![("ada", true), ("dan", false)]);

    let refused = try_manage(
        &server,
        T,
        "",
        vec![unassign(
            "designer",
            subject_principal("ada"),
            scope_target("invoices"),
        )],
    )
    .await;
    assert_status(refused, Code::FailedPrecondition, "role tenant_admin (*)");
    server.stop().await;
}
