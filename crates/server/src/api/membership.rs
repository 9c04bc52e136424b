//! `MembershipService`: batches of membership and role operations, and the
//! chunks of a bulk import, each a thin adapter over
//! [`authzd_service::ops::membership`]: every operation and record is
//! converted (refused naming its field, `operations[2].assign_role.role`),
//! then handed to the operation; a `dry_run` goes to the operation's dry
//! run, whose preview is converted back. Must not bound, plan or check a
//! batch as a whole.

use tonic::{Request, Response, Status};

use super::convert::{
    group, id, precondition, principal, subject, target, timestamp, write_options,
};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::engine::{Operation, Precondition};
use authzd_core::limits::{MAX_BATCH_OPERATIONS, MAX_WHAT_IF_CHANGES};
use authzd_core::model::{Assignment, AssignmentKey, Membership};
use authzd_service::ops::membership::{self, ImportChunk};
use authzd_service::{Error, Service, WhatIf};

/// The tonic service.
#[derive(Debug, Clone)]
pub struct MembershipApi {
    service: Service,
}

impl MembershipApi {
    /// Serves `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

fn membership(at: &str, group: &str, member: &Option<pb::Principal>) -> Result<Membership, Error> {
    Ok(Membership {
        group: id(&format!("{at}.group"), group)?,
        member: principal(&format!("{at}.member"), member)?,
    })
}

fn assignment_key(
    at: &str,
    role: &str,
    who: &Option<pb::Principal>,
    whr: &Option<pb::Target>,
) -> Result<AssignmentKey, Error> {
    Ok(AssignmentKey {
        role: id(&format!("{at}.role"), role)?,
        principal: principal(&format!("{at}.principal"), who)?,
        target: target(&format!("{at}.target"), whr)?,
    })
}

/// The principals of a bulk operation: at least one, at most
/// [`MAX_BATCH_OPERATIONS`].
fn principals(
    at: &str,
    list: &[pb::Principal],
) -> Result<Vec<authzd_core::model::Principal>, Error> {
    let field = format!("{at}.principals");
    if list.is_empty() || list.len() > MAX_BATCH_OPERATIONS {
        return Err(invalid(
            field,
            format!("give 1 to {MAX_BATCH_OPERATIONS} principals"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| principal(&format!("{field}[{i}]"), &Some(p.clone())))
        .collect()
}

fn add_member(at: &str, m: &pb::AddMember) -> Result<(Membership, Precondition), Error> {
    Ok((
        membership(at, &m.group, &m.member)?,
        precondition(&format!("{at}.precondition"), m.precondition)?,
    ))
}

fn assign_role(at: &str, a: &pb::AssignRole) -> Result<(Assignment, Precondition), Error> {
    Ok((
        Assignment {
            key: assignment_key(at, &a.role, &a.principal, &a.target)?,
            expires_at: timestamp(&format!("{at}.expires_at"), &a.expires_at)?,
        },
        precondition(&format!("{at}.precondition"), a.precondition)?,
    ))
}

fn operation(index: usize, op: &pb::MembershipOperation) -> Result<Operation, Error> {
    use pb::membership_operation::Operation as Op;
    let base = format!("operations[{index}]");
    match op.operation.as_ref() {
        Some(Op::AddMember(m)) => {
            let (m, p) = add_member(&format!("{base}.add_member"), m)?;
            Ok(Operation::AddMember(m, p))
        }
        Some(Op::RemoveMember(m)) => {
            let at = format!("{base}.remove_member");
            Ok(Operation::RemoveMember(
                membership(&at, &m.group, &m.member)?,
                precondition(&format!("{at}.precondition"), m.precondition)?,
            ))
        }
        Some(Op::AssignRole(a)) => {
            let (a, p) = assign_role(&format!("{base}.assign_role"), a)?;
            Ok(Operation::AssignRole(a, p))
        }
        Some(Op::UnassignRole(u)) => {
            let at = format!("{base}.unassign_role");
            Ok(Operation::UnassignRole(
                assignment_key(&at, &u.role, &u.principal, &u.target)?,
                precondition(&format!("{at}.precondition"), u.precondition)?,
            ))
        }
        Some(Op::ReplaceRoles(r)) => {
            let at = format!("{base}.replace_roles");
            Ok(Operation::ReplaceRoles {
                principals: principals(&at, &r.principals)?,
                target: target(&format!("{at}.target"), &r.target)?,
                roles: r
                    .roles
                    .iter()
                    .map(|role| id(&format!("{at}.roles"), role))
                    .collect::<Result<_, _>>()?,
                expires_at: timestamp(&format!("{at}.expires_at"), &r.expires_at)?,
            })
        }
        Some(Op::RemoveFromTarget(r)) => {
            let at = format!("{base}.remove_from_target");
            Ok(Operation::RemoveFromTarget {
                principals: principals(&at, &r.principals)?,
                target: target(&format!("{at}.target"), &r.target)?,
            })
        }
        None => Err(invalid(base, "set one operation")),
    }
}

/// An import request's records, each named by its list and index.
fn import_chunk(r: &pb::ImportRequest) -> Result<ImportChunk, Error> {
    fn each<T, U>(
        list: &str,
        items: &[T],
        convert: impl Fn(&str, &T) -> Result<U, Error>,
    ) -> Result<Vec<U>, Error> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| convert(&format!("{list}[{i}]"), item))
            .collect()
    }
    Ok(ImportChunk {
        subjects: each("subjects", &r.subjects, subject)?,
        groups: each("groups", &r.groups, group)?,
        memberships: each("memberships", &r.memberships, add_member)?,
        assignments: each("assignments", &r.assignments, assign_role)?,
    })
}

/// A dry run's answer: the changes (at most [`MAX_WHAT_IF_CHANGES`], the
/// rest counted) and each refusal as the status the write would get.
fn what_if_to_pb(what_if: WhatIf) -> pb::WhatIf {
    use tonic_types::StatusExt;
    let listed = what_if.effects.len().min(MAX_WHAT_IF_CHANGES);
    let refusal = |e: Error| {
        let (list, index) = match &e {
            Error::Refused { list, index, .. } => ((*list).to_owned(), *index),
            _ => (String::new(), 0),
        };
        let status = status(e);
        pb::WriteRefusal {
            code: super::code_name(status.code()).to_owned(),
            message: status.message().to_owned(),
            reason: status
                .get_details_error_info()
                .map(|info| info.reason)
                .unwrap_or_default(),
            list,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        }
    };
    pb::WhatIf {
        permission_changes: what_if
            .effects
            .iter()
            .take(listed)
            .map(super::watch::effect_to_pb)
            .collect(),
        more_permission_changes: u64::try_from(what_if.effects.len() - listed).unwrap_or(u64::MAX),
        refusals: what_if.refusals.into_iter().map(refusal).collect(),
        more_refusals: what_if.more_refusals,
    }
}

#[tonic::async_trait]
impl pb::membership_service_server::MembershipService for MembershipApi {
    async fn manage_membership(
        &self,
        request: Request<pb::ManageMembershipRequest>,
    ) -> Result<Response<pb::ManageMembershipResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let options = write_options(&r.options).map_err(status)?;
        let operations = r
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| operation(i, op))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        if r.dry_run {
            let what_if =
                membership::manage_what_if(&self.service, &call, &r.tenant, operations, options)
                    .await
                    .map_err(status)?;
            return Ok(Response::new(pb::ManageMembershipResponse {
                revision: what_if.revision.0,
                what_if: Some(what_if_to_pb(what_if)),
            }));
        }
        let revision = membership::manage(&self.service, &call, &r.tenant, operations, options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ManageMembershipResponse {
            revision: revision.0,
            what_if: None,
        }))
    }

    async fn import(
        &self,
        request: Request<pb::ImportRequest>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.get_ref();
        let options = write_options(&r.options).map_err(status)?;
        let chunk = import_chunk(r).map_err(status)?;
        if r.dry_run {
            let what_if =
                membership::import_what_if(&self.service, &call, &r.tenant, chunk, options)
                    .await
                    .map_err(status)?;
            return Ok(Response::new(pb::ImportResponse {
                revision: what_if.revision.0,
                what_if: Some(what_if_to_pb(what_if)),
            }));
        }
        let revision = membership::import(&self.service, &call, &r.tenant, chunk, options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ImportResponse {
            revision: revision.0,
            what_if: None,
        }))
    }
}
