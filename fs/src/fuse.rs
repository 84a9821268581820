//! The FUSE adapter: translates kernel requests into calls on the core ([`crate::core::Fs`]) and
//! its errors into errnos, and keeps the only state the kernel protocol needs that the core does
//! not: inode numbers for paths.
//!
//! Choices that make Claude Code's append cycle cheap (DESIGN.md's floor): OPEN, OPENDIR and
//! FLUSH answer ENOSYS, so the kernel stops sending them and keeps page caches across opens; the
//! core keeps descriptors per path. READDIRPLUS fills attributes while listing. Entries and
//! attributes are cached by the kernel and dropped explicitly when a fetch changes a file.
//!
//! Why not FUSE passthrough (kernel 6.9+), which would serve upper-layer reads and writes at
//! native speed: registering a backing file needs CAP_SYS_ADMIN, which a user's own daemon does
//! not have, and it works per OPEN, so every open would cost a round trip again. Worse, the kernel
//! fails (EIO) any open of an inode passed through elsewhere unless it is passed through to the
//! same backing file: a writer's append beside a reader would fail, or its writes would bypass
//! the daemon and the engine (tried; BENCHMARKS.md, "Against the floor"). The stateless design
//! serves every user the same way; warm reads come from the kernel's page cache.

use crate::core::{Attr, Detached, Fs, SetAttr};
use crate::error::FsError;
use crate::requester::Requesters;
use crate::upper::{Kind, SetTime};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, MountOption, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may trust an entry or attributes: long, since every change either goes
/// through this adapter or is invalidated explicitly after a fetch.
const TTL: Duration = Duration::from_secs(60);

/// A directory listing as the kernel reads it: inode, name and attributes of each entry.
type Listing = Arc<Vec<(u64, OsString, Attr)>>;

/// What to invalidate for one changed path: its inode, and its entry in its parent.
type Invalidation = (Option<u64>, Option<(u64, OsString)>);

/// Inode numbers for view paths. A path keeps its number until it is removed or renamed.
#[derive(Default)]
struct Inodes {
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next: u64,
    /// How many times the kernel was given each inode (lookups, creations, listed entries)
    /// and has not forgotten: while it is above zero the kernel may still use the inode.
    lookups: HashMap<u64, u64>,
    /// Files whose name went away while the kernel still had them (an open descriptor, or
    /// just not yet evicted), by inode, until the kernel forgets them.
    detached: HashMap<u64, Arc<Detached>>,
    /// Directory listings being read, by directory inode (taken at offset 0).
    listings: HashMap<u64, Listing>,
}

impl Inodes {
    fn new() -> Inodes {
        let mut i = Inodes {
            next: 2,
            ..Inodes::default()
        };
        i.paths.insert(1, PathBuf::new());
        i.inos.insert(PathBuf::new(), 1);
        i
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ESTALE)
    }

    /// What inode `ino` is: a path of the view, or a file whose name is gone.
    fn target(&self, ino: INodeNo) -> Result<Target, Errno> {
        match self.paths.get(&ino.0) {
            Some(p) => Ok(Target::Path(p.clone())),
            None => self
                .detached
                .get(&ino.0)
                .map(|d| Target::Detached(d.clone()))
                .ok_or(Errno::ESTALE),
        }
    }

    /// The number of `path`, counted as handed to the kernel (a LOOKUP, CREATE or MKDIR reply).
    fn give(&mut self, path: &Path) -> u64 {
        let ino = self.ino(path);
        self.looked_up(ino);
        ino
    }

    /// Counts one more reference the kernel got to `ino`.
    fn looked_up(&mut self, ino: u64) {
        *self.lookups.entry(ino).or_default() += 1;
    }

    /// The kernel dropped `n` references to `ino`: once none is left, a detached file's bytes
    /// go.
    fn forget(&mut self, ino: u64, n: u64) {
        if let Some(count) = self.lookups.get_mut(&ino) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                self.lookups.remove(&ino);
                self.detached.remove(&ino);
            }
        }
    }

    /// Whether the kernel may still use `ino`.
    fn in_kernel(&self, ino: u64) -> bool {
        self.lookups.get(&ino).is_some_and(|&n| n > 0)
    }

    /// Forgets `path`, whose name is gone; its inode keeps serving `held` (the bytes it had)
    /// until the kernel forgets it.
    fn retire(&mut self, path: &Path, held: Option<(u64, Detached)>) {
        self.remove(path);
        if let Some((ino, d)) = held {
            self.detached.insert(ino, Arc::new(d));
        }
    }

    fn ino(&mut self, path: &Path) -> u64 {
        if let Some(&i) = self.inos.get(path) {
            return i;
        }
        let i = self.next;
        self.next += 1;
        self.paths.insert(i, path.to_path_buf());
        self.inos.insert(path.to_path_buf(), i);
        i
    }

    fn known(&self, path: &Path) -> Option<u64> {
        self.inos.get(path).copied()
    }

    /// Forgets `path` and everything under it: a new file there gets a new number.
    fn remove(&mut self, path: &Path) {
        let gone: Vec<PathBuf> = self
            .inos
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        for p in gone {
            if let Some(i) = self.inos.remove(&p) {
                self.paths.remove(&i);
            }
        }
    }

    /// Moves `from` and everything under it to `to`, keeping the numbers.
    fn rename(&mut self, from: &Path, to: &Path) {
        self.remove(to);
        let moved: Vec<(PathBuf, u64)> = self
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for (p, i) in moved {
            self.inos.remove(&p);
            // `join("")` would add a trailing separator.
            let rest = p.strip_prefix(from).expect("prefix");
            let new = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            self.paths.insert(i, new.clone());
            self.inos.insert(new, i);
        }
    }
}

/// What a request's inode is.
enum Target {
    /// A path of the view.
    Path(PathBuf),
    /// A file whose name went away while it was open.
    Detached(Arc<Detached>),
}

/// What a rename's flags ask for: an exchange or whiteout (refused), and no-replace.
#[cfg(target_os = "linux")]
fn rename_mode(flags: RenameFlags) -> (bool, bool) {
    (
        flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT),
        flags.contains(RenameFlags::RENAME_NOREPLACE),
    )
}

/// What a rename's flags ask for on macOS, where macFUSE passes `renamex_np`'s flags:
/// `RENAME_SWAP` (refused) and `RENAME_EXCL` (no-replace).
#[cfg(not(target_os = "linux"))]
fn rename_mode(flags: RenameFlags) -> (bool, bool) {
    const RENAME_SWAP: u32 = 0x2;
    const RENAME_EXCL: u32 = 0x4;
    (
        flags.bits() & RENAME_SWAP != 0,
        flags.bits() & RENAME_EXCL != 0,
    )
}

/// The adapter the fuser session runs.
struct Adapter {
    fs: Arc<Fs>,
    inodes: Arc<Mutex<Inodes>>,
    requesters: Requesters,
    /// How to drop the kernel's caches when the view changes under a request (set once the
    /// session exists).
    notifier: Arc<std::sync::OnceLock<Notifier>>,
}

/// What the view asks of the kernel at INIT: attributes while listing, parallel lookups, async
/// reads, and 1 MiB requests. Public so that a bench's minimal daemon can ask the same.
pub fn ask_kernel(config: &mut KernelConfig) {
    for flag in [
        InitFlags::FUSE_DO_READDIRPLUS,
        InitFlags::FUSE_READDIRPLUS_AUTO,
        InitFlags::FUSE_PARALLEL_DIROPS,
        InitFlags::FUSE_ASYNC_READ,
        InitFlags::FUSE_BIG_WRITES,
    ] {
        let _ = config.add_capabilities(flag);
    }
    let _ = config.set_max_write(1 << 20);
    let _ = config.set_max_readahead(1 << 20);
}

/// The errno to answer with; the failure is logged inside the operation's span (a routine
/// answer at debug level, anything else as a warning, with the error it came from).
fn errno(e: FsError) -> Errno {
    if e.is_routine() {
        tracing::debug!(error = %e, "operation failed");
    } else {
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        tracing::warn!(error = %e, source, "operation failed");
    }
    Errno::from_i32(e.errno)
}

fn system_time(ns: i128) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs() as u64)
    }
}

fn file_attr(ino: u64, a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: system_time(a.atime_ns),
        mtime: system_time(a.mtime_ns),
        ctime: system_time(a.ctime_ns),
        crtime: system_time(a.mtime_ns),
        kind: match a.kind {
            Kind::Dir => FileType::Directory,
            Kind::File => FileType::RegularFile,
        },
        perm: a.mode as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// The attributes of a file whose name is gone: no links, as `fstat` says on a local disk.
fn detached_attr(ino: u64, a: &Attr) -> FileAttr {
    FileAttr {
        nlink: 0,
        ..file_attr(ino, a)
    }
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => SetTime::At(match st.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }),
    })
}

impl Adapter {
    fn inodes(&self) -> MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.inodes().path(ino)
    }

    /// Adopts the checkout process `pid` works in (see `core::adopt`); whether the view changed.
    fn adopt(&self, pid: u32) -> bool {
        let Some((root, key)) = self.requesters.checkout_of(pid) else {
            return false;
        };
        match self.fs.adopt_checkout(&root, &key) {
            Ok(Some(changed)) => {
                // The project moved: the kernel's listings of the places it left and came to
                // (and of the root) are stale. Dropped from another thread: the kernel may
                // need this request's locks to do it.
                if let Some(notifier) = self.notifier.get() {
                    let (notifier, inodes) = (notifier.clone(), self.inodes.clone());
                    std::thread::spawn(move || invalidate(&notifier, &inodes, &changed));
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(%e, root, "adopting a checkout failed");
                false
            }
        }
    }

    fn target(&self, ino: INodeNo) -> Result<Target, Errno> {
        self.inodes().target(ino)
    }

    /// Holds the bytes of file `path` for the kernel's inode of it (if it has one), before an
    /// unlink or a rename over it takes its name: descriptors open on it keep working, as on
    /// a local disk. Called with the inodes locked, which stay locked until the name is gone
    /// and the inode retired, so no request finds the inode with its name gone in between.
    fn hold(&self, inodes: &Inodes, path: &Path) -> Option<(u64, Detached)> {
        let ino = inodes.known(path).filter(|&i| inodes.in_kernel(i))?;
        match self.fs.detach(path) {
            Ok(d) => d.map(|d| (ino, d)),
            Err(e) => {
                tracing::warn!(%e, ?path, "holding an open file's bytes failed");
                None
            }
        }
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    fn entry(&self, path: &Path, attr: Result<Attr, FsError>, reply: ReplyEntry) {
        match attr {
            Ok(a) => {
                let ino = self.inodes().give(path);
                reply.entry(&TTL, &file_attr(ino, &a), Generation(0));
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    /// Unlink or rmdir: the core removes `name`, then its inode number is forgotten (a file's
    /// inode keeps its bytes for the descriptors open on it).
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        op: fn(&Fs, &Path) -> Result<(), FsError>,
        reply: ReplyEmpty,
    ) {
        let path = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut inodes = self.inodes();
        let held = self.hold(&inodes, &path);
        let done = op(&self.fs, &path);
        if done.is_ok() {
            inodes.retire(&path, held);
        }
        drop(inodes);
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listing(&self, ino: INodeNo, offset: u64) -> Result<Listing, Errno> {
        if offset > 0
            && let Some(l) = self.inodes().listings.get(&ino.0)
        {
            return Ok(l.clone());
        }
        let path = self.path(ino)?;
        let entries = self.fs.readdir(&path).map_err(errno)?;
        let self_attr = self.fs.getattr(&path).map_err(errno)?;
        let mut inodes = self.inodes();
        let parent = path.parent().map_or(1, |p| inodes.ino(p));
        let mut list = vec![
            (ino.0, OsString::from("."), self_attr),
            (parent, OsString::from(".."), self_attr),
        ];
        for (name, attr) in entries {
            let i = inodes.ino(&path.join(&name));
            list.push((i, name, attr));
        }
        let list = Arc::new(list);
        inodes.listings.insert(ino.0, list.clone());
        Ok(list)
    }
}

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        ask_kernel(config);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _op = tracing::debug_span!("lookup", parent = parent.0).entered();
        match self.child(parent, name) {
            Ok(path) => {
                let mut attr = self.fs.getattr(&path);
                // A project directory that is not there, looked up from a checkout of a project
                // other machines have: Claude Code starting in it. Place the project there.
                let missing = matches!(&attr, Err(e) if e.errno == libc::ENOENT);
                if missing && parent == INodeNo::ROOT && self.adopt(req.pid()) {
                    attr = self.fs.getattr(&path);
                }
                self.entry(&path, attr, reply)
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // Live paths keep their numbers (see `Inodes`); a detached file's bytes go with the
        // kernel's last reference, once its last descriptor is closed.
        self.inodes().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _op = tracing::debug_span!("getattr", ino = ino.0).entered();
        match self.target(ino) {
            Ok(Target::Path(path)) => match self.fs.getattr(&path) {
                Ok(a) => reply.attr(&TTL, &file_attr(ino.0, &a)),
                Err(e) => reply.error(errno(e)),
            },
            Ok(Target::Detached(d)) => match d.getattr() {
                Ok(a) => reply.attr(&TTL, &detached_attr(ino.0, &a)),
                Err(e) => reply.error(errno(e)),
            },
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _op = tracing::debug_span!("setattr", ino = ino.0).entered();
        let target = match self.target(ino) {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        let cur = match &target {
            Target::Path(path) => self.fs.getattr(path),
            Target::Detached(d) => d.getattr(),
        };
        if let Ok(cur) = cur
            && (uid.is_some_and(|u| u != cur.uid) || gid.is_some_and(|g| g != cur.gid))
        {
            return reply.error(Errno::EPERM);
        }
        let set = SetAttr {
            size,
            atime: set_time(atime),
            mtime: set_time(mtime),
            mode: mode.map(|m| m & 0o7777),
        };
        let done = match &target {
            Target::Path(path) => self.fs.setattr(path, set).map(|a| file_attr(ino.0, &a)),
            Target::Detached(d) => d.setattr(set).map(|a| detached_attr(ino.0, &a)),
        };
        match done {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let _op = tracing::debug_span!("mkdir", parent = parent.0).entered();
        match self.child(parent, name) {
            Ok(path) => {
                let attr = self.fs.mkdir(&path, mode);
                self.entry(&path, attr, reply)
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _op = tracing::debug_span!("unlink", parent = parent.0).entered();
        self.remove(parent, name, Fs::unlink, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _op = tracing::debug_span!("rmdir", parent = parent.0).entered();
        self.remove(parent, name, Fs::rmdir, reply)
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _op = tracing::debug_span!("rename", parent = parent.0).entered();
        let (refused, noreplace) = rename_mode(flags);
        if refused {
            return reply.error(Errno::EINVAL);
        }
        let (from, to) = match (self.child(parent, name), self.child(newparent, newname)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let mut inodes = self.inodes();
        let held = if from == to {
            None
        } else {
            self.hold(&inodes, &to)
        };
        let done = self.fs.rename(&from, &to, noreplace);
        // The core replaces `to` only by a rename that succeeded: after a failure it is there.
        if done.is_ok() {
            if from != to {
                inodes.retire(&to, held);
            }
            inodes.rename(&from, &to);
        }
        drop(inodes);
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // Claude Code copies when a hard link fails this way.
        reply.error(Errno::EXDEV);
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Stateless I/O: the kernel stops sending OPEN and keeps its page cache.
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
        let _op = tracing::debug_span!("read", ino = ino.0).entered();
        let data = match self.target(ino) {
            Ok(Target::Path(p)) => self.fs.read(&p, offset, size),
            Ok(Target::Detached(d)) => d.read(offset, size),
            Err(e) => return reply.error(e),
        };
        match data {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(e)),
        }
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
        let _op = tracing::debug_span!("write", ino = ino.0).entered();
        let append = flags.0 & libc::O_APPEND != 0;
        let written = match self.target(ino) {
            Ok(Target::Path(p)) => self.fs.write(&p, offset, data, append),
            Ok(Target::Detached(d)) => d.write(offset, data, append),
            Err(e) => return reply.error(e),
        };
        match written {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
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
        // Writes are in the upper layer when they return: nothing to flush, and the kernel
        // stops asking.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let _op = tracing::debug_span!("fsync", ino = ino.0).entered();
        let done = match self.target(ino) {
            Ok(Target::Path(p)) => self.fs.fsync(&p),
            Ok(Target::Detached(d)) => d.fsync(),
            Err(e) => return reply.error(e),
        };
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let _op = tracing::debug_span!("readdir", ino = ino.0).entered();
        let list = match self.listing(ino, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        for (i, (child, name, attr)) in list.iter().enumerate().skip(offset as usize) {
            let kind = file_attr(*child, attr).kind;
            if reply.add(INodeNo(*child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _op = tracing::debug_span!("readdirplus", ino = ino.0).entered();
        let list = match self.listing(ino, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut inodes = self.inodes();
        let dir = inodes.paths.get(&ino.0).cloned();
        for (i, (child, name, attr)) in list.iter().enumerate().skip(offset as usize) {
            // A name gone since the listing was taken (it is read in chunks) is not handed to
            // the kernel: its inode may now be a detached file's.
            let current = |p: &PathBuf| p.file_name() == Some(name) && p.parent() == dir.as_deref();
            let listed = i >= 2;
            if listed && !inodes.paths.get(child).is_some_and(current) {
                continue;
            }
            let fa = file_attr(*child, attr);
            if reply.add(
                INodeNo(*child),
                i as u64 + 1,
                name,
                &TTL,
                &fa,
                Generation(0),
            ) {
                break;
            }
            // The kernel counts a listed entry as a lookup, but for `.` and `..`.
            if listed {
                inodes.looked_up(*child);
            }
        }
        drop(inodes);
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _op = tracing::debug_span!("statfs").entered();
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks,
                s.blocks_free,
                s.blocks_available,
                s.files,
                s.files_free,
                s.block_size,
                s.name_max,
                s.fragment_size,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _op = tracing::debug_span!("create", parent = parent.0).entered();
        let path = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match self.fs.create(&path, mode, flags & libc::O_EXCL != 0) {
            Ok(a) => {
                let ino = self.inodes().give(&path);
                reply.created(
                    &TTL,
                    &file_attr(ino, &a),
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_KEEP_CACHE,
                )
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// Drops the kernel's caches for `changed` view paths: their attributes and content (a
/// directory's listing too), and their entries in their parents. Called outside every lock of
/// the adapter: the kernel may call back into the filesystem.
fn invalidate(notifier: &Notifier, inodes: &Mutex<Inodes>, changed: &[PathBuf]) {
    let targets: Vec<Invalidation> = {
        let mut inodes = inodes.lock().unwrap_or_else(|e| e.into_inner());
        inodes.listings.clear();
        changed
            .iter()
            .map(|p| {
                let entry = match (p.parent(), p.file_name()) {
                    (Some(parent), Some(name)) => {
                        inodes.known(parent).map(|i| (i, name.to_os_string()))
                    }
                    _ => None,
                };
                (inodes.known(p), entry)
            })
            .collect()
    };
    for (ino, entry) in targets {
        if let Some(i) = ino {
            let _ = notifier.inval_inode(INodeNo(i), 0, 0);
        }
        if let Some((parent, name)) = entry {
            let _ = notifier.inval_entry(INodeNo(parent), &name);
        }
    }
}

/// A live mount: the session thread, and what is needed to drop the kernel's caches after a
/// fetch.
pub struct Mounted {
    fs: Arc<Fs>,
    inodes: Arc<Mutex<Inodes>>,
    notifier: Notifier,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

/// Mounts `fs` at `mountpoint` (private to this user, kernel permission checks on) and returns
/// once the kernel has completed the handshake, so the mount is live.
pub fn mount(fs: Arc<Fs>, mountpoint: &Path) -> std::io::Result<Mounted> {
    let inodes = Arc::new(Mutex::new(Inodes::new()));
    let cell = Arc::new(std::sync::OnceLock::new());
    let adapter = Adapter {
        fs: fs.clone(),
        inodes: inodes.clone(),
        requesters: Requesters::new(mountpoint),
        notifier: cell.clone(),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("ferry".into()),
        MountOption::Subtype("ferry".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
        MountOption::RW,
    ];
    // As root fuser mounts by itself and gives the kernel no subtype (fusermount3 does, from
    // `Subtype`): the type is then `fuse.ferry` either way.
    if nix::unistd::geteuid().is_root() {
        config
            .mount_options
            .push(MountOption::CUSTOM("subtype=ferry".into()));
    }
    // Two threads measured best on two cores (FERRY_FUSE_THREADS overrides, for measuring).
    let threads: usize = std::env::var("FERRY_FUSE_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    config.n_threads = Some(threads);
    config.clone_fd = threads > 1;
    let session = fuser::Session::new(adapter, mountpoint, &config)?;
    let notifier = session.notifier();
    let _ = cell.set(notifier.clone());
    let session = session.spawn()?;
    Ok(Mounted {
        fs,
        inodes,
        notifier,
        session: Some(session),
        mountpoint: mountpoint.to_path_buf(),
    })
}

impl Mounted {
    /// The core behind the mount.
    pub fn fs(&self) -> &Arc<Fs> {
        &self.fs
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Re-reads the store after a fetch and drops the kernel's caches for what changed.
    pub fn refresh(&self) -> Result<usize, FsError> {
        let changed = self.fs.refresh()?;
        invalidate(&self.notifier, &self.inodes, &changed);
        Ok(changed.len())
    }

    /// Takes new `ferry link` entries (see [`Fs::set_links`]) and drops the kernel's caches
    /// for what moved.
    pub fn set_links(&self, links: Vec<ferry_sync::project_key::Link>) -> Result<usize, FsError> {
        let changed = self.fs.set_links(links)?;
        invalidate(&self.notifier, &self.inodes, &changed);
        Ok(changed.len())
    }

    /// Whether the kernel still sends requests: after a lazy unmount, until the last file open
    /// in the detached mount is closed.
    pub fn serving(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Ends the session once the mount point has been unmounted (see `ferry_platform`), waiting
    /// at most `wait` for the kernel to let go.
    pub fn join(mut self, wait: Duration) {
        if let Some(s) = self.session.take() {
            let deadline = std::time::Instant::now() + wait;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = s.join();
                let _ = tx.send(());
            });
            let _ = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
        }
    }
}
