//! `ferry hooks install|uninstall|run`: Claude Code's Stop hook asks the daemon to commit and
//! push at once (instead of after the debounce), and its SessionEnd hook leaves a marker in the
//! session's directory, synced like any file, so that `ferry sessions --open` can tell which
//! sessions were left unfinished on some machine. Hooks never fail or slow Claude Code down: a
//! hook that cannot do its work exits 0 quietly.

use crate::state::State;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The marker's name inside `<session id>/`.
pub const ENDED: &str = "ferry-ended.json";

/// Claude Code's settings file, where hooks live.
fn settings_path() -> Result<PathBuf> {
    Ok(ferry_platform::claude_config_dir()
        .context("cannot tell where Claude Code keeps its files: set HOME or CLAUDE_CONFIG_DIR")?
        .join("settings.json"))
}

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command a hook runs: this binary, with this state dir.
fn command(event: &str) -> Result<String> {
    let exe = std::env::current_exe().context("finding the ferry binary")?;
    let exe = exe
        .to_str()
        .context("the ferry binary's path is not UTF-8")?;
    let state = State::locate()?;
    let state = state.dir.to_str().context("the state dir is not UTF-8")?;
    Ok(format!(
        "FERRY_HOME={} {} hooks run {event}",
        quote(state),
        quote(exe)
    ))
}

fn is_ours(entry: &Value) -> bool {
    entry["hooks"].as_array().into_iter().flatten().any(|h| {
        h["command"].as_str().is_some_and(|c| {
            c.contains("ferry")
                && (c.ends_with(" hooks run stop") || c.ends_with(" hooks run session-end"))
        })
    })
}

fn load(path: &Path) -> Result<Value> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is not valid JSON; fix it and run this again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `ferry hooks install` (`install`) or `uninstall`: adds or removes ferry's Stop and
/// SessionEnd hooks, keeping every other setting.
pub fn set(install: bool, json_out: bool) -> Result<()> {
    let path = settings_path()?;
    let mut settings = load(&path)?;
    if !settings.is_object() {
        anyhow::bail!(
            "{} is not a JSON object; fix it and run this again",
            path.display()
        );
    }
    for (event, arg) in [("Stop", "stop"), ("SessionEnd", "session-end")] {
        let hooks = settings
            .as_object_mut()
            .expect("object")
            .entry("hooks")
            .or_insert_with(|| json!({}));
        let list = hooks
            .as_object_mut()
            .context("`hooks` in the settings is not an object")?
            .entry(event)
            .or_insert_with(|| json!([]));
        let list = list
            .as_array_mut()
            .with_context(|| format!("`hooks.{event}` in the settings is not a list"))?;
        list.retain(|e| !is_ours(e));
        if install {
            list.push(json!({"hooks": [{"type": "command", "command": command(arg)?}]}));
        }
    }
    // A settings.json that is a symlink (dotfiles) is written where it points, keeping its mode.
    let target = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let mode = std::fs::metadata(&target).map(|m| m.permissions()).ok();
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::daemon::write_json(&target, &settings)
        .with_context(|| format!("writing {}", target.display()))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&target, mode)?;
    }
    let verb = if install { "installed" } else { "removed" };
    if json_out {
        println!("{}", json!({"settings": path, "hooks": verb}));
    } else {
        println!(
            "{verb} ferry's Stop and SessionEnd hooks in {}",
            path.display()
        );
    }
    Ok(())
}

/// `ferry hooks run EVENT`, as Claude Code runs it, with the hook's JSON on stdin.
pub fn run(event: &str) -> Result<()> {
    let mut input = Vec::new();
    let _ = std::io::stdin().take(1 << 20).read_to_end(&mut input);
    let hook: Value = serde_json::from_slice(&input).unwrap_or(Value::Null);
    if event == "session-end" {
        let _ = mark_ended(&hook);
    }
    // Commit and push now rather than after the debounce.
    if let Ok(st) = State::locate()
        && let Some(pid) = crate::sync_cmd::daemon_pid(&st)
    {
        let _ = crate::sync_cmd::signal(&st, pid, false);
    }
    Ok(())
}

/// Writes `<session id>/ferry-ended.json` beside the transcript.
fn mark_ended(hook: &Value) -> Option<()> {
    let transcript = Path::new(hook["transcript_path"].as_str()?);
    let id = hook["session_id"].as_str()?;
    ferry_sync::store::RelPath::new(id).ok()?;
    if transcript.file_stem()?.to_str()? != id {
        return None;
    }
    let machine = State::locate()
        .and_then(|st| st.config())
        .map_or_else(|_| crate::state::hostname(), |c| c.machine_name);
    let marker = json!({
        "ended_ms": ferry_sync::engine::now_ms(),
        "machine": machine,
        "reason": hook["reason"],
    });
    let path = transcript.parent()?.join(id).join(ENDED);
    crate::state::write_private(&path, marker.to_string().as_bytes()).ok()
}
