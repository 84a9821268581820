//! Keeping a transcript's lines where a reader saw them when other machines' lines arrive.
//!
//! The merge of a transcript puts the older version's lines first. When a newer line of that
//! older version arrives, every line after the point where the versions part moves to a later
//! offset, and a reader whose read spans the refresh (one `read` is several READ requests) sees
//! a line twice or misses one. On a local disk an append log never moves a line. So once the
//! view has served a transcript, a new merge that still holds every line served keeps those
//! lines first, in their places, and the new ones follow: the file only grows. A merge that
//! drops a line served (a writer rewrote its file) is served as it is, as a rewrite would be.

use super::{Fs, Inner, key_of};
use crate::error::FsResult;
use crate::foreign::{Foreign, ForeignFile};
use crate::placement::Placement;
use crate::upper::Meta;
use ferry_sync::merge::merge_lines;
use ferry_sync::store::fnv1a;
use std::io::Write;
use std::path::Path;

/// What the view last served for a transcript path, so that the next merge keeps its lines in
/// place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Served {
    /// The upper-layer file, as it is.
    Upper,
    /// Disk cache entry `key`, made for the merge whose own key is `base`.
    Cache { base: u64, key: u64 },
}

impl Fs {
    /// Notes that transcript `path` is served from the upper layer as it is.
    pub(super) fn served_upper(&self, inner: &mut Inner, path: &Path) {
        if !super::resolve::is_lines(path) {
            return;
        }
        let Some(k) = key_of(path) else { return };
        if inner.served.get(k.as_ref()) != Some(&Served::Upper) {
            inner.served.insert(k.into_owned(), Served::Upper);
        }
    }

    /// The disk cache entry that serves merge `base` of `f` (with the upper file `with`) at
    /// `path`, and its size: the merge itself, or for a transcript served before, the lines
    /// served first and the merge's new lines after them.
    pub(super) fn steady(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        base: u64,
        f: &ForeignFile,
        with: Option<&Meta>,
        path: &Path,
    ) -> FsResult<(u64, u64)> {
        let k = key_of(path).filter(|_| super::resolve::is_lines(path));
        let before = k
            .as_ref()
            .and_then(|k| inner.served.get(k.as_ref()).copied());
        if let Some(Served::Cache { base: b, key }) = before
            && b == base
            && let Some(size) = inner.cache.get(key)
        {
            return Ok((key, size));
        }
        let Some(k) = k else {
            return Ok((
                base,
                self.materialised(inner, foreign, base, f, with, path)?,
            ));
        };
        // A new version of a transcript held by chunks: the old entry, grown by what it added
        // (tried before anything is read whole).
        if let (Some(Served::Cache { key: old, .. }), None) = (before, with)
            && let Some(size) = self.extended(inner, foreign, old, base, f, path)?
        {
            inner
                .served
                .insert(k.into_owned(), Served::Cache { base, key: base });
            return Ok((base, size));
        }
        let earlier = match before {
            Some(Served::Upper) if with.is_some() => Some((0, self.read_upper(path)?)),
            Some(Served::Cache { key, .. }) if inner.cache.get(key).is_some() => {
                Some((key, inner.cache.open_entry(key)?.read_all()?))
            }
            _ => None,
        };
        let Some((from, earlier)) = earlier else {
            let size = self.materialised(inner, foreign, base, f, with, path)?;
            inner
                .served
                .insert(k.into_owned(), Served::Cache { base, key: base });
            return Ok((base, size));
        };
        let held = inner.cache.get(base);
        let (merge, chunks) = match held {
            Some(_) => (inner.cache.open_entry(base)?.read_all()?, None),
            // By chunks where it can be, so that the next version can grow it.
            None if with.is_none() => match self.chunks_of(foreign, f, path)? {
                Some((bytes, c)) => (bytes, Some(c)),
                None => (self.merged(foreign, base, f, with, path)?, None),
            },
            None => (self.merged(foreign, base, f, with, path)?, None),
        };
        let (key, size) = match kept_in_place(&earlier, &merge) {
            Some(kept) => {
                let key = fnv1a(&[base.to_le_bytes(), from.to_le_bytes()].concat());
                (key, inner.cache.put(key, &kept)?)
            }
            None => {
                let size = match held {
                    Some(size) => size,
                    None => inner.cache.put(base, &merge)?,
                };
                if let Some(c) = chunks {
                    record_chunks(inner, base, c);
                }
                (base, size)
            }
        };
        inner
            .served
            .insert(k.into_owned(), Served::Cache { base, key });
        Ok((key, size))
    }
}

/// A disk cache entry that holds a transcript of one version as its chunks expanded one by
/// one.
pub(super) struct Chunked {
    /// The expansion it was made with ([`crate::foreign::expansion_of`] its placement).
    pub(super) expansion: u64,
    /// Each chunk's id, with where its expansion ends in the entry.
    pub(super) ends: crate::foreign::ChunkEnds,
}

impl Fs {
    /// Transcript `f`'s chunks expanded one by one, with where each ends; `None` unless `f` is
    /// a transcript of one version.
    fn chunks_of(
        &self,
        foreign: &Foreign,
        f: &ForeignFile,
        path: &Path,
    ) -> FsResult<Option<(Vec<u8>, Chunked)>> {
        let Some(placement) = by_chunks(foreign, f, path) else {
            return Ok(None);
        };
        let (bytes, chunked) = {
            let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            expand_by_chunks(&store, f, placement)?
        };
        self.count_expanded(bytes.len());
        Ok(Some((bytes, chunked)))
    }

    /// Writes disk cache entry `key` as transcript `f`'s chunks expanded one by one, a
    /// megabyte at a time (a long transcript is never held whole), and keeps where each ends;
    /// its size, or `None` (nothing written) unless `f` is a transcript of one version.
    pub(super) fn materialised_by_chunks(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        key: u64,
        f: &ForeignFile,
        path: &Path,
    ) -> FsResult<Option<u64>> {
        let Some(placement) = by_chunks(foreign, f, path) else {
            return Ok(None);
        };
        let _span = tracing::debug_span!("materialise by chunks", ?path, key).entered();
        let mut ends = Vec::new();
        let size = inner.cache.put_from(key, |file| {
            let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            let ids = store
                .chunk_ids(&f.versions[0])
                .map_err(std::io::Error::other)?;
            let mut spill = |b: &[u8]| file.write_all(b);
            let (rest, e) = f
                .expand_chunks(&store, placement, &ids, (0, 0), Some(&mut spill))
                .map_err(std::io::Error::other)?;
            ends = e;
            file.write_all(&rest)
        })?;
        self.count_expanded(size as usize);
        let expansion = crate::foreign::expansion_of(placement);
        record_chunks(inner, key, Chunked { expansion, ends });
        Ok(Some(size))
    }

    /// Entry `key` for transcript `f` made from entry `old`, an earlier version of it held by
    /// chunks: only the chunks after those the two share are expanded, and the old entry, grown
    /// by what they add, becomes the new one. `None` when they share no chunk, the expansion
    /// changed, or the old entry does not lead the new one (a line rewritten).
    fn extended(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        old: u64,
        key: u64,
        f: &ForeignFile,
        path: &Path,
    ) -> FsResult<Option<u64>> {
        let Some(placement) = by_chunks(foreign, f, path).filter(|_| old != key) else {
            return Ok(None);
        };
        let Some(was) = inner.chunked.get(&old) else {
            return Ok(None);
        };
        let Some(old_size) = inner.cache.get(old) else {
            inner.chunked.remove(&old);
            return Ok(None);
        };
        // A small entry shares a slab and is not grown in place: expanded whole, it costs
        // about what its tail would.
        if !inner.cache.is_own(old) {
            return Ok(None);
        }
        if was.expansion != crate::foreign::expansion_of(placement) {
            return Ok(None);
        }
        let _span = tracing::debug_span!("extend", old, key).entered();
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let ids = store.chunk_ids(&f.versions[0])?;
        let shared = ids
            .iter()
            .zip(&was.ends)
            .take_while(|(id, (was_id, _))| *id == was_id)
            .count();
        let from = match shared {
            0 => return Ok(None),
            n => was.ends[n - 1].1,
        };
        if from > old_size {
            return Ok(None);
        }
        let (tail, ends) = f.expand_chunks(&store, placement, &ids, (shared, from), None)?;
        drop(store);
        self.count_expanded(tail.len());
        // What the old entry holds after the shared chunks must lead what replaces them.
        let kept = (old_size - from) as usize;
        let Ok(kept32) = u32::try_from(kept) else {
            return Ok(None);
        };
        let had = inner.cache.open_entry(old)?.read_upto(from, kept32)?;
        if tail.len() < kept || had != tail[..kept] {
            return Ok(None);
        }
        let Some(size) = inner.cache.extend(old, key, &tail[kept..]) else {
            return Ok(None);
        };
        let mut chunked = inner.chunked.remove(&old).expect("looked up above");
        chunked.ends.truncate(shared);
        chunked.ends.extend(ends);
        inner.chunked.insert(key, chunked);
        Ok(Some(size))
    }
}

/// Transcript `f` of one version, its chunks expanded one by one for `placement`, held whole,
/// with where each ends: what a disk cache entry made by chunks holds.
pub(super) fn expand_by_chunks(
    store: &ferry_sync::store::Store,
    f: &ForeignFile,
    placement: &Placement,
) -> Result<(Vec<u8>, Chunked), ferry_sync::store::StoreError> {
    let ids = store.chunk_ids(&f.versions[0])?;
    let (bytes, ends) = f.expand_chunks(store, placement, &ids, (0, 0), None)?;
    let expansion = crate::foreign::expansion_of(placement);
    Ok((bytes, Chunked { expansion, ends }))
}

/// Where `f` is expanded to, when it is a transcript of one version, which the disk cache holds
/// by chunks.
pub(super) fn by_chunks<'a>(
    foreign: &'a Foreign,
    f: &ForeignFile,
    path: &Path,
) -> Option<&'a Placement> {
    (f.versions.len() == 1 && super::resolve::is_lines(path))
        .then(|| foreign.placement(f))
        .flatten()
}

/// Keeps where each chunk of entry `key` ends, and lets go of the records of entries the cache
/// dropped once a few have gathered: the live ones are bounded by the cache's budget (a
/// record is about 2 bytes per kilobyte of its entry).
pub(super) fn record_chunks(inner: &mut Inner, key: u64, chunked: Chunked) {
    inner.chunked.insert(key, chunked);
    if inner.chunked.len() > inner.cache.len() + 64 {
        let cache = &inner.cache;
        inner.chunked.retain(|k, _| cache.holds(*k));
    }
}

/// `earlier`'s lines in their places and `merge`'s other lines after them, when `merge` holds
/// every line of `earlier` and does not already begin with it. Only the lines after the point
/// where the two part are compared: a long session costs what changed, not its length.
fn kept_in_place(earlier: &[u8], merge: &[u8]) -> Option<Vec<u8>> {
    let same = common_prefix(earlier, merge);
    if same == earlier.len() {
        return None;
    }
    let cut = earlier[..same]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let (was, now) = (&earlier[cut..], &merge[cut..]);
    if !super::resolve::holds_every_line(now, was) {
        return None;
    }
    let mut kept = Vec::with_capacity(merge.len().max(earlier.len()));
    kept.extend_from_slice(&earlier[..cut]);
    kept.extend_from_slice(&merge_lines(&[was, now]));
    Some(kept)
}

/// How many leading bytes `a` and `b` share, compared a block at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}
