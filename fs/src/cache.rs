//! The disk cache of materialised files: another machine's file, expanded to this machine's
//! paths, written once under the state dir and then served from there (and from the page cache).
//! Bounded by a byte budget; the least recently used files go first. Survives restarts, so a
//! remount does not expand everything again.

use lru::LruCache;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Present while the cache is closed cleanly.
const CLEAN: &str = ".clean";

/// The cache directory and its index.
pub struct DiskCache {
    dir: PathBuf,
    budget: u64,
    used: u64,
    entries: LruCache<u64, u64>,
}

impl DiskCache {
    /// Opens (creating, mode 0700) the cache at `dir`, keeping what earlier runs left there.
    pub fn open(dir: &Path, budget: u64) -> std::io::Result<DiskCache> {
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
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name();
            let key = name
                .to_str()
                .filter(|n| n.len() == 16)
                .and_then(|n| u64::from_str_radix(n, 16).ok());
            match (key, e.metadata()) {
                (Some(k), Ok(md)) if md.is_file() && trusted => {
                    cache.entries.put(k, md.len());
                    cache.used += md.len();
                }
                // Leftovers of an interrupted write, or of a run that did not close cleanly.
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        cache.evict(None);
        Ok(cache)
    }

    /// Where the entry `key` lives.
    pub fn path(&self, key: u64) -> PathBuf {
        self.dir.join(format!("{key:016x}"))
    }

    /// The size of entry `key`, if cached (and marks it used).
    pub fn get(&mut self, key: u64) -> Option<u64> {
        self.entries.get(&key).copied()
    }

    /// Stores `bytes` as entry `key` and returns its size.
    pub fn put(&mut self, key: u64, bytes: &[u8]) -> std::io::Result<u64> {
        self.put_from(key, |f| f.write_all(bytes))
    }

    /// Stores what `fill` writes as entry `key` (none if it fails) and returns its size: a
    /// large entry need not be held in memory whole.
    ///
    /// Written in place, not beside it and renamed: a rename in a directory of thousands of
    /// entries cost a tenth of a first mount's CPU. No reader finds the entry before it is
    /// indexed here, a failed fill removes it, and a crash leaves the cache untrusted (see
    /// [`DiskCache::open`]). A file already at that name (one an eviction could not remove)
    /// is unlinked first rather than truncated: a reader may still have it open.
    pub fn put_from(
        &mut self,
        key: u64,
        fill: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> std::io::Result<u64> {
        let path = self.path(key);
        let create = || File::options().write(true).create_new(true).open(&path);
        let mut f = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&path)?;
                create()?
            }
            f => f?,
        };
        let filled = fill(&mut f).and_then(|()| f.metadata());
        drop(f);
        let len = match filled {
            Ok(m) => m.len(),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        if let Some(old) = self.entries.put(key, len) {
            self.used -= old;
        }
        self.used += len;
        self.evict(Some(key));
        Ok(len)
    }

    /// Makes entry `old` entry `new`, with `suffix` appended; returns its size. The file is
    /// renamed and grown in place, so that a new version of a long transcript costs what it
    /// added, and a reader that has the old entry open sees it only grow. `None` (and `old` as
    /// it was) when that cannot be done.
    pub fn extend(&mut self, old: u64, new: u64, suffix: &[u8]) -> Option<u64> {
        let len = self.entries.pop(&old)?;
        self.used -= len;
        let restore = |c: &mut DiskCache| {
            c.entries.put(old, len);
            c.used += len;
            None
        };
        if self.entries.contains(&new) || std::fs::rename(self.path(old), self.path(new)).is_err() {
            return restore(self);
        }
        let grown = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(new))
            .and_then(|mut f| f.write_all(suffix));
        if grown.is_err() {
            // Cut short or not, it is no entry: the next read writes it whole.
            let _ = std::fs::remove_file(self.path(new));
            return None;
        }
        let len = len + suffix.len() as u64;
        self.entries.put(new, len);
        self.used += len;
        self.evict(Some(new));
        Some(len)
    }

    /// Opens entry `key` for reading.
    pub fn open_entry(&self, key: u64) -> std::io::Result<File> {
        File::open(self.path(key))
    }

    /// Whether entry `key` is held (without marking it used).
    pub fn holds(&self, key: u64) -> bool {
        self.entries.contains(&key)
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
    /// trusts it. Call once nothing writes to it any more.
    pub fn mark_clean(&self) -> std::io::Result<()> {
        // A directory's entries reach the disk with it on Unix; Windows cannot open a directory
        // as a file (nor needs to: NTFS journals its metadata).
        #[cfg(unix)]
        let dir = File::open(&self.dir)?;
        #[cfg(target_os = "linux")]
        nix::unistd::syncfs(&dir).map_err(std::io::Error::from)?;
        #[cfg(not(target_os = "linux"))]
        for (k, _) in self.entries.iter() {
            // Flushing needs write access on Windows.
            std::fs::OpenOptions::new()
                .write(cfg!(windows))
                .read(true)
                .open(self.path(*k))?
                .sync_all()?;
        }
        let marker = File::create(self.dir.join(CLEAN))?;
        marker.sync_all()?;
        #[cfg(unix)]
        dir.sync_all()?;
        Ok(())
    }

    /// Drops least recently used entries until the budget holds, keeping `keep`. Readers that
    /// have an entry open keep reading it: the file is only unlinked.
    fn evict(&mut self, keep: Option<u64>) {
        while self.used > self.budget {
            let Some((k, len)) = self.entries.pop_lru() else {
                return;
            };
            if Some(k) == keep {
                self.entries.put(k, len);
                if self.entries.len() == 1 {
                    return;
                }
                continue;
            }
            self.used -= len;
            let _ = std::fs::remove_file(self.path(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_evicts_the_least_recently_used_and_reopening_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = DiskCache::open(dir.path(), 10).unwrap();
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
        let mut again = DiskCache::open(dir.path(), 100).unwrap();
        assert_eq!(again.get(4), Some(13));
        assert_eq!(std::fs::read(again.path(4)).unwrap(), b"0123456789abc");
        // Not closed cleanly this time (a crash): nothing is trusted.
        drop(again);
        let mut after_crash = DiskCache::open(dir.path(), 100).unwrap();
        assert_eq!(after_crash.get(4), None);
        assert!(!after_crash.path(4).exists());
        assert_eq!(after_crash.used(), 0);
    }
}
