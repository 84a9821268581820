//! Committing this machine's changes from the upper layer into its own branch.

use super::chunks::{self, CHUNK};
use super::layout::{self, RelPath};
use super::records::{FileMeta, FileState, MachineRecord, PlaceId, ProjectRecord, mapping_for};
use super::{Store, StoreError, own_ref};
use crate::codec::{Codec, Format};
use crate::secrets::{self, Finding, Policy};
use git2::build::TreeUpdateBuilder;
use git2::{FileMode, Oid, Tree};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// What changed about one file of this machine.
#[derive(Clone, Debug)]
pub enum Change {
    /// The local file at `local` was written; bytes before `dirty_from` are known unchanged
    /// since the last commit (`None`: anything may have changed).
    Write {
        /// The file in the upper layer.
        local: PathBuf,
        /// The lowest offset written since the last commit, if known.
        dirty_from: Option<u64>,
    },
    /// This machine deleted its own file: a tombstone that hides it everywhere.
    Delete {
        /// When.
        at_ms: i64,
    },
    /// This machine deleted another machine's file: hidden here only, up to that version.
    Hide {
        /// The newest mtime that is hidden.
        until_ms: i64,
    },
}

/// One file's change.
#[derive(Clone, Debug)]
pub struct FileUpdate {
    /// The place it belongs to (project key and slug).
    pub place: PlaceId,
    /// Its path inside the project directory.
    pub rel: RelPath,
    /// What happened.
    pub change: Change,
}

/// Everything one commit records.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// New or updated project records.
    pub projects: Vec<ProjectRecord>,
    /// File changes.
    pub files: Vec<FileUpdate>,
}

/// Collects tree edits, removing only entries that exist (libgit2 refuses to remove others).
struct Edits<'a> {
    base: Option<&'a Tree<'a>>,
    repo: &'a git2::Repository,
    builder: TreeUpdateBuilder,
    changed: bool,
    /// The base's subtrees looked up so far, by path: a commit of many files in one project
    /// reads the project's large tree once, not once per file.
    trees: RefCell<HashMap<String, Option<Tree<'a>>>>,
}

impl<'a> Edits<'a> {
    /// The base's tree at `dir` ("" for the root), if there is one.
    fn tree_at(&self, dir: &str) -> Option<Tree<'a>> {
        if dir.is_empty() {
            return self.base.cloned();
        }
        if let Some(t) = self.trees.borrow().get(dir) {
            return t.clone();
        }
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let tree = self
            .tree_at(parent)
            .and_then(|p| p.get_name(name).map(|e| e.id()))
            .and_then(|id| self.repo.find_tree(id).ok());
        self.trees
            .borrow_mut()
            .insert(dir.to_string(), tree.clone());
        tree
    }

    /// The id of the base's entry at `path`, if there is one.
    fn id_at(&self, path: &str) -> Option<Oid> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        self.tree_at(dir)?.get_name(name).map(|e| e.id())
    }

    fn exists(&self, path: &str) -> bool {
        self.id_at(path).is_some()
    }

    fn put(&mut self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let id = self.repo.blob(bytes)?;
        self.put_id(path, id);
        Ok(())
    }

    /// Puts the blob `id`, already in the store, at `path`.
    fn put_id(&mut self, path: &str, id: Oid) {
        if self.id_at(path) != Some(id) {
            self.builder.upsert(path, id, FileMode::Blob);
            self.changed = true;
        }
    }

    fn remove(&mut self, path: &str) {
        if self.exists(path) {
            self.builder.remove(path);
            self.changed = true;
        }
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let blob = self.repo.find_blob(self.id_at(path)?).ok()?;
        serde_json::from_slice(blob.content()).ok()
    }

    /// The directory under `p/` that holds `place`: the per-key dir of a store written before
    /// places if its record names this place, else the place's own dir.
    fn place_dir(&self, place: &PlaceId) -> String {
        let legacy = layout::project_dir(&place.key);
        let record = format!("{}/{legacy}/{}", layout::PROJECTS, layout::PROJECT_FILE);
        match self.read_json::<ProjectRecord>(&record) {
            Some(p) if p.slug == place.slug => legacy,
            _ => layout::place_dir(&place.key, &place.slug),
        }
    }

    /// Chunk indexes at or above `from` in the chunk tree at `path`.
    fn chunks_from(&self, path: &str, from: u64) -> Result<Vec<u64>, StoreError> {
        let Some(id) = self.id_at(path) else {
            return Ok(Vec::new());
        };
        let all = super::read::chunk_list(self.repo, id)?;
        Ok(all
            .into_iter()
            .map(|(k, _)| k)
            .filter(|&k| k >= from)
            .collect())
    }
}

fn mtime_ms(md: &std::fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(unix)]
fn mode_of(md: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_: &std::fs::Metadata) -> u32 {
    0o600
}

impl Store {
    /// Commits `batch` on `machine`'s branch. Returns the new commit, or `None` when nothing
    /// changed. Costs O(bytes changed) for transcripts when `dirty_from` is given.
    pub fn commit(
        &self,
        machine: &MachineRecord,
        batch: &Batch,
    ) -> Result<Option<Oid>, StoreError> {
        let refname = own_ref(&machine.id);
        let tip = self.tip(&refname)?;
        let Some(id) = self.commit_onto(machine, batch, tip)? else {
            return Ok(None);
        };
        self.move_branch(&refname, tip, id)?;
        Ok(Some(id))
    }

    /// The commit `refname` points to, if it exists.
    pub(super) fn tip(&self, refname: &str) -> Result<Option<Oid>, StoreError> {
        match self.repo.refname_to_id(refname) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves branch `refname` from `from` (`None`: it does not exist yet) to `to`, failing if
    /// it no longer points to `from`.
    pub(super) fn move_branch(
        &self,
        refname: &str,
        from: Option<Oid>,
        to: Oid,
    ) -> Result<(), StoreError> {
        match from {
            Some(old) => self
                .repo
                .reference_matching(refname, to, true, old, "ferry commit")?,
            None => self.repo.reference(refname, to, false, "ferry commit")?,
        };
        Ok(())
    }

    /// Writes `batch` as a commit on `parent` (`None`: the branch's first), moving no branch;
    /// returns the commit, or `None` when nothing changed.
    pub(super) fn commit_onto(
        &self,
        machine: &MachineRecord,
        batch: &Batch,
        parent: Option<Oid>,
    ) -> Result<Option<Oid>, StoreError> {
        let parent = parent.map(|id| self.repo.find_commit(id)).transpose()?;
        let base = parent.as_ref().map(|c| c.tree()).transpose()?;
        let mut edits = Edits {
            base: base.as_ref(),
            repo: &self.repo,
            builder: TreeUpdateBuilder::new(),
            changed: false,
            trees: RefCell::default(),
        };
        let mut dirs: HashMap<PlaceId, String> = HashMap::new();
        let mut projects: HashMap<PlaceId, &ProjectRecord> = HashMap::new();
        for p in &batch.projects {
            let place = p.place();
            let dir = edits.place_dir(&place);
            let path = format!("{}/{dir}/{}", layout::PROJECTS, layout::PROJECT_FILE);
            edits.put(&path, &to_json(p))?;
            dirs.insert(place.clone(), dir);
            projects.insert(place, p);
        }
        let mut loaded: HashMap<PlaceId, ProjectRecord> = HashMap::new();
        for update in &batch.files {
            let dir = dirs
                .entry(update.place.clone())
                .or_insert_with(|| edits.place_dir(&update.place))
                .clone();
            let project = match projects.get(&update.place) {
                Some(p) => (*p).clone(),
                None => match loaded.get(&update.place) {
                    Some(p) => p.clone(),
                    None => {
                        let path = format!("{}/{dir}/{}", layout::PROJECTS, layout::PROJECT_FILE);
                        let p: ProjectRecord = edits.read_json(&path).ok_or_else(|| {
                            StoreError::UnknownProject(format!(
                                "{} in {}",
                                update.place.key, update.place.slug
                            ))
                        })?;
                        loaded.insert(update.place.clone(), p.clone());
                        p
                    }
                },
            };
            let file = format!(
                "{}/{dir}/{}/{}",
                layout::PROJECTS,
                layout::FILES,
                update.rel.tree_path()
            );
            let applied = self.apply(
                &mut edits,
                machine,
                &project,
                &file,
                &update.rel,
                &update.change,
            );
            match applied {
                // The local file vanished or cannot be read: skip it rather than hold back every
                // other change; the upper layer is reconciled again at start, and a deletion
                // arrives as its own change.
                Err(StoreError::Io { path, source }) if is_local_file(&update.change, &path) => {
                    tracing::warn!(path = %path.display(), error = %source, "skipping an unreadable local file");
                }
                other => other?,
            }
        }
        // A new name or a retirement is worth a commit by itself: other machines learn it.
        let renamed = || {
            edits
                .read_json::<MachineRecord>(layout::MACHINE_FILE)
                .is_some_and(|r| (&r.name, &r.retired) != (&machine.name, &machine.retired))
        };
        if !edits.changed && !renamed() {
            return Ok(None);
        }
        let mut record = machine.clone();
        record.last_seen_ms = self.now_ms();
        record.seen_ms = self.seen_heads(&machine.id)?;
        edits.put(layout::MACHINE_FILE, &to_json(&record))?;
        let tree_id = match &base {
            Some(b) => edits.builder.create_updated(&self.repo, b)?,
            None => {
                let empty = self.repo.find_tree(self.repo.treebuilder(None)?.write()?)?;
                edits.builder.create_updated(&self.repo, &empty)?
            }
        };
        let tree = self.repo.find_tree(tree_id)?;
        let sig = self.signature(machine)?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let mut message = format!("{}: {} file(s)", machine.name, batch.files.len());
        if let Some(run) = &self.run {
            message.push_str(&format!("\n\n{}{run}\n", super::RUN_TRAILER));
        }
        Ok(Some(
            self.repo
                .commit(None, &sig, &sig, &message, &tree, &parents)?,
        ))
    }

    fn apply(
        &self,
        edits: &mut Edits<'_>,
        machine: &MachineRecord,
        project: &ProjectRecord,
        file: &str,
        rel: &RelPath,
        change: &Change,
    ) -> Result<(), StoreError> {
        let meta_path = format!("{file}/{}", layout::META);
        let data_path = format!("{file}/{}", layout::DATA);
        let chunk_root = format!("{file}/{}", layout::CHUNKS);
        let old: Option<FileMeta> = edits.read_json(&meta_path);
        let (local, dirty_from) = match change {
            Change::Delete { at_ms } => {
                // A tombstone: the content leaves the tree (it stays in history).
                let meta = FileMeta {
                    mtime_ms: *at_ms,
                    mode: old.map_or(0o600, |m| m.mode),
                    len: 0,
                    lines: rel.is_lines(),
                    state: FileState::Deleted { at_ms: *at_ms },
                };
                edits.remove(&data_path);
                edits.remove(&chunk_root);
                return edits.put(&meta_path, &to_json(&meta));
            }
            Change::Hide { until_ms } => {
                // Hidden here only: this machine's own content (if it had a copy) stays, so
                // other machines keep every line it wrote.
                let meta = match old {
                    Some(m) => FileMeta {
                        state: FileState::Hidden {
                            until_ms: *until_ms,
                        },
                        ..m
                    },
                    None => FileMeta {
                        mtime_ms: 0,
                        mode: 0o600,
                        len: 0,
                        lines: rel.is_lines(),
                        state: FileState::Hidden {
                            until_ms: *until_ms,
                        },
                    },
                };
                return edits.put(&meta_path, &to_json(&meta));
            }
            Change::Write { local, dirty_from } => (local, *dirty_from),
        };
        let io = |e| StoreError::io(local, e);
        let mut f = File::open(local).map_err(io)?;
        let md = f.metadata().map_err(io)?;
        let len = md.len();
        let codec = Codec::shared(&mapping_for(machine, project)?);
        let meta = FileMeta {
            mtime_ms: mtime_ms(&md),
            mode: mode_of(&md),
            len,
            lines: rel.is_lines(),
            state: FileState::Present,
        };
        if rel.is_lines() {
            let continuing = old.is_some_and(|m| m.lines && m.state == FileState::Present);
            let from = match (continuing, old, dirty_from) {
                (true, Some(m), Some(d)) => d.min(m.len).min(len),
                _ => 0,
            };
            let restart =
                chunks::restart_point(from, |a, b| read_range(&mut f, a, b)).map_err(io)?;
            let tail = read_range(&mut f, restart, len).map_err(io)?;
            // Only what is new is reported; the whole rewritten chunk is still redacted below.
            let new = (from.max(restart) - restart) as usize;
            let Some(hits) = self.screen(project, rel, &tail, restart, new) else {
                return Ok(());
            };
            let fresh = chunks::split(&tail, restart);
            // A transcript of one chunk is one blob, as a plain file is (`data`): a tree and
            // its three chunk levels less for each small session. Readers take either form.
            let whole = restart == 0 && fresh.len() <= 1;
            if whole {
                edits.remove(&chunk_root);
                if fresh.is_empty() {
                    edits.remove(&data_path);
                }
            } else {
                let first_stale = if continuing { restart / CHUNK } else { 0 };
                for k in edits.chunks_from(&chunk_root, first_stale)? {
                    if !fresh.iter().any(|c| c.index == k) {
                        edits.remove(&format!("{chunk_root}/{}", layout::chunk_path(k)));
                    }
                }
                // A one-chunk transcript that grows keeps its first chunk, moved under `c/`.
                // `data` beside a chunk 0 is out of date (an older ferry wrote the chunk), as
                // `Store::chunk_ids` reads it.
                let first = format!("{chunk_root}/{}", layout::chunk_path(0));
                if let Some(id) = edits
                    .id_at(&data_path)
                    .filter(|_| restart > 0 && !edits.exists(&first))
                {
                    edits.put_id(&first, id);
                }
                edits.remove(&data_path);
            }
            let mut out = Vec::with_capacity(CHUNK as usize * 2);
            for c in fresh {
                out.clear();
                let at = (c.start - restart) as usize;
                let bytes = &tail[at..(c.end - restart) as usize];
                let bytes = self.redacted(bytes, at, &hits);
                codec.convert_into(
                    crate::codec::Direction::Virtualise,
                    &bytes,
                    Format::Json,
                    &mut out,
                );
                let to = if whole {
                    data_path.clone()
                } else {
                    format!("{chunk_root}/{}", layout::chunk_path(c.index))
                };
                edits.put(&to, &out)?;
            }
        } else {
            let mut bytes = Vec::with_capacity(len as usize);
            f.read_to_end(&mut bytes).map_err(io)?;
            let Some(hits) = self.screen(project, rel, &bytes, 0, 0) else {
                return Ok(());
            };
            let format = Format::for_file_name(rel.as_str());
            edits.remove(&chunk_root);
            edits.put(
                &data_path,
                &codec.virtualise(&self.redacted(&bytes, 0, &hits), format),
            )?;
        }
        edits.put(&meta_path, &to_json(&meta))
    }
}

impl Store {
    /// Scans `bytes` (from offset `at` of the file) for secrets once, records what the policy
    /// does with those that reach past `new` (the content that is new: older ones were reported
    /// when they were), and returns every hit, for [`Store::redacted`]; `None` when the file must be
    /// held back.
    fn screen(
        &self,
        project: &ProjectRecord,
        rel: &RelPath,
        bytes: &[u8],
        at: u64,
        new: usize,
    ) -> Option<Vec<secrets::Hit>> {
        if !self.scan {
            return Some(Vec::new());
        }
        let hits = secrets::scan(bytes);
        // A secret that ends in the new content is new, even if it began in bytes committed
        // before (a line committed half-written); one entirely before is not.
        let fresh: Vec<&secrets::Hit> = hits.iter().filter(|h| h.range.end > new).collect();
        if fresh.is_empty() {
            return Some(hits);
        }
        let action = match self.secrets {
            Policy::Warn => "pushed",
            Policy::Redact => "redacted",
            Policy::Block => "held back",
        };
        for h in fresh {
            let f = Finding {
                project: project.key.clone(),
                path: rel.as_str().to_string(),
                offset: at + h.range.start as u64,
                kind: h.kind.to_string(),
                action: action.to_string(),
                at_ms: self.now_ms(),
            };
            tracing::warn!(project = %f.project, path = %f.path, offset = f.offset, kind = %f.kind, action = %f.action, "a secret in new content");
            self.findings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(f);
        }
        (self.secrets != Policy::Block).then_some(hits)
    }

    /// `bytes` (at offset `from` of what was screened) as committed: with the `hits` inside it
    /// replaced under the `redact` policy, else as they are.
    fn redacted<'b>(
        &self,
        bytes: &'b [u8],
        from: usize,
        hits: &[secrets::Hit],
    ) -> std::borrow::Cow<'b, [u8]> {
        let end = from + bytes.len();
        // A secret across a chunk boundary (a line longer than a chunk) is redacted in both.
        let inside: Vec<secrets::Hit> = hits
            .iter()
            .filter(|h| h.range.start < end && h.range.end > from)
            .map(|h| secrets::Hit {
                kind: h.kind,
                range: h.range.start.max(from) - from..h.range.end.min(end) - from,
            })
            .collect();
        if self.secrets != Policy::Redact || inside.is_empty() {
            std::borrow::Cow::Borrowed(bytes)
        } else {
            std::borrow::Cow::Owned(secrets::redact(bytes, &inside))
        }
    }
}

fn is_local_file(change: &Change, path: &std::path::Path) -> bool {
    matches!(change, Change::Write { local, .. } if local == path)
}

fn read_range(f: &mut File, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; to.saturating_sub(from) as usize];
    f.seek(SeekFrom::Start(from))?;
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("records always serialise");
    out.push(b'\n');
    out
}
