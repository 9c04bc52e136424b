//! Stage one: TOML text → [`RawSchema`], records of plain strings, integers
//! and booleans that remember the line and dotted key of every value.
//!
//! This stage owns the *shape* of the file: TOML syntax, the size limit,
//! unknown keys and wrong value types. It must not judge what the values
//! mean (whether a name is valid, a permission exists, a graph is acyclic):
//! that is [`super::validate`]'s job, which needs the whole file at hand.
//!
//! A value of the wrong type is reported here and becomes [`Field::Invalid`]
//! rather than absent, so later stages can tell "not given" from "given but
//! unusable" and do not pile follow-up errors on top of the first.

use crate::limits::MAX_SCHEMA_BYTES;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::{DOCUMENT_KEY, Diagnostics, key_path};

/// Where a value was written.
#[derive(Clone, Debug)]
pub(crate) struct Position {
    /// 1-based line.
    pub line: usize,
    /// Dotted path of the key holding the value (for an array element, the
    /// key of the array).
    pub key: String,
}

/// A value and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Item<T> {
    pub value: T,
    pub at: Position,
}

/// An optional key of a table.
#[derive(Clone, Debug)]
pub(crate) enum Field<T> {
    /// Not written; the default applies.
    Absent,
    /// Written with the wrong type; already reported.
    Invalid,
    /// Written with the right type.
    Given(Item<T>),
}

impl<T> Field<T> {
    pub(crate) fn given(&self) -> Option<&Item<T>> {
        match self {
            Field::Given(item) => Some(item),
            Field::Absent | Field::Invalid => None,
        }
    }

    pub(crate) fn is_invalid(&self) -> bool {
        matches!(self, Field::Invalid)
    }
}

/// A list of strings, each element with its own line.
pub(crate) type Strings = Vec<Item<String>>;

/// The whole file, shape-checked. Entries are in key order (TOML tables are
/// unordered; sorting makes every later stage deterministic).
#[derive(Debug, Default)]
pub(crate) struct RawSchema {
    pub resources: Vec<RawResource>,
    pub permissions: Vec<RawDerived>,
    pub role_classes: Vec<RawClass>,
    pub roles: Vec<RawRole>,
    /// Set when a whole section was not a table (already reported): its
    /// names are unknown, so references to them cannot be judged.
    pub unreadable: Unreadable,
}

/// Which sections could not be read at all.
#[derive(Debug, Default)]
pub(crate) struct Unreadable {
    pub resources: bool,
    pub permissions: bool,
    pub role_classes: bool,
}

/// `[resources.<name>]`.
#[derive(Debug)]
pub(crate) struct RawResource {
    pub name: Item<String>,
    pub levels: Field<Strings>,
    pub actions: Field<Strings>,
    pub follows: Field<Strings>,
    pub inherit: Field<bool>,
}

/// `[permissions."<type>:<name>"]`.
#[derive(Debug)]
pub(crate) struct RawDerived {
    pub name: Item<String>,
    pub all_of: Field<Strings>,
    pub any_of: Field<Strings>,
}

/// `[role_classes.<name>]`.
#[derive(Debug)]
pub(crate) struct RawClass {
    pub name: Item<String>,
    pub per_subject: Field<String>,
    pub cannot_grant: Field<Strings>,
}

/// `[roles.<id>]`.
#[derive(Debug)]
pub(crate) struct RawRole {
    pub name: Item<String>,
    pub title: Field<String>,
    pub grants: Field<Strings>,
    pub class: Field<String>,
    pub rank: Field<i64>,
    pub requires: Field<Strings>,
    pub managed_by: Field<String>,
    pub grantable_by: Field<String>,
    pub self_removable: Field<bool>,
}

const TOP_KEYS: &[&str] = &["resources", "permissions", "role_classes", "roles"];
const RESOURCE_KEYS: &[&str] = &["levels", "actions", "follows", "inherit"];
const DERIVED_KEYS: &[&str] = &["all_of", "any_of"];
const CLASS_KEYS: &[&str] = &["per_subject", "cannot_grant"];
const ROLE_KEYS: &[&str] = &[
    "title",
    "grants",
    "class",
    "rank",
    "requires",
    "managed_by",
    "grantable_by",
    "self_removable",
];

/// Parses `text`, reporting into `out`. Returns `None` only when the text is
/// not TOML at all (or too large); shape errors are reported and the rest of
/// the file is still returned so that validation can report its own.
pub(crate) fn parse(text: &str, out: &mut Diagnostics) -> Option<RawSchema> {
    if text.len() > MAX_SCHEMA_BYTES {
        out.push(
            1,
            DOCUMENT_KEY,
            format!("schema is larger than {MAX_SCHEMA_BYTES} bytes, the limit; split or trim it"),
        );
        return None;
    }
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        // Only the first: after a syntax error the parser's recovery guesses,
        // and the errors it reports next are mostly echoes of the first.
        Err(error) => {
            let line = error.span().map_or(1, |span| out.line(span.start));
            let key = enclosing_table(text, line);
            out.push(
                line,
                &key,
                format!("invalid toml: {}", lowercase_first(error.message())),
            );
            return None;
        }
    };

    let mut walker = Walker { out };
    let mut raw = RawSchema::default();
    let root = document.get_ref();
    for (key, value) in root.iter() {
        let path = key_path("", key.get_ref());
        match key.get_ref().as_ref() {
            "resources" => {
                let Some(entries) = walker.section(&path, value) else {
                    raw.unreadable.resources = true;
                    continue;
                };
                for (name, table) in entries {
                    raw.resources.push(walker.resource(name, table));
                }
            }
            "permissions" => {
                let Some(entries) = walker.section(&path, value) else {
                    raw.unreadable.permissions = true;
                    continue;
                };
                for (name, table) in entries {
                    raw.permissions.push(walker.derived(name, table));
                }
            }
            "role_classes" => {
                let Some(entries) = walker.section(&path, value) else {
                    raw.unreadable.role_classes = true;
                    continue;
                };
                for (name, table) in entries {
                    raw.role_classes.push(walker.class(name, table));
                }
            }
            "roles" => {
                let Some(entries) = walker.section(&path, value) else {
                    continue;
                };
                for (name, table) in entries {
                    raw.roles.push(walker.role(name, table));
                }
            }
            _ => walker.unknown_key(&path, key, TOP_KEYS),
        }
    }
    Some(raw)
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The header of the table that line `line` belongs to, for syntax errors,
/// which the TOML parser reports without a key. A line-based guess: a header
/// is a line starting with `[`; multi-line strings that look like headers
/// could mislead it, which costs only a less precise key.
fn enclosing_table(text: &str, line: usize) -> String {
    text.lines()
        .take(line)
        .filter_map(|l| {
            let l = l.trim();
            let inner = l.strip_prefix('[')?;
            let inner = inner.strip_prefix('[').unwrap_or(inner);
            let end = inner.find(']')?;
            inner.get(..end).map(|h| h.trim().to_owned())
        })
        .last()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DOCUMENT_KEY.to_owned())
}

type Key<'i> = Spanned<DeString<'i>>;
type Value<'i> = Spanned<DeValue<'i>>;

/// Walks the parsed document, reporting shape errors as it goes.
struct Walker<'o> {
    out: &'o mut Diagnostics,
}

impl Walker<'_> {
    fn at(&self, span_start: usize, key: &str) -> Position {
        Position {
            line: self.out.line(span_start),
            key: key.to_owned(),
        }
    }

    fn unknown_key(&mut self, path: &str, key: &Key<'_>, expected: &[&str]) {
        let hint = self.out.suggest(key.get_ref(), expected.iter().copied());
        let message = if hint.is_empty() {
            format!("unknown key; expected one of {}", expected.join(", "))
        } else {
            format!("unknown key{hint}")
        };
        let line = self.out.line(key.span().start);
        self.out.push(line, path, message);
    }

    fn wrong_type(&mut self, path: &str, value: &Value<'_>, expected: &str) {
        let line = self.out.line(value.span().start);
        self.out.push(
            line,
            path,
            format!(
                "expected {expected}, found {}",
                article(value.get_ref().type_str())
            ),
        );
    }

    /// The entries of a top-level section, or `None` if the section is not a
    /// table. An entry that is not a table comes with `None` (reported; the
    /// entry still counts as declared, so references to it do not cascade
    /// into more errors).
    fn section<'t, 'i>(
        &mut self,
        path: &str,
        value: &'t Value<'i>,
    ) -> Option<Vec<(Item<String>, Option<&'t DeTable<'i>>)>> {
        let Some(table) = value.get_ref().as_table() else {
            self.wrong_type(path, value, "a table");
            return None;
        };
        let entries = table
            .iter()
            .map(|(name, entry)| {
                let entry_path = key_path(path, name.get_ref());
                let item = Item {
                    value: name.get_ref().to_string(),
                    at: self.at(name.span().start, &entry_path),
                };
                let table = entry.get_ref().as_table();
                if table.is_none() {
                    self.wrong_type(&entry_path, entry, "a table");
                }
                (item, table)
            })
            .collect();
        Some(entries)
    }

    /// Reports every key of `table` outside `allowed`.
    fn check_keys(&mut self, path: &str, table: Option<&DeTable<'_>>, allowed: &[&str]) {
        for (key, _) in table.into_iter().flat_map(|t| t.iter()) {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let key_path = key_path(path, key.get_ref());
                self.unknown_key(&key_path, key, allowed);
            }
        }
    }

    /// Looks up `name` in `table` and converts it; `convert` reports why a
    /// value is unusable and answers `None`.
    fn field<'t, 'i, T>(
        &mut self,
        table: Option<&'t DeTable<'i>>,
        parent: &str,
        name: &str,
        convert: impl FnOnce(&mut Self, &str, &'t Value<'i>) -> Option<T>,
    ) -> Field<T> {
        let Some(table) = table else {
            return Field::Invalid;
        };
        let Some((key, value)) = table.get_key_value(name) else {
            return Field::Absent;
        };
        let path = key_path(parent, name);
        match convert(self, &path, value) {
            Some(converted) => Field::Given(Item {
                value: converted,
                at: self.at(key.span().start, &path),
            }),
            None => Field::Invalid,
        }
    }

    fn string(&mut self, table: Option<&DeTable<'_>>, parent: &str, name: &str) -> Field<String> {
        self.field(table, parent, name, |walker, path, value| {
            let s = value.get_ref().as_str().map(str::to_owned);
            if s.is_none() {
                walker.wrong_type(path, value, "a string");
            }
            s
        })
    }

    fn boolean(&mut self, table: Option<&DeTable<'_>>, parent: &str, name: &str) -> Field<bool> {
        self.field(table, parent, name, |walker, path, value| {
            let b = value.get_ref().as_bool();
            if b.is_none() {
                walker.wrong_type(path, value, "a boolean");
            }
            b
        })
    }

    fn integer(&mut self, table: Option<&DeTable<'_>>, parent: &str, name: &str) -> Field<i64> {
        self.field(table, parent, name, |walker, path, value| {
            let Some(integer) = value.get_ref().as_integer() else {
                walker.wrong_type(path, value, "an integer");
                return None;
            };
            let parsed = i64::from_str_radix(integer.as_str(), integer.radix()).ok();
            if parsed.is_none() {
                let line = walker.out.line(value.span().start);
                walker
                    .out
                    .push(line, path, "integer does not fit in 64 bits");
            }
            parsed
        })
    }

    /// An array of strings; every element of the wrong type is reported at
    /// its own line, and the field is then invalid as a whole.
    fn strings(&mut self, table: Option<&DeTable<'_>>, parent: &str, name: &str) -> Field<Strings> {
        self.field(table, parent, name, |walker, path, value| {
            let Some(array) = value.get_ref().as_array() else {
                walker.wrong_type(path, value, "an array of strings");
                return None;
            };
            let mut items = Vec::with_capacity(array.len());
            let mut wrong_elements = false;
            for element in array.iter() {
                match element.get_ref().as_str() {
                    Some(s) => items.push(Item {
                        value: s.to_owned(),
                        at: walker.at(element.span().start, path),
                    }),
                    None => {
                        walker.wrong_type(path, element, "a string");
                        wrong_elements = true;
                    }
                }
            }
            (!wrong_elements).then_some(items)
        })
    }

    fn resource(&mut self, name: Item<String>, table: Option<&DeTable<'_>>) -> RawResource {
        let path = name.at.key.clone();
        self.check_keys(&path, table, RESOURCE_KEYS);
        RawResource {
            levels: self.strings(table, &path, "levels"),
            actions: self.strings(table, &path, "actions"),
            follows: self.strings(table, &path, "follows"),
            inherit: self.boolean(table, &path, "inherit"),
            name,
        }
    }

    fn derived(&mut self, name: Item<String>, table: Option<&DeTable<'_>>) -> RawDerived {
        let path = name.at.key.clone();
        self.check_keys(&path, table, DERIVED_KEYS);
        RawDerived {
            all_of: self.strings(table, &path, "all_of"),
            any_of: self.strings(table, &path, "any_of"),
            name,
        }
    }

    fn class(&mut self, name: Item<String>, table: Option<&DeTable<'_>>) -> RawClass {
        let path = name.at.key.clone();
        self.check_keys(&path, table, CLASS_KEYS);
        RawClass {
            per_subject: self.string(table, &path, "per_subject"),
            cannot_grant: self.strings(table, &path, "cannot_grant"),
            name,
        }
    }

    fn role(&mut self, name: Item<String>, table: Option<&DeTable<'_>>) -> RawRole {
        let path = name.at.key.clone();
        self.check_keys(&path, table, ROLE_KEYS);
        RawRole {
            title: self.string(table, &path, "title"),
            grants: self.strings(table, &path, "grants"),
            class: self.string(table, &path, "class"),
            rank: self.integer(table, &path, "rank"),
            requires: self.strings(table, &path, "requires"),
            managed_by: self.string(table, &path, "managed_by"),
            grantable_by: self.string(table, &path, "grantable_by"),
            self_removable: self.boolean(table, &path, "self_removable"),
            name,
        }
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "array" | "integer" => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<RawSchema>, Vec<super::super::Diagnostic>) {
        let mut out = Diagnostics::new("t.toml", text);
        let raw = parse(text, &mut out);
        match out.finish() {
            super::super::SchemaError::Invalid { diagnostics, .. } => (raw, diagnostics),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn values_keep_their_lines() {
        let (raw, diags) = run(
            "[resources.doc]\nlevels = [\n  \"read\",\n  \"edit\",\n]\n\n[roles.r]\nrank = 0x10\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let raw = raw.unwrap();
        let doc = &raw.resources[0];
        assert_eq!(doc.name.at.line, 1);
        assert_eq!(doc.name.at.key, "resources.doc");
        let levels = doc.levels.given().unwrap();
        assert_eq!(levels.at.line, 2);
        assert_eq!(levels.at.key, "resources.doc.levels");
        let lines: Vec<_> = levels.value.iter().map(|i| i.at.line).collect();
        assert_eq!(lines, vec![3, 4]);
        assert_eq!(raw.roles[0].rank.given().unwrap().value, 16);
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_all_reported() {
        let (raw, diags) = run(
            "colour = 1\n[resources.doc]\nlevels = \"read\"\nlevles = []\n[roles.r]\nrank = \"x\"\ngrants = [\"a:b\", 3]\n",
        );
        assert!(raw.is_some());
        let keys: Vec<_> = diags.iter().map(|d| (d.line, d.key.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                (1, "colour"),
                (3, "resources.doc.levels"),
                (4, "resources.doc.levles"),
                (6, "roles.r.rank"),
                (7, "roles.r.grants"),
            ]
        );
        assert!(diags[2].message.contains("did you mean \"levels\""));
        assert!(raw.unwrap().roles[0].grants.is_invalid());
    }

    #[test]
    fn syntax_errors_name_line_and_table() {
        let (raw, diags) = run("[resources.doc]\nlevels = [\"read\"\n\n[roles.x]\n");
        assert!(raw.is_none());
        assert!(!diags.is_empty());
        assert!(diags[0].message.starts_with("invalid toml"));
    }
}
