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
            "exported tenant {} at revision {}: {} subjects, {} groups, {} members, {} assignments",
            args.tenant,
            file.revision.unwrap_or_default(),
            file.subjects.len(),
            file.groups.len(),
            file.members.len(),
            file.assignments.len()
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
/// tenant in `tenant` of `target`, which should not hold any of it yet.
pub async fn import_file(
    path: &std::path::Path,
    target: &str,
    tenant: &str,
    client: &ClientArgs,
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
    let revision = write(&channel, tenant, &file).await?;
    Ok(format!(
        "imported {} subjects, {} groups, {} members, {} assignments into tenant {tenant}; last revision {revision}",
        file.subjects.len(),
        file.groups.len(),
        file.members.len(),
        file.assignments.len()
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

/// Recreates `file` in `tenant` with system writes, in dependency order
/// (settings, scopes, subjects, groups, roles, then memberships and
/// assignments in batches); the first refusal names its entry. Returns
/// the last revision written.
pub async fn write(
    channel: &ClientChannel,
    tenant: &str,
    file: &TenantFile,
) -> Result<u64, String> {
    let mut d = DirectoryServiceClient::new(channel.clone());
    let t = || tenant.to_string();
    let at = |list: &'static str, i: usize| {
        move |e: tonic::Status| format!("{list}[{i}]: {}", e.message())
    };
    let mut revision = 0;
    if !file.disabled_resources.is_empty() {
        let settings = Some(pb::TenantSettings {
            disabled_resources: file.disabled_resources.clone(),
        });
        let r = d
            .update_tenant_settings(pb::UpdateTenantSettingsRequest {
                tenant: t(),
                settings,
                options: None,
            })
            .await
            .map_err(|e| format!("disabled_resources: {}", e.message()))?;
        revision = r.into_inner().revision;
    }
    for (i, s) in parents_first(&file.scopes) {
        let scope = pb::Scope {
            id: s.id.clone(),
            r#type: s.scope_type.clone(),
            parent: s.parent.clone(),
        };
        let r = d
            .create_scope(pb::CreateScopeRequest {
                tenant: t(),
                scope: Some(scope),
                options: None,
            })
            .await
            .map_err(at("scopes", i))?;
        revision = r.into_inner().revision;
    }
    for (i, s) in file.subjects.iter().enumerate() {
        let r = d
            .create_subject(pb::CreateSubjectRequest {
                tenant: t(),
                subject: Some(s.to_pb()),
                options: None,
            })
            .await
            .map_err(at("subjects", i))?;
        revision = r.into_inner().revision;
    }
    for (i, g) in file.groups.iter().enumerate() {
        let group = pb::Group {
            id: g.id.clone(),
            title: g.title.clone(),
            condition: g.condition.clone(),
        };
        let r = d
            .create_group(pb::CreateGroupRequest {
                tenant: t(),
                group: Some(group),
                options: None,
            })
            .await
            .map_err(at("groups", i))?;
        revision = r.into_inner().revision;
    }
    for (i, role) in file.roles.iter().enumerate() {
        let r = d
            .create_role(pb::CreateRoleRequest {
                tenant: t(),
                role: Some(role.to_pb()),
                options: None,
            })
            .await
            .map_err(at("roles", i))?;
        revision = r.into_inner().revision;
    }
    let members = file
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| m.to_operation(&format!("members[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let assignments = file
        .assignments
        .iter()
        .enumerate()
        .map(|(i, a)| a.to_operation(&format!("assignments[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut m = MembershipServiceClient::new(channel.clone());
    for (list, operations) in [("members", members), ("assignments", assignments)] {
        for (chunk, batch) in operations.chunks(MAX_BATCH_OPERATIONS).enumerate() {
            let request = pb::ManageMembershipRequest {
                tenant: t(),
                operations: batch
                    .iter()
                    .map(|o| pb::MembershipOperation {
                        operation: Some(o.clone()),
                    })
                    .collect(),
                options: None,
                dry_run: false,
            };
            let r = m.manage_membership(request).await.map_err(|e| {
                // The batch's own index, made the entry's.
                let message = e.message();
                match message
                    .strip_prefix("operations[")
                    .and_then(|rest| rest.split_once(']'))
                    .and_then(|(n, tail)| n.parse::<usize>().ok().map(|n| (n, tail)))
                {
                    Some((n, tail)) => {
                        format!("{list}[{}]{tail}", chunk * MAX_BATCH_OPERATIONS + n)
                    }
                    None => format!("{list}: {message}"),
                }
            })?;
            revision = r.into_inner().revision;
        }
    }
    Ok(revision)
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
