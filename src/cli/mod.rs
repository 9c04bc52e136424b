//! The command line: `serve`, `schema check`, `bench`, `import`. Parses
//! arguments into a validated [`Config`]; must not talk to redb directly.

pub mod bench;
pub mod client;
pub mod import;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::schema;

/// authzd: a gRPC RBAC authorization service.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Work with schema files.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Measure CheckAccess against the Health floor on loopback.
    Bench(bench::BenchArgs),
    /// Import subjects and their group memberships from a CSV file into a
    /// running server.
    Import(import::ImportArgs),
}

/// `authzd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AUTHZD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Folder for the data file (created if missing).
    #[arg(long, env = "AUTHZD_DATA", default_value = "./authzd-data")]
    pub data: PathBuf,
    /// Schema file to install at start-up. Without it the stored schema is
    /// kept, or a new store gets the built-in example schema.
    #[arg(long, env = "AUTHZD_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Committed change sets kept for Watch subscribers that are behind.
    #[arg(long, default_value_t = Config::default().feed_capacity)]
    pub feed_capacity: usize,
    /// Messages buffered per Watch subscriber.
    #[arg(long, default_value_t = Config::default().subscriber_buffer)]
    pub subscriber_buffer: usize,
    /// Seconds of idleness after which a Watch subscriber gets a progress event.
    #[arg(long, default_value_t = Config::default().progress_interval.as_secs())]
    pub progress_interval_secs: u64,
    /// Change sets the changelog keeps at least (older ones are pruned).
    #[arg(long, default_value_t = Config::default().retain_revisions)]
    pub retain_revisions: u64,
    /// Writes waiting for the write sequencer at most; more are refused with
    /// RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = Config::default().write_queue)]
    pub write_queue: usize,
    /// TLS and mTLS.
    #[command(flatten)]
    pub tls: tls::ServeTlsArgs,
}

impl ServeArgs {
    /// The runtime settings these arguments describe.
    pub fn config(&self) -> Config {
        Config {
            listen: self.listen,
            data_dir: self.data.clone(),
            schema: self.schema.clone(),
            feed_capacity: self.feed_capacity.max(1),
            subscriber_buffer: self.subscriber_buffer.max(1),
            watch_piece_bytes: Config::default().watch_piece_bytes,
            progress_interval: std::time::Duration::from_secs(self.progress_interval_secs.max(1)),
            retain_revisions: self.retain_revisions.max(1),
            write_queue: self.write_queue.max(1),
        }
    }
}

/// `authzd schema ...`.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Validate a schema file and report every error with its line and key.
    Check {
        /// The file.
        file: PathBuf,
    },
    /// Print the built-in example schema.
    Default,
}

/// Runs `authzd schema ...`: prints the outcome, returns whether it succeeded.
pub fn schema_command(command: &SchemaCommand) -> bool {
    match command {
        SchemaCommand::Check { file } => match schema::load_file(file) {
            Ok(catalog) => {
                println!(
                    "{}: ok ({} permissions, {} builtin roles)",
                    file.display(),
                    catalog.len(),
                    catalog.roles().len()
                );
                true
            }
            Err(e) => {
                eprintln!("{e}");
                false
            }
        },
        SchemaCommand::Default => {
            print!("{}", schema::DEFAULT_SCHEMA);
            true
        }
    }
}
