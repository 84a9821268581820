//! The skill that lets Claude Code itself use ferry (installed by `ferry hooks install`): asked
//! "what's unfinished?" in any language, Claude runs `ferry sessions --open --json` and lists
//! every machine's open sessions; told "continue 2", it runs `ferry handoff` and resumes the
//! session or works from the brief. Both pinned clients list a skill in `<config dir>/skills/`
//! to the model and load it through their Skill tool. The skill's file carries a mark, so
//! uninstalling removes only what ferry wrote.

use anyhow::{Context, Result};
use std::path::PathBuf;

/// The skill's name (its directory under `skills/`).
pub const NAME: &str = "ferry-sessions";

/// The line that tells ferry's own file from a user's.
const MARK: &str = "<!-- written by `ferry hooks install`; `ferry hooks uninstall` removes it -->";

/// `<config dir>/skills/ferry-sessions/SKILL.md`.
pub fn path() -> Result<PathBuf> {
    Ok(ferry_platform::claude_config_dir()
        .context("cannot tell where Claude Code keeps its files: set HOME or CLAUDE_CONFIG_DIR")?
        .join("skills")
        .join(NAME)
        .join("SKILL.md"))
}

/// How the skill's commands name ferry: `ferry` when that is this binary on PATH, else its full
/// path; with the state dir when it is not the default one.
fn ferry() -> Result<String> {
    let mut cmd = crate::invoke::binary()?;
    if let Some(home) = std::env::var_os("FERRY_HOME").filter(|h| !h.is_empty()) {
        let home = home.to_str().context("FERRY_HOME is not UTF-8")?;
        cmd = format!("FERRY_HOME={} {cmd}", crate::invoke::quote(home));
    }
    Ok(cmd)
}

/// The skill's text, with `ferry` as the command that runs ferry.
fn text(ferry: &str) -> String {
    format!(
        r#"---
name: {NAME}
description: Lists the user's unfinished Claude Code sessions on all of their machines, and picks one up here (ferry syncs sessions between machines). Use when the user asks, in any language, what is unfinished, open, in progress or left on another machine ("what's unfinished?", "was ist noch offen?"), or asks to continue, resume or pick up one of those sessions ("continue 2").
---
{MARK}

# Unfinished sessions on every machine

ferry syncs this user's Claude Code sessions between their machines. It knows which sessions
were left open (their Claude Code never ended) and can brief you on any of them.

## When asked what is unfinished

1. Run `{ferry} sessions --open --json`. It prints an object whose `sessions` is a list, newest
   first; each row has `id`, `last_writer` (the machine that wrote last), `written_here`,
   `title`, `first_prompt`, `updated_ms` (ms since the epoch), `project_key`, `cwd`,
   `resumable_here` and, when that is false, `not_resumable_why`.
2. Leave out this very conversation (a row written here in the last few minutes whose first
   prompt is this conversation's).
3. Answer in the user's language with a numbered list: the machine, the title (else the first
   prompt, shortened) and how long ago it was last touched. Keep the ids to yourself; remember
   which number is which id.
4. If the list is empty, say that nothing is left open on any machine.

## When asked to continue one ("continue 2")

1. Run `{ferry} handoff <id>` with that row's id. The brief gives the task, what was done,
   what was in progress, the next steps, the files touched (in this machine's paths), where
   both checkouts stand, and the last exchange.
2. If the row is `resumable_here`, tell the user the brief's "Resume here" command: resuming
   carries every turn of that session. Offer it; do not run it yourself (it starts another
   Claude Code).
3. Otherwise, or if the user wants to go on in this conversation, continue from the brief:
   restate the task and the next steps in a few lines, bring the checkout to where the brief
   says the other one stands if they differ (ask before changing branches), and carry on with
   the work.
"#
    )
}

/// Writes the skill (replacing an older one of ferry's). A file of the user's at that place is
/// left alone, and the answer says so.
pub fn install() -> Result<Option<PathBuf>> {
    let path = path()?;
    if let Ok(old) = std::fs::read_to_string(&path)
        && !old.contains(MARK)
    {
        return Ok(None);
    }
    crate::files::write_private(&path, text(&ferry()?).as_bytes())?;
    Ok(Some(path))
}

/// Removes the skill if it is ferry's; returns whether it was there.
pub fn uninstall() -> Result<bool> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(old) if old.contains(MARK) => {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}
