//! `serve --http-listen` with the real binary: the HTTP/JSON listener
//! announces its address, answers JSON over the same store and stack as
//! gRPC, and, like the gRPC listener, is refused beyond loopback without
//! tokens.

use authzd_testkit as common;
use common::*;

/// The binary serves the API as JSON on the announced address: a write
/// over HTTP is read back over gRPC and over HTTP.
#[tokio::test]
async fn http_listen_serves_json_beside_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let binary =
        spawn_binary_with(dir.path(), &["--http-listen".into(), "127.0.0.1:0".into()]).await;
    let line = binary.wait_for_line("HTTP/JSON API");
    let addr: std::net::SocketAddr = line
        .split("http_listen=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .parse()
        .unwrap();
    let created = common::http::post(
        addr,
        "/authzd.v1.DirectoryService/CreateTenant",
        "",
        r#"{"tenant":"acme"}"#,
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let got = DirectoryServiceClient::new(binary.channel().await)
        .get_tenant(pb::GetTenantRequest {
            tenant: ACME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.tenant.unwrap().id, ACME);
    let listed =
        common::http::post(addr, "/authzd.v1.DirectoryService/ListTenants", "", "{}").await;
    assert_eq!(listed.json()["tenants"][0]["id"], ACME, "{}", listed.body);
}

/// Without tokens a non-loopback HTTP address is refused at start-up,
/// naming it, as a non-loopback gRPC address is.
#[tokio::test]
async fn http_listen_beyond_loopback_needs_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::task::spawn_blocking({
        let data = dir.path().to_path_buf();
        move || {
            std::process::Command::new(authzd_binary())
                .args([
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--http-listen",
                    "0.0.0.0:0",
                    "--data",
                ])
                .arg(data)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without --tokens"),
        "{stderr}"
    );
}
