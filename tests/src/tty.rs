//! The real client in a terminal: an interactive session inside tmux that a test types into and
//! reads the screen of, for what only an interactive session does (prompt history, the up
//! arrow). Each terminal has a tmux server of its own, gone when it drops.

use crate::claude::{User, bin};
use crate::rig::eventually;
use crate::workspace_root;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static TERMINALS: AtomicUsize = AtomicUsize::new(0);

/// One interactive `claude` in a tmux pane.
pub struct Terminal {
    socket: String,
}

/// `s` quoted for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Marks the client's first-run questions answered in `user`'s config, for `cwd`: onboarding,
/// the test API key, the trust of the folder, bypassing permissions.
fn seed_config(user: &User, cwd: &Path) {
    let file = user.config_dir.join(".claude.json");
    let mut v: serde_json::Value = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    v["hasCompletedOnboarding"] = true.into();
    v["theme"] = "dark".into();
    v["numStartups"] = 5.into();
    v["bypassPermissionsModeAccepted"] = true.into();
    v["customApiKeyResponses"] = serde_json::json!({"approved": ["sk-test"], "rejected": []});
    let cwd = cwd.to_str().expect("UTF-8");
    if !v["projects"].is_object() {
        v["projects"] = serde_json::json!({});
    }
    v["projects"][cwd] =
        serde_json::json!({"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true});
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).expect("seed .claude.json");
}

impl Terminal {
    /// Starts `claude <args>` (version `version`) for `user` in `cwd`, offline, and waits for
    /// its prompt.
    pub fn start(user: &User, version: &str, cwd: &Path, args: &[&str]) -> Terminal {
        Terminal::start_with(user, version, cwd, args, None)
    }

    /// [`Terminal::start`] with the fake API replying from `script` (a JSON list, see
    /// `fake_messages_api.py`).
    pub fn start_with(
        user: &User,
        version: &str,
        cwd: &Path,
        args: &[&str],
        script: Option<&str>,
    ) -> Terminal {
        seed_config(user, cwd);
        let socket = format!(
            "ferry-test-{}-{}",
            std::process::id(),
            TERMINALS.fetch_add(1, Ordering::Relaxed)
        );
        let mut env = vec![
            ("RUN_OFFLINE_TTY".to_string(), "1".to_string()),
            ("IS_SANDBOX".into(), "1".into()),
            ("TERM".into(), "xterm-256color".into()),
            ("CLAUDE_BIN".into(), bin(version).display().to_string()),
            ("HOME".into(), user.home.display().to_string()),
            (
                "CLAUDE_CONFIG_DIR".into(),
                user.config_dir.display().to_string(),
            ),
            ("FAKE_API_LOG".into(), user.api_log.display().to_string()),
            ("RUN_OFFLINE_TIMEOUT".into(), "300".into()),
        ];
        env.extend(user.env.iter().cloned());
        if let Some(body) = script {
            let path = user.api_log.with_file_name(format!("{socket}-script.json"));
            std::fs::write(&path, body).expect("script");
            env.push(("FAKE_API_SCRIPT".into(), path.display().to_string()));
        }
        let mut line = String::from("cd ");
        line.push_str(&quote(cwd.to_str().expect("UTF-8")));
        line.push_str(" && exec env");
        for (k, v) in &env {
            line.push_str(&format!(" {k}={}", quote(v)));
        }
        let script = workspace_root().join("tests/claude/run-offline.sh");
        for a in [script.to_str().unwrap(), cwd.to_str().unwrap(), "--"]
            .into_iter()
            .chain(args.iter().copied())
        {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let t = Terminal { socket };
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "200",
            "-y",
            "50",
            "sh",
            "-c",
            &line,
        ]);
        t.wait_for("(shift+tab to cycle)", Duration::from_secs(60));
        t
    }

    /// One prompt in a new interactive session: starts it (see [`Terminal::start_with`]),
    /// types `prompt`, waits for the screen to show `reply`, and ends the client there (see
    /// [`Terminal::exit`]).
    pub fn one_prompt(
        user: &User,
        version: &str,
        cwd: &Path,
        args: &[&str],
        script: Option<&str>,
        prompt: &str,
        reply: &str,
    ) {
        let t = Terminal::start_with(user, version, cwd, args, script);
        t.type_line(prompt);
        t.wait_for(reply, Duration::from_secs(60));
        t.exit();
    }

    /// Ends the client as a user does (Ctrl-C twice) and waits until it is gone, so what it
    /// writes at the end is on disk. Killing the pane instead can cut the client short: its
    /// prompt history is appended in the background, and was once missing after a reply had
    /// already shown (CI, 2.1.197).
    pub fn exit(self) {
        let running = || {
            Command::new("tmux")
                .args(["-L", &self.socket, "has-session", "-t", "main"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        for _ in 0..3 {
            self.key("C-c");
            std::thread::sleep(Duration::from_millis(300));
            self.key("C-c");
            if eventually(Duration::from_secs(10), || !running()) {
                return;
            }
        }
        panic!("the client did not exit on Ctrl-C:\n{}", self.screen());
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs (apt-get install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the pane shows now.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "main"])
    }

    /// Waits until the screen shows `needle`; panics with the screen if it never does.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let ok = eventually(limit, || self.screen().contains(needle));
        assert!(
            ok,
            "the terminal never showed {needle:?}:\n{}",
            self.screen()
        );
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "main", "-l", text]);
        std::thread::sleep(Duration::from_millis(300));
        self.tmux(&["send-keys", "-t", "main", "Enter"]);
    }

    /// Presses one key (tmux's name for it: `Up`, `Escape`, `C-c`).
    pub fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", "main", key]);
    }

    /// `/rewind` to before the prompt `message` (the newest one, whose code changes are
    /// listed under it), choosing "Restore code": the files go back, the conversation stays.
    /// Each step waits for the client's own words for it and tries again when a key was lost
    /// (a `/rewind` typed while a resumed session still loads opens nothing).
    pub fn rewind_code(&self, message: &str) {
        const MENU: &str = "Restore the code and/or conversation to the point";
        let opened = (0..3).any(|_| {
            if self.screen().contains(MENU) {
                return true;
            }
            self.clear_input();
            self.type_line("/rewind");
            eventually(Duration::from_secs(10), || self.screen().contains(MENU))
        });
        assert!(opened, "/rewind opened no menu:\n{}", self.screen());
        // The menu's cursor, not the transcript's own "❯ prompt" line above the menu.
        self.move_to("Up", &format!("{message:?}"), |screen| {
            let menu = screen.find(MENU).map_or("", |at| &screen[at..]);
            menu.lines().any(|l| l.contains('❯') && l.contains(message))
        });
        self.key("Enter");
        // Both versions' confirmation lists it, in their own words around it.
        self.wait_for("Restore code", Duration::from_secs(20));
        self.move_to("Down", "\"Restore code\"", |screen| {
            screen
                .lines()
                .any(|l| l.contains('❯') && l.trim_end().ends_with("Restore code"))
        });
        self.key("Enter");
    }

    /// Presses `key` until the screen shows the menu's cursor where `there` says (at most six
    /// times); panics with the screen, naming `what`, if it never gets there.
    fn move_to(&self, key: &str, what: &str, there: impl Fn(&str) -> bool) {
        for _ in 0..6 {
            if there(&self.screen()) {
                return;
            }
            self.key(key);
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(
            there(&self.screen()),
            "no {what} to choose:\n{}",
            self.screen()
        );
    }

    /// Empties the prompt's input line, one backspace per character it shows.
    fn clear_input(&self) {
        for _ in 0..self.input().chars().count() {
            self.key("BSpace");
        }
    }

    /// The prompt's input line: what follows the last `❯ ` on the screen.
    pub fn input(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find_map(|l| l.trim_start().strip_prefix("❯"))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}
