//! What differs per OS: where Claude Code and ferry keep their files (this module), finding and
//! taking down mounts ([`mount`]), login services ([`service`]), the upper layer's own place
//! on Windows ([`relocate`]) and who this computer is ([`identity`]).

pub mod identity;
pub mod mount;
pub mod relocate;
pub mod service;

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

/// The default state dir: `$FERRY_HOME`, else the platform data dir (`~/.local/share/ferry` on
/// Linux, `~/Library/Application Support/ferry` on macOS, `%LOCALAPPDATA%\\ferry` on Windows).
pub fn ferry_home() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FERRY_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if cfg!(windows) {
        return std::env::var_os("LOCALAPPDATA").map(|d| PathBuf::from(d).join("ferry"));
    }
    let home = home_dir()?;
    if cfg!(target_os = "macos") {
        return Some(home.join("Library/Application Support/ferry"));
    }
    match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => Some(PathBuf::from(d).join("ferry")),
        None => Some(home.join(".local/share/ferry")),
    }
}

/// The temp dir Claude Code uses on this machine (`$TMPDIR`, else the system's).
pub fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// Claude Code's per-user temp dir (`<tmp>/claude-<uid>` on Unix).
pub fn claude_temp_dir() -> PathBuf {
    #[cfg(unix)]
    {
        temp_dir().join(format!("claude-{}", nix::unistd::getuid().as_raw()))
    }
    #[cfg(not(unix))]
    {
        temp_dir().join("claude")
    }
}

/// This OS as machine records name it.
pub fn os_name() -> &'static str {
    if cfg!(windows) {
        "windows"
    } else if cfg!(target_os = "macos") {
        "macos"
    } else {
        "linux"
    }
}
