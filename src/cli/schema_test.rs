//! `authzd schema test FILE`: a schema, seed data and allow/deny assertions
//! in one TOML file, run against a real server started in-process on a
//! temporary store and a loopback port, so the answers are exactly the
//! service's. Prints each assertion (a failing one with its explanation)
//! and reports whether all held.
//!
//! The seed goes through the public API (directory and membership writes as
//! system writes), so a seed the API would refuse is reported with the
//! entry that caused it. Must not reach into the engine or the store: what
//! a user tests is what a client would see.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::net::TcpListener;
use tonic::transport::Channel;

use super::query::reason_name;
use crate::api::pb;
use crate::config::Config;
use crate::service::Service;
use pb::access_service_client::AccessServiceClient;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;

/// Largest test file read, in bytes.
pub const MAX_TEST_FILE_BYTES: u64 = 4 << 20;

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The schema file, relative to the test file.
    schema: PathBuf,
    /// The tenant the seed and assertions use.
    #[serde(default = "default_tenant")]
    tenant: String,
    #[serde(default)]
    scopes: Vec<ScopeSeed>,
    #[serde(default)]
    subjects: Vec<SubjectSeed>,
    #[serde(default)]
    groups: Vec<GroupSeed>,
    #[serde(default)]
    roles: Vec<RoleSeed>,
    #[serde(default)]
    members: Vec<MemberSeed>,
    #[serde(default)]
    assignments: Vec<AssignmentSeed>,
    #[serde(rename = "assert", default)]
    assertions: Vec<Assertion>,
}

fn default_tenant() -> String {
    "test".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeSeed {
    id: String,
    #[serde(default)]
    parent: String,
    #[serde(default, rename = "type")]
    scope_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectSeed {
    id: String,
    #[serde(default)]
    service: bool,
    #[serde(default)]
    locked: bool,
    #[serde(default)]
    attributes: std::collections::HashMap<String, String>,
    #[serde(default)]
    home_scope: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSeed {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    condition: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleSeed {
    id: String,
    #[serde(default)]
    title: String,
    /// A role class of the schema.
    #[serde(default)]
    class: String,
    /// What it grants: a permission, or `{ permission, scopes }` to pin it
    /// to named scopes below the assignment.
    #[serde(default)]
    grants: Vec<GrantSeed>,
    #[serde(default)]
    rank: i32,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    managed_by: String,
    #[serde(default)]
    self_removable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GrantSeed {
    Plain(String),
    Pinned {
        permission: String,
        scopes: Vec<String>,
    },
}

impl GrantSeed {
    fn to_pb(&self) -> pb::Grant {
        match self {
            GrantSeed::Plain(permission) => pb::Grant {
                permission: permission.clone(),
                scopes: Vec::new(),
            },
            GrantSeed::Pinned { permission, scopes } => pb::Grant {
                permission: permission.clone(),
                scopes: scopes.clone(),
            },
        }
    }
}

/// A member: a subject or a nested group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberSeed {
    group: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    member_group: String,
}

/// An assignment to a subject or a group, at a scope (default the root)
/// or over a population.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentSeed {
    role: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    population: String,
}

/// One check and what it must answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Assertion {
    subject: String,
    permission: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    target_subject: String,
    /// The expected answer.
    allow: bool,
    /// For a deny: reasons explain must give (e.g. "no_grant",
    /// "subject_locked"), each one of them.
    #[serde(default)]
    reasons: Vec<String>,
}

/// Runs the test in `file`, printing every assertion; whether all held.
pub async fn command(file: &Path) -> bool {
    match run(file).await {
        Ok(failed) => failed == 0,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            false
        }
    }
}

/// Runs the test; the number of assertions that failed.
async fn run(file: &Path) -> Result<usize, String> {
    let test = read(file)?;
    let schema = file.parent().unwrap_or(Path::new(".")).join(&test.schema);
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary store: {e}"))?;
    let config = Config {
        data_dir: dir.path().join("data"),
        schema: Some(schema.clone()),
        ..Config::default()
    };
    let service = Service::open(config)
        .await
        .map_err(|e| format!("{}: {e}", schema.display()))?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("a loopback port: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::run(service, listener, async {
        let _ = stopped.await;
    }));
    let outcome = async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("the in-process server: {e}"))?;
        seed(&channel, &test).await?;
        Ok::<_, String>(assert_all(&channel, &test).await)
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    outcome
}

fn read(file: &Path) -> Result<TestFile, String> {
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    if size > MAX_TEST_FILE_BYTES {
        return Err(format!("{size} bytes; the limit is {MAX_TEST_FILE_BYTES}"));
    }
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    toml::from_str(&text).map_err(|e| e.to_string())
}

/// Writes the seed as system writes, in dependency order; the first refusal
/// names its entry.
async fn seed(channel: &Channel, t: &TestFile) -> Result<(), String> {
    let mut d = DirectoryServiceClient::new(channel.clone());
    let tenant = || t.tenant.clone();
    let at = |list: &'static str, i: usize| {
        move |e: tonic::Status| format!("{list}[{i}]: {}", e.message())
    };
    for (i, s) in t.scopes.iter().enumerate() {
        let scope = pb::Scope {
            id: s.id.clone(),
            r#type: s.scope_type.clone(),
            parent: s.parent.clone(),
        };
        let request = pb::CreateScopeRequest {
            tenant: tenant(),
            scope: Some(scope),
            options: None,
        };
        d.create_scope(request).await.map_err(at("scopes", i))?;
    }
    for (i, s) in t.subjects.iter().enumerate() {
        let subject = pb::Subject {
            id: s.id.clone(),
            kind: if s.service {
                pb::SubjectKind::Service
            } else {
                pb::SubjectKind::User
            }
            .into(),
            status: if s.locked {
                pb::SubjectStatus::Locked
            } else {
                pb::SubjectStatus::Active
            }
            .into(),
            attributes: s.attributes.clone(),
            home_scope: s.home_scope.clone(),
        };
        let request = pb::CreateSubjectRequest {
            tenant: tenant(),
            subject: Some(subject),
            options: None,
        };
        d.create_subject(request).await.map_err(at("subjects", i))?;
    }
    for (i, g) in t.groups.iter().enumerate() {
        let group = pb::Group {
            id: g.id.clone(),
            title: g.title.clone(),
            condition: g.condition.clone(),
        };
        let request = pb::CreateGroupRequest {
            tenant: tenant(),
            group: Some(group),
            options: None,
        };
        d.create_group(request).await.map_err(at("groups", i))?;
    }
    for (i, r) in t.roles.iter().enumerate() {
        let role = pb::Role {
            id: r.id.clone(),
            title: r.title.clone(),
            class: r.class.clone(),
            grants: r.grants.iter().map(GrantSeed::to_pb).collect(),
            rank: r.rank,
            requires: r.requires.clone(),
            managed_by: r.managed_by.clone(),
            self_removable: r.self_removable,
            ..Default::default()
        };
        let request = pb::CreateRoleRequest {
            tenant: tenant(),
            role: Some(role),
            options: None,
        };
        d.create_role(request).await.map_err(at("roles", i))?;
    }
    let mut m = MembershipServiceClient::new(channel.clone());
    let members = t.members.iter().enumerate().map(|(i, s)| {
        let member = principal(&s.subject, &s.member_group, "members", i)?;
        Ok(pb::membership_operation::Operation::AddMember(
            pb::AddMember {
                group: s.group.clone(),
                member: Some(member),
                ..Default::default()
            },
        ))
    });
    let assignments = t.assignments.iter().enumerate().map(|(i, a)| {
        let target = match (a.scope.is_empty(), a.population.is_empty()) {
            (_, true) => pb::target::Kind::Scope(a.scope.clone()),
            (true, false) => pb::target::Kind::Population(a.population.clone()),
            (false, false) => {
                return Err(format!(
                    "assignments[{i}]: give scope or population, not both"
                ));
            }
        };
        Ok(pb::membership_operation::Operation::AssignRole(
            pb::AssignRole {
                role: a.role.clone(),
                principal: Some(principal(&a.subject, &a.group, "assignments", i)?),
                target: Some(pb::Target { kind: Some(target) }),
                ..Default::default()
            },
        ))
    });
    // One batch per list, so a refusal's index is the entry's.
    for (list, operations) in [
        ("members", members.collect::<Result<Vec<_>, String>>()?),
        (
            "assignments",
            assignments.collect::<Result<Vec<_>, String>>()?,
        ),
    ] {
        if operations.is_empty() {
            continue;
        }
        let request = pb::ManageMembershipRequest {
            tenant: tenant(),
            operations: operations
                .into_iter()
                .map(|o| pb::MembershipOperation { operation: Some(o) })
                .collect(),
            options: None,
        };
        m.manage_membership(request)
            .await
            .map_err(|e| format!("{list}: {}", e.message().replace("operations[", "[")))?;
    }
    Ok(())
}

/// A subject or a group, exactly one of them given.
fn principal(subject: &str, group: &str, list: &str, i: usize) -> Result<pb::Principal, String> {
    let kind = match (subject.is_empty(), group.is_empty()) {
        (false, true) => pb::principal::Kind::Subject(subject.into()),
        (true, false) => pb::principal::Kind::Group(group.into()),
        _ => {
            return Err(format!(
                "{list}[{i}]: give exactly one of subject and group"
            ));
        }
    };
    Ok(pb::Principal { kind: Some(kind) })
}

/// Checks every assertion, printing each; the number that failed.
async fn assert_all(channel: &Channel, t: &TestFile) -> usize {
    let mut access = AccessServiceClient::new(channel.clone());
    let mut failed = 0;
    for (i, a) in t.assertions.iter().enumerate() {
        let place = match (a.scope.as_str(), a.target_subject.as_str()) {
            ("", "") => "at the root".to_string(),
            (scope, "") => format!("at {scope}"),
            (_, target) => format!("over subject {target}"),
        };
        let what = format!("assert[{i}] {} {} {place}", a.subject, a.permission);
        let request = pb::CheckAccessRequest {
            tenant: t.tenant.clone(),
            subject: a.subject.clone(),
            permission: a.permission.clone(),
            scope: a.scope.clone(),
            target_subject: a.target_subject.clone(),
            explain: true,
            ..Default::default()
        };
        let problems = match access.check_access(request).await {
            Ok(reply) => judge(a, &reply.into_inner()),
            Err(e) => vec![format!("the check was refused: {}", e.message())],
        };
        if problems.is_empty() {
            println!(
                "ok    {what}: {}",
                if a.allow { "allowed" } else { "denied" }
            );
        } else {
            failed += 1;
            println!("FAIL  {what}");
            for p in problems {
                println!("        {p}");
            }
        }
    }
    let total = t.assertions.len();
    println!("{} passed, {failed} failed", total - failed);
    failed
}

/// What is wrong with `reply` for `a`, with the explanation of a wrong
/// answer; empty when it holds.
fn judge(a: &Assertion, reply: &pb::CheckAccessResponse) -> Vec<String> {
    let explanation = reply.explanation.clone().unwrap_or_default();
    let reasons: Vec<String> = explanation
        .denials
        .iter()
        .map(|d| reason_name(d.reason))
        .collect();
    let mut problems = Vec::new();
    if reply.allowed != a.allow {
        let (want, got) = if a.allow {
            ("allowed", "denied")
        } else {
            ("denied", "allowed")
        };
        problems.push(format!("expected {want}, got {got}"));
        for d in &explanation.denials {
            problems.push(format!("- {}: {}", reason_name(d.reason), d.detail));
        }
        for s in &explanation.sources {
            problems.push(format!(
                "- through role {} at {}{}",
                s.role,
                if s.scope.is_empty() { "root" } else { &s.scope },
                if s.groups.is_empty() {
                    String::new()
                } else {
                    format!(" via groups {}", s.groups.join(", "))
                }
            ));
        }
    }
    for want in &a.reasons {
        if !reasons.iter().any(|r| r.eq_ignore_ascii_case(want)) {
            problems.push(format!(
                "expected reason {want}; explain gave {}",
                if reasons.is_empty() {
                    "none".to_string()
                } else {
                    reasons.join(", ")
                }
            ));
        }
    }
    problems
}
