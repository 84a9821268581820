//! Mounting at login: the service definition each OS's login manager takes (a systemd user unit
//! on Linux, a launchd agent on macOS, a scheduled task on Windows), where it goes, and the
//! commands that turn it on and off.
//!
//! Everything here but [`run`] is pure, so every OS's definition is built and checked on any OS
//! (the tests parse each with a real parser); [`run`] executes a plan's commands on this one.

pub mod launchd;
pub mod systemd;
pub mod task;

use std::path::{Path, PathBuf};

/// What the login service runs: this ferry binary, with the environment that picks its state dir
/// and Claude Code's config dir.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The ferry binary, absolute.
    pub exe: PathBuf,
    /// Variables the daemon must see (`FERRY_HOME`, `CLAUDE_CONFIG_DIR` when set).
    pub env: Vec<(String, String)>,
    /// Where the daemon's output goes when the manager does not keep it (launchd).
    pub log: PathBuf,
}

/// Which login manager a plan is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// A systemd user unit (Linux).
    Systemd,
    /// A launchd agent (macOS).
    Launchd,
    /// A Task Scheduler task started at logon (Windows).
    Task,
}

impl Manager {
    /// This OS's manager.
    pub fn here() -> Manager {
        if cfg!(windows) {
            Manager::Task
        } else if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }

    /// Its name, as `ferry service` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::Launchd => "launchd",
            Manager::Task => "task scheduler",
        }
    }
}

/// A command line, program first.
pub type Command = Vec<String>;

/// The command line of `words`.
pub(crate) fn command(words: &[&str]) -> Command {
    words.iter().map(|w| w.to_string()).collect()
}

/// Everything `ferry service install` or `uninstall` does, worked out before any of it is done.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The manager.
    pub manager: Manager,
    /// The definition file.
    pub file: PathBuf,
    /// Its bytes (empty for an uninstall).
    pub contents: Vec<u8>,
    /// Run after writing the file, in order: the manager learns of it and will start it at login.
    pub enable: Vec<Command>,
    /// Run after `enable` to start it now, unless a daemon already runs.
    pub start: Vec<Command>,
    /// Run before removing the file: stop it (a clean unmount with a final push) and forget it.
    pub disable: Vec<Command>,
}

/// Where each manager's definition file lives, from the directories it is relative to.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// The user's home.
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, if set (systemd).
    pub xdg_config: Option<PathBuf>,
    /// The directory for the task's definition file (Windows: the state dir).
    pub state: PathBuf,
}

impl Dirs {
    /// This user's, from the environment.
    pub fn here(state: &Path) -> Option<Dirs> {
        Some(Dirs {
            home: crate::home_dir()?,
            xdg_config: std::env::var_os("XDG_CONFIG_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            state: state.to_path_buf(),
        })
    }
}

/// The plan that installs `spec` with `manager`.
pub fn install_plan(manager: Manager, spec: &Spec, dirs: &Dirs) -> Result<Plan, String> {
    match manager {
        Manager::Systemd => Ok(systemd::plan(spec, dirs)),
        Manager::Launchd => Ok(launchd::plan(spec, dirs, &user_id())),
        Manager::Task => task::plan(spec, dirs, &task::user()),
    }
}

/// The numeric user id launchd's domain is named after.
fn user_id() -> String {
    #[cfg(unix)]
    {
        nix::unistd::getuid().as_raw().to_string()
    }
    #[cfg(not(unix))]
    {
        String::new()
    }
}

/// Why a manager's command failed: what ran, and what it said.
#[derive(Debug)]
pub struct Failed {
    /// The command line.
    pub command: String,
    /// Its output, or why it could not start.
    pub output: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` failed: {}", self.command, self.output)
    }
}

/// How long a service manager's command may take before it counts as failed.
const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs one command; its output (stderr, then stdout) if it fails. The output goes to a file,
/// not a pipe, and the wait is for the process itself: a manager that starts a service may
/// hand the pipe on to it (Wine's `schtasks` does), and a pipe would then never close.
fn run_one(c: &Command) -> Option<String> {
    let spool = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => return Some(format!("no temporary file for its output: {e}")),
    };
    let (out, err) = match (spool.try_clone(), spool.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Some(e.to_string()),
    };
    let mut child = match std::process::Command::new(&c[0])
        .args(&c[1..])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(e.to_string()),
    };
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < COMMAND_LIMIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!("no answer within {} s", COMMAND_LIMIT.as_secs()));
            }
            Err(e) => return Some(e.to_string()),
        }
    };
    if status.success() {
        return None;
    }
    let mut text = String::new();
    let mut spool = spool;
    use std::io::{Read, Seek};
    let _ = spool.rewind();
    let _ = spool.read_to_string(&mut text);
    Some(match text.trim() {
        "" => status.to_string(),
        t => t.to_string(),
    })
}

/// Runs `commands` in order; stops at the first that fails. `tolerate` lets a command fail
/// without stopping (unloading what was never loaded, say).
pub fn run(commands: &[Command], tolerate: impl Fn(&Command) -> bool) -> Result<(), Failed> {
    for c in commands {
        if let Some(output) = run_one(c)
            && !tolerate(c)
        {
            return Err(Failed {
                command: c.join(" "),
                output,
            });
        }
    }
    Ok(())
}

/// Escapes text for XML character data and attribute values.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A path as text for a definition file; definition files are text, so a path that is not
/// Unicode cannot be written into one.
pub(crate) fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escaping_covers_the_five_entities() {
        assert_eq!(
            xml_escape(r#"a&b<c>d"e'f"#),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f"
        );
    }

    #[test]
    fn a_failing_command_stops_the_run_unless_tolerated() {
        // The same failures from each OS's shell.
        let (fail, shout) = if cfg!(windows) {
            (
                vec!["cmd".to_string(), "/c".into(), "exit 1".into()],
                vec!["cmd".into(), "/c".into(), "echo oops 1>&2 & exit 3".into()],
            )
        } else {
            (
                vec!["false".to_string()],
                vec!["sh".into(), "-c".into(), "echo oops >&2; exit 3".into()],
            )
        };
        let cmds = vec![fail.clone(), shout.clone()];
        let tolerant = run(&cmds[..1], |_| true);
        assert!(tolerant.is_ok());
        // Wine now and then fails to start `cmd` at all ("Internal error", os error 1359): that
        // is Wine's, and the run is tried again.
        let mut e = run(&cmds, |c| *c == fail).unwrap_err();
        for _ in 0..3 {
            if !(cfg!(windows) && e.output.contains("os error 1359")) {
                break;
            }
            e = run(&cmds, |c| *c == fail).unwrap_err();
        }
        assert_eq!(e.command, shout.join(" "));
        assert_eq!(e.output, "oops");
        assert!(run(&[vec!["/nonexistent/x".into()]], |_| false).is_err());
    }
}
