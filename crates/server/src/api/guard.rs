//! The caller guard and the access log: one tower layer in front of every
//! service, and the [`Call`] it hands each handler.
//!
//! For every request the layer takes (or makes) its request id, finds the
//! RPC in [`RPCS`], authenticates the caller, checks the token's kind (and
//! that a tenant-bound token does not call an RPC reaching every tenant),
//! counts the call against the token's bounds, and returns the request id
//! in the response headers; when the response is finished (or abandoned) it
//! writes one access-log line, counts the call in the metrics and reports
//! it to [`super::traces`] (a span, when traces are exported). Health and reflection are open: no token is
//! asked for, so probes and `grpcurl list` work without one.
//!
//! What only the request body shows is checked by the handler through its
//! [`Call`], before anything else: the tenant it names
//! ([`Call::tenant`]) and, for writes, the actor ([`Call::write_options`]).
//! The decisions themselves are [`authzd_service::auth`]'s; this file only applies
//! them. Must not log secrets, attribute values or condition text: the
//! access log holds the method, tenant, status code, latency, caller name
//! and request id, nothing else.

use futures_util::future::BoxFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Code;
use tonic::body::Body;

use super::convert::write_options;
use super::pb;
use authzd_core::limits::MAX_REQUEST_ID_LEN;
use authzd_core::model::{AuditEntry, AuditKey, AuditOutcome, SubjectId, TenantId};
use authzd_service::auth::{Caller, Callers, Kind, Permit, Reach, Refusal, Rpc, Visible};
use authzd_service::{Error, Origin, Service, WriteOptions};

/// The metadata key of the request id, both ways.
const REQUEST_ID: &str = "x-request-id";

/// The tracing target of the access log (switch it off with
/// `RUST_LOG=info,authzd::access=off`).
const ACCESS_LOG: &str = "authzd::access";

/// A unary RPC; every one that needs more than a read token writes.
const fn rpc(name: &'static str, needs: Kind, reach: Reach) -> Rpc {
    Rpc {
        name,
        needs,
        reach,
        watch: false,
        writes: !matches!(needs, Kind::Read),
    }
}

/// Every authzd RPC and what it needs. A method missing here is treated as
/// [`UNKNOWN`] (admin, no tenant binding); a test holds the table to the
/// proto files.
pub static RPCS: &[Rpc] = &[
    rpc("AccessService/CheckAccess", Kind::Read, Reach::Tenant),
    rpc("AccessService/BatchCheckAccess", Kind::Read, Reach::Tenant),
    rpc(
        "AccessService/ListEffectivePermissions",
        Kind::Read,
        Reach::Tenant,
    ),
    rpc(
        "AccessService/ListSubjectsWithPermission",
        Kind::Read,
        Reach::Tenant,
    ),
    rpc(
        "MembershipService/ManageMembership",
        Kind::Write,
        Reach::Tenant,
    ),
    rpc("MembershipService/Import", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/CreateTenant", Kind::Admin, Reach::Tenant),
    rpc("DirectoryService/GetTenant", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/ListTenants", Kind::Read, Reach::Shared),
    rpc(
        "DirectoryService/UpdateTenantSettings",
        Kind::Admin,
        Reach::Tenant,
    ),
    rpc("DirectoryService/CreateSubject", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/UpdateSubject", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/DeleteSubject", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/GetSubject", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/ListSubjects", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/CreateScope", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/UpdateScope", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/DeleteScope", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/GetScope", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/ListScopes", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/CreateGroup", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/UpdateGroup", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/DeleteGroup", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/GetGroup", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/ListGroups", Kind::Read, Reach::Tenant),
    rpc(
        "DirectoryService/ListGroupMembers",
        Kind::Read,
        Reach::Tenant,
    ),
    rpc("DirectoryService/CreateRole", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/UpdateRole", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/DeleteRole", Kind::Write, Reach::Tenant),
    rpc("DirectoryService/GetRole", Kind::Read, Reach::Tenant),
    rpc("DirectoryService/ListRoles", Kind::Read, Reach::Tenant),
    rpc(
        "DirectoryService/ListAssignments",
        Kind::Read,
        Reach::Tenant,
    ),
    rpc("SchemaService/ReadSchema", Kind::Read, Reach::Shared),
    rpc("SchemaService/WriteSchema", Kind::Admin, Reach::AllTenants),
    Rpc {
        name: "WatchService/Watch",
        needs: Kind::Read,
        reach: Reach::Tenant,
        watch: true,
        writes: false,
    },
    // The trail names every caller and actor: admin only, and a
    // tenant-bound token sees its tenant's entries alone.
    Rpc {
        name: "AuditService/ListAuditEntries",
        needs: Kind::Admin,
        reach: Reach::Shared,
        watch: false,
        writes: false,
    },
    // A replica's streams: counted like Watch streams; a tenant-bound
    // token is served its tenant only (the handler narrows the request).
    Rpc {
        name: "ReplicationService/Snapshot",
        needs: Kind::Read,
        reach: Reach::Shared,
        watch: true,
        writes: false,
    },
    Rpc {
        name: "ReplicationService/Follow",
        needs: Kind::Read,
        reach: Reach::Shared,
        watch: true,
        writes: false,
    },
];

/// Whether a request path names an RPC that needs more than a read token:
/// what a replica forwards to its primary (its writes, and the audit
/// listing, whose trail the primary holds).
pub fn needs_primary(path: &str) -> bool {
    route(path).is_some_and(|rpc| rpc.needs != Kind::Read)
}

/// A method of the authzd package that [`RPCS`] does not list: refused to
/// all but unbound admin tokens (tonic then answers UNIMPLEMENTED).
static UNKNOWN: Rpc = rpc("unknown", Kind::Admin, Reach::AllTenants);

/// Health and reflection: open to every caller.
static OPEN: Rpc = rpc("open", Kind::Read, Reach::Shared);

/// Service prefixes served without a token.
const OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The RPC a request path names; `None` for an open one.
fn route(path: &str) -> Option<&'static Rpc> {
    if let Some(method) = path.strip_prefix("/authzd.v1.") {
        return Some(RPCS.iter().find(|r| r.name == method).unwrap_or(&UNKNOWN));
    }
    if OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    Some(&UNKNOWN)
}

/// What a handler knows of its call: who calls, which RPC, the request id,
/// and (once the handler has checked it) the tenant, for the access log.
#[derive(Debug)]
pub struct Call {
    caller: Arc<Caller>,
    rpc: &'static Rpc,
    request_id: HeaderValue,
    /// Where refused writes are recorded.
    audit: Service,
    /// Set by [`Call::tenant`] when the access log or traces are on.
    tenant: OnceLock<TenantId>,
}

impl Call {
    /// The call the layer admitted. A request that did not pass through
    /// the layer has no caller and is refused.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Arc<Call>, Error> {
        request
            .extensions()
            .get::<Arc<Call>>()
            .cloned()
            .ok_or(Error::Caller(authzd_service::auth::Refusal::Missing))
    }

    /// Refuses a tenant-bound token a request for another tenant; notes
    /// the tenant for the access log.
    pub fn tenant(&self, tenant: &str) -> Result<(), Error> {
        self.audited(
            TenantId::try_from(tenant).ok(),
            None,
            self.caller.may_touch(self.rpc, tenant),
        )?;
        if tracing::enabled!(target: ACCESS_LOG, tracing::Level::INFO) || super::traces::on() {
            if let Ok(id) = TenantId::try_from(tenant) {
                let _ = self.tenant.set(id);
            }
        }
        Ok(())
    }

    /// The tenant check, then the write's options: refused without an
    /// actor unless the token is admin; carrying the caller and request id.
    pub fn write_options(
        &self,
        tenant: &str,
        options: &Option<pb::WriteOptions>,
    ) -> Result<WriteOptions, Error> {
        self.tenant(tenant)?;
        let mut options = write_options(options)?;
        let allowed = self.caller.may_write(self.rpc, options.actor.as_ref());
        self.audited(
            TenantId::try_from(tenant).ok(),
            options.actor.clone(),
            allowed,
        )?;
        options.origin = self.origin(options.origin.reason.take());
        Ok(options)
    }

    /// Who asked, with the reason the caller gave.
    pub fn origin(&self, reason: Option<String>) -> Origin {
        origin(&self.caller, self.rpc, &self.request_id, reason)
    }

    /// Passes `allowed` through; a refusal of a write RPC is recorded in
    /// the audit trail first.
    fn audited(
        &self,
        tenant: Option<TenantId>,
        actor: Option<SubjectId>,
        allowed: Result<(), Refusal>,
    ) -> Result<(), Error> {
        if let Err(refusal) = &allowed {
            if self.rpc.writes {
                let origin = self.origin(None);
                self.audit.deny(denial(origin, tenant, actor, refusal));
            }
        }
        Ok(allowed?)
    }

    /// The one tenant the caller's token is bound to, if it is.
    pub fn bound_tenant(&self) -> Option<&TenantId> {
        self.caller.tenant()
    }

    /// The tenants a listing of tenants may show this caller.
    pub fn visible_tenants(&self) -> Result<Visible, Error> {
        Ok(self.caller.visible_tenants(self.rpc)?)
    }
}

/// Who asked, as the audit trail records it.
fn origin(caller: &Caller, rpc: &Rpc, request_id: &HeaderValue, reason: Option<String>) -> Origin {
    Origin {
        caller: caller.name().to_string(),
        request_id: request_id.to_str().unwrap_or_default().to_string(),
        method: rpc.name.to_string(),
        reason,
    }
}

/// The audit entry of a write the caller's token may not make.
fn denial(
    origin: Origin,
    tenant: Option<TenantId>,
    actor: Option<SubjectId>,
    refusal: &Refusal,
) -> AuditEntry {
    AuditEntry {
        key: AuditKey {
            at: authzd_core::model::Timestamp::now(),
            seq: 0,
        },
        tenant,
        actor,
        origin,
        concerned: Vec::new(),
        more_concerned: false,
        // A token's refusal has no reason code: its status carries none
        // either (only the engine's rules have codes; see `super::status`).
        outcome: AuditOutcome::Denied {
            message: refusal.to_string(),
            reason: None,
        },
    }
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
        HeaderValue::try_from(format!("{:08x}-{n:x}", self.prefix))
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
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
        let admitted = match route {
            None => Ok((callers.anonymous(), &OPEN, None)),
            Some(rpc) => callers
                .authenticate(
                    request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(HeaderValue::as_bytes),
                )
                .and_then(|caller| {
                    let admitted = caller.may_call(rpc).and_then(|()| caller.enter(rpc));
                    if let Err(refusal) = &admitted {
                        self.audit_refusal(&caller, rpc, refusal, &request_id);
                    }
                    Ok((caller, rpc, Some(admitted?)))
                }),
        };
        let (caller, rpc, permit) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let entry = Entry {
                    rpc: route.map_or(OPEN.name, |r| r.name),
                    stream: false,
                    caller: match &refusal {
                        authzd_service::auth::Refusal::Missing
                        | authzd_service::auth::Refusal::Unknown => Arc::from("unauthenticated"),
                        _ => token_of(&refusal),
                    },
                    request_id: request_id.clone(),
                    call: None,
                    started,
                    code: None,
                    ended: false,
                    parent: super::traces::parent(request.headers()),
                    _permit: None,
                };
                let status = super::status(Error::Caller(refusal));
                let mut response = status.into_http::<Body>();
                response.headers_mut().insert(REQUEST_ID, request_id);
                return Box::pin(std::future::ready(Ok(logged(response, entry))));
            }
        };
        let call = Arc::new(Call {
            caller,
            rpc,
            request_id: request_id.clone(),
            audit: self.layer.audit.clone(),
            tenant: OnceLock::new(),
        });
        request.extensions_mut().insert(call.clone());
        let parent = super::traces::parent(request.headers());
        // The service that was made ready is the one called; its clone
        // waits for the next request (tower's rule for moving into a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let mut response = oversized_as_exhausted(inner.call(request).await?);
            response
                .headers_mut()
                .insert(REQUEST_ID, request_id.clone());
            let stream = call.rpc.watch && route.is_some();
            if stream {
                authzd_service::metrics::watch_streams(1.0);
            }
            let entry = Entry {
                stream,
                rpc: if route.is_none() {
                    OPEN.name
                } else {
                    call.rpc.name
                },
                caller: call.caller.name().clone(),
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

impl<S> CallerService<S> {
    /// Records a write RPC refused by the caller's token kind (or tenant
    /// binding) in the audit trail. The request was not read, so the entry
    /// names the token's tenant, if it is bound to one, and no actor.
    /// Unauthenticated calls are not recorded: they name no token (the
    /// access log has them).
    fn audit_refusal(&self, caller: &Caller, rpc: &Rpc, refusal: &Refusal, id: &HeaderValue) {
        // A token at its bound of calls in progress is shed, not refused.
        if !rpc.writes || matches!(refusal, Refusal::Busy { .. }) {
            return;
        }
        let origin = origin(caller, rpc, id, None);
        let tenant = caller.tenant().cloned();
        self.layer.audit.deny(denial(origin, tenant, None, refusal));
    }
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
fn token_of(refusal: &authzd_service::auth::Refusal) -> Arc<str> {
    use authzd_service::auth::Refusal as R;
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
            .and_then(|c| c.tenant.get())
            .map(TenantId::as_str);
        let took = self.started.elapsed();
        let request_id = self.request_id.to_str().unwrap_or("-");
        authzd_service::metrics::request(self.rpc, code_name(code), took);
        if self.stream {
            authzd_service::metrics::watch_streams(-1.0);
        }
        // Health and reflection (probes, grpcurl's listings) make no span.
        if self.rpc != OPEN.name {
            super::traces::rpc(super::traces::Call {
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
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use prost::Message;

    /// Every method of every authzd service has a rule, and every rule
    /// names a method that exists: nothing new goes unguarded by accident.
    #[test]
    fn every_rpc_has_a_rule() {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| &f.service)
            .flat_map(|s| {
                s.method
                    .iter()
                    .map(move |m| format!("{}/{}", s.name(), m.name()))
            })
            .collect();
        methods.sort();
        let mut rules: Vec<String> = RPCS.iter().map(|r| r.name.to_string()).collect();
        rules.sort();
        assert_eq!(methods, rules);
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
