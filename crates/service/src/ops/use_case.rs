//! The operation table: every use case of authzd, keyed by [`UseCase`],
//! with what it asks of its caller (the token kind it needs, what it
//! reaches, whether it streams, whether it writes).
//!
//! An edge finds the use case a request names once (the gRPC guard from
//! the request path) and applies the row's [`Rule`] before the request is
//! read; the operations in [`crate::ops`] apply what only the request
//! shows (the tenant, the actor). Must not know how an edge names a use
//! case beyond [`UseCase::name`], the name logs, metrics and the audit
//! trail record on every edge.

use crate::auth::{Extent, Kind, Rule};

/// One use case of the service. Not the engine's `Operation`, which is one
/// step of a membership or directory write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UseCase {
    /// Whether a subject holds a permission at a place (with `explain`,
    /// why).
    CheckAccess,
    /// Many checks at one revision.
    BatchCheckAccess,
    /// What a subject holds, per target, with sources.
    ListEffectivePermissions,
    /// Who holds a permission at a place.
    ListSubjectsWithPermission,
    /// An atomic batch of membership and role operations.
    ManageMembership,
    /// One chunk of a bulk import.
    Import,
    /// Creates a tenant.
    CreateTenant,
    /// Reads a tenant's settings.
    GetTenant,
    /// Lists the tenants the caller may see.
    ListTenants,
    /// Replaces a tenant's settings.
    UpdateTenantSettings,
    /// Creates a subject.
    CreateSubject,
    /// Changes a subject's fields.
    UpdateSubject,
    /// Deletes a subject.
    DeleteSubject,
    /// Reads a subject.
    GetSubject,
    /// Lists a tenant's subjects.
    ListSubjects,
    /// Creates a scope.
    CreateScope,
    /// Changes a scope.
    UpdateScope,
    /// Deletes a scope.
    DeleteScope,
    /// Reads a scope.
    GetScope,
    /// Lists a tenant's scopes.
    ListScopes,
    /// Creates a group.
    CreateGroup,
    /// Changes a group's title or condition.
    UpdateGroup,
    /// Deletes a group.
    DeleteGroup,
    /// Reads a group.
    GetGroup,
    /// Lists a tenant's groups.
    ListGroups,
    /// Lists a group's direct members.
    ListGroupMembers,
    /// Creates a custom role.
    CreateRole,
    /// Changes a custom role.
    UpdateRole,
    /// Deletes a custom role.
    DeleteRole,
    /// Reads a role, builtin or custom.
    GetRole,
    /// Lists a tenant's roles, builtin and custom.
    ListRoles,
    /// Lists a tenant's assignments, filtered.
    ListAssignments,
    /// Reads the schema.
    ReadSchema,
    /// Validates and installs a schema.
    WriteSchema,
    /// A tenant's change feed.
    Watch,
    /// The audit trail, filtered.
    ListAuditEntries,
    /// A replica's snapshot of the state.
    Snapshot,
    /// A replica's stream of the changelog.
    Follow,
}

impl UseCase {
    /// Every use case, in the order above.
    pub const ALL: [UseCase; 38] = [
        UseCase::CheckAccess,
        UseCase::BatchCheckAccess,
        UseCase::ListEffectivePermissions,
        UseCase::ListSubjectsWithPermission,
        UseCase::ManageMembership,
        UseCase::Import,
        UseCase::CreateTenant,
        UseCase::GetTenant,
        UseCase::ListTenants,
        UseCase::UpdateTenantSettings,
        UseCase::CreateSubject,
        UseCase::UpdateSubject,
        UseCase::DeleteSubject,
        UseCase::GetSubject,
        UseCase::ListSubjects,
        UseCase::CreateScope,
        UseCase::UpdateScope,
        UseCase::DeleteScope,
        UseCase::GetScope,
        UseCase::ListScopes,
        UseCase::CreateGroup,
        UseCase::UpdateGroup,
        UseCase::DeleteGroup,
        UseCase::GetGroup,
        UseCase::ListGroups,
        UseCase::ListGroupMembers,
        UseCase::CreateRole,
        UseCase::UpdateRole,
        UseCase::DeleteRole,
        UseCase::GetRole,
        UseCase::ListRoles,
        UseCase::ListAssignments,
        UseCase::ReadSchema,
        UseCase::WriteSchema,
        UseCase::Watch,
        UseCase::ListAuditEntries,
        UseCase::Snapshot,
        UseCase::Follow,
    ];

    /// The use case's name, `Service/Method`: what logs, metrics, traces,
    /// refusals and the audit trail record, on every edge (the gRPC path
    /// is `/authzd.v1.` and this name).
    pub const fn name(self) -> &'static str {
        use UseCase as U;
        match self {
            U::CheckAccess => "AccessService/CheckAccess",
            U::BatchCheckAccess => "AccessService/BatchCheckAccess",
            U::ListEffectivePermissions => "AccessService/ListEffectivePermissions",
            U::ListSubjectsWithPermission => "AccessService/ListSubjectsWithPermission",
            U::ManageMembership => "MembershipService/ManageMembership",
            U::Import => "MembershipService/Import",
            U::CreateTenant => "DirectoryService/CreateTenant",
            U::GetTenant => "DirectoryService/GetTenant",
            U::ListTenants => "DirectoryService/ListTenants",
            U::UpdateTenantSettings => "DirectoryService/UpdateTenantSettings",
            U::CreateSubject => "DirectoryService/CreateSubject",
            U::UpdateSubject => "DirectoryService/UpdateSubject",
            U::DeleteSubject => "DirectoryService/DeleteSubject",
            U::GetSubject => "DirectoryService/GetSubject",
            U::ListSubjects => "DirectoryService/ListSubjects",
            U::CreateScope => "DirectoryService/CreateScope",
            U::UpdateScope => "DirectoryService/UpdateScope",
            U::DeleteScope => "DirectoryService/DeleteScope",
            U::GetScope => "DirectoryService/GetScope",
            U::ListScopes => "DirectoryService/ListScopes",
            U::CreateGroup => "DirectoryService/CreateGroup",
            U::UpdateGroup => "DirectoryService/UpdateGroup",
            U::DeleteGroup => "DirectoryService/DeleteGroup",
            U::GetGroup => "DirectoryService/GetGroup",
            U::ListGroups => "DirectoryService/ListGroups",
            U::ListGroupMembers => "DirectoryService/ListGroupMembers",
            U::CreateRole => "DirectoryService/CreateRole",
            U::UpdateRole => "DirectoryService/UpdateRole",
            U::DeleteRole => "DirectoryService/DeleteRole",
            U::GetRole => "DirectoryService/GetRole",
            U::ListRoles => "DirectoryService/ListRoles",
            U::ListAssignments => "DirectoryService/ListAssignments",
            U::ReadSchema => "SchemaService/ReadSchema",
            U::WriteSchema => "SchemaService/WriteSchema",
            U::Watch => "WatchService/Watch",
            U::ListAuditEntries => "AuditService/ListAuditEntries",
            U::Snapshot => "ReplicationService/Snapshot",
            U::Follow => "ReplicationService/Follow",
        }
    }

    /// The use case of that [`UseCase::name`], if there is one.
    pub fn named(name: &str) -> Option<UseCase> {
        UseCase::ALL.into_iter().find(|u| u.name() == name)
    }

    /// What the use case asks of its caller: the row of the table.
    pub const fn rule(self) -> Rule {
        use Extent::{AllTenants, Shared, Tenant};
        use Kind::{Admin, Read, Write};
        use UseCase as U;
        let (needs, reach) = match self {
            U::CheckAccess
            | U::BatchCheckAccess
            | U::ListEffectivePermissions
            | U::ListSubjectsWithPermission
            | U::GetTenant
            | U::GetSubject
            | U::ListSubjects
            | U::GetScope
            | U::ListScopes
            | U::GetGroup
            | U::ListGroups
            | U::ListGroupMembers
            | U::GetRole
            | U::ListRoles
            | U::ListAssignments
            | U::Watch => (Read, Tenant),
            U::ManageMembership
            | U::Import
            | U::CreateSubject
            | U::UpdateSubject
            | U::DeleteSubject
            | U::CreateScope
            | U::UpdateScope
            | U::DeleteScope
            | U::CreateGroup
            | U::UpdateGroup
            | U::DeleteGroup
            | U::CreateRole
            | U::UpdateRole
            | U::DeleteRole => (Write, Tenant),
            U::CreateTenant | U::UpdateTenantSettings => (Admin, Tenant),
            // A bound token sees its own tenant only; the listing narrows.
            U::ListTenants => (Read, Shared),
            // The catalog is shared by every tenant and holds no tenant's data.
            U::ReadSchema => (Read, Shared),
            U::WriteSchema => (Admin, AllTenants),
            // The trail names every caller and actor: admin only, and a
            // tenant-bound token sees its tenant's entries alone.
            U::ListAuditEntries => (Admin, Shared),
            // A replica's streams: a tenant-bound token is served its
            // tenant only (the operation narrows the request).
            U::Snapshot | U::Follow => (Read, Shared),
        };
        Rule {
            name: self.name(),
            needs,
            reach,
            watch: matches!(self, U::Watch | U::Snapshot | U::Follow),
            // The audit listing needs admin yet writes nothing.
            writes: matches!(needs, Write | Admin) && !matches!(self, U::ListAuditEntries),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "unit tests: a failed expectation is a failed test"
    )]
    use super::*;

    /// Names are unique and find their use case back.
    #[test]
    fn names_are_unique_and_round_trip() {
        for u in UseCase::ALL {
            assert_eq!(UseCase::named(u.name()), Some(u));
        }
        let mut names: Vec<&str> = UseCase::ALL.iter().map(|u| u.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), UseCase::ALL.len());
        assert_eq!(UseCase::named("AccessService/Nope"), None);
    }

    /// The rows docs/tokens.md states: writes need a write
    /// token, schema and tenants an admin one, reads a read one; only the
    /// schema write reaches every tenant; only streams count as streams.
    #[test]
    fn the_table_holds_the_documented_rules() {
        let rule = |u: UseCase| u.rule();
        assert_eq!(rule(UseCase::CheckAccess).needs, Kind::Read);
        assert_eq!(rule(UseCase::ManageMembership).needs, Kind::Write);
        assert!(rule(UseCase::ManageMembership).writes);
        assert_eq!(rule(UseCase::WriteSchema).needs, Kind::Admin);
        assert_eq!(rule(UseCase::CreateTenant).needs, Kind::Admin);
        assert_eq!(rule(UseCase::ListAuditEntries).needs, Kind::Admin);
        assert!(!rule(UseCase::ListAuditEntries).writes);
        let every_tenant: Vec<UseCase> = UseCase::ALL
            .into_iter()
            .filter(|u| u.rule().reach == Extent::AllTenants)
            .collect();
        assert_eq!(every_tenant, [UseCase::WriteSchema]);
        let streams: Vec<UseCase> = UseCase::ALL
            .into_iter()
            .filter(|u| u.rule().watch)
            .collect();
        assert_eq!(
            streams,
            [UseCase::Watch, UseCase::Snapshot, UseCase::Follow]
        );
        for u in UseCase::ALL {
            assert_eq!(
                u.rule().writes,
                u.rule().needs != Kind::Read && u != UseCase::ListAuditEntries,
                "{u:?}"
            );
        }
    }
}
