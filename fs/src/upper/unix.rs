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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
        nlink: st.st_nlink as u32,
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

/// The metadata of an open file, as `fstat` gives it.
pub fn fstat_meta(f: &File) -> FsResult<Meta> {
    let st = nix::sys::stat::fstat(f.as_fd())?;
    meta(&st).ok_or_else(|| crate::error::FsError::new(libc::EINVAL, "not a file or directory"))
}

/// Sets the permission bits of an open file.
pub fn set_file_mode(f: &File, mode: u32) -> FsResult<()> {
    nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate((mode & 0o7777) as _))?;
    Ok(())
}

/// Sets the access and modification times of an open file (`None` leaves one unchanged).
pub fn set_file_times(f: &File, atime: Option<SetTime>, mtime: Option<SetTime>) -> FsResult<()> {
    nix::sys::stat::futimens(f.as_fd(), &timespec(atime), &timespec(mtime))?;
    Ok(())
}

/// The longest path one `*at` call takes (`PATH_MAX` counts the terminating NUL).
const MAX_AT: usize = libc::PATH_MAX as usize - 1;

/// How a directory on the way down a long path is opened: only to resolve names from.
#[cfg(target_os = "linux")]
const WAY_DOWN: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);
#[cfg(not(target_os = "linux"))]
const WAY_DOWN: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// A directory to resolve a path from: the upper root, or a directory opened on the way down
/// a path too long for one call.
enum Base<'u> {
    Root(BorrowedFd<'u>),
    Dir(OwnedFd),
}

impl AsFd for Base<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Base::Root(fd) => *fd,
            Base::Dir(fd) => fd.as_fd(),
        }
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

    /// Where to resolve `rel` from, and what is left of it: the root and `rel` itself, unless
    /// `rel` is longer than one call takes. The kernel counts a path's length from the caller's
    /// directory, so a tree may be deeper than `PATH_MAX` from the root: then the deepest
    /// directory on the way from which the rest fits in one call.
    fn near<'a>(&self, rel: &'a Path) -> FsResult<(Base<'_>, &'a Path)> {
        let mut base = Base::Root(self.dir.as_fd());
        let mut rest = at(rel);
        while rest.as_os_str().len() > MAX_AT {
            let mut step = PathBuf::new();
            for c in rest.components() {
                if step.as_os_str().len() + 1 + c.as_os_str().len() > MAX_AT {
                    break;
                }
                step.push(c);
            }
            if step.as_os_str().is_empty() {
                return Err(nix::Error::ENAMETOOLONG.into());
            }
            let fd = nix::fcntl::openat(base.as_fd(), &step, WAY_DOWN, Mode::empty())?;
            base = Base::Dir(fd);
            rest = rest.strip_prefix(&step).expect("a prefix of the path");
        }
        Ok((base, rest))
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
        let (base, rel) = self.near(rel)?;
        match nix::sys::stat::fstatat(base.as_fd(), at(rel), AtFlags::empty()) {
            Ok(st) => Ok(meta(&st)),
            Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the file `rel` for reading and writing (falling back to read-only).
    pub fn open_file(&self, rel: &Path) -> FsResult<File> {
        let (base, rel) = self.near(rel)?;
        let flags = OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::openat(base.as_fd(), rel, flags | OFlag::O_RDWR, Mode::empty()) {
            Err(nix::Error::EACCES | nix::Error::EROFS) => {
                nix::fcntl::openat(base.as_fd(), rel, flags | OFlag::O_RDONLY, Mode::empty())?
            }
            other => other?,
        };
        Ok(File::from(fd))
    }

    /// Creates the file `rel` with `mode` (failing if it exists when `excl`), truncating it
    /// otherwise, and opens it for writing. A new file gets exactly `mode`: the caller's umask
    /// is applied already (by the kernel, for a file made through the mount), and the
    /// daemon's own must not be applied again.
    pub fn create_file(&self, rel: &Path, mode: u32, excl: bool) -> FsResult<File> {
        let (base, rel) = self.near(rel)?;
        let mode = Mode::from_bits_truncate((mode & 0o7777) as _);
        let flags = OFlag::O_CLOEXEC | OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        match nix::fcntl::openat(base.as_fd(), rel, flags, mode) {
            Ok(fd) => {
                nix::sys::stat::fchmod(fd.as_fd(), mode)?;
                Ok(File::from(fd))
            }
            Err(nix::Error::EEXIST) if !excl => {
                let flags = OFlag::O_CLOEXEC | OFlag::O_RDWR | OFlag::O_TRUNC;
                Ok(File::from(nix::fcntl::openat(
                    base.as_fd(),
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
        let (base, rel) = self.near(rel)?;
        let fd = nix::fcntl::openat(
            base.as_fd(),
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
        let (base, rel) = self.near(rel)?;
        let mode = Mode::from_bits_truncate((mode & 0o7777) as _);
        nix::sys::stat::mkdirat(base.as_fd(), rel, mode)?;
        nix::sys::stat::fchmodat(
            base.as_fd(),
            rel,
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
        Ok(())
    }

    /// Removes the file `rel`.
    pub fn unlink(&self, rel: &Path) -> FsResult<()> {
        let (base, rel) = self.near(rel)?;
        nix::unistd::unlinkat(base.as_fd(), rel, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
        Ok(())
    }

    /// Removes the empty directory `rel`.
    pub fn rmdir(&self, rel: &Path) -> FsResult<()> {
        let (base, rel) = self.near(rel)?;
        nix::unistd::unlinkat(base.as_fd(), rel, nix::unistd::UnlinkatFlags::RemoveDir)?;
        Ok(())
    }

    /// Renames `from` to `to` inside the upper layer (`noreplace`: fail if `to` exists).
    pub fn rename(&self, from: &Path, to: &Path, noreplace: bool) -> FsResult<()> {
        let (fbase, from_at) = self.near(from)?;
        let (tbase, to_at) = self.near(to)?;
        #[cfg(target_os = "linux")]
        if noreplace {
            nix::fcntl::renameat2(
                fbase.as_fd(),
                from_at,
                tbase.as_fd(),
                to_at,
                RenameFlags::RENAME_NOREPLACE,
            )?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        if noreplace && self.stat(to)?.is_some() {
            return Err(nix::Error::EEXIST.into());
        }
        nix::fcntl::renameat(fbase.as_fd(), from_at, tbase.as_fd(), to_at)?;
        Ok(())
    }

    /// Sets the access and modification times of `rel` (`None` leaves one unchanged).
    pub fn set_times(
        &self,
        rel: &Path,
        atime: Option<SetTime>,
        mtime: Option<SetTime>,
    ) -> FsResult<()> {
        let (base, rel) = self.near(rel)?;
        nix::sys::stat::utimensat(
            base.as_fd(),
            at(rel),
            &timespec(atime),
            &timespec(mtime),
            UtimensatFlags::NoFollowSymlink,
        )?;
        Ok(())
    }

    /// Sets the permission bits of `rel`.
    pub fn set_mode(&self, rel: &Path, mode: u32) -> FsResult<()> {
        let (base, rel) = self.near(rel)?;
        nix::sys::stat::fchmodat(
            base.as_fd(),
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
