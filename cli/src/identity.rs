//! A machine's identity against copies of its state dir (issue 27). People move to a new laptop
//! by restoring a backup of their home, and clone disks and VMs: the state dir, and the machine
//! id in it, travel along. Two installs writing one branch force-push it in turns, and other
//! machines see only whichever pushed last. So the state records where it was made: the OS's
//! machine identity (machine-id, platform UUID or MachineGuid), the hostname, and the state dir's own device
//! and inode. A state dir that finds itself elsewhere (another machine identity, or another
//! inode: a copy) takes a new machine id before anything commits or pushes; the upper layer is
//! then committed under the new branch by the start-up reconcile, and `ferry status` says what
//! happened. A clone that keeps both its machine identity and its inodes (a VM image) is told
//! apart by what it pushes: each commit names its engine run, and a branch on the remote with
//! commits of runs this install never had was written by a twin; the engine then stops pushing
//! and leaves a marker, and the next start takes a new id here.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where a state dir was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The OS's machine identity, where one can be read.
    #[serde(default)]
    pub host_id: Option<String>,
    /// The hostname then (informative: renaming a computer is no copy).
    #[serde(default)]
    pub hostname: String,
    /// The state dir's device.
    pub dev: u64,
    /// The state dir's inode: a copy, a restore or an rsync makes a new one.
    pub inode: u64,
}

/// What a state dir that found itself copied did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    /// The machine id it had.
    pub from_id: String,
    /// The machine name it had.
    pub from_name: String,
    /// When it noticed (ms since the epoch).
    pub at_ms: i64,
    /// Why it took itself for a copy.
    pub why: String,
}

/// What `ferry init --as-machine NAME` took over: a reinstall continuing an old machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continued {
    /// The machine's name on the remote then.
    pub name: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// Where the state dir `dir` is now.
pub fn here(dir: &Path) -> Option<Origin> {
    let (dev, inode) = ferry_platform::identity::dir_identity(dir)?;
    Some(Origin {
        host_id: ferry_platform::identity::machine_identity(),
        hostname: hostname(),
        dev,
        inode,
    })
}

/// Why a state dir recorded at `then` and found at `now` is a copy, if it is one.
pub fn why_copied(then: &Origin, now: &Origin) -> Option<String> {
    match (&then.host_id, &now.host_id) {
        (Some(a), Some(b)) if a != b => {
            return Some(format!(
                "the state dir was made on another computer (machine identity {a}, host {}); this is {b} ({})",
                then.hostname, now.hostname
            ));
        }
        _ => {}
    }
    ((then.dev, then.inode) != (now.dev, now.inode)).then(|| {
        "the state dir is a copy (a restored backup, a synced or cloned home): it is not the directory this machine id was made in".to_string()
    })
}

/// What the twin marker at `path` says, in words, if there is one.
pub fn twin_marker(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let marker: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Some(match marker["other_run"].as_str() {
        Some(run) => format!("another install wrote this machine's branch (commits of run {run})"),
        None => "another install wrote this machine's branch".to_string(),
    })
}

/// What a state dir learns about itself at start: where it is now, and why it is a copy of
/// another install's, if it is one.
pub struct Verdict {
    /// Where it is now (`None` where that cannot be read).
    pub now: Option<Origin>,
    /// Why it is a copy, if it is one.
    pub copied: Option<String>,
}

/// Judges a state dir at `dir` that recorded `recorded` as its origin, with the twin marker of
/// its last run at `twin` (acted on only once no daemon runs with the old id).
pub fn judge(recorded: Option<&Origin>, dir: &Path, twin: &Path, daemon_running: bool) -> Verdict {
    let Some(now) = here(dir) else {
        return Verdict {
            now: None,
            copied: None,
        };
    };
    // A twin found on the remote by the last run (see the sync engine's `twin_found`), acted
    // on by the first command once no daemon runs with the old id.
    let twin_found = twin_marker(twin)
        .filter(|_| !daemon_running)
        .map(|why| format!("{why}: a clone of this disk or VM"));
    let copied = twin_found.or_else(|| recorded.and_then(|then| why_copied(then, &now)));
    Verdict {
        now: Some(now),
        copied,
    }
}

/// A random machine id: 16 hex digits.
pub fn new_machine_id() -> String {
    ferry_sync::store::random_id()
}

/// The host's name, the default machine name.
pub fn hostname() -> String {
    #[cfg(unix)]
    if let Ok(h) = nix::unistd::gethostname()
        && let Some(h) = h.to_str().filter(|h| !h.is_empty())
    {
        return h.to_string();
    }
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "machine".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(host: Option<&str>, inode: u64) -> Origin {
        Origin {
            host_id: host.map(str::to_string),
            hostname: "h".into(),
            dev: 1,
            inode,
        }
    }

    #[test]
    fn another_computer_or_another_inode_is_a_copy_and_a_rename_is_not() {
        let base = origin(Some("aaa"), 7);
        assert_eq!(why_copied(&base, &base), None);
        let renamed = Origin {
            hostname: "new-name".into(),
            ..base.clone()
        };
        assert_eq!(why_copied(&base, &renamed), None, "a renamed computer");
        assert!(
            why_copied(&base, &origin(Some("bbb"), 7)).is_some(),
            "a disk moved"
        );
        assert!(
            why_copied(&base, &origin(Some("aaa"), 8)).is_some(),
            "a copy here"
        );
        assert!(why_copied(&origin(None, 7), &origin(None, 9)).is_some());
    }
}
