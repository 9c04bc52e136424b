//! `SchemaService` over gRPC: reading the schema in force, validating
//! (dry runs), refusing invalid schemas and schemas stored data depends on,
//! and applying a new schema that checks then follow.

use authzd_testkit as common;
use common::*;

use authzd_core::schema::DEFAULT_SCHEMA;

/// The built-in schema with approvals inheriting, plus a `report` type and a
/// `reporter` role.
fn extended_schema() -> String {
    assert_eq!(DEFAULT_SCHEMA.matches("inherit = false").count(), 1);
    let text = DEFAULT_SCHEMA.replacen("inherit = false", "inherit = true", 1);
    format!(
        "{text}\n[resources.report]\nlevels = [\"read\", \"write\"]\n\n[roles.reporter]\ngrants = [\"report:write\"]\n"
    )
}

async fn write(
    server: &TestServer,
    schema: &str,
    dry_run: bool,
) -> Result<tonic::Response<pb::WriteSchemaResponse>, tonic::Status> {
    server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: schema.into(),
            dry_run,
            expected_revision: 0,
            ..Default::default()
        })
        .await
}

async fn read(server: &TestServer) -> pb::ReadSchemaResponse {
    server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// A server started without a schema serves the built-in one, verbatim.
#[tokio::test]
async fn read_schema_returns_the_builtin_schema() {
    let server = TestServer::start().await;
    let reply = read(&server).await;
    assert!(reply.schema == DEFAULT_SCHEMA, "not the built-in schema");
    create_subject(&server, ACME, "alice").await;
    assert_eq!(read(&server).await.revision, reply.revision + 1);
    server.stop().await;
}

/// A dry run of a valid schema validates it, answers the current revision
/// and changes nothing.
#[tokio::test]
async fn dry_run_validates_without_changing_anything() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_scope(&server, ACME, "berlin", "eu").await;
    create_subject(&server, ACME, "ann").await;
    manage(
        &server,
        ACME,
        vec![assign(
            "approver",
            subject_principal("ann"),
            scope_target("eu"),
        )],
    )
    .await;
    let before = read(&server).await;
    let reply = write(&server, &extended_schema(), true).await.unwrap();
    assert_eq!(reply.into_inner().revision, before.revision);
    let after = read(&server).await;
    assert!(after.schema == DEFAULT_SCHEMA, "the schema changed");
    assert_eq!(after.revision, before.revision);
    assert!(!check(&server, ACME, "ann", "approval:approve", "berlin").await);

    // A dry run reports errors like a real write.
    assert_status(
        write(&server, "[resources.document]\nlevels = 3\n", true).await,
        Code::InvalidArgument,
        "resources.document.levels",
    );
    server.stop().await;
}

/// An invalid schema is refused with INVALID_ARGUMENT whose message names
/// every error with its line and dotted key; nothing changes.
#[tokio::test]
async fn invalid_schema_names_line_and_key() {
    let server = TestServer::start().await;
    let before = read(&server).await;
    let bad = "# a comment\n[resources.document]\nlevels = [\"read\", \"edit\"]\ninherits = false\n\n[roles.viewer]\ngrants = [\"document:fly\"]\n";
    let status = assert_status(
        write(&server, bad, false).await,
        Code::InvalidArgument,
        ":4: resources.document.inherits",
    );
    assert!(
        status.message().contains(":7: roles.viewer.grants"),
        "every error is listed: {}",
        status.message()
    );
    assert!(
        status.message().contains("2 errors"),
        "{}",
        status.message()
    );
    assert_status(
        write(&server, "[resources\n", false).await,
        Code::InvalidArgument,
        ":1:",
    );
    let after = read(&server).await;
    assert!(after.schema == DEFAULT_SCHEMA, "the schema changed");
    assert_eq!(after.revision, before.revision);
    server.stop().await;
}

/// A schema that drops a permission a custom role uses, a builtin role that
/// is assigned, or a type a tenant switches off is refused with
/// FAILED_PRECONDITION naming what depends on it, in dry runs too.
#[tokio::test]
async fn schema_that_stored_data_depends_on_is_refused() {
    let server = TestServer::start().await;
    create_role(&server, ACME, "commenter", vec![grant("comment:edit", &[])]).await;
    let without_comment = DEFAULT_SCHEMA.replace(
        "[resources.comment]\nlevels = [\"read\", \"edit\", \"manage\", \"admin\"]\n",
        "",
    );
    let without_comment = without_comment.replace("follows = [\"document\"]\n", "");
    assert!(
        without_comment != DEFAULT_SCHEMA,
        "the built-in schema changed shape"
    );
    let before = read(&server).await;
    for dry_run in [true, false] {
        let status = assert_status(
            write(&server, &without_comment, dry_run).await,
            Code::FailedPrecondition,
            "commenter",
        );
        assert!(
            status.message().contains("comment:edit"),
            "{}",
            status.message()
        );
    }
    assert_eq!(read(&server).await.revision, before.revision);
    assert!(
        read(&server).await.schema == DEFAULT_SCHEMA,
        "the schema changed"
    );

    // An assigned builtin role the new schema drops.
    let server2 = TestServer::start().await;
    create_subject(&server2, ACME, "ann").await;
    manage(
        &server2,
        ACME,
        vec![assign("approver", subject_principal("ann"), None)],
    )
    .await;
    let without_approver = DEFAULT_SCHEMA.replace(
        "[roles.approver]\ngrants = [\"approval:approve\"]\nrank = 20\nmanaged_by = \"users:admin\"\n",
        "",
    );
    assert!(
        without_approver != DEFAULT_SCHEMA,
        "the built-in schema changed shape"
    );
    assert_status(
        write(&server2, &without_approver, false).await,
        Code::FailedPrecondition,
        "approver",
    );

    // A switched-off type the new schema drops.
    set_disabled(&server2, "globex", &["comment"]).await;
    let status = assert_status(
        write(&server2, &without_comment, false).await,
        Code::FailedPrecondition,
        "globex",
    );
    assert!(status.message().contains("comment"), "{}", status.message());
    server.stop().await;
    server2.stop().await;
}

/// A valid new schema commits as the next revision, is what ReadSchema
/// returns, and checks follow it at once: new types and roles work, and
/// existing assignments are re-evaluated under the new rules.
#[tokio::test]
async fn a_valid_new_schema_applies_and_checks_reflect_it() {
    let server = TestServer::start().await;
    create_scope(&server, ACME, "eu", "").await;
    create_scope(&server, ACME, "berlin", "eu").await;
    create_subject(&server, ACME, "ann").await;
    create_subject(&server, ACME, "rex").await;
    manage(
        &server,
        ACME,
        vec![assign(
            "approver",
            subject_principal("ann"),
            scope_target("eu"),
        )],
    )
    .await;
    assert!(!check(&server, ACME, "ann", "approval:approve", "berlin").await);
    let before = read(&server).await.revision;

    let schema = extended_schema();
    let committed = write(&server, &schema, false).await.unwrap().into_inner();
    assert_eq!(committed.revision, before + 1);
    let now = read(&server).await;
    assert!(now.schema == schema, "not the schema written");
    assert_eq!(now.revision, committed.revision);

    assert!(check(&server, ACME, "ann", "approval:approve", "berlin").await);
    manage(
        &server,
        ACME,
        vec![assign("reporter", subject_principal("rex"), None)],
    )
    .await;
    assert!(check(&server, ACME, "rex", "report:read", "berlin").await);
    assert!(!check(&server, ACME, "rex", "document:read", "").await);
    server.stop().await;
}

/// WriteSchema with a stale expected_revision is refused with
/// FAILED_PRECONDITION; with the current one it commits.
#[tokio::test]
async fn schema_write_honours_expected_revision() {
    let server = TestServer::start().await;
    create_subject(&server, ACME, "alice").await;
    let current = read(&server).await.revision;
    let mut s = server.schema().await;
    let stale = s
        .write_schema(pb::WriteSchemaRequest {
            schema: extended_schema(),
            dry_run: false,
            expected_revision: current - 1,
            ..Default::default()
        })
        .await;
    assert_status(stale, Code::FailedPrecondition, "expected revision");
    assert!(
        read(&server).await.schema == DEFAULT_SCHEMA,
        "the schema changed"
    );
    let ok = s
        .write_schema(pb::WriteSchemaRequest {
            schema: extended_schema(),
            dry_run: false,
            expected_revision: current,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.revision, current + 1);
    server.stop().await;
}
