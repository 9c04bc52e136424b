//! `ReplicationService` over gRPC, as a replica's primary serves it: what
//! `Follow` sends (every revision, in order, other tenants' emptied), what
//! `Snapshot` sends, and how both refuse: a revision ahead or pruned, a
//! malformed tenant, a token bound to another tenant, too many snapshots.

use authzd_testkit as common;
use common::*;

use authzd_core::model::{Change, ChangeSet};
use authzd_server::api::pb;
use authzd_server::api::pb::replication_service_client::ReplicationServiceClient;
use authzd_service::auth::Limits;

const OTHER: &str = "globex";

async fn follow(
    server: &TestServer,
    after: u64,
    tenants: &[&str],
) -> Result<tonic::Streaming<pb::FollowReply>, tonic::Status> {
    ReplicationServiceClient::new(server.authed().await)
        .follow(pb::FollowRequest {
            after_revision: after,
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Reads Follow messages until the entries reach `through`.
async fn entries_through(
    stream: &mut tonic::Streaming<pb::FollowReply>,
    through: u64,
) -> Vec<ChangeSet> {
    let mut out: Vec<ChangeSet> = Vec::new();
    guard("follow entries", async {
        while out.last().is_none_or(|s| s.revision.0 < through) {
            let reply = stream.message().await.unwrap().unwrap();
            assert_eq!(reply.record_format, authzd_proto::RECORD_FORMAT);
            for entry in &reply.entries {
                out.push(serde_json::from_slice(entry).unwrap());
            }
        }
    })
    .await;
    out
}

/// Follow sends every revision after the one asked for, each the one after
/// the last, then live; a tenant outside the request arrives emptied (its
/// revision and time only), the followed tenant's and the schema's whole.
#[tokio::test]
async fn follow_sends_every_revision_in_order_with_other_tenants_emptied() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    create_subject(&server, OTHER, "bob").await;
    let mut stream = follow(&server, 0, &[ACME]).await.unwrap();
    let live = create_subject(&server, OTHER, "carol").await;
    let last = create_subject(&server, ACME, "dave").await;
    let sets = entries_through(&mut stream, last).await;
    let revisions: Vec<u64> = sets.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, (1..=last).collect::<Vec<_>>());
    assert!(matches!(sets[0].changes[..], [Change::SchemaWritten(_)]));
    for set in &sets[1..] {
        match set.tenant.as_ref().map(|t| t.as_str()) {
            Some(ACME) => assert!(!set.changes.is_empty()),
            None => assert!(set.changes.is_empty() && set.effects.is_empty()),
            other => panic!("r{}: tenant {other:?} leaked", set.revision),
        }
    }
    assert!(sets[live as usize - 1].tenant.is_none());
}

/// Follow after the latest revision is OUT_OF_RANGE; after a revision the
/// changelog no longer retains, FAILED_PRECONDITION (take a snapshot); a
/// malformed tenant, or more tenants than the bound, is INVALID_ARGUMENT
/// naming the field.
#[tokio::test]
async fn follow_refuses_what_it_cannot_continue() {
    let server = TestServer::start_with(|c| c.retain_revisions = 2).await;
    let mut last = 0;
    for i in 0..5 {
        last = create_subject(&server, ACME, &format!("s{i}")).await;
    }
    let ahead = follow(&server, last + 1, &[]).await.unwrap_err();
    assert_eq!(ahead.code(), Code::OutOfRange, "{ahead:?}");
    let pruned = follow(&server, 1, &[]).await.unwrap_err();
    assert_eq!(pruned.code(), Code::FailedPrecondition, "{pruned:?}");
    let bad = follow(&server, last, &["no such/tenant"])
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("tenants[0]"), "{}", bad.message());
    let many: Vec<String> = (0..=authzd_core::limits::MAX_REPLICATED_TENANTS)
        .map(|i| format!("t{i}"))
        .collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let too_many = follow(&server, last, &names).await.unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(
        too_many.message().starts_with("tenants:"),
        "{}",
        too_many.message()
    );
    // The latest revision itself is a valid place to go on from.
    follow(&server, last, &[]).await.unwrap();
}

/// The snapshot of chunks in order: the schema first, then the named
/// tenant's records (only it), then `done`, every message at one revision.
#[tokio::test]
async fn a_snapshot_holds_the_named_tenants_at_one_revision() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    let revision = create_subject(&server, OTHER, "bob").await;
    let chunks = snapshot(&server.authed().await, &[ACME]).await.unwrap();
    assert!(chunks.iter().all(|c| c.revision == revision));
    assert!(!chunks[0].schema.is_empty());
    assert!(chunks.last().unwrap().done);
    let tenants: Vec<&str> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| c.tenant.as_str())
        .collect();
    assert_eq!(tenants, vec![ACME]);
    let records: Vec<Change> = chunks[1]
        .records
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap())
        .collect();
    assert!(matches!(records[0], Change::TenantPut(_)));
    assert!(
        records
            .iter()
            .any(|c| matches!(c, Change::SubjectPut(s) if s.id.as_str() == "alice"))
    );
}

async fn snapshot(
    channel: &Authed,
    tenants: &[&str],
) -> Result<Vec<pb::SnapshotReply>, tonic::Status> {
    let mut stream = ReplicationServiceClient::new(channel.clone())
        .snapshot(pb::SnapshotRequest {
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = guard("a snapshot chunk", stream.message()).await? {
        out.push(chunk);
    }
    Ok(out)
}

/// A read token may replicate; a token bound to acme gets acme alone when
/// it names no tenant, and PERMISSION_DENIED when it names another; no
/// token is UNAUTHENTICATED.
#[tokio::test]
async fn replication_needs_a_read_token_and_keeps_to_its_tenant() {
    let tokens = [
        token_entry("reader", "read", "", "s-read"),
        token_entry("acme-reader", "read", ACME, "s-acme-read"),
    ]
    .concat();
    let server = TestServer::start_with_tokens(&tokens, Limits::default()).await;
    create_subject(&server, ACME, "alice").await;
    create_subject(&server, OTHER, "bob").await;
    let as_token = |secret: &'static str| {
        let server = &server;
        async move {
            tonic::service::interceptor::InterceptedService::new(
                server.channel().await,
                Bearer::from_secret(secret, "the test").unwrap(),
            )
        }
    };
    let all = snapshot(&as_token("s-read").await, &[]).await.unwrap();
    let tenants = |chunks: &[pb::SnapshotReply]| {
        let mut t: Vec<String> = chunks
            .iter()
            .filter(|c| !c.tenant.is_empty())
            .map(|c| c.tenant.clone())
            .collect();
        t.dedup();
        t
    };
    assert_eq!(tenants(&all), vec![ACME.to_string(), OTHER.to_string()]);
    let bound = as_token("s-acme-read").await;
    assert_eq!(
        tenants(&snapshot(&bound, &[]).await.unwrap()),
        vec![ACME.to_string()]
    );
    let refused = snapshot(&bound, &[OTHER]).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let anonymous = ReplicationServiceClient::new(server.channel().await)
        .follow(pb::FollowRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

/// More snapshots at once than the bound are refused with
/// RESOURCE_EXHAUSTED while the others stream (a state of several
/// megabytes, more than HTTP/2 lets a server send unread); one more is
/// taken once they are done.
#[tokio::test]
async fn concurrent_snapshots_are_bounded() {
    let server = TestServer::start().await;
    let value = "v".repeat(1000);
    for i in 0..120 {
        let attributes = (0..64).map(|a| (format!("a{a}"), value.clone())).collect();
        put_subject(
            &server,
            ACME,
            pb::Subject {
                id: format!("fat{i}"),
                attributes,
                ..Default::default()
            },
        )
        .await;
    }
    let channel = server.authed().await;
    let mut open = Vec::new();
    for _ in 0..authzd_core::limits::MAX_SNAPSHOTS {
        let stream = ReplicationServiceClient::new(channel.clone())
            .snapshot(pb::SnapshotRequest::default())
            .await
            .unwrap()
            .into_inner();
        open.push(stream);
    }
    let refused = snapshot(&channel, &[]).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    for mut stream in open {
        while guard("a chunk", stream.message()).await.unwrap().is_some() {}
    }
    snapshot(&channel, &[]).await.unwrap();
}
