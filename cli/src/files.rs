//! Writing ferry's own files and the user's: atomically where a reader must never see half a
//! file, and readable by this user only, as Claude Code's own files are.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Writes `value` as JSON to `path` atomically (a reader never sees half a file), readable by
/// this user only.
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file beside it (a reader never sees half a
/// file), readable by this user only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&tmp)?.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` readable by this user only (0600), creating missing parents as
/// 0700: Claude Code's own modes. Used for files in `projects/`, where it is an ordinary write
/// through the view.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_private_to(path, bytes, true)
}

/// [`write_private`], or when `replace` is false, only if nothing is at `path` yet (an
/// existing file is an error that names it).
pub fn write_private_to(path: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    private_parent(path)?;
    let mut options = std::fs::OpenOptions::new();
    if replace {
        options.write(true).create(true).truncate(true);
    } else {
        options.write(true).create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists already; pass --force to replace it, or give another file",
            path.display()
        ),
        opened => opened
            .and_then(|mut f| f.write_all(bytes))
            .with_context(|| format!("writing {}", path.display())),
    }
}

/// Creates `dir` (and parents) readable by this user only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Replaces the file at `path` with `bytes` (readable by this user only) through a new file
/// beside it, renamed over it: a reader, a crash or a full disk never leaves half of either.
/// Unless `seen` (its length and mtime when read) still holds, nothing is written and `false`
/// is returned: someone wrote it meanwhile.
pub fn replace_private(
    path: &Path,
    bytes: &[u8],
    seen: Option<(u64, std::time::SystemTime)>,
) -> Result<bool> {
    let parent = private_parent(path)?;
    let name = path
        .file_name()
        .context("a file needs a name")?
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}.ferry-new"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    let now = std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    if now != seen {
        let _ = std::fs::remove_file(&tmp);
        return Ok(false);
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(true)
}

/// The directory of `path`, created readable by this user only (0700) if it is missing.
fn private_parent(path: &Path) -> Result<&Path> {
    let parent = path.parent().context("a file needs a directory")?;
    if !parent.exists() {
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        #[cfg(not(unix))]
        std::fs::create_dir_all(parent)?;
    }
    Ok(parent)
}
