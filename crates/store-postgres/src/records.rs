//! How directory records sit in the one `authzd_records` table: a kind
//! number, the tenant, a key within the tenant (the shared encodings of
//! `authzd_store::keys`) and the record as JSON; and how a group's changes
//! collapse into the rows it leaves.
//!
//! Kinds are numbered in the order a snapshot hands records out (tenant
//! settings, scopes, subjects, groups, roles, memberships, assignments),
//! so reading the table by its primary key gives that order. Must not name
//! a connection or a transaction.

use std::collections::BTreeMap;

use authzd_core::model::{Change, TenantId};
use authzd_store::StoreError;
use authzd_store::keys::{SEPARATOR, assignment_key, principal_key};

/// Kind numbers: the snapshot's table order.
const TENANT: i16 = 0;
const SCOPE: i16 = 1;
const SUBJECT: i16 = 2;
const GROUP: i16 = 3;
const ROLE: i16 = 4;
const MEMBERSHIP: i16 = 5;
const ASSIGNMENT: i16 = 6;

/// A record's identity: kind, tenant, key.
pub(crate) type RowKey = (i16, String, String);

/// What a group leaves in the records table and the schema text: each
/// touched row's last state (`None`: deleted), so the statements that
/// write them touch distinct rows and may run in any order.
#[derive(Debug, Default)]
pub(crate) struct Staged {
    pub(crate) rows: BTreeMap<RowKey, Option<String>>,
    pub(crate) schema: Option<String>,
}

fn encode<T: serde::Serialize>(what: &'static str, record: &T) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|source| StoreError::Encode { what, source })
}

impl Staged {
    /// Stages `change` of a write to `tenant`; `index` is its position in
    /// the write, for the error of a tenant's change in a store-wide write.
    pub(crate) fn apply(
        &mut self,
        tenant: Option<&TenantId>,
        index: usize,
        change: &Change,
    ) -> Result<(), StoreError> {
        if let Change::SchemaWritten(text) = change {
            self.schema = Some(text.clone());
            return Ok(());
        }
        let tenant = tenant.ok_or(StoreError::MissingTenant { index })?;
        let (kind, key, body) = match change {
            Change::TenantPut(s) => (TENANT, String::new(), Some(encode("tenant settings", s)?)),
            Change::SubjectPut(s) => (SUBJECT, s.id.to_string(), Some(encode("subject", s)?)),
            Change::SubjectDeleted(id) => (SUBJECT, id.to_string(), None),
            Change::ScopePut(s) => (SCOPE, s.id.to_string(), Some(encode("scope", s)?)),
            Change::ScopeDeleted(id) => (SCOPE, id.to_string(), None),
            Change::GroupPut(g) => (GROUP, g.id.to_string(), Some(encode("group", g)?)),
            Change::GroupDeleted(id) => (GROUP, id.to_string(), None),
            Change::RolePut(r) => (ROLE, r.id.to_string(), Some(encode("role", r)?)),
            Change::RoleDeleted(id) => (ROLE, id.to_string(), None),
            Change::MemberAdded(m) => (
                MEMBERSHIP,
                membership_key(m),
                Some(encode("membership", m)?),
            ),
            Change::MemberRemoved(m) => (MEMBERSHIP, membership_key(m), None),
            Change::RoleAssigned(a) => (
                ASSIGNMENT,
                assignment_key(&a.key),
                Some(encode("assignment", a)?),
            ),
            Change::RoleUnassigned(k) | Change::RoleExpired(k) => {
                (ASSIGNMENT, assignment_key(k), None)
            }
            Change::SchemaWritten(_) => return Ok(()),
        };
        self.rows.insert((kind, tenant.to_string(), key), body);
        Ok(())
    }
}

fn membership_key(m: &authzd_core::model::Membership) -> String {
    format!("{}{SEPARATOR}{}", m.group, principal_key(&m.member))
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Decode { what, source })
}

/// The change that recreates a stored row.
pub(crate) fn change_of(kind: i16, body: &str) -> Result<Change, StoreError> {
    Ok(match kind {
        TENANT => Change::TenantPut(decode("tenant settings", body)?),
        SCOPE => Change::ScopePut(decode("scope", body)?),
        SUBJECT => Change::SubjectPut(decode("subject", body)?),
        GROUP => Change::GroupPut(decode("group", body)?),
        ROLE => Change::RolePut(decode("role", body)?),
        MEMBERSHIP => Change::MemberAdded(decode("membership", body)?),
        ASSIGNMENT => Change::RoleAssigned(decode("assignment", body)?),
        _ => {
            return Err(StoreError::Corrupt {
                location: "authzd_records".to_owned(),
                reason: format!("a row of unknown kind {kind}"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use authzd_core::model::{GroupId, Membership, Principal, SubjectId};

    /// A put then a delete of one row in one group leaves the delete; a
    /// tenant's change in a store-wide write is refused with its index.
    #[test]
    fn the_last_change_of_a_row_wins() -> Result<(), Box<dyn std::error::Error>> {
        let tenant = TenantId::try_from("acme")?;
        let m = Membership {
            group: GroupId::try_from("staff")?,
            member: Principal::Subject(SubjectId::try_from("bob")?),
        };
        let mut staged = Staged::default();
        staged.apply(Some(&tenant), 0, &Change::MemberAdded(m.clone()))?;
        staged.apply(Some(&tenant), 1, &Change::MemberRemoved(m))?;
        let rows: Vec<_> = staged.rows.into_iter().collect();
        assert_eq!(
            rows,
            vec![(
                (
                    MEMBERSHIP,
                    "acme".to_owned(),
                    "staff subject:bob".to_owned()
                ),
                None
            )]
        );
        let err =
            Staged::default().apply(None, 3, &Change::SubjectDeleted(SubjectId::try_from("x")?));
        assert!(
            matches!(err, Err(StoreError::MissingTenant { index: 3 })),
            "{err:?}"
        );
        Ok(())
    }
}
