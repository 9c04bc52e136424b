//! `WatchService`: a tenant's committed change sets as a server stream.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{change_to_pb, id, optional_id, timestamp_to_pb};
use super::pb;
use crate::model::Revision;
use crate::service::{Error, Service};
use crate::watch::Filter;

/// The tonic service.
#[derive(Debug, Clone)]
pub struct WatchApi {
    service: Service,
}

impl WatchApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::watch_service_server::WatchService for WatchApi {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let r = request.get_ref();
        let filter = Filter {
            tenant: id("tenant", &r.tenant)?,
            subject: optional_id("subject", &r.subject)?,
        };
        let tenant = r.tenant.clone();
        let receiver = self
            .service
            .watch(filter, Revision(r.after_revision))
            .await?;
        let stream = ReceiverStream::new(receiver).map(move |item| match item {
            Ok(set) => Ok(pb::WatchResponse {
                revision: set.revision.0,
                committed_at: Some(timestamp_to_pb(set.committed_at)),
                actor: set
                    .actor
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                changes: set
                    .changes
                    .iter()
                    .map(|c| change_to_pb(&tenant, c))
                    .collect(),
            }),
            Err(e) => Err(Status::from(Error::from(e))),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
