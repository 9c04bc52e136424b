//! `serve --otlp-endpoint` with the real binary and an in-test OTLP
//! collector (a tonic `TraceService` on loopback): a span per call, named
//! for the method, with the tenant, method, status code and request id; a
//! caller's `traceparent` is the span's parent; the queue is flushed at a
//! clean shutdown; nothing is exported without the flag; a bad URL is
//! refused at start-up naming the flag.

use authzd_testkit as common;
use common::*;

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::mpsc;

/// How long a test waits for spans before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A batch delay (ms) long enough that only the shutdown flush delivers.
const NEVER: &str = "3600000";

/// Hands every span it receives to the test.
struct Receiver(mpsc::UnboundedSender<(Vec<(String, String)>, Span)>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| strings(&r.attributes))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let _ = self.0.send((resource.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The in-test collector: its URL and the spans it has received.
struct Collector {
    url: String,
    spans: mpsc::UnboundedReceiver<(Vec<(String, String)>, Span)>,
    received: Vec<(Vec<(String, String)>, Span)>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, spans) = mpsc::unbounded_channel();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver(tx)))
                .serve_with_incoming(incoming),
        );
        Collector {
            url,
            spans,
            received: Vec::new(),
        }
    }

    /// Waits (at most [`PATIENCE`]) until a span named `name` with these
    /// attribute values has arrived, and returns it.
    async fn span(&mut self, name: &str, wanted: &[(&str, &str)]) -> Span {
        let matches = |span: &Span| {
            let attributes: HashMap<String, String> =
                strings(&span.attributes).into_iter().collect();
            span.name == name
                && wanted
                    .iter()
                    .all(|(k, v)| attributes.get(*k).map(String::as_str) == Some(*v))
        };
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some((_, span)) = self.received.iter().find(|(_, s)| matches(s)) {
                    return span.clone();
                }
                let next = self.spans.recv().await.expect("the collector stopped");
                self.received.push(next);
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let seen: Vec<_> = self
                .received
                .iter()
                .map(|(_, s)| (s.name.clone(), strings(&s.attributes)))
                .collect();
            panic!("no span {name} with {wanted:?} within {PATIENCE:?}; received {seen:?}")
        })
    }

    /// Every span received so far, without waiting.
    fn drain(&mut self) -> Vec<(Vec<(String, String)>, Span)> {
        while let Ok(next) = self.spans.try_recv() {
            self.received.push(next);
        }
        std::mem::take(&mut self.received)
    }
}

/// Attribute values as text (ints in decimal).
fn strings(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(n)) => n.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// A collector, and the binary over `dir` exporting to it with a batch
/// delay of `delay_ms`.
async fn traced_server(dir: &std::path::Path, delay_ms: &str) -> (Collector, Binary) {
    let collector = Collector::start().await;
    let args = ["--otlp-endpoint".into(), collector.url.clone().into()];
    let env = [("OTEL_BSP_SCHEDULE_DELAY", delay_ms)];
    let server = spawn_binary_env(&dir.join("data"), &args, &env).await;
    (collector, server)
}

/// A request carrying `x-request-id`.
fn with_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

/// A check, a write and a failing call for tenant t1 arrive at the
/// collector as server spans named `authzd.v1.Service/Method`, each with
/// its tenant, method, status code (the one the client saw) and request
/// id; the resource names the service.
#[tokio::test]
async fn every_call_is_a_span_with_its_tenant_method_code_and_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (mut collector, server) = traced_server(dir.path(), "50").await;
    let channel = server.channel().await;
    let mut directory = DirectoryServiceClient::new(channel.clone());
    let mut access = AccessServiceClient::new(channel);
    directory
        .create_subject(with_id(new_subject("t1", "alice"), "write-1"))
        .await
        .unwrap();
    access
        .check_access(with_id(
            check_request("t1", "alice", "document:read", ""),
            "check-1",
        ))
        .await
        .unwrap();
    let failed = access
        .check_access(with_id(
            check_request("t1", "alice", "nosuch:perm", ""),
            "fail-1",
        ))
        .await
        .unwrap_err();

    let write = collector
        .span(
            "authzd.v1.DirectoryService/CreateSubject",
            &[("authzd.request_id", "write-1")],
        )
        .await;
    let check = collector
        .span(
            "authzd.v1.AccessService/CheckAccess",
            &[("authzd.request_id", "check-1")],
        )
        .await;
    let fail = collector
        .span(
            "authzd.v1.AccessService/CheckAccess",
            &[("authzd.request_id", "fail-1")],
        )
        .await;
    let failed_code = (failed.code() as i32).to_string();
    for (span, method, code) in [
        (&write, "CreateSubject", "0"),
        (&check, "CheckAccess", "0"),
        (&fail, "CheckAccess", failed_code.as_str()),
    ] {
        let attributes: HashMap<String, String> = strings(&span.attributes).into_iter().collect();
        assert_eq!(attributes["authzd.tenant"], "t1", "{attributes:?}");
        assert_eq!(attributes["rpc.method"], method, "{attributes:?}");
        assert_eq!(attributes["rpc.system"], "grpc", "{attributes:?}");
        assert_eq!(attributes["rpc.grpc.status_code"], code, "{attributes:?}");
        assert_eq!(
            span.kind,
            opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    assert_ne!(failed_code, "0");
    let (resource, _) = collector
        .drain()
        .into_iter()
        .next()
        .expect("spans were received");
    assert!(
        resource.contains(&("service.name".into(), "authzd".into())),
        "{resource:?}"
    );
}

/// A call carrying a W3C `traceparent` becomes a child of the caller's
/// span: same trace id, the caller's span id as parent.
#[tokio::test]
async fn a_traceparent_makes_the_span_a_child() {
    let dir = tempfile::tempdir().unwrap();
    let (mut collector, server) = traced_server(dir.path(), "50").await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut request = with_id(pb::ListTenantsRequest::default(), "child-1");
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    DirectoryServiceClient::new(server.channel().await)
        .list_tenants(request)
        .await
        .unwrap();
    let span = collector
        .span(
            "authzd.v1.DirectoryService/ListTenants",
            &[("authzd.request_id", "child-1")],
        )
        .await;
    assert_eq!(hex(&span.trace_id), trace_id);
    assert_eq!(hex(&span.parent_span_id), parent_id);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// With a batch delay longer than the test, spans reach the collector
/// only through the flush at a clean shutdown (SIGTERM): they are there
/// once the process has exited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_flushes_the_queued_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (mut collector, mut server) = traced_server(dir.path(), NEVER).await;
    for n in 0..3 {
        DirectoryServiceClient::new(server.channel().await)
            .list_tenants(with_id(
                pb::ListTenantsRequest::default(),
                &format!("queued-{n}"),
            ))
            .await
            .unwrap();
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    let ids: Vec<String> = collector
        .drain()
        .iter()
        .flat_map(|(_, span)| strings(&span.attributes))
        .filter(|(k, _)| k == "authzd.request_id")
        .map(|(_, v)| v)
        .collect();
    for n in 0..3 {
        assert!(ids.contains(&format!("queued-{n}")), "{ids:?}");
    }
}

/// Without --otlp-endpoint nothing is exported, even with the SDK's own
/// endpoint variable pointing at a collector and a clean shutdown that
/// would flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_nothing_is_exported() {
    let mut collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_binary_env(
        &dir.path().join("data"),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    DirectoryServiceClient::new(server.channel().await)
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(collector.drain().is_empty());
}

/// A URL that is not http(s)://HOST[:PORT] is refused before anything
/// starts, naming the flag, whether given on the command line, as
/// AUTHZD_OTLP_ENDPOINT or in the --config file.
#[tokio::test]
async fn a_bad_endpoint_is_refused_naming_the_flag() {
    for bad in [
        "localhost:4317",
        "ftp://collector:4317",
        "http://",
        "http://collector:4317/v1/traces",
        "http://bad host:4317",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (ok, stderr) = serve_until_exit(&data, &["--otlp-endpoint".into(), bad.into()]).await;
        assert!(!ok, "{bad}: {stderr}");
        assert!(stderr.contains("--otlp-endpoint"), "{bad}: {stderr}");
        assert!(!data.exists(), "{bad}: the data folder was created");

        let mut command = logged_command(env!("CARGO_BIN_EXE_authzd"), &serve_args(&data, &[]));
        command.env("AUTHZD_OTLP_ENDPOINT", bad);
        let (ok, stderr) = run_until_exit(command).await;
        assert!(!ok, "{bad}: {stderr}");
        assert!(stderr.contains("--otlp-endpoint"), "{bad}: {stderr}");

        let config = dir.path().join("authzd.toml");
        std::fs::write(&config, format!("otlp-endpoint = \"{bad}\"\n")).unwrap();
        let (ok, stderr) = serve_until_exit(&data, &["--config".into(), config.into()]).await;
        assert!(!ok, "{bad}: {stderr}");
        assert!(stderr.contains("--otlp-endpoint"), "{bad}: {stderr}");
        assert!(!data.exists(), "{bad}: the data folder was created");
    }
}
