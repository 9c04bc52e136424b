//! `MembershipService/Import`: chunks of a bulk import over gRPC, against
//! the in-process server and the real binary (for `kill -9`).

use authzd_testkit as common;

use std::collections::BTreeMap;

use authzd_core::limits::MAX_BATCH_OPERATIONS;
use common::*;

const T: &str = "acme";

fn subject(id: &str) -> pb::Subject {
    pb::Subject {
        id: id.into(),
        ..Default::default()
    }
}

fn group(id: &str) -> pb::Group {
    pb::Group {
        id: id.into(),
        title: id.into(),
        condition: String::new(),
    }
}

fn member(group: &str, subject: &str) -> pb::AddMember {
    pb::AddMember {
        group: group.into(),
        member: subject_principal(subject),
        precondition: 0,
    }
}

fn role(role: &str, group: &str) -> pb::AssignRole {
    pb::AssignRole {
        role: role.into(),
        principal: group_principal(group),
        target: None,
        expires_at: None,
        precondition: 0,
    }
}

/// A chunk: `n` subjects named `{prefix}{i}`, all in a new group `prefix`
/// that holds `viewer` at the root.
fn chunk(prefix: &str, n: usize, key: &str) -> pb::ImportRequest {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    pb::ImportRequest {
        tenant: T.into(),
        subjects: ids.iter().map(|id| subject(id)).collect(),
        groups: vec![group(prefix)],
        memberships: ids.iter().map(|id| member(prefix, id)).collect(),
        assignments: vec![role("viewer", prefix)],
        options: Some(pb::WriteOptions {
            idempotency_key: key.into(),
            ..Default::default()
        }),
        dry_run: false,
    }
}

/// The revision a chunk committed as.
fn committed(reply: Result<tonic::Response<pb::ImportResponse>, tonic::Status>) -> u64 {
    reply.unwrap().into_inner().revision
}

/// A chunk commits as one revision, and what it sets up holds at once:
/// its subjects are in its group and hold the group's role.
#[tokio::test]
async fn a_chunk_is_one_revision() {
    let server = TestServer::start().await;
    let before = revision(&server).await;
    let mut m = server.membership().await;
    let at = committed(m.import(chunk("team", 20, "")).await);
    assert_eq!(at, before + 1);
    assert_eq!(members(&server, T, "team").await.len(), 20);
    assert!(check(&server, T, "team19", "document:read", "").await);
}

/// One bad record anywhere in a chunk refuses the whole chunk with the
/// record's list and index, and nothing of it is written: neither a
/// malformed one (caught while decoding) nor one the rules refuse (caught
/// while planning, after the records before it were planned).
#[tokio::test]
async fn one_bad_record_changes_nothing_and_is_named() {
    let server = TestServer::start().await;
    let mut m = server.membership().await;
    let before = revision(&server).await;

    let mut malformed = chunk("team", 10, "");
    malformed.subjects[3].id = "not an id!".into();
    assert_status(
        m.import(malformed).await,
        Code::InvalidArgument,
        "subjects[3].id",
    );

    let mut refused = chunk("team", 10, "");
    refused.memberships[7].group = "nowhere".into();
    let status = assert_status(m.import(refused).await, Code::NotFound, "memberships[7]");
    assert!(status.message().contains("nowhere"), "{}", status.message());

    let mut unknown_role = chunk("team", 10, "");
    unknown_role.assignments[0].role = "no-such-role".into();
    assert_status(
        m.import(unknown_role).await,
        Code::NotFound,
        "assignments[0]",
    );

    assert_eq!(revision(&server).await, before, "a refused chunk wrote");
    let listed = server
        .directory()
        .await
        .list_subjects(pb::ListRequest {
            tenant: T.into(),
            ..Default::default()
        })
        .await;
    let subjects = listed.map(|r| r.into_inner().subjects).unwrap_or_default();
    assert!(subjects.is_empty(), "{subjects:?}");
}

/// The per-chunk limit is [`MAX_BATCH_OPERATIONS`] records over all lists:
/// a chunk of exactly that many is taken, one more is refused before
/// anything is planned.
#[tokio::test]
async fn a_chunk_holds_at_most_the_batch_limit() {
    let server = TestServer::start().await;
    let mut m = server.membership().await;
    // One group, its role, and subjects with memberships: two records each.
    let subjects = (MAX_BATCH_OPERATIONS - 2) / 2;
    let full = chunk("big", subjects, "");
    let records = full.subjects.len() + full.groups.len() + full.memberships.len() + 1;
    assert_eq!(records, MAX_BATCH_OPERATIONS);
    let before = revision(&server).await;
    assert_eq!(committed(m.import(full).await), before + 1);

    let mut over = chunk("more", subjects, "");
    over.subjects.push(subject("one-too-many"));
    assert_status(m.import(over).await, Code::InvalidArgument, "at most");
    assert_status(
        m.import(pb::ImportRequest {
            tenant: T.into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "at least one record",
    );
    assert_eq!(revision(&server).await, before + 1);
}

/// Every subject put in the tenant's changelog, with how many times.
async fn subject_puts(channel: tonic::transport::Channel, latest: u64) -> BTreeMap<String, usize> {
    let mut stream = WatchServiceClient::new(channel)
        .watch(pb::WatchRequest {
            tenant: T.into(),
            after_revision: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut puts = BTreeMap::new();
    // Every revision of the tenant comes once; a bound keeps a bug finite.
    for _ in 0..=latest {
        let whole = next_whole_revision(&mut stream).await;
        for change in whole.changes {
            if let Some(pb::change::Change::SubjectPut(s)) = change.change {
                *puts.entry(s.id).or_insert(0) += 1;
            }
        }
        if whole.revision >= latest {
            break;
        }
    }
    puts
}

/// An import killed with SIGKILL resumes over the same folder without
/// duplicates: a chunk retried with its idempotency key is answered with
/// its first revision and writes nothing, a chunk loaded again without one
/// changes nothing, and every subject enters the changelog once.
#[tokio::test]
async fn an_import_resumes_after_kill_9_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_binary(dir.path(), None).await;
    let mut m = MembershipServiceClient::new(first.channel().await);
    let one = committed(m.import(chunk("a", 50, "chunk-1")).await);
    let two = committed(m.import(chunk("b", 50, "chunk-2")).await);
    assert_eq!(two, one + 1);
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = spawn_binary(dir.path(), None).await;
    let channel = second.channel().await;
    let mut m = MembershipServiceClient::new(channel.clone());
    assert_eq!(committed(m.import(chunk("b", 50, "chunk-2")).await), two);
    assert_eq!(committed(m.import(chunk("a", 50, "")).await), two);
    let three = committed(m.import(chunk("c", 50, "chunk-3")).await);
    assert_eq!(three, two + 1);

    let puts = subject_puts(channel, three).await;
    assert_eq!(puts.len(), 150);
    let repeated: Vec<_> = puts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "subjects put more than once: {repeated:?}"
    );
}
