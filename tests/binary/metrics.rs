//! `--metrics-listen` with the real binary: after known calls, a scrape of
//! `/metrics` shows them counted by method and code, the commits with
//! their latency and group size, the revision, the open Watch streams and
//! the tenant's cache size.

use authzd_testkit as common;
use common::*;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port free right now on loopback, for a listener the binary opens.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The value of the sample line starting with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_scrape_counts_known_calls() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_port();
    let args: Vec<std::ffi::OsString> = vec![
        "--metrics-listen".into(),
        format!("127.0.0.1:{metrics}").into(),
    ];
    let server = spawn_binary_with(&dir.path().join("data"), &args).await;
    let channel = server.channel().await;
    let mut directory = DirectoryServiceClient::new(channel.clone());
    let mut access = AccessServiceClient::new(channel.clone());
    for id in ["alice", "bob"] {
        directory
            .create_subject(pb::CreateSubjectRequest {
                tenant: ACME.into(),
                subject: Some(pb::Subject {
                    id: id.into(),
                    ..Default::default()
                }),
                options: None,
            })
            .await
            .unwrap();
    }
    let latest = access
        .check_access(check_request(ACME, "alice", "document:read", ""))
        .await
        .unwrap()
        .into_inner()
        .revision;
    access
        .check_access(check_request(ACME, "alice", "nosuch:perm", ""))
        .await
        .unwrap_err();
    let mut feed = WatchServiceClient::new(channel)
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: latest,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let text = scrape(metrics).await;
    let checks = r#"authzd_requests_total{method="AccessService/CheckAccess",code="OK"}"#;
    assert_eq!(sample(&text, checks), Some(1.0), "{text}");
    let refused =
        r#"authzd_requests_total{method="AccessService/CheckAccess",code="INVALID_ARGUMENT"}"#;
    assert_eq!(sample(&text, refused), Some(1.0), "{text}");
    let creates = r#"authzd_requests_total{method="DirectoryService/CreateSubject",code="OK"}"#;
    assert_eq!(sample(&text, creates), Some(2.0), "{text}");
    assert!(
        text.contains(
            r#"authzd_request_duration_seconds_bucket{method="AccessService/CheckAccess",le="#
        ),
        "{text}"
    );
    // The start-up schema and the two subjects: three commits (one each).
    assert_eq!(
        sample(&text, "authzd_write_commit_duration_seconds_count"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "authzd_write_group_writes_sum"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "authzd_revision"),
        Some(latest as f64),
        "{text}"
    );
    assert_eq!(sample(&text, "authzd_watch_streams"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"authzd_tenant_subjects{tenant="acme"}"#),
        Some(2.0),
        "{text}"
    );

    // A write reaches the open stream; its lag is observed.
    let mut directory2 = directory.clone();
    directory2
        .create_subject(pb::CreateSubjectRequest {
            tenant: ACME.into(),
            subject: Some(pb::Subject {
                id: "carol".into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
    feed.message().await.unwrap().unwrap();
    let text = scrape(metrics).await;
    assert_eq!(
        sample(&text, "authzd_watch_lag_revisions_count"),
        Some(1.0),
        "{text}"
    );
    drop(feed);
}
