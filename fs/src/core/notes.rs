//! Telling the sync engine what changed: which project a slug directory belongs to, and the
//! change in the store's terms.

use super::{Fs, Inner};
use crate::foreign::Foreign;
use ferry_sync::store::{Change, ProjectRecord, RelPath};
use ferry_sync::upper::{CWD_SCAN, cwd_in, never_sync, project_for_cwd};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Splits a view path into its slug directory and the path inside it.
fn split(path: &Path) -> Option<(String, String)> {
    let mut comps = path.components();
    let Some(Component::Normal(slug)) = comps.next() else {
        return None;
    };
    let rest: Vec<&str> = comps
        .map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if rest.is_empty() || rest.iter().any(|n| never_sync(n)) {
        return None;
    }
    Some((slug.to_str()?.to_string(), rest.join("/")))
}

impl Fs {
    /// A write to `path` in the upper layer, bytes from `dirty_from` on possibly changed.
    pub(super) fn note_write(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        path: &Path,
        dirty_from: Option<u64>,
        bytes: u64,
    ) {
        let change = Change::Write {
            local: self.upper.reach(path),
            dirty_from,
        };
        self.note(inner, foreign, path, change, bytes);
    }

    /// Records `change` for `path` with the engine, or keeps it until the project is known.
    pub(super) fn note(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        path: &Path,
        change: Change,
        bytes: u64,
    ) {
        let Some((slug, rel)) = split(path) else {
            return;
        };
        let rel = match RelPath::new(&rel) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(?path, error = %e, "not syncing a path the store cannot hold");
                return;
            }
        };
        match self.project_of(inner, foreign, &slug) {
            Some(p) => {
                self.sink.note(&p, rel, change, bytes);
                if let Some(waiting) = inner.unresolved.remove(&slug) {
                    for (rel, change, bytes) in waiting {
                        self.sink.note(&p, rel, change, bytes);
                    }
                }
            }
            None => inner
                .unresolved
                .entry(slug)
                .or_default()
                .push((rel, change, bytes)),
        }
    }

    /// The project of slug directory `slug`: recorded, placed from another machine, or found
    /// from the `cwd` its transcripts name.
    fn project_of(
        &self,
        inner: &mut Inner,
        foreign: &Foreign,
        slug: &str,
    ) -> Option<ProjectRecord> {
        if let Some(p) = inner.projects.get(slug) {
            return Some(p.clone());
        }
        let placed = || {
            let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
            book.placed.get(slug).cloned()
        };
        let found = foreign
            .projects_by_slug
            .get(slug)
            .cloned()
            .or_else(placed)
            .or_else(|| {
                let cwd = self.cwd_of_slug(slug)?;
                project_for_cwd(
                    slug,
                    Some(&cwd),
                    Path::new(&self.config.machine.home),
                    &self.links(),
                    false,
                )
            })?;
        inner.projects.insert(slug.to_string(), found.clone());
        Some(found)
    }

    /// The first `cwd` named by a transcript in the upper layer's `slug` directory.
    fn cwd_of_slug(&self, slug: &str) -> Option<String> {
        let dir = PathBuf::from(slug);
        let mut names: Vec<_> = self
            .upper
            .list(&dir)
            .ok()?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| Path::new(n).extension().is_some_and(|e| e == "jsonl"))
            .collect();
        names.sort();
        names.into_iter().find_map(|n| {
            let mut head = Vec::new();
            self.upper
                .open_file(&dir.join(n))
                .ok()?
                .take(CWD_SCAN)
                .read_to_end(&mut head)
                .ok()?;
            cwd_in(&head)
        })
    }

    /// Hands over changes whose project never became known (a directory with no transcript
    /// naming a cwd), under a key naming the slug, as the reconcile at start would. Call before
    /// the final commit.
    pub fn flush_unresolved(&self) {
        let mut inner = self.lock();
        let waiting = std::mem::take(&mut inner.unresolved);
        for (slug, changes) in waiting {
            let Some(p) = project_for_cwd(
                &slug,
                None,
                Path::new(&self.config.machine.home),
                &self.links(),
                false,
            ) else {
                continue;
            };
            for (rel, change, bytes) in changes {
                self.sink.note(&p, rel, change, bytes);
            }
        }
    }
}
