#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `authzd backup` with the real binary, taken while writes run: the copy
//! is a data folder a server opens, and it holds exactly what was
//! committed up to its revision (every subject created at or before it,
//! none after).

mod common;
use common::*;

use std::collections::BTreeSet;

async fn subjects(server: &TestServer, tenant: &str) -> BTreeSet<String> {
    let mut d = server.directory().await;
    let mut out = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = d
            .list_subjects(pb::ListRequest {
                tenant: tenant.into(),
                page: Some(pb::PageRequest {
                    page_size: 1000,
                    page_token: token,
                }),
                at_least_revision: 0,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.subjects.into_iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn a_backup_taken_while_writing_holds_exactly_its_revision() {
    let server = TestServer::start().await;
    let mut created = Vec::new();
    for i in 0..20 {
        let id = format!("before-{i}");
        created.push((create_subject(&server, ACME, &id).await, id));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let addr = server.addr.to_string();
    let args = vec![
        "backup".to_string(),
        "--target".into(),
        addr,
        "--out".into(),
        out.display().to_string(),
    ];
    let backup = tokio::spawn(run_cli(args.clone()));
    // Writes keep coming while the copy is taken (bounded: 200 of them).
    for i in 0..200 {
        let id = format!("during-{i}");
        created.push((create_subject(&server, ACME, &id).await, id));
        if backup.is_finished() {
            break;
        }
    }
    let done = backup.await.unwrap();
    let report = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(done.status.success(), "{report}");
    assert!(report.contains("backed up revision "), "{report}");

    let restored = TestServer::start_at(&out, None).await;
    let at = revision(&restored).await;
    let expected: BTreeSet<String> = created
        .iter()
        .filter(|(r, _)| *r <= at)
        .map(|(_, id)| id.clone())
        .collect();
    assert!(expected.len() >= 20, "the backup holds the first writes");
    assert_eq!(subjects(&restored, ACME).await, expected);
    restored.stop().await;

    // A folder that holds a store is not overwritten.
    let again = run_cli(args).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a store"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    server.stop().await;
}
