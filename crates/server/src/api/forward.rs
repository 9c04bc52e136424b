//! Where writes go: a tower layer behind the caller guard.
//!
//! On a primary it stamps every write's response with the header
//! [`REVISION_HEADER`], the revision the server had applied when the reply
//! left (at least the write's own). On a replica it sends every write RPC,
//! untouched (the caller's `authorization` and `x-request-id` included), to
//! the primary, and holds the primary's reply until the replica has applied
//! the stamped revision (at most [`authzd_core::limits::MAX_REVISION_WAIT`]), so a
//! client writing through its sidecar reads its write there next. Must not
//! look into request bodies or decide who may write: the primary does.

use futures_util::future::BoxFuture;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tonic::body::Body;
use tonic::transport::Channel;

use super::guard::needs_primary;
use authzd_core::model::Revision;
use authzd_service::{Error, Service};

/// The response header naming the revision a write's reply reflects.
pub const REVISION_HEADER: &str = "x-authzd-revision";

/// The layer: stamps writes on a primary, forwards them on a replica.
#[derive(Debug, Clone)]
pub struct WriteLayer {
    service: Service,
    /// The primary's channel on a replica (reconnects by itself).
    primary: Option<Channel>,
}

impl WriteLayer {
    /// Writes are served by `service` itself, or forwarded to `primary`.
    pub fn new(service: Service, primary: Option<Channel>) -> Self {
        Self { service, primary }
    }
}

impl<S> tower_layer::Layer<S> for WriteLayer {
    type Service = WriteService<S>;
    fn layer(&self, inner: S) -> WriteService<S> {
        WriteService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The layered service.
#[derive(Debug, Clone)]
pub struct WriteService<S> {
    inner: S,
    layer: WriteLayer,
}

impl<S> tower_service::Service<Request<Body>> for WriteService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let write = needs_primary(request.uri().path());
        let service = self.layer.service.clone();
        if let (true, Some(primary)) = (write, &self.layer.primary) {
            let primary = primary.clone();
            return Box::pin(async move { Ok(forward(primary, service, request).await) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            if write {
                let applied = service.snapshot().revision;
                response
                    .headers_mut()
                    .insert(REVISION_HEADER, HeaderValue::from(applied.0));
            }
            Ok(response)
        })
    }
}

/// Sends `request` to the primary and returns its reply once this replica
/// has applied the revision the reply is stamped with (or the wait's bound
/// has passed: the write stands either way, and the log says so).
async fn forward(mut primary: Channel, service: Service, request: Request<Body>) -> Response<Body> {
    use tower_service::Service as _;
    let sent = async {
        std::future::poll_fn(|cx| primary.poll_ready(cx)).await?;
        primary.call(request).await
    };
    let response = match sent.await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %authzd_client::tls::causes(&e), "forwarding a write to the primary failed");
            return super::status(Error::PrimaryUnreachable).into_http();
        }
    };
    let stamped = response
        .headers()
        .get(REVISION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(revision) = stamped {
        if let Err(e) = service.snapshot_at(Revision(revision)).await {
            tracing::warn!(%revision, error = %e, "a forwarded write's reply is returned before this replica applied it");
        }
    }
    response
}
