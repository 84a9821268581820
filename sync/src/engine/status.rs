//! What the engine reports (the future `ferry status --json`).

use serde::{Deserialize, Serialize};

/// One machine as this machine's store knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineStatus {
    /// Machine id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it is this machine.
    pub this_machine: bool,
    /// The newest commit known here.
    pub head: Option<String>,
    /// When that commit was made (ms since the epoch): the machine's last commit.
    pub last_commit_ms: Option<i64>,
    /// For this machine: commits not yet on the remote.
    pub ahead: Option<usize>,
}

/// The engine's state, cheap to copy out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The remote, credentials removed; `None` when working locally only.
    pub remote: Option<String>,
    /// Whether the last network operation reached the remote (`None`: not tried yet).
    pub remote_reachable: Option<bool>,
    /// Every machine known here.
    pub machines: Vec<MachineStatus>,
    /// Paths changed locally and not yet committed.
    pub pending_paths: usize,
    /// Bytes those changes cover, as far as known.
    pub pending_bytes: u64,
    /// Last successful commit, fetch and push (ms since the epoch).
    pub last_commit_ms: Option<i64>,
    /// Last successful fetch.
    pub last_fetch_ms: Option<i64>,
    /// Last successful push.
    pub last_push_ms: Option<i64>,
    /// The last error and when it happened.
    pub last_error: Option<(i64, String)>,
    /// Remote entries skipped as invalid, in every branch as last fetched (and what failed to
    /// open at the last fetch).
    pub rejected: Vec<String>,
    /// Secrets found in new content (the newest [`MAX_FINDINGS`]), and what was done.
    #[serde(default)]
    pub secrets: Vec<crate::secrets::Finding>,
    /// Changes held back until their project is known, per project directory.
    #[serde(default)]
    pub waiting: Vec<Waiting>,
    /// Files written here that the store cannot hold (a name that is not UTF-8 or has a
    /// character Windows forbids, a tree too deep): they stay on this machine only.
    #[serde(default)]
    pub unsyncable: Vec<Unsyncable>,
    /// How fetch and push reach the remote (`git version …`, or libgit2 and why).
    #[serde(default)]
    pub transport: Option<String>,
    /// Set when another install writes this machine's branch (a twin): what happened and what
    /// to run.
    #[serde(default)]
    pub twin: Option<String>,
    /// Set when this machine's history is not folded although a horizon is set: why.
    #[serde(default)]
    pub history: Option<String>,
    /// Why transfers are paused until the user acts (a refused login, an unknown host key), and
    /// what to do; `ferry sync` tries again at once.
    #[serde(default)]
    pub paused: Option<String>,
    /// The fetch or push running now, and how far it has got.
    #[serde(default)]
    pub transfer: Option<Transfer>,
}

/// A fetch or push the engine is running, for a progress bar and `ferry status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// `fetch` or `push`.
    pub op: String,
    /// Objects and bytes so far.
    #[serde(flatten)]
    pub so_far: super::remote::Transferred,
}

/// Changes in one project directory that wait for its project to be known: they are not pending
/// for the engine yet, but they are not lost either.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The project directory (slug) under `projects/`.
    pub dir: String,
    /// How many paths changed there.
    pub paths: usize,
    /// Why they wait, and when they go.
    pub why: String,
}

/// A file that stays on this machine because the store cannot hold its path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsyncable {
    /// Its path under `projects/`.
    pub path: String,
    /// Why the store cannot hold it.
    pub why: String,
}

/// Most secret findings the status keeps.
pub const MAX_FINDINGS: usize = 100;

impl Status {
    /// Adds `found` to the findings, each place and kind once, keeping the newest.
    pub fn add_findings(&mut self, found: Vec<crate::secrets::Finding>) {
        for f in found {
            self.secrets.retain(|o| {
                (&o.project, &o.path, o.offset, &o.kind) != (&f.project, &f.path, f.offset, &f.kind)
            });
            self.secrets.push(f);
        }
        let excess = self.secrets.len().saturating_sub(MAX_FINDINGS);
        self.secrets.drain(..excess);
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
