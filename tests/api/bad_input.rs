//! Malformed input, RPC by RPC: every refusal carries the right status code
//! and a message naming the offending field (docs/limits.md), and changes
//! nothing.

use authzd_testkit as common;
use common::*;

/// 257 bytes: one over the id limit.
fn long() -> String {
    "x".repeat(257)
}

/// CheckAccess: empty tenant, subject or permission; malformed, unknown or
/// `*` permissions; unknown scope or target subject; both scope and
/// target_subject.
#[tokio::test]
async fn check_access() {
    let server = seeded_server().await;
    let mut a = server.access().await;
    let req = || check_request(ACME, "alice", "document:read", "");
    let invalid = [
        (
            pb::CheckAccessRequest {
                tenant: "".into(),
                ..req()
            },
            "tenant",
        ),
        (
            pb::CheckAccessRequest {
                subject: "".into(),
                ..req()
            },
            "subject",
        ),
        (
            pb::CheckAccessRequest {
                permission: "".into(),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                permission: "document".into(),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                permission: "a:b:c".into(),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                permission: "document:fly".into(),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                permission: "spaceship:read".into(),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                permission: "*".into(),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                permission: format!("document:{}", "r".repeat(65)),
                ..req()
            },
            "permission",
        ),
        (
            pb::CheckAccessRequest {
                scope: "eu".into(),
                target_subject: "alice".into(),
                ..req()
            },
            "target_subject",
        ),
    ];
    for (request, field) in invalid {
        for explain in [false, true] {
            let request = pb::CheckAccessRequest {
                explain,
                ..request.clone()
            };
            let status = assert_status(
                a.check_access(request.clone()).await,
                Code::InvalidArgument,
                field,
            );
            assert!(
                status.message().starts_with(&format!("{field}:")),
                "{request:?}: {}",
                status.message()
            );
        }
    }
    assert_status(
        a.check_access(pb::CheckAccessRequest {
            scope: "nowhere".into(),
            ..req()
        })
        .await,
        Code::NotFound,
        "scope \"nowhere\"",
    );
    assert_status(
        a.check_access(pb::CheckAccessRequest {
            target_subject: "ghost".into(),
            ..req()
        })
        .await,
        Code::NotFound,
        "ghost",
    );
    assert_status(
        a.check_access(pb::CheckAccessRequest {
            tenant: "nobody-inc".into(),
            ..req()
        })
        .await,
        Code::NotFound,
        "nobody-inc",
    );
    server.stop().await;
}

/// CheckAccess refuses ids over 256 bytes (tenant, subject, scope,
/// target_subject) as malformed, naming the field, like the write path does.
#[tokio::test]
async fn check_access_refuses_overlong_ids() {
    let server = seeded_server().await;
    let mut a = server.access().await;
    let req = || check_request(ACME, "alice", "document:read", "");
    for (request, field) in [
        (
            pb::CheckAccessRequest {
                tenant: long(),
                ..req()
            },
            "tenant",
        ),
        (
            pb::CheckAccessRequest {
                subject: long(),
                ..req()
            },
            "subject",
        ),
        (
            pb::CheckAccessRequest {
                scope: long(),
                ..req()
            },
            "scope",
        ),
        (
            pb::CheckAccessRequest {
                target_subject: long(),
                ..req()
            },
            "target_subject",
        ),
    ] {
        assert_status(a.check_access(request).await, Code::InvalidArgument, field);
    }
    server.stop().await;
}

/// BatchCheckAccess: empty tenant, more than 1000 checks, and a bad item
/// named by its index (and nothing answered).
#[tokio::test]
async fn batch_check_access() {
    let server = seeded_server().await;
    let mut a = server.access().await;
    let item = |subject: &str, permission: &str| pb::CheckItem {
        subject: subject.into(),
        permission: permission.into(),
        ..Default::default()
    };
    let req = |checks: Vec<pb::CheckItem>| pb::BatchCheckAccessRequest {
        tenant: ACME.into(),
        checks,
        at_least_revision: 0,
    };
    assert_status(
        a.batch_check_access(pb::BatchCheckAccessRequest {
            tenant: "".into(),
            ..req(vec![item("alice", "document:read")])
        })
        .await,
        Code::InvalidArgument,
        "tenant",
    );
    a.batch_check_access(req(vec![item("alice", "document:read"); 1000]))
        .await
        .unwrap();
    assert_status(
        a.batch_check_access(req(vec![item("alice", "document:read"); 1001]))
            .await,
        Code::InvalidArgument,
        "checks: at most 1000",
    );
    for (bad, field) in [
        (item("", "document:read"), "checks[1].subject"),
        (item("alice", ""), "checks[1].permission"),
        (item("alice", "document"), "checks[1]"),
        (item("alice", "a:b:c"), "checks[1]"),
        (item("alice", "document:fly"), "checks[1]"),
        (
            pb::CheckItem {
                scope: "eu".into(),
                target_subject: "alice".into(),
                ..item("alice", "document:read")
            },
            "checks[1].target_subject",
        ),
    ] {
        assert_status(
            a.batch_check_access(req(vec![item("alice", "document:read"), bad]))
                .await,
            Code::InvalidArgument,
            field,
        );
    }
    assert_status(
        a.batch_check_access(req(vec![
            item("alice", "document:read"),
            pb::CheckItem {
                scope: "nowhere".into(),
                ..item("alice", "document:read")
            },
        ]))
        .await,
        Code::NotFound,
        "checks[1]",
    );
    server.stop().await;
}

/// ListEffectivePermissions: empty tenant or subject; unknown subject or
/// scope are NOT_FOUND.
#[tokio::test]
async fn list_effective_permissions() {
    let server = seeded_server().await;
    let mut a = server.access().await;
    let req = || pb::ListEffectivePermissionsRequest {
        tenant: ACME.into(),
        subject: "alice".into(),
        scope: String::new(),
        at_least_revision: 0,
    };
    assert_status(
        a.list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: "".into(),
            ..req()
        })
        .await,
        Code::InvalidArgument,
        "tenant",
    );
    assert_status(
        a.list_effective_permissions(pb::ListEffectivePermissionsRequest {
            subject: "".into(),
            ..req()
        })
        .await,
        Code::InvalidArgument,
        "subject",
    );
    assert_status(
        a.list_effective_permissions(pb::ListEffectivePermissionsRequest {
            subject: "ghost".into(),
            ..req()
        })
        .await,
        Code::NotFound,
        "ghost",
    );
    assert_status(
        a.list_effective_permissions(pb::ListEffectivePermissionsRequest {
            scope: "nowhere".into(),
            ..req()
        })
        .await,
        Code::NotFound,
        "nowhere",
    );
    server.stop().await;
}

/// ListSubjectsWithPermission: empty tenant or permission, malformed or
/// unknown permission, both scope and target_subject, page_size over 1000.
#[tokio::test]
async fn list_subjects_with_permission() {
    let server = seeded_server().await;
    let mut a = server.access().await;
    let req = || pb::ListSubjectsWithPermissionRequest {
        tenant: ACME.into(),
        permission: "document:read".into(),
        ..Default::default()
    };
    type R = pb::ListSubjectsWithPermissionRequest;
    for (request, field) in [
        (
            R {
                tenant: "".into(),
                ..req()
            },
            "tenant",
        ),
        (
            R {
                permission: "".into(),
                ..req()
            },
            "permission",
        ),
        (
            R {
                permission: "document".into(),
                ..req()
            },
            "permission",
        ),
        (
            R {
                permission: "a:b:c".into(),
                ..req()
            },
            "permission",
        ),
        (
            R {
                permission: "document:fly".into(),
                ..req()
            },
            "permission",
        ),
        (
            R {
                scope: "eu".into(),
                target_subject: "alice".into(),
                ..req()
            },
            "target_subject",
        ),
        (
            R {
                page_size: 1001,
                ..req()
            },
            "page_size",
        ),
    ] {
        let status = assert_status(
            a.list_subjects_with_permission(request).await,
            Code::InvalidArgument,
            field,
        );
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{}",
            status.message()
        );
    }
    a.list_subjects_with_permission(R {
        page_size: 1000,
        ..req()
    })
    .await
    .unwrap();
    assert_status(
        a.list_subjects_with_permission(R {
            scope: "nowhere".into(),
            ..req()
        })
        .await,
        Code::NotFound,
        "nowhere",
    );
    server.stop().await;
}

/// ManageMembership: bad tenant ids, empty or oversized batches, an unset
/// operation, and malformed fields inside an operation, each named by its
/// path; nothing is written.
#[tokio::test]
async fn manage_membership() {
    let server = seeded_server().await;
    let before = revision(&server).await;
    let mut m = server.membership().await;
    let ok_op = || add_member("g", subject_principal("alice"));
    for (tenant, field) in [
        ("".to_string(), "tenant"),
        (long(), "tenant"),
        ("a b".into(), "tenant"),
    ] {
        assert_status(
            m.manage_membership(batch(&tenant, vec![ok_op()], None))
                .await,
            Code::InvalidArgument,
            field,
        );
    }
    assert_status(
        m.manage_membership(batch(ACME, vec![], None)).await,
        Code::InvalidArgument,
        "operations",
    );
    assert_status(
        m.manage_membership(batch(
            ACME,
            vec![ok_op(); authzd_core::limits::MAX_BATCH_OPERATIONS + 1],
            None,
        ))
        .await,
        Code::InvalidArgument,
        &format!(
            "operations: at most {}",
            authzd_core::limits::MAX_BATCH_OPERATIONS
        ),
    );
    let unset = pb::MembershipOperation { operation: None };
    let no_member = add_member("g", None);
    let empty_principal = add_member("g", Some(pb::Principal { kind: None }));
    let bad_precondition = {
        let mut op = ok_op();
        if let Some(pb::membership_operation::Operation::AddMember(a)) = op.operation.as_mut() {
            a.precondition = 7;
        }
        op
    };
    let bad_expiry = {
        let mut op = assign("viewer", subject_principal("alice"), None);
        if let Some(pb::membership_operation::Operation::AssignRole(a)) = op.operation.as_mut() {
            a.expires_at = Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            });
        }
        op
    };
    for (op, field) in [
        (unset, "operations[1]"),
        (
            add_member("", subject_principal("alice")),
            "operations[1].add_member.group",
        ),
        (
            add_member(&long(), subject_principal("alice")),
            "operations[1].add_member.group",
        ),
        (no_member, "operations[1].add_member.member"),
        (empty_principal, "operations[1].add_member.member"),
        (
            remove_member("g", subject_principal(&long())),
            "operations[1].remove_member.member.subject",
        ),
        (
            assign("", subject_principal("alice"), None),
            "operations[1].assign_role.role",
        ),
        (
            assign("viewer", subject_principal("al ice"), None),
            "operations[1].assign_role.principal.subject",
        ),
        (
            assign("viewer", subject_principal("alice"), scope_target(&long())),
            "operations[1].assign_role.target.scope",
        ),
        (
            assign("viewer", subject_principal("alice"), population_target("")),
            "operations[1].assign_role.target.population",
        ),
        (bad_expiry, "operations[1].assign_role.expires_at"),
        (
            unassign("viewer", group_principal(""), None),
            "operations[1].unassign_role.principal.group",
        ),
        (bad_precondition, "operations[1].add_member.precondition"),
    ] {
        assert_status(
            m.manage_membership(batch(ACME, vec![ok_op(), op], None))
                .await,
            Code::InvalidArgument,
            field,
        );
    }
    let options = |o: pb::WriteOptions| batch(ACME, vec![ok_op()], Some(o));
    assert_status(
        m.manage_membership(options(pb::WriteOptions {
            idempotency_key: "k".repeat(129),
            ..Default::default()
        }))
        .await,
        Code::InvalidArgument,
        "options.idempotency_key",
    );
    assert_status(
        m.manage_membership(options(pb::WriteOptions {
            actor: long(),
            ..Default::default()
        }))
        .await,
        Code::InvalidArgument,
        "options.actor",
    );
    // An actor that is well formed but names no subject is NOT_FOUND.
    assert_status(
        m.manage_membership(options(pb::WriteOptions {
            actor: "ghost".into(),
            ..Default::default()
        }))
        .await,
        Code::NotFound,
        "options.actor: subject ghost not found in tenant acme",
    );
    assert_eq!(revision(&server).await, before);
    assert!(members(&server, ACME, "g").await.is_empty());
    server.stop().await;
}

/// Directory writes: missing bodies, empty or over-long ids, unknown enum
/// values, too many attributes, malformed role grants, bad settings, bad
/// update masks; nothing is written.
#[tokio::test]
async fn directory_writes() {
    let server = seeded_server().await;
    let before = revision(&server).await;
    let mut d = server.directory().await;
    let subject = |s: Option<pb::Subject>| pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: s,
        options: None,
    };
    let with_id = |id: String| pb::Subject {
        id,
        ..Default::default()
    };
    for (request, field) in [
        (subject(None), "subject"),
        (subject(Some(with_id("".into()))), "subject.id"),
        (subject(Some(with_id(long()))), "subject.id"),
        (
            subject(Some(pb::Subject {
                kind: 9,
                ..with_id("bob".into())
            })),
            "subject.kind",
        ),
        (
            subject(Some(pb::Subject {
                status: 9,
                ..with_id("bob".into())
            })),
            "subject.status",
        ),
        (
            subject(Some(pb::Subject {
                attributes: (0..65)
                    .map(|i| (format!("k{i}"), "v".to_string()))
                    .collect(),
                ..with_id("bob".into())
            })),
            "subject.attributes",
        ),
        (
            subject(Some(pb::Subject {
                home_scope: long(),
                ..with_id("bob".into())
            })),
            "subject.home_scope",
        ),
        (
            pb::CreateSubjectRequest {
                tenant: "".into(),
                ..subject(Some(with_id("bob".into())))
            },
            "tenant",
        ),
        (
            pb::CreateSubjectRequest {
                tenant: long(),
                ..subject(Some(with_id("bob".into())))
            },
            "tenant",
        ),
    ] {
        assert_status(
            d.create_subject(request).await,
            Code::InvalidArgument,
            field,
        );
    }
    assert_status(
        d.update_subject(pb::UpdateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(with_id("alice".into())),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["id".into()],
            }),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "update_mask",
    );
    assert_status(
        d.create_scope(pb::CreateScopeRequest {
            tenant: ACME.into(),
            scope: Some(pb::Scope {
                id: "s".into(),
                r#type: "t".repeat(1025),
                parent: String::new(),
            }),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "scope.type",
    );
    assert_status(
        d.create_scope(pb::CreateScopeRequest {
            tenant: ACME.into(),
            scope: Some(pb::Scope {
                id: "s".into(),
                r#type: "unit".into(),
                parent: "p q".into(),
            }),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "scope.parent",
    );
    assert_status(
        d.create_group(pb::CreateGroupRequest {
            tenant: ACME.into(),
            group: Some(pb::Group {
                id: long(),
                title: String::new(),
                ..Default::default()
            }),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "group.id",
    );
    let role = |grants: Vec<pb::Grant>| pb::CreateRoleRequest {
        tenant: ACME.into(),
        role: Some(custom_role("r", grants)),
        options: None,
    };
    for (request, field) in [
        (
            role(vec![grant("document", &[])]),
            "role.grants[0].permission",
        ),
        (role(vec![grant("a:b:c", &[])]), "role.grants[0].permission"),
        (
            role(vec![grant("document:read", &[]), grant("", &[])]),
            "role.grants[1].permission",
        ),
        (
            role(vec![grant("document:read", &[""])]),
            "role.grants[0].scopes",
        ),
        (role(vec![grant("document:fly", &[])]), "role.grants"),
        (
            pb::CreateRoleRequest {
                role: Some(pb::Role {
                    requires: vec!["nope".into()],
                    ..custom_role("r", vec![])
                }),
                ..role(vec![])
            },
            "role.requires",
        ),
        (
            pb::CreateRoleRequest {
                role: Some(pb::Role {
                    managed_by: "x:y:z".into(),
                    ..custom_role("r", vec![])
                }),
                ..role(vec![])
            },
            "role.managed_by",
        ),
        (
            pb::CreateRoleRequest {
                role: Some(custom_role("", vec![])),
                ..role(vec![])
            },
            "role.id",
        ),
        (
            role((0..257).map(|_| grant("document:read", &[])).collect()),
            "role.grants",
        ),
    ] {
        assert_status(d.create_role(request).await, Code::InvalidArgument, field);
    }
    assert_status(
        d.update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant: ACME.into(),
            settings: Some(pb::TenantSettings {
                disabled_resources: vec!["not a name".into()],
            }),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "settings.disabled_resources",
    );
    assert_status(
        d.delete_subject(pb::DeleteRequest {
            tenant: ACME.into(),
            id: "".into(),
            options: None,
        })
        .await,
        Code::InvalidArgument,
        "id",
    );
    assert_status(
        d.create_tenant(pb::CreateTenantRequest {
            tenant: long(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "tenant",
    );
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// Directory listings: page_size over 1000 and page tokens this server did
/// not issue are INVALID_ARGUMENT naming the page field.
#[tokio::test]
async fn directory_paging() {
    let server = seeded_server().await;
    let mut d = server.directory().await;
    let too_big = Some(pb::PageRequest {
        page_size: 1001,
        page_token: String::new(),
    });
    let list = pb::ListRequest {
        tenant: ACME.into(),
        page: too_big.clone(),
        at_least_revision: 0,
    };
    let field = "page.page_size";
    assert_status(
        d.list_subjects(list.clone()).await,
        Code::InvalidArgument,
        field,
    );
    assert_status(
        d.list_scopes(list.clone()).await,
        Code::InvalidArgument,
        field,
    );
    assert_status(
        d.list_groups(list.clone()).await,
        Code::InvalidArgument,
        field,
    );
    assert_status(d.list_roles(list).await, Code::InvalidArgument, field);
    assert_status(
        d.list_tenants(pb::ListTenantsRequest {
            page: too_big.clone(),
        })
        .await,
        Code::InvalidArgument,
        field,
    );
    assert_status(
        d.list_assignments(pb::ListAssignmentsRequest {
            tenant: ACME.into(),
            page: too_big.clone(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        field,
    );
    assert_status(
        d.list_group_members(pb::ListGroupMembersRequest {
            tenant: ACME.into(),
            group: "g".into(),
            page: too_big,
            at_least_revision: 0,
        })
        .await,
        Code::InvalidArgument,
        field,
    );
    let forged = Some(pb::PageRequest {
        page_size: 10,
        page_token: "forged".into(),
    });
    let forged_list = pb::ListRequest {
        tenant: ACME.into(),
        page: forged.clone(),
        at_least_revision: 0,
    };
    let token_field = "page.page_token";
    assert_status(
        d.list_subjects(forged_list.clone()).await,
        Code::InvalidArgument,
        token_field,
    );
    assert_status(
        d.list_scopes(forged_list.clone()).await,
        Code::InvalidArgument,
        token_field,
    );
    assert_status(
        d.list_groups(forged_list.clone()).await,
        Code::InvalidArgument,
        token_field,
    );
    assert_status(
        d.list_roles(forged_list).await,
        Code::InvalidArgument,
        token_field,
    );
    assert_status(
        d.list_tenants(pb::ListTenantsRequest {
            page: forged.clone(),
        })
        .await,
        Code::InvalidArgument,
        token_field,
    );
    // A token that decodes but was cut short, and one of another scheme.
    for token in ["p16", "p1zz", "alice"] {
        assert_status(
            server
                .access()
                .await
                .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
                    tenant: ACME.into(),
                    permission: "document:read".into(),
                    page_token: token.into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "page_token",
        );
    }
    assert_status(
        d.list_assignments(pb::ListAssignmentsRequest {
            tenant: ACME.into(),
            page: forged.clone(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "page.page_token",
    );
    assert_status(
        d.list_group_members(pb::ListGroupMembersRequest {
            tenant: ACME.into(),
            group: "g".into(),
            page: forged,
            at_least_revision: 0,
        })
        .await,
        Code::InvalidArgument,
        "page.page_token",
    );
    assert_status(
        d.list_assignments(pb::ListAssignmentsRequest {
            tenant: ACME.into(),
            principal: Some(pb::Principal { kind: None }),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "principal",
    );
    server.stop().await;
}

/// Directory reads refuse an empty tenant as malformed input
/// (INVALID_ARGUMENT naming `tenant`), not as an unknown tenant.
#[tokio::test]
async fn directory_reads_refuse_an_empty_tenant() {
    let server = seeded_server().await;
    let mut d = server.directory().await;
    let get = pb::GetRequest {
        tenant: String::new(),
        id: "alice".into(),
        at_least_revision: 0,
    };
    assert_status(
        d.get_subject(get.clone()).await,
        Code::InvalidArgument,
        "tenant",
    );
    assert_status(
        d.get_tenant(pb::GetTenantRequest {
            tenant: String::new(),
        })
        .await,
        Code::InvalidArgument,
        "tenant",
    );
    assert_status(
        d.list_subjects(pb::ListRequest::default()).await,
        Code::InvalidArgument,
        "tenant",
    );
    server.stop().await;
}

/// Watch: an empty or malformed tenant, or a malformed subject filter, is
/// refused before the stream starts.
#[tokio::test]
async fn watch() {
    let server = seeded_server().await;
    let mut w = server.watch().await;
    for (request, field) in [
        (pb::WatchRequest::default(), "tenant"),
        (
            pb::WatchRequest {
                tenant: long(),
                ..Default::default()
            },
            "tenant",
        ),
        (
            pb::WatchRequest {
                tenant: ACME.into(),
                subject: long(),
                ..Default::default()
            },
            "subject",
        ),
    ] {
        // A stream is not Debug: keep only whether the call was accepted.
        let opened = w.watch(request).await.map(|r| r.map(|_| "a stream"));
        assert_status(opened, Code::InvalidArgument, field);
    }
    server.stop().await;
}

/// WriteSchema: a schema over 1 MiB is refused naming `schema`.
#[tokio::test]
async fn write_schema() {
    let server = seeded_server().await;
    let huge = format!("# {}\n", "x".repeat(1 << 20));
    assert_status(
        server
            .schema()
            .await
            .write_schema(pb::WriteSchemaRequest {
                schema: huge,
                dry_run: true,
                expected_revision: 0,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "schema",
    );
    server.stop().await;
}

/// A request over the 4 MiB decoding limit is RESOURCE_EXHAUSTED (a limit,
/// as gRPC names it), for a unary RPC and for Watch, and writes nothing.
#[tokio::test]
async fn oversized_requests_are_resource_exhausted() {
    let server = seeded_server().await;
    let before = revision(&server).await;
    let huge = "x".repeat(authzd_core::limits::MAX_MESSAGE_BYTES + 1);
    let status = assert_status(
        server
            .directory()
            .await
            .max_encoding_message_size(usize::MAX)
            .create_group(pb::CreateGroupRequest {
                tenant: ACME.into(),
                group: Some(pb::Group {
                    id: "big".into(),
                    title: huge.clone(),
                    condition: String::new(),
                }),
                options: None,
            })
            .await,
        Code::ResourceExhausted,
        "request: the message is too large",
    );
    assert!(status.message().contains("4194304"), "{status:?}");
    assert_status(
        server
            .watch()
            .await
            .max_encoding_message_size(usize::MAX)
            .watch(pb::WatchRequest {
                tenant: ACME.into(),
                subject: huge,
                ..Default::default()
            })
            .await,
        Code::ResourceExhausted,
        "request: the message is too large",
    );
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// An unknown permission in a check, and an unknown role in a write, come
/// with the closest known name, as the schema checker suggests them.
#[tokio::test]
async fn unknown_names_in_requests_suggest_the_closest() {
    let server = seeded_server().await;
    assert_status(
        server
            .access()
            .await
            .check_access(check_request(ACME, "alice", "document:eidt", ""))
            .await,
        Code::InvalidArgument,
        "permission: unknown permission document:eidt; did you mean \"document:edit\"?",
    );
    let before = revision(&server).await;
    assert_status(
        server
            .membership()
            .await
            .manage_membership(batch(
                ACME,
                vec![assign("edtor", subject_principal("alice"), None)],
                None,
            ))
            .await,
        Code::NotFound,
        "role \"edtor\" not found; did you mean \"editor\"?",
    );
    assert_status(
        server
            .directory()
            .await
            .get_role(pb::GetRequest {
                tenant: ACME.into(),
                id: "viewr".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "did you mean \"viewer\"?",
    );
    assert_eq!(revision(&server).await, before);
    server.stop().await;
}

/// What Rust's debug formatting leaves in a message: a newtype's or an
/// enum's name with its parenthesis, an `Option`, a struct, or a string
/// escaped inside another value's debug form (its quotes, or an escape
/// escaped again).
const DEBUG_SHAPES: [&str; 13] = [
    "SubjectId(",
    "TenantId(",
    "GroupId(",
    "ScopeId(",
    "RoleId(",
    "Name(",
    "Permission(",
    "Specific {",
    "Some(",
    "None",
    "\\\"",
    "\\\\",
    "InvalidValue",
];

fn assert_plain(what: &str, message: &str) {
    for shape in DEBUG_SHAPES {
        assert!(
            !message.contains(shape),
            "{what}: {shape} in the message: {message}"
        );
    }
}

/// Refusals of bad input to several RPCs, and the schema checker's
/// errors, show names as text (quoted where the message needs it), never
/// in Rust's debug form.
#[tokio::test]
async fn no_message_shows_debug_formatting() {
    let server = seeded_server().await;
    let mut refusals: Vec<(&str, tonic::Status)> = Vec::new();
    let mut a = server.access().await;
    let checks = [
        ("unknown tenant", "nosuch", "alice", "document:read", ""),
        ("subject with a space", ACME, "bad id", "document:read", ""),
        (
            "bidirectional control",
            ACME,
            "x\u{202e}y",
            "document:read",
            "",
        ),
        ("unknown type", ACME, "alice", "nosuchtype:read", ""),
        ("unknown verb", ACME, "alice", "document:eidt", ""),
        ("malformed permission", ACME, "alice", "document", ""),
        ("bad name", ACME, "alice", "docu ment:read", ""),
        ("unknown scope", ACME, "alice", "document:read", "nowhere"),
    ];
    for (what, tenant, subject, permission, scope) in checks {
        let request = check_request(tenant, subject, permission, scope);
        refusals.push((what, a.check_access(request).await.unwrap_err()));
    }
    refusals.push((
        "holders of an unknown permission",
        a.list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
            tenant: ACME.into(),
            permission: "nosuchtype:read".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ));
    let mut m = server.membership().await;
    let actor = pb::WriteOptions {
        actor: "ghost".into(),
        ..Default::default()
    };
    for (what, request) in [
        (
            "unknown actor",
            batch(
                ACME,
                vec![add_member("g", subject_principal("alice"))],
                Some(actor),
            ),
        ),
        (
            "unknown group",
            batch(
                ACME,
                vec![add_member("nogroup", subject_principal("alice"))],
                None,
            ),
        ),
        (
            "unknown member",
            batch(
                ACME,
                vec![add_member("g", subject_principal("nobody"))],
                None,
            ),
        ),
        (
            "unknown role",
            batch(
                ACME,
                vec![assign("nosuchrole", subject_principal("alice"), None)],
                None,
            ),
        ),
    ] {
        refusals.push((what, m.manage_membership(request).await.unwrap_err()));
    }
    let mut d = server.directory().await;
    for (what, condition) in [
        ("unknown variable", "nosuchvar == 1"),
        ("unknown function", "nosuchfn(id)"),
        ("unknown field", "id.x == 1"),
    ] {
        let request = pb::CreateGroupRequest {
            tenant: ACME.into(),
            group: Some(pb::Group {
                id: "cond".into(),
                title: String::new(),
                condition: condition.into(),
            }),
            options: None,
        };
        refusals.push((what, d.create_group(request).await.unwrap_err()));
    }
    let attributes = [(String::new(), "x".to_string())].into();
    let request = pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(pb::Subject {
            id: "bob".into(),
            attributes,
            ..Default::default()
        }),
        options: None,
    };
    refusals.push((
        "empty attribute key",
        d.create_subject(request).await.unwrap_err(),
    ));
    let request = pb::GetRequest {
        tenant: ACME.into(),
        id: "nobody".into(),
        ..Default::default()
    };
    refusals.push((
        "get an unknown subject",
        d.get_subject(request).await.unwrap_err(),
    ));
    let bad_schema = "[resources.doc]\nlevels = [\"read\", \"read\"]\nfollows = [\"nosuch\"]\n\n\
                      [role_classes.c]\nper_subject = \"sometimes\"\n\n\
                      [roles.r]\ngrants = [\"doc:write\", \"nosuch:read\"]\nclass = \"noclass\"\n";
    let request = pb::WriteSchemaRequest {
        schema: bad_schema.into(),
        dry_run: true,
        ..Default::default()
    };
    let schema = server
        .schema()
        .await
        .write_schema(request)
        .await
        .unwrap_err();
    refusals.push(("WriteSchema", schema));

    for (what, status) in &refusals {
        assert_plain(what, status.message());
    }
    // The checker reports every error; each names what it is about.
    let checked = authzd_core::schema::load("bad.toml", bad_schema)
        .unwrap_err()
        .to_string();
    for expected in [
        "\"read\" is listed twice",
        "\"nosuch\"",
        "\"sometimes\"",
        "\"noclass\"",
    ] {
        assert!(checked.contains(expected), "{expected}: {checked}");
    }
    assert_plain("schema check", &checked);
    server.stop().await;
}

/// Every paged list refuses, as INVALID_ARGUMENT naming `page_token`, a
/// token edited in one place, one cut short, one another list issued, one
/// issued for another tenant and one issued under other filters: never a
/// page from somewhere else. Its own token still gives the next page.
#[tokio::test]
async fn page_tokens_are_bound_to_their_list_tenant_and_query() {
    use common::lists::{List, Query, seed_lists};
    let server = TestServer::start().await;
    seed_lists(&server, ACME).await;
    seed_lists(&server, "globex").await;
    let mut tokens = Vec::new();
    for list in List::ALL {
        let (items, token) = list.page(&server, ACME, Query::One, 1, "").await.unwrap();
        assert_eq!(items.len(), 1, "{list:?}");
        assert!(!token.is_empty(), "{list:?} issued no token");
        tokens.push(token);
    }
    for (i, list) in List::ALL.into_iter().enumerate() {
        let token = &tokens[i];
        let refused = |what: &str, result: Result<common::lists::Listed, tonic::Status>| {
            let status = result
                .err()
                .unwrap_or_else(|| panic!("{list:?}: {what} accepted"));
            assert_eq!(status.code(), Code::InvalidArgument, "{list:?}: {what}");
            assert!(
                status.message().contains("page_token"),
                "{list:?}: {what}: {}",
                status.message()
            );
        };
        let server = &server;
        let page = |tenant: &'static str, query: Query, token: String| async move {
            list.page(server, tenant, query, 1, &token).await
        };
        for at in [0, token.len() / 2, token.len() - 1] {
            let mut edited = token.clone().into_bytes();
            edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap();
            refused("an edited token", page(ACME, Query::One, edited).await);
        }
        let cut = token[..token.len() - 2].to_string();
        refused("a cut token", page(ACME, Query::One, cut).await);
        let another = tokens[(i + 1) % tokens.len()].clone();
        refused(
            "another list's token",
            page(ACME, Query::One, another).await,
        );
        if list.has_tenant() {
            refused(
                "another tenant's token",
                page("globex", Query::One, token.clone()).await,
            );
        }
        if list.has_query() {
            refused(
                "another query's token",
                page(ACME, Query::Other, token.clone()).await,
            );
        }
        let (next, _) = page(ACME, Query::One, token.clone()).await.unwrap();
        assert_eq!(next.len(), 1, "{list:?}");
    }
    server.stop().await;
}
