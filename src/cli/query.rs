//! The query commands of the client CLI: `authzd check`, `authzd who`,
//! `authzd what` and `authzd watch`, against a running server
//! (`--target` or `AUTHZD_ADDR`, with the token and TLS options every CLI
//! client shares). Readable lines by default, one JSON object per answer
//! (or per feed message) with `--json`.
//!
//! Owns only presentation: each command is one RPC (or its pages), answered
//! as the server answers it. Must not reach around the API.

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use authzd_client::{ClientArgs, ClientChannel, Remote};
use authzd_server::api::pb;
use pb::access_service_client::AccessServiceClient;
use pb::schema_service_client::SchemaServiceClient;
use pb::watch_service_client::WatchServiceClient;

/// Most holders `authzd who` prints unless `--limit` says otherwise.
const DEFAULT_WHO_LIMIT: usize = 1000;
/// Longest a single call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to ask.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// The server (HOST:PORT, or https://HOST:PORT for TLS).
    #[arg(long, env = "AUTHZD_ADDR", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// The tenant.
    #[arg(long, env = "AUTHZD_TENANT")]
    pub tenant: String,
    /// One JSON object per answer instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// TLS and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where a permission is asked about: a scope, a subject acted upon, or
/// (neither) the tenant root.
#[derive(Debug, Clone, Default, Args)]
pub struct Place {
    /// At this scope.
    #[arg(long, conflicts_with = "over")]
    pub scope: Option<String>,
    /// Over this subject (its home scope and populations).
    #[arg(long)]
    pub over: Option<String>,
}

impl Place {
    fn describe(&self) -> String {
        match (&self.scope, &self.over) {
            (Some(s), _) => format!("at {s}"),
            (None, Some(o)) => format!("over subject {o}"),
            (None, None) => "at the root".into(),
        }
    }
}

/// The client CLI's query commands.
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// May SUBJECT do PERMISSION (at a scope, or over a subject)? Exits 0 if
    /// allowed, 1 if denied or on error.
    Check {
        /// The subject that acts.
        subject: String,
        /// The permission ("type:verb" or a derived one).
        permission: String,
        /// Where: a scope, or a subject it is over.
        #[command(flatten)]
        place: Place,
        /// Say why: every way it is held, or every reason it is not.
        #[arg(long)]
        explain: bool,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Who holds PERMISSION (at a scope, or over a subject)?
    Who {
        /// The permission.
        permission: String,
        /// Where: a scope, or a subject it is over.
        #[command(flatten)]
        place: Place,
        /// Print at most this many holders.
        #[arg(long, default_value_t = DEFAULT_WHO_LIMIT)]
        limit: usize,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
    /// What may SUBJECT do, and where?
    What {
        /// The subject.
        subject: String,
        /// Only what holds at this scope.
        #[arg(long)]
        scope: Option<String>,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Follow the change feed: one line per change, gains marked `+` and
    /// losses `-`. Ends after --count messages, after --seconds, or when the
    /// server ends the stream.
    Watch {
        /// Start after this revision [default: the latest].
        #[arg(long)]
        after_revision: Option<u64>,
        /// Only changes naming this subject or over it.
        #[arg(long)]
        subject: Option<String>,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
}

impl QueryCommand {
    fn query(&self) -> &QueryArgs {
        match self {
            QueryCommand::Check { query, .. }
            | QueryCommand::Who { query, .. }
            | QueryCommand::What { query, .. }
            | QueryCommand::Watch { query, .. } => query,
        }
    }
}

/// How a query command ended; its exit status tells a script which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (for `check`: allowed). Exit status 0.
    Done,
    /// `check` only: denied. Exit status 1.
    Denied,
    /// It could not answer: the server unreachable, the request refused.
    /// Exit status 2, as for a command line the parser refuses.
    Failed,
}

impl Outcome {
    /// The exit status.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Denied => 1,
            Outcome::Failed => 2,
        }
    }
}

/// Runs a query command.
pub async fn command(command: &QueryCommand) -> Outcome {
    let args = command.query();
    let channel = match connect(args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", args.target);
            return Outcome::Failed;
        }
    };
    let done = match command {
        QueryCommand::Check {
            subject,
            permission,
            place,
            explain,
            query,
        } => check(channel, query, subject, permission, place, *explain).await,
        QueryCommand::Who {
            permission,
            place,
            limit,
            query,
        } => who(channel, query, permission, place, *limit).await,
        QueryCommand::What {
            subject,
            scope,
            query,
        } => what(channel, query, subject, scope.as_deref()).await,
        QueryCommand::Watch {
            after_revision,
            subject,
            count,
            seconds,
            query,
        } => {
            let bounds = (*count, seconds.map(Duration::from_secs));
            watch(channel, query, *after_revision, subject.as_deref(), bounds).await
        }
    };
    match done {
        Ok(true) => Outcome::Done,
        Ok(false) => Outcome::Denied,
        Err(status) => {
            eprintln!("{}", authzd_client::status::status_text(&status));
            Outcome::Failed
        }
    }
}

async fn connect(args: &QueryArgs) -> Result<ClientChannel, String> {
    let remote = Remote::new(&args.target, &args.client).map_err(|e| e.to_string())?;
    remote
        .with(|e| e.timeout(CALL_TIMEOUT))
        .connect()
        .await
        .map_err(|e| e.to_string())
}

async fn check(
    channel: ClientChannel,
    q: &QueryArgs,
    subject: &str,
    permission: &str,
    place: &Place,
    explain: bool,
) -> Result<bool, tonic::Status> {
    let reply = AccessServiceClient::new(channel)
        .check_access(pb::CheckAccessRequest {
            tenant: q.tenant.clone(),
            subject: subject.into(),
            permission: permission.into(),
            scope: place.scope.clone().unwrap_or_default(),
            target_subject: place.over.clone().unwrap_or_default(),
            explain,
            ..Default::default()
        })
        .await?
        .into_inner();
    let explanation = reply.explanation.unwrap_or_default();
    if q.json {
        let mut out = json!({
            "subject": subject,
            "permission": permission,
            "allowed": reply.allowed,
            "revision": reply.revision,
        });
        #[expect(
            clippy::indexing_slicing,
            reason = "out is the JSON object built just above: a key index into an object inserts, never panics"
        )]
        if explain {
            out["sources"] = explanation.sources.iter().map(source_json).collect();
            out["denials"] = explanation
                .denials
                .iter()
                .map(|d| json!({"reason": reason_name(d.reason), "detail": d.detail}))
                .collect();
        }
        println!("{out}");
    } else {
        let verdict = if reply.allowed { "allowed" } else { "denied" };
        println!(
            "{verdict}: {subject} {permission} {} (revision {})",
            place.describe(),
            reply.revision
        );
        for s in &explanation.sources {
            println!("  because {}", source_text(s));
        }
        for d in &explanation.denials {
            println!("  {}: {}", reason_name(d.reason), d.detail);
        }
    }
    Ok(reply.allowed)
}

async fn who(
    channel: ClientChannel,
    q: &QueryArgs,
    permission: &str,
    place: &Place,
    limit: usize,
) -> Result<bool, tonic::Status> {
    let mut access = AccessServiceClient::new(channel);
    let mut request = pb::ListSubjectsWithPermissionRequest {
        tenant: q.tenant.clone(),
        permission: permission.into(),
        scope: place.scope.clone().unwrap_or_default(),
        target_subject: place.over.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut printed = 0usize;
    while printed < limit {
        let page = access
            .list_subjects_with_permission(request.clone())
            .await?
            .into_inner();
        // Later pages are read at the first page's revision, so the list is
        // one consistent picture.
        request.at_least_revision = page.revision;
        for h in page.holders.iter().take(limit - printed) {
            printed += 1;
            if q.json {
                let sources: Value = h.sources.iter().map(source_json).collect();
                println!(
                    "{}",
                    json!({"subject": h.subject, "implied": h.implied, "reach": reach_name(h.reach), "sources": sources, "revision": page.revision})
                );
            } else {
                let implied = if h.implied { " (implied)" } else { "" };
                println!("{}{implied}, {}", h.subject, reach_name(h.reach));
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    if !q.json {
        let holders = if printed == 1 { "holder" } else { "holders" };
        eprintln!("{printed} {holders} of {permission} {}", place.describe());
    }
    Ok(true)
}

async fn what(
    channel: ClientChannel,
    q: &QueryArgs,
    subject: &str,
    scope: Option<&str>,
) -> Result<bool, tonic::Status> {
    let reply = AccessServiceClient::new(channel)
        .list_effective_permissions(pb::ListEffectivePermissionsRequest {
            tenant: q.tenant.clone(),
            subject: subject.into(),
            scope: scope.unwrap_or_default().into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    for t in &reply.targets {
        let at = if t.population.is_empty() {
            format!("at {}", root_or(&t.scope))
        } else {
            format!("over population {}", t.population)
        };
        for p in &t.permissions {
            if q.json {
                let sources: Value = p.sources.iter().map(source_json).collect();
                println!(
                    "{}",
                    json!({"scope": t.scope, "population": t.population, "permission": p.permission, "reach": reach_name(p.reach), "sources": sources, "revision": reply.revision})
                );
            } else {
                let through: Vec<String> = p.sources.iter().map(source_text).collect();
                println!(
                    "{} {at}, {} (through {})",
                    p.permission,
                    reach_name(p.reach),
                    through.join("; ")
                );
            }
        }
    }
    Ok(true)
}

async fn watch(
    channel: ClientChannel,
    q: &QueryArgs,
    after: Option<u64>,
    subject: Option<&str>,
    (count, seconds): (Option<u64>, Option<Duration>),
) -> Result<bool, tonic::Status> {
    let after_revision = match after {
        Some(r) => r,
        None => latest_revision(channel.clone()).await?,
    };
    let mut client = WatchServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::WatchRequest {
        tenant: q.tenant.clone(),
        after_revision,
        subject: subject.unwrap_or_default().into(),
        ..Default::default()
    });
    // A stream outlives the per-call timeout; --seconds bounds it instead.
    if let Some(s) = seconds {
        request.set_timeout(s);
    }
    let mut stream = client.watch(request).await?.into_inner();
    let mut seen = 0u64;
    let deadline = seconds.map(|s| tokio::time::Instant::now() + s);
    while count.is_none_or(|c| seen < c) {
        let next = match deadline {
            Some(at) => match tokio::time::timeout_at(at, stream.message()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => stream.message().await,
        };
        let message = match next {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => break,
            Err(s) => return Err(s),
        };
        seen += 1;
        print_feed(&message, q.json);
    }
    Ok(true)
}

/// The latest revision the server has applied (every read answers with
/// it; `ReadSchema` is the one that names no tenant or subject).
async fn latest_revision(channel: ClientChannel) -> Result<u64, tonic::Status> {
    let reply = SchemaServiceClient::new(channel)
        .read_schema(pb::ReadSchemaRequest {})
        .await?;
    Ok(reply.into_inner().revision)
}

fn print_feed(m: &pb::WatchResponse, json_lines: bool) {
    if json_lines {
        let changes: Vec<Value> = m
            .permission_changes
            .iter()
            .map(|c| {
                json!({"subject": c.subject, "permission": c.permission, "scope": c.scope, "target_subject": c.target_subject, "gained": c.gained, "reach": reach_name(c.reach)})
            })
            .collect();
        let raw: Vec<String> = m.changes.iter().map(change_text).collect();
        println!(
            "{}",
            json!({"revision": m.revision, "actor": m.actor, "progress": m.progress, "part": m.part, "revision_complete": m.revision_complete, "changes": raw, "permission_changes": changes})
        );
        return;
    }
    if m.progress {
        println!("r{} (progress)", m.revision);
        return;
    }
    let actor = if m.actor.is_empty() {
        "system".to_string()
    } else {
        format!("actor {}", m.actor)
    };
    for c in &m.changes {
        println!("r{} {actor}: {}", m.revision, change_text(c));
    }
    for c in &m.permission_changes {
        let sign = if c.gained { '+' } else { '-' };
        let at = if c.target_subject.is_empty() {
            format!("at {}", root_or(&c.scope))
        } else {
            format!("over subject {}", c.target_subject)
        };
        println!(
            "r{} {sign} {} {} {at}, {}",
            m.revision,
            c.subject,
            c.permission,
            reach_name(c.reach)
        );
    }
}

fn root_or(scope: &str) -> &str {
    if scope.is_empty() { "root" } else { scope }
}

/// A raw change in a few words.
fn change_text(c: &pb::Change) -> String {
    use pb::change::Change as C;
    let member =
        |m: &pb::Membership| format!("{} in group {}", principal_text(m.member.as_ref()), m.group);
    let assignment = |a: &pb::Assignment| {
        format!(
            "role {} to {} {}",
            a.role,
            principal_text(a.principal.as_ref()),
            target_text(a.target.as_ref())
        )
    };
    match &c.change {
        Some(C::TenantPut(t)) => format!("tenant {} settings", t.id),
        Some(C::SubjectPut(s)) => format!("subject {} put", s.id),
        Some(C::SubjectDeleted(id)) => format!("subject {id} deleted"),
        Some(C::ScopePut(s)) => format!("scope {} put", s.id),
        Some(C::ScopeDeleted(id)) => format!("scope {id} deleted"),
        Some(C::GroupPut(g)) => format!("group {} put", g.id),
        Some(C::GroupDeleted(id)) => format!("group {id} deleted"),
        Some(C::RolePut(r)) => format!("role {} put", r.id),
        Some(C::RoleDeleted(id)) => format!("role {id} deleted"),
        Some(C::MemberAdded(m)) => format!("added {}", member(m)),
        Some(C::MemberRemoved(m)) => format!("removed {}", member(m)),
        Some(C::RoleAssigned(a)) => format!("assigned {}", assignment(a)),
        Some(C::RoleUnassigned(a)) => format!("unassigned {}", assignment(a)),
        Some(C::RoleExpired(a)) => format!("expired {}", assignment(a)),
        Some(C::SchemaWritten(_)) => "schema written".into(),
        None => "unknown change".into(),
    }
}

fn principal_text(p: Option<&pb::Principal>) -> String {
    match p.and_then(|p| p.kind.as_ref()) {
        Some(pb::principal::Kind::Subject(s)) => format!("subject {s}"),
        Some(pb::principal::Kind::Group(g)) => format!("group {g}"),
        None => "nobody".into(),
    }
}

fn target_text(t: Option<&pb::Target>) -> String {
    match t.and_then(|t| t.kind.as_ref()) {
        Some(pb::target::Kind::Scope(s)) => format!("at {}", root_or(s)),
        Some(pb::target::Kind::Population(g)) => format!("over population {g}"),
        None => "at root".into(),
    }
}

fn source_text(s: &pb::Source) -> String {
    let mut text = format!("role {}", s.role);
    if s.population.is_empty() {
        text.push_str(&format!(" at {}", root_or(&s.scope)));
    } else {
        text.push_str(&format!(" over population {}", s.population));
    }
    if !s.groups.is_empty() {
        text.push_str(&format!(" via group {}", s.groups.join(" < ")));
    }
    if !s.implication.is_empty() {
        text.push_str(&format!(" ({})", s.implication));
    }
    text
}

fn source_json(s: &pb::Source) -> Value {
    json!({"role": s.role, "scope": s.scope, "population": s.population, "groups": s.groups, "grant": s.grant, "implication": s.implication})
}

/// A denial reason as people write it: `no_grant`, `subject_locked`.
pub fn reason_name(reason: i32) -> String {
    pb::DenialReason::try_from(reason)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("DENIAL_REASON_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("reason {reason}"))
}

fn reach_name(reach: i32) -> &'static str {
    match pb::Reach::try_from(reach) {
        Ok(pb::Reach::Exact) => "exactly there",
        Ok(pb::Reach::Subtree) => "and below",
        _ => "reach unknown",
    }
}
