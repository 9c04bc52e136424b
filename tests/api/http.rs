//! The HTTP/JSON edge against the real server: every RPC reachable, each
//! gRPC code under its HTTP status, 64-bit integers as strings, unknown
//! fields refused by name, tokens and tenant binding exactly as over
//! gRPC (the same stack answers), Watch as newline-delimited JSON resuming
//! from a revision, the OpenAPI document, CORS.

use authzd_testkit as common;
use common::http::{Lines, code_named, grpc_json, post, request};
use common::*;

use authzd_service::auth::Limits;
use prost_reflect::MethodDescriptor;
use serde_json::{Value, json};
use tonic::Code;

fn path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

fn unary_methods() -> Vec<MethodDescriptor> {
    let pool = authzd_server::http::descriptors().unwrap();
    let methods: Vec<_> = pool
        .services()
        .filter(|s| s.package_name() == "authzd.v1")
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .filter(|m| !m.is_server_streaming() && !m.is_client_streaming())
        .collect();
    assert!(methods.len() > 30, "{} methods", methods.len());
    methods
}

/// Every unary RPC answers JSON over HTTP, as over gRPC: the same request
/// (tenant acme, otherwise empty) gets the same code from both edges and,
/// when it succeeds, the same reply; none is unimplemented.
#[tokio::test]
async fn every_rpc_is_reachable_and_answers_as_grpc() {
    let server = seeded_server().await;
    let channel = server.channel().await;
    for method in unary_methods() {
        let body = if method.input().get_field_by_name("tenant").is_some() {
            json!({ "tenant": ACME }).to_string()
        } else {
            "{}".to_owned()
        };
        let path = path(&method);
        let over_grpc = grpc_json(channel.clone(), &path, "", &body).await;
        let reply = post(server.http, &path, "", &body).await;
        let json = reply.json();
        match over_grpc {
            Ok(expected) => {
                assert_eq!(reply.status, 200, "{path}: {}", reply.body);
                // A write answered twice is not the same write: compare the
                // shape of the reply, and reads whole.
                if method.name().starts_with("Get") || method.name().starts_with("List") {
                    assert_eq!(json, expected, "{path}");
                } else {
                    let keys =
                        |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
                    assert_eq!(keys(&json), keys(&expected), "{path}");
                }
            }
            Err(status) => {
                let code = code_named(json["code"].as_str().unwrap());
                // A create answered over gRPC first exists by the time the
                // same create comes over HTTP.
                let same = code == status.code()
                    || (status.code() == Code::Ok || code == Code::AlreadyExists);
                assert!(same, "{path}: gRPC {status:?}, HTTP {}", reply.body);
                assert_ne!(code, Code::Unimplemented, "{path}");
                assert_eq!(
                    reply.status,
                    authzd_server::http::status::http_status(code).as_u16(),
                    "{path}"
                );
            }
        }
    }
    server.stop().await;
}

/// Each code a caller can provoke comes back under grpc-gateway's HTTP
/// status, as `{code, message}`, with a rule's reason code when one
/// refused.
#[tokio::test]
async fn codes_map_to_http_statuses() {
    let server = TestServer::start_with_tokens(
        &token_entry("reader", "read", "", "s-read"),
        Limits::default(),
    )
    .await;
    let admin = HARNESS_SECRET;
    let create = "/authzd.v1.DirectoryService/CreateTenant";
    let reply = post(server.http, create, admin, r#"{"tenant":"acme"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (create, admin, json!({"tenant": "acme"}).to_string(), 409, "ALREADY_EXISTS"),
        (create, admin, json!({"tenant": "no spaces"}).to_string(), 400, "INVALID_ARGUMENT"),
        (create, "", json!({"tenant": "x"}).to_string(), 401, "UNAUTHENTICATED"),
        (create, "wrong", json!({"tenant": "x"}).to_string(), 401, "UNAUTHENTICATED"),
        (create, "s-read", json!({"tenant": "x"}).to_string(), 403, "PERMISSION_DENIED"),
        (
            "/authzd.v1.DirectoryService/GetTenant",
            admin,
            json!({"tenant": "nowhere"}).to_string(),
            404,
            "NOT_FOUND",
        ),
        (
            "/authzd.v1.DirectoryService/CreateSubject",
            admin,
            json!({"tenant": "acme", "subject": {"id": "bob"}, "options": {"expectedRevision": "1"}})
                .to_string(),
            400,
            "FAILED_PRECONDITION",
        ),
        (
            "/authzd.v1.WatchService/Watch",
            admin,
            json!({"tenant": "acme", "afterRevision": "999999"}).to_string(),
            400,
            "OUT_OF_RANGE",
        ),
        ("/authzd.v1.DirectoryService/NoSuchMethod", admin, "{}".into(), 501, "UNIMPLEMENTED"),
        ("/authzd.v1.DirectoryService/NoSuchMethod", "", "{}".into(), 401, "UNAUTHENTICATED"),
    ];
    for (path, secret, body, status, code) in cases {
        let reply = post(server.http, path, secret, &body).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{path} {body}: {}",
            reply.body
        );
        assert!(!reply.json()["message"].as_str().unwrap().is_empty());
        assert!(reply.headers.contains_key("x-request-id"));
    }
    // A body over the JSON limit: RESOURCE_EXHAUSTED, 429.
    let huge = format!(
        r#"{{"tenant":"{}"}}"#,
        "x".repeat(authzd_server::http::bridge::MAX_JSON_BYTES)
    );
    let auth = format!("Bearer {admin}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    // The server answers once the limit is passed; the client, still
    // writing, may see the connection closed instead of the answer.
    if let Ok(response) = common::http::try_send(server.http, "POST", create, &headers, &huge).await
    {
        assert_eq!(response.status(), 429);
    }
    // A refusal by a rule carries its reason code.
    let reply = post(
        server.http,
        "/authzd.v1.DirectoryService/DeleteScope",
        admin,
        r#"{"tenant":"acme","id":"root"}"#,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["reason"], "ROOT_SCOPE_FIXED", "{}", reply.body);
    // Not JSON: 415, and no route: 404.
    let reply = request(
        server.http,
        "POST",
        create,
        &[("content-type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(reply.status, 415);
    let reply = request(server.http, "GET", "/nowhere", &[], "").await;
    assert_eq!((reply.status, reply.code().as_str()), (404, "NOT_FOUND"));
    server.stop().await;
}

/// 64-bit integers are strings in replies and are taken as strings or
/// numbers in requests; enums are names.
#[tokio::test]
async fn uint64_as_strings_and_enums_by_name() {
    let server = seeded_server().await;
    let reply = post(server.http, "/authzd.v1.SchemaService/ReadSchema", "", "{}").await;
    let revision = reply.json()["revision"].clone();
    assert!(revision.is_string(), "{revision}");
    let n: u64 = revision.as_str().unwrap().parse().unwrap();
    for expected in [json!(n.to_string()), json!(n)] {
        let reply = post(
            server.http,
            "/authzd.v1.AccessService/CheckAccess",
            "",
            &json!({"tenant": ACME, "subject": "alice", "permission": "document:read", "atLeastRevision": expected, "explain": true})
                .to_string(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        assert_eq!(json["allowed"], false);
        assert_eq!(json["revision"], revision);
        let reason = json["explanation"]["denials"][0]["reason"]
            .as_str()
            .unwrap();
        assert!(reason.starts_with("DENIAL_REASON_"), "{reason}");
    }
    server.stop().await;
}

/// A field the request does not have is refused with INVALID_ARGUMENT
/// naming it, at the top and nested; so is JSON that is not an object.
#[tokio::test]
async fn unknown_fields_are_refused_by_name() {
    let server = seeded_server().await;
    let path = "/authzd.v1.DirectoryService/CreateSubject";
    for (body, named) in [
        (r#"{"tenant":"acme","bogus":1}"#, "bogus"),
        (
            r#"{"tenant":"acme","subject":{"id":"z","colour":"red"}}"#,
            "colour",
        ),
        (
            r#"{"tenant":"acme","subject":{"id":"z"},"options":{"actorr":"x"}}"#,
            "actorr",
        ),
        (r#"{"tenant_id":"acme"}"#, "tenant_id"),
        (r#"["acme"]"#, "request body"),
        (r#"{"tenant":"acme"} trailing"#, "trailing"),
    ] {
        let reply = post(server.http, path, "", body).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "INVALID_ARGUMENT"),
            "{body}"
        );
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(named) || named == "trailing",
            "{body}: {message}"
        );
    }
    // Nothing was written.
    let reply = post(
        server.http,
        "/authzd.v1.DirectoryService/GetSubject",
        "",
        r#"{"tenant":"acme","id":"z"}"#,
    )
    .await;
    assert_eq!(reply.status, 404);
    server.stop().await;
}

/// Tokens and tenant binding over HTTP are exactly those of gRPC: for each
/// token and call, both edges give the same code; a refused write over
/// HTTP is in the audit trail like one over gRPC.
#[tokio::test]
async fn tokens_and_tenant_binding_as_over_grpc() {
    let tokens = [
        token_entry("reader", "read", "", "s-read"),
        token_entry("writer", "write", "", "s-write"),
        token_entry("acme-reader", "read", ACME, "s-acme-read"),
        token_entry("acme-writer", "write", ACME, "s-acme-write"),
        token_entry("acme-admin", "admin", ACME, "s-acme-admin"),
    ]
    .concat();
    let server = TestServer::start_with_tokens(&tokens, Limits::default()).await;
    for tenant in [ACME, "globex"] {
        create_subject(&server, tenant, "alice").await;
        create_group(&server, tenant, "team").await;
    }
    let channel = server.channel().await;
    let calls = [
        (
            "/authzd.v1.AccessService/CheckAccess",
            json!({"tenant": "{t}", "subject": "alice", "permission": "document:read"}),
        ),
        ("/authzd.v1.DirectoryService/ListTenants", json!({})),
        (
            "/authzd.v1.DirectoryService/GetSubject",
            json!({"tenant": "{t}", "id": "alice"}),
        ),
        (
            "/authzd.v1.MembershipService/ManageMembership",
            json!({"tenant": "{t}", "operations": [{"addMember": {"group": "team", "member": {"subject": "alice"}}}]}),
        ),
        (
            "/authzd.v1.DirectoryService/CreateScope",
            json!({"tenant": "{t}", "scope": {"id": "unit-{n}"}}),
        ),
        ("/authzd.v1.SchemaService/ReadSchema", json!({})),
        (
            "/authzd.v1.AuditService/ListAuditEntries",
            json!({"tenant": "{t}"}),
        ),
    ];
    let mut n = 0;
    for secret in [
        "",
        "nope",
        "s-read",
        "s-write",
        "s-acme-read",
        "s-acme-write",
        "s-acme-admin",
    ] {
        for tenant in [ACME, "globex"] {
            for (path, body) in &calls {
                n += 1;
                let body = body.to_string().replace("{t}", tenant);
                let grpc = grpc_json(
                    channel.clone(),
                    path,
                    secret,
                    &body.replace("{n}", &format!("g{n}")),
                )
                .await
                .map_or_else(|s| s.code(), |_| Code::Ok);
                let reply = post(
                    server.http,
                    path,
                    secret,
                    &body.replace("{n}", &format!("h{n}")),
                )
                .await;
                let http = reply.json()["code"].as_str().map_or(Code::Ok, code_named);
                assert_eq!(http, grpc, "{secret} {path} {tenant}: {}", reply.body);
            }
        }
    }
    // The refused write of a read token over HTTP, in the audit trail.
    let reply = post(
        server.http,
        "/authzd.v1.DirectoryService/CreateSubject",
        "s-acme-read",
        r#"{"tenant":"acme","subject":{"id":"mallory"},"options":{"reason":"over http"}}"#,
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let audit = post(
        server.http,
        "/authzd.v1.AuditService/ListAuditEntries",
        HARNESS_SECRET,
        r#"{"tenant":"acme","caller":"acme-reader"}"#,
    )
    .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert!(audit.body.contains("acme-reader"), "{}", audit.body);
    server.stop().await;
}

/// Watch streams newline-delimited JSON: it replays after a revision, then
/// a write made over gRPC arrives live with its permission changes; a
/// stream refused at once is a JSON error under its status.
#[tokio::test]
async fn watch_streams_lines_and_resumes_from_a_revision() {
    let server = seeded_server().await;
    let path = "/authzd.v1.WatchService/Watch";
    let first = create_subject(&server, ACME, "bob").await;
    let body = json!({"tenant": ACME, "afterRevision": (first - 1).to_string()}).to_string();
    let (status, mut lines) = Lines::open(server.http, path, "", &body).await;
    assert_eq!(status, 200);
    let replayed = lines.next().await.unwrap();
    assert_eq!(replayed["revision"], first.to_string(), "{replayed}");
    let wrote = manage(
        &server,
        ACME,
        vec![assign("viewer", subject_principal("bob"), None)],
    )
    .await;
    let live = loop {
        let line = lines.next().await.unwrap();
        if line["revision"].as_str() == Some(wrote.to_string().as_str())
            && !line["permissionChanges"].as_array().unwrap().is_empty()
        {
            break line;
        }
    };
    let change = &live["permissionChanges"][0];
    assert_eq!(change["subject"], "bob", "{live}");
    // Resuming after the live revision's predecessor gives it again.
    let body = json!({"tenant": ACME, "afterRevision": (wrote - 1).to_string(), "kinds": ["EVENT_KIND_PERMISSION_CHANGES"]}).to_string();
    let (_, mut again) = Lines::open(server.http, path, "", &body).await;
    let line = again.next().await.unwrap();
    assert_eq!(line["revision"], wrote.to_string(), "{line}");
    let (status, mut refused) = Lines::open(
        server.http,
        path,
        "",
        r#"{"tenant":"acme","afterRevision":"99999"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(refused.next().await.unwrap()["code"], "OUT_OF_RANGE");
    server.stop().await;
}

/// GET /openapi.json is an OpenAPI 3.1 document with a POST path for
/// every RPC, whose every schema reference resolves.
#[tokio::test]
async fn openapi_describes_every_rpc() {
    let server = TestServer::start().await;
    let reply = request(server.http, "GET", "/openapi.json", &[], "").await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for method in unary_methods() {
        let op = &doc["paths"][path(&method)]["post"];
        assert!(op.is_object(), "{}", path(&method));
        assert!(
            op["description"].is_string(),
            "{} has no description",
            path(&method)
        );
    }
    assert!(doc["paths"]["/authzd.v1.WatchService/Watch"]["post"]["responses"]["200"]["content"]["application/x-ndjson"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
    let revision = &schemas["authzd.v1.CheckAccessResponse"]["properties"]["revision"];
    assert_eq!(revision["type"], "string");
    server.stop().await;
}

/// CORS: an allowed origin's preflight is answered and its calls carry
/// the headers that let its page read them; any other origin gets none.
#[tokio::test]
async fn cors_only_for_allowed_origins() {
    let server = TestServer::start().await;
    let path = "/authzd.v1.SchemaService/ReadSchema";
    let preflight = [
        ("origin", CORS_ORIGIN),
        ("access-control-request-method", "POST"),
    ];
    let reply = request(server.http, "OPTIONS", path, &preflight, "").await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.headers["access-control-allow-origin"], CORS_ORIGIN);
    let call = [
        ("origin", CORS_ORIGIN),
        ("content-type", "application/json"),
    ];
    let reply = request(server.http, "POST", path, &call, "{}").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["access-control-allow-origin"], CORS_ORIGIN);
    let other = [
        ("origin", "https://evil.example"),
        ("content-type", "application/json"),
    ];
    let reply = request(server.http, "POST", path, &other, "{}").await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
    let reply = request(server.http, "OPTIONS", path, &other[..1], "").await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
    assert_ne!(reply.status, 204);
    server.stop().await;
}
