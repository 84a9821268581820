//! Shared files for the disk cache's small entries. A first mount of 10,000 sessions of 4 KB
//! made 10,000 cache files, an inode each; on an ext4 without a journal that has freed many
//! inodes in the last minutes, allocating one passes over every inode freed lately, and that
//! was three quarters of the receiving daemon's CPU in the peers bench. Small entries are
//! appended to a slab instead, a few megabytes each, and a slab goes whole when the cache
//! evicts one of its entries.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A slab takes entries until it is this long.
const SLAB_BYTES: u64 = 4 << 20;

/// Where each small entry of a cache closed cleanly is, for the next run.
pub(super) const INDEX: &str = "slabs.idx";

/// How slab files are named: `slab-` and eight hex digits.
const PREFIX: &str = "slab-";

/// The slabs of one cache directory.
pub(super) struct Slabs {
    dir: PathBuf,
    /// Each slab's length and the keys written to it (an entry may since have moved or gone).
    held: HashMap<u32, Held>,
    /// The slab being filled, open for appending.
    filling: Option<(u32, File)>,
    next: u32,
}

/// What a slab holds.
pub(super) struct Held {
    /// Its file's length.
    pub len: u64,
    /// The entries written to it.
    pub keys: Vec<u64>,
}

/// A small entry found in the index of a cache closed cleanly: its key, slab, offset and
/// length.
pub(super) type Found = (u64, u32, u64, u64);

impl Slabs {
    /// No slabs, in `dir`.
    pub fn new(dir: &Path) -> Slabs {
        Slabs {
            dir: dir.to_path_buf(),
            held: HashMap::new(),
            filling: None,
            next: 0,
        }
    }

    /// The slab number a cache file's name gives, if it is a slab's.
    pub fn number(name: &str) -> Option<u32> {
        let hex = name.strip_prefix(PREFIX).filter(|h| h.len() == 8)?;
        u32::from_str_radix(hex, 16).ok()
    }

    fn path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{PREFIX}{n:08x}"))
    }

    /// Takes in the slabs named `found` (file numbers and lengths) and the entries the index
    /// left by a clean close lists in them; the entries whose bytes a slab holds are returned,
    /// and slabs that hold none are removed.
    pub fn load(&mut self, found: &[(u32, u64)]) -> Vec<Found> {
        let lens: HashMap<u32, u64> = found.iter().copied().collect();
        let index = std::fs::read_to_string(self.dir.join(INDEX)).unwrap_or_default();
        let mut entries = Vec::new();
        for line in index.lines() {
            let mut f = line.split(' ');
            let parsed = (|| {
                let key = u64::from_str_radix(f.next()?, 16).ok()?;
                let slab = u32::from_str_radix(f.next()?, 16).ok()?;
                let at: u64 = f.next()?.parse().ok()?;
                let len: u64 = f.next()?.parse().ok()?;
                Some((key, slab, at, len))
            })();
            if let Some((key, slab, at, len)) = parsed
                && lens
                    .get(&slab)
                    .is_some_and(|&l| at.saturating_add(len) <= l)
            {
                let held = self.held.entry(slab).or_insert(Held {
                    len: lens[&slab],
                    keys: Vec::new(),
                });
                held.keys.push(key);
                entries.push((key, slab, at, len));
            }
        }
        for &(n, _) in found {
            if !self.held.contains_key(&n) {
                let _ = std::fs::remove_file(self.path(n));
            }
            self.next = self.next.max(n.wrapping_add(1));
        }
        let _ = std::fs::remove_file(self.dir.join(INDEX));
        entries
    }

    /// Appends entry `key`'s `bytes` to the slab being filled (a new one when it is full);
    /// the slab and where they start.
    pub fn append(&mut self, key: u64, bytes: &[u8]) -> std::io::Result<(u32, u64)> {
        let full = |s: &Slabs, n: u32| s.held.get(&n).is_none_or(|h| h.len >= SLAB_BYTES);
        if self.filling.as_ref().is_none_or(|(n, _)| full(self, *n)) {
            let n = self.next;
            self.next = n.wrapping_add(1);
            let file = File::options()
                .append(true)
                .create_new(true)
                .open(self.path(n))?;
            self.held.insert(
                n,
                Held {
                    len: 0,
                    keys: Vec::new(),
                },
            );
            self.filling = Some((n, file));
        }
        let (n, file) = self.filling.as_mut().expect("opened above");
        let n = *n;
        let held = self.held.get_mut(&n).expect("each slab filled is held");
        let at = held.len;
        if let Err(e) = file.write_all(bytes) {
            // Part of it may be there: cut it off (the cache counts the slab's length as what
            // its entries hold), and the slab takes no more.
            let _ = file.set_len(at);
            self.filling = None;
            return Err(e);
        }
        held.len += bytes.len() as u64;
        held.keys.push(key);
        Ok((n, at))
    }

    /// Whether slab `n` holds entries.
    pub fn holds(&self, n: u32) -> bool {
        self.held.contains_key(&n)
    }

    /// Takes no more entries in the slab being filled: the next goes in a new one.
    #[cfg(test)]
    pub fn seal(&mut self) {
        self.filling = None;
    }

    /// Slab `n` opened for reading.
    pub fn open(&self, n: u32) -> std::io::Result<File> {
        File::open(self.path(n))
    }

    /// Removes slab `n`; what it held. Readers that have it open keep reading it.
    pub fn remove(&mut self, n: u32) -> Option<Held> {
        if self.filling.as_ref().is_some_and(|(f, _)| *f == n) {
            self.filling = None;
        }
        let held = self.held.remove(&n)?;
        let _ = std::fs::remove_file(self.path(n));
        Some(held)
    }

    /// Each slab's file, for flushing.
    #[cfg(not(target_os = "linux"))]
    pub fn files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.held.keys().map(|&n| self.path(n))
    }

    /// Writes the index of `entries` (key, slab, offset, length) for the next run.
    pub fn save(&self, entries: impl Iterator<Item = Found>) -> std::io::Result<()> {
        let mut out = String::new();
        for (key, slab, at, len) in entries {
            out.push_str(&format!("{key:016x} {slab:08x} {at} {len}\n"));
        }
        let mut f = File::create(self.dir.join(INDEX))?;
        f.write_all(out.as_bytes())?;
        f.sync_all()
    }
}
