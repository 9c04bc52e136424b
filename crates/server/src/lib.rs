//! authzd's edges: the gRPC adapters in [`api`], the HTTP/JSON edge in
//! [`http`] (which calls the same stack in-process), and, here, the wiring.
//!
//! Wiring: the tonic server with every authzd service, health and
//! reflection, behind the caller guard and access log, on a listener the
//! caller bound, until the caller's shutdown future resolves; with an
//! [`http::HttpEdge`], the same stack also behind the HTTP/JSON listener. The caller
//! binds and the caller stops, so tests can run the real server on port 0.
//! With [`ServerTls`] the listener speaks TLS (rustls), and with a client CA
//! it requires client certificates (mTLS). With a [`Primary`] the server is
//! a read replica: it runs the follower and forwards writes.

pub mod api;
pub mod http;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Endpoint, Identity, Server, ServerTlsConfig};

use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthReporter;

use crate::api::pb::access_service_server::AccessServiceServer;
use crate::api::pb::audit_service_server::AuditServiceServer;
use crate::api::pb::directory_service_server::DirectoryServiceServer;
use crate::api::pb::membership_service_server::MembershipServiceServer;
use crate::api::pb::replication_service_server::ReplicationServiceServer;
use crate::api::pb::schema_service_server::SchemaServiceServer;
use crate::api::pb::watch_service_server::WatchServiceServer;
use crate::api::{
    AccessApi, AuditApi, CallerLayer, DirectoryApi, Follower, HealthApi, MembershipApi,
    ReplicationApi, SchemaApi, WatchApi, WriteLayer, pb,
};
use authzd_client::tls::ServerTls;
use authzd_core::limits::{MAX_MESSAGE_BYTES, TLS_HANDSHAKE_TIMEOUT};
use authzd_service::Service;
use authzd_service::auth::Callers;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Reflection could not be built from the descriptor sets.
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/JSON edge could not start.
    #[error("the HTTP/JSON listener: {0}")]
    Http(#[from] http::HttpError),
    /// The transport failed.
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The TLS files were each readable but do not make a configuration
    /// (a key that is not the certificate's, a CA that does not parse).
    #[error("TLS with {files}: {reason}")]
    Tls {
        /// The files concerned.
        files: String,
        /// Why rustls refused them.
        reason: String,
    },
}

/// How a replica reaches its primary.
#[derive(Debug, Clone)]
pub struct Primary {
    /// The primary's endpoint, TLS configured.
    pub endpoint: Endpoint,
    /// The follow token's `authorization` header value, if any.
    pub authorization: Option<AsciiMetadataValue>,
}

/// [`serve`] without tokens: every caller is trusted (loopback use, tests).
pub async fn run(
    service: Service,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    serve(
        service,
        Arc::new(Callers::trust_all()),
        listener,
        None,
        None,
        shutdown,
    )
    .await
}

/// Serves `service` to `callers` on `listener` (speaking TLS if `tls` is
/// given) until `shutdown` resolves, then ends every Watch stream, lets
/// in-flight calls finish, and stops the service (its write sequencer
/// finishes and the store file is closed). With `primary` (and a service
/// opened as a replica) it follows the primary and forwards writes to it.
pub async fn serve(
    service: Service,
    callers: Arc<Callers>,
    listener: TcpListener,
    tls: Option<&ServerTls>,
    primary: Option<Primary>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    serve_edges(service, callers, listener, tls, primary, None, shutdown).await
}

/// [`serve`], and with `http` the HTTP/JSON edge on its own listener (with
/// the same TLS files): the same stack behind both.
pub async fn serve_edges(
    service: Service,
    callers: Arc<Callers>,
    listener: TcpListener,
    tls: Option<&ServerTls>,
    primary: Option<Primary>,
    http: Option<http::HttpEdge>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls_config(tls))
            .map_err(|e| ServerError::Tls {
                files: tls.files(),
                reason: authzd_client::tls::causes(&e),
            })?;
    }
    let health = tonic_health::server::HealthReporter::new();
    let upstream = primary.map(|p| (p.endpoint.connect_lazy(), p.authorization));
    match (&upstream, service.following()) {
        (Some((channel, authorization)), Some(follow)) => {
            // Not serving until in step with the primary.
            set_health(&health, ServingStatus::NotServing).await;
            let follower = Follower::new(
                service.clone(),
                channel.clone(),
                authorization.clone(),
                follow.clone(),
            );
            tokio::spawn(follower.run(health.clone(), health_names()));
        }
        _ => set_health(&health, ServingStatus::Serving).await,
    }
    // A node of a shared database: NOT_SERVING while it is further behind
    // the database than its bound (the database unreachable, or the node
    // not catching up).
    if let Some(shared) = &service.config().store {
        let lagging = service.clone();
        tokio::spawn(api::report_lag(
            service.clone(),
            move |_| match lagging.store_lag() {
                Some(lag) => (lag.behind, Some(lag.since_in_step), !lag.reachable),
                None => (0, Some(std::time::Duration::ZERO), false),
            },
            shared.max_lag,
            health.clone(),
            health_names(),
            &api::SHARED_NODE,
        ));
    }
    let health_service = HealthServer::new(HealthApi::new(health.clone(), service.clone()));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let stopping = service.clone();
    let closing = service.clone();
    let (stop_http, http_stops) = tokio::sync::watch::channel(false);
    let grace = service.config().shutdown_grace;
    let (signalled, grace_starts) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: health NOT_SERVING, ending watch streams, finishing in-flight calls"
        );
        set_health(&health, ServingStatus::NotServing).await;
        closing.close();
        let _ = stop_http.send(true);
        let _ = signalled.send(());
    };
    // Runs out only after the shutdown began: calls still in progress then
    // (a client that holds a stream open) do not keep the process alive.
    let grace_over = async move {
        match grace_starts.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let callers_http = callers.clone();
    let caller_layer = CallerLayer::new(callers, service.clone());
    let write_layer = WriteLayer::new(service.clone(), upstream.map(|(channel, _)| channel));
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AccessServiceServer::new(AccessApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            MembershipServiceServer::new(MembershipApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            DirectoryServiceServer::new(DirectoryApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            SchemaServiceServer::new(SchemaApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            AuditServiceServer::new(AuditApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            WatchServiceServer::new(WatchApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            ReplicationServiceServer::new(ReplicationApi::new(service))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        );
    // The HTTP/JSON edge calls the very layers and routes gRPC serves, in
    // the same order (the guard outermost).
    let http_served = match http {
        None => None,
        Some(edge) => {
            use tower_layer::Layer as _;
            let stack = caller_layer
                .clone()
                .layer(write_layer.clone().layer(routes.clone().prepare()));
            let router = http::router(
                http::bridge::Stack::new(stack),
                callers_http,
                &edge,
                tls.is_some(),
            )?;
            let acceptor = tls.map(http::acceptor).transpose()?;
            Some(http::serve(router, edge.listener, acceptor, http_stops))
        }
    };
    let http_served = async move {
        if let Some(served) = http_served {
            served.await;
        }
    };
    let grpc_served = builder
        .layer(caller_layer)
        .layer(write_layer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown);
    let served = async move { tokio::join!(grpc_served, http_served).0 };
    let served = tokio::select! {
        served = served => served,
        () = grace_over => {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "calls still in progress after the shutdown grace period; closing their connections"
            );
            Ok(())
        }
    };
    // Whether serving ended well or not, the writes already taken are
    // finished and the store is let go.
    stopping.stop().await;
    served?;
    Ok(())
}

/// The health statuses a replica's or a shared-store node's lag and a
/// shutdown switch: the
/// server's ("") and every authzd service's.
fn health_names() -> Vec<&'static str> {
    use tonic::server::NamedService;
    vec![
        "",
        AccessServiceServer::<AccessApi>::NAME,
        MembershipServiceServer::<MembershipApi>::NAME,
        DirectoryServiceServer::<DirectoryApi>::NAME,
        SchemaServiceServer::<SchemaApi>::NAME,
        WatchServiceServer::<WatchApi>::NAME,
        AuditServiceServer::<AuditApi>::NAME,
        ReplicationServiceServer::<ReplicationApi>::NAME,
    ]
}

/// Sets every status of [`health_names`] to `status`.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for name in health_names() {
        health.set_service_status(name, status).await;
    }
}

fn tls_config(tls: &ServerTls) -> ServerTlsConfig {
    let identity = &tls.identity;
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            &identity.cert.bytes,
            &identity.key.bytes,
        ))
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    match &tls.client_ca {
        // A CA makes client certificates required, not optional: tonic's
        // default, relied on here.
        Some(ca) => config.client_ca_root(Certificate::from_pem(&ca.bytes)),
        None => config,
    }
}
