//! `ferry hooks install|uninstall|run`: Claude Code's Stop hook asks the daemon to commit and
//! push at once (instead of after the debounce), and its SessionEnd hook leaves a marker in the
//! session's directory, synced like any file, so that `ferry sessions --open` can tell which
//! sessions were left unfinished on some machine; with `--announce`, its SessionStart hook adds
//! one line to a new session's context when other machines left sessions of the project
//! unfinished. `install` also installs the skill that lets Claude use ferry (`skill.rs`).
//! Hooks never fail or slow Claude Code down: a hook that cannot do its work exits 0 quietly.

use crate::command::Ctx;
use crate::invoke::{binary, quote};
use crate::markers::{CHECKOUT, ENDED};
use crate::settings_file::{Settings, hook_entry};
use crate::state::State;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Claude Code's settings file, where hooks live.
fn settings_path() -> Result<PathBuf> {
    Ok(ferry_platform::claude_config_dir()
        .context("cannot tell where Claude Code keeps its files: set HOME or CLAUDE_CONFIG_DIR")?
        .join("settings.json"))
}

/// The command a hook runs: this binary, with this state dir.
fn command(event: &str) -> Result<String> {
    let state = State::locate()?;
    let state = state.dir.to_str().context("the state dir is not UTF-8")?;
    Ok(format!(
        "FERRY_HOME={} {} hooks run {event}",
        quote(state),
        binary()?
    ))
}

/// The events ferry hooks into, with the argument its hook gets.
const EVENTS: [(&str, &str); 3] = [
    ("Stop", "stop"),
    ("SessionEnd", "session-end"),
    ("SessionStart", "session-start"),
];

fn is_ours(entry: &Value) -> bool {
    entry["hooks"].as_array().into_iter().flatten().any(|h| {
        h["command"].as_str().is_some_and(|c| {
            c.contains("ferry")
                && EVENTS
                    .iter()
                    .any(|(_, arg)| c.ends_with(&format!(" hooks run {arg}")))
        })
    })
}

/// The commands of ferry's hooks in Claude Code's settings now (for `ferry doctor`).
pub fn installed() -> Vec<String> {
    let Ok(text) = settings_path().and_then(|p| Ok(std::fs::read_to_string(p)?)) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (event, _) in EVENTS {
        for entry in v["hooks"][event].as_array().into_iter().flatten() {
            if is_ours(entry) {
                for h in entry["hooks"].as_array().into_iter().flatten() {
                    out.extend(h["command"].as_str().map(str::to_string));
                }
            }
        }
    }
    out
}

/// `ferry hooks install [--announce]` (`install`) or `uninstall`: adds or removes ferry's Stop
/// and SessionEnd hooks (and the SessionStart note with `--announce`) in Claude Code's
/// settings, keeping every other setting as it was, and the skill that lets Claude use ferry.
pub fn set(install: bool, announce: bool, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let (path, events, skill) = apply(install, announce)?;
    let what = path.display().to_string();
    let skill_path = crate::skill::path()?;
    let doc = json!({
        "settings": path, "hooks": if install { events.clone() } else { Vec::new() },
        "skill": if install { skill.as_ref() } else { None },
        "skill_kept": install && skill.is_none(),
    });
    ui.out(&doc, || {
        if !install {
            return format!("removed ferry's hooks from {what} and its skill, if there");
        }
        let mut t = format!(
            "installed ferry's {} hook(s) in {what}\n",
            events.join(", ")
        );
        t += &match &skill {
            Some(p) => format!(
                "installed the skill {} ({}): ask Claude \"what's unfinished?\" in any session",
                crate::skill::NAME,
                p.display()
            ),
            None => format!(
                "kept {}: it is not ferry's; move it away and run this again to get ferry's skill",
                skill_path.display()
            ),
        };
        t
    });
    Ok(())
}

/// Adds (`install`) or removes ferry's hooks in Claude Code's settings and its skill; returns
/// the settings file, the events hooked and the skill written (`None`: none, or the user's own
/// kept).
pub fn apply(
    install: bool,
    announce: bool,
) -> Result<(PathBuf, Vec<&'static str>, Option<PathBuf>)> {
    let path = settings_path()?;
    let what = path.display().to_string();
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {what}")),
    };
    let mut settings = Settings::parse(old.as_deref().unwrap_or(""), &what)?;
    let mut events = Vec::new();
    for (event, arg) in EVENTS {
        let add = install && (event != "SessionStart" || announce);
        let entry = match (add, arg) {
            // The note must never hold a session's start up for long.
            (true, "session-start") => {
                let mut e = hook_entry(&command(arg)?);
                e["hooks"][0]["timeout"] = json!(10);
                Some(e)
            }
            (true, _) => Some(hook_entry(&command(arg)?)),
            (false, _) => None,
        };
        if add {
            events.push(event);
        }
        settings.edit_hooks(event, is_ours, entry)?;
    }
    let text = settings.text();
    // Removing from a settings file that is not there leaves it not there.
    let nothing_to_remove = !install && old.is_none();
    if !nothing_to_remove && old.as_deref() != Some(text.as_str()) {
        // A settings.json that is a symlink (dotfiles) is written where it points, keeping its
        // mode.
        let target = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let mode = std::fs::metadata(&target).map(|m| m.permissions()).ok();
        match mode {
            Some(mode) => {
                crate::files::write_atomic(&target, text.as_bytes())
                    .with_context(|| format!("writing {}", target.display()))?;
                std::fs::set_permissions(&target, mode)?;
            }
            None => crate::files::write_private(&target, text.as_bytes())?,
        }
    }
    let skill = if install {
        crate::skill::install()?
    } else {
        crate::skill::uninstall()?;
        None
    };
    Ok((path, events, skill))
}

/// `ferry hooks run EVENT`, as Claude Code runs it, with the hook's JSON on stdin.
pub fn run(event: &str) -> Result<()> {
    let mut input = Vec::new();
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut input);
    let hook: Value = serde_json::from_slice(&input).unwrap_or(Value::Null);
    match event {
        "session-start" => {
            // What Claude Code adds to the new session's context: one line, or nothing.
            if let Some(line) = announce(&hook) {
                println!("{line}");
            }
            return Ok(());
        }
        "session-end" => {
            let _ = record_checkout(&hook);
            let _ = mark_ended(&hook);
        }
        "stop" => {
            let _ = record_checkout(&hook);
        }
        other => anyhow::bail!(
            "no hook event {other:?}: ferry's hooks are stop, session-end and session-start; `ferry hooks install` writes them"
        ),
    }
    // Commit and push now rather than after the debounce.
    if let Ok(st) = State::locate()
        && st.daemon_pid().is_some()
    {
        let soon = crate::control::Request::Sync { soon: true };
        let _ = crate::control::ask(&st, soon, std::time::Duration::from_secs(5));
    }
    Ok(())
}

/// The SessionStart note: other machines' unfinished sessions of the project in `cwd`, in one
/// line, if there are any.
fn announce(hook: &Value) -> Option<String> {
    let cwd = Path::new(hook["cwd"].as_str()?);
    let st = State::locate().ok()?;
    let open = crate::sessions::open_elsewhere(&st, cwd, hook["session_id"].as_str()).ok()?;
    let newest = open.first()?;
    let what = newest
        .summary
        .title
        .clone()
        .or_else(|| newest.summary.first_prompt.clone())
        .unwrap_or_else(|| newest.id.clone());
    Some(format!(
        "ferry: {} unfinished session(s) of this project on other machines, the newest \"{}\" on {} {}; ask \"what's unfinished?\" or run `ferry sessions --open` to see them.",
        open.len(),
        crate::transcript::clip(&what, 60),
        newest.last_writer,
        crate::status::ago(Some(newest.updated_ms))
    ))
}

/// The session's own directory beside its transcript, `<dir>/<session id>/`, if the hook's
/// JSON names both consistently.
fn session_dir(hook: &Value) -> Option<PathBuf> {
    let transcript = Path::new(hook["transcript_path"].as_str()?);
    let id = hook["session_id"].as_str()?;
    ferry_sync::store::RelPath::new(id).ok()?;
    if transcript.file_stem()?.to_str()? != id {
        return None;
    }
    Some(transcript.parent()?.join(id))
}

/// Writes `<session id>/ferry-checkout.json`: the git state of the checkout the session runs
/// in, if it is one (and only when it changed, so a quiet turn writes nothing).
fn record_checkout(hook: &Value) -> Option<()> {
    let dir = session_dir(hook)?;
    let root = ferry_sync::project_key::discover(Path::new(hook["cwd"].as_str()?))
        .ok()
        .flatten()?
        .root;
    let state = ferry_sync::project_key::git_state(Path::new(&root))?;
    let text = serde_json::to_vec(&state).ok()?;
    let path = dir.join(CHECKOUT);
    if std::fs::read(&path).ok().as_deref() == Some(text.as_slice()) {
        return Some(());
    }
    crate::files::write_private(&path, &text).ok()
}

/// Writes `<session id>/ferry-ended.json` beside the transcript.
fn mark_ended(hook: &Value) -> Option<()> {
    let dir = session_dir(hook)?;
    let machine = State::locate()
        .and_then(|st| st.config())
        .map_or_else(|_| crate::identity::hostname(), |c| c.machine_name);
    let marker = json!({
        "ended_ms": ferry_sync::engine::now_ms(),
        "machine": machine,
        "reason": hook["reason"],
    });
    let path = dir.join(ENDED);
    crate::files::write_private(&path, marker.to_string().as_bytes()).ok()
}
