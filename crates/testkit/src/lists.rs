//! Every paged list RPC behind one signature ([`List::page`]), with a data
//! set that fills each of them in two tenants ([`seed_lists`]): for tests
//! that hold all of them to the paging rules at once (tokens bound to their
//! list, tenant and query; tokens that outlive a restart).

use tonic::Status;

use crate::harness::*;

/// One paged list RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `DirectoryService/ListTenants`.
    Tenants,
    /// `DirectoryService/ListSubjects`.
    Subjects,
    /// `DirectoryService/ListScopes`.
    Scopes,
    /// `DirectoryService/ListGroups`.
    Groups,
    /// `DirectoryService/ListGroupMembers` (query: the group).
    Members,
    /// `DirectoryService/ListRoles`.
    Roles,
    /// `DirectoryService/ListAssignments` (query: a role filter).
    Assignments,
    /// `AccessService/ListSubjectsWithPermission` (query: the permission).
    Holders,
    /// `AuditService/ListAuditEntries` (tenant: its tenant filter; query:
    /// an outcome filter).
    Audit,
}

/// Which of two queries of a list to ask: each list's filters set one way
/// or another (the same for lists without filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The first.
    One,
    /// The other.
    Other,
}

/// A page as a list of item names and the next token (empty on the last).
pub type Listed = (Vec<String>, String);

impl List {
    /// Every paged list.
    pub const ALL: [List; 9] = [
        List::Tenants,
        List::Subjects,
        List::Scopes,
        List::Groups,
        List::Members,
        List::Roles,
        List::Assignments,
        List::Holders,
        List::Audit,
    ];

    /// Whether the list is of one tenant (all but the list of tenants).
    pub fn has_tenant(self) -> bool {
        self != List::Tenants
    }

    /// Whether the list has filters, so that [`Query::Other`] differs.
    pub fn has_query(self) -> bool {
        matches!(
            self,
            List::Members | List::Assignments | List::Holders | List::Audit
        )
    }

    /// One page of at most `size` items after `token`.
    pub async fn page(
        self,
        server: &TestServer,
        tenant: &str,
        query: Query,
        size: u32,
        token: &str,
    ) -> Result<Listed, Status> {
        let page = Some(pb::PageRequest {
            page_size: size,
            page_token: token.into(),
        });
        let list = pb::ListRequest {
            tenant: tenant.into(),
            page: page.clone(),
            at_least_revision: 0,
        };
        let other = query == Query::Other;
        let mut d = server.directory().await;
        let names = |items: Vec<String>, next: String| Ok((items, next));
        match self {
            List::Tenants => {
                let r = d
                    .list_tenants(pb::ListTenantsRequest { page })
                    .await?
                    .into_inner();
                names(
                    r.tenants.into_iter().map(|t| t.id).collect(),
                    r.next_page_token,
                )
            }
            List::Subjects => {
                let r = d.list_subjects(list).await?.into_inner();
                names(
                    r.subjects.into_iter().map(|s| s.id).collect(),
                    r.next_page_token,
                )
            }
            List::Scopes => {
                let r = d.list_scopes(list).await?.into_inner();
                names(
                    r.scopes.into_iter().map(|s| s.id).collect(),
                    r.next_page_token,
                )
            }
            List::Groups => {
                let r = d.list_groups(list).await?.into_inner();
                names(
                    r.groups.into_iter().map(|g| g.id).collect(),
                    r.next_page_token,
                )
            }
            List::Members => {
                let r = d
                    .list_group_members(pb::ListGroupMembersRequest {
                        tenant: tenant.into(),
                        group: if other { "g2" } else { "g1" }.into(),
                        page,
                        at_least_revision: 0,
                    })
                    .await?
                    .into_inner();
                let members = r.members.iter().map(|m| format!("{m:?}")).collect();
                names(members, r.next_page_token)
            }
            List::Roles => {
                let r = d.list_roles(list).await?.into_inner();
                names(
                    r.roles.into_iter().map(|r| r.id).collect(),
                    r.next_page_token,
                )
            }
            List::Assignments => {
                let r = d
                    .list_assignments(pb::ListAssignmentsRequest {
                        tenant: tenant.into(),
                        role: if other { "" } else { "viewer" }.into(),
                        page,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let assignments = r.assignments.iter().map(|a| format!("{a:?}")).collect();
                names(assignments, r.next_page_token)
            }
            List::Holders => {
                let r = server
                    .access()
                    .await
                    .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
                        tenant: tenant.into(),
                        permission: if other {
                            "document:edit"
                        } else {
                            "document:read"
                        }
                        .into(),
                        page_size: size,
                        page_token: token.into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let holders = r.holders.into_iter().map(|h| h.subject).collect();
                names(holders, r.next_page_token)
            }
            List::Audit => {
                let r = server
                    .audit()
                    .await
                    .list_audit_entries(pb::ListAuditEntriesRequest {
                        tenant: tenant.into(),
                        outcome: if other {
                            pb::AuditOutcome::Committed as i32
                        } else {
                            0
                        },
                        page_size: size,
                        page_token: token.into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let entries = r.entries.iter().map(|e| format!("{e:?}")).collect();
                names(entries, r.next_page_token)
            }
        }
    }
}

/// Fills every list in `tenant` with at least three items for
/// [`Query::One`] and two for [`Query::Other`]: subjects s1–s4, scopes
/// eu, us, asia, groups g1 (s1, s2, s3, group g2) and g2 (s4, s1), custom
/// roles r1 and r2, viewer for s1–s3, editor for g1 at eu and admin for
/// a1 and a2 (so at the root document:read is held by a1, a2, s1–s3 and
/// document:edit by a1 and a2), and the audit entries of those writes.
pub async fn seed_lists(server: &TestServer, tenant: &str) {
    for s in ["s1", "s2", "s3", "s4", "a1", "a2"] {
        create_subject(server, tenant, s).await;
    }
    for s in ["eu", "us", "asia"] {
        create_scope(server, tenant, s, "").await;
    }
    for g in ["g1", "g2", "g3"] {
        create_group(server, tenant, g).await;
    }
    for r in ["r1", "r2"] {
        create_role(server, tenant, r, vec![grant("document:read", &[])]).await;
    }
    manage(
        server,
        tenant,
        vec![
            add_member("g1", subject_principal("s1")),
            add_member("g1", subject_principal("s2")),
            add_member("g1", subject_principal("s3")),
            add_member("g1", group_principal("g2")),
            add_member("g2", subject_principal("s4")),
            add_member("g2", subject_principal("s1")),
            assign("viewer", subject_principal("s1"), None),
            assign("viewer", subject_principal("s2"), None),
            assign("viewer", subject_principal("s3"), None),
            assign("editor", group_principal("g1"), scope_target("eu")),
            assign("admin", subject_principal("a1"), None),
            assign("admin", subject_principal("a2"), None),
        ],
    )
    .await;
}
