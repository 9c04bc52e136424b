//! `authzd import` end to end: the import runs against a real server over
//! gRPC (the function the subcommand calls, pointed at the test server's
//! address), and the results are read back through the API.

use authzd_testkit as common;

use std::collections::HashMap;
use std::path::Path;

use authzd::cli::import::{ImportArgs, ImportError, ImportReport, run};
use authzd::cli::{Cli, Command};
use clap::Parser;
use common::*;

const T: &str = "acme";

fn args(server: &TestServer, file: &Path) -> ImportArgs {
    ImportArgs {
        file: file.to_path_buf(),
        target: server.addr.to_string(),
        tenant: T.into(),
        dry_run: false,
        client: Default::default(),
    }
}

fn write_csv(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("users.csv");
    std::fs::write(&path, text).unwrap();
    path
}

async fn subject(server: &TestServer, id: &str) -> pb::Subject {
    server
        .directory()
        .await
        .get_subject(pb::GetRequest {
            tenant: T.into(),
            id: id.into(),
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .subject
        .unwrap()
}

async fn subject_ids(server: &TestServer) -> Vec<String> {
    server
        .directory()
        .await
        .list_subjects(pb::ListRequest {
            tenant: T.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .subjects
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// Groups `readers` (viewer role) and `writers` (editor role) at the root.
async fn seed_groups(server: &TestServer) {
    create_group(server, T, "readers").await;
    create_group(server, T, "writers").await;
    manage(
        server,
        T,
        vec![
            assign("viewer", group_principal("readers"), None),
            assign("editor", group_principal("writers"), None),
        ],
    )
    .await;
}

/// The import creates every subject with its kind, status and attributes,
/// adds each to its groups (so the groups' roles apply), and a second run
/// of a changed file updates only what changed and adds no duplicate.
#[tokio::test]
async fn import_creates_users_and_adds_them_to_their_groups() {
    let server = TestServer::start().await;
    seed_groups(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(
        &dir,
        "id,kind,status,groups,attributes\n\
         alice,user,active,readers;writers,dept=sales;locale=de\n\
         bot,service,,readers,\n\
         carol,,locked,writers,\"note=a, b\"\n",
    );
    let report = run(&args(&server, &file)).await.unwrap();
    assert_eq!(
        report,
        ImportReport {
            rows: 3,
            created: 3,
            updated: 0,
            unchanged: 0,
            memberships: 4,
            chunks: 1,
            revision: revision(&server).await,
            dry_run: false,
        }
    );

    let alice = subject(&server, "alice").await;
    assert_eq!(alice.kind, pb::SubjectKind::User as i32);
    assert_eq!(alice.status, pb::SubjectStatus::Active as i32);
    assert_eq!(
        alice.attributes,
        HashMap::from([
            ("dept".into(), "sales".into()),
            ("locale".into(), "de".into())
        ])
    );
    assert_eq!(
        subject(&server, "bot").await.kind,
        pb::SubjectKind::Service as i32
    );
    let carol = subject(&server, "carol").await;
    assert_eq!(carol.status, pb::SubjectStatus::Locked as i32);
    assert_eq!(carol.attributes["note"], "a, b");
    assert_eq!(
        members(&server, T, "readers").await,
        ["subject:alice", "subject:bot"]
    );
    assert_eq!(
        members(&server, T, "writers").await,
        ["subject:alice", "subject:carol"]
    );
    assert!(check(&server, T, "alice", "document:edit", "").await);
    assert!(check(&server, T, "bot", "document:read", "").await);
    assert!(
        !check(&server, T, "carol", "document:read", "").await,
        "locked"
    );

    // Second run: carol unlocked, alice's attributes changed, bot as before.
    let file = write_csv(
        &dir,
        "id,kind,status,groups,attributes\n\
         alice,user,active,readers;writers,dept=support\n\
         bot,service,,readers,\n\
         carol,,active,writers,\"note=a, b\"\n",
    );
    let report = run(&args(&server, &file)).await.unwrap();
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (0, 2, 1),
        "{report}"
    );
    assert_eq!(
        subject(&server, "alice").await.attributes,
        HashMap::from([("dept".into(), "support".into())])
    );
    assert!(check(&server, T, "carol", "document:edit", "").await);
    assert_eq!(
        members(&server, T, "writers").await,
        ["subject:alice", "subject:carol"]
    );
    server.stop().await;
}

/// A file with a bad row is refused as a whole, before anything is written:
/// the error names the line and the column, and every bad row is reported.
#[tokio::test]
async fn a_bad_row_is_refused_with_its_line_and_nothing_is_written() {
    let server = TestServer::start().await;
    seed_groups(&server).await;
    let before = revision(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(
        &dir,
        "id,kind,status,groups,attributes\n\
         alice,user,active,readers,\n\
         bob,user,active,writers,\n\
         eve,robot,active,readers,\n\
         dan,user,active,readers,x\n",
    );
    let Err(ImportError::Invalid { errors, .. }) = run(&args(&server, &file)).await else {
        panic!("the file must be refused");
    };
    let lines: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(lines, [(4, "kind"), (5, "attributes")]);
    let text = run(&args(&server, &file)).await.unwrap_err().to_string();
    assert!(
        text.contains(&format!(
            "{}:4: kind: unknown kind \"robot\"; expected user, service or empty",
            file.display()
        )),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(revision(&server).await, before, "nothing was written");
    assert!(subject_ids(&server).await.is_empty());
    server.stop().await;
}

/// A row naming a group that does not exist is refused (with its line)
/// after the server check and before any write.
#[tokio::test]
async fn a_missing_group_is_refused_before_anything_is_written() {
    let server = TestServer::start().await;
    seed_groups(&server).await;
    let before = revision(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(
        &dir,
        "id,kind,status,groups,attributes\n\
         alice,user,active,readers,\n\
         bob,user,active,writers;ghosts,\n",
    );
    let e = run(&args(&server, &file)).await.unwrap_err();
    let ImportError::Invalid { errors, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(errors.len(), 1, "{e}");
    assert_eq!(
        errors[0].to_string(),
        "3: groups: group ghosts does not exist in tenant acme; create it first"
    );
    assert_eq!(revision(&server).await, before);
    assert!(subject_ids(&server).await.is_empty());
    server.stop().await;
}

/// More records than one chunk holds are sent in chunks of at most
/// `MAX_BATCH_OPERATIONS` (1001 users in 10 groups each: 11011 records),
/// each row whole in one chunk.
#[tokio::test]
async fn large_files_are_sent_in_chunks() {
    let (server, _dir) = common::de::start_in_memory_folder().await;
    seed_groups(&server).await;
    let groups: Vec<String> = (0..9).map(|g| format!("g{g}")).collect();
    for g in &groups {
        create_group(&server, T, g).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,kind,status,groups,attributes\n");
    for i in 0..1001 {
        text.push_str(&format!("u{i:04},,,readers;{},\n", groups.join(";")));
    }
    let file = write_csv(&dir, &text);
    let report = run(&args(&server, &file)).await.unwrap();
    assert_eq!(
        (report.created, report.memberships, report.chunks),
        (1001, 10010, 2)
    );
    assert!(check(&server, T, "u0000", "document:read", "").await);
    assert!(check(&server, T, "u1000", "document:read", "").await);
    let mut in_g8 = 0;
    let mut token = String::new();
    // 1001 members in pages of 1000: two pages, and a bound for a bug.
    for _ in 0..3 {
        let page = server
            .directory()
            .await
            .list_group_members(pb::ListGroupMembersRequest {
                tenant: T.into(),
                group: "g8".into(),
                page: Some(pb::PageRequest {
                    page_size: 1000,
                    page_token: token,
                }),
                at_least_revision: 0,
            })
            .await
            .unwrap()
            .into_inner();
        in_g8 += page.members.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(in_g8, 1001, "every row's memberships, both chunks");
    server.stop().await;
}

/// A file of 10,000 rows or more finds the subjects that exist already by
/// paging through the tenant's subjects instead of one lookup per row, and
/// decides the same: created, updated (only what changed) or unchanged.
#[tokio::test]
async fn large_files_find_existing_subjects_by_listing() {
    let (server, _dir) = common::de::start_in_memory_folder().await;
    seed_groups(&server).await;
    let dir = tempfile::tempdir().unwrap();
    // Two pages' worth of subjects exist before the import.
    let mut text = String::from("id,kind,status,groups,attributes\n");
    for i in 0..1500 {
        text.push_str(&format!("u{i:05},,,readers,dept=d1\n"));
    }
    let first = run(&args(&server, &write_csv(&dir, &text))).await.unwrap();
    assert_eq!(first.created, 1500);
    let mut text = String::from("id,kind,status,groups,attributes\n");
    for i in 0..10_000 {
        let dept = if i < 10 { "d2" } else { "d1" };
        text.push_str(&format!("u{i:05},,,readers,dept={dept}\n"));
    }
    let report = run(&args(&server, &write_csv(&dir, &text))).await.unwrap();
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (8500, 10, 1490)
    );
    let changed = subject(&server, "u00003").await;
    assert_eq!(
        changed.attributes.get("dept").map(String::as_str),
        Some("d2")
    );
    let created = subject(&server, "u09999").await;
    assert_eq!(
        created.attributes.get("dept").map(String::as_str),
        Some("d1")
    );
    server.stop().await;
}

/// `--dry-run` checks the file against the server and reports what it
/// would do, writing nothing.
#[tokio::test]
async fn a_dry_run_writes_nothing() {
    let server = TestServer::start().await;
    seed_groups(&server).await;
    create_subject(&server, T, "alice").await;
    let before = revision(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_csv(
        &dir,
        "id,kind,status,groups,attributes\nalice,,locked,readers,\nbob,,,writers,\n",
    );
    let report = run(&ImportArgs {
        dry_run: true,
        ..args(&server, &file)
    })
    .await
    .unwrap();
    assert_eq!(
        (report.created, report.updated, report.memberships),
        (1, 1, 2)
    );
    assert_eq!(
        report.to_string(),
        "2 rows: 1 would be created, 1 would be updated, 0 unchanged; 2 memberships; 1 chunk; nothing written (--dry-run)"
    );
    assert_eq!(revision(&server).await, before);
    assert_eq!(subject_ids(&server).await, ["alice"]);
    server.stop().await;
}

/// The subcommand's flags: the file, `--target`, `--tenant`, `--dry-run`.
#[test]
fn the_command_line_parses() {
    let cli = Cli::try_parse_from([
        "authzd",
        "import",
        "--target",
        "127.0.0.1:7000",
        "--tenant",
        "shop",
        "--dry-run",
        "users.csv",
    ])
    .unwrap();
    let Command::Import(a) = cli.command else {
        panic!("not the import command");
    };
    assert_eq!(
        (a.target.as_str(), a.tenant.as_str(), a.dry_run),
        ("127.0.0.1:7000", "shop", true)
    );
    assert_eq!(a.file, Path::new("users.csv"));
    assert!(
        Cli::try_parse_from(["authzd", "import", "users.csv"]).is_err(),
        "--tenant is required"
    );
}
