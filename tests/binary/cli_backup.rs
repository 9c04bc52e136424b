//! `authzd backup` and `authzd restore` with the real binary: a backup
//! taken while writes run, restored into a new folder and served, holds
//! exactly what was committed up to its revision (every subject created at
//! or before it, none after); restore refuses what is not a backup and a
//! folder it would overwrite, saying why, and leaves the folder as it was.

use authzd_testkit as common;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;

use tonic::transport::Channel;

fn restore_args(from: &Path, data: &Path) -> Vec<String> {
    vec![
        "restore".into(),
        "--from".into(),
        from.display().to_string(),
        "--data".into(),
        data.display().to_string(),
    ]
}

/// Runs `authzd restore ARGS`, expecting a refusal; its message.
async fn refused(args: Vec<String>) -> String {
    let done = run_cli(args).await;
    let said = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(!done.status.success(), "{said}");
    said
}

async fn subjects(channel: Channel, tenant: &str) -> BTreeSet<String> {
    let mut d = DirectoryServiceClient::new(channel);
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

    let at: u64 = report
        .split("backed up revision ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {report}"));

    let data = dir.path().join("restored").join("data");
    let restored = run_cli(restore_args(&out, &data)).await;
    let said = String::from_utf8_lossy(&restored.stderr).to_string();
    assert!(restored.status.success(), "{said}");
    assert!(
        said.contains(&format!("restored revision {at} (1 tenant: {ACME};")),
        "{said}"
    );
    assert!(!said.contains("open to other users"), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "the restored folder is owner-only");
        assert_eq!(mode(&data.join("authzd.redb")), 0o600);
    }
    let served = spawn_binary(&data, None).await;
    let channel = served.channel().await;
    let schema = SchemaServiceClient::new(channel.clone())
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(schema.revision, at);
    let expected: BTreeSet<String> = created
        .iter()
        .filter(|(r, _)| *r <= at)
        .map(|(_, id)| id.clone())
        .collect();
    assert!(expected.len() >= 20, "the backup holds the first writes");
    assert_eq!(subjects(channel, ACME).await, expected);
    drop(served);

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

/// What is not a backup is refused, naming `--from` and why, and nothing
/// is created at `--data`: a missing folder, a file, a folder without a
/// store, a store file that is not a redb database, and a redb database
/// that is not an authzd store.
#[tokio::test]
async fn restore_refuses_what_is_not_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("missing");
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("authzd.redb"), vec![7u8; 4096]).unwrap();
    for (from, reason) in [
        (&missing, "no such folder"),
        (&file, "not a folder"),
        (&empty, "holds no authzd store"),
        (&garbage, "not an authzd store or is corrupt"),
    ] {
        let said = refused(restore_args(from, &data)).await;
        assert!(
            said.contains(&format!("--from {}", from.display())),
            "{said}"
        );
        assert!(said.contains(reason), "{said}");
        assert!(
            !said.contains("restoring"),
            "names the staging folder: {said}"
        );
        assert!(!data.exists(), "{said}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging folders left: {leftovers:?}");
}

/// A backup of a stopped server's folder, restored over folders that are
/// not empty: refused without `--force` (the folder untouched); with it, a
/// store is replaced, but a folder holding anything else, or a store a
/// running server uses, is still refused.
#[tokio::test]
async fn restore_replaces_only_a_store_and_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let server = TestServer::start_at(&source, None).await;
    create_subject(&server, ACME, "alice").await;
    let at = revision(&server).await;
    server.stop().await;

    let other = dir.path().join("other");
    let server = TestServer::start_at(&other, None).await;
    create_subject(&server, "elsewhere", "bob").await;
    create_subject(&server, "elsewhere", "carol").await;
    let other_at = revision(&server).await;
    server.stop().await;

    let said = refused(restore_args(&source, &other)).await;
    assert!(
        said.contains(&format!("--data {}", other.display())),
        "{said}"
    );
    assert!(
        said.contains("not empty") && said.contains("--force"),
        "{said}"
    );

    let mut forced = restore_args(&source, &other);
    forced.push("--force".into());
    let done = run_cli(forced.clone()).await;
    let said = String::from_utf8_lossy(&done.stderr).to_string();
    assert!(done.status.success(), "{said}");
    assert!(
        said.contains(&format!("restored revision {at} (1 tenant: {ACME};")),
        "{said}"
    );
    assert!(
        said.contains(&format!("replaced a store at revision {other_at}")),
        "{said}"
    );
    let served = TestServer::start_at(&other, None).await;
    assert_eq!(revision(&served).await, at);
    assert_eq!(
        subjects(served.channel().await, ACME).await,
        BTreeSet::from(["alice".to_string()])
    );
    let said = refused(forced.clone()).await;
    assert!(said.contains("a running server uses this store"), "{said}");
    served.stop().await;

    let cluttered = dir.path().join("cluttered");
    std::fs::create_dir(&cluttered).unwrap();
    std::fs::write(cluttered.join("notes.txt"), "keep me").unwrap();
    let mut args = restore_args(&source, &cluttered);
    args.push("--force".into());
    let said = refused(args).await;
    assert!(said.contains("holds more than an authzd store"), "{said}");
    assert_eq!(
        std::fs::read_to_string(cluttered.join("notes.txt")).unwrap(),
        "keep me"
    );
}
