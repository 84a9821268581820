//! Deciding where a path's bytes come from, and materialising them when other machines provide
//! them.

use super::{Decision, Fs, Inner, key_of, read_at};
use crate::error::FsResult;
use crate::foreign::{Foreign, ForeignFile};
use crate::upper::{Kind, Meta};
use ferry_sync::merge::{merge_lines, uuid_of};
use ferry_sync::store::fnv1a;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// What a view path is and where its bytes come from.
#[derive(Clone, Debug)]
pub enum Node {
    /// A directory: in the upper layer, or implied by other machines' files.
    Dir {
        /// The upper-layer directory, if it exists there.
        upper: Option<Meta>,
    },
    /// A file served from the upper layer as it is.
    Upper(Meta),
    /// A file served from the disk cache: other machines' version, or the merge of theirs and
    /// the upper layer's. The first change copies it up.
    Cached {
        /// The disk cache entry.
        key: u64,
        /// Its exact length.
        size: u64,
        /// The mtime the view reports (ns).
        mtime_ns: i128,
        /// The upper-layer file it merges with, if any.
        upper: Option<Meta>,
        /// The foreign side.
        file: ForeignFile,
    },
}

impl Node {
    /// File or directory.
    pub fn kind(&self) -> Kind {
        match self {
            Node::Dir { .. } => Kind::Dir,
            _ => Kind::File,
        }
    }

    /// The upper-layer metadata, if the upper layer has the path.
    pub fn upper(&self) -> Option<&Meta> {
        match self {
            Node::Dir { upper } | Node::Cached { upper, .. } => upper.as_ref(),
            Node::Upper(m) => Some(m),
        }
    }

    /// The foreign side of a file, if other machines provide it.
    pub fn foreign(&self) -> Option<&ForeignFile> {
        match self {
            Node::Cached { file, .. } => Some(file),
            _ => None,
        }
    }
}

pub(super) fn is_lines(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "jsonl")
}

/// Whether `upper` already holds every line of `theirs` (by uuid, else by bytes).
pub(super) fn holds_every_line(upper: &[u8], theirs: &[u8]) -> bool {
    let mut uuids = HashSet::new();
    let mut plain = HashSet::new();
    for l in upper.split_inclusive(|&b| b == b'\n') {
        match uuid_of(l) {
            Some(u) => {
                uuids.insert(u);
            }
            None => {
                plain.insert(l.strip_suffix(b"\n").unwrap_or(l));
            }
        }
    }
    theirs
        .split_inclusive(|&b| b == b'\n')
        .all(|l| match uuid_of(l) {
            Some(u) => uuids.contains(&u),
            None => plain.contains(l.strip_suffix(b"\n").unwrap_or(l)),
        })
}

impl Fs {
    /// The foreign file at `path` unless a whiteout hides it. At a copy of a session that
    /// shows in another place (see `Foreign::moved`), the file shown there: the copy, looked up
    /// by name, shows every line too.
    pub(super) fn visible_foreign(
        &self,
        inner: &Inner,
        foreign: &Foreign,
        path: &Path,
    ) -> Option<ForeignFile> {
        let k = key_of(path)?;
        let f = foreign.moved.get(k.as_ref()).or_else(|| foreign.file(&k))?;
        match inner.whiteouts.get(k.as_ref()) {
            Some(&until) if f.mtime_ms <= until => None,
            _ => Some(f.clone()),
        }
    }

    /// Whether a directory that only other machines provide still has a visible file.
    pub(super) fn foreign_dir_visible(
        &self,
        inner: &Inner,
        foreign: &Foreign,
        path: &Path,
    ) -> bool {
        let Some(k) = key_of(path) else { return false };
        if !foreign.is_dir(&k) {
            return false;
        }
        // Only a file deleted here hides one of theirs.
        if inner.whiteouts.is_empty() {
            return true;
        }
        let prefix = if k.is_empty() {
            String::new()
        } else {
            format!("{k}/")
        };
        foreign
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .any(|(p, f)| !matches!(inner.whiteouts.get(p), Some(&u) if f.mtime_ms <= u))
    }

    /// What `path` is in the view, materialising other machines' bytes as needed.
    pub(super) fn node(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        path: &Path,
    ) -> FsResult<Option<Node>> {
        let upper = self.upper.stat(path)?;
        if let Some(m) = upper.filter(|m| m.kind == Kind::Dir) {
            return Ok(Some(Node::Dir { upper: Some(m) }));
        }
        if path.file_name().is_some_and(super::hidden_name) {
            return Ok(None);
        }
        // A place that lists the session elsewhere shows it by name only over a copy it has.
        let theirs = self
            .visible_foreign(inner, foreign, path)
            .filter(|_| upper.is_some() || !key_of(path).is_some_and(|k| foreign.is_moved(&k)));
        match (upper, theirs) {
            (Some(m), None) => {
                self.served_upper(inner, path);
                Ok(Some(Node::Upper(m)))
            }
            (None, None) => Ok(self
                .foreign_dir_visible(inner, foreign, path)
                .then_some(Node::Dir { upper: None })),
            (None, Some(f)) => {
                let (key, size) = self.steady(inner, foreign, f.fingerprint, &f, None, path)?;
                Ok(Some(Node::Cached {
                    key,
                    size,
                    mtime_ns: f.mtime_ms as i128 * 1_000_000,
                    upper: None,
                    file: f,
                }))
            }
            (Some(m), Some(f)) => {
                let absorbed = key_of(path)
                    .and_then(|k| inner.absorbed.get(k.as_ref()))
                    .is_some_and(|&mark| f.theirs_ms <= mark && !f.has_own);
                if absorbed {
                    self.served_upper(inner, path);
                    return Ok(Some(Node::Upper(m)));
                }
                if self.covered(inner, foreign, path, &m, &f)? {
                    self.absorb(inner, path, f.theirs_ms);
                    self.served_upper(inner, path);
                    return Ok(Some(Node::Upper(m)));
                }
                let mut id = Vec::new();
                id.extend_from_slice(&f.fingerprint.to_le_bytes());
                id.extend_from_slice(&m.size.to_le_bytes());
                id.extend_from_slice(&m.mtime_ns.to_le_bytes());
                // The path as the foreign index spells it, so that every adapter's spelling
                // (`\` on Windows) finds the merge `warm` prepared.
                match key_of(path) {
                    Some(k) => id.extend_from_slice(k.as_bytes()),
                    None => id.extend_from_slice(path.as_os_str().as_encoded_bytes()),
                }
                let (key, size) = self.steady(inner, foreign, fnv1a(&id), &f, Some(&m), path)?;
                Ok(Some(Node::Cached {
                    key,
                    size,
                    mtime_ns: m.mtime_ns.max(f.mtime_ms as i128 * 1_000_000),
                    upper: Some(m),
                    file: f,
                }))
            }
        }
    }

    /// Whether the upper file at `path` already shows everything `f` has.
    fn covered(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        path: &Path,
        m: &Meta,
        f: &ForeignFile,
    ) -> FsResult<bool> {
        let k = key_of(path).unwrap_or_default().to_string();
        if let Some(d) = inner.decisions.get(&k)
            && d.upper_size == m.size
            && d.upper_mtime_ns == m.mtime_ns
            && d.fingerprint == f.fingerprint
        {
            return Ok(d.covered);
        }
        inner.comparisons += 1;
        let covered = if is_lines(path) {
            let theirs = self.expand_foreign(foreign, f)?;
            self.count_expanded(theirs.len());
            let ours = self.read_upper(path)?;
            holds_every_line(&ours, &theirs)
        } else {
            m.mtime_ms() >= f.mtime_ms
        };
        inner.decisions.insert(
            k,
            Decision {
                upper_size: m.size,
                upper_mtime_ns: m.mtime_ns,
                fingerprint: f.fingerprint,
                covered,
            },
        );
        Ok(covered)
    }

    /// After an append at the end of upper file `path` (which was `before`), keeps a decision
    /// that it covers the store's versions: bytes added after a complete last line take no
    /// line away. Without this every append to such a copy compared the whole file with the
    /// store's versions again (its size changed), under the core's lock.
    pub(super) fn still_covered(&self, inner: &mut Inner, path: &Path, fd: &File, before: &Meta) {
        let Some(k) = key_of(path) else { return };
        let Some(d) = inner.decisions.get_mut(k.as_ref()) else {
            return;
        };
        if !d.covered || d.upper_size != before.size || d.upper_mtime_ns != before.mtime_ns {
            return;
        }
        if is_lines(path) && before.size > 0 {
            let mut last = [0u8];
            if !matches!(read_at(fd, &mut last, before.size - 1), Ok(1)) || last[0] != b'\n' {
                return;
            }
        }
        if let Ok(Some(after)) = self.upper.stat(path) {
            d.upper_size = after.size;
            d.upper_mtime_ns = after.mtime_ns;
        }
    }

    /// How many times the view compared a whole upper copy with the store's versions of it:
    /// work an append must not cause (tests and the bench read it).
    pub fn comparisons(&self) -> u64 {
        self.lock().comparisons
    }

    fn expand_foreign(&self, foreign: &Foreign, f: &ForeignFile) -> FsResult<Vec<u8>> {
        let placement = foreign.placement(f).ok_or_else(|| {
            crate::error::FsError::new(libc::EIO, "foreign file without placement")
        })?;
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f.materialise(&store, placement)?)
    }

    pub(super) fn read_upper(&self, path: &Path) -> FsResult<Vec<u8>> {
        let mut buf = Vec::new();
        self.upper.open_file(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// The size of disk cache entry `key`, writing it first if needed: `f` expanded, merged
    /// with the upper file `with` when given.
    pub(super) fn materialised(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        key: u64,
        f: &ForeignFile,
        with: Option<&Meta>,
        path: &Path,
    ) -> FsResult<u64> {
        if let Some(size) = inner.cache.get(key) {
            return Ok(size);
        }
        if with.is_none()
            && let Some(size) = self.materialised_by_chunks(inner, foreign, key, f, path)?
        {
            return Ok(size);
        }
        let bytes = self.merged(foreign, key, f, with, path)?;
        Ok(inner.cache.put(key, &bytes)?)
    }

    /// How many bytes the view has expanded from the store so far: a new version of a long
    /// transcript must cost what it added, not its length (tests and the bench read it).
    pub fn expanded(&self) -> u64 {
        self.expanded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `n` bytes expanded.
    pub(super) fn count_expanded(&self, n: usize) {
        self.expanded
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The bytes of merge `key`: `f` expanded, merged with the upper file `with` when given.
    pub(super) fn merged(
        &self,
        foreign: &Foreign,
        key: u64,
        f: &ForeignFile,
        with: Option<&Meta>,
        path: &Path,
    ) -> FsResult<Vec<u8>> {
        let _span = tracing::debug_span!("materialise", ?path, key).entered();
        let theirs = self.expand_foreign(foreign, f)?;
        Ok(match with {
            None => theirs,
            // A transcript: every line of both, the older version's first.
            Some(m) if is_lines(path) => {
                let ours = self.read_upper(path)?;
                if m.mtime_ms() <= f.mtime_ms {
                    merge_lines(&[&ours, &theirs])
                } else {
                    merge_lines(&[&theirs, &ours])
                }
            }
            // Another file that is not covered: theirs is newer and wins.
            Some(_) => theirs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::holds_every_line;

    #[test]
    fn coverage_is_by_uuid_then_by_bytes() {
        let ours = b"{\"uuid\":\"a\",\"x\":1}\n{\"uuid\":\"b\"}\nplain\n";
        assert!(holds_every_line(ours, b"{\"uuid\":\"a\",\"x\":2}\nplain"));
        assert!(!holds_every_line(ours, b"{\"uuid\":\"c\"}\n"));
        assert!(!holds_every_line(ours, b"other\n"));
        assert!(holds_every_line(ours, b""));
    }
}
