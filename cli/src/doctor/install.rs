//! `ferry doctor`'s checks of what surrounds the mount: Claude Code's hooks and the binary they
//! name, the login service, Claude Code itself, the store's integrity, free disk, and secrets
//! found in what was committed.

use super::{Finding, Level, finding};
use crate::state::State;
use std::path::{Path, PathBuf};

/// Every check of this module.
pub fn checks(st: &State, git: Option<&ferry_sync::engine::GitCli>) -> Vec<Finding> {
    let mut out = vec![hooks(), service(st), claude()];
    out.extend(store(st, git));
    out.extend(disk(&st.dir));
    out.extend(secrets(st));
    out
}

/// The binary a hook command runs: `ferry` (found on PATH) or a quoted path.
fn hook_binary(command: &str) -> Option<PathBuf> {
    // `FERRY_HOME='…' BIN hooks run EVENT`, the state dir and BIN single-quoted.
    let (head, _) = command.rsplit_once(" hooks run ")?;
    let rest = head.strip_prefix("FERRY_HOME='")?.as_bytes();
    let mut end = 0;
    while end < rest.len() {
        if rest[end..].starts_with(b"'\\''") {
            end += 4;
        } else if rest[end] == b'\'' {
            break;
        } else {
            end += 1;
        }
    }
    let bin = std::str::from_utf8(rest.get(end + 1..)?).ok()?.trim_start();
    match bin.strip_prefix('\'').and_then(|b| b.strip_suffix('\'')) {
        Some(quoted) => Some(PathBuf::from(quoted.replace("'\\''", "'"))),
        None => std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(bin))
                .find(|c| c.is_file())
        }),
    }
}

/// Claude Code's hooks: installed, and naming a binary that is there.
fn hooks() -> Finding {
    let commands = crate::hooks::installed();
    if commands.is_empty() {
        return finding(
            "hooks",
            Level::Note,
            "ferry's hooks are not installed: a turn is committed after a quiet period, not when it stops, and `ferry sessions --open` cannot tell which sessions ended".into(),
            Some("`ferry hooks install`"),
        );
    }
    let missing: Vec<&String> = commands
        .iter()
        .filter(|c| hook_binary(c).is_none_or(|b| !b.is_file()))
        .collect();
    match missing.first() {
        Some(c) => finding(
            "hooks",
            Level::Fail,
            format!("a hook names a ferry binary that is not there: {c}"),
            Some("`ferry hooks install` again, with the ferry you use now"),
        ),
        None => finding(
            "hooks",
            Level::Ok,
            format!(
                "{} hook(s) installed, naming a ferry that is there",
                commands.len()
            ),
            None,
        ),
    }
}

/// The login service.
fn service(st: &State) -> Finding {
    match crate::service::plan(st) {
        Ok(plan) if plan.file.exists() => finding(
            "service",
            Level::Ok,
            format!(
                "the login service is installed ({}, {})",
                plan.manager.name(),
                plan.file.display()
            ),
            None,
        ),
        _ => finding(
            "service",
            Level::Note,
            "no login service: the view is mounted only when you run `ferry mount`".into(),
            Some("`ferry service install` mounts it at every login"),
        ),
    }
}

/// Claude Code on PATH, and where it keeps its files.
fn claude() -> Finding {
    let dir = ferry_platform::claude_config_dir()
        .map_or_else(|| "(unknown)".into(), |d| d.display().to_string());
    let version = std::process::Command::new("claude")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match version {
        Some(v) => finding(
            "claude",
            Level::Ok,
            format!("Claude Code {v}; its files are in {dir}"),
            None,
        ),
        None => finding(
            "claude",
            Level::Note,
            format!(
                "no `claude` on PATH here; ferry serves {dir}, where Claude Code keeps its files (CLAUDE_CONFIG_DIR moves it)"
            ),
            None,
        ),
    }
}

/// The store's objects, checked by git (`fsck --connectivity-only`).
fn store(st: &State, git: Option<&ferry_sync::engine::GitCli>) -> Option<Finding> {
    git?;
    let out = std::process::Command::new("git")
        .args([
            "fsck",
            "--connectivity-only",
            "--no-progress",
            "--no-dangling",
        ])
        .env("GIT_DIR", st.store())
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    Some(if out.status.success() {
        finding(
            "store",
            Level::Ok,
            format!("{}: git finds every object", st.store().display()),
            None,
        )
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        finding(
            "store",
            Level::Fail,
            format!(
                "{} is damaged: {}",
                st.store().display(),
                said.lines().next().unwrap_or("git fsck failed").trim()
            ),
            Some(
                "`ferry unmount`, move the store aside, and `ferry init` again: what was pushed comes back from the remote, and your files in Claude Code's directory stay",
            ),
        )
    })
}

/// Free space where the state dir is: the store and the disk cache grow there.
fn disk(dir: &Path) -> Option<Finding> {
    #[cfg(unix)]
    {
        let s = nix::sys::statvfs::statvfs(dir).ok()?;
        let free = s.blocks_available() as u64 * s.fragment_size() as u64;
        let gib = free as f64 / (1u64 << 30) as f64;
        let (level, next) = match free {
            f if f < 100 << 20 => (
                Level::Fail,
                Some(
                    "free some space: commits stop when the disk is full (nothing is lost; they go on once there is room)",
                ),
            ),
            f if f < 1 << 30 => (Level::Warn, Some("free some space before it runs out")),
            _ => (Level::Ok, None),
        };
        Some(finding(
            "disk",
            level,
            format!("{gib:.1} GiB free for {}", dir.display()),
            next,
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Secrets found in new content.
fn secrets(st: &State) -> Option<Finding> {
    let found = st.findings();
    if found.is_empty() {
        return None;
    }
    let pushed = found.iter().filter(|f| f.action == "pushed").count();
    Some(if pushed > 0 {
        finding(
            "secrets",
            Level::Warn,
            format!(
                "{pushed} secret(s) were pushed as they were (policy warn): they are in the remote's history"
            ),
            Some(
                "revoke them; `ferry init --secrets redact` redacts new ones; `ferry status` lists them",
            ),
        )
    } else {
        finding(
            "secrets",
            Level::Note,
            format!(
                "{} secret(s) found in new content were redacted or held back; `ferry status` lists them",
                found.len()
            ),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::hook_binary;
    use std::path::PathBuf;

    #[test]
    fn a_hook_command_names_its_binary() {
        let c = r"FERRY_HOME='/home/a/it'\''s' '/opt/fe rry/ferry' hooks run stop";
        assert_eq!(hook_binary(c), Some(PathBuf::from("/opt/fe rry/ferry")));
        assert_eq!(hook_binary("echo hi"), None);
    }
}
