//! Where the view is mounted and where the upper layer is, per OS.
//!
//! On Unix the upper layer is the real `projects/` directory underneath the mount, opened
//! before mounting; a stale mount left there by a crashed daemon is cleared first. On Windows
//! (see `ferry_platform::relocate`) the upper layer is `<state dir>\upper`: a real directory at
//! the mount point is merged into it first, and at unmount a junction to it is left in its
//! place, so Claude Code still finds every local session with nothing mounted.

use crate::state::State;
use anyhow::{Context, Result};
use ferry_fs::upper::Upper;
use std::path::Path;

/// Clears the mount point and opens the upper layer.
#[cfg(unix)]
pub fn open_upper(_state: &State, mountpoint: &Path) -> Result<Upper> {
    super::clear_mount_point(mountpoint)?;
    Upper::open(mountpoint).with_context(|| format!("opening {}", mountpoint.display()))
}

/// Clears the mount point (merging a real directory there into the upper layer) and opens the
/// upper layer.
#[cfg(not(unix))]
pub fn open_upper(state: &State, mountpoint: &Path) -> Result<Upper> {
    use ferry_platform::relocate::{AtMountPoint, at_mount_point, merge_into};
    let upper = state.upper();
    match at_mount_point(mountpoint)? {
        AtMountPoint::Nothing => {}
        AtMountPoint::Link => std::fs::remove_dir(mountpoint)
            .with_context(|| format!("removing the junction at {}", mountpoint.display()))?,
        AtMountPoint::Directory => {
            let aside = state
                .dir
                .join("set-aside")
                .join(ferry_sync::engine::now_ms().to_string());
            let m = merge_into(mountpoint, &upper, &aside).with_context(|| {
                format!(
                    "moving {} into {} (run `ferry mount` again to finish; nothing is lost)",
                    mountpoint.display(),
                    upper.display()
                )
            })?;
            tracing::info!(
                moved = m.moved,
                same = m.same,
                grew = m.grew,
                aside = m.aside.len(),
                "moved the projects directory into the upper layer"
            );
            if !m.aside.is_empty() {
                eprintln!(
                    "ferry: {} file(s) in {} differed from ferry's copy and were kept in {}",
                    m.aside.len(),
                    mountpoint.display(),
                    aside.display()
                );
            }
        }
        AtMountPoint::File => anyhow::bail!(
            "{} is a file, not a directory; move it away and run `ferry mount` again",
            mountpoint.display()
        ),
    }
    Upper::open(&upper).with_context(|| format!("opening {}", upper.display()))
}

/// After the mount is gone: on Windows, the junction that shows the upper layer in its place.
pub fn after_unmount(mountpoint: &Path, upper: &Path) {
    #[cfg(windows)]
    if let Err(e) = ferry_platform::relocate::junction(mountpoint, upper) {
        tracing::warn!(error = %e, "leaving a junction to the upper layer failed; Claude Code sees no sessions until the next mount");
    }
    let _ = (mountpoint, upper);
}
