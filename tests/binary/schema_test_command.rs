//! `authzd schema test FILE` with the real binary: every example's test
//! passes; a wrong assertion, a missing expected reason, a seed the API
//! refuses and a malformed file each fail with a message saying which.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `authzd schema test FILE`: whether it passed, and its stdout and
/// stderr together.
fn schema_test(file: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["schema", "test"])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A test file next to the app-roles example's schema, holding `body`.
fn fixture(dir: &Path, body: &str) -> PathBuf {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app-roles/schema.toml");
    let file = dir.join("test.toml");
    let text = format!(
        "schema = {:?}\ntenant = \"t\"\nsubjects = [{{ id = \"ada\" }}, {{ id = \"bob\" }}]\n\
         [[assignments]]\nrole = \"tenant_admin\"\nsubject = \"ada\"\n{body}",
        schema.display().to_string()
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn every_example_ships_a_passing_schema_test() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut ran = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("schema.toml").exists() {
            continue;
        }
        let test = dir.join("schema_test.toml");
        assert!(test.exists(), "{} has no schema_test.toml", dir.display());
        let (passed, out) = schema_test(&test);
        assert!(passed, "{}:\n{out}", test.display());
        assert!(out.contains(" passed, 0 failed"), "{out}");
        ran += 1;
    }
    assert!(ran >= 5, "{ran} examples");
}

#[test]
fn failures_name_the_assertion_and_explain_it() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = fixture(
        dir.path(),
        "[[assert]]\nsubject = \"ada\"\npermission = \"vault:manage\"\nallow = true\n\
         [[assert]]\nsubject = \"bob\"\npermission = \"vault:manage\"\nallow = true\n\
         [[assert]]\nsubject = \"bob\"\npermission = \"vault:read\"\nallow = false\nreasons = [\"subject_locked\"]\n",
    );
    let (passed, out) = schema_test(&wrong);
    assert!(!passed, "{out}");
    assert!(
        out.contains("ok    assert[0] ada vault:manage at the root: allowed"),
        "{out}"
    );
    assert!(
        out.contains("FAIL  assert[1] bob vault:manage at the root"),
        "{out}"
    );
    assert!(out.contains("expected allowed, got denied"), "{out}");
    assert!(out.contains("- no_grant: "), "the explanation: {out}");
    assert!(out.contains("FAIL  assert[2]"), "{out}");
    assert!(
        out.contains("expected reason subject_locked; explain gave no_grant"),
        "{out}"
    );
    assert!(out.contains("1 passed, 2 failed"), "{out}");
}

#[test]
fn bad_seeds_and_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bad_seed = fixture(
        dir.path(),
        "[[assignments]]\nrole = \"nosuchrole\"\nsubject = \"bob\"\n",
    );
    let (passed, out) = schema_test(&bad_seed);
    assert!(!passed);
    assert!(
        out.contains("assignments[1]: ") && out.contains("nosuchrole"),
        "{out}"
    );

    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        "schema = \"x.toml\"\nsubject = [{ id = \"carl\" }]\n",
    )
    .unwrap();
    let (passed, out) = schema_test(&typo);
    assert!(!passed);
    assert!(out.contains("unknown field `subject`"), "{out}");

    let unknown_field = fixture(dir.path(), "[[assert]]\nsubjekt = \"bob\"\n");
    let (passed, out) = schema_test(&unknown_field);
    assert!(!passed);
    assert!(out.contains("unknown field `subjekt`"), "{out}");

    let missing = dir.path().join("nope.toml");
    let (passed, out) = schema_test(&missing);
    assert!(!passed);
    assert!(out.contains("nope.toml"), "{out}");
}
