//! `authzd backup`: a consistent copy of a running server's store at one
//! revision, taken while it serves, written as a data folder that `authzd
//! serve --data` opens (restoring is starting a server on it).
//!
//! The copy comes through the public replication API (`Snapshot`, read in
//! one transaction on the server) and is written by the store's own
//! snapshot install, so a backup is exactly what a replica bootstraps
//! from. Must not reach into the running server's files.

use std::path::PathBuf;

use clap::Args;

use authzd_client::snapshot::receive_snapshot;
use authzd_client::{ClientArgs, Remote};
use authzd_core::limits::MAX_REPLICATION_MESSAGE_BYTES;
use authzd_server::api::pb;
use authzd_server::api::pb::replication_service_client::ReplicationServiceClient;
use authzd_service::write_backup;

/// `authzd backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The server (HOST:PORT, or https://HOST:PORT for TLS).
    #[arg(long, env = "AUTHZD_ADDR", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// The folder to write the copy to (new or empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Copy only these tenants (repeatable) [default: every tenant the
    /// token may see].
    #[arg(long)]
    pub tenant: Vec<String>,
    /// TLS and token (a read token; bound to a tenant, it copies that one).
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `authzd backup`; whether it succeeded.
pub async fn command(args: &BackupArgs) -> bool {
    match run(args).await {
        Ok(report) => {
            eprintln!("{report}");
            true
        }
        Err(e) => {
            eprintln!("authzd backup: {e}");
            false
        }
    }
}

async fn run(args: &BackupArgs) -> Result<String, String> {
    let remote = Remote::new(&args.target, &args.client).map_err(|e| e.to_string())?;
    let channel = remote
        .connect()
        .await
        .map_err(|e| format!("{}: {e}", args.target))?;
    let mut client = ReplicationServiceClient::new(channel)
        .max_decoding_message_size(MAX_REPLICATION_MESSAGE_BYTES);
    let mut stream = client
        .snapshot(pb::SnapshotRequest {
            tenants: args.tenant.clone(),
        })
        .await
        .map_err(|s| authzd_client::status::status_text(&s))?
        .into_inner();
    let (export, records) = receive_snapshot(&mut stream)
        .await
        .map_err(|e| e.to_string())?;
    let revision = export.revision;
    let tenants = export.tenants.len();
    let out = args.out.clone();
    write_backup(&out, export)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "backed up revision {revision} ({}, {}) to {}; serve it with `authzd serve --data {}`",
        super::count(tenants, "tenant"),
        super::count(records, "record"),
        args.out.display(),
        args.out.display()
    ))
}
