//! `DirectoryService`: create, change, delete and read tenants, subjects,
//! scopes, groups, custom roles and assignments. Writes go through the same
//! write path as membership batches (one operation each); reads come from a
//! snapshot of the cache.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{
    self, assignment_to_pb, group, group_to_pb, id, optional_id, page, page_token, principal_to_pb,
    role, role_to_pb, scope, scope_to_pb, settings, settings_to_pb, subject, subject_to_pb,
};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::engine::{
    EngineError, GroupUpdate, Operation, Snapshot, SubjectUpdate, TenantState, page_from,
};
use authzd_core::model::{Principal, Revision, TenantId};
use authzd_service::auth::Visible;
use authzd_service::{Error, Service};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct DirectoryApi {
    service: Service,
}

type Reply<T> = Result<Response<T>, Status>;

impl DirectoryApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    async fn write(
        &self,
        call: &authzd_service::ops::Call,
        tenant: &str,
        op: Operation,
        options: &Option<pb::WriteOptions>,
    ) -> Result<(Revision, Arc<Snapshot>), Error> {
        let tenant: TenantId = id("tenant", tenant)?;
        call.admit(&self.service, tenant.as_str())?;
        let mut options = convert::write_options(options)?;
        call.admit_write(&self.service, tenant.as_str(), &mut options)?;
        let revision = self
            .service
            .write(tenant, vec![op], options)
            .await
            .map_err(single)?;
        Ok((revision, self.service.snapshot_at(revision).await?))
    }

    /// Deletes one object by id.
    async fn delete<T>(
        &self,
        request: &Request<pb::DeleteRequest>,
        op: fn(T) -> Operation,
    ) -> Reply<pb::DeleteResponse>
    where
        T: for<'a> TryFrom<&'a str, Error = authzd_core::model::InvalidValue>,
    {
        let call = guard::call(request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let op = op(id("id", &r.id).map_err(status)?);
        let (revision, _) = self
            .write(&call, &r.tenant, op, &r.options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {
            revision: revision.0,
        }))
    }

    async fn read(&self, at_least: u64) -> Result<Arc<Snapshot>, Error> {
        self.service.snapshot_at(Revision(at_least)).await
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::Engine(EngineError::NotFound {
        kind,
        id: id.to_string(),
    })
}

/// The error of a single-operation write, without the batch index.
fn single(e: Error) -> Error {
    match e {
        Error::Refused { error, .. } => Error::Engine(error),
        other => other,
    }
}

/// One page of an ordered map's values, and the token of the next page.
fn page_of<K, V, T>(
    map: &imbl::OrdMap<K, V>,
    request: &Option<pb::PageRequest>,
    convert: impl Fn(&V) -> T,
) -> Result<(Vec<T>, String), Error>
where
    K: Ord + Clone + std::borrow::Borrow<str> + ToString,
    V: Clone,
{
    let (token, size) = match request {
        Some(p) => page("page", &p.page_token, p.page_size)?,
        None => page("page", "", 0)?,
    };
    let mut items = Vec::with_capacity(size.min(map.len()));
    let mut next = String::new();
    for (k, v) in page_from(map, token.as_deref()) {
        if items.len() == size {
            break;
        }
        items.push(convert(v));
        next = k.to_string();
    }
    if items.len() < size {
        return Ok((items, String::new()));
    }
    Ok((items, page_token(&next)))
}

fn tenant_of<'s>(snapshot: &'s Snapshot, tenant: &str) -> Result<&'s TenantState, Error> {
    authzd_core::model::check_id("tenant", tenant).map_err(|e| invalid("tenant", e))?;
    Ok(snapshot.tenant(tenant)?)
}

fn subject_reply(
    snapshot: &Snapshot,
    tenant: &str,
    id: &str,
    revision: Revision,
) -> Reply<pb::SubjectResponse> {
    let state = tenant_of(snapshot, tenant).map_err(status)?;
    let entry = state
        .subjects
        .get(id)
        .ok_or_else(|| not_found("subject", id))
        .map_err(status)?;
    Ok(Response::new(pb::SubjectResponse {
        subject: Some(subject_to_pb(&entry.subject)),
        revision: revision.0,
    }))
}

fn scope_reply(
    snapshot: &Snapshot,
    tenant: &str,
    id: &str,
    revision: Revision,
) -> Reply<pb::ScopeResponse> {
    let state = tenant_of(snapshot, tenant).map_err(status)?;
    let scope = if id == authzd_core::model::ROOT_SCOPE {
        pb::Scope {
            id: id.to_owned(),
            ..pb::Scope::default()
        }
    } else {
        scope_to_pb(
            state
                .scopes
                .get(id)
                .ok_or_else(|| not_found("scope", id))
                .map_err(status)?,
        )
    };
    Ok(Response::new(pb::ScopeResponse {
        scope: Some(scope),
        revision: revision.0,
    }))
}

fn group_reply(
    snapshot: &Snapshot,
    tenant: &str,
    id: &str,
    revision: Revision,
) -> Reply<pb::GroupResponse> {
    let state = tenant_of(snapshot, tenant).map_err(status)?;
    let group = state
        .groups
        .get(id)
        .ok_or_else(|| not_found("group", id))
        .map_err(status)?;
    Ok(Response::new(pb::GroupResponse {
        group: Some(group_to_pb(group)),
        revision: revision.0,
    }))
}

fn role_reply(
    snapshot: &Snapshot,
    tenant: &str,
    id: &str,
    revision: Revision,
) -> Reply<pb::RoleResponse> {
    let state = tenant_of(snapshot, tenant).map_err(status)?;
    let role = state
        .role(&snapshot.compiled, id)
        .ok_or_else(|| Error::Engine(state.unknown_role(&snapshot.compiled, id)))
        .map_err(status)?;
    Ok(Response::new(pb::RoleResponse {
        role: Some(role_to_pb(&role.role, role.builtin)),
        revision: revision.0,
    }))
}

fn tenant_reply(
    snapshot: &Snapshot,
    tenant: &str,
    revision: Revision,
) -> Reply<pb::TenantResponse> {
    let state = tenant_of(snapshot, tenant).map_err(status)?;
    Ok(Response::new(pb::TenantResponse {
        tenant: Some(pb::Tenant {
            id: tenant.to_string(),
            settings: Some(settings_to_pb(&state.settings)),
        }),
        revision: revision.0,
    }))
}

fn subject_update(
    mask: &Option<prost_types::FieldMask>,
    s: &pb::Subject,
) -> Result<SubjectUpdate, Error> {
    let full = subject(
        "subject",
        &pb::Subject {
            id: if s.id.is_empty() {
                String::new()
            } else {
                s.id.clone()
            },
            ..s.clone()
        },
    )?;
    let paths: Vec<&str> = match mask {
        Some(m) if !m.paths.is_empty() => m.paths.iter().map(String::as_str).collect(),
        _ => vec!["kind", "status", "attributes", "home_scope"],
    };
    let mut update = SubjectUpdate::default();
    for path in paths {
        match path {
            "kind" => update.kind = Some(full.kind),
            "status" => update.status = Some(full.status),
            "attributes" => update.attributes = Some(full.attributes.clone()),
            "home_scope" | "homeScope" => update.home_scope = Some(full.home_scope.clone()),
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

fn group_update(
    mask: &Option<prost_types::FieldMask>,
    g: &pb::Group,
) -> Result<(authzd_core::model::GroupId, GroupUpdate), Error> {
    let full = group("group", g)?;
    let paths: Vec<&str> = match mask {
        Some(m) if !m.paths.is_empty() => m.paths.iter().map(String::as_str).collect(),
        _ => [
            (!g.title.is_empty()).then_some("title"),
            (!g.condition.is_empty()).then_some("condition"),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let mut update = GroupUpdate::default();
    for path in paths {
        match path {
            "title" => update.title = Some(full.title.clone()),
            "condition" => update.condition = Some(full.condition.clone()),
            other => {
                return Err(invalid(
                    "update_mask",
                    format!("unknown field \"{other}\"; use title or condition"),
                ));
            }
        }
    }
    Ok((full.id, update))
}

#[tonic::async_trait]
impl pb::directory_service_server::DirectoryService for DirectoryApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Reply<pb::TenantResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let op = Operation::CreateTenant(settings("settings", &r.settings).map_err(status)?);
        let (revision, snapshot) = self
            .write(&call, &r.tenant, op, &r.options)
            .await
            .map_err(status)?;
        tenant_reply(&snapshot, &r.tenant, revision)
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Reply<pb::TenantResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(0).await.map_err(status)?;
        tenant_reply(&snapshot, &r.tenant, snapshot.revision)
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Reply<pb::ListTenantsResponse> {
        let visible = guard::call(&request)
            .map_err(status)?
            .visible_tenants()
            .map_err(status)?;
        let r = request.get_ref();
        let snapshot = self.read(0).await.map_err(status)?;
        let (token, size) = match &r.page {
            Some(p) => page("page", &p.page_token, p.page_size).map_err(status)?,
            None => page("page", "", 0).map_err(status)?,
        };
        let tenants: Vec<pb::Tenant> = page_from(&snapshot.tenants, token.as_deref())
            .filter(|(id, _)| match &visible {
                Visible::All => true,
                Visible::Only(only) => *id == only,
            })
            .take(size)
            .map(|(id, state)| pb::Tenant {
                id: id.to_string(),
                settings: Some(settings_to_pb(&state.settings)),
            })
            .collect();
        let next_page_token = match tenants.last() {
            Some(last) if tenants.len() == size => page_token(&last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListTenantsResponse {
            tenants,
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }

    async fn update_tenant_settings(
        &self,
        request: Request<pb::UpdateTenantSettingsRequest>,
    ) -> Reply<pb::TenantResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let op =
            Operation::UpdateTenantSettings(settings("settings", &r.settings).map_err(status)?);
        let (revision, snapshot) = self
            .write(&call, &r.tenant, op, &r.options)
            .await
            .map_err(status)?;
        tenant_reply(&snapshot, &r.tenant, revision)
    }

    async fn create_subject(
        &self,
        request: Request<pb::CreateSubjectRequest>,
    ) -> Reply<pb::SubjectResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let s = subject(
            "subject",
            convert::required("subject", &r.subject).map_err(status)?,
        )
        .map_err(status)?;
        let id = s.id.to_string();
        let (revision, snapshot) = self
            .write(&call, &r.tenant, Operation::CreateSubject(s), &r.options)
            .await
            .map_err(status)?;
        subject_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn update_subject(
        &self,
        request: Request<pb::UpdateSubjectRequest>,
    ) -> Reply<pb::SubjectResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let given = convert::required("subject", &r.subject).map_err(status)?;
        let sid = id("subject.id", &given.id).map_err(status)?;
        let update = subject_update(&r.update_mask, given).map_err(status)?;
        let (revision, snapshot) = self
            .write(
                &call,
                &r.tenant,
                Operation::UpdateSubject(sid, update),
                &r.options,
            )
            .await
            .map_err(status)?;
        subject_reply(&snapshot, &r.tenant, &given.id, revision)
    }

    async fn delete_subject(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Reply<pb::DeleteResponse> {
        self.delete(&request, Operation::DeleteSubject).await
    }

    async fn get_subject(&self, request: Request<pb::GetRequest>) -> Reply<pb::SubjectResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        subject_reply(&snapshot, &r.tenant, &r.id, snapshot.revision)
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Reply<pb::ListSubjectsResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        let state = tenant_of(&snapshot, &r.tenant).map_err(status)?;
        let (subjects, next_page_token) =
            page_of(&state.subjects, &r.page, |e| subject_to_pb(&e.subject)).map_err(status)?;
        Ok(Response::new(pb::ListSubjectsResponse {
            subjects,
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }

    async fn create_scope(
        &self,
        request: Request<pb::CreateScopeRequest>,
    ) -> Reply<pb::ScopeResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let s = scope(
            "scope",
            convert::required("scope", &r.scope).map_err(status)?,
        )
        .map_err(status)?;
        let id = s.id.to_string();
        let (revision, snapshot) = self
            .write(&call, &r.tenant, Operation::CreateScope(s), &r.options)
            .await
            .map_err(status)?;
        scope_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn update_scope(
        &self,
        request: Request<pb::UpdateScopeRequest>,
    ) -> Reply<pb::ScopeResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let s = scope(
            "scope",
            convert::required("scope", &r.scope).map_err(status)?,
        )
        .map_err(status)?;
        let id = s.id.to_string();
        let (revision, snapshot) = self
            .write(&call, &r.tenant, Operation::UpdateScope(s), &r.options)
            .await
            .map_err(status)?;
        scope_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn delete_scope(&self, request: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.delete(&request, Operation::DeleteScope).await
    }

    async fn get_scope(&self, request: Request<pb::GetRequest>) -> Reply<pb::ScopeResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        scope_reply(&snapshot, &r.tenant, &r.id, snapshot.revision)
    }

    async fn list_scopes(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Reply<pb::ListScopesResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        let state = tenant_of(&snapshot, &r.tenant).map_err(status)?;
        let (scopes, next_page_token) =
            page_of(&state.scopes, &r.page, |s| scope_to_pb(s)).map_err(status)?;
        Ok(Response::new(pb::ListScopesResponse {
            scopes,
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Reply<pb::GroupResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let g = group(
            "group",
            convert::required("group", &r.group).map_err(status)?,
        )
        .map_err(status)?;
        let id = g.id.to_string();
        let (revision, snapshot) = self
            .write(&call, &r.tenant, Operation::CreateGroup(g), &r.options)
            .await
            .map_err(status)?;
        group_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Reply<pb::GroupResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let (id, update) = group_update(
            &r.update_mask,
            convert::required("group", &r.group).map_err(status)?,
        )
        .map_err(status)?;
        let (revision, snapshot) = self
            .write(
                &call,
                &r.tenant,
                Operation::UpdateGroup(id.clone(), update),
                &r.options,
            )
            .await
            .map_err(status)?;
        let id = id.to_string();
        group_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn delete_group(&self, request: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.delete(&request, Operation::DeleteGroup).await
    }

    async fn get_group(&self, request: Request<pb::GetRequest>) -> Reply<pb::GroupResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        group_reply(&snapshot, &r.tenant, &r.id, snapshot.revision)
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Reply<pb::ListGroupsResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        let state = tenant_of(&snapshot, &r.tenant).map_err(status)?;
        let (groups, next_page_token) =
            page_of(&state.groups, &r.page, |g| group_to_pb(g)).map_err(status)?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups,
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Reply<pb::ListGroupMembersResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        let state = tenant_of(&snapshot, &r.tenant).map_err(status)?;
        if !state.groups.contains_key(r.group.as_str()) {
            return Err(status(not_found("group", &r.group)));
        }
        let (token, size) = match &r.page {
            Some(p) => page("page", &p.page_token, p.page_size).map_err(status)?,
            None => page("page", "", 0).map_err(status)?,
        };
        // Tokens are "subject:<id>" or "group:<id>": members sort subjects
        // first, then groups, each by id, as `Principal` orders them.
        let after = token
            .as_deref()
            .map(parse_member_position)
            .transpose()
            .map_err(status)?;
        let members: Vec<Principal> = state
            .members
            .get(r.group.as_str())
            .into_iter()
            .flatten()
            .filter(|m| after.as_ref().is_none_or(|a| *m > a))
            .take(size)
            .cloned()
            .collect();
        let next_page_token = match members.last() {
            Some(last) if members.len() == size => page_token(&member_position(last)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListGroupMembersResponse {
            members: members.iter().map(principal_to_pb).collect(),
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Reply<pb::RoleResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let role =
            role("role", convert::required("role", &r.role).map_err(status)?).map_err(status)?;
        let id = role.id.to_string();
        let (revision, snapshot) = self
            .write(&call, &r.tenant, Operation::CreateRole(role), &r.options)
            .await
            .map_err(status)?;
        role_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Reply<pb::RoleResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let role =
            role("role", convert::required("role", &r.role).map_err(status)?).map_err(status)?;
        let id = role.id.to_string();
        let (revision, snapshot) = self
            .write(&call, &r.tenant, Operation::UpdateRole(role), &r.options)
            .await
            .map_err(status)?;
        role_reply(&snapshot, &r.tenant, &id, revision)
    }

    async fn delete_role(&self, request: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.delete(&request, Operation::DeleteRole).await
    }

    async fn get_role(&self, request: Request<pb::GetRequest>) -> Reply<pb::RoleResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        role_reply(&snapshot, &r.tenant, &r.id, snapshot.revision)
    }

    async fn list_roles(&self, request: Request<pb::ListRequest>) -> Reply<pb::ListRolesResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        let state = tenant_of(&snapshot, &r.tenant).map_err(status)?;
        // Builtin and custom roles share one id space; merge them in id order.
        let mut all: imbl::OrdMap<authzd_core::model::RoleId, pb::Role> = snapshot
            .compiled
            .builtin
            .values()
            .map(|c| (c.role.id.clone(), role_to_pb(&c.role, true)))
            .collect();
        for c in state.roles.values() {
            all.insert(c.role.id.clone(), role_to_pb(&c.role, false));
        }
        let (roles, next_page_token) = page_of(&all, &r.page, Clone::clone).map_err(status)?;
        Ok(Response::new(pb::ListRolesResponse {
            roles,
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }

    async fn list_assignments(
        &self,
        request: Request<pb::ListAssignmentsRequest>,
    ) -> Reply<pb::ListAssignmentsResponse> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let snapshot = self.read(r.at_least_revision).await.map_err(status)?;
        let state = tenant_of(&snapshot, &r.tenant).map_err(status)?;
        let principal = match &r.principal {
            Some(_) => Some(convert::principal("principal", &r.principal).map_err(status)?),
            None => None,
        };
        let role: Option<authzd_core::model::RoleId> =
            optional_id("role", &r.role).map_err(status)?;
        let target = match &r.target {
            Some(_) => Some(convert::target("target", &r.target).map_err(status)?),
            None => None,
        };
        let (token, size) = match &r.page {
            Some(p) => page("page", &p.page_token, p.page_size).map_err(status)?,
            None => page("page", "", 0).map_err(status)?,
        };
        let skip: usize = match token {
            Some(t) => t
                .parse()
                .map_err(|_| invalid("page.page_token", "not a token this server issued"))
                .map_err(status)?,
            None => 0,
        };
        let matching: Vec<pb::Assignment> = state
            .assignments
            .values()
            .filter(|a| principal.as_ref().is_none_or(|p| &a.key.principal == p))
            .filter(|a| role.as_ref().is_none_or(|r| &a.key.role == r))
            .filter(|a| target.as_ref().is_none_or(|t| &a.key.target == t))
            .skip(skip)
            .take(size)
            .map(assignment_to_pb)
            .collect();
        let next_page_token = if matching.len() == size {
            page_token(&(skip + size).to_string())
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAssignmentsResponse {
            assignments: matching,
            next_page_token,
            revision: snapshot.revision.0,
        }))
    }
}

fn member_position(p: &Principal) -> String {
    match p {
        Principal::Subject(s) => format!("subject:{s}"),
        Principal::Group(g) => format!("group:{g}"),
    }
}

fn parse_member_position(t: &str) -> Result<Principal, Error> {
    let bad = || invalid("page.page_token", "not a token this server issued");
    match t.split_once(':') {
        Some(("subject", s)) => Ok(Principal::Subject(s.parse().map_err(|_| bad())?)),
        Some(("group", g)) => Ok(Principal::Group(g.parse().map_err(|_| bad())?)),
        _ => Err(bad()),
    }
}
