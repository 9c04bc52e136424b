//! `DirectoryService`: tenants, subjects, scopes, groups, custom roles and
//! assignments, each RPC a thin adapter over
//! [`authzd_service::ops::directory`]: protobuf in (refused naming the
//! request's field), the operation, protobuf out. Must not read the cache
//! or decide anything itself.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{
    self, assignment_to_pb, group, group_to_pb, id, optional_id, page_request, page_to_pb,
    principal_to_pb, role, role_to_pb, scope, scope_to_pb, settings, settings_to_pb, subject,
    subject_to_pb, write_options,
};
use super::guard;
use super::pb;
use super::status;
use authzd_core::model::{InvalidValue, ROOT_SCOPE, Revision, Scope};
use authzd_service::Service;
use authzd_service::ops::directory::{self, AssignmentFilter, RoleEntry, Tenant};
use authzd_service::ops::{Call, Page, Stamped};

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

    /// Deletes one object by id with `delete`, the operation for its kind.
    async fn delete<T, F>(
        &self,
        request: Request<pb::DeleteRequest>,
        delete: impl FnOnce(Service, Arc<Call>, pb::DeleteRequest, T) -> F,
    ) -> Reply<pb::DeleteResponse>
    where
        T: for<'a> TryFrom<&'a str, Error = InvalidValue>,
        F: Future<Output = Result<Revision, authzd_service::Error>>,
    {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        let id = id("id", &r.id).map_err(status)?;
        let revision = delete(self.service.clone(), call, r, id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteResponse {
            revision: revision.0,
        }))
    }
}

fn tenant_reply(tenant: Stamped<Tenant>) -> pb::TenantResponse {
    pb::TenantResponse {
        tenant: Some(tenant_to_pb(tenant.value)),
        revision: tenant.revision.0,
    }
}

fn tenant_to_pb(t: Tenant) -> pb::Tenant {
    pb::Tenant {
        id: t.id.to_string(),
        settings: Some(settings_to_pb(&t.settings)),
    }
}

fn subject_reply(s: Stamped<Arc<authzd_core::model::Subject>>) -> pb::SubjectResponse {
    pb::SubjectResponse {
        subject: Some(subject_to_pb(&s.value)),
        revision: s.revision.0,
    }
}

/// A scope, or the root, which has no record.
fn scope_or_root(s: Option<Arc<Scope>>) -> pb::Scope {
    match s {
        Some(s) => scope_to_pb(&s),
        None => pb::Scope {
            id: ROOT_SCOPE.to_owned(),
            ..pb::Scope::default()
        },
    }
}

fn scope_reply(s: Stamped<Option<Arc<Scope>>>) -> pb::ScopeResponse {
    pb::ScopeResponse {
        scope: Some(scope_or_root(s.value)),
        revision: s.revision.0,
    }
}

fn group_reply(g: Stamped<Arc<authzd_core::model::Group>>) -> pb::GroupResponse {
    pb::GroupResponse {
        group: Some(group_to_pb(&g.value)),
        revision: g.revision.0,
    }
}

fn role_entry_to_pb(r: RoleEntry) -> pb::Role {
    role_to_pb(&r.role, r.builtin)
}

fn role_reply(r: Stamped<RoleEntry>) -> pb::RoleResponse {
    pb::RoleResponse {
        role: Some(role_entry_to_pb(r.value)),
        revision: r.revision.0,
    }
}

/// A listing's page as protobuf (its items and the next page token) and
/// the revision it was read at; a refused page size or token names the
/// request's `page` field.
fn listed_to_pb<T, U>(
    listed: Result<Stamped<Page<T>>, authzd_service::Error>,
    item: impl FnMut(T) -> U,
) -> Result<((Vec<U>, String), u64), Status> {
    let listed = listed.map_err(convert::in_page).map_err(status)?;
    Ok((page_to_pb(listed.value, item), listed.revision.0))
}

/// An update's field mask as paths; none given means none.
fn mask(m: &Option<prost_types::FieldMask>) -> &[String] {
    m.as_ref().map_or(&[], |m| m.paths.as_slice())
}

#[tonic::async_trait]
impl pb::directory_service_server::DirectoryService for DirectoryApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Reply<pb::TenantResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let settings = settings("settings", &r.settings).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let tenant = directory::create_tenant(&self.service, &call, &r.tenant, settings, options)
            .await
            .map_err(status)?;
        Ok(Response::new(tenant_reply(tenant)))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Reply<pb::TenantResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let tenant = directory::get_tenant(&self.service, &call, &r.tenant, Revision(0))
            .await
            .map_err(status)?;
        Ok(Response::new(tenant_reply(tenant)))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Reply<pb::ListTenantsResponse> {
        let call = guard::call(&request).map_err(status)?;
        let page = page_request(&request.get_ref().page);
        let listed = directory::list_tenants(&self.service, &call, &page, Revision(0)).await;
        let ((tenants, next_page_token), revision) = listed_to_pb(listed, tenant_to_pb)?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants,
            next_page_token,
            revision,
        }))
    }

    async fn update_tenant_settings(
        &self,
        request: Request<pb::UpdateTenantSettingsRequest>,
    ) -> Reply<pb::TenantResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let settings = settings("settings", &r.settings).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let tenant =
            directory::update_tenant_settings(&self.service, &call, &r.tenant, settings, options)
                .await
                .map_err(status)?;
        Ok(Response::new(tenant_reply(tenant)))
    }

    async fn create_subject(
        &self,
        request: Request<pb::CreateSubjectRequest>,
    ) -> Reply<pb::SubjectResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let given = convert::required("subject", &r.subject).map_err(status)?;
        let subject = subject("subject", given).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let created = directory::create_subject(&self.service, &call, &r.tenant, subject, options)
            .await
            .map_err(status)?;
        Ok(Response::new(subject_reply(created)))
    }

    async fn update_subject(
        &self,
        request: Request<pb::UpdateSubjectRequest>,
    ) -> Reply<pb::SubjectResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let given = convert::required("subject", &r.subject).map_err(status)?;
        let subject = subject("subject", given).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let mask = mask(&r.update_mask);
        let updated =
            directory::update_subject(&self.service, &call, &r.tenant, subject, mask, options)
                .await
                .map_err(status)?;
        Ok(Response::new(subject_reply(updated)))
    }

    async fn delete_subject(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Reply<pb::DeleteResponse> {
        self.delete(request, |service, call, r, id| async move {
            let options = write_options(&r.options)?;
            directory::delete_subject(&service, &call, &r.tenant, id, options).await
        })
        .await
    }

    async fn get_subject(&self, request: Request<pb::GetRequest>) -> Reply<pb::SubjectResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let at_least = Revision(r.at_least_revision);
        let found = directory::get_subject(&self.service, &call, &r.tenant, &r.id, at_least)
            .await
            .map_err(status)?;
        Ok(Response::new(subject_reply(found)))
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Reply<pb::ListSubjectsResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let page = page_request(&r.page);
        let at_least = Revision(r.at_least_revision);
        let listed =
            directory::list_subjects(&self.service, &call, &r.tenant, &page, at_least).await;
        let ((subjects, next_page_token), revision) = listed_to_pb(listed, |s| subject_to_pb(&s))?;
        Ok(Response::new(pb::ListSubjectsResponse {
            subjects,
            next_page_token,
            revision,
        }))
    }

    async fn create_scope(
        &self,
        request: Request<pb::CreateScopeRequest>,
    ) -> Reply<pb::ScopeResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let given = convert::required("scope", &r.scope).map_err(status)?;
        let scope = scope("scope", given).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let created = directory::create_scope(&self.service, &call, &r.tenant, scope, options)
            .await
            .map_err(status)?;
        Ok(Response::new(scope_reply(created)))
    }

    async fn update_scope(
        &self,
        request: Request<pb::UpdateScopeRequest>,
    ) -> Reply<pb::ScopeResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let given = convert::required("scope", &r.scope).map_err(status)?;
        let scope = scope("scope", given).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let updated = directory::update_scope(&self.service, &call, &r.tenant, scope, options)
            .await
            .map_err(status)?;
        Ok(Response::new(scope_reply(updated)))
    }

    async fn delete_scope(&self, request: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.delete(request, |service, call, r, id| async move {
            let options = write_options(&r.options)?;
            directory::delete_scope(&service, &call, &r.tenant, id, options).await
        })
        .await
    }

    async fn get_scope(&self, request: Request<pb::GetRequest>) -> Reply<pb::ScopeResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let at_least = Revision(r.at_least_revision);
        let found = directory::get_scope(&self.service, &call, &r.tenant, &r.id, at_least)
            .await
            .map_err(status)?;
        Ok(Response::new(scope_reply(found)))
    }

    async fn list_scopes(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Reply<pb::ListScopesResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let page = page_request(&r.page);
        let at_least = Revision(r.at_least_revision);
        let listed = directory::list_scopes(&self.service, &call, &r.tenant, &page, at_least).await;
        let ((scopes, next_page_token), revision) = listed_to_pb(listed, |s| scope_to_pb(&s))?;
        Ok(Response::new(pb::ListScopesResponse {
            scopes,
            next_page_token,
            revision,
        }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Reply<pb::GroupResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let given = convert::required("group", &r.group).map_err(status)?;
        let group = group("group", given).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let created = directory::create_group(&self.service, &call, &r.tenant, group, options)
            .await
            .map_err(status)?;
        Ok(Response::new(group_reply(created)))
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Reply<pb::GroupResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let given = convert::required("group", &r.group).map_err(status)?;
        let group = group("group", given).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let mask = mask(&r.update_mask);
        let updated =
            directory::update_group(&self.service, &call, &r.tenant, group, mask, options)
                .await
                .map_err(status)?;
        Ok(Response::new(group_reply(updated)))
    }

    async fn delete_group(&self, request: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.delete(request, |service, call, r, id| async move {
            let options = write_options(&r.options)?;
            directory::delete_group(&service, &call, &r.tenant, id, options).await
        })
        .await
    }

    async fn get_group(&self, request: Request<pb::GetRequest>) -> Reply<pb::GroupResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let at_least = Revision(r.at_least_revision);
        let found = directory::get_group(&self.service, &call, &r.tenant, &r.id, at_least)
            .await
            .map_err(status)?;
        Ok(Response::new(group_reply(found)))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Reply<pb::ListGroupsResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let page = page_request(&r.page);
        let at_least = Revision(r.at_least_revision);
        let listed = directory::list_groups(&self.service, &call, &r.tenant, &page, at_least).await;
        let ((groups, next_page_token), revision) = listed_to_pb(listed, |g| group_to_pb(&g))?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups,
            next_page_token,
            revision,
        }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Reply<pb::ListGroupMembersResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let page = page_request(&r.page);
        let at_least = Revision(r.at_least_revision);
        let listed = directory::list_group_members(
            &self.service,
            &call,
            &r.tenant,
            &r.group,
            &page,
            at_least,
        )
        .await;
        let ((members, next_page_token), revision) = listed_to_pb(listed, |m| principal_to_pb(&m))?;
        Ok(Response::new(pb::ListGroupMembersResponse {
            members,
            next_page_token,
            revision,
        }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Reply<pb::RoleResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let role =
            role("role", convert::required("role", &r.role).map_err(status)?).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let created = directory::create_role(&self.service, &call, &r.tenant, role, options)
            .await
            .map_err(status)?;
        Ok(Response::new(role_reply(created)))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Reply<pb::RoleResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let role =
            role("role", convert::required("role", &r.role).map_err(status)?).map_err(status)?;
        let options = write_options(&r.options).map_err(status)?;
        let updated = directory::update_role(&self.service, &call, &r.tenant, role, options)
            .await
            .map_err(status)?;
        Ok(Response::new(role_reply(updated)))
    }

    async fn delete_role(&self, request: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        self.delete(request, |service, call, r, id| async move {
            let options = write_options(&r.options)?;
            directory::delete_role(&service, &call, &r.tenant, id, options).await
        })
        .await
    }

    async fn get_role(&self, request: Request<pb::GetRequest>) -> Reply<pb::RoleResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let at_least = Revision(r.at_least_revision);
        let found = directory::get_role(&self.service, &call, &r.tenant, &r.id, at_least)
            .await
            .map_err(status)?;
        Ok(Response::new(role_reply(found)))
    }

    async fn list_roles(&self, request: Request<pb::ListRequest>) -> Reply<pb::ListRolesResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let page = page_request(&r.page);
        let at_least = Revision(r.at_least_revision);
        let listed = directory::list_roles(&self.service, &call, &r.tenant, &page, at_least).await;
        let ((roles, next_page_token), revision) = listed_to_pb(listed, role_entry_to_pb)?;
        Ok(Response::new(pb::ListRolesResponse {
            roles,
            next_page_token,
            revision,
        }))
    }

    async fn list_assignments(
        &self,
        request: Request<pb::ListAssignmentsRequest>,
    ) -> Reply<pb::ListAssignmentsResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let filter = AssignmentFilter {
            principal: match &r.principal {
                Some(_) => Some(convert::principal("principal", &r.principal).map_err(status)?),
                None => None,
            },
            role: optional_id("role", &r.role).map_err(status)?,
            target: match &r.target {
                Some(_) => Some(convert::target("target", &r.target).map_err(status)?),
                None => None,
            },
        };
        let page = page_request(&r.page);
        let at_least = Revision(r.at_least_revision);
        let listed =
            directory::list_assignments(&self.service, &call, &r.tenant, &filter, &page, at_least)
                .await;
        let ((assignments, next_page_token), revision) =
            listed_to_pb(listed, |a| assignment_to_pb(&a))?;
        Ok(Response::new(pb::ListAssignmentsResponse {
            assignments,
            next_page_token,
            revision,
        }))
    }
}
