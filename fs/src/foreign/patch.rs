//! Patching the index by what a fetch changed, instead of building it again (issue 22: a
//! refresh should cost what changed). A machine's branch is read project dir by project dir,
//! each with its tree id; a dir whose id is the one the index was built from holds the same
//! files. So when nothing the placement of projects rests on changed (this machine's record, its
//! links, the machines), only the paths in the project dirs whose ids changed are resolved
//! again, and of those only the files whose own tree ids changed (all of the dir's when its
//! project record did), so a change to one session of a project of a thousand resolves one
//! path. A project whose place moved (a checkout adopted) has all its paths resolved again, and
//! only its. The rest of the index stays as it is. Anything else (a new machine, two projects
//! at one slug, a file at a directory's path) builds the index again: the patched index is
//! always the one a build would give (`fs/tests/foreign_patch.rs`).

use super::{Foreign, ForeignFile};
use crate::places::PlaceBook;
use ferry_sync::project_key::Link;
use ferry_sync::satellite;
use ferry_sync::store::{MachineRecord, Oid, ProjectRecord, Snapshot};
use ferry_sync::view::Index;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Where a resolved (key, rel) was filed.
#[derive(Clone, Debug)]
pub(super) enum Out {
    /// A view file, by view path.
    File(String),
    /// A copy of this machine's listed elsewhere, by view path.
    Moved(String),
    /// A prompt history, by view path.
    History(String),
    /// A session satellite, by store path (the newest of every project's wins).
    Satellite(String),
}

/// One project dir of a branch: its tree id, its project record (none when it holds no file),
/// and its files' (key, rel) paths with each file's own tree id.
type DirPaths = (Oid, Option<Arc<ProjectRecord>>, Vec<(String, String, Oid)>);

/// A branch's project dirs that changed, by name, with what they hold now (`None`: gone).
type DirUpdates = Vec<(String, Option<DirPaths>)>;

/// One machine's branch as the index last read it.
#[derive(Clone, Debug)]
struct Source {
    commit: Oid,
    dirs: HashMap<String, DirPaths>,
}

/// What an index was built from.
#[derive(Clone, Debug)]
pub(super) struct Basis {
    /// Whether a branch's read stopped at the limits: then what each dir gave depends on the
    /// dirs before it, and only a build reads it right.
    cut: bool,
    local: MachineRecord,
    links: Vec<Link>,
    /// The place book once the index had placed every project.
    book: PlaceBook,
    sources: HashMap<String, Source>,
}

impl Basis {
    /// The basis of an index built from `snaps`.
    pub(super) fn of(
        snaps: &[Snapshot],
        local: &MachineRecord,
        links: &[Link],
        book: &PlaceBook,
    ) -> Basis {
        let sources = snaps
            .iter()
            .map(|s| {
                let dirs = s
                    .dirs
                    .iter()
                    .map(|d| (d.name.clone(), dir_paths(s, d)))
                    .collect();
                (
                    s.machine.id.clone(),
                    Source {
                        commit: s.commit,
                        dirs,
                    },
                )
            })
            .collect();
        Basis {
            cut: snaps.iter().any(|s| s.cut),
            local: local.clone(),
            links: links.to_vec(),
            book: book.clone(),
            sources,
        }
    }
}

fn dir_paths(s: &Snapshot, d: &ferry_sync::store::ProjectDir) -> DirPaths {
    let files = s.files.get(d.files.clone()).unwrap_or_default();
    let paths = files
        .iter()
        .map(|f| (f.project.key.clone(), f.rel.as_str().to_string(), f.tree))
        .collect();
    (d.tree, files.first().map(|f| f.project.clone()), paths)
}

/// Whether two records of a project dir place it alike. The checkout's git state is left out:
/// it changes with every edit there, and nothing the index holds reads it.
fn same_place(a: Option<&ProjectRecord>, b: Option<&ProjectRecord>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            (&a.key, &a.root, &a.cwd, &a.slug) == (&b.key, &b.root, &b.cwd, &b.slug)
        }
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The (key, rel) paths whose files differ between a dir as it was and as it is: added,
/// removed, or with another tree; every one of both when the project's place changed (its key,
/// root, working directory or slug), which every file's resolution reads.
fn changed_paths(before: Option<&DirPaths>, now: &DirPaths, out: &mut BTreeSet<(String, String)>) {
    let key = |(k, r, _): &(String, String, Oid)| (k.clone(), r.clone());
    let Some(before) = before.filter(|b| same_place(b.1.as_deref(), now.1.as_deref())) else {
        out.extend(before.into_iter().flat_map(|b| b.2.iter().map(key)));
        out.extend(now.2.iter().map(key));
        return;
    };
    let trees = |d: &DirPaths| -> HashMap<(String, String), Oid> {
        d.2.iter().map(|p| (key(p), p.2)).collect()
    };
    let (was, is) = (trees(before), trees(now));
    out.extend(
        is.iter()
            .filter(|(p, t)| was.get(*p) != Some(*t))
            .map(|(p, _)| p.clone()),
    );
    out.extend(was.into_keys().filter(|p| !is.contains_key(p)));
}

/// How to bring an index up to new snapshots: the paths to resolve again, resolved.
pub struct Plan {
    /// The (key, rel) paths whose versions may have changed.
    changed: BTreeSet<(String, String)>,
    /// Their files, resolved on the index's places.
    fresh: Foreign,
    /// The branches read, with their changed dirs (`None`: gone).
    dirs: Vec<(String, Oid, DirUpdates)>,
    /// The place book once every project is placed.
    book: PlaceBook,
    /// Whether a project's place moved.
    moved: bool,
}

impl Plan {
    /// The place book the patched index places projects by: to keep, if it is not the one
    /// the plan was made with.
    pub fn book(&self) -> &PlaceBook {
        &self.book
    }

    /// Whether a project moved to another place: what a request found of its projects must
    /// be looked up again.
    pub fn places_moved(&self) -> bool {
        self.moved
    }
}

impl Foreign {
    /// Whether this index was built or last patched from exactly these branch heads (as
    /// [`ferry_sync::view::tips`] lists them), with this machine's record, links and place
    /// book: then reading the branches again would give it again, if the clocks did not move
    /// (which the caller checks).
    pub fn built_from(
        &self,
        tips: &[(String, Oid)],
        local: &MachineRecord,
        links: &[Link],
        book: &PlaceBook,
    ) -> bool {
        let Some(basis) = self.basis.as_ref() else {
            return false;
        };
        basis.local == *local
            && basis.links == links
            && basis.book == *book
            && !basis.cut
            && tips.len() == basis.sources.len()
            && tips
                .iter()
                .all(|(id, head)| basis.sources.get(id).is_some_and(|s| s.commit == *head))
    }

    /// How to patch this index to `snaps` (read as [`Foreign::from_snapshots`] would take
    /// them), or `None` when it must be built again.
    pub fn plan(
        &self,
        snaps: &[Snapshot],
        local: &MachineRecord,
        links: &[Link],
        book: &PlaceBook,
    ) -> Option<Plan> {
        let basis = self.basis.as_ref()?;
        if basis.local != *local
            || basis.links != links
            || basis.cut
            || snaps.iter().any(|s| s.cut)
            || self.collisions > 0
            || snaps.len() != basis.sources.len()
            || snaps
                .iter()
                .any(|s| !s.files.is_empty() && s.dirs.is_empty())
        {
            return None;
        }
        let mut after = book.clone();
        let fresh = Foreign::context(snaps, local, links, &mut after);
        // Two keys at one slug, before or after: which one a path shows depends on the order
        // of a build.
        if fresh.own_slugs_shared
            || fresh.slug_shared(&after)
            || self.own_slugs_shared
            || self.slug_shared(&basis.book)
        {
            return None;
        }
        // Projects whose place moved (a checkout adopted): every path of theirs is resolved
        // again, the rest stays.
        let moved = self.moved_keys(&fresh, &basis.book, &after)?;
        let mut changed: BTreeSet<(String, String)> = BTreeSet::new();
        let mut dirs = Vec::new();
        for s in snaps {
            let source = basis.sources.get(&s.machine.id)?;
            if source.commit == s.commit {
                continue;
            }
            let mut updates = Vec::new();
            let mut seen: HashSet<&str> = HashSet::new();
            for d in &s.dirs {
                seen.insert(d.name.as_str());
                let before = source.dirs.get(&d.name);
                if before.is_some_and(|(tree, _, _)| *tree == d.tree) {
                    continue;
                }
                let now = dir_paths(s, d);
                changed_paths(before, &now, &mut changed);
                updates.push((d.name.clone(), Some(now)));
            }
            for (name, (_, _, before)) in &source.dirs {
                if !seen.contains(name.as_str()) {
                    changed.extend(before.iter().map(|(k, r, _)| (k.clone(), r.clone())));
                    updates.push((name.clone(), None));
                }
            }
            dirs.push((s.machine.id.clone(), s.commit, updates));
        }
        for s in snaps.iter().filter(|_| !moved.is_empty()) {
            changed.extend(
                s.files
                    .iter()
                    .filter(|f| moved.contains(f.project.key.as_str()))
                    .map(|f| (f.project.key.clone(), f.rel.as_str().to_string())),
            );
        }
        // A fetch that changed much of the index (a first import arriving) is built whole:
        // patching path by path costs more then.
        if changed.len() > self.files.len() / 4 + 64 {
            return None;
        }
        // A satellite is the newest of every project's: each project's is resolved again.
        let satellites: HashSet<&str> = changed
            .iter()
            .map(|(_, rel)| rel.as_str())
            .filter(|rel| satellite::is_satellite(rel) && *rel != satellite::HISTORY)
            .collect();
        let mut also = Vec::new();
        if !satellites.is_empty() {
            for s in snaps.iter().filter(|s| s.machine.id != local.id) {
                for f in s
                    .files
                    .iter()
                    .filter(|f| satellites.contains(f.rel.as_str()))
                {
                    also.push((f.project.key.clone(), f.rel.as_str().to_string()));
                }
            }
        }
        changed.extend(also);
        let mut fresh = fresh;
        fresh.produced = Some(HashMap::new());
        if !changed.is_empty() {
            let wanted: foldhash::HashSet<(&str, &str)> = changed
                .iter()
                .map(|(k, r)| (k.as_str(), r.as_str()))
                .collect();
            let index = Index::only(snaps, |f| {
                wanted.contains(&(f.project.key.as_str(), f.rel.as_str()))
            });
            for (key, rel) in &changed {
                if index.has_other(&local.id, key, rel)
                    && fresh.resolve(&index, local, &after, key, rel)
                {
                    return None;
                }
            }
        }
        // A path that is a directory of the view, or under a file of it, is left to a build: the
        // directory entries would then depend on the order of a build.
        let clash = |p: &str,
                     dirs: &foldhash::HashMap<String, _>,
                     files: &std::collections::BTreeMap<String, ForeignFile>| {
            dirs.contains_key(p)
                || std::iter::successors(p.rsplit_once('/').map(|(a, _)| a), |a| {
                    a.rsplit_once('/').map(|(b, _)| b)
                })
                .any(|a| files.contains_key(a))
        };
        for source in &changed {
            for out in &self.outputs_of(&source.0, &source.1, &basis.book) {
                if let Out::File(p) = out
                    && clash(p, &self.dirs, &self.files)
                {
                    return None;
                }
            }
        }
        for out in fresh.produced.iter().flat_map(HashMap::values).flatten() {
            if let Out::File(p) = out
                && (clash(p, &self.dirs, &self.files) || clash(p, &fresh.dirs, &fresh.files))
            {
                return None;
            }
        }
        // A path another (key, rel) shows is left to a build.
        let ours = |f: Option<&ForeignFile>| {
            f.is_none_or(|f| changed.contains(&(f.key.clone(), f.rel.as_str().to_string())))
        };
        for (source, outs) in fresh.produced.iter().flatten() {
            for out in outs {
                let clear = match out {
                    // A copy listed elsewhere at the same path would give way to it.
                    Out::File(p) => ours(self.files.get(p)) && ours(self.moved.get(p)),
                    Out::Moved(p) => ours(self.moved.get(p)),
                    Out::History(p) => ours(self.histories.get(p)),
                    Out::Satellite(_) => true,
                };
                if !clear {
                    tracing::debug!(key = %source.0, rel = %source.1, "a patch would meet another path; building the index again");
                    return None;
                }
            }
        }
        Some(Plan {
            changed,
            fresh,
            dirs,
            book: after,
            moved: !moved.is_empty(),
        })
    }

    /// The foreign keys whose place differs between this index and `fresh` (its placement,
    /// the places it left, its chosen root), or `None` when a project record changed at a slug
    /// none of them is placed at: then the places of other keys' files may change too.
    fn moved_keys(
        &self,
        fresh: &Foreign,
        was: &PlaceBook,
        now: &PlaceBook,
    ) -> Option<HashSet<String>> {
        let mut keys = HashSet::new();
        for key in self.placements.keys().chain(fresh.placements.keys()) {
            let base = super::key_base(key);
            let retired = |b: &PlaceBook| b.chosen.get(base).map(|c| c.retired.clone());
            if self.placements.get(key) != fresh.placements.get(key)
                || retired(was) != retired(now)
                || self.roots.get(base) != fresh.roots.get(base)
            {
                keys.insert(key.clone());
            }
        }
        let slugs: HashSet<&str> = keys
            .iter()
            .flat_map(|k| [self.placements.get(k), fresh.placements.get(k)])
            .flatten()
            .map(|p| p.project.slug.as_str())
            .collect();
        let differs = |a: &HashMap<String, ProjectRecord>, b: &HashMap<String, ProjectRecord>| {
            a.iter()
                .any(|(slug, p)| b.get(slug) != Some(p) && !slugs.contains(slug.as_str()))
        };
        if differs(&self.projects_by_slug, &fresh.projects_by_slug)
            || differs(&fresh.projects_by_slug, &self.projects_by_slug)
        {
            return None;
        }
        Some(keys)
    }

    /// Brings this index to what `plan` was made for; returns the view paths whose file
    /// changed, appeared or went (a copy listed elsewhere included).
    pub fn apply(&mut self, plan: Plan) -> Vec<String> {
        let Plan {
            changed,
            mut fresh,
            dirs,
            book: after,
            moved: _,
        } = plan;
        let mut before: HashMap<String, Option<u64>> = HashMap::new();
        let book = self
            .basis
            .as_ref()
            .map(|b| b.book.clone())
            .unwrap_or_default();
        for source in &changed {
            let outs = self.outputs_of(&source.0, &source.1, &book);
            let is_source = |f: &ForeignFile| f.key == source.0 && f.rel.as_str() == source.1;
            for out in outs {
                match out {
                    Out::File(p) => {
                        if self.files.get(&p).is_some_and(is_source) {
                            let f = self.files.remove(&p).expect("present");
                            self.remove_dirs(&p);
                            before.entry(p).or_insert(Some(f.fingerprint));
                        }
                    }
                    Out::Moved(p) => {
                        if self.moved.get(&p).is_some_and(is_source) {
                            let f = self.moved.remove(&p).expect("present");
                            before.entry(p).or_insert(Some(f.fingerprint));
                        }
                    }
                    Out::History(p) => {
                        if self.histories.get(&p).is_some_and(is_source) {
                            self.histories.remove(&p);
                        }
                    }
                    Out::Satellite(rel) => {
                        self.satellites.remove(&rel);
                    }
                }
            }
        }
        let mut moved_now = BTreeSet::new();
        for outs in fresh
            .produced
            .take()
            .into_iter()
            .flat_map(HashMap::into_values)
        {
            for out in &outs {
                match out {
                    Out::File(p) => {
                        if let Some(f) = fresh.files.remove(p) {
                            self.add_dirs(p);
                            before.entry(p.clone()).or_insert(None);
                            self.files.insert(p.clone(), f);
                        }
                    }
                    Out::Moved(p) => {
                        if let Some(f) = fresh.moved.remove(p) {
                            before.entry(p.clone()).or_insert(None);
                            moved_now.insert(p.clone());
                            self.moved.insert(p.clone(), f);
                        }
                    }
                    Out::History(p) => {
                        if let Some(f) = fresh.histories.remove(p) {
                            self.histories.insert(p.clone(), f);
                        }
                    }
                    Out::Satellite(rel) => {
                        if let Some(f) = fresh.satellites.remove(rel) {
                            self.satellites.insert(rel.clone(), f);
                        }
                    }
                }
            }
        }
        for (slug, home) in fresh.homes {
            self.homes.entry(slug).or_insert(home);
        }
        self.retain_moved(Some(&moved_now));
        self.rejected = fresh.rejected;
        // The places as a build would give them (the same, unless a project moved).
        self.placements = fresh.placements;
        self.projects_by_slug = fresh.projects_by_slug;
        self.roots = fresh.roots;
        self.expansions = fresh.expansions;
        // A project placed where it showed in one of this machine's own places: that place
        // is its place now, no longer a home (a build gives none there).
        let placed: HashSet<&str> = self
            .placements
            .values()
            .map(|p| p.project.slug.as_str())
            .collect();
        self.homes.retain(|slug, _| !placed.contains(slug.as_str()));
        if let Some(basis) = &mut self.basis {
            basis.book = after;
            for (machine, commit, updates) in dirs {
                let Some(source) = basis.sources.get_mut(&machine) else {
                    continue;
                };
                source.commit = commit;
                for (name, now) in updates {
                    match now {
                        Some(d) => source.dirs.insert(name, d),
                        None => source.dirs.remove(&name),
                    };
                }
            }
        }
        let mut out = Vec::new();
        for (p, was) in before {
            let now = self
                .files
                .get(&p)
                .or_else(|| self.moved.get(&p))
                .map(|f| f.fingerprint);
            if now != was {
                out.push(p);
            }
        }
        out.sort();
        out
    }

    /// Where `rel` of project `key` is filed now: at its project's place, at this machine's
    /// places of it, or where the project left, and as a satellite.
    fn outputs_of(&self, key: &str, rel: &str, book: &PlaceBook) -> Vec<Out> {
        // This machine's places of the project (each slug dir holds one key: see `plan`).
        let mut slugs: BTreeSet<&str> = self
            .projects_by_slug
            .iter()
            .filter(|(_, p)| p.key == key)
            .map(|(slug, _)| slug.as_str())
            .collect();
        slugs.extend(self.placements.get(key).map(|p| p.project.slug.as_str()));
        slugs.extend(book.retired(super::key_base(key)));
        let from =
            |f: Option<&ForeignFile>| f.is_some_and(|f| f.key == key && f.rel.as_str() == rel);
        let mut out = Vec::new();
        for slug in slugs {
            let p = format!("{slug}/{rel}");
            if from(self.files.get(&p)) {
                out.push(Out::File(p.clone()));
            }
            if from(self.moved.get(&p)) {
                out.push(Out::Moved(p.clone()));
            }
            if from(self.histories.get(&p)) {
                out.push(Out::History(p));
            }
        }
        if from(self.satellites.get(rel)) {
            out.push(Out::Satellite(rel.to_string()));
        }
        out
    }

    /// Whether two project keys may file at one slug: placed there both, or one placed where
    /// this machine keeps the other, or where the other's project left. Which one a path then
    /// shows depends on the order of a build, so such an index is always built whole.
    fn slug_shared(&self, book: &PlaceBook) -> bool {
        let mut by_slug: HashMap<String, String> = HashMap::new();
        let mut clash = |slug: &str, key: &'_ str| -> bool {
            match by_slug.get(slug) {
                Some(k) => *k != key,
                None => {
                    by_slug.insert(slug.to_string(), key.to_string());
                    false
                }
            }
        };
        let placed = self.placements.iter().any(|(key, p)| {
            clash(&p.project.slug, key) || book.retired(super::key_base(key)).any(|s| clash(s, key))
        });
        placed
            || self
                .projects_by_slug
                .iter()
                .any(|(slug, p)| clash(slug, &p.key))
    }

    /// Takes file `path` out of the directories it implied: a directory left with nothing
    /// goes too.
    fn remove_dirs(&mut self, path: &str) {
        let mut child = path;
        loop {
            let (parent, name) = child.rsplit_once('/').unwrap_or(("", child));
            let Some(children) = self.dirs.get_mut(parent) else {
                return;
            };
            children.remove(name);
            if !children.is_empty() {
                return;
            }
            self.dirs.remove(parent);
            if parent.is_empty() {
                return;
            }
            child = parent;
        }
    }
}
