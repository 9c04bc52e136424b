//! `authzd export` and `authzd import FILE.json` with the real binary: a
//! tenant using every kind of record exported from one server and imported
//! into another exports again exactly the same.

use authzd_testkit as common;
use common::*;

/// `authzd COMMAND --target ADDR --tenant TENANT ARGS`.
async fn authzd(
    command: &str,
    server: &TestServer,
    tenant: &str,
    args: &[&str],
) -> std::process::Output {
    let mut all: Vec<String> = vec![
        command.into(),
        "--target".into(),
        server.addr.to_string(),
        "--tenant".into(),
        tenant.into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    run_cli(all).await
}

async fn export(server: &TestServer, tenant: &str, out: &std::path::Path) -> serde_json::Value {
    let out_arg = out.display().to_string();
    let done = authzd("export", server, tenant, &["--out", &out_arg]).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("revision");
    value
}

/// A tenant with nested scopes (a child whose id sorts before its
/// parent's), users and a locked service user with attributes and home
/// scopes, a condition group, a nested group, a custom role with a pinned
/// grant, assignments at scopes, over a population and expiring, and a
/// switched-off resource type.
async fn rich_tenant(server: &TestServer) {
    create_scope(server, ACME, "zeta", "").await;
    create_scope(server, ACME, "alpha", "zeta").await;
    put_subject(
        server,
        ACME,
        pb::Subject {
            id: "alice".into(),
            attributes: [("dept".to_string(), "it".to_string())].into(),
            home_scope: "alpha".into(),
            ..Default::default()
        },
    )
    .await;
    put_subject(
        server,
        ACME,
        pb::Subject {
            id: "robot".into(),
            kind: pb::SubjectKind::Service.into(),
            status: pb::SubjectStatus::Locked.into(),
            ..Default::default()
        },
    )
    .await;
    create_group(server, ACME, "staff").await;
    create_group(server, ACME, "all").await;
    server
        .directory()
        .await
        .create_group(pb::CreateGroupRequest {
            tenant: ACME.into(),
            group: Some(pb::Group {
                id: "it".into(),
                title: "IT".into(),
                condition: r#"attributes.dept == "it""#.into(),
            }),
            options: None,
        })
        .await
        .unwrap();
    create_role(
        server,
        ACME,
        "pinned",
        vec![grant("document:edit", &["alpha"])],
    )
    .await;
    manage(
        server,
        ACME,
        vec![
            add_member("staff", subject_principal("alice")),
            add_member("all", group_principal("staff")),
            assign("pinned", group_principal("all"), scope_target("zeta")),
            assign(
                "viewer",
                subject_principal("robot"),
                population_target("it"),
            ),
            assign_until(
                "editor",
                subject_principal("alice"),
                scope_target("alpha"),
                from_now(86_400),
            ),
        ],
    )
    .await;
    set_disabled(server, ACME, &["approval"]).await;
}

#[tokio::test]
async fn export_then_import_round_trips_exactly() {
    let source = TestServer::start().await;
    rich_tenant(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("acme.json");
    let exported = export(&source, ACME, &first).await;
    assert_eq!(exported["scopes"].as_array().unwrap().len(), 2);
    assert_eq!(
        exported["roles"].as_array().unwrap().len(),
        1,
        "custom roles only"
    );

    let target = TestServer::start().await;
    let file = first.display().to_string();
    let imported = authzd("import", &target, "copy", &[&file]).await;
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let again = export(&target, "copy", &dir.path().join("copy.json")).await;
    assert_eq!(again, exported);
    assert!(check(&target, "copy", "alice", "document:edit", "alpha").await);
    assert!(!check(&target, "copy", "robot", "document:read", "").await);

    // Importing it a second time keeps what is there as the file has it.
    let twice = authzd("import", &target, "copy", &[&file]).await;
    assert!(
        twice.status.success(),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    assert!(
        String::from_utf8_lossy(&twice.stdout)
            .contains("0 scopes, 0 subjects, 0 groups, 0 roles, 2 members, 3 assignments (8 entries already in the tenant"),
        "{}",
        String::from_utf8_lossy(&twice.stdout)
    );
    assert_eq!(
        export(&target, "copy", &dir.path().join("copy2.json")).await,
        exported
    );
    source.stop().await;
    target.stop().await;
}

/// `--out -` writes the tenant to standard output, as the usual convention
/// has it, and creates no file named `-`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_dash_is_standard_output() {
    let server = TestServer::start().await;
    rich_tenant(&server).await;
    let cwd = tempfile::tempdir().unwrap();
    let addr = server.addr.to_string();
    let dir = cwd.path().to_path_buf();
    let done = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::authzd_binary())
            .args(["export", "--target", &addr, "--tenant", ACME, "--out", "-"])
            .current_dir(&dir)
            .env_remove("AUTHZD_ADDR")
            .env_remove("AUTHZD_TENANT")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(printed["scopes"].as_array().unwrap().len(), 2);
    assert!(!cwd.path().join("-").exists(), "a file named - was written");
}

/// The target's latest revision.
async fn revision(server: &TestServer) -> u64 {
    let mut d = server.directory().await;
    d.list_tenants(pb::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision
}

/// Whether the tenant holds any scope, subject or custom role.
async fn holds_anything(server: &TestServer, tenant: &str) -> bool {
    let mut d = server.directory().await;
    let list = || pb::ListRequest {
        tenant: tenant.into(),
        ..Default::default()
    };
    let scopes = d.list_scopes(list()).await.unwrap().into_inner().scopes;
    let subjects = d.list_subjects(list()).await.unwrap().into_inner().subjects;
    let roles = d.list_roles(list()).await.unwrap().into_inner().roles;
    !scopes.is_empty() || !subjects.is_empty() || roles.iter().any(|r| !r.builtin)
}

/// `import --dry-run FILE.json` checks the file against the tenant, says
/// what it would write, and writes nothing.
#[tokio::test]
async fn a_json_dry_run_writes_nothing() {
    let source = TestServer::start().await;
    rich_tenant(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    export(&source, ACME, &path).await;
    let target = TestServer::start().await;
    let before = revision(&target).await;
    let file = path.display().to_string();
    let done = authzd("import", &target, "dry", &["--dry-run", &file]).await;
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(
        out.contains("would import 2 scopes, 2 subjects, 3 groups, 1 role,")
            && out.contains("nothing written (--dry-run)"),
        "{out}"
    );
    assert_eq!(revision(&target).await, before, "a dry run wrote");
    source.stop().await;
    target.stop().await;
}

/// A JSON import that cannot be written whole leaves nothing behind: a
/// subject the tenant holds otherwise is refused, named by its entry,
/// before anything is written; a record the server refuses (an assignment
/// of a role that does not exist) takes back the scopes and roles written
/// before it.
#[tokio::test]
async fn a_json_import_refused_halfway_keeps_nothing() {
    let source = TestServer::start().await;
    rich_tenant(&source).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.json");
    let exported = export(&source, ACME, &path).await;
    let file = path.display().to_string();
    let target = TestServer::start().await;

    // subjects[1] is robot; the tenant has another robot.
    create_subject(&target, "half", "robot").await;
    let before = revision(&target).await;
    let done = authzd("import", &target, "half", &[&file]).await;
    assert!(!done.status.success());
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(
        err.contains("subjects[1]: robot already exists in the tenant and differs from the file; nothing was written"),
        "{err}"
    );
    assert_eq!(revision(&target).await, before, "something was written");

    let mut broken = exported.clone();
    broken["assignments"][0]["role"] = "no-such-role".into();
    let broken_path = dir.path().join("broken.json");
    std::fs::write(&broken_path, broken.to_string()).unwrap();
    let done = authzd(
        "import",
        &target,
        "fresh",
        &[&broken_path.display().to_string()],
    )
    .await;
    assert!(!done.status.success());
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(
        err.contains("assignments[0]") && err.contains("nothing was kept"),
        "{err}"
    );
    assert!(
        !holds_anything(&target, "fresh").await,
        "a refused import left records"
    );
    source.stop().await;
    target.stop().await;
}
