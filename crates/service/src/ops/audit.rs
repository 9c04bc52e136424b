//! The audit trail's use case: its entries newest first, filtered and
//! paged. A tenant-bound token is held to its tenant here, whatever the
//! request names; an unbound admin token sees every tenant and the
//! store-wide entries. Must not decide what is audited: the sequencer and
//! the callers' refusals do.

use super::page::{Cursor, Listing, Page, PageRequest, Pager, principal_text};
use super::{Call, UseCase};
use crate::auth::Visible;
use crate::{Error, Service};
use authzd_core::model::{AuditEntry, AuditQuery, OutcomeFilter, SubjectId, TenantId};

/// A page of the audit trail matching `query` (whose `before` is the
/// page token's to set). A page may be short, even empty, yet have a
/// next token: a call examines a bounded number of entries.
pub async fn list_audit_entries(
    service: &Service,
    call: &Call,
    mut query: AuditQuery,
    page: &PageRequest,
) -> Result<Page<AuditEntry>, Error> {
    if let Visible::Only(bound) = call.visible_tenants()? {
        if let Some(asked) = &query.tenant {
            call.admit(service, asked.as_str())?;
        }
        query.tenant = Some(bound);
    }
    let stamp = |t: &Option<authzd_core::model::Timestamp>| t.map(|t| t.0.to_string());
    let outcome = query.outcome.map(|o| match o {
        OutcomeFilter::Committed => "committed",
        OutcomeFilter::Denied => "denied",
    });
    let listing = Listing::new(UseCase::ListAuditEntries, None)
        .filter("tenant", query.tenant.as_ref().map(TenantId::as_str))
        .filter(
            "concerning",
            query.concerning.as_ref().map(principal_text).as_deref(),
        )
        .filter("actor", query.actor.as_ref().map(SubjectId::as_str))
        .filter("caller", query.caller.as_deref())
        .filter("since", stamp(&query.since).as_deref())
        .filter("until", stamp(&query.until).as_deref())
        .filter("outcome", outcome);
    let pager = Pager::new(listing, page)?;
    query.before = pager.after().map(Cursor::to_audit).transpose()?;
    let found = service.audit_page(query, pager.size()).await?;
    Ok(pager.ending(found.entries, found.next.map(Cursor::audit)))
}
