//! The binary's logs: `--log-format json` writes one JSON object per line
//! (the access log included), and text logs carry no ANSI colour codes
//! when stderr is not a terminal.

use authzd_testkit as common;
use common::*;

use std::ffi::OsString;

fn parsed(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"))
}

/// With `--log-format json` the serving line and an access-log line are
/// each one JSON object with level, target and fields.
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let binary = spawn_binary_with(
        &dir.path().join("data"),
        &["--log-format".into(), "json".into()],
    )
    .await;
    tonic_health::pb::health_client::HealthClient::new(binary.channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    let line = binary.wait_for_line("authzd::access");
    let entry = parsed(&line);
    assert_eq!(entry["level"], "INFO", "{line}");
    assert_eq!(entry["target"], "authzd::access", "{line}");
    assert_eq!(entry["fields"]["message"], "call", "{line}");
    assert_eq!(entry["fields"]["method"], "open", "{line}");
    assert!(entry["timestamp"].is_string(), "{line}");
}

/// A start that fails logs its error as JSON lines too, every line whole.
#[tokio::test]
async fn a_failed_start_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let (ok, stderr) = serve_until_exit(&file, &["--log-format".into(), "json".into()]).await;
    assert!(!ok);
    let lines: Vec<serde_json::Value> = stderr.lines().map(parsed).collect();
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error in {stderr}"));
    assert!(
        error["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("is not a directory")),
        "{error}"
    );
}

/// Text logs to a pipe (not a terminal) have no escape codes, even with
/// `NO_COLOR` unset.
#[tokio::test]
async fn text_logs_to_a_pipe_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let args: Vec<OsString> = serve_args(&file, &[]);
    let mut command = logged_command(env!("CARGO_BIN_EXE_authzd"), &args);
    command.env_remove("NO_COLOR");
    let (ok, stderr) = run_until_exit(command).await;
    assert!(!ok);
    assert!(stderr.contains(" ERROR "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}
