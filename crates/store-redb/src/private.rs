//! Keeps the data folder and the store file private to the server's user:
//! creates the folder `0700` and the file `0600` whatever the umask, and
//! warns about an existing folder or file that others may read. Must not
//! change the mode of anything it did not create (an operator may share
//! a folder with a backup group on purpose) nor open the file as a
//! database.

use std::io;
use std::path::Path;

/// Creates `dir` (and its missing parents) and an empty `file` in it if
/// they are missing, private to this user; warns about either if it
/// already exists and is open to the group or others.
#[cfg(unix)]
pub(super) fn create(dir: &Path, file: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if dir.is_dir() {
        warn_if_open(dir, "data folder", "700")?;
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    // redb initialises an empty file as a new database, so creating the
    // file first is how it gets its mode; `create_new` never truncates one
    // that appeared in the meantime.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_open(file, "store file", "600")
        }
        Err(e) => Err(e),
    }
}

/// Elsewhere only the folder is created; permissions are the platform's.
#[cfg(not(unix))]
pub(super) fn create(dir: &Path, _file: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn warn_if_open(path: &Path, what: &str, private: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the {what} is open to other users; `chmod {private}` it unless that is intended"
        );
    }
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// A new data folder (parents included) is `0700` and a new store file
    /// `0600`, even though the test's umask would make them readable.
    #[test]
    fn new_folder_and_file_are_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/data");
        let file = dir.join("authzd.redb");
        create(&dir, &file).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    }

    /// An existing folder and file keep their modes and their content: an
    /// operator's choice is warned about, never overridden.
    #[test]
    fn existing_folder_and_file_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let file = dir.join("authzd.redb");
        std::fs::write(&file, b"kept").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        create(&dir, &file).unwrap();
        assert_eq!(mode(&dir), 0o750);
        assert_eq!(mode(&file), 0o640);
        assert_eq!(std::fs::read(&file).unwrap(), b"kept");
    }
}
