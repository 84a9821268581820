//! Which checkout a process that calls into the mount is working in, for adopting checkouts
//! (see `core::adopt`): its cwd, read from `/proc` on Linux, and git's answer for that cwd,
//! remembered per cwd so a lookup pays for the discovery once.

use ferry_sync::project_key::discover;
use ferry_sync::remote_url::normalise;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most cwds remembered; the map is cleared when it is full.
const REMEMBERED: usize = 256;

/// A checkout: its root, and its origin's normalised URL (a project key base).
pub type Checkout = (String, String);

/// Finds and remembers the checkouts of requesting processes.
pub struct Requesters {
    /// The mount point: a cwd inside it is never looked at, since git would call back into the
    /// mount while the kernel waits on this request.
    mountpoint: PathBuf,
    seen: Mutex<HashMap<PathBuf, Option<Checkout>>>,
}

impl Requesters {
    /// Finder for a mount at `mountpoint`.
    pub fn new(mountpoint: &Path) -> Requesters {
        Requesters {
            mountpoint: mountpoint.to_path_buf(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The checkout process `pid` works in, if it has a cwd outside the mount inside a git
    /// checkout with an `origin`.
    pub fn checkout_of(&self, pid: u32) -> Option<Checkout> {
        let cwd = process_cwd(pid)?;
        if cwd.starts_with(&self.mountpoint) {
            return None;
        }
        if let Some(known) = self.lock().get(&cwd) {
            return known.clone();
        }
        let found = discover(&cwd).ok().flatten().and_then(|c| {
            let key = normalise(c.origin.as_deref()?)?;
            Some((c.root, key))
        });
        let mut seen = self.lock();
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(cwd, found.clone());
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Option<Checkout>>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(target_os = "linux")]
fn process_cwd(pid: u32) -> Option<PathBuf> {
    (pid != 0)
        .then(|| std::fs::read_link(format!("/proc/{pid}/cwd")).ok())
        .flatten()
}

/// Elsewhere the cwd of another process is not read yet: checkouts are placed by own sessions
/// and `ferry link` only.
#[cfg(not(target_os = "linux"))]
fn process_cwd(_pid: u32) -> Option<PathBuf> {
    None
}
