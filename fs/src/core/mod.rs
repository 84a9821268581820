//! The platform-neutral filesystem core: the view of `projects/` as paths, with every operation
//! Claude Code performs, over the upper layer, the foreign index and the disk cache. The FUSE
//! (and later WinFsp) adapters only translate calls to these methods and errors to errnos.
//!
//! Where a path's bytes come from ([`Node`]):
//! - only this machine has it: the upper-layer file, served directly;
//! - only other machines have it: their merged version, expanded into the disk cache;
//! - both: the upper file if it already holds everything the others have (every line of a
//!   transcript, or a newer mtime for other files), else the merge, from the disk cache.
//!
//! The first change to a file served from the cache copies the view up into the upper layer
//! (write to a temporary name, then rename), then applies the change. Deleting follows DESIGN.md
//! invariant 5: a tombstone when this machine's version is the newest, a local hide otherwise;
//! until the engine commits it, an in-memory whiteout keeps the file out of the view.

mod adopt;
#[cfg(unix)]
mod detached;
mod mutate;
mod notes;
mod refresh;
mod resolve;
mod satellite;
mod steady;
mod warm;

use crate::cache::{DiskCache, Opened};
use crate::error::{FsError, FsResult};
use crate::foreign::Foreign;
use crate::upper::{Kind, Upper};
use ferry_sync::engine::EngineHandle;
use ferry_sync::project_key::Link;
use ferry_sync::store::{Change, MachineRecord, ProjectRecord, RelPath, Store};
use lru::LruCache;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

#[cfg(unix)]
pub use detached::Detached;
pub use resolve::Node;

/// Where changes go to be committed: the sync engine, or a recorder in tests.
pub trait Sink: Send + Sync {
    /// Records one change of this machine's files.
    fn note(&self, project: &ProjectRecord, rel: RelPath, change: Change, bytes: u64);

    /// Reports the changes held back until their project is known (all of them, each time).
    fn waiting(&self, _waiting: Vec<ferry_sync::engine::Waiting>) {}

    /// Reports the files written here that the store cannot hold (all of them, each time).
    fn unsyncable(&self, _files: Vec<ferry_sync::engine::Unsyncable>) {}

    /// Says the view was looked at (a listing, a project directory): after a quiet spell the
    /// engine fetches at once, in the background.
    fn touch(&self) {}
}

impl Sink for EngineHandle {
    fn note(&self, project: &ProjectRecord, rel: RelPath, change: Change, bytes: u64) {
        EngineHandle::note(self, project, rel, change, bytes);
    }

    fn waiting(&self, waiting: Vec<ferry_sync::engine::Waiting>) {
        self.set_waiting(waiting);
    }

    fn unsyncable(&self, files: Vec<ferry_sync::engine::Unsyncable>) {
        self.set_unsyncable(files);
    }

    fn touch(&self) {
        EngineHandle::touch(self);
    }
}

/// What the core needs to know besides the upper layer.
#[derive(Clone, Debug)]
pub struct FsConfig {
    /// This machine.
    pub machine: MachineRecord,
    /// The store.
    pub store: PathBuf,
    /// The disk cache directory.
    pub cache_dir: PathBuf,
    /// Most bytes the disk cache keeps.
    pub cache_budget: u64,
    /// `ferry link` entries.
    pub links: Vec<Link>,
    /// Where the core keeps what must survive a restart besides the upper layer: which other
    /// machines' versions each upper file has taken in.
    pub marks: PathBuf,
    /// Where the core keeps the place chosen for each project ([`crate::places::PlaceBook`]).
    pub places: PathBuf,
}

/// The attributes of a view entry: what an upper-layer entry has, whichever layer it comes
/// from.
pub use crate::upper::Meta as Attr;

/// Attribute changes, as `setattr` carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New length (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<crate::upper::SetTime>,
    /// New modification time.
    pub mtime: Option<crate::upper::SetTime>,
    /// New permission bits.
    pub mode: Option<u32>,
}

/// A decision about a path both layers have, valid while neither side changes.
#[derive(Clone, Copy, Debug)]
struct Decision {
    upper_size: u64,
    upper_mtime_ns: i128,
    fingerprint: u64,
    covered: bool,
}

/// Mutable state, behind one lock.
struct Inner {
    cache: DiskCache,
    /// Upper-layer files opened for reading and writing, by view path.
    fds: LruCache<PathBuf, Arc<File>>,
    /// Disk cache entries opened for reading, by key (with `fds`, at most 256 descriptors).
    entry_fds: LruCache<u64, Arc<Opened>>,
    /// The cache's count of removed slabs when `entry_fds` was last pruned.
    entry_fds_seen: u64,
    decisions: BTreeMap<String, Decision>,
    /// Whole-file comparisons of an upper copy with the store's versions so far.
    comparisons: u64,
    /// View paths deleted here and not yet in the store: hidden up to this mtime (ms).
    whiteouts: HashMap<String, i64>,
    /// Projects of the upper layer's slug directories, once known.
    projects: HashMap<String, ProjectRecord>,
    /// Changes in slug directories whose project is not known yet (no transcript names a cwd).
    unresolved: BTreeMap<String, Vec<(RelPath, Change, u64)>>,
    /// Files written here whose path the store cannot hold, by view path, with why.
    unsyncable: BTreeMap<PathBuf, String>,
    /// View paths whose upper file has taken in other machines' versions up to this mtime (ms),
    /// by a copy-up or by already holding every line: those versions never count against the
    /// upper file again, whatever local edits follow. Kept in `FsConfig::marks`.
    absorbed: BTreeMap<String, i64>,
    /// Sessions whose transcript was written here, by id, with when: the satellite mirror
    /// looks at their satellites every pass.
    active: HashMap<String, std::time::Instant>,
    /// What each transcript was last served from, by view path: the next merge keeps its
    /// lines in place (`steady`).
    served: HashMap<String, steady::Served>,
    /// Disk cache entries that hold a transcript of one version as its chunks expanded one by
    /// one, by key: the next version's entry is this one grown by what it added.
    chunked: HashMap<u64, steady::Chunked>,
}

/// The filesystem core.
pub struct Fs {
    upper: Upper,
    store: Mutex<Store>,
    /// How far other machines' clocks were seen running ahead (see `ferry_sync::clock`).
    skews: Mutex<ferry_sync::clock::Skews>,
    foreign: RwLock<Arc<Foreign>>,
    /// Counts the changes to `foreign` (patched in place or replaced): the satellite mirror
    /// tells by it whether the index changed since its last pass, without holding a reference
    /// that would keep a patch from being made in place.
    foreign_version: std::sync::atomic::AtomicU64,
    /// Bytes expanded from the store so far.
    expanded: std::sync::atomic::AtomicU64,
    /// Files the warming expanded outside the core's lock so far.
    warmed_unlocked: std::sync::atomic::AtomicU64,
    /// The view paths the next warming must look at (`None`: every file of the index): once
    /// a warming went through the index, only what refreshes changed since.
    to_warm: Mutex<Option<BTreeSet<String>>>,
    inner: Mutex<Inner>,
    sink: Arc<dyn Sink>,
    config: FsConfig,
    /// `ferry link` entries.
    links: RwLock<Vec<Link>>,
    /// The place chosen for each project, kept in `FsConfig::places`.
    book: Mutex<crate::places::PlaceBook>,
    /// Held for a whole refresh: refreshes run one at a time.
    refreshing: Mutex<()>,
    uid: u32,
    gid: u32,
    /// When the core started: the times of directories that only other machines provide.
    started_ns: i128,
}

/// A view path as the string the foreign index uses, with `/` between names on every OS (on
/// Windows, paths joined here or given by WinFsp use `\\`); `None`: not UTF-8, so upper-layer
/// only.
fn key_of(path: &Path) -> Option<Cow<'_, str>> {
    let s = path.to_str()?;
    if cfg!(windows) && s.contains('\\') {
        Some(Cow::Owned(s.replace('\\', "/")))
    } else {
        Some(Cow::Borrowed(s))
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

impl Fs {
    /// Builds the core over an opened upper layer and reads the store's current view.
    pub fn new(upper: Upper, config: FsConfig, sink: Arc<dyn Sink>) -> FsResult<Fs> {
        let store = Store::open(&config.store)?;
        let mut skews = ferry_sync::clock::Skews::new();
        let mut book = crate::places::PlaceBook::load(&config.places);
        let foreign = Foreign::build(
            &store,
            &config.machine,
            &config.links,
            &mut skews,
            &mut book,
        )?;
        save_book(&book, &config.places);
        for r in &foreign.rejected {
            tracing::warn!(rejected = %r, "skipping content from a remote branch");
        }
        let cache = DiskCache::open(&config.cache_dir, config.cache_budget)?;
        #[cfg(unix)]
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        #[cfg(not(unix))]
        let (uid, gid) = (0, 0);
        Ok(Fs {
            upper,
            store: Mutex::new(store),
            skews: Mutex::new(skews),
            foreign: RwLock::new(Arc::new(foreign)),
            foreign_version: std::sync::atomic::AtomicU64::new(0),
            expanded: std::sync::atomic::AtomicU64::new(0),
            warmed_unlocked: std::sync::atomic::AtomicU64::new(0),
            to_warm: Mutex::new(None),
            inner: Mutex::new(Inner {
                cache,
                fds: LruCache::new(NonZeroUsize::new(128).expect("nonzero")),
                entry_fds: LruCache::new(NonZeroUsize::new(128).expect("nonzero")),
                entry_fds_seen: 0,
                decisions: BTreeMap::new(),
                comparisons: 0,
                whiteouts: HashMap::new(),
                projects: HashMap::new(),
                unresolved: BTreeMap::new(),
                unsyncable: BTreeMap::new(),
                absorbed: load_marks(&config.marks),
                active: HashMap::new(),
                served: HashMap::new(),
                chunked: HashMap::new(),
            }),
            sink,
            links: RwLock::new(config.links.clone()),
            book: Mutex::new(book),
            refreshing: Mutex::new(()),
            config,
            uid,
            gid,
            started_ns: now_ns(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn foreign(&self) -> Arc<Foreign> {
        self.foreign
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn links(&self) -> Vec<Link> {
        self.links.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The upper layer.
    pub fn upper(&self) -> &Upper {
        &self.upper
    }

    /// The attributes of `path`.
    pub fn getattr(&self, path: &Path) -> FsResult<Attr> {
        let _span = tracing::debug_span!("getattr", ?path).entered();
        // The projects dir or a project dir: Claude Code starting up and looking for sessions.
        if path.components().count() <= 1 {
            self.sink.touch();
        }
        let foreign = self.foreign();
        let mut inner = self.lock();
        let node = self
            .node(&mut inner, &foreign, path)?
            .ok_or_else(|| FsError::not_found(path))?;
        Ok(self.attr_at(&inner, &foreign, path, &node))
    }

    /// The entries of directory `path`, with their attributes, sorted by name.
    pub fn readdir(&self, path: &Path) -> FsResult<Vec<(OsString, Attr)>> {
        let _span = tracing::debug_span!("readdir", ?path).entered();
        self.sink.touch();
        let foreign = self.foreign();
        match self.node(&mut self.lock(), &foreign, path)? {
            Some(Node::Dir { .. }) => {}
            Some(_) => return Err(FsError::new(libc::ENOTDIR, format!("{path:?}"))),
            None => return Err(FsError::not_found(path)),
        }
        let mut out: BTreeMap<OsString, Attr> = BTreeMap::new();
        for name in self.child_names(&foreign, path)? {
            let child = path.join(&name);
            // A copy of a session listed in another place: found by name only.
            if key_of(&child).is_some_and(|k| foreign.is_moved(&k)) {
                continue;
            }
            // The lock is taken entry by entry, as a local disk lists a directory while it
            // changes: the warming expanding the entries not reached yet puts them in the
            // cache in between, and other requests are served.
            let mut inner = self.lock();
            if let Some(node) = self.node(&mut inner, &foreign, &child)? {
                out.insert(name, self.attr_at(&inner, &foreign, &child, &node));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&self, path: &Path, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let _span = tracing::debug_span!("read", ?path, offset, size).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        match self.node(&mut inner, &foreign, path)? {
            Some(Node::Upper(_)) => {
                let file = self.upper_fd(&mut inner, path)?;
                drop(inner);
                Ok(read_upto(&file, offset, size)?)
            }
            Some(Node::Cached { key, .. }) => {
                let entry = self.cached_fd(&mut inner, key)?;
                drop(inner);
                Ok(entry.read_upto(offset, size)?)
            }
            Some(Node::Dir { .. }) => Err(FsError::new(libc::EISDIR, format!("{path:?}"))),
            None => Err(FsError::not_found(path)),
        }
    }

    /// Space on the upper layer's filesystem: (block size, blocks, free, available, files,
    /// free files, name length).
    pub fn statfs(&self) -> FsResult<crate::upper::Space> {
        self.upper.space()
    }

    /// Every name that may be in directory `path`: the upper layer's and the foreign index's.
    fn child_names(&self, foreign: &Foreign, path: &Path) -> FsResult<Vec<OsString>> {
        let mut names: Vec<OsString> = match self.upper.stat(path)? {
            Some(m) if m.kind == Kind::Dir => self
                .upper
                .list(path)?
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| !hidden_name(n))
                .collect(),
            _ => Vec::new(),
        };
        if let Some(children) = key_of(path).and_then(|k| foreign.dirs.get(k.as_ref())) {
            names.extend(children.keys().map(OsString::from));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn attr(&self, node: &Node) -> Attr {
        let synthetic = |kind, size, mode, mtime_ns| Attr {
            kind,
            size,
            mode,
            mtime_ns,
            atime_ns: mtime_ns,
            ctime_ns: mtime_ns,
            uid: self.uid,
            gid: self.gid,
            nlink: if kind == Kind::Dir { 2 } else { 1 },
        };
        match node {
            Node::Dir { upper: Some(m) } | Node::Upper(m) => *m,
            Node::Dir { upper: None } => synthetic(Kind::Dir, 0, 0o700, self.started_ns),
            Node::Cached {
                size,
                mtime_ns,
                upper,
                ..
            } => match upper {
                Some(m) => Attr {
                    size: *size,
                    mtime_ns: *mtime_ns,
                    ..*m
                },
                None => synthetic(Kind::File, *size, 0o600, *mtime_ns),
            },
        }
    }

    /// The attributes of `node` at `path`, with a directory's link count as a local disk
    /// gives it: the upper layer's, plus one for each subdirectory only other machines
    /// provide (its `..`).
    fn attr_at(&self, inner: &Inner, foreign: &Foreign, path: &Path, node: &Node) -> Attr {
        let mut attr = self.attr(node);
        let Node::Dir { upper } = node else {
            return attr;
        };
        let Some(children) = key_of(path).and_then(|k| foreign.dirs.get(k.as_ref())) else {
            return attr;
        };
        // An upper directory with no subdirectories (two links) holds none of theirs: no need
        // to look (Windows reports no directory link counts, so it always looks).
        let upper_subdirs = upper.is_some_and(|m| cfg!(windows) || m.nlink > 2);
        let is_upper_dir = |name: &str| {
            upper_subdirs
                && matches!(self.upper.stat(&path.join(name)), Ok(Some(m)) if m.kind == Kind::Dir)
        };
        // Only subdirectories the view shows: one whose every file was deleted here is hidden.
        let theirs = children
            .iter()
            .filter(|(name, is_dir)| {
                **is_dir
                    && !is_upper_dir(name)
                    && self.foreign_dir_visible(inner, foreign, &path.join(name))
            })
            .count();
        attr.nlink += theirs as u32;
        attr
    }

    fn upper_fd(&self, inner: &mut Inner, path: &Path) -> FsResult<Arc<File>> {
        let key = path.to_path_buf();
        if let Some(f) = inner.fds.get(&key) {
            return Ok(f.clone());
        }
        let f = Arc::new(self.upper.open_file(path)?);
        inner.fds.put(key, f.clone());
        Ok(f)
    }

    fn cached_fd(&self, inner: &mut Inner, key: u64) -> FsResult<Arc<Opened>> {
        // A slab the cache removed keeps its disk space while a descriptor holds it.
        if inner.entry_fds_seen != inner.cache.slabs_removed() {
            inner.entry_fds_seen = inner.cache.slabs_removed();
            let gone: Vec<u64> = inner
                .entry_fds
                .iter()
                .map(|(k, _)| *k)
                .filter(|k| !inner.cache.holds(*k))
                .collect();
            for k in gone {
                inner.entry_fds.pop(&k);
            }
        }
        if let Some(f) = inner.entry_fds.get(&key) {
            return Ok(f.clone());
        }
        let f = inner.cache.open_entry(key)?;
        // Expanded files are read start to end (a resume, a listing's head and tail): start
        // the whole read from disk now rather than one request at a time (a length of 0 is
        // the whole file: not for an empty entry in a slab).
        #[cfg(target_os = "linux")]
        if f.shared_len() != Some(0) {
            let _ = nix::fcntl::posix_fadvise(
                f.file(),
                f.base() as i64,
                f.shared_len().map_or(0, |l| l as i64),
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
        }
        let f = Arc::new(f);
        inner.entry_fds.put(key, f.clone());
        Ok(f)
    }

    /// Forgets open descriptors and decisions for `path` and everything under it.
    fn forget(&self, inner: &mut Inner, path: &Path) {
        close_under(inner, path);
        if let Some(k) = key_of(path) {
            remove_under(&mut inner.decisions, &k);
            if remove_under(&mut inner.absorbed, &k) {
                self.save_marks(inner);
            }
        }
    }

    /// Records that the upper file at `path` holds other machines' versions up to `mtime_ms`.
    fn absorb(&self, inner: &mut Inner, path: &Path, mtime_ms: i64) {
        let Some(k) = key_of(path) else { return };
        let mark = inner.absorbed.entry(k.to_string()).or_insert(i64::MIN);
        if *mark < mtime_ms {
            *mark = mtime_ms;
            self.save_marks(inner);
        }
    }

    fn save_marks(&self, inner: &Inner) {
        let tmp = self.config.marks.with_extension("tmp");
        let written = serde_json::to_vec(&inner.absorbed)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.config.marks));
        if let Err(e) = written {
            tracing::warn!(file = %self.config.marks.display(), error = %e, "saving the marks failed");
        }
    }
}

/// Removes `key` and every key under `key/` from `map`, by range (this runs on every create,
/// unlink and rename); returns whether anything went.
fn remove_under<V>(map: &mut BTreeMap<String, V>, key: &str) -> bool {
    let before = map.len();
    map.remove(key);
    let prefix = format!("{key}/");
    let under: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| p.clone())
        .collect();
    for p in under {
        map.remove(&p);
    }
    map.len() != before
}

/// The marks a previous run saved (none if missing or unreadable).
fn load_marks(path: &Path) -> BTreeMap<String, i64> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Saves the place book, logging a failure (the same rule decides again at the next start).
fn save_book(book: &crate::places::PlaceBook, path: &Path) {
    if let Err(e) = book.save(path) {
        tracing::warn!(file = %path.display(), error = %e, "saving the place book failed");
    }
}

/// Names the view never shows: ferry's own temporary files in the upper layer.
fn hidden_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with(ferry_sync::upper::TEMP_PREFIX))
}

/// Up to `size` bytes of `f` at `offset`: fewer only at the end of the file.
pub(crate) fn read_upto(f: &File, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; size as usize];
    let mut done = 0;
    while done < buf.len() {
        match read_at(f, &mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, offset)
}

#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(windows)]
fn write_at(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Closes this core's descriptors on upper files at or under `path` before they are removed or
/// replaced, where the OS refuses that for an open file (Windows; Wine without POSIX rename
/// semantics, at least). Elsewhere nothing: [`Fs::forget`] closes them afterwards.
fn release(inner: &mut Inner, path: &Path) {
    if cfg!(windows) {
        close_under(inner, path);
    }
}

/// Closes the descriptors this core holds on upper files at or under `path`.
fn close_under(inner: &mut Inner, path: &Path) {
    // At most 256 descriptors: a scan is cheap next to the syscalls around it.
    let stale: Vec<PathBuf> = inner
        .fds
        .iter()
        .filter(|(p, _)| p.starts_with(path))
        .map(|(k, _)| k.clone())
        .collect();
    for k in stale {
        inner.fds.pop(&k);
    }
}
