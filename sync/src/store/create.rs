//! Creating a store so that it appears whole or not at all: a process killed while git lays out
//! a new repository (its `HEAD`, `config`, `objects/`, `refs/`) must not leave a directory at the
//! store's path that no git can open. The repository is laid out beside it under a temporary name,
//! put on disk, and renamed into place.

use super::StoreError;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How old a temporary layout must be before a later creation removes it: older than any
/// creation still running, which takes milliseconds.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// A new bare repository at `path`, which must not exist yet; laid out beside it and renamed
/// into place, private to the user. If another process created `path` meanwhile, that one.
pub(super) fn whole(path: &Path) -> Result<git2::Repository, StoreError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
    let prefix = temp_prefix(path);
    remove_stale(parent, &prefix);
    let temp = parent.join(format!(
        "{prefix}{}-{}",
        std::process::id(),
        super::random_id()
    ));
    // Closed before the rename: Windows renames no directory a handle is open in.
    let made = init_bare(&temp)
        .map(drop)
        .map_err(StoreError::from)
        .and_then(|()| private(&temp))
        .and_then(|()| on_disk(&temp).map_err(|e| StoreError::io(&temp, e)));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(e);
    }
    match rename(&temp, path) {
        Ok(()) => {
            // The store is whole in place already: a directory that cannot be synced (some
            // network shares) does not undo that.
            if let Err(e) = super::packed::sync_dir(parent) {
                tracing::warn!(dir = %parent.display(), error = %e, "syncing the directory of a new store");
            }
            Ok(git2::Repository::open_bare(path)?)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&temp);
            // Another process's creation won the race: its store is whole.
            git2::Repository::open_bare(path).map_err(|_| StoreError::io(path, e))
        }
    }
}

/// The repository at `path`, which exists but did not open: one another process's creation
/// renamed into place between the look and the test, or something that is not a whole
/// repository, as a release that created stores in place could leave, where git fills in what
/// is missing.
pub(super) fn completed(path: &Path) -> Result<git2::Repository, StoreError> {
    match git2::Repository::open_bare(path) {
        Ok(r) => Ok(r),
        Err(_) => Ok(init_bare(path)?),
    }
}

/// A bare repository made (or completed) at `path`, its parents created.
fn init_bare(path: &Path) -> Result<git2::Repository, git2::Error> {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true)
        .mkpath(true)
        .mode(git2::RepositoryInitMode::SHARED_UMASK);
    git2::Repository::init_opts(path, &opts)
}

/// Renames directory `from` to `to`. On Windows, a moment later again while access is denied:
/// a virus scanner or the search indexer may hold a handle in a directory just written.
fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::rename(from, to) {
            Err(e)
                if cfg!(windows)
                    && e.kind() == std::io::ErrorKind::PermissionDenied
                    && tries < 20 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

/// Puts every file under `dir` on disk, and the names of every directory (Unix only: Windows
/// syncs no directory, and its files are left to the system): the rename that follows must not
/// outlive, in a power cut, the files it makes a store of, which would then be empty. A
/// filesystem that cannot sync (some network shares, FUSE volumes) is taken as it is.
fn on_disk(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                on_disk(&entry.path())?;
            } else if kind.is_file() {
                unless_unsupported(std::fs::File::open(entry.path())?.sync_all())?;
            }
        }
        unless_unsupported(super::packed::sync_dir(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `EBADF`, the same on Linux and macOS: what some filesystems say to a directory's fsync.
#[cfg(unix)]
const EBADF: i32 = 9;

/// `synced`, but a filesystem that does not sync (macOS's `F_FULLFSYNC` on a network share, a
/// directory on some filesystems) is not an error.
#[cfg(unix)]
fn unless_unsupported(synced: std::io::Result<()>) -> std::io::Result<()> {
    match synced {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::InvalidInput
            ) || e.raw_os_error() == Some(EBADF) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Makes the repository at `path` readable by its owner only.
pub(super) fn private(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The start of the names a creation of `path` lays its repository out under.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy());
    format!(".{name}.new-")
}

/// Removes what creations killed long ago left under `prefix` in `dir`; a creation still running
/// is younger than [`STALE_AFTER`] and keeps its own.
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let stale: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_AFTER)
        })
        .map(|e| e.path())
        .collect();
    for p in stale {
        let _ = std::fs::remove_dir_all(p);
    }
}
