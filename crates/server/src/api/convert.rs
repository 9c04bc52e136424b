//! Conversions between protobuf messages and model types. Inbound
//! conversions check everything and name the offending field; outbound ones
//! cannot fail.

use std::collections::{BTreeMap, BTreeSet};

use super::invalid;
use super::pb;
use authzd_core::engine::{Precondition, Source};
use authzd_core::model::{
    self, Assignment, AssignmentKey, Change, Grant, Group, InvalidValue, Name, Permission,
    Principal, Reach, Revision, Role, Scope, ScopeId, Subject, SubjectKind, SubjectStatus, Target,
    TenantSettings, Timestamp,
};
use authzd_service::ops::{self, Page, PageRequest};
use authzd_service::{Error, WriteOptions};

/// A required, checked id.
pub fn id<T>(field: &str, s: &str) -> Result<T, Error>
where
    T: for<'a> TryFrom<&'a str, Error = InvalidValue>,
{
    T::try_from(s).map_err(|e| invalid(field, e))
}

/// An optional id: empty means absent.
pub fn optional_id<T>(field: &str, s: &str) -> Result<Option<T>, Error>
where
    T: for<'a> TryFrom<&'a str, Error = InvalidValue>,
{
    if s.is_empty() {
        Ok(None)
    } else {
        id(field, s).map(Some)
    }
}

/// A required sub-message.
pub fn required<'m, T>(field: &str, m: &'m Option<T>) -> Result<&'m T, Error> {
    m.as_ref().ok_or_else(|| invalid(field, "is required"))
}

/// `0` means "not given".
pub fn revision(r: u64) -> Option<Revision> {
    (r != 0).then_some(Revision(r))
}

pub fn principal(field: &str, p: &Option<pb::Principal>) -> Result<Principal, Error> {
    match required(field, p)?.kind.as_ref() {
        Some(pb::principal::Kind::Subject(s)) => {
            Ok(Principal::Subject(id(&format!("{field}.subject"), s)?))
        }
        Some(pb::principal::Kind::Group(g)) => {
            Ok(Principal::Group(id(&format!("{field}.group"), g)?))
        }
        None => Err(invalid(field, "set either subject or group")),
    }
}

pub fn principal_to_pb(p: &Principal) -> pb::Principal {
    pb::Principal {
        kind: Some(match p {
            Principal::Subject(s) => pb::principal::Kind::Subject(s.to_string()),
            Principal::Group(g) => pb::principal::Kind::Group(g.to_string()),
        }),
    }
}

/// An assignment target; unset means the tenant root.
pub fn target(field: &str, t: &Option<pb::Target>) -> Result<Target, Error> {
    match t.as_ref().and_then(|t| t.kind.as_ref()) {
        None => Ok(Target::Scope(ScopeId::root())),
        Some(pb::target::Kind::Scope(s)) if s.is_empty() => Ok(Target::Scope(ScopeId::root())),
        Some(pb::target::Kind::Scope(s)) => Ok(Target::Scope(id(&format!("{field}.scope"), s)?)),
        Some(pb::target::Kind::Population(g)) => {
            Ok(Target::Population(id(&format!("{field}.population"), g)?))
        }
    }
}

pub fn target_to_pb(t: &Target) -> pb::Target {
    pb::Target {
        kind: Some(match t {
            Target::Scope(s) => pb::target::Kind::Scope(s.to_string()),
            Target::Population(g) => pb::target::Kind::Population(g.to_string()),
        }),
    }
}

pub fn timestamp(
    field: &str,
    t: &Option<prost_types::Timestamp>,
) -> Result<Option<Timestamp>, Error> {
    let Some(t) = t else { return Ok(None) };
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(invalid(field, "nanos must be within 0..1e9"));
    }
    t.seconds
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(i64::from(t.nanos)))
        .map(|n| Some(Timestamp(n)))
        .ok_or_else(|| invalid(field, "out of range"))
}

pub fn timestamp_to_pb(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1_000_000_000),
        nanos: i32::try_from(t.0.rem_euclid(1_000_000_000)).unwrap_or_default(),
    }
}

pub fn precondition(field: &str, p: i32) -> Result<Precondition, Error> {
    match pb::Precondition::try_from(p) {
        Ok(pb::Precondition::Unspecified) => Ok(Precondition::None),
        Ok(pb::Precondition::MustExist) => Ok(Precondition::MustExist),
        Ok(pb::Precondition::MustNotExist) => Ok(Precondition::MustNotExist),
        Err(_) => Err(invalid(field, format!("unknown precondition {p}"))),
    }
}

pub fn write_options(o: &Option<pb::WriteOptions>) -> Result<WriteOptions, Error> {
    let Some(o) = o else {
        return Ok(WriteOptions::default());
    };
    let mut options = WriteOptions {
        actor: optional_id("options.actor", &o.actor)?,
        expected_revision: revision(o.expected_revision),
        idempotency_key: ops::idempotency_key("options.idempotency_key", &o.idempotency_key)?,
        ..WriteOptions::default()
    };
    options.origin.reason = ops::reason("options.reason", &o.reason)?;
    Ok(options)
}

/// A list's paging message as the operation takes it; none given means
/// the first page at the default size.
pub fn page_request(page: &Option<pb::PageRequest>) -> PageRequest {
    page.as_ref()
        .map(|p| PageRequest {
            size: p.page_size,
            token: p.page_token.clone(),
        })
        .unwrap_or_default()
}

/// A paging refusal located inside the request's `page` message (the
/// operation names `page_size` and `page_token`).
pub fn in_page(e: Error) -> Error {
    match e {
        Error::InvalidArgument { field, reason }
            if field == "page_size" || field == "page_token" =>
        {
            Error::InvalidArgument {
                field: format!("page.{field}"),
                reason,
            }
        }
        other => other,
    }
}

/// A page's items converted, and its next token (empty on the last page).
pub fn page_to_pb<T, U>(page: Page<T>, item: impl FnMut(T) -> U) -> (Vec<U>, String) {
    let page = page.map(item);
    (page.items, page.next.unwrap_or_default())
}

pub fn subject_kind(field: &str, k: i32) -> Result<SubjectKind, Error> {
    match pb::SubjectKind::try_from(k) {
        Ok(pb::SubjectKind::Unspecified | pb::SubjectKind::User) => Ok(SubjectKind::User),
        Ok(pb::SubjectKind::Service) => Ok(SubjectKind::Service),
        Err(_) => Err(invalid(field, format!("unknown subject kind {k}"))),
    }
}

pub fn subject_status(field: &str, s: i32) -> Result<SubjectStatus, Error> {
    match pb::SubjectStatus::try_from(s) {
        Ok(pb::SubjectStatus::Unspecified | pb::SubjectStatus::Active) => Ok(SubjectStatus::Active),
        Ok(pb::SubjectStatus::Locked) => Ok(SubjectStatus::Locked),
        Err(_) => Err(invalid(field, format!("unknown subject status {s}"))),
    }
}

pub fn subject(field: &str, s: &pb::Subject) -> Result<Subject, Error> {
    let attributes: BTreeMap<String, String> = s.attributes.clone().into_iter().collect();
    Subject::check_attributes(&attributes)
        .map_err(|e| invalid(format!("{field}.attributes"), e))?;
    Ok(Subject {
        id: id(&format!("{field}.id"), &s.id)?,
        kind: subject_kind(&format!("{field}.kind"), s.kind)?,
        status: subject_status(&format!("{field}.status"), s.status)?,
        attributes: attributes.into(),
        home_scope: optional_id(&format!("{field}.home_scope"), &s.home_scope)?,
    })
}

pub fn subject_to_pb(s: &Subject) -> pb::Subject {
    pb::Subject {
        id: s.id.to_string(),
        kind: match s.kind {
            SubjectKind::User => pb::SubjectKind::User,
            SubjectKind::Service => pb::SubjectKind::Service,
        } as i32,
        status: match s.status {
            SubjectStatus::Active => pb::SubjectStatus::Active,
            SubjectStatus::Locked => pb::SubjectStatus::Locked,
        } as i32,
        attributes: s.attributes.clone().into_iter().collect(),
        home_scope: s
            .home_scope
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

pub fn scope(field: &str, s: &pb::Scope) -> Result<Scope, Error> {
    model::check_text(&format!("{field}.type"), &s.r#type)
        .map_err(|e| invalid(format!("{field}.type"), e))?;
    Ok(Scope {
        id: id(&format!("{field}.id"), &s.id)?,
        scope_type: s.r#type.clone(),
        parent: optional_id(&format!("{field}.parent"), &s.parent)?.unwrap_or_else(ScopeId::root),
    })
}

pub fn scope_to_pb(s: &Scope) -> pb::Scope {
    pb::Scope {
        id: s.id.to_string(),
        r#type: s.scope_type.clone(),
        parent: s.parent.to_string(),
    }
}

pub fn group(field: &str, g: &pb::Group) -> Result<Group, Error> {
    model::check_text("title", &g.title).map_err(|e| invalid(format!("{field}.title"), e))?;
    Ok(Group {
        id: id(&format!("{field}.id"), &g.id)?,
        title: g.title.clone(),
        condition: (!g.condition.is_empty()).then(|| g.condition.clone()),
    })
}

pub fn group_to_pb(g: &Group) -> pb::Group {
    pb::Group {
        id: g.id.to_string(),
        title: g.title.clone(),
        condition: g.condition.clone().unwrap_or_default(),
    }
}

fn permission(field: &str, p: &str) -> Result<Permission, Error> {
    p.parse().map_err(|e| invalid(field, e))
}

pub fn role(field: &str, r: &pb::Role) -> Result<Role, Error> {
    model::check_text("title", &r.title).map_err(|e| invalid(format!("{field}.title"), e))?;
    if r.grants.len() > authzd_core::limits::MAX_GRANTS {
        return Err(invalid(
            format!("{field}.grants"),
            format!("at most {} grants", authzd_core::limits::MAX_GRANTS),
        ));
    }
    let grants = r
        .grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let at = format!("{field}.grants[{i}]");
            Ok(Grant {
                permission: permission(&format!("{at}.permission"), &g.permission)?,
                scopes: g
                    .scopes
                    .iter()
                    .map(|s| id(&format!("{at}.scopes"), s))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<_, Error>>()?;
    let requires = r
        .requires
        .iter()
        .map(|p| permission(&format!("{field}.requires"), p))
        .collect::<Result<_, _>>()?;
    let managed_by = if r.managed_by.is_empty() {
        None
    } else {
        Some(permission(&format!("{field}.managed_by"), &r.managed_by)?)
    };
    let grantable_by = if r.grantable_by.is_empty() {
        None
    } else {
        Some(permission(
            &format!("{field}.grantable_by"),
            &r.grantable_by,
        )?)
    };
    Ok(Role {
        id: id(&format!("{field}.id"), &r.id)?,
        title: if r.title.is_empty() {
            r.id.clone()
        } else {
            r.title.clone()
        },
        grants,
        class: (!r.class.is_empty()).then(|| r.class.clone()),
        rank: r.rank,
        requires,
        managed_by,
        grantable_by,
        self_removable: r.self_removable,
    })
}

pub fn role_to_pb(r: &Role, builtin: bool) -> pb::Role {
    pb::Role {
        id: r.id.to_string(),
        title: r.title.clone(),
        grants: r
            .grants
            .iter()
            .map(|g| pb::Grant {
                permission: g.permission.to_string(),
                scopes: g.scopes.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        builtin,
        class: r.class.clone().unwrap_or_default(),
        rank: r.rank,
        requires: r.requires.iter().map(ToString::to_string).collect(),
        managed_by: r
            .managed_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        grantable_by: r
            .grantable_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        self_removable: r.self_removable,
    }
}

pub fn assignment_to_pb(a: &Assignment) -> pb::Assignment {
    pb::Assignment {
        role: a.key.role.to_string(),
        principal: Some(principal_to_pb(&a.key.principal)),
        target: Some(target_to_pb(&a.key.target)),
        expires_at: a.expires_at.map(timestamp_to_pb),
    }
}

fn key_to_pb(k: &AssignmentKey) -> pb::Assignment {
    pb::Assignment {
        role: k.role.to_string(),
        principal: Some(principal_to_pb(&k.principal)),
        target: Some(target_to_pb(&k.target)),
        expires_at: None,
    }
}

pub fn settings(field: &str, s: &Option<pb::TenantSettings>) -> Result<TenantSettings, Error> {
    let disabled: Result<BTreeSet<Name>, Error> = s
        .iter()
        .flat_map(|s| &s.disabled_resources)
        .map(|r| {
            r.parse::<Name>()
                .map_err(|e| invalid(format!("{field}.disabled_resources"), e))
        })
        .collect();
    Ok(TenantSettings {
        disabled_resources: disabled?,
    })
}

pub fn settings_to_pb(s: &TenantSettings) -> pb::TenantSettings {
    pb::TenantSettings {
        disabled_resources: s
            .disabled_resources
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// A reach on the wire; the zero value is never produced.
pub fn reach_to_pb(r: Reach) -> pb::Reach {
    match r {
        Reach::Subtree => pb::Reach::Subtree,
        Reach::Exact => pb::Reach::Exact,
    }
}

pub fn source_to_pb(s: &Source) -> pb::Source {
    pb::Source {
        role: s.role.clone(),
        groups: s.groups.iter().map(ToString::to_string).collect(),
        scope: s
            .scope
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        population: s
            .population
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        grant: s.grant.clone(),
        implication: s.implication.clone(),
        expires_at: s.expires_at.map(timestamp_to_pb),
    }
}

pub fn change_to_pb(tenant: &str, c: &Change) -> pb::Change {
    use pb::change::Change as C;
    let membership = |m: &model::Membership| pb::Membership {
        group: m.group.to_string(),
        member: Some(principal_to_pb(&m.member)),
    };
    let change = match c {
        Change::TenantPut(s) => C::TenantPut(pb::Tenant {
            id: tenant.to_string(),
            settings: Some(settings_to_pb(s)),
        }),
        Change::SubjectPut(s) => C::SubjectPut(subject_to_pb(s)),
        Change::SubjectDeleted(id) => C::SubjectDeleted(id.to_string()),
        Change::ScopePut(s) => C::ScopePut(scope_to_pb(s)),
        Change::ScopeDeleted(id) => C::ScopeDeleted(id.to_string()),
        Change::GroupPut(g) => C::GroupPut(group_to_pb(g)),
        Change::GroupDeleted(id) => C::GroupDeleted(id.to_string()),
        Change::RolePut(r) => C::RolePut(role_to_pb(r, false)),
        Change::RoleDeleted(id) => C::RoleDeleted(id.to_string()),
        Change::MemberAdded(m) => C::MemberAdded(membership(m)),
        Change::MemberRemoved(m) => C::MemberRemoved(membership(m)),
        Change::RoleAssigned(a) => C::RoleAssigned(assignment_to_pb(a)),
        Change::RoleUnassigned(k) => C::RoleUnassigned(key_to_pb(k)),
        Change::RoleExpired(k) => C::RoleExpired(key_to_pb(k)),
        Change::SchemaWritten(text) => C::SchemaWritten(text.clone()),
    };
    pb::Change {
        change: Some(change),
    }
}
