//! `AuditService`: the audit trail, newest first, filtered and paged.
//!
//! A tenant-bound token is held to its tenant here (whatever the request
//! names); an unbound admin token sees every tenant and the store-wide
//! entries. Page tokens are opaque to callers and validated: a token this
//! server did not issue is INVALID_ARGUMENT. Must not decide what is
//! audited; the sequencer and the guard do.

use tonic::{Request, Response, Status};

use super::convert::{optional_id, principal, principal_to_pb, timestamp, timestamp_to_pb};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use authzd_core::model::{
    AuditEntry, AuditKey, AuditOutcome, AuditQuery, OutcomeFilter, Timestamp,
};
use authzd_service::auth::Visible;
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
        let mut query = query(r).map_err(status)?;
        if let Visible::Only(bound) = call.visible_tenants().map_err(status)? {
            if let Some(asked) = &query.tenant {
                call.admit(&self.service, asked.as_str()).map_err(status)?;
            }
            query.tenant = Some(bound);
        }
        let size = match usize::try_from(r.page_size).unwrap_or(usize::MAX) {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(status(invalid(
                    "page_size",
                    format!("at most {MAX_PAGE_SIZE}"),
                )));
            }
            n => n,
        };
        let page = self.service.audit_page(query, size).await.map_err(status)?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page.entries.iter().map(entry_to_pb).collect(),
            next_page_token: page.next.map(page_token).unwrap_or_default(),
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
        before: parse_page_token(&r.page_token)?,
    })
}

/// The prefix of every audit page token: its scheme's version.
const TOKEN_PREFIX: &str = "a1.";

/// An opaque cursor: the last entry examined, as hex.
fn page_token(key: AuditKey) -> String {
    format!("{TOKEN_PREFIX}{:016x}{:016x}", key.at.0 as u64, key.seq)
}

fn parse_page_token(token: &str) -> Result<Option<AuditKey>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid("page_token", "not a page token this server issued");
    let hex = token.strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let at = u64::from_str_radix(&hex[..16], 16).map_err(|_| bad())?;
    let seq = u64::from_str_radix(&hex[16..], 16).map_err(|_| bad())?;
    Ok(Some(AuditKey {
        at: Timestamp(at as i64),
        seq,
    }))
}

fn entry_to_pb(e: &AuditEntry) -> pb::AuditEntry {
    let (outcome, revision, denial) = match &e.outcome {
        AuditOutcome::Committed(r) => (pb::AuditOutcome::Committed, r.0, String::new()),
        AuditOutcome::Denied(why) => (pb::AuditOutcome::Denied, 0, why.clone()),
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
        concerned: e.concerned.iter().map(principal_to_pb).collect(),
        more_concerned: e.more_concerned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token round-trips (negative times included); anything else is
    /// refused, naming the field.
    #[test]
    fn page_tokens_round_trip_and_refuse_garbage() {
        for key in [
            AuditKey {
                at: Timestamp(1_700_000_000_000_000_000),
                seq: 42,
            },
            AuditKey {
                at: Timestamp(-5),
                seq: u64::MAX,
            },
        ] {
            assert_eq!(parse_page_token(&page_token(key)).ok(), Some(Some(key)));
        }
        for garbage in ["x", "a1.", "a1.zz", "b1.00000000000000000000000000000000"] {
            let error = parse_page_token(garbage).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("page_token")),
                "{garbage}: {error:?}"
            );
        }
    }
}
