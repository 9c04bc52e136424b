//! Membership's use cases: an atomic batch of membership and role
//! operations, and one chunk of a bulk import (a batch of the same
//! planner, so a chunk is validated whole, commits as one revision and has
//! its permission changes computed once), and the dry run of each (what
//! it would change and why it would be refused, committing nothing).
//!
//! Owns the bounds of a batch and a chunk, and naming a refused import
//! record by its own list and index. Must not plan or check an operation
//! itself: the engine does.

use super::Call;
use crate::{Error, Naming, Service, WhatIf, WriteOptions};
use authzd_core::engine::{Operation, Precondition};
use authzd_core::limits::MAX_BATCH_OPERATIONS;
use authzd_core::model::{Assignment, Group, Membership, Revision, Subject, TenantId};

/// One chunk of a bulk import: records applied in this order, each list in
/// its own order. Loading a chunk again changes nothing (subjects and
/// groups are put whole, existing memberships and assignments kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportChunk {
    /// Subjects, created or replaced.
    pub subjects: Vec<Subject>,
    /// Groups, created or replaced.
    pub groups: Vec<Group>,
    /// Memberships to add.
    pub memberships: Vec<(Membership, Precondition)>,
    /// Roles to assign.
    pub assignments: Vec<(Assignment, Precondition)>,
}

/// The record lists of an import chunk, in the order they are applied.
const IMPORT_LISTS: [&str; 4] = ["subjects", "groups", "memberships", "assignments"];

fn invalid(field: &str, reason: impl ToString) -> Error {
    Error::InvalidArgument {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// Admits the write and names its tenant.
fn admit(
    service: &Service,
    call: &Call,
    tenant: &str,
    options: &mut WriteOptions,
) -> Result<TenantId, Error> {
    call.admit_write(service, tenant, options)?;
    TenantId::try_from(tenant).map_err(|e| invalid("tenant", e))
}

/// Applies `operations` atomically: all or nothing, one revision. A
/// refused operation is named by its index in `operations`.
pub async fn manage(
    service: &Service,
    call: &Call,
    tenant: &str,
    operations: Vec<Operation>,
    mut options: WriteOptions,
) -> Result<Revision, Error> {
    let tenant = admit_batch(service, call, tenant, &operations, &mut options)?;
    service.write(tenant, operations, options).await
}

/// [`manage`]'s dry run: what the batch would change, and why it would
/// be refused, committing nothing. Admitted as the write would be.
pub async fn manage_what_if(
    service: &Service,
    call: &Call,
    tenant: &str,
    operations: Vec<Operation>,
    mut options: WriteOptions,
) -> Result<WhatIf, Error> {
    let tenant = admit_batch(service, call, tenant, &operations, &mut options)?;
    service.what_if(tenant, operations, options).await
}

/// Admits a batch and checks its bounds; names its tenant.
fn admit_batch(
    service: &Service,
    call: &Call,
    tenant: &str,
    operations: &[Operation],
    options: &mut WriteOptions,
) -> Result<TenantId, Error> {
    let tenant = admit(service, call, tenant, options)?;
    if operations.is_empty() {
        return Err(invalid("operations", "give at least one operation"));
    }
    if operations.len() > MAX_BATCH_OPERATIONS {
        return Err(invalid(
            "operations",
            format!("at most {MAX_BATCH_OPERATIONS} operations per batch"),
        ));
    }
    Ok(tenant)
}

/// Applies one import chunk as one batch. A refused record is named by
/// its list and its index there (`memberships[3]`).
pub async fn import(
    service: &Service,
    call: &Call,
    tenant: &str,
    chunk: ImportChunk,
    mut options: WriteOptions,
) -> Result<Revision, Error> {
    let (tenant, operations) = admit_chunk(service, call, tenant, chunk, &mut options)?;
    service.write(tenant, operations, options).await
}

/// [`import`]'s dry run: what the chunk would change, and which records
/// would be refused (each named by its list and index), committing
/// nothing.
pub async fn import_what_if(
    service: &Service,
    call: &Call,
    tenant: &str,
    chunk: ImportChunk,
    mut options: WriteOptions,
) -> Result<WhatIf, Error> {
    let (tenant, operations) = admit_chunk(service, call, tenant, chunk, &mut options)?;
    service.what_if(tenant, operations, options).await
}

/// Admits a chunk and checks its bounds: its tenant and its records as
/// one batch of operations, a refused one named by its own list.
fn admit_chunk(
    service: &Service,
    call: &Call,
    tenant: &str,
    chunk: ImportChunk,
    options: &mut WriteOptions,
) -> Result<(TenantId, Vec<Operation>), Error> {
    let tenant = admit(service, call, tenant, options)?;
    let records = chunk.subjects.len()
        + chunk.groups.len()
        + chunk.memberships.len()
        + chunk.assignments.len();
    if records == 0 {
        return Err(invalid("subjects", "give at least one record"));
    }
    if records > MAX_BATCH_OPERATIONS {
        return Err(invalid(
            "subjects",
            format!("at most {MAX_BATCH_OPERATIONS} records per chunk in all lists, got {records}"),
        ));
    }
    let starts = [
        0,
        chunk.subjects.len(),
        chunk.subjects.len() + chunk.groups.len(),
        chunk.subjects.len() + chunk.groups.len() + chunk.memberships.len(),
    ];
    let operations: Vec<Operation> = (chunk.subjects.into_iter().map(Operation::PutSubject))
        .chain(chunk.groups.into_iter().map(Operation::PutGroup))
        .chain((chunk.memberships.into_iter()).map(|(m, p)| Operation::AddMember(m, p)))
        .chain((chunk.assignments.into_iter()).map(|(a, p)| Operation::AssignRole(a, p)))
        .collect();
    options.naming = Naming::Lists(IMPORT_LISTS.into_iter().zip(starts).collect());
    Ok((tenant, operations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use authzd_core::engine::EngineError;

    /// A refusal in the combined batch is named by its record's own list
    /// and index; an empty list in between takes no index.
    #[test]
    fn refused_records_are_named_by_their_list() {
        let naming = Naming::Lists(IMPORT_LISTS.into_iter().zip([0, 2, 2, 5]).collect());
        let named = |index| {
            let error = EngineError::NotFound {
                kind: "group",
                id: "g".into(),
            };
            match naming.refused(index, error) {
                Error::Refused { list, index, .. } => (list, index),
                _ => ("?", 0),
            }
        };
        assert_eq!(named(1), ("subjects", 1));
        assert_eq!(named(2), ("memberships", 0));
        assert_eq!(named(4), ("memberships", 2));
        assert_eq!(named(5), ("assignments", 0));
    }
}
