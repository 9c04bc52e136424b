//! `at_least_revision`: a read naming the revision a write just returned
//! answers at that revision or later, reflecting the write; a read for the
//! next revision waits for it; a revision far ahead of anything committed is
//! FAILED_PRECONDITION.

use authzd_testkit as common;
use common::*;

/// Every read that takes at_least_revision, asked at the revision a write
/// just returned, answers at that revision or later and reflects the write.
#[tokio::test]
async fn reads_at_a_just_written_revision_reflect_the_write() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "g").await;
    let r = manage(
        &server,
        ACME,
        vec![
            add_member("g", subject_principal("alice")),
            assign("editor", group_principal("g"), None),
        ],
    )
    .await;
    let mut a = server.access().await;
    let check = a
        .check_access(pb::CheckAccessRequest {
            at_least_revision: r,
            ..check_request(ACME, "alice", "document:edit", "")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(check.allowed);
    assert!(check.revision >= r);

    let batch = a
        .batch_check_access(pb::BatchCheckAccessRequest {
            tenant: ACME.into(),
            checks: vec![pb::CheckItem {
                subject: "alice".into(),
                permission: "document:edit".into(),
                ..Default::default()
            }],
            at_least_revision: r,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(batch.results[0].allowed);
    assert!(batch.revision >= r);

    let effective = a
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: ACME.into(),
            subject: "alice".into(),
            scope: String::new(),
            at_least_revision: r,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(effective.revision >= r);
    assert!(!effective.targets.is_empty());

    let holders = a
        .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
            tenant: ACME.into(),
            permission: "document:edit".into(),
            at_least_revision: r,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(holders.revision >= r);
    assert_eq!(holders.holders.len(), 1);

    let mut d = server.directory().await;
    let members = d
        .list_group_members(pb::ListGroupMembersRequest {
            tenant: ACME.into(),
            group: "g".into(),
            page: None,
            at_least_revision: r,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(members.revision >= r);
    assert_eq!(members.members.len(), 1);
    let listed = d
        .list_assignments(pb::ListAssignmentsRequest {
            tenant: ACME.into(),
            at_least_revision: r,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.revision >= r);
    assert_eq!(listed.assignments.len(), 1);
    let subject = d
        .get_subject(pb::GetRequest {
            tenant: ACME.into(),
            id: "alice".into(),
            at_least_revision: r,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(subject.revision >= r);
    server.stop().await;
}

/// A read for the revision after the latest one waits until a write
/// commits it, then answers reflecting that write.
#[tokio::test]
async fn a_read_for_the_next_revision_waits_for_it() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    let next = revision(&server).await + 1;
    let mut a = server.access().await;
    let read = tokio::spawn(async move {
        a.check_access(pb::CheckAccessRequest {
            at_least_revision: next,
            ..check_request(ACME, "alice", "document:read", "")
        })
        .await
        .map(|r| r.into_inner())
    });
    let written = manage(
        &server,
        ACME,
        vec![assign("viewer", subject_principal("alice"), None)],
    )
    .await;
    assert_eq!(written, next);
    let reply = guard("the waiting read", read).await.unwrap().unwrap();
    assert!(reply.revision >= next);
    assert!(reply.allowed);
    server.stop().await;
}

/// A revision far ahead of the latest commit is refused at once with
/// FAILED_PRECONDITION naming at_least_revision, by every read that takes
/// it.
#[tokio::test]
async fn a_far_future_revision_is_failed_precondition() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "g").await;
    let far = revision(&server).await + 1000;
    let field = "at_least_revision";
    let mut a = server.access().await;
    assert_status(
        a.check_access(pb::CheckAccessRequest {
            at_least_revision: far,
            ..check_request(ACME, "alice", "document:read", "")
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        a.batch_check_access(pb::BatchCheckAccessRequest {
            tenant: ACME.into(),
            checks: vec![],
            at_least_revision: far,
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        a.list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: ACME.into(),
            subject: "alice".into(),
            scope: String::new(),
            at_least_revision: far,
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        a.list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
            tenant: ACME.into(),
            permission: "document:read".into(),
            at_least_revision: far,
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    let mut d = server.directory().await;
    let get = pb::GetRequest {
        tenant: ACME.into(),
        id: "alice".into(),
        at_least_revision: far,
    };
    assert_status(
        d.get_subject(get.clone()).await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        d.get_group(pb::GetRequest {
            id: "g".into(),
            ..get.clone()
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    let list = pb::ListRequest {
        tenant: ACME.into(),
        page: None,
        at_least_revision: far,
    };
    assert_status(
        d.list_subjects(list.clone()).await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        d.list_scopes(list.clone()).await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        d.list_groups(list.clone()).await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(d.list_roles(list).await, Code::FailedPrecondition, field);
    assert_status(
        d.list_group_members(pb::ListGroupMembersRequest {
            tenant: ACME.into(),
            group: "g".into(),
            page: None,
            at_least_revision: far,
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    assert_status(
        d.list_assignments(pb::ListAssignmentsRequest {
            tenant: ACME.into(),
            at_least_revision: far,
            ..Default::default()
        })
        .await,
        Code::FailedPrecondition,
        field,
    );
    server.stop().await;
}
