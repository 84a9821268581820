//! The merged view of one path across machines: what the mount shows and `ferry restore` and
//! `ferry status` reason about. Built from each machine's newest version in the store, merged by
//! the rules of [`crate::merge`], still in portable form.

use crate::merge::{Resolution, Version, merge_lines, resolve};
use crate::store::{FileEntry, Snapshot, Store, StoreError};

/// One path as the view shows it.
#[derive(Debug)]
pub struct ViewFile<'a> {
    /// Every machine's version of the path, with the machine id.
    pub versions: Vec<(&'a str, &'a FileEntry)>,
    /// Which of them are shown and which lost.
    pub resolution: Resolution,
}

impl ViewFile<'_> {
    /// Whether the view shows the path at all.
    pub fn visible(&self) -> bool {
        !self.resolution.shown.is_empty()
    }

    /// The portable bytes the view shows (merged lines for a transcript, else the winner's).
    pub fn read(&self, store: &Store) -> Result<Vec<u8>, StoreError> {
        let texts = self
            .resolution
            .shown
            .iter()
            .map(|&i| store.read(self.versions[i].1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(merge_lines(
            &texts.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        ))
    }

    /// The newest modification time among the shown versions: the mtime the view reports.
    pub fn mtime_ms(&self) -> Option<i64> {
        self.resolution
            .shown
            .iter()
            .map(|&i| self.versions[i].1.meta.mtime_ms)
            .max()
    }
}

/// The view of `rel` in project `key` as machine `viewer` sees it, from every machine's
/// snapshot (including the viewer's own).
pub fn view_of<'a>(snapshots: &'a [Snapshot], viewer: &str, key: &str, rel: &str) -> ViewFile<'a> {
    let versions: Vec<(&str, &FileEntry)> = snapshots
        .iter()
        .filter_map(|s| {
            s.files
                .iter()
                .find(|f| f.project.key == key && f.rel.as_str() == rel)
                .map(|f| (s.machine.id.as_str(), f))
        })
        .collect();
    let lines = rel.ends_with(".jsonl");
    let merge_input: Vec<Version> = versions
        .iter()
        .map(|(m, f)| Version {
            machine: m,
            meta: f.meta,
        })
        .collect();
    let resolution = resolve(&merge_input, viewer, lines);
    ViewFile {
        versions,
        resolution,
    }
}

/// Every machine's newest snapshot in this store: the viewer's own branch and all fetched ones,
/// other machines' file times on the viewer's clock (see [`crate::clock`]).
pub fn snapshots(store: &Store, viewer: &str) -> Result<Vec<Snapshot>, StoreError> {
    snapshots_with(store, viewer, &mut crate::clock::Skews::new())
}

/// [`snapshots`], with the clock leads seen so far (kept by a long-running caller).
pub fn snapshots_with(
    store: &Store,
    viewer: &str,
    skews: &mut crate::clock::Skews,
) -> Result<Vec<Snapshot>, StoreError> {
    let mut out = Vec::new();
    if let Some(h) = store.head(viewer, true)? {
        out.push(store.snapshot(viewer, h)?);
    }
    for id in store.remote_machines()? {
        if id == viewer {
            continue;
        }
        if let Some(h) = store.head(&id, false)? {
            match store.snapshot(&id, h) {
                Ok(s) => out.push(s),
                Err(e) => {
                    tracing::warn!(machine = %id, error = %e, "skipping an unreadable machine branch")
                }
            }
        }
    }
    crate::clock::sanitise(&mut out, viewer, crate::engine::now_ms(), skews);
    Ok(out)
}
