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

use crate::state::{Config, State, new_machine_id};
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
        hostname: crate::state::hostname(),
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

/// `config` as this state dir may use it: recorded where it is if it was not yet, or with a
/// new machine id (and saved) if it is a copy of another install's.
pub fn check(st: &State, mut config: Config) -> anyhow::Result<Config> {
    let Some(now) = here(&st.dir) else {
        return Ok(config);
    };
    // A twin found on the remote by the last run (see the sync engine's `twin_found`), acted
    // on by the first command once no daemon runs with the old id.
    let twin = st.runs().with_file_name(ferry_sync::engine::TWIN_FILE);
    let twin_found = twin_marker(&twin)
        .filter(|_| !crate::daemon::lock_held(st))
        .map(|why| format!("{why}: a clone of this disk or VM"));
    let why = twin_found.or_else(|| match &config.origin {
        None => None,
        Some(then) => why_copied(then, &now),
    });
    if config.origin.is_some() && why.is_none() {
        return Ok(config);
    }
    if let Some(why) = why {
        let new_id = new_machine_id();
        let short = &new_id[..4];
        tracing::warn!(old = %config.machine_id, new = %new_id, why, "this state dir is a copy; taking a new machine id");
        config.copied = Some(Copied {
            from_id: config.machine_id.clone(),
            from_name: config.machine_name.clone(),
            at_ms: ferry_sync::engine::now_ms(),
            why,
        });
        config.machine_name = format!("{}-{short}", config.machine_name);
        config.machine_id = new_id;
        // The places chosen belong to the computer the copy came from.
        let _ = std::fs::remove_file(st.places());
        let _ = std::fs::remove_file(&twin);
    }
    config.origin = Some(now);
    st.save(&config)?;
    Ok(config)
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
