//! `grpc.health.v1.Health`: tonic-health's statuses, with one addition:
//! at shutdown a `Watch` stream sends NOT_SERVING and then ends with
//! UNAVAILABLE, so a client holding one neither keeps the server from
//! exiting nor mistakes the end for a normal one. Must not decide when the
//! server is serving (the wiring in `server` sets the statuses).

use std::pin::Pin;

use futures_util::StreamExt;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use authzd_service::Service;

/// The health service.
#[derive(Debug)]
pub struct HealthApi {
    statuses: HealthService,
    service: Service,
}

impl HealthApi {
    /// Answers with the statuses `reporter` sets, until `service` closes.
    pub fn new(reporter: HealthReporter, service: Service) -> Self {
        Self {
            statuses: HealthService::from_health_reporter(reporter),
            service,
        }
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthApi {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.statuses.check(request).await
    }

    type WatchStream = StatusStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<StatusStream>, Status> {
        let statuses = self.statuses.watch(request).await?.into_inner();
        let service = self.service.clone();
        let closed = async move { service.closed().await };
        // The last status is sent again before the end: the stream stops
        // polling the statuses once the service has closed, and may not have
        // passed on the NOT_SERVING set just before.
        let end = tokio_stream::iter([
            Ok(HealthCheckResponse {
                status: ServingStatus::NotServing as i32,
            }),
            Err(Status::unavailable("the server is shutting down")),
        ]);
        Ok(Response::new(Box::pin(
            statuses.take_until(closed).chain(end),
        )))
    }
}
