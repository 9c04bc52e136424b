//! `SchemaService`: read and replace the permission catalog, thin adapters
//! over [`authzd_service::ops::schema`].

use tonic::{Request, Response, Status};

use super::convert::revision;
use super::guard;
use super::pb;
use super::status;
use authzd_service::Service;
use authzd_service::ops::{self, schema};

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
        guard::call(&request).map_err(status)?;
        let schema = schema::read_schema(&self.service);
        Ok(Response::new(pb::ReadSchemaResponse {
            schema: schema.value,
            revision: schema.revision.0,
        }))
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        let reason = ops::reason("reason", &r.reason).map_err(status)?;
        let revision = schema::write_schema(
            &self.service,
            &call,
            r.schema,
            r.dry_run,
            revision(r.expected_revision),
            reason,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(pb::WriteSchemaResponse {
            revision: revision.0,
        }))
    }
}
