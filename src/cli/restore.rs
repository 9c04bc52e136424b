//! `authzd restore --from BACKUP --data DATA`: puts a backup (a folder
//! `authzd backup` wrote, or a stopped server's data folder) in place as a
//! server's data folder, checked first and swapped in whole.
//!
//! The store file is copied to a new folder beside DATA, fsynced, opened
//! there as a server would open it (format version, every record decoded;
//! its revision and tenants are what the report shows), and only then
//! renamed to DATA: a restore that fails or is interrupted leaves DATA as
//! it was. A DATA that is not empty is refused unless `--force`, and even
//! then only when it holds nothing but a store no server is using. Must
//! not open the backup's own file (opening a store can write to it) and
//! must not reach into the store but through the service's inspection.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use authzd_core::model::Revision;
use authzd_service::{self as service, FILE_NAME, StoreSummary};

/// Tenants the report names; more are counted.
const NAMED_TENANTS: usize = 10;

/// `authzd restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup: a folder holding an authzd store (`authzd backup
    /// --out`, or the data folder of a stopped server).
    #[arg(long, value_name = "BACKUP_DIR")]
    pub from: PathBuf,
    /// The data folder to restore into (new or empty; created if missing).
    #[arg(long, value_name = "DATA_DIR")]
    pub data: PathBuf,
    /// Replace the store already in DATA_DIR (only a store, and only one
    /// no running server uses).
    #[arg(long)]
    pub force: bool,
}

/// Why a restore was refused or failed; DATA is then as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// `--from` names no backup.
    #[error("--from {path}: {reason}")]
    Backup {
        /// The folder given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `--data` cannot take the restore.
    #[error("--data {path}: {reason}")]
    Target {
        /// The folder given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading, writing or renaming failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `authzd restore`; whether it succeeded.
pub async fn command(args: &RestoreArgs) -> bool {
    let args = args.clone();
    match tokio::task::spawn_blocking(move || restore(&args)).await {
        Ok(Ok(report)) => {
            eprintln!("{report}");
            true
        }
        Ok(Err(e)) => {
            eprintln!("authzd restore: {e}");
            false
        }
        Err(e) => {
            eprintln!("authzd restore: {e}");
            false
        }
    }
}

/// The restore itself: check, copy, inspect, swap. Blocks.
pub fn restore(args: &RestoreArgs) -> Result<String, RestoreError> {
    let source = backup_file(&args.from)?;
    let replacing = check_target(&args.data, args.force)?;
    let parent = parent_of(&args.data)?;
    let name = args
        .data
        .file_name()
        .ok_or_else(|| target(&args.data, "name a folder (not `..` or a root)"))?
        .to_string_lossy()
        .into_owned();
    let prefix = format!(".{name}.restoring-");
    let mut staging = tempfile::Builder::new();
    staging.prefix(&prefix);
    // Owner-only, like a data folder the server creates: it becomes one.
    #[cfg(unix)]
    staging.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let staging = staging
        .tempdir_in(&parent)
        .map_err(io("creating a folder in", &parent))?;
    let copy = staging.path().join(FILE_NAME);
    copy_synced(&source, &copy)?;
    // The copy's faults are the backup's: the message names the backup's
    // file, not the staging folder that is about to go.
    let summary =
        block_on(service::inspect_store(staging.path())).map_err(|e| RestoreError::Backup {
            path: args.from.clone(),
            reason: e
                .to_string()
                .replace(&copy.display().to_string(), &source.display().to_string()),
        })?;
    if summary.revision == Revision(0) {
        return Err(backup(
            &args.from,
            "the store holds no revision: not a backup",
        ));
    }
    sync_folder(staging.path())?;
    swap_in(staging.keep(), &args.data, &parent)?;
    Ok(report(args, &summary, replacing))
}

/// Runs the service's async inspection from the blocking thread the
/// restore runs on.
fn block_on<F: Future>(inspection: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(inspection)
}

/// The backup's store file, if `from` is a folder holding one.
fn backup_file(from: &Path) -> Result<PathBuf, RestoreError> {
    if !from.exists() {
        return Err(backup(from, "no such folder"));
    }
    if !from.is_dir() {
        return Err(backup(from, "not a folder"));
    }
    let file = from.join(FILE_NAME);
    if !file.is_file() {
        return Err(backup(
            from,
            &format!(
                "holds no authzd store (no {FILE_NAME}); give a folder `authzd backup --out` wrote, or a stopped server's data folder"
            ),
        ));
    }
    Ok(file)
}

/// What a restore replaces in DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replacing {
    /// Nothing: DATA is missing or empty.
    Nothing,
    /// A store at this revision.
    Store(Revision),
    /// A store that cannot be read (damaged): replaced all the same.
    Unreadable,
}

/// Whether `data` may take the restore: missing or empty, or (with
/// `force`) holding only a store that no server uses.
fn check_target(data: &Path, force: bool) -> Result<Replacing, RestoreError> {
    if !data.exists() {
        return Ok(Replacing::Nothing);
    }
    if !data.is_dir() {
        return Err(target(data, "exists and is not a folder"));
    }
    let entries = entries(data, 3)?;
    if entries.is_empty() {
        return Ok(Replacing::Nothing);
    }
    let holds = entries.join(", ");
    if !force {
        return Err(target(
            data,
            &format!(
                "not empty (holds {holds}); restore into a new or empty folder, or give --force to replace the store there"
            ),
        ));
    }
    if entries != [FILE_NAME] {
        return Err(target(
            data,
            &format!("holds more than an authzd store ({holds}); --force replaces only a store"),
        ));
    }
    match block_on(service::inspect_store(data)) {
        Ok(summary) => Ok(Replacing::Store(summary.revision)),
        Err(e) if e.in_use() => Err(target(
            data,
            "a running server uses this store; stop it before restoring over it",
        )),
        Err(_) => Ok(Replacing::Unreadable),
    }
}

/// The names of at most `most` entries of `dir`, sorted.
fn entries(dir: &Path, most: usize) -> Result<Vec<String>, RestoreError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("reading", dir))? {
        let entry = entry.map_err(io("reading", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
        if names.len() == most {
            break;
        }
    }
    names.sort();
    Ok(names)
}

/// The folder `data` is in, created if missing.
fn parent_of(data: &Path) -> Result<PathBuf, RestoreError> {
    let parent = match data.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
    Ok(parent)
}

/// Copies `from` to the new file `to` (owner-only, like a store the
/// server creates) and fsyncs it.
fn copy_synced(from: &Path, to: &Path) -> Result<(), RestoreError> {
    let mut reader = std::fs::File::open(from).map_err(io("reading", from))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut writer = options.open(to).map_err(io("creating", to))?;
    std::io::copy(&mut reader, &mut writer).map_err(io("copying to", to))?;
    writer.flush().map_err(io("writing", to))?;
    writer.sync_all().map_err(io("syncing", to))
}

/// Makes a folder's entries (a file created or renamed in it) durable.
fn sync_folder(dir: &Path) -> Result<(), RestoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", dir))
}

/// Renames `staged` to `data`. An empty `data` is replaced by the rename
/// itself; a store being replaced is first moved aside (and put back if
/// the second rename fails), then removed.
fn swap_in(staged: PathBuf, data: &Path, parent: &Path) -> Result<(), RestoreError> {
    let undo = |e| {
        let _ = std::fs::remove_dir_all(&staged);
        e
    };
    let occupied = data.exists() && !entries(data, 1).map_err(undo)?.is_empty();
    if !occupied {
        std::fs::rename(&staged, data)
            .map_err(io("renaming into", data))
            .map_err(undo)?;
        return sync_folder(parent);
    }
    let aside = tempfile::Builder::new()
        .prefix(".authzd-replaced-")
        .tempdir_in(parent)
        .map_err(io("creating a folder in", parent))
        .map_err(undo)?;
    let old = aside.path().join("data");
    std::fs::rename(data, &old)
        .map_err(io("moving aside", data))
        .map_err(undo)?;
    if let Err(e) = std::fs::rename(&staged, data) {
        let _ = std::fs::rename(&old, data);
        return Err(undo(RestoreError::Io {
            what: "renaming into",
            path: data.to_path_buf(),
            source: e,
        }));
    }
    sync_folder(parent)
    // `aside` (holding the replaced store) is removed as it drops.
}

fn report(args: &RestoreArgs, summary: &StoreSummary, replacing: Replacing) -> String {
    let records: u64 = summary.tenants.iter().map(|(_, n)| n).sum();
    let mut names: Vec<&str> = summary
        .tenants
        .iter()
        .take(NAMED_TENANTS)
        .map(|(t, _)| t.as_str())
        .collect();
    let more = summary.tenants.len().saturating_sub(NAMED_TENANTS);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    if names.is_empty() {
        names.push("none");
    }
    let replaced = match replacing {
        Replacing::Nothing => String::new(),
        Replacing::Store(revision) => format!("; it replaced a store at revision {revision}"),
        Replacing::Unreadable => "; it replaced a store that could not be read".to_string(),
    };
    format!(
        "restored revision {} ({}: {}{more}; {}) from {} into {}{replaced}; serve it with `authzd serve --data {}`",
        summary.revision,
        super::count(summary.tenants.len(), "tenant"),
        names.join(", "),
        super::count(records, "record"),
        args.from.display(),
        args.data.display(),
        args.data.display(),
    )
}

fn backup(path: &Path, reason: &str) -> RestoreError {
    RestoreError::Backup {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn target(path: &Path, reason: &str) -> RestoreError {
    RestoreError::Target {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn io(what: &'static str, path: &Path) -> impl Fn(std::io::Error) -> RestoreError {
    let path = path.to_path_buf();
    move |source| RestoreError::Io {
        what,
        path: path.clone(),
        source,
    }
}
