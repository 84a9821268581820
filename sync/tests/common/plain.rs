//! A plain store whose one project and machine plant strings only it holds (a path, a
//! project's remote, a prompt, file names, a machine's name, a session id, a branch): what the
//! encrypted-store tests seal, push and look for on the remote.

use super::git;
use ferry_sync::store::{
    Batch, Change, FileUpdate, GitState, MachineRecord, ProjectRecord, RelPath, Store,
};
use git2::Oid;
use std::path::{Path, PathBuf};

/// The planted session's file name.
pub const SESSION: &str = "5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44.jsonl";

/// A plain store, its machine and project, and the project's dir of sessions.
pub struct Plain {
    _tmp: tempfile::TempDir,
    /// Its store.
    pub store: Store,
    /// Its machine.
    pub machine: MachineRecord,
    project: ProjectRecord,
    upper: PathBuf,
}

/// A new plain store that plants the corpus in its records.
pub fn plain() -> Plain {
    let tmp = tempfile::tempdir().unwrap();
    let home = "/home/marguerite";
    let mut machine = super::linux_machine("0a1b2c3d4e5f6071", home);
    machine.name = "marguerite-thinkpad".into();
    let mut project = super::project(
        "github.com/zanzibar-corp/quokka-ledger",
        &format!("{home}/src/quokka-ledger"),
    );
    project.git = Some(GitState {
        branch: Some("feature/ocelot".into()),
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        dirty: vec!["src/pelican-report.rs".into()],
    });
    let upper = tmp.path().join("projects").join(&project.slug);
    std::fs::create_dir_all(upper.join("5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44/tool-results"))
        .unwrap();
    let store = Store::init(&tmp.path().join("store.git")).unwrap();
    Plain {
        _tmp: tmp,
        store,
        machine,
        project,
        upper,
    }
}

impl Plain {
    /// Writes `text` as the whole of `rel` and commits it (`from`: where it changed).
    pub fn write(&self, rel: &str, text: &str, from: Option<u64>) -> Oid {
        let local = self.upper.join(rel);
        std::fs::write(&local, text).unwrap();
        let batch = Batch {
            projects: vec![self.project.clone()],
            files: vec![FileUpdate {
                place: self.project.place(),
                rel: RelPath::new(rel).unwrap(),
                change: Change::Write {
                    local,
                    dirty_from: from,
                },
            }],
        };
        self.store.commit(&self.machine, &batch).unwrap().unwrap()
    }
}

/// A transcript of `n` lines that plants the corpus.
pub fn transcript(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"type\":\"user\",\"uuid\":\"u{i:06}\",\"sessionId\":\"5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44\",\"cwd\":\"/home/marguerite/src/quokka-ledger\",\"message\":{{\"content\":\"please refactor the flamingo invoices, turn {i} of many, with some padding to make the lines long enough to fill chunks {pad}\"}}}}\n",
                pad = "x".repeat(400)
            )
        })
        .collect()
}

/// A new bare repository in `dir`: a remote.
pub fn bare(dir: &Path) -> PathBuf {
    let remote = dir.join("remote.git");
    git(dir, &["init", "-q", "--bare", remote.to_str().unwrap()]);
    remote
}
