//! Durability: a graceful restart over the same data folder keeps
//! everything and continues the revision sequence; an acknowledged write
//! survives `kill -9` of the real binary.

use authzd_testkit as common;
use common::*;

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
        authzd_core::schema::DEFAULT_SCHEMA
    );
    server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: schema.clone(),
            dry_run: false,
            expected_revision: 0,
            ..Default::default()
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

/// The log-line parser finds the port in text lines, with and without
/// colour codes, and in JSON lines.
#[test]
fn announced_port_parses_plain_coloured_and_json_lines() {
    let plain = "2024-01-01T00:00:00Z  INFO authzd: authzd serving listen=127.0.0.1:40123 data=/tmp/x revision=0";
    assert_eq!(announced_port(plain), Some(40123));
    let coloured = "\u{1b}[2m2024\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m authzd serving \u{1b}[3mlisten\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:5555 \u{1b}[3mdata\u{1b}[0m";
    assert_eq!(announced_port(coloured), Some(5555));
    let json = r#"{"timestamp":"2024-01-01T00:00:00Z","level":"INFO","fields":{"message":"authzd serving","listen":"127.0.0.1:6000","data":"d"},"target":"authzd"}"#;
    assert_eq!(announced_port(json), Some(6000));
    assert_eq!(announced_port("something else listen=127.0.0.1:1"), None);
}

/// A write acknowledged by the real binary survives SIGKILL right after the
/// acknowledgement: a new process over the same folder has it, at the
/// acknowledged revision.
#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_binary(dir.path(), None).await;
    let ch = first.channel().await;
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

    let second = spawn_binary(dir.path(), None).await;
    let ch = second.channel().await;
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

/// A page token outlives a restart (it carries no per-process secret):
/// for every paged list, the token the first server issued gives the new
/// server's next page, and it is the page the first server gave.
#[tokio::test]
async fn page_tokens_outlive_a_restart() {
    use common::lists::{List, Query, seed_lists};
    let server = TestServer::start().await;
    seed_lists(&server, ACME).await;
    let mut before = Vec::new();
    for list in List::ALL {
        let (_, token) = list.page(&server, ACME, Query::One, 2, "").await.unwrap();
        let next = list
            .page(&server, ACME, Query::One, 2, &token)
            .await
            .unwrap();
        before.push((list, token, next));
    }
    let dir = server.stop().await.expect("the harness owns the folder");
    let server = TestServer::start_at(dir.path(), None).await;
    for (list, token, next) in before {
        let after = list.page(&server, ACME, Query::One, 2, &token).await;
        assert_eq!(
            after.map_err(|s| s.message().to_string()),
            Ok(next),
            "{list:?}"
        );
    }
    server.stop().await;
}
