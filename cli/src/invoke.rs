//! How Claude Code's hooks and ferry's skill run ferry: the command line they are given.

use anyhow::{Context, Result};
use std::path::Path;

/// Single-quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// How a hook or the skill names this binary: `ferry` when that is this binary on PATH (so a
/// reinstall elsewhere on PATH keeps working), else its full path, quoted.
pub fn binary() -> Result<String> {
    let exe = std::env::current_exe().context("finding the ferry binary")?;
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(if cfg!(windows) { "ferry.exe" } else { "ferry" }))
            .find(|c| c.is_file())
    });
    let same = |a: &Path, b: &Path| std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok();
    Ok(match on_path {
        Some(p) if same(&p, &exe) => "ferry".to_string(),
        _ => quote(
            exe.to_str()
                .context("the ferry binary's path is not UTF-8")?,
        ),
    })
}
