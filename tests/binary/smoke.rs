use authzd_testkit as common;
use common::*;

/// A role assigned to a group at a scope reaches the group's members at that
/// scope and below, and nowhere else.
#[tokio::test]
async fn group_role_at_scope_is_inherited_downward() {
    let server = TestServer::start().await;
    create_scope(&server, "acme", "eu", "").await;
    create_scope(&server, "acme", "berlin", "eu").await;
    create_subject(&server, "acme", "alice").await;
    create_group(&server, "acme", "writers").await;
    manage(
        &server,
        "acme",
        vec![
            add_member("writers", subject_principal("alice")),
            assign("editor", group_principal("writers"), scope_target("eu")),
        ],
    )
    .await;
    assert!(check(&server, "acme", "alice", "document:read", "berlin").await);
    assert!(check(&server, "acme", "alice", "document:edit", "eu").await);
    assert!(!check(&server, "acme", "alice", "document:manage", "eu").await);
    assert!(!check(&server, "acme", "alice", "document:read", "").await);
    server.stop().await;
}
