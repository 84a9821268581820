//! The other machines' side of the view: every file their branches hold, resolved by the merge
//! rules, placed under this machine's slug for its project, keyed by its path in the view.
//! Brought up to the store after each fetch: patched by the project dirs that changed where it
//! can be (`patch`), else built whole; shared by `Arc`, so a request holds one index throughout.

use crate::placement::{Placement, place};
use crate::places::{Candidate, PlaceBook, Why, is_main_checkout};
use ferry_sync::clock::Skews;
use ferry_sync::codec::{Codec, Direction, Format};
use ferry_sync::merge::merge_lines;
use ferry_sync::project_key::Link;
use ferry_sync::satellite;
use ferry_sync::store::{
    FileEntry, FileState, MachineRecord, ProjectRecord, RelPath, Snapshot, Store, StoreError,
    fnv1a, fnv1a_parts, mapping_for,
};
use ferry_sync::view::{Index, snapshots_with};
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod patch;
pub use patch::Plan;

/// This machine's candidate places for each project key base (see [`crate::places`]): its
/// `ferry link` entries, then the places its own files were written in whose directory exists
/// here (a main checkout ranks above any other place), each with when it was last written.
pub fn candidates(own: Option<&Snapshot>, links: &[Link]) -> HashMap<String, Vec<Candidate>> {
    let mut out: HashMap<String, Vec<Candidate>> = HashMap::new();
    for l in links {
        out.entry(l.key.clone()).or_default().push(Candidate {
            root: l.path.clone(),
            why: Why::Link,
            used_ms: i64::MAX,
        });
    }
    let mut used: HashMap<(&str, &str), i64> = HashMap::new();
    for f in own.iter().flat_map(|s| s.files.iter()) {
        let at = used
            .entry((key_base(&f.project.key), f.project.root.as_str()))
            .or_insert(i64::MIN);
        *at = (*at).max(f.meta.mtime_ms);
    }
    for ((base, root), used_ms) in used {
        if !std::path::Path::new(root).is_dir() {
            continue;
        }
        let why = if is_main_checkout(root) {
            Why::Checkout
        } else {
            Why::Recent
        };
        out.entry(base.to_string()).or_default().push(Candidate {
            root: root.to_string(),
            why,
            used_ms,
        });
    }
    out
}

/// What a placement adds to the fingerprint of the files it expands: its root and mapping,
/// hashed once per placement rather than once per file.
pub(crate) fn expansion_of(p: &Placement) -> u64 {
    fnv1a(format!("{}\0{:?}", p.project.root, p.mapping).as_bytes())
}

/// The repository half of a project key (`github.com/o/r` of `github.com/o/r//sub`).
pub fn key_base(key: &str) -> &str {
    key.split_once("//").map_or(key, |(base, _)| base)
}

/// One path of the view that other machines provide.
#[derive(Clone, Debug)]
pub struct ForeignFile {
    /// The project key.
    pub key: String,
    /// The slug dir it is shown in: its project's place, or this machine's own place that
    /// already holds the session.
    pub slug: String,
    /// The path inside the project directory.
    pub rel: RelPath,
    /// The versions shown (merged for a transcript, else the single winner), oldest first.
    pub versions: Vec<FileEntry>,
    /// The newest mtime among them (ms): what the view reports.
    pub mtime_ms: i64,
    /// The newest mtime among other machines' versions (ms): how far an upper file that took
    /// them in has absorbed them (`i64::MIN` if none).
    pub theirs_ms: i64,
    /// Whether it merges in a copy of this machine's from another place: such a copy is never
    /// taken as absorbed by time, since this machine's own clock wrote it.
    pub has_own: bool,
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
        Ok(Codec::shared(&placement.mapping).expand(&merged, Format::for_file_name(name)))
    }

    /// For a file of one version (only the first is read), its chunks `ids` (from
    /// [`Store::chunk_ids`]) from index `from` on, expanded one at a time: the bytes, and each
    /// chunk's id with where its expansion ends, counted from `base`. Chunks hold whole lines,
    /// which the codec converts as it would the whole file, so the pieces join to what
    /// [`ForeignFile::materialise`] gives, and a later version that shares the first chunks
    /// needs only the rest expanded. With `spill`, the bytes are handed to it a megabyte or
    /// more at a time, and only the rest is returned.
    pub fn expand_chunks(
        &self,
        store: &Store,
        placement: &Placement,
        ids: &[ferry_sync::store::Oid],
        (from, base): (usize, u64),
        mut spill: Option<Spill<'_>>,
    ) -> Result<(Vec<u8>, ChunkEnds), StoreError> {
        let mut out = Vec::new();
        let Some(version) = self.versions.first() else {
            return Ok((out, Vec::new()));
        };
        let name = self.rel.as_str().rsplit('/').next().unwrap_or_default();
        let (codec, format) = (
            Codec::shared(&placement.mapping),
            Format::for_file_name(name),
        );
        // Where `out`'s first byte is, counted from `base`.
        let mut at = base;
        let mut ends = Vec::with_capacity(ids.len().saturating_sub(from));
        let mut failed = None;
        store.read_chunks(version, ids, from, |id, bytes| {
            if failed.is_some() {
                return;
            }
            codec.convert_into(Direction::Expand, bytes, format, &mut out);
            ends.push((id, at + out.len() as u64));
            if let Some(spill) = spill.as_mut()
                && out.len() >= 1 << 20
            {
                match spill(&out) {
                    Ok(()) => {
                        at += out.len() as u64;
                        out.clear();
                    }
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        match failed {
            Some(source) => Err(StoreError::Io {
                path: self.rel.as_str().into(),
                source,
            }),
            None => Ok((out, ends)),
        }
    }
}

/// Each chunk of a transcript's version with where its expansion ends in this machine's copy:
/// what a later version that shares the first chunks can keep.
pub type ChunkEnds = Vec<(ferry_sync::store::Oid, u64)>;

/// Where [`ForeignFile::expand_chunks`] writes what it expanded so far, so that a long
/// transcript is never held whole.
pub type Spill<'a> = &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>;

/// Everything other machines provide, by view path (`<slug>/<rel>`).
#[derive(Clone, Default)]
pub struct Foreign {
    /// Visible foreign files.
    pub files: BTreeMap<String, ForeignFile>,
    /// Directories implied by those files: dir path (`""` for the root) to child names, with
    /// whether each child is a directory.
    pub dirs: foldhash::HashMap<String, BTreeMap<String, bool>>,
    /// Where each foreign project key is placed on this machine.
    pub placements: foldhash::HashMap<String, Placement>,
    /// This machine's own places that show other machines' versions of a session they hold,
    /// by slug.
    pub homes: HashMap<String, Placement>,
    /// View paths of this machine's own copies of a session that is listed in another place (a
    /// place the project left, or a second copy), with what they show besides their own lines:
    /// their lines are merged there, and looked up by name they show every line too (an open
    /// handle or a `--resume` there keeps working), but no listing shows them.
    pub moved: BTreeMap<String, ForeignFile>,
    /// Projects by slug: placed foreign projects and this machine's own recorded ones.
    pub projects_by_slug: HashMap<String, ProjectRecord>,
    /// What was rejected from remote branches, for the log and `ferry status`.
    pub rejected: Vec<String>,
    /// The chosen root of each project key base that has one here (not HOME-relative).
    pub roots: HashMap<String, String>,
    /// Other machines' session satellites and prompt histories, by store path: never in the
    /// view, kept by the mirror ([`crate::satellites`]). A satellite several places provide
    /// is the newest; the histories are every place's, to merge.
    pub satellites: BTreeMap<String, ForeignFile>,
    /// Every place's prompt history that other machines provide, by view path.
    pub histories: BTreeMap<String, ForeignFile>,
    /// What each foreign project key's expansion adds to its files' fingerprints.
    expansions: foldhash::HashMap<String, u64>,
    /// Where each (key, rel) a patch resolves went; `None` in a build, which keeps no such
    /// record for every file (a patch finds the old ones again by looking, see
    /// `patch::Foreign::outputs_of`).
    produced: Option<HashMap<(String, String), Vec<patch::Out>>>,
    /// Files not shown because another project shows one at the same path.
    collisions: usize,
    /// Whether this machine keeps two project keys in one slug dir (only the first is in
    /// `projects_by_slug`).
    own_slugs_shared: bool,
    /// What this index was built from, for patching it (none: build it again).
    basis: Option<patch::Basis>,
}

impl Foreign {
    /// The foreign file at view path `path`, if any.
    pub fn file(&self, path: &str) -> Option<&ForeignFile> {
        self.files.get(path)
    }

    /// The placement a foreign file is expanded for: its project's, or the own place it shows
    /// in.
    pub fn placement(&self, f: &ForeignFile) -> Option<&Placement> {
        match self.placements.get(&f.key) {
            Some(p) if p.project.slug == f.slug => Some(p),
            _ => self.homes.get(&f.slug),
        }
    }

    /// Whether the upper-layer file at view path `path` is a copy listed in another place.
    pub fn is_moved(&self, path: &str) -> bool {
        self.moved.contains_key(path)
    }

    /// Whether `path` is a directory that foreign files imply.
    pub fn is_dir(&self, path: &str) -> bool {
        self.dirs.contains_key(path)
    }

    /// Builds the index from the store, as machine `local` sees it, with the clock leads of
    /// other machines seen so far and the places chosen so far (both updated).
    pub fn build(
        store: &Store,
        local: &MachineRecord,
        links: &[Link],
        skews: &mut Skews,
        book: &mut PlaceBook,
    ) -> Result<Foreign, StoreError> {
        let snaps = snapshots_with(store, &local.id, skews)?;
        Ok(Foreign::from_snapshots(&snaps, local, links, book))
    }

    /// Builds the index from already-read snapshots (one per machine, this one's included),
    /// choosing places by the rule of [`crate::places`] and recording the choices in `book`.
    pub fn from_snapshots(
        snaps: &[Snapshot],
        local: &MachineRecord,
        links: &[Link],
        book: &mut PlaceBook,
    ) -> Foreign {
        let mut out = Foreign::context(snaps, local, links, book);
        // Every (key, rel) another machine holds, in order (sorted once: a set's inserts
        // compared each long path some 15 times).
        let mut paths: Vec<(&str, &str)> = snaps
            .iter()
            .filter(|s| s.machine.id != local.id)
            .flat_map(|s| &s.files)
            .map(|f| (f.project.key.as_str(), f.rel.as_str()))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        let index = Index::new(snaps);
        for (key, rel) in paths {
            if out.resolve(&index, local, book, key, rel) {
                out.collisions += 1;
            }
        }
        out.retain_moved(None);
        out.basis = Some(patch::Basis::of(snaps, local, links, book));
        out
    }

    /// Everything but the files: this machine's own projects, what the branches rejected, and
    /// each foreign project's place (recorded in `book`) with what its expansion adds to its
    /// files' fingerprints.
    fn context(
        snaps: &[Snapshot],
        local: &MachineRecord,
        links: &[Link],
        book: &mut PlaceBook,
    ) -> Foreign {
        let mut out = Foreign::default();
        let own = snaps.iter().find(|s| s.machine.id == local.id);
        for f in own.iter().flat_map(|s| s.files.iter()) {
            match out.projects_by_slug.get(&f.project.slug) {
                Some(p) => out.own_slugs_shared |= p.key != f.project.key,
                None => {
                    out.projects_by_slug
                        .insert(f.project.slug.clone(), (*f.project).clone());
                }
            }
        }
        for s in snaps {
            out.rejected.extend(
                s.rejected
                    .iter()
                    .map(|e| format!("{}: {e}", s.machine.name)),
            );
        }
        // The first machine (by id) holding each key, with its place of the shortest root (a
        // main checkout before its worktrees): that record decides the placement when this
        // machine has no place of its own.
        let mut origin: BTreeMap<&str, (&MachineRecord, &ProjectRecord)> = BTreeMap::new();
        for s in snaps.iter().filter(|s| s.machine.id != local.id) {
            for f in &s.files {
                let at = origin
                    .entry(f.project.key.as_str())
                    .or_insert((&s.machine, &f.project));
                let shorter =
                    (f.project.root.len(), &f.project.root) < (at.1.root.len(), &at.1.root);
                if at.0.id == s.machine.id && shorter {
                    *at = (&s.machine, &f.project);
                }
            }
        }
        out.place_projects(local, &origin, &candidates(own, links), book);
        out.expansions = out
            .placements
            .iter()
            .map(|(k, p)| (k.clone(), expansion_of(p)))
            .collect();
        out
    }

    /// Files what other machines provide for `rel` in project `key`: the view's file, this
    /// machine's copies listed elsewhere, or a satellite. Returns whether another project
    /// already shows a file at the same path (the first one stays).
    fn resolve(
        &mut self,
        index: &Index<'_>,
        local: &MachineRecord,
        book: &PlaceBook,
        key: &str,
        rel: &str,
    ) -> bool {
        let (Some(placement), Some(&mapping)) =
            (self.placements.get(key), self.expansions.get(key))
        else {
            return false;
        };
        let view = index.view(&local.id, key, rel);
        // This machine's live copies, by place: the session shows where one already is (its
        // project's place first), else in its project's place.
        let base = key_base(key);
        let own_places: BTreeSet<&str> = view
            .versions
            .iter()
            .filter(|(m, f)| {
                *m == local.id
                    && f.meta.state == FileState::Present
                    && !book.is_retired(base, &f.project.slug)
            })
            .map(|(_, f)| f.project.slug.as_str())
            .collect();
        let placed_at = placement.project.slug.as_str();
        let slug = match own_places.first() {
            Some(first) if !own_places.contains(placed_at) => *first,
            _ => placed_at,
        }
        .to_string();
        let at_place = slug == placed_at;
        if !at_place && !self.homes.contains_key(&slug) {
            let Some(home) = self.home(local, &slug) else {
                return false;
            };
            self.homes.insert(slug.clone(), home);
        }
        let expansion = match self.homes.get(&slug).filter(|_| !at_place) {
            Some(home) => expansion_of(home),
            None => mapping,
        };
        // What a copy of this machine's at `at` shows: every shown version but that copy itself
        // (the upper layer's business), expanded for the place the session is in.
        let file_at = |at: &str| {
            let shown: Vec<(&str, &FileEntry)> = view
                .resolution
                .shown
                .iter()
                .map(|&i| view.versions[i])
                .filter(|(m, f)| *m != local.id || f.project.slug != at)
                .collect();
            let theirs_ms = shown
                .iter()
                .filter(|(m, _)| *m != local.id)
                .map(|(_, f)| f.meta.mtime_ms)
                .max()
                .unwrap_or(i64::MIN);
            let has_own = shown.iter().any(|(m, _)| *m == local.id);
            let trees = shown.iter().map(|(_, f)| f.tree.as_bytes());
            let fingerprint = fnv1a_parts(trees.chain([&expansion.to_le_bytes()[..]]));
            Some(ForeignFile {
                key: key.to_string(),
                slug: slug.clone(),
                rel: shown.first()?.1.rel.clone(),
                mtime_ms: shown
                    .iter()
                    .map(|(_, f)| f.meta.mtime_ms)
                    .max()
                    .unwrap_or(0),
                theirs_ms,
                has_own,
                versions: shown.into_iter().map(|(_, f)| f.clone()).collect(),
                fingerprint,
            })
        };
        if satellite::is_satellite(rel) {
            if let Some(file) = file_at(&slug) {
                let out = self.add_satellite(file);
                self.record(key, rel, vec![out]);
            }
            return false;
        }
        let recording = self.produced.is_some();
        // Every other copy of this machine is merged in, and listed only there; so is a copy in
        // a place the project left, committed or not yet.
        let elsewhere: BTreeSet<&str> = view
            .versions
            .iter()
            .filter(|(m, f)| *m == local.id && f.meta.state == FileState::Present)
            .map(|(_, f)| f.project.slug.as_str())
            .chain(book.retired(base))
            .filter(|s| *s != slug)
            .collect();
        let mut outs = Vec::new();
        for at in elsewhere {
            if let Some(file) = file_at(at) {
                let path = format!("{at}/{rel}");
                if recording {
                    outs.push(patch::Out::Moved(path.clone()));
                }
                self.moved.insert(path, file);
            }
        }
        let mut collided = false;
        if let Some(file) = file_at(&slug) {
            let path = format!("{slug}/{rel}");
            if self.files.contains_key(&path) {
                self.rejected.push(format!(
                    "{path}: two projects place a file at the same path; showing the first"
                ));
                collided = true;
            } else {
                self.add_dirs(&path);
                if recording {
                    outs.push(patch::Out::File(path.clone()));
                }
                self.files.insert(path, file);
            }
        }
        self.record(key, rel, outs);
        collided
    }

    /// Notes where `rel` of project `key` went, when this index records it (a patch's).
    fn record(&mut self, key: &str, rel: &str, outs: Vec<patch::Out>) {
        if let Some(produced) = self.produced.as_mut().filter(|_| !outs.is_empty()) {
            produced
                .entry((key.to_string(), rel.to_string()))
                .or_default()
                .extend(outs);
        }
    }

    /// Drops this machine's copies that show where they lie (a second project placed at one
    /// slug), or whose session is not shown: all of them, or those at `only`.
    fn retain_moved(&mut self, only: Option<&BTreeSet<String>>) {
        let files = &self.files;
        self.moved.retain(|p, f| {
            only.is_some_and(|o| !o.contains(p))
                || (!files.contains_key(p) && files.contains_key(&format!("{}/{}", f.slug, f.rel)))
        });
    }

    /// Decides each project's place (recorded in `book`, which remembers the places a project
    /// left) and places every foreign project key there.
    fn place_projects(
        &mut self,
        local: &MachineRecord,
        origin: &BTreeMap<&str, (&MachineRecord, &ProjectRecord)>,
        candidates: &HashMap<String, Vec<Candidate>>,
        book: &mut PlaceBook,
    ) {
        let before = book.clone();
        let bases: BTreeSet<&str> = origin.keys().map(|k| key_base(k)).collect();
        for base in &bases {
            book.decide(base, candidates.get(*base).map_or(&[], Vec::as_slice));
        }
        let roots_of = |b: &PlaceBook| -> HashMap<String, String> {
            b.chosen
                .keys()
                .filter_map(|base| Some((base.clone(), b.root(base)?.to_string())))
                .collect()
        };
        let (old_roots, roots) = (roots_of(&before), roots_of(book));
        for (&key, (machine, project)) in origin {
            let base = key_base(key);
            match place(local, &roots, machine, project) {
                Ok(p) => {
                    // The project moved here from another place: remember the one it left.
                    let moved_from = before
                        .chosen
                        .contains_key(base)
                        .then(|| place(local, &old_roots, machine, project).ok())
                        .flatten()
                        .map(|old| old.project.slug)
                        .filter(|old| *old != p.project.slug);
                    if let Some(old) = moved_from {
                        tracing::info!(key, from = %old, to = %p.project.slug, "a project's place changed");
                        book.retire(base, &old);
                    }
                    book.unretire(base, &p.project.slug);
                    if book.placed.get(&p.project.slug) != Some(&p.project) {
                        book.placed
                            .insert(p.project.slug.clone(), p.project.clone());
                    }
                    self.projects_by_slug
                        .entry(p.project.slug.clone())
                        .or_insert_with(|| p.project.clone());
                    self.placements.insert(key.to_string(), p);
                }
                Err(e) => self
                    .rejected
                    .push(format!("cannot place project {key} on this machine: {e}")),
            }
        }
        self.roots = roots;
    }

    /// The placement of this machine's own place `slug`: its recorded project and mapping.
    fn home(&self, local: &MachineRecord, slug: &str) -> Option<Placement> {
        let project = self.projects_by_slug.get(slug)?.clone();
        let mapping = mapping_for(local, &project).ok()?;
        Some(Placement { project, mapping })
    }

    /// Files a satellite: the newest version wins where two places provide one. Returns where
    /// it went.
    fn add_satellite(&mut self, file: ForeignFile) -> patch::Out {
        let rel = file.rel.as_str().to_string();
        if rel == satellite::HISTORY {
            let path = format!("{}/{rel}", file.slug);
            self.histories.insert(path.clone(), file);
            return patch::Out::History(path);
        }
        match self.satellites.get(&rel) {
            Some(f) if f.mtime_ms >= file.mtime_ms => {}
            _ => {
                self.satellites.insert(rel.clone(), file);
            }
        }
        patch::Out::Satellite(rel)
    }

    /// Lists file `path` in the directories above it, creating them; allocates only for
    /// names not listed yet (a build adds tens of thousands of files to a few dirs).
    fn add_dirs(&mut self, path: &str) {
        let mut child = path;
        let mut is_dir = false;
        loop {
            let (parent, name) = child.rsplit_once('/').unwrap_or(("", child));
            if !self.dirs.contains_key(parent) {
                self.dirs.insert(parent.to_string(), BTreeMap::new());
            }
            let children = self.dirs.get_mut(parent).expect("inserted above");
            let known = match children.get_mut(name) {
                Some(was) => {
                    *was = is_dir;
                    true
                }
                None => {
                    children.insert(name.to_string(), is_dir);
                    false
                }
            };
            if known || parent.is_empty() {
                return;
            }
            child = parent;
            is_dir = true;
        }
    }
}
