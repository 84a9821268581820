//! Re-reading the store after a fetch: a new foreign index, and the list of view paths whose
//! content or presence changed, so the adapter can drop the kernel's caches for them.

use super::Fs;
use crate::error::FsResult;
use crate::foreign::{Foreign, ForeignFile};
use ferry_sync::view::snapshots_with;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Fs {
    /// Brings the foreign index up to the store; returns the view paths that changed (files
    /// added, removed or changed, and the directories whose listing changed). The index is
    /// patched by the project dirs that changed when nothing the places rest on did (see
    /// `crate::foreign::patch`), else built again.
    pub fn refresh(&self) -> FsResult<Vec<PathBuf>> {
        let _span = tracing::debug_span!("refresh").entered();
        // One at a time: a patch is made for the index it was planned on.
        let _one = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        tracing::debug!("refreshing the foreign index");
        let machine = &self.config.machine;
        let links = self.links();
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (snaps, skewed) = {
            let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            let mut skews = self.skews.lock().unwrap_or_else(|e| e.into_inner());
            if self.nothing_moved(&store, &skews, &links, &book)? {
                tracing::debug!("no branch moved since the index was made");
                return Ok(Vec::new());
            }
            let before = skews.clone();
            let snaps = snapshots_with(&store, &machine.id, &mut skews)?;
            (snaps, *skews != before)
        };
        // Another machine's clock lead moved every one of its times: build again.
        let plan = (!skewed)
            .then(|| self.foreign().plan(&snaps, machine, &links, &book))
            .flatten()
            .filter(|plan| self.keep_book(&book, plan));
        let changed: BTreeSet<String> = match plan {
            Some(plan) => {
                tracing::debug!(
                    places_moved = plan.places_moved(),
                    "patching the foreign index"
                );
                let moved = plan.places_moved();
                let mut inner = self.lock();
                let mut index = self.foreign.write().unwrap_or_else(|e| e.into_inner());
                let changed: BTreeSet<String> = match Arc::get_mut(&mut index) {
                    // Nobody holds the index: patched where it is, in a few milliseconds.
                    Some(patched) => {
                        let changed = patched.apply(plan).into_iter().collect();
                        warn_rejected(patched);
                        changed
                    }
                    // A request holds it (the warming holds it only with the core's lock,
                    // held here): patch a copy, made without holding the locks every request
                    // takes, then swap it in.
                    None => {
                        drop(index);
                        drop(inner);
                        let mut copy = (*self.foreign()).clone();
                        let changed = copy.apply(plan).into_iter().collect();
                        warn_rejected(&copy);
                        inner = self.lock();
                        *self.foreign.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(copy);
                        changed
                    }
                };
                self.foreign_version.fetch_add(1, Ordering::SeqCst);
                for p in &changed {
                    inner.decisions.remove(p);
                }
                if moved {
                    inner.projects.clear();
                }
                changed
            }
            None => {
                tracing::debug!("rebuilding the foreign index");
                let new = {
                    let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
                    let before = book.clone();
                    let new = Foreign::from_snapshots(&snaps, machine, &links, &mut book);
                    if *book != before {
                        super::save_book(&book, &self.config.places);
                    }
                    new
                };
                warn_rejected(&new);
                let old = self.foreign();
                let mut changed: BTreeSet<String> = BTreeSet::new();
                changed_between(&old.files, &new.files, &mut changed);
                // Copies hidden or shown again where they lie.
                for p in new.moved.keys().chain(old.moved.keys()) {
                    let fp = |m: &BTreeMap<String, ForeignFile>| m.get(p).map(|f| f.fingerprint);
                    if fp(&new.moved) != fp(&old.moved) {
                        changed.insert(p.clone());
                    }
                }
                drop(old);
                let mut inner = self.lock();
                for p in &changed {
                    inner.decisions.remove(p);
                }
                // Placements may have moved: projects are looked up again.
                inner.projects.clear();
                let old = std::mem::replace(
                    &mut *self.foreign.write().unwrap_or_else(|e| e.into_inner()),
                    Arc::new(new),
                );
                self.foreign_version.fetch_add(1, Ordering::SeqCst);
                // Freed once requests may go on: 10,000 files take milliseconds.
                drop(inner);
                drop(old);
                changed
            }
        };
        if let Some(to_warm) = self
            .to_warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            to_warm.extend(changed.iter().cloned());
        }
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        for p in &changed {
            let mut cur = p.as_str();
            while let Some((parent, _)) = cur.rsplit_once('/') {
                dirs.insert(parent.to_string());
                cur = parent;
            }
            dirs.insert(String::new());
        }
        Ok(changed.into_iter().chain(dirs).map(PathBuf::from).collect())
    }

    /// Takes the place book `plan` places projects by, if the book is still `was`, the one the
    /// plan was made with (an adoption may have changed it since: then the index is built).
    fn keep_book(&self, was: &crate::places::PlaceBook, plan: &crate::foreign::Plan) -> bool {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        if *book != *was {
            return false;
        }
        if *book != *plan.book() {
            *book = plan.book().clone();
            super::save_book(&book, &self.config.places);
        }
        true
    }

    /// Whether the index already shows the store: every branch's head, this machine's record,
    /// its links and place book are those it was made from, and the other machines' records
    /// leave the clock skews as they are. Then a refresh would read every branch (a 10,000
    /// file one took some 50 ms) only to change nothing, as after the first fetch of a daemon
    /// whose store `ferry init` had just filled.
    fn nothing_moved(
        &self,
        store: &ferry_sync::store::Store,
        skews: &ferry_sync::clock::Skews,
        links: &[ferry_sync::project_key::Link],
        book: &crate::places::PlaceBook,
    ) -> FsResult<bool> {
        let machine = &self.config.machine;
        let tips = ferry_sync::view::tips(store, &machine.id)?;
        if !self.foreign().built_from(&tips, machine, links, book) {
            return Ok(false);
        }
        let mut after = skews.clone();
        let now = ferry_sync::engine::now_ms();
        for (id, head) in tips.iter().filter(|(id, _)| *id != machine.id) {
            let Ok(record) = store.machine_record(id, *head) else {
                return Ok(false);
            };
            ferry_sync::clock::note_skew(&record, &machine.id, now, &mut after);
        }
        Ok(after == *skews)
    }

    /// Marks the disk cache as closed cleanly (see [`crate::cache::DiskCache::mark_clean`]):
    /// the warming stops, and a read served after it takes the mark back until the next close.
    /// Call after unmounting.
    pub fn close(&self) {
        if let Err(e) = self.lock().cache.mark_clean() {
            tracing::warn!(error = %e, "closing the disk cache failed; it will be rebuilt");
        }
    }
}

fn warn_rejected(index: &Foreign) {
    for r in &index.rejected {
        tracing::warn!(rejected = %r, "skipping content from a remote branch");
    }
}

/// Adds to `out` every path whose file differs between `old` and `new` (added, removed or with
/// another fingerprint), walking both in order: no lookup per path.
fn changed_between(
    old: &BTreeMap<String, ForeignFile>,
    new: &BTreeMap<String, ForeignFile>,
    out: &mut BTreeSet<String>,
) {
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (None, None) => return,
            (Some((p, _)), None) => {
                out.insert((*p).clone());
                o.next();
            }
            (None, Some((p, _))) => {
                out.insert((*p).clone());
                n.next();
            }
            (Some((po, fo)), Some((pn, fnew))) => match po.cmp(pn) {
                std::cmp::Ordering::Less => {
                    out.insert((*po).clone());
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    out.insert((*pn).clone());
                    n.next();
                }
                std::cmp::Ordering::Equal => {
                    if fo.fingerprint != fnew.fingerprint {
                        out.insert((*pn).clone());
                    }
                    o.next();
                    n.next();
                }
            },
        }
    }
}
