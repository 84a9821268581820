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
    /// Why the last commit failed, if it did: the changes stay in the directory and are
    /// committed at the next try.
    #[serde(default)]
    pub commit_error: Option<String>,
    /// Whether a remote was set for this sync or stop (a remote set while mounted is not the
    /// running daemon's until the next mount).
    #[serde(default)]
    pub had_remote: bool,
    /// Whether the push sent commits the remote lacked.
    #[serde(default)]
    pub sent: bool,
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
            commit_error: r.commit_error,
            had_remote: r.had_remote,
            sent: r.sent,
            at_ms: now_ms(),
            ..Report::default()
        }
    }
}

impl Report {
    /// The exit code of the command that printed it: 1 when the commit failed, 3 when the
    /// remote was not reached or did not take the push.
    pub fn exit_code(&self) -> crate::ui::Exit {
        if self.commit_error.is_some() {
            return crate::ui::Kind::Failed.code();
        }
        match self.remote_ok {
            Some(false) => crate::ui::Kind::RemoteUnreachable.code(),
            _ => 0,
        }
    }

    /// What to say of a failed commit, if one failed.
    pub fn commit_said(&self, dir: &std::path::Path) -> Option<String> {
        self.commit_error.as_ref().map(|e| {
            format!(
                "the last commit failed ({e}); every change is safe in {} and is committed at the next try (`ferry sync`, or the next mount)",
                dir.display()
            )
        })
    }

    /// The commit, short.
    pub fn short_commit(&self) -> Option<&str> {
        self.committed.as_deref().map(|c| &c[..c.len().min(12)])
    }
}
