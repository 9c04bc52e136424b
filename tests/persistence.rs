#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Durability: a graceful restart over the same data folder keeps
//! everything and continues the revision sequence; an acknowledged write
//! survives `kill -9` of the real binary.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Writes a little of everything, stops the server, starts a new one over
/// the same folder: every record, grant, setting, the schema and the
/// changelog are there, and the next write gets the next revision.
#[tokio::test]
async fn a_restart_keeps_everything_and_continues_the_revision() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_scope(&server, ACME, "berlin", "eu").await;
    create_subject_at(&server, ACME, "alice", "berlin").await;
    create_subject(&server, ACME, "bob").await;
    create_group(&server, ACME, "writers").await;
    create_role(
        &server,
        ACME,
        "pinned",
        vec![grant("document:manage", &["berlin"])],
    )
    .await;
    manage(
        &server,
        ACME,
        vec![
            add_member("writers", subject_principal("alice")),
            assign("editor", group_principal("writers"), scope_target("eu")),
            assign("pinned", subject_principal("bob"), None),
            assign_until("viewer", subject_principal("bob"), None, from_now(3600)),
        ],
    )
    .await;
    set_locked(&server, ACME, "bob", true).await;
    set_disabled(&server, "other", &["comment"]).await;
    let before = revision(&server).await;
    let assignments_before = assignments(&server, ACME).await;

    let dir = server.stop().await.expect("the harness owns the folder");
    let server = TestServer::start_at(dir.path(), None).await;
    assert_eq!(revision(&server).await, before);
    assert!(check(&server, ACME, "alice", "document:edit", "berlin").await);
    assert!(!check(&server, ACME, "alice", "document:edit", "").await);
    assert_eq!(members(&server, ACME, "writers").await, ["subject:alice"]);
    assert_eq!(assignments(&server, ACME).await, assignments_before);
    assert!(
        !check(&server, ACME, "bob", "document:read", "").await,
        "still locked"
    );
    set_locked(&server, ACME, "bob", false).await;
    assert!(check(&server, ACME, "bob", "document:manage", "berlin").await);
    assert!(!check(&server, ACME, "bob", "document:manage", "eu").await);
    let alice = server
        .directory()
        .await
        .get_subject(pb::GetRequest {
            tenant: ACME.into(),
            id: "alice".into(),
            at_least_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice.subject.unwrap().home_scope, "berlin");
    let other = server
        .directory()
        .await
        .get_tenant(pb::GetTenantRequest {
            tenant: "other".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        other.tenant.unwrap().settings.unwrap().disabled_resources,
        ["comment"]
    );

    // The unlock above was the first write after the restart.
    assert_eq!(revision(&server).await, before + 1);
    // The changelog survived too: a watch from 0 replays from revision 1.
    let mut stream = watch(&server, ACME, 0, "").await;
    assert_eq!(next_event(&mut stream).await.revision, 1);
    drop(stream);
    server.stop().await;
    drop(dir);
}

/// A schema written through the API is the one in force after a restart.
#[tokio::test]
async fn a_written_schema_survives_a_restart() {
    let server = TestServer::start().await;
    let schema = format!(
        "{}\n[resources.report]\nlevels = [\"read\", \"write\"]\n",
        authzd::schema::DEFAULT_SCHEMA
    );
    server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: schema.clone(),
            dry_run: false,
            expected_revision: 0,
        })
        .await
        .unwrap();
    create_role(&server, ACME, "reporter", vec![grant("report:write", &[])]).await;
    let dir = server.stop().await.unwrap();
    let server = TestServer::start_at(dir.path(), None).await;
    let read = server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(read.schema == schema, "the written schema was not kept");
    create_subject(&server, ACME, "rex").await;
    manage(
        &server,
        ACME,
        vec![assign("reporter", subject_principal("rex"), None)],
    )
    .await;
    assert!(check(&server, ACME, "rex", "report:read", "").await);
    server.stop().await;
    drop(dir);
}

/// The real binary serving over `data`, and the port it announced.
struct Binary {
    child: Child,
    port: u16,
}

impl Drop for Binary {
    /// A failing test must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes ANSI escape sequences (colour codes) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters... final byte in '@'..='~'.
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The port of a `listen=127.0.0.1:PORT` field on an "authzd serving" line.
fn announced_port(line: &str) -> Option<u16> {
    let line = strip_ansi(line);
    if !line.contains("authzd serving") {
        return None;
    }
    let rest = &line[line.find("listen=")? + "listen=".len()..];
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    addr.rsplit_once(':')?.1.parse().ok()
}

/// Starts `authzd serve` on port 0 over `data` and waits for its announcement.
async fn spawn_binary(data: &Path) -> Binary {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authzd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains stderr for the child's whole life, so it never blocks on a
    // full pipe; ends at EOF when the child dies.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(port) = announced_port(&line) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(port);
                }
            }
        }
    });
    let port = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the binary did not announce `authzd serving ... listen=`");
    Binary { child, port }
}

async fn channel(port: u16) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The log-line parser finds the port with and without colour codes.
#[test]
fn announced_port_parses_plain_and_coloured_lines() {
    let plain = "2024-01-01T00:00:00Z  INFO authzd: authzd serving listen=127.0.0.1:40123 data=/tmp/x revision=0";
    assert_eq!(announced_port(plain), Some(40123));
    let coloured = "\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m authzd serving \u{1b}[3mlisten\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:5555 \u{1b}[3mdata\u{1b}[0m";
    assert_eq!(announced_port(coloured), Some(5555));
    assert_eq!(announced_port("something else listen=127.0.0.1:1"), None);
}

/// A write acknowledged by the real binary survives SIGKILL right after the
/// acknowledgement: a new process over the same folder has it, at the
/// acknowledged revision.
#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_binary(dir.path()).await;
    let ch = channel(first.port).await;
    let mut d = DirectoryServiceClient::new(ch.clone());
    let mut m = MembershipServiceClient::new(ch);
    d.create_subject(pb::CreateSubjectRequest {
        tenant: ACME.into(),
        subject: Some(pb::Subject {
            id: "alice".into(),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
    let acked = m
        .manage_membership(batch(
            ACME,
            vec![assign("editor", subject_principal("alice"), None)],
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = spawn_binary(dir.path()).await;
    let ch = channel(second.port).await;
    let reply = AccessServiceClient::new(ch.clone())
        .check_access(check_request(ACME, "alice", "document:edit", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.allowed, "the acknowledged assignment was lost");
    assert_eq!(reply.revision, acked);
    let next = MembershipServiceClient::new(ch)
        .manage_membership(batch(
            ACME,
            vec![assign("viewer", subject_principal("alice"), None)],
            None,
        ))
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(next, acked + 1);
    drop(second);
}
