//! The upper layer: this machine's real `projects/` directory, opened before the mount covers
//! it. When the mount goes away the directory holds every write as a plain file. On Unix every
//! access goes through a directory fd ([`unix`]); on Windows, where the mount is elsewhere and
//! the directory stays uncovered, through its path ([`windows`]).

use crate::error::{FsError, FsResult};
use std::path::{Path, PathBuf};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{Upper, fstat_meta, set_file_mode, set_file_times};
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::Upper;

/// What kind of entry a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// The metadata of an upper-layer entry that the view reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// File or directory.
    pub kind: Kind,
    /// Length in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Access time, nanoseconds since the epoch.
    pub atime_ns: i128,
    /// Change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links: for a directory two, plus one per subdirectory (its `..`).
    pub nlink: u32,
}

impl Meta {
    /// Modification time in ms, as the store records it.
    pub fn mtime_ms(&self) -> i64 {
        (self.mtime_ns / 1_000_000) as i64
    }
}

/// A time to set: a given instant, or now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetTime {
    /// Nanoseconds since the epoch.
    At(i128),
    /// The current time.
    Now,
}

/// Space on the filesystem that holds the upper layer, as `statfs` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks free to this user.
    pub blocks_available: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Block size.
    pub block_size: u32,
    /// Fragment size.
    pub fragment_size: u32,
    /// Longest name.
    pub name_max: u32,
}

impl Upper {
    /// Creates `rel` and any missing parents (mode 0700, as Claude Code's `mkdir -p` does).
    pub fn mkdir_all(&self, rel: &Path) -> FsResult<()> {
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            match self.stat(&cur)? {
                Some(m) if m.kind == Kind::Dir => {}
                Some(_) => {
                    return Err(FsError::new(
                        libc::ENOTDIR,
                        format!("{} is not a directory", cur.display()),
                    ));
                }
                None => match self.mkdir(&cur, 0o700) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::EEXIST => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }
}
