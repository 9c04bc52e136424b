//! Every redb table of the store, in one place, with its key → value shape.
//!
//! This file owns the physical layout: table names, key tuples and the
//! format version that guards them. Changing any definition here changes the
//! on-disk format, so it must come with a new [`FORMAT_VERSION`]. It must not
//! hold logic; [`super::codec`] encodes the values and the store's
//! transactions decide what goes where.
//!
//! Keys of per-tenant tables are tuples that begin with the tenant id, so one
//! tenant's rows form one contiguous key range: a tenant can be loaded or
//! scanned without touching another's rows.

use redb::TableDefinition;

/// The on-disk format this build writes. A file recording a version other
/// than this one or [`FORMAT_VERSION_JSON`] is refused at open rather than
/// misread.
///
/// - 1: every value JSON.
/// - 2: large values (change sets) compressed, memberships stored as their
///   key alone (see [`super::codec`]); reads every value of format 1.
pub(super) const FORMAT_VERSION: u64 = 2;

/// The first format, which this build still opens: it upgrades the file to
/// [`FORMAT_VERSION`] in place at open, without rewriting a value.
pub(super) const FORMAT_VERSION_JSON: u64 = 1;

/// Key in [`META`] of the format version the file was created with.
pub(super) const META_FORMAT_VERSION: &str = "format_version";
/// Key in [`META`] of the latest committed revision.
pub(super) const META_REVISION: &str = "revision";
/// Key in [`META`] of the data set's epoch (absent in files written before
/// epochs existed until their next open).
pub(super) const META_EPOCH: &str = "epoch";
/// Key in [`SCHEMA`] of the current schema text.
pub(super) const SCHEMA_CURRENT: &str = "current";

/// Store-wide counters: [`META_FORMAT_VERSION`] → format version,
/// [`META_REVISION`] → latest committed revision (absent means 0).
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// [`SCHEMA_CURRENT`] → the schema text last written by
/// `Change::SchemaWritten` (absent until the first schema write).
pub(super) const SCHEMA: TableDefinition<&str, &str> = TableDefinition::new("schema");

/// tenant id → JSON `TenantSettings`. A tenant exists exactly when it has a
/// row here.
pub(super) const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");

/// (tenant id, subject id) → JSON `Subject`.
pub(super) const SUBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("subjects");

/// (tenant id, scope id) → JSON `Scope`.
pub(super) const SCOPES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("scopes");

/// (tenant id, group id) → JSON `Group`.
pub(super) const GROUPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("groups");

/// (tenant id, role id) → JSON `Role` (custom roles only; builtin roles live
/// in the schema).
pub(super) const ROLES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("roles");

/// (tenant id, group id, member key from `codec::principal_key`) → nothing
/// (the key is the membership; format 1 stored the JSON `Membership`).
pub(super) const MEMBERSHIPS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("memberships");

/// (tenant id, assignment key from `codec::assignment_key`) → JSON
/// `Assignment`.
pub(super) const ASSIGNMENTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("assignments");

/// revision → `ChangeSet` committed at that revision (JSON, zstd-compressed
/// when large); the source of the change feed.
pub(super) const CHANGELOG: TableDefinition<u64, &[u8]> = TableDefinition::new("changelog");

/// (tenant id, or `codec::STORE_WIDE` for store-wide writes, idempotency
/// key) → the revision the key's first write committed as.
pub(super) const IDEMPOTENCY: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("idempotency");

/// Key in [`META`] of the next audit sequence number (absent means 0).
pub(super) const META_AUDIT_SEQ: &str = "audit_seq";

/// (nanoseconds since the epoch, sequence number) → JSON `AuditEntry`:
/// the audit trail, in time order. Files written before the trail existed
/// lack the table until their first commit; readers treat that as empty.
pub(super) const AUDIT: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("audit");

/// first revision of a committed group → the group's commit id, so that a
/// committer told nothing of a commit's outcome can find it. Pruned with
/// the changelog; files written before commit ids existed lack the table
/// until their first commit, and readers treat that as empty.
pub(super) const COMMITS: TableDefinition<u64, u128> = TableDefinition::new("commits");
