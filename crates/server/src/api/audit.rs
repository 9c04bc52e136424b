//! `AuditService`: the audit trail, newest first, filtered and paged, a
//! thin adapter over [`authzd_service::ops::audit`] (which holds a
//! tenant-bound token to its tenant and pages with the one verified token
//! scheme). Must not decide what is audited; the sequencer and the guard
//! do.

use tonic::{Request, Response, Status};

use super::convert::{optional_id, principal, principal_to_pb, timestamp, timestamp_to_pb};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::model::{AuditEntry, AuditOutcome, AuditQuery, OutcomeFilter};
use authzd_service::ops::{PageRequest, audit};
use authzd_service::{Error, Service};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct AuditApi {
    service: Service,
}

impl AuditApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        AuditApi { service }
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditApi {
    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let query = query(r).map_err(status)?;
        let page = PageRequest {
            size: r.page_size,
            token: r.page_token.clone(),
        };
        let page = audit::list_audit_entries(&self.service, &call, query, &page)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page.items.iter().map(entry_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }
}

/// The request's filters as a query.
fn query(r: &pb::ListAuditEntriesRequest) -> Result<AuditQuery, Error> {
    let outcome = match pb::AuditOutcome::try_from(r.outcome) {
        Ok(pb::AuditOutcome::Unspecified) => None,
        Ok(pb::AuditOutcome::Committed) => Some(OutcomeFilter::Committed),
        Ok(pb::AuditOutcome::Denied) => Some(OutcomeFilter::Denied),
        Err(_) => return Err(invalid("outcome", format!("unknown outcome {}", r.outcome))),
    };
    Ok(AuditQuery {
        tenant: optional_id("tenant", &r.tenant)?,
        concerning: match &r.concerning {
            Some(_) => Some(principal("concerning", &r.concerning)?),
            None => None,
        },
        actor: optional_id("actor", &r.actor)?,
        caller: (!r.caller.is_empty()).then(|| r.caller.clone()),
        since: timestamp("since", &r.since)?,
        until: timestamp("until", &r.until)?,
        outcome,
        before: None,
    })
}

fn entry_to_pb(e: &AuditEntry) -> pb::AuditEntry {
    let (outcome, revision, denial, denial_reason) = match &e.outcome {
        AuditOutcome::Committed(r) => (
            pb::AuditOutcome::Committed,
            r.0,
            String::new(),
            String::new(),
        ),
        AuditOutcome::Denied { message, reason } => (
            pb::AuditOutcome::Denied,
            0,
            message.clone(),
            reason.clone().unwrap_or_default(),
        ),
    };
    pb::AuditEntry {
        time: Some(timestamp_to_pb(e.key.at)),
        tenant: e
            .tenant
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        caller: e.origin.caller.clone(),
        request_id: e.origin.request_id.clone(),
        method: e.origin.method.clone(),
        actor: e
            .actor
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        reason: e.origin.reason.clone().unwrap_or_default(),
        outcome: outcome.into(),
        revision,
        denial,
        denial_reason,
        concerned: e.concerned.iter().map(principal_to_pb).collect(),
        more_concerned: e.more_concerned,
    }
}
