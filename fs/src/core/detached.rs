//! A file still open when its name goes away (an unlink, or a rename over it). On a local disk
//! its descriptors keep reading and writing the same bytes until the last one closes; the view
//! does the same by holding the bytes here. Nothing a detached file does reaches a name or the
//! store: its name's removal was noted when it happened.

use super::{Attr, Fs, Node, SetAttr, read_upto, write_at};
use crate::error::FsResult;
use crate::upper::{fstat_meta, set_file_mode, set_file_times};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The bytes of a file whose name is gone, for the descriptors still open on it.
pub struct Detached {
    inner: Mutex<Held>,
}

/// Where a detached file's bytes are.
struct Held {
    file: File,
    /// Where the bytes start in `file`: a small cache entry shares its file (a slab).
    base: u64,
    /// The cache directory, while the bytes are other machines' version in the disk cache
    /// (read-only, shared with the view): a write first copies them to a private file there.
    shared: Option<PathBuf>,
    /// What the view showed: its owner and group stay (a private copy's are the daemon's),
    /// and its mode and times stand while the bytes are still the shared entry's.
    shown: Attr,
}

impl Fs {
    /// Holds the bytes of file `path` for its open descriptors, before its name is removed or
    /// replaced; `None` for a directory or a path that is not there.
    pub fn detach(&self, path: &Path) -> FsResult<Option<Detached>> {
        let _span = tracing::debug_span!("detach", ?path).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        let node = self.node(&mut inner, &foreign, path)?;
        let shown = match &node {
            Some(n) if n.kind() == crate::upper::Kind::File => self.attr(n),
            _ => return Ok(None),
        };
        let (file, base, shared) = match node {
            Some(Node::Upper(_)) => (self.upper.open_file(path)?, 0, None),
            Some(Node::Cached { key, .. }) => {
                let (f, base) = inner.cache.open_entry(key)?.into_parts();
                let dir = inner.cache.path(key).parent().map(Path::to_path_buf);
                (f, base, Some(dir.unwrap_or_default()))
            }
            _ => return Ok(None),
        };
        Ok(Some(Detached {
            inner: Mutex::new(Held {
                file,
                base,
                shared,
                shown,
            }),
        }))
    }
}

impl Detached {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its attributes, as `fstat` on an open descriptor gives them.
    pub fn getattr(&self) -> FsResult<Attr> {
        self.held().attr()
    }

    /// Reads up to `size` bytes at `offset`: while the bytes are the shared cache entry, only
    /// as many as the view showed (the entry may grow into a later version's).
    pub fn read(&self, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let held = self.held();
        let size = match held.shared {
            Some(_) => held.shown.size.saturating_sub(offset).min(u64::from(size)) as u32,
            None => size,
        };
        Ok(read_upto(&held.file, held.base + offset, size)?)
    }

    /// Writes `data` at `offset` (at the end when `append`).
    pub fn write(&self, offset: u64, data: &[u8], append: bool) -> FsResult<u32> {
        let mut held = self.held();
        held.own()?;
        let at = if append {
            held.file.metadata()?.len()
        } else {
            offset
        };
        write_at(&held.file, data, at)?;
        Ok(data.len() as u32)
    }

    /// Changes its size, mode or times (`ftruncate`, `fchmod`, `futimens`).
    pub fn setattr(&self, set: SetAttr) -> FsResult<Attr> {
        let mut held = self.held();
        held.own()?;
        if let Some(size) = set.size {
            held.file.set_len(size)?;
        }
        if let Some(mode) = set.mode {
            set_file_mode(&held.file, mode)?;
        }
        if set.atime.is_some() || set.mtime.is_some() {
            set_file_times(&held.file, set.atime, set.mtime)?;
        }
        held.attr()
    }

    /// Flushes its bytes to disk.
    pub fn fsync(&self) -> FsResult<()> {
        Ok(self.held().file.sync_data()?)
    }
}

impl Held {
    fn attr(&self) -> FsResult<Attr> {
        if self.shared.is_some() {
            return Ok(self.shown);
        }
        Ok(Attr {
            uid: self.shown.uid,
            gid: self.shown.gid,
            ..fstat_meta(&self.file)?
        })
    }

    /// Makes the bytes this file's own before they change: a copy of the shared cache entry in
    /// a file with no name, with the mode and times the view showed.
    fn own(&mut self) -> FsResult<()> {
        let Some(dir) = &self.shared else {
            return Ok(());
        };
        // Until the copy is whole, the descriptors keep the shared entry, read-only.
        let mut copy = tempfile::tempfile_in(dir)?;
        // The bytes shown: the shared entry may since have grown into a later version's.
        std::io::Seek::seek(&mut &self.file, std::io::SeekFrom::Start(self.base))?;
        let mut from = std::io::Read::take(&self.file, self.shown.size);
        std::io::copy(&mut from, &mut copy)?;
        set_file_mode(&copy, self.shown.mode)?;
        let at = |ns| Some(crate::upper::SetTime::At(ns));
        set_file_times(&copy, at(self.shown.atime_ns), at(self.shown.mtime_ns))?;
        self.file = copy;
        self.base = 0;
        self.shared = None;
        Ok(())
    }
}
