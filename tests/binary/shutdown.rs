//! Shutdown of the real binary on SIGTERM: health turns NOT_SERVING, open
//! health watches and `Watch` streams end with UNAVAILABLE (the feed's
//! naming the revision to resume after), and the process exits, after at
//! most the grace period even while a client holds a stream open.

use authzd_testkit as common;
use common::*;

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// SIGTERM with a health watch and a `Watch` open: the health watch sees
/// NOT_SERVING and then UNAVAILABLE, the `Watch` ends with UNAVAILABLE
/// naming the revision to resume after, and the process exits 0. (Two
/// worker threads: the test blocks one waiting for the exit, while the
/// other lets the client answer the server's goodbye, as any live client
/// does.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_streams_with_unavailable_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = spawn_binary(&dir.path().join("data"), None).await;
    let channel = binary.channel().await;
    let mut health = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = guard("the first health status", health.message()).await;
    assert_eq!(first.unwrap().unwrap().status(), ServingStatus::Serving);
    let mut feed = WatchServiceClient::new(channel)
        .watch(pb::WatchRequest {
            tenant: ACME.into(),
            after_revision: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let status = binary.terminate();
    assert!(status.success(), "{status}");

    let next = guard("NOT_SERVING", health.message()).await.unwrap();
    assert_eq!(next.unwrap().status(), ServingStatus::NotServing);
    let end = loop {
        match guard("the end of the health watch", health.message()).await {
            Ok(Some(m)) => assert_eq!(m.status(), ServingStatus::NotServing),
            Ok(None) => panic!("the health watch ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");

    let end = loop {
        match guard("the end of the feed", feed.message()).await {
            Ok(Some(m)) => assert!(m.progress, "{m:?}"),
            Ok(None) => panic!("the feed ended with OK"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(
        end.message().contains("resume with after_revision = 1"),
        "{end:?}"
    );
}

/// A client that holds a stream the server cannot end (server reflection,
/// a bidirectional stream the client never closes) does not keep the
/// process alive past `--shutdown-grace-secs`: it exits 0 and says why.
#[tokio::test]
async fn a_held_stream_does_not_outlast_the_grace_period() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request};
    let dir = tempfile::tempdir().unwrap();
    let mut binary = spawn_binary_with(
        &dir.path().join("data"),
        &["--shutdown-grace-secs".into(), "1".into()],
    )
    .await;
    let (requests, held) = tokio::sync::mpsc::channel(1);
    requests
        .send(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        })
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(binary.channel().await)
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(held))
        .await
        .unwrap()
        .into_inner();
    let listed = guard("the list of services", reflection.message()).await;
    assert!(listed.unwrap().is_some());

    let status = binary.terminate();
    assert!(status.success(), "{status}");
    let line = binary.wait_for_line("shutdown grace period");
    assert!(line.contains("WARN"), "{line}");
    drop(requests);
}
