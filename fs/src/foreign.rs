//! The other machines' side of the view: every file their branches hold, resolved by the merge
//! rules, placed under this machine's slug for its project, keyed by its path in the view.
//! Rebuilt after each fetch; cheap to share (the core swaps in a new `Arc`).

use crate::placement::{Placement, place};
use ferry_sync::clock::Skews;
use ferry_sync::codec::{Codec, Format};
use ferry_sync::merge::merge_lines;
use ferry_sync::project_key::Link;
use ferry_sync::store::{
    FileEntry, MachineRecord, ProjectRecord, RelPath, Snapshot, Store, StoreError, fnv1a,
};
use ferry_sync::view::{Index, snapshots_with};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// This machine's checkouts, which decide where another machine's project appears: project key
/// base to local root, from `ferry link` entries first, then this machine's own projects (`own`:
/// its snapshot).
pub fn checkouts(own: Option<&Snapshot>, links: &[Link]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = links
        .iter()
        .map(|l| (l.key.clone(), l.path.clone()))
        .collect();
    for f in own.iter().flat_map(|s| s.files.iter()) {
        let key = f.project.key.as_str();
        let base = key.split_once("//").map_or(key, |p| p.0);
        out.entry(base.to_string())
            .or_insert_with(|| f.project.root.clone());
    }
    out
}

/// One path of the view that other machines provide.
#[derive(Clone, Debug)]
pub struct ForeignFile {
    /// The project key.
    pub key: String,
    /// The path inside the project directory.
    pub rel: RelPath,
    /// The versions shown (merged for a transcript, else the single winner), oldest first.
    pub versions: Vec<FileEntry>,
    /// The newest mtime among them (ms): what the view reports.
    pub mtime_ms: i64,
    /// Identifies the content: changes whenever the versions or the expansion change.
    pub fingerprint: u64,
}

impl ForeignFile {
    /// The bytes the view shows, in this machine's local form.
    pub fn materialise(&self, store: &Store, placement: &Placement) -> Result<Vec<u8>, StoreError> {
        let texts = self
            .versions
            .iter()
            .map(|v| store.read(v))
            .collect::<Result<Vec<_>, _>>()?;
        // One version (the common case) is expanded as read: a copy of a large transcript
        // would only raise the daemon's peak memory.
        let merged = match texts.as_slice() {
            [one] => std::borrow::Cow::Borrowed(one.as_slice()),
            _ => std::borrow::Cow::Owned(merge_lines(
                &texts.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            )),
        };
        let name = self.rel.as_str().rsplit('/').next().unwrap_or_default();
        Ok(Codec::new(&placement.mapping).expand(&merged, Format::for_file_name(name)))
    }
}

/// Everything other machines provide, by view path (`<slug>/<rel>`).
#[derive(Default)]
pub struct Foreign {
    /// Visible foreign files.
    pub files: BTreeMap<String, ForeignFile>,
    /// Directories implied by those files: dir path (`""` for the root) to child names, with
    /// whether each child is a directory.
    pub dirs: HashMap<String, BTreeMap<String, bool>>,
    /// Where each foreign project key is placed on this machine.
    pub placements: HashMap<String, Placement>,
    /// Projects by slug: placed foreign projects and this machine's own recorded ones.
    pub projects_by_slug: HashMap<String, ProjectRecord>,
    /// What was rejected from remote branches, for the log and `ferry status`.
    pub rejected: Vec<String>,
    /// This machine's checkouts by project key base (see [`checkouts`]): where a project has a
    /// place here already.
    pub checkouts: HashMap<String, String>,
}

impl Foreign {
    /// The foreign file at view path `path`, if any.
    pub fn file(&self, path: &str) -> Option<&ForeignFile> {
        self.files.get(path)
    }

    /// The placement of a foreign file's project.
    pub fn placement(&self, f: &ForeignFile) -> Option<&Placement> {
        self.placements.get(&f.key)
    }

    /// Whether `path` is a directory that foreign files imply.
    pub fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains_key(path)
    }

    /// Builds the index from the store, as machine `local` sees it, with the clock leads of
    /// other machines seen so far (updated).
    pub fn build(
        store: &Store,
        local: &MachineRecord,
        links: &[Link],
        skews: &mut Skews,
    ) -> Result<Foreign, StoreError> {
        let snaps = snapshots_with(store, &local.id, skews)?;
        Ok(Foreign::from_snapshots(&snaps, local, links))
    }

    /// Builds the index from already-read snapshots (one per machine, this one's included).
    pub fn from_snapshots(snaps: &[Snapshot], local: &MachineRecord, links: &[Link]) -> Foreign {
        let mut out = Foreign::default();
        let own = snaps.iter().find(|s| s.machine.id == local.id);
        let checkouts = checkouts(own, links);
        for f in own.iter().flat_map(|s| s.files.iter()) {
            out.projects_by_slug
                .entry(f.project.slug.clone())
                .or_insert_with(|| f.project.clone());
        }
        for s in snaps {
            out.rejected.extend(
                s.rejected
                    .iter()
                    .map(|e| format!("{}: {e}", s.machine.name)),
            );
        }
        // Every (key, rel) another machine holds, and the first machine (by id) holding the key:
        // that one's record decides the placement when this machine has no checkout.
        let mut paths: BTreeSet<(String, String)> = BTreeSet::new();
        let mut origin: BTreeMap<String, (&MachineRecord, &ProjectRecord)> = BTreeMap::new();
        for s in snaps.iter().filter(|s| s.machine.id != local.id) {
            for f in &s.files {
                paths.insert((f.project.key.clone(), f.rel.as_str().to_string()));
                origin
                    .entry(f.project.key.clone())
                    .or_insert((&s.machine, &f.project));
            }
        }
        for (key, (machine, project)) in &origin {
            match place(local, &checkouts, machine, project) {
                Ok(p) => {
                    out.projects_by_slug
                        .entry(p.project.slug.clone())
                        .or_insert_with(|| p.project.clone());
                    out.placements.insert(key.clone(), p);
                }
                Err(e) => out
                    .rejected
                    .push(format!("cannot place project {key} on this machine: {e}")),
            }
        }
        let index = Index::new(snaps);
        // What each placement adds to its files' fingerprints, made once per project.
        let mappings: BTreeMap<String, String> = out
            .placements
            .iter()
            .map(|(k, p)| (k.clone(), format!("{:?}", p.mapping)))
            .collect();
        for (key, rel) in paths {
            let (Some(placement), Some(mapping)) = (out.placements.get(&key), mappings.get(&key))
            else {
                continue;
            };
            let view = index.view(&local.id, &key, &rel);
            // This machine's own present version is the upper layer's business; only its hide
            // and delete markers (already applied by `resolve`) matter here.
            let shown: Vec<&FileEntry> = view
                .resolution
                .shown
                .iter()
                .map(|&i| view.versions[i])
                .filter(|(m, _)| *m != local.id)
                .map(|(_, f)| f)
                .collect();
            if shown.is_empty() {
                continue;
            }
            let mut fp = Vec::new();
            for f in &shown {
                fp.extend_from_slice(f.tree.as_bytes());
            }
            fp.extend_from_slice(placement.project.root.as_bytes());
            fp.push(0);
            fp.extend_from_slice(mapping.as_bytes());
            let path = format!("{}/{rel}", placement.project.slug);
            if out.files.contains_key(&path) {
                out.rejected.push(format!(
                    "{path}: two projects place a file at the same path; showing the first"
                ));
                continue;
            }
            let file = ForeignFile {
                key: key.clone(),
                rel: shown[0].rel.clone(),
                mtime_ms: shown.iter().map(|f| f.meta.mtime_ms).max().unwrap_or(0),
                versions: shown.into_iter().cloned().collect(),
                fingerprint: fnv1a(&fp),
            };
            out.add_dirs(&path);
            out.files.insert(path, file);
        }
        out.checkouts = checkouts;
        out
    }

    fn add_dirs(&mut self, path: &str) {
        let mut child = path;
        let mut is_dir = false;
        loop {
            let (parent, name) = child.rsplit_once('/').unwrap_or(("", child));
            let known = self
                .dirs
                .entry(parent.to_string())
                .or_default()
                .insert(name.to_string(), is_dir)
                .is_some();
            if known || parent.is_empty() {
                return;
            }
            child = parent;
            is_dir = true;
        }
    }
}
