//! The command line: `serve`, `migrate`, `schema check`, `schema test`,
//! `import`, `export`, `backup`, `restore`, the query commands (`check`, `who`,
//! `what`, `watch`), `token new`, the `--config` file, and how the binary
//! logs. Parses arguments into a validated [`Config`]; must not reach a
//! store but through the service (`migrate` alone runs the PostgreSQL
//! store's migrations), nor hold rules of the model.

pub mod backup;
pub mod config_file;
pub mod import;
pub mod logs;
pub mod migrate;
pub mod query;
pub mod restore;
pub mod schema_remote;
pub mod schema_test;
pub mod serve;
pub mod tenant_file;
pub mod tls;
pub mod write;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use authzd_core::model::TenantId;
use authzd_core::schema;
use authzd_service::auth;
use authzd_service::config::{Config, Follow, SharedStore};

/// authzd: a gRPC RBAC authorization service.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// How logs are written to stderr: text (coloured only on a terminal)
    /// or json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = logs::LogFormat::Text)]
    pub log_format: logs::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(Box<ServeArgs>),
    /// Work with schema files.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Import subjects and their group memberships from a CSV file into a
    /// running server.
    Import(import::ImportArgs),
    /// Work with caller tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy a running server's store, consistently at one revision, into a
    /// data folder `serve --data` opens.
    Backup(backup::BackupArgs),
    /// Bring a PostgreSQL database's authzd schema to this build's version
    /// (what `serve --store` does at start) and exit; `--check` only says
    /// the version found and what is pending.
    Migrate(migrate::MigrateArgs),
    /// Put a backup in place as a data folder: checked (format, revision,
    /// tenants), copied beside it, fsynced, renamed in.
    Restore(restore::RestoreArgs),
    /// Write a tenant of a running server as JSON (for `authzd import`).
    Export(tenant_file::ExportArgs),
    /// Ask a running server (check, who, what, watch).
    #[command(flatten)]
    Query(query::QueryCommand),
    /// Write to a running server (subject, group, scope, member, role).
    #[command(flatten)]
    Write(write::WriteCommand),
}

/// `authzd serve`. Every flag can also be given as an `AUTHZD_*`
/// environment variable or a key of the `--config` file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of settings: keys are these flags without the dashes.
    /// Precedence: the command line, then the environment, then the file,
    /// then the defaults.
    #[arg(long, env = "AUTHZD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on: IP:PORT or HOST:PORT (a name is resolved
    /// once, at start; see `listen_address`).
    #[arg(long, env = "AUTHZD_LISTEN", default_value = "127.0.0.1:50051", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Folder for the data file (created if missing).
    #[arg(long, env = "AUTHZD_DATA", default_value = "./authzd-data")]
    pub data: PathBuf,
    /// Keep the data in a PostgreSQL database shared with other authzd
    /// nodes instead of --data: `postgres://USER@HOST:PORT/DB` (URL
    /// parameters such as `sslmode=require` apply). Give the password in
    /// AUTHZD_STORE, the --config file or PGPASSWORD rather than on the
    /// command line, where other users' `ps` shows it.
    #[arg(
        long,
        env = "AUTHZD_STORE",
        value_name = "URL",
        conflicts_with = "follow"
    )]
    pub store: Option<String>,
    /// With --store: most connections the node opens to the database
    /// (besides its one LISTEN connection).
    #[arg(long, env = "AUTHZD_STORE_POOL_SIZE", default_value_t = authzd_store_postgres::DEFAULT_POOL_SIZE)]
    pub store_pool_size: usize,
    /// With --store: seconds opening a database connection (or waiting for
    /// a free one) may take before the call fails with UNAVAILABLE.
    #[arg(long, env = "AUTHZD_STORE_CONNECT_TIMEOUT_SECS", default_value_t = authzd_store_postgres::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub store_connect_timeout_secs: u64,
    /// With --store: seconds the database lets one statement run
    /// (PostgreSQL's statement_timeout).
    #[arg(long, env = "AUTHZD_STORE_STATEMENT_TIMEOUT_SECS", default_value_t = authzd_store_postgres::DEFAULT_STATEMENT_TIMEOUT.as_secs())]
    pub store_statement_timeout_secs: u64,
    /// With --store: milliseconds between reads of the database's head, the
    /// backstop when a commit notification (LISTEN/NOTIFY) is lost.
    #[arg(long, env = "AUTHZD_STORE_POLL_MILLIS", default_value_t = u64::try_from(authzd_store_postgres::DEFAULT_POLL_INTERVAL.as_millis()).unwrap_or(u64::MAX))]
    pub store_poll_millis: u64,
    /// With --store: do not apply schema migrations at start; refuse a
    /// database that is not at this build's version instead (apply them
    /// with `authzd migrate`, e.g. with a role allowed to change tables).
    #[arg(long, env = "AUTHZD_STORE_SKIP_MIGRATIONS")]
    pub store_skip_migrations: bool,
    /// Schema file to install at start-up. Without it the stored schema is
    /// kept, or a new store gets the built-in example schema.
    #[arg(long, env = "AUTHZD_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Committed change sets kept for Watch subscribers that are behind.
    #[arg(long, env = "AUTHZD_FEED_CAPACITY", default_value_t = Config::default().feed_capacity)]
    pub feed_capacity: usize,
    /// Most messages a Watch stream hands its transport in one go.
    #[arg(long, env = "AUTHZD_SUBSCRIBER_BUFFER", default_value_t = Config::default().subscriber_buffer)]
    pub subscriber_buffer: usize,
    /// MiB that every Watch stream together may hold in messages handed to
    /// its transport and replay pages; when full, the subscribers furthest behind are
    /// ended first (RESOURCE_EXHAUSTED, naming the revision to resume after).
    #[arg(long, env = "AUTHZD_WATCH_MEMORY_MIB", default_value_t = Config::default().watch_memory >> 20)]
    pub watch_memory_mib: usize,
    /// Seconds of idleness after which a Watch subscriber gets a progress event.
    #[arg(long, env = "AUTHZD_PROGRESS_INTERVAL_SECS", default_value_t = Config::default().progress_interval.as_secs())]
    pub progress_interval_secs: u64,
    /// Change sets the changelog keeps at least (older ones are pruned).
    #[arg(long, env = "AUTHZD_RETAIN_REVISIONS", default_value_t = Config::default().retain_revisions)]
    pub retain_revisions: u64,
    /// Writes waiting for the write sequencer at most; more are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "AUTHZD_WRITE_QUEUE", default_value_t = Config::default().write_queue)]
    pub write_queue: usize,
    /// Caller tokens (TOML `[[token]]` entries; re-read on SIGHUP). Without
    /// it every caller is trusted, and only loopback is served.
    #[arg(long, env = "AUTHZD_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Serve a non-loopback address without --tokens (every caller that
    /// reaches the port is trusted as an administrator).
    #[arg(long, env = "AUTHZD_INSECURE")]
    pub insecure: bool,
    /// Unary requests one token may have in progress; more are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "AUTHZD_TOKEN_MAX_REQUESTS", default_value_t = Config::default().token_requests)]
    pub token_max_requests: usize,
    /// Watch streams one token may have open; more are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "AUTHZD_TOKEN_MAX_WATCHES", default_value_t = Config::default().token_watches)]
    pub token_max_watches: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP; keep
    /// it on loopback or a private network). Off unless given.
    #[arg(long, env = "AUTHZD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the HTTP/JSON API (every RPC as POST /authzd.v1.<Service>/<Method>,
    /// GET /openapi.json) on this address, with the same tokens, limits
    /// and TLS files as gRPC. Off unless given. See docs/http.md.
    #[arg(long, env = "AUTHZD_HTTP_LISTEN", value_parser = listen_address)]
    pub http_listen: Option<SocketAddr>,
    /// Origins (comma-separated, exact: `https://console.example.com`)
    /// whose pages may call the HTTP/JSON API. None unless given.
    #[arg(
        long,
        env = "AUTHZD_HTTP_CORS_ORIGINS",
        value_delimiter = ',',
        requires = "http_listen"
    )]
    pub http_cors_origins: Vec<String>,
    /// Export OpenTelemetry traces (a span per RPC) over OTLP/gRPC to
    /// this collector: an http:// or https:// URL (https verifies it
    /// against the system's CAs). Off unless given.
    #[arg(long, env = "AUTHZD_OTLP_ENDPOINT", value_name = "URL", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
    /// Days the audit trail keeps an entry (at least 1), independently of
    /// the changelog's retention.
    #[arg(long, env = "AUTHZD_AUDIT_RETAIN_DAYS", default_value_t = Config::default().audit_retention.as_secs() / 86_400)]
    pub audit_retain_days: u64,
    /// Seconds calls in progress at shutdown (SIGTERM, SIGINT) may take to
    /// finish before the server exits anyway.
    #[arg(long, env = "AUTHZD_SHUTDOWN_GRACE_SECS", default_value_t = Config::default().shutdown_grace.as_secs())]
    pub shutdown_grace_secs: u64,
    /// TLS and mTLS.
    #[command(flatten)]
    pub tls: tls::ServeTlsArgs,
    /// Run as a read replica of the primary at this address (`HOST:PORT`,
    /// or an `http://` / `https://` URL): bootstrap from its snapshot,
    /// follow its changes, answer reads locally, forward writes to it.
    #[arg(long, env = "AUTHZD_FOLLOW", conflicts_with = "schema")]
    pub follow: Option<String>,
    /// Hold only this tenant of the primary (repeat for several); others
    /// are NOT_FOUND here. [default: every tenant the follow token sees]
    /// (Repeatable, so not an environment variable: give a list in the
    /// --config file instead.)
    #[arg(long, requires = "follow")]
    pub follow_tenant: Vec<TenantId>,
    /// The secret (a read token of the primary) this replica follows with.
    /// Forwarded writes carry their caller's own token.
    #[arg(long, env = "AUTHZD_FOLLOW_TOKEN_FILE", requires = "follow")]
    pub follow_token_file: Option<PathBuf>,
    /// Verify the primary's certificate against the CAs in this PEM bundle,
    /// and speak TLS to it.
    #[arg(long, env = "AUTHZD_FOLLOW_TLS_CA", requires = "follow")]
    pub follow_tls_ca: Option<PathBuf>,
    /// On a replica: seconds behind the primary past which health reports
    /// NOT_SERVING (so a load balancer takes a stale sidecar out). With
    /// --store: seconds since the node last had every revision of the
    /// database applied (it cannot reach the database, or is not catching
    /// up) past which health reports NOT_SERVING.
    #[arg(long, env = "AUTHZD_MAX_LAG_SECS", default_value_t = authzd_core::limits::DEFAULT_MAX_LAG.as_secs())]
    pub max_lag_secs: u64,
}

/// The address `--listen` names. A host name is resolved once; the server
/// listens on one of its addresses: a non-loopback one if there is any, so
/// that a name counts as loopback (servable without tokens) only when every
/// address it resolves to is loopback.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text}: {e}; give HOST:PORT or IP:PORT"))?
        .collect();
    addrs
        .iter()
        .find(|a| !a.ip().is_loopback())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// An OTLP/gRPC collector's URL: `http://` or `https://`, a host, an
/// optional port, and no path (gRPC names its own).
fn otlp_endpoint(text: &str) -> Result<String, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("not a URL ({e}); give http://HOST:PORT or https://HOST:PORT"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("the URL must start with http:// or https://".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("the URL must have no path: the collector's gRPC service names its own".into());
    }
    Ok(text.to_string())
}

impl ServeArgs {
    /// The runtime settings these arguments describe.
    pub fn config(&self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.data.clone(),
            store: self.store.as_ref().map(|url| SharedStore {
                url: url.clone(),
                options: authzd_store_postgres::Options {
                    pool_size: self.store_pool_size.max(1),
                    connect_timeout: std::time::Duration::from_secs(
                        self.store_connect_timeout_secs.max(1),
                    ),
                    statement_timeout: std::time::Duration::from_secs(
                        self.store_statement_timeout_secs.max(1),
                    ),
                    poll_interval: std::time::Duration::from_millis(self.store_poll_millis.max(10)),
                    listen: true,
                    migrate: !self.store_skip_migrations,
                },
                max_lag: std::time::Duration::from_secs(self.max_lag_secs.max(1)),
            }),
            schema: self.schema.clone(),
            feed_capacity: self.feed_capacity.max(1),
            subscriber_buffer: self.subscriber_buffer.max(1),
            watch_memory: self.watch_memory_mib.clamp(1, 1 << 30) << 20,
            watch_piece_bytes: Config::default().watch_piece_bytes,
            progress_interval: std::time::Duration::from_secs(self.progress_interval_secs.max(1)),
            retain_revisions: self.retain_revisions.max(1),
            write_queue: self.write_queue.max(1),
            tokens: self.tokens.clone(),
            insecure: self.insecure,
            token_requests: self.token_max_requests.max(1),
            token_watches: self.token_max_watches.max(1),
            metrics_listen: self.metrics_listen,
            http_listen: self.http_listen,
            http_cors_origins: self.http_cors_origins.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
            audit_retention: std::time::Duration::from_secs(
                self.audit_retain_days
                    .clamp(1, 100 * 365)
                    .saturating_mul(86_400),
            ),
            follow: self.follow.as_ref().map(|primary| Follow {
                primary: primary.clone(),
                tenants: self.follow_tenant.clone(),
                max_lag: std::time::Duration::from_secs(self.max_lag_secs.max(1)),
            }),
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    /// How to reach the primary of a replica, if this is one: its files
    /// read and checked now.
    pub fn primary(&self) -> Option<Result<authzd_client::Remote, authzd_client::ClientError>> {
        let target = self.follow.as_ref()?;
        let args = authzd_client::ClientArgs {
            tls_ca: self.follow_tls_ca.clone(),
            token_file: self.follow_token_file.clone(),
            ..authzd_client::ClientArgs::default()
        };
        Some(authzd_client::Remote::new(target, &args))
    }
}

/// `authzd schema ...`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Validate a schema file and report every error with its line and key.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the built-in example schema.
    Default,
    /// Run a schema test: a TOML file naming a schema, seed data and
    /// allow/deny assertions (see docs/schema.md). Exits non-zero if any fails.
    Test {
        /// The test file.
        file: PathBuf,
    },
    /// Print a running server's schema.
    Read {
        /// The server and the output form.
        #[command(flatten)]
        remote: schema_remote::RemoteArgs,
    },
    /// Install a schema file on a running server (or, with --dry-run, only
    /// validate it there).
    Write {
        /// The file and how to write it.
        #[command(flatten)]
        write: schema_remote::SchemaWriteArgs,
        /// The server and the output form.
        #[command(flatten)]
        remote: schema_remote::RemoteArgs,
    },
    /// Show how a schema file differs from a running server's; exits 1 if
    /// it does.
    Diff {
        /// The file.
        file: PathBuf,
        /// The server and the output form.
        #[command(flatten)]
        remote: schema_remote::RemoteArgs,
    },
}

/// Runs `authzd schema ...`: prints the outcome, returns whether it succeeded.
pub fn schema_command(command: &SchemaCommand) -> bool {
    match command {
        SchemaCommand::Check { file } => match schema::load_file(file) {
            Ok(catalog) => {
                println!(
                    "{}: ok ({} permissions, {} builtin roles)",
                    file.display(),
                    catalog.len(),
                    catalog.roles().len()
                );
                true
            }
            Err(e) => {
                eprintln!("{e}");
                false
            }
        },
        SchemaCommand::Default => {
            print!("{}", schema::DEFAULT_SCHEMA);
            true
        }
        SchemaCommand::Test { file } => on_runtime(schema_test::command(file)),
        SchemaCommand::Read { remote } => on_runtime(reported(schema_remote::read(remote))),
        SchemaCommand::Write { write, remote } => {
            on_runtime(reported(schema_remote::write(remote, write)))
        }
        SchemaCommand::Diff { file, remote } => {
            on_runtime(reported(schema_remote::diff(remote, file)))
        }
    }
}

/// Runs `task` on a new runtime; false (said why) if none starts.
fn on_runtime(task: impl std::future::Future<Output = bool>) -> bool {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            false
        }
    }
}

/// The outcome of a remote schema command, its error printed.
async fn reported(outcome: impl std::future::Future<Output = Result<bool, String>>) -> bool {
    outcome.await.unwrap_or_else(|e| {
        eprintln!("{e}");
        false
    })
}

/// `authzd token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token: the `[[token]]` entry holding its digest goes to
    /// standard output (`>> tokens.toml` appends it), the secret, shown only
    /// now, to standard error or --secret-file.
    New {
        /// The token's name, shown in logs and the audit trail.
        #[arg(long)]
        name: String,
        /// What it may do: read, write or admin.
        #[arg(long)]
        kind: auth::Kind,
        /// The only tenant it may touch.
        #[arg(long)]
        tenant: Option<String>,
        /// Write the secret to this new file (readable by its owner only)
        /// instead of standard error.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

/// Runs `authzd token ...`: prints the outcome, returns whether it succeeded.
pub fn token_command(command: &TokenCommand) -> bool {
    let TokenCommand::New {
        name,
        kind,
        tenant,
        secret_file,
    } = command;
    let made = match auth::new_token(name, *kind, tenant.as_deref()) {
        Ok(made) => made,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    match secret_file {
        Some(path) => {
            if let Err(e) = write_secret(path, &made.secret) {
                eprintln!("{}: {e}", path.display());
                return false;
            }
            eprintln!("the secret is in {}, shown nowhere else", path.display());
        }
        None => {
            eprintln!("# The secret, shown only now: give it to the caller as");
            eprintln!("# `authorization: Bearer <secret>`; the server keeps only its digest.");
            eprintln!("{}", made.secret);
        }
    }
    print!("{}", made.entry);
    true
}

/// Writes `secret` to a file that must not exist yet, readable and
/// writable by its owner only.
fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

/// The callers a server with `config` trusts: its tokens file, read and
/// validated, or (refused beyond loopback unless `insecure`) everyone.
/// Logs why it refuses, and warns when every caller is trusted.
pub fn callers(config: &Config) -> Option<std::sync::Arc<auth::Callers>> {
    let exposure = match auth::exposure(config.listen, config.tokens.is_some(), config.insecure) {
        Ok(e) => e,
        Err(reason) => {
            tracing::error!("{reason}");
            return None;
        }
    };
    let callers = match &config.tokens {
        Some(file) => match auth::Callers::load(file, config.into()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the tokens file");
                return None;
            }
        },
        None => auth::Callers::trust_all(),
    };
    match exposure {
        auth::Exposure::Tokens => {
            tracing::info!(
                tokens = callers.len(),
                "callers authenticate with bearer tokens"
            );
        }
        auth::Exposure::Loopback => tracing::warn!(
            listen = %config.listen,
            "no --tokens: every caller that reaches this loopback address is trusted as an administrator"
        ),
        auth::Exposure::Insecure => tracing::warn!(
            listen = %config.listen,
            "no --tokens and --insecure: every caller that reaches this address is trusted as an administrator"
        ),
    }
    Some(std::sync::Arc::new(callers))
}

/// Re-reads the tokens file on every SIGHUP, for as long as the process
/// runs; an invalid file keeps the tokens in force, and the log says why.
pub async fn reload_on_hangup(callers: std::sync::Arc<auth::Callers>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if !callers.configured() {
            return;
        }
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; tokens will not be reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match callers.reload() {
                Ok(count) => tracing::info!(tokens = count, "tokens reloaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "tokens not reloaded; the previous tokens stay in force");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = callers;
}

/// `n` and the noun, plural unless `n` is 1 ("1 group", "2 groups",
/// "3 entries").
pub fn count<N>(n: N, noun: &str) -> String
where
    N: std::fmt::Display + PartialEq + From<u8>,
{
    if n == N::from(1) {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) => format!("{n} {stem}ies"),
        None => format!("{n} {noun}s"),
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
    use super::*;
    use clap::CommandFactory;

    /// Every `serve` flag has its `AUTHZD_*` variable, named after it (the
    /// docs/configuration.md promises it), but the repeatable `--follow-tenant`.
    #[test]
    fn every_serve_flag_has_its_environment_variable() {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        let mut checked = 0;
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "log-format" | "follow-tenant") {
                continue;
            }
            let expected = format!("AUTHZD_{}", long.replace('-', "_").to_uppercase());
            let env = arg.get_env().and_then(|e| e.to_str());
            assert_eq!(env, Some(expected.as_str()), "--{long}");
            checked += 1;
        }
        assert!(checked > 20, "{checked} flags");
    }
}
