//! Scenario A, `hr-integration` (its schema, seed and README under `examples/`): an HR suite whose
//! government-services integration may be run only by authorized users, for
//! the employees they manage. Starts the real server with
//! `examples/hr-integration/schema.toml` and proves every rule over gRPC.

use authzd_testkit as common;

use std::path::Path;

use common::*;

const T: &str = "hr_demo";
const SCHEMA: &str = "examples/hr-integration/schema.toml";
const SERVICES: [&str; 3] = ["gov:renew_iqama", "gov:issue_exit_reentry", "gov:transfer"];

/// The demo tenant of the example's seed, minus the authorized users:
///
/// - units `riyadh` (with `riyadh_finance` below it) and `jeddah`;
/// - employees `emp_faisal` (riyadh), `emp_noura` (riyadh_finance),
///   `emp_yousef` (jeddah), whose unit is their home scope;
/// - `admin_amal`: tenant administrator (`admin` at the root);
/// - `hr_sara`: HR manager of riyadh; `hr_omar`: HR manager of jeddah;
/// - `it_khalid`: integrations manager, managing no employee.
async fn seed() -> TestServer {
    let server = TestServer::start_with_schema(Path::new(SCHEMA)).await;
    create_typed_scope(&server, T, "riyadh", "unit", "").await;
    create_typed_scope(&server, T, "riyadh_finance", "unit", "riyadh").await;
    create_typed_scope(&server, T, "jeddah", "unit", "").await;
    for (id, unit) in [
        ("emp_faisal", "riyadh"),
        ("emp_noura", "riyadh_finance"),
        ("emp_yousef", "jeddah"),
        ("admin_amal", ""),
        ("hr_sara", "riyadh"),
        ("hr_omar", "jeddah"),
        ("it_khalid", ""),
    ] {
        create_subject_at(&server, T, id, unit).await;
    }
    manage(
        &server,
        T,
        vec![
            assign("admin", subject_principal("admin_amal"), None),
            assign(
                "hr_manager",
                subject_principal("hr_sara"),
                scope_target("riyadh"),
            ),
            assign(
                "hr_manager",
                subject_principal("hr_omar"),
                scope_target("jeddah"),
            ),
            assign("integrations_manager", subject_principal("it_khalid"), None),
        ],
    )
    .await;
    server
}

fn authorize(subject: &str) -> pb::MembershipOperation {
    assign("authorized_user", subject_principal(subject), None)
}

fn deauthorize(subject: &str) -> pb::MembershipOperation {
    unassign("authorized_user", subject_principal(subject), None)
}

/// (subject, implied) of every holder of `gov:authorized`: the list of
/// authorized users.
async fn authorized_list(server: &TestServer) -> Vec<(String, bool)> {
    holders_at(server, T, "gov:authorized", "")
        .await
        .into_iter()
        .map(|h| (h.subject, h.implied))
        .collect()
}

/// Bullet 1: the integration's services can be run only by authorized
/// users. An HR manager of the employee's unit who is not authorized is
/// denied every service, and explain says the authorization is missing;
/// once authorized, every service holds.
#[tokio::test]
async fn services_need_an_authorized_user() {
    let server = seed().await;
    for service in SERVICES {
        assert!(
            !check_over(&server, T, "hr_sara", service, "emp_faisal").await,
            "{service} without authorization"
        );
    }
    let (allowed, why) = explain_over(&server, T, "hr_sara", "gov:renew_iqama", "emp_faisal").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), vec![pb::DenialReason::NoGrant]);
    assert!(
        details(&why).contains(
            "gov:renew_iqama needs all of gov:authorized, employees:manage_info; gov:authorized is not held"
        ),
        "{why:?}"
    );

    manage(&server, T, vec![authorize("hr_sara")]).await;
    for service in SERVICES {
        assert!(
            check_over(&server, T, "hr_sara", service, "emp_faisal").await,
            "{service} once authorized"
        );
    }
    let (allowed, why) = explain_over(&server, T, "hr_sara", "gov:renew_iqama", "emp_faisal").await;
    assert!(allowed);
    let roles: Vec<&str> = why.sources.iter().map(|s| s.role.as_str()).collect();
    assert!(
        roles.contains(&"authorized_user") && roles.contains(&"hr_manager"),
        "both halves of the rule are named: {why:?}"
    );
    // The right itself does nothing on its own: an authorized user still
    // needs the employee (bullet 5), and nobody else holds the services.
    assert!(!check_over(&server, T, "it_khalid", "gov:renew_iqama", "emp_faisal").await);
    server.stop().await;
}

/// Bullet 2: tenant administrators are authorized automatically: they run
/// every service for every employee and appear in the list of authorized
/// users, marked implied (their right comes from `*`). Removing them from it
/// is refused with FAILED_PRECONDITION saying the right comes from the admin
/// role, whoever asks; they stay listed.
#[tokio::test]
async fn administrators_are_listed_and_cannot_be_removed() {
    let server = seed().await;
    manage(&server, T, vec![authorize("hr_sara")]).await;
    for employee in ["emp_faisal", "emp_noura", "emp_yousef"] {
        for service in SERVICES {
            assert!(
                check_over(&server, T, "admin_amal", service, employee).await,
                "admin runs {service} for {employee}"
            );
        }
    }

    let list = holders_at(&server, T, "gov:authorized", "").await;
    let listed: Vec<(&str, bool)> = list
        .iter()
        .map(|h| (h.subject.as_str(), h.implied))
        .collect();
    assert_eq!(listed, vec![("admin_amal", true), ("hr_sara", false)]);
    let admin = &list[0];
    assert_eq!(admin.sources.len(), 1, "{admin:?}");
    assert_eq!(admin.sources[0].role, "admin");
    assert_eq!(admin.sources[0].grant, "*");

    for actor in ["", "it_khalid", "admin_amal"] {
        let refused = try_manage(&server, T, actor, vec![deauthorize("admin_amal")]).await;
        let status = assert_status(refused, Code::FailedPrecondition, "role admin (*)");
        assert!(
            status
                .message()
                .contains("subject admin_amal is not assigned role authorized_user"),
            "the refusal says why: {}",
            status.message()
        );
    }
    assert_eq!(
        authorized_list(&server).await,
        vec![("admin_amal".into(), true), ("hr_sara".into(), false)]
    );
    server.stop().await;
}

/// Bullet 3: authorized users are added and removed only by holders of
/// `integrations:manage`. Without it (an HR manager, even an authorized
/// one) both are refused with PERMISSION_DENIED naming it, including
/// removing oneself; administrators may; an integrations manager may remove
/// anyone, and may add only once it holds the right it hands out (no
/// escalation: the refusal names `gov:authorized`).
#[tokio::test]
async fn only_integrations_managers_add_and_remove_authorized_users() {
    let server = seed().await;
    // Not an integrations manager: refused, naming integrations:manage.
    let refused = try_manage(&server, T, "hr_omar", vec![authorize("hr_omar")]).await;
    assert_status(refused, Code::PermissionDenied, "needs integrations:manage");

    // The administrator may add.
    try_manage(&server, T, "admin_amal", vec![authorize("hr_sara")])
        .await
        .unwrap();
    // An authorized user without integrations:manage may neither add others
    // nor remove anyone, itself included.
    let refused = try_manage(&server, T, "hr_sara", vec![authorize("hr_omar")]).await;
    assert_status(refused, Code::PermissionDenied, "needs integrations:manage");
    let refused = try_manage(&server, T, "hr_sara", vec![deauthorize("hr_sara")]).await;
    let status = assert_status(refused, Code::PermissionDenied, "needs integrations:manage");
    assert!(
        status
            .message()
            .contains("actor hr_sara may not remove role authorized_user"),
        "{}",
        status.message()
    );

    // An integrations manager who is not authorized itself cannot hand the
    // right out.
    let refused = try_manage(&server, T, "it_khalid", vec![authorize("hr_omar")]).await;
    let status = assert_status(refused, Code::PermissionDenied, "gov:authorized");
    assert!(
        status
            .message()
            .contains("it grants gov:authorized, which the actor does not hold there"),
        "{}",
        status.message()
    );
    assert!(!check_over(&server, T, "hr_omar", "gov:renew_iqama", "emp_yousef").await);

    // Removing needs integrations:manage only.
    try_manage(&server, T, "it_khalid", vec![deauthorize("hr_sara")])
        .await
        .unwrap();
    assert!(
        authorized_list(&server)
            .await
            .iter()
            .all(|(s, _)| s != "hr_sara")
    );

    // Once the integrations manager is itself an authorized user (which
    // needs employee information to manage), it may add others.
    manage(
        &server,
        T,
        vec![
            assign(
                "hr_manager",
                subject_principal("it_khalid"),
                scope_target("jeddah"),
            ),
            authorize("it_khalid"),
        ],
    )
    .await;
    try_manage(&server, T, "it_khalid", vec![authorize("hr_omar")])
        .await
        .unwrap();
    assert!(check_over(&server, T, "hr_omar", "gov:renew_iqama", "emp_yousef").await);
    server.stop().await;
}

/// Bullet 4, first half: only employees holding `employees:manage_info` may
/// become authorized users. Anyone else (an employee, a view-only HR clerk)
/// is refused with FAILED_PRECONDITION naming the missing permission, even
/// when an administrator asks, and does not appear in the list.
#[tokio::test]
async fn only_information_managers_can_be_authorized() {
    let server = seed().await;
    for actor in ["", "admin_amal"] {
        let refused = try_manage(&server, T, actor, vec![authorize("emp_faisal")]).await;
        let status = assert_status(refused, Code::FailedPrecondition, "employees:manage_info");
        assert!(
            status.message().contains(
                "role authorized_user requires employees:manage_info, which subject emp_faisal does not hold"
            ),
            "{}",
            status.message()
        );
    }
    assert!(
        !authorized_list(&server)
            .await
            .iter()
            .any(|(s, _)| s == "emp_faisal")
    );
    // The refusal is atomic: nothing of the batch is applied.
    let refused = try_manage(
        &server,
        T,
        "admin_amal",
        vec![authorize("hr_sara"), authorize("emp_faisal")],
    )
    .await;
    assert_status(refused, Code::FailedPrecondition, "employees:manage_info");
    assert_eq!(
        authorized_list(&server).await,
        vec![("admin_amal".into(), true)]
    );
    // Managing information anywhere (here: one sub-unit) qualifies.
    manage(
        &server,
        T,
        vec![
            assign(
                "hr_manager",
                subject_principal("emp_faisal"),
                scope_target("riyadh_finance"),
            ),
            authorize("emp_faisal"),
        ],
    )
    .await;
    assert!(check_over(&server, T, "emp_faisal", "gov:transfer", "emp_noura").await);
    server.stop().await;
}

/// Bullet 4, second half: an authorized user who later loses
/// `employees:manage_info` stops counting as one at once: every service is
/// denied, the user leaves the list, and explain says the role's
/// prerequisite is missing. The assignment stays; regaining the permission
/// makes it count again.
#[tokio::test]
async fn losing_manage_info_stops_the_authorization() {
    let server = seed().await;
    manage(&server, T, vec![authorize("hr_sara")]).await;
    assert!(check_over(&server, T, "hr_sara", "gov:renew_iqama", "emp_faisal").await);

    manage(
        &server,
        T,
        vec![unassign(
            "hr_manager",
            subject_principal("hr_sara"),
            scope_target("riyadh"),
        )],
    )
    .await;
    for service in SERVICES {
        assert!(!check_over(&server, T, "hr_sara", service, "emp_faisal").await);
    }
    assert_eq!(
        authorized_list(&server).await,
        vec![("admin_amal".into(), true)]
    );
    let (allowed, why) = explain(&server, T, "hr_sara", "gov:authorized", "").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), vec![pb::DenialReason::PrerequisiteMissing]);
    assert!(
        details(&why).contains(
            "role authorized_user requires employees:manage_info, which the subject does not hold"
        ),
        "{why:?}"
    );
    assert!(
        assignments_at(&server, T, scope_target("root"))
            .await
            .contains(&"authorized_user subject:hr_sara scope:root".to_string()),
        "the assignment itself is kept"
    );

    manage(
        &server,
        T,
        vec![assign(
            "hr_manager",
            subject_principal("hr_sara"),
            scope_target("riyadh"),
        )],
    )
    .await;
    assert!(check_over(&server, T, "hr_sara", "gov:renew_iqama", "emp_faisal").await);
    server.stop().await;
}

/// Bullet 5: an authorized user runs services only for employees whose
/// information it may manage: the check targets the employee and holds in
/// the managed unit and its sub-units, not in another unit (explain names
/// the missing half), and a manager of a sub-unit gets nothing above it.
#[tokio::test]
async fn services_hold_only_where_the_user_manages_the_employee() {
    let server = seed().await;
    manage(&server, T, vec![authorize("hr_sara"), authorize("hr_omar")]).await;
    for (employee, sara, omar) in [
        ("emp_faisal", true, false),
        ("emp_noura", true, false),
        ("emp_yousef", false, true),
    ] {
        for service in SERVICES {
            assert_eq!(
                check_over(&server, T, "hr_sara", service, employee).await,
                sara,
                "hr_sara {service} {employee}"
            );
            assert_eq!(
                check_over(&server, T, "hr_omar", service, employee).await,
                omar,
                "hr_omar {service} {employee}"
            );
        }
    }
    let (allowed, why) = explain_over(
        &server,
        T,
        "hr_sara",
        "gov:issue_exit_reentry",
        "emp_yousef",
    )
    .await;
    assert!(!allowed);
    assert!(
        details(&why).contains(
            "gov:issue_exit_reentry needs all of gov:authorized, employees:manage_info; employees:manage_info is not held"
        ),
        "{why:?}"
    );

    // A manager of the sub-unit only: its employees, not the parent unit's.
    create_subject_at(&server, T, "hr_lina", "riyadh_finance").await;
    manage(
        &server,
        T,
        vec![
            assign(
                "hr_manager",
                subject_principal("hr_lina"),
                scope_target("riyadh_finance"),
            ),
            authorize("hr_lina"),
        ],
    )
    .await;
    assert!(check_over(&server, T, "hr_lina", "gov:renew_iqama", "emp_noura").await);
    assert!(!check_over(&server, T, "hr_lina", "gov:renew_iqama", "emp_faisal").await);

    // Moving an employee to another unit moves the right with it.
    server
        .directory()
        .await
        .update_subject(pb::UpdateSubjectRequest {
            tenant: T.into(),
            subject: Some(pb::Subject {
                id: "emp_yousef".into(),
                home_scope: "riyadh".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["home_scope".into()],
            }),
            options: None,
        })
        .await
        .unwrap();
    assert!(check_over(&server, T, "hr_sara", "gov:transfer", "emp_yousef").await);
    assert!(!check_over(&server, T, "hr_omar", "gov:transfer", "emp_yousef").await);
    server.stop().await;
}

/// The example README's claim that a tenant which has not bought the
/// integration switches `gov` off: then nobody holds any service, not even
/// an administrator, and explain says the type is switched off.
#[tokio::test]
async fn switching_the_integration_off_denies_every_service() {
    let server = seed().await;
    manage(&server, T, vec![authorize("hr_sara")]).await;
    set_disabled(&server, T, &["gov"]).await;
    for subject in ["hr_sara", "admin_amal"] {
        for service in SERVICES {
            assert!(!check_over(&server, T, subject, service, "emp_faisal").await);
        }
    }
    let (allowed, why) = explain_over(&server, T, "admin_amal", "gov:transfer", "emp_faisal").await;
    assert!(!allowed);
    assert!(
        reasons(&why).contains(&pb::DenialReason::ResourceDisabled),
        "{why:?}"
    );
    set_disabled(&server, T, &[]).await;
    assert!(check_over(&server, T, "hr_sara", "gov:transfer", "emp_faisal").await);
    server.stop().await;
}
