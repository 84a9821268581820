//! A push to a remote on this computer's disks (a path, `file://`) that died with the git
//! receiving it (a power cut, the whole process tree killed) can leave that git's lock on the
//! branch's ref in the remote, and every later push then fails on it (git: "Unable to create
//! '….lock': File exists"; libgit2: "failed to lock file"). The branch is this machine's alone
//! and its daemon pushes it one push at a time, and a ref's lock is held for the moment its
//! update takes: a lock on it older than [`STALE`] is a dead push's, and is removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How old the lock on this machine's branch is before it is taken for a dead push's.
const STALE: Duration = Duration::from_secs(120);

/// Whether a push's failure `message` is a ref lock that could not be taken: git's "Unable to
/// create '….lock': File exists", libgit2's "failed to lock file '….lock' for writing" (or, by
/// its other path, "failed to create locked file" with the system's "The file exists.").
pub(super) fn is_lock_failure(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains(".lock") && (m.contains("exists") || m.contains("failed to lock"))
}

/// Removes a dead push's lock on this machine's branch in the local remote `url`; whether one
/// was removed (a remote elsewhere, or a lock held now, is left alone).
pub(super) fn clear_own_lock(url: &str, machine_id: &str) -> bool {
    let Some(lock) = own_lock(url, machine_id) else {
        return false;
    };
    let stale = std::fs::metadata(&lock)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE));
    if !stale {
        return false;
    }
    match std::fs::remove_file(&lock) {
        Ok(()) => {
            tracing::warn!(lock = %lock.display(), "removed a dead push's lock on this machine's branch in the remote");
            true
        }
        Err(_) => false,
    }
}

/// The lock file of this machine's branch in the remote at `url`, if that is a path here.
fn own_lock(url: &str, machine_id: &str) -> Option<PathBuf> {
    let path = match url.strip_prefix("file://") {
        Some(rest) => Path::new(rest),
        None if Path::new(url).is_absolute() => Path::new(url),
        None => return None,
    };
    // A bare repository, or one with a work tree.
    let git_dir = match path.join(".git") {
        dot if dot.is_dir() => dot,
        _ => path.to_path_buf(),
    };
    let lock = git_dir.join(format!("refs/heads/machines/{machine_id}.lock"));
    // Only an id as ferry makes them names a file in that directory.
    (machine_id.bytes().all(|b| b.is_ascii_alphanumeric()) && lock.is_file()).then_some(lock)
}
