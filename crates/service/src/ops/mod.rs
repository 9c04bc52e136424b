//! The use cases below every edge: each operation takes the [`Call`] (who
//! is calling, as an edge's guard established it) and model types, and
//! returns model types, a [`Stamped`] value or a [`Page`]. What a use case
//! decides lives here once, for the gRPC edge and any other: the tenant and
//! actor a caller may name, the validation of questions, the merge of
//! builtin and custom roles, the filters of listings, and paging with
//! tokens the server verifies.
//!
//! # Layout
//!
//! - [`use_case`]: the operation table, [`UseCase`] → what it asks of its
//!   caller.
//! - [`page`]: the one paging scheme: [`PageRequest`] in, [`Page`] out, a
//!   key cursor between them in a token the server verifies.
//! - One file per family of use cases: [`access`], [`directory`],
//!   [`membership`], [`schema`], [`audit`], [`watch`], [`replication`].
//!
//! Must not know protobuf, HTTP or any wire shape. Field names in errors
//! are the contract's (`tenant`, `subject`, `page_token`); an edge whose
//! request nests a field elsewhere renames it.

pub mod access;
pub mod audit;
pub mod directory;
pub mod membership;
pub mod page;
pub mod replication;
pub mod schema;
pub mod use_case;
pub mod watch;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

pub use page::{Page, PageRequest};
pub use use_case::UseCase;

use crate::auth::{Caller, Refusal, Rule, Visible};
use crate::{Error, Service, WriteOptions};
use authzd_core::limits::{MAX_IDEMPOTENCY_KEY_LEN, MAX_REASON_LEN};
use authzd_core::model::{
    AuditEntry, AuditKey, AuditOutcome, Origin, Revision, SubjectId, TenantId, Timestamp,
};

/// A value and the revision it reflects: what a read saw, or what a write
/// made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped<T> {
    /// The value.
    pub value: T,
    /// The revision.
    pub revision: Revision,
}

/// One call of one use case: who calls (the token's name, kind and tenant
/// binding, as the edge authenticated it), under which [`Rule`], with
/// which request id. An operation asks it about what only the request
/// shows: the tenant (`Call::admit`) and the actor
/// (`Call::admit_write`).
#[derive(Debug)]
pub struct Call {
    caller: Arc<Caller>,
    rule: Rule,
    request_id: String,
    /// Whether the edge wants the admitted tenant noted (its access log or
    /// traces are on): noting allocates, which the check path otherwise
    /// never does.
    note: bool,
    /// The tenant the call was admitted to, when noted.
    tenant: OnceLock<TenantId>,
}

impl Call {
    /// A call by `caller` under `rule` (a use case's, or an edge's rule for
    /// what is no use case), known by `request_id`. With `note`, the
    /// tenant it is admitted to is kept for [`Call::tenant`].
    pub fn new(caller: Arc<Caller>, rule: Rule, request_id: String, note: bool) -> Call {
        Call {
            caller,
            rule,
            request_id,
            note,
            tenant: OnceLock::new(),
        }
    }

    /// Who calls.
    pub fn caller(&self) -> &Arc<Caller> {
        &self.caller
    }

    /// What the call asks of its caller.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The request id (the caller's, or one the edge made).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The tenant the call was admitted to, if noted.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.get()
    }

    /// The one tenant the caller's token is bound to, if it is.
    pub fn bound_tenant(&self) -> Option<&TenantId> {
        self.caller.tenant()
    }

    /// Who asked, with the reason the caller gave: what the audit trail
    /// records.
    pub(crate) fn origin(&self, reason: Option<String>) -> Origin {
        Origin {
            caller: self.caller.name().to_string(),
            request_id: self.request_id.clone(),
            method: self.rule.name.to_string(),
            reason,
        }
    }

    /// The error of `refusal`, recorded first in the audit trail when the
    /// call writes (a token at its bound of calls in progress is shed, not
    /// refused, and is not recorded). `tenant` and `actor` are what the
    /// call named, as far as it was read.
    pub fn refuse(
        &self,
        service: &Service,
        tenant: Option<TenantId>,
        actor: Option<SubjectId>,
        refusal: Refusal,
    ) -> Error {
        if self.rule.writes && !matches!(refusal, Refusal::Busy { .. }) {
            service.deny(AuditEntry {
                key: AuditKey {
                    at: Timestamp::now(),
                    seq: 0,
                },
                tenant,
                actor,
                origin: self.origin(None),
                concerned: Vec::new(),
                more_concerned: false,
                // A token refusal is the caller's configuration, not a rule
                // a client branches on: no reason code (see the status
                // mapping at the edge).
                outcome: AuditOutcome::Denied {
                    message: refusal.to_string(),
                    reason: None,
                },
            });
        }
        Error::Caller(refusal)
    }

    /// Admits the call to `tenant` (as the request names it): a
    /// tenant-bound token may name its own tenant only.
    pub(crate) fn admit(&self, service: &Service, tenant: &str) -> Result<(), Error> {
        self.admit_as(service, tenant, None)
    }

    /// [`Call::admit`] for a write on behalf of `actor`, whom a refusal's
    /// audit entry names.
    fn admit_as(
        &self,
        service: &Service,
        tenant: &str,
        actor: Option<&SubjectId>,
    ) -> Result<(), Error> {
        if let Err(refusal) = self.caller.may_touch(&self.rule, tenant) {
            let tenant = TenantId::try_from(tenant).ok();
            return Err(self.refuse(service, tenant, actor.cloned(), refusal));
        }
        if self.note && self.tenant.get().is_none() {
            if let Ok(id) = TenantId::try_from(tenant) {
                let _ = self.tenant.set(id);
            }
        }
        Ok(())
    }

    /// Admits a write to `tenant` with `options`: the tenant as
    /// [`Call::admit`]; without an actor, only an admin token may write.
    /// Stamps the options with who asked.
    pub(crate) fn admit_write(
        &self,
        service: &Service,
        tenant: &str,
        options: &mut WriteOptions,
    ) -> Result<(), Error> {
        self.admit_as(service, tenant, options.actor.as_ref())?;
        if let Err(refusal) = self.caller.may_write(&self.rule, options.actor.as_ref()) {
            return Err(self.refuse(
                service,
                TenantId::try_from(tenant).ok(),
                options.actor.clone(),
                refusal,
            ));
        }
        options.origin = self.origin(options.origin.reason.take());
        Ok(())
    }

    /// The tenants a listing across tenants may show this caller.
    pub(crate) fn visible_tenants(&self) -> Result<Visible, Error> {
        Ok(self.caller.visible_tenants(&self.rule)?)
    }
}

/// A write's reason for the audit trail, as `field` gives it: at most
/// [`MAX_REASON_LEN`] bytes of text without control or bidirectional
/// control characters (consoles show it); empty means none.
pub fn reason(field: &str, text: &str) -> Result<Option<String>, Error> {
    let invalid = |reason: String| Error::InvalidArgument {
        field: field.to_string(),
        reason,
    };
    if text.len() > MAX_REASON_LEN {
        return Err(invalid(format!(
            "{} bytes long; the limit is {MAX_REASON_LEN}",
            text.len()
        )));
    }
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() || authzd_core::model::is_bidi_control(*c))
    {
        return Err(invalid(format!(
            "contains the control character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// A write's idempotency key, as `field` gives it: at most
/// [`MAX_IDEMPOTENCY_KEY_LEN`] bytes; empty means none.
pub fn idempotency_key(field: &str, key: &str) -> Result<Option<String>, Error> {
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(Error::InvalidArgument {
            field: field.to_string(),
            reason: format!("longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes"),
        });
    }
    Ok((!key.is_empty()).then(|| key.to_string()))
}
