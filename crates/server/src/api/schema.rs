//! `SchemaService`: read and replace the permission catalog.

use tonic::{Request, Response, Status};

use super::convert::{reason, revision};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::limits::MAX_SCHEMA_BYTES;
use authzd_service::Service;

/// The tonic service.
#[derive(Debug, Clone)]
pub struct SchemaApi {
    service: Service,
}

impl SchemaApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl pb::schema_service_server::SchemaService for SchemaApi {
    async fn read_schema(
        &self,
        request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        // The catalog is shared by every tenant and holds no tenant's data.
        guard::call(&request).map_err(status)?;
        let snapshot = self.service.snapshot();
        Ok(Response::new(pb::ReadSchemaResponse {
            schema: snapshot.compiled.catalog.source().to_string(),
            revision: snapshot.revision.0,
        }))
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        if r.schema.len() > MAX_SCHEMA_BYTES {
            return Err(status(invalid(
                "schema",
                format!("larger than {MAX_SCHEMA_BYTES} bytes"),
            )));
        }
        let reason = reason("reason", &r.reason).map_err(status)?;
        let revision = self
            .service
            .write_schema(
                r.schema.clone(),
                r.dry_run,
                revision(r.expected_revision),
                call.origin(reason),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::WriteSchemaResponse {
            revision: revision.0,
        }))
    }
}
