//! Telling the sync engine what changed: which project a slug directory belongs to, and the
//! change in the store's terms.

use super::{Fs, Inner};
use crate::foreign::Foreign;
use ferry_sync::store::{Change, ProjectRecord, RelPath};
use ferry_sync::upper::{CWD_SCAN, cwd_in, never_sync, project_for_cwd};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Splits a view path into its slug directory and the path inside it, as the store holds
/// it; `None` for what is never synced (a file beside the project directories, a temporary
/// file), or why the store cannot hold it.
fn split(path: &Path) -> Option<Result<(String, RelPath), String>> {
    let mut comps = path.components();
    let Some(Component::Normal(slug)) = comps.next() else {
        return None;
    };
    let rest: Vec<&std::ffi::OsStr> = comps
        .map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if rest.is_empty() || rest.iter().any(|n| n.to_str().is_some_and(never_sync)) {
        return None;
    }
    let utf8 = || -> Option<(String, Vec<&str>)> {
        let rest = rest.iter().map(|n| n.to_str()).collect::<Option<_>>()?;
        Some((slug.to_str()?.to_string(), rest))
    };
    let Some((slug, rest)) = utf8() else {
        return Some(Err("its name is not UTF-8".into()));
    };
    Some(RelPath::checked(&rest.join("/")).map(|rel| (slug, rel)))
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
        if let Some(sid) = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_suffix(".jsonl"))
            .filter(|_| path.components().count() == 2)
        {
            match inner.active.get_mut(sid) {
                Some(at) => *at = std::time::Instant::now(),
                None => {
                    inner
                        .active
                        .insert(sid.to_string(), std::time::Instant::now());
                }
            }
        }
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
        let (slug, rel) = match split(path) {
            None => return,
            Some(Ok(split)) => split,
            Some(Err(why)) => return self.cannot_hold(inner, path, why, &change),
        };
        match self.project_of(inner, foreign, &slug) {
            Some(p) => {
                self.sink.note(&p, rel, change, bytes);
                if !inner.unresolved.is_empty() {
                    self.retry_unresolved(inner, foreign);
                }
            }
            None => {
                let changes = inner.unresolved.entry(slug).or_default();
                let new_path = !changes.iter().any(|(r, _, _)| *r == rel);
                changes.push((rel, change, bytes));
                if new_path {
                    self.report_waiting(inner);
                }
            }
        }
    }

    /// Hands over the changes of every waiting directory whose project is known now (its first
    /// transcript arrived, or it is the root of a project now known).
    fn retry_unresolved(&self, inner: &mut Inner, foreign: &Foreign) {
        let slugs: Vec<String> = inner.unresolved.keys().cloned().collect();
        let mut any = false;
        for slug in slugs {
            if let Some(p) = self.project_of(inner, foreign, &slug) {
                for (rel, change, bytes) in inner.unresolved.remove(&slug).unwrap_or_default() {
                    self.sink.note(&p, rel, change, bytes);
                }
                any = true;
            }
        }
        if any {
            self.report_waiting(inner);
        }
    }

    /// Tells the engine which changes wait for their project, so `ferry status` and
    /// `ferry sync` can say so.
    fn report_waiting(&self, inner: &Inner) {
        let waiting = inner
            .unresolved
            .iter()
            .map(|(slug, changes)| {
                let paths: std::collections::BTreeSet<&RelPath> =
                    changes.iter().map(|(r, _, _)| r).collect();
                ferry_sync::engine::Waiting {
                    dir: slug.clone(),
                    paths: paths.len(),
                    why: "no transcript there names its working directory yet; committed as soon as one does, or at unmount".into(),
                }
            })
            .collect();
        self.sink.waiting(waiting);
    }

    /// Looks through the upper layer for files the store cannot hold (written while the view
    /// was not mounted, or before this daemon started), so that `ferry status` names them too;
    /// returns how many there are in all. Walks the whole layer: run it off the request path.
    pub fn find_unsyncable(&self) -> usize {
        let mut found = Vec::new();
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = self.upper.list(&dir) else {
                continue;
            };
            for (name, meta) in entries {
                if super::hidden_name(&name) {
                    continue;
                }
                let path = dir.join(&name);
                if meta.kind == crate::upper::Kind::Dir {
                    dirs.push(path);
                } else if let Some(Err(why)) = split(&path) {
                    found.push((path, why));
                }
            }
        }
        let mut inner = self.lock();
        let mut new = 0;
        for (path, why) in found {
            // Not one deleted through the view since the walk saw it.
            let there = matches!(self.upper.stat(&path), Ok(Some(_)));
            if there && inner.unsyncable.insert(path, why).is_none() {
                new += 1;
            }
        }
        if new > 0 {
            self.report_unsyncable(&inner);
        }
        inner.unsyncable.len()
    }

    /// Keeps the list of files here the store cannot hold, for `ferry status`: `path` written,
    /// or gone (then nothing of it needs syncing).
    fn cannot_hold(&self, inner: &mut Inner, path: &Path, why: String, change: &Change) {
        let changed = match change {
            Change::Write { .. } => {
                let new = inner
                    .unsyncable
                    .insert(path.to_path_buf(), why.clone())
                    .is_none();
                if new {
                    tracing::warn!(
                        ?path,
                        why,
                        "a file the store cannot hold stays on this machine only"
                    );
                }
                new
            }
            Change::Delete { .. } | Change::Hide { .. } => inner.unsyncable.remove(path).is_some(),
        };
        if changed {
            self.report_unsyncable(inner);
        }
    }

    /// Tells the engine the whole list of files the store cannot hold.
    fn report_unsyncable(&self, inner: &Inner) {
        let files = inner
            .unsyncable
            .iter()
            .map(|(p, why)| ferry_sync::engine::Unsyncable {
                path: p.to_string_lossy().into_owned(),
                why: why.clone(),
            })
            .collect();
        self.sink.unsyncable(files);
    }

    /// The project of slug directory `slug`: recorded, placed from another machine, or found
    /// from the `cwd` its transcripts name.
    pub(super) fn project_of(
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
        // A record under the slug's own key (a memory dir filed before its project was known)
        // gives way to the project found now.
        let found = foreign
            .projects_by_slug
            .get(slug)
            .filter(|p| !p.key.starts_with(ferry_sync::upper::SLUG_KEY))
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
            })
            .or_else(|| self.root_project(inner, foreign, slug))?;
        inner.projects.insert(slug.to_string(), found.clone());
        Some(found)
    }

    /// The project whose root has slug `slug` (its memory dir), among those known here.
    fn root_project(&self, inner: &Inner, foreign: &Foreign, slug: &str) -> Option<ProjectRecord> {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let known: Vec<ProjectRecord> = foreign
            .projects_by_slug
            .values()
            .chain(inner.projects.values())
            .chain(book.placed.values())
            .filter(|p| !p.key.starts_with(ferry_sync::upper::SLUG_KEY))
            .cloned()
            .collect();
        ferry_sync::upper::project_at_root(slug, &known)
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
        self.report_waiting(&inner);
        for (slug, changes) in waiting {
            let foreign = self.foreign();
            let root = self.root_project(&inner, &foreign, &slug);
            let Some(p) = root.or_else(|| {
                project_for_cwd(
                    &slug,
                    None,
                    Path::new(&self.config.machine.home),
                    &self.links(),
                    false,
                )
            }) else {
                continue;
            };
            for (rel, change, bytes) in changes {
                self.sink.note(&p, rel, change, bytes);
            }
        }
    }
}
