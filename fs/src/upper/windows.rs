//! The upper layer on Windows. WinFsp cannot mount over a directory that exists, so the real
//! directory lives apart from the mount point (`%LOCALAPPDATA%\ferry\upper`, see the README) and
//! stays reachable by its path: every access is a plain path below it.

use super::{Kind, Meta, SetTime, Space};
use crate::error::FsResult;
use std::ffi::OsString;
use std::fs::{File, FileTimes, OpenOptions};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lets `CreateFileW` open a directory, to set its times.
const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;

#[link(name = "kernel32")]
unsafe extern "system" {
    fn GetDiskFreeSpaceExW(
        dir: *const u16,
        free_to_caller: *mut u64,
        total: *mut u64,
        free: *mut u64,
    ) -> i32;
}

fn ns(t: std::io::Result<SystemTime>) -> i128 {
    match t.map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_nanos() as i128,
        Ok(Err(e)) => -(e.duration().as_nanos() as i128),
        Err(_) => 0,
    }
}

fn system_time(ns: i128) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs() as u64)
    }
}

/// Windows has no permission bits: a read-only file shows as 0400, others as Claude Code's 0600
/// and 0700.
fn meta(m: &std::fs::Metadata) -> Option<Meta> {
    let kind = if m.is_file() {
        Kind::File
    } else if m.is_dir() {
        Kind::Dir
    } else {
        return None;
    };
    let mode = match (kind, m.permissions().readonly()) {
        (Kind::Dir, _) => 0o700,
        (Kind::File, true) => 0o400,
        (Kind::File, false) => 0o600,
    };
    Some(Meta {
        kind,
        size: if kind == Kind::File { m.len() } else { 0 },
        mode,
        mtime_ns: ns(m.modified()),
        atime_ns: ns(m.accessed()),
        ctime_ns: ns(m.created()),
        uid: 0,
        gid: 0,
        nlink: if kind == Kind::Dir { 2 } else { 1 },
    })
}

/// The upper layer directory.
pub struct Upper {
    root: PathBuf,
}

impl Upper {
    /// Opens (creating) the directory at `root`.
    pub fn open(root: &Path) -> FsResult<Upper> {
        std::fs::create_dir_all(root)?;
        Ok(Upper {
            root: root.to_path_buf(),
        })
    }

    fn full(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Where the directory is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path that reaches `rel` in the upper layer: on Windows, simply below it.
    pub fn reach(&self, rel: &Path) -> PathBuf {
        self.full(rel)
    }

    /// The metadata of `rel`, or `None` if it does not exist (or is neither file nor dir).
    pub fn stat(&self, rel: &Path) -> FsResult<Option<Meta>> {
        match std::fs::metadata(self.full(rel)) {
            Ok(m) => Ok(meta(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the file `rel` for reading and writing (falling back to read-only).
    pub fn open_file(&self, rel: &Path) -> FsResult<File> {
        let path = self.full(rel);
        match OpenOptions::new().read(true).write(true).open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(File::open(&path)?),
            other => Ok(other?),
        }
    }

    /// Creates the file `rel` (failing if it exists when `excl`), truncating it otherwise, and
    /// opens it for writing. Windows has no mode to give it.
    pub fn create_file(&self, rel: &Path, _mode: u32, excl: bool) -> FsResult<File> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        if excl {
            o.create_new(true);
        } else {
            o.create(true).truncate(true);
        }
        Ok(o.open(self.full(rel))?)
    }

    /// The entries of directory `rel` with their metadata (files and dirs only).
    pub fn list(&self, rel: &Path) -> FsResult<Vec<(OsString, Meta)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.full(rel))? {
            let entry = entry?;
            match std::fs::metadata(entry.path()) {
                Ok(m) => {
                    if let Some(m) = meta(&m) {
                        out.push((entry.file_name(), m));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Creates directory `rel`.
    pub fn mkdir(&self, rel: &Path, _mode: u32) -> FsResult<()> {
        std::fs::create_dir(self.full(rel))?;
        Ok(())
    }

    /// Removes the file `rel`.
    pub fn unlink(&self, rel: &Path) -> FsResult<()> {
        std::fs::remove_file(self.full(rel))?;
        Ok(())
    }

    /// Removes the empty directory `rel`.
    pub fn rmdir(&self, rel: &Path) -> FsResult<()> {
        std::fs::remove_dir(self.full(rel))?;
        Ok(())
    }

    /// Renames `from` to `to` (`noreplace`: fail if `to` exists). Windows replaces files
    /// atomically (`MoveFileExW` with `MOVEFILE_REPLACE_EXISTING`).
    pub fn rename(&self, from: &Path, to: &Path, noreplace: bool) -> FsResult<()> {
        if noreplace && self.stat(to)?.is_some() {
            return Err(crate::error::FsError::new(
                libc::EEXIST,
                format!("{} exists", to.display()),
            ));
        }
        std::fs::rename(self.full(from), self.full(to))?;
        Ok(())
    }

    /// Sets the access and modification times of `rel` (`None` leaves one unchanged).
    pub fn set_times(
        &self,
        rel: &Path,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> FsResult<()> {
        let when = |t: SetTime| match t {
            SetTime::Now => SystemTime::now(),
            SetTime::At(ns) => system_time(ns),
        };
        let mut times = FileTimes::new();
        if let Some(t) = atime {
            times = times.set_accessed(when(t));
        }
        if let Some(t) = mtime {
            times = times.set_modified(when(t));
        }
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
            .open(self.full(rel))?;
        f.set_times(times)?;
        Ok(())
    }

    /// Sets the permission bits of `rel`: on Windows only whether it is read-only.
    pub fn set_mode(&self, rel: &Path, mode: u32) -> FsResult<()> {
        let path = self.full(rel);
        let mut p = std::fs::metadata(&path)?.permissions();
        p.set_readonly(mode & 0o200 == 0);
        std::fs::set_permissions(&path, p)?;
        Ok(())
    }

    /// Space on the volume that holds the upper layer.
    pub fn space(&self) -> FsResult<Space> {
        let wide: Vec<u16> = self.root.as_os_str().encode_wide().chain([0]).collect();
        let (mut avail, mut total, mut free) = (0u64, 0u64, 0u64);
        // SAFETY: a NUL-terminated path and three valid out-pointers.
        let ok = unsafe { GetDiskFreeSpaceExW(wide.as_ptr(), &mut avail, &mut total, &mut free) };
        if ok == 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        const BLOCK: u64 = 4096;
        Ok(Space {
            blocks: total / BLOCK,
            blocks_free: free / BLOCK,
            blocks_available: avail / BLOCK,
            files: 0,
            files_free: 0,
            block_size: BLOCK as u32,
            fragment_size: BLOCK as u32,
            name_max: 255,
        })
    }
}
