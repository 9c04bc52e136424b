//! Start-up failures of the real binary: each stops it with a non-zero exit
//! and one error line naming its cause, and a bad `--schema` is refused
//! before anything is created on disk.

use authzd_testkit as common;
use common::*;

use std::ffi::OsString;
use std::path::Path;

/// Runs `authzd serve --data DATA`, expects it to fail, and returns its
/// error (the error line and any lines of its message after it).
async fn refused(data: &Path, args: &[OsString]) -> String {
    let (ok, stderr) = serve_until_exit(data, args).await;
    assert!(!ok, "the server started: {stderr}");
    error_line(&stderr)
}

fn error_line(stderr: &str) -> String {
    let start = stderr
        .find(" ERROR ")
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    stderr[start..].to_owned()
}

/// A store file written by redb directly, with `table` as its only
/// only table: what another program (or another build of authzd) leaves.
fn foreign_store(data: &Path, table: &str, format_version: u64) {
    std::fs::create_dir_all(data).unwrap();
    let db = redb::Database::create(data.join("authzd.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let definition: redb::TableDefinition<&str, u64> = redb::TableDefinition::new(table);
        let mut t = txn.open_table(definition).unwrap();
        t.insert("format_version", format_version).unwrap();
    }
    txn.commit().unwrap();
}

/// A data path that is a file is named as not a directory.
#[tokio::test]
async fn a_file_as_data_folder_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let line = refused(&file, &[]).await;
    assert!(line.contains("is not a directory"), "{line}");
    assert!(line.contains("plain"), "{line}");
}

/// A data folder this user may not write is "permission denied". Run as
/// root, the binary is started without the capability that lets root write
/// anywhere, so the folder's mode decides as it would for anyone else.
#[tokio::test]
async fn an_unwritable_data_folder_is_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let data = locked.join("data");
    let privileged = std::fs::create_dir(locked.join("probe")).is_ok();
    let args = serve_args(&data, &[]);
    let command = if privileged {
        let mut wrapped: Vec<OsString> = vec![
            "--bounding-set=-dac_override,-dac_read_search".into(),
            env!("CARGO_BIN_EXE_authzd").into(),
        ];
        wrapped.extend(args);
        logged_command("setpriv", &wrapped)
    } else {
        logged_command(env!("CARGO_BIN_EXE_authzd"), &args)
    };
    let (ok, stderr) = run_until_exit(command).await;
    assert!(!ok, "the server started: {stderr}");
    let line = error_line(&stderr);
    assert!(line.contains("permission denied"), "{line}");
    assert!(!data.exists());
}

/// A second server over a folder in use names the other process.
#[tokio::test]
async fn a_folder_in_use_names_the_other_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = spawn_binary(&data, None).await;
    let line = refused(&data, &[]).await;
    assert!(
        line.contains(&format!(
            "another authzd process is using {}",
            data.display()
        )),
        "{line}"
    );
    drop(first);
}

/// Random bytes in place of the store are "not an authzd store or is
/// corrupt", and are left as they were.
#[tokio::test]
async fn a_corrupt_file_is_named_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(data.join("authzd.redb"), &garbage).unwrap();
    let line = refused(&data, &[]).await;
    assert!(
        line.contains("is not an authzd store or is corrupt"),
        "{line}"
    );
    assert_eq!(std::fs::read(data.join("authzd.redb")).unwrap(), garbage);
}

/// A redb file of another program is not an authzd store.
#[tokio::test]
async fn a_foreign_database_is_not_an_authzd_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    foreign_store(&data, "other_program", 1);
    let line = refused(&data, &[]).await;
    assert!(line.contains("it is not an authzd store"), "{line}");
}

/// A store of a later format names its version.
#[tokio::test]
async fn an_unknown_format_version_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    foreign_store(&data, "meta", 7);
    let line = refused(&data, &[]).await;
    assert!(line.contains("has format version 7"), "{line}");
}

/// A `--schema` that is missing, or does not validate, stops the server
/// before the data folder is created.
#[tokio::test]
async fn a_bad_schema_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("shcema.toml");
    let line = refused(&data, &["--schema".into(), missing.clone().into()]).await;
    assert!(line.contains("shcema.toml"), "{line}");
    assert!(!data.exists(), "the data folder was created");

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        "[resources.doc]\nlevels = [\"read\"]\nfollows = [\"nothing\"]\n",
    )
    .unwrap();
    let line = refused(&data, &["--schema".into(), invalid.into()]).await;
    assert!(line.contains("unknown resource type"), "{line}");
    assert!(!data.exists(), "the data folder was created");
}
