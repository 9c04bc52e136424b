//! Scenario B, `hr-service-user` (its schema, seed and README under `examples/`): an HR platform
//! grants a learning product a service user that may view the lifecycle
//! sections of a population of employees chosen by condition. Starts the
//! real server with `examples/hr-service-user/schema.toml` and proves every
//! rule over gRPC.

use authzd_testkit as common;

use std::path::Path;

use common::*;
use pb::change::Change as C;

const T: &str = "hr_demo";
const SCHEMA: &str = "examples/hr-service-user/schema.toml";
const CONDITION: &str =
    r#"attributes.lifecycle_status in ["employed", "garden_leave", "leave", "terminated"]"#;
const SERVICE: &str = "svc_learning";

fn employee(id: &str, status: Option<&str>) -> pb::Subject {
    pb::Subject {
        id: id.into(),
        attributes: status
            .map(|s| [("lifecycle_status".to_string(), s.to_string())].into())
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// The demo tenant of the example's seed:
///
/// - the service user `svc_learning` (kind `service`), and `svc_payroll`,
///   another product's service user that is not in the permission group;
/// - employees in every lifecycle status: `emp_ali` employed, `emp_huda`
///   garden_leave, `emp_sami` leave, `emp_reem` terminated, `emp_zaid`
///   onboarding (outside the condition), `emp_tala` with no status;
/// - the permission group `learning_access` (member: `svc_learning`) holding
///   `lifecycle_viewer` over the population group `learning_population`,
///   whose members are chosen by the condition.
async fn seed() -> TestServer {
    let server = TestServer::start_with_schema(Path::new(SCHEMA)).await;
    for id in [SERVICE, "svc_payroll"] {
        put_subject(
            &server,
            T,
            pb::Subject {
                id: id.into(),
                kind: pb::SubjectKind::Service as i32,
                ..Default::default()
            },
        )
        .await;
    }
    for (id, status) in [
        ("emp_ali", Some("employed")),
        ("emp_huda", Some("garden_leave")),
        ("emp_sami", Some("leave")),
        ("emp_reem", Some("terminated")),
        ("emp_zaid", Some("onboarding")),
        ("emp_tala", None),
    ] {
        put_subject(&server, T, employee(id, status)).await;
    }
    let mut d = server.directory().await;
    d.create_group(pb::CreateGroupRequest {
        tenant: T.into(),
        group: Some(pb::Group {
            id: "learning_access".into(),
            title: "Learning product: lifecycle access".into(),
            condition: String::new(),
        }),
        options: None,
    })
    .await
    .unwrap();
    d.create_group(pb::CreateGroupRequest {
        tenant: T.into(),
        group: Some(pb::Group {
            id: "learning_population".into(),
            title: "Employees the learning product may see".into(),
            condition: CONDITION.into(),
        }),
        options: None,
    })
    .await
    .unwrap();
    manage(
        &server,
        T,
        vec![
            add_member("learning_access", subject_principal(SERVICE)),
            assign(
                "lifecycle_viewer",
                group_principal("learning_access"),
                population_target("learning_population"),
            ),
        ],
    )
    .await;
    server
}

/// Bullet 1: the learning product connects as a subject of kind `service`,
/// and it is that subject the checks answer for: it holds the right over an
/// employee in the population, and nothing once locked (the product
/// disconnected).
#[tokio::test]
async fn the_learning_product_is_a_service_subject() {
    let server = seed().await;
    let subject = server
        .directory()
        .await
        .get_subject(pb::GetRequest {
            tenant: T.into(),
            id: SERVICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subject
        .unwrap();
    assert_eq!(subject.kind, pb::SubjectKind::Service as i32);
    assert!(check_over(&server, T, SERVICE, "lifecycle:view", "emp_ali").await);

    set_locked(&server, T, SERVICE, true).await;
    let (allowed, why) = explain_over(&server, T, SERVICE, "lifecycle:view", "emp_ali").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), vec![pb::DenialReason::SubjectLocked]);
    set_locked(&server, T, SERVICE, false).await;
    assert!(check_over(&server, T, SERVICE, "lifecycle:view", "emp_ali").await);
    server.stop().await;
}

/// Bullet 2: the permission group's members are the service user, and its
/// population is chosen by the condition on `lifecycle_status`: employees
/// in each of `employed`, `garden_leave`, `leave`, `terminated` are in it;
/// any other status, or none, is not. A service user outside the permission
/// group holds nothing, and explain names the group it is not in.
#[tokio::test]
async fn the_permission_group_and_its_population() {
    let server = seed().await;
    assert_eq!(
        members(&server, T, "learning_access").await,
        vec![format!("subject:{SERVICE}")]
    );
    let population = server
        .directory()
        .await
        .get_group(pb::GetRequest {
            tenant: T.into(),
            id: "learning_population".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(population.condition, CONDITION);
    assert_eq!(
        assignments_at(&server, T, population_target("learning_population")).await,
        vec!["lifecycle_viewer group:learning_access population:learning_population"]
    );

    for (target, inside) in [
        ("emp_ali", true),
        ("emp_huda", true),
        ("emp_sami", true),
        ("emp_reem", true),
        ("emp_zaid", false),
        ("emp_tala", false),
    ] {
        assert_eq!(
            check_over(&server, T, SERVICE, "lifecycle:view", target).await,
            inside,
            "lifecycle:view over {target}"
        );
    }

    assert!(!check_over(&server, T, "svc_payroll", "lifecycle:view", "emp_ali").await);
    let (_, why) = explain_over(&server, T, "svc_payroll", "lifecycle:view", "emp_ali").await;
    assert_eq!(reasons(&why), vec![pb::DenialReason::NotAMember]);
    assert!(
        details(&why).contains("group learning_access holds role lifecycle_viewer"),
        "{why:?}"
    );
    server.stop().await;
}

/// Bullet 3: the group grants `lifecycle:view` over the population and
/// nothing more: not editing, not the rest of the record, not anything at a
/// scope (a population right needs the employee as the target), and the
/// service user's effective permissions show it over the population,
/// through the group.
#[tokio::test]
async fn the_group_grants_lifecycle_view_over_the_population() {
    let server = seed().await;
    let (allowed, why) = explain_over(&server, T, SERVICE, "lifecycle:view", "emp_huda").await;
    assert!(allowed);
    assert_eq!(why.sources.len(), 1, "{why:?}");
    let source = &why.sources[0];
    assert_eq!(source.role, "lifecycle_viewer");
    assert_eq!(source.groups, vec!["learning_access"]);
    assert_eq!(source.population, "learning_population");
    assert_eq!(source.grant, "lifecycle:view");

    for permission in ["lifecycle:edit", "employees:view_info"] {
        assert!(
            !check_over(&server, T, SERVICE, permission, "emp_huda").await,
            "{permission}"
        );
    }
    assert!(!check(&server, T, SERVICE, "lifecycle:view", "").await);

    let effective = server
        .access()
        .await
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: T.into(),
            subject: SERVICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let targets: Vec<(String, String, Vec<String>)> = effective
        .targets
        .iter()
        .map(|t| {
            (
                t.scope.clone(),
                t.population.clone(),
                t.permissions.iter().map(|p| p.permission.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        vec![(
            String::new(),
            "learning_population".to_string(),
            vec!["lifecycle:view".to_string()]
        )]
    );
    server.stop().await;
}

/// Bullet 4: the right follows the population. Changing an employee's
/// `lifecycle_status` to a value outside the condition removes it at once
/// (the next check, at the write's revision, is denied), the change feed
/// carries the raw change (the subject's new state, attributes included),
/// and moving back restores it. A new hire entering the population gains it
/// the same way.
#[tokio::test]
async fn changing_lifecycle_status_moves_the_right_at_once() {
    let server = seed().await;
    assert!(check_over(&server, T, SERVICE, "lifecycle:view", "emp_ali").await);
    let before = revision(&server).await;
    let mut feed = watch(&server, T, before, "emp_ali").await;

    let rev = set_attributes(&server, T, "emp_ali", &[("lifecycle_status", "archived")]).await;
    let reply = server
        .access()
        .await
        .check_access(pb::CheckAccessRequest {
            tenant: T.into(),
            subject: SERVICE.into(),
            permission: "lifecycle:view".into(),
            target_subject: "emp_ali".into(),
            at_least_revision: rev,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.allowed);
    assert_eq!(
        reply.revision, rev,
        "denied at the very revision of the change"
    );

    let message = next_event(&mut feed).await;
    assert_eq!(message.revision, rev);
    assert_eq!(message.changes.len(), 1, "{message:?}");
    match message.changes[0].change.as_ref().unwrap() {
        C::SubjectPut(s) => {
            assert_eq!(s.id, "emp_ali");
            assert_eq!(
                s.attributes.get("lifecycle_status").map(String::as_str),
                Some("archived")
            );
        }
        other => panic!("expected subject_put, got {other:?}"),
    }

    let rev = set_attributes(&server, T, "emp_ali", &[("lifecycle_status", "leave")]).await;
    assert!(check_over(&server, T, SERVICE, "lifecycle:view", "emp_ali").await);
    assert_eq!(next_event(&mut feed).await.revision, rev);

    // A new hire: outside while onboarding, inside once employed.
    assert!(!check_over(&server, T, SERVICE, "lifecycle:view", "emp_zaid").await);
    set_attributes(&server, T, "emp_zaid", &[("lifecycle_status", "employed")]).await;
    assert!(check_over(&server, T, SERVICE, "lifecycle:view", "emp_zaid").await);
    server.stop().await;
}

/// Bullet 4, last part: explain on a denial says the employee is outside
/// the population and why: the group, the condition, and the employee's
/// attributes it was evaluated on (or that it has none).
#[tokio::test]
async fn explain_says_outside_the_population_and_why() {
    let server = seed().await;
    set_attributes(&server, T, "emp_reem", &[("lifecycle_status", "archived")]).await;
    let (allowed, why) = explain_over(&server, T, SERVICE, "lifecycle:view", "emp_reem").await;
    assert!(!allowed);
    assert_eq!(reasons(&why), vec![pb::DenialReason::OutsidePopulation]);
    let detail = details(&why);
    assert!(
        detail.contains(
            "role lifecycle_viewer (via group learning_access) applies to the subjects of group learning_population"
        ),
        "{detail}"
    );
    assert!(
        detail.contains(&format!(
            "target subject emp_reem is not a member and does not satisfy its condition `{CONDITION}`"
        )),
        "{detail}"
    );
    assert!(
        detail.contains(r#"(its attributes: lifecycle_status = "archived")"#),
        "{detail}"
    );

    let (_, why) = explain_over(&server, T, SERVICE, "lifecycle:view", "emp_tala").await;
    assert_eq!(reasons(&why), vec![pb::DenialReason::OutsidePopulation]);
    assert!(details(&why).contains("(its attributes: none)"), "{why:?}");
    server.stop().await;
}
