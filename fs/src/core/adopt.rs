//! Adopting a checkout as a project's place on this machine. A machine that has never run Claude
//! Code in its checkout of a project has no record of where that checkout is, so other machines'
//! sessions of the project appear at the origin's HOME-relative path. When the client runs in the
//! checkout and looks for its project directory, the adapter learns the client's cwd, and the
//! core places the project there from then on, as a `ferry link` would.

use super::Fs;
use crate::error::FsResult;
use ferry_sync::project_key::Link;

/// The repository half of a project key (`github.com/o/r` of `github.com/o/r//sub`).
fn key_base(key: &str) -> &str {
    key.split_once("//").map_or(key, |(base, _)| base)
}

impl Fs {
    /// Makes the checkout at `root`, whose normalised origin is `key`, the place where other
    /// machines' sessions of that project appear, if they have any and this machine has no place
    /// for it yet (no own sessions, no link). Returns whether the view changed.
    pub fn adopt_checkout(&self, root: &str, key: &str) -> FsResult<bool> {
        let _span = tracing::debug_span!("adopt", root, key).entered();
        let foreign = self.foreign();
        let wanted = foreign.placements.keys().any(|k| key_base(k) == key);
        if !wanted || foreign.checkouts.contains_key(key) {
            return Ok(false);
        }
        {
            let mut links = self.links.write().unwrap_or_else(|e| e.into_inner());
            if links.iter().any(|l| l.key == key) {
                return Ok(false);
            }
            links.push(Link {
                path: root.to_string(),
                key: key.to_string(),
            });
        }
        tracing::info!(
            root,
            key,
            "placing another machine's project in this checkout"
        );
        self.refresh()?;
        Ok(true)
    }
}
