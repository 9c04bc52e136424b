//! Callers and tokens over gRPC: each token kind against each RPC family,
//! tenant binding, missing, wrong and revoked tokens, escalation attempts
//! with a write token, request ids, per-token bounds, and (with the real
//! binary) SIGHUP, `token new`, the access log and the loopback rule.

use authzd_testkit as common;
use common::*;

use authzd_service::auth::Limits;
use tonic::Status;

const OTHER: &str = "globex";

/// Every token the tests use: three unbound kinds, three bound to acme.
fn tokens() -> String {
    [
        token_entry("reader", "read", "", "s-read"),
        token_entry("writer", "write", "", "s-write"),
        token_entry("admin", "admin", "", "s-admin"),
        token_entry("acme-reader", "read", ACME, "s-acme-read"),
        token_entry("acme-writer", "write", ACME, "s-acme-write"),
        token_entry("acme-admin", "admin", ACME, "s-acme-admin"),
    ]
    .concat()
}

/// A tokens server with tenants acme and globex, each with alice (a tenant
/// administrator, so her writes pass the actor rules), bob and a group.
async fn server() -> TestServer {
    server_with(Limits::default()).await
}

async fn server_with(limits: Limits) -> TestServer {
    let server = TestServer::start_with_tokens(&tokens(), limits).await;
    for tenant in [ACME, OTHER] {
        create_subject(&server, tenant, "alice").await;
        create_subject(&server, tenant, "bob").await;
        create_group(&server, tenant, "team").await;
        manage(
            &server,
            tenant,
            vec![assign("admin", subject_principal("alice"), None)],
        )
        .await;
    }
    server
}

/// The RPC families, each with one representative call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Check,
    DirectoryRead,
    ListTenants,
    Watch,
    ReadSchema,
    Membership,
    DirectoryWrite,
    SystemWrite,
    TenantSettings,
    CreateTenant,
    WriteSchema,
    Audit,
}

const FAMILIES: [Family; 12] = [
    Family::Check,
    Family::DirectoryRead,
    Family::ListTenants,
    Family::Watch,
    Family::ReadSchema,
    Family::Membership,
    Family::DirectoryWrite,
    Family::SystemWrite,
    Family::TenantSettings,
    Family::CreateTenant,
    Family::WriteSchema,
    Family::Audit,
];

fn as_alice() -> Option<pb::WriteOptions> {
    Some(pb::WriteOptions {
        actor: "alice".into(),
        ..Default::default()
    })
}

/// Makes the family's call against `tenant`; `n` keeps created ids apart.
async fn attempt(c: &mut Clients, family: Family, tenant: &str, n: usize) -> Result<(), Status> {
    match family {
        Family::Check => c
            .access
            .check_access(check_request(tenant, "alice", "document:read", ""))
            .await
            .map(drop),
        Family::DirectoryRead => {
            c.directory
                .get_subject(pb::GetRequest {
                    tenant: tenant.into(),
                    id: "alice".into(),
                    ..Default::default()
                })
                .await?;
            c.directory
                .list_groups(pb::ListRequest {
                    tenant: tenant.into(),
                    ..Default::default()
                })
                .await
                .map(drop)
        }
        Family::ListTenants => c
            .directory
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .map(drop),
        Family::Watch => c
            .watch
            .watch(pb::WatchRequest {
                tenant: tenant.into(),
                ..Default::default()
            })
            .await
            .map(drop),
        Family::ReadSchema => c
            .schema
            .read_schema(pb::ReadSchemaRequest {})
            .await
            .map(drop),
        Family::Membership => c
            .membership
            .manage_membership(batch(
                tenant,
                vec![add_member("team", subject_principal("bob"))],
                as_alice(),
            ))
            .await
            .map(drop),
        Family::DirectoryWrite => c
            .directory
            .create_subject(pb::CreateSubjectRequest {
                tenant: tenant.into(),
                subject: Some(pb::Subject {
                    id: format!("new-{n}"),
                    ..Default::default()
                }),
                options: as_alice(),
            })
            .await
            .map(drop),
        Family::SystemWrite => c
            .directory
            .create_scope(pb::CreateScopeRequest {
                tenant: tenant.into(),
                scope: Some(pb::Scope {
                    id: format!("unit-{n}"),
                    r#type: String::new(),
                    parent: String::new(),
                }),
                options: None,
            })
            .await
            .map(drop),
        Family::TenantSettings => c
            .directory
            .update_tenant_settings(pb::UpdateTenantSettingsRequest {
                tenant: tenant.into(),
                settings: Some(pb::TenantSettings::default()),
                options: None,
            })
            .await
            .map(drop),
        Family::CreateTenant => c
            .directory
            .create_tenant(pb::CreateTenantRequest {
                tenant: format!("{tenant}-{n}"),
                settings: None,
                options: None,
            })
            .await
            .map(drop),
        Family::WriteSchema => {
            let current = c
                .schema
                .read_schema(pb::ReadSchemaRequest {})
                .await?
                .into_inner()
                .schema;
            c.schema
                .write_schema(pb::WriteSchemaRequest {
                    schema: current,
                    dry_run: true,
                    ..Default::default()
                })
                .await
                .map(drop)
        }
        Family::Audit => c
            .audit
            .list_audit_entries(pb::ListAuditEntriesRequest {
                tenant: tenant.into(),
                ..Default::default()
            })
            .await
            .map(drop),
    }
}

/// What an unbound token of `kind` gets for `family`: `None` if allowed,
/// else the fragment its PERMISSION_DENIED must contain.
fn expected(kind: &str, family: Family) -> Option<&'static str> {
    use Family::*;
    match (kind, family) {
        (_, Check | DirectoryRead | Watch | ReadSchema) => None,
        ("admin", _) => None,
        (_, ListTenants) => Some("across tenants: needs admin"),
        ("read", Membership | DirectoryWrite | SystemWrite) => Some("needs write"),
        ("write", Membership | DirectoryWrite) => None,
        ("write", SystemWrite) => Some("without options.actor: a system write needs admin"),
        (_, TenantSettings | CreateTenant | WriteSchema | Audit) => Some("needs admin"),
        _ => unreachable!(),
    }
}

/// Each kind of token against each RPC family: read may check, read, list
/// and watch; write may also write membership and directory entries on
/// behalf of an actor; admin may also make system writes, change tenants
/// and the schema, and list every tenant. Every refusal is
/// PERMISSION_DENIED naming the token, its kind and what was missing.
#[tokio::test]
async fn each_token_kind_against_each_rpc_family() {
    let server = server().await;
    let mut n = 0;
    for (kind, secret) in [
        ("read", "s-read"),
        ("write", "s-write"),
        ("admin", "s-admin"),
    ] {
        let mut clients = server.clients_as(secret).await;
        for family in FAMILIES {
            n += 1;
            let got = attempt(&mut clients, family, ACME, n).await;
            match (expected(kind, family), got) {
                (None, Ok(())) => {}
                (Some(fragment), Err(status)) => {
                    assert_eq!(
                        status.code(),
                        Code::PermissionDenied,
                        "{kind} {family:?}: {status:?}"
                    );
                    let token = if kind == "read" { "reader" } else { "writer" };
                    let named = format!("token {token} ({kind}) may not call ");
                    assert!(
                        status.message().starts_with(&named) && status.message().contains(fragment),
                        "{kind} {family:?}: {}",
                        status.message()
                    );
                }
                (want, got) => panic!("{kind} {family:?}: wanted {want:?}, got {got:?}"),
            }
        }
    }
    // The kind's message names the RPC it refused.
    let mut writer = server.clients_as("s-write").await;
    let refused = attempt(&mut writer, Family::WriteSchema, ACME, 0).await;
    assert_eq!(
        refused.unwrap_err().message(),
        "token writer (write) may not call SchemaService/WriteSchema: needs admin"
    );
    server.stop().await;
}

/// A token bound to acme is refused every RPC family for globex, Watch
/// included, even as admin; for acme it may do what its kind allows;
/// ListTenants shows it acme alone; and WriteSchema, which changes every
/// tenant, is refused it.
#[tokio::test]
async fn a_tenant_bound_token_touches_only_its_tenant() {
    let server = server().await;
    let mut n = 100;
    let mut bound = server.clients_as("s-acme-admin").await;
    for family in FAMILIES {
        n += 1;
        let refused = attempt(&mut bound, family, OTHER, n).await;
        match family {
            Family::ListTenants | Family::ReadSchema => {
                refused.unwrap();
            }
            Family::WriteSchema => {
                let status = refused.unwrap_err();
                assert_eq!(status.code(), Code::PermissionDenied);
                assert!(
                    status.message().contains("reaches every tenant"),
                    "{status:?}"
                );
            }
            _ => {
                let status = refused.unwrap_err();
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{family:?}: {status:?}"
                );
                assert!(
                    status
                        .message()
                        .starts_with("token acme-admin is bound to tenant acme")
                        && status.message().contains(OTHER),
                    "{family:?}: {}",
                    status.message()
                );
            }
        }
        if !matches!(family, Family::WriteSchema | Family::CreateTenant) {
            attempt(&mut bound, family, ACME, n)
                .await
                .unwrap_or_else(|e| panic!("{family:?} on acme: {e:?}"));
        }
    }
    // Only its own tenant, and only once it exists, whatever the kind.
    for secret in ["s-acme-admin", "s-acme-read"] {
        let listed = server
            .clients_as(secret)
            .await
            .directory
            .list_tenants(pb::ListTenantsRequest::default())
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = listed.tenants.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, [ACME]);
    }
    let all = server
        .clients_as("s-admin")
        .await
        .directory
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(all.tenants.iter().any(|t| t.id == OTHER));
    // A bound read token is refused another tenant's feed and checks too.
    let mut reader = server.clients_as("s-acme-read").await;
    for family in [Family::Watch, Family::Check, Family::DirectoryRead] {
        let status = attempt(&mut reader, family, OTHER, 0).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{family:?}");
    }
    server.stop().await;
}

/// No token, a wrong one, one of another scheme (named as such) and a
/// revoked one are UNAUTHENTICATED; a reload
/// with an invalid file keeps the tokens in force; health and reflection
/// need no token.
#[tokio::test]
async fn missing_wrong_and_revoked_tokens_are_unauthenticated() {
    let server = server().await;
    for secret in ["", "s-wrong", "s-read-"] {
        let mut clients = server.clients_as(secret).await;
        let status = attempt(&mut clients, Family::Check, ACME, 0)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{secret:?}");
        assert!(!status.message().contains("s-"), "{}", status.message());
    }
    // Another scheme is no token at all, and the refusal says which scheme
    // was sent and which is expected, without echoing the credentials.
    let mut basic = pb::access_service_client::AccessServiceClient::new(server.channel().await);
    let mut request = tonic::Request::new(check_request(ACME, "alice", "document:read", ""));
    request
        .metadata_mut()
        .insert("authorization", "Basic s-read".parse().unwrap());
    let status = basic.check_access(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status
            .message()
            .contains("unsupported authorization scheme \"Basic\"")
            && status.message().contains("Bearer <secret>")
            && !status.message().contains("s-read"),
        "{}",
        status.message()
    );

    // Revoke the writer: its next call is refused; the reader's is not.
    let mut writer = server.clients_as("s-write").await;
    attempt(&mut writer, Family::Check, ACME, 0).await.unwrap();
    let kept = tokens().replace(&token_entry("writer", "write", "", "s-write"), "");
    assert_eq!(server.replace_tokens(&kept).unwrap(), 6);
    let status = attempt(&mut writer, Family::Check, ACME, 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut reader = server.clients_as("s-read").await;
    attempt(&mut reader, Family::Check, ACME, 0).await.unwrap();

    // An invalid file is refused whole: the tokens in force stay.
    let error = server
        .replace_tokens("[[token]]\nname = \"x\"\nkind = \"root\"\nsha256 = \"00\"\n")
        .unwrap_err();
    assert!(error.to_string().contains("kind: unknown kind"), "{error}");
    attempt(&mut reader, Family::Check, ACME, 0).await.unwrap();

    // Health and reflection are open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    server.stop().await;
}

/// A write token cannot raise its actor's rights: not by assigning a
/// custom role granting `*`, nor the builtin `*` role, nor by joining a
/// group that holds it, nor by redefining a role the actor holds to grant
/// `*`, nor by leaving the actor out; nothing changes.
#[tokio::test]
async fn escalation_with_a_write_token_is_refused() {
    let server = server().await;
    // bob manages documents but is no tenant administrator.
    manage(
        &server,
        ACME,
        vec![
            assign("manager", subject_principal("bob"), None),
            assign("admin", group_principal("team"), None),
        ],
    )
    .await;
    let before = revision(&server).await;
    let mut writer = server.clients_as("s-write").await;
    let as_bob = || {
        Some(pb::WriteOptions {
            actor: "bob".into(),
            ..Default::default()
        })
    };
    let created = writer
        .directory
        .create_role(pb::CreateRoleRequest {
            tenant: ACME.into(),
            role: Some(custom_role("god", vec![grant("*", &[])])),
            options: as_bob(),
        })
        .await;
    // Defining the role may or may not be allowed; holding it must not be.
    let attempts = [
        assign("god", subject_principal("bob"), None),
        assign("admin", subject_principal("bob"), None),
        add_member("team", subject_principal("bob")),
    ];
    for op in attempts {
        let refused = writer
            .membership
            .manage_membership(batch(ACME, vec![op.clone()], as_bob()))
            .await;
        let status = refused.unwrap_err();
        assert!(
            matches!(status.code(), Code::PermissionDenied | Code::NotFound),
            "{op:?}: {status:?}"
        );
        let system = writer
            .membership
            .manage_membership(batch(ACME, vec![op], None))
            .await;
        assert_status(system, Code::PermissionDenied, "a system write needs admin");
    }
    assert!(!check(&server, ACME, "bob", "users:admin", "").await);
    let after = revision(&server).await;
    assert_eq!(after, before + u64::from(created.is_ok()));

    // Redefining a role bob holds must not hand him what it newly grants.
    create_role(&server, ACME, "helper", vec![grant("document:read", &[])]).await;
    manage(
        &server,
        ACME,
        vec![assign("helper", subject_principal("bob"), None)],
    )
    .await;
    let redefined = writer
        .directory
        .update_role(pb::UpdateRoleRequest {
            tenant: ACME.into(),
            role: Some(custom_role("helper", vec![grant("*", &[])])),
            options: as_bob(),
        })
        .await;
    assert_status(
        redefined,
        Code::PermissionDenied,
        "may not redefine role helper",
    );
    assert!(!check(&server, ACME, "bob", "users:admin", "").await);
    server.stop().await;
}

/// A request id the caller sends comes back in the response metadata, on
/// success and on refusal; without one, a fresh id is returned.
#[tokio::test]
async fn request_ids_travel_back() {
    let server = server().await;
    let mut access = server.access().await;
    let mut request = tonic::Request::new(check_request(ACME, "alice", "document:read", ""));
    request
        .metadata_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    let reply = access.check_access(request).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "trace-42");

    let first = access
        .check_access(check_request(ACME, "alice", "document:read", ""))
        .await
        .unwrap();
    let second = access
        .check_access(check_request(ACME, "alice", "document:read", ""))
        .await
        .unwrap();
    let id = |m: &tonic::metadata::MetadataMap| {
        m.get("x-request-id").unwrap().to_str().unwrap().to_string()
    };
    assert_ne!(id(first.metadata()), id(second.metadata()));

    let mut anonymous = server.clients_as("").await;
    let mut request = tonic::Request::new(check_request(ACME, "alice", "document:read", ""));
    request
        .metadata_mut()
        .insert("x-request-id", "trace-43".parse().unwrap());
    let refused = anonymous.access.check_access(request).await.unwrap_err();
    assert_eq!(refused.metadata().get("x-request-id").unwrap(), "trace-43");
    server.stop().await;
}

/// A token at its bound of open Watch streams, or of requests in
/// progress, is refused RESOURCE_EXHAUSTED at once; other tokens are not
/// affected, and a finished call frees its place.
#[tokio::test]
async fn per_token_bounds_shed_with_resource_exhausted() {
    let server = server_with(Limits {
        requests: 1,
        watches: 1,
    })
    .await;
    let mut reader = server.clients_as("s-read").await;
    let first = reader
        .watch
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = attempt(&mut reader, Family::Watch, ACME, 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("token reader already has 1 Watch streams"),
        "{status:?}"
    );
    // A stream is not a request: the reader still checks.
    attempt(&mut reader, Family::Check, ACME, 0).await.unwrap();
    let mut other = server.clients_as("s-admin").await;
    attempt(&mut other, Family::Watch, ACME, 0).await.unwrap();
    // Closing the stream frees its place once the server sees it closed.
    drop(first);
    let mut freed = false;
    for _ in 0..10_000 {
        if attempt(&mut reader, Family::Watch, ACME, 0).await.is_ok() {
            freed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(freed, "the closed stream kept its place");

    // One request in progress: a read waiting for a revision not yet
    // written holds the reader's only place until a write reaches it.
    let latest = revision(&server).await;
    let mut waiting = server.clients_as("s-read").await;
    let pending = tokio::spawn(async move {
        let mut request = check_request(ACME, "alice", "document:read", "");
        request.at_least_revision = latest + 1;
        waiting.access.check_access(request).await.map(drop)
    });
    let mut shed = None;
    for _ in 0..10_000 {
        match attempt(&mut reader, Family::Check, ACME, 0).await {
            Ok(()) => tokio::task::yield_now().await,
            Err(status) => {
                shed = Some(status);
                break;
            }
        }
    }
    let shed = shed.expect("the second request was never shed");
    assert_eq!(shed.code(), Code::ResourceExhausted);
    assert!(
        shed.message().contains("1 requests in progress"),
        "{shed:?}"
    );
    create_subject(&server, ACME, "carol").await;
    guard("the waiting read", pending).await.unwrap().unwrap();
    server.stop().await;
}

/// With the real binary: `authzd token new` prints its entry (and the
/// secret apart); pasted into the tokens file and signalled with SIGHUP, the
/// server accepts it, and revokes it on the next SIGHUP; an invalid file
/// is logged and ignored; the access log names method, tenant, code,
/// caller and request id, never the secret.
#[tokio::test]
async fn sighup_adds_and_revokes_tokens_in_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args([
            "token", "new", "--name", "billing", "--kind", "read", "--tenant", ACME,
        ])
        .output()
        .unwrap();
    assert!(made.status.success());
    // The entry on stdout, the secret on stderr.
    let entry = String::from_utf8(made.stdout).unwrap();
    let secret = String::from_utf8(made.stderr)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("authzd_"))
        .unwrap()
        .to_string();
    assert!(entry.contains("name = \"billing\"") && entry.contains("tenant = \"acme\""));
    assert!(!entry.contains(&secret));

    let file = dir.path().join("tokens.toml");
    let admin = token_entry("ops", "admin", "", "s-ops");
    std::fs::write(&file, &admin).unwrap();
    let data = dir.path().join("data");
    let binary = spawn_binary_with(&data, &["--tokens".into(), file.clone().into()]).await;
    let pid = binary.child.id().to_string();
    let hangup = || {
        assert!(
            std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    let check_as = |secret: String| {
        let port = binary.port;
        async move {
            let channel = channel_to(port).await;
            let mut access = pb::access_service_client::AccessServiceClient::new(channel);
            let mut request =
                tonic::Request::new(check_request(ACME, "alice", "document:read", ""));
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {secret}").parse().unwrap());
            request
                .metadata_mut()
                .insert("x-request-id", "req-7".parse().unwrap());
            access.check_access(request).await
        }
    };
    let unknown = check_as(secret.clone()).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);

    std::fs::write(&file, format!("{admin}{entry}")).unwrap();
    hangup();
    binary.wait_for_line("tokens reloaded");
    // acme has no subject alice: NOT_FOUND means the token was accepted.
    let status = check_as(secret.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let line = binary.wait_for_line("method=AccessService/CheckAccess");
    for field in [
        "tenant=acme",
        "code=NotFound",
        "caller=billing",
        "request_id=req-7",
        "latency_us=",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
    assert!(!line.contains(&secret), "{line}");

    std::fs::write(&file, "not toml [").unwrap();
    hangup();
    let refused = binary.wait_for_line("tokens not reloaded");
    assert!(refused.contains("tokens.toml"), "{refused}");
    assert_eq!(
        check_as(secret.clone()).await.unwrap_err().code(),
        Code::NotFound
    );

    std::fs::write(&file, &admin).unwrap();
    hangup();
    binary.wait_for_line("tokens reloaded");
    assert_eq!(
        check_as(secret).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

/// `--listen` takes a host name: `localhost` resolves to loopback only, so
/// the binary serves it without tokens, on a loopback address; a name that
/// does not resolve stops it with a message naming the name.
#[tokio::test]
async fn listen_accepts_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let binary = spawn_binary_with(&data, &["--listen".into(), "localhost:0".into()]).await;
    let warning = binary.wait_for_line("no --tokens");
    assert!(warning.contains("loopback"), "{warning}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(binary.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    drop(binary);

    let other = dir.path().join("other");
    let (ok, stderr) = serve_until_exit(
        &other,
        &["--listen".into(), "no-such-host.invalid:1".into()],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("cannot resolve no-such-host.invalid:1"),
        "{stderr}"
    );
    assert!(!other.exists());
}

/// Without tokens the binary refuses a non-loopback address unless
/// `--insecure`, and warns that every caller is trusted when it serves.
#[tokio::test]
async fn without_tokens_only_loopback_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, stderr) = serve_until_exit(&data, &["--listen".into(), "0.0.0.0:0".into()]).await;
    assert!(!ok);
    assert!(
        stderr.contains("without --tokens") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!data.exists(), "the store was opened before the refusal");

    let binary = spawn_binary_with(
        &data,
        &["--listen".into(), "0.0.0.0:0".into(), "--insecure".into()],
    )
    .await;
    let warning = binary.wait_for_line("--insecure");
    assert!(
        warning.contains("WARN") && warning.contains("trusted"),
        "{warning}"
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(binary.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
}
