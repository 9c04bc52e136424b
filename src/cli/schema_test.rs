//! `authzd schema test FILE`: a schema, seed data and allow/deny assertions
//! in one TOML file, run against a real server started in-process on a
//! temporary store and a loopback port, so the answers are exactly the
//! service's. Prints each assertion (a failing one with its explanation)
//! and reports whether all held.
//!
//! The web console's playground runs the same test through [`Runner`]:
//! a file's text and a schema's text in, each assertion with its
//! explanation out, as JSON.
//!
//! The seed goes through the public API (directory and membership writes as
//! system writes), so a seed the API would refuse is reported with the
//! entry that caused it. Must not reach into the engine or the store: what
//! a user tests is what a client would see.

use authzd_core::limits::MAX_TEST_FILE_BYTES;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::net::TcpListener;

use super::query::reason_name;
use super::tenant_file::{self, TenantFile};
use authzd_client::{ClientArgs, ClientChannel, Remote};
use authzd_server::api::pb;
use authzd_service::Service;
use authzd_service::config::Config;
use pb::access_service_client::AccessServiceClient;

/// A test file: a schema, a tenant's directory and assertions.
#[derive(Debug)]
struct TestFile {
    /// The schema file, relative to the test file.
    schema: PathBuf,
    /// The tenant the seed and assertions use (default "test").
    tenant: String,
    /// The seed: every other key of the file.
    seed: TenantFile,
    assertions: Vec<Assertion>,
}

/// The keys of a test file besides the seed's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestKeys {
    schema: PathBuf,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(rename = "assert", default)]
    assertions: Vec<Assertion>,
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
    let outcomes = run_test(&test, &schema).await?;
    Ok(print(&outcomes))
}

/// One assertion's outcome.
#[derive(Debug)]
struct Outcome {
    /// "assert[i] subject permission where".
    what: String,
    /// What is wrong (empty: it held).
    problems: Vec<String>,
    /// The check's reply, with its explanation, if it was answered.
    reply: Option<pb::CheckAccessResponse>,
}

/// Runs `test` with the schema file `schema` on a real server started
/// in-process over a temporary store: every assertion's outcome.
async fn run_test(test: &TestFile, schema: &Path) -> Result<Vec<Outcome>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary store: {e}"))?;
    let config = Config {
        data_dir: dir.path().join("data"),
        schema: Some(schema.to_path_buf()),
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
    let server = tokio::spawn(authzd_server::run(service, listener, async {
        let _ = stopped.await;
    }));
    let outcome = async {
        let channel = Remote::new(&format!("http://{addr}"), &ClientArgs::default())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("the in-process server: {e}"))?;
        tenant_file::write(&channel, &test.tenant, &test.seed).await?;
        Ok::<_, String>(assert_all(&channel, test).await)
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    outcome
}

/// The web console's playground: runs a test file's text against a
/// schema's text (the file's `schema` key, which names the schema file for
/// `authzd schema test`, is not read), each assertion with its check's
/// reply in the API's JSON.
#[derive(Debug, Default)]
pub struct Runner;

impl authzd_server::http::console::Playground for Runner {
    fn run(
        &self,
        schema: String,
        file: String,
    ) -> futures_util::future::BoxFuture<'static, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let test = parse(&file)?;
            let dir = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
            let path = dir.path().join("schema.toml");
            std::fs::write(&path, schema).map_err(|e| format!("the schema: {e}"))?;
            let outcomes = run_test(&test, &path)
                .await
                .map_err(|e| e.replace(&path.display().to_string(), "the schema"))?;
            let failed = outcomes.iter().filter(|o| !o.problems.is_empty()).count();
            let assertions: Vec<serde_json::Value> = outcomes
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "what": o.what,
                        "ok": o.problems.is_empty(),
                        "problems": o.problems,
                        "reply": o.reply.as_ref().map(|r| super::write::api_json(r, "authzd.v1.CheckAccessResponse")),
                    })
                })
                .collect();
            Ok(serde_json::json!({
                "passed": outcomes.len() - failed,
                "failed": failed,
                "assertions": assertions,
            }))
        })
    }
}

fn read(file: &Path) -> Result<TestFile, String> {
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    if size > MAX_TEST_FILE_BYTES {
        return Err(format!("{size} bytes; the limit is {MAX_TEST_FILE_BYTES}"));
    }
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    parse(&text)
}

/// A test file's text.
fn parse(text: &str) -> Result<TestFile, String> {
    if text.len() as u64 > MAX_TEST_FILE_BYTES {
        return Err(format!(
            "{} bytes; the limit is {MAX_TEST_FILE_BYTES}",
            text.len()
        ));
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut keys = toml::Table::new();
    for key in ["schema", "tenant", "assert"] {
        if let Some(value) = table.remove(key) {
            keys.insert(key.into(), value);
        }
    }
    let keys: TestKeys = keys
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())?;
    let seed: TenantFile = table
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())?;
    Ok(TestFile {
        schema: keys.schema,
        tenant: keys.tenant.unwrap_or_else(|| "test".into()),
        seed,
        assertions: keys.assertions,
    })
}

/// Checks every assertion: each one's outcome.
async fn assert_all(channel: &ClientChannel, t: &TestFile) -> Vec<Outcome> {
    let mut access = AccessServiceClient::new(channel.clone());
    let mut outcomes = Vec::with_capacity(t.assertions.len());
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
        let (problems, reply) = match access.check_access(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                (judge(a, &reply), Some(reply))
            }
            Err(e) => (
                vec![format!("the check was refused: {}", e.message())],
                None,
            ),
        };
        let what = if problems.is_empty() {
            format!("{what}: {}", if a.allow { "allowed" } else { "denied" })
        } else {
            what
        };
        outcomes.push(Outcome {
            what,
            problems,
            reply,
        });
    }
    outcomes
}

/// Prints every outcome and the tally; the number that failed.
fn print(outcomes: &[Outcome]) -> usize {
    let mut failed = 0;
    for o in outcomes {
        if o.problems.is_empty() {
            println!("ok    {}", o.what);
        } else {
            failed += 1;
            println!("FAIL  {}", o.what);
            for p in &o.problems {
                println!("        {p}");
            }
        }
    }
    println!("{} passed, {failed} failed", outcomes.len() - failed);
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
