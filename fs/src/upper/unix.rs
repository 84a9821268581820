//! The upper layer on Unix: every access is relative to a directory fd (`openat` and friends)
//! opened before the mount covers the directory, so the daemon never walks into its own mount.

use super::{Kind, Meta, SetTime, Space};
use crate::error::FsResult;
#[cfg(target_os = "linux")]
use nix::fcntl::RenameFlags;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

// The casts differ in need per OS (`st_mode` is `u16` on macOS).
#[allow(clippy::unnecessary_cast)]
fn meta(st: &nix::sys::stat::FileStat) -> Option<Meta> {
    let fmt = SFlag::from_bits_truncate(st.st_mode as _) & SFlag::S_IFMT;
    let kind = if fmt == SFlag::S_IFREG {
        Kind::File
    } else if fmt == SFlag::S_IFDIR {
        Kind::Dir
    } else {
        return None;
    };
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    Some(Meta {
        kind,
        size: st.st_size as u64,
        mode: st.st_mode as u32 & 0o7777,
        mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
        atime_ns: ns(st.st_atime as i64, st.st_atime_nsec as i64),
        ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

fn timespec(t: Option<SetTime>) -> TimeSpec {
    match t {
        None => TimeSpec::UTIME_OMIT,
        Some(SetTime::Now) => TimeSpec::UTIME_NOW,
        Some(SetTime::At(ns)) => TimeSpec::new(
            ns.div_euclid(1_000_000_000) as _,
            ns.rem_euclid(1_000_000_000) as _,
        ),
    }
}

/// The upper layer directory.
pub struct Upper {
    dir: OwnedFd,
    root: PathBuf,
}

/// `rel` as an `*at` path: `.` for the root itself.
fn at(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

impl Upper {
    /// Opens (creating, mode 0700) the directory at `root`. Call before mounting over it.
    pub fn open(root: &Path) -> FsResult<Upper> {
        if !root.exists() {
            // Claude Code's own mode for its directories: this user's alone.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)?;
        }
        let dir = nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Upper {
            dir,
            root: root.to_path_buf(),
        })
    }

    /// Where the directory was when it was opened (now covered by the mount).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path that reaches `rel` in the upper layer by ordinary file APIs, even while the mount
    /// covers it: on Linux through `/proc/self/fd`, which resolves to the covered directory.
    /// Valid only inside this process. The sync engine reads committed files through it.
    pub fn reach(&self, rel: &Path) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd())).join(rel)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.root.join(rel)
        }
    }

    /// The metadata of `rel`, or `None` if it does not exist (or is neither file nor dir).
    /// Symlinks the user placed in the upper layer are followed, as Claude Code follows them.
    pub fn stat(&self, rel: &Path) -> FsResult<Option<Meta>> {
        match nix::sys::stat::fstatat(self.dir.as_fd(), at(rel), AtFlags::empty()) {
            Ok(st) => Ok(meta(&st)),
            Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the file `rel` for reading and writing (falling back to read-only).
    pub fn open_file(&self, rel: &Path) -> FsResult<File> {
        let flags = OFlag::O_CLOEXEC;
        let fd =
            match nix::fcntl::openat(self.dir.as_fd(), rel, flags | OFlag::O_RDWR, Mode::empty()) {
                Err(nix::Error::EACCES | nix::Error::EROFS) => nix::fcntl::openat(
                    self.dir.as_fd(),
                    rel,
                    flags | OFlag::O_RDONLY,
                    Mode::empty(),
                )?,
                other => other?,
            };
        Ok(File::from(fd))
    }

    /// Creates the file `rel` with `mode` (failing if it exists when `excl`), truncating it
    /// otherwise, and opens it for writing. A new file gets exactly `mode`: the caller's umask
    /// is applied already (by the kernel, for a file made through the mount), and the
    /// daemon's own must not be applied again.
    pub fn create_file(&self, rel: &Path, mode: u32, excl: bool) -> FsResult<File> {
        let mode = Mode::from_bits_truncate((mode & 0o7777) as _);
        let flags = OFlag::O_CLOEXEC | OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        match nix::fcntl::openat(self.dir.as_fd(), rel, flags, mode) {
            Ok(fd) => {
                nix::sys::stat::fchmod(fd.as_fd(), mode)?;
                Ok(File::from(fd))
            }
            Err(nix::Error::EEXIST) if !excl => {
                let flags = OFlag::O_CLOEXEC | OFlag::O_RDWR | OFlag::O_TRUNC;
                Ok(File::from(nix::fcntl::openat(
                    self.dir.as_fd(),
                    rel,
                    flags,
                    Mode::empty(),
                )?))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The entries of directory `rel` with their metadata (files and dirs only).
    pub fn list(&self, rel: &Path) -> FsResult<Vec<(OsString, Meta)>> {
        let fd = nix::fcntl::openat(
            self.dir.as_fd(),
            at(rel),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut dir = nix::dir::Dir::from_fd(fd)?;
        let mut out = Vec::new();
        let dirfd = dir.as_fd().try_clone_to_owned()?;
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(name).to_os_string();
            match nix::sys::stat::fstatat(dirfd.as_fd(), name.as_os_str(), AtFlags::empty()) {
                Ok(st) => {
                    if let Some(m) = meta(&st) {
                        out.push((name, m));
                    }
                }
                Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Creates directory `rel` with exactly `mode` (see [`Upper::create_file`]).
    pub fn mkdir(&self, rel: &Path, mode: u32) -> FsResult<()> {
        let mode = Mode::from_bits_truncate((mode & 0o7777) as _);
        nix::sys::stat::mkdirat(self.dir.as_fd(), rel, mode)?;
        nix::sys::stat::fchmodat(
            self.dir.as_fd(),
            rel,
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
        Ok(())
    }

    /// Removes the file `rel`.
    pub fn unlink(&self, rel: &Path) -> FsResult<()> {
        nix::unistd::unlinkat(
            self.dir.as_fd(),
            rel,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )?;
        Ok(())
    }

    /// Removes the empty directory `rel`.
    pub fn rmdir(&self, rel: &Path) -> FsResult<()> {
        nix::unistd::unlinkat(self.dir.as_fd(), rel, nix::unistd::UnlinkatFlags::RemoveDir)?;
        Ok(())
    }

    /// Renames `from` to `to` inside the upper layer (`noreplace`: fail if `to` exists).
    pub fn rename(&self, from: &Path, to: &Path, noreplace: bool) -> FsResult<()> {
        #[cfg(target_os = "linux")]
        if noreplace {
            nix::fcntl::renameat2(
                self.dir.as_fd(),
                from,
                self.dir.as_fd(),
                to,
                RenameFlags::RENAME_NOREPLACE,
            )?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        if noreplace && self.stat(to)?.is_some() {
            return Err(nix::Error::EEXIST.into());
        }
        nix::fcntl::renameat(self.dir.as_fd(), from, self.dir.as_fd(), to)?;
        Ok(())
    }

    /// Sets the access and modification times of `rel` (`None` leaves one unchanged).
    pub fn set_times(
        &self,
        rel: &Path,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> FsResult<()> {
        nix::sys::stat::utimensat(
            self.dir.as_fd(),
            at(rel),
            &timespec(atime),
            &timespec(mtime),
            UtimensatFlags::NoFollowSymlink,
        )?;
        Ok(())
    }

    /// Sets the permission bits of `rel`.
    pub fn set_mode(&self, rel: &Path, mode: u32) -> FsResult<()> {
        nix::sys::stat::fchmodat(
            self.dir.as_fd(),
            at(rel),
            Mode::from_bits_truncate((mode & 0o7777) as _),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
        Ok(())
    }

    /// Space on the filesystem that holds the upper layer.
    #[allow(clippy::useless_conversion)] // the C types are narrower on some Unixes
    pub fn space(&self) -> FsResult<Space> {
        let s = nix::sys::statvfs::fstatvfs(self.dir.as_fd())?;
        Ok(Space {
            blocks: s.blocks().into(),
            blocks_free: s.blocks_free().into(),
            blocks_available: s.blocks_available().into(),
            files: s.files().into(),
            files_free: s.files_free().into(),
            block_size: s.block_size() as u32,
            fragment_size: s.fragment_size() as u32,
            name_max: s.name_max() as u32,
        })
    }
}
