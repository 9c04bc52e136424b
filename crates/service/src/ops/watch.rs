//! The change feed's use case: a subscription to a tenant's change sets
//! from a starting point, for a caller admitted to that tenant, and the
//! rules for assembling its filter and start from what a caller gives.
//! Must not cut revisions into pieces or pace a subscriber: the feed does.

use super::Call;
use crate::watch::{Filter, Start, Subscription};
use crate::{Error, Service};
use authzd_core::model::{Place, Revision, ScopeId, SubjectId};

fn invalid(field: &str, reason: &str) -> Error {
    Error::InvalidArgument {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Where effects are watched: a scope, or a target subject, not both
/// (neither: everywhere).
pub fn target(
    scope: Option<ScopeId>,
    target_subject: Option<SubjectId>,
) -> Result<Option<Place>, Error> {
    match (scope, target_subject) {
        (Some(_), Some(_)) => Err(invalid(
            "target_subject",
            "give either scope or target_subject, not both",
        )),
        (Some(scope), None) => Ok(Some(Place::Scope(scope))),
        (None, Some(subject)) => Ok(Some(Place::Subject(subject))),
        (None, None) => Ok(None),
    }
}

/// Where a subscription starts: after a revision (0: the first ever), or
/// at the oldest retained one, not both.
pub fn start(after_revision: Revision, from_oldest_retained: bool) -> Result<Start, Error> {
    match (from_oldest_retained, after_revision) {
        (false, after) => Ok(Start::After(after)),
        (true, Revision(0)) => Ok(Start::OldestRetained),
        (true, _) => Err(invalid(
            "after_revision",
            "give either after_revision or from_oldest_retained, not both",
        )),
    }
}

/// Subscribes the caller to `filter`'s tenant from `start`.
pub async fn watch(
    service: &Service,
    call: &Call,
    filter: Filter,
    start: Start,
) -> Result<Subscription, Error> {
    call.admit(service, filter.tenant.as_str())?;
    service.watch(filter, start).await
}
