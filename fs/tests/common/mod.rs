//! A rig for the core's tests: this machine (`a`) with an upper layer and a store, and another
//! machine (`b`, `/home/b`) whose commits arrive in the store as if fetched.

#![allow(dead_code)]

use ferry_fs::core::{Fs, FsConfig, Sink};
use ferry_fs::upper::Upper;
use ferry_sync::slug::slug;
use ferry_sync::store::{
    Batch, Change, FileUpdate, MachineRecord, ProjectRecord, REMOTE_PREFIX, RelPath, Store,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the core told the engine.
#[derive(Default)]
pub struct Recorder {
    /// `(project key, rel, change)` in order.
    pub notes: Mutex<Vec<(String, String, Change)>>,
    /// The last report of changes waiting for their project.
    pub waiting: Mutex<Vec<ferry_sync::engine::Waiting>>,
    /// The last report of files the store cannot hold.
    pub unsyncable: Mutex<Vec<ferry_sync::engine::Unsyncable>>,
}

impl Sink for Recorder {
    fn note(&self, project: &ProjectRecord, rel: RelPath, change: Change, _bytes: u64) {
        self.notes
            .lock()
            .unwrap()
            .push((project.key.clone(), rel.as_str().to_string(), change));
    }

    fn waiting(&self, waiting: Vec<ferry_sync::engine::Waiting>) {
        *self.waiting.lock().unwrap() = waiting;
    }

    fn unsyncable(&self, files: Vec<ferry_sync::engine::Unsyncable>) {
        *self.unsyncable.lock().unwrap() = files;
    }
}

/// The other machine's project root, in its own form.
pub const B_ROOT: &str = "/home/b/src/proj";
/// The project's key.
pub const KEY: &str = "github.com/o/proj";

/// The rig.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub a: MachineRecord,
    pub b: MachineRecord,
    pub store: PathBuf,
    pub upper: PathBuf,
    pub fs: Fs,
    pub recorder: Arc<Recorder>,
}

#[path = "../../../sync/tests/common/mod.rs"]
mod sync_common;

/// A Linux machine record with `home` and Claude Code's default dirs.
pub use sync_common::linux_machine as machine;
/// A project record whose cwd is its root.
#[allow(unused_imports)]
pub use sync_common::project;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Under `root`: this machine `a` (HOME `root/home-a`) with an empty upper layer and a fresh
/// store, and machine `b` (HOME `/home/b`). Returns the upper layer, the store, `a` and `b`.
pub fn layout(root: &Path) -> (PathBuf, PathBuf, MachineRecord, MachineRecord) {
    let home = root.join("home-a");
    let upper = home.join(".claude/projects");
    std::fs::create_dir_all(&upper).unwrap();
    let store = root.join("store");
    Store::init(&store).unwrap();
    let a = machine("a", home.to_str().unwrap());
    (upper, store, a, machine("b", "/home/b"))
}

/// A core running as `machine` over the upper layer `upper` and the store `store`, keeping its
/// cache and marks under `dir`.
pub fn core(
    dir: &Path,
    machine: &MachineRecord,
    upper: &Path,
    store: &Path,
) -> (Fs, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let fs = Fs::new(
        Upper::open(upper).unwrap(),
        FsConfig {
            machine: machine.clone(),
            store: store.to_path_buf(),
            cache_dir: dir.join("cache"),
            cache_budget: 64 << 20,
            links: Vec::new(),
            marks: dir.join("marks.json"),
            places: dir.join("places.json"),
        },
        recorder.clone(),
    )
    .unwrap();
    (fs, recorder)
}

impl Rig {
    /// A fresh rig; `setup` may fill the upper layer before the core starts.
    pub fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let (upper, store, a, b) = layout(dir.path());
        let (fs, recorder) = core(dir.path(), &a, &upper, &store);
        Rig {
            dir,
            a,
            b,
            store,
            upper,
            fs,
            recorder,
        }
    }

    /// This machine's root for the other machine's project (no checkout here: HOME-relative).
    pub fn a_root(&self) -> String {
        format!("{}/src/proj", self.a.home)
    }

    /// The slug the project appears under here.
    pub fn slug(&self) -> String {
        slug(&self.a_root())
    }

    /// Machine b commits `bytes` (in b's form) at `rel` with `mtime_ms`, and the commit arrives
    /// here as fetched. The core is refreshed.
    pub fn b_writes(&self, rel: &str, bytes: &[u8], mtime_ms: i64) -> Vec<PathBuf> {
        self.b_writes_many(&[(rel.to_string(), bytes.to_vec(), mtime_ms)])
    }

    /// Machine b commits many files at once (one commit), arriving here as fetched.
    pub fn b_writes_many(&self, files: &[(String, Vec<u8>, i64)]) -> Vec<PathBuf> {
        let changes = files
            .iter()
            .map(|(rel, bytes, mtime_ms)| {
                let src = self.dir.path().join("b-files").join(rel);
                std::fs::create_dir_all(src.parent().unwrap()).unwrap();
                std::fs::write(&src, bytes).unwrap();
                let f = std::fs::File::options().write(true).open(&src).unwrap();
                f.set_modified(UNIX_EPOCH + Duration::from_millis(*mtime_ms as u64))
                    .unwrap();
                (
                    rel.clone(),
                    Change::Write {
                        local: src,
                        dirty_from: None,
                    },
                )
            })
            .collect();
        commit_as_b(&self.store, &self.b, changes);
        self.fs.refresh().unwrap()
    }

    /// Machine b deletes its file at `rel` (a tombstone).
    pub fn b_deletes(&self, rel: &str, at_ms: i64) -> Vec<PathBuf> {
        commit_as_b(
            &self.store,
            &self.b,
            vec![(rel.to_string(), Change::Delete { at_ms })],
        );
        self.fs.refresh().unwrap()
    }

    /// Reads a whole file through the core.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, i32> {
        let size = self.fs.getattr(Path::new(path)).map_err(|e| e.errno)?.size;
        let mut out = Vec::new();
        while (out.len() as u64) < size {
            let chunk = self
                .fs
                .read(Path::new(path), out.len() as u64, 1 << 16)
                .map_err(|e| e.errno)?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// This machine commits its upper-layer files `rels` of `project` (one of its places) on its
    /// own branch, as the engine would, and the core is refreshed.
    pub fn a_commits(&self, project: &ProjectRecord, rels: &[&str]) {
        let files = rels
            .iter()
            .map(|rel| FileUpdate {
                place: project.place(),
                rel: RelPath::new(rel).unwrap(),
                change: Change::Write {
                    local: self.upper.join(&project.slug).join(rel),
                    dirty_from: None,
                },
            })
            .collect();
        let batch = Batch {
            projects: vec![project.clone()],
            files,
        };
        Store::open(&self.store)
            .unwrap()
            .commit(&self.a, &batch)
            .unwrap();
        self.fs.refresh().unwrap();
    }

    /// Stops the core and starts a new one over the same upper layer, store and state.
    pub fn restart(&mut self) {
        let (fs, recorder) = core(self.dir.path(), &self.a, &self.upper, &self.store);
        self.fs = fs;
        self.recorder = recorder;
    }

    /// The changes noted so far, then cleared.
    pub fn take_notes(&self) -> Vec<(String, String, Change)> {
        std::mem::take(&mut *self.recorder.notes.lock().unwrap())
    }
}

/// Commits `changes` on machine `b`'s branch of the store at `store`, and points the fetched
/// ref at it, as if it had arrived from the remote.
pub fn commit_as_b(store: &Path, b: &MachineRecord, changes: Vec<(String, Change)>) {
    commit_as(store, b, B_ROOT, changes);
}

/// Commits `changes` to project [`KEY`], checked out at `root`, on `machine`'s branch, and points
/// the fetched ref at it, as if it had arrived from the remote.
pub fn commit_as(
    store: &Path,
    machine: &MachineRecord,
    root: &str,
    changes: Vec<(String, Change)>,
) {
    let store = Store::open(store).unwrap();
    let project = sync_common::project(KEY, root);
    let batch = Batch {
        projects: vec![project.clone()],
        files: changes
            .into_iter()
            .map(|(rel, change)| FileUpdate {
                place: project.place(),
                rel: RelPath::new(&rel).unwrap(),
                change,
            })
            .collect(),
    };
    let oid = store.commit(machine, &batch).unwrap().unwrap();
    store
        .repo()
        .reference(
            &format!("{REMOTE_PREFIX}{}", machine.id),
            oid,
            true,
            "as if fetched",
        )
        .unwrap();
}

/// A main checkout under this machine's HOME (its `.git` a directory).
pub fn main_checkout(rig: &Rig, rel: &str) -> String {
    let root = format!("{}/{rel}", rig.a.home);
    std::fs::create_dir_all(Path::new(&root).join(".git")).unwrap();
    root
}

/// A worktree of `main` where Claude Code makes them (its `.git` a file).
pub fn worktree(main: &str, name: &str) -> String {
    let root = format!("{main}/.claude/worktrees/{name}");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        Path::new(&root).join(".git"),
        format!("gitdir: {main}/.git/worktrees/{name}\n"),
    )
    .unwrap();
    root
}

/// A main checkout of the project and its worktree `feature`, with their project records: the
/// two places one project has on this machine.
pub fn two_places(rig: &Rig) -> (String, String, ProjectRecord, ProjectRecord) {
    let main = main_checkout(rig, "code/proj");
    let wt = worktree(&main, "feature");
    let (pm, pw) = (project(KEY, &main), project(KEY, &wt));
    (main, wt, pm, pw)
}

/// A transcript line of about 2 KB naming paths under `cwd` (the benches' sessions).
pub fn long_line(uuid: &str, cwd: &str) -> String {
    let text = "the codec expands every path of the session ".repeat(40);
    format!("{{\"uuid\":\"{uuid}\",\"cwd\":\"{cwd}\",\"text\":\"{text} {cwd}/main.rs\"}}\n")
}

/// The median of `v` (the benches' figures).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
