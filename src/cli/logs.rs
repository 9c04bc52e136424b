//! Where the binary's logs go and how they look: stderr, as text (ANSI
//! colours only on a terminal) or as one JSON object per line. Must not
//! decide what is logged; every module logs through `tracing`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event; coloured only when stderr is a
    /// terminal and `NO_COLOR` is unset.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, and the
    /// event's `fields` (its message under `message`).
    Json,
}

/// Installs the process's logger: `RUST_LOG` if set, else `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}
