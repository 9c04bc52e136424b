//! The database's schema and its versions: the migrations this build knows,
//! applied at open (or by `authzd migrate`) in one transaction under an
//! advisory lock (so two nodes starting at once apply each migration
//! once), the check of a node told not to migrate, and the refusal of a
//! database written by a newer authzd.
//!
//! Owns the DDL and the start-up errors per cause; must not read or write
//! authzd's data beyond creating the counter row.

use authzd_store::{Epoch, StoreError};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The advisory lock key migrations run under ("authzd" in ASCII).
const MIGRATION_LOCK: i64 = 0x6175_7468_7a64;

/// Every migration, in order: version `i + 1` is `MIGRATIONS[i]`. Append
/// only; a shipped migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: the counter row, the records, the changelog and its commit ids,
    // idempotency keys, the audit trail.
    r#"
    CREATE TABLE authzd_meta (
        id smallint PRIMARY KEY,
        revision bigint NOT NULL,
        epoch bigint NOT NULL
    );
    CREATE TABLE authzd_schema_text (
        id smallint PRIMARY KEY,
        body text NOT NULL
    );
    CREATE TABLE authzd_records (
        kind smallint NOT NULL,
        tenant text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        body text NOT NULL,
        PRIMARY KEY (kind, tenant, key)
    );
    CREATE TABLE authzd_changelog (
        revision bigint PRIMARY KEY,
        body text NOT NULL
    );
    CREATE TABLE authzd_commits (
        revision bigint PRIMARY KEY,
        commit_id text NOT NULL
    );
    CREATE INDEX authzd_commits_by_id ON authzd_commits (commit_id);
    CREATE TABLE authzd_idempotency (
        scope text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        revision bigint NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE TABLE authzd_audit (
        at bigint NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        body text NOT NULL,
        PRIMARY KEY (at, seq)
    );
    "#,
    // 2: each tenant's head (the latest revision that wrote it; '' for
    // store-wide writes), for the conflict rule per tenant. What was
    // committed before is not known per tenant: the store-wide row starts
    // at the counter, so a group planned before this migration conflicts.
    r#"
    CREATE TABLE authzd_tenant_heads (
        tenant text COLLATE "C" PRIMARY KEY,
        revision bigint NOT NULL
    );
    INSERT INTO authzd_tenant_heads (tenant, revision)
        SELECT '', revision FROM authzd_meta WHERE id = 1;
    "#,
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// What to do with the database's schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply the migrations this build knows and the database lacks.
    Apply,
    /// Apply nothing: read the version only (`authzd migrate --check`).
    Check,
    /// Apply nothing, and refuse a database that is not at this build's
    /// version (a node told not to migrate).
    Require,
}

/// The database's schema version before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Where, without any password.
    pub location: String,
    /// The version found (0: a database authzd never wrote).
    pub found: i64,
    /// The versions applied now, in order (none in [`Mode::Check`]).
    pub applied: Vec<i64>,
    /// The newest version this build knows.
    pub latest: i64,
}

/// Connects once, naming the cause of a failure, and, as `mode` says,
/// brings the schema to [`latest`] or checks it; refuses a database whose
/// version is newer.
pub(crate) async fn run(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    location: &str,
    mode: Mode,
) -> Result<Migrated, StoreError> {
    let (mut client, connection) = config
        .connect(tls.clone())
        .await
        .map_err(|e| start_error(e, config, location))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "the migration connection ended");
        }
    });
    let result = match mode {
        Mode::Apply => apply(&mut client, location).await,
        Mode::Check | Mode::Require => check(&client, location, mode).await,
    };
    drop(client);
    let _ = driver.await;
    result
}

/// Reads the version without writing anything; in [`Mode::Require`]
/// refuses one older than [`latest`].
async fn check(
    client: &tokio_postgres::Client,
    location: &str,
    mode: Mode,
) -> Result<Migrated, StoreError> {
    // A database authzd never wrote has no version table: version 0.
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('authzd_schema_version') IS NOT NULL",
            &[],
        )
        .await
        .map_err(crate::query_error)?
        .try_get(0)
        .map_err(crate::query_error)?;
    let found: i64 = if exists {
        client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM authzd_schema_version",
                &[],
            )
            .await
            .map_err(crate::query_error)?
            .try_get(0)
            .map_err(crate::query_error)?
    } else {
        0
    };
    refuse_newer(found, location)?;
    if mode == Mode::Require && found < latest() {
        return Err(StoreError::OlderSchema {
            location: location.to_owned(),
            found,
            needed: latest(),
        });
    }
    Ok(Migrated {
        location: location.to_owned(),
        found,
        applied: Vec::new(),
        latest: latest(),
    })
}

/// [`StoreError::NewerSchema`] if `found` is beyond this build.
fn refuse_newer(found: i64, location: &str) -> Result<(), StoreError> {
    if found > latest() {
        return Err(StoreError::NewerSchema {
            location: location.to_owned(),
            found,
            supported: latest(),
        });
    }
    Ok(())
}

async fn apply(
    client: &mut tokio_postgres::Client,
    location: &str,
) -> Result<Migrated, StoreError> {
    let txn = client.transaction().await.map_err(crate::query_error)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(crate::query_error)?;
    // Quiet: "already exists, skipping" is every start but the first.
    txn.batch_execute(
        "SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS authzd_schema_version (version bigint PRIMARY KEY)",
    )
    .await
    .map_err(crate::query_error)?;
    let found: i64 = txn
        .query_one(
            "SELECT coalesce(max(version), 0) FROM authzd_schema_version",
            &[],
        )
        .await
        .map_err(crate::query_error)?
        .try_get(0)
        .map_err(crate::query_error)?;
    refuse_newer(found, location)?;
    let mut applied = Vec::new();
    for (version, sql) in (1i64..).zip(MIGRATIONS) {
        if version <= found {
            continue;
        }
        applied.push(version);
        tracing::info!(store = %location, version, "applying a schema migration");
        txn.batch_execute(sql).await.map_err(crate::query_error)?;
        txn.execute(
            "INSERT INTO authzd_schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(crate::query_error)?;
    }
    // The epoch's bits, kept as a signed column.
    let epoch = Epoch::random().0 as i64;
    txn.execute(
        "INSERT INTO authzd_meta (id, revision, epoch) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING",
        &[&epoch],
    )
    .await
    .map_err(crate::query_error)?;
    txn.commit().await.map_err(crate::query_error)?;
    Ok(Migrated {
        location: location.to_owned(),
        found,
        applied,
        latest: latest(),
    })
}

/// Names why the first connection failed: no server, refused credentials,
/// no such database, or something else (kept as the source).
fn start_error(
    e: tokio_postgres::Error,
    config: &tokio_postgres::Config,
    location: &str,
) -> StoreError {
    use tokio_postgres::error::SqlState;
    let user = config.get_user().unwrap_or("postgres").to_owned();
    match e.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            StoreError::AuthenticationFailed {
                location: location.to_owned(),
                user,
            }
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => StoreError::DatabaseMissing {
            location: location.to_owned(),
            database: config.get_dbname().unwrap_or(&user).to_owned(),
        },
        // The server asked for a password the URL does not give.
        None if e.to_string().contains("password missing") => StoreError::AuthenticationFailed {
            location: location.to_owned(),
            user,
        },
        Some(_) => StoreError::Open {
            location: location.to_owned(),
            source: Box::new(e),
        },
        None => StoreError::Unreachable {
            location: location.to_owned(),
            source: Box::new(e),
        },
    }
}
