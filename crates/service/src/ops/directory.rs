//! The directory's use cases: create, change, delete, read and list
//! tenants, subjects, scopes, groups and custom roles, list a group's
//! members and a tenant's assignments.
//!
//! A write is one engine operation through the sequencer (the same path
//! as a membership batch), answered with the record as the write left it;
//! a read answers from a snapshot of the cache at the revision the caller
//! needs. Here live what used to sit in a handler: what an update's field
//! mask means, the root scope that has no record, the merge of builtin and
//! custom roles into one id order, the filters of the assignment listing,
//! and paging (every listing through [`super::page`]). Must not plan or
//! check a write itself: the engine decides what may be written.

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::Arc;

use super::page::{Cursor, Listing, Page, PageRequest, Pager, principal_text, target_text};
use super::{Call, Stamped, UseCase};
use crate::auth::Visible;
use crate::{Error, Service, WriteOptions};
use authzd_core::engine::{
    EngineError, GroupUpdate, Operation, Snapshot, SubjectUpdate, TenantState, page_from,
};
use authzd_core::model::{
    Assignment, AssignmentKey, Group, GroupId, Principal, ROOT_SCOPE, Revision, Role, RoleId,
    Scope, ScopeId, Subject, SubjectId, Target, TenantId, TenantSettings,
};

/// A tenant and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its settings.
    pub settings: TenantSettings,
}

/// A role as the directory shows it: builtin (from the schema, read-only)
/// or custom (the tenant's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleEntry {
    /// Its definition.
    pub role: Arc<Role>,
    /// Whether the schema defines it.
    pub builtin: bool,
}

/// Which assignments a listing shows: those matching every filter given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentFilter {
    /// Only this principal's (its own, not its groups').
    pub principal: Option<Principal>,
    /// Only of this role.
    pub role: Option<RoleId>,
    /// Only at exactly this target.
    pub target: Option<Target>,
}

fn invalid(field: &str, reason: impl ToString) -> Error {
    Error::InvalidArgument {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::Engine(EngineError::NotFound {
        kind,
        id: id.to_string(),
    })
}

/// The tenant id a request names.
fn tenant_id(tenant: &str) -> Result<TenantId, Error> {
    TenantId::try_from(tenant).map_err(|e| invalid("tenant", e))
}

/// Admits the write, commits `operation` alone, and returns the snapshot
/// that holds it (for the reply's record).
async fn write(
    service: &Service,
    call: &Call,
    tenant: &str,
    operation: Operation,
    mut options: WriteOptions,
) -> Result<(Revision, Arc<Snapshot>), Error> {
    call.admit_write(service, tenant, &mut options)?;
    let id = tenant_id(tenant)?;
    // The request names one record: its refusal carries no batch index.
    options.naming = crate::Naming::Single;
    let revision = service.write(id, vec![operation], options).await?;
    Ok((revision, service.snapshot_at(revision).await?))
}

/// Commits `operation` alone (as [`write`]) and reads back with `read`
/// what it wrote, from the snapshot that holds it.
async fn write_and_read<T>(
    service: &Service,
    call: &Call,
    tenant: &str,
    operation: Operation,
    options: WriteOptions,
    read: impl FnOnce(&Snapshot, &TenantState) -> Result<T, Error>,
) -> Result<Stamped<T>, Error> {
    let (revision, snapshot) = write(service, call, tenant, operation, options).await?;
    let value = read(&snapshot, snapshot.tenant(tenant)?)?;
    Ok(stamped(value, revision))
}

/// Reads with `read` from `tenant`'s state in a snapshot at `at_least` or
/// later; the caller has been admitted.
async fn read_at<T>(
    service: &Service,
    tenant: &str,
    at_least: Revision,
    read: impl FnOnce(&Snapshot, &TenantState) -> Result<T, Error>,
) -> Result<Stamped<T>, Error> {
    let snapshot = service.snapshot_at(at_least).await?;
    let value = read(&snapshot, snapshot.tenant(tenant)?)?;
    Ok(stamped(value, snapshot.revision))
}

/// Admits the call to `tenant`, which must be a well-formed id.
fn admit(service: &Service, call: &Call, tenant: &str) -> Result<(), Error> {
    call.admit(service, tenant)?;
    tenant_id(tenant)?;
    Ok(())
}

/// Stamps `value` with the revision it was read or written at.
fn stamped<T>(value: T, revision: Revision) -> Stamped<T> {
    Stamped { value, revision }
}

fn tenant_of(state: &TenantState, id: &str) -> Result<Tenant, Error> {
    Ok(Tenant {
        id: tenant_id(id)?,
        settings: state.settings.clone(),
    })
}

fn subject_of(state: &TenantState, id: &str) -> Result<Arc<Subject>, Error> {
    state
        .subjects
        .get(id)
        .map(|e| e.subject.clone())
        .ok_or_else(|| not_found("subject", id))
}

/// A scope's record; `None` for the root, which every tenant has and
/// which has no record (no type, no parent).
fn scope_of(state: &TenantState, id: &str) -> Result<Option<Arc<Scope>>, Error> {
    if id == ROOT_SCOPE {
        return Ok(None);
    }
    state
        .scopes
        .get(id)
        .cloned()
        .map(Some)
        .ok_or_else(|| not_found("scope", id))
}

fn group_of(state: &TenantState, id: &str) -> Result<Arc<Group>, Error> {
    state
        .groups
        .get(id)
        .cloned()
        .ok_or_else(|| not_found("group", id))
}

fn role_of(snapshot: &Snapshot, state: &TenantState, id: &str) -> Result<RoleEntry, Error> {
    state
        .role(&snapshot.compiled, id)
        .map(|c| RoleEntry {
            role: c.role.clone(),
            builtin: c.builtin,
        })
        .ok_or_else(|| Error::Engine(state.unknown_role(&snapshot.compiled, id)))
}

/// The page of an id-keyed map of `state` after the pager's cursor.
fn page_of<K, V, T>(
    pager: &Pager,
    map: &imbl::OrdMap<K, V>,
    item: impl Fn(&V) -> T,
) -> Result<Page<T>, Error>
where
    K: Ord + Clone + Borrow<str>,
    V: Clone,
{
    let after = pager.after().map(Cursor::as_id).transpose()?;
    let page = pager.page(page_from(map, after), |entry: &(&K, &V)| {
        Cursor::id(entry.0.borrow())
    });
    Ok(page.map(|(_, v)| item(v)))
}

/// The listing of `use_case` in `tenant`, unfiltered.
fn listing(use_case: UseCase, tenant: &str) -> Listing {
    Listing::new(use_case, Some(tenant))
}

/// Creates a tenant.
pub async fn create_tenant(
    service: &Service,
    call: &Call,
    tenant: &str,
    settings: TenantSettings,
    options: WriteOptions,
) -> Result<Stamped<Tenant>, Error> {
    let operation = Operation::CreateTenant(settings);
    write_and_read(service, call, tenant, operation, options, |_, state| {
        tenant_of(state, tenant)
    })
    .await
}

/// Replaces a tenant's settings.
pub async fn update_tenant_settings(
    service: &Service,
    call: &Call,
    tenant: &str,
    settings: TenantSettings,
    options: WriteOptions,
) -> Result<Stamped<Tenant>, Error> {
    let operation = Operation::UpdateTenantSettings(settings);
    write_and_read(service, call, tenant, operation, options, |_, state| {
        tenant_of(state, tenant)
    })
    .await
}

/// Reads a tenant's settings.
pub async fn get_tenant(
    service: &Service,
    call: &Call,
    tenant: &str,
    at_least: Revision,
) -> Result<Stamped<Tenant>, Error> {
    admit(service, call, tenant)?;
    read_at(service, tenant, at_least, |_, state| {
        tenant_of(state, tenant)
    })
    .await
}

/// The tenants the caller may see, in id order: every tenant for an
/// unbound admin token, its own for a bound one.
pub async fn list_tenants(
    service: &Service,
    call: &Call,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Tenant>>, Error> {
    let visible = call.visible_tenants()?;
    let only = match &visible {
        Visible::All => None,
        Visible::Only(tenant) => Some(tenant.as_str()),
    };
    let listing = Listing::new(UseCase::ListTenants, None).filter("visible", only);
    let pager = Pager::new(listing, page)?;
    let snapshot = service.snapshot_at(at_least).await?;
    let after = pager.after().map(Cursor::as_id).transpose()?;
    let page = pager.page(
        page_from(&snapshot.tenants, after).filter(|(id, _)| only.is_none_or(|t| id.as_str() == t)),
        |(id, _)| Cursor::id(id.as_str()),
    );
    let page = page.map(|(id, state)| Tenant {
        id: id.clone(),
        settings: state.settings.clone(),
    });
    Ok(stamped(page, snapshot.revision))
}

/// Creates a subject.
pub async fn create_subject(
    service: &Service,
    call: &Call,
    tenant: &str,
    subject: Subject,
    options: WriteOptions,
) -> Result<Stamped<Arc<Subject>>, Error> {
    let id = subject.id.clone();
    let operation = Operation::CreateSubject(subject);
    write_and_read(service, call, tenant, operation, options, |_, state| {
        subject_of(state, id.as_str())
    })
    .await
}

/// Changes the fields of `subject` that `mask` names (`kind`, `status`,
/// `attributes`, `home_scope`); without a mask, every field.
pub async fn update_subject(
    service: &Service,
    call: &Call,
    tenant: &str,
    subject: Subject,
    mask: &[String],
    options: WriteOptions,
) -> Result<Stamped<Arc<Subject>>, Error> {
    let update = subject_update(&subject, mask)?;
    let id = subject.id;
    let operation = Operation::UpdateSubject(id.clone(), update);
    write_and_read(service, call, tenant, operation, options, |_, state| {
        subject_of(state, id.as_str())
    })
    .await
}

fn subject_update(subject: &Subject, mask: &[String]) -> Result<SubjectUpdate, Error> {
    const EVERY_FIELD: [&str; 4] = ["kind", "status", "attributes", "home_scope"];
    let paths: Vec<&str> = if mask.is_empty() {
        EVERY_FIELD.to_vec()
    } else {
        mask.iter().map(String::as_str).collect()
    };
    let mut update = SubjectUpdate::default();
    for path in paths {
        match path {
            "kind" => update.kind = Some(subject.kind),
            "status" => update.status = Some(subject.status),
            "attributes" => update.attributes = Some(subject.attributes.clone()),
            // The JSON mapping's name, as grpcurl and HTTP clients write it.
            "home_scope" | "homeScope" => update.home_scope = Some(subject.home_scope.clone()),
            other => {
                return Err(invalid(
                    "update_mask",
                    format!(
                        "unknown field \"{other}\"; use kind, status, attributes or home_scope"
                    ),
                ));
            }
        }
    }
    Ok(update)
}

/// Deletes a subject with its memberships and assignments.
pub async fn delete_subject(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: SubjectId,
    options: WriteOptions,
) -> Result<Revision, Error> {
    let operation = Operation::DeleteSubject(id);
    Ok(write(service, call, tenant, operation, options).await?.0)
}

/// Reads a subject.
pub async fn get_subject(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: &str,
    at_least: Revision,
) -> Result<Stamped<Arc<Subject>>, Error> {
    admit(service, call, tenant)?;
    read_at(service, tenant, at_least, |_, state| subject_of(state, id)).await
}

/// A tenant's subjects, in id order.
pub async fn list_subjects(
    service: &Service,
    call: &Call,
    tenant: &str,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Arc<Subject>>>, Error> {
    admit(service, call, tenant)?;
    let pager = Pager::new(listing(UseCase::ListSubjects, tenant), page)?;
    read_at(service, tenant, at_least, |_, state| {
        page_of(&pager, &state.in_order, Arc::clone)
    })
    .await
}

/// Creates a scope.
pub async fn create_scope(
    service: &Service,
    call: &Call,
    tenant: &str,
    scope: Scope,
    options: WriteOptions,
) -> Result<Stamped<Option<Arc<Scope>>>, Error> {
    write_scope(
        service,
        call,
        tenant,
        Operation::CreateScope,
        scope,
        options,
    )
    .await
}

/// Changes a scope's type or parent.
pub async fn update_scope(
    service: &Service,
    call: &Call,
    tenant: &str,
    scope: Scope,
    options: WriteOptions,
) -> Result<Stamped<Option<Arc<Scope>>>, Error> {
    write_scope(
        service,
        call,
        tenant,
        Operation::UpdateScope,
        scope,
        options,
    )
    .await
}

/// Commits `operation` of `scope` and reads back the scope it wrote.
async fn write_scope(
    service: &Service,
    call: &Call,
    tenant: &str,
    operation: fn(Scope) -> Operation,
    scope: Scope,
    options: WriteOptions,
) -> Result<Stamped<Option<Arc<Scope>>>, Error> {
    let id = scope.id.clone();
    write_and_read(
        service,
        call,
        tenant,
        operation(scope),
        options,
        |_, state| scope_of(state, id.as_str()),
    )
    .await
}

/// Deletes an unused scope.
pub async fn delete_scope(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: ScopeId,
    options: WriteOptions,
) -> Result<Revision, Error> {
    let operation = Operation::DeleteScope(id);
    Ok(write(service, call, tenant, operation, options).await?.0)
}

/// Reads a scope; `None` for the root, which has no record.
pub async fn get_scope(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: &str,
    at_least: Revision,
) -> Result<Stamped<Option<Arc<Scope>>>, Error> {
    admit(service, call, tenant)?;
    read_at(service, tenant, at_least, |_, state| scope_of(state, id)).await
}

/// A tenant's scopes, in id order, without the root.
pub async fn list_scopes(
    service: &Service,
    call: &Call,
    tenant: &str,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Arc<Scope>>>, Error> {
    admit(service, call, tenant)?;
    let pager = Pager::new(listing(UseCase::ListScopes, tenant), page)?;
    read_at(service, tenant, at_least, |_, state| {
        page_of(&pager, &state.scopes, Arc::clone)
    })
    .await
}

/// Creates a group.
pub async fn create_group(
    service: &Service,
    call: &Call,
    tenant: &str,
    group: Group,
    options: WriteOptions,
) -> Result<Stamped<Arc<Group>>, Error> {
    let id = group.id.clone();
    let operation = Operation::CreateGroup(group);
    write_and_read(service, call, tenant, operation, options, |_, state| {
        group_of(state, id.as_str())
    })
    .await
}

/// Changes the fields of `group` that `mask` names (`title`,
/// `condition`); without a mask, those `group` sets (a non-empty title, a
/// condition), so renaming a condition group never removes its condition.
pub async fn update_group(
    service: &Service,
    call: &Call,
    tenant: &str,
    group: Group,
    mask: &[String],
    options: WriteOptions,
) -> Result<Stamped<Arc<Group>>, Error> {
    let update = group_update(&group, mask)?;
    let id = group.id;
    let operation = Operation::UpdateGroup(id.clone(), update);
    write_and_read(service, call, tenant, operation, options, |_, state| {
        group_of(state, id.as_str())
    })
    .await
}

fn group_update(group: &Group, mask: &[String]) -> Result<GroupUpdate, Error> {
    let paths: Vec<&str> = if mask.is_empty() {
        [
            (!group.title.is_empty()).then_some("title"),
            group.condition.is_some().then_some("condition"),
        ]
        .into_iter()
        .flatten()
        .collect()
    } else {
        mask.iter().map(String::as_str).collect()
    };
    let mut update = GroupUpdate::default();
    for path in paths {
        match path {
            "title" => update.title = Some(group.title.clone()),
            "condition" => update.condition = Some(group.condition.clone()),
            other => {
                return Err(invalid(
                    "update_mask",
                    format!("unknown field \"{other}\"; use title or condition"),
                ));
            }
        }
    }
    Ok(update)
}

/// Deletes a group with its memberships and assignments.
pub async fn delete_group(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: GroupId,
    options: WriteOptions,
) -> Result<Revision, Error> {
    let operation = Operation::DeleteGroup(id);
    Ok(write(service, call, tenant, operation, options).await?.0)
}

/// Reads a group.
pub async fn get_group(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: &str,
    at_least: Revision,
) -> Result<Stamped<Arc<Group>>, Error> {
    admit(service, call, tenant)?;
    read_at(service, tenant, at_least, |_, state| group_of(state, id)).await
}

/// A tenant's groups, in id order.
pub async fn list_groups(
    service: &Service,
    call: &Call,
    tenant: &str,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Arc<Group>>>, Error> {
    admit(service, call, tenant)?;
    let pager = Pager::new(listing(UseCase::ListGroups, tenant), page)?;
    read_at(service, tenant, at_least, |_, state| {
        page_of(&pager, &state.groups, Arc::clone)
    })
    .await
}

/// A group's direct members: subjects first, then groups, each in id
/// order (as [`Principal`] orders them).
pub async fn list_group_members(
    service: &Service,
    call: &Call,
    tenant: &str,
    group: &str,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Principal>>, Error> {
    admit(service, call, tenant)?;
    let listing = listing(UseCase::ListGroupMembers, tenant).filter("group", Some(group));
    let pager = Pager::new(listing, page)?;
    read_at(service, tenant, at_least, |_, state| {
        group_of(state, group)?;
        let after = pager.after().map(Cursor::to_principal).transpose()?;
        let from: (Bound<&Principal>, Bound<&Principal>) = (
            after.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
            Bound::Unbounded,
        );
        let members = state
            .members
            .get(group)
            .into_iter()
            .flat_map(move |m| m.range::<_, Principal>(from))
            .cloned();
        Ok(pager.page(members, Cursor::principal))
    })
    .await
}

/// Creates a custom role.
pub async fn create_role(
    service: &Service,
    call: &Call,
    tenant: &str,
    role: Role,
    options: WriteOptions,
) -> Result<Stamped<RoleEntry>, Error> {
    write_role(service, call, tenant, Operation::CreateRole, role, options).await
}

/// Replaces a custom role.
pub async fn update_role(
    service: &Service,
    call: &Call,
    tenant: &str,
    role: Role,
    options: WriteOptions,
) -> Result<Stamped<RoleEntry>, Error> {
    write_role(service, call, tenant, Operation::UpdateRole, role, options).await
}

/// Commits `operation` of `role` and reads back the role it wrote.
async fn write_role(
    service: &Service,
    call: &Call,
    tenant: &str,
    operation: fn(Role) -> Operation,
    role: Role,
    options: WriteOptions,
) -> Result<Stamped<RoleEntry>, Error> {
    let id = role.id.clone();
    write_and_read(
        service,
        call,
        tenant,
        operation(role),
        options,
        |snapshot, state| role_of(snapshot, state, id.as_str()),
    )
    .await
}

/// Deletes a custom role with its assignments.
pub async fn delete_role(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: RoleId,
    options: WriteOptions,
) -> Result<Revision, Error> {
    let operation = Operation::DeleteRole(id);
    Ok(write(service, call, tenant, operation, options).await?.0)
}

/// Reads a role, custom or builtin.
pub async fn get_role(
    service: &Service,
    call: &Call,
    tenant: &str,
    id: &str,
    at_least: Revision,
) -> Result<Stamped<RoleEntry>, Error> {
    admit(service, call, tenant)?;
    read_at(service, tenant, at_least, |snapshot, state| {
        role_of(snapshot, state, id)
    })
    .await
}

/// A tenant's roles, builtin and custom, in one id order.
pub async fn list_roles(
    service: &Service,
    call: &Call,
    tenant: &str,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<RoleEntry>>, Error> {
    admit(service, call, tenant)?;
    let pager = Pager::new(listing(UseCase::ListRoles, tenant), page)?;
    read_at(service, tenant, at_least, |snapshot, state| {
        let after = pager.after().map(Cursor::as_id).transpose()?;
        let roles = roles_after(snapshot, state, after);
        Ok(pager.page(roles, |r| Cursor::id(r.role.id.as_str())))
    })
    .await
}

/// Every role with an id after `after`, in id order: the schema's builtin
/// roles (few: sorted here) merged with the tenant's custom ones (many:
/// already ordered). Both share one id space; were an id in both, the
/// custom role is the one a check sees, so it is the one listed.
fn roles_after<'s>(
    snapshot: &'s Snapshot,
    state: &'s TenantState,
    after: Option<&str>,
) -> impl Iterator<Item = RoleEntry> + 's {
    let entry = |role: &Arc<Role>, builtin| RoleEntry {
        role: role.clone(),
        builtin,
    };
    let mut builtin: Vec<RoleEntry> = snapshot
        .compiled
        .builtin
        .values()
        .filter(|c| after.is_none_or(|a| c.role.id.as_str() > a))
        .map(|c| entry(&c.role, true))
        .collect();
    builtin.sort_by(|a, b| a.role.id.cmp(&b.role.id));
    let mut builtin = builtin.into_iter().peekable();
    let mut custom = page_from(&state.roles, after)
        .map(move |(_, c)| entry(&c.role, false))
        .peekable();
    std::iter::from_fn(move || match (builtin.peek(), custom.peek()) {
        (Some(b), Some(c)) => match b.role.id.cmp(&c.role.id) {
            std::cmp::Ordering::Less => builtin.next(),
            std::cmp::Ordering::Equal => {
                builtin.next();
                custom.next()
            }
            std::cmp::Ordering::Greater => custom.next(),
        },
        (Some(_), None) => builtin.next(),
        (None, _) => custom.next(),
    })
}

/// A tenant's assignments matching every filter given, in key order
/// (role, principal, target).
pub async fn list_assignments(
    service: &Service,
    call: &Call,
    tenant: &str,
    filter: &AssignmentFilter,
    page: &PageRequest,
    at_least: Revision,
) -> Result<Stamped<Page<Assignment>>, Error> {
    admit(service, call, tenant)?;
    let listing = listing(UseCase::ListAssignments, tenant)
        .filter(
            "principal",
            filter.principal.as_ref().map(principal_text).as_deref(),
        )
        .filter("role", filter.role.as_ref().map(RoleId::as_str))
        .filter("target", filter.target.as_ref().map(target_text).as_deref());
    let pager = Pager::new(listing, page)?;
    read_at(service, tenant, at_least, |_, state| {
        assignments_page(&pager, state, filter)
    })
    .await
}

/// The page of `state`'s assignments after the pager's cursor that match
/// `filter`.
fn assignments_page(
    pager: &Pager,
    state: &TenantState,
    filter: &AssignmentFilter,
) -> Result<Page<Assignment>, Error> {
    let after = pager.after().map(Cursor::to_assignment).transpose()?;
    let from: (Bound<&AssignmentKey>, Bound<&AssignmentKey>) = (
        after.as_ref().map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    );
    // A role or target filter walks that index (ordered like the map)
    // rather than every assignment of the tenant.
    let keys: Box<dyn Iterator<Item = &AssignmentKey>> = match (&filter.role, &filter.target) {
        (Some(role), _) => Box::new(
            state
                .by_role
                .get(role)
                .into_iter()
                .flat_map(move |keys| keys.range::<_, AssignmentKey>(from)),
        ),
        (None, Some(target)) => Box::new(
            state
                .by_target
                .get(target)
                .into_iter()
                .flat_map(move |keys| keys.range::<_, AssignmentKey>(from)),
        ),
        (None, None) => Box::new(
            state
                .assignments
                .range::<_, AssignmentKey>(from)
                .map(|(k, _)| k),
        ),
    };
    let matching = keys
        .filter(|k| filter.principal.as_ref().is_none_or(|p| &k.principal == p))
        .filter(|k| filter.role.as_ref().is_none_or(|r| &k.role == r))
        .filter(|k| filter.target.as_ref().is_none_or(|t| &k.target == t))
        .filter_map(|k| state.assignments.get(k))
        .cloned();
    Ok(pager.page(matching, |a| Cursor::assignment(&a.key)))
}
