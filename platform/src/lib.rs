//! What differs per OS: directories, mounting and unmounting, login services, signals. Grows with
//! the view and CLI issues; for now it knows where Claude Code keeps its files.

use std::path::PathBuf;

/// Claude Code's config dir: `$CLAUDE_CONFIG_DIR`, else `~/.claude`. The mount sits in its
/// `projects/` subdirectory.
pub fn claude_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    home_dir().map(|h| h.join(".claude"))
}

/// The user's home directory, from `HOME` (`USERPROFILE` on Windows).
pub fn home_dir() -> Option<PathBuf> {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var)
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
