//! `authzd serve --config FILE`: every `serve` flag from a TOML file, with
//! the precedence command line > `AUTHZD_*` environment variable > file >
//! built-in default.
//!
//! The file's keys are the flags' names without their dashes
//! (`listen = "0.0.0.0:50051"`, `retain-revisions = 100000`, `insecure =
//! true`, `tokens = "/etc/authzd/tokens.toml"`). A key whose flag the
//! command line or the environment already set is ignored; the others are
//! given to the same parser as if typed, so their values are checked
//! exactly like the flags'. Must not know what any flag means.

use authzd_core::limits::MAX_CONFIG_BYTES;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// Parses the process's command line, applying `serve --config FILE` if
/// given. Exits with clap's message on bad flags (or for `--help`).
pub fn parse() -> Result<Cli, String> {
    let args: Vec<OsString> = std::env::args_os().collect();
    parse_from(args)
}

/// [`parse`] over given arguments.
pub fn parse_from(args: Vec<OsString>) -> Result<Cli, String> {
    let matches = Cli::command().get_matches_from(&args);
    let Some(("serve", serve)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
    };
    let Some(file) = serve.get_one::<PathBuf>("config") else {
        return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
    };
    let set = |id: &str| {
        matches!(
            serve.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let extra = file_args(file, set)?;
    let mut all = args;
    all.extend(extra);
    let matches = Cli::command()
        .try_get_matches_from(&all)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// The file's settings as `serve` arguments, leaving out those `set` says
/// the command line or environment gave.
fn file_args(file: &Path, set: impl Fn(&str) -> bool) -> Result<Vec<OsString>, String> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    if size > MAX_CONFIG_BYTES {
        return Err(format!(
            "{}: {size} bytes; the limit is {MAX_CONFIG_BYTES}",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .ok_or("the serve command is missing")?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let known = serve
            .get_arguments()
            .any(|a| a.get_id() == id.as_str() && a.get_long() == Some(key.as_str()));
        if !known || key == "config" {
            return Err(format!(
                "{}: unknown key {} (keys are serve's flags without the dashes)",
                file.display(),
                authzd_core::model::Quoted(key)
            ));
        }
        if set(&id) {
            continue;
        }
        let flag = format!("--{key}");
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for v in values {
            match v {
                toml::Value::Boolean(true) => out.push(OsString::from(&flag)),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => out.extend([OsString::from(&flag), s.into()]),
                toml::Value::Integer(n) => {
                    out.extend([OsString::from(&flag), n.to_string().into()]);
                }
                other => {
                    return Err(format!(
                        "{}: {key}: a {} is not a flag value (use a string, a number or a boolean)",
                        file.display(),
                        other.type_str()
                    ));
                }
            }
        }
    }
    Ok(out)
}
