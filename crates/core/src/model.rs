//! Value types shared by every layer: checked ids, permissions, revisions,
//! the records of the directory (subjects, scopes, groups, roles,
//! assignments) and the changes that move it from one revision to the next.
//!
//! Every type here is valid by construction: ids and permissions are built
//! only through checked `TryFrom`/`FromStr`, so code that holds one never
//! re-validates it. This module depends on nothing but std and serde; it must
//! not know about protobuf, redb or the compiled cache.

use crate::limits::{
    MAX_ATTRIBUTE_KEY_LEN, MAX_ATTRIBUTES, MAX_AUDIT_CONCERNED, MAX_ID_LEN, MAX_NAME_LEN,
    MAX_TEXT_LEN,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod attributes;
pub use attributes::Attributes;

/// A value that failed its checked construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidValue {
    /// Why the value was refused, in lowercase, naming the offending part.
    pub reason: String,
}

impl InvalidValue {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Whether `c` is a Unicode bidirectional embedding, override or isolate
/// (U+202A–U+202E, U+2066–U+2069). They are invisible, and they reorder
/// the text around them, so an id holding one can print exactly like
/// another id in a console, a log line or an audit entry ("Trojan Source").
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks the id rules (1-256 bytes, no whitespace, control or
/// bidirectional control characters) without building an id: for paths
/// that only look ids up. Allocates only to report an error.
pub fn check_id(what: &str, s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() {
        return Err(InvalidValue::new(format!("{what} must not be empty")));
    }
    if s.len() > MAX_ID_LEN {
        return Err(InvalidValue::new(format!(
            "{what} is {} bytes long; the limit is {MAX_ID_LEN}",
            s.len()
        )));
    }
    // Most ids are ASCII: one pass over the bytes settles them (in ASCII,
    // whitespace and control characters are the bytes up to the space,
    // and DEL; no bidirectional control is ASCII). The passes below only
    // run for other ids, and name the character refused.
    if s.bytes().all(|b| b > b' ' && b != 0x7f && b.is_ascii()) {
        return Ok(());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidValue::new(format!(
            "{what} {} contains the character {}; whitespace and control characters are not allowed",
            Quoted(s),
            QuotedChar(c)
        )));
    }
    // Quoted escapes it, so that the message itself cannot reorder a console.
    if let Some(c) = s.chars().find(|&c| is_bidi_control(c)) {
        return Err(InvalidValue::new(format!(
            "{what} {} contains the bidirectional control character U+{:04X}; it can make one id look like another, and is not allowed",
            Quoted(s),
            u32::from(c)
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(Arc<str>);

        // Written as the string it holds, without copying it into a
        // `String` first: a change set names ids once per effect.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                check_id($what, &s)?;
                Ok(Self(s.into()))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidValue;
            fn try_from(s: &str) -> Result<Self, InvalidValue> {
                check_id($what, s)?;
                Ok(Self(s.into()))
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::try_from(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant: the isolation boundary.
    TenantId,
    "tenant id"
);
id_type!(
    /// A subject (user or service user) within a tenant.
    SubjectId,
    "subject id"
);
id_type!(
    /// A scope within a tenant. [`ScopeId::root`] always exists.
    ScopeId,
    "scope id"
);
id_type!(
    /// A group within a tenant.
    GroupId,
    "group id"
);
id_type!(
    /// A role: builtin (from the schema) or custom (per tenant).
    RoleId,
    "role id"
);

/// The id of every tenant's implicit root scope.
pub const ROOT_SCOPE: &str = "root";

impl ScopeId {
    /// The tenant root scope, ancestor of every other scope.
    pub fn root() -> Self {
        Self(Arc::from(ROOT_SCOPE))
    }

    /// Whether this is the tenant root.
    pub fn is_root(&self) -> bool {
        &*self.0 == ROOT_SCOPE
    }
}

/// A resource type or verb name: 1-64 bytes of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(InvalidValue::new(format!(
                "name {} must be 1 to {MAX_NAME_LEN} bytes long",
                Quoted(s)
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(InvalidValue::new(format!(
                "name {} contains {}; use letters, digits, '_', '-' and '.'",
                Quoted(s),
                QuotedChar(c)
            )));
        }
        Ok(Self(s.into()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission as written: `type:level`, `type:action`, a derived
/// permission's `type:name`, or `*` (every permission, for administrators).
///
/// Whether a permission exists is the schema's business; this type only
/// guarantees the syntax.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum Permission {
    /// `*`: every permission of the catalog.
    All,
    /// `resource:verb`.
    Specific {
        /// The resource type.
        resource: Name,
        /// The level, action or derived name.
        verb: Name,
    },
}

impl Permission {
    /// The resource type, or `None` for `*`.
    pub fn resource(&self) -> Option<&Name> {
        match self {
            Permission::All => None,
            Permission::Specific { resource, .. } => Some(resource),
        }
    }
}

impl FromStr for Permission {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if s == "*" {
            return Ok(Permission::All);
        }
        let Some((resource, verb)) = s.split_once(':') else {
            return Err(InvalidValue::new(format!(
                "permission {} is not of the form \"type:level\", \"type:action\" or \"*\"",
                Quoted(s)
            )));
        };
        let part = |p: &str| {
            p.parse::<Name>()
                .map_err(|e| InvalidValue::new(format!("permission {}: {e}", Quoted(s))))
        };
        Ok(Permission::Specific {
            resource: part(resource)?,
            verb: part(verb)?,
        })
    }
}

impl TryFrom<String> for Permission {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        s.parse()
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.to_string()
    }
}

// Written through its `Display`, which the JSON writer streams without
// building a `String` per permission.
impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::All => f.write_str("*"),
            Permission::Specific { resource, verb } => write!(f, "{resource}:{verb}"),
        }
    }
}

/// A store-wide, strictly increasing commit number. Revision 0 is the empty
/// store before any write.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision after this one.
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An instant, as nanoseconds since the Unix epoch (UTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Whether a subject is a person or an integration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person.
    #[default]
    User,
    /// An integration's service user.
    Service,
}

/// Whether a subject may act at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectStatus {
    /// Holds what its roles give it.
    #[default]
    Active,
    /// Denied everything; keeps its memberships.
    Locked,
}

/// Who acts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Unique in the tenant.
    pub id: SubjectId,
    /// User or service user.
    pub kind: SubjectKind,
    /// Active or locked.
    pub status: SubjectStatus,
    /// Free-form attributes; at most [`MAX_ATTRIBUTES`], checked by
    /// [`Subject::check_attributes`]; stored once per distinct set.
    pub attributes: Attributes,
    /// The scope checks targeting this subject apply at; `None` is the root.
    pub home_scope: Option<ScopeId>,
}

impl Subject {
    /// Checks the attribute limits.
    pub fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<(), InvalidValue> {
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(InvalidValue::new(format!(
                "{} attributes given; the limit is {MAX_ATTRIBUTES}",
                attributes.len()
            )));
        }
        for (k, v) in attributes {
            if k.is_empty() || k.len() > MAX_ATTRIBUTE_KEY_LEN {
                return Err(InvalidValue::new(format!(
                    "attribute key {} must be 1 to {MAX_ATTRIBUTE_KEY_LEN} bytes long",
                    Quoted(k)
                )));
            }
            check_text(&format!("attribute {}", Quoted(k)), v)?;
        }
        Ok(())
    }
}

/// Checks a free-text field (title, attribute value) against [`MAX_TEXT_LEN`].
pub fn check_text(what: &str, s: &str) -> Result<(), InvalidValue> {
    if s.len() > MAX_TEXT_LEN {
        return Err(InvalidValue::new(format!(
            "{what} is {} bytes long; the limit is {MAX_TEXT_LEN}",
            s.len()
        )));
    }
    Ok(())
}

/// A name as error messages quote it: in double quotes, with control and
/// other unprintable characters escaped, so input that names nothing
/// cannot forge or hide text in a message.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_debug())
    }
}

/// A character as error messages quote it: in single quotes, escaped like
/// [`Quoted`], with its code point (`' ' (U+0020)`).
#[derive(Debug, Clone, Copy)]
pub struct QuotedChar(pub char);

impl fmt::Display for QuotedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' (U+{:04X})",
            self.0.escape_debug(),
            u32::from(self.0)
        )
    }
}

/// The longest prefix of `text` that is at most `max_bytes` long and ends on
/// a character boundary: for bounding text that echoes input without ever
/// splitting a UTF-8 sequence.
pub fn clip(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    // A UTF-8 sequence is at most 4 bytes, so a boundary is among the last 4.
    let end = (max_bytes.saturating_sub(3)..=max_bytes)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text.get(..end).unwrap_or_default()
}

/// A place where grants apply. The root is implicit and never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Unique in the tenant; never [`ROOT_SCOPE`].
    pub id: ScopeId,
    /// Free-form kind of place ("app", "unit", ...).
    pub scope_type: String,
    /// The parent; the root for top-level scopes.
    pub parent: ScopeId,
}

/// A set of subjects and nested groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Unique in the tenant.
    pub id: GroupId,
    /// Human-readable name.
    pub title: String,
    /// If set, a CEL expression over a subject: every subject satisfying it
    /// is a member, besides the explicit members.
    #[serde(default)]
    pub condition: Option<String>,
}

/// One permission a role grants, optionally pinned to scopes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// What is granted.
    pub permission: Permission,
    /// If not empty, the grant holds at these scopes instead of the
    /// assignment's scope.
    pub scopes: Vec<ScopeId>,
}

/// A named set of grants with the rules for giving it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Unique in the tenant, across builtin and custom roles.
    pub id: RoleId,
    /// Human-readable name.
    pub title: String,
    /// What it grants; at most [`crate::limits::MAX_GRANTS`].
    pub grants: Vec<Grant>,
    /// The role class (schema roles only).
    pub class: Option<String>,
    /// Rank: an actor may not grant a role ranked above its own.
    pub rank: i32,
    /// Permissions a subject must hold to receive the role.
    pub requires: Vec<Permission>,
    /// Permission an actor needs to assign or remove the role.
    pub managed_by: Option<Permission>,
    /// Permission that lets an actor assign the role without holding
    /// everything it grants (what Kubernetes calls `bind`): for roles handed
    /// out by people who may not exercise them.
    #[serde(default)]
    pub grantable_by: Option<Permission>,
    /// Whether a holder may remove itself.
    pub self_removable: bool,
}

/// Who receives a membership or a role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    /// A subject.
    Subject(SubjectId),
    /// A group.
    Group(GroupId),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Subject(s) => write!(f, "subject {s}"),
            Principal::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// Where an assignment holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// At a scope and (for inheriting permissions) below.
    Scope(ScopeId),
    /// Over the subjects of a group, for checks that target a subject.
    Population(GroupId),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Scope(s) => write!(f, "scope {s}"),
            Target::Population(g) => write!(f, "population {g}"),
        }
    }
}

/// What identifies an assignment: at most one exists per key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssignmentKey {
    /// The role.
    pub role: RoleId,
    /// Who holds it.
    pub principal: Principal,
    /// Where.
    pub target: Target,
}

/// A role given to a principal at a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Role, principal and target.
    pub key: AssignmentKey,
    /// When it stops counting, if ever.
    pub expires_at: Option<Timestamp>,
}

/// A group membership: `member` belongs to `group`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Membership {
    /// The group.
    pub group: GroupId,
    /// The member.
    pub member: Principal,
}

impl Membership {
    /// The group and the member.
    pub fn principals(&self) -> Vec<Principal> {
        vec![Principal::Group(self.group.clone()), self.member.clone()]
    }
}

impl AssignmentKey {
    /// The holder, and the group of a population target.
    pub fn principals(&self) -> Vec<Principal> {
        let mut named = vec![self.principal.clone()];
        if let Target::Population(g) = &self.target {
            named.push(Principal::Group(g.clone()));
        }
        named
    }
}

/// Per-tenant settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Resource types switched off: nobody holds anything on them.
    pub disabled_resources: BTreeSet<Name>,
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One raw change to a tenant's directory, or to the store-wide schema.
/// A write is a list of these; the store persists them, the cache applies
/// them, the feed streams them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The tenant was created or its settings replaced.
    TenantPut(TenantSettings),
    /// A subject was created or replaced.
    SubjectPut(Subject),
    /// A subject was deleted; its memberships and assignments were removed by
    /// earlier changes of the same write.
    SubjectDeleted(SubjectId),
    /// A scope was created or replaced.
    ScopePut(Scope),
    /// A scope was deleted.
    ScopeDeleted(ScopeId),
    /// A group was created or replaced.
    GroupPut(Group),
    /// A group was deleted; its memberships and assignments were removed by
    /// earlier changes of the same write.
    GroupDeleted(GroupId),
    /// A custom role was created or replaced.
    RolePut(Role),
    /// A custom role was deleted; its assignments were removed by earlier
    /// changes of the same write.
    RoleDeleted(RoleId),
    /// A member joined a group.
    MemberAdded(Membership),
    /// A member left a group.
    MemberRemoved(Membership),
    /// A role was assigned, or an assignment's expiry replaced.
    RoleAssigned(Assignment),
    /// A role was unassigned.
    RoleUnassigned(AssignmentKey),
    /// An assignment reached its expiry and was removed by the server.
    RoleExpired(AssignmentKey),
    /// The schema was replaced by this text (store-wide).
    SchemaWritten(String),
}

impl Change {
    /// The subjects and groups this change names directly (for the audit
    /// trail's `concerned`).
    pub fn principals(&self) -> Vec<Principal> {
        match self {
            Change::SubjectPut(s) => vec![Principal::Subject(s.id.clone())],
            Change::SubjectDeleted(id) => vec![Principal::Subject(id.clone())],
            Change::GroupPut(g) => vec![Principal::Group(g.id.clone())],
            Change::GroupDeleted(id) => vec![Principal::Group(id.clone())],
            Change::MemberAdded(m) | Change::MemberRemoved(m) => m.principals(),
            Change::RoleAssigned(a) => a.key.principals(),
            Change::RoleUnassigned(k) | Change::RoleExpired(k) => k.principals(),
            Change::TenantPut(_)
            | Change::ScopePut(_)
            | Change::ScopeDeleted(_)
            | Change::RolePut(_)
            | Change::RoleDeleted(_)
            | Change::SchemaWritten(_) => Vec::new(),
        }
    }
}

/// The whole state of a data set (or some tenants'), at one revision: what
/// a replica installs and a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The revision it reflects.
    pub revision: Revision,
    /// The schema text in force at that revision.
    pub schema: String,
    /// Each tenant's records, as the changes that recreate it, in an order
    /// that applies as it comes.
    pub tenants: Vec<(TenantId, Vec<Change>)>,
}

/// One committed write: the unit of the changelog and of the feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// The revision it committed as.
    pub revision: Revision,
    /// The tenant it changed; `None` for store-wide changes (the schema).
    pub tenant: Option<TenantId>,
    /// On whose behalf; `None` for a system write.
    pub actor: Option<SubjectId>,
    /// When it committed.
    pub committed_at: Timestamp,
    /// What changed, in order.
    pub changes: Vec<Change>,
    /// What the changes did to who holds what: every gain and loss, sorted
    /// by tenant, subject, target and permission.
    #[serde(default)]
    pub effects: Vec<Effect>,
}

/// Where an effective permission is held.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// At a scope where the subject has a grant; how far below it the
    /// permission holds is the effect's [`Reach`].
    Scope(ScopeId),
    /// Over a subject inside one of the holder's populations.
    Subject(SubjectId),
}

/// How far below its target an effective permission holds: with the target,
/// what a mirror needs to answer every check exactly.
///
/// The rule: subject S holds P at scope X iff S holds P with reach
/// [`Reach::Subtree`] at X or at an ancestor of X, or with [`Reach::Exact`]
/// at X itself. A permission holds with reach `Subtree` at a scope when it
/// would also hold at a scope created directly below it (so at every scope
/// below it, whatever grants those add); it holds with reach `Exact` when
/// it holds there but not necessarily below (a non-inheriting permission, or
/// a derived one whose rule needs one). Over a target subject the reach is
/// always `Exact`: over that subject only.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// At the target and at every scope below it.
    Subtree,
    /// At the target only. The default, so a changelog entry written before
    /// reaches existed decodes as the claim it made: held at its target.
    #[default]
    Exact,
}

/// One effective consequence of a write: a subject gained or lost a
/// permission at a target, with a reach. A change of reach alone is a loss
/// at the old reach followed by a gain at the new one (the field order makes
/// the sorted order put losses first).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Effect {
    /// The tenant.
    pub tenant: TenantId,
    /// Who gained or lost.
    pub subject: SubjectId,
    /// Where.
    pub target: Place,
    /// What.
    pub permission: Permission,
    /// Gained (true) or lost (false).
    pub gained: bool,
    /// How far below `target` it holds (or held).
    #[serde(default)]
    pub reach: Reach,
}

/// The position of an entry in the audit trail: its time, then a
/// store-wide sequence number that keeps entries of one instant apart.
/// Entries are listed newest first, by this key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuditKey {
    /// When the write was committed or refused.
    pub at: Timestamp,
    /// Store-wide, increasing.
    pub seq: u64,
}

/// How a write recorded in the audit trail ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", from = "StoredOutcome")]
pub enum AuditOutcome {
    /// It committed as this revision.
    Committed(Revision),
    /// The actor rules or the caller's token refused it; nothing was
    /// written.
    Denied {
        /// The refusal's message as the sequencer words it: the caller's,
        /// save that a refused operation is named by its place in the
        /// planned batch (`operations[0]: …`), which an edge may word
        /// otherwise.
        message: String,
        /// The reason code the caller got (the engine's
        /// `Violation::reason`); `None` for a refusal by the caller's token,
        /// which has none, and for entries recorded before refusals had codes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// An [`AuditOutcome`] as stored, in either of its forms: a refusal was
/// once recorded as its message alone, and those entries must still read.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredOutcome {
    Committed(Revision),
    Denied(StoredDenial),
}

/// A stored refusal: a bare message (the old form) or the fields of
/// [`AuditOutcome::Denied`].
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredDenial {
    Message(String),
    Fields {
        message: String,
        #[serde(default)]
        reason: Option<String>,
    },
}

impl From<StoredOutcome> for AuditOutcome {
    fn from(stored: StoredOutcome) -> Self {
        match stored {
            StoredOutcome::Committed(revision) => AuditOutcome::Committed(revision),
            StoredOutcome::Denied(StoredDenial::Message(message)) => AuditOutcome::Denied {
                message,
                reason: None,
            },
            StoredOutcome::Denied(StoredDenial::Fields { message, reason }) => {
                AuditOutcome::Denied { message, reason }
            }
        }
    }
}

/// Who asked for a write and why, carried from the API through the
/// sequencer into the audit trail: never a secret, never attribute values
/// or condition text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The caller's token name ("anonymous" without tokens, "authzd" for
    /// the server's own writes).
    pub caller: String,
    /// The request id (the caller's `x-request-id` or a generated one).
    pub request_id: String,
    /// The RPC, e.g. `MembershipService/ManageMembership`.
    pub method: String,
    /// The reason the caller gave, if any.
    pub reason: Option<String>,
}

impl Default for Origin {
    /// The server itself (the start-up schema, expiries).
    fn default() -> Self {
        Origin {
            caller: "authzd".into(),
            request_id: String::new(),
            method: String::new(),
            reason: None,
        }
    }
}

/// One entry of the audit trail: a committed write, or one refused by the
/// actor rules or by token kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Where it sits in the trail.
    pub key: AuditKey,
    /// The tenant written; `None` for store-wide writes (the schema) and
    /// for token refusals made before the request was read.
    pub tenant: Option<TenantId>,
    /// On whose behalf; `None` for a system write.
    pub actor: Option<SubjectId>,
    /// Who asked.
    pub origin: Origin,
    /// The subjects and groups the write names directly (member and group,
    /// an assignment's principal, the subject or group created, changed or
    /// deleted), at most [`MAX_AUDIT_CONCERNED`], sorted; not everyone
    /// whose access changed through it (the feed has those).
    pub concerned: Vec<Principal>,
    /// Whether the write named more principals than `concerned` holds.
    pub more_concerned: bool,
    /// How it ended.
    pub outcome: AuditOutcome,
}

impl AuditEntry {
    /// Sets `concerned` from principals in any order, with duplicates.
    pub fn concerning(&mut self, principals: impl IntoIterator<Item = Principal>) {
        let all: BTreeSet<Principal> = principals.into_iter().collect();
        self.more_concerned = all.len() > MAX_AUDIT_CONCERNED;
        self.concerned = all.into_iter().take(MAX_AUDIT_CONCERNED).collect();
    }
}

/// Which outcomes an audit listing wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeFilter {
    /// Committed writes only.
    Committed,
    /// Refused writes only.
    Denied,
}

/// A listing of the audit trail: every filter set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this tenant's entries.
    pub tenant: Option<TenantId>,
    /// Only entries concerning this subject or group.
    pub concerning: Option<Principal>,
    /// Only writes on this actor's behalf.
    pub actor: Option<SubjectId>,
    /// Only this caller's.
    pub caller: Option<String>,
    /// Only entries at or after this instant.
    pub since: Option<Timestamp>,
    /// Only entries before this instant.
    pub until: Option<Timestamp>,
    /// Only these outcomes.
    pub outcome: Option<OutcomeFilter>,
    /// Only entries older than this key (the previous page's last).
    pub before: Option<AuditKey>,
}

impl AuditQuery {
    /// Whether `entry` passes every filter but the key range.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let outcome = matches!(
            (self.outcome, &entry.outcome),
            (None, _)
                | (Some(OutcomeFilter::Committed), AuditOutcome::Committed(_))
                | (Some(OutcomeFilter::Denied), AuditOutcome::Denied { .. })
        );
        outcome
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| entry.tenant.as_ref() == Some(t))
            && self
                .actor
                .as_ref()
                .is_none_or(|a| entry.actor.as_ref() == Some(a))
            && self
                .caller
                .as_ref()
                .is_none_or(|c| &entry.origin.caller == c)
            && self
                .concerning
                .as_ref()
                .is_none_or(|p| entry.concerned.binary_search(p).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_whitespace() {
        assert!(SubjectId::try_from("").is_err());
        assert!(SubjectId::try_from("a b").is_err());
        assert!(SubjectId::try_from("x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(SubjectId::try_from("alice@example.com").is_ok());
    }

    /// The ASCII pass refuses exactly the ASCII characters the
    /// character rules refuse: whitespace and control characters.
    #[test]
    fn ascii_ids_follow_the_character_rules() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            let refused = c.is_whitespace() || c.is_control();
            assert_eq!(
                check_id("id", &format!("a{c}b")).is_err(),
                refused,
                "byte {b:#x}"
            );
        }
    }

    /// Every bidirectional embedding, override and isolate is refused in
    /// an id, with a message that names it and quotes the id escaped (so
    /// the message cannot reorder a console either); code points next to
    /// the ranges and ordinary non-ASCII text stay allowed.
    #[test]
    fn ids_refuse_bidi_controls() {
        let controls = ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}');
        for c in controls {
            let id = format!("admin{c}nimda");
            let error = SubjectId::try_from(id.as_str()).unwrap_err();
            assert!(
                error.reason.contains(&format!(
                    "bidirectional control character U+{:04X}",
                    u32::from(c)
                )),
                "{error}"
            );
            assert!(!error.reason.chars().any(is_bidi_control), "{error:?}");
            assert!(GroupId::try_from(id.as_str()).is_err());
            assert!(TenantId::try_from(id.as_str()).is_err());
        }
        for ok in ["jos\u{e9}", "\u{05d0}\u{05d1}", "a\u{2065}b", "a\u{202F}"] {
            // U+202F is a narrow no-break space: whitespace, refused as such.
            let expected = ok != "a\u{202F}";
            assert_eq!(SubjectId::try_from(ok).is_ok(), expected, "{ok:?}");
        }
    }

    #[test]
    fn permissions_parse_and_print() {
        for text in ["*", "product:edit", "forms:create_and_distribute"] {
            let p: Permission = text.parse().unwrap_or(Permission::All);
            assert_eq!(p.to_string(), text);
        }
        for bad in ["product", "product:", ":edit", "a:b:c", "pro duct:edit"] {
            assert!(bad.parse::<Permission>().is_err(), "{bad} should fail");
        }
    }

    /// Quoted names keep plain text as it is and escape what could forge
    /// or hide text in a message.
    #[test]
    fn quoted_names_escape_control_characters() {
        assert_eq!(Quoted("editor").to_string(), "\"editor\"");
        assert_eq!(Quoted("a\nb\"c").to_string(), "\"a\\nb\\\"c\"");
        assert_eq!(Quoted("\u{202e}x").to_string(), "\"\\u{202e}x\"");
    }

    /// A quoted character is escaped the same way and names its code
    /// point, so a space or a control character is seen for what it is.
    #[test]
    fn quoted_characters_name_their_code_point() {
        assert_eq!(QuotedChar(' ').to_string(), "' ' (U+0020)");
        assert_eq!(QuotedChar('\t').to_string(), "'\\t' (U+0009)");
        assert_eq!(QuotedChar('\u{202e}').to_string(), "'\\u{202e}' (U+202E)");
    }
}
