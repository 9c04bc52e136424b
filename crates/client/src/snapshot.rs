//! Receiving a primary's `Snapshot` stream: chunk by chunk, each checked
//! to carry the record format this build reads and the revision the first
//! chunk named, into one [`Export`]. Shared by a replica's bootstrap and
//! `authzd backup`; must not install or write what it receives.

use authzd_core::limits::REPLICATION_SILENCE;
use authzd_core::model::{Change, Export, Revision, TenantId};
use authzd_proto::{RECORD_FORMAT, pb};

use crate::status::status_text;

/// Why receiving a snapshot stopped.
#[derive(Debug)]
pub enum SnapshotFailure {
    /// The primary ended the stream with this status.
    Status(tonic::Status),
    /// The stream broke off, stalled, or carried what this build cannot
    /// read.
    Broken(String),
}

impl std::fmt::Display for SnapshotFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotFailure::Status(s) => f.write_str(&status_text(s)),
            SnapshotFailure::Broken(why) => f.write_str(why),
        }
    }
}

/// Reads a `Snapshot` stream to its last chunk: the state it carries and
/// how many records it held. Used by a replica's bootstrap and by
/// `authzd backup`. A stream silent for [`REPLICATION_SILENCE`] is broken.
pub async fn receive_snapshot(
    stream: &mut tonic::Streaming<pb::SnapshotReply>,
) -> Result<(Export, usize), SnapshotFailure> {
    let mut export: Option<Export> = None;
    let mut records = 0usize;
    loop {
        let chunk = match tokio::time::timeout(REPLICATION_SILENCE, stream.message()).await {
            Err(_) => {
                return Err(SnapshotFailure::Broken(format!(
                    "the snapshot stalled for {REPLICATION_SILENCE:?}"
                )));
            }
            Ok(Err(status)) => return Err(SnapshotFailure::Status(status)),
            Ok(Ok(None)) => {
                return Err(SnapshotFailure::Broken(
                    "the snapshot ended before its last chunk".into(),
                ));
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        if chunk.record_format != RECORD_FORMAT {
            return Err(SnapshotFailure::Broken(unknown_format(chunk.record_format)));
        }
        let done = chunk.done;
        records += chunk.records.len();
        add_chunk(&mut export, chunk).map_err(SnapshotFailure::Broken)?;
        if done {
            break;
        }
    }
    let export = export.ok_or_else(|| SnapshotFailure::Broken("the snapshot was empty".into()))?;
    Ok((export, records))
}

/// Why records of `found` format cannot be read.
pub fn unknown_format(found: u32) -> String {
    format!("the primary sends record format {found}; this build reads only format {RECORD_FORMAT}")
}

/// Records (or entries) in [`RECORD_FORMAT`], decoded; the first that does
/// not decode is named.
pub fn decode_records<T: serde::de::DeserializeOwned>(
    records: &[Vec<u8>],
) -> Result<Vec<T>, String> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            serde_json::from_slice(r)
                .map_err(|e| format!("cannot decode replicated record {i}: {e}"))
        })
        .collect()
}

/// Adds a snapshot chunk to what was received so far: the first carries the
/// schema and the revision, which every later one must repeat.
fn add_chunk(export: &mut Option<Export>, chunk: pb::SnapshotReply) -> Result<(), String> {
    let revision = Revision(chunk.revision);
    let export = match export {
        None => export.insert(Export {
            revision,
            schema: chunk.schema,
            tenants: Vec::new(),
        }),
        Some(e) if e.revision != revision => {
            return Err(format!(
                "the snapshot changed revision from {} to {revision}",
                e.revision
            ));
        }
        Some(e) => e,
    };
    if chunk.records.is_empty() {
        return Ok(());
    }
    let tenant =
        TenantId::try_from(chunk.tenant.as_str()).map_err(|e| format!("snapshot tenant: {e}"))?;
    let changes = decode_records::<Change>(&chunk.records)?;
    match export.tenants.last_mut() {
        Some((last, held)) if *last == tenant => held.extend(changes),
        _ => export.tenants.push((tenant, changes)),
    }
    Ok(())
}
