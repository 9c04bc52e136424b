//! The integration tests' harness: starts the real server on
//! 127.0.0.1:0 over a fresh data folder and hands out gRPC clients.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness: a failed setup is a failed test"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use authzd_core::model::Timestamp;
use authzd_service::clock::ManualClock;

pub use authzd_server::api::pb;
use authzd_service::Service;
use authzd_service::auth::{Callers, Limits};
use authzd_service::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use pb::access_service_client::AccessServiceClient;
pub use pb::audit_service_client::AuditServiceClient;
pub use pb::directory_service_client::DirectoryServiceClient;
pub use pb::membership_service_client::MembershipServiceClient;
pub use pb::schema_service_client::SchemaServiceClient;
pub use pb::watch_service_client::WatchServiceClient;

/// The real binary serving over a data folder, and the port it announced;
/// killed when dropped, so a failing test leaves nothing running.
pub struct Binary {
    /// The `authzd serve` process.
    pub child: std::process::Child,
    /// The port it announced it listens on, on 127.0.0.1.
    pub port: u16,
    /// Every stderr line after the announcement.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// A connected channel to it.
    pub async fn channel(&self) -> Channel {
        channel_to(self.port).await
    }

    /// Sends SIGTERM and waits for the process to exit; after 30 s it is
    /// killed instead (and then did not exit successfully). Blocks its
    /// thread: a test whose clients must answer the server while it shuts
    /// down runs on more than one.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let (exited, watchdog) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if watchdog
                .recv_timeout(std::time::Duration::from_secs(30))
                .is_err()
            {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid])
                    .status();
            }
        });
        let status = self.child.wait().unwrap();
        let _ = exited.send(());
        status
    }

    /// Waits (at most 20 s) for a log line containing `needle`, skipping
    /// the others, and returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        self.wait_for_any(&[needle])
    }

    /// Waits (at most 20 s) for the first log line containing any of
    /// `needles`, skipping the others, and returns it.
    pub fn wait_for_any(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!("the binary logged no line containing any of {needles:?}")
            });
            if needles.iter().any(|n| line.contains(n)) {
                return line;
            }
        }
    }
}

/// A connected channel to a server on loopback.
pub async fn channel_to(port: u16) -> Channel {
    authzd_client::http2_windows(Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap())
        .connect()
        .await
        .unwrap()
}

/// Removes ANSI escape sequences (colour codes) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters... final byte in '@'..='~'.
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The port of the `listen` field of an "authzd serving" line, as text
/// (`listen=127.0.0.1:PORT`) or JSON (`"listen":"127.0.0.1:PORT"`).
pub fn announced_port(line: &str) -> Option<u16> {
    let line = strip_ansi(line);
    if !line.contains("authzd serving") {
        return None;
    }
    let (at, marker) = ["listen=", "\"listen\":\""]
        .iter()
        .find_map(|m| line.find(m).map(|at| (at, *m)))?;
    let rest = &line[at + marker.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    addr.rsplit_once(':')?.1.parse().ok()
}

/// Starts `authzd serve` on port 0 over `data` (with a schema file, if
/// given) and waits for its announcement.
pub async fn spawn_binary(data: &Path, schema: Option<&Path>) -> Binary {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if let Some(schema) = schema {
        args.push("--schema".into());
        args.push(schema.into());
    }
    spawn_binary_with(data, &args).await
}

/// Starts `authzd serve --data DATA ARGS` (on 127.0.0.1:0 unless `args`
/// give `--listen`) and waits for its announcement.
pub async fn spawn_binary_with(data: &Path, args: &[std::ffi::OsString]) -> Binary {
    spawn_binary_env(data, args, &[]).await
}

/// [`spawn_binary_with`], with these environment variables set as well.
pub async fn spawn_binary_env(
    data: &Path,
    args: &[std::ffi::OsString],
    env: &[(&str, &str)],
) -> Binary {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut command = serve_command(data, args);
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    // Drains stderr for the child's whole life, so it never blocks on a
    // full pipe; ends at EOF when the child dies.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let line = strip_ansi(&line);
            match announced_port(&line) {
                Some(port) if tx.is_some() => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
                _ => {
                    let _ = lines_tx.send(line);
                }
            }
        }
    });
    let port =
        tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(20)))
            .await
            .unwrap()
            .expect("the binary did not announce `authzd serving ... listen=`");
    Binary { child, port, lines }
}

/// The arguments of `authzd serve --data DATA ARGS` (on 127.0.0.1:0
/// unless `args` give `--listen`).
pub fn serve_args(data: &Path, args: &[std::ffi::OsString]) -> Vec<std::ffi::OsString> {
    let mut all: Vec<std::ffi::OsString> = vec!["serve".into(), "--data".into(), data.into()];
    if !args.iter().any(|a| a == "--listen") {
        all.extend(["--listen".into(), "127.0.0.1:0".into()]);
    }
    all.extend(args.iter().cloned());
    all
}

/// `program ARGS` with the environment the harness gives the binary.
pub fn logged_command(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[std::ffi::OsString],
) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    command
}

fn serve_command(data: &Path, args: &[std::ffi::OsString]) -> std::process::Command {
    logged_command(crate::authzd_binary(), &serve_args(data, args))
}

/// Runs `authzd serve --data DATA ARGS`, expecting it to exit by itself
/// (within 20 s, else it is killed and the test fails); returns whether it
/// succeeded and its stderr.
pub async fn serve_until_exit(data: &Path, args: &[std::ffi::OsString]) -> (bool, String) {
    let (ok, stderr) = run_until_exit(serve_command(data, args)).await;
    (ok, strip_ansi(&stderr))
}

/// Runs `command`, expecting it to exit by itself (within 20 s, else it is
/// killed and the test fails); returns whether it succeeded and its stderr
/// as written.
pub async fn run_until_exit(mut command: std::process::Command) -> (bool, String) {
    use std::process::Stdio;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let waited =
        tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(20)))
            .await
            .unwrap();
    match waited {
        Ok(output) => {
            let output = output.unwrap();
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("authzd serve did not exit by itself");
        }
    }
}

/// Sends `authorization: Bearer <secret>` with every call (nothing when
/// empty): the CLI clients' own interceptor.
pub use authzd_client::Bearer;

fn bearer(secret: &str) -> Bearer {
    Bearer::from_secret(secret, "the test").unwrap()
}

/// A channel that presents a token (or none).
pub type Authed = InterceptedService<Channel, Bearer>;

/// A `[[token]]` entry for `secret` (`tenant` empty: unbound).
pub fn token_entry(name: &str, kind: &str, tenant: &str, secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tenant = if tenant.is_empty() {
        String::new()
    } else {
        format!("tenant = \"{tenant}\"\n")
    };
    format!("[[token]]\nname = \"{name}\"\nkind = \"{kind}\"\n{tenant}sha256 = \"{digest}\"\n")
}

/// The secret of the admin token every tokens server of the harness has,
/// which [`TestServer`]'s own clients present.
pub const HARNESS_SECRET: &str = "harness-admin-secret";

/// The one origin the test servers' HTTP/JSON edges allow (CORS).
pub const CORS_ORIGIN: &str = "https://console.example.test";

/// A running server. Dropping it does not stop it; call [`TestServer::stop`].
pub struct TestServer {
    /// Where it listens (127.0.0.1 and the port it was given).
    pub addr: SocketAddr,
    /// Where its HTTP/JSON edge listens (every test server has one, over
    /// the same stack, with the gRPC listener's TLS).
    pub http: SocketAddr,
    /// Its data folder.
    pub data: PathBuf,
    /// The callers it serves (trust-all unless started with tokens); a
    /// test reloads the tokens file through it, as SIGHUP does.
    pub callers: Arc<Callers>,
    /// The tokens file, when started with tokens.
    pub tokens_file: Option<PathBuf>,
    /// The service it serves, for what only the process can see (what the
    /// Watch streams hold).
    pub service: Service,
    /// What the harness's own clients present.
    bearer: Bearer,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    // Keeps the temporary folder alive for as long as the server (and any
    // restart over the same folder) needs it.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server over a new, empty data folder with the built-in schema.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_at(&data, None).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server with a schema file.
    pub async fn start_with_schema(schema: &Path) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_at(&data, Some(schema.to_path_buf())).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server over a new data folder whose clock the test moves.
    pub async fn start_with_clock(schema: Option<PathBuf>, clock: Arc<ManualClock>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let mut server = Self::start_full(&data, schema, clock).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server over a new data folder with adjusted settings (small
    /// buffers, short progress intervals, a short changelog).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let mut server = Self::serve(config, clock).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server whose callers are the `[[token]]` entries `tokens`
    /// (see [`token_entry`]) plus an unbound admin token, "harness", which
    /// the server's own clients present (so every helper works); `limits`
    /// bounds each token.
    pub async fn start_with_tokens(tokens: &str, limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let file = dir.path().join("tokens.toml");
        let text = format!(
            "{}{tokens}",
            token_entry("harness", "admin", "", HARNESS_SECRET)
        );
        std::fs::write(&file, text).unwrap();
        let callers = Arc::new(Callers::load(&file, limits).unwrap());
        let config = Config {
            data_dir: data,
            ..Config::default()
        };
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let mut server = Self::serve_to(config, clock, callers, None).await;
        server.tokens_file = Some(file);
        server.bearer = bearer(HARNESS_SECRET);
        server._dir = Some(dir);
        server
    }

    /// Replaces the tokens file with the harness token and `tokens`, and
    /// reloads it as SIGHUP does.
    pub fn replace_tokens(&self, tokens: &str) -> Result<usize, authzd_service::auth::TokenError> {
        let text = format!(
            "{}{tokens}",
            token_entry("harness", "admin", "", HARNESS_SECRET)
        );
        std::fs::write(self.tokens_file.as_ref().unwrap(), text).unwrap();
        self.callers.reload()
    }

    /// Starts a server over an existing data folder (for restarts).
    pub async fn start_at(data: &Path, schema: Option<PathBuf>) -> TestServer {
        Self::start_full(data, schema, Arc::new(ManualClock::new(Timestamp::now()))).await
    }

    async fn start_full(
        data: &Path,
        schema: Option<PathBuf>,
        clock: Arc<ManualClock>,
    ) -> TestServer {
        let config = Config {
            data_dir: data.to_path_buf(),
            schema,
            ..Config::default()
        };
        Self::serve(config, clock).await
    }

    /// Starts a server over a new data folder whose listener speaks TLS
    /// (mTLS if `tls` has a client CA). Its [`TestServer::channel`] and
    /// friends are plaintext, so they fail against it: TLS clients come
    /// from the test.
    pub async fn start_tls(tls: authzd_client::tls::ServerTls) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let mut server = Self::serve_with(config, clock, Some(tls)).await;
        server._dir = Some(dir);
        server
    }

    async fn serve(config: Config, clock: Arc<ManualClock>) -> TestServer {
        Self::serve_to(config, clock, Arc::new(Callers::trust_all()), None).await
    }

    /// Serves with every caller trusted, speaking TLS if `tls` is given.
    async fn serve_with(
        config: Config,
        clock: Arc<ManualClock>,
        tls: Option<authzd_client::tls::ServerTls>,
    ) -> TestServer {
        Self::serve_to(config, clock, Arc::new(Callers::trust_all()), tls).await
    }

    async fn serve_to(
        config: Config,
        clock: Arc<ManualClock>,
        callers: Arc<Callers>,
        tls: Option<authzd_client::tls::ServerTls>,
    ) -> TestServer {
        let data = config.data_dir.clone();
        let service = Service::open_with_clock(config, clock).await.unwrap();
        let serving_service = service.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let edge = authzd_server::http::HttpEdge {
            listener: http_listener,
            cors_origins: vec![CORS_ORIGIN.to_owned()],
            playground: None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = callers.clone();
        let task = tokio::spawn(async move {
            authzd_server::serve_edges(
                serving_service,
                serving,
                listener,
                tls.as_ref(),
                None,
                Some(edge),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
        });
        TestServer {
            addr,
            http,
            data: data.to_path_buf(),
            callers,
            tokens_file: None,
            service,
            bearer: Bearer::default(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops the server gracefully and waits until it has let go of the store,
    /// keeping the data folder for a restart.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self._dir.take()
    }

    /// A connected channel to it that presents no token.
    pub async fn channel(&self) -> Channel {
        self.channel_with(|endpoint| endpoint).await
    }

    /// A connected channel to it that presents no token, with the HTTP/2
    /// settings every authzd client uses, then `adjust`ed.
    pub async fn channel_with(
        &self,
        adjust: impl FnOnce(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
    ) -> Channel {
        let endpoint = Channel::from_shared(format!("http://{}", self.addr)).unwrap();
        adjust(authzd_client::http2_windows(endpoint))
            .connect()
            .await
            .unwrap()
    }

    /// A channel presenting the harness's token (none without tokens).
    pub async fn authed(&self) -> Authed {
        InterceptedService::new(self.channel().await, self.bearer.clone())
    }
    /// Clients presenting `secret` ("" presents none).
    pub async fn clients_as(&self, secret: &str) -> Clients {
        let bearer = if secret.is_empty() {
            Bearer::default()
        } else {
            bearer(secret)
        };
        let ch = InterceptedService::new(self.channel().await, bearer);
        Clients {
            access: AccessServiceClient::new(ch.clone()),
            directory: DirectoryServiceClient::new(ch.clone()),
            membership: MembershipServiceClient::new(ch.clone()),
            schema: SchemaServiceClient::new(ch.clone()),
            audit: AuditServiceClient::new(ch.clone()),
            watch: WatchServiceClient::new(ch),
        }
    }

    /// A AccessService client presenting the harness's token.
    pub async fn access(&self) -> AccessServiceClient<Authed> {
        AccessServiceClient::new(self.authed().await)
    }
    /// A DirectoryService client presenting the harness's token.
    pub async fn directory(&self) -> DirectoryServiceClient<Authed> {
        DirectoryServiceClient::new(self.authed().await)
    }
    /// A MembershipService client presenting the harness's token.
    pub async fn membership(&self) -> MembershipServiceClient<Authed> {
        MembershipServiceClient::new(self.authed().await)
    }
    /// A SchemaService client presenting the harness's token.
    pub async fn schema(&self) -> SchemaServiceClient<Authed> {
        SchemaServiceClient::new(self.authed().await)
    }
    /// A WatchService client presenting the harness's token.
    pub async fn watch(&self) -> WatchServiceClient<Authed> {
        WatchServiceClient::new(self.authed().await)
    }
    /// A AuditService client presenting the harness's token.
    pub async fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::new(self.authed().await)
    }
}

/// One client of each service, over one channel presenting one token.
pub struct Clients {
    /// Checks and lookups.
    pub access: AccessServiceClient<Authed>,
    /// Subjects, groups, scopes, roles and settings.
    pub directory: DirectoryServiceClient<Authed>,
    /// Memberships and role assignments.
    pub membership: MembershipServiceClient<Authed>,
    /// The schema.
    pub schema: SchemaServiceClient<Authed>,
    /// The audit log.
    pub audit: AuditServiceClient<Authed>,
    /// The change feed.
    pub watch: WatchServiceClient<Authed>,
}

/// The principal that is subject `id`.
pub fn subject_principal(id: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Subject(id.into())),
    })
}

/// The principal that is group `id`.
pub fn group_principal(id: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Group(id.into())),
    })
}

/// The target that is scope `id`.
pub fn scope_target(id: &str) -> Option<pb::Target> {
    Some(pb::Target {
        kind: Some(pb::target::Kind::Scope(id.into())),
    })
}

/// The target that is group `id` as a population.
pub fn population_target(id: &str) -> Option<pb::Target> {
    Some(pb::Target {
        kind: Some(pb::target::Kind::Population(id.into())),
    })
}

/// The operation adding `member` to `group`, without a precondition.
pub fn add_member(group: &str, member: Option<pb::Principal>) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AddMember(
            pb::AddMember {
                group: group.into(),
                member,
                precondition: 0,
            },
        )),
    }
}

/// The operation removing `member` from `group`, without a precondition.
pub fn remove_member(group: &str, member: Option<pb::Principal>) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::RemoveMember(
            pb::RemoveMember {
                group: group.into(),
                member,
                precondition: 0,
            },
        )),
    }
}

/// The operation assigning `role` to `principal` at `target`, without an
/// expiry or a precondition.
pub fn assign(
    role: &str,
    principal: Option<pb::Principal>,
    target: Option<pb::Target>,
) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AssignRole(
            pb::AssignRole {
                role: role.into(),
                principal,
                target,
                expires_at: None,
                precondition: 0,
            },
        )),
    }
}

/// The operation removing `principal`'s `role` at `target`, without a
/// precondition.
pub fn unassign(
    role: &str,
    principal: Option<pb::Principal>,
    target: Option<pb::Target>,
) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::UnassignRole(
            pb::UnassignRole {
                role: role.into(),
                principal,
                target,
                precondition: 0,
            },
        )),
    }
}

/// The request creating subject `id` (user, active) in `tenant`.
pub fn new_subject(tenant: &str, id: &str) -> pb::CreateSubjectRequest {
    pb::CreateSubjectRequest {
        tenant: tenant.into(),
        subject: Some(pb::Subject {
            id: id.into(),
            ..Default::default()
        }),
        options: None,
    }
}

/// Creates a subject (user, active) and returns the write's revision.
pub async fn create_subject(server: &TestServer, tenant: &str, id: &str) -> u64 {
    let mut d = server.directory().await;
    d.create_subject(new_subject(tenant, id))
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Creates a scope under `parent` ("" for the root).
pub async fn create_scope(server: &TestServer, tenant: &str, id: &str, parent: &str) -> u64 {
    let mut d = server.directory().await;
    d.create_scope(pb::CreateScopeRequest {
        tenant: tenant.into(),
        scope: Some(pb::Scope {
            id: id.into(),
            r#type: "unit".into(),
            parent: parent.into(),
        }),
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Creates a group.
pub async fn create_group(server: &TestServer, tenant: &str, id: &str) -> u64 {
    let mut d = server.directory().await;
    d.create_group(pb::CreateGroupRequest {
        tenant: tenant.into(),
        group: Some(pb::Group {
            id: id.into(),
            title: id.into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Applies a membership batch and returns its revision.
pub async fn manage(
    server: &TestServer,
    tenant: &str,
    operations: Vec<pb::MembershipOperation>,
) -> u64 {
    let mut m = server.membership().await;
    m.manage_membership(pb::ManageMembershipRequest {
        tenant: tenant.into(),
        operations,
        options: None,
        dry_run: false,
    })
    .await
    .unwrap()
    .into_inner()
    .revision
}

/// Checks a permission at a scope ("" for the root).
pub async fn check(
    server: &TestServer,
    tenant: &str,
    subject: &str,
    permission: &str,
    scope: &str,
) -> bool {
    let mut a = server.access().await;
    a.check_access(pb::CheckAccessRequest {
        tenant: tenant.into(),
        subject: subject.into(),
        permission: permission.into(),
        scope: scope.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .allowed
}

// ---------------------------------------------------------------------------
// Shared assertions and helpers for every test file.

pub use tonic::Code;

/// The tenant most tests work in.
pub const ACME: &str = "acme";

/// A server with tenant acme holding subject alice, group g and scope eu.
pub async fn seeded_server() -> TestServer {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_group(&server, ACME, "g").await;
    create_scope(&server, ACME, "eu", "").await;
    server
}

/// Cases per property-based fuzz target: `AUTHZD_FUZZ_CASES` if set (CI's
/// fuzz step sets it high), else `default`, small enough for `cargo test`.
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("AUTHZD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Awaits `fut`, failing the test after 10 s. A guard against a hang, never
/// a way to wait for something to happen.
pub async fn guard<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(std::time::Duration::from_secs(10), fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Asserts that a call failed with `code` and that the message contains
/// `fragment` (the field or thing it names). Returns the status.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    fragment: &str,
) -> tonic::Status {
    match result {
        Ok(r) => panic!("expected {code:?} naming {fragment:?}, got success: {r:?}"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "wrong code; message: {:?}",
                status.message()
            );
            assert!(
                status.message().contains(fragment),
                "message {:?} does not name {fragment:?}",
                status.message()
            );
            status
        }
    }
}

/// The server's latest applied revision (ReadSchema reports it).
pub async fn revision(server: &TestServer) -> u64 {
    server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Creates a subject with a home scope ("" for the root).
pub async fn create_subject_at(server: &TestServer, tenant: &str, id: &str, home: &str) -> u64 {
    server
        .directory()
        .await
        .create_subject(pb::CreateSubjectRequest {
            tenant: tenant.into(),
            subject: Some(pb::Subject {
                id: id.into(),
                home_scope: home.into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Locks or unlocks a subject, touching nothing else of it.
pub async fn set_locked(server: &TestServer, tenant: &str, id: &str, locked: bool) -> u64 {
    let status = if locked {
        pb::SubjectStatus::Locked
    } else {
        pb::SubjectStatus::Active
    };
    server
        .directory()
        .await
        .update_subject(pb::UpdateSubjectRequest {
            tenant: tenant.into(),
            subject: Some(pb::Subject {
                id: id.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// A grant, optionally pinned to scopes.
pub fn grant(permission: &str, scopes: &[&str]) -> pb::Grant {
    pb::Grant {
        permission: permission.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

/// A custom role request body.
pub fn custom_role(id: &str, grants: Vec<pb::Grant>) -> pb::Role {
    pb::Role {
        id: id.into(),
        title: id.into(),
        grants,
        ..Default::default()
    }
}

/// Creates a custom role.
pub async fn create_role(
    server: &TestServer,
    tenant: &str,
    id: &str,
    grants: Vec<pb::Grant>,
) -> u64 {
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: tenant.into(),
            role: Some(custom_role(id, grants)),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Replaces a tenant's switched-off resource types.
pub async fn set_disabled(server: &TestServer, tenant: &str, disabled: &[&str]) -> u64 {
    server
        .directory()
        .await
        .update_tenant_settings(pb::UpdateTenantSettingsRequest {
            tenant: tenant.into(),
            settings: Some(pb::TenantSettings {
                disabled_resources: disabled.iter().map(|s| s.to_string()).collect(),
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// A check request at a scope ("" for the root).
pub fn check_request(
    tenant: &str,
    subject: &str,
    permission: &str,
    scope: &str,
) -> pb::CheckAccessRequest {
    pb::CheckAccessRequest {
        tenant: tenant.into(),
        subject: subject.into(),
        permission: permission.into(),
        scope: scope.into(),
        ..Default::default()
    }
}

/// Checks over a target subject.
pub async fn check_over(
    server: &TestServer,
    tenant: &str,
    subject: &str,
    permission: &str,
    target_subject: &str,
) -> bool {
    server
        .access()
        .await
        .check_access(pb::CheckAccessRequest {
            tenant: tenant.into(),
            subject: subject.into(),
            permission: permission.into(),
            target_subject: target_subject.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .allowed
}

/// An explained check at a scope: (allowed, explanation).
pub async fn explain(
    server: &TestServer,
    tenant: &str,
    subject: &str,
    permission: &str,
    scope: &str,
) -> (bool, pb::Explanation) {
    let reply = server
        .access()
        .await
        .check_access(pb::CheckAccessRequest {
            explain: true,
            ..check_request(tenant, subject, permission, scope)
        })
        .await
        .unwrap()
        .into_inner();
    (reply.allowed, reply.explanation.expect("explain was set"))
}

/// The denial reasons of an explanation.
pub fn reasons(e: &pb::Explanation) -> Vec<pb::DenialReason> {
    e.denials
        .iter()
        .map(|d| pb::DenialReason::try_from(d.reason).unwrap())
        .collect()
}

/// A timestamp `seconds` from now (negative: in the past).
pub fn from_now(seconds: i64) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    prost_types::Timestamp {
        seconds: i64::try_from(now.as_secs()).unwrap() + seconds,
        nanos: 0,
    }
}

/// An assignment that expires at `expires_at`.
pub fn assign_until(
    role: &str,
    principal: Option<pb::Principal>,
    target: Option<pb::Target>,
    expires_at: prost_types::Timestamp,
) -> pb::MembershipOperation {
    let mut op = assign(role, principal, target);
    if let Some(pb::membership_operation::Operation::AssignRole(a)) = op.operation.as_mut() {
        a.expires_at = Some(expires_at);
    }
    op
}

/// The same operation with a precondition.
pub fn with_precondition(
    mut op: pb::MembershipOperation,
    precondition: pb::Precondition,
) -> pb::MembershipOperation {
    use pb::membership_operation::Operation as Op;
    let p = precondition as i32;
    match op.operation.as_mut() {
        Some(Op::AddMember(m)) => m.precondition = p,
        Some(Op::RemoveMember(m)) => m.precondition = p,
        Some(Op::AssignRole(a)) => a.precondition = p,
        Some(Op::UnassignRole(u)) => u.precondition = p,
        Some(Op::ReplaceRoles(_) | Op::RemoveFromTarget(_)) | None => {
            panic!("bulk operations take no precondition")
        }
    }
    op
}

/// A membership batch request with options.
pub fn batch(
    tenant: &str,
    operations: Vec<pb::MembershipOperation>,
    options: Option<pb::WriteOptions>,
) -> pb::ManageMembershipRequest {
    pb::ManageMembershipRequest {
        tenant: tenant.into(),
        operations,
        options,
        dry_run: false,
    }
}

/// A group's direct members, rendered "subject:<id>" / "group:<id>".
pub async fn members(server: &TestServer, tenant: &str, group: &str) -> Vec<String> {
    server
        .directory()
        .await
        .list_group_members(pb::ListGroupMembersRequest {
            tenant: tenant.into(),
            group: group.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .members
        .iter()
        .map(principal_text)
        .collect()
}

/// "subject:<id>" or "group:<id>".
pub fn principal_text(p: &pb::Principal) -> String {
    match &p.kind {
        Some(pb::principal::Kind::Subject(s)) => format!("subject:{s}"),
        Some(pb::principal::Kind::Group(g)) => format!("group:{g}"),
        None => "none".into(),
    }
}

/// Every assignment of a tenant as "role principal target" lines.
pub async fn assignments(server: &TestServer, tenant: &str) -> Vec<String> {
    server
        .directory()
        .await
        .list_assignments(pb::ListAssignmentsRequest {
            tenant: tenant.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .assignments
        .iter()
        .map(assignment_text)
        .collect()
}

/// "role principal target", e.g. "editor subject:alice scope:eu".
pub fn assignment_text(a: &pb::Assignment) -> String {
    let target = match a.target.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(pb::target::Kind::Scope(s)) => format!("scope:{s}"),
        Some(pb::target::Kind::Population(g)) => format!("population:{g}"),
        None => "scope:root".into(),
    };
    let principal = a.principal.as_ref().map(principal_text).unwrap_or_default();
    format!("{} {principal} {target}", a.role)
}

/// The latest revision of the server at `channel` (as `ReadSchema` says).
pub async fn latest_over(channel: &Channel) -> u64 {
    SchemaServiceClient::new(channel.clone())
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Opens a Watch stream of `tenant` after `after_revision` over `channel`.
pub async fn watch_over(
    channel: &Channel,
    tenant: &str,
    after_revision: u64,
) -> tonic::Streaming<pb::WatchResponse> {
    WatchServiceClient::new(channel.clone())
        .watch(pb::WatchRequest {
            tenant: tenant.into(),
            after_revision,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Opens a Watch stream.
pub async fn watch(
    server: &TestServer,
    tenant: &str,
    after_revision: u64,
    subject: &str,
) -> tonic::Streaming<pb::WatchResponse> {
    server
        .watch()
        .await
        .watch(pb::WatchRequest {
            tenant: tenant.into(),
            after_revision,
            subject: subject.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The next message of a Watch stream (which must come, and not be an error).
pub async fn next_event(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    guard("a watch message", stream.message())
        .await
        .unwrap()
        .expect("the stream ended")
}

/// Every piece of the next revision on a Watch stream, up to the one marked
/// `revision_complete` (progress messages before it are skipped); asserts
/// they share one revision and are numbered from 0.
pub async fn next_revision(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> Vec<pb::WatchResponse> {
    let mut pieces: Vec<pb::WatchResponse> = Vec::new();
    loop {
        let m = next_event(stream).await;
        if m.progress && pieces.is_empty() {
            continue;
        }
        assert!(!m.progress, "a progress message inside a revision: {m:?}");
        if let Some(first) = pieces.first() {
            assert_eq!(m.revision, first.revision, "a revision left incomplete");
        }
        assert_eq!(m.part as usize, pieces.len(), "pieces out of order");
        let complete = m.revision_complete;
        pieces.push(m);
        if complete {
            return pieces;
        }
    }
}

/// The next revision on a Watch stream as one message: its pieces'
/// changes and permission changes joined in order.
pub async fn next_whole_revision(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
) -> pb::WatchResponse {
    let mut pieces = next_revision(stream).await.into_iter();
    let mut whole = pieces.next().expect("a revision has a piece");
    for piece in pieces {
        whole.changes.extend(piece.changes);
        whole.permission_changes.extend(piece.permission_changes);
        whole.part = piece.part;
        whole.revision_complete = piece.revision_complete;
    }
    whole
}

/// Creates `n` subjects named `{prefix}{i:05}` (a few writes in flight at a
/// time) and adds them to a new group `group` in batches as large as the
/// server takes; returns them and the last revision.
pub async fn seed_group(
    server: &TestServer,
    tenant: &str,
    group: &str,
    n: usize,
    prefix: &str,
) -> (Vec<String>, u64) {
    const IN_FLIGHT: usize = 32;
    let subjects: Vec<String> = (0..n).map(|i| format!("{prefix}{i:05}")).collect();
    let directory = server.directory().await;
    for chunk in subjects.chunks(IN_FLIGHT) {
        let mut writes = tokio::task::JoinSet::new();
        for id in chunk {
            let mut d = directory.clone();
            let request = pb::CreateSubjectRequest {
                tenant: tenant.into(),
                subject: Some(pb::Subject {
                    id: id.clone(),
                    ..Default::default()
                }),
                options: None,
            };
            writes.spawn(async move { d.create_subject(request).await.unwrap() });
        }
        while let Some(done) = writes.join_next().await {
            done.unwrap();
        }
    }
    let mut last = create_group(server, tenant, group).await;
    for chunk in subjects.chunks(authzd_core::limits::MAX_BATCH_OPERATIONS) {
        let operations = chunk
            .iter()
            .map(|s| add_member(group, subject_principal(s)))
            .collect();
        last = manage(server, tenant, operations).await;
    }
    (subjects, last)
}

/// Sets the roles of `principals` at `target` to exactly `roles`.
pub fn replace_roles(
    principals: Vec<Option<pb::Principal>>,
    target: Option<pb::Target>,
    roles: &[&str],
) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::ReplaceRoles(
            pb::ReplaceRoles {
                principals: principals.into_iter().flatten().collect(),
                target,
                roles: roles.iter().map(|r| r.to_string()).collect(),
                expires_at: None,
            },
        )),
    }
}

/// Removes `principals` from `target` (and every scope below it).
pub fn remove_from_target(
    principals: Vec<Option<pb::Principal>>,
    target: Option<pb::Target>,
) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::RemoveFromTarget(
            pb::RemoveFromTarget {
                principals: principals.into_iter().flatten().collect(),
                target,
            },
        )),
    }
}

// ---------------------------------------------------------------------------
// Helpers for the product scenarios (tests/scenario_*.rs): actors, checks
// over a target subject with their explanation, holders, assignments at a
// target, attributes.

/// A membership batch written on behalf of `actor`.
pub fn actor_batch(
    tenant: &str,
    actor: &str,
    operations: Vec<pb::MembershipOperation>,
) -> pb::ManageMembershipRequest {
    batch(
        tenant,
        operations,
        Some(pb::WriteOptions {
            actor: actor.into(),
            ..Default::default()
        }),
    )
}

/// Sends a membership batch (system write when `actor` is empty) and
/// returns the raw result, for asserting refusals.
pub async fn try_manage(
    server: &TestServer,
    tenant: &str,
    actor: &str,
    operations: Vec<pb::MembershipOperation>,
) -> Result<tonic::Response<pb::ManageMembershipResponse>, tonic::Status> {
    server
        .membership()
        .await
        .manage_membership(actor_batch(tenant, actor, operations))
        .await
}

/// Creates a subject from a full record (kind, attributes, home scope).
pub async fn put_subject(server: &TestServer, tenant: &str, subject: pb::Subject) -> u64 {
    server
        .directory()
        .await
        .create_subject(pb::CreateSubjectRequest {
            tenant: tenant.into(),
            subject: Some(subject),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Creates a scope of `kind` under `parent` ("" for the root).
pub async fn create_typed_scope(
    server: &TestServer,
    tenant: &str,
    id: &str,
    kind: &str,
    parent: &str,
) -> u64 {
    server
        .directory()
        .await
        .create_scope(pb::CreateScopeRequest {
            tenant: tenant.into(),
            scope: Some(pb::Scope {
                id: id.into(),
                r#type: kind.into(),
                parent: parent.into(),
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Replaces one attribute set of a subject (the whole map), touching
/// nothing else of it.
pub async fn set_attributes(
    server: &TestServer,
    tenant: &str,
    id: &str,
    attributes: &[(&str, &str)],
) -> u64 {
    server
        .directory()
        .await
        .update_subject(pb::UpdateSubjectRequest {
            tenant: tenant.into(),
            subject: Some(pb::Subject {
                id: id.into(),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["attributes".into()],
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// An explained check over a target subject: (allowed, explanation).
pub async fn explain_over(
    server: &TestServer,
    tenant: &str,
    subject: &str,
    permission: &str,
    target_subject: &str,
) -> (bool, pb::Explanation) {
    de::explained(server, tenant, subject, permission, "", target_subject).await
}

/// Every denial detail of an explanation, joined by " | " for one assertion.
pub fn details(e: &pb::Explanation) -> String {
    e.denials
        .iter()
        .map(|d| d.detail.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The holders of `permission` at `scope` ("" for the root), first page of
/// up to 1000.
pub async fn holders_at(
    server: &TestServer,
    tenant: &str,
    permission: &str,
    scope: &str,
) -> Vec<pb::Holder> {
    server
        .access()
        .await
        .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
            tenant: tenant.into(),
            permission: permission.into(),
            scope: scope.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .holders
}

/// A subject's effective permissions per target: at every target where it
/// holds something when `scope` is empty, else at `scope`.
pub async fn effective_targets(
    server: &TestServer,
    tenant: &str,
    subject: &str,
    scope: &str,
) -> Vec<pb::EffectiveTarget> {
    server
        .access()
        .await
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: tenant.into(),
            subject: subject.into(),
            scope: scope.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .targets
}

/// The assignments at exactly `target`, as "role principal target" lines.
pub async fn assignments_at(
    server: &TestServer,
    tenant: &str,
    target: Option<pb::Target>,
) -> Vec<String> {
    server
        .directory()
        .await
        .list_assignments(pb::ListAssignmentsRequest {
            tenant: tenant.into(),
            target,
            page: Some(pb::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .assignments
        .iter()
        .map(assignment_text)
        .collect()
}

// ---------------------------------------------------------------------------
// Helpers for scenarios D and E (tests/scenario_workforce_dual.rs,
// tests/scenario_commerce_groups.rs, tests/import.rs), in their own module so
// that their names never collide with other helper blocks.
/// Helpers of the workforce and commerce scenarios and of import tests.
pub mod de {
    use super::{TestServer, pb};

    /// The path of `examples/<name>/<file>`.
    pub fn example(name: &str, file: &str) -> std::path::PathBuf {
        crate::workspace_root()
            .join("examples")
            .join(name)
            .join(file)
    }

    /// Starts a server with `examples/<name>/schema.toml`.
    pub async fn start_example(name: &str) -> TestServer {
        TestServer::start_with_schema(&example(name, "schema.toml")).await
    }

    /// Starts a server with the built-in schema over a data folder in
    /// /dev/shm when there is one, for tests that make a thousand writes:
    /// each write is fsynced, which on a disk costs milliseconds. Keep the
    /// folder until the server has stopped.
    pub async fn start_in_memory_folder() -> (TestServer, tempfile::TempDir) {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let server = TestServer::start_at(dir.path(), None).await;
        (server, dir)
    }

    /// Sends a membership batch as a system write and returns the raw result,
    /// for asserting refusals.
    pub async fn manage_result(
        server: &TestServer,
        tenant: &str,
        operations: Vec<pb::MembershipOperation>,
    ) -> Result<tonic::Response<pb::ManageMembershipResponse>, tonic::Status> {
        server
            .membership()
            .await
            .manage_membership(pb::ManageMembershipRequest {
                tenant: tenant.into(),
                operations,
                options: None,
                dry_run: false,
            })
            .await
    }

    /// Creates a custom role of `class` ("" for none) with unpinned grants.
    pub async fn create_class_role(
        server: &TestServer,
        tenant: &str,
        id: &str,
        title: &str,
        class: &str,
        grants: &[&str],
    ) -> u64 {
        server
            .directory()
            .await
            .create_role(pb::CreateRoleRequest {
                tenant: tenant.into(),
                role: Some(pb::Role {
                    id: id.into(),
                    title: title.into(),
                    class: class.into(),
                    grants: grants
                        .iter()
                        .map(|g| pb::Grant {
                            permission: g.to_string(),
                            scopes: vec![],
                        })
                        .collect(),
                    ..Default::default()
                }),
                options: None,
            })
            .await
            .unwrap()
            .into_inner()
            .revision
    }

    /// Moves a subject to another home scope, touching nothing else of it.
    pub async fn move_home(server: &TestServer, tenant: &str, id: &str, home: &str) -> u64 {
        server
            .directory()
            .await
            .update_subject(pb::UpdateSubjectRequest {
                tenant: tenant.into(),
                subject: Some(pb::Subject {
                    id: id.into(),
                    home_scope: home.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["home_scope".into()],
                }),
                options: None,
            })
            .await
            .unwrap()
            .into_inner()
            .revision
    }

    /// An explained check at a scope ("") or over a target subject.
    pub async fn explained(
        server: &TestServer,
        tenant: &str,
        subject: &str,
        permission: &str,
        scope: &str,
        target_subject: &str,
    ) -> (bool, pb::Explanation) {
        let reply = server
            .access()
            .await
            .check_access(pb::CheckAccessRequest {
                tenant: tenant.into(),
                subject: subject.into(),
                permission: permission.into(),
                scope: scope.into(),
                target_subject: target_subject.into(),
                explain: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        (reply.allowed, reply.explanation.expect("explain was set"))
    }

    /// Every denial as "REASON: detail", one per line, for one assertion.
    pub fn denial_text(e: &pb::Explanation) -> String {
        e.denials
            .iter()
            .map(|d| {
                let reason = pb::DenialReason::try_from(d.reason)
                    .map_or("?".to_string(), |r| r.as_str_name().to_string());
                format!("{reason}: {}", d.detail)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The holders of a permission at a scope ("" for the root), at least at
    /// `revision`, as subject ids in order.
    pub async fn holder_ids(
        server: &TestServer,
        tenant: &str,
        permission: &str,
        scope: &str,
        revision: u64,
    ) -> Vec<String> {
        server
            .access()
            .await
            .list_subjects_with_permission(pb::ListSubjectsWithPermissionRequest {
                tenant: tenant.into(),
                permission: permission.into(),
                scope: scope.into(),
                page_size: 1000,
                at_least_revision: revision,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .holders
            .into_iter()
            .map(|h| h.subject)
            .collect()
    }

    /// The permissions a subject holds at exactly `scope` ("" for the root).
    pub async fn effective_names(
        server: &TestServer,
        tenant: &str,
        subject: &str,
        scope: &str,
    ) -> Vec<String> {
        let reply = server
            .access()
            .await
            .list_effective_permissions(pb::ListEffectivePermissionsRequest {
                tenant: tenant.into(),
                subject: subject.into(),
                scope: if scope.is_empty() {
                    "root".into()
                } else {
                    scope.into()
                },
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        reply
            .targets
            .into_iter()
            .flat_map(|t| t.permissions)
            .map(|p| p.permission)
            .collect()
    }

    /// Checks many permissions at once for one subject at a scope; the
    /// answers in order.
    pub async fn batch_allowed(
        server: &TestServer,
        tenant: &str,
        subject: &str,
        permissions: &[&str],
        scope: &str,
    ) -> Vec<bool> {
        server
            .access()
            .await
            .batch_check_access(pb::BatchCheckAccessRequest {
                tenant: tenant.into(),
                checks: permissions
                    .iter()
                    .map(|p| pb::CheckItem {
                        subject: subject.into(),
                        permission: p.to_string(),
                        scope: scope.into(),
                        target_subject: String::new(),
                    })
                    .collect(),
                at_least_revision: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.allowed)
            .collect()
    }
}

/// A schema of `n` roles over one type of `n` actions, for hostile-input
/// tests: role `i` grants action `i` and requires the actions of the roles
/// `(i + k) % n` for each `k` in `steps` (each once).
pub fn requiring_roles(n: usize, steps: &[usize]) -> String {
    let mut text = String::from("[resources.p]\nactions = [");
    for i in 0..n {
        text.push_str(&format!("\"a{i}\", "));
    }
    text.push_str("]\n");
    for i in 0..n {
        text.push_str(&format!(
            "[roles.r{i}]\ngrants = [\"p:a{i}\"]\nrequires = ["
        ));
        let required: std::collections::BTreeSet<usize> =
            steps.iter().map(|k| (i + k) % n).collect();
        for r in required {
            text.push_str(&format!("\"p:a{r}\", "));
        }
        text.push_str("]\n");
    }
    text
}

/// Runs the real `authzd` binary with `args`, off the async workers, with
/// no `AUTHZD_ADDR` or `AUTHZD_TENANT` from the environment.
pub async fn run_cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::authzd_binary())
            .args(&args)
            .env_remove("AUTHZD_ADDR")
            .env_remove("AUTHZD_TENANT")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}
