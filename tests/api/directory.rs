//! `DirectoryService` over gRPC: subjects, scopes, groups, custom roles,
//! tenants and the two listings of memberships and assignments.

use authzd_testkit as common;
use common::*;

use std::collections::HashMap;

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn page(size: u32, token: &str) -> Option<pb::PageRequest> {
    Some(pb::PageRequest {
        page_size: size,
        page_token: token.into(),
    })
}

fn get(id: &str) -> pb::GetRequest {
    pb::GetRequest {
        tenant: ACME.into(),
        id: id.into(),
        at_least_revision: 0,
    }
}

fn delete(id: &str) -> pb::DeleteRequest {
    pb::DeleteRequest {
        tenant: ACME.into(),
        id: id.into(),
        options: None,
    }
}

/// Creating a subject stores every field; reading it back returns them; a
/// second create with the same id is ALREADY_EXISTS.
#[tokio::test]
async fn subject_create_get_and_duplicate() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    let mut d = server.directory().await;
    let subject = pb::Subject {
        id: "svc".into(),
        kind: pb::SubjectKind::Service as i32,
        status: pb::SubjectStatus::Active as i32,
        attributes: HashMap::from([("department".to_string(), "HR".to_string())]),
        home_scope: "eu".into(),
    };
    let created = d
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(subject.clone()),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.subject.as_ref(), Some(&subject));
    assert_eq!(created.revision, revision(&server).await);
    let read = d.get_subject(get("svc")).await.unwrap().into_inner();
    assert_eq!(read.subject, Some(subject.clone()));
    assert_eq!(read.revision, created.revision);

    let dup = d
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(subject),
            options: None,
        })
        .await;
    assert_status(dup, Code::AlreadyExists, "svc");
    assert_eq!(revision(&server).await, created.revision);

    let unknown_home = d
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: "lost".into(),
                home_scope: "nowhere".into(),
                ..Default::default()
            }),
            options: None,
        })
        .await;
    assert_status(unknown_home, Code::NotFound, "nowhere");
    server.stop().await;
}

/// UpdateSubject changes only the fields named in update_mask; an empty mask
/// replaces them all; an unknown path is INVALID_ARGUMENT; an unknown
/// subject NOT_FOUND.
#[tokio::test]
async fn subject_update_honours_the_mask() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    let mut d = server.directory().await;
    let original = pb::Subject {
        id: "svc".into(),
        kind: pb::SubjectKind::Service as i32,
        status: pb::SubjectStatus::Active as i32,
        attributes: HashMap::from([("department".to_string(), "HR".to_string())]),
        home_scope: "eu".into(),
    };
    d.create_subject(pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(original.clone()),
        options: None,
    })
    .await
    .unwrap();
    let update = |s: pb::Subject, paths: &[&str]| pb::UpdateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(s),
        update_mask: mask(paths),
        options: None,
    };

    // Only the status: everything else in the body is ignored.
    let locked = d
        .update_subject(update(
            pb::Subject {
                id: "svc".into(),
                status: pb::SubjectStatus::Locked as i32,
                ..Default::default()
            },
            &["status"],
        ))
        .await
        .unwrap()
        .into_inner();
    let expected = pb::Subject {
        status: pb::SubjectStatus::Locked as i32,
        ..original.clone()
    };
    assert_eq!(locked.subject, Some(expected.clone()));
    assert_eq!(
        d.get_subject(get("svc"))
            .await
            .unwrap()
            .into_inner()
            .subject,
        Some(expected.clone())
    );

    // Only the attributes: replaced as a whole.
    let attrs = d
        .update_subject(update(
            pb::Subject {
                id: "svc".into(),
                attributes: HashMap::from([(
                    "lifecycle_status".to_string(),
                    "terminated".to_string(),
                )]),
                ..Default::default()
            },
            &["attributes"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        attrs.subject.as_ref().unwrap().attributes,
        HashMap::from([("lifecycle_status".to_string(), "terminated".to_string())])
    );
    assert_eq!(attrs.subject.as_ref().unwrap().home_scope, "eu");
    assert!(attrs.revision > locked.revision);

    // An empty mask replaces every field with the body's values.
    let all = d
        .update_subject(update(
            pb::Subject {
                id: "svc".into(),
                ..Default::default()
            },
            &[],
        ))
        .await
        .unwrap()
        .into_inner();
    let s = all.subject.unwrap();
    assert_eq!(s.kind, pb::SubjectKind::User as i32);
    assert_eq!(s.status, pb::SubjectStatus::Active as i32);
    assert!(s.attributes.is_empty());
    assert_eq!(s.home_scope, "");

    let before = revision(&server).await;
    assert_status(
        d.update_subject(update(
            pb::Subject {
                id: "svc".into(),
                ..Default::default()
            },
            &["colour"],
        ))
        .await,
        Code::InvalidArgument,
        "update_mask",
    );
    assert_status(
        d.update_subject(update(
            pb::Subject {
                id: "ghost".into(),
                ..Default::default()
            },
            &["status"],
        ))
        .await,
        Code::NotFound,
        "ghost",
    );
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// Deleting a subject removes it with its memberships and assignments; a
/// second delete is NOT_FOUND.
#[tokio::test]
async fn subject_delete_cascades() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_subject(&server, ACME, "bob").await;
    create_group(&server, ACME, "g").await;
    manage(
        &server,
        ACME,
        vec![
            add_member("g", subject_principal("alice")),
            add_member("g", subject_principal("bob")),
            assign("editor", subject_principal("alice"), None),
            assign("viewer", subject_principal("bob"), None),
        ],
    )
    .await;
    let mut d = server.directory().await;
    let deleted = d
        .delete_subject(delete("alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.revision, revision(&server).await);
    assert_status(d.get_subject(get("alice")).await, Code::NotFound, "alice");
    assert_eq!(members(&server, ACME, "g").await, ["subject:bob"]);
    assert_eq!(
        assignments(&server, ACME).await,
        ["viewer subject:bob scope:root"]
    );
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    assert_status(
        d.delete_subject(delete("alice")).await,
        Code::NotFound,
        "alice",
    );

    // Re-created under the same id, it starts with nothing.
    create_subject(&server, ACME, "alice").await;
    assert!(!check(&server, ACME, "alice", "document:read", "").await);
    assert!(members(&server, ACME, "g").await.len() == 1);
    server.stop().await;
}

/// ListSubjects pages in id order with page_size / page_token, without loss
/// or repetition, and ends with an empty token.
#[tokio::test]
async fn subjects_list_in_id_order_with_paging() {
    let server = TestServer::start().await;
    for id in ["s3", "s1", "s5", "s2", "s4"] {
        create_subject(&server, ACME, id).await;
    }
    let mut d = server.directory().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut sizes = Vec::new();
    loop {
        let reply = d
            .list_subjects(pb::ListRequest {
                tenant: ACME.into(),
                page: page(2, &token),
                at_least_revision: 0,
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(reply.subjects.len());
        seen.extend(reply.subjects.into_iter().map(|s| s.id));
        if reply.next_page_token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "paging does not end");
        token = reply.next_page_token;
    }
    assert_eq!(seen, ["s1", "s2", "s3", "s4", "s5"]);
    assert_eq!(sizes, [2, 2, 1]);
    let all = d
        .list_subjects(pb::ListRequest {
            tenant: ACME.into(),
            page: None,
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.subjects.len(), 5);
    assert!(all.next_page_token.is_empty());
    server.stop().await;
}

/// Scopes: create, read, list (without the implicit root), change type,
/// duplicate ids refused, unknown parent NOT_FOUND.
#[tokio::test]
async fn scope_create_get_list_update() {
    let server = TestServer::start().await;
    let mut d = server.directory().await;
    let created = d
        .create_scope(pb::CreateScopeRequest {
            tenant: ACME.into(),
            scope: Some(pb::Scope {
                id: "eu".into(),
                r#type: "region".into(),
                parent: String::new(),
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let eu = created.scope.unwrap();
    assert_eq!((eu.r#type.as_str(), eu.parent.as_str()), ("region", "root"));
    create_scope(&server, ACME, "berlin", "eu").await;
    let got = d.get_scope(get("berlin")).await.unwrap().into_inner();
    assert_eq!(got.scope.unwrap().parent, "eu");

    let listed = d
        .list_scopes(pb::ListRequest {
            tenant: ACME.into(),
            page: None,
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.scopes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["berlin", "eu"]);

    let retyped = d
        .update_scope(pb::UpdateScopeRequest {
            tenant: ACME.into(),
            scope: Some(pb::Scope {
                id: "berlin".into(),
                r#type: "city".into(),
                parent: "eu".into(),
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retyped.scope.unwrap().r#type, "city");

    let before = revision(&server).await;
    let create = |id: &str, parent: &str| pb::CreateScopeRequest {
        tenant: ACME.into(),
        scope: Some(pb::Scope {
            id: id.into(),
            r#type: "unit".into(),
            parent: parent.into(),
        }),
        options: None,
    };
    assert_status(
        d.create_scope(create("eu", "")).await,
        Code::AlreadyExists,
        "eu",
    );
    assert_status(
        d.create_scope(create("x", "nowhere")).await,
        Code::NotFound,
        "nowhere",
    );
    assert_status(d.get_scope(get("nowhere")).await, Code::NotFound, "nowhere");
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// The root scope behaves as always existing: it can be read (no type, no
/// parent), and creating, changing or deleting it is FAILED_PRECONDITION,
/// with nothing written.
#[tokio::test]
async fn the_root_scope_always_exists() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    let mut d = server.directory().await;
    let root = d.get_scope(get("root")).await.unwrap().into_inner();
    assert_eq!(
        root.scope,
        Some(pb::Scope {
            id: "root".into(),
            ..Default::default()
        })
    );
    let before = revision(&server).await;
    let scope = Some(pb::Scope {
        id: "root".into(),
        r#type: "unit".into(),
        parent: String::new(),
    });
    let fixed = "scope root is every tenant's root";
    assert_status(
        d.create_scope(pb::CreateScopeRequest {
            tenant: ACME.into(),
            scope: scope.clone(),
            options: None,
        })
        .await,
        Code::FailedPrecondition,
        fixed,
    );
    assert_status(
        d.update_scope(pb::UpdateScopeRequest {
            tenant: ACME.into(),
            scope,
            options: None,
        })
        .await,
        Code::FailedPrecondition,
        fixed,
    );
    assert_status(
        d.delete_scope(pb::DeleteRequest {
            tenant: ACME.into(),
            id: "root".into(),
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        fixed,
    );
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// UpdateGroup changes only what its `update_mask` names; without a mask,
/// only the fields the request sets, so a rename keeps the condition (and
/// the access it gives). Naming `condition` with an empty one removes it; an
/// unknown path is INVALID_ARGUMENT naming `update_mask`.
#[tokio::test]
async fn update_group_changes_only_what_it_is_asked_to() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    set_attributes(&server, ACME, "alice", &[("dept", "hr")]).await;
    let mut d = server.directory().await;
    d.create_group(pb::CreateGroupRequest {
        tenant: ACME.into(),
        group: Some(pb::Group {
            id: "hr".into(),
            title: "HR".into(),
            condition: r#"attributes.dept == "hr""#.into(),
        }),
        options: None,
    })
    .await
    .unwrap();
    manage(
        &server,
        ACME,
        vec![assign("editor", group_principal("hr"), None)],
    )
    .await;
    assert!(check(&server, ACME, "alice", "document:edit", "").await);

    let update = |title: &str, condition: &str, paths: &[&str]| pb::UpdateGroupRequest {
        tenant: ACME.into(),
        group: Some(pb::Group {
            id: "hr".into(),
            title: title.into(),
            condition: condition.into(),
        }),
        options: None,
        update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let renamed = d
        .update_group(update("People team", "", &[]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(renamed.title, "People team");
    assert_eq!(renamed.condition, r#"attributes.dept == "hr""#);
    assert!(check(&server, ACME, "alice", "document:edit", "").await);

    let retitled = d
        .update_group(update("Ignored", r#"attributes.dept == "x""#, &["title"]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(retitled.title, "Ignored");
    assert_eq!(retitled.condition, r#"attributes.dept == "hr""#);

    let before = revision(&server).await;
    assert_status(
        d.update_group(update("x", "", &["members"])).await,
        Code::InvalidArgument,
        "update_mask",
    );
    assert_eq!(revision(&server).await, before);

    let cleared = d
        .update_group(update("", "", &["condition"]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(
        (cleared.title.as_str(), cleared.condition.as_str()),
        ("Ignored", "")
    );
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    server.stop().await;
}

/// Moving a scope re-parents its subtree (grants follow the new
/// ancestors); a move under itself or its own descendant is refused with
/// FAILED_PRECONDITION.
#[tokio::test]
async fn scope_moves_change_inheritance_and_refuse_cycles() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_scope(&server, ACME, "us", "").await;
    create_scope(&server, ACME, "berlin", "eu").await;
    create_scope(&server, ACME, "team", "berlin").await;
    create_subject(&server, ACME, "ed").await;
    manage(
        &server,
        ACME,
        vec![assign(
            "editor",
            subject_principal("ed"),
            scope_target("eu"),
        )],
    )
    .await;
    assert!(check(&server, ACME, "ed", "document:edit", "team").await);

    let mut d = server.directory().await;
    let move_to = |id: &str, parent: &str| pb::UpdateScopeRequest {
        tenant: ACME.into(),
        scope: Some(pb::Scope {
            id: id.into(),
            r#type: "unit".into(),
            parent: parent.into(),
        }),
        options: None,
    };
    d.update_scope(move_to("berlin", "us")).await.unwrap();
    assert!(!check(&server, ACME, "ed", "document:edit", "berlin").await);
    assert!(!check(&server, ACME, "ed", "document:edit", "team").await);
    assert!(check(&server, ACME, "ed", "document:edit", "eu").await);

    let before = revision(&server).await;
    assert_status(
        d.update_scope(move_to("berlin", "team")).await,
        Code::FailedPrecondition,
        "ancestor",
    );
    assert_status(
        d.update_scope(move_to("us", "team")).await,
        Code::FailedPrecondition,
        "ancestor",
    );
    assert_status(
        d.update_scope(move_to("us", "us")).await,
        Code::FailedPrecondition,
        "ancestor",
    );
    assert_status(
        d.update_scope(move_to("ghost", "")).await,
        Code::NotFound,
        "ghost",
    );
    assert_eq!(revision(&server).await, before);
    assert_eq!(
        d.get_scope(get("us"))
            .await
            .unwrap()
            .into_inner()
            .scope
            .unwrap()
            .parent,
        "root"
    );
    server.stop().await;
}

/// A scope still in use (a child, an assignment at it, a subject's home, a
/// pinned grant) cannot be deleted; an unused one can.
#[tokio::test]
async fn scope_delete_in_use_is_refused() {
    let server = TestServer::start().await;
    for (id, parent) in [
        ("a", ""),
        ("a1", "a"),
        ("b", ""),
        ("c", ""),
        ("d", ""),
        ("e", ""),
    ] {
        create_scope(&server, ACME, id, parent).await;
    }
    create_subject(&server, ACME, "x").await;
    create_subject_at(&server, ACME, "homed", "c").await;
    manage(
        &server,
        ACME,
        vec![assign("viewer", subject_principal("x"), scope_target("b"))],
    )
    .await;
    create_role(
        &server,
        ACME,
        "pinned",
        vec![grant("document:read", &["d"])],
    )
    .await;
    let mut d = server.directory().await;
    let before = revision(&server).await;
    for (id, why) in [
        ("a", "a1"),
        ("b", "viewer"),
        ("c", "homed"),
        ("d", "pinned"),
    ] {
        let status = assert_status(
            d.delete_scope(delete(id)).await,
            Code::FailedPrecondition,
            why,
        );
        assert!(status.message().contains("in use"), "{}", status.message());
    }
    assert_eq!(revision(&server).await, before);
    d.delete_scope(delete("e")).await.unwrap();
    assert_status(d.get_scope(get("e")).await, Code::NotFound, "e");
    d.delete_scope(delete("a1")).await.unwrap();
    d.delete_scope(delete("a")).await.unwrap();
    assert_status(d.delete_scope(delete("a")).await, Code::NotFound, "a");
    server.stop().await;
}

/// Groups: create, read, change title, list in id order, duplicate refused.
#[tokio::test]
async fn group_create_get_update_list() {
    let server = TestServer::start().await;
    create_group(&server, ACME, "b-team").await;
    create_group(&server, ACME, "a-team").await;
    let mut d = server.directory().await;
    let updated = d
        .update_group(pb::UpdateGroupRequest {
            tenant: ACME.into(),
            group: Some(pb::Group {
                id: "a-team".into(),
                title: "The A Team".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.group.unwrap().title, "The A Team");
    assert_eq!(
        d.get_group(get("a-team"))
            .await
            .unwrap()
            .into_inner()
            .group
            .unwrap()
            .title,
        "The A Team"
    );
    let listed = d
        .list_groups(pb::ListRequest {
            tenant: ACME.into(),
            page: page(1, ""),
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].id, "a-team");
    let rest = d
        .list_groups(pb::ListRequest {
            tenant: ACME.into(),
            page: page(1, &listed.next_page_token),
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.groups[0].id, "b-team");
    assert_status(
        d.create_group(pb::CreateGroupRequest {
            tenant: ACME.into(),
            group: Some(pb::Group {
                id: "a-team".into(),
                title: String::new(),
                ..Default::default()
            }),
            options: None,
        })
        .await,
        Code::AlreadyExists,
        "a-team",
    );
    assert_status(
        d.update_group(pb::UpdateGroupRequest {
            tenant: ACME.into(),
            group: Some(pb::Group {
                id: "ghost".into(),
                title: String::new(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "ghost",
    );
    server.stop().await;
}

/// Deleting a group removes its memberships (both ways), the assignments it
/// holds and those that target it as a population; members lose what it
/// gave them; nested groups survive.
#[tokio::test]
async fn group_delete_cascades_memberships_and_assignments() {
    let server = TestServer::start().await;
    for s in ["alice", "hr"] {
        create_subject(&server, ACME, s).await;
    }
    for g in ["g", "inner", "outer"] {
        create_group(&server, ACME, g).await;
    }
    manage(
        &server,
        ACME,
        vec![
            add_member("g", subject_principal("alice")),
            add_member("g", group_principal("inner")),
            add_member("outer", group_principal("g")),
            assign("editor", group_principal("g"), None),
            assign("viewer", subject_principal("hr"), population_target("g")),
            assign("viewer", group_principal("outer"), None),
        ],
    )
    .await;
    assert!(check(&server, ACME, "alice", "document:edit", "").await);
    assert!(check_over(&server, ACME, "hr", "document:read", "alice").await);

    let mut d = server.directory().await;
    d.delete_group(delete("g")).await.unwrap();
    assert_status(d.get_group(get("g")).await, Code::NotFound, "g");
    assert!(members(&server, ACME, "outer").await.is_empty());
    assert_eq!(
        assignments(&server, ACME).await,
        ["viewer group:outer scope:root"]
    );
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    assert!(!check(&server, ACME, "alice", "document:read", "").await);
    assert!(!check_over(&server, ACME, "hr", "document:read", "alice").await);
    d.get_group(get("inner")).await.unwrap();
    assert_status(
        d.list_group_members(pb::ListGroupMembersRequest {
            tenant: ACME.into(),
            group: "g".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "g",
    );
    server.stop().await;
}

/// Custom roles: created with grants, read back as custom, assignable;
/// an update takes effect for current holders; a delete removes its
/// assignments.
#[tokio::test]
async fn custom_role_lifecycle() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_subject(&server, ACME, "alice").await;
    let mut d = server.directory().await;
    let created = d
        .create_role(pb::CreateRoleRequest {
            tenant: ACME.into(),
            role: Some(pb::Role {
                rank: 7,
                self_removable: true,
                requires: vec![],
                managed_by: "users:admin".into(),
                ..custom_role(
                    "reviewer",
                    vec![grant("document:read", &[]), grant("comment:edit", &["eu"])],
                )
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let role = created.role.unwrap();
    assert!(!role.builtin);
    assert_eq!(role.rank, 7);
    assert_eq!(role.managed_by, "users:admin");
    assert_eq!(role.grants[1].scopes, ["eu"]);
    assert_eq!(
        d.get_role(get("reviewer")).await.unwrap().into_inner().role,
        Some(role)
    );
    manage(
        &server,
        ACME,
        vec![assign("reviewer", subject_principal("alice"), None)],
    )
    .await;
    assert!(check(&server, ACME, "alice", "document:read", "").await);
    assert!(check(&server, ACME, "alice", "comment:edit", "eu").await);
    assert!(!check(&server, ACME, "alice", "comment:edit", "").await);

    d.update_role(pb::UpdateRoleRequest {
        tenant: ACME.into(),
        role: Some(custom_role("reviewer", vec![grant("users:invite", &[])])),
        options: None,
    })
    .await
    .unwrap();
    assert!(check(&server, ACME, "alice", "users:invite", "").await);
    assert!(!check(&server, ACME, "alice", "document:read", "").await);
    assert!(!check(&server, ACME, "alice", "comment:edit", "eu").await);

    d.delete_role(delete("reviewer")).await.unwrap();
    assert_status(
        d.get_role(get("reviewer")).await,
        Code::NotFound,
        "reviewer",
    );
    assert!(assignments(&server, ACME).await.is_empty());
    assert!(!check(&server, ACME, "alice", "document:read", "").await);
    server.stop().await;
}

/// Builtin roles are readable but cannot be created over, changed or
/// deleted (FAILED_PRECONDITION); a custom role naming an unknown permission
/// is INVALID_ARGUMENT naming it; one pinned to an unknown scope NOT_FOUND.
#[tokio::test]
async fn builtin_roles_are_read_only_and_custom_roles_are_validated() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    let mut d = server.directory().await;
    let editor = d
        .get_role(get("editor"))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    assert!(editor.builtin);
    assert_eq!(editor.rank, 20);
    assert_eq!(editor.grants, [grant("document:edit", &[])]);
    let guest = d
        .get_role(get("guest"))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    assert_eq!(guest.class, "guest");

    let before = revision(&server).await;
    assert_status(
        d.update_role(pb::UpdateRoleRequest {
            tenant: ACME.into(),
            role: Some(custom_role("editor", vec![grant("*", &[])])),
            options: None,
        })
        .await,
        Code::FailedPrecondition,
        "builtin",
    );
    assert_status(
        d.delete_role(delete("editor")).await,
        Code::FailedPrecondition,
        "builtin",
    );
    let create = |role: pb::Role| pb::CreateRoleRequest {
        tenant: ACME.into(),
        role: Some(role),
        options: None,
    };
    assert_status(
        d.create_role(create(custom_role(
            "editor",
            vec![grant("document:read", &[])],
        )))
        .await,
        Code::AlreadyExists,
        "editor",
    );
    let unknown = assert_status(
        d.create_role(create(custom_role("r", vec![grant("document:fly", &[])])))
            .await,
        Code::InvalidArgument,
        "role.grants",
    );
    assert!(
        unknown.message().contains("document:fly"),
        "{}",
        unknown.message()
    );
    assert_status(
        d.create_role(create(custom_role("r", vec![grant("spaceship:read", &[])])))
            .await,
        Code::InvalidArgument,
        "spaceship:read",
    );
    assert_status(
        d.create_role(create(custom_role(
            "r",
            vec![grant("document:read", &["nowhere"])],
        )))
        .await,
        Code::NotFound,
        "nowhere",
    );
    assert_status(
        d.update_role(pb::UpdateRoleRequest {
            tenant: ACME.into(),
            role: Some(custom_role("ghost", vec![grant("document:read", &[])])),
            options: None,
        })
        .await,
        Code::NotFound,
        "ghost",
    );
    assert_eq!(revision(&server).await, before);
    assert!(!check(&server, ACME, "alice", "document:read", "").await);
    server.stop().await;
}

/// ListRoles lists builtin and custom roles together, in id order, each
/// flagged builtin or not.
#[tokio::test]
async fn roles_list_merges_builtin_and_custom_in_id_order() {
    let server = TestServer::start().await;
    create_role(&server, ACME, "b-custom", vec![grant("document:read", &[])]).await;
    let listed = server
        .directory()
        .await
        .list_roles(pb::ListRequest {
            tenant: ACME.into(),
            page: None,
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let roles: Vec<(&str, bool)> = listed
        .roles
        .iter()
        .map(|r| (r.id.as_str(), r.builtin))
        .collect();
    assert_eq!(
        roles,
        [
            ("admin", true),
            ("approver", true),
            ("b-custom", false),
            ("editor", true),
            ("guest", true),
            ("manager", true),
            ("viewer", true),
        ]
    );
    server.stop().await;
}

/// Tenants: created explicitly (ALREADY_EXISTS the second time) or on first
/// write, read with their settings, listed in id order with paging, and
/// their settings replaced (unknown resource types refused).
#[tokio::test]
async fn tenants_create_get_list_and_settings() {
    let server = TestServer::start().await;
    let mut d = server.directory().await;
    let created = d
        .create_tenant(pb::CreateTenantRequest {
            tenant: "globex".into(),
            settings: Some(pb::TenantSettings {
                disabled_resources: vec!["comment".into()],
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        created.tenant.unwrap().settings.unwrap().disabled_resources,
        ["comment"]
    );
    assert_status(
        d.create_tenant(pb::CreateTenantRequest {
            tenant: "globex".into(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "globex",
    );
    // Implicit creation on first write.
    create_subject(&server, "acme", "alice").await;
    let acme = d
        .get_tenant(pb::GetTenantRequest {
            tenant: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acme.tenant.unwrap().id, "acme");
    assert_status(
        d.get_tenant(pb::GetTenantRequest {
            tenant: "initech".into(),
        })
        .await,
        Code::NotFound,
        "initech",
    );

    let first = d
        .list_tenants(pb::ListTenantsRequest { page: page(1, "") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.tenants.len(), 1);
    assert_eq!(first.tenants[0].id, "acme");
    let second = d
        .list_tenants(pb::ListTenantsRequest {
            page: page(1, &first.next_page_token),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.tenants[0].id, "globex");
    assert_eq!(
        second.tenants[0]
            .settings
            .as_ref()
            .unwrap()
            .disabled_resources,
        ["comment"]
    );

    let updated = d
        .update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant: "globex".into(),
            settings: Some(pb::TenantSettings {
                disabled_resources: vec!["document".into(), "users".into()],
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut disabled = updated.tenant.unwrap().settings.unwrap().disabled_resources;
    disabled.sort();
    assert_eq!(disabled, ["document", "users"]);
    let before = revision(&server).await;
    assert_status(
        d.update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant: "globex".into(),
            settings: Some(pb::TenantSettings {
                disabled_resources: vec!["spaceship".into()],
            }),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "disabled_resources",
    );
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// ListAssignments lists a principal's own assignments (not its groups'),
/// or one role's, with expiries, and pages without loss or repetition.
#[tokio::test]
async fn list_assignments_filters_and_pages() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_subject(&server, ACME, "alice").await;
    create_subject(&server, ACME, "bob").await;
    create_group(&server, ACME, "g").await;
    let until = from_now(3600);
    manage(
        &server,
        ACME,
        vec![
            add_member("g", subject_principal("alice")),
            assign("viewer", subject_principal("alice"), None),
            assign_until(
                "editor",
                subject_principal("alice"),
                scope_target("eu"),
                until,
            ),
            assign("viewer", subject_principal("bob"), None),
            assign("manager", group_principal("g"), None),
            assign("viewer", group_principal("g"), scope_target("eu")),
        ],
    )
    .await;
    let mut d = server.directory().await;
    let list = |principal: Option<pb::Principal>, role: &str, page: Option<pb::PageRequest>| {
        pb::ListAssignmentsRequest {
            tenant: ACME.into(),
            principal,
            role: role.into(),
            page,
            at_least_revision: 0,
            target: None,
        }
    };
    let alice = d
        .list_assignments(list(subject_principal("alice"), "", None))
        .await
        .unwrap()
        .into_inner();
    let mut texts: Vec<String> = alice.assignments.iter().map(assignment_text).collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "editor subject:alice scope:eu",
            "viewer subject:alice scope:root"
        ]
    );
    let editor = alice
        .assignments
        .iter()
        .find(|a| a.role == "editor")
        .unwrap();
    assert_eq!(editor.expires_at, Some(until));

    let viewers = d
        .list_assignments(list(None, "viewer", None))
        .await
        .unwrap()
        .into_inner();
    let mut texts: Vec<String> = viewers.assignments.iter().map(assignment_text).collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "viewer group:g scope:eu",
            "viewer subject:alice scope:root",
            "viewer subject:bob scope:root"
        ]
    );

    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let reply = d
            .list_assignments(list(None, "", page(2, &token)))
            .await
            .unwrap()
            .into_inner();
        assert!(reply.assignments.len() <= 2);
        paged.extend(reply.assignments.iter().map(assignment_text));
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
    }
    let all = assignments(&server, ACME).await;
    assert_eq!(all.len(), 5);
    assert_eq!(paged, all);
    server.stop().await;
}

/// ListGroupMembers lists direct members only, subjects first then groups,
/// each in id order, and pages across the two kinds.
#[tokio::test]
async fn list_group_members_orders_subjects_then_groups() {
    let server = TestServer::start().await;
    for s in ["zed", "amy", "bob"] {
        create_subject(&server, ACME, s).await;
    }
    for g in ["team", "sub-b", "sub-a"] {
        create_group(&server, ACME, g).await;
    }
    manage(
        &server,
        ACME,
        vec![
            add_member("team", subject_principal("zed")),
            add_member("team", group_principal("sub-b")),
            add_member("team", subject_principal("amy")),
            add_member("team", group_principal("sub-a")),
            add_member("sub-a", subject_principal("bob")),
        ],
    )
    .await;
    let expected = ["subject:amy", "subject:zed", "group:sub-a", "group:sub-b"];
    assert_eq!(members(&server, ACME, "team").await, expected);

    let mut d = server.directory().await;
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let reply = d
            .list_group_members(pb::ListGroupMembersRequest {
                tenant: ACME.into(),
                group: "team".into(),
                page: page(3, &token),
                at_least_revision: 0,
            })
            .await
            .unwrap()
            .into_inner();
        paged.extend(reply.members.iter().map(principal_text));
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
    }
    assert_eq!(paged, expected);
    server.stop().await;
}

/// A directory write retried with the same idempotency key returns the
/// first attempt's revision instead of failing on what the first attempt
/// created.
#[tokio::test]
async fn directory_write_retry_with_the_same_key_replays() {
    let server = TestServer::start().await;
    let mut d = server.directory().await;
    let request = pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(pb::Subject {
            id: "alice".into(),
            ..Default::default()
        }),
        options: Some(pb::WriteOptions {
            idempotency_key: "create-alice".into(),
            ..Default::default()
        }),
    };
    let first = d
        .create_subject(request.clone())
        .await
        .unwrap()
        .into_inner();
    let retry = d
        .create_subject(request)
        .await
        .map(|r| r.into_inner().revision);
    assert_eq!(retry.map_err(|s| s.code()), Ok(first.revision));
    assert_eq!(revision(&server).await, first.revision);
    server.stop().await;
}
