//! The bound on what every Watch stream holds together: stalled subscribers
//! are ended, furthest behind first and resumably, before they can make
//! the server hold more than `watch_memory`.

use authzd_testkit as common;

use authzd_server::api::pb;
use common::*;

const T: &str = "acme";

/// Forty subscribers that never read, over a connection whose HTTP/2
/// window lets little through, and one that reads everything: while two
/// hundred writes commit, the bytes the Watch streams hold never pass the
/// budget; the stalled subscribers that do not fit are ended with
/// RESOURCE_EXHAUSTED naming the last revision they received completely,
/// and resuming from it delivers the rest; the reading subscriber gets every revision; and checks answer
/// all along.
#[tokio::test]
async fn stalled_subscribers_are_ended_within_the_budget_for_all() {
    let limit = 96 << 10;
    let server = TestServer::start_with(|c| c.watch_memory = limit).await;
    let people: Vec<String> = (0..4).map(|i| format!("u{i}")).collect();
    let mut start = 0;
    for p in &people {
        start = create_subject(&server, T, p).await;
    }
    let narrow = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut stalled = Vec::new();
    for _ in 0..40 {
        stalled.push(watch_over(&narrow, T, start).await);
    }
    let mut reader = watch_over(&server.channel().await, T, start).await;

    let mut m = server.membership().await;
    let mut a = server.access().await;
    let mut latest = start;
    for i in 0..200 {
        let op = if i % 2 == 0 { assign } else { unassign };
        let operations = people
            .iter()
            .map(|p| op("admin", subject_principal(p), None))
            .collect();
        latest = m
            .manage_membership(pb::ManageMembershipRequest {
                tenant: T.into(),
                operations,
                options: None,
                dry_run: false,
            })
            .await
            .unwrap()
            .into_inner()
            .revision;
        assert_eq!(next_event(&mut reader).await.revision, latest);
        let allowed = a
            .check_access(check_request(T, "u1", "users:admin", ""))
            .await
            .unwrap()
            .into_inner()
            .allowed;
        assert_eq!(allowed, i % 2 == 0, "checks answer while subscribers stall");
    }
    let held = server.service.watch_held();
    assert!(held.peak <= limit, "{held:?}");

    // Read together: they share one narrow connection, whose window opens
    // only as all of them are read. A subscriber whose messages fit under
    // the budget may stay; those past it are ended.
    let readers: Vec<_> = stalled
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut last = start;
                while last < latest {
                    match guard("a stalled stream", stream.message()).await {
                        Ok(Some(m)) if m.progress => {}
                        Ok(Some(m)) => {
                            assert_eq!(m.revision, last + 1, "no revision skipped");
                            last = m.revision;
                        }
                        Ok(None) => panic!("a stalled stream ended without an error"),
                        Err(status) => return Some((last, status)),
                    }
                }
                None
            })
        })
        .collect();
    let mut resume_points = Vec::new();
    for reader in readers {
        let Some((last, status)) = reader.await.unwrap() else {
            continue;
        };
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .contains(&format!("resume with after_revision = {last}")),
            "{}",
            status.message()
        );
        resume_points.push(last);
    }
    assert!(
        resume_points.len() >= 30,
        "only {} of 40 stalled subscribers were ended",
        resume_points.len()
    );
    let resume = resume_points.iter().copied().min().unwrap();
    let mut resumed = watch_over(&server.channel().await, T, resume).await;
    for expected in resume + 1..=latest {
        assert_eq!(next_event(&mut resumed).await.revision, expected);
    }
    drop(resumed);
    drop(reader);
    let held = server.service.watch_held();
    assert!(held.peak <= limit, "{held:?}");
    server.stop().await;
}

/// Forty subscribers that never read share one connection while a thousand
/// writes each change one permission, so every message is small (about 90
/// bytes; the test above sends messages over 256 bytes, which is why it
/// never saw this). Small DATA frames held unread made the client's own
/// HTTP/2 library close the connection (`ENHANCE_YOUR_CALM`, reported as
/// RESOURCE_EXHAUSTED "h2 protocol error") before any stream's window
/// filled, so no subscriber could learn where to resume. With the client's
/// connection window ([`authzd_client::http2_windows`]) each stream's
/// window fills first, the server stops sending, the subscribers are ended
/// (by the budget, or by falling out of the live feed's ring of 256
/// revisions while their transport no longer asks), and each learns, when
/// it reads, the revision to resume after.
#[tokio::test]
async fn small_messages_unread_on_one_connection_end_each_stream_resumably() {
    let limit = 64 << 10;
    let server = TestServer::start_with(|c| {
        c.watch_memory = limit;
        c.feed_capacity = 256;
    })
    .await;
    let start = create_subject(&server, T, "u0").await;
    let shared = server
        .channel_with(|e| e.initial_stream_window_size(65_535))
        .await;
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let stream = pb::watch_service_client::WatchServiceClient::new(shared.clone())
            .watch(pb::WatchRequest {
                tenant: T.into(),
                after_revision: start,
                kinds: vec![pb::EventKind::PermissionChanges as i32],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        stalled.push(stream);
    }
    let mut m = server.membership().await;
    let mut latest = start;
    for i in 0..1_000 {
        let op = if i % 2 == 0 { assign } else { unassign };
        latest = m
            .manage_membership(pb::ManageMembershipRequest {
                tenant: T.into(),
                operations: vec![op("viewer", subject_principal("u0"), None)],
                options: None,
                dry_run: false,
            })
            .await
            .unwrap()
            .into_inner()
            .revision;
    }
    let held = server.service.watch_held();
    assert!(held.peak <= limit, "{held:?}");

    for (i, mut stream) in stalled.into_iter().enumerate() {
        let mut last = start;
        let status = loop {
            match guard("a stalled stream", stream.message()).await {
                Ok(Some(m)) => {
                    assert!(m.revision > last, "no revision twice");
                    last = m.revision;
                    assert!(last < latest, "stream {i} received every write");
                }
                Ok(None) => panic!("stream {i} ended without an error"),
                Err(status) => break status,
            }
        };
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "stream {i}: {status:?}"
        );
        assert!(
            status
                .message()
                .contains(&format!("resume with after_revision = {last}")),
            "stream {i}: {}",
            status.message()
        );
    }
    server.stop().await;
}
