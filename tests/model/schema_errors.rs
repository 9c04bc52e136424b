//! Schema files with mistakes, one fixture per kind of error under
//! `tests/fixtures/schema/`: each must be refused with a diagnostic naming
//! the file, the line and the dotted key, and nothing else (no cascades).

use authzd_core::limits::{MAX_PERMISSIONS, MAX_SCHEMA_BYTES};
use std::path::PathBuf;

use authzd_core::schema::{DEFAULT_SCHEMA, Diagnostic, SchemaError, load, load_file};

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schema")
        .join(format!("{case}.toml"))
}

/// Loads a fixture that must be refused; returns the rendered error and the
/// diagnostics.
fn refused(case: &str) -> (String, Vec<Diagnostic>) {
    match load_file(&fixture(case)) {
        Err(e @ SchemaError::Invalid { .. }) => {
            let text = e.to_string();
            let SchemaError::Invalid { diagnostics, .. } = e else {
                unreachable!()
            };
            (text, diagnostics)
        }
        Err(e) => panic!("{case}: unexpected error {e}"),
        Ok(_) => panic!("{case}: accepted"),
    }
}

/// Asserts the fixture yields exactly one diagnostic, at `line` and `key`,
/// whose message contains `fragment`, and that the rendered error names the
/// file, line and key.
fn assert_single(case: &str, line: usize, key: &str, fragment: &str) {
    let (text, diagnostics) = refused(case);
    assert_eq!(diagnostics.len(), 1, "{case}: {text}");
    let d = &diagnostics[0];
    assert_eq!((d.line, d.key.as_str()), (line, key), "{case}: {text}");
    assert!(d.message.contains(fragment), "{case}: {text}");
    assert!(d.file.ends_with(&format!("{case}.toml")), "{case}: {text}");
    assert!(
        text.contains(&format!("{case}.toml:{line}: {key}: ")),
        "{case}: {text}"
    );
    assert!(text.starts_with("invalid schema: 1 error\n"), "{text}");
}

/// A misspelt key inside a table is rejected, with a suggestion.
#[test]
fn unknown_key() {
    assert_single(
        "unknown_key",
        4,
        "resources.document.inherits",
        "unknown key; did you mean \"inherit\"?",
    );
}

/// A misspelt top-level section is rejected at its header.
#[test]
fn unknown_top_level_key() {
    assert_single("unknown_top_level_key", 5, "resource", "unknown key");
}

/// A value of the wrong type names the expected and found types.
#[test]
fn wrong_value_type() {
    assert_single(
        "wrong_value_type",
        6,
        "roles.viewer.rank",
        "expected an integer, found a string",
    );
}

/// A role granting an undeclared permission is reported at the element's
/// own line inside a multi-line array.
#[test]
fn unknown_permission_in_grant() {
    assert_single(
        "unknown_grant",
        8,
        "roles.editor.grants",
        "unknown permission \"document:wrte\"",
    );
}

/// Two types following each other form a cycle, named in full.
#[test]
fn follows_cycle() {
    assert_single(
        "follows_cycle",
        3,
        "resources.price.follows",
        "follows cycle: price -> product -> price",
    );
}

/// Derived permissions that depend on each other form a cycle, named in full.
#[test]
fn derived_cycle() {
    assert_single(
        "derived_cycle",
        5,
        "permissions.\"forms:a\".all_of",
        "derived permission cycle: forms:a -> forms:b -> forms:a",
    );
}

/// Roles whose prerequisites can only be met through each other are refused:
/// writer needs audit:sign (only auditor grants it), auditor needs docs:read
/// (only writer grants it, through its ladder).
#[test]
fn requires_cycle() {
    assert_single(
        "requires_cycle",
        13,
        "roles.auditor.requires",
        "circular prerequisites: auditor -> writer -> auditor",
    );
}

/// A type may not have both a ladder and actions.
#[test]
fn both_levels_and_actions() {
    assert_single(
        "levels_and_actions",
        4,
        "resources.submissions",
        "both levels and actions",
    );
}

/// A type must have a ladder or actions.
#[test]
fn neither_levels_nor_actions() {
    assert_single(
        "neither_levels_nor_actions",
        4,
        "resources.submissions",
        "neither levels nor actions",
    );
}

/// `follows` must name a declared type; a close name is suggested.
#[test]
fn unknown_follows_target() {
    assert_single(
        "unknown_follows_target",
        6,
        "resources.price.follows",
        "unknown resource type \"prodcut\"; did you mean \"product\"?",
    );
}

/// A follower must define every verb of the type it follows.
#[test]
fn follower_missing_a_verb() {
    assert_single(
        "follower_missing_verb",
        6,
        "resources.price.follows",
        "it lacks \"manage\"",
    );
}

/// A verb may appear only once in a ladder.
#[test]
fn duplicate_verb() {
    assert_single(
        "duplicate_verb",
        2,
        "resources.document.levels",
        "level \"read\" is listed twice",
    );
}

/// Verbs must be valid names.
#[test]
fn invalid_verb_name() {
    assert_single(
        "invalid_verb_name",
        2,
        "resources.document.actions",
        "invalid action name",
    );
}

/// A derived permission may not reuse a verb of its type.
#[test]
fn derived_name_clashes_with_a_verb() {
    assert_single(
        "derived_name_clash",
        4,
        "permissions.\"document:edit\"",
        "\"edit\" is already a level of \"document\"",
    );
}

/// A derived permission must be named under a declared type.
#[test]
fn derived_permission_of_unknown_type() {
    assert_single(
        "derived_unknown_type",
        4,
        "permissions.\"report:publish\"",
        "unknown resource type \"report\"",
    );
}

/// A derived permission has exactly one of all_of and any_of.
#[test]
fn derived_permission_with_both_rules() {
    assert_single(
        "derived_both_rules",
        4,
        "permissions.\"document:publish\"",
        "both all_of and any_of",
    );
}

/// A derived permission's rule needs at least one term.
#[test]
fn derived_permission_with_empty_rule() {
    assert_single(
        "derived_empty_rule",
        5,
        "permissions.\"document:publish\".any_of",
        "at least one term",
    );
}

/// `per_subject` accepts only its three spellings.
#[test]
fn bad_per_subject() {
    assert_single(
        "bad_per_subject",
        5,
        "role_classes.staff_category.per_subject",
        "unknown per_subject \"exactly-one\"",
    );
}

/// A `cannot_grant` pattern must name a declared type.
#[test]
fn cannot_grant_pattern_of_unknown_type() {
    assert_single(
        "bad_pattern",
        5,
        "role_classes.guest.cannot_grant",
        "unknown resource type \"reports\"",
    );
}

/// A role's class must be declared.
#[test]
fn unknown_class() {
    assert_single(
        "unknown_class",
        8,
        "roles.visitor.class",
        "unknown role class \"guests\"; did you mean \"guest\"?",
    );
}

/// `requires` names specific permissions, never `*`.
#[test]
fn star_in_requires() {
    assert_single(
        "star_in_requires",
        6,
        "roles.editor.requires",
        "\"*\" is not allowed here",
    );
}

/// `managed_by` must be a declared permission.
#[test]
fn unknown_managed_by() {
    assert_single(
        "unknown_managed_by",
        6,
        "roles.editor.managed_by",
        "unknown permission \"users:admin\"",
    );
}

/// Role ids must be valid `RoleId`s; the key is quoted as in TOML.
#[test]
fn invalid_role_id() {
    assert_single(
        "invalid_role_id",
        4,
        "roles.\"document viewer\"",
        "invalid role id",
    );
}

/// A TOML syntax error becomes one diagnostic with its line and the table
/// it is in.
#[test]
fn toml_syntax_error() {
    assert_single("syntax_error", 6, "roles.viewer", "invalid toml");
}

/// Every independent mistake of a file is reported in one run, in file order.
#[test]
fn several_errors_are_all_reported() {
    let (text, diagnostics) = refused("several_errors");
    let found: Vec<(usize, &str)> = diagnostics
        .iter()
        .map(|d| (d.line, d.key.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (2, "colour"),
            (9, "resources.comment.follows"),
            (13, "resources.submissions.inherit"),
            (16, "permissions.\"document:publish\".all_of"),
            (19, "role_classes.staff.per_subject"),
            (23, "roles.editor.class"),
        ],
        "{text}"
    );
    assert!(text.starts_with("invalid schema: 6 errors\n"), "{text}");
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(
        text.contains("did you mean \"submissions:approve\"?"),
        "{text}"
    );
}

/// The built-in default schema loads cleanly, and so does its file form.
#[test]
fn default_schema_loads() {
    let catalog = load("default.toml", DEFAULT_SCHEMA).unwrap();
    assert!(catalog.lookup("document:publish").is_some());
    assert_eq!(catalog.roles().len(), 6);
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/core/src/schema/default.toml");
    assert_eq!(load_file(&path).unwrap().source(), DEFAULT_SCHEMA);
}

/// A file that does not exist is a read error naming the path.
#[test]
fn missing_file_is_a_read_error() {
    let path = fixture("does_not_exist");
    match load_file(&path) {
        Err(e @ SchemaError::Read { .. }) => {
            assert!(e.to_string().contains("does_not_exist.toml"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

/// Text over the size limit is refused before parsing.
#[test]
fn oversized_schema_is_refused() {
    let text = format!("# {}\n", "x".repeat(MAX_SCHEMA_BYTES));
    let Err(SchemaError::Invalid { diagnostics: d, .. }) = load("big.toml", &text) else {
        panic!("accepted");
    };
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("larger than"), "{}", d[0]);
}

/// More than `MAX_PERMISSIONS` permissions are refused at the declaration
/// that crosses the limit; exactly the limit is accepted.
#[test]
fn permission_count_is_limited() {
    let verbs = |n: usize| {
        (0..n)
            .map(|i| format!("\"v{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at_limit = format!(
        "[resources.a]\nactions = [{}]\n\n[resources.b]\nactions = [{}]\n",
        verbs(MAX_PERMISSIONS - 1),
        verbs(1)
    );
    assert_eq!(load("ok.toml", &at_limit).unwrap().len(), MAX_PERMISSIONS);
    let over = format!("{at_limit}\n[permissions.\"b:extra\"]\nany_of = [\"b:v0\"]\n");
    let Err(SchemaError::Invalid { diagnostics: d, .. }) = load("over.toml", &over) else {
        panic!("accepted");
    };
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].line, d[0].key.as_str()),
        (7, "permissions.\"b:extra\"")
    );
    assert!(d[0].message.contains("the limit is 4096"), "{}", d[0]);
}
