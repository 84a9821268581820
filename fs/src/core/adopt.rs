//! Adopting a checkout as a project's place on this machine. A machine that has never run Claude
//! Code in its checkout of a project has no record of where that checkout is, so other machines'
//! sessions of the project appear at the origin's HOME-relative path. When the client runs in the
//! checkout and looks for its project directory, the adapter learns the client's cwd, and the
//! core makes that checkout the project's place from then on (kept in the place book, see
//! [`crate::places`]); what this machine wrote in the old place is shown there, merged.

use super::Fs;
use crate::error::FsResult;
use crate::foreign::key_base;
use std::path::PathBuf;

impl Fs {
    /// Takes new `ferry link` entries: projects placed by a link move now, and what this
    /// machine wrote in the place they leave comes along (see [`crate::places`]). Returns the
    /// paths whose content or listing changed, for the kernel's caches to drop.
    pub fn set_links(&self, links: Vec<ferry_sync::project_key::Link>) -> FsResult<Vec<PathBuf>> {
        *self.links.write().unwrap_or_else(|e| e.into_inner()) = links;
        self.refresh()
    }

    /// Whether this machine's commit of `places` can change the view: a place of a project
    /// other machines have, other than the one their sessions are listed in (a copy to merge
    /// there, or a place that may now receive the project).
    pub fn commit_matters(&self, places: &[ferry_sync::store::PlaceId]) -> bool {
        let foreign = self.foreign();
        places.iter().any(|p| {
            foreign
                .placements
                .get(&p.key)
                .is_some_and(|at| at.project.slug != p.slug)
        })
    }

    /// Makes the checkout at `root`, whose normalised origin is `key`, the place where other
    /// machines' sessions of that project appear, if they have any and no link or checkout was
    /// chosen for it yet. Returns the paths whose content or listing changed if it did (for the
    /// kernel's caches to drop), `None` if the view stays as it was.
    pub fn adopt_checkout(&self, root: &str, key: &str) -> FsResult<Option<Vec<PathBuf>>> {
        let _span = tracing::debug_span!("adopt", root, key).entered();
        let foreign = self.foreign();
        let wanted = foreign.placements.keys().any(|k| key_base(k) == key);
        if !wanted || foreign.roots.get(key).is_some_and(|r| r == root) {
            return Ok(None);
        }
        {
            let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
            if !book.adopt(key, root) {
                return Ok(None);
            }
            // The places the project leaves: this machine's copies there come along.
            for p in foreign
                .placements
                .iter()
                .filter(|(k, _)| key_base(k) == key)
            {
                book.retire(key, &p.1.project.slug);
            }
            super::save_book(&book, &self.config.places);
        }
        // Not held across the refresh: an index nobody holds is patched where it is, without
        // a copy of every file.
        drop(foreign);
        tracing::info!(
            root,
            key,
            "placing another machine's project in this checkout"
        );
        self.refresh().map(Some)
    }
}
