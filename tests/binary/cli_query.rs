//! The client CLI's query commands (`check`, `who`, `what`, `watch`) run as
//! the real binary against a server on loopback: readable lines, JSON with
//! `--json`, the exit code of `check`, and gains and losses in the feed.

use authzd_testkit as common;
use common::*;

use std::process::Output;

/// Runs `authzd ARGS --target ADDR --tenant acme` (off the async workers).
async fn authzd(server: &TestServer, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend([
        "--target".into(),
        server.addr.to_string(),
        "--tenant".into(),
        ACME.into(),
    ]);
    run_cli(all).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn seeded() -> TestServer {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_subject(&server, ACME, "bob").await;
    create_scope(&server, ACME, "berlin", "").await;
    manage(
        &server,
        ACME,
        vec![assign(
            "editor",
            subject_principal("alice"),
            scope_target("berlin"),
        )],
    )
    .await;
    server
}

/// `check` exits 0 when allowed, 1 when denied and 2 when it could not
/// answer (a refused request, an unreachable server), and explains.
#[tokio::test]
async fn check_answers_with_its_exit_code_and_explains() {
    let server = seeded().await;
    let allowed = authzd(
        &server,
        &[
            "check",
            "alice",
            "document:edit",
            "--scope",
            "berlin",
            "--explain",
        ],
    )
    .await;
    assert!(allowed.status.success());
    let text = stdout(&allowed);
    assert!(
        text.starts_with("allowed: alice document:edit at berlin"),
        "{text}"
    );
    assert!(text.contains("because role editor at berlin"), "{text}");

    let denied = authzd(
        &server,
        &["check", "bob", "document:edit", "--explain", "--json"],
    )
    .await;
    assert_eq!(denied.status.code(), Some(1));
    let answer: serde_json::Value = serde_json::from_str(stdout(&denied).trim()).unwrap();
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["denials"][0]["reason"], "no_grant");

    let refused = authzd(&server, &["check", "bob", "nosuch:perm"]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("INVALID_ARGUMENT"));
    let addr = server.addr.to_string();
    server.stop().await;
    let unreachable = run_cli(
        [
            "check",
            "bob",
            "document:read",
            "--target",
            &addr,
            "--tenant",
            ACME,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(unreachable.status.code(), Some(2));
}

#[tokio::test]
async fn who_and_what_list_holders_and_permissions() {
    let server = seeded().await;
    let who = authzd(
        &server,
        &["who", "document:edit", "--scope", "berlin", "--json"],
    )
    .await;
    assert!(who.status.success());
    let holders: Vec<serde_json::Value> = stdout(&who)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = holders
        .iter()
        .map(|h| h["subject"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice"]);

    let what = authzd(&server, &["what", "alice"]).await;
    assert!(what.status.success());
    let text = stdout(&what);
    assert!(
        text.contains("document:edit at berlin, and below (through role editor at berlin)"),
        "{text}"
    );
    assert!(!text.contains("at root"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn watch_marks_gains_and_losses() {
    let server = seeded().await;
    let before = revision(&server).await;
    manage(
        &server,
        ACME,
        vec![unassign(
            "editor",
            subject_principal("alice"),
            scope_target("berlin"),
        )],
    )
    .await;
    let after = before.to_string();
    let lines = authzd(
        &server,
        &["watch", "--after-revision", &after, "--count", "1"],
    )
    .await;
    assert!(lines.status.success());
    let text = stdout(&lines);
    assert!(
        text.contains(&format!(
            "r{} - alice document:edit at berlin, and below",
            before + 1
        )),
        "{text}"
    );

    let json = authzd(
        &server,
        &[
            "watch",
            "--after-revision",
            &(before - 1).to_string(),
            "--count",
            "2",
            "--json",
        ],
    )
    .await;
    let messages: Vec<serde_json::Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(messages.len(), 2);
    let gained = |m: &serde_json::Value| m["permission_changes"][0]["gained"].as_bool();
    assert_eq!(gained(&messages[0]), Some(true));
    assert_eq!(gained(&messages[1]), Some(false));
    server.stop().await;
}

/// `token new` prints only the `[[token]]` entry on standard output, so
/// `>> tokens.toml` appends a valid entry; the secret goes to standard
/// error, or to a new owner-only file with --secret-file; the entry holds
/// the secret's digest.
#[tokio::test]
async fn token_new_keeps_the_secret_apart_from_the_entry() {
    use sha2::{Digest, Sha256};
    let made = run_cli(
        ["token", "new", "--name", "ci", "--kind", "read"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    assert!(made.status.success());
    let entry = stdout(&made);
    assert!(
        !entry.contains("authzd_"),
        "the secret is on stdout: {entry}"
    );
    let parsed: toml::Table = entry.parse().unwrap();
    let token = &parsed["token"].as_array().unwrap()[0];
    let stderr = String::from_utf8_lossy(&made.stderr).into_owned();
    let secret = stderr
        .lines()
        .find(|l| l.starts_with("authzd_"))
        .expect("the secret on stderr");
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(token["sha256"].as_str(), Some(digest.as_str()));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ci.secret");
    let path = file.display().to_string();
    let args = [
        "token",
        "new",
        "--name",
        "ci",
        "--kind",
        "read",
        "--secret-file",
        &path,
    ];
    let made = run_cli(args.map(String::from).to_vec()).await;
    assert!(made.status.success());
    assert!(!String::from_utf8_lossy(&made.stderr).contains("authzd_"));
    let secret = std::fs::read_to_string(&file).unwrap();
    assert!(secret.starts_with("authzd_"), "{secret}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An existing file is never overwritten.
    let again = run_cli(args.map(String::from).to_vec()).await;
    assert!(!again.status.success());
}
