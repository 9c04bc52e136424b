//! `AccessService`: checks and the two listings, answered from a snapshot of
//! the compiled cache.

use tonic::{Request, Response, Status};

use super::convert::{page, page_token, reach_to_pb, source_to_pb};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::engine::{At, Question, Snapshot};
use authzd_core::limits::MAX_BATCH_CHECKS;
use authzd_core::model::{Revision, Timestamp};
use authzd_service::{Error, Service};

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

    async fn snapshot(&self, at_least: u64) -> Result<std::sync::Arc<Snapshot>, Error> {
        self.service.snapshot_at(Revision(at_least)).await
    }
}

fn nonempty<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(value)
    }
}

/// A well-formed id, checked without allocating unless it is refused (the
/// check path's budget).
fn valid_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    authzd_core::model::check_id(field, value).map_err(|e| invalid(field, e))?;
    Ok(value)
}

/// An optional id: empty, or well-formed.
fn optional_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Ok(value)
    } else {
        valid_id(field, value)
    }
}

/// The place a check names: a scope, or a target subject, not both.
fn at<'a>(scope: &'a str, target_subject: &'a str) -> Result<At<'a>, Error> {
    let scope = optional_id("scope", scope)?;
    let target_subject = optional_id("target_subject", target_subject)?;
    match (scope.is_empty(), target_subject.is_empty()) {
        (_, true) => Ok(At::Scope(scope)),
        (true, false) => Ok(At::Subject(target_subject)),
        (false, false) => Err(invalid(
            "target_subject",
            "give either scope or target_subject, not both",
        )),
    }
}

/// A checked question; field names in errors are the request's.
fn question<'a>(
    subject: &'a str,
    permission: &'a str,
    scope: &'a str,
    target_subject: &'a str,
) -> Result<Question<'a>, Error> {
    Ok(Question {
        subject: valid_id("subject", subject)?,
        permission: nonempty("permission", permission)?,
        at: at(scope, target_subject)?,
    })
}

/// Locates a refused field inside `checks[i]`.
fn in_item(i: usize, e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, reason } => Error::InvalidArgument {
            field: format!("checks[{i}].{field}"),
            reason,
        },
        other => other,
    }
}

#[tonic::async_trait]
impl pb::access_service_server::AccessService for AccessApi {
    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let tenant = valid_id("tenant", &r.tenant).map_err(status)?;
        let q = question(&r.subject, &r.permission, &r.scope, &r.target_subject).map_err(status)?;
        let snapshot = self.snapshot(r.at_least_revision).await.map_err(status)?;
        let now = self.service.now();
        if r.explain {
            // Explaining walks every source of the subject's grants: off the
            // async workers, unlike the plain check, which is a few lookups.
            let r = request.into_inner();
            let reply = self
                .service
                .off_runtime(move || explained_check(&snapshot, &r, now))
                .await
                .map_err(status)?
                .map_err(status)?;
            return Ok(Response::new(reply));
        }
        Ok(Response::new(pb::CheckAccessResponse {
            allowed: snapshot
                .check(tenant, &q, now)
                .map_err(Error::from)
                .map_err(status)?,
            revision: snapshot.revision.0,
            explanation: None,
        }))
    }

    async fn batch_check_access(
        &self,
        request: Request<pb::BatchCheckAccessRequest>,
    ) -> Result<Response<pb::BatchCheckAccessResponse>, Status> {
        let r = request.get_ref();
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &r.tenant)
            .map_err(status)?;
        let tenant = valid_id("tenant", &r.tenant).map_err(status)?;
        if r.checks.len() > MAX_BATCH_CHECKS {
            return Err(status(invalid(
                "checks",
                format!("at most {MAX_BATCH_CHECKS} checks per call"),
            )));
        }
        let snapshot = self.snapshot(r.at_least_revision).await.map_err(status)?;
        let now = self.service.now();
        let results = r
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let q = question(&c.subject, &c.permission, &c.scope, &c.target_subject)
                    .map_err(|e| in_item(i, e))?;
                let allowed = snapshot
                    .check(tenant, &q, now)
                    .map_err(|error| Error::Refused {
                        list: "checks",
                        index: i,
                        error,
                    })?;
                Ok(pb::CheckResult { allowed })
            })
            .collect::<Result<Vec<_>, Error>>()
            .map_err(status)?;
        Ok(Response::new(pb::BatchCheckAccessResponse {
            results,
            revision: snapshot.revision.0,
        }))
    }

    async fn list_effective_permissions(
        &self,
        request: Request<pb::ListEffectivePermissionsRequest>,
    ) -> Result<Response<pb::ListEffectivePermissionsResponse>, Status> {
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &request.get_ref().tenant)
            .map_err(status)?;
        let r = request.into_inner();
        valid_id("tenant", &r.tenant).map_err(status)?;
        valid_id("subject", &r.subject).map_err(status)?;
        let snapshot = self.snapshot(r.at_least_revision).await.map_err(status)?;
        let now = self.service.now();
        // A subject in many groups has many sources to collect: off the
        // async workers, so checks keep their latency meanwhile.
        let reply = self
            .service
            .off_runtime(move || effective_permissions(&snapshot, &r, now))
            .await
            .map_err(status)?
            .map_err(status)?;
        Ok(Response::new(reply))
    }

    async fn list_subjects_with_permission(
        &self,
        request: Request<pb::ListSubjectsWithPermissionRequest>,
    ) -> Result<Response<pb::ListSubjectsWithPermissionResponse>, Status> {
        guard::call(&request)
            .map_err(status)?
            .admit(&self.service, &request.get_ref().tenant)
            .map_err(status)?;
        let r = request.into_inner();
        valid_id("tenant", &r.tenant).map_err(status)?;
        nonempty("permission", &r.permission).map_err(status)?;
        at(&r.scope, &r.target_subject).map_err(status)?;
        let snapshot = self.snapshot(r.at_least_revision).await.map_err(status)?;
        let now = self.service.now();
        // Finding holders can visit every subject of the tenant: off the
        // async workers, so checks keep their latency meanwhile.
        let reply = self
            .service
            .off_runtime(move || holders(&snapshot, &r, now))
            .await
            .map_err(status)?
            .map_err(status)?;
        Ok(Response::new(reply))
    }
}

/// `CheckAccess` with `explain` over a snapshot (blocking: it may be long).
fn explained_check(
    snapshot: &Snapshot,
    r: &pb::CheckAccessRequest,
    now: Timestamp,
) -> Result<pb::CheckAccessResponse, Error> {
    let q = question(&r.subject, &r.permission, &r.scope, &r.target_subject)?;
    let (allowed, why) = snapshot.explain(&r.tenant, &q, now).map_err(Error::from)?;
    let explanation = pb::Explanation {
        sources: why.sources.iter().map(source_to_pb).collect(),
        denials: why
            .denials
            .iter()
            .map(|d| pb::Denial {
                reason: denial_reason(d.reason) as i32,
                detail: d.detail.clone(),
            })
            .collect(),
    };
    Ok(pb::CheckAccessResponse {
        allowed,
        revision: snapshot.revision.0,
        explanation: Some(explanation),
    })
}

/// `ListEffectivePermissions` over a snapshot (blocking: it may be long).
fn effective_permissions(
    snapshot: &Snapshot,
    r: &pb::ListEffectivePermissionsRequest,
    now: Timestamp,
) -> Result<pb::ListEffectivePermissionsResponse, Error> {
    let scope = (!r.scope.is_empty()).then_some(r.scope.as_str());
    let targets = snapshot
        .effective_permissions(&r.tenant, &r.subject, scope, now)
        .map_err(Error::from)?;
    Ok(pb::ListEffectivePermissionsResponse {
        targets: targets
            .iter()
            .map(|t| pb::EffectiveTarget {
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
            })
            .collect(),
        revision: snapshot.revision.0,
    })
}

/// `ListSubjectsWithPermission` over a snapshot (blocking: it may be long).
fn holders(
    snapshot: &Snapshot,
    r: &pb::ListSubjectsWithPermissionRequest,
    now: Timestamp,
) -> Result<pb::ListSubjectsWithPermissionResponse, Error> {
    let place = at(&r.scope, &r.target_subject)?;
    let (after, limit) = page("", &r.page_token, r.page_size)?;
    let (holders, next) = snapshot
        .holders(
            &r.tenant,
            &r.permission,
            place,
            after.as_deref(),
            limit,
            now,
        )
        .map_err(Error::from)?;
    Ok(pb::ListSubjectsWithPermissionResponse {
        holders: holders
            .iter()
            .map(|h| pb::Holder {
                subject: h.subject.clone(),
                implied: h.implied,
                sources: h.sources.iter().map(source_to_pb).collect(),
                reach: reach_to_pb(h.reach) as i32,
            })
            .collect(),
        next_page_token: next.as_deref().map(page_token).unwrap_or_default(),
        revision: snapshot.revision.0,
    })
}

fn denial_reason(r: authzd_core::engine::DenialReason) -> pb::DenialReason {
    use authzd_core::engine::DenialReason as D;
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
