//! The text keys that name stored records within a tenant, shared by every
//! backend so that one record has one key whatever holds it.
//!
//! Owns the key encodings only; must not name a table, a transaction or a
//! backend, nor judge whether a record makes sense.

use authzd_core::model::{AssignmentKey, Principal, Target};

/// Idempotency scope of writes that belong to no tenant. Tenant ids are
/// never empty, so it cannot collide with a tenant's scope.
pub const STORE_WIDE: &str = "";

/// Separates the parts of a composite text key. Ids may not contain
/// whitespace, so a space can never occur inside a part; and since it sorts
/// below every character an id may hold, `a b` sorts before `ab c`, keeping
/// the key order that of the parts.
pub const SEPARATOR: char = ' ';

/// The key part naming a group member or an assignment's holder:
/// `subject:<id>` or `group:<id>`. The kind comes first so that a subject
/// and a group with the same id stay distinct.
pub fn principal_key(principal: &Principal) -> String {
    match principal {
        Principal::Subject(id) => format!("subject:{id}"),
        Principal::Group(id) => format!("group:{id}"),
    }
}

/// The key part naming an assignment target: `scope:<id>` or
/// `population:<id>`.
fn target_key(target: &Target) -> String {
    match target {
        Target::Scope(id) => format!("scope:{id}"),
        Target::Population(id) => format!("population:{id}"),
    }
}

/// The key of an assignment within its tenant: role, principal and target,
/// in that order. Written by hand rather than as JSON so that the key stays
/// the same if `AssignmentKey` ever grows a serde attribute or field order
/// change; the full record is stored beside it.
pub fn assignment_key(key: &AssignmentKey) -> String {
    format!(
        "{role}{SEPARATOR}{principal}{SEPARATOR}{target}",
        role = key.role,
        principal = principal_key(&key.principal),
        target = target_key(&key.target),
    )
}
