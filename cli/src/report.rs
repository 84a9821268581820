//! What a sync or a stop did: one report, printed by `ferry sync` and `ferry unmount`, sent by
//! the daemon over its control socket, and kept in the state dir (`sync-report.json` for the
//! last `ferry sync`, `last-unmount.json` for the last stop).

use ferry_sync::engine::{SyncReport, Waiting, now_ms};
use serde::{Deserialize, Serialize};

/// What one sync or stop did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// The commit made, if anything was pending.
    pub committed: Option<String>,
    /// Whether the remote took the fetch and push (`None`: no remote, or nothing was ever
    /// committed here to push, so it was not contacted).
    pub remote_ok: Option<bool>,
    /// Why not.
    pub error: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Changes held back until their project is known (a daemon's only).
    #[serde(default)]
    pub waiting: Vec<Waiting>,
    /// A stop: files other processes held open in the mount when it was asked to stop, served
    /// until they closed.
    #[serde(default)]
    pub still_open: Vec<String>,
    /// A stop: whether some were still open when the deadline passed (their next access
    /// fails).
    #[serde(default)]
    pub open_past_deadline: bool,
}

impl From<SyncReport> for Report {
    fn from(r: SyncReport) -> Report {
        Report {
            committed: r.committed,
            remote_ok: r.remote_ok,
            error: r.error,
            at_ms: now_ms(),
            ..Report::default()
        }
    }
}

impl Report {
    /// The exit code of the command that printed it: 3 when the remote was not reached or did
    /// not take the push.
    pub fn exit_code(&self) -> crate::ui::Exit {
        match self.remote_ok {
            Some(false) => crate::ui::Kind::RemoteUnreachable.code(),
            _ => 0,
        }
    }

    /// The commit, short.
    pub fn short_commit(&self) -> Option<&str> {
        self.committed.as_deref().map(|c| &c[..c.len().min(12)])
    }
}
