#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The layering of STYLE.md, held by cheap greps over `src/`: redb only in
//! `store`, protobuf and tonic only at the edge, and imports flowing
//! downward only (`api → service → engine, store, watch → schema → model`).
//!
//! Comments are ignored, so a module may *say* what it must not know.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, as (path relative to `src/`, code lines
/// with `//` comments removed).
fn sources() -> Vec<(String, Vec<String>)> {
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
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    assert!(files.len() > 10, "src/ not found or nearly empty");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default().to_string())
                .collect();
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, code)
        })
        .collect()
}

/// The files (outside `allowed`) whose code mentions any of `needles`, with
/// the first offending line.
fn offenders(needles: &[&str], allowed: impl Fn(&str) -> bool) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(path, _)| !allowed(path))
        .filter_map(|(path, code)| {
            code.iter()
                .enumerate()
                .find(|(_, line)| needles.iter().any(|n| line.contains(n)))
                .map(|(i, line)| format!("{path}:{}: {}", i + 1, line.trim()))
        })
        .collect()
}

/// The crate modules a file's code names (`crate::engine::…` → "engine").
fn crate_modules(code: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Asserts that every file under `prefix` names only `allowed` crate
/// modules.
fn imports_only(prefix: &str, allowed: &[&str]) {
    let mut checked = 0;
    for (path, code) in sources() {
        if !path.starts_with(prefix) {
            continue;
        }
        checked += 1;
        let bad: Vec<String> = crate_modules(&code)
            .into_iter()
            .filter(|m| !allowed.contains(&m.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "src/{path} imports crate::{bad:?}; {prefix} may only use {allowed:?}"
        );
    }
    assert!(checked > 0, "no file under src/{prefix}");
}

/// redb is named only under `src/store/`.
#[test]
fn redb_only_in_store() {
    let bad = offenders(&["redb::", "use redb"], |p| p.starts_with("store/"));
    assert!(bad.is_empty(), "redb outside src/store/: {bad:#?}");
}

/// Whether a file sits at the top of the map, above the API: the binary,
/// the wiring and the command line (whose `bench` is a gRPC client).
fn is_top(p: &str) -> bool {
    p == "server.rs" || p == "main.rs" || p == "lib.rs" || p.starts_with("cli/") || p == "cli.rs"
}

/// tonic, prost and the generated `pb` types appear only in `src/api/` and
/// the top of the map (server, binary, command line).
#[test]
fn protobuf_and_tonic_only_at_the_edge() {
    let bad = offenders(&["tonic", "prost", "pb::"], |p| {
        p.starts_with("api/") || is_top(p)
    });
    assert!(bad.is_empty(), "protobuf/tonic outside the edge: {bad:#?}");
}

/// `src/model.rs` imports nothing from the crate.
#[test]
fn model_depends_on_nothing_in_the_crate() {
    imports_only("model.rs", &[]);
}

/// `src/schema/` imports only `crate::model`.
#[test]
fn schema_depends_only_on_model() {
    imports_only("schema/", &["model"]);
}

/// `src/engine/` knows neither the store, the service, the feed nor the
/// API.
#[test]
fn engine_does_not_know_store_service_or_api() {
    imports_only("engine/", &["model", "schema", "config"]);
    let bad = offenders(
        &[
            "crate::store",
            "crate::service",
            "crate::api",
            "crate::server",
            "crate::watch",
        ],
        |p| !p.starts_with("engine/"),
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

/// `src/store/` builds on the model only; `src/watch.rs` on the model and
/// the schema (for permission patterns): the feed is handed its replay and
/// never reads the store itself.
#[test]
fn store_and_watch_depend_only_on_model() {
    imports_only("store/", &["model"]);
    imports_only("watch.rs", &["model", "schema"]);
}

/// `src/auth.rs` (the token set and the caller rules) builds on the model
/// and the settings only: it knows neither tonic nor the service.
#[test]
fn auth_depends_only_on_model_and_config() {
    imports_only("auth.rs", &["model", "config"]);
}

/// Nothing below the API imports it, and the command line does not reach
/// into the store.
#[test]
fn nothing_below_the_edge_imports_it() {
    let bad = offenders(&["crate::api", "crate::server"], |p| {
        p.starts_with("api/") || is_top(p)
    });
    assert!(bad.is_empty(), "{bad:#?}");
    let bad = offenders(&["crate::store"], |p| !p.starts_with("cli"));
    assert!(bad.is_empty(), "the cli talks to the store: {bad:#?}");
}

/// Above `src/store/`, the store is reached only through the `Datastore`
/// trait: nothing names the embedded implementation, and only the service
/// opens a store (at start-up, to write a backup, and in its tests).
#[test]
fn the_store_is_reached_through_its_trait() {
    let bad = offenders(&["RedbDatastore", "store::Store", "embedded::"], |p| {
        p.starts_with("store/")
    });
    assert!(bad.is_empty(), "the embedded store named: {bad:#?}");
    let opens = offenders(&["storage::open(", "store::open("], |p| {
        p.starts_with("store/") || p.starts_with("service/")
    });
    assert!(
        opens.is_empty(),
        "a store opened outside the service: {opens:#?}"
    );
    assert!(!offenders(&["storage::open("], |_| false).is_empty());
}

/// The greps themselves work: they find what they look for.
#[test]
fn the_greps_find_what_they_look_for() {
    let engine_mod: Vec<String> = sources()
        .into_iter()
        .find(|(p, _)| p == "engine/mod.rs")
        .unwrap()
        .1;
    assert!(crate_modules(&engine_mod).contains("model"));
    assert!(!offenders(&["redb::"], |_| false).is_empty());
    assert_eq!(
        crate_modules(&["use crate::a::b; x(crate::c_d::e)".to_string()]),
        BTreeSet::from(["a".to_string(), "c_d".to_string()])
    );
}
