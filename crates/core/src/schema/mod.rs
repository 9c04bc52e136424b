//! The permission catalog: one TOML file, shared by every tenant, that
//! declares resource types (level ladders or unordered actions, `follows`
//! correlations, inheritance), derived permissions, role classes and builtin
//! roles.
//!
//! The file goes through three stages with distinct types, so that only a
//! fully checked schema reaches the engine:
//!
//! 1. `parse`: TOML text → raw records that remember the line and dotted
//!    key of every value (syntax errors, unknown keys, wrong value types);
//! 2. `validate`: raw → validated, collecting *every* semantic error (unknown
//!    names, cycles, contradictions) instead of stopping at the first;
//! 3. `compile`: validated → [`Catalog`], where permissions are bit
//!    positions and every ladder and `follows` implication is closed once.
//!
//! This module owns the public entry points ([`load`], [`load_file`]), the
//! error type and the bitset types the engine computes with. It must not do
//! I/O beyond reading the one file it is given, and must not know about
//! tenants, the store or the wire format.

mod compile;
mod graph;
mod parse;
mod validate;

use crate::limits::{
    MAX_DIAGNOSTIC_TEXT, MAX_SCHEMA_BYTES, MAX_SCHEMA_ERRORS, REQUEST_SUGGESTION_BUDGET,
    SUGGESTION_BUDGET,
};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::model::{InvalidValue, Name, Permission, clip};

pub use compile::Catalog;

/// The built-in example schema, used when the server starts without one.
pub const DEFAULT_SCHEMA: &str = include_str!("default.toml");

/// `"; did you mean \"x\"?"` for the candidate closest to `word` (a
/// request's unknown permission or role), or nothing: the schema checker's
/// suggestions, within [`REQUEST_SUGGESTION_BUDGET`].
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let mut budget = REQUEST_SUGGESTION_BUDGET;
    did_you_mean(word, candidates, &mut budget)
}

/// The key reported for problems that belong to the document as a whole
/// (size limit, syntax errors outside any table).
const DOCUMENT_KEY: &str = "(document)";

/// Parses, validates and compiles a schema. `file` names the text in
/// diagnostics (a path, or a label such as `"default.toml"`).
pub fn load(file: &str, text: &str) -> Result<Catalog, SchemaError> {
    let mut out = Diagnostics::new(file, text);
    let valid = parse::parse(text, &mut out).and_then(|raw| validate::validate(&raw, &mut out));
    match valid {
        Some(valid) if out.is_empty() => match compile::compile(text, valid, &mut out) {
            Some(catalog) if out.is_empty() => Ok(catalog),
            _ => Err(out.finish()),
        },
        _ => Err(out.finish()),
    }
}

/// Reads a schema file and [`load`]s it, naming the path in diagnostics.
///
/// Reads at most [`MAX_SCHEMA_BYTES`] + 1 bytes, so an oversized file is
/// refused without being read whole.
pub fn load_file(path: &Path) -> Result<Catalog, SchemaError> {
    let read_error = |source| SchemaError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_SCHEMA_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    load(&path.display().to_string(), &text)
}

/// Why a schema was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The text has errors: the first [`MAX_SCHEMA_ERRORS`] found, in file
    /// order, and how many more there are.
    #[error("{}", render_invalid(diagnostics, *omitted))]
    Invalid {
        /// The first errors, in file order; never empty.
        diagnostics: Vec<Diagnostic>,
        /// How many further errors were found and left out.
        omitted: usize,
    },
    /// The schema file could not be read.
    #[error("cannot read schema file {}: {source}", path.display())]
    Read {
        /// The file that was to be read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

fn render_invalid(diagnostics: &[Diagnostic], omitted: usize) -> String {
    let count = diagnostics.len() + omitted;
    let mut text = format!(
        "invalid schema: {count} error{}",
        if count == 1 { "" } else { "s" }
    );
    for d in diagnostics {
        text.push('\n');
        text.push_str(&d.to_string());
    }
    if omitted > 0 {
        text.push_str(&format!(
            "\n… and {omitted} more error{}",
            if omitted == 1 { "" } else { "s" }
        ));
    }
    text
}

/// One problem in a schema, located precisely enough to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// The file name given to [`load`], or the path given to [`load_file`].
    pub file: String,
    /// 1-based line of the offending key or value.
    pub line: usize,
    /// Dotted TOML path of the offending key, e.g. `resources.price.follows`;
    /// segments that are not bare keys are quoted as in TOML.
    pub key: String,
    /// What is wrong, in lowercase.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

/// Collects diagnostics for one text; shared by the stages so that each adds
/// its findings and none stops the others from reporting.
///
/// Memory stays bounded however many errors a text has: only the
/// [`MAX_SCHEMA_ERRORS`] earliest (by line) are kept, the rest counted.
pub(crate) struct Diagnostics {
    file: String,
    /// Byte offset at which each line starts; turns spans into line numbers.
    line_starts: Vec<usize>,
    /// At most twice [`MAX_SCHEMA_ERRORS`]; cut back to the earliest
    /// [`MAX_SCHEMA_ERRORS`] whenever it reaches that.
    list: Vec<Diagnostic>,
    /// Every diagnostic pushed, kept or not.
    total: usize,
    /// What is left of [`SUGGESTION_BUDGET`].
    suggestion_budget: usize,
}

impl Diagnostics {
    fn new(file: &str, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file: clip_marked(file),
            line_starts,
            list: Vec::new(),
            total: 0,
            suggestion_budget: SUGGESTION_BUDGET,
        }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }

    pub(crate) fn push(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let message = message.into();
        self.total += 1;
        self.list.push(Diagnostic {
            file: self.file.clone(),
            line,
            key: clip_marked(key),
            message: clip_marked(&message),
        });
        if self.list.len() >= 2 * MAX_SCHEMA_ERRORS {
            self.keep_earliest();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// `"; did you mean \"x\"?"` for the candidate closest to `word`, or
    /// nothing; nothing as well once the schema's suggestion budget is spent.
    pub(crate) fn suggest<'a>(
        &mut self,
        word: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> String {
        did_you_mean(word, candidates, &mut self.suggestion_budget)
    }

    /// Whether [`Diagnostics::suggest`] may still suggest anything: lets a
    /// caller skip building a list of candidates for nothing.
    pub(crate) fn can_suggest(&self) -> bool {
        self.suggestion_budget > 0
    }

    /// Keeps the earliest [`MAX_SCHEMA_ERRORS`] diagnostics; the sort is
    /// stable, so findings on one line keep the order the stages made them.
    fn keep_earliest(&mut self) {
        self.list.sort_by_key(|d| d.line);
        self.list.truncate(MAX_SCHEMA_ERRORS);
    }

    /// The refusal: the earliest diagnostics in file order, and how many
    /// more were found.
    fn finish(mut self) -> SchemaError {
        self.keep_earliest();
        SchemaError::Invalid {
            omitted: self.total - self.list.len(),
            diagnostics: self.list,
        }
    }
}

/// `text`, cut to [`MAX_DIAGNOSTIC_TEXT`] bytes with a mark if it was longer.
fn clip_marked(text: &str) -> String {
    let kept = clip(text, MAX_DIAGNOSTIC_TEXT);
    if kept.len() == text.len() {
        text.to_owned()
    } else {
        format!("{kept}… ({} bytes)", text.len())
    }
}

/// Appends `key` to the dotted path `parent`, quoting it unless it is a TOML
/// bare key, so the path can be pasted back into a TOML header.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let segment = if bare {
        key.to_owned()
    } else {
        crate::model::Quoted(key).to_string()
    };
    if parent.is_empty() {
        segment
    } else {
        format!("{parent}.{segment}")
    }
}

/// `"; did you mean \"x\"?"` for the closest candidate within a small edit
/// distance, or nothing: typos are the commonest schema error.
///
/// Each comparison is charged to `budget` (character pairs, plus the
/// lengths it measures); once the budget is spent, nothing is suggested.
/// Candidates whose length differs too much to be within the distance are
/// skipped without comparing them.
fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    budget: &mut usize,
) -> String {
    let length = word.chars().count();
    let Some(left) = budget.checked_sub(1 + length) else {
        *budget = 0;
        return String::new();
    };
    *budget = left;
    let limit = (length / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let c_length = c.chars().count();
        let close = length.abs_diff(c_length) <= limit;
        let compare = if close { length * c_length } else { 0 };
        let Some(left) = budget.checked_sub(1 + c_length + compare) else {
            *budget = 0;
            return String::new();
        };
        *budget = left;
        if !close {
            continue;
        }
        let d = edit_distance(word, c);
        if d <= limit && best.is_none_or(|b| (d, c) < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| format!("; did you mean {}?", crate::model::Quoted(c)))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let cost = usize::from(ca != *cb);
            let best = (diagonal + cost).min(above + 1).min(left + 1);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// A permission's position in its [`Catalog`]; meaningful only with the
/// catalog that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermBit(u16);

impl PermBit {
    /// The bit position, `0..catalog.len()`.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The bit at `index`, if it fits the representation; whether it exists
    /// in a catalog is that catalog's business.
    pub fn from_index(index: usize) -> Option<Self> {
        u16::try_from(index).ok().map(PermBit)
    }
}

/// A fixed-capacity set of [`PermBit`]s.
///
/// Sets built for one catalog all have its [`Catalog::len`] as capacity.
/// Bits beyond the capacity are never members: inserting one is ignored and
/// asking for one answers `false`, so a stale bit can never panic a request.
/// Equality and hashing compare capacity as well as members.
///
/// Catalogs of up to 128 permissions (most) keep the words inline: the
/// memoised grants hold a set per entry, and a heap allocation each would
/// cost a cache miss per entry a check reads.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct PermSet(SmallVec<[u64; INLINE_WORDS]>);

/// Words kept inline (128 permissions).
const INLINE_WORDS: usize = 2;

// A set is in every grant entry of every subject: it stays three words.
const _: () = assert!(std::mem::size_of::<PermSet>() == 24);

impl PermSet {
    /// An empty set able to hold bits `0..len`.
    pub fn empty(len: usize) -> Self {
        PermSet(SmallVec::from_elem(0, len.div_ceil(64)))
    }

    /// Adds `b`; ignored if `b` is beyond the capacity.
    pub fn insert(&mut self, b: PermBit) {
        if let Some(word) = self.0.get_mut(b.index() / 64) {
            *word |= 1 << (b.index() % 64);
        }
    }

    /// Removes `b`.
    pub fn remove(&mut self, b: PermBit) {
        if let Some(word) = self.0.get_mut(b.index() / 64) {
            *word &= !(1 << (b.index() % 64));
        }
    }

    /// Whether `b` is a member; `false` beyond the capacity.
    pub fn contains(&self, b: PermBit) -> bool {
        self.0
            .get(b.index() / 64)
            .is_some_and(|word| word & (1 << (b.index() % 64)) != 0)
    }

    /// Adds every member of `other`. Grows to `other`'s capacity if it is
    /// larger (which sets of one catalog never are), so no member is lost.
    pub fn union_with(&mut self, other: &PermSet) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine |= theirs;
        }
    }

    /// Adds every member of `other` that is also in `mask`.
    pub fn union_masked(&mut self, other: &PermSet, mask: &PermSet) {
        for ((mine, theirs), keep) in self.0.iter_mut().zip(other.0.iter()).zip(mask.0.iter()) {
            *mine |= theirs & keep;
        }
    }

    /// Removes every member of `other`.
    pub fn subtract(&mut self, other: &PermSet) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine &= !theirs;
        }
    }

    /// Whether the two sets share a member.
    pub fn intersects(&self, other: &PermSet) -> bool {
        self.0.iter().zip(other.0.iter()).any(|(a, b)| a & b != 0)
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: &PermSet) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(i, word)| word & !other.0.get(i).copied().unwrap_or(0) == 0)
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|word| *word == 0)
    }

    /// The members, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = PermBit> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(i * 64 + bit)
            })
            .filter_map(PermBit::from_index)
        })
    }

    /// The number of members (not the capacity).
    pub fn len(&self) -> usize {
        self.0.iter().map(|word| word.count_ones() as usize).sum()
    }

    /// How many bits the set can hold, rounded up to a multiple of 64.
    pub fn capacity(&self) -> usize {
        self.0.len() * 64
    }
}

/// How a derived permission combines its terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Held when every term is held.
    AllOf,
    /// Held when at least one term is held.
    AnyOf,
}

/// The rule of a derived permission.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// How the terms combine.
    pub kind: RuleKind,
    /// The terms, never empty. A term may itself be derived; its bit is then
    /// always lower than the bit of the permission using it, so evaluating
    /// derived bits in increasing order sees every term settled.
    pub terms: Vec<PermBit>,
}

impl Rule {
    /// Whether the rule holds for a set of held permissions. Derived terms
    /// must already be settled in `held`.
    pub fn holds(&self, held: &PermSet) -> bool {
        match self.kind {
            RuleKind::AllOf => self.terms.iter().all(|t| held.contains(*t)),
            RuleKind::AnyOf => self.terms.iter().any(|t| held.contains(*t)),
        }
    }
}

/// How many roles of one class a subject may hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cardinality {
    /// Exactly one (a staff category).
    ExactlyOne,
    /// None or one.
    AtMostOne,
    /// Any number.
    #[default]
    Many,
}

impl Cardinality {
    /// The schema spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cardinality::ExactlyOne => "exactly_one",
            Cardinality::AtMostOne => "at_most_one",
            Cardinality::Many => "many",
        }
    }
}

impl fmt::Display for Cardinality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A family of roles with shared rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleClass {
    /// The class name, as roles refer to it.
    pub name: String,
    /// How many roles of the class one subject may hold.
    pub per_subject: Cardinality,
    /// Every bit matching any of `patterns`: roles of this class never grant
    /// these, whatever their definition says.
    pub cannot_grant: PermSet,
    /// The `cannot_grant` patterns as written, for explanations.
    pub patterns: Vec<PermissionPattern>,
}

/// A pattern over permissions, as used by `cannot_grant` and by watch
/// filters: `*` (everything), `type:*` (every permission of a type, derived
/// ones included) or `type:verb` (exactly one).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PermissionPattern {
    /// `*`: every permission, and the `*` grant itself.
    All,
    /// `type:*`.
    Resource(Name),
    /// `type:verb`.
    Exact {
        /// The resource type.
        resource: Name,
        /// The level, action or derived name.
        verb: Name,
    },
}

impl PermissionPattern {
    /// Whether `p` matches, by syntax alone. Only the `*` pattern matches the
    /// `*` permission: `type:*` names the permissions of one type, and `*` is
    /// not one of them.
    pub fn matches(&self, p: &Permission) -> bool {
        match (self, p) {
            (PermissionPattern::All, _) => true,
            (PermissionPattern::Resource(r), Permission::Specific { resource, .. }) => {
                r == resource
            }
            (
                PermissionPattern::Exact { resource, verb },
                Permission::Specific {
                    resource: pr,
                    verb: pv,
                },
            ) => resource == pr && verb == pv,
            (_, Permission::All) => false,
        }
    }

    /// The resource type the pattern is confined to, `None` for `*`.
    pub fn resource(&self) -> Option<&Name> {
        match self {
            PermissionPattern::All => None,
            PermissionPattern::Resource(r) | PermissionPattern::Exact { resource: r, .. } => {
                Some(r)
            }
        }
    }
}

impl FromStr for PermissionPattern {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        if s == "*" {
            return Ok(PermissionPattern::All);
        }
        let invalid = |why: String| InvalidValue {
            reason: format!("pattern {} {why}", crate::model::Quoted(s)),
        };
        let Some((resource, verb)) = s.split_once(':') else {
            return Err(invalid(
                "is not of the form \"type:*\", \"type:verb\" or \"*\"".to_owned(),
            ));
        };
        let resource: Name = resource
            .parse()
            .map_err(|e: InvalidValue| invalid(e.reason))?;
        if verb == "*" {
            return Ok(PermissionPattern::Resource(resource));
        }
        let verb: Name = verb.parse().map_err(|e: InvalidValue| invalid(e.reason))?;
        Ok(PermissionPattern::Exact { resource, verb })
    }
}

impl TryFrom<String> for PermissionPattern {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        s.parse()
    }
}

impl From<PermissionPattern> for String {
    fn from(p: PermissionPattern) -> String {
        p.to_string()
    }
}

impl fmt::Display for PermissionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermissionPattern::All => f.write_str("*"),
            PermissionPattern::Resource(r) => write!(f, "{r}:*"),
            PermissionPattern::Exact { resource, verb } => write!(f, "{resource}:{verb}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(s: &str) -> Permission {
        s.parse().unwrap()
    }

    #[test]
    fn permset_basic_operations() {
        let mut a = PermSet::empty(130);
        assert!(a.is_empty());
        for i in [0, 63, 64, 129] {
            a.insert(PermBit::from_index(i).unwrap());
        }
        // Beyond capacity: ignored, never a panic.
        a.insert(PermBit::from_index(4000).unwrap());
        assert!(!a.contains(PermBit::from_index(4000).unwrap()));
        assert_eq!(a.len(), 4);
        assert_eq!(
            a.iter().map(PermBit::index).collect::<Vec<_>>(),
            vec![0, 63, 64, 129]
        );
        let mut b = PermSet::empty(130);
        b.insert(PermBit::from_index(64).unwrap());
        assert!(a.intersects(&b));
        assert!(b.is_subset(&a));
        a.subtract(&b);
        assert!(!a.intersects(&b));
        assert_eq!(a.len(), 3);
        b.union_with(&a);
        assert_eq!(b.len(), 4);
        b.remove(PermBit::from_index(0).unwrap());
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn permset_union_grows_to_larger_capacity() {
        let mut small = PermSet::empty(10);
        let mut big = PermSet::empty(200);
        big.insert(PermBit::from_index(150).unwrap());
        small.union_with(&big);
        assert!(small.contains(PermBit::from_index(150).unwrap()));
    }

    #[test]
    fn patterns_parse_print_and_match() {
        for text in ["*", "users:*", "users:invite"] {
            let p: PermissionPattern = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        for bad in ["", "users", ":*", "users:", "a b:*", "*:read"] {
            assert!(bad.parse::<PermissionPattern>().is_err(), "{bad}");
        }
        let any: PermissionPattern = "*".parse().unwrap();
        let users: PermissionPattern = "users:*".parse().unwrap();
        let invite: PermissionPattern = "users:invite".parse().unwrap();
        assert!(any.matches(&perm("document:read")));
        assert!(any.matches(&Permission::All));
        assert!(users.matches(&perm("users:admin")));
        assert!(!users.matches(&perm("document:read")));
        assert!(!users.matches(&Permission::All));
        assert!(invite.matches(&perm("users:invite")));
        assert!(!invite.matches(&perm("users:admin")));
    }

    #[test]
    fn diagnostics_display_and_line_numbers() {
        let mut out = Diagnostics::new("s.toml", "a\nb\n\nc");
        assert_eq!(out.line(0), 1);
        assert_eq!(out.line(2), 2);
        assert_eq!(out.line(5), 4);
        out.push(4, "roles.x", "second");
        out.push(2, "roles.y", "first");
        let err = out.finish();
        assert_eq!(
            err.to_string(),
            "invalid schema: 2 errors\ns.toml:2: roles.y: first\ns.toml:4: roles.x: second"
        );
    }

    #[test]
    fn key_paths_quote_non_bare_keys() {
        assert_eq!(key_path("", "roles"), "roles");
        assert_eq!(key_path("roles", "oe_editor"), "roles.oe_editor");
        assert_eq!(
            key_path("permissions", "forms:create"),
            "permissions.\"forms:create\""
        );
    }

    #[test]
    fn suggestions_catch_small_typos_only() {
        let mut budget = SUGGESTION_BUDGET;
        assert_eq!(
            did_you_mean("levles", ["levels", "actions"], &mut budget),
            "; did you mean \"levels\"?"
        );
        assert_eq!(did_you_mean("zzz", ["levels", "actions"], &mut budget), "");
    }

    #[test]
    fn suggestions_stop_when_the_budget_is_spent() {
        let mut budget = 100;
        let long = "x".repeat(50);
        assert_eq!(did_you_mean(&long, [long.as_str()], &mut budget), "");
        assert_eq!(budget, 0);
        assert_eq!(did_you_mean("levles", ["levels"], &mut budget), "");
    }

    #[test]
    fn diagnostics_keep_the_earliest_and_count_the_rest() {
        let mut out = Diagnostics::new("s.toml", "");
        for line in (1..=1000).rev() {
            out.push(line, "k", "m");
        }
        out.push(7, &"k".repeat(10_000), "é".repeat(10_000));
        let SchemaError::Invalid {
            diagnostics,
            omitted,
        } = out.finish()
        else {
            panic!("not invalid");
        };
        assert_eq!(diagnostics.len(), MAX_SCHEMA_ERRORS);
        assert_eq!(omitted, 1001 - MAX_SCHEMA_ERRORS);
        let lines: Vec<usize> = diagnostics.iter().map(|d| d.line).collect();
        let mut expected: Vec<usize> = (1..MAX_SCHEMA_ERRORS).collect();
        expected.insert(7, 7);
        assert_eq!(lines, expected);
        let long = &diagnostics[7];
        assert!(
            long.key.len() < MAX_DIAGNOSTIC_TEXT + 32,
            "{}",
            long.key.len()
        );
        assert!(
            long.message.ends_with("… (20000 bytes)"),
            "{}",
            long.message
        );
        let text = SchemaError::Invalid {
            diagnostics,
            omitted,
        }
        .to_string();
        assert!(text.starts_with("invalid schema: 1001 errors\n"), "{text}");
        assert!(
            text.ends_with(&format!("\n… and {omitted} more errors")),
            "{text}"
        );
    }
}
