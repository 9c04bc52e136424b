//! `MembershipService`: batches of membership and role operations, and the
//! chunks of a bulk import (one batch of the same planner, so a chunk is
//! validated whole, commits as one revision and has its permission changes
//! computed once).

use tonic::{Request, Response, Status};

use super::convert::{
    group, id, precondition, principal, subject, target, timestamp, write_options,
};
use super::guard;
use super::status;
use super::{invalid, pb};
use authzd_core::engine::Operation;
use authzd_core::limits::MAX_BATCH_OPERATIONS;
use authzd_core::model::{Assignment, AssignmentKey, Membership, TenantId};
use authzd_service::{Error, Service};

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

fn add_member(at: &str, m: &pb::AddMember) -> Result<Operation, Error> {
    Ok(Operation::AddMember(
        membership(at, &m.group, &m.member)?,
        precondition(&format!("{at}.precondition"), m.precondition)?,
    ))
}

fn assign_role(at: &str, a: &pb::AssignRole) -> Result<Operation, Error> {
    Ok(Operation::AssignRole(
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
        Some(Op::AddMember(m)) => add_member(&format!("{base}.add_member"), m),
        Some(Op::RemoveMember(m)) => {
            let at = format!("{base}.remove_member");
            Ok(Operation::RemoveMember(
                membership(&at, &m.group, &m.member)?,
                precondition(&format!("{at}.precondition"), m.precondition)?,
            ))
        }
        Some(Op::AssignRole(a)) => assign_role(&format!("{base}.assign_role"), a),
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

/// The record lists of an import chunk, in the order they are applied.
const IMPORT_LISTS: [&str; 4] = ["subjects", "groups", "memberships", "assignments"];

/// An import chunk as one batch of operations, with where each list starts
/// in it (to name a refused record by its own list and index).
fn import_operations(r: &pb::ImportRequest) -> Result<(Vec<Operation>, [usize; 4]), Error> {
    let records = r.subjects.len() + r.groups.len() + r.memberships.len() + r.assignments.len();
    if records == 0 {
        return Err(invalid("subjects", "give at least one record"));
    }
    if records > MAX_BATCH_OPERATIONS {
        return Err(invalid(
            "subjects",
            format!("at most {MAX_BATCH_OPERATIONS} records per chunk in all lists, got {records}"),
        ));
    }
    let mut operations = Vec::with_capacity(records);
    let mut starts = [0; 4];
    let at = |list: usize, i: usize| format!("{}[{i}]", IMPORT_LISTS[list]);
    starts[0] = operations.len();
    for (i, s) in r.subjects.iter().enumerate() {
        operations.push(Operation::PutSubject(subject(&at(0, i), s)?));
    }
    starts[1] = operations.len();
    for (i, g) in r.groups.iter().enumerate() {
        operations.push(Operation::PutGroup(group(&at(1, i), g)?));
    }
    starts[2] = operations.len();
    for (i, m) in r.memberships.iter().enumerate() {
        operations.push(add_member(&at(2, i), m)?);
    }
    starts[3] = operations.len();
    for (i, a) in r.assignments.iter().enumerate() {
        operations.push(assign_role(&at(3, i), a)?);
    }
    Ok((operations, starts))
}

/// Names a refused operation of an import chunk by its record's list and
/// index rather than its place in the combined batch.
fn name_record(e: Error, starts: &[usize; 4]) -> Error {
    match e {
        Error::Refused {
            list: "operations",
            index,
            error,
        } => {
            let list = starts.iter().rposition(|s| *s <= index).unwrap_or(0);
            Error::Refused {
                list: IMPORT_LISTS[list],
                index: index - starts[list],
                error,
            }
        }
        other => other,
    }
}

#[tonic::async_trait]
impl pb::membership_service_server::MembershipService for MembershipApi {
    async fn manage_membership(
        &self,
        request: Request<pb::ManageMembershipRequest>,
    ) -> Result<Response<pb::ManageMembershipResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let mut options = write_options(&r.options).map_err(status)?;
        call.admit_write(&self.service, &r.tenant, &mut options)
            .map_err(status)?;
        let tenant: TenantId = id("tenant", &r.tenant).map_err(status)?;
        if r.operations.is_empty() {
            return Err(status(invalid("operations", "give at least one operation")));
        }
        if r.operations.len() > MAX_BATCH_OPERATIONS {
            return Err(status(invalid(
                "operations",
                format!("at most {MAX_BATCH_OPERATIONS} operations per batch"),
            )));
        }
        let operations = r
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| operation(i, op))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let revision = self
            .service
            .write(tenant, operations, options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ManageMembershipResponse {
            revision: revision.0,
        }))
    }

    async fn import(
        &self,
        request: Request<pb::ImportRequest>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        let call = guard::call(&request).map_err(status)?;
        let r = request.into_inner();
        call.admit(&self.service, &r.tenant).map_err(status)?;
        let mut options = write_options(&r.options).map_err(status)?;
        call.admit_write(&self.service, &r.tenant, &mut options)
            .map_err(status)?;
        let tenant: TenantId = id("tenant", &r.tenant).map_err(status)?;
        let (operations, starts) = import_operations(&r).map_err(status)?;
        let revision = self
            .service
            .write(tenant, operations, options)
            .await
            .map_err(|e| name_record(e, &starts))
            .map_err(status)?;
        Ok(Response::new(pb::ImportResponse {
            revision: revision.0,
        }))
    }
}
