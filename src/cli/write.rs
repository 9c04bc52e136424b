//! The write commands of the client CLI, against a running server:
//! `authzd subject|group|scope create|delete`, `authzd member add|remove`
//! and `authzd role assign|unassign`, each with `--actor` and `--reason`;
//! the membership and role commands also `--dry-run`, which prints the
//! what-if (the permission changes the write would cause and the refusals
//! it would meet) and commits nothing. Same target, tenant, token and TLS
//! options and `--json` as the query commands.
//!
//! Owns only presentation: each command is one RPC, answered as the
//! server answers it (with `--json`, the reply in the API's JSON). Must
//! not reach around the API.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::query::QueryArgs;
use authzd_client::{ClientChannel, Remote};
use authzd_server::api::pb;
use pb::directory_service_client::DirectoryServiceClient;
use pb::membership_service_client::MembershipServiceClient;

/// What every write says about itself.
#[derive(Debug, Clone, Args)]
pub struct WriteFlags {
    /// The subject on whose behalf the write is made (its rules apply:
    /// rank, managed_by, ...). Without it, a system write.
    #[arg(long)]
    pub actor: Option<String>,
    /// Why, for the audit trail.
    #[arg(long)]
    pub reason: Option<String>,
}

impl WriteFlags {
    fn options(&self) -> Option<pb::WriteOptions> {
        Some(pb::WriteOptions {
            actor: self.actor.clone().unwrap_or_default(),
            reason: self.reason.clone().unwrap_or_default(),
            ..Default::default()
        })
    }
}

/// A membership or role write: the write's flags and `--dry-run`.
#[derive(Debug, Clone, Args)]
pub struct BatchFlags {
    /// Actor and reason.
    #[command(flatten)]
    pub write: WriteFlags,
    /// Commit nothing: print the permission changes the write would cause
    /// and the refusals it would meet. Exits 1 if it would be refused.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where a role holds: a scope, a population (a group whose members it is
/// over), or (neither) the tenant root.
#[derive(Debug, Clone, Default, Args)]
pub struct RoleTarget {
    /// At this scope.
    #[arg(long, conflicts_with = "population")]
    pub scope: Option<String>,
    /// Over the members of this group.
    #[arg(long)]
    pub population: Option<String>,
}

impl RoleTarget {
    fn pb(&self) -> Option<pb::Target> {
        use pb::target::Kind;
        let kind = match (&self.scope, &self.population) {
            (Some(s), _) => Kind::Scope(s.clone()),
            (None, Some(g)) => Kind::Population(g.clone()),
            (None, None) => return None,
        };
        Some(pb::Target { kind: Some(kind) })
    }

    fn describe(&self) -> String {
        match (&self.scope, &self.population) {
            (Some(s), _) => format!("at {s}"),
            (None, Some(g)) => format!("over the members of {g}"),
            (None, None) => "at the root".into(),
        }
    }
}

/// A subject (`alice`, `subject:alice`) or a group (`group:team`).
fn principal(text: &str) -> Option<pb::Principal> {
    use pb::principal::Kind;
    let kind = match text.split_once(':') {
        Some(("group", id)) => Kind::Group(id.into()),
        Some(("subject", id)) => Kind::Subject(id.into()),
        _ => Kind::Subject(text.into()),
    };
    Some(pb::Principal { kind: Some(kind) })
}

/// Create or delete.
#[derive(Debug, Subcommand)]
pub enum Lifecycle<C: Args> {
    /// Create it.
    Create {
        /// Its id.
        id: String,
        /// What it is created with.
        #[command(flatten)]
        with: C,
        /// Actor and reason.
        #[command(flatten)]
        flags: WriteFlags,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Delete it.
    Delete {
        /// Its id.
        id: String,
        /// Actor and reason.
        #[command(flatten)]
        flags: WriteFlags,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
}

/// A new subject's settings.
#[derive(Debug, Clone, Args)]
pub struct SubjectWith {
    /// Its home scope [default: the root].
    #[arg(long)]
    pub home: Option<String>,
}

/// A new group's settings.
#[derive(Debug, Clone, Args)]
pub struct GroupWith {
    /// Its title.
    #[arg(long)]
    pub title: Option<String>,
    /// A CEL condition: every subject satisfying it is a member.
    #[arg(long)]
    pub condition: Option<String>,
}

/// A new scope's settings.
#[derive(Debug, Clone, Args)]
pub struct ScopeWith {
    /// Its parent [default: the root].
    #[arg(long)]
    pub parent: Option<String>,
    /// Its type ("unit", "app", ...).
    #[arg(long = "type")]
    pub kind: Option<String>,
}

/// The client CLI's write commands.
#[derive(Debug, Subcommand)]
pub enum WriteCommand {
    /// Create or delete a subject.
    #[command(subcommand)]
    Subject(Lifecycle<SubjectWith>),
    /// Create or delete a group.
    #[command(subcommand)]
    Group(Lifecycle<GroupWith>),
    /// Create or delete a scope.
    #[command(subcommand)]
    Scope(Lifecycle<ScopeWith>),
    /// Put a member into a group, or take it out.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Give a role to a principal, or take it away.
    #[command(subcommand)]
    Role(RoleCommand),
}

/// `authzd member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Put MEMBER (a subject, or group:ID) into GROUP.
    Add {
        /// The group.
        group: String,
        /// The member: a subject id, or group:ID for a nested group.
        member: String,
        /// Actor, reason, dry run.
        #[command(flatten)]
        flags: BatchFlags,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Take MEMBER (a subject, or group:ID) out of GROUP.
    Remove {
        /// The group.
        group: String,
        /// The member: a subject id, or group:ID.
        member: String,
        /// Actor, reason, dry run.
        #[command(flatten)]
        flags: BatchFlags,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
}

/// `authzd role ...`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Give ROLE to PRINCIPAL (a subject, or group:ID).
    Assign {
        /// The role.
        role: String,
        /// Who: a subject id, or group:ID.
        principal: String,
        /// Where it holds.
        #[command(flatten)]
        target: RoleTarget,
        /// Actor, reason, dry run.
        #[command(flatten)]
        flags: BatchFlags,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
    /// Take ROLE from PRINCIPAL (a subject, or group:ID).
    Unassign {
        /// The role.
        role: String,
        /// Who: a subject id, or group:ID.
        principal: String,
        /// Where it held.
        #[command(flatten)]
        target: RoleTarget,
        /// Actor, reason, dry run.
        #[command(flatten)]
        flags: BatchFlags,
        /// The server, the tenant and the output form.
        #[command(flatten)]
        query: QueryArgs,
    },
}

/// The reply `message` (of the API's type `name`) in the API's JSON.
pub fn api_json(message: &impl prost::Message, name: &str) -> Value {
    let pool = authzd_server::http::descriptors().ok();
    let Some(desc) = pool.and_then(|p| p.get_message_by_name(name)) else {
        return Value::Null;
    };
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
    prost_reflect::DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .ok()
        .and_then(|m| {
            m.serialize_with_options(serde_json::value::Serializer, &options)
                .ok()
        })
        .unwrap_or(Value::Null)
}

/// Connects as `args` says.
pub async fn connect(
    target: &str,
    client: &authzd_client::ClientArgs,
) -> Result<ClientChannel, String> {
    let remote = Remote::new(target, client).map_err(|e| e.to_string())?;
    remote
        .with(|e| e.timeout(std::time::Duration::from_secs(30)))
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// Runs a write command; whether it succeeded (for a dry run: and would
/// commit).
pub async fn command(command: &WriteCommand) -> bool {
    let query = match command {
        WriteCommand::Subject(
            Lifecycle::Create { query, .. } | Lifecycle::Delete { query, .. },
        )
        | WriteCommand::Group(Lifecycle::Create { query, .. } | Lifecycle::Delete { query, .. })
        | WriteCommand::Scope(Lifecycle::Create { query, .. } | Lifecycle::Delete { query, .. })
        | WriteCommand::Member(
            MemberCommand::Add { query, .. } | MemberCommand::Remove { query, .. },
        )
        | WriteCommand::Role(
            RoleCommand::Assign { query, .. } | RoleCommand::Unassign { query, .. },
        ) => query,
    };
    let channel = match connect(&query.target, &query.client).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", query.target);
            return false;
        }
    };
    let done = match command {
        WriteCommand::Subject(lifecycle) => subject(channel, lifecycle).await,
        WriteCommand::Group(lifecycle) => group(channel, lifecycle).await,
        WriteCommand::Scope(lifecycle) => scope(channel, lifecycle).await,
        WriteCommand::Member(member) => membership(channel, member_batch(member)).await,
        WriteCommand::Role(role) => membership(channel, role_batch(role)).await,
    };
    match done {
        Ok(ok) => ok,
        Err(status) => {
            eprintln!("{}", authzd_client::status::status_text(&status));
            false
        }
    }
}

/// Prints a committed directory write.
fn committed(q: &QueryArgs, what: String, revision: u64) {
    if q.json {
        println!(
            "{}",
            json!({ "done": what, "revision": revision.to_string() })
        );
    } else {
        println!("{what} (revision {revision})");
    }
}

async fn subject(
    channel: ClientChannel,
    l: &Lifecycle<SubjectWith>,
) -> Result<bool, tonic::Status> {
    let mut d = DirectoryServiceClient::new(channel);
    match l {
        Lifecycle::Create {
            id,
            with,
            flags,
            query,
        } => {
            let reply = d
                .create_subject(pb::CreateSubjectRequest {
                    tenant: query.tenant.clone(),
                    subject: Some(pb::Subject {
                        id: id.clone(),
                        home_scope: with.home.clone().unwrap_or_default(),
                        ..Default::default()
                    }),
                    options: flags.options(),
                })
                .await?
                .into_inner();
            committed(query, format!("created subject {id}"), reply.revision);
        }
        Lifecycle::Delete { id, flags, query } => {
            let reply = d
                .delete_subject(delete(query, id, flags))
                .await?
                .into_inner();
            committed(query, format!("deleted subject {id}"), reply.revision);
        }
    }
    Ok(true)
}

async fn group(channel: ClientChannel, l: &Lifecycle<GroupWith>) -> Result<bool, tonic::Status> {
    let mut d = DirectoryServiceClient::new(channel);
    match l {
        Lifecycle::Create {
            id,
            with,
            flags,
            query,
        } => {
            let reply = d
                .create_group(pb::CreateGroupRequest {
                    tenant: query.tenant.clone(),
                    group: Some(pb::Group {
                        id: id.clone(),
                        title: with.title.clone().unwrap_or_default(),
                        condition: with.condition.clone().unwrap_or_default(),
                    }),
                    options: flags.options(),
                })
                .await?
                .into_inner();
            committed(query, format!("created group {id}"), reply.revision);
        }
        Lifecycle::Delete { id, flags, query } => {
            let reply = d.delete_group(delete(query, id, flags)).await?.into_inner();
            committed(query, format!("deleted group {id}"), reply.revision);
        }
    }
    Ok(true)
}

async fn scope(channel: ClientChannel, l: &Lifecycle<ScopeWith>) -> Result<bool, tonic::Status> {
    let mut d = DirectoryServiceClient::new(channel);
    match l {
        Lifecycle::Create {
            id,
            with,
            flags,
            query,
        } => {
            let reply = d
                .create_scope(pb::CreateScopeRequest {
                    tenant: query.tenant.clone(),
                    scope: Some(pb::Scope {
                        id: id.clone(),
                        r#type: with.kind.clone().unwrap_or_default(),
                        parent: with.parent.clone().unwrap_or_default(),
                    }),
                    options: flags.options(),
                })
                .await?
                .into_inner();
            committed(query, format!("created scope {id}"), reply.revision);
        }
        Lifecycle::Delete { id, flags, query } => {
            let reply = d.delete_scope(delete(query, id, flags)).await?.into_inner();
            committed(query, format!("deleted scope {id}"), reply.revision);
        }
    }
    Ok(true)
}

fn delete(q: &QueryArgs, id: &str, flags: &WriteFlags) -> pb::DeleteRequest {
    pb::DeleteRequest {
        tenant: q.tenant.clone(),
        id: id.into(),
        options: flags.options(),
    }
}

/// One membership operation, what it does in words (to be done, and
/// done), and its flags.
struct Batch<'a> {
    operation: pb::membership_operation::Operation,
    what: String,
    done: String,
    flags: &'a BatchFlags,
    query: &'a QueryArgs,
}

fn member_batch(command: &MemberCommand) -> Batch<'_> {
    use pb::membership_operation::Operation as Op;
    match command {
        MemberCommand::Add {
            group,
            member,
            flags,
            query,
        } => Batch {
            operation: Op::AddMember(pb::AddMember {
                group: group.clone(),
                member: principal(member),
                precondition: 0,
            }),
            what: format!("add {member} to {group}"),
            done: format!("added {member} to {group}"),
            flags,
            query,
        },
        MemberCommand::Remove {
            group,
            member,
            flags,
            query,
        } => Batch {
            operation: Op::RemoveMember(pb::RemoveMember {
                group: group.clone(),
                member: principal(member),
                precondition: 0,
            }),
            what: format!("remove {member} from {group}"),
            done: format!("removed {member} from {group}"),
            flags,
            query,
        },
    }
}

fn role_batch(command: &RoleCommand) -> Batch<'_> {
    use pb::membership_operation::Operation as Op;
    match command {
        RoleCommand::Assign {
            role,
            principal: who,
            target,
            flags,
            query,
        } => Batch {
            operation: Op::AssignRole(pb::AssignRole {
                role: role.clone(),
                principal: principal(who),
                target: target.pb(),
                ..Default::default()
            }),
            what: format!("assign {role} to {who} {}", target.describe()),
            done: format!("assigned {role} to {who} {}", target.describe()),
            flags,
            query,
        },
        RoleCommand::Unassign {
            role,
            principal: who,
            target,
            flags,
            query,
        } => Batch {
            operation: Op::UnassignRole(pb::UnassignRole {
                role: role.clone(),
                principal: principal(who),
                target: target.pb(),
                precondition: 0,
            }),
            what: format!("unassign {role} from {who} {}", target.describe()),
            done: format!("unassigned {role} from {who} {}", target.describe()),
            flags,
            query,
        },
    }
}

async fn membership(channel: ClientChannel, batch: Batch<'_>) -> Result<bool, tonic::Status> {
    let Batch {
        operation,
        what,
        done,
        flags,
        query,
    } = batch;
    let reply = MembershipServiceClient::new(channel)
        .manage_membership(pb::ManageMembershipRequest {
            tenant: query.tenant.clone(),
            operations: vec![pb::MembershipOperation {
                operation: Some(operation),
            }],
            options: flags.write.options(),
            dry_run: flags.dry_run,
        })
        .await?
        .into_inner();
    if query.json {
        println!("{}", api_json(&reply, "authzd.v1.ManageMembershipResponse"));
    }
    let Some(what_if) = &reply.what_if else {
        if !query.json {
            println!("{done} (revision {})", reply.revision);
        }
        return Ok(true);
    };
    if !query.json {
        print_what_if(&what, reply.revision, what_if);
    }
    Ok(what_if.refusals.is_empty())
}

/// A dry run in words: "alice loses document:edit at emea (subtree)".
pub fn print_what_if(what: &str, revision: u64, w: &pb::WhatIf) {
    let verdict = if w.refusals.is_empty() {
        "would commit"
    } else {
        "would be refused"
    };
    println!("dry run: {what} {verdict} (planned on revision {revision}; nothing written)");
    for r in &w.refusals {
        let reason = if r.reason.is_empty() {
            String::new()
        } else {
            format!(" [{}]", r.reason)
        };
        println!("  refused: {} {}{reason}", r.code, r.message);
    }
    if w.permission_changes.is_empty() && w.refusals.is_empty() {
        println!("  no permission changes");
    }
    for c in &w.permission_changes {
        let verb = if c.gained { "gains" } else { "loses" };
        let place = if c.target_subject.is_empty() {
            format!("at {}", c.scope)
        } else {
            format!("over {}", c.target_subject)
        };
        let reach = match pb::Reach::try_from(c.reach) {
            Ok(pb::Reach::Exact) => " (exact)",
            _ => "",
        };
        println!("  {} {verb} {} {place}{reach}", c.subject, c.permission);
    }
    if w.more_permission_changes > 0 {
        println!(
            "  … and {} more permission changes",
            w.more_permission_changes
        );
    }
    if w.more_refusals {
        println!("  … and possibly more refusals");
    }
}
