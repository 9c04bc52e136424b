//! The PostgreSQL backend of authzd's store: the only crate that names a
//! SQL driver. Several authzd nodes share one database; any of them
//! writes, and each follows the others' commits.
//!
//! - **Revisions** come from one counter row (`authzd_meta`), advanced in
//!   the same transaction as the group's records, changelog entries,
//!   commit id, idempotency keys and audit entries. Not a sequence (its
//!   numbers become visible out of order, so a follower could pass a
//!   revision it never saw) and not xid8: commits are serialized by the
//!   row lock, so revision `n + 1` becomes visible only after `n`. The
//!   lock is taken last, by a statement sent with the rest of the group
//!   and `COMMIT`; the database fills the revisions in under it.
//! - **Conflicts per tenant**: a group first locks its tenants' head rows
//!   (`authzd_tenant_heads`; a store-wide group, the whole table and the
//!   counter) and compares them with its base: planned on a stale base, it
//!   gets [`StoreError::Conflict`] and writes nothing. Writers of other
//!   tenants pass by. A writer that lost several times reserves its
//!   tenants before planning again (`Datastore::reserve`): the locks are
//!   then taken first, so its next commit cannot lose.
//! - **Following**: the write transaction calls `pg_notify` with the new
//!   head and, when they fit in a notification, the group's changelog
//!   entries; each handle keeps one dedicated `LISTEN` connection, keeps
//!   what notifications carried for `Datastore::followed_changes` (which
//!   reads the changelog only for what they did not carry), and polls the
//!   counter every [`Options::poll_interval`] as the backstop (a lost
//!   notification, a dropped connection, a database without `LISTEN`).
//! - **Schema**: versioned migrations applied at open (unless
//!   [`Options::migrate`] is off) or by [`migrate`], inside one
//!   transaction under a PostgreSQL advisory lock; a database written by a
//!   newer authzd is refused ([`StoreError::NewerSchema`]).
//! - **Housekeeping** (pruning the changelog, commit ids and audit trail;
//!   the service's expiry sweeps) runs on one node at a time, the one
//!   holding a lease — a PostgreSQL advisory lock on a dedicated
//!   connection (`lease`). Pruning runs after a commit (this node's or
//!   another's), in statements of its own, outside the counter row's
//!   lock; the deletes are idempotent, so two nodes briefly both pruning
//!   is harmless.
//!
//! The SQL stays portable where it can (no xid8, no sequences for
//! revisions, `LISTEN` optional, the compare-and-set retried on
//! serialization failures); the advisory lock and `pg_notify` are
//! PostgreSQL's. Must not leak driver types upward (errors reach callers
//! as [`StoreError`] with boxed sources), must not know protobuf, and must
//! never put the database password in a log line or an error: locations
//! are written from the parsed URL without it.

mod datastore;
mod follow;
mod lease;
mod migrate;
mod records;
#[cfg(feature = "test-database")]
pub mod test_database;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use authzd_store::{Datastore, StoreError};

pub use follow::LISTEN_APPLICATION_NAME;
pub use lease::HOUSEKEEPING_APPLICATION_NAME;
pub use migrate::{Migrated, Mode};

/// How a node connects to and follows the database.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most connections the node's pool opens (the `LISTEN` connection is
    /// apart).
    pub pool_size: usize,
    /// How long opening a connection (or waiting for a free one) may take.
    pub connect_timeout: Duration,
    /// How long the database lets one statement run (`statement_timeout`).
    pub statement_timeout: Duration,
    /// How often the counter row is read to learn of other nodes' commits
    /// when no notification came: the backstop for a lost notification or
    /// a dropped `LISTEN` connection.
    pub poll_interval: Duration,
    /// Whether to `LISTEN` for commit notifications (and send them); off,
    /// other nodes' commits are learnt by polling alone (a database
    /// without `LISTEN`/`NOTIFY`).
    pub listen: bool,
    /// Whether opening applies the migrations the database lacks (under
    /// an advisory lock); off, a database not at this build's version is
    /// refused ([`StoreError::OlderSchema`]) and `authzd migrate` is what
    /// brings it up to date.
    pub migrate: bool,
}

/// The pool size when none is given.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// The connect timeout when none is given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The statement timeout when none is given.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The poll interval when none is given.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            listen: true,
            migrate: true,
        }
    }
}

/// Whether `store` names a PostgreSQL database (a `postgres://` or
/// `postgresql://` URL) rather than something else.
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// `url` without its password: `postgres://USER@HOST:PORT/DB`, for logs and
/// errors. A URL that does not parse is named by its scheme alone.
pub fn redacted(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => location(&config),
        Err(_) => "postgres://(an unreadable URL)".to_owned(),
    }
}

/// Where `config` points, without its password.
fn location(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("postgres");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// Connects to the database at `url`, applies the schema migrations this
/// build knows (or, with [`Options::migrate`] off, checks that none is
/// missing), refusing a database of a newer version, and starts following
/// other nodes' commits. Each failure to start has its own error:
/// [`StoreError::Unreachable`], [`StoreError::AuthenticationFailed`],
/// [`StoreError::DatabaseMissing`], [`StoreError::NewerSchema`],
/// [`StoreError::OlderSchema`].
pub async fn open(url: &str, options: Options) -> Result<Arc<dyn Datastore>, StoreError> {
    let (config, location, tls) = connection(url, &options)?;
    let mode = if options.migrate {
        Mode::Apply
    } else {
        Mode::Require
    };
    migrate::run(&config, &tls, &location, mode).await?;
    let store = datastore::PgDatastore::start(config, tls, location, options).await?;
    Ok(Arc::new(store))
}

/// Brings the database at `url` to the schema version this build knows
/// ([`Mode::Apply`]) or only reads its version ([`Mode::Check`]), as
/// `authzd migrate` does, and says what it found and applied. A database
/// of a newer version is refused ([`StoreError::NewerSchema`]).
pub async fn migrate(url: &str, options: &Options, mode: Mode) -> Result<Migrated, StoreError> {
    let (config, location, tls) = connection(url, options)?;
    migrate::run(&config, &tls, &location, mode).await
}

/// The driver's settings for `url` (with PGPASSWORD's password when the URL
/// has none, the timeouts of `options`), where it points without its
/// password, and the TLS connector.
fn connection(
    url: &str,
    options: &Options,
) -> Result<
    (
        tokio_postgres::Config,
        String,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
    StoreError,
> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|source| StoreError::Open {
        location: "postgres://(an unreadable URL)".to_owned(),
        source: Box::new(source),
    })?;
    let location = location(&config);
    // As libpq does: a URL without a password takes PGPASSWORD's.
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    config
        .connect_timeout(options.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .options(format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis()
        ));
    if config.get_application_name().is_none() {
        config.application_name("authzd");
    }
    Ok((config, location, tls()?))
}

/// TLS to the database through rustls (ring), trusting the system's root
/// certificates; the URL's `sslmode` decides whether it is used.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Open {
            location: "TLS settings".to_owned(),
            source: Box::new(e),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A failed query as the store's error: one the server answered
/// (a constraint, a timeout) is a database error; a connection that
/// failed or closed makes the store unavailable, nothing done.
fn query_error(e: tokio_postgres::Error) -> StoreError {
    if e.as_db_error().is_some() {
        StoreError::Database(Box::new(e))
    } else {
        StoreError::Unavailable(Box::new(e))
    }
}

/// A connection the pool could not give.
fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        deadpool_postgres::PoolError::Backend(e) => query_error(e),
        other => StoreError::Unavailable(Box::new(other)),
    }
}

/// Whether the server refused a statement only because of a concurrent
/// transaction (a serialization failure or a deadlock): trying again may
/// succeed.
fn is_serialization_failure(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            || *code == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The password never appears in a location.
    #[test]
    fn locations_hold_no_password() {
        let url = "postgres://alice:s3cret@db.example:6543/authz?sslmode=require";
        let shown = redacted(url);
        assert_eq!(shown, "postgres://alice@db.example:6543/authz");
        assert!(!shown.contains("s3cret"));
        assert!(!redacted("postgres://a:pw@[broken").contains("pw"));
    }

    #[test]
    fn urls_name_postgres() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(!is_postgres_url("/var/lib/authzd"));
    }
}
