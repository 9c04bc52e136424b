//! OpenTelemetry traces: the opt-in OTLP/gRPC exporter (`--otlp-endpoint`)
//! and the one span each authzd RPC makes, with its attributes, in one
//! place.
//!
//! The guard layer reports every finished call through [`rpc`]; without an
//! endpoint no tracer is installed and each report costs a check of a
//! global and nothing else. With one, a batch span processor (the SDK's,
//! on its own thread, a bounded queue that drops spans rather than grow)
//! sends them to the collector, and [`Exporting::stop`] flushes what is
//! queued at a clean shutdown. A call that carries a W3C `traceparent`
//! header becomes a child of the caller's span. Must not decide what is
//! logged or counted, and must not put subjects, permissions, attribute
//! values or secrets in a span: its attributes are the method, tenant,
//! status code, caller name and request id, as in the access log.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tonic::Code;
use tonic::transport::ClientTlsConfig;

/// The package every authzd service is in, the first part of a span's name.
const PACKAGE: &str = "authzd.v1";

/// The tracer spans are made with; set once, by [`install`].
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The exporter refused its configuration (endpoint, TLS, environment).
    #[error("--otlp-endpoint {endpoint}: {reason}")]
    Exporter {
        /// The endpoint as given.
        endpoint: String,
        /// The exporter's reason.
        reason: String,
    },
    /// Traces are already exported (a second [`install`] in one process).
    #[error("--otlp-endpoint: traces are already being exported")]
    Installed,
}

/// Traces being exported: hold it while serving, then [`Exporting::stop`].
#[derive(Debug)]
pub struct Exporting {
    provider: SdkTracerProvider,
}

/// Starts exporting spans over OTLP/gRPC to `endpoint` (an `http://` or
/// `https://` URL; https verifies the collector against the system's
/// CAs). Call inside the tokio runtime (the channel's connection runs on
/// it), once per process. The standard `OTEL_*` variables of the SDK and
/// the exporter (batch sizes and delay, headers, timeout, service name)
/// apply, except the endpoint, which is this one.
pub fn install(endpoint: &str) -> Result<Exporting, TraceError> {
    let refused = |reason: String| TraceError::Exporter {
        endpoint: endpoint.to_string(),
        reason,
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        builder = builder.with_tls_config(ClientTlsConfig::new().with_native_roots());
    }
    let exporter = builder.build().map_err(|e| refused(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    TRACER
        .set(opentelemetry::trace::TracerProvider::tracer(
            &provider, "authzd",
        ))
        .map_err(|_| TraceError::Installed)?;
    Ok(Exporting { provider })
}

/// `service.name` is `authzd` unless `OTEL_SERVICE_NAME` says otherwise.
fn resource() -> Resource {
    let builder = Resource::builder();
    let builder = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder
    } else {
        builder.with_service_name("authzd")
    };
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Exporting {
    /// Sends the spans still queued and stops the exporter; waits at most
    /// the SDK's shutdown timeout (5 s). Spans reported after this are
    /// dropped.
    pub async fn stop(self) {
        let provider = self.provider;
        // The SDK blocks until its export thread is done, and that export
        // runs on this runtime's connection: off the runtime's workers.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        // A failed export was already logged by the SDK, naming its cause.
        match stopped {
            Ok(Ok(())) => tracing::info!("trace exporter stopped"),
            Ok(Err(e)) => tracing::warn!(error = %e, "trace exporter not stopped cleanly"),
            Err(e) => tracing::warn!(error = %e, "trace exporter not stopped cleanly"),
        }
    }
}

/// Whether spans are made: set by `--otlp-endpoint`.
pub fn on() -> bool {
    TRACER.get().is_some()
}

/// The caller's span, from the request's `traceparent` header.
#[derive(Debug)]
pub struct Parent(Context);

/// The span context a request's headers carry, when spans are made and
/// the headers hold a valid one.
pub fn parent(headers: &http::HeaderMap) -> Option<Parent> {
    if !on() || !headers.contains_key("traceparent") {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    context
        .span()
        .span_context()
        .is_valid()
        .then_some(Parent(context))
}

/// The W3C propagator reads headers through this.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// One finished call, as the guard saw it.
#[derive(Debug)]
pub struct Finished<'a> {
    /// `Service/Method`, its use case's name.
    pub method: &'static str,
    /// The tenant the request named, once its operation admitted it.
    pub tenant: Option<&'a str>,
    /// The gRPC status the call ended with.
    pub code: Code,
    /// Its name as gRPC writes it (`NOT_FOUND`).
    pub code_name: &'static str,
    /// The token's name.
    pub caller: &'a str,
    /// The caller's request id (or the one the server gave it).
    pub request_id: &'a str,
    /// How long the call (or stream) took, until its last byte or its end.
    pub took: Duration,
    /// The caller's span, if it sent one.
    pub parent: Option<Parent>,
}

/// Exports `call` as a server span named `authzd.v1.Service/Method`, with
/// the RPC semantic conventions' attributes (`rpc.system`, `rpc.service`,
/// `rpc.method`, `rpc.grpc.status_code`) and authzd's (`authzd.tenant`,
/// `authzd.caller`, `authzd.request_id`). Does nothing unless spans are
/// made.
pub fn rpc(call: Finished<'_>) {
    let Some(tracer) = TRACER.get() else {
        return;
    };
    let ended = SystemTime::now();
    let started = ended.checked_sub(call.took).unwrap_or(ended);
    let (name, mut attributes) = match call.method.split_once('/') {
        Some((service, method)) => (
            format!("{PACKAGE}.{service}/{method}"),
            vec![
                KeyValue::new("rpc.service", format!("{PACKAGE}.{service}")),
                KeyValue::new("rpc.method", method),
            ],
        ),
        None => (call.method.to_string(), Vec::new()),
    };
    attributes.extend([
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.grpc.status_code", i64::from(call.code as i32)),
        KeyValue::new("authzd.caller", call.caller.to_string()),
        KeyValue::new("authzd.request_id", call.request_id.to_string()),
    ]);
    if let Some(tenant) = call.tenant {
        attributes.push(KeyValue::new("authzd.tenant", tenant.to_string()));
    }
    let builder = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(started)
        .with_attributes(attributes);
    let mut span = match &call.parent {
        Some(Parent(context)) => builder.start_with_context(tracer, context),
        None => builder.start(tracer),
    };
    if server_fault(call.code) {
        span.set_status(Status::error(call.code_name));
    }
    span.end_with_timestamp(ended);
}

/// The codes the RPC conventions count as the server's error (the others
/// are the caller's, and leave the span's status unset).
fn server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}
