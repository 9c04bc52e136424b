//! Scenario D, `workforce-dual` (its schema, seed and README under `examples/`): a workforce platform
//! with staff categories and manager roles. Every test starts the real
//! server with `examples/workforce-dual/schema.toml` and drives it over
//! gRPC only; each proves one bullet of the scenario (named in its `///`).

use authzd_testkit as common;

use common::de::*;
use common::*;

const T: &str = "retail";
const EXAMPLE: &str = "workforce-dual";

/// The demo tenant, as `examples/workforce-dual/seed.sh` builds it (a
/// smaller cast):
///
/// - units (scopes of type "unit"): `hq` → `north` → `store_12`, `store_13`;
/// - staff categories (class staff_category): `frontline` (flp WRITE, forms
///   WRITE, events READ, stories READ), `office` (flp READ, forms READ,
///   stories READ, events READ), `kitchen` (flp WRITE only);
/// - manager roles (class manager_role): `team_lead_l1` and `team_lead_l2`
///   (the same grants: events, stories and distribution WRITE, reports READ,
///   comment moderation, approving submissions), `area_manager` (reports
///   WRITE, widgets WRITE), `approver` (approving submissions),
///   `distributor` (distribution WRITE);
/// - people: `ana` (frontline, home store_12), `ben` (frontline + team lead
///   level 1 at store_12, home store_12), `cleo` (office + approver and area
///   manager at north, home north), `dan` (frontline + approver at store_13,
///   home store_13), `root_admin` (office + tenant_admin).
async fn seed(server: &TestServer) {
    create_typed(server, "hq", "").await;
    create_typed(server, "north", "hq").await;
    create_typed(server, "store_12", "north").await;
    create_typed(server, "store_13", "north").await;

    let staff = "staff_category";
    create_class_role(
        server,
        T,
        "frontline",
        "Frontline",
        staff,
        &["flp:write", "forms:write", "events:read", "stories:read"],
    )
    .await;
    create_class_role(
        server,
        T,
        "office",
        "Office",
        staff,
        &["flp:read", "forms:read", "stories:read", "events:read"],
    )
    .await;
    create_class_role(server, T, "kitchen", "Kitchen", staff, &["flp:write"]).await;

    let manager = "manager_role";
    let team_lead = [
        "events:write",
        "stories:write",
        "distribution:write",
        "reports:read",
        "comments:moderate",
        "submissions:approve",
    ];
    create_class_role(
        server,
        T,
        "team_lead_l1",
        "Team lead (level 1)",
        manager,
        &team_lead,
    )
    .await;
    create_class_role(
        server,
        T,
        "team_lead_l2",
        "Team lead (level 2)",
        manager,
        &team_lead,
    )
    .await;
    create_class_role(
        server,
        T,
        "area_manager",
        "Area manager (level 2)",
        manager,
        &["reports:write", "widgets:write"],
    )
    .await;
    create_class_role(
        server,
        T,
        "approver",
        "Approver (level 1)",
        manager,
        &["submissions:approve"],
    )
    .await;
    create_class_role(
        server,
        T,
        "distributor",
        "Distributor (level 1)",
        manager,
        &["distribution:write"],
    )
    .await;

    for (id, home) in [
        ("ana", "store_12"),
        ("ben", "store_12"),
        ("cleo", "north"),
        ("dan", "store_13"),
        ("root_admin", "hq"),
    ] {
        create_subject_at(server, T, id, home).await;
    }
    let me = subject_principal;
    manage(
        server,
        T,
        vec![
            assign("frontline", me("ana"), None),
            assign("frontline", me("ben"), None),
            assign("team_lead_l1", me("ben"), scope_target("store_12")),
            assign("office", me("cleo"), None),
            assign("approver", me("cleo"), scope_target("north")),
            assign("area_manager", me("cleo"), scope_target("north")),
            assign("frontline", me("dan"), None),
            assign("approver", me("dan"), scope_target("store_13")),
            assign("office", me("root_admin"), None),
            assign("tenant_admin", me("root_admin"), None),
        ],
    )
    .await;
}

async fn create_typed(server: &TestServer, id: &str, parent: &str) {
    server
        .directory()
        .await
        .create_scope(pb::CreateScopeRequest {
            tenant: T.into(),
            scope: Some(pb::Scope {
                id: id.into(),
                r#type: "unit".into(),
                parent: parent.into(),
            }),
            options: None,
        })
        .await
        .unwrap();
}

async fn started() -> TestServer {
    let server = start_example(EXAMPLE).await;
    seed(&server).await;
    server
}

// ---------------------------------------------------------------------------
// "Every employee has exactly one staff category (a role class with
// per_subject = "exactly_one"); managers additionally hold one or more
// manager roles."

/// Bullet 1: a second staff category is refused with FAILED_PRECONDITION
/// naming the subject, the class and both roles, and the refused batch
/// changes nothing.
#[tokio::test]
async fn a_second_staff_category_is_refused() {
    let server = started().await;
    let before = revision(&server).await;
    let e = manage_result(
        &server,
        T,
        vec![assign("office", subject_principal("ana"), None)],
    )
    .await;
    assert_status(
        e,
        Code::FailedPrecondition,
        "subject ana would hold 2 roles of class staff_category (frontline, office); it allows one",
    );
    assert_eq!(revision(&server).await, before, "nothing was written");
    assert!(check(&server, T, "ana", "flp:write", "").await);
    server.stop().await;
}

/// Bullet 1: the one staff category may not be taken away without a
/// replacement (FAILED_PRECONDITION saying so), but it may be swapped for
/// another in one batch.
#[tokio::test]
async fn the_staff_category_can_be_swapped_but_not_removed() {
    let server = started().await;
    let e = manage_result(
        &server,
        T,
        vec![unassign("frontline", subject_principal("ana"), None)],
    )
    .await;
    assert_status(
        e,
        Code::FailedPrecondition,
        "subject ana would be left without a role of class staff_category, which needs exactly one; replace it in the same batch",
    );
    assert!(check(&server, T, "ana", "flp:write", "").await);

    manage(
        &server,
        T,
        vec![
            unassign("frontline", subject_principal("ana"), None),
            assign("office", subject_principal("ana"), None),
        ],
    )
    .await;
    assert!(check(&server, T, "ana", "flp:read", "").await);
    assert!(
        !check(&server, T, "ana", "flp:write", "").await,
        "frontline's WRITE is gone with the swap"
    );
    server.stop().await;
}

/// Bullet 1: a staff category that comes through a group counts too: a
/// subject with one directly cannot join a group that holds another.
#[tokio::test]
async fn a_staff_category_through_a_group_counts() {
    let server = started().await;
    create_group(&server, T, "back_office").await;
    manage(
        &server,
        T,
        vec![assign("office", group_principal("back_office"), None)],
    )
    .await;
    let e = manage_result(
        &server,
        T,
        vec![add_member("back_office", subject_principal("ana"))],
    )
    .await;
    assert_status(
        e,
        Code::FailedPrecondition,
        "subject ana would hold 2 roles of class staff_category (frontline, office)",
    );
    // Joining the group while giving up the direct category is a swap.
    manage(
        &server,
        T,
        vec![
            unassign("frontline", subject_principal("ana"), None),
            add_member("back_office", subject_principal("ana")),
        ],
    )
    .await;
    assert!(check(&server, T, "ana", "forms:read", "").await);
    assert!(!check(&server, T, "ana", "forms:write", "").await);
    server.stop().await;
}

/// Bullet 1: a new employee is created before their category is given (a
/// subject never given one is allowed), and receives exactly one.
#[tokio::test]
async fn a_new_employee_receives_one_staff_category() {
    let server = started().await;
    create_subject_at(&server, T, "new_hire", "store_13").await;
    assert!(!check(&server, T, "new_hire", "flp:read", "").await);
    let e = manage_result(
        &server,
        T,
        vec![
            assign("kitchen", subject_principal("new_hire"), None),
            assign("frontline", subject_principal("new_hire"), None),
        ],
    )
    .await;
    assert_status(
        e,
        Code::FailedPrecondition,
        "subject new_hire would hold 2 roles of class staff_category (frontline, kitchen)",
    );
    manage(
        &server,
        T,
        vec![assign("kitchen", subject_principal("new_hire"), None)],
    )
    .await;
    assert!(check(&server, T, "new_hire", "flp:write", "").await);
    server.stop().await;
}

/// Bullet 1: managers hold one or more manager roles on top of their one
/// staff category; the same manager role at two units is still one role.
#[tokio::test]
async fn managers_hold_several_manager_roles() {
    let server = started().await;
    manage(
        &server,
        T,
        vec![
            assign(
                "approver",
                subject_principal("ben"),
                scope_target("store_12"),
            ),
            assign(
                "area_manager",
                subject_principal("ben"),
                scope_target("store_12"),
            ),
            assign(
                "team_lead_l1",
                subject_principal("ben"),
                scope_target("store_13"),
            ),
        ],
    )
    .await;
    let roles = assignments(&server, T).await;
    let bens: Vec<&String> = roles.iter().filter(|a| a.contains("subject:ben")).collect();
    assert_eq!(bens.len(), 5, "{bens:?}");
    assert!(check(&server, T, "ben", "reports:write", "store_12").await);
    assert!(check(&server, T, "ben", "events:write", "store_13").await);
    assert!(
        check(&server, T, "ben", "flp:write", "").await,
        "still frontline"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Levels are OFF / READ / WRITE. Modules: flp, distribution, events, forms,
// stories, reports, widgets; each can be switched off for the tenant."

/// Bullet 2: WRITE implies READ (explained as a ladder step); OFF is the
/// absence of a grant, explained as NO_GRANT.
#[tokio::test]
async fn levels_are_off_read_write() {
    let server = started().await;
    let (allowed, why) = explained(&server, T, "ana", "flp:read", "", "").await;
    assert!(allowed);
    assert_eq!(why.sources.len(), 1, "{why:?}");
    assert_eq!(why.sources[0].role, "frontline");
    assert_eq!(why.sources[0].grant, "flp:write");
    assert_eq!(
        why.sources[0].implication,
        "flp:write implies flp:read (ladder)"
    );

    assert!(check(&server, T, "cleo", "flp:read", "").await);
    assert!(
        !check(&server, T, "cleo", "flp:write", "").await,
        "READ is not WRITE"
    );

    let (allowed, why) = explained(&server, T, "ana", "reports:read", "", "").await;
    assert!(!allowed, "reports are OFF for frontline");
    assert_eq!(
        denial_text(&why),
        "DENIAL_REASON_NO_GRANT: no role of subject ana grants reports:read"
    );
    server.stop().await;
}

/// Bullet 2: every module of the scenario exists with exactly the levels
/// read and write (the schema served is the example's).
#[tokio::test]
async fn every_module_has_read_and_write() {
    let server = started().await;
    for module in [
        "flp",
        "distribution",
        "events",
        "forms",
        "stories",
        "reports",
        "widgets",
    ] {
        assert!(check(&server, T, "root_admin", &format!("{module}:write"), "").await);
        assert!(check(&server, T, "root_admin", &format!("{module}:read"), "").await);
        let e = server
            .access()
            .await
            .check_access(check_request(
                T,
                "root_admin",
                &format!("{module}:admin"),
                "",
            ))
            .await;
        assert_status(e, Code::InvalidArgument, "unknown permission");
    }
    server.stop().await;
}

/// Bullet 2: switching modules off for the tenant takes every permission on
/// them from everyone, the administrator's `*` included, with
/// RESOURCE_DISABLED in the explanation; other tenants are untouched;
/// switching back on restores them.
#[tokio::test]
async fn modules_can_be_switched_off_per_tenant() {
    let server = started().await;
    create_subject(&server, "other", "admin2").await;
    manage(
        &server,
        "other",
        vec![assign("tenant_admin", subject_principal("admin2"), None)],
    )
    .await;

    set_disabled(&server, T, &["events", "widgets"]).await;
    assert!(!check(&server, T, "ana", "events:read", "").await);
    assert!(!check(&server, T, "root_admin", "events:write", "").await);
    assert!(!check(&server, T, "cleo", "widgets:write", "north").await);
    assert!(
        check(&server, T, "ana", "stories:read", "").await,
        "other modules stay"
    );
    let (_, why) = explained(&server, T, "root_admin", "events:write", "", "").await;
    assert_eq!(
        denial_text(&why),
        "DENIAL_REASON_RESOURCE_DISABLED: resource type events is switched off for this tenant"
    );
    assert!(check(&server, "other", "admin2", "events:write", "").await);

    set_disabled(&server, T, &[]).await;
    assert!(check(&server, T, "ana", "events:read", "").await);
    assert!(check(&server, T, "cleo", "widgets:write", "north").await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Staff-category and role permissions are unioned; a conflict resolves to
// the positive. Role levels (level 1 vs level 2) make no difference."

/// Bullet 3: where the staff category says READ and a manager role says
/// WRITE, WRITE holds, and the explanation names both sources; where the
/// staff category says WRITE and no role mentions the module, WRITE holds.
#[tokio::test]
async fn staff_category_and_roles_are_unioned_positive_wins() {
    let server = started().await;
    // events: frontline READ, team_lead_l1 WRITE at store_12.
    assert!(check(&server, T, "ben", "events:write", "store_12").await);
    let (allowed, why) = explained(&server, T, "ben", "events:read", "store_12", "").await;
    assert!(allowed);
    let mut roles: Vec<(&str, &str)> = why
        .sources
        .iter()
        .map(|s| (s.role.as_str(), s.grant.as_str()))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            ("frontline", "events:read"),
            ("team_lead_l1", "events:write")
        ]
    );
    // Outside the manager role's unit only the staff category counts.
    assert!(!check(&server, T, "ben", "events:write", "store_13").await);
    assert!(check(&server, T, "ben", "events:read", "store_13").await);

    // flp: frontline WRITE; the manager role says nothing (OFF) - WRITE holds.
    assert!(check(&server, T, "ben", "flp:write", "store_12").await);

    // Effective permissions at the unit are the union of both.
    let held = effective_names(&server, T, "ben", "store_12").await;
    for p in [
        "comments:moderate",
        "distribution:write",
        "events:write",
        "flp:write",
        "forms:write",
        "reports:read",
        "stories:write",
        "submissions:approve",
    ] {
        assert!(held.contains(&p.to_string()), "{p} in {held:?}");
    }
    server.stop().await;
}

/// Bullet 3: a role's level (1 or 2, in its title only) makes no
/// difference: two manager roles with the same grants give exactly the same
/// effective permissions and the same rank, and holding both gives nothing
/// more than holding one.
#[tokio::test]
async fn role_levels_make_no_difference() {
    let server = started().await;
    for id in ["lead_one", "lead_two", "lead_both"] {
        create_subject_at(&server, T, id, "store_13").await;
    }
    manage(
        &server,
        T,
        vec![
            assign("frontline", subject_principal("lead_one"), None),
            assign("frontline", subject_principal("lead_two"), None),
            assign("frontline", subject_principal("lead_both"), None),
            assign(
                "team_lead_l1",
                subject_principal("lead_one"),
                scope_target("store_13"),
            ),
            assign(
                "team_lead_l2",
                subject_principal("lead_two"),
                scope_target("store_13"),
            ),
            assign(
                "team_lead_l1",
                subject_principal("lead_both"),
                scope_target("store_13"),
            ),
            assign(
                "team_lead_l2",
                subject_principal("lead_both"),
                scope_target("store_13"),
            ),
        ],
    )
    .await;
    let one = effective_names(&server, T, "lead_one", "store_13").await;
    let two = effective_names(&server, T, "lead_two", "store_13").await;
    let both = effective_names(&server, T, "lead_both", "store_13").await;
    assert!(one.contains(&"events:write".to_string()), "{one:?}");
    assert_eq!(one, two, "level 1 and level 2 give the same");
    assert_eq!(one, both, "holding both levels gives nothing more");

    let mut d = server.directory().await;
    let get = |id: &str| pb::GetRequest {
        tenant: T.into(),
        id: id.into(),
        at_least_revision: 0,
    };
    let l1 = d
        .get_role(get("team_lead_l1"))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    let l2 = d
        .get_role(get("team_lead_l2"))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    assert_eq!((l1.rank, l1.class.as_str()), (l2.rank, l2.class.as_str()));
    assert_eq!(l1.grants, l2.grants);
    assert_ne!(l1.title, l2.title, "the level is only in the title");
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Staff categories can never grant widget management, creating or
// distributing content, reporting or comment moderation, whatever they are
// configured with."

/// Bullet 4: a staff category configured with every forbidden right grants
/// none of them (MASKED_BY_CLASS, naming the role and the grant), yet keeps
/// READ where it was given WRITE on a content module; the same grants
/// through a manager role hold.
#[tokio::test]
async fn staff_categories_never_grant_forbidden_rights() {
    let server = started().await;
    create_class_role(
        &server,
        T,
        "overreach",
        "Overreaching category",
        "staff_category",
        &[
            "widgets:write",
            "distribution:write",
            "stories:write",
            "events:write",
            "forms:create_and_distribute",
            "reports:write",
            "comments:moderate",
            "flp:write",
            "forms:read",
        ],
    )
    .await;
    create_subject_at(&server, T, "otto", "store_12").await;
    manage(
        &server,
        T,
        vec![assign("overreach", subject_principal("otto"), None)],
    )
    .await;
    for (permission, grant) in [
        ("widgets:write", "widgets:write"),
        ("widgets:read", "widgets:write"),
        ("distribution:write", "distribution:write"),
        ("distribution:read", "distribution:write"),
        ("stories:write", "stories:write"),
        ("events:write", "events:write"),
        ("forms:create_and_distribute", "forms:create_and_distribute"),
        ("reports:write", "reports:write"),
        ("reports:read", "reports:write"),
        ("comments:moderate", "comments:moderate"),
    ] {
        let (allowed, why) = explained(&server, T, "otto", permission, "store_12", "").await;
        assert!(!allowed, "a staff category never grants {permission}");
        let text = denial_text(&why);
        assert!(
            text.contains(&format!(
                "DENIAL_REASON_MASKED_BY_CLASS: role overreach grants {grant} but its role class may never grant it"
            )),
            "{permission}: {text}"
        );
    }
    assert!(
        check(&server, T, "otto", "stories:read", "").await,
        "WRITE masked, READ kept"
    );
    assert!(check(&server, T, "otto", "events:read", "").await);
    assert!(
        check(&server, T, "otto", "flp:write", "").await,
        "unmasked grants hold"
    );

    // The same rights through a manager role are not masked.
    for p in ["stories:write", "distribution:write", "comments:moderate"] {
        assert!(
            check(&server, T, "ben", p, "store_12").await,
            "{p} via team_lead_l1"
        );
    }
    assert!(check(&server, T, "cleo", "widgets:write", "north").await);
    assert!(check(&server, T, "cleo", "reports:write", "north").await);
    server.stop().await;
}

/// Bullet 4: reconfiguring an existing staff category with a forbidden
/// right changes nothing for its holders ("whatever they are configured
/// with").
#[tokio::test]
async fn reconfiguring_a_staff_category_cannot_open_forbidden_rights() {
    let server = started().await;
    server
        .directory()
        .await
        .update_role(pb::UpdateRoleRequest {
            tenant: T.into(),
            role: Some(pb::Role {
                id: "frontline".into(),
                title: "Frontline".into(),
                class: "staff_category".into(),
                grants: ["flp:write", "forms:write", "widgets:write", "reports:read"]
                    .iter()
                    .map(|p| grant(p, &[]))
                    .collect(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
    assert!(!check(&server, T, "ana", "widgets:write", "").await);
    assert!(!check(&server, T, "ana", "reports:read", "").await);
    assert!(check(&server, T, "ana", "forms:write", "").await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Creating and distributing forms needs flp:write and distribution:write
// and forms:read, all together (a derived permission)."

/// Bullet 5: the three rights together, even from different roles (staff
/// category for flp and forms, manager role for distribution), give
/// forms:create_and_distribute, explained term by term; and only where all
/// three hold.
#[tokio::test]
async fn create_and_distribute_needs_all_three_together() {
    let server = started().await;
    let (allowed, why) = explained(
        &server,
        T,
        "ben",
        "forms:create_and_distribute",
        "store_12",
        "",
    )
    .await;
    assert!(allowed, "{why:?}");
    let implications: Vec<String> = why
        .sources
        .iter()
        .map(|s| format!("{} {}: {}", s.role, s.grant, s.implication))
        .collect();
    let rule = "counts toward forms:create_and_distribute (all of flp:write, distribution:write, forms:read)";
    for expected in [
        format!("frontline flp:write: flp:write {rule}"),
        format!("team_lead_l1 distribution:write: distribution:write {rule}"),
        format!(
            "frontline forms:write: forms:write implies forms:read (ladder); forms:read {rule}"
        ),
    ] {
        assert!(
            implications.contains(&expected),
            "{expected} in {implications:#?}"
        );
    }
    // distribution:write only at store_12: not at the unit above.
    assert!(!check(&server, T, "ben", "forms:create_and_distribute", "north").await);
    server.stop().await;
}

/// Bullet 5: missing any one of the three denies, and the explanation names
/// the missing one.
#[tokio::test]
async fn create_and_distribute_without_one_term_is_denied() {
    let server = started().await;
    // ana: flp:write and forms:read (frontline), no distribution.
    // olga: office (flp READ only, forms:read) + distributor.
    // kai: kitchen (flp:write only) + distributor.
    for id in ["olga", "kai"] {
        create_subject_at(&server, T, id, "store_13").await;
    }
    manage(
        &server,
        T,
        vec![
            assign("office", subject_principal("olga"), None),
            assign("distributor", subject_principal("olga"), None),
            assign("kitchen", subject_principal("kai"), None),
            assign("distributor", subject_principal("kai"), None),
        ],
    )
    .await;
    let needs =
        "forms:create_and_distribute needs all of flp:write, distribution:write, forms:read";
    for (who, missing) in [
        ("ana", "distribution:write"),
        ("olga", "flp:write"),
        ("kai", "forms:read"),
    ] {
        let (allowed, why) =
            explained(&server, T, who, "forms:create_and_distribute", "", "").await;
        assert!(!allowed, "{who} lacks {missing}");
        assert_eq!(
            denial_text(&why),
            format!("DENIAL_REASON_NO_GRANT: {needs}; {missing} is not held"),
            "{who}"
        );
    }
    // Giving kai forms READ through the category swap completes the set.
    manage(
        &server,
        T,
        vec![
            unassign("kitchen", subject_principal("kai"), None),
            assign("frontline", subject_principal("kai"), None),
        ],
    )
    .await;
    assert!(check(&server, T, "kai", "forms:create_and_distribute", "").await);
    // Switching one of the three modules off takes it away again.
    set_disabled(&server, T, &["distribution"]).await;
    assert!(!check(&server, T, "kai", "forms:create_and_distribute", "").await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "An approver may approve a submission only if they are in the same
// collaboration group (unit) as the submitter - not from a unit higher up."

/// Bullet 6: the check targets the submitter (`target_subject`): an approver
/// of the submitter's own unit may approve; one of the unit above may not
/// (OUT_OF_SCOPE, "does not inherit"), nor one of a sibling unit; the list
/// of who may approve a submitter's submission names exactly the first.
#[tokio::test]
async fn approvers_approve_only_in_the_submitters_own_unit() {
    let server = started().await;
    let (allowed, why) = explained(&server, T, "ben", "submissions:approve", "", "ana").await;
    assert!(allowed);
    assert_eq!(why.sources[0].scope, "store_12");

    let (allowed, why) = explained(&server, T, "cleo", "submissions:approve", "", "ana").await;
    assert!(!allowed, "north is above store_12: no approving from above");
    assert_eq!(
        denial_text(&why),
        "DENIAL_REASON_OUT_OF_SCOPE: role approver: submissions:approve is granted at scope north, which does not cover scope store_12 (this permission does not inherit)"
    );
    let (allowed, why) = explained(&server, T, "dan", "submissions:approve", "", "ana").await;
    assert!(!allowed, "store_13 is a sibling unit");
    assert!(
        denial_text(&why)
            .contains("granted at scope store_13, which does not cover scope store_12"),
        "{why:?}"
    );
    // The administrator's `*` holds only at the root: not in a unit either.
    assert!(!check_over(&server, T, "root_admin", "submissions:approve", "ana").await);

    let who = server
        .access()
        .await
        .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
            tenant: T.into(),
            permission: "submissions:approve".into(),
            target_subject: "ana".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = who.holders.iter().map(|h| h.subject.as_str()).collect();
    assert_eq!(ids, ["ben"]);

    // cleo approves for people of her own unit.
    create_subject_at(&server, T, "nils", "north").await;
    manage(
        &server,
        T,
        vec![assign("frontline", subject_principal("nils"), None)],
    )
    .await;
    assert!(check_over(&server, T, "cleo", "submissions:approve", "nils").await);
    assert!(!check_over(&server, T, "ben", "submissions:approve", "nils").await);
    server.stop().await;
}

/// Bullet 6: the rule follows the submitter's unit: when the submitter
/// moves to another unit, that unit's approver may approve and the old
/// one no longer may.
#[tokio::test]
async fn approval_follows_the_submitter_when_they_move() {
    let server = started().await;
    assert!(check_over(&server, T, "ben", "submissions:approve", "ana").await);
    assert!(!check_over(&server, T, "dan", "submissions:approve", "ana").await);
    move_home(&server, T, "ana", "store_13").await;
    assert!(!check_over(&server, T, "ben", "submissions:approve", "ana").await);
    assert!(check_over(&server, T, "dan", "submissions:approve", "ana").await);
    server.stop().await;
}
