//! What the crate boundaries cannot say by themselves.
//!
//! The seams of the workspace are crates, so the compiler refuses an import
//! that crosses one the wrong way. Two things remain for this file:
//!
//! - **The manifests keep the seams.** A dependency added to a crate's
//!   `Cargo.toml` would open a seam without any import failing; the
//!   workspace's manifests (`cargo metadata`) are checked against the map.
//! - **Layers inside one crate.** `authzd-core` holds `model → schema →
//!   engine`, and `authzd-service` holds the feed and the callers beside the
//!   sequencer; within a crate only greps can tell who imports whom.
//!
//! Comments are ignored, so a module may *say* what it must not know.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's root folder.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as (path relative to `dir`, code lines
/// with `//` comments removed).
fn sources(dir: &Path) -> Vec<(String, Vec<String>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "{} holds no source", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default().to_string())
                .collect();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, code)
        })
        .collect()
}

/// The crate's modules a file's code names through `crate::`.
fn crate_modules(code: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Asserts that the files of crate folder `krate` under `prefix` name no
/// module of their crate but `allowed` (and their own).
fn imports_only(krate: &str, prefix: &str, allowed: &[&str]) {
    let own = prefix.trim_end_matches('/').trim_end_matches(".rs");
    let mut checked = 0;
    for (path, code) in sources(&root().join(krate).join("src")) {
        if !path.starts_with(prefix) {
            continue;
        }
        checked += 1;
        let bad: Vec<String> = crate_modules(&code)
            .into_iter()
            .filter(|m| m != own && !allowed.contains(&m.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "{krate}/src/{path} imports {bad:?}; it may import only {allowed:?}"
        );
    }
    assert!(checked > 0, "no file under {krate}/src/{prefix}");
}

/// `model` imports nothing of `authzd-core` but the limits.
#[test]
fn model_depends_on_nothing_but_the_limits() {
    imports_only("crates/core", "model.rs", &["limits"]);
}

/// `schema` builds on `model` only.
#[test]
fn schema_depends_only_on_model() {
    imports_only("crates/core", "schema/", &["model", "limits"]);
}

/// `engine` builds on `model` and `schema`.
#[test]
fn engine_depends_on_model_and_schema() {
    imports_only("crates/core", "engine/", &["model", "schema", "limits"]);
}

/// The feed is handed its replay and never reads the store, the sequencer
/// or the callers; the token rules know the settings and nothing else of
/// the service.
#[test]
fn the_feed_and_the_callers_stand_apart_in_the_service() {
    imports_only("crates/service", "watch.rs", &[]);
    imports_only("crates/service", "watch/", &[]);
    imports_only("crates/service", "auth.rs", &["config"]);
}

/// Each workspace package's name and the names of its normal (not dev,
/// not build) dependencies, from `cargo metadata --no-deps`: the manifests
/// as written, read offline.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// Every package `name` depends on through normal dependencies: the
/// workspace's crates it reaches and their direct dependencies.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(next) = todo.pop() {
        for dep in graph.get(&next).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

/// The seams of the map, as the dependency graph holds them: the core runs
/// no async runtime, speaks no protobuf and opens no database; the store
/// contract names no backend and no wire; the service knows no protobuf;
/// only the redb backend depends on redb, only the PostgreSQL backend on
/// its driver; and the server builds without the
/// load generator and its histogram.
#[test]
fn the_manifests_keep_the_seams() {
    let graph = normal_dependencies();
    let forbidden: [(&str, &[&str]); 5] = [
        (
            "authzd-core",
            &["tokio", "tonic", "prost", "redb", "authzd-store"],
        ),
        (
            "authzd-store",
            &["tonic", "prost", "redb", "authzd-store-redb"],
        ),
        (
            "authzd-service",
            &["tonic", "prost", "authzd-proto", "authzd-server"],
        ),
        (
            "authzd-server",
            &["authzd-bench", "authzd-testkit", "hdrhistogram"],
        ),
        (
            "authzd",
            &["authzd-bench", "authzd-testkit", "hdrhistogram"],
        ),
    ];
    for (package, banned) in forbidden {
        assert!(graph.contains_key(package), "{package} is not in the build");
        let deps = closure(&graph, package);
        for name in banned {
            assert!(!deps.contains(*name), "{package} depends on {name}");
        }
    }
    let redb_users: Vec<&String> = graph
        .iter()
        .filter(|(_, deps)| deps.contains("redb"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(redb_users, ["authzd-store-redb"], "who depends on redb");
    let sql_users: Vec<&String> = graph
        .iter()
        .filter(|(_, deps)| deps.contains("tokio-postgres"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        sql_users,
        ["authzd-store-postgres"],
        "who depends on the PostgreSQL driver"
    );
    let store = closure(&graph, "authzd-store");
    assert!(
        !store.contains("authzd-store-postgres"),
        "the store contract names a backend"
    );
}

/// The constants a text names in backquotes, as `limits::NAME` or a bare
/// `NAME` in capitals.
fn constants_named(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|quoted| quoted.trim_start_matches("limits::"))
        .filter(|name| {
            name.len() > 2
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

/// The limits table (`docs/limits.md`) and the one module of limits
/// agree: every constant the table names is defined in
/// `crates/core/src/limits.rs`, and every constant defined there is in the
/// table.
#[test]
fn the_limits_table_names_the_limits_module() {
    let doc = std::fs::read_to_string(root().join("docs/limits.md")).unwrap();
    let named: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|row| row.trim_end_matches('|').rsplit('|').next())
        .flat_map(constants_named)
        .collect();
    let module = std::fs::read_to_string(root().join("crates/core/src/limits.rs")).unwrap();
    let defined: BTreeSet<String> = module
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect();
    assert!(defined.len() > 30, "{defined:?}");
    let undefined: Vec<&String> = named.difference(&defined).collect();
    assert!(
        undefined.is_empty(),
        "the table names {undefined:?}, which limits.rs does not define"
    );
    let missing: Vec<&String> = defined.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "limits.rs defines {missing:?}, which the table does not name"
    );
}

/// The checks themselves work: they find what they look for.
#[test]
fn the_checks_find_what_they_look_for() {
    let engine_mod = sources(&root().join("crates/core/src"))
        .into_iter()
        .find(|(p, _)| p == "engine/mod.rs")
        .unwrap()
        .1;
    assert!(crate_modules(&engine_mod).contains("model"));
    assert_eq!(
        crate_modules(&["use crate::a::b; x(crate::c_d::e)".to_string()]),
        BTreeSet::from(["a".to_string(), "c_d".to_string()])
    );
    assert_eq!(
        constants_named("| x | `limits::MAX_A`, `MAX_B`, `Config::c`, `on` |"),
        BTreeSet::from(["MAX_A".to_string(), "MAX_B".to_string()])
    );
    let graph = normal_dependencies();
    assert!(closure(&graph, "authzd-server").contains("tokio"));
    assert!(closure(&graph, "authzd-bench").contains("hdrhistogram"));
}
