//! Finding, and taking down, a mount at a path: a live ferry mount (mounting twice is an error),
//! a stale one left by a crashed daemon (ENOTCONN, which `ferry mount` recovers by itself), or
//! none.

use std::path::Path;

/// What is mounted at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Nothing: the path is a plain directory (or missing).
    None,
    /// A FUSE mount that answers.
    Live,
    /// A FUSE mount whose daemon is gone: every access fails with ENOTCONN.
    Stale,
    /// Some other filesystem is mounted there.
    Other,
}

/// Undoes the octal escapes of `/proc/self/mountinfo` (`\040` for a space).
#[cfg(target_os = "linux")]
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The filesystem type mounted exactly at `path`, from `/proc/self/mountinfo` (the last, i.e.
/// topmost, mount there).
#[cfg(target_os = "linux")]
fn fstype_at(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    let mut found = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() > 4 && unescape(fields[4]) == want {
            found = fields.get(sep + 1).map(|s| s.to_string());
        }
    }
    found
}

/// Whether anything is mounted at `path`, from the mount table alone (never touches the mount,
/// so it cannot hang on a daemon that does not answer).
#[cfg(target_os = "linux")]
pub fn is_mounted(path: &Path) -> bool {
    fstype_at(path).is_some()
}

/// Whether anything is mounted at `path`; other systems: by `statfs` of the path.
#[cfg(not(target_os = "linux"))]
pub fn is_mounted(path: &Path) -> bool {
    mount_state(path) != MountState::None
}

/// What is mounted at `path` (which should be absolute and free of symlinks).
#[cfg(target_os = "linux")]
pub fn mount_state(path: &Path) -> MountState {
    match fstype_at(path) {
        None => MountState::None,
        // `statfs` always reaches the daemon (attributes may be answered from the kernel's
        // cache even when the daemon is gone).
        Some(t) if t.starts_with("fuse") => match nix::sys::statvfs::statvfs(path) {
            Err(nix::errno::Errno::ENOTCONN | nix::errno::Errno::ECONNABORTED) => MountState::Stale,
            _ => MountState::Live,
        },
        Some(_) => MountState::Other,
    }
}

/// What is mounted at `path`; other systems: learnt from a failing `stat` only.
#[cfg(not(target_os = "linux"))]
pub fn mount_state(path: &Path) -> MountState {
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(57) => MountState::Stale,
        _ => MountState::None,
    }
}

/// Detaches the mount at `path` at once, even while files in it are open (they keep working
/// until closed; new opens see the directory underneath). As root by `umount2(MNT_DETACH)`,
/// otherwise through `fusermount3 -u -z`.
#[cfg(unix)]
pub fn unmount(path: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if nix::unistd::geteuid().is_root() {
        return nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
            .map_err(std::io::Error::from);
    }
    let mut last = std::io::Error::other("no fusermount found");
    for tool in ["fusermount3", "fusermount"] {
        match std::process::Command::new(tool)
            .args(["-u", "-z"])
            .arg(path)
            .output()
        {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => {
                last = std::io::Error::other(format!(
                    "{tool} -u -z failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => last = e,
        }
    }
    #[cfg(target_os = "macos")]
    if let Ok(o) = std::process::Command::new("umount")
        .arg("-f")
        .arg(path)
        .output()
        && o.status.success()
    {
        return Ok(());
    }
    Err(last)
}

/// On Windows a WinFsp mount ends with the daemon that serves it: there is nothing to detach
/// from outside.
#[cfg(not(unix))]
pub fn unmount(path: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!(
            "the mount at {} ends with its daemon; `ferry unmount` stops it",
            path.display()
        ),
    ))
}

/// A file a process holds open under a mount, as `ferry unmount` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    /// The process.
    pub pid: u32,
    /// Its descriptor.
    pub fd: u32,
    /// Its command name.
    pub command: String,
    /// The file.
    pub path: std::path::PathBuf,
}

/// Every file other processes hold open under `path` (their descriptors, from `/proc`), so that
/// an unmount can say what it waits for. Only Linux can tell; elsewhere the list is empty.
pub fn open_under(path: &Path) -> Vec<OpenFile> {
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id();
        let mut found = Vec::new();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return found;
        };
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Some(n) = fd.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if let Ok(target) = std::fs::read_link(fd.path())
                    && target.starts_with(path)
                    && target != path
                {
                    let command = std::fs::read_to_string(p.path().join("comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    found.push(OpenFile {
                        pid,
                        fd: n,
                        command,
                        path: target,
                    });
                }
            }
        }
        found.sort_by_key(|f| (f.pid, f.fd));
        found
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Vec::new()
    }
}

/// Those of `files` still open: their process still holds that descriptor (after a lazy unmount
/// their paths no longer name the mount, so the descriptors are followed, not the paths).
pub fn still_open(files: &[OpenFile]) -> Vec<OpenFile> {
    files
        .iter()
        .filter(|f| {
            cfg!(target_os = "linux") && Path::new(&format!("/proc/{}/fd/{}", f.pid, f.fd)).exists()
        })
        .cloned()
        .collect()
}
