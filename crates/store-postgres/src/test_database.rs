//! For tests: the PostgreSQL server named by `AUTHZD_TEST_POSTGRES_URL`,
//! and a fresh, uniquely named database on it for each test.
//!
//! Without that variable a test skips with a notice written straight to
//! the terminal (past the test harness's capture), except under `CI=true`,
//! where a missing database fails the test. Must not be used to serve:
//! only tests enable the feature that builds it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the server tests use.
pub const URL_VARIABLE: &str = "AUTHZD_TEST_POSTGRES_URL";

/// The server's URL (a superuser's, on any database), or `None` after
/// writing a skip notice naming `test`.
///
/// # Panics
/// Under `CI=true` without the variable: CI must run these tests.
#[allow(
    clippy::panic,
    reason = "a test helper: a missing database in CI fails the test"
)]
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: CI=true but {URL_VARIABLE} is not set: CI must run the PostgreSQL tests (.ci/postgres starts a server)"
                );
            }
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: no PostgreSQL ({URL_VARIABLE} is not set; `bash .ci/postgres start DIR` starts one and prints it)"
                );
            });
            None
        }
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = url.get(scheme_end..).unwrap_or("");
    let path_start = rest.find('/').map_or(url.len(), |i| scheme_end + i);
    let query_start = url
        .get(path_start..)
        .and_then(|tail| tail.find('?'))
        .map_or(url.len(), |i| path_start + i);
    format!(
        "{}/{database}{}",
        url.get(..path_start).unwrap_or(url),
        url.get(query_start..).unwrap_or("")
    )
}

/// The `HOST:PORT` part of `url`.
pub fn address(url: &str) -> &str {
    let (start, end) = authority(url);
    url.get(start..end).unwrap_or("")
}

/// `url` pointed at `address` (`HOST:PORT`) instead: through a proxy.
pub fn via(url: &str, address: &str) -> String {
    let (start, end) = authority(url);
    format!(
        "{}{address}{}",
        url.get(..start).unwrap_or(""),
        url.get(end..).unwrap_or("")
    )
}

/// Where `HOST:PORT` starts and ends in `url` (after any `USER:PASSWORD@`).
fn authority(url: &str) -> (usize, usize) {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = url.get(scheme_end..).unwrap_or("");
    let end = rest.find('/').map_or(url.len(), |i| scheme_end + i);
    let start = url
        .get(scheme_end..end)
        .and_then(|a| a.rfind('@'))
        .map_or(scheme_end, |i| scheme_end + i + 1);
    (start, end)
}

/// Creates a database no other test uses on the server at `url`; returns
/// its URL.
pub async fn fresh(url: &str) -> Result<String, tokio_postgres::Error> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "authzd_test_{}_{}_{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    );
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(with_database(url, &name))
}

/// The first column of the one row `sql` returns on the database at `url`
/// (a count, a revision): for a test to look at the database directly.
pub async fn query_i64(url: &str, sql: &str) -> Result<i64, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let value = client.query_one(sql, &[]).await?.try_get(0);
    drop(client);
    let _ = driver.await;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:1/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:1/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t2"),
            "postgres://u@h:1/t2"
        );
    }
}
