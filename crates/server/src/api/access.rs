//! `AccessService`: checks and the two listings, each a thin adapter over
//! [`authzd_service::ops::access`]: protobuf in, the operation, protobuf
//! out. Must not validate or evaluate anything itself.

use tonic::{Request, Response, Status};

use super::convert::{page_to_pb, reach_to_pb, source_to_pb};
use super::guard;
use super::pb;
use super::status;
use authzd_core::engine::{DenialReason, Explanation, Holder, TargetHoldings};
use authzd_core::model::Revision;
use authzd_service::Service;
use authzd_service::ops::PageRequest;
use authzd_service::ops::access::{self, Check, Holders};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct AccessApi {
    service: Service,
}

impl AccessApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// A check as asked, its strings moved out of the message.
fn check_of(subject: String, permission: String, scope: String, target: String) -> Check {
    Check {
        subject,
        permission,
        scope,
        target_subject: target,
    }
}

#[tonic::async_trait]
impl pb::access_service_server::AccessService for AccessApi {
    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Reply<pb::CheckAccessResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        let asked = check_of(r.subject, r.permission, r.scope, r.target_subject);
        let at_least = Revision(r.at_least_revision);
        let answer = access::check(&self.service, &call, &r.tenant, &asked, r.explain, at_least)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CheckAccessResponse {
            allowed: answer.value.allowed,
            revision: answer.revision.0,
            explanation: answer.value.explanation.as_ref().map(explanation_to_pb),
        }))
    }

    async fn batch_check_access(
        &self,
        request: Request<pb::BatchCheckAccessRequest>,
    ) -> Reply<pb::BatchCheckAccessResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        let checks: Vec<Check> = r
            .checks
            .into_iter()
            .map(|c| check_of(c.subject, c.permission, c.scope, c.target_subject))
            .collect();
        let at_least = Revision(r.at_least_revision);
        let answers = access::batch_check(&self.service, &call, &r.tenant, &checks, at_least)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::BatchCheckAccessResponse {
            results: answers
                .value
                .into_iter()
                .map(|allowed| pb::CheckResult { allowed })
                .collect(),
            revision: answers.revision.0,
        }))
    }

    async fn list_effective_permissions(
        &self,
        request: Request<pb::ListEffectivePermissionsRequest>,
    ) -> Reply<pb::ListEffectivePermissionsResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        let at_least = Revision(r.at_least_revision);
        let targets = access::effective_permissions(
            &self.service,
            &call,
            r.tenant,
            r.subject,
            r.scope,
            at_least,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(pb::ListEffectivePermissionsResponse {
            targets: targets.value.iter().map(target_to_pb).collect(),
            revision: targets.revision.0,
        }))
    }

    async fn list_subjects_with_permission(
        &self,
        request: Request<pb::ListSubjectsWithPermissionRequest>,
    ) -> Reply<pb::ListSubjectsWithPermissionResponse> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        let asked = Holders {
            permission: r.permission,
            scope: r.scope,
            target_subject: r.target_subject,
        };
        let page = PageRequest {
            size: r.page_size,
            token: r.page_token,
        };
        let at_least = Revision(r.at_least_revision);
        let listed = access::holders(&self.service, &call, r.tenant, asked, &page, at_least)
            .await
            .map_err(status)?;
        let (holders, next_page_token) = page_to_pb(listed.value, holder_to_pb);
        Ok(Response::new(pb::ListSubjectsWithPermissionResponse {
            holders,
            next_page_token,
            revision: listed.revision.0,
        }))
    }
}

fn explanation_to_pb(why: &Explanation) -> pb::Explanation {
    pb::Explanation {
        sources: why.sources.iter().map(source_to_pb).collect(),
        denials: why
            .denials
            .iter()
            .map(|d| pb::Denial {
                reason: denial_reason(d.reason) as i32,
                detail: d.detail.clone(),
            })
            .collect(),
    }
}

fn target_to_pb(t: &TargetHoldings) -> pb::EffectiveTarget {
    pb::EffectiveTarget {
        scope: t
            .scope
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        population: t
            .population
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        permissions: t
            .permissions
            .iter()
            .map(|p| pb::EffectivePermission {
                permission: p.permission.clone(),
                sources: p.sources.iter().map(source_to_pb).collect(),
                reach: reach_to_pb(p.reach) as i32,
            })
            .collect(),
    }
}

fn holder_to_pb(h: Holder) -> pb::Holder {
    pb::Holder {
        subject: h.subject,
        implied: h.implied,
        sources: h.sources.iter().map(source_to_pb).collect(),
        reach: reach_to_pb(h.reach) as i32,
    }
}

fn denial_reason(r: DenialReason) -> pb::DenialReason {
    use DenialReason as D;
    match r {
        D::SubjectNotFound => pb::DenialReason::SubjectNotFound,
        D::SubjectLocked => pb::DenialReason::SubjectLocked,
        D::NoGrant => pb::DenialReason::NoGrant,
        D::ResourceDisabled => pb::DenialReason::ResourceDisabled,
        D::AssignmentExpired => pb::DenialReason::AssignmentExpired,
        D::PrerequisiteMissing => pb::DenialReason::PrerequisiteMissing,
        D::OutsidePopulation => pb::DenialReason::OutsidePopulation,
        D::MaskedByClass => pb::DenialReason::MaskedByClass,
        D::OutOfScope => pb::DenialReason::OutOfScope,
        D::NotAMember => pb::DenialReason::NotAMember,
    }
}
