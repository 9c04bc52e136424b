//! `authzd serve --config FILE` with the real binary: the file sets flags,
//! an `AUTHZD_*` variable beats the file, the command line beats both, and
//! an unknown key or a bad value stops the server naming it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `authzd serve ARGS` with `env`, returns the data folder its
/// serving line names (killing it then), or its stderr if it exited.
fn served_data(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authzd"));
    command
        .arg("serve")
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    for var in [
        "AUTHZD_DATA",
        "AUTHZD_LISTEN",
        "AUTHZD_CONFIG",
        "AUTHZD_RETAIN_REVISIONS",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // Bounded by the child: it either announces itself or exits (EOF).
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("authzd serving") {
            child.kill().unwrap();
            child.wait().unwrap();
            let data = line.split(" data=").nth(1).unwrap();
            return Ok(data.split_whitespace().next().unwrap().to_string());
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    child.wait().unwrap();
    Err(seen)
}

fn write_config(dir: &Path, body: &str) -> String {
    let file = dir.join("authzd.toml");
    std::fs::write(&file, body).unwrap();
    file.display().to_string()
}

#[test]
fn precedence_is_command_line_then_environment_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|d| dir.path().join(d).display().to_string());
    let config = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:0\"\ndata = {a:?}\nretain-revisions = 500\ninsecure = false\n"
        ),
    );
    assert_eq!(served_data(&["--config", &config], &[]), Ok(a.clone()));
    assert_eq!(
        served_data(&["--config", &config], &[("AUTHZD_DATA", &b)]),
        Ok(b.clone())
    );
    assert_eq!(
        served_data(&["--config", &config, "--data", &c], &[("AUTHZD_DATA", &b)]),
        Ok(c.clone())
    );
    // The file itself can come from the environment.
    assert_eq!(served_data(&[], &[("AUTHZD_CONFIG", &config)]), Ok(a));
}

/// An unknown key (with the closest known one suggested) and a value its
/// flag refuses (a word, a negative number) stop the server with the file
/// and the key named; nothing is created.
#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d").display().to_string();
    let typo = write_config(
        dir.path(),
        &format!("data = {data:?}\nretain-revision = 5\n"),
    );
    let out = served_data(&["--config", &typo, "--listen", "127.0.0.1:0"], &[]).unwrap_err();
    assert!(out.contains("unknown key \"retain-revision\""), "{out}");
    let bad = write_config(
        dir.path(),
        &format!("data = {data:?}\nretain-revisions = \"many\"\n"),
    );
    let out = served_data(&["--config", &bad, "--listen", "127.0.0.1:0"], &[]).unwrap_err();
    assert!(
        out.contains("authzd.toml") && out.contains("--retain-revisions"),
        "{out}"
    );
    // A negative number is the key's value, refused naming the key; an
    // unknown key gets the closest one.
    let negative = write_config(
        dir.path(),
        &format!("data = {data:?}\nretain-revisions = -5\n"),
    );
    let out = served_data(&["--config", &negative, "--listen", "127.0.0.1:0"], &[]).unwrap_err();
    assert!(
        out.contains("authzd.toml: retain-revisions: invalid value '-5'"),
        "{out}"
    );
    let lisen = write_config(dir.path(), &format!("data = {data:?}\nlisen = \"x\"\n"));
    let out = served_data(&["--config", &lisen], &[]).unwrap_err();
    assert!(
        out.contains("unknown key \"lisen\"; did you mean \"listen\"?"),
        "{out}"
    );
    assert!(!Path::new(&data).exists(), "nothing created");
}
