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
/// snapshot (including the viewer's own), with every place's version of a machine. Scans every
/// snapshot: for many paths, use [`Index`].
pub fn view_of<'a>(snapshots: &'a [Snapshot], viewer: &str, key: &str, rel: &str) -> ViewFile<'a> {
    let mut versions: Vec<(&str, &FileEntry)> = Vec::new();
    for s in snapshots {
        for f in s
            .files
            .iter()
            .filter(|f| f.project.key == key && f.rel.as_str() == rel)
        {
            push_version(&mut versions, s.machine.id.as_str(), f);
        }
    }
    resolved(versions, viewer, rel)
}

/// Adds a machine's version unless that machine already gave one for the same place (a remote
/// holding two dirs for one place): one version per machine and place, the first one found.
fn push_version<'a>(out: &mut Vec<(&'a str, &'a FileEntry)>, machine: &'a str, f: &'a FileEntry) {
    if !out
        .iter()
        .any(|(m, g)| *m == machine && g.project.slug == f.project.slug)
    {
        out.push((machine, f));
    }
}

/// Every path's versions in a set of snapshots, found in one pass, so that the view of each of
/// N paths costs no scan of every snapshot (which made building a 10,000-session view
/// quadratic).
pub struct Index<'a> {
    /// By (project key, path): each machine's versions of it, one per place, in snapshot order.
    by_path: foldhash::HashMap<(&'a str, &'a str), Vec<(&'a str, &'a FileEntry)>>,
}

impl<'a> Index<'a> {
    /// Indexes `snapshots`.
    pub fn new(snapshots: &'a [Snapshot]) -> Index<'a> {
        Index::only(snapshots, |_| true)
    }

    /// Indexes only the files of `snapshots` that `keep` accepts: a few paths' versions.
    pub fn only(snapshots: &'a [Snapshot], keep: impl Fn(&FileEntry) -> bool) -> Index<'a> {
        let mut by_path: foldhash::HashMap<_, Vec<(&str, &FileEntry)>> = Default::default();
        for s in snapshots {
            for f in s.files.iter().filter(|f| keep(f)) {
                let versions = by_path
                    .entry((f.project.key.as_str(), f.rel.as_str()))
                    .or_default();
                push_version(versions, s.machine.id.as_str(), f);
            }
        }
        Index { by_path }
    }

    /// Whether a machine other than `viewer` holds `rel` in project `key`.
    pub fn has_other(&self, viewer: &str, key: &str, rel: &str) -> bool {
        self.by_path
            .get(&(key, rel))
            .is_some_and(|v| v.iter().any(|(m, _)| *m != viewer))
    }

    /// [`view_of`] for `rel` in project `key`.
    pub fn view(&self, viewer: &str, key: &str, rel: &str) -> ViewFile<'a> {
        let versions = self.by_path.get(&(key, rel)).cloned().unwrap_or_default();
        resolved(versions, viewer, rel)
    }
}

/// The view of a path from its versions.
fn resolved<'a>(versions: Vec<(&'a str, &'a FileEntry)>, viewer: &str, rel: &str) -> ViewFile<'a> {
    let lines = rel.ends_with(".jsonl");
    let merge_input: Vec<Version> = versions
        .iter()
        .map(|(m, f)| Version {
            machine: m,
            place: &f.project.slug,
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
    for (id, h) in tips(store, viewer)? {
        if id == viewer {
            out.push(store.snapshot(viewer, h)?);
            continue;
        }
        match store.snapshot(&id, h) {
            Ok(s) => out.push(s),
            Err(e) => {
                tracing::warn!(machine = %id, error = %e, "skipping an unreadable machine branch")
            }
        }
    }
    crate::clock::sanitise(&mut out, viewer, crate::engine::now_ms(), skews);
    Ok(out)
}

/// The head of every branch [`snapshots_with`] reads, by machine id: the viewer's own first,
/// then each fetched one. Cheap (references only), so a caller can tell nothing moved.
pub fn tips(store: &Store, viewer: &str) -> Result<Vec<(String, git2::Oid)>, StoreError> {
    let mut out = Vec::new();
    if let Some(h) = store.head(viewer, true)? {
        out.push((viewer.to_string(), h));
    }
    for id in store.remote_machines()? {
        if id != viewer
            && let Some(h) = store.head(&id, false)?
        {
            out.push((id, h));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FileMeta, FileState, MachineRecord, ProjectRecord, RelPath};

    fn entry(key: &str, rel: &str, mtime_ms: i64, state: FileState) -> FileEntry {
        FileEntry {
            project: ProjectRecord {
                key: key.into(),
                root: "/r".into(),
                cwd: "/r".into(),
                slug: "-r".into(),
                git: None,
            }
            .into(),
            rel: RelPath::new(rel).unwrap(),
            meta: FileMeta {
                mtime_ms,
                mode: 0o600,
                len: 1,
                lines: rel.ends_with(".jsonl"),
                state,
            },
            tree: git2::Oid::ZERO_SHA1,
        }
    }

    fn snapshot(id: &str, files: Vec<FileEntry>) -> Snapshot {
        Snapshot {
            commit: git2::Oid::ZERO_SHA1,
            machine: MachineRecord {
                id: id.into(),
                name: id.into(),
                os: "linux".into(),
                home: "/h".into(),
                tmp: "/tmp".into(),
                claude_dir: "/h/.claude".into(),
                claude_tmp: "/tmp/claude".into(),
                last_seen_ms: 0,
                seen_ms: Default::default(),
                home_real: None,
                retired: Default::default(),
            },
            files,
            rejected: vec![],
            dirs: vec![],
            cut: false,
        }
    }

    #[test]
    fn the_index_finds_what_a_scan_finds() {
        let deleted = FileState::Deleted { at_ms: 50 };
        let snaps = vec![
            snapshot(
                "a",
                vec![
                    entry("k", "s.jsonl", 10, FileState::Present),
                    entry("k", "n.txt", 30, FileState::Present),
                    // A second entry for a path in one snapshot: the first one counts.
                    entry("k", "s.jsonl", 99, FileState::Present),
                ],
            ),
            snapshot(
                "b",
                vec![
                    entry("k", "s.jsonl", 20, FileState::Present),
                    entry("k", "n.txt", 20, deleted),
                    entry("other", "s.jsonl", 5, FileState::Present),
                ],
            ),
            snapshot("c", vec![entry("k", "n.txt", 40, FileState::Present)]),
        ];
        let index = Index::new(&snaps);
        for viewer in ["a", "b", "c", "z"] {
            for key in ["k", "other", "none"] {
                for rel in ["s.jsonl", "n.txt", "x"] {
                    let (scan, fast) = (
                        view_of(&snaps, viewer, key, rel),
                        index.view(viewer, key, rel),
                    );
                    let ids = |v: &ViewFile| {
                        v.versions
                            .iter()
                            .map(|(m, f)| (m.to_string(), f.meta.mtime_ms))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(ids(&scan), ids(&fast), "{viewer} {key} {rel}");
                    assert_eq!(
                        format!("{:?}", scan.resolution),
                        format!("{:?}", fast.resolution)
                    );
                }
            }
        }
        assert_eq!(
            index.view("a", "k", "s.jsonl").versions[0].1.meta.mtime_ms,
            10
        );
    }
}
