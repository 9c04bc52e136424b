//! The scale bench's second data shape, as a customer's CSV export would
//! bring it: every subject with one attribute (`dept=dN`, one of [`DEPTS`]
//! values) and in one or two flat groups (no nesting), loaded by the real
//! `authzd import` command run as a child process from a CSV file written
//! here. What a CSV row cannot carry goes through the bulk `Import` RPC
//! around it (see [`bulk`](super::bulk)): scopes, groups and their roles
//! before; the tenant administrator's role and the subject in every group
//! after. Only the `authzd import` run is timed as the import.
//!
//! Must not reach into the server, nor parse more of the command's output
//! than its closing line's counts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;
use super::bulk::{self, ImportStats, Progress};
use authzd_client::ClientChannel;
use authzd_testkit::dataset::{Dataset, Who};

/// Distinct values of the `dept` attribute: few, so that most subjects
/// repeat a value another subject has.
pub const DEPTS: usize = 10;

/// `data` reshaped as the CSV shape: its groups flat (no nesting), and no
/// direct roles but the tenant administrator's.
pub fn flatten(mut data: Dataset) -> Dataset {
    data.nestings.clear();
    data.assignments
        .retain(|a| matches!(a.who, Who::Group(_)) || a.role == "admin");
    data
}

/// Subject `i`'s `dept` attribute value.
fn dept(i: usize) -> String {
    format!("d{}", i % DEPTS)
}

/// Writes `data`'s subjects as an `authzd import` file: one row per
/// subject with its status, groups and attribute.
pub fn write_csv(data: &Dataset, out: impl Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "id,kind,status,groups,attributes")?;
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); data.sizes.subjects];
    for &(g, s) in &data.memberships {
        if let Some(list) = groups.get_mut(s) {
            list.push(g);
        }
    }
    for (i, list) in groups.iter().enumerate() {
        let status = match data.locked.get(i) {
            Some(true) => "locked",
            _ => "active",
        };
        let names: Vec<String> = list.iter().map(|&g| Dataset::group_id(g)).collect();
        writeln!(
            out,
            "{},user,{status},{},dept={}",
            Dataset::subject_id(i),
            names.join(";"),
            dept(i)
        )?;
    }
    out.flush()
}

/// The chunk count and revision from `authzd import`'s closing line
/// (`FILE: N rows: …; M chunks; revision R`).
fn chunks_and_revision(line: &str) -> Option<(usize, u64)> {
    let revision = line.rsplit_once("revision ")?.1.trim().parse().ok()?;
    let before = line
        .split("; ")
        .find(|p| p.ends_with(" chunks") || p.ends_with(" chunk"))?;
    let chunks = before.split(' ').next()?.replace(',', "").parse().ok()?;
    Some((chunks, revision))
}

/// Runs `binary import FILE --target ADDR --tenant TENANT` to its end; how
/// long it took, and its closing line.
async fn run_import(
    binary: &Path,
    file: &Path,
    target: String,
    tenant: &str,
) -> Result<(Duration, String), BenchError> {
    let mut command = Command::new(binary);
    command
        .arg("import")
        .arg(file)
        .args(["--target", &target, "--tenant", tenant])
        .env_remove("AUTHZD_CONFIG")
        .env_remove("AUTHZD_TOKEN")
        .stdin(Stdio::null());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| BenchError::Child(format!("authzd import: {e}")))?
        .map_err(|e| BenchError::Child(format!("cannot run {} import: {e}", binary.display())))?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.success() {
        true => Ok((elapsed, stdout.trim().to_string())),
        false => Err(BenchError::Child(format!(
            "authzd import failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// Loads `data` (already [`flatten`]ed) into `tenant` of the server at
/// `target`: scopes and groups through the RPCs, the subjects with
/// `binary import` from a CSV file written in a folder made in `scratch`,
/// then the rest.
pub(super) async fn import(
    channel: ClientChannel,
    target: String,
    binary: &Path,
    scratch: &Path,
    tenant: &str,
    data: &Dataset,
    label: &str,
) -> Result<ImportStats, BenchError> {
    let mut progress = Progress::default();
    let scopes_elapsed = bulk::groups(&channel, tenant, data, &mut progress).await?;
    let folder = tempfile::Builder::new()
        .prefix("authzd-scale-csv-")
        .tempdir_in(scratch)
        .map_err(|source| BenchError::DataDir {
            parent: scratch.to_path_buf(),
            source,
        })?;
    let file = folder.path().join(format!("{tenant}.csv"));
    let created = std::fs::File::create(&file).and_then(|f| write_csv(data, f));
    created.map_err(|e| BenchError::Child(format!("writing {}: {e}", file.display())))?;
    eprintln!("{label}: authzd import {}", file.display());
    let (elapsed, line) = run_import(binary, &file, target, tenant).await?;
    drop(folder);
    eprintln!("{label}: {line}");
    let (chunks, revision) = chunks_and_revision(&line)
        .ok_or_else(|| BenchError::Child(format!("authzd import said {line:?}")))?;
    progress.chunks += chunks;
    progress.records += data.sizes.subjects + data.memberships.len();
    progress.revision = progress.revision.max(revision);
    bulk::finish(&channel, tenant, data, true, &mut progress).await?;
    Ok(progress.stats(data, scopes_elapsed, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use authzd_testkit::dataset::Sizes;

    #[test]
    fn rows_carry_groups_and_the_attribute() {
        let sizes = Sizes {
            subjects: 200,
            groups: 20,
            scopes: 10,
        };
        let data = flatten(Dataset::generate(sizes, 3));
        assert!(data.nestings.is_empty());
        assert_eq!(data.assignments.len(), 21, "group roles and the admin");
        let mut out = Vec::new();
        write_csv(&data, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 201);
        assert!(text.contains("\nuser-000099,user,locked,"), "{text}");
        assert!(text.lines().skip(1).all(|l| l.contains(",dept=d")));
        let semicolons = text.matches(';').count();
        assert_eq!(semicolons, data.memberships.len() - 200);
    }

    #[test]
    fn the_closing_line_gives_chunks_and_revision() {
        let line = "/tmp/t.csv: 1,000 rows: 1000 created, 0 updated, 0 unchanged; 1,498 memberships; 3 chunks; revision 17";
        assert_eq!(chunks_and_revision(line), Some((3, 17)));
        assert_eq!(
            chunks_and_revision("1 row; 1 chunk; revision 2"),
            Some((1, 2))
        );
        assert_eq!(chunks_and_revision("nothing"), None);
    }
}
