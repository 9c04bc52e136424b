//! The client CLI's write commands run as the real binary against a
//! server on loopback: `subject|group|scope create|delete`, `member
//! add|remove`, `role assign|unassign` with `--dry-run` showing the what-if
//! and writing nothing, `--json`, and `schema read|write|diff`.

use authzd_testkit as common;
use common::*;

use std::process::Output;

/// Runs `authzd ARGS --target ADDR [--tenant acme]` (off the async workers).
async fn authzd(server: &TestServer, args: &[&str], tenant: bool) -> Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--target".into(), server.addr.to_string()]);
    if tenant {
        all.extend(["--tenant".into(), ACME.into()]);
    }
    run_cli(all).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Directory and membership writes from the command line; a dry run prints
/// the gains and losses the write would cause and writes nothing, then the
/// write itself commits them.
#[tokio::test]
async fn write_commands_and_their_dry_runs() {
    let server = TestServer::start().await;
    for args in [
        &["subject", "create", "alice"][..],
        &["subject", "create", "bob", "--reason", "hired"],
        &["scope", "create", "emea", "--type", "unit"],
        &["group", "create", "writers", "--title", "Writers"],
        &["member", "add", "writers", "alice"],
    ] {
        let out = authzd(&server, args, true).await;
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let before = revision(&server).await;
    let dry = authzd(
        &server,
        &[
            "role",
            "assign",
            "editor",
            "group:writers",
            "--scope",
            "emea",
            "--dry-run",
        ],
        true,
    )
    .await;
    assert!(dry.status.success(), "{dry:?}");
    let text = stdout(&dry);
    assert!(
        text.starts_with("dry run: assign editor to group:writers at emea would commit"),
        "{text}"
    );
    assert!(text.contains("alice gains document:edit at emea"), "{text}");
    assert_eq!(revision(&server).await, before, "a dry run wrote");
    assert!(assignments(&server, ACME).await.is_empty());

    let out = authzd(
        &server,
        &[
            "role",
            "assign",
            "editor",
            "group:writers",
            "--scope",
            "emea",
        ],
        true,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(assignments(&server, ACME).await.len(), 1);

    // Removing alice from writers: she loses what the group gave her.
    let dry = authzd(
        &server,
        &[
            "member",
            "remove",
            "writers",
            "alice",
            "--dry-run",
            "--json",
        ],
        true,
    )
    .await;
    assert!(dry.status.success(), "{dry:?}");
    let json: serde_json::Value = serde_json::from_str(stdout(&dry).trim()).unwrap();
    let changes = json["whatIf"]["permissionChanges"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["subject"] == "alice"
            && c["permission"] == "document:edit"
            && c["direction"] == "DIRECTION_LOST"),
        "{json}"
    );
    assert!(json["revision"].is_string(), "{json}");

    // A dry run the write would refuse: exit 1, the refusal named.
    let dry = authzd(
        &server,
        &["role", "assign", "no-such-role", "bob", "--dry-run"],
        true,
    )
    .await;
    assert_eq!(dry.status.code(), Some(1), "{dry:?}");
    assert!(
        stdout(&dry).contains("refused: NOT_FOUND operations[0]"),
        "{}",
        stdout(&dry)
    );

    for args in [
        &[
            "role",
            "unassign",
            "editor",
            "group:writers",
            "--scope",
            "emea",
        ][..],
        &["member", "remove", "writers", "alice"],
        &["group", "delete", "writers"],
        &["scope", "delete", "emea"],
        &["subject", "delete", "bob", "--json"],
    ] {
        let out = authzd(&server, args, true).await;
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    assert!(assignments(&server, ACME).await.is_empty());
    // A refused write: its status, exit 1.
    let out = authzd(&server, &["subject", "create", "alice"], true).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ALREADY_EXISTS"),
        "{out:?}"
    );
    server.stop().await;
}

/// `schema read` prints the installed schema; `schema diff` shows a
/// file's differences (exit 1) or none (exit 0); `schema write --dry-run`
/// validates without installing; `schema write` installs.
#[tokio::test]
async fn schema_read_write_diff() {
    let server = TestServer::start().await;
    let read = authzd(&server, &["schema", "read"], false).await;
    assert!(read.status.success(), "{read:?}");
    let installed = stdout(&read);
    assert_eq!(installed, authzd_core::schema::DEFAULT_SCHEMA);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schema.toml");
    let changed = installed.replace("rank = 10\n", "rank = 11\n");
    std::fs::write(&file, &changed).unwrap();
    let path = file.to_str().unwrap();
    let diff = authzd(&server, &["schema", "diff", path], false).await;
    assert_eq!(diff.status.code(), Some(1), "{diff:?}");
    let text = stdout(&diff);
    assert!(text.contains("\n-rank = 10\n+rank = 11\n"), "{text}");

    let before = revision(&server).await;
    let dry = authzd(&server, &["schema", "write", path, "--dry-run"], false).await;
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(revision(&server).await, before);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[resources.x]\nlevels = 3\n").unwrap();
    let refused = authzd(
        &server,
        &["schema", "write", bad.to_str().unwrap(), "--dry-run"],
        false,
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("INVALID_ARGUMENT"),
        "{refused:?}"
    );

    let wrote = authzd(
        &server,
        &["schema", "write", path, "--reason", "rank"],
        false,
    )
    .await;
    assert!(wrote.status.success(), "{wrote:?}");
    assert!(revision(&server).await > before);
    let same = authzd(&server, &["schema", "diff", path, "--json"], false).await;
    assert!(same.status.success(), "{same:?}");
    let json: serde_json::Value = serde_json::from_str(stdout(&same).trim()).unwrap();
    assert_eq!(json["same"], true);
    server.stop().await;
}
