//! The bench's write phases. Writers: `n` concurrent clients each toggling
//! one subject's membership of a group of its own (every call a real
//! single-operation write with its own revision and fsync share), measured
//! like any other call. Group-wide: every subject of the tenant in one
//! group, then a role assigned to and removed from that group over and
//! over (each write recomputing every member and reporting each member's
//! permission change) while CheckAccess runs, next to CheckAccess on the
//! idle server. Every loop stops by itself: the toggles at the phase's
//! deadline or request budget, the group-wide writes when the checks end or
//! after [`MAX_WIDE_WRITES`]. Cross-tenant: one-subject writes to another
//! tenant, alone and while group-wide writes run (a write to one tenant
//! must not wait for another tenant's planning), until the group-wide
//! writes end or after [`MAX_OTHER_WRITES`]. Must not decide what is
//! reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authzd_client::ClientChannel;

use super::load::{Budget, Kind, Load};
use super::{BenchArgs, BenchError, CallStats, rpc_error};
use authzd_core::limits::MAX_BATCH_OPERATIONS;
use authzd_proto::pb;
use authzd_proto::pb::directory_service_client::DirectoryServiceClient;
use authzd_proto::pb::membership_service_client::MembershipServiceClient;
use authzd_testkit::dataset::Dataset;

/// The group holding every subject in the group-wide phase.
const WIDE_GROUP: &str = "bench-wide";
/// The role assigned to it: one permission, so each write changes exactly
/// one permission per member.
const WIDE_ROLE: &str = "viewer";
/// Most group-wide writes in one phase.
const MAX_WIDE_WRITES: usize = 1000;
/// Group-wide writes timed on the idle server, before the checks start.
pub(super) const IDLE_WIDE_WRITES: usize = 4;
/// Longest one group-wide write may take.
const WIDE_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// One-subject writes to another tenant timed on the idle server.
const OTHER_WRITES_ALONE: usize = 20;
/// Most one-subject writes to another tenant while group-wide writes run.
const MAX_OTHER_WRITES: usize = 100_000;

/// The write toggled by writer `w`: subject `w` in group `bench-writer-w`.
pub(super) fn writer_group(worker: usize) -> String {
    format!("bench-writer-{worker}")
}

/// A membership operation for the bench's writes.
pub(super) fn membership(group: &str, subject: String, add: bool) -> pb::MembershipOperation {
    let member = Some(pb::Principal {
        kind: Some(pb::principal::Kind::Subject(subject)),
    });
    let operation = if add {
        pb::membership_operation::Operation::AddMember(pb::AddMember {
            group: group.to_string(),
            member,
            precondition: 0,
        })
    } else {
        pb::membership_operation::Operation::RemoveMember(pb::RemoveMember {
            group: group.to_string(),
            member,
            precondition: 0,
        })
    };
    pb::MembershipOperation {
        operation: Some(operation),
    }
}

async fn create_group(channel: &ClientChannel, tenant: &str, id: String) -> Result<(), BenchError> {
    let what = format!("creating group {id}");
    DirectoryServiceClient::new(channel.clone())
        .create_group(pb::CreateGroupRequest {
            tenant: tenant.to_string(),
            group: Some(pb::Group {
                id: id.clone(),
                title: id,
                ..Default::default()
            }),
            options: None,
        })
        .await
        .map_err(rpc_error(what))?;
    Ok(())
}

/// One measurement per number of writers in `counts`, on groups created
/// first.
pub(super) async fn writers(
    counts: &[usize],
    budget: Budget,
    load: &Load,
) -> Result<Vec<(usize, CallStats)>, BenchError> {
    let Some(&most) = counts.iter().max() else {
        return Ok(Vec::new());
    };
    let channel = &load.channels[0];
    for w in 0..most.min(load.data.sizes.subjects) {
        create_group(channel, &load.tenant, writer_group(w)).await?;
    }
    let mut out = Vec::new();
    for &n in counts {
        let phase = Load {
            concurrency: n.min(load.data.sizes.subjects),
            ..load.clone()
        };
        out.push((n, phase.call(Kind::Write, budget).await?));
    }
    Ok(out)
}

/// What the group-wide phase measured.
#[derive(Debug, Clone)]
pub struct WideStats {
    /// Members of the group.
    pub members: usize,
    /// CheckAccess on the idle server, right before.
    pub idle: CallStats,
    /// CheckAccess while the group-wide writes ran.
    pub during: CallStats,
    /// Group-wide writes timed alone, before the checks, end to end (the
    /// reply comes once cache and feed have it): median, in milliseconds.
    pub idle_p50_ms: f64,
    /// Group-wide writes completed while the checks ran.
    pub writes: usize,
    /// Their end-to-end latency, median, in milliseconds.
    pub p50_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// One-subject writes to another tenant, alone: median and slowest, in
    /// milliseconds.
    pub other_idle_ms: (f64, f64),
    /// One-subject writes to another tenant while [`IDLE_WIDE_WRITES`]
    /// group-wide writes ran: how many, median and slowest.
    pub other_during: (usize, f64, f64),
}

/// The median and the slowest of some latencies, in milliseconds.
pub(super) fn median_and_max(mut latencies: Vec<Duration>) -> (f64, f64) {
    latencies.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    (ms(latencies.get(latencies.len() / 2)), ms(latencies.last()))
}

/// Puts every subject into [`WIDE_GROUP`], then measures CheckAccess idle
/// and while [`WIDE_ROLE`] is assigned to and removed from the group.
pub(super) async fn wide_group(args: &BenchArgs, load: &Load) -> Result<WideStats, BenchError> {
    let channel = load.channels[0].clone();
    let members = fill_wide_group(load).await?;
    let (idle_p50_ms, _) = median_and_max(toggle_alone(load, IDLE_WIDE_WRITES).await?);
    let (other_idle_ms, other_during) = other_tenant(load).await?;
    let idle = load.call(Kind::Check, args.budget()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(toggle_role(
        channel,
        load.tenant.clone(),
        stop.clone(),
        MAX_WIDE_WRITES,
    ));
    let during = load.call(Kind::Check, args.budget()).await;
    stop.store(true, Ordering::Relaxed);
    let latencies = writer.await??;
    let during = during?;
    let writes = latencies.len();
    let (p50_ms, max_ms) = median_and_max(latencies);
    Ok(WideStats {
        members,
        idle,
        during,
        idle_p50_ms,
        writes,
        p50_ms,
        max_ms,
        other_idle_ms,
        other_during,
    })
}

/// One-subject writes to tenant `<tenant>-other`: [`OTHER_WRITES_ALONE`]
/// alone, then one after another while [`IDLE_WIDE_WRITES`] group-wide
/// writes run; the median and slowest alone, and how many, the median and
/// the slowest during.
pub(super) async fn other_tenant(
    load: &Load,
) -> Result<((f64, f64), (usize, f64, f64)), BenchError> {
    let channel = load
        .channels
        .last()
        .cloned()
        .ok_or_else(|| BenchError::Settings("--connections must be at least 1".to_string()))?;
    let tenant = format!("{}-other", load.tenant);
    let mut directory = DirectoryServiceClient::new(channel);
    let mut next = 0;
    let mut alone = Vec::new();
    for _ in 0..OTHER_WRITES_ALONE {
        alone.push(create_other(&mut directory, &tenant, &mut next).await?);
    }
    let wide = tokio::spawn(toggle_role(
        load.channels[0].clone(),
        load.tenant.clone(),
        Arc::new(AtomicBool::new(false)),
        IDLE_WIDE_WRITES,
    ));
    let mut during = Vec::new();
    while !wide.is_finished() && during.len() < MAX_OTHER_WRITES {
        during.push(create_other(&mut directory, &tenant, &mut next).await?);
    }
    wide.await??;
    let count = during.len();
    let (p50, max) = median_and_max(during);
    Ok((median_and_max(alone), (count, p50, max)))
}

/// Creates subject `other-<next>` in `tenant` (counting `next` on); its
/// end-to-end latency.
async fn create_other(
    directory: &mut DirectoryServiceClient<ClientChannel>,
    tenant: &str,
    next: &mut usize,
) -> Result<Duration, BenchError> {
    let id = format!("other-{next}");
    *next += 1;
    let started = Instant::now();
    let call = directory.create_subject(pb::CreateSubjectRequest {
        tenant: tenant.to_owned(),
        subject: Some(pb::Subject {
            id: id.clone(),
            ..Default::default()
        }),
        options: None,
    });
    tokio::time::timeout(WIDE_WRITE_TIMEOUT, call)
        .await
        .map_err(|_| BenchError::Timeout {
            what: "a write to another tenant".into(),
            after: WIDE_WRITE_TIMEOUT,
        })?
        .map_err(rpc_error(format!(
            "creating subject {id} in another tenant"
        )))?;
    Ok(started.elapsed())
}

/// Creates [`WIDE_GROUP`] and puts every subject of the data in it, in
/// batches of [`MAX_BATCH_OPERATIONS`]; returns how many members it has.
pub(super) async fn fill_wide_group(load: &Load) -> Result<usize, BenchError> {
    let channel = load.channels[0].clone();
    create_group(&channel, &load.tenant, WIDE_GROUP.to_string()).await?;
    let members = load.data.sizes.subjects;
    let ids: Vec<usize> = (0..members).collect();
    let mut m = MembershipServiceClient::new(channel);
    for chunk in ids.chunks(MAX_BATCH_OPERATIONS) {
        let operations = chunk
            .iter()
            .map(|&i| membership(WIDE_GROUP, Dataset::subject_id(i), true))
            .collect();
        let call = m.manage_membership(pb::ManageMembershipRequest {
            tenant: load.tenant.clone(),
            operations,
            options: None,
            dry_run: false,
        });
        tokio::time::timeout(WIDE_WRITE_TIMEOUT, call)
            .await
            .map_err(|_| BenchError::Timeout {
                what: "a batch filling the group-wide group".into(),
                after: WIDE_WRITE_TIMEOUT,
            })?
            .map_err(rpc_error("filling the group-wide group"))?;
    }
    Ok(members)
}

/// `writes` group-wide writes (assign, remove, assign, …) on an otherwise
/// idle server; each one's end-to-end latency.
pub(super) async fn toggle_alone(load: &Load, writes: usize) -> Result<Vec<Duration>, BenchError> {
    toggle_role(
        load.channels[0].clone(),
        load.tenant.clone(),
        Arc::new(AtomicBool::new(false)),
        writes,
    )
    .await
}

/// Assigns and removes [`WIDE_ROLE`] on the whole group until `stop` (or
/// `most` writes), leaving it removed; returns each write's latency.
async fn toggle_role(
    channel: ClientChannel,
    tenant: String,
    stop: Arc<AtomicBool>,
    most: usize,
) -> Result<Vec<Duration>, BenchError> {
    let mut m = MembershipServiceClient::new(channel);
    let mut latencies = Vec::new();
    let principal = Some(pb::Principal {
        kind: Some(pb::principal::Kind::Group(WIDE_GROUP.to_string())),
    });
    let target = Some(pb::Target {
        kind: Some(pb::target::Kind::Scope(String::new())),
    });
    while latencies.len() < most {
        let assign = latencies.len() % 2 == 0;
        if !assign && stop.load(Ordering::Relaxed) {
            break;
        }
        let operation = if assign {
            pb::membership_operation::Operation::AssignRole(pb::AssignRole {
                role: WIDE_ROLE.into(),
                principal: principal.clone(),
                target: target.clone(),
                expires_at: None,
                precondition: 0,
            })
        } else {
            pb::membership_operation::Operation::UnassignRole(pb::UnassignRole {
                role: WIDE_ROLE.into(),
                principal: principal.clone(),
                target: target.clone(),
                precondition: 0,
            })
        };
        let started = Instant::now();
        let call = m.manage_membership(pb::ManageMembershipRequest {
            tenant: tenant.clone(),
            operations: vec![pb::MembershipOperation {
                operation: Some(operation),
            }],
            options: None,
            dry_run: false,
        });
        tokio::time::timeout(WIDE_WRITE_TIMEOUT, call)
            .await
            .map_err(|_| BenchError::Timeout {
                what: "a group-wide role write".into(),
                after: WIDE_WRITE_TIMEOUT,
            })?
            .map_err(rpc_error("a group-wide role write"))?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}
