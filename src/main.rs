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
            | Command::Migrate(_)
    ) {
        "warn"
    } else {
        "info"
    };
    // The server writes its logs (one access-log line per call) from a
    // thread of their own; what is queued is written when `main` ends.
    let serving = matches!(cli.command, Command::Serve(_));
    let _flush = authzd::cli::logs::init(cli.log_format, level, serving);
    // 0 done, 1 failed; `check` tells denied (1) from failed (2).
    let status = |ok: bool| if ok { 0 } else { 1 };
    let code = match &cli.command {
        Command::Schema(command) => status(authzd::cli::schema_command(command)),
        Command::Serve(args) => status(block_on(authzd::cli::serve::command(args), false)),
        Command::Import(args) => status(block_on(authzd::cli::import::command(args), false)),
        Command::Token(command) => status(authzd::cli::token_command(command)),
        Command::Query(command) => {
            let failed = authzd::cli::query::Outcome::Failed;
            block_on(authzd::cli::query::command(command), failed).code()
        }
        Command::Write(command) => status(block_on(authzd::cli::write::command(command), false)),
        Command::Export(args) => status(block_on(
            authzd::cli::tenant_file::export_command(args),
            false,
        )),
        Command::Backup(args) => status(block_on(authzd::cli::backup::command(args), false)),
        Command::Restore(args) => status(block_on(authzd::cli::restore::command(args), false)),
        Command::Migrate(args) => status(block_on(authzd::cli::migrate::command(args), false)),
    };
    ExitCode::from(code)
}

/// Runs `task` to completion on a multi-threaded runtime; `failed` if the
/// runtime cannot start.
///
/// The runtime's LIFO slot is switched off where the build allows it
/// (`--cfg tokio_unstable`, set in `.cargo/config.toml`). With it on, a task
/// that wakes another on the same worker runs that one next: every `Watch`
/// stream's task that hands hyper a message wakes its connection's task,
/// which then writes and flushes that one message, so a write delivered to
/// 2,000 streams cost about 2,000 socket writes. Without the slot, the
/// connection's task runs after the streams woken with it and writes all
/// their messages at once (docs/watch-memory.md measures both).
fn block_on<T>(task: impl std::future::Future<Output = T>, failed: T) -> T {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    #[cfg(tokio_unstable)]
    runtime.disable_lifo_slot();
    match runtime.build() {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            failed
        }
    }
}
