//! The web console's server side: its files (embedded in the binary,
//! served at `GET /` and `GET /console/<file>` with a strict
//! Content-Security-Policy), sign-in and sign-out (`/console/session`),
//! and the turning of a session cookie into the `authorization` header of
//! the in-process call, after checking that the request comes from the
//! console's own origin.
//!
//! The console itself is plain HTML, ES modules and CSS under
//! `console/`, calling the JSON API like any client. Must not decide what
//! a token may do: the session info it reports is what the guard's
//! [`Callers`] say of the token, and every call goes through the guard.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;

use super::Edge;
use super::bridge::{Reply, error, json_reply};
use super::session::{COOKIE, cookie_id};
use authzd_service::auth::Callers;

/// The Content-Security-Policy of every console file: scripts, styles and
/// calls from the console's own origin only (no inline script or style),
/// never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The largest sign-in body taken.
const MAX_SIGN_IN_BYTES: usize = 4096;

/// The largest playground request taken: a test file and a schema at
/// their limits, as JSON.
const MAX_PLAYGROUND_BYTES: usize = 12 << 20;

/// How long one playground run may take.
pub const PLAYGROUND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a `schema test` file against a schema on the real engine in a
/// temporary store, for the console's playground: the binary's test
/// runner, handed in by whoever starts the listener (the runner is the
/// command line's `authzd schema test`, which this crate cannot name).
pub trait Playground: Send + Sync + 'static {
    /// Runs `file` (a test file's TOML) against `schema` (a schema's
    /// TOML): `{passed, failed, assertions: [{what, ok, problems, reply}]}`,
    /// or why it could not run.
    fn run(
        &self,
        schema: String,
        file: String,
    ) -> futures_util::future::BoxFuture<'static, Result<serde_json::Value, String>>;
}

/// The console's files: name, media type, content.
const FILES: [(&str, &str, &str); 12] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("console/style.css"),
    ),
    ("app.js", JS, include_str!("console/app.js")),
    ("api.js", JS, include_str!("console/api.js")),
    ("ui.js", JS, include_str!("console/ui.js")),
    ("directory.js", JS, include_str!("console/directory.js")),
    ("check.js", JS, include_str!("console/check.js")),
    ("live.js", JS, include_str!("console/live.js")),
    ("membership.js", JS, include_str!("console/membership.js")),
    ("schema.js", JS, include_str!("console/schema.js")),
    ("audit.js", JS, include_str!("console/audit.js")),
    ("playground.js", JS, include_str!("console/playground.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// `GET /`: the console's page.
pub async fn index() -> Reply {
    file_reply("index.html")
}

/// `GET /console/<file>`.
pub async fn asset(Path(name): Path<String>) -> Reply {
    file_reply(&name)
}

fn file_reply(name: &str) -> Reply {
    let Some((_, media, text)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return harden(json_reply(
            StatusCode::NOT_FOUND,
            &json!({"code": "NOT_FOUND", "message": format!("no console file {name}")}),
        ));
    };
    let mut reply = Reply::new(axum::body::Body::from(*text));
    reply
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    harden(reply)
}

/// The headers every console reply carries: the policy, no framing, no
/// sniffing, no referrer, no caching (a session's pages are its own).
pub fn harden(mut reply: Reply) -> Reply {
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// Whether a request comes from the console's own origin: its `Origin`
/// is the scheme and `Host` (or, over HTTP/2, the authority) it was sent
/// to. A page elsewhere cannot forge `Origin`, so a session's cookie is
/// honoured only from the console itself.
fn same_origin(headers: &HeaderMap, uri: &http::Uri, tls: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str));
    let Some(host) = host else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    origin
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix("://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn refused_origin() -> Reply {
    error(&tonic::Status::permission_denied(
        "the console's session is honoured only from the console's own origin (Origin must match Host)",
    ))
}

/// Before an RPC: a request without `authorization` that carries a
/// session cookie gets the session's token, if it comes from the
/// console's origin; one that does not is refused. A session that ended
/// is treated as none (the guard then refuses the call as it would any
/// call without a token).
#[allow(
    clippy::result_large_err,
    reason = "the Err is the reply itself, returned at once"
)]
pub(crate) fn with_session(edge: &Edge, parts: &mut http::request::Parts) -> Result<(), Reply> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let Some(id) = cookie_id(&parts.headers) else {
        return Ok(());
    };
    if !same_origin(&parts.headers, &parts.uri, edge.tls) {
        return Err(refused_origin());
    }
    let value = edge
        .sessions
        .authorization(&id)
        .and_then(|a| HeaderValue::try_from(a).ok());
    if let Some(value) = value {
        parts.headers.insert(header::AUTHORIZATION, value);
    }
    Ok(())
}

/// What the console may show: whether the server has tokens, whether
/// this browser is signed in, and the token's name, kind and tenant as
/// the guard knows them.
fn info(callers: &Callers, authorization: Option<&str>) -> serde_json::Value {
    let tokens = callers.configured();
    match callers.authenticate(authorization.map(str::as_bytes)) {
        Ok(caller) => json!({
            "tokens": tokens,
            "signedIn": true,
            "name": caller.name().as_ref(),
            "kind": caller.kind().as_str(),
            "tenant": caller.tenant().map(|t| t.as_str()).unwrap_or_default(),
        }),
        Err(_) => json!({"tokens": tokens, "signedIn": false}),
    }
}

/// `GET /console/session`: the session's info.
pub(crate) async fn session_info(State(edge): State<Arc<Edge>>, request: Request) -> Reply {
    let authorization =
        cookie_id(request.headers()).and_then(|id| edge.sessions.authorization(&id));
    harden(json_reply(
        StatusCode::OK,
        &info(&edge.callers, authorization.as_deref()),
    ))
}

/// `POST /console/session` with `{"token": "..."}`: signs in, setting the
/// session cookie; `DELETE /console/session`: signs out.
pub(crate) async fn session_change(State(edge): State<Arc<Edge>>, request: Request) -> Reply {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts.headers, &parts.uri, edge.tls) {
        return harden(refused_origin());
    }
    if parts.method == Method::DELETE {
        if let Some(id) = cookie_id(&parts.headers) {
            edge.sessions.close(&id);
        }
        let mut reply = json_reply(StatusCode::OK, &info(&edge.callers, None));
        if let Ok(cookie) = HeaderValue::try_from(cookie(&edge, "", true)) {
            reply.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return harden(reply);
    }
    let body = match http_body_util::Limited::new(body, MAX_SIGN_IN_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return harden(error(&tonic::Status::invalid_argument(format!(
                "sign-in: the body must be JSON of at most {MAX_SIGN_IN_BYTES} bytes"
            ))));
        }
    };
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
    let Some(token) = token else {
        return harden(error(&tonic::Status::invalid_argument(
            "sign-in: send {\"token\": \"<secret>\"}",
        )));
    };
    let authorization = format!("Bearer {token}");
    if edge.callers.configured()
        && edge
            .callers
            .authenticate(Some(authorization.as_bytes()))
            .is_err()
    {
        return harden(error(&tonic::Status::unauthenticated(
            "sign-in: the server knows no such token",
        )));
    }
    let id = match edge.sessions.open(&token) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "opening a console session");
            return harden(error(&tonic::Status::unavailable(
                "sign-in: no session could be opened",
            )));
        }
    };
    let mut reply = json_reply(StatusCode::OK, &info(&edge.callers, Some(&authorization)));
    if let Ok(cookie) = HeaderValue::try_from(cookie(&edge, &id, false)) {
        reply.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    harden(reply)
}

/// `POST /console/playground` with `{"schema": "...", "file": "..."}`:
/// runs the playground, for an admin's session (or token), one run at a
/// time, bounded by [`PLAYGROUND_TIMEOUT`].
pub(crate) async fn playground(State(edge): State<Arc<Edge>>, request: Request) -> Reply {
    let (mut parts, body) = request.into_parts();
    if !same_origin(&parts.headers, &parts.uri, edge.tls) {
        return harden(refused_origin());
    }
    if let Err(refused) = with_session(&edge, &mut parts) {
        return harden(refused);
    }
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let admin = edge
        .callers
        .authenticate(authorization)
        .is_ok_and(|caller| caller.kind() == authzd_service::auth::Kind::Admin);
    if !admin {
        return harden(error(&tonic::Status::permission_denied(
            "the playground is an admin's: sign in with an admin token",
        )));
    }
    let Some(runner) = edge.playground.clone() else {
        return harden(error(&tonic::Status::unimplemented(
            "this server has no playground",
        )));
    };
    let Ok(_running) = edge.playing.try_lock() else {
        return harden(error(&tonic::Status::resource_exhausted(
            "a playground run is in progress; one runs at a time",
        )));
    };
    let body = match http_body_util::Limited::new(body, MAX_PLAYGROUND_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return harden(error(&tonic::Status::resource_exhausted(format!(
                "playground: the body must be at most {MAX_PLAYGROUND_BYTES} bytes"
            ))));
        }
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let text = |key: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let (Some(schema), Some(file)) = (text("schema"), text("file")) else {
        return harden(error(&tonic::Status::invalid_argument(
            "playground: send {\"schema\": \"<schema TOML>\", \"file\": \"<test file TOML>\"}",
        )));
    };
    let reply = match tokio::time::timeout(PLAYGROUND_TIMEOUT, runner.run(schema, file)).await {
        Ok(Ok(outcome)) => json_reply(StatusCode::OK, &outcome),
        Ok(Err(reason)) => error(&tonic::Status::invalid_argument(reason)),
        Err(_) => error(&tonic::Status::deadline_exceeded(format!(
            "the playground run took longer than {} s",
            PLAYGROUND_TIMEOUT.as_secs()
        ))),
    };
    harden(reply)
}

/// The `set-cookie` value for session `id` (or, `clear`, one that ends it).
fn cookie(edge: &Edge, id: &str, clear: bool) -> String {
    let mut cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
    if edge.tls {
        cookie.push_str("; Secure");
    }
    if clear {
        cookie.push_str("; Max-Age=0");
    }
    cookie
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "unit tests: a failed expectation is a failed test"
    )]
    use super::*;

    /// Origin must be the scheme and the host the request went to.
    #[test]
    fn origin() {
        let uri = http::Uri::from_static("/authzd.v1.AccessService/CheckAccess");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!same_origin(&headers, &uri, false));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers, &uri, false));
        assert!(!same_origin(&headers, &uri, true));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example:8080"),
        );
        assert!(!same_origin(&headers, &uri, false));
    }

    /// Every file the page names is embedded.
    #[test]
    fn files() {
        let (_, _, index) = FILES.iter().find(|(n, _, _)| *n == "index.html").unwrap();
        for (name, _, _) in FILES.iter().filter(|(n, _, _)| n.ends_with(".css")) {
            assert!(index.contains(&format!("/console/{name}")), "{name}");
        }
        assert!(!index.contains("<script>"), "no inline script");
    }
}
