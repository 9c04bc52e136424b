//! Scenario E, `commerce-groups` (its schema, seed and README under `examples/`): a commerce suite
//! with user groups, access levels and an external automation tool kept in
//! sync. Every test starts the real server with
//! `examples/commerce-groups/schema.toml`, seeds it as
//! `examples/commerce-groups/seed.sh` does (users imported from
//! `users.csv` with `authzd import`), and drives it over gRPC only; each
//! proves one bullet of the scenario (named in its `///`).

use authzd_testkit as common;

use std::collections::BTreeSet;

use authzd::cli::import::{ImportArgs, run as import};
use common::de::*;
use common::*;

const T: &str = "shop";
const EXAMPLE: &str = "commerce-groups";

const MIA: &str = "mia@shop.example"; // admins
const NOAH: &str = "noah@shop.example"; // managers
const EMMA: &str = "emma@shop.example"; // editors
const LIAM: &str = "liam@shop.example"; // editors, pricing_team
const OLIVIA: &str = "olivia@shop.example"; // viewers, pricing_team
const LUCAS: &str = "lucas@shop.example"; // viewers
const SOFIA: &str = "sofia@shop.example"; // editors, locked

fn import_args(server: &TestServer) -> ImportArgs {
    ImportArgs {
        file: example(EXAMPLE, "users.csv"),
        target: server.addr.to_string(),
        tenant: T.into(),
        dry_run: false,
        client: Default::default(),
    }
}

async fn create_titled_group(server: &TestServer, id: &str, title: &str) {
    server
        .directory()
        .await
        .create_group(pb::CreateGroupRequest {
            tenant: T.into(),
            group: Some(pb::Group {
                id: id.into(),
                title: title.into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
}

/// The demo tenant: the four default groups holding the four builtin roles
/// at the root, a custom group `pricing_team` holding the custom role
/// `price_manager` (price:manage), and the users of `users.csv`.
async fn seed(server: &TestServer) {
    for (id, title) in [
        ("viewers", "Viewer"),
        ("editors", "Editor"),
        ("managers", "Manager"),
        ("admins", "Admin"),
        ("pricing_team", "Pricing team"),
    ] {
        create_titled_group(server, id, title).await;
    }
    create_class_role(
        server,
        T,
        "price_manager",
        "Price manager",
        "",
        &["price:manage"],
    )
    .await;
    manage(
        server,
        T,
        vec![
            assign("viewer", group_principal("viewers"), None),
            assign("editor", group_principal("editors"), None),
            assign("manager", group_principal("managers"), None),
            assign("admin", group_principal("admins"), None),
            assign("price_manager", group_principal("pricing_team"), None),
        ],
    )
    .await;
    import(&import_args(server)).await.unwrap();
}

async fn started() -> TestServer {
    let server = start_example(EXAMPLE).await;
    seed(&server).await;
    server
}

// ---------------------------------------------------------------------------
// "Users belong to user groups; groups hold roles; access levels are
// read < edit < manage < admin, each implying the ones before it."

/// Bullet 1: a user's rights come from the roles of their groups; the
/// explanation names the group and the role, and a denial names the group
/// that would give the right.
#[tokio::test]
async fn users_get_the_roles_of_their_groups() {
    let server = started().await;
    let (allowed, why) = explained(&server, T, EMMA, "product:edit", "", "").await;
    assert!(allowed);
    assert_eq!(why.sources.len(), 1, "{why:?}");
    let s = &why.sources[0];
    assert_eq!(
        (s.role.as_str(), s.groups.as_slice(), s.grant.as_str()),
        ("editor", &["editors".to_string()][..], "product:edit")
    );
    assert!(s.implication.is_empty(), "named literally");

    let (allowed, why) = explained(&server, T, EMMA, "product:manage", "", "").await;
    assert!(!allowed);
    assert!(
        denial_text(&why).contains(
            "DENIAL_REASON_NOT_A_MEMBER: group managers holds role manager granting product:manage at scope root; the subject is not a member"
        ),
        "{}",
        denial_text(&why)
    );
    server.stop().await;
}

/// Bullet 1: each access level implies every one before it and none after
/// it, explained as ladder steps.
#[tokio::test]
async fn access_levels_imply_the_ones_before() {
    let server = started().await;
    let levels = [
        "product:read",
        "product:edit",
        "product:manage",
        "product:admin",
    ];
    for (user, highest) in [(LUCAS, 0), (EMMA, 1), (NOAH, 2), (MIA, 3)] {
        let got = batch_allowed(&server, T, user, &levels, "").await;
        let want: Vec<bool> = (0..4).map(|i| i <= highest).collect();
        assert_eq!(got, want, "{user} holds up to {}", levels[highest]);
    }
    let (_, why) = explained(&server, T, MIA, "product:read", "", "").await;
    assert_eq!(
        why.sources[0].implication,
        "product:admin implies product:read (ladder)"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Default groups: Viewer (read), Editor (edit + make:scenario_edit +
// make:app_developer), Manager (manage + the same), Admin (admin +
// make:owner + make:scenario_edit). Custom groups can be added."

/// Bullet 2: each default group gives exactly its level on every resource
/// and its Make rights - Admin has make:owner and make:scenario_edit but
/// not make:app_developer.
#[tokio::test]
async fn default_groups_give_their_levels_and_make_rights() {
    let server = started().await;
    let perms = [
        "product:read",
        "order:edit",
        "customer:manage",
        "order:admin",
        "make:scenario_edit",
        "make:app_developer",
        "make:owner",
    ];
    for (user, group, want) in [
        (
            LUCAS,
            "Viewer",
            [true, false, false, false, false, false, false],
        ),
        (
            EMMA,
            "Editor",
            [true, true, false, false, true, true, false],
        ),
        (
            NOAH,
            "Manager",
            [true, true, true, false, true, true, false],
        ),
        (MIA, "Admin", [true, true, true, true, true, false, true]),
    ] {
        let got = batch_allowed(&server, T, user, &perms, "").await;
        assert_eq!(got, want, "{group}: {perms:?}");
    }
    let groups = server
        .directory()
        .await
        .list_groups(pb::ListRequest {
            tenant: T.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    let titles: Vec<(&str, &str)> = groups
        .iter()
        .map(|g| (g.id.as_str(), g.title.as_str()))
        .collect();
    for pair in [
        ("admins", "Admin"),
        ("editors", "Editor"),
        ("managers", "Manager"),
        ("viewers", "Viewer"),
    ] {
        assert!(titles.contains(&pair), "{pair:?} in {titles:?}");
    }
    server.stop().await;
}

/// Bullet 2: custom groups can be added at run time, with a custom role, or
/// nested inside a default group (its members then get the default group's
/// roles, explained through both groups).
#[tokio::test]
async fn custom_groups_can_be_added() {
    let server = started().await;
    // pricing_team (seeded): price:manage on top of olivia's Viewer.
    assert!(check(&server, T, OLIVIA, "price:manage", "").await);
    assert!(!check(&server, T, OLIVIA, "product:edit", "").await);

    create_titled_group(&server, "emea_support", "EMEA support").await;
    create_subject(&server, T, "zoe@shop.example").await;
    manage(
        &server,
        T,
        vec![
            add_member("viewers", group_principal("emea_support")),
            add_member("emea_support", subject_principal("zoe@shop.example")),
        ],
    )
    .await;
    let (allowed, why) = explained(&server, T, "zoe@shop.example", "order:read", "", "").await;
    assert!(allowed);
    assert_eq!(why.sources[0].role, "viewer");
    assert_eq!(why.sources[0].groups, ["emea_support", "viewers"]);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Related resource types are correlated: granting a level on one grants
// the same level on its followers."

/// Bullet 3: a level on product grants the same level on price and stock,
/// on order the same on invoice; explained as a follow; a level on a
/// follower grants nothing on the type it follows.
#[tokio::test]
async fn related_types_are_correlated() {
    let server = started().await;
    let got = batch_allowed(
        &server,
        T,
        EMMA,
        &["price:edit", "stock:edit", "invoice:edit", "price:manage"],
        "",
    )
    .await;
    assert_eq!(got, [true, true, true, false]);
    let (_, why) = explained(&server, T, EMMA, "price:edit", "", "").await;
    assert_eq!(
        why.sources[0].implication,
        "product:edit implies price:edit (price follows product)"
    );
    let (_, why) = explained(&server, T, NOAH, "invoice:manage", "", "").await;
    assert_eq!(
        why.sources[0].implication,
        "order:manage implies invoice:manage (invoice follows order)"
    );
    // liam: Editor + price_manager: price:manage, but product stays at edit.
    assert!(check(&server, T, LIAM, "price:manage", "").await);
    assert!(!check(&server, T, LIAM, "product:manage", "").await);
    assert!(!check(&server, T, LIAM, "stock:manage", "").await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "A locked user loses every permission at once and keeps their
// memberships."

/// Bullet 4: locking takes every permission at once (SUBJECT_LOCKED), takes
/// the user off every holder list, and keeps their group memberships and
/// assignments; unlocking restores everything as it was.
#[tokio::test]
async fn a_locked_user_loses_everything_and_keeps_memberships() {
    let server = started().await;
    let perms = [
        "product:admin",
        "price:read",
        "invoice:manage",
        "customer:edit",
        "make:owner",
        "make:scenario_edit",
    ];
    assert_eq!(batch_allowed(&server, T, MIA, &perms, "").await, [true; 6]);
    let assignments_before = assignments(&server, T).await;

    let r = set_locked(&server, T, MIA, true).await;
    assert_eq!(batch_allowed(&server, T, MIA, &perms, "").await, [false; 6]);
    let (_, why) = explained(&server, T, MIA, "product:read", "", "").await;
    assert_eq!(
        denial_text(&why),
        format!("DENIAL_REASON_SUBJECT_LOCKED: subject {MIA} is locked")
    );
    assert!(holder_ids(&server, T, "make:owner", "", r).await.is_empty());
    assert_eq!(
        members(&server, T, "admins").await,
        [format!("subject:{MIA}")]
    );
    assert_eq!(assignments(&server, T).await, assignments_before);

    let r = set_locked(&server, T, MIA, false).await;
    assert_eq!(batch_allowed(&server, T, MIA, &perms, "").await, [true; 6]);
    assert_eq!(holder_ids(&server, T, "make:owner", "", r).await, [MIA]);

    // sofia was imported locked: in editors, holding nothing.
    assert!(
        members(&server, T, "editors")
            .await
            .contains(&format!("subject:{SOFIA}"))
    );
    assert!(!check(&server, T, SOFIA, "product:read", "").await);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "Users can be imported in bulk from CSV."

/// Bullet 5: `authzd import` of `examples/commerce-groups/users.csv`
/// creates every user with kind, status and attributes and puts them in
/// their groups; importing the same file again changes nothing.
#[tokio::test]
async fn users_are_imported_in_bulk_from_csv() {
    let server = started().await; // the seed imports users.csv
    let subjects = server
        .directory()
        .await
        .list_subjects(pb::ListRequest {
            tenant: T.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subjects;
    assert_eq!(subjects.len(), 9);
    let by_id = |id: &str| subjects.iter().find(|s| s.id == id).unwrap().clone();
    assert_eq!(by_id("make-sync").kind, pb::SubjectKind::Service as i32);
    assert_eq!(by_id(SOFIA).status, pb::SubjectStatus::Locked as i32);
    assert_eq!(
        by_id("ben@shop.example").attributes["note"],
        "warehouse, north"
    );
    assert_eq!(by_id(LIAM).attributes["department"], "catalog");
    assert_eq!(
        members(&server, T, "pricing_team").await,
        [format!("subject:{LIAM}"), format!("subject:{OLIVIA}")]
    );
    assert!(
        members(&server, T, "editors")
            .await
            .contains(&format!("subject:{EMMA}"))
    );

    let before = revision(&server).await;
    let again = import(&import_args(&server)).await.unwrap();
    assert_eq!(
        (
            again.created,
            again.updated,
            again.unchanged,
            again.memberships
        ),
        (0, 0, 9, 10)
    );
    assert_eq!(
        revision(&server).await,
        before,
        "a second import writes nothing"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// "An external automation tool must contain exactly the users who hold
// make:scenario_edit or make:app_developer. A sync client lists them once
// (ListSubjectsWithPermission) and then follows Watch; when a user loses
// the role, the feed reports the loss and the client removes them."

/// Who the automation tool must contain at `revision`.
async fn should_be_in_make(server: &TestServer, revision: u64) -> BTreeSet<String> {
    let mut users = BTreeSet::new();
    for p in ["make:scenario_edit", "make:app_developer"] {
        users.extend(holder_ids(server, T, p, "", revision).await);
    }
    users
}

/// The next feed message, and the client's reconciliation after it: the
/// users to remove from and add to the tool.
async fn follow(
    server: &TestServer,
    feed: &mut tonic::Streaming<pb::WatchResponse>,
    mirror: &mut BTreeSet<String>,
) -> (pb::WatchResponse, Vec<String>, Vec<String>) {
    let event = next_event(feed).await;
    let now = should_be_in_make(server, event.revision).await;
    let removed: Vec<String> = mirror.difference(&now).cloned().collect();
    let added: Vec<String> = now.difference(mirror).cloned().collect();
    *mirror = now;
    (event, removed, added)
}

fn changes(event: &pb::WatchResponse) -> Vec<pb::change::Change> {
    event
        .changes
        .iter()
        .filter_map(|c| c.change.clone())
        .collect()
}

/// Bullet 6: the sync client lists the holders once (locked users are not
/// among them), then follows Watch from that revision: removing a user from
/// a group, taking a group's role away, or locking a user each arrives on
/// the feed as the raw change that causes the loss, and from that revision
/// on ListSubjectsWithPermission no longer lists the user, so the client
/// removes exactly them; a user who gains the right is added.
#[tokio::test]
async fn the_sync_client_mirrors_make_users_from_the_feed() {
    let server = started().await;
    let start = revision(&server).await;
    let mut mirror = should_be_in_make(&server, start).await;
    let expected: BTreeSet<String> = [EMMA, LIAM, MIA, NOAH].map(String::from).into();
    assert_eq!(
        mirror, expected,
        "sofia is locked, viewers hold no Make right"
    );
    let mut feed = watch(&server, T, start, "").await;

    // 1. liam leaves the Editor group.
    manage(
        &server,
        T,
        vec![remove_member("editors", subject_principal(LIAM))],
    )
    .await;
    let (event, removed, added) = follow(&server, &mut feed, &mut mirror).await;
    assert_eq!(
        changes(&event),
        [pb::change::Change::MemberRemoved(pb::Membership {
            group: "editors".into(),
            member: subject_principal(LIAM),
        })]
    );
    assert_eq!((removed, added), (vec![LIAM.to_string()], vec![]));
    for p in ["make:scenario_edit", "make:app_developer"] {
        assert!(
            !holder_ids(&server, T, p, "", event.revision)
                .await
                .contains(&LIAM.to_string())
        );
    }

    // 2. The Manager group's role is taken away: noah loses it.
    manage(
        &server,
        T,
        vec![unassign("manager", group_principal("managers"), None)],
    )
    .await;
    let (event, removed, added) = follow(&server, &mut feed, &mut mirror).await;
    let got = changes(&event);
    let [pb::change::Change::RoleUnassigned(a)] = got.as_slice() else {
        panic!("{event:?}");
    };
    assert_eq!(
        (a.role.as_str(), &a.principal),
        ("manager", &group_principal("managers"))
    );
    assert_eq!((removed, added), (vec![NOAH.to_string()], vec![]));

    // 3. emma is locked.
    set_locked(&server, T, EMMA, true).await;
    let (event, removed, added) = follow(&server, &mut feed, &mut mirror).await;
    let got = changes(&event);
    let [pb::change::Change::SubjectPut(s)] = got.as_slice() else {
        panic!("{event:?}");
    };
    assert_eq!(
        (s.id.as_str(), s.status),
        (EMMA, pb::SubjectStatus::Locked as i32)
    );
    assert_eq!((removed, added), (vec![EMMA.to_string()], vec![]));

    // 4. lucas joins the Editor group: added.
    manage(
        &server,
        T,
        vec![add_member("editors", subject_principal(LUCAS))],
    )
    .await;
    let (_, removed, added) = follow(&server, &mut feed, &mut mirror).await;
    assert_eq!((removed, added), (vec![], vec![LUCAS.to_string()]));

    let expected: BTreeSet<String> = [LUCAS, MIA].map(String::from).into();
    assert_eq!(mirror, expected);
    server.stop().await;
}
