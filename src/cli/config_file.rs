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
    all.extend(extra.iter().flat_map(|(_, args)| args.iter().cloned()));
    let matches = Cli::command()
        .try_get_matches_from(&all)
        .map_err(|e| refused(file, &extra, e))?;
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// The message for the file's settings the parser refused: naming the key
/// whose value is refused on its own, if one is.
fn refused(file: &Path, extra: &[(String, Vec<OsString>)], all: clap::Error) -> String {
    for (key, args) in extra {
        let alone = [OsString::from("authzd"), OsString::from("serve")]
            .into_iter()
            .chain(args.iter().cloned());
        // Only a value the flag refuses: alone, a key may lack another it
        // requires, which the file gives.
        let refused = Cli::command()
            .try_get_matches_from(alone)
            .err()
            .filter(|e| {
                matches!(
                    e.kind(),
                    clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                )
            });
        if let Some(e) = refused {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            return format!(
                "{}: {key}: {}",
                file.display(),
                first.strip_prefix("error: ").unwrap_or(first)
            );
        }
    }
    format!("{}: {all}", file.display())
}

/// The file's settings as `serve` arguments, key by key, leaving out those
/// `set` says the command line or environment gave. A value is joined to
/// its flag (`--key=value`), so one that starts with a dash is still read
/// as the value.
fn file_args(
    file: &Path,
    set: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<OsString>)>, String> {
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
            let keys = serve
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|long| *long != "config");
            return Err(format!(
                "{}: unknown key {}{} (keys are serve's flags without the dashes)",
                file.display(),
                authzd_core::model::Quoted(key),
                authzd_core::schema::suggestion(key, keys)
            ));
        }
        if set(&id) {
            continue;
        }
        let flag = format!("--{key}");
        let mut args = Vec::new();
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for v in values {
            match v {
                toml::Value::Boolean(true) => args.push(OsString::from(&flag)),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => args.push(format!("{flag}={s}").into()),
                toml::Value::Integer(n) => args.push(format!("{flag}={n}").into()),
                other => {
                    return Err(format!(
                        "{}: {key}: a {} is not a flag value (use a string, a number or a boolean)",
                        file.display(),
                        other.type_str()
                    ));
                }
            }
        }
        out.push((key.clone(), args));
    }
    Ok(out)
}
