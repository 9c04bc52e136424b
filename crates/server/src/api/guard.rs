//! The caller guard and the access log: one tower layer in front of every
//! service, and the [`Call`] it hands each handler.
//!
//! For every request the layer takes (or makes) its request id, finds the
//! use case the request path names (the one place a gRPC path becomes a
//! [`UseCase`]), authenticates the caller, applies the use case's row of
//! the operation table (the token's kind, and that a tenant-bound token
//! does not call a use case reaching every tenant), counts the call
//! against the token's bounds, and returns the request id in the response
//! headers; when the response is finished (or abandoned) it writes one
//! access-log line, counts the call in the metrics and reports it to
//! [`super::traces`] (a span, when traces are exported). Health and
//! reflection are open: no token is asked for, so probes and `grpcurl
//! list` work without one.
//!
//! What only the request body shows (the tenant, the actor) is checked by
//! the operation the handler calls, through the [`Call`]. The decisions
//! themselves are [`authzd_service::auth`]'s and the table
//! [`authzd_service::ops::use_case`]'s; this file only applies them. Must
//! not log secrets, attribute values or condition text: the access log
//! holds the method, tenant, status code, latency, caller name and request
//! id, nothing else.

use futures_util::future::BoxFuture;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Code;
use tonic::body::Body;

use authzd_core::limits::MAX_REQUEST_ID_LEN;
use authzd_core::model::TenantId;
use authzd_service::auth::{Callers, Extent, Kind, Permit, Refusal, Rule};
use authzd_service::ops::{Call, UseCase};
use authzd_service::{Error, Service};

/// The metadata key of the request id, both ways.
const REQUEST_ID: &str = "x-request-id";

/// [`REQUEST_ID`] as the response's header name, parsed once.
static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static(REQUEST_ID);

/// The tracing target of the access log (switch it off with
/// `RUST_LOG=info,authzd::access=off`).
const ACCESS_LOG: &str = "authzd::access";

/// What the path of an authzd method starts with; the rest is the name of
/// its use case ([`UseCase::name`]).
const PACKAGE_PATH: &str = "/authzd.v1.";

/// Whether a request path names a use case that needs more than a read
/// token: what a replica forwards to its primary (its writes, and the
/// audit listing, whose trail the primary holds).
pub fn needs_primary(path: &str) -> bool {
    route(path).is_some_and(|rule| rule.needs != Kind::Read)
}

/// A method of the authzd package that names no use case: refused to all
/// but unbound admin tokens (tonic then answers UNIMPLEMENTED).
const UNKNOWN: Rule = Rule {
    name: "unknown",
    needs: Kind::Admin,
    reach: Extent::AllTenants,
    watch: false,
    writes: true,
};

/// Health and reflection: open to every caller.
const OPEN: Rule = Rule {
    name: "open",
    needs: Kind::Read,
    reach: Extent::Shared,
    watch: false,
    writes: false,
};

/// Service prefixes served without a token.
const OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The rule of a request path: its use case's row of the operation table,
/// [`UNKNOWN`] for any other method; `None` for an open one. The one place
/// a gRPC path becomes a use case.
fn route(path: &str) -> Option<Rule> {
    if let Some(method) = path.strip_prefix(PACKAGE_PATH) {
        return Some(UseCase::named(method).map_or(UNKNOWN, UseCase::rule));
    }
    if OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    Some(UNKNOWN)
}

/// The call the layer admitted, which a handler hands to its operation. A
/// request that did not pass through the layer has no caller and is
/// refused.
pub fn call<T>(request: &tonic::Request<T>) -> Result<Arc<Call>, Error> {
    request
        .extensions()
        .get::<Arc<Call>>()
        .cloned()
        .ok_or(Error::Caller(Refusal::Missing))
}

/// Request ids for requests that bring none: a random prefix per process
/// and a counter, unique without a system call per request.
#[derive(Debug)]
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut bytes = [0u8; 4];
        // Without randomness the ids are still unique within the process.
        let _ = getrandom::fill(&mut bytes);
        RequestIds {
            prefix: u32::from_be_bytes(bytes),
            next: AtomicU64::new(1),
        }
    }

    /// The caller's id if it sent a usable one (printable ASCII, at most
    /// [`MAX_REQUEST_ID_LEN`] bytes), else a fresh one.
    fn of(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(given) = headers.get(REQUEST_ID) {
            let bytes = given.as_bytes();
            if !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                && bytes.iter().all(|b| b.is_ascii_graphic())
            {
                return given.clone();
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // `{prefix:08x}-{n:x}`, written by hand: `format!` costs a call more
        // than the rest of the id's making.
        let mut id = [0u8; 8 + 1 + 16];
        let mut len = hex(&mut id, u64::from(self.prefix), 8);
        if let Some(dash) = id.get_mut(len) {
            *dash = b'-';
            len += 1;
        }
        len += id.get_mut(len..).map_or(0, |rest| hex(rest, n, 1));
        id.get(..len)
            .and_then(|id| HeaderValue::from_bytes(id).ok())
            .unwrap_or_else(|| HeaderValue::from_static("-"))
    }
}

/// Writes `n` in lowercase hexadecimal, at least `width` digits, at the
/// start of `to`; returns the digits written.
fn hex(to: &mut [u8], n: u64, width: usize) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - n.leading_zeros() as usize / 4)
        .max(width)
        .min(to.len());
    for (i, slot) in to.iter_mut().take(digits).rev().enumerate() {
        let nibble = n.checked_shr(4 * i as u32).unwrap_or(0) & 0xf;
        *slot = DIGITS.get(nibble as usize).copied().unwrap_or(b'0');
    }
    digits
}

/// The tower layer: wrap the tonic router with it.
#[derive(Debug, Clone)]
pub struct CallerLayer {
    callers: Arc<Callers>,
    ids: Arc<RequestIds>,
    /// Where refused writes are recorded.
    audit: Service,
}

impl CallerLayer {
    /// Guards every call with `callers`, recording refused writes in
    /// `audit`'s trail.
    pub fn new(callers: Arc<Callers>, audit: Service) -> Self {
        CallerLayer {
            callers,
            ids: Arc::new(RequestIds::new()),
            audit,
        }
    }
}

impl<S> tower_layer::Layer<S> for CallerLayer {
    type Service = CallerService<S>;
    fn layer(&self, inner: S) -> CallerService<S> {
        CallerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The guarded service.
#[derive(Debug, Clone)]
pub struct CallerService<S> {
    inner: S,
    layer: CallerLayer,
}

impl<S> tower_service::Service<Request<Body>> for CallerService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Logged<Body>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let request_id = self.layer.ids.of(request.headers());
        let route = route(request.uri().path());
        let callers = &self.layer.callers;
        let note =
            tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO) || super::traces::on();
        let call = |caller, rule| {
            let id = request_id.to_str().unwrap_or_default().to_string();
            Arc::new(Call::new(caller, rule, id, note))
        };
        let admitted = match route {
            None => Ok((call(callers.anonymous(), OPEN), None)),
            Some(rule) => callers
                .authenticate(
                    request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(HeaderValue::as_bytes),
                )
                .map_err(Error::Caller)
                .and_then(|caller| {
                    let call = call(caller, rule);
                    let caller = call.caller();
                    match caller.may_call(&rule).and_then(|()| caller.enter(&rule)) {
                        Ok(permit) => Ok((call, Some(permit))),
                        // The request was not read: the entry names the
                        // token's tenant, if it is bound to one, and no
                        // actor.
                        Err(refusal) => Err(call.refuse(
                            &self.layer.audit,
                            call.bound_tenant().cloned(),
                            None,
                            refusal,
                        )),
                    }
                }),
        };
        let (call, permit) = match admitted {
            Ok(admitted) => admitted,
            Err(error) => {
                let entry = Entry {
                    rpc: route.map_or(OPEN.name, |r| r.name),
                    stream: false,
                    caller: match &error {
                        Error::Caller(refusal) => token_of(refusal),
                        _ => Arc::from("unauthenticated"),
                    },
                    request_id: request_id.clone(),
                    call: None,
                    started,
                    code: None,
                    ended: false,
                    parent: super::traces::parent(request.headers()),
                    _permit: None,
                };
                let status = super::status(error);
                let mut response = status.into_http::<Body>();
                reply_with_id(&mut response, &request_id);
                return Box::pin(std::future::ready(Ok(logged(response, entry))));
            }
        };
        request.extensions_mut().insert(call.clone());
        let parent = super::traces::parent(request.headers());
        // The service that was made ready is the one called; its clone
        // waits for the next request (tower's rule for moving into a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = oversized_as_exhausted(inner.call(request).await?);
            reply_with_id(&mut response, &request_id);
            let stream = call.rule().watch && route.is_some();
            if stream {
                authzd_service::metrics::watch_streams(1.0);
            }
            let entry = Entry {
                stream,
                rpc: call.rule().name,
                caller: call.caller().name().clone(),
                request_id,
                call: Some(call),
                started,
                code: None,
                ended: false,
                parent,
                _permit: permit,
            };
            Ok(logged(response, entry))
        })
    }
}

/// Returns the request id in the response's headers, marked never to be
/// indexed: each id is new, so HPACK would only churn (and search) the
/// connection's header table with it on every response.
fn reply_with_id<B>(response: &mut Response<B>, id: &HeaderValue) {
    let mut id = id.clone();
    id.set_sensitive(true);
    response.headers_mut().insert(REQUEST_ID_HEADER.clone(), id);
}

/// How tonic's decoder begins the message of a request over
/// [`authzd_core::limits::MAX_MESSAGE_BYTES`].
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: ";

/// tonic refuses a request over the decoding limit with OUT_OF_RANGE,
/// before any handler runs (a trailers-only response); gRPC and this API
/// name a limit RESOURCE_EXHAUSTED, so that refusal is rewritten here, the
/// one place every response passes.
fn oversized_as_exhausted(response: Response<Body>) -> Response<Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    match status.message().strip_prefix(TONIC_TOO_LARGE) {
        Some(sizes) if status.code() == Code::OutOfRange => {
            tonic::Status::resource_exhausted(format!("request: the message is too large: {sizes}"))
                .into_http()
        }
        _ => response,
    }
}

/// The token a refusal names (every refusal past authentication names one).
fn token_of(refusal: &Refusal) -> Arc<str> {
    use Refusal as R;
    match refusal {
        R::Kind { token, .. }
        | R::Tenant { token, .. }
        | R::AllTenants { token, .. }
        | R::AcrossTenants { token, .. }
        | R::SystemWrite { token, .. }
        | R::Busy { token, .. } => token.clone(),
        _ => Arc::from("unauthenticated"),
    }
}

fn logged(response: Response<Body>, mut entry: Entry) -> Response<Logged<Body>> {
    // A trailers-only response (every refusal) carries its status in the
    // headers; any other carries it in the trailers.
    entry.code = response
        .headers()
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()));
    response.map(|inner| Logged { inner, entry })
}

/// One access-log line, written when the response body is finished or
/// dropped (a stream's line comes at its end, with its whole duration).
/// Holds the call's [`Permit`], so a token's bound counts a call until then.
struct Entry {
    rpc: &'static str,
    /// An admitted `Watch` stream, counted in the open streams gauge
    /// until the entry drops.
    stream: bool,
    caller: Arc<str>,
    request_id: HeaderValue,
    call: Option<Arc<Call>>,
    started: Instant,
    code: Option<Code>,
    ended: bool,
    /// The caller's span, when traces are on and it sent one.
    parent: Option<super::traces::Parent>,
    _permit: Option<Permit>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // A body dropped before its status was sent: the client went away
        // (or its deadline passed).
        let code = self.code.unwrap_or(if self.ended {
            Code::Unknown
        } else {
            Code::Cancelled
        });
        let tenant = self
            .call
            .as_ref()
            .and_then(|c| c.tenant())
            .map(TenantId::as_str);
        let took = self.started.elapsed();
        let request_id = self.request_id.to_str().unwrap_or("-");
        authzd_service::metrics::request(self.rpc, code_name(code), took);
        if self.stream {
            authzd_service::metrics::watch_streams(-1.0);
        }
        // Health and reflection (probes, grpcurl's listings) make no span.
        if self.rpc != OPEN.name {
            super::traces::rpc(super::traces::Finished {
                method: self.rpc,
                tenant,
                code,
                code_name: code_name(code),
                caller: &self.caller,
                request_id,
                took,
                parent: self.parent.take(),
            });
        }
        tracing::info!(
            target: ACCESS_LOG,
            method = %self.rpc,
            tenant = %tenant.unwrap_or("-"),
            code = ?code,
            latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            caller = %self.caller,
            request_id = %request_id,
            "call"
        );
    }
}

pub use authzd_client::status::{code_name, status_text};

/// A response body that notes its gRPC status from the trailers and
/// writes the access-log line when it is dropped.
pub struct Logged<B> {
    inner: B,
    entry: Entry,
}

impl<B: HttpBody + Unpin> HttpBody for Logged<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                    this.entry.code = Some(Code::from_bytes(status.as_bytes()));
                }
            }
            Poll::Ready(None) => this.entry.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "unit tests: a failed expectation is a failed test"
    )]
    use super::super::pb;
    use super::*;
    use prost::Message;

    /// Request ids' hexadecimal: padded to the width, never cut below it,
    /// and every digit of the largest number.
    #[test]
    fn hex_writes_padded_lowercase_digits() {
        let written = |n: u64, width: usize| {
            let mut to = [0u8; 16];
            let len = hex(&mut to, n, width);
            String::from_utf8(to[..len].to_vec()).unwrap()
        };
        assert_eq!(written(0xab, 8), "000000ab");
        assert_eq!(written(0, 1), "0");
        assert_eq!(written(0x1234_5678_9abc, 1), "123456789abc");
        assert_eq!(written(u64::MAX, 1), "ffffffffffffffff");
    }

    /// Every method of every authzd service names a use case, and every
    /// use case is a method that exists: nothing new goes unguarded by
    /// accident (a method without a use case would be admin-only).
    #[test]
    fn every_rpc_is_a_use_case() {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == PACKAGE_PATH.trim_matches(['/', '.']))
            .flat_map(|f| &f.service)
            .flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| format!("{}/{}", s.name(), m.name()))
            })
            .collect();
        methods.sort();
        let mut use_cases: Vec<String> =
            UseCase::ALL.iter().map(|u| u.name().to_string()).collect();
        use_cases.sort();
        assert_eq!(methods, use_cases);
        for method in &methods {
            let rule = route(&format!("{PACKAGE_PATH}{method}")).unwrap();
            assert_eq!(rule.name, method);
        }
    }

    /// Health and reflection are open; everything else is guarded, unknown
    /// methods as admin-only.
    #[test]
    fn routes() {
        assert!(route("/grpc.health.v1.Health/Check").is_none());
        assert!(route("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").is_none());
        assert_eq!(
            route("/authzd.v1.SchemaService/WriteSchema").unwrap().needs,
            Kind::Admin
        );
        assert_eq!(
            route("/authzd.v1.DirectoryService/ListSubjects").unwrap(),
            UseCase::ListSubjects.rule()
        );
        assert_eq!(route("/authzd.v1.Nope/Nope").unwrap().name, "unknown");
        assert_eq!(route("/other.Service/M").unwrap().name, "unknown");
    }

    /// A usable request id is kept; a missing, long or odd one is replaced.
    #[test]
    fn request_ids() {
        let ids = RequestIds::new();
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ids.of(&h), "abc-123");
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(ids.of(&h), "has space");
        let a = ids.of(&HeaderMap::new());
        let b = ids.of(&HeaderMap::new());
        assert_ne!(a, b);
    }
}
