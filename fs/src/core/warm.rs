//! Expanding other machines' files into the disk cache ahead of use, in the background, so
//! that a first listing finds them ready. A file only other machines provide, which no reader
//! was served yet, is read from the store and expanded outside the core's lock, with a store
//! handle of the warming's own: requests (a listing expanding what the warming has not reached)
//! go on meanwhile on the other cores. Only putting the result in the cache takes the lock.
//! Everything else (a merge with this machine's copy, a transcript served before, a long file)
//! goes through [`Fs::node`] under the lock, as a request would.

use super::steady::{Chunked, Served, by_chunks, expand_by_chunks, record_chunks};
use super::{Fs, Inner, key_of};
use crate::error::FsResult;
use crate::foreign::{Foreign, ForeignFile};
use crate::placement::Placement;
use ferry_sync::store::{Store, StoreError};
use std::collections::BTreeSet;
use std::path::Path;

/// Files up to this long (their versions together, in portable form) are expanded outside the
/// core's lock, held whole meanwhile; a longer one is written under it a megabyte at a time,
/// so that the warming never holds a long transcript whole.
const OUTSIDE_LOCK_MAX: u64 = 1 << 20;

/// The warming's own handle on the store: its reads wait for no request's.
enum Own {
    Unopened,
    Open(Store),
    /// It did not open: the core's handle is used, under the lock.
    Failed,
}

/// A file to expand outside the core's lock: what [`Fs::node`] would write for it.
struct Job {
    /// Its disk cache entry (the foreign file's fingerprint).
    key: u64,
    /// Its view path, as the index spells it.
    path: String,
    file: ForeignFile,
    placement: Placement,
    /// Expanded chunk by chunk (a transcript of one version), so that its next version grows
    /// the entry by what it added.
    by_chunks: bool,
}

impl Job {
    /// The entry's bytes, and where each chunk ends for one made by chunks.
    fn expand(&self, store: &Store) -> Result<(Vec<u8>, Option<Chunked>), StoreError> {
        if !self.by_chunks {
            return Ok((self.file.materialise(store, &self.placement)?, None));
        }
        let (bytes, chunked) = expand_by_chunks(store, &self.file, &self.placement)?;
        Ok((bytes, Some(chunked)))
    }
}

impl Fs {
    /// Expands every file other machines provide into the disk cache ahead of use, one at a
    /// time so that requests are served in between; returns how many were expanded. The daemon
    /// runs it in the background after each refresh, so a first listing finds them ready; it
    /// stops once the cache is closed ([`Fs::close`]). What refreshes change while it runs is
    /// expanded before it returns.
    pub fn warm(&self) -> usize {
        let mut own = Own::Unopened;
        let (mut done, mut bytes) = (0, 0u64);
        loop {
            // Taken before the index is looked at: a refresh from now on adds what it changed.
            let only = self
                .to_warm
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(BTreeSet::new());
            let paths: Vec<String> = match &only {
                Some(changed) => changed.iter().cloned().collect(),
                None => self.foreign().files.keys().cloned().collect(),
            };
            if paths.is_empty() {
                return done;
            }
            let (n, cut) = self.warm_paths(&paths, &mut own, &mut bytes);
            done += n;
            // Cut short: the next warming looks at them again (what is expanded already is
            // passed over).
            if cut {
                self.rewarm(&only);
                return done;
            }
            // Closed (unmounting): nothing more is written.
            if self.lock().cache.is_closed() {
                return done;
            }
        }
    }

    /// Expands `paths` as the index has them when each is reached; how many were expanded, and
    /// whether the budget cut it short. The index is taken with the core's lock held, file
    /// by file: a refresh, which takes that lock too, then finds nobody else holding it and
    /// patches it where it is.
    fn warm_paths(&self, paths: &[String], own: &mut Own, bytes: &mut u64) -> (usize, bool) {
        let mut done = 0;
        for path in paths {
            let view_path = Path::new(path);
            // Within half the budget, so that warming never evicts what it just expanded (and
            // never loops expanding more than fits).
            if *bytes > self.config.cache_budget / 2 {
                return (done, true);
            }
            let job = {
                let mut inner = self.lock();
                let foreign = self.foreign();
                let Some(file) = foreign.file(path) else {
                    continue;
                };
                if inner.cache.is_closed() {
                    return (done, false);
                }
                if inner.cache.get(file.fingerprint).is_some() {
                    continue;
                }
                match self.job(&inner, &foreign, view_path) {
                    Ok(Some(job)) if self.open_own(own) => job,
                    // Under the lock, as a request would.
                    Ok(_) => {
                        match self.node(&mut inner, &foreign, view_path) {
                            Ok(Some(super::Node::Cached { size, .. })) => {
                                done += 1;
                                *bytes += size;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(?path, error = %e, "expanding ahead of use failed")
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(?path, error = %e, "expanding ahead of use failed");
                        continue;
                    }
                }
            };
            let Own::Open(store) = &*own else {
                unreachable!("opened above")
            };
            let (expanded, chunks) = match job.expand(store) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(?path, error = %e, "expanding ahead of use failed");
                    continue;
                }
            };
            let mut inner = self.lock();
            match self.keep(&mut inner, &job, &expanded, chunks) {
                Ok(Some(size)) => {
                    done += 1;
                    *bytes += size;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(?path, error = %e, "expanding ahead of use failed"),
            }
        }
        (done, false)
    }

    /// Opens the warming's own handle on the store once; whether it is open (else every file
    /// goes through the core's, under its lock).
    fn open_own(&self, own: &mut Own) -> bool {
        if let Own::Unopened = own {
            *own = match Store::open(&self.config.store) {
                Ok(s) => Own::Open(s),
                Err(e) => {
                    tracing::debug!(error = %e, "warming through the core's store handle");
                    Own::Failed
                }
            };
        }
        matches!(own, Own::Open(_))
    }

    /// The job of expanding `path` outside the lock, when [`Fs::node`] would write it as other
    /// machines' file alone: no upper file, a foreign file shown there, no transcript served
    /// from it yet, short enough to hold whole.
    fn job(&self, inner: &Inner, foreign: &Foreign, path: &Path) -> FsResult<Option<Job>> {
        let Some(k) = key_of(path) else {
            return Ok(None);
        };
        if path.file_name().is_some_and(super::hidden_name)
            || foreign.is_moved(&k)
            || inner.served.contains_key(k.as_ref())
            || self.upper.stat(path)?.is_some()
        {
            return Ok(None);
        }
        let Some(file) = self.visible_foreign(inner, foreign, path) else {
            return Ok(None);
        };
        if file.versions.iter().map(|v| v.meta.len).sum::<u64>() > OUTSIDE_LOCK_MAX {
            return Ok(None);
        }
        let Some(placement) = foreign.placement(&file).cloned() else {
            return Ok(None);
        };
        Ok(Some(Job {
            key: file.fingerprint,
            path: k.into_owned(),
            by_chunks: by_chunks(foreign, &file, path).is_some(),
            file,
            placement,
        }))
    }

    /// Puts what `job` expanded in the cache, as [`Fs::node`] would have, unless the path
    /// changed meanwhile (another version shown, a copy written here, a reader served, the
    /// entry made by a request); its size if it did.
    fn keep(
        &self,
        inner: &mut Inner,
        job: &Job,
        expanded: &[u8],
        chunks: Option<Chunked>,
    ) -> FsResult<Option<u64>> {
        let path = Path::new(&job.path);
        let foreign = self.foreign();
        let same = self
            .visible_foreign(inner, &foreign, path)
            .is_some_and(|f| f.fingerprint == job.key);
        if !same
            || inner.cache.is_closed()
            || inner.cache.get(job.key).is_some()
            || inner.served.contains_key(&job.path)
            || self.upper.stat(path)?.is_some()
        {
            return Ok(None);
        }
        let size = inner.cache.put(job.key, expanded)?;
        self.warmed_unlocked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(c) = chunks {
            self.count_expanded(expanded.len());
            record_chunks(inner, job.key, c);
        }
        if super::resolve::is_lines(path) {
            inner.served.insert(
                job.path.clone(),
                Served::Cache {
                    base: job.key,
                    key: job.key,
                },
            );
        }
        Ok(Some(size))
    }

    /// How many files the warming expanded outside the core's lock so far (tests read it).
    pub fn warmed_unlocked(&self) -> u64 {
        self.warmed_unlocked
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Gives back what a warming cut short had to look at, for the next one.
    fn rewarm(&self, only: &Option<BTreeSet<String>>) {
        let mut to_warm = self.to_warm.lock().unwrap_or_else(|e| e.into_inner());
        match (only, to_warm.as_mut()) {
            (Some(changed), Some(pending)) => pending.extend(changed.iter().cloned()),
            _ => *to_warm = None,
        }
    }
}
