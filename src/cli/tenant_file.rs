//! A tenant's directory as a file: settings, scopes, subjects, groups,
//! custom roles, memberships and assignments, in TOML (the seed of a
//! schema test) or JSON (`authzd export`, and `authzd import` of a `.json`
//! file). One format, read and written here, and the two ways it travels
//! through the public API: [`export`] reads a tenant with the directory's
//! list calls, [`write`] recreates one with system writes.
//!
//! Must not reach around the API: what it writes is what any client could.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use authzd_client::{ClientArgs, ClientChannel, Remote};
use authzd_core::limits::{MAX_BATCH_OPERATIONS, MAX_TENANT_FILE_BYTES};
use authzd_server::api::pb;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;

/// `authzd export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The server (HOST:PORT, or https://HOST:PORT for TLS).
    #[arg(long, env = "AUTHZD_ADDR", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// The tenant to export.
    #[arg(long, env = "AUTHZD_TENANT")]
    pub tenant: String,
    /// Write the JSON here instead of to stdout (`-` is stdout too, as for
    /// most commands that write a file).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// TLS and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `authzd export`: the tenant as JSON; whether it succeeded.
pub async fn export_command(args: &ExportArgs) -> bool {
    let done = async {
        let channel = connect(&args.target, &args.client).await?;
        let file = export(&channel, &args.tenant).await?;
        let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        match args.out.as_deref().filter(|path| path.as_os_str() != "-") {
            Some(path) => {
                std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => println!("{text}"),
        }
        eprintln!(
            "exported tenant {} at revision {}: {}, {}, {}, {}",
            args.tenant,
            file.revision.unwrap_or_default(),
            super::count(file.subjects.len(), "subject"),
            super::count(file.groups.len(), "group"),
            super::count(file.members.len(), "member"),
            super::count(file.assignments.len(), "assignment")
        );
        Ok::<_, String>(())
    };
    match done.await {
        Ok(()) => true,
        Err(e) => {
            eprintln!("authzd export: {e}");
            false
        }
    }
}

/// `authzd import` of a `.json` file (an `authzd export`): recreates the
/// tenant in `tenant` of `target` (see [`apply`]); with `dry_run`, checks
/// it against the tenant and writes nothing.
pub async fn import_file(
    path: &std::path::Path,
    target: &str,
    tenant: &str,
    client: &ClientArgs,
    dry_run: bool,
) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_TENANT_FILE_BYTES {
        return Err(format!(
            "{}: {size} bytes; the limit is {MAX_TENANT_FILE_BYTES}",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TenantFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let channel = connect(target, client).await?;
    let current = current(&channel, tenant).await?;
    let plan = plan(&file, &current)?;
    if dry_run {
        return Ok(format!(
            "would import {} into tenant {tenant}; nothing written (--dry-run)",
            plan.summary()
        ));
    }
    let revision = apply(&channel, tenant, &plan).await?;
    Ok(format!(
        "imported {} into tenant {tenant}; last revision {revision}",
        plan.summary()
    ))
}

async fn connect(target: &str, client: &ClientArgs) -> Result<ClientChannel, String> {
    let remote = Remote::new(target, client).map_err(|e| e.to_string())?;
    remote.connect().await.map_err(|e| format!("{target}: {e}"))
}

/// How often an export restarts because writes ran while it read.
const EXPORT_ATTEMPTS: usize = 3;

/// A tenant's directory (builtin roles, which the schema defines, are not
/// part of it).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// The revision an export read (absent in hand-written files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Resource types switched off for the tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_resources: Vec<String>,
    /// The scope tree below the tenant root; a parent may come after its
    /// children in the list.
    #[serde(default)]
    pub scopes: Vec<ScopeEntry>,
    /// The users and service users.
    #[serde(default)]
    pub subjects: Vec<SubjectEntry>,
    /// The groups (their members are in `members`).
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    /// The tenant's custom roles.
    #[serde(default)]
    pub roles: Vec<RoleEntry>,
    /// Group memberships: subjects and nested groups.
    #[serde(default)]
    pub members: Vec<MemberEntry>,
    /// Role assignments to subjects and groups.
    #[serde(default)]
    pub assignments: Vec<AssignmentEntry>,
}

/// A scope; `parent` empty is the root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeEntry {
    /// Unique within the tenant; `root` is the tenant root and is not listed.
    pub id: String,
    /// The parent scope's id; empty (or absent) for the tenant root.
    #[serde(default)]
    pub parent: String,
    /// `type` in the file: what kind of place this is (`app`, `unit`, ...),
    /// free-form.
    #[serde(default, rename = "type")]
    pub scope_type: String,
}

/// A subject: a user unless `service`, active unless `locked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectEntry {
    /// Unique within the tenant: 1-256 bytes, no whitespace or control
    /// characters.
    pub id: String,
    /// `true` for a service user; absent or `false` for a user.
    #[serde(default, skip_serializing_if = "is_false")]
    pub service: bool,
    /// `true` for a locked subject; absent or `false` for an active one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
    /// Free-form string attributes (`"department": "HR"`), at most 64; group
    /// conditions read them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The scope the subject belongs to, where checks that target it apply;
    /// empty (or absent) for the tenant root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub home_scope: String,
}

/// A group of subjects and nested groups, which roles can be assigned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    /// Unique within the tenant.
    pub id: String,
    /// A human-readable name.
    #[serde(default)]
    pub title: String,
    /// A CEL expression over a subject (`attributes`, `id`, `kind`,
    /// `status`): every subject satisfying it is a member besides the
    /// explicit ones; empty (or absent) for explicit members only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
}

/// A custom role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    /// Unique within the tenant, builtin roles included.
    pub id: String,
    /// A human-readable name.
    #[serde(default)]
    pub title: String,
    /// A role class of the schema.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// What it grants: a permission, or `{ permission, scopes }` to pin it
    /// to named scopes below the assignment.
    #[serde(default)]
    pub grants: Vec<GrantEntry>,
    /// An actor cannot grant a role of a higher rank than its own.
    #[serde(default)]
    pub rank: i32,
    /// Permissions a subject must already hold to receive the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// The permission an actor needs to assign or remove the role.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub managed_by: String,
    /// A permission that lets an actor assign the role without holding
    /// every permission it grants (rank still applies).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub grantable_by: String,
    /// `true` if a subject may remove itself from the role.
    #[serde(default, skip_serializing_if = "is_false")]
    pub self_removable: bool,
}

/// One permission a role grants: a string, or an object that pins it to
/// named scopes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GrantEntry {
    /// `"type:level"`, `"type:action"`, a derived permission's name, or `"*"`
    /// (every permission), held at the assignment's scope.
    Plain(String),
    /// `{ "permission": ..., "scopes": [...] }`: held only at these scopes
    /// (and, for inheriting permissions, below them) instead of at the
    /// assignment's scope.
    Pinned {
        /// The permission, as in a plain grant.
        permission: String,
        /// The scope ids it holds at.
        scopes: Vec<String>,
    },
}

/// A member of `group`: a subject or (`member_group`) a nested group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// The group's id.
    pub group: String,
    /// The member subject's id; give this or `member_group`, not both.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The member group's id, nested in `group`; give this or `subject`,
    /// not both.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub member_group: String,
}

/// A role given to a subject or a group, at a scope (empty: the root) or
/// over a population, until `expires_at` (RFC 3339) if given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentEntry {
    /// The role's id (builtin or custom).
    pub role: String,
    /// The subject that holds it; give this or `group`, not both.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The group that holds it; give this or `subject`, not both.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The scope it holds at (and below, for inheriting permissions); empty
    /// (or absent) for the tenant root. Not with `population`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// A group used as a population: the role holds for checks that target
    /// a subject while that subject is in the group. Not with `scope`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub population: String,
    /// When it stops counting, in RFC 3339 (`2030-01-01T00:00:00Z`); absent
    /// for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A subject or a group, exactly one of them given.
fn principal(subject: &str, group: &str, entry: &str) -> Result<pb::Principal, String> {
    let kind = match (subject.is_empty(), group.is_empty()) {
        (false, true) => pb::principal::Kind::Subject(subject.into()),
        (true, false) => pb::principal::Kind::Group(group.into()),
        _ => return Err(format!("{entry}: give exactly one of subject and group")),
    };
    Ok(pb::Principal { kind: Some(kind) })
}

fn principal_ids(p: Option<&pb::Principal>) -> (String, String) {
    match p.and_then(|p| p.kind.as_ref()) {
        Some(pb::principal::Kind::Subject(s)) => (s.clone(), String::new()),
        Some(pb::principal::Kind::Group(g)) => (String::new(), g.clone()),
        None => (String::new(), String::new()),
    }
}

impl GrantEntry {
    fn to_pb(&self) -> pb::Grant {
        match self {
            GrantEntry::Plain(permission) => pb::Grant {
                permission: permission.clone(),
                scopes: Vec::new(),
            },
            GrantEntry::Pinned { permission, scopes } => pb::Grant {
                permission: permission.clone(),
                scopes: scopes.clone(),
            },
        }
    }

    fn of(g: &pb::Grant) -> GrantEntry {
        if g.scopes.is_empty() {
            GrantEntry::Plain(g.permission.clone())
        } else {
            GrantEntry::Pinned {
                permission: g.permission.clone(),
                scopes: g.scopes.clone(),
            }
        }
    }
}

impl SubjectEntry {
    fn to_pb(&self) -> pb::Subject {
        let kind = if self.service {
            pb::SubjectKind::Service
        } else {
            pb::SubjectKind::User
        };
        let status = if self.locked {
            pb::SubjectStatus::Locked
        } else {
            pb::SubjectStatus::Active
        };
        pb::Subject {
            id: self.id.clone(),
            kind: kind.into(),
            status: status.into(),
            attributes: self.attributes.clone().into_iter().collect(),
            home_scope: self.home_scope.clone(),
        }
    }

    fn of(s: &pb::Subject) -> SubjectEntry {
        SubjectEntry {
            id: s.id.clone(),
            service: s.kind() == pb::SubjectKind::Service,
            locked: s.status() == pb::SubjectStatus::Locked,
            attributes: s.attributes.clone().into_iter().collect(),
            home_scope: s.home_scope.clone(),
        }
    }
}

impl RoleEntry {
    fn to_pb(&self) -> pb::Role {
        pb::Role {
            id: self.id.clone(),
            title: self.title.clone(),
            class: self.class.clone(),
            grants: self.grants.iter().map(GrantEntry::to_pb).collect(),
            rank: self.rank,
            requires: self.requires.clone(),
            managed_by: self.managed_by.clone(),
            grantable_by: self.grantable_by.clone(),
            self_removable: self.self_removable,
            builtin: false,
        }
    }

    fn of(r: &pb::Role) -> RoleEntry {
        RoleEntry {
            id: r.id.clone(),
            title: r.title.clone(),
            class: r.class.clone(),
            grants: r.grants.iter().map(GrantEntry::of).collect(),
            rank: r.rank,
            requires: r.requires.clone(),
            managed_by: r.managed_by.clone(),
            grantable_by: r.grantable_by.clone(),
            self_removable: r.self_removable,
        }
    }
}

impl AssignmentEntry {
    fn to_operation(&self, entry: &str) -> Result<pb::membership_operation::Operation, String> {
        let target = match (self.scope.is_empty(), self.population.is_empty()) {
            (_, true) => pb::target::Kind::Scope(self.scope.clone()),
            (true, false) => pb::target::Kind::Population(self.population.clone()),
            (false, false) => return Err(format!("{entry}: give scope or population, not both")),
        };
        let expires_at = match &self.expires_at {
            Some(t) => Some(
                t.parse::<prost_types::Timestamp>()
                    .map_err(|e| format!("{entry}.expires_at: {e}"))?,
            ),
            None => None,
        };
        Ok(pb::membership_operation::Operation::AssignRole(
            pb::AssignRole {
                role: self.role.clone(),
                principal: Some(principal(&self.subject, &self.group, entry)?),
                target: Some(pb::Target { kind: Some(target) }),
                expires_at,
                ..Default::default()
            },
        ))
    }

    fn of(a: &pb::Assignment) -> AssignmentEntry {
        let (subject, group) = principal_ids(a.principal.as_ref());
        let (scope, population) = match a.target.as_ref().and_then(|t| t.kind.as_ref()) {
            Some(pb::target::Kind::Scope(s)) => (s.clone(), String::new()),
            Some(pb::target::Kind::Population(g)) => (String::new(), g.clone()),
            None => (String::new(), String::new()),
        };
        AssignmentEntry {
            role: a.role.clone(),
            subject,
            group,
            scope,
            population,
            expires_at: a.expires_at.map(|t| t.to_string()),
        }
    }
}

impl MemberEntry {
    fn to_operation(&self, entry: &str) -> Result<pb::membership_operation::Operation, String> {
        Ok(pb::membership_operation::Operation::AddMember(
            pb::AddMember {
                group: self.group.clone(),
                member: Some(principal(&self.subject, &self.member_group, entry)?),
                ..Default::default()
            },
        ))
    }
}

/// Recreates `file` in `tenant` with system writes: see [`plan`] for what
/// is written and [`apply`] for how. Returns the last revision written.
pub async fn write(
    channel: &ClientChannel,
    tenant: &str,
    file: &TenantFile,
) -> Result<u64, String> {
    let current = current(channel, tenant).await?;
    let plan = plan(file, &current)?;
    apply(channel, tenant, &plan).await
}

/// What the tenant holds now: empty if it does not exist yet.
async fn current(channel: &ClientChannel, tenant: &str) -> Result<TenantFile, String> {
    let exists = DirectoryServiceClient::new(channel.clone())
        .get_tenant(pb::GetTenantRequest {
            tenant: tenant.into(),
        })
        .await;
    match exists {
        Err(e) if e.code() == tonic::Code::NotFound => Ok(TenantFile::default()),
        Err(e) => Err(format!("reading tenant {tenant}: {}", e.message())),
        Ok(_) => export(channel, tenant).await,
    }
}

/// What a file adds to a tenant, in dependency order, each record with its
/// index in the file: the entries the tenant does not hold yet (one it
/// holds exactly as the file has it is kept, one it holds otherwise is
/// refused before anything is written), and every membership and
/// assignment (adding either again changes nothing).
#[derive(Debug, Default)]
struct Plan {
    /// The resource types to switch off, when they differ from the
    /// tenant's, with the tenant's current ones (to undo).
    settings: Option<(Vec<String>, Vec<String>)>,
    scopes: Vec<(usize, pb::Scope)>,
    roles: Vec<(usize, pb::Role)>,
    subjects: Vec<(usize, pb::Subject)>,
    groups: Vec<(usize, pb::Group)>,
    members: Vec<(usize, pb::AddMember)>,
    assignments: Vec<(usize, pb::AssignRole)>,
    /// Entries the tenant already holds as the file has them.
    kept: usize,
    /// The tenant's revision when it was read.
    read_at: u64,
}

/// The tenant root, however a file names it.
fn root_named(scope: &str) -> &str {
    if scope.is_empty() {
        authzd_core::model::ROOT_SCOPE
    } else {
        scope
    }
}

/// The entries of `list` (named `name` in the file) the tenant does not
/// hold; `Err` names the first the tenant holds differently.
fn missing<'a, T>(
    name: &str,
    list: &'a [T],
    held: &[T],
    id: impl Fn(&T) -> &str,
    same: impl Fn(&T, &T) -> bool,
    kept: &mut usize,
) -> Result<Vec<(usize, &'a T)>, String> {
    let held: BTreeMap<&str, &T> = held.iter().map(|t| (id(t), t)).collect();
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match held.get(id(entry)) {
            None => out.push((i, entry)),
            Some(h) if same(h, entry) => *kept += 1,
            Some(_) => {
                return Err(format!(
                    "{name}[{i}]: {} already exists in the tenant and differs from the file; nothing was written",
                    id(entry)
                ));
            }
        }
    }
    Ok(out)
}

/// What writing `file` over `current` takes; every entry is converted and
/// checked against the tenant before anything is written.
fn plan(file: &TenantFile, current: &TenantFile) -> Result<Plan, String> {
    let nothing = |e: String| format!("{e}; nothing was written");
    let mut plan = Plan {
        read_at: current.revision.unwrap_or_default(),
        ..Plan::default()
    };
    if !file.disabled_resources.is_empty() && file.disabled_resources != current.disabled_resources
    {
        plan.settings = Some((
            file.disabled_resources.clone(),
            current.disabled_resources.clone(),
        ));
    }
    let kept = &mut plan.kept;
    let scopes = missing(
        "scopes",
        &file.scopes,
        &current.scopes,
        |s| &s.id,
        |a, b| root_named(&a.parent) == root_named(&b.parent) && a.scope_type == b.scope_type,
        kept,
    )?;
    let order: BTreeMap<usize, usize> = parents_first(&file.scopes)
        .into_iter()
        .enumerate()
        .map(|(at, (i, _))| (i, at))
        .collect();
    let mut scopes: Vec<(usize, pb::Scope)> = scopes
        .into_iter()
        .map(|(i, s)| {
            let scope = pb::Scope {
                id: s.id.clone(),
                r#type: s.scope_type.clone(),
                parent: s.parent.clone(),
            };
            (i, scope)
        })
        .collect();
    scopes.sort_by_key(|(i, _)| order.get(i).copied().unwrap_or(usize::MAX));
    plan.scopes = scopes;
    plan.roles = missing(
        "roles",
        &file.roles,
        &current.roles,
        |r| &r.id,
        |a, b| a == b,
        kept,
    )?
    .into_iter()
    .map(|(i, r)| (i, r.to_pb()))
    .collect();
    plan.subjects = missing(
        "subjects",
        &file.subjects,
        &current.subjects,
        |s| &s.id,
        |a, b| {
            root_named(&a.home_scope) == root_named(&b.home_scope)
                && (a.service, a.locked, &a.attributes) == (b.service, b.locked, &b.attributes)
        },
        kept,
    )?
    .into_iter()
    .map(|(i, s)| (i, s.to_pb()))
    .collect();
    plan.groups = missing(
        "groups",
        &file.groups,
        &current.groups,
        |g| &g.id,
        |a, b| a == b,
        kept,
    )?
    .into_iter()
    .map(|(i, g)| {
        let group = pb::Group {
            id: g.id.clone(),
            title: g.title.clone(),
            condition: g.condition.clone(),
        };
        (i, group)
    })
    .collect();
    for (i, m) in file.members.iter().enumerate() {
        if let pb::membership_operation::Operation::AddMember(add) =
            m.to_operation(&format!("members[{i}]")).map_err(nothing)?
        {
            plan.members.push((i, add));
        }
    }
    for (i, a) in file.assignments.iter().enumerate() {
        if let pb::membership_operation::Operation::AssignRole(assign) = a
            .to_operation(&format!("assignments[{i}]"))
            .map_err(nothing)?
        {
            plan.assignments.push((i, assign));
        }
    }
    Ok(plan)
}

impl Plan {
    /// What it writes, for a report.
    fn summary(&self) -> String {
        let mut text = format!(
            "{}, {}, {}, {}, {}, {}",
            super::count(self.scopes.len(), "scope"),
            super::count(self.subjects.len(), "subject"),
            super::count(self.groups.len(), "group"),
            super::count(self.roles.len(), "role"),
            super::count(self.members.len(), "member"),
            super::count(self.assignments.len(), "assignment"),
        );
        if self.kept > 0 {
            text.push_str(&format!(
                " ({} already in the tenant as the file has {})",
                super::count(self.kept, "entry"),
                if self.kept == 1 { "it" } else { "them" }
            ));
        }
        text
    }

    /// The subjects, groups, memberships and assignments in `Import`
    /// chunks of at most [`MAX_BATCH_OPERATIONS`] records, in field order
    /// (the order the server applies a chunk's fields in).
    fn chunks(&self) -> Vec<Chunk> {
        fn put(out: &mut Vec<Chunk>, add: impl FnOnce(&mut Chunk)) {
            if out
                .last()
                .is_none_or(|c| c.records() >= MAX_BATCH_OPERATIONS)
            {
                out.push(Chunk::default());
            }
            if let Some(chunk) = out.last_mut() {
                add(chunk);
            }
        }
        let mut out = Vec::new();
        for (i, s) in &self.subjects {
            put(&mut out, |c| {
                c.request.subjects.push(s.clone());
                c.subjects.push(*i);
            });
        }
        for (i, g) in &self.groups {
            put(&mut out, |c| {
                c.request.groups.push(g.clone());
                c.groups.push(*i);
            });
        }
        for (i, m) in &self.members {
            put(&mut out, |c| {
                c.request.memberships.push(m.clone());
                c.members.push(*i);
            });
        }
        for (i, a) in &self.assignments {
            put(&mut out, |c| {
                c.request.assignments.push(a.clone());
                c.assignments.push(*i);
            });
        }
        out
    }
}

/// One `Import` request, with each record's index in the file.
#[derive(Debug, Default)]
struct Chunk {
    request: pb::ImportRequest,
    subjects: Vec<usize>,
    groups: Vec<usize>,
    members: Vec<usize>,
    assignments: Vec<usize>,
}

impl Chunk {
    fn records(&self) -> usize {
        self.subjects.len() + self.groups.len() + self.members.len() + self.assignments.len()
    }

    /// A refusal of the chunk (`memberships[3]: …`) in the file's terms
    /// (`members[120]: …`).
    fn refusal(&self, status: &tonic::Status) -> String {
        let message = status.message();
        let fields: [(&str, &str, &[usize]); 4] = [
            ("subjects[", "subjects", &self.subjects),
            ("groups[", "groups", &self.groups),
            ("memberships[", "members", &self.members),
            ("assignments[", "assignments", &self.assignments),
        ];
        for (prefix, name, indexes) in fields {
            let entry = message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(n, tail)| Some((indexes.get(n.parse::<usize>().ok()?)?, tail)));
            if let Some((i, tail)) = entry {
                return format!("{name}[{i}]{tail}");
            }
        }
        message.to_string()
    }
}

/// A write made before the first chunk, and how to take it back.
enum Undo {
    Settings(Vec<String>),
    Scope(String),
    Role(String),
}

/// Writes `plan`: the settings, scopes (parents first) and roles one by
/// one, then the rest in `Import` chunks, each one revision and
/// all-or-nothing, with an idempotency key. A refusal before the first
/// chunk has committed takes back what this run wrote, so a file whose
/// records fit in one chunk is written whole or not at all; a later one
/// says what was written and that running the same import again resumes
/// (what the tenant already holds as the file has it is kept).
async fn apply(channel: &ClientChannel, tenant: &str, plan: &Plan) -> Result<u64, String> {
    let mut d = DirectoryServiceClient::new(channel.clone());
    let mut undo = Vec::new();
    let mut revision = plan.read_at;
    let before_chunks = async {
        if let Some((disabled, previous)) = &plan.settings {
            let r = d
                .update_tenant_settings(pb::UpdateTenantSettingsRequest {
                    tenant: tenant.into(),
                    settings: Some(pb::TenantSettings {
                        disabled_resources: disabled.clone(),
                    }),
                    options: None,
                })
                .await
                .map_err(|e| format!("disabled_resources: {}", e.message()))?;
            revision = r.into_inner().revision;
            undo.push(Undo::Settings(previous.clone()));
        }
        for (i, scope) in &plan.scopes {
            let r = d
                .create_scope(pb::CreateScopeRequest {
                    tenant: tenant.into(),
                    scope: Some(scope.clone()),
                    options: None,
                })
                .await
                .map_err(|e| format!("scopes[{i}]: {}", e.message()))?;
            revision = r.into_inner().revision;
            undo.push(Undo::Scope(scope.id.clone()));
        }
        for (i, role) in &plan.roles {
            let r = d
                .create_role(pb::CreateRoleRequest {
                    tenant: tenant.into(),
                    role: Some(role.clone()),
                    options: None,
                })
                .await
                .map_err(|e| format!("roles[{i}]: {}", e.message()))?;
            revision = r.into_inner().revision;
            undo.push(Undo::Role(role.id.clone()));
        }
        Ok::<_, String>(())
    };
    let mut refused = before_chunks.await.err();
    let chunks = plan.chunks();
    let mut m = MembershipServiceClient::new(channel.clone());
    let mut written = 0;
    if refused.is_none() {
        for chunk in &chunks {
            let mut request = pb::ImportRequest {
                tenant: tenant.into(),
                ..chunk.request.clone()
            };
            request.options = Some(pb::WriteOptions {
                idempotency_key: super::import::chunk_key(tenant, plan.read_at, &request),
                ..Default::default()
            });
            match m.import(request).await {
                Ok(r) => revision = r.into_inner().revision,
                Err(e) => {
                    refused = Some(chunk.refusal(&e));
                    break;
                }
            }
            written += 1;
        }
    }
    let Some(refused) = refused else {
        return Ok(revision);
    };
    if written > 0 {
        return Err(format!(
            "{refused}; written: the file's settings, scopes and roles and chunk 1 to {written} of {} (revision {revision}); correct the file and run the same import again to resume (what the tenant holds as the file has it is kept)",
            chunks.len()
        ));
    }
    if undo.is_empty() {
        return Err(format!("{refused}; nothing was written"));
    }
    let taken_back = undo.len();
    for step in undo.into_iter().rev() {
        let (what, done) = match step {
            Undo::Settings(previous) => {
                let request = pb::UpdateTenantSettingsRequest {
                    tenant: tenant.into(),
                    settings: Some(pb::TenantSettings {
                        disabled_resources: previous,
                    }),
                    options: None,
                };
                let done = d.update_tenant_settings(request).await.map(|_| ());
                ("the settings".to_string(), done)
            }
            Undo::Scope(id) => {
                let done = d.delete_scope(delete(tenant, &id)).await.map(|_| ());
                (format!("scope {id}"), done)
            }
            Undo::Role(id) => {
                let done = d.delete_role(delete(tenant, &id)).await.map(|_| ());
                (format!("role {id}"), done)
            }
        };
        if let Err(e) = done {
            return Err(format!(
                "{refused}; taking back what was written before it failed at {what}: {}; the tenant holds part of the file: correct it and run the same import again to resume",
                e.message()
            ));
        }
    }
    Err(format!(
        "{refused}; nothing was kept (the {} written before it {} taken back)",
        super::count(taken_back, "write"),
        if taken_back == 1 { "was" } else { "were" }
    ))
}

fn delete(tenant: &str, id: &str) -> pb::DeleteRequest {
    pb::DeleteRequest {
        tenant: tenant.into(),
        id: id.into(),
        options: None,
    }
}

/// The scopes with their indexes, each after its parent (listings give
/// them in id order); one whose parent is missing comes last, for the
/// server to refuse with its index.
fn parents_first(scopes: &[ScopeEntry]) -> Vec<(usize, &ScopeEntry)> {
    let mut children: BTreeMap<&str, Vec<(usize, &ScopeEntry)>> = BTreeMap::new();
    for (i, s) in scopes.iter().enumerate() {
        children.entry(s.parent.as_str()).or_default().push((i, s));
    }
    let mut ordered = Vec::with_capacity(scopes.len());
    // The root is written "" by hand and "root" by the server.
    let mut next = vec!["", authzd_core::model::ROOT_SCOPE];
    while let Some(parent) = next.pop() {
        for (i, s) in children.remove(parent).unwrap_or_default() {
            ordered.push((i, s));
            next.push(s.id.as_str());
        }
    }
    ordered.extend(children.into_values().flatten());
    ordered
}

/// Reads `tenant` whole. The listings are paged, so it checks that no write
/// ran while it read (the revision before equals the one after) and reads
/// again if one did, at most [`EXPORT_ATTEMPTS`] times.
pub async fn export(channel: &ClientChannel, tenant: &str) -> Result<TenantFile, String> {
    for _ in 0..EXPORT_ATTEMPTS {
        let before = latest(channel, tenant).await?;
        let mut file = read_all(channel, tenant, before)
            .await
            .map_err(|e| e.message().to_string())?;
        if latest(channel, tenant).await? == before {
            file.revision = Some(before);
            return Ok(file);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "writes kept changing tenant {tenant} while it was read ({EXPORT_ATTEMPTS} attempts)"
    ))
}

async fn latest(channel: &ClientChannel, tenant: &str) -> Result<u64, String> {
    let reply = DirectoryServiceClient::new(channel.clone())
        .get_tenant(pb::GetTenantRequest {
            tenant: tenant.into(),
        })
        .await
        .map_err(|e| e.message().to_string())?;
    Ok(reply.into_inner().revision)
}

/// Follows `next_page_token` until the last page, collecting what `call`
/// returns for each page token.
macro_rules! all_pages {
    ($call:expr) => {{
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = $call(token.clone()).await?;
            items.extend(page);
            if next.is_empty() {
                break items;
            }
            token = next;
        }
    }};
}

async fn read_all(
    channel: &ClientChannel,
    tenant: &str,
    revision: u64,
) -> Result<TenantFile, tonic::Status> {
    let mut d = DirectoryServiceClient::new(channel.clone());
    let list = |token: String| pb::ListRequest {
        tenant: tenant.into(),
        page: Some(pb::PageRequest {
            page_size: authzd_core::limits::MAX_PAGE_SIZE as u32,
            page_token: token,
        }),
        at_least_revision: revision,
    };
    let settings = d
        .get_tenant(pb::GetTenantRequest {
            tenant: tenant.into(),
        })
        .await?
        .into_inner()
        .tenant
        .and_then(|t| t.settings)
        .unwrap_or_default();
    let scopes = all_pages!(|token| {
        let mut d = d.clone();
        let request = list(token);
        async move {
            let r = d.list_scopes(request).await?.into_inner();
            Ok::<_, tonic::Status>((r.scopes, r.next_page_token))
        }
    });
    let subjects = all_pages!(|token| {
        let mut d = d.clone();
        let request = list(token);
        async move {
            let r = d.list_subjects(request).await?.into_inner();
            Ok::<_, tonic::Status>((r.subjects, r.next_page_token))
        }
    });
    let groups = all_pages!(|token| {
        let mut d = d.clone();
        let request = list(token);
        async move {
            let r = d.list_groups(request).await?.into_inner();
            Ok::<_, tonic::Status>((r.groups, r.next_page_token))
        }
    });
    let roles = all_pages!(|token| {
        let mut d = d.clone();
        let request = list(token);
        async move {
            let r = d.list_roles(request).await?.into_inner();
            Ok::<_, tonic::Status>((r.roles, r.next_page_token))
        }
    });
    let mut members = Vec::new();
    for g in &groups {
        let page = |token: String| {
            let mut d = d.clone();
            let request = pb::ListGroupMembersRequest {
                tenant: tenant.into(),
                group: g.id.clone(),
                page: list(token).page,
                at_least_revision: revision,
            };
            async move {
                let r = d.list_group_members(request).await?.into_inner();
                Ok::<_, tonic::Status>((r.members, r.next_page_token))
            }
        };
        for p in all_pages!(page) {
            let (subject, member_group) = principal_ids(Some(&p));
            members.push(MemberEntry {
                group: g.id.clone(),
                subject,
                member_group,
            });
        }
    }
    let assignments = all_pages!(|token| {
        let mut d = d.clone();
        let request = pb::ListAssignmentsRequest {
            tenant: tenant.into(),
            page: list(token).page,
            at_least_revision: revision,
            ..Default::default()
        };
        async move {
            let r = d.list_assignments(request).await?.into_inner();
            Ok::<_, tonic::Status>((r.assignments, r.next_page_token))
        }
    });
    Ok(TenantFile {
        revision: None,
        disabled_resources: settings.disabled_resources,
        scopes: scopes
            .iter()
            .map(|s| ScopeEntry {
                id: s.id.clone(),
                parent: s.parent.clone(),
                scope_type: s.r#type.clone(),
            })
            .collect(),
        subjects: subjects.iter().map(SubjectEntry::of).collect(),
        groups: groups
            .iter()
            .map(|g| GroupEntry {
                id: g.id.clone(),
                title: g.title.clone(),
                condition: g.condition.clone(),
            })
            .collect(),
        roles: roles
            .iter()
            .filter(|r| !r.builtin)
            .map(RoleEntry::of)
            .collect(),
        members,
        assignments: assignments.iter().map(AssignmentEntry::of).collect(),
    })
}
