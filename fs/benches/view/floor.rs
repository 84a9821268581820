//! The floor: the least a FUSE daemon can cost on this machine, measured in the same run as the
//! view. A mirror of one directory that does nothing but the system call each request asks for
//! (lookup and getattr stat, read preads, write pwrites), with the view's kernel settings: OPEN,
//! OPENDIR and FLUSH answered ENOSYS, READDIRPLUS, 1 MiB requests, two threads. No engine, no
//! index, no notes: what the view costs beyond it is the view's own.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, KernelConfig,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite,
    Request, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// As long as the view's.
const TTL: Duration = Duration::from_secs(60);

/// Paths by inode number, and a descriptor per file once read or written.
#[derive(Default)]
struct Table {
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    fds: HashMap<u64, Arc<File>>,
}

struct Mirror {
    root: PathBuf,
    table: Mutex<Table>,
}

impl Mirror {
    fn path(&self, ino: INodeNo) -> Option<PathBuf> {
        let t = self.table.lock().unwrap();
        match ino.0 {
            1 => Some(self.root.clone()),
            i => t.paths.get(&i).cloned(),
        }
    }

    fn ino(&self, path: &Path) -> u64 {
        let mut t = self.table.lock().unwrap();
        if let Some(&i) = t.inos.get(path) {
            return i;
        }
        let i = t.paths.len() as u64 + 2;
        t.paths.insert(i, path.to_path_buf());
        t.inos.insert(path.to_path_buf(), i);
        i
    }

    fn fd(&self, ino: INodeNo) -> Option<Arc<File>> {
        if let Some(f) = self.table.lock().unwrap().fds.get(&ino.0) {
            return Some(f.clone());
        }
        let f = Arc::new(
            File::options()
                .read(true)
                .write(true)
                .open(self.path(ino)?)
                .ok()?,
        );
        self.table.lock().unwrap().fds.insert(ino.0, f.clone());
        Some(f)
    }
}

fn attr(ino: u64, m: &std::fs::Metadata) -> FileAttr {
    let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: t(m.atime(), m.atime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        ctime: t(m.ctime(), m.ctime_nsec()),
        crtime: SystemTime::UNIX_EPOCH,
        kind: if m.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for Mirror {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        ferry_fs::fuse::ask_kernel(config);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(path) = self.path(parent).map(|p| p.join(name)) else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::symlink_metadata(&path) {
            Ok(m) => reply.entry(&TTL, &attr(self.ino(&path), &m), Generation(0)),
            Err(_) => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path(ino).map(std::fs::symlink_metadata) {
            Some(Ok(m)) => reply.attr(&TTL, &attr(ino.0, &m)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.fd(ino) else {
            return reply.error(Errno::EIO);
        };
        let mut buf = vec![0u8; size as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(_) => return reply.error(Errno::EIO),
            }
        }
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(f) = self.fd(ino) else {
            return reply.error(Errno::EIO);
        };
        let at = match flags.0 & libc::O_APPEND != 0 {
            true => f.metadata().map(|m| m.len()).unwrap_or(offset),
            false => offset,
        };
        match f.write_all_at(data, at) {
            Ok(()) => reply.written(data.len() as u32),
            Err(_) => reply.error(Errno::EIO),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }
}

/// The floor mirror of `root`, mounted at `mountpoint` until dropped.
pub struct Floor {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl Floor {
    /// Mounts a mirror of `root` at `mountpoint` (both existing directories).
    pub fn mount(root: &Path, mountpoint: &Path) -> Floor {
        let mirror = Mirror {
            root: root.to_path_buf(),
            table: Mutex::new(Table::default()),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("floor".into()),
            MountOption::DefaultPermissions,
            MountOption::NoAtime,
            MountOption::RW,
        ];
        config.n_threads = Some(2);
        config.clone_fd = true;
        let session = fuser::Session::new(mirror, mountpoint, &config)
            .expect("mount the floor mirror (root, /dev/fuse)")
            .spawn()
            .expect("serve the floor mirror");
        Floor {
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = ferry_platform::mount::unmount(&self.mountpoint);
        if let Some(s) = self.session.take() {
            let _ = s.join();
        }
    }
}
