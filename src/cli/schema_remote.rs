//! `authzd schema read | write | diff` against a running server: print the
//! installed schema, install a file (or only validate it with
//! `--dry-run`, optionally at an `--expected-revision`), or show how a
//! file differs from the installed schema, line by line.
//!
//! Owns only presentation and the line diff. Must not validate a schema
//! itself: the server does, as for any `WriteSchema`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use authzd_client::ClientArgs;
use authzd_core::limits::MAX_SCHEMA_BYTES;
use authzd_server::api::pb;
use pb::schema_service_client::SchemaServiceClient;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The server (HOST:PORT, or https://HOST:PORT for TLS).
    #[arg(long, env = "AUTHZD_ADDR", default_value = "127.0.0.1:50051")]
    pub target: String,
    /// One JSON object instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// TLS and token.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `schema write` sends besides the file.
#[derive(Debug, Clone, Args)]
pub struct SchemaWriteArgs {
    /// The schema file.
    pub file: PathBuf,
    /// Only validate against the server (its catalog and its data); change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse unless the server's latest revision is exactly this one.
    #[arg(long)]
    pub expected_revision: Option<u64>,
    /// Why, for the audit trail.
    #[arg(long)]
    pub reason: Option<String>,
}

fn read_file(file: &Path) -> Result<String, String> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    if size > MAX_SCHEMA_BYTES as u64 {
        return Err(format!(
            "{}: {size} bytes; a schema is at most {MAX_SCHEMA_BYTES}",
            file.display()
        ));
    }
    std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))
}

async fn client(
    args: &RemoteArgs,
) -> Result<SchemaServiceClient<authzd_client::ClientChannel>, String> {
    let channel = super::write::connect(&args.target, &args.client)
        .await
        .map_err(|e| format!("{}: {e}", args.target))?;
    Ok(SchemaServiceClient::new(channel))
}

/// `schema read`: prints the installed schema.
pub async fn read(args: &RemoteArgs) -> Result<bool, String> {
    let reply = client(args)
        .await?
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .map_err(|s| authzd_client::status::status_text(&s))?
        .into_inner();
    if args.json {
        println!(
            "{}",
            super::write::api_json(&reply, "authzd.v1.ReadSchemaResponse")
        );
    } else {
        print!("{}", reply.schema);
    }
    Ok(true)
}

/// `schema write`: installs (or, with `--dry-run`, validates) a file.
pub async fn write(args: &RemoteArgs, w: &SchemaWriteArgs) -> Result<bool, String> {
    let text = read_file(&w.file)?;
    let reply = client(args)
        .await?
        .write_schema(pb::WriteSchemaRequest {
            schema: text,
            dry_run: w.dry_run,
            expected_revision: w.expected_revision.unwrap_or_default(),
            reason: w.reason.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| authzd_client::status::status_text(&s))?
        .into_inner();
    if args.json {
        println!(
            "{}",
            super::write::api_json(&reply, "authzd.v1.WriteSchemaResponse")
        );
    } else if w.dry_run {
        println!(
            "{}: valid against the server (revision {}); nothing written",
            w.file.display(),
            reply.revision
        );
    } else {
        println!(
            "{}: installed (revision {})",
            w.file.display(),
            reply.revision
        );
    }
    Ok(true)
}

/// `schema diff`: the installed schema against a file, as a unified-style
/// line diff; exits 1 when they differ, as `diff` does.
pub async fn diff(args: &RemoteArgs, file: &Path) -> Result<bool, String> {
    let text = read_file(file)?;
    let reply = client(args)
        .await?
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .map_err(|s| authzd_client::status::status_text(&s))?
        .into_inner();
    let lines = line_diff(&reply.schema, &text);
    let same = lines.iter().all(|l| l.starts_with(' '));
    if args.json {
        let changed: Vec<&String> = lines.iter().filter(|l| !l.starts_with(' ')).collect();
        println!(
            "{}",
            json!({ "same": same, "revision": reply.revision.to_string(), "lines": changed })
        );
    } else if same {
        println!(
            "{}: the same as the installed schema (revision {})",
            file.display(),
            reply.revision
        );
    } else {
        println!("--- installed (revision {})", reply.revision);
        println!("+++ {}", file.display());
        for line in lines.iter().filter(|l| !l.starts_with(' ')) {
            println!("{line}");
        }
    }
    Ok(same)
}

/// The lines of `old` and `new` marked ` ` (kept), `-` (only in old) or
/// `+` (only in new), by a longest common subsequence over the lines
/// between their common head and tail; a middle too large for that is
/// shown as removed then added whole.
#[expect(
    clippy::indexing_slicing,
    reason = "head + tail is at most the shorter length, and i < n, j < m (or +1, the table's size) wherever they index"
)]
fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(a.len().min(b.len()) - head)
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<String> = a[..head].iter().map(|l| format!(" {l}")).collect();
    // 4 million cells: a few megabytes, instant.
    if am.len().saturating_mul(bm.len()) > 4_000_000 {
        out.extend(am.iter().map(|l| format!("-{l}")));
        out.extend(bm.iter().map(|l| format!("+{l}")));
    } else {
        let (n, m) = (am.len(), bm.len());
        let mut lcs = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i][j] = if am[i] == bm[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                out.push(format!(" {}", am[i]));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
                out.push(format!("-{}", am[i]));
                i += 1;
            } else {
                out.push(format!("+{}", bm[j]));
                j += 1;
            }
        }
    }
    out.extend(a[a.len() - tail..].iter().map(|l| format!(" {l}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kept lines, a changed line, an added and a removed one.
    #[test]
    fn diffs_lines() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        assert_eq!(line_diff(old, new), [" a", "-b", "+B", " c", " d", "+e"]);
        assert!(line_diff(old, old).iter().all(|l| l.starts_with(' ')));
        assert_eq!(line_diff("", "x"), ["+x"]);
    }
}
