//! The schema's use cases: read the catalog every tenant shares, and
//! validate then install a new one. Owns the bound on a schema's size;
//! must not parse or check a schema itself (the schema stage and the
//! sequencer do).

use super::{Call, Stamped};
use crate::{Error, Service};
use authzd_core::limits::MAX_SCHEMA_BYTES;
use authzd_core::model::Revision;

/// The schema in force, as its text. The catalog is shared by every
/// tenant and holds no tenant's data: any caller may read it.
pub fn read_schema(service: &Service) -> Stamped<String> {
    let snapshot = service.snapshot();
    Stamped {
        value: snapshot.compiled.catalog.source().to_string(),
        revision: snapshot.revision,
    }
}

/// Validates `schema` against the stored data and, unless `dry_run`,
/// installs it; `reason` enters the audit trail.
pub async fn write_schema(
    service: &Service,
    call: &Call,
    schema: String,
    dry_run: bool,
    expected_revision: Option<Revision>,
    reason: Option<String>,
) -> Result<Revision, Error> {
    if schema.len() > MAX_SCHEMA_BYTES {
        return Err(Error::InvalidArgument {
            field: "schema".into(),
            reason: format!("larger than {MAX_SCHEMA_BYTES} bytes"),
        });
    }
    service
        .write_schema(schema, dry_run, expected_revision, call.origin(reason))
        .await
}
