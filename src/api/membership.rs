//! `MembershipService`: batches of membership and role operations.

use tonic::{Request, Response, Status};

use super::convert::{id, precondition, principal, target, timestamp};
use super::guard::Call;
use super::{invalid, pb};
use crate::config::MAX_BATCH_OPERATIONS;
use crate::engine::Operation;
use crate::model::{Assignment, AssignmentKey, Membership, TenantId};
use crate::service::{Error, Service};

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
fn principals(at: &str, list: &[pb::Principal]) -> Result<Vec<crate::model::Principal>, Error> {
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

fn operation(index: usize, op: &pb::MembershipOperation) -> Result<Operation, Error> {
    use pb::membership_operation::Operation as Op;
    let base = format!("operations[{index}]");
    match op.operation.as_ref() {
        Some(Op::AddMember(m)) => {
            let at = format!("{base}.add_member");
            Ok(Operation::AddMember(
                membership(&at, &m.group, &m.member)?,
                precondition(&format!("{at}.precondition"), m.precondition)?,
            ))
        }
        Some(Op::RemoveMember(m)) => {
            let at = format!("{base}.remove_member");
            Ok(Operation::RemoveMember(
                membership(&at, &m.group, &m.member)?,
                precondition(&format!("{at}.precondition"), m.precondition)?,
            ))
        }
        Some(Op::AssignRole(a)) => {
            let at = format!("{base}.assign_role");
            Ok(Operation::AssignRole(
                Assignment {
                    key: assignment_key(&at, &a.role, &a.principal, &a.target)?,
                    expires_at: timestamp(&format!("{at}.expires_at"), &a.expires_at)?,
                },
                precondition(&format!("{at}.precondition"), a.precondition)?,
            ))
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

#[tonic::async_trait]
impl pb::membership_service_server::MembershipService for MembershipApi {
    async fn manage_membership(
        &self,
        request: Request<pb::ManageMembershipRequest>,
    ) -> Result<Response<pb::ManageMembershipResponse>, Status> {
        let call = Call::of(&request)?;
        let r = request.into_inner();
        let options = call.write_options(&r.tenant, &r.options)?;
        let tenant: TenantId = id("tenant", &r.tenant)?;
        if r.operations.is_empty() {
            return Err(invalid("operations", "give at least one operation").into());
        }
        if r.operations.len() > MAX_BATCH_OPERATIONS {
            return Err(invalid(
                "operations",
                format!("at most {MAX_BATCH_OPERATIONS} operations per batch"),
            )
            .into());
        }
        let operations = r
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| operation(i, op))
            .collect::<Result<Vec<_>, _>>()?;
        let revision = self.service.write(tenant, operations, options).await?;
        Ok(Response::new(pb::ManageMembershipResponse {
            revision: revision.0,
        }))
    }
}
