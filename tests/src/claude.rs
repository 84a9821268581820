//! The real Claude Code client, pinned and installed by `tests/claude/install.sh` (which
//! `.ci/run` calls), run inside a network namespace against `fake_messages_api.py`.

use crate::workspace_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The client versions every real-client test covers: the one Node 20 resolves by default and
/// the newest that installs here.
pub const VERSIONS: [&str; 2] = ["2.1.197", "2.1.330"];

/// The installed client binary for `version`. Panics with the install command if it is missing:
/// these tests must run, never silently skip.
pub fn bin(version: &str) -> PathBuf {
    let bin = workspace_root().join(format!(
        "target/claude-code/{version}/node_modules/.bin/claude"
    ));
    assert!(
        bin.exists(),
        "Claude Code {version} is not installed at {}; run: tests/claude/install.sh {version} target/claude-code/{version}",
        bin.display()
    );
    bin
}

/// One simulated user: a HOME and a Claude config dir of its own.
pub struct User {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$CLAUDE_CONFIG_DIR`; its `projects/` holds the sessions.
    pub config_dir: PathBuf,
    /// The fake API's request log (JSON lines).
    pub api_log: PathBuf,
    /// More environment for every run (a switch such as file checkpointing in `-p` mode).
    pub env: Vec<(String, String)>,
}

impl User {
    /// A fresh user under `dir`.
    pub fn new(dir: &Path) -> User {
        User::at(&dir.join("home"), dir.join("api.jsonl"))
    }

    /// A user whose HOME is `home` (config dir `~/.claude`), logging requests to `api_log`.
    pub fn at(home: &Path, api_log: PathBuf) -> User {
        let user = User {
            home: home.to_path_buf(),
            config_dir: home.join(".claude"),
            api_log,
            env: Vec::new(),
        };
        std::fs::create_dir_all(&user.config_dir).expect("create config dir");
        user
    }

    /// Runs `claude <args>` in `cwd`, offline, and returns its output.
    pub fn run(&self, version: &str, cwd: &Path, args: &[&str]) -> Output {
        self.run_with(version, cwd, args, None)
    }

    /// Like [`User::run`], with the fake API replying from `script` (see
    /// `fake_messages_api.py`).
    pub fn run_with(
        &self,
        version: &str,
        cwd: &Path,
        args: &[&str],
        script: Option<&Path>,
    ) -> Output {
        self.command(version, cwd, args, script)
            .output()
            .expect("run-offline.sh starts")
    }

    /// The command [`User::run_with`] runs, to be started by the caller.
    pub fn command(
        &self,
        version: &str,
        cwd: &Path,
        args: &[&str],
        script: Option<&Path>,
    ) -> Command {
        let mut cmd = Command::new(workspace_root().join("tests/claude/run-offline.sh"));
        if let Some(s) = script {
            cmd.env("FAKE_API_SCRIPT", s);
        }
        cmd.arg(cwd)
            .arg("--")
            .args(args)
            .env("CLAUDE_BIN", bin(version))
            .env("HOME", &self.home)
            .env("CLAUDE_CONFIG_DIR", &self.config_dir)
            .env("FAKE_API_LOG", &self.api_log)
            .env("RUN_OFFLINE_TIMEOUT", "120")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}
