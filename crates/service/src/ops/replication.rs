//! Replication's use cases, the primary's side: which tenants a replica's
//! `Snapshot` or `Follow` is served, for the caller asking. Must not
//! stream or encode anything: the edge streams what the service exports.

use super::Call;
use crate::{Error, Service, Tenants};
use authzd_core::limits::MAX_REPLICATED_TENANTS;
use authzd_core::model::TenantId;

/// The tenants a replica is served: those it names (each admitted for the
/// caller), else the token's own tenant, else every tenant.
pub fn tenants(service: &Service, call: &Call, named: Vec<TenantId>) -> Result<Tenants, Error> {
    if named.is_empty() {
        return Ok(match call.bound_tenant() {
            Some(t) => Tenants::Only(vec![t.clone()]),
            None => Tenants::All,
        });
    }
    if named.len() > MAX_REPLICATED_TENANTS {
        return Err(Error::InvalidArgument {
            field: "tenants".into(),
            reason: format!(
                "{} tenants named; the limit is {MAX_REPLICATED_TENANTS}",
                named.len()
            ),
        });
    }
    for tenant in &named {
        call.admit(service, tenant.as_str())?;
    }
    Ok(Tenants::Only(named))
}
