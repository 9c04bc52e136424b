//! The commerce-groups sync client keeps an external list equal to who
//! holds make:scenario_edit or make:app_developer, through every kind of
//! change, revocations included, and across its own restart.

use authzd_testkit as common;

#[allow(dead_code, reason = "the example's `main` and flags are not used here")]
#[path = "../../examples/commerce-groups/sync_client.rs"]
mod example;

use std::path::Path;

use authzd_server::api::pb;
use common::*;
use tokio::sync::{oneshot, watch};

const T: &str = "shop";

/// A running client and what stops it.
struct Client {
    applied: watch::Receiver<u64>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

fn start(server: &TestServer, dir: &Path) -> Client {
    let options = example::Options {
        target: server.addr.to_string(),
        tenant: T.into(),
        list: dir.join("make-users.txt"),
        checkpoint: dir.join("make-users.checkpoint"),
        client: Default::default(),
    };
    let (applied_tx, applied) = watch::channel(0);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        example::sync(options, applied_tx, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Client {
        applied,
        stop,
        task,
    }
}

impl Client {
    /// Waits until the client has applied `revision`, then reads the list.
    async fn list_at(&mut self, revision: u64, dir: &Path) -> Vec<String> {
        guard(
            "the sync client to catch up",
            self.applied.wait_for(|r| *r >= revision),
        )
        .await
        .unwrap();
        std::fs::read_to_string(dir.join("make-users.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn lock(server: &TestServer, subject: &str, locked: bool) -> u64 {
    let status = if locked {
        pb::SubjectStatus::Locked
    } else {
        pb::SubjectStatus::Active
    };
    server
        .directory()
        .await
        .update_subject(pb::UpdateSubjectRequest {
            tenant: T.into(),
            subject: Some(pb::Subject {
                id: subject.into(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// The list starts from a listing, follows gains and losses (membership,
/// role edits, locking), and after the client's restart resumes from its
/// checkpoint, catching up with what happened while it was down.
#[tokio::test]
async fn the_external_list_stays_exact() {
    let server =
        TestServer::start_with_schema(Path::new("examples/commerce-groups/schema.toml")).await;
    let dir = tempfile::tempdir().unwrap();
    for s in ["ann", "ben", "cat", "dan"] {
        create_subject(&server, T, s).await;
    }
    for g in ["editors", "viewers"] {
        create_group(&server, T, g).await;
    }
    let seeded = manage(
        &server,
        T,
        vec![
            assign("editor", group_principal("editors"), None),
            assign("viewer", group_principal("viewers"), None),
            add_member("editors", subject_principal("ann")),
            add_member("viewers", subject_principal("ben")),
        ],
    )
    .await;

    let mut client = start(&server, dir.path());
    assert_eq!(client.list_at(seeded, dir.path()).await, ["ann"]);

    let r = manage(
        &server,
        T,
        vec![add_member("editors", subject_principal("cat"))],
    )
    .await;
    assert_eq!(client.list_at(r, dir.path()).await, ["ann", "cat"]);
    let r = manage(
        &server,
        T,
        vec![remove_member("editors", subject_principal("ann"))],
    )
    .await;
    assert_eq!(
        client.list_at(r, dir.path()).await,
        ["cat"],
        "a revocation removes her"
    );
    let r = lock(&server, "cat", true).await;
    assert_eq!(
        client.list_at(r, dir.path()).await,
        Vec::<String>::new(),
        "a locked user loses everything"
    );

    client.stop().await;
    // While the client is down: cat is unlocked, dan joins, viewers gain make:app_developer.
    lock(&server, "cat", false).await;
    manage(
        &server,
        T,
        vec![add_member("editors", subject_principal("dan"))],
    )
    .await;
    server
        .directory()
        .await
        .create_role(pb::CreateRoleRequest {
            tenant: T.into(),
            role: Some(pb::Role {
                id: "builder".into(),
                grants: vec![pb::Grant {
                    permission: "make:app_developer".into(),
                    scopes: vec![],
                }],
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap();
    let r = manage(
        &server,
        T,
        vec![assign("builder", group_principal("viewers"), None)],
    )
    .await;

    let mut client = start(&server, dir.path());
    assert_eq!(client.list_at(r, dir.path()).await, ["ben", "cat", "dan"]);
    // Deleting the custom role revokes what it gave.
    let r = server
        .directory()
        .await
        .delete_role(pb::DeleteRequest {
            tenant: T.into(),
            id: "builder".into(),
            options: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revision;
    assert_eq!(client.list_at(r, dir.path()).await, ["cat", "dan"]);
    client.stop().await;
    server.stop().await;
}
