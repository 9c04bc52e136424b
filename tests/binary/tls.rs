//! TLS and mTLS on the real listener, with certificates made here (rcgen):
//! who completes a call and who is refused, the CLI's client options
//! (`import` over mTLS with a token), and the start-up errors for PEM files
//! that cannot be used.

use authzd_testkit as common;

use std::ffi::OsString;
use std::path::PathBuf;

use authzd::cli::import::{ImportArgs, run};
use authzd_client::tls::ServerTls;
use authzd_client::{ClientArgs, Remote};
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A certificate authority of its own.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses) usable for `usage`.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server_leaf(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client_leaf(&self) -> Leaf {
        self.leaf(&["billing-backend"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A folder the PEM files are written to.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `leaf` as `<name>.crt` and `<name>.key`.
    fn leaf(&self, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
        (
            self.write(&format!("{name}.crt"), &leaf.cert),
            self.write(&format!("{name}.key"), &leaf.key),
        )
    }
}

/// One server CA, its server certificate, and the files.
struct Pki {
    ca: Ca,
    files: Files,
    ca_file: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("authzd test CA");
        let files = Files::new();
        let ca_file = files.write("ca.crt", &ca.pem());
        let (server_cert, server_key) = files.leaf("server", &ca.server_leaf());
        Pki {
            ca,
            files,
            ca_file,
            server_cert,
            server_key,
        }
    }

    /// TLS for the server; with `client_ca`, mTLS against this CA.
    fn server(&self, client_ca: bool) -> ServerTls {
        let ca = client_ca.then_some(self.ca_file.as_path());
        ServerTls::load(&self.server_cert, &self.server_key, ca).unwrap()
    }

    /// Client options that trust this CA, presenting `cert` if given.
    fn client(&self, cert: Option<(PathBuf, PathBuf)>) -> ClientArgs {
        let (tls_cert, tls_key) = cert.unzip();
        ClientArgs {
            tls_ca: Some(self.ca_file.clone()),
            tls_cert,
            tls_key,
            ..ClientArgs::default()
        }
    }
}

/// Connects with `args` and makes one call (a health check): the outcome
/// of the whole exchange, since under TLS 1.3 a refused client
/// certificate may surface only at the first call.
async fn call(target: &str, args: &ClientArgs) -> Result<(), String> {
    let remote = Remote::new(target, args).map_err(|e| e.to_string())?;
    let channel = guard("connecting", remote.connect())
        .await
        .map_err(|e| e.to_string())?;
    guard(
        "the health check",
        HealthClient::new(channel).check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .map(|_| ())
    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// A TLS server answers a client that trusts its CA, by IP address (the
/// certificate's IP name) or by `--tls-server-name`; a client trusting
/// another CA and a plaintext client are refused.
#[tokio::test]
async fn tls_needs_the_right_ca() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server(false)).await;
    let target = server.addr.to_string();
    call(&target, &pki.client(None)).await.unwrap();
    let named = ClientArgs {
        tls_server_name: Some("localhost".into()),
        ..pki.client(None)
    };
    call(&target, &named).await.unwrap();
    let https = format!("https://{target}");
    call(&https, &pki.client(None)).await.unwrap();

    let other = Ca::new("another CA");
    let other_args = ClientArgs {
        tls_ca: Some(pki.files.write("other-ca.crt", &other.pem())),
        ..ClientArgs::default()
    };
    let refused = call(&target, &other_args).await.unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");

    let wrong_name = ClientArgs {
        tls_server_name: Some("elsewhere.example".into()),
        ..pki.client(None)
    };
    call(&target, &wrong_name).await.unwrap_err();

    call(&target, &ClientArgs::default()).await.unwrap_err();
    server.stop().await;
}

/// With a client CA the server requires a client certificate: none, one
/// from another CA, and the server's own CA certificate misused as a
/// client's are refused; one issued by the client CA is accepted.
#[tokio::test]
async fn mtls_requires_a_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server(true)).await;
    let target = server.addr.to_string();

    call(&target, &pki.client(None)).await.unwrap_err();

    let other = Ca::new("another CA");
    let stranger = pki.files.leaf("stranger", &other.client_leaf());
    call(&target, &pki.client(Some(stranger)))
        .await
        .unwrap_err();

    let valid = pki.files.leaf("client", &pki.ca.client_leaf());
    call(&target, &pki.client(Some(valid))).await.unwrap();
    server.stop().await;
}

/// `authzd import` reaches an mTLS server with the shared client options
/// (CA, client certificate, server name, token file) and writes; without
/// them it writes nothing.
#[tokio::test]
async fn import_runs_over_mtls_with_a_token_file() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server(true)).await;
    let client = pki.files.leaf("client", &pki.ca.client_leaf());
    let file = pki.files.write(
        "users.csv",
        "id,kind,status,groups,attributes\nalice,,,,\nbob,,,,\n",
    );
    let args = ImportArgs {
        file,
        target: server.addr.to_string(),
        tenant: ACME.into(),
        dry_run: false,
        client: ClientArgs {
            tls_server_name: Some("localhost".into()),
            token_file: Some(pki.files.write("token", "s3cret\n")),
            ..pki.client(Some(client))
        },
    };
    let report = guard("the import", run(&args)).await.unwrap();
    assert_eq!(report.created, 2);

    let plain = ImportArgs {
        client: ClientArgs::default(),
        ..args
    };
    let e = guard("the import", run(&plain)).await.unwrap_err();
    assert!(e.to_string().contains("nothing was written"), "{e}");
    server.stop().await;
}

/// Runs `authzd serve` with `extra` arguments, expecting it to refuse to
/// start; returns what it printed.
async fn start_up_error(extra: Vec<OsString>) -> String {
    let data = tempfile::tempdir().unwrap();
    let (started, text) = serve_until_exit(data.path(), &extra).await;
    assert!(!started, "{text}");
    text
}

/// A missing certificate, a key given as the certificate, a certificate
/// given as the key, an unreadable client CA, and a key that is not the
/// certificate's each stop the server at start with a message naming the
/// file.
#[tokio::test]
async fn unusable_pem_files_stop_the_server_naming_the_file() {
    let pki = Pki::new();
    let (cert, key) = (pki.server_cert.clone(), pki.server_key.clone());
    let missing = pki.files.0.path().join("missing.crt");
    let tls = |cert: &PathBuf, key: &PathBuf| -> Vec<OsString> {
        vec![
            "--tls-cert".into(),
            cert.into(),
            "--tls-key".into(),
            key.into(),
        ]
    };
    let cases: Vec<(Vec<OsString>, PathBuf)> = vec![
        (tls(&missing, &key), missing.clone()),
        (tls(&key, &key), key.clone()),
        (tls(&cert, &cert), cert.clone()),
        (
            [
                tls(&cert, &key),
                vec!["--tls-client-ca".into(), missing.clone().into()],
            ]
            .concat(),
            missing.clone(),
        ),
    ];
    for (args, named) in cases {
        let text = start_up_error(args).await;
        assert!(text.contains("cannot use the TLS files"), "{text}");
        assert!(text.contains(&named.display().to_string()), "{text}");
    }

    // A key of another certificate is refused before anything is served
    // or created: no data folder is left behind.
    let (_, other_key) = pki.files.leaf("other", &pki.ca.server_leaf());
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let (started, text) = serve_until_exit(&data, &tls(&cert, &other_key)).await;
    assert!(!started, "{text}");
    assert!(text.contains(&cert.display().to_string()), "{text}");
    assert!(text.contains(&other_key.display().to_string()), "{text}");
    assert!(text.contains("does not match"), "{text}");
    assert!(!text.contains("serving"), "{text}");
    assert!(!data.exists(), "a data folder was created: {text}");

    // --tls-key without --tls-cert is a usage error from the parser.
    let text = start_up_error(vec!["--tls-key".into(), key.into()]).await;
    assert!(text.contains("--tls-cert"), "{text}");
}

/// Every CLI command that connects, against the wrong transport, says what
/// is wrong and which flag fixes it: a plaintext client to a TLS server is
/// told to give an https:// target and --tls-ca, a client without a
/// certificate to an mTLS server to give --tls-cert and --tls-key.
#[tokio::test]
async fn every_cli_command_names_the_flag_a_transport_mismatch_needs() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, "id,kind,status,groups,attributes\nalice,,,,\n").unwrap();
    let json = dir.path().join("acme.json");
    std::fs::write(&json, "{}").unwrap();
    let backup = dir.path().join("backup");
    let (csv, json, backup) = (
        csv.display().to_string(),
        json.display().to_string(),
        backup.display().to_string(),
    );
    let commands: Vec<Vec<&str>> = vec![
        vec!["check", "--tenant", "acme", "alice", "document:read"],
        vec!["subject", "create", "--tenant", "acme", "alice"],
        vec!["schema", "read"],
        vec!["import", "--tenant", "acme", &csv],
        vec!["import", "--tenant", "acme", &json],
        vec!["export", "--tenant", "acme"],
        vec!["backup", "--out", &backup],
    ];
    let run = |command: &[&str], target: String, extra: &[String]| {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(["--target".to_string(), target]);
        args.extend(extra.iter().cloned());
        run_cli(args)
    };

    let tls = TestServer::start_tls(pki.server(false)).await;
    for command in &commands {
        let done = run(command, tls.addr.to_string(), &[]).await;
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success(), "{command:?}: {err}");
        assert!(
            err.contains("https://") && err.contains("--tls-ca"),
            "{command:?}: {err}"
        );
    }
    tls.stop().await;

    let mtls = TestServer::start_tls(pki.server(true)).await;
    let ca = ["--tls-ca".to_string(), pki.ca_file.display().to_string()];
    for command in &commands {
        let done = run(command, mtls.addr.to_string(), &ca).await;
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!done.status.success(), "{command:?}: {err}");
        assert!(
            err.contains("client certificate")
                && err.contains("--tls-cert")
                && err.contains("--tls-key"),
            "{command:?}: {err}"
        );
    }
    mtls.stop().await;
}

/// A TLS connection to `addr` trusting `pki`'s CA, presenting `client`
/// (a certificate and key as PEM) if given; then a health check over
/// HTTP/JSON. The HTTP status, or why the exchange failed.
async fn https_health(
    addr: std::net::SocketAddr,
    pki: &Pki,
    client: Option<&Leaf>,
) -> Result<u16, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let headers = [("content-type", "application/json")];
    let path = "/grpc.health.v1.Health/Check";
    common::http::try_send_over(tls, "localhost", "POST", path, &headers, "{}")
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// The HTTP/JSON listener speaks TLS with the gRPC listener's files: a
/// client trusting the CA is answered, a plaintext request is not; with a
/// client CA, only a client presenting a certificate from it is.
#[tokio::test]
async fn the_http_listener_speaks_tls_with_the_same_files() {
    let pki = Pki::new();
    let server = TestServer::start_tls(pki.server(false)).await;
    assert_eq!(https_health(server.http, &pki, None).await, Ok(200));
    let plain = common::http::try_send(
        server.http,
        "POST",
        "/grpc.health.v1.Health/Check",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert!(plain.is_err(), "plaintext answered: {plain:?}");
    server.stop().await;

    let server = TestServer::start_tls(pki.server(true)).await;
    assert!(https_health(server.http, &pki, None).await.is_err());
    let leaf = pki.ca.client_leaf();
    assert_eq!(https_health(server.http, &pki, Some(&leaf)).await, Ok(200));
    server.stop().await;
}
