//! `authzd migrate --store postgres://…`: brings a shared database's
//! schema to the version this build knows (the same migrations `serve`
//! applies at start, under the same advisory lock) and exits, saying the
//! version found and what was applied; `--check` only reads the version.
//! Must not start a node or read authzd's data.

use clap::Args;

use authzd_store_postgres::{Migrated, Mode, Options};

/// `authzd migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The database: `postgres://USER@HOST:PORT/DB` (give the password in
    /// AUTHZD_STORE or PGPASSWORD rather than on the command line).
    #[arg(long, env = "AUTHZD_STORE", value_name = "URL")]
    pub store: String,
    /// Only say the version found and the migrations pending; apply
    /// nothing. Exits 1 when some are pending.
    #[arg(long)]
    pub check: bool,
    /// Seconds opening the connection may take.
    #[arg(long, env = "AUTHZD_STORE_CONNECT_TIMEOUT_SECS", default_value_t = authzd_store_postgres::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub store_connect_timeout_secs: u64,
}

/// Runs `authzd migrate`; whether it succeeded (with `--check`: whether
/// the database is up to date).
pub async fn command(args: &MigrateArgs) -> bool {
    if !authzd_store_postgres::is_postgres_url(&args.store) {
        eprintln!("authzd migrate: --store must be a postgres:// URL");
        return false;
    }
    let options = Options {
        connect_timeout: std::time::Duration::from_secs(args.store_connect_timeout_secs.max(1)),
        ..Options::default()
    };
    let mode = if args.check { Mode::Check } else { Mode::Apply };
    match authzd_store_postgres::migrate(&args.store, &options, mode).await {
        Ok(migrated) => {
            println!("{}", report(&migrated, args.check));
            !args.check || migrated.found >= migrated.latest
        }
        Err(e) => {
            eprintln!("authzd migrate: {e}");
            false
        }
    }
}

/// What `migrate` says: the version found, then what was applied (or is
/// pending).
fn report(m: &Migrated, check: bool) -> String {
    let found = format!(
        "{}: schema version {} found; this build knows versions up to {}",
        m.location, m.found, m.latest
    );
    let versions = |v: &[i64]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if check {
        let pending: Vec<i64> = (m.found + 1..=m.latest).collect();
        if pending.is_empty() {
            format!("{found}\nup to date")
        } else {
            format!(
                "{found}\npending: {} (run `authzd migrate` without --check to apply)",
                versions(&pending)
            )
        }
    } else if m.applied.is_empty() {
        format!("{found}\nup to date: nothing applied")
    } else {
        format!(
            "{found}\napplied: {}; now at version {}",
            versions(&m.applied),
            m.latest
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_say_found_and_applied() {
        let m = Migrated {
            location: "postgres://u@h:1/db".into(),
            found: 0,
            applied: vec![1, 2],
            latest: 2,
        };
        assert_eq!(
            report(&m, false),
            "postgres://u@h:1/db: schema version 0 found; this build knows versions up to 2\napplied: 1, 2; now at version 2"
        );
        assert!(
            report(&m, true)
                .ends_with("pending: 1, 2 (run `authzd migrate` without --check to apply)")
        );
        let current = Migrated {
            found: 2,
            applied: Vec::new(),
            ..m
        };
        assert!(report(&current, true).ends_with("\nup to date"));
        assert!(report(&current, false).ends_with("up to date: nothing applied"));
    }
}
