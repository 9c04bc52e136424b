//! The bench's fill: creates a [`Dataset`] in one tenant through the public
//! gRPC API, as any client would: directory creates for scopes (level by
//! level, parents first), subjects and groups, then `ManageMembership`
//! batches of at most [`MAX_BATCH_OPERATIONS`] for nestings, memberships and
//! role assignments. Must not reach around the API into the server.

use std::time::{Duration, Instant};

use authzd_client::ClientChannel;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{BenchError, rpc_error};
use authzd_core::limits::MAX_BATCH_OPERATIONS;
use authzd_proto::pb;
use authzd_proto::pb::directory_service_client::DirectoryServiceClient;
use authzd_proto::pb::membership_service_client::MembershipServiceClient;
use authzd_testkit::dataset::{Assign, Dataset, Who};

/// Directory creates in flight. Writes are serialised by the server's write
/// gate; a few in flight hide the round trips.
const IN_FLIGHT: usize = 16;

/// What the fill made and how long it took.
#[derive(Debug, Clone)]
pub struct FillStats {
    /// Subjects created.
    pub subjects: usize,
    /// Of which locked.
    pub locked: usize,
    /// Groups created.
    pub groups: usize,
    /// Group nestings (group in group).
    pub nestings: usize,
    /// Scopes created.
    pub scopes: usize,
    /// Depth of the scope tree below the root.
    pub depth: u32,
    /// Subject memberships.
    pub memberships: usize,
    /// Role assignments (to groups and subjects).
    pub assignments: usize,
    /// Directory create calls.
    pub creates: usize,
    /// `ManageMembership` batches.
    pub batches: usize,
    /// Revision after the fill.
    pub revision: u64,
    /// Wall time of the whole fill.
    pub elapsed: Duration,
}

/// Runs `call` for every item with [`IN_FLIGHT`] calls at once, stopping at
/// the first failure; returns the highest revision the calls answered.
async fn in_flight<I, F, Fut>(items: I, call: F) -> Result<u64, BenchError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<u64, BenchError>>,
{
    stream::iter(items)
        .map(call)
        .buffer_unordered(IN_FLIGHT)
        .try_fold(0, |high, r| async move { Ok(high.max(r)) })
        .await
}

/// Creates the dataset's scopes level by level, so every parent exists
/// before its children; returns the highest revision.
pub(super) async fn create_scopes(
    directory: &DirectoryServiceClient<ClientChannel>,
    tenant: &str,
    data: &Dataset,
) -> Result<u64, BenchError> {
    let mut revision = 0;
    for level in data.scope_levels() {
        let r = in_flight(level, |i| {
            let mut d = directory.clone();
            let request = pb::CreateScopeRequest {
                tenant: tenant.to_string(),
                scope: Some(pb::Scope {
                    id: Dataset::scope_id(Some(i)),
                    r#type: format!("level{}", data.scope_depths.get(i).unwrap_or(&0)),
                    parent: Dataset::scope_id(data.scope_parents.get(i).copied().flatten()),
                }),
                options: None,
            };
            async move {
                let what = format!("creating scope {}", Dataset::scope_id(Some(i)));
                let reply = d.create_scope(request).await.map_err(rpc_error(what))?;
                Ok(reply.into_inner().revision)
            }
        })
        .await?;
        revision = revision.max(r);
    }
    Ok(revision)
}

/// Creates the dataset in `tenant` through the directory and membership APIs.
pub(super) async fn fill(
    channel: ClientChannel,
    tenant: &str,
    data: &Dataset,
) -> Result<FillStats, BenchError> {
    let started = Instant::now();
    let directory = DirectoryServiceClient::new(channel.clone());
    let mut revision = create_scopes(&directory, tenant, data).await?;

    let r = in_flight(0..data.sizes.subjects, |i| {
        let mut d = directory.clone();
        let request = pb::CreateSubjectRequest {
            tenant: tenant.to_string(),
            subject: Some(subject_record(data, i)),
            options: None,
        };
        async move {
            let what = format!("creating subject {}", Dataset::subject_id(i));
            let reply = d.create_subject(request).await.map_err(rpc_error(what))?;
            Ok(reply.into_inner().revision)
        }
    })
    .await?;
    revision = revision.max(r);

    let r = in_flight(0..data.sizes.groups, |i| {
        let mut d = directory.clone();
        let request = pb::CreateGroupRequest {
            tenant: tenant.to_string(),
            group: Some(group_record(i)),
            options: None,
        };
        async move {
            let what = format!("creating group {}", Dataset::group_id(i));
            let reply = d.create_group(request).await.map_err(rpc_error(what))?;
            Ok(reply.into_inner().revision)
        }
    })
    .await?;
    revision = revision.max(r);

    // Nestings and group roles first, while groups are empty and cheap to
    // change; then members; then direct roles.
    let operations: Vec<pb::MembershipOperation> = data
        .nestings
        .iter()
        .map(|&(parent, child)| add_member(parent, group(child)))
        .chain(
            data.assignments
                .iter()
                .filter(|a| matches!(a.who, Who::Group(_)))
                .map(assign),
        )
        .chain(
            data.memberships
                .iter()
                .map(|&(g, s)| add_member(g, subject(s))),
        )
        .chain(
            data.assignments
                .iter()
                .filter(|a| matches!(a.who, Who::Subject(_)))
                .map(assign),
        )
        .collect();
    let mut membership = MembershipServiceClient::new(channel);
    let mut batches = 0;
    for (n, chunk) in operations.chunks(MAX_BATCH_OPERATIONS).enumerate() {
        let reply = membership
            .manage_membership(pb::ManageMembershipRequest {
                tenant: tenant.to_string(),
                operations: chunk.to_vec(),
                options: None,
                dry_run: false,
            })
            .await
            .map_err(rpc_error(format!("membership batch {n}")))?;
        revision = revision.max(reply.into_inner().revision);
        batches += 1;
    }

    Ok(FillStats {
        subjects: data.sizes.subjects,
        locked: data.locked_count(),
        groups: data.sizes.groups,
        nestings: data.nestings.len(),
        scopes: data.sizes.scopes,
        depth: data.depth(),
        memberships: data.memberships.len(),
        assignments: data.assignments.len(),
        creates: data.sizes.scopes + data.sizes.subjects + data.sizes.groups,
        batches,
        revision,
        elapsed: started.elapsed(),
    })
}

/// Subject `i` as created: active, or locked for one in a hundred.
pub(super) fn subject_record(data: &Dataset, i: usize) -> pb::Subject {
    let status = match data.locked.get(i) {
        Some(true) => pb::SubjectStatus::Locked,
        _ => pb::SubjectStatus::Active,
    };
    pb::Subject {
        id: Dataset::subject_id(i),
        status: status as i32,
        ..Default::default()
    }
}

/// Group `i` as created.
pub(super) fn group_record(i: usize) -> pb::Group {
    pb::Group {
        id: Dataset::group_id(i),
        title: format!("Group {i}"),
        ..Default::default()
    }
}

pub(super) fn subject(i: usize) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Subject(Dataset::subject_id(i))),
    })
}

pub(super) fn group(i: usize) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: Some(pb::principal::Kind::Group(Dataset::group_id(i))),
    })
}

/// `member` into group `group`, as an import record.
pub(super) fn member_record(group: usize, member: Option<pb::Principal>) -> pb::AddMember {
    pb::AddMember {
        group: Dataset::group_id(group),
        member,
        precondition: 0,
    }
}

/// An assignment of the data, as an import record.
pub(super) fn assign_record(a: &Assign) -> pb::AssignRole {
    let principal = match a.who {
        Who::Subject(s) => subject(s),
        Who::Group(g) => group(g),
    };
    pb::AssignRole {
        role: a.role.to_string(),
        principal,
        target: Some(pb::Target {
            kind: Some(pb::target::Kind::Scope(Dataset::scope_id(a.scope))),
        }),
        expires_at: None,
        precondition: 0,
    }
}

fn add_member(group: usize, member: Option<pb::Principal>) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AddMember(
            member_record(group, member),
        )),
    }
}

fn assign(a: &Assign) -> pb::MembershipOperation {
    pb::MembershipOperation {
        operation: Some(pb::membership_operation::Operation::AssignRole(
            assign_record(a),
        )),
    }
}
