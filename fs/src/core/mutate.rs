//! Every change Claude Code makes through the view: writes (copying other machines' files up
//! first), create, mkdir, truncate, utimens, chmod, unlink, rmdir and rename; and the refresh
//! after a fetch.

use super::{Attr, Fs, Inner, Node, SetAttr, key_of, now_ns, write_at};
use crate::error::{FsError, FsResult};
use crate::foreign::{Foreign, ForeignFile};
use crate::upper::{Kind, SetTime};
use ferry_sync::store::Change;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn now_ms() -> i64 {
    (now_ns() / 1_000_000) as i64
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// `base/rel`, or `base` itself for an empty `rel` (`join("")` would add a separator).
fn join(base: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

impl Fs {
    fn existing(&self, inner: &mut Inner, foreign: &Foreign, path: &Path) -> FsResult<Node> {
        self.node(inner, foreign, path)?
            .ok_or_else(|| FsError::not_found(path))
    }

    /// Fails unless `path`'s parent is a directory of the view.
    fn parent_dir(&self, inner: &mut Inner, foreign: &Foreign, path: &Path) -> FsResult<()> {
        match self.node(inner, foreign, parent(path))? {
            Some(Node::Dir { .. }) => Ok(()),
            Some(_) => Err(FsError::new(libc::ENOTDIR, format!("{:?}", parent(path)))),
            None => Err(FsError::not_found(parent(path))),
        }
    }

    /// Writes `data` at `offset` (at the end of the file when `append`); returns bytes written.
    pub fn write(&self, path: &Path, offset: u64, data: &[u8], append: bool) -> FsResult<u32> {
        let _span =
            tracing::debug_span!("write", ?path, offset, len = data.len(), append).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        let before = match self.existing(&mut inner, &foreign, path)? {
            Node::Dir { .. } => return Err(FsError::new(libc::EISDIR, format!("{path:?}"))),
            Node::Cached { .. } => {
                self.copy_up(&mut inner, &foreign, path)?;
                None
            }
            Node::Upper(m) => Some(m),
        };
        let fd = self.upper_fd(&mut inner, path)?;
        let at = if append { fd.metadata()?.len() } else { offset };
        write_at(&fd, data, at)?;
        if let Some(m) = before.filter(|m| m.size == at) {
            self.still_covered(&mut inner, path, &fd, &m);
        }
        self.note_write(
            &mut inner,
            &foreign,
            path,
            Some(at.min(offset)),
            data.len() as u64,
        );
        Ok(data.len() as u32)
    }

    /// Makes the view's bytes of `path` (served from the disk cache) a plain upper-layer file.
    fn copy_up(&self, inner: &mut Inner, foreign: &Foreign, path: &Path) -> FsResult<()> {
        let Some(Node::Cached {
            key,
            mtime_ns,
            file,
            ..
        }) = self.node(inner, foreign, path)?
        else {
            return Ok(());
        };
        let _span = tracing::debug_span!("copy_up", ?path).entered();
        self.install_cached(inner, key, mtime_ns, path)?;
        // The upper file now holds that version: later local edits (a truncate, a rewrite)
        // must not bring its lines back.
        self.absorb(inner, path, file.theirs_ms);
        let size = self.upper.stat(path)?.map_or(0, |m| m.size);
        self.note_write(inner, foreign, path, None, size);
        Ok(())
    }

    /// Writes disk cache entry `key` to the upper layer at `to` with mtime `mtime_ns`,
    /// atomically (a temporary name, then rename), replacing what is there.
    fn install_cached(
        &self,
        inner: &mut Inner,
        key: u64,
        mtime_ns: i128,
        to: &Path,
    ) -> FsResult<()> {
        self.upper.mkdir_all(parent(to))?;
        let name: String = to
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(64).collect())
            .unwrap_or_default();
        let tmp = parent(to).join(format!(
            "{}{name}-{:x}",
            ferry_sync::upper::TEMP_PREFIX,
            now_ns() as u64
        ));
        let result = (|| {
            let mut out = self.upper.create_file(&tmp, 0o600, true)?;
            inner.cache.open_entry(key)?.copy_to(&mut out)?;
            drop(out);
            self.upper
                .set_times(&tmp, None, Some(SetTime::At(mtime_ns)))?;
            super::release(inner, to);
            self.upper.rename(&tmp, to, false)
        })();
        if result.is_err() {
            let _ = self.upper.unlink(&tmp);
        }
        self.forget(inner, to);
        result
    }

    /// Creates the file `path` (`excl`: fail if it exists) and returns its attributes.
    pub fn create(&self, path: &Path, mode: u32, excl: bool) -> FsResult<Attr> {
        let _span = tracing::debug_span!("create", ?path, mode, excl).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        if let Some(node) = self.node(&mut inner, &foreign, path)? {
            if excl {
                return Err(FsError::new(libc::EEXIST, format!("{path:?}")));
            }
            if node.kind() == Kind::Dir {
                return Err(FsError::new(libc::EISDIR, format!("{path:?}")));
            }
            return Ok(self.attr(&node));
        }
        self.parent_dir(&mut inner, &foreign, path)?;
        self.upper.mkdir_all(parent(path))?;
        let f = self.upper.create_file(path, mode, true)?;
        self.forget(&mut inner, path);
        inner.fds.put(path.to_path_buf(), Arc::new(f));
        self.note_write(&mut inner, &foreign, path, None, 0);
        let node = self.existing(&mut inner, &foreign, path)?;
        Ok(self.attr(&node))
    }

    /// Creates directory `path` with `mode`.
    pub fn mkdir(&self, path: &Path, mode: u32) -> FsResult<Attr> {
        let _span = tracing::debug_span!("mkdir", ?path, mode).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        if self.node(&mut inner, &foreign, path)?.is_some() {
            return Err(FsError::new(libc::EEXIST, format!("{path:?}")));
        }
        self.parent_dir(&mut inner, &foreign, path)?;
        self.upper.mkdir_all(parent(path))?;
        self.upper.mkdir(path, mode)?;
        let node = self.existing(&mut inner, &foreign, path)?;
        Ok(self.attr_at(&inner, &foreign, path, &node))
    }

    /// Changes size, times or mode of `path`.
    pub fn setattr(&self, path: &Path, set: SetAttr) -> FsResult<Attr> {
        let _span = tracing::debug_span!("setattr", ?path, ?set).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        let node = self.existing(&mut inner, &foreign, path)?;
        if node.kind() == Kind::Dir {
            if set.size.is_some() {
                return Err(FsError::new(libc::EISDIR, format!("{path:?}")));
            }
            self.upper.mkdir_all(path)?;
        } else if let Node::Cached { upper, file, .. } = &node {
            if set.size == Some(0) {
                // Truncating to nothing needs none of the old bytes; the empty file replaces
                // the other machines' version here for good.
                self.upper.mkdir_all(parent(path))?;
                if upper.is_some() {
                    super::release(&mut inner, path);
                    self.upper.unlink(path)?;
                }
                self.upper.create_file(path, 0o600, true)?;
                self.forget(&mut inner, path);
                self.absorb(&mut inner, path, file.theirs_ms);
            } else {
                self.copy_up(&mut inner, &foreign, path)?;
            }
        }
        let before = self.upper.stat(path)?.map_or(0, |m| m.size);
        if let Some(size) = set.size {
            self.upper_fd(&mut inner, path)?.set_len(size)?;
        }
        if let Some(mode) = set.mode {
            self.upper.set_mode(path, mode)?;
            // A descriptor opened under the old mode may no longer fit.
            inner.fds.pop(path);
        }
        if set.atime.is_some() || set.mtime.is_some() {
            self.upper.set_times(path, set.atime, set.mtime)?;
        }
        if node.kind() == Kind::File {
            let from = set.size.map_or(before, |s| s.min(before));
            let len = self.upper.stat(path)?.map_or(0, |m| m.size);
            self.note_write(
                &mut inner,
                &foreign,
                path,
                Some(from),
                len.saturating_sub(from),
            );
        }
        let node = self.existing(&mut inner, &foreign, path)?;
        Ok(self.attr_at(&inner, &foreign, path, &node))
    }

    /// Flushes an upper-layer file to disk.
    pub fn fsync(&self, path: &Path) -> FsResult<()> {
        let foreign = self.foreign();
        let mut inner = self.lock();
        if let Some(Node::Upper(_)) = self.node(&mut inner, &foreign, path)? {
            self.upper_fd(&mut inner, path)?.sync_data()?;
        }
        Ok(())
    }

    /// Removes the file `path` (DESIGN.md invariant 5).
    pub fn unlink(&self, path: &Path) -> FsResult<()> {
        let _span = tracing::debug_span!("unlink", ?path).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        let node = self.existing(&mut inner, &foreign, path)?;
        if node.kind() == Kind::Dir {
            return Err(FsError::new(libc::EISDIR, format!("{path:?}")));
        }
        if node.upper().is_some() {
            super::release(&mut inner, path);
            self.upper.unlink(path)?;
        }
        self.retire(&mut inner, &foreign, path, &node, true)?;
        Ok(())
    }

    /// Records that `path` (shown as `node`) is gone from the view, its upper file already
    /// removed or moved: a tombstone when this machine's version was the newest, else a hide
    /// of the other machines' version on this machine; a whiteout until the engine commits.
    fn retire(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        path: &Path,
        node: &Node,
        keep_dir: bool,
    ) -> FsResult<()> {
        self.forget(inner, path);
        let ours = node.upper().map(|m| m.mtime_ms());
        let theirs: Option<&ForeignFile> = node.foreign();
        let theirs = theirs
            .cloned()
            .or_else(|| self.visible_foreign(inner, foreign, path));
        let change = match (ours, &theirs) {
            (Some(o), Some(t)) if o < t.mtime_ms => Change::Hide {
                until_ms: t.mtime_ms,
            },
            (None, Some(t)) => Change::Hide {
                until_ms: t.mtime_ms,
            },
            (_, t) => Change::Delete {
                at_ms: now_ms().max(t.as_ref().map_or(i64::MIN, |t| t.mtime_ms)),
            },
        };
        if let (Some(t), Some(k)) = (&theirs, key_of(path)) {
            let until = match change {
                Change::Hide { until_ms } => until_ms,
                Change::Delete { at_ms } => at_ms,
                Change::Write { .. } => t.mtime_ms,
            };
            inner.whiteouts.insert(k.to_string(), until);
            // Keep the directory until it is removed itself, as on a local disk (not when the
            // whole directory moved away).
            if keep_dir {
                self.upper.mkdir_all(parent(path))?;
            }
        }
        self.note(inner, foreign, path, change, 0);
        Ok(())
    }

    /// Removes the empty directory `path`.
    pub fn rmdir(&self, path: &Path) -> FsResult<()> {
        let _span = tracing::debug_span!("rmdir", ?path).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        let node = self.existing(&mut inner, &foreign, path)?;
        let Node::Dir { upper } = node else {
            return Err(FsError::new(libc::ENOTDIR, format!("{path:?}")));
        };
        if self.has_children(&mut inner, &foreign, path)? {
            return Err(FsError::new(libc::ENOTEMPTY, format!("{path:?}")));
        }
        if upper.is_some() {
            super::release(&mut inner, path);
            // ferry's own leftovers do not keep a directory alive.
            for (name, _) in self.upper.list(path)? {
                if super::hidden_name(&name) {
                    let _ = self.upper.unlink(&path.join(name));
                }
            }
            self.upper.rmdir(path)?;
        }
        self.forget(&mut inner, path);
        Ok(())
    }

    fn has_children(&self, inner: &mut Inner, foreign: &Foreign, path: &Path) -> FsResult<bool> {
        for name in self.child_names(foreign, path)? {
            if self.node(inner, foreign, &path.join(name))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every file under directory `path` with its node, relative to `path`.
    fn files_under(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        path: &Path,
        rel: &Path,
        out: &mut Vec<(PathBuf, Node)>,
    ) -> FsResult<()> {
        let dir = join(path, rel);
        for name in self.child_names(foreign, &dir)? {
            let child = rel.join(&name);
            match self.node(inner, foreign, &path.join(&child))? {
                Some(Node::Dir { .. }) => self.files_under(inner, foreign, path, &child, out)?,
                Some(n) => out.push((child, n)),
                None => {}
            }
        }
        Ok(())
    }

    /// Renames `from` to `to` (`noreplace`: fail if `to` exists), files and directories alike,
    /// across project directories.
    pub fn rename(&self, from: &Path, to: &Path, noreplace: bool) -> FsResult<()> {
        let _span = tracing::debug_span!("rename", ?from, ?to, noreplace).entered();
        let foreign = self.foreign();
        let mut inner = self.lock();
        let src = self.existing(&mut inner, &foreign, from)?;
        if from == to {
            return Ok(());
        }
        let mut replaced = None;
        if to.starts_with(from) {
            return Err(FsError::new(
                libc::EINVAL,
                format!("{to:?} is inside {from:?}"),
            ));
        }
        self.parent_dir(&mut inner, &foreign, to)?;
        if let Some(dst) = self.node(&mut inner, &foreign, to)? {
            if noreplace {
                return Err(FsError::new(libc::EEXIST, format!("{to:?}")));
            }
            match (src.kind(), dst.kind()) {
                (Kind::File, Kind::Dir) => {
                    return Err(FsError::new(libc::EISDIR, format!("{to:?}")));
                }
                (Kind::Dir, Kind::File) => {
                    return Err(FsError::new(libc::ENOTDIR, format!("{to:?}")));
                }
                (Kind::Dir, Kind::Dir) => {
                    if self.has_children(&mut inner, &foreign, to)? {
                        return Err(FsError::new(libc::ENOTEMPTY, format!("{to:?}")));
                    }
                    if dst.upper().is_some() {
                        self.upper.rmdir(to)?;
                    }
                }
                (Kind::File, Kind::File) => {
                    // The replaced file is deleted as an unlink would delete it, once the
                    // rename has replaced it: a rename that fails before (a copy-up on a
                    // full disk) leaves it as it was.
                    replaced = Some(dst);
                }
            }
        }
        // Whatever the view shows under `from` from the disk cache is first made a plain upper
        // file where it is (copy-up), so that one rename in the upper layer moves everything
        // and no local byte is ever removed before its new home exists.
        let files = if src.kind() == Kind::File {
            vec![(PathBuf::new(), src.clone())]
        } else {
            let mut files = Vec::new();
            self.files_under(&mut inner, &foreign, from, Path::new(""), &mut files)?;
            files
        };
        for (rel, node) in &files {
            if matches!(node, Node::Cached { .. }) {
                self.copy_up(&mut inner, &foreign, &join(from, rel))?;
            }
        }
        self.upper.mkdir_all(parent(to))?;
        if self.upper.stat(from)?.is_some() {
            super::release(&mut inner, from);
            super::release(&mut inner, to);
            self.upper.rename(from, to, false)?;
        } else {
            // A directory only other machines provided, with nothing in it any more.
            self.upper.mkdir(to, 0o700)?;
        }
        self.forget(&mut inner, from);
        self.forget(&mut inner, to);
        if let Some(dst) = replaced {
            self.retire(&mut inner, &foreign, to, &dst, true)?;
        }
        let keep_dir = src.kind() == Kind::File;
        for (rel, node) in files {
            let (f, t) = (join(from, &rel), join(to, &rel));
            let size = self.upper.stat(&t)?.map_or(0, |m| m.size);
            self.note_write(&mut inner, &foreign, &t, None, size);
            // The removal at `from` is judged on what it was before the copy-up.
            self.retire(&mut inner, &foreign, &f, &node, keep_dir)?;
        }
        Ok(())
    }
}
