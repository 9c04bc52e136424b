//! Hostile input, in process. Schemas: shapes that made validation or
//! compilation super-linear (knots of prerequisites, long ladders and
//! `follows` chains, tangles of derived permissions, files full of unknown
//! names) at sizes where the old algorithms took gigabytes or minutes, and
//! proptest-generated variants of them. Conditions: generated expressions,
//! well and ill typed, shallow and deep, cheap and costly, and random text.
//! Each must be answered — accepted or refused — without a panic and with a
//! refusal of bounded size; an accepted condition evaluates. No test times
//! anything: an algorithm that were super-linear again would make this file
//! run for hours, not fail. `AUTHZD_FUZZ_CASES` sets the number of generated
//! cases (CI's fuzz step runs many more than `cargo test`).

use authzd_core::limits::{
    MAX_CONDITION_LEN, MAX_DIAGNOSTIC_TEXT, MAX_SCHEMA_BYTES, MAX_SCHEMA_ERRORS,
};
use authzd_testkit as common;
use common::requiring_roles;

use std::fmt::Write as _;

use authzd_core::engine::Condition;
use authzd_core::model::{Subject, SubjectKind, SubjectStatus};
use authzd_core::schema::{Catalog, SchemaError, load};
use proptest::prelude::*;

/// The most a refusal's text can be: a header, [`MAX_SCHEMA_ERRORS`] lines
/// of file, line, key and message, and the "and N more" line.
const MAX_REFUSAL_BYTES: usize = 64 + MAX_SCHEMA_ERRORS * (2 * MAX_DIAGNOSTIC_TEXT + 128) + 64;

/// Loads `text`, asserting that a refusal is bounded; returns the catalog or
/// the rendered refusal.
fn answer(text: &str) -> Result<Catalog, String> {
    match load("hostile.toml", text) {
        Ok(catalog) => Ok(catalog),
        Err(e @ SchemaError::Invalid { .. }) => {
            let rendered = e.to_string();
            assert!(
                rendered.len() <= MAX_REFUSAL_BYTES,
                "refusal of {} bytes",
                rendered.len()
            );
            assert!(rendered.lines().count() <= MAX_SCHEMA_ERRORS + 2);
            Err(rendered)
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Loads `text`, asserting it is refused with a refusal containing every
/// one of `fragments`; returns the refusal.
fn refused(text: &str, fragments: &[&str]) -> String {
    assert!(text.len() <= MAX_SCHEMA_BYTES);
    let refusal = answer(text).unwrap_err();
    for fragment in fragments {
        assert!(
            refusal.contains(fragment),
            "{fragment:?} missing from {refusal}"
        );
    }
    refusal
}

/// 1,000 roles that each require a permission only they grant: a thousand
/// knots of one, reported as "and N more errors", not one line each.
#[test]
fn a_thousand_self_prerequisites_are_counted_not_listed() {
    let more = format!("\n… and {} more errors", 1000 - MAX_SCHEMA_ERRORS);
    let refusal = refused(
        &requiring_roles(1000, &[0]),
        &[
            "invalid schema: 1000 errors\n",
            "circular prerequisites: r0 -> r0 (it requires a permission only it grants",
            &more,
        ],
    );
    assert!(refusal.ends_with(&more), "{refusal}");
}

/// 1,000 roles in one ring of mutual prerequisites, and a second ring
/// through every role to ten roles on: one knot, one compact line.
#[test]
fn a_ring_of_a_thousand_roles_is_one_compact_line() {
    let refusal = refused(
        &requiring_roles(1000, &[1, 10]),
        &[
            "invalid schema: 1 error\n",
            "circular prerequisites: r0 -> r1",
            "more)",
            "more roles depend on these in circles",
        ],
    );
    assert!(refusal.len() < 1024, "{refusal}");
}

/// 300 roles each requiring every other role's permission (90,000 edges):
/// the schema whose refusal used to be 50 MB.
#[test]
fn three_hundred_roles_requiring_each_other_are_one_line() {
    let steps: Vec<usize> = (1..300).collect();
    refused(
        &requiring_roles(300, &steps),
        &[
            "invalid schema: 1 error\n",
            "circular prerequisites: r0 -> r1 -> r0",
        ],
    );
}

/// Roles whose prerequisites another role meets are accepted, however long
/// the chain of them: qualification spreads in one pass.
#[test]
fn a_long_chain_of_prerequisites_that_can_be_met_is_accepted() {
    let mut text = String::from("[resources.p]\nactions = [");
    for i in 0..3000 {
        write!(text, "\"a{i}\", ").unwrap();
    }
    text.push_str("]\n[roles.r0]\ngrants = [\"p:a0\"]\n");
    for i in 1..3000 {
        write!(
            text,
            "[roles.r{i}]\ngrants = [\"p:a{i}\"]\nrequires = [\"p:a{}\"]\n",
            i - 1
        )
        .unwrap();
    }
    let catalog = answer(&text).unwrap();
    assert_eq!(catalog.roles().len(), 3000);
}

/// A ladder of 4,096 levels (about 40 KB): every level's closure is every
/// level below it, built without 8 million stored implications, and an
/// explanation from the top to the bottom is one ladder step.
#[test]
fn the_longest_ladder_compiles_and_explains() {
    let levels: Vec<String> = (0..4096).map(|i| format!("\"l{i}\"")).collect();
    let text = format!(
        "[resources.a]\nlevels = [{}]\n[roles.top]\ngrants = [\"a:l4095\"]\n",
        levels.join(", ")
    );
    let catalog = answer(&text).unwrap();
    let top = catalog.lookup("a:l4095").unwrap();
    let bottom = catalog.lookup("a:l0").unwrap();
    assert_eq!(catalog.closure(top).len(), 4096);
    assert_eq!(
        catalog.implication(top, bottom).as_deref(),
        Some("a:l4095 implies a:l0 (ladder)")
    );
}

/// 2,000 types each following the one before: closures along the chain
/// are built once each.
#[test]
fn a_long_follows_chain_compiles() {
    let mut text = String::new();
    for i in 0..2000 {
        write!(text, "[resources.t{i}]\nlevels = [\"read\", \"edit\"]\n").unwrap();
        if i > 0 {
            writeln!(text, "follows = [\"t{}\"]", i - 1).unwrap();
        }
    }
    let catalog = answer(&text).unwrap();
    let first = catalog.lookup("t0:edit").unwrap();
    assert_eq!(catalog.closure(first).len(), 4000);
    let text = catalog
        .implication(first, catalog.lookup("t5:read").unwrap())
        .unwrap();
    assert!(
        text.starts_with("t0:edit implies t0:read (ladder)"),
        "{text}"
    );
}

/// Derived permissions that each use every other one: a single knot,
/// reported once.
#[test]
fn a_tangle_of_derived_permissions_is_one_line() {
    let n = 300;
    let mut text = String::from("[resources.d]\nactions = [\"base\"]\n");
    for i in 0..n {
        write!(text, "[permissions.\"d:x{i}\"]\nany_of = [").unwrap();
        for j in (0..n).filter(|&j| j != i) {
            write!(text, "\"d:x{j}\", ").unwrap();
        }
        text.push_str("]\n");
    }
    refused(
        &text,
        &[
            "invalid schema: 1 error\n",
            "derived permission cycle: d:x0 -> ",
        ],
    );
}

/// A file of close to 1 MiB naming unknown permissions of thousands of
/// declared types: suggestions stop at their budget, errors at their cap.
#[test]
fn a_file_full_of_unknown_names_is_refused_briefly() {
    let mut text = String::new();
    for i in 0..3000 {
        write!(text, "[resources.type{i:05}]\nactions = [\"go\"]\n").unwrap();
    }
    text.push_str("[roles.r]\ngrants = [");
    while text.len() < MAX_SCHEMA_BYTES - 64 {
        text.push_str("\"tpye00001:go\", \"type00001:og\", ");
    }
    text.push_str("]\n");
    refused(&text, &["more errors", "did you mean"]);
}

/// Keys and values far longer than any name are quoted cut short.
#[test]
fn a_huge_key_is_not_echoed() {
    let key = "k".repeat(500_000);
    let text = format!("[roles.\"{key}\"]\ngrants = []\n");
    let refusal = refused(&text, &["invalid role id"]);
    assert!(refusal.len() < 4 * MAX_DIAGNOSTIC_TEXT, "{}", refusal.len());
}

/// One generated schema: a type of `actions` actions and one ladder of
/// `levels` levels; roles granting and requiring some of them; derived
/// permissions over them and each other; types following each other.
#[derive(Debug, Clone)]
struct Shape {
    actions: usize,
    levels: usize,
    roles: Vec<(Vec<usize>, Vec<usize>)>,
    derived: Vec<Vec<usize>>,
    follows: Vec<(usize, usize)>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..60, 1usize..60).prop_flat_map(|(actions, levels)| {
        let verb = 0..actions + levels + 8;
        (
            Just(actions),
            Just(levels),
            proptest::collection::vec(
                (
                    proptest::collection::vec(verb.clone(), 0..6),
                    proptest::collection::vec(verb.clone(), 0..6),
                ),
                0..200,
            ),
            proptest::collection::vec(proptest::collection::vec(verb, 0..5), 0..8),
            proptest::collection::vec((0usize..6, 0usize..6), 0..10),
        )
            .prop_map(|(actions, levels, roles, derived, follows)| Shape {
                actions,
                levels,
                roles,
                derived,
                follows,
            })
    })
}

/// Verb `v` of a shape: an action, a level, a derived permission, or (past
/// those) an unknown name.
fn verb(s: &Shape, v: usize) -> String {
    if v < s.actions {
        format!("p:a{v}")
    } else if v < s.actions + s.levels {
        format!("l:v{}", v - s.actions)
    } else if v - s.actions - s.levels < s.derived.len() {
        format!("p:d{}", v - s.actions - s.levels)
    } else {
        format!("p:unknown{v}")
    }
}

fn render(s: &Shape) -> String {
    let mut text = String::from("[resources.p]\nactions = [");
    for i in 0..s.actions {
        write!(text, "\"a{i}\", ").unwrap();
    }
    text.push_str("]\n[resources.l]\nlevels = [");
    for i in 0..s.levels {
        write!(text, "\"v{i}\", ").unwrap();
    }
    text.push_str("]\n");
    for t in 0..6 {
        write!(text, "[resources.f{t}]\nlevels = [\"read\"]\n").unwrap();
        let leaders: Vec<String> = s
            .follows
            .iter()
            .filter(|(from, _)| *from == t)
            .map(|(_, to)| format!("\"f{to}\""))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !leaders.is_empty() {
            writeln!(text, "follows = [{}]", leaders.join(", ")).unwrap();
        }
    }
    for (i, terms) in s.derived.iter().enumerate() {
        let terms: Vec<String> = terms
            .iter()
            .map(|v| format!("\"{}\"", verb(s, *v)))
            .collect();
        writeln!(
            text,
            "[permissions.\"p:d{i}\"]\nany_of = [{}]",
            terms.join(", ")
        )
        .unwrap();
    }
    for (i, (grants, requires)) in s.roles.iter().enumerate() {
        let list = |vs: &[usize]| {
            vs.iter()
                .map(|v| format!("\"{}\"", verb(s, *v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            text,
            "[roles.r{i}]\ngrants = [{}]\nrequires = [{}]",
            list(grants),
            list(requires)
        )
        .unwrap();
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::fuzz_cases(64), ..ProptestConfig::default() })]

    /// Any generated schema is accepted or refused, never a panic, and a
    /// refusal stays within its size bound.
    #[test]
    fn generated_schemas_are_answered_within_bounds(s in shape()) {
        let _ = answer(&render(&s));
    }

    /// Prerequisite rings of any size and stride are refused with one
    /// line per knot, each within its size bound.
    #[test]
    fn generated_prerequisite_knots_are_refused_compactly(
        n in 1usize..1500,
        steps in proptest::collection::vec(0usize..1500, 1..4),
    ) {
        let text = requiring_roles(n, &steps);
        prop_assume!(text.len() < MAX_SCHEMA_BYTES);
        refused(&text, &["circular prerequisites"]);
    }

    /// Any generated condition is accepted or refused, never a panic; a
    /// refusal's message is bounded by its input; an accepted one
    /// evaluates for subjects with and without the attributes it reads.
    #[test]
    fn generated_conditions_are_answered_within_bounds(text in condition()) {
        prop_assume!(text.len() <= MAX_CONDITION_LEN);
        judge(&text);
    }

    /// Generated boolean conditions (mostly well typed, some nesting
    /// comprehensions far past the budget) are answered the same way.
    #[test]
    fn generated_boolean_conditions_are_answered_within_bounds(text in boolean()) {
        prop_assume!(text.len() <= MAX_CONDITION_LEN);
        judge(&text);
    }

    /// Random text is refused or accepted the same way.
    #[test]
    fn random_text_is_answered_within_bounds(text in "[a-z\\[\\](){}.,:?!&|=<>+*\" 0-9]{0,300}") {
        judge(&text);
    }
}

/// Compiles `text`, checks the refusal's size or evaluates the condition.
fn judge(text: &str) {
    match Condition::parse(text) {
        Ok(c) => {
            for attributes in [&[][..], &[("dept", "a"), ("level", "3")][..]] {
                let _ = c.matches(&Subject {
                    id: "s".parse().unwrap(),
                    kind: SubjectKind::User,
                    status: SubjectStatus::Active,
                    attributes: attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    home_scope: None,
                });
            }
        }
        Err(e) => assert!(
            e.message.len() <= 2 * MAX_CONDITION_LEN + 256,
            "{}",
            e.message
        ),
    }
}

/// CEL text from a small grammar over the condition's variables, list
/// literals of up to 30 elements, comprehensions (nested as deep as the
/// recursion goes), operators, known and unknown functions and variables.
fn condition() -> impl Strategy<Value = String> {
    let list = (0usize..30, any::<bool>()).prop_map(|(n, strings)| {
        let items: Vec<String> = (0..n)
            .map(|i| {
                if strings {
                    format!("\"{i}\"")
                } else {
                    i.to_string()
                }
            })
            .collect();
        format!("[{}]", items.join(", "))
    });
    let leaf = prop_oneof![
        Just("attributes.dept".to_owned()),
        Just("attributes[\"level\"]".to_owned()),
        Just("attributes".to_owned()),
        Just("id".to_owned()),
        Just("kind".to_owned()),
        Just("status".to_owned()),
        Just("\"a\"".to_owned()),
        Just("1".to_owned()),
        Just("2u".to_owned()),
        Just("1.5".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("v".to_owned()),
        Just("nobody".to_owned()),
        list.clone(),
    ];
    leaf.prop_recursive(8, 96, 3, move |inner| {
        let pair = (inner.clone(), inner.clone());
        prop_oneof![
            pair.clone().prop_map(|(a, b)| format!("({a} == {b})")),
            pair.clone().prop_map(|(a, b)| format!("({a} && {b})")),
            pair.clone().prop_map(|(a, b)| format!("({a} || {b})")),
            pair.clone().prop_map(|(a, b)| format!("({a} < {b})")),
            pair.clone().prop_map(|(a, b)| format!("({a} + {b})")),
            pair.clone().prop_map(|(a, b)| format!("({a} in {b})")),
            pair.clone()
                .prop_map(|(a, b)| format!("{a}.startsWith({b})")),
            pair.clone().prop_map(|(a, b)| format!("{a}[{b}]")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("({a} ? {b} : {c})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("size({a})")),
            inner.clone().prop_map(|a| format!("string({a})")),
            inner.clone().prop_map(|a| format!("lowerAscii({a})")),
            inner.clone().prop_map(|a| format!("has({a}.x)")),
            (list.clone(), inner.clone()).prop_map(|(l, a)| format!("{l}.all(v, {a})")),
            (list.clone(), inner.clone()).prop_map(|(l, a)| format!("{l}.exists(v, {a})")),
            (inner.clone(), inner.clone()).prop_map(|(l, a)| format!("{l}.exists_one(v, {a})")),
            (list.clone(), inner.clone()).prop_map(|(l, a)| format!("{l}.map(v, {a})")),
            (inner.clone(), inner).prop_map(|(l, a)| format!("{l}.filter(v, {a})")),
        ]
    })
}

/// Boolean CEL over the condition's variables: comparisons, membership,
/// string functions, and comprehensions over string lists of up to 30
/// elements whose bodies may nest further comprehensions.
fn boolean() -> impl Strategy<Value = String> {
    let list = (0usize..30).prop_map(|n| {
        let items: Vec<String> = (0..n).map(|i| format!("\"{i}\"")).collect();
        format!("[{}]", items.join(", "))
    });
    let leaf = prop_oneof![
        Just("attributes.dept == \"a\"".to_owned()),
        Just("id.startsWith(\"s\")".to_owned()),
        Just("size(attributes) > 1".to_owned()),
        Just("has(attributes.level)".to_owned()),
        Just("int(attributes.level) >= 3".to_owned()),
        Just("kind == \"user\" || status == \"locked\"".to_owned()),
        Just("v == attributes.dept".to_owned()),
        Just("true".to_owned()),
        list.clone().prop_map(|l| format!("attributes.dept in {l}")),
    ];
    leaf.prop_recursive(6, 64, 3, move |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("({a} ? {b} : {c})")),
            (list.clone(), inner.clone()).prop_map(|(l, a)| format!("{l}.all(v, {a})")),
            (list.clone(), inner.clone()).prop_map(|(l, a)| format!("{l}.exists(v, {a})")),
            (list.clone(), inner.clone())
                .prop_map(|(l, a)| format!("{l}.filter(v, {a}).size() > 0")),
            (list.clone(), inner).prop_map(|(l, a)| format!("{l}.map(v, {a}).exists(w, w)")),
        ]
    })
}
