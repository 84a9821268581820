//! The mirror's file operations: stats as it compares them, and private files written whole.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// The length and mtime (ns) of a regular file.
pub(super) fn stat(path: &Path) -> Option<(u64, i128)> {
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.is_file() {
        return None;
    }
    let t = md.modified().ok()?;
    let ns = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    Some((md.len(), ns))
}

/// The temporary name a file is written under before it takes its place: never a name Claude
/// Code reads (`.json`, `.md`) nor one ferry syncs.
pub(super) fn temp_for(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{}{name}.part", ferry_sync::upper::TEMP_PREFIX))
}

/// Creates `dir` and its missing parents, private (0700), as Claude Code's own `mkdir -p`.
pub(super) fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Writes `bytes` to a new file at `path` with `mode` and, if given, modification time
/// `mtime_ms`.
pub(super) fn write_new(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    mtime_ms: Option<i64>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode & 0o777);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    if let Some(ms) = mtime_ms {
        f.set_modified(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))?;
    }
    Ok(())
}

/// Replaces the file at `path` with `bytes` through a temporary file renamed over it, so that
/// a reader (the engine committing it) never sees half of it.
pub(super) fn replace(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    mtime_ms: Option<i64>,
) -> std::io::Result<()> {
    let tmp = temp_for(path);
    write_new(&tmp, bytes, mode, mtime_ms)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Removes the files in `dir` not modified for `age`.
pub(super) fn remove_older(dir: &Path, age: Duration) {
    let Some(cutoff) = std::time::SystemTime::now().checked_sub(age) else {
        return;
    };
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
