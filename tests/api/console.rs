//! The web console's server side over real HTTP: its page and files under
//! a strict Content-Security-Policy, sign-in to a server-side session
//! behind an HttpOnly, SameSite=Strict cookie, the session's token used for
//! API calls from the console's own origin only, read-only and
//! tenant-bound sessions described as the guard knows them, sign-out, and
//! a playground only for admins (this in-process server has none).

use authzd_testkit as common;
use common::http::request;
use common::*;

use authzd_service::auth::Limits;

const ADMIN: &str = "console-admin-secret";
const READER: &str = "console-reader-secret";

async fn server() -> TestServer {
    let tokens = format!(
        "{}{}",
        token_entry("console-admin", "admin", "", ADMIN),
        token_entry("console-reader", "read", ACME, READER)
    );
    TestServer::start_with_tokens(&tokens, Limits::default()).await
}

/// Signs in with `secret` from the console's origin: the cookie's value
/// (`authzd_session=…`) and its `set-cookie` header.
async fn sign_in(server: &TestServer, secret: &str) -> (String, String) {
    let origin = format!("http://{}", server.http);
    let reply = request(
        server.http,
        "POST",
        "/console/session",
        &[("content-type", "application/json"), ("origin", &origin)],
        &format!("{{\"token\": \"{secret}\"}}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let set = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    (cookie, set)
}

/// The page and its modules come with the policy and no framing; the page
/// has no inline script.
#[tokio::test]
async fn files_are_served_with_a_strict_policy() {
    let server = TestServer::start().await;
    for path in ["/", "/console/app.js", "/console/style.css"] {
        let reply = request(server.http, "GET", path, &[], "").await;
        assert_eq!(reply.status, 200, "{path}");
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(reply.headers["x-frame-options"], "DENY");
    }
    let page = request(server.http, "GET", "/", &[], "").await;
    assert!(
        page.body
            .contains("<script type=\"module\" src=\"/console/app.js\">")
    );
    assert!(!page.body.contains("<script>"));
    let missing = request(server.http, "GET", "/console/nothing.js", &[], "").await;
    assert_eq!(missing.status, 404);
    server.stop().await;
}

/// Without tokens the console needs no sign-in.
#[tokio::test]
async fn without_tokens_everyone_is_signed_in() {
    let server = TestServer::start().await;
    let info = request(server.http, "GET", "/console/session", &[], "")
        .await
        .json();
    assert_eq!(info["tokens"], false);
    assert_eq!(info["signedIn"], true);
    assert_eq!(info["kind"], "admin");
    server.stop().await;
}

/// A session: an unknown token is refused; a known one gets an HttpOnly,
/// SameSite=Strict cookie whose calls carry the token, from the console's
/// origin only; sign-out ends it.
#[tokio::test]
async fn a_session_carries_its_token_from_the_console_origin_only() {
    let server = server().await;
    create_subject(&server, ACME, "alice").await;
    let origin = format!("http://{}", server.http);
    let info = request(server.http, "GET", "/console/session", &[], "")
        .await
        .json();
    assert_eq!(info["signedIn"], false);
    let refused = request(
        server.http,
        "POST",
        "/console/session",
        &[("content-type", "application/json"), ("origin", &origin)],
        "{\"token\": \"wrong\"}",
    )
    .await;
    assert_eq!(refused.status, 401);
    let elsewhere = request(
        server.http,
        "POST",
        "/console/session",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        &format!("{{\"token\": \"{ADMIN}\"}}"),
    )
    .await;
    assert_eq!(elsewhere.status, 403);

    let (cookie, set) = sign_in(&server, ADMIN).await;
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(ADMIN), "the token is not in the cookie");
    let check = "{\"tenant\": \"acme\", \"subject\": \"alice\", \"permission\": \"document:read\"}";
    let path = "/authzd.v1.AccessService/CheckAccess";
    let json = ("content-type", "application/json");
    let answered = request(
        server.http,
        "POST",
        path,
        &[json, ("cookie", &cookie), ("origin", &origin)],
        check,
    )
    .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    // From another origin, or with no Origin at all, the cookie is refused.
    let forged = request(
        server.http,
        "POST",
        path,
        &[json, ("cookie", &cookie), ("origin", "http://evil.example")],
        check,
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let bare = request(
        server.http,
        "POST",
        path,
        &[json, ("cookie", &cookie)],
        check,
    )
    .await;
    assert_eq!(bare.status, 403, "{}", bare.body);
    // No cookie: the guard wants a token.
    let none = request(server.http, "POST", path, &[json], check).await;
    assert_eq!(none.status, 401);

    let out = request(
        server.http,
        "DELETE",
        "/console/session",
        &[("cookie", &cookie), ("origin", &origin)],
        "",
    )
    .await;
    assert_eq!(out.status, 200);
    let after = request(
        server.http,
        "POST",
        path,
        &[json, ("cookie", &cookie), ("origin", &origin)],
        check,
    )
    .await;
    assert_eq!(after.status, 401, "{}", after.body);
    server.stop().await;
}

/// A read-only, tenant-bound token's session says so; the playground is
/// refused to it, and answered as absent to an admin on a server without
/// one.
#[tokio::test]
async fn session_info_is_the_guards_and_the_playground_is_an_admins() {
    let server = server().await;
    let origin = format!("http://{}", server.http);
    let (reader, _) = sign_in(&server, READER).await;
    let info = request(
        server.http,
        "GET",
        "/console/session",
        &[("cookie", &reader)],
        "",
    )
    .await
    .json();
    assert_eq!(info["signedIn"], true);
    assert_eq!(info["kind"], "read");
    assert_eq!(info["tenant"], ACME);
    let body = "{\"schema\": \"\", \"file\": \"\"}";
    let json = ("content-type", "application/json");
    let from = ("origin", origin.as_str());
    let refused = request(
        server.http,
        "POST",
        "/console/playground",
        &[json, from, ("cookie", &reader)],
        body,
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (admin, _) = sign_in(&server, ADMIN).await;
    let absent = request(
        server.http,
        "POST",
        "/console/playground",
        &[json, from, ("cookie", &admin)],
        body,
    )
    .await;
    assert_eq!(absent.status, 501, "{}", absent.body);
    server.stop().await;
}
