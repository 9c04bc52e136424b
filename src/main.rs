//! The `authzd` binary: parse the command line, set up logging, run the
//! command (each lives in `authzd::cli`).

use std::process::ExitCode;

use authzd::cli::Command;

fn main() -> ExitCode {
    let cli = match authzd::cli::config_file::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("authzd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The import prints a report; logs should not talk over it.
    let level = if matches!(
        cli.command,
        Command::Import(_)
            | Command::Schema(_)
            | Command::Query(_)
            | Command::Write(_)
            | Command::Export(_)
            | Command::Backup(_)
            | Command::Restore(_)
    ) {
        "warn"
    } else {
        "info"
    };
    authzd::cli::logs::init(cli.log_format, level);
    let ok = match &cli.command {
        Command::Schema(command) => authzd::cli::schema_command(command),
        Command::Serve(args) => block_on(authzd::cli::serve::command(args)),
        Command::Import(args) => block_on(authzd::cli::import::command(args)),
        Command::Token(command) => authzd::cli::token_command(command),
        Command::Query(command) => block_on(authzd::cli::query::command(command)),
        Command::Write(command) => block_on(authzd::cli::write::command(command)),
        Command::Export(args) => block_on(authzd::cli::tenant_file::export_command(args)),
        Command::Backup(args) => block_on(authzd::cli::backup::command(args)),
        Command::Restore(args) => block_on(authzd::cli::restore::command(args)),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `task` to completion on a multi-threaded runtime.
fn block_on(task: impl std::future::Future<Output = bool>) -> bool {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            false
        }
    }
}
