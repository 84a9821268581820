//! The portable store: a bare git repository with one branch per machine, holding only portable
//! form. This machine commits and pushes only its own branch (`refs/heads/machines/<id>`), so
//! pushes never conflict; other machines' branches arrive by fetch under
//! `refs/remotes/origin/machines/<id>`, and the view merges them deterministically.

mod arrived;
mod chunks;
mod compact;
mod create;
mod fold;
mod layout;
mod packed;
#[cfg(test)]
pub(crate) use packed::write_objects;
pub(crate) use packed::{Body, object_id, write_bodies};
mod read;
mod records;
pub(crate) mod shallow;
mod staged_odb;
mod write;

pub use chunks::CHUNK;
pub use compact::CompactStats;
pub use fold::{FOLDED_TRAILER, FoldStats, SEEN_MARGIN_MS, fold_pending_ref};
/// The id of a git object: what a tree or commit is known by.
pub use git2::Oid;
pub use layout::{RelPath, fnv1a, fnv1a_parts, place_dir, project_dir, random_id};
pub use read::{FileEntry, HistoryEntry, MAX_FILE_BYTES, MAX_FILES, ProjectDir, Snapshot};
pub use records::{
    FileMeta, FileState, GitState, MachineRecord, PlaceId, ProjectRecord, mapping_for,
};
pub use write::{Batch, Change, FileUpdate};

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store, each with what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// git itself failed (I/O, corrupt object, lock held).
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A path that cannot be in the store (escaping, malformed, too deep).
    #[error("bad path {0}")]
    BadPath(String),
    /// A remote's content breaks the store's rules; the entry is skipped.
    #[error("rejected content in {branch} at {path}: {why}")]
    Rejected {
        /// The machine branch.
        branch: String,
        /// Where in its tree.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// A record could not be parsed.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which record.
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A mapping value of a record is unusable.
    #[error(transparent)]
    Mapping(#[from] crate::codec::MappingError),
    /// A place named by an update has no record.
    #[error("no project record for {0}; pass it in the batch")]
    UnknownProject(String),
    /// A fetch's pack names an object that neither it nor the store holds.
    #[error("the pack the remote sent lacks {missing}, which {by} names")]
    Incomplete {
        /// The object missing.
        missing: git2::Oid,
        /// What names it (`commit <id>`, `tree <id>`, `the remote's branch`).
        by: String,
    },
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The local bare repository.
pub struct Store {
    repo: git2::Repository,
    /// What a commit does with secrets in new content.
    secrets: crate::secrets::Policy,
    /// Whether new content is scanned at all (always, but for measuring what scanning costs).
    scan: bool,
    /// Secrets found by commits since the last [`Store::take_findings`].
    findings: std::sync::Mutex<Vec<crate::secrets::Finding>>,
    /// The engine run that commits, recorded in each commit (see [`RUN_TRAILER`]).
    run: Option<String>,
    /// The time commits are dated (ms), where a bench sets it; else the system's.
    clock: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

/// The trailer that names the engine run that made a commit: a machine's branch holding a
/// commit of a run its install never had was written by a twin (a cloned disk or VM).
pub const RUN_TRAILER: &str = "ferry-run: ";

/// The ref of a machine's own branch in its own store.
pub fn own_ref(machine_id: &str) -> String {
    format!("refs/heads/machines/{machine_id}")
}

/// Where other machines' branches land after a fetch.
pub const REMOTE_PREFIX: &str = "refs/remotes/origin/machines/";

impl Store {
    /// `heads` and every commit before them, newest first. A store that fetched only the tips
    /// of other machines' branches (see `engine::History`) ends their history there: libgit2's
    /// revision walk would look for the parents it lacks, so such a store is walked commit by
    /// commit, each read with the parents the store records for it.
    pub fn commits(&self, heads: &[git2::Oid]) -> Result<Vec<git2::Oid>, StoreError> {
        if !self.repo.is_shallow() {
            let mut walk = self.repo.revwalk()?;
            for &h in heads {
                walk.push(h)?;
            }
            walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
            return Ok(walk.collect::<Result<_, _>>()?);
        }
        let mut queue = std::collections::BinaryHeap::new();
        let mut seen = std::collections::HashSet::new();
        for &h in heads {
            if seen.insert(h) {
                queue.push((self.repo.find_commit(h)?.time().seconds(), h));
            }
        }
        let mut out = Vec::new();
        while let Some((_, id)) = queue.pop() {
            out.push(id);
            for parent in self.repo.find_commit(id)?.parents() {
                if seen.insert(parent.id()) {
                    queue.push((parent.time().seconds(), parent.id()));
                }
            }
        }
        Ok(out)
    }

    /// Records `head` as the remote's copy of `machine_id`'s branch, after a push of it.
    pub fn record_pushed(&self, machine_id: &str, head: git2::Oid) -> Result<(), StoreError> {
        let tracking = format!("{REMOTE_PREFIX}{machine_id}");
        self.repo.reference(&tracking, head, true, "ferry push")?;
        self.fold_pushed(machine_id, head)
    }
}

/// Most bytes libgit2 keeps in its process-wide cache of parsed objects (commits and tags
/// here). Its default, 256 MB, lets a daemon with 10,000 sessions grow past DESIGN.md's memory
/// bound.
const OBJECT_CACHE_BYTES: isize = 2 << 20;

/// The size of one memory-mapped window of a pack (see [`bound_object_cache`]).
const MAP_WINDOW_BYTES: usize = 8 << 20;

/// Bounds libgit2's object cache, once per process, and keeps trees out of it. A refresh, a
/// read and a push each walk tens of thousands of small trees at 10,000 sessions; cached, they
/// held 40 MB of the daemon's 120 MB heap peak (heaptrack), and the cache's size bound counts their
/// raw bytes, not their parsed form. Parsing a tree again costs less than that memory: file
/// records are cached parsed (see `read.rs`), and CPU per change fell with this.
///
/// Also stops libgit2 hashing every object again as it reads it, which was as much CPU as
/// inflating it when the view expands a transcript. Every object here was hashed when it
/// arrived (git's index-pack names what a fetch brings by its hash) or was made here, and
/// zlib's checksum still catches an object damaged on disk, as in git, which does not hash on
/// read either.
fn bound_object_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: sets process-wide options in libgit2 before this process opens a store.
    ONCE.call_once(|| unsafe {
        let _ = git2::opts::set_cache_max_size(OBJECT_CACHE_BYTES);
        let _ = git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 0);
        git2::opts::strict_hash_verification(false);
        // Packs are read through memory maps, whose pages count in the daemon's resident size
        // (a new machine's first look at every session touches its whole store): at most 32 MB
        // of them mapped at once, in windows of 8 MB, not libgit2's 1 GB windows up to 8 GB.
        let _ = git2::opts::set_mwindow_size(MAP_WINDOW_BYTES);
        let _ = git2::opts::set_mwindow_mapped_limit(4 * MAP_WINDOW_BYTES);
    });
}

impl Store {
    fn wrap(repo: git2::Repository) -> Store {
        bound_object_cache();
        Store {
            repo,
            secrets: crate::secrets::Policy::default(),
            scan: true,
            findings: std::sync::Mutex::new(Vec::new()),
            run: None,
            clock: None,
        }
    }

    /// This store, with commits dated by `clock` (ms since the epoch) instead of the system's
    /// time: only for the months-of-use bench (`tests/benches/months.rs`), which compresses 90
    /// days into minutes; ferry itself always dates commits by the system's clock.
    #[doc(hidden)]
    pub fn with_clock(mut self, clock: std::sync::Arc<std::sync::atomic::AtomicI64>) -> Store {
        self.clock = Some(clock);
        self
    }

    /// Now, in ms since the epoch, as commits are dated.
    fn now_ms(&self) -> i64 {
        match &self.clock {
            Some(c) => c.load(std::sync::atomic::Ordering::Relaxed),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// The signature of `machine`'s commits, dated now.
    fn signature(&self, machine: &MachineRecord) -> Result<git2::Signature<'static>, StoreError> {
        let email = format!("{}@ferry", machine.id);
        Ok(match &self.clock {
            Some(_) => git2::Signature::new(
                &machine.name,
                &email,
                &git2::Time::new(self.now_ms().div_euclid(1000), 0),
            )?,
            None => git2::Signature::now(&machine.name, &email)?,
        })
    }

    /// This store, with commits recording the engine run `run`.
    pub fn with_run(mut self, run: &str) -> Store {
        self.run = Some(run.to_string());
        self
    }

    /// The runs that made the commits of this machine's branch on the remote that its own
    /// branch here does not have (`None` for a commit that names no run: an older release's,
    /// or history rewritten by hand).
    pub fn foreign_runs(
        &self,
        machine_id: &str,
    ) -> Result<std::collections::BTreeSet<Option<String>>, StoreError> {
        let mut out = std::collections::BTreeSet::new();
        let (Some(remote), local) = (self.head(machine_id, false)?, self.head(machine_id, true)?)
        else {
            return Ok(out);
        };
        let mut walk = self.repo.revwalk()?;
        walk.push(remote)?;
        // Neither this branch nor, until it is pushed, what a fold of it replaced.
        for l in local.into_iter().chain(self.fold_pending(machine_id)?) {
            walk.hide(l)?;
        }
        for id in walk.take(10_000) {
            let commit = self.repo.find_commit(id?)?;
            let run = commit
                .message()
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(RUN_TRAILER))
                .map(|r| r.trim().to_string());
            out.insert(run);
        }
        Ok(out)
    }

    /// This store, with commits applying `policy` to secrets in new content.
    pub fn with_secrets(mut self, policy: crate::secrets::Policy) -> Store {
        self.secrets = policy;
        self
    }

    /// This store with no secret scanning: only for the bench that measures what scanning adds
    /// to a commit (`sync/benches/secrets.rs`); ferry itself always scans.
    #[doc(hidden)]
    pub fn without_scanning(mut self) -> Store {
        self.scan = false;
        self
    }

    /// The secrets found by commits since the last call.
    pub fn take_findings(&self) -> Vec<crate::secrets::Finding> {
        std::mem::take(&mut *self.findings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Creates the store at `path` (a bare repository, private to the user), or opens it. A
    /// new store appears at `path` whole or not at all, so a kill while it is being created
    /// leaves nothing a later start cannot open.
    pub fn init(path: &Path) -> Result<Store, StoreError> {
        let repo = match git2::Repository::open_bare(path) {
            Ok(r) => r,
            Err(_) if !path.exists() => create::whole(path)?,
            Err(_) => create::completed(path)?,
        };
        create::private(path)?;
        Ok(Store::wrap(repo))
    }

    /// Removes lock files a killed process left behind (`refs/**/*.lock`, `packed-refs.lock`).
    /// libgit2 refuses to update a ref while its lock exists, so after a `kill -9` mid-commit
    /// every later commit would fail. Only call this while no other process uses the store: the
    /// daemon owns its store alone. Returns how many locks were removed.
    pub fn recover_after_crash(&self) -> Result<usize, StoreError> {
        fn sweep(dir: &Path, removed: &mut usize) -> Result<(), StoreError> {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StoreError::io(dir, e)),
            };
            for e in entries.flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    sweep(&path, removed)?;
                } else if path.extension().is_some_and(|x| x == "lock") {
                    std::fs::remove_file(&path).map_err(|err| StoreError::io(&path, err))?;
                    *removed += 1;
                }
            }
            Ok(())
        }
        let mut removed = 0;
        sweep(&self.repo.path().join("refs"), &mut removed)?;
        let packed = self.repo.path().join("packed-refs.lock");
        if std::fs::remove_file(&packed).is_ok() {
            removed += 1;
        }
        Ok(removed)
    }

    /// Opens an existing store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store::wrap(git2::Repository::open_bare(path)?))
    }

    /// The underlying repository, for the sync engine's fetch and push.
    pub fn repo(&self) -> &git2::Repository {
        &self.repo
    }

    /// The newest commit of a machine's branch: own branch for `own`, else the fetched one.
    pub fn head(&self, machine_id: &str, own: bool) -> Result<Option<git2::Oid>, StoreError> {
        let name = if own {
            own_ref(machine_id)
        } else {
            format!("{REMOTE_PREFIX}{machine_id}")
        };
        match self.repo.refname_to_id(&name) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The ids of every machine whose branch has been fetched (not this one).
    pub fn remote_machines(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for r in self.repo.references_glob(&format!("{REMOTE_PREFIX}*"))? {
            let r = r?;
            let id = r.name().ok().and_then(|n| n.strip_prefix(REMOTE_PREFIX));
            if let Some(id) = id.filter(|id| layout::check_name(id).is_ok()) {
                out.push(id.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Per other machine fetched, the time of its head commit in its own clock (ms): what a
    /// commit records as seen (`MachineRecord::seen_ms`). At most the 64 newest, so a remote
    /// with thousands of branches cannot bloat the record.
    pub fn seen_heads(
        &self,
        own: &str,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let mut seen = Vec::new();
        for id in self.remote_machines()? {
            if id == own {
                continue;
            }
            if let Some(head) = self.head(&id, false)?
                && let Ok(c) = self.repo.find_commit(head)
            {
                seen.push((c.time().seconds().saturating_mul(1000), id));
            }
        }
        seen.sort_unstable_by(|a, b| b.cmp(a));
        Ok(seen.into_iter().take(64).map(|(t, id)| (id, t)).collect())
    }
}
