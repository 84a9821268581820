//! Reading machines' branches: their records and files, validated so that a hostile or corrupt
//! remote can neither escape the view nor exhaust memory. Invalid entries are skipped and
//! reported, never fatal.

use super::layout::{self, RelPath};
use super::records::{FileMeta, MachineRecord, PlaceId, ProjectRecord};
use super::{Store, StoreError};
use git2::{ObjectType, Oid};

/// Most files accepted from one machine's branch.
pub const MAX_FILES: usize = 200_000;
/// Largest file accepted from a remote, in bytes of portable form.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Most tree entries visited in one machine's branch.
pub const MAX_ENTRIES: usize = 4 * MAX_FILES;
/// Most rejections kept per snapshot; the rest are counted in the last one.
const MAX_REJECTED: usize = 1000;

fn reject_into(snap: &mut Snapshot, e: StoreError) {
    if snap.rejected.len() < MAX_REJECTED {
        snap.rejected.push(e);
    }
}

/// Largest record (`*.json` metadata) accepted from a remote.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Most file metadata records kept parsed in one generation of [`MetaMemo`] (about 60 bytes
/// each).
const META_CACHE: usize = 200_000;

/// Reads of branches per generation of [`MetaMemo`]: a record no lookup met in a whole
/// generation is forgotten at the end of the next one.
const META_READS: u64 = 64;

/// Parsed metadata of file versions, by the id of the file's tree, in two generations. Ids name
/// content, so an entry never goes stale, and every refresh after a fetch re-reads whole branches
/// of which nearly every file is unchanged: without this, each one costs a tree lookup, a blob
/// read and a JSON parse per file (at 10,000 sessions, most of a refresh). Every version a long
/// run sees would stay otherwise: two generations keep about what recent reads use.
#[derive(Default)]
struct MetaMemo {
    now: std::collections::HashMap<Oid, FileMeta>,
    before: std::collections::HashMap<Oid, FileMeta>,
}

impl MetaMemo {
    /// The record of `tree`, if held; one from the older generation moves to the newer.
    fn get(&mut self, tree: Oid) -> Option<FileMeta> {
        if let Some(m) = self.now.get(&tree) {
            return Some(*m);
        }
        let m = self.before.remove(&tree)?;
        self.insert(tree, m);
        Some(m)
    }

    fn insert(&mut self, tree: Oid, meta: FileMeta) {
        // Past the bound, a generation ends early.
        if self.now.len() >= META_CACHE {
            self.next_generation();
        }
        self.now.insert(tree, meta);
    }

    /// Forgets what the older generation still holds: nothing met it since it ended.
    fn next_generation(&mut self) {
        self.before = std::mem::take(&mut self.now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.now.len() + self.before.len()
    }
}

static METAS: std::sync::LazyLock<std::sync::Mutex<MetaMemo>> =
    std::sync::LazyLock::new(Default::default);

/// A project directory's files as read from its tree, with the tree entries the walk visited.
struct Walked {
    files: Vec<FileEntry>,
    entries: usize,
}

/// Most files held in [`WALKED`] across its projects.
const WALKED_FILES: usize = 400_000;

/// Reads of branches after which a project dir none of them met is forgotten: enough for a
/// refresh of every branch and the engine's reads in between, so that what is held is about
/// one copy of each branch's files, not every version a long run has seen.
const WALKED_READS: u64 = 32;

/// Project directories read before, by name and tree id, each with the read that last met it:
/// ids name content, so an entry never goes stale, and a refresh after a fetch reads again only
/// the projects that changed.
#[derive(Default)]
struct WalkedMemo {
    projects: std::collections::HashMap<(String, Oid), (std::sync::Arc<Walked>, u64)>,
    files: usize,
    reads: u64,
}

static WALKED: std::sync::LazyLock<std::sync::Mutex<WalkedMemo>> =
    std::sync::LazyLock::new(Default::default);

/// Starts a read of a branch: forgets the dirs no recent read met, and gives this read's number.
fn begin_read() -> u64 {
    let mut memo = WALKED.lock().unwrap_or_else(|e| e.into_inner());
    memo.reads += 1;
    if memo.reads.is_multiple_of(META_READS) {
        METAS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_generation();
    }
    let (now, mut files) = (memo.reads, memo.files);
    memo.projects.retain(|_, (w, last)| {
        let keep = *last + WALKED_READS >= now;
        if !keep {
            files -= w.files.len();
        }
        keep
    });
    memo.files = files;
    now
}

fn walked(name: &str, tree: Oid, read: u64) -> Option<std::sync::Arc<Walked>> {
    let mut memo = WALKED.lock().unwrap_or_else(|e| e.into_inner());
    let (w, last) = memo.projects.get_mut(&(name.to_string(), tree))?;
    *last = read;
    Some(w.clone())
}

fn remember(name: String, tree: Oid, walked: Walked, read: u64) {
    let mut memo = WALKED.lock().unwrap_or_else(|e| e.into_inner());
    // Past the bound, start again rather than track use: the next refresh refills it.
    if memo.files + walked.files.len() > WALKED_FILES {
        memo.projects.clear();
        memo.files = 0;
    }
    memo.files += walked.files.len();
    if let Some((old, _)) = memo
        .projects
        .insert((name, tree), (std::sync::Arc::new(walked), read))
    {
        memo.files -= old.files.len();
    }
}

/// One file of one machine's branch.
#[derive(Clone, Debug)]
pub struct FileEntry {
    /// The project it belongs to.
    pub project: std::sync::Arc<ProjectRecord>,
    /// The path inside the project directory.
    pub rel: RelPath,
    /// Its metadata.
    pub meta: FileMeta,
    /// The file's own tree (meta, data or chunks).
    pub tree: Oid,
}

/// A machine's branch at one commit, read and checked.
#[derive(Debug)]
pub struct Snapshot {
    /// The commit read.
    pub commit: Oid,
    /// The machine's record.
    pub machine: MachineRecord,
    /// Its files.
    pub files: Vec<FileEntry>,
    /// What was skipped, and why.
    pub rejected: Vec<StoreError>,
    /// Its project dirs in the order read, each with its tree id and its files' range in
    /// `files`: a later read of the branch tells by the ids which projects changed.
    pub dirs: Vec<ProjectDir>,
    /// Whether the read stopped at the limits ([`MAX_FILES`], [`MAX_ENTRIES`]): what was read
    /// of each project dir then depends on the dirs before it, not on its own tree alone.
    pub cut: bool,
}

/// One project dir of a machine's branch as read.
#[derive(Clone, Debug)]
pub struct ProjectDir {
    /// Its name under the branch's projects dir.
    pub name: String,
    /// Its tree's id: the same id, the same files.
    pub tree: Oid,
    /// Its files' place in [`Snapshot::files`].
    pub files: std::ops::Range<usize>,
}

impl Store {
    /// Only the machine record of a branch at `commit`: cheap, for status lines.
    pub fn machine_record(&self, branch: &str, commit: Oid) -> Result<MachineRecord, StoreError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        self.record(branch, &tree, layout::MACHINE_FILE)
    }

    /// Reads a machine's branch at `commit`. Fails only if the machine record itself is
    /// unusable; anything else wrong is skipped into `rejected`.
    pub fn snapshot(&self, branch: &str, commit: Oid) -> Result<Snapshot, StoreError> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let machine: MachineRecord = self.record(branch, &tree, layout::MACHINE_FILE)?;
        let mut snap = Snapshot {
            commit,
            machine,
            files: Vec::new(),
            rejected: Vec::new(),
            dirs: Vec::new(),
            cut: false,
        };
        let Some(projects) = tree.get_name(layout::PROJECTS) else {
            return Ok(snap);
        };
        let projects = self.repo.find_tree(projects.id())?;
        let mut budget = MAX_ENTRIES;
        let read = begin_read();
        for p in projects.iter() {
            let Some(name) = p.name().ok().map(str::to_string) else {
                snap.rejected.push(StoreError::Rejected {
                    branch: branch.to_string(),
                    path: layout::PROJECTS.to_string(),
                    why: "name is not UTF-8".to_string(),
                });
                continue;
            };
            let from = snap.files.len();
            self.project_into(branch, &name, p.id(), read, &mut snap, &mut budget)?;
            snap.dirs.push(ProjectDir {
                name,
                tree: p.id(),
                files: from..snap.files.len(),
            });
        }
        Ok(snap)
    }

    /// Reads project dir `name` (tree `id`) of a branch into `snap`.
    fn project_into(
        &self,
        branch: &str,
        name: &str,
        id: Oid,
        read: u64,
        snap: &mut Snapshot,
        budget: &mut usize,
    ) -> Result<(), StoreError> {
        let reject = |why: &str| StoreError::Rejected {
            branch: branch.to_string(),
            path: name.to_string(),
            why: why.to_string(),
        };
        // A project dir read before, unchanged: its files as read then (a fetch changes a few
        // projects of many, and reading every file of every branch was most of a refresh).
        if let Some(walked) = walked(name, id, read)
            && *budget > walked.entries
            && snap.files.len() + walked.files.len() < MAX_FILES
        {
            *budget -= walked.entries;
            snap.files.extend(walked.files.iter().cloned());
            return Ok(());
        }
        let (files_from, budget_from, rejected_from) =
            (snap.files.len(), *budget, snap.rejected.len());
        let Ok(ptree) = self.repo.find_tree(id) else {
            snap.rejected.push(reject("project is not a directory"));
            return Ok(());
        };
        let project: std::sync::Arc<ProjectRecord> =
            match self.record(branch, &ptree, layout::PROJECT_FILE) {
                Ok(r) => std::sync::Arc::new(r),
                Err(e) => {
                    snap.rejected.push(e);
                    return Ok(());
                }
            };
        if !layout::dir_matches(name, &project.key, &project.slug) {
            snap.rejected
                .push(reject("directory does not match the project key"));
            return Ok(());
        }
        if let Some(files) = ptree.get_name(layout::FILES) {
            let files = self.repo.find_tree(files.id())?;
            self.walk(branch, &files, &project, &mut Vec::new(), snap, budget);
        }
        // Only a project read whole and without a fault is remembered: a rejection names its
        // branch, and a walk cut short by the budget depends on what came before. Past the cap
        // on rejections a fault adds none, so nothing is remembered after it.
        if snap.rejected.len() == rejected_from && rejected_from < MAX_REJECTED && *budget > 0 {
            remember(
                name.to_string(),
                id,
                Walked {
                    files: snap.files[files_from..].to_vec(),
                    entries: budget_from - *budget,
                },
                read,
            );
        }
        Ok(())
    }

    /// Walks a project's file tree, within a budget of entries visited: trees can be shared, so
    /// a small hostile branch can describe an astronomically large tree.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        branch: &str,
        tree: &git2::Tree<'_>,
        project: &std::sync::Arc<ProjectRecord>,
        dirs: &mut Vec<String>,
        snap: &mut Snapshot,
        budget: &mut usize,
    ) {
        for e in tree.iter() {
            let here = || format!("{}/{}", project.key, dirs.join("/"));
            if *budget == 0 {
                return; // Exhausted further down; already reported.
            }
            if snap.files.len() >= MAX_FILES || *budget == 1 {
                let why = format!(
                    "more than {MAX_FILES} files or {MAX_ENTRIES} entries; the rest are ignored"
                );
                // The limit itself is always reported, past the cap on rejections.
                snap.rejected.push(StoreError::Rejected {
                    branch: branch.into(),
                    path: here(),
                    why,
                });
                snap.cut = true;
                *budget = 0;
                return;
            }
            *budget -= 1;
            let reject = |why: String| StoreError::Rejected {
                branch: branch.into(),
                path: here(),
                why,
            };
            let Some(name) = e.name().ok() else {
                reject_into(snap, reject("name is not UTF-8".into()));
                continue;
            };
            if e.kind() != Some(ObjectType::Tree) {
                let why =
                    format!("{name:?} is not a directory entry (symlink, submodule or stray blob)");
                reject_into(snap, reject(why));
                continue;
            }
            let (is_dir, base) = match (name.strip_prefix("d."), name.strip_prefix("f.")) {
                (Some(b), _) => (true, b),
                (None, Some(b)) => (false, b),
                (None, None) => {
                    reject_into(snap, reject(format!("{name:?} is not a d./f. entry")));
                    continue;
                }
            };
            if let Err(why) = layout::check_name(base) {
                reject_into(snap, reject(why));
                continue;
            }
            if is_dir {
                if dirs.len() + 1 >= layout::MAX_DEPTH {
                    reject_into(snap, reject(format!("{name:?} is too deep")));
                    continue;
                }
                let Ok(sub) = self.repo.find_tree(e.id()) else {
                    continue;
                };
                dirs.push(base.to_string());
                self.walk(branch, &sub, project, dirs, snap, budget);
                dirs.pop();
                continue;
            }
            let rel = if dirs.is_empty() {
                base.to_string()
            } else {
                format!("{}/{base}", dirs.join("/"))
            };
            let entry = RelPath::new(&rel).and_then(|rel| {
                Ok(FileEntry {
                    project: project.clone(),
                    meta: self.file_meta(branch, e.id(), &rel)?,
                    rel,
                    tree: e.id(),
                })
            });
            match entry {
                Ok(f) => snap.files.push(f),
                Err(err) => reject_into(snap, err),
            }
        }
    }

    /// The metadata of the file whose tree is `tree`, parsed once per process (see [`METAS`]);
    /// one claiming more than [`MAX_FILE_BYTES`] is rejected, and never remembered.
    fn file_meta(&self, branch: &str, tree: Oid, rel: &RelPath) -> Result<FileMeta, StoreError> {
        if let Some(meta) = METAS.lock().unwrap_or_else(|e| e.into_inner()).get(tree) {
            return Ok(meta);
        }
        let meta: FileMeta = self.record(branch, &self.repo.find_tree(tree)?, layout::META)?;
        if meta.len > MAX_FILE_BYTES {
            return Err(StoreError::Rejected {
                branch: branch.into(),
                path: rel.to_string(),
                why: format!("claims {} bytes, more than {MAX_FILE_BYTES}", meta.len),
            });
        }
        METAS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tree, meta);
        Ok(meta)
    }

    fn record<T: serde::de::DeserializeOwned>(
        &self,
        branch: &str,
        tree: &git2::Tree<'_>,
        name: &str,
    ) -> Result<T, StoreError> {
        let missing = || StoreError::Rejected {
            branch: branch.into(),
            path: name.into(),
            why: "missing or not a file".into(),
        };
        let entry = tree.get_name(name).ok_or_else(missing)?;
        if entry.kind() != Some(ObjectType::Blob) {
            return Err(missing());
        }
        let (size, _) = self.repo.odb()?.read_header(entry.id())?;
        if size > MAX_RECORD_BYTES {
            return Err(StoreError::Rejected {
                branch: branch.into(),
                path: name.into(),
                why: format!("record of {size} bytes"),
            });
        }
        let blob = self.repo.find_blob(entry.id())?;
        serde_json::from_slice(blob.content()).map_err(|source| StoreError::Malformed {
            what: format!("{branch}: {name}"),
            source,
        })
    }

    /// The portable bytes of a file version (empty for a deleted or hidden one).
    pub fn read(&self, entry: &FileEntry) -> Result<Vec<u8>, StoreError> {
        let ids = self.chunk_ids(entry)?;
        let mut out = Vec::with_capacity(self.chunks_size(entry, &ids)? as usize);
        for id in ids {
            out.extend_from_slice(self.repo.find_blob(id)?.content());
        }
        Ok(out)
    }

    /// The blobs that hold a version's bytes, in order (its chunks, or its one blob): two
    /// versions of a transcript share the chunks before the first byte that differs, so a
    /// reader can expand only the rest.
    pub fn chunk_ids(&self, entry: &FileEntry) -> Result<Vec<Oid>, StoreError> {
        if entry.meta.len == 0 {
            // What an older ferry left when it emptied a file (its chunks gone, `data` kept).
            return Ok(Vec::new());
        }
        let tree = self.repo.find_tree(entry.tree)?;
        let data = tree.get_name(layout::DATA).map(|d| d.id());
        let Some(c) = tree.get_name(layout::CHUNKS) else {
            return Ok(data.into_iter().collect());
        };
        let mut chunks = chunk_list(&self.repo, c.id())?;
        // A transcript of one chunk is its `data` blob. A ferry older than that form, run
        // again on the machine, writes chunks under `c/` and leaves `data`: it is the first
        // chunk only where `c/` has none (the writer takes it the same way).
        if let Some(first) = data.filter(|_| chunks.first().is_none_or(|(k, _)| *k != 0)) {
            chunks.insert(0, (0, first));
        }
        Ok(chunks.into_iter().map(|(_, id)| id).collect())
    }

    /// Calls `each` with the bytes of the blobs of `ids` from index `from` on, in order: `ids`
    /// are a version's chunks from [`Store::chunk_ids`]. Refused like [`Store::read`] when those
    /// it reads are too large together (the others were read before: a new version of a long
    /// transcript costs its new chunks, not a look at every chunk's size).
    pub fn read_chunks(
        &self,
        entry: &FileEntry,
        ids: &[Oid],
        from: usize,
        mut each: impl FnMut(Oid, &[u8]),
    ) -> Result<(), StoreError> {
        let ids = ids.get(from..).unwrap_or_default();
        self.chunks_size(entry, ids)?;
        for &id in ids {
            each(id, self.repo.find_blob(id)?.content());
        }
        Ok(())
    }

    /// The size of `ids` together, from the objects' headers: a small compressed object can be
    /// huge, so the limit is checked before anything is inflated (and the output is allocated
    /// once: growing it chunk by chunk would hold up to twice the file at a time).
    fn chunks_size(&self, entry: &FileEntry, ids: &[Oid]) -> Result<u64, StoreError> {
        let odb = self.repo.odb()?;
        let mut total = 0u64;
        for id in ids {
            total += odb.read_header(*id)?.0 as u64;
            if total > MAX_FILE_BYTES {
                return Err(StoreError::Rejected {
                    branch: String::new(),
                    path: entry.rel.to_string(),
                    why: format!("larger than {MAX_FILE_BYTES} bytes"),
                });
            }
        }
        Ok(total)
    }
}

/// The chunks of a chunk tree, in index order; entries that are not chunks are ignored.
pub(super) fn chunk_list(
    repo: &git2::Repository,
    root: Oid,
) -> Result<Vec<(u64, Oid)>, StoreError> {
    // Only the names `0`..`63` are descended into, so a hostile tree cannot make this loop
    // longer than 64 x 64 x 64 entries.
    let level = |name: Result<&str, git2::Error>| name.ok().and_then(layout::chunk_level);
    let mut out = Vec::new();
    let top = repo.find_tree(root)?;
    for a in top.iter() {
        let Some(ka) = level(a.name()) else { continue };
        let Ok(mid) = repo.find_tree(a.id()) else {
            continue;
        };
        for b in mid.iter() {
            let Some(kb) = level(b.name()) else { continue };
            let Ok(leaf) = repo.find_tree(b.id()) else {
                continue;
            };
            for c in leaf.iter() {
                if let (Some(kc), Some(ObjectType::Blob)) = (level(c.name()), c.kind()) {
                    out.push(((ka << 12) | (kb << 6) | kc, c.id()));
                }
            }
        }
    }
    out.sort_by_key(|(k, _)| *k);
    Ok(out)
}

/// One historical version of a file on one machine's branch.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// The commit that recorded it.
    pub commit: Oid,
    /// When that commit was made, in seconds since the epoch.
    pub time: i64,
    /// The version.
    pub file: FileEntry,
}

impl Store {
    /// Every distinct version of `rel` in `place` on the branch whose head is `head`, newest
    /// first: what `ferry restore` chooses from. Follows the place into the per-key dir of a
    /// store written before places.
    pub fn history(
        &self,
        head: Oid,
        place: &PlaceId,
        rel: &RelPath,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let dirs = [
            layout::place_dir(&place.key, &place.slug),
            layout::project_dir(&place.key),
        ];
        let mut out: Vec<HistoryEntry> = Vec::new();
        for id in self.commits(&[head])? {
            let commit = self.repo.find_commit(id)?;
            let tree = commit.tree()?;
            let mut found = None;
            for dir in &dirs {
                let project_path = format!("{}/{dir}/{}", layout::PROJECTS, layout::PROJECT_FILE);
                let path = format!(
                    "{}/{dir}/{}/{}",
                    layout::PROJECTS,
                    layout::FILES,
                    rel.tree_path()
                );
                let (Ok(entry), Ok(ptree_entry)) = (
                    tree.get_path(path.as_ref()),
                    tree.get_path(project_path.as_ref()),
                ) else {
                    continue;
                };
                let project: ProjectRecord =
                    serde_json::from_slice(self.repo.find_blob(ptree_entry.id())?.content())
                        .map_err(|source| StoreError::Malformed {
                            what: project_path.clone(),
                            source,
                        })?;
                if project.slug == place.slug {
                    found = Some((entry.id(), project));
                    break;
                }
            }
            let Some((entry_id, project)) = found else {
                continue;
            };
            if out.last().is_some_and(|h| h.file.tree == entry_id) {
                continue;
            }
            let ftree = self.repo.find_tree(entry_id)?;
            let meta: FileMeta = self.record("history", &ftree, layout::META)?;
            out.push(HistoryEntry {
                commit: commit.id(),
                time: commit.time().seconds(),
                file: FileEntry {
                    project: std::sync::Arc::new(project),
                    rel: rel.clone(),
                    meta,
                    tree: entry_id,
                },
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{FileMeta, MetaMemo};
    use crate::store::FileState;
    use git2::Oid;

    fn meta(len: u64) -> FileMeta {
        FileMeta {
            mtime_ms: 1,
            mode: 0o600,
            len,
            lines: true,
            state: FileState::Present,
        }
    }

    fn id(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    #[test]
    fn a_record_used_in_either_generation_stays_and_one_unused_for_two_goes() {
        let mut memo = MetaMemo::default();
        memo.insert(id(1), meta(1));
        memo.insert(id(2), meta(2));
        memo.next_generation();
        // Met in the older generation: moved to the newer one.
        assert_eq!(memo.get(id(1)).map(|m| m.len), Some(1));
        memo.next_generation();
        assert_eq!(memo.get(id(1)).map(|m| m.len), Some(1));
        assert_eq!(memo.get(id(2)), None, "not met for two generations");
        assert_eq!(memo.len(), 1);
    }
}
