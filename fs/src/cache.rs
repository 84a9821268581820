//! The disk cache of materialised files: another machine's file, expanded to this machine's
//! paths, written once under the state dir and then served from there (and from the page cache).
//! Bounded by a byte budget; the least recently used files go first. Survives restarts, so a
//! remount does not expand everything again. An entry of up to [`SMALL`] bytes shares a slab
//! file with others (see [`slab`]); a larger one has a file of its own.

mod slab;

use lru::LruCache;
use slab::Slabs;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Present while the cache is closed cleanly.
const CLEAN: &str = ".clean";

/// Entries up to this long go in a slab: re-expanding one costs less than a file of its own.
pub const SMALL: u64 = 64 << 10;

/// Where an entry's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// In a file of its own, named by its key.
    Own,
    /// In slab `slab`, from offset `at`.
    Slab { slab: u32, at: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    len: u64,
    loc: Loc,
}

/// The cache directory and its index.
pub struct DiskCache {
    dir: PathBuf,
    budget: u64,
    /// Bytes of the entries' own files and of the slabs (what evicted entries left in a slab
    /// counts until the slab goes).
    used: u64,
    entries: LruCache<u64, Entry>,
    slabs: Slabs,
    /// Entries up to this long go in a slab.
    small: u64,
    /// Counts the slabs removed, so that holders of open entries can let go of theirs.
    removed: u64,
    /// Marked closed cleanly and not written to since (see [`DiskCache::mark_clean`]).
    closed: bool,
}

/// An entry opened for reading: its own file, or its place in a slab.
pub struct Opened {
    file: File,
    base: u64,
    /// The entry's length when it shares its file; `None` for a file of its own, read to its
    /// end (an entry grown in place only grows).
    len: Option<u64>,
}

impl Opened {
    /// The file the entry is in.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the entry starts in [`Opened::file`].
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Its length when it shares its file (see [`Opened::read_upto`]).
    pub fn shared_len(&self) -> Option<u64> {
        self.len
    }

    /// The file and where the entry starts in it: what a descriptor left on a removed name
    /// keeps reading.
    pub fn into_parts(self) -> (File, u64) {
        (self.file, self.base)
    }

    /// Up to `size` bytes of the entry at `offset`: fewer only at its end.
    pub fn read_upto(&self, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
        let size = match self.len {
            Some(len) => len.saturating_sub(offset).min(u64::from(size)) as u32,
            None => size,
        };
        crate::core::read_upto(&self.file, self.base + offset, size)
    }

    /// The whole entry.
    pub fn read_all(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.copy_to(&mut out)?;
        Ok(out)
    }

    /// Copies the whole entry to `out`; how many bytes. Read at offsets, never by moving the
    /// file's position: the file may be shared.
    pub fn copy_to(&self, out: &mut impl Write) -> std::io::Result<u64> {
        let mut at = 0;
        loop {
            let piece = self.read_upto(at, 1 << 20)?;
            if piece.is_empty() {
                return Ok(at);
            }
            out.write_all(&piece)?;
            at += piece.len() as u64;
        }
    }
}

/// Where [`DiskCache::put_from`] collects an entry: in memory while it is small, then in a
/// file of its own.
pub struct Filling {
    buf: Vec<u8>,
    file: Option<File>,
    path: PathBuf,
    small: u64,
}

impl Write for Filling {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() && (self.buf.len() + data.len()) as u64 > self.small {
            let mut f = create_new(&self.path)?;
            f.write_all(&self.buf)?;
            self.buf = Vec::new();
            self.file = Some(f);
        }
        match &mut self.file {
            Some(f) => f.write(data),
            None => {
                self.buf.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

/// Creates the file at `path`, unlinking one already there rather than truncating it: a
/// reader may still have it open.
fn create_new(path: &Path) -> std::io::Result<File> {
    let create = || File::options().write(true).create_new(true).open(path);
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            unlink(path)?;
            create()
        }
        f => f,
    }
}

/// Removes the entry file at `path` so that its name is free at once, even while a reader
/// holds it open. On Windows a file deleted while open keeps its name until its last handle
/// closes, and creating or renaming onto that name fails meanwhile: it is renamed aside
/// first (what is left there, the next open of the cache removes).
fn unlink(path: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        static ASIDE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = ASIDE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let aside = path.with_file_name(format!("gone-{}-{n}", std::process::id()));
        if std::fs::rename(path, &aside).is_ok() {
            // The name is free: what is left aside (a scanner holding it) goes at the next open.
            let _ = std::fs::remove_file(&aside);
            return Ok(());
        }
    }
    std::fs::remove_file(path)
}

impl DiskCache {
    /// Opens (creating, mode 0700) the cache at `dir`, keeping what earlier runs left there.
    pub fn open(dir: &Path, budget: u64) -> std::io::Result<DiskCache> {
        DiskCache::open_with(dir, budget, SMALL)
    }

    /// [`DiskCache::open`], with entries up to `small` bytes in slabs.
    pub fn open_with(dir: &Path, budget: u64, small: u64) -> std::io::Result<DiskCache> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut cache = DiskCache {
            dir: dir.to_path_buf(),
            budget,
            used: 0,
            entries: LruCache::unbounded(),
            slabs: Slabs::new(dir),
            small,
            removed: 0,
            closed: false,
        };
        // Entries are written without fsync: after a crash or power loss one may be cut short,
        // so only a cache that was closed cleanly is trusted. Until this run closes cleanly it
        // is not.
        let marker = dir.join(CLEAN);
        let trusted = marker.exists();
        match std::fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut slabs = Vec::new();
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name();
            let name = name.to_str().unwrap_or_default();
            let key = Some(name)
                .filter(|n| n.len() == 16)
                .and_then(|n| u64::from_str_radix(n, 16).ok());
            match (key, Slabs::number(name), e.metadata()) {
                (Some(k), _, Ok(md)) if md.is_file() && trusted => {
                    cache.entries.put(
                        k,
                        Entry {
                            len: md.len(),
                            loc: Loc::Own,
                        },
                    );
                    cache.used += md.len();
                }
                (_, Some(n), Ok(md)) if md.is_file() && trusted => slabs.push((n, md.len())),
                _ if trusted && name == slab::INDEX => {}
                // Leftovers of an interrupted write, or of a run that did not close cleanly.
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for (key, slab, at, len) in cache.slabs.load(&slabs) {
            let loc = Loc::Slab { slab, at };
            // A file of its own under the same key is a leftover: the index is newer.
            if let Some(old) = cache.entries.put(key, Entry { len, loc })
                && old.loc == Loc::Own
            {
                cache.used -= old.len;
                let _ = unlink(&cache.path(key));
            }
        }
        cache.used += slabs
            .iter()
            .filter(|(n, _)| cache.slabs.holds(*n))
            .map(|(_, len)| len)
            .sum::<u64>();
        cache.evict(None);
        Ok(cache)
    }

    /// Where the entry `key` lives when it has a file of its own.
    pub fn path(&self, key: u64) -> PathBuf {
        self.dir.join(format!("{key:016x}"))
    }

    /// The size of entry `key`, if cached (and marks it used).
    pub fn get(&mut self, key: u64) -> Option<u64> {
        self.entries.get(&key).map(|e| e.len)
    }

    /// Stores `bytes` as entry `key` and returns its size.
    pub fn put(&mut self, key: u64, bytes: &[u8]) -> std::io::Result<u64> {
        self.put_from(key, |f| f.write_all(bytes))
    }

    /// Stores what `fill` writes as entry `key` (none if it fails) and returns its size: a
    /// large entry need not be held in memory whole.
    ///
    /// A large one is written in place, not beside it and renamed: a rename in a directory of
    /// thousands of entries cost a tenth of a first mount's CPU. No reader finds the entry
    /// before it is indexed here, a failed fill removes it, and a crash leaves the cache
    /// untrusted (see [`DiskCache::open`]).
    pub fn put_from(
        &mut self,
        key: u64,
        fill: impl FnOnce(&mut Filling) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        self.reopen()?;
        // What it replaces goes first (readers keep what they opened).
        self.forget(key);
        let mut filling = Filling {
            buf: Vec::new(),
            file: None,
            path: self.path(key),
            small: self.small,
        };
        let filled = fill(&mut filling);
        let entry = match (filled, filling.file) {
            (Ok(()), Some(f)) => f.metadata().map(|m| Entry {
                len: m.len(),
                loc: Loc::Own,
            }),
            (Ok(()), None) => self
                .slabs
                .append(key, &filling.buf)
                .map(|(slab, at)| Entry {
                    len: filling.buf.len() as u64,
                    loc: Loc::Slab { slab, at },
                }),
            (Err(e), _) => Err(e),
        };
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let _ = unlink(&filling.path);
                return Err(e);
            }
        };
        self.entries.put(key, entry);
        self.used += entry.len;
        self.evict(Some(key));
        Ok(entry.len)
    }

    /// Drops entry `key`, removing its file if it has its own.
    fn forget(&mut self, key: u64) {
        if let Some(old) = self.entries.pop(&key)
            && old.loc == Loc::Own
        {
            self.used -= old.len;
            let _ = unlink(&self.path(key));
        }
    }

    /// Makes entry `old` entry `new`, with `suffix` appended; returns its size. The file is
    /// renamed and grown in place, so that a new version of a long transcript costs what it
    /// added, and a reader that has the old entry open sees it only grow. `None` (and `old` as
    /// it was) when that cannot be done, as for an entry in a slab.
    pub fn extend(&mut self, old: u64, new: u64, suffix: &[u8]) -> Option<u64> {
        if self.entries.peek(&old)?.loc != Loc::Own {
            return None;
        }
        let len = self.entries.pop(&old)?.len;
        self.used -= len;
        let restore = |c: &mut DiskCache| {
            c.entries.put(old, Entry { len, loc: Loc::Own });
            c.used += len;
            None
        };
        if self.entries.contains(&new)
            || self.reopen().is_err()
            || std::fs::rename(self.path(old), self.path(new)).is_err()
        {
            return restore(self);
        }
        let grown = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(new))
            .and_then(|mut f| f.write_all(suffix));
        if grown.is_err() {
            // Cut short or not, it is no entry: the next read writes it whole.
            let _ = unlink(&self.path(new));
            return None;
        }
        let len = len + suffix.len() as u64;
        self.entries.put(new, Entry { len, loc: Loc::Own });
        self.used += len;
        self.evict(Some(new));
        Some(len)
    }

    /// Opens entry `key` for reading.
    pub fn open_entry(&self, key: u64) -> std::io::Result<Opened> {
        match self.entries.peek(&key) {
            Some(&Entry {
                len,
                loc: Loc::Slab { slab, at },
            }) => Ok(Opened {
                file: self.slabs.open(slab)?,
                base: at,
                len: Some(len),
            }),
            _ => Ok(Opened {
                file: File::open(self.path(key))?,
                base: 0,
                len: None,
            }),
        }
    }

    /// Whether entry `key` is held (without marking it used).
    pub fn holds(&self, key: u64) -> bool {
        self.entries.contains(&key)
    }

    /// Whether entry `key` has a file of its own, which [`DiskCache::extend`] can grow.
    pub fn is_own(&self, key: u64) -> bool {
        self.entries.peek(&key).is_some_and(|e| e.loc == Loc::Own)
    }

    /// How many slabs this cache has removed: when it changes, an open entry may hold a
    /// removed slab's disk space (see [`DiskCache::holds`]).
    pub fn slabs_removed(&self) -> u64 {
        self.removed
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Flushes every entry to disk and marks the cache as closed cleanly, so the next run
    /// trusts it. A write after it takes the mark back (it is not flushed); marking again then
    /// flushes that too. Marked already and not written since, it does nothing.
    pub fn mark_clean(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        // A directory's entries reach the disk with it on Unix; Windows cannot open a directory
        // as a file (nor needs to: NTFS journals its metadata).
        #[cfg(unix)]
        let dir = File::open(&self.dir)?;
        #[cfg(target_os = "linux")]
        nix::unistd::syncfs(&dir).map_err(std::io::Error::from)?;
        #[cfg(not(target_os = "linux"))]
        for path in self
            .entries
            .iter()
            .filter(|(_, e)| e.loc == Loc::Own)
            .map(|(k, _)| self.path(*k))
            .chain(self.slabs.files())
        {
            // Flushing needs write access on Windows.
            std::fs::OpenOptions::new()
                .write(cfg!(windows))
                .read(true)
                .open(path)?
                .sync_all()?;
        }
        // Least recently used first, as `open` puts them back.
        self.slabs
            .save(self.entries.iter().rev().filter_map(|(k, e)| match e.loc {
                Loc::Slab { slab, at } => Some((*k, slab, at, e.len)),
                Loc::Own => None,
            }))?;
        let marker = File::create(self.dir.join(CLEAN))?;
        marker.sync_all()?;
        #[cfg(unix)]
        dir.sync_all()?;
        self.closed = true;
        Ok(())
    }

    /// Takes back a clean close before a write: what is written after it is not fsynced, and a
    /// crash could cut it short in a cache the next run would trust.
    fn reopen(&mut self) -> std::io::Result<()> {
        if self.closed {
            match std::fs::remove_file(self.dir.join(CLEAN)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => self.closed = false,
            }
        }
        Ok(())
    }

    /// Whether the cache was marked closed cleanly and nothing was written since: work ahead
    /// of use stops then, not to make it untrusted again.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Drops least recently used entries until the budget holds, keeping `keep`. Readers that
    /// have an entry open keep reading it: the file is only unlinked. An entry in a slab takes
    /// the whole slab with it, unless `keep` is in that slab too: then the budget is exceeded
    /// until the slab is full and a later entry goes in another.
    fn evict(&mut self, keep: Option<u64>) {
        let slab_of = |c: &DiskCache, k: u64| match c.entries.peek(&k).map(|e| e.loc) {
            Some(Loc::Slab { slab, .. }) => Some(slab),
            _ => None,
        };
        let kept_in = keep.and_then(|k| slab_of(self, k));
        while self.used > self.budget {
            let Some((k, e)) = self.entries.pop_lru() else {
                return;
            };
            if Some(k) == keep {
                self.entries.put(k, e);
                if self.entries.len() == 1 {
                    return;
                }
                continue;
            }
            match e.loc {
                Loc::Own => {
                    self.used -= e.len;
                    let _ = unlink(&self.path(k));
                }
                Loc::Slab { slab, .. } if Some(slab) == kept_in => {
                    self.entries.put(k, e);
                    self.entries.demote(&k);
                    return;
                }
                Loc::Slab { slab, .. } => {
                    let Some(held) = self.slabs.remove(slab) else {
                        continue;
                    };
                    self.removed += 1;
                    self.used -= held.len;
                    for other in held.keys {
                        if slab_of(self, other) == Some(slab) {
                            self.entries.pop(&other);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_evicts_the_least_recently_used_and_reopening_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        // Every entry in a file of its own here; slabs are below.
        let mut c = DiskCache::open_with(dir.path(), 10, 0).unwrap();
        c.put(1, b"aaaa").unwrap();
        c.put(2, b"bbbb").unwrap();
        assert_eq!(c.get(1), Some(4)); // 1 is now the most recent
        c.put(3, b"cccc").unwrap();
        assert_eq!(c.get(2), None);
        assert!(!c.path(2).exists());
        assert_eq!(c.used(), 8);
        // An entry bigger than the budget is still kept until the next one arrives.
        c.put(4, b"0123456789abc").unwrap();
        assert_eq!(c.get(4), Some(13));
        c.mark_clean().unwrap();
        drop(c);
        let mut again = DiskCache::open_with(dir.path(), 100, 0).unwrap();
        assert_eq!(again.get(4), Some(13));
        assert_eq!(std::fs::read(again.path(4)).unwrap(), b"0123456789abc");
        // Not closed cleanly this time (a crash): nothing is trusted.
        drop(again);
        let mut after_crash = DiskCache::open_with(dir.path(), 100, 0).unwrap();
        assert_eq!(after_crash.get(4), None);
        assert!(!after_crash.path(4).exists());
        assert_eq!(after_crash.used(), 0);
    }

    #[test]
    fn a_write_after_a_clean_close_makes_the_cache_untrusted_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = DiskCache::open_with(dir.path(), 100, 0).unwrap();
        c.put(1, b"aaaa").unwrap();
        c.mark_clean().unwrap();
        assert!(c.is_closed());
        // Written after the close, without fsync: cut short by a crash, it would be trusted.
        c.put(2, b"bbbb").unwrap();
        assert!(!c.is_closed());
        drop(c);
        let mut again = DiskCache::open_with(dir.path(), 100, 0).unwrap();
        assert_eq!((again.get(1), again.get(2)), (None, None));
        // Grown in place after a clean close: the same.
        again.put(3, b"cccc").unwrap();
        again.mark_clean().unwrap();
        assert_eq!(again.extend(3, 4, b"dd"), Some(6));
        assert!(!again.is_closed());
        drop(again);
        let mut again = DiskCache::open_with(dir.path(), 100, 0).unwrap();
        assert_eq!(again.get(4), None);
        // The marker removed by someone else: writes still work, and the next close marks.
        again.mark_clean().unwrap();
        std::fs::remove_file(dir.path().join(CLEAN)).unwrap();
        again.put(5, b"ee").unwrap();
        assert!(!again.is_closed());
        // Closed again after the write: trusted, both entries kept.
        again.put(1, b"aaaa").unwrap();
        again.put(2, b"bbbb").unwrap();
        again.mark_clean().unwrap();
        drop(again);
        let mut third = DiskCache::open_with(dir.path(), 100, 0).unwrap();
        assert_eq!((third.get(1), third.get(2)), (Some(4), Some(4)));
    }

    /// A cache of 1 MiB in a new directory, with entries up to `small` bytes in slabs.
    fn cache(small: u64) -> (tempfile::TempDir, DiskCache) {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::open_with(dir.path(), 1 << 20, small).unwrap();
        (dir, c)
    }

    /// The names in the cache dir, but its markers.
    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        n.sort();
        n
    }

    #[test]
    fn small_entries_share_a_slab_and_each_reads_as_its_own_bytes() {
        let (dir, mut c) = cache(8);
        c.put(1, b"one\n").unwrap();
        c.put(2, b"").unwrap();
        c.put(3, b"three\n").unwrap();
        // Filled in pieces past the limit: a file of its own.
        c.put_from(4, |f| {
            f.write_all(b"four ")?;
            f.write_all(b"is long\n")
        })
        .unwrap();
        assert_eq!(
            names(dir.path()),
            vec![format!("{:016x}", 4), "slab-00000000".into()]
        );
        assert_eq!(c.used(), 4 + 6 + 13);
        for (k, want) in [
            (1, &b"one\n"[..]),
            (2, b""),
            (3, b"three\n"),
            (4, b"four is long\n"),
        ] {
            let e = c.open_entry(k).unwrap();
            assert_eq!(e.read_all().unwrap(), want, "entry {k}");
            // A read past an entry's end stops there, not in the next entry.
            assert_eq!(
                e.read_upto(1, 100).unwrap(),
                want.get(1..).unwrap_or_default()
            );
            let mut copied = Vec::new();
            e.copy_to(&mut copied).unwrap();
            assert_eq!(copied, want);
        }
        // Only an entry of its own grows in place.
        assert_eq!(c.extend(1, 5, b"more"), None);
        assert_eq!(c.get(1), Some(4));
        assert_eq!(c.extend(4, 6, b"more\n"), Some(18));
        assert_eq!(
            c.open_entry(6).unwrap().read_all().unwrap(),
            b"four is long\nmore\n"
        );
    }

    #[test]
    fn a_slab_goes_whole_when_the_budget_evicts_one_of_its_entries_and_survives_a_clean_close() {
        let (dir, mut c) = cache(64);
        for k in 0..4u64 {
            c.put(k, format!("entry {k}\n").as_bytes()).unwrap();
        }
        let used = c.used();
        c.mark_clean().unwrap();
        drop(c);
        // Closed cleanly: the next run finds every entry where it was.
        let mut c = DiskCache::open_with(dir.path(), 1 << 20, 64).unwrap();
        assert_eq!(c.used(), used);
        for k in 0..4u64 {
            let e = c.open_entry(k).unwrap();
            assert_eq!(e.read_all().unwrap(), format!("entry {k}\n").as_bytes());
        }
        // New entries go in a new slab; over the budget, the old slab goes with all it held,
        // while the slab the new entry is in stays.
        c.budget = used + 5;
        c.get(3);
        c.put(10, b"ten\n").unwrap();
        c.put(11, b"eleven\n").unwrap();
        for k in 0..4u64 {
            assert_eq!(c.get(k), None, "entry {k} outlived its slab");
        }
        assert_eq!(c.get(10), Some(4));
        assert_eq!(c.open_entry(11).unwrap().read_all().unwrap(), b"eleven\n");
        assert_eq!(names(dir.path()), vec!["slab-00000001".to_string()]);
        assert_eq!(c.used(), 4 + 7);
        // A file of its own left under a key the index lists goes: the index is newer.
        c.mark_clean().unwrap();
        drop(c);
        std::fs::write(dir.path().join(format!("{:016x}", 10)), b"stale bytes").unwrap();
        let c = DiskCache::open_with(dir.path(), 1 << 20, 64).unwrap();
        assert_eq!(c.used(), 4 + 7);
        assert_eq!(c.open_entry(10).unwrap().read_all().unwrap(), b"ten\n");
        assert_eq!(names(dir.path()), vec!["slab-00000001".to_string()]);
        // Not closed cleanly (a crash): nothing is trusted, the slabs go too.
        drop(c);
        let c = DiskCache::open_with(dir.path(), 1 << 20, 64).unwrap();
        assert!(c.is_empty());
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_reader_keeps_reading_an_entry_whose_slab_the_budget_removed() {
        let (dir, mut c) = cache(64);
        c.put(1, b"first\n").unwrap();
        c.put(2, b"second\n").unwrap();
        let held = c.open_entry(2).unwrap();
        // A new entry past the budget, in a new slab: the old slab goes, open or not.
        c.budget = 1;
        c.slabs.seal();
        c.put(3, b"third\n").unwrap();
        assert_eq!(c.get(2), None);
        assert_eq!(c.used(), 6);
        assert_eq!(held.read_all().unwrap(), b"second\n");
        assert_eq!(held.read_upto(2, 100).unwrap(), b"cond\n");
        // Gone once the reader lets go (on Windows its name stays until then).
        drop(held);
        assert_eq!(names(dir.path()), vec!["slab-00000001".to_string()]);
    }

    #[test]
    fn an_entry_made_again_while_a_reader_holds_its_old_file_gets_a_new_one() {
        let (dir, mut c) = cache(64);
        let (old, new) = (vec![b'a'; 200], vec![b'c'; 300]);
        c.put(1, &old).unwrap();
        assert!(c.is_own(1));
        let held = c.open_entry(1).unwrap();
        // Made again while its file is open: written anew, not truncated under the reader.
        c.put(1, &new).unwrap();
        assert_eq!(c.open_entry(1).unwrap().read_all().unwrap(), new);
        assert_eq!(held.read_all().unwrap(), old);
        drop(held);
        // Evicted while open, then made again under its key (read again).
        let held = c.open_entry(1).unwrap();
        c.budget = 1;
        c.put(2, &[b'b'; 200]).unwrap();
        assert_eq!(c.get(1), None);
        c.budget = 1 << 20;
        c.put(1, &old).unwrap();
        assert_eq!(c.open_entry(1).unwrap().read_all().unwrap(), old);
        assert_eq!(held.read_all().unwrap(), new);
        drop(held);
        // Grown into another key while the reader holds the name the growth lands on.
        let held = c.open_entry(1).unwrap();
        c.forget(1);
        c.put(3, &new).unwrap();
        assert_eq!(c.extend(3, 1, b"more"), Some(304));
        assert_eq!(held.read_all().unwrap(), old);
        drop(held);
        // Nothing is left aside once the readers let go (Windows: after the next open).
        c.mark_clean().unwrap();
        drop(c);
        let mut c = DiskCache::open_with(dir.path(), 1 << 20, 64).unwrap();
        assert!(
            names(dir.path()).iter().all(|n| !n.starts_with("gone-")),
            "{:?}",
            names(dir.path())
        );
        assert_eq!(c.get(1), Some(304));
    }
}
