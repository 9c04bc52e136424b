//! The `authzd-bench` binary: parse the flags, log warnings only (the
//! report is the output), run the benchmark, exit non-zero if it failed.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// authzd's loopback load generator and scale benchmark.
#[derive(Debug, Parser)]
#[command(name = "authzd-bench", version)]
struct Cli {
    #[command(flatten)]
    bench: authzd_bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a report file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let ok = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(authzd_bench::command(&cli.bench)),
        Err(e) => {
            eprintln!("authzd-bench: cannot start the runtime: {e}");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
