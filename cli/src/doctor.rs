//! `ferry doctor [--json]`: every check ferry can make of this install, each with what it found
//! and what to do next. Where `ferry status` shows the state, this says whether it is healthy:
//! the state dir private to this user, a machine identity of its own (a copy, a twin), the mount
//! live and FUSE there, git usable, the remote answering now (the one check that uses the
//! network), syncing without errors; and around it (`install.rs`) the hooks and the binary they
//! name, the login service, Claude Code, the store's integrity, free disk and secrets found.
//! Exit code 1 when any check failed.

mod install;

use crate::command::Ctx;
use crate::state::{self, State};
use crate::status::ago;
use anyhow::Result;
use ferry_platform::mount::{MountState, mount_state};
use ferry_sync::engine::{GitCli, redact};
use serde::Serialize;
use std::path::Path;

/// How a check came out, from good to bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As it should be.
    Ok,
    /// Worth knowing; nothing to fix.
    Note,
    /// Works, but not as well as it could: the next step says how.
    Warn,
    /// Broken: the next step says how to fix it.
    Fail,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// What was checked: `state`, `identity`, `mount`, `fuse`, `git`, `remote`, `sync`,
    /// `hooks`, `service`, `claude`, `store`, `disk` or `secrets`.
    pub area: &'static str,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub says: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn finding(area: &'static str, level: Level, says: String, next: Option<&str>) -> Finding {
    Finding {
        area,
        level,
        says,
        next: next.map(str::to_string),
    }
}

/// The state dir and the store: readable by this user only, since they hold transcripts.
fn state_dir(st: &State) -> Vec<Finding> {
    let mut out = Vec::new();
    #[cfg(unix)]
    for dir in [st.dir.clone(), st.store()] {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(md) = std::fs::metadata(&dir)
            && md.permissions().mode() & 0o077 != 0
        {
            out.push(finding(
                "state",
                Level::Fail,
                format!(
                    "{} can be read by other users (mode {:o}), and it holds your transcripts",
                    dir.display(),
                    md.permissions().mode() & 0o777
                ),
                Some(&format!("chmod -R go-rwx {}", dir.display())),
            ));
        }
    }
    if out.is_empty() {
        // Only Unix modes are checked; Windows keeps a profile's files to its user by ACLs.
        let private = if cfg!(unix) {
            " is private to this user;"
        } else {
            ";"
        };
        out.push(finding(
            "state",
            Level::Ok,
            format!(
                "{}{private} the log is {}",
                st.dir.display(),
                st.log().display()
            ),
            None,
        ));
    }
    out
}

/// Other machines as identity sees them: retired ones, and one with this machine's name.
fn other_machines(st: &State, config: &state::Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok(rows) = crate::machines::rows(st) else {
        return out;
    };
    let alike: Vec<&str> = rows
        .iter()
        .filter(|r| !r.this_machine && r.name == config.machine_name)
        .map(|r| r.id.as_str())
        .collect();
    for r in rows.iter().filter(|r| r.retired_ms.is_some()) {
        out.push(finding(
            "identity",
            Level::Note,
            format!(
                "machine {} ({}) was retired {}: its sessions stay as history, and no lag is reported for it",
                r.name,
                r.id,
                ago(r.retired_ms)
            ),
            None,
        ));
    }
    if !alike.is_empty() {
        out.push(finding(
            "identity",
            Level::Note,
            format!(
                "another machine is called {} too ({}): listings cannot tell them apart",
                config.machine_name,
                alike.join(", ")
            ),
            Some("`ferry machines rename NAME` on one of them"),
        ));
    }
    out
}

/// This install's machine identity: a copy noticed, a twin found, names shared with another.
fn identity(st: &State, config: &state::Config) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(c) = &config.copied {
        out.push(finding(
            "identity",
            Level::Note,
            format!(
                "this state dir is a copy of machine {} ({}), noticed {}: {}; it took the new id {} and its own files went to that id's branch, so the two never write one branch",
                c.from_name,
                c.from_id,
                ago(Some(c.at_ms)),
                c.why,
                config.machine_id
            ),
            Some(&format!(
                "`ferry machines rename NAME` gives it a name of its own (now {})",
                config.machine_name
            )),
        ));
    }
    if let Some(c) = &config.continued {
        out.push(finding(
            "identity",
            Level::Note,
            format!(
                "this install continues machine {} ({}) since {} (`ferry init --as-machine`): its branch goes on from where the old install left it",
                c.name,
                config.machine_id,
                ago(Some(c.at_ms))
            ),
            None,
        ));
    }
    // Still there only while the daemon that found the twin runs: the first command after it
    // takes the new id (`State::checked`).
    if let Some(why) =
        crate::identity::twin_marker(&st.runs().with_file_name(ferry_sync::engine::TWIN_FILE))
    {
        out.push(finding(
            "identity",
            Level::Warn,
            format!(
                "{why}: a clone of this disk or VM. Pushes from here stopped; nothing written here is lost"
            ),
            Some(
                "`ferry unmount && ferry mount` gives this install a new id, and its lines go out under it",
            ),
        ));
    }
    out.extend(other_machines(st, config));
    if out.is_empty() {
        out.push(finding(
            "identity",
            Level::Ok,
            format!(
                "machine {} ({}) was made here, and no other install was found writing its branch",
                config.machine_name, config.machine_id
            ),
            None,
        ));
    }
    out
}

/// The view: mounted where Claude Code in this environment looks, by a live daemon.
fn mount(st: &State, mountpoint: &Path, daemon: Option<i32>) -> Vec<Finding> {
    let shown = mountpoint.display();
    let mut out = vec![match (mount_state(mountpoint), daemon) {
        (MountState::Live, Some(pid)) => finding(
            "mount",
            Level::Ok,
            format!("{shown} is mounted (daemon pid {pid})"),
            None,
        ),
        (MountState::Live, None) => finding(
            "mount",
            Level::Warn,
            format!("{shown} is mounted, but no daemon of this state dir serves it"),
            Some("`ferry unmount`, then `ferry mount` (another FERRY_HOME may own this mount)"),
        ),
        (MountState::Stale, _) => finding(
            "mount",
            Level::Fail,
            format!(
                "the mount at {shown} is stale: its daemon died, and Claude Code gets errors there"
            ),
            Some("`ferry mount` recovers it; everything written before is in the upper layer"),
        ),
        (MountState::Other, _) => finding(
            "mount",
            Level::Fail,
            format!("another filesystem is mounted at {shown}"),
            Some(&format!(
                "unmount it (`umount {shown}`), then `ferry mount`"
            )),
        ),
        (MountState::None, _) => finding(
            "mount",
            Level::Note,
            format!("{shown} is not mounted: Claude Code sees only this machine's files there"),
            Some("`ferry mount`, or `ferry service install` to mount at every login"),
        ),
    }];
    if daemon.is_some()
        && let Ok(at) = std::fs::read_to_string(st.mounted())
        && Path::new(at.trim()) != mountpoint
    {
        out.push(finding(
            "mount",
            Level::Warn,
            format!(
                "the daemon mounted {}, but Claude Code in this environment reads {shown}",
                at.trim()
            ),
            Some("run ferry and claude with the same HOME and CLAUDE_CONFIG_DIR"),
        ));
    }
    out
}

/// What mounting needs from the OS.
fn fuse() -> Option<Finding> {
    if cfg!(target_os = "linux") && !Path::new("/dev/fuse").exists() {
        return Some(finding(
            "fuse",
            Level::Fail,
            "/dev/fuse is missing: this system cannot mount the view".into(),
            Some(
                "install fuse3 and load the module (`modprobe fuse`); in a container, pass --device /dev/fuse",
            ),
        ));
    }
    None
}

/// The user's git, which fetches and pushes with their ssh config and credential helpers.
fn git(git: Option<&GitCli>) -> Finding {
    match git {
        Some(git) => finding(
            "git",
            Level::Ok,
            format!("{} fetches and pushes, with your ssh config and credential helpers", git.version),
            None,
        ),
        None => finding(
            "git",
            Level::Warn,
            "git is not on PATH: transfers fall back to the built-in libgit2, which knows neither ssh aliases nor credential helpers".into(),
            Some("install git"),
        ),
    }
}

/// The remote, tried now.
fn remote(config: &state::Config, git: Option<&GitCli>, paused: Option<&str>) -> Finding {
    let Some(url) = &config.remote else {
        return finding(
            "remote",
            Level::Note,
            "no remote: sessions stay on this machine".into(),
            Some("`ferry remote set URL`"),
        );
    };
    let shown = redact(url);
    if let Some(why) = paused {
        return finding(
            "remote",
            Level::Fail,
            format!("transfers to {shown} are paused until you act: {why}"),
            None,
        );
    }
    let Some(git) = git else {
        return finding(
            "remote",
            Level::Note,
            format!("{shown} was not tried: there is no git to try it with"),
            None,
        );
    };
    let start = std::time::Instant::now();
    match git.ls_remote(url) {
        Ok(()) => finding(
            "remote",
            Level::Ok,
            format!("{shown} answers ({} ms)", start.elapsed().as_millis()),
            None,
        ),
        Err(e) => finding(
            "remote",
            Level::Fail,
            format!("{shown} cannot be reached: {}", e.message),
            Some("fix what the message names, or `ferry remote set URL` for another remote"),
        ),
    }
}

/// The sync engine's own record: its last error, what waits.
fn sync(status: &ferry_sync::engine::Status, has_remote: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((at, e)) = &status.last_error {
        out.push(finding(
            "sync",
            Level::Warn,
            format!("the last sync failed {}: {e}", ago(Some(*at))),
            Some("`ferry sync` tries again now and says what happened"),
        ));
    }
    for w in &status.waiting {
        out.push(finding(
            "sync",
            Level::Warn,
            format!("{} path(s) in {} wait: {}", w.paths, w.dir, w.why),
            None,
        ));
    }
    if out.is_empty() {
        let says = match (has_remote, status.last_push_ms) {
            (true, Some(t)) => format!("no errors; last push {}", ago(Some(t))),
            _ => "no errors".to_string(),
        };
        out.push(finding("sync", Level::Ok, says, None));
    }
    out
}

/// Every finding for the state dir `st`.
pub fn findings(st: &State) -> Result<Vec<Finding>> {
    let config = st.config()?;
    let pid = st.daemon_pid();
    let (_, status) = crate::status::observed(st, pid);
    let mut out = state_dir(st);
    out.extend(identity(st, &config));
    out.extend(mount(st, &state::mount_point()?, pid));
    out.extend(fuse());
    let git_cli = GitCli::probe(None);
    out.push(git(git_cli.as_ref()));
    out.push(remote(&config, git_cli.as_ref(), status.paused.as_deref()));
    out.extend(sync(&status, config.remote.is_some()));
    out.extend(install::checks(st, git_cli.as_ref()));
    Ok(out)
}

/// `ferry doctor`: the findings, and exit code 1 if any check failed.
pub fn run(ctx: &Ctx) -> Result<crate::ui::Exit> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let all = findings(st)?;
    let failed = all.iter().any(|f| f.level == Level::Fail);
    ui.out(&serde_json::json!({"ok": !failed, "checks": all}), || {
        let mut t = String::new();
        for f in &all {
            let mark = match f.level {
                Level::Ok => "ok  ",
                Level::Note => "note",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            t += &format!("{mark} {:<9} {}\n", f.area, f.says);
            if let Some(next) = &f.next {
                t += &format!("               next: {next}\n");
            }
        }
        t
    });
    Ok(if failed {
        crate::ui::Kind::CheckFailed.code()
    } else {
        0
    })
}
