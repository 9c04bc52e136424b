//! The HTTP/JSON edge: a second listener that serves every authzd RPC as
//! `POST /authzd.v1.<Service>/<Method>` with the canonical proto3 JSON
//! mapping, server streams (`Watch`) as newline-delimited JSON, and
//! `GET /openapi.json`, the OpenAPI 3.1 document made from the protos.
//!
//! One stack, not a copy: [`bridge`] hands each call in-process to the
//! same guard, write layer and tonic services the gRPC listener serves, so
//! tokens, tenant binding, limits, the audit trail, the access log, metrics
//! and traces are those of gRPC. [`status`] is the one mapping from a gRPC
//! code to an HTTP status. This module owns the listener: HTTP/1.1 and
//! HTTP/2 on one port, TLS with the gRPC listener's files, CORS for an
//! allow-list of origins (none by default), and the routes of the web
//! console ([`console`], with its sign-in [`session`]s). Must not decide anything a
//! call means or who may make it.

pub mod bridge;
pub mod console;
pub mod openapi;
pub mod session;
pub mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prost_reflect::DescriptorPool;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use authzd_client::tls::ServerTls;
use authzd_core::limits::TLS_HANDSHAKE_TIMEOUT;
use authzd_service::auth::Callers;
use bridge::{Bridge, MAX_JSON_BYTES, Reply, Stack, error, json_reply};

/// How long the listener pauses after a failed accept.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The packages whose methods the OpenAPI document lists.
const DOCUMENTED: [&str; 2] = ["authzd.v1", "grpc.health.v1"];

/// What the HTTP/JSON listener serves besides the stack: set by `serve
/// --http-listen` and `--http-cors-origins`.
#[derive(Debug)]
pub struct HttpEdge {
    /// The bound listener (the caller binds, as for gRPC).
    pub listener: TcpListener,
    /// Origins (`https://console.example.com`) a browser may call from;
    /// empty: no CORS headers, so browsers allow only same-origin calls.
    pub cors_origins: Vec<String>,
    /// What runs the console's playground (none: the console has none).
    pub playground: Option<Arc<dyn console::Playground>>,
}

impl std::fmt::Debug for dyn console::Playground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Playground")
    }
}

/// Why the HTTP/JSON edge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The embedded descriptor sets do not decode (a build defect).
    #[error("the descriptor set: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// A CORS origin is not a header value.
    #[error("CORS origin {0:?} is not a valid origin")]
    Origin(String),
    /// The TLS files do not make a rustls configuration.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The descriptors of every method the edge serves: authzd's and health's.
pub fn descriptors() -> Result<DescriptorPool, HttpError> {
    let mut pool = DescriptorPool::decode(authzd_proto::pb::FILE_DESCRIPTOR_SET)?;
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
    Ok(pool)
}

/// The state every route shares.
#[derive(Debug)]
pub(crate) struct Edge {
    bridge: Bridge,
    /// The OpenAPI document, serialized once.
    openapi: String,
    cors: Vec<HeaderValue>,
    /// The guard's tokens: what the console says of a session's token.
    callers: Arc<Callers>,
    /// The console's sign-in sessions.
    sessions: session::Sessions,
    /// Whether the listener speaks TLS (the session cookie is then
    /// `Secure`, and the console's origin `https`).
    tls: bool,
    playground: Option<Arc<dyn console::Playground>>,
    /// Held while a playground run is in progress: one at a time.
    playing: tokio::sync::Mutex<()>,
}

/// The router of the edge over `stack`, whose guard serves `callers`;
/// `tls` says whether the listener speaks TLS; `edge` gives the CORS
/// origins and the playground.
pub fn router(
    stack: Stack,
    callers: Arc<Callers>,
    edge: &HttpEdge,
    tls: bool,
) -> Result<Router, HttpError> {
    let cors_origins = &edge.cors_origins;
    let pool = descriptors()?;
    let openapi = openapi::document(&pool, &DOCUMENTED, env!("CARGO_PKG_VERSION")).to_string();
    let cors = cors_origins
        .iter()
        .map(|o| HeaderValue::try_from(o.as_str()).map_err(|_| HttpError::Origin(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let playground = edge.playground.clone();
    let edge = Arc::new(Edge {
        bridge: Bridge::new(pool, stack),
        openapi,
        cors,
        callers,
        sessions: session::Sessions::default(),
        tls,
        playground,
        playing: tokio::sync::Mutex::new(()),
    });
    Ok(Router::new()
        .route("/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .route(
            "/console/session",
            get(console::session_info)
                .post(console::session_change)
                .delete(console::session_change),
        )
        .route("/console/playground", post(console::playground))
        .route("/openapi.json", get(openapi_json))
        .route("/{service}/{method}", post(rpc))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            edge.clone(),
            allow_origins,
        ))
        .with_state(edge))
}

async fn openapi_json(State(edge): State<Arc<Edge>>) -> Reply {
    let mut reply = Reply::new(axum::body::Body::from(edge.openapi.clone()));
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

async fn not_found(request: Request) -> Reply {
    json_reply(
        StatusCode::NOT_FOUND,
        &serde_json::json!({
            "code": "NOT_FOUND",
            "message": format!("no route {} {}; RPCs are POST /authzd.v1.<Service>/<Method>, the API is described at GET /openapi.json", request.method(), request.uri().path()),
        }),
    )
}

/// Whether `headers` say the body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

async fn rpc(State(edge): State<Arc<Edge>>, request: Request) -> Reply {
    let (mut parts, body) = request.into_parts();
    if let Err(refused) = console::with_session(&edge, &mut parts) {
        return refused;
    }
    if !is_json(&parts.headers) {
        let mut reply = error(&tonic::Status::invalid_argument(
            "the request body must be JSON: send Content-Type: application/json",
        ));
        *reply.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return reply;
    }
    let body = match http_body_util::Limited::new(body, MAX_JSON_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                tonic::Status::resource_exhausted(format!(
                    "request: the body is larger than {MAX_JSON_BYTES} bytes"
                ))
            } else {
                tonic::Status::invalid_argument(format!("request body: {e}"))
            };
            return error(&status);
        }
    };
    edge.bridge
        .call(parts.uri.path(), &parts.headers, &body)
        .await
}

/// CORS for the allow-listed origins: a preflight from one is answered
/// here; a call from one gets the headers that let its page read the
/// reply. Any other origin gets no CORS headers (its browser then keeps
/// the reply from the page).
async fn allow_origins(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Reply {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|o| edge.cors.contains(o))
        .cloned();
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS;
    let mut reply = if preflight {
        let mut reply = Reply::new(axum::body::Body::empty());
        *reply.status_mut() = StatusCode::NO_CONTENT;
        let headers = reply.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "authorization, content-type, x-request-id, traceparent, tracestate",
            ),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        reply
    } else {
        next.run(request).await
    };
    let headers = reply.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, x-authzd-revision"),
    );
    reply
}

/// The TLS acceptor of `tls`'s files: the gRPC listener's certificate,
/// key and (for mTLS) client CA, offering HTTP/2 and HTTP/1.1.
pub fn acceptor(tls: &ServerTls) -> Result<TlsAcceptor, HttpError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |e: &dyn std::fmt::Display| HttpError::Tls(format!("{}: {e}", tls.files()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_slice_iter(&tls.identity.cert.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    let key = PrivateKeyDer::from_pem_slice(&tls.identity.key.bytes).map_err(|e| fail(&e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca.bytes) {
                roots
                    .add(cert.map_err(|e| fail(&e))?)
                    .map_err(|e| fail(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| fail(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| fail(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` (TLS through `tls` if given) until
/// `stop` turns true, then lets the connections in progress finish (the
/// caller bounds how long).
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: pause rather than spin.
                tracing::warn!(error = %e, "HTTP listener: accepting a connection failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
