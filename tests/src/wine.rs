//! A Windows machine for the end-to-end tests: `ferry.exe` (built for x86_64-pc-windows-gnu)
//! run under Wine, in the prefix `tests/wine/setup.sh` makes, as its own Windows user (Wine
//! names the profile `C:\users\<USER>`), with its state dir in that profile. `scripts/test`
//! builds the binary and the prefix; a test that finds either missing fails and says how to
//! make it.

use crate::workspace_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `ferry.exe`, built by `scripts/test`.
pub fn exe() -> PathBuf {
    let exe = workspace_root().join("target/x86_64-pc-windows-gnu/debug/ferry.exe");
    assert!(
        exe.exists(),
        "{} is missing; build it with: cargo build --target x86_64-pc-windows-gnu -p ferry-cli",
        exe.display()
    );
    exe
}

/// The Wine prefix, made by `tests/wine/setup.sh`.
pub fn prefix() -> PathBuf {
    let prefix = workspace_root().join("target/wine");
    assert!(
        prefix
            .join("drive_c/windows/system32/bcryptprimitives.dll")
            .exists(),
        "the Wine prefix is missing; make it with: tests/wine/setup.sh {}",
        prefix.display()
    );
    prefix
}

/// A Windows path for the Linux path `p` (Wine's drive Z: is `/`).
pub fn z(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

/// One Windows machine at a time: Wine takes the user's profile once per prefix session.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One simulated Windows machine (while it lives, no other runs in this process).
pub struct Windows {
    _turn: std::sync::MutexGuard<'static, ()>,
    /// The Windows user name, which names its profile.
    pub user: String,
    /// `%USERPROFILE%` as Windows spells it (`C:\users\<user>`).
    pub home: String,
    /// The profile directory as Linux reaches it.
    pub home_here: PathBuf,
}

impl Windows {
    /// A fresh Windows user `user` (its profile emptied first), with its state dir in
    /// `%USERPROFILE%\ferry`.
    pub fn new(user: &str) -> Windows {
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        // The previous machine's Wine session ends first: a new one takes this user.
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", prefix())
            .status();
        let _ = Command::new("wineserver")
            .arg("-w")
            .env("WINEPREFIX", prefix())
            .status();
        let home_here = prefix().join("drive_c/users").join(user);
        let _ = std::fs::remove_dir_all(&home_here);
        std::fs::create_dir_all(home_here.join(".claude")).expect("profile");
        Windows {
            _turn: turn,
            user: user.to_string(),
            home: format!("C:\\users\\{user}"),
            home_here,
        }
    }

    /// Where the Windows path `p` (under `C:\`) is on Linux.
    pub fn here(&self, p: &str) -> PathBuf {
        let rest = p
            .strip_prefix("C:\\")
            .unwrap_or_else(|| panic!("{p} is not on C:"));
        prefix().join("drive_c").join(rest.replace('\\', "/"))
    }

    /// `ferry.exe <args>` as this machine; a command that has not ended after two minutes
    /// (a hang) is killed and fails the test.
    pub fn ferry(&self, args: &[&str]) -> Output {
        let mut child = Command::new("wine")
            .arg(exe())
            .args(args)
            .env("WINEPREFIX", prefix())
            .env("WINEDEBUG", "-all")
            .env("USER", &self.user)
            .env("LOGNAME", &self.user)
            .env("FERRY_HOME", format!("{}\\ferry", self.home))
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("FERRY_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("wine runs");
        let start = std::time::Instant::now();
        while child.try_wait().expect("waiting for wine").is_none() {
            if start.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                panic!("ferry.exe {args:?} hung for two minutes");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait_with_output().expect("wine's output")
    }

    /// Runs `ferry.exe <args>` and panics with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(
            out.status.success(),
            "ferry.exe {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The pinned Windows client `claude.exe` of `version`, fetched by `scripts/test`.
pub fn claude_exe(version: &str) -> PathBuf {
    let exe = workspace_root().join(format!("target/claude-code/win32-{version}/claude.exe"));
    assert!(
        exe.exists(),
        "{} is missing; fetch it with: tests/claude/install-windows.sh {version} target/claude-code/win32-{version}",
        exe.display()
    );
    exe
}

/// The fake Messages API on 127.0.0.1, for a client under Wine (which shares this network).
pub struct FakeApi {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
    /// Its request log.
    pub log: PathBuf,
}

impl FakeApi {
    /// Starts it, logging requests under `dir`.
    pub fn start(dir: &Path) -> FakeApi {
        let (port_file, log) = (dir.join("api.port"), dir.join("api.jsonl"));
        let child = Command::new("python3")
            .arg(workspace_root().join("tests/claude/fake_messages_api.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--port-file"])
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .spawn()
            .expect("python3 runs the fake API");
        let start = std::time::Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break p;
            }
            assert!(start.elapsed().as_secs() < 20, "the fake API did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        FakeApi { child, port, log }
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Windows {
    /// The real Windows client, `claude.exe <args>` of `version`, run under Wine in the
    /// Windows directory `cwd` against `api`. Wine 8.0 lacks `KERNEL32.DiscardVirtualMemory`,
    /// which the client's allocators call now and then to give memory back, and a run that hits
    /// it aborts (or, now and then, dies at start with no word): such a run is undone (what it
    /// added to the projects directory is taken away) and tried again, up to three times.
    pub fn claude(&self, version: &str, cwd: &str, api: &FakeApi, args: &[&str]) -> Output {
        let projects = self.home_here.join(".claude/projects");
        let mut out = None;
        for _ in 0..3 {
            let before = sizes(&projects);
            let run = self.claude_once(version, cwd, api, args);
            let said = String::from_utf8_lossy(&run.stderr);
            let wine_gap = said.contains("DiscardVirtualMemory")
                || (!run.status.success() && run.stdout.is_empty() && run.stderr.is_empty());
            if !wine_gap {
                return run;
            }
            eprintln!(
                "claude.exe {args:?} hit Wine's missing DiscardVirtualMemory (or died at start); undone, and run again"
            );
            undo(&projects, &before);
            out = Some(run);
        }
        out.expect("at least one run")
    }

    fn claude_once(&self, version: &str, cwd: &str, api: &FakeApi, args: &[&str]) -> Output {
        Command::new("wine")
            .arg(claude_exe(version))
            .args(args)
            .current_dir(self.here(cwd))
            .env("WINEPREFIX", prefix())
            .env("WINEDEBUG", "-all")
            .env("USER", &self.user)
            .env("LOGNAME", &self.user)
            .env(
                "ANTHROPIC_BASE_URL",
                format!("http://127.0.0.1:{}", api.port),
            )
            .env("ANTHROPIC_API_KEY", "sk-test")
            .env("DISABLE_TELEMETRY", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            // Bun's mimalloc would give freed memory back through DiscardVirtualMemory too:
            // never purge, so that fewer runs hit the gap.
            .env("MIMALLOC_PURGE_DELAY", "-1")
            .env_remove("CLAUDE_CONFIG_DIR")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("wine runs claude.exe")
    }
}

/// Every file under `dir` with its size.
fn sizes(dir: &Path) -> std::collections::HashMap<PathBuf, u64> {
    let mut out = std::collections::HashMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => {
                    out.insert(e.path(), m.len());
                }
                Err(_) => {}
            }
        }
    }
    out
}

/// Takes away what a run added under `dir`: files it made, and what it appended to others.
fn undo(dir: &Path, before: &std::collections::HashMap<PathBuf, u64>) {
    for (path, len) in sizes(dir) {
        match before.get(&path) {
            None => {
                let _ = std::fs::remove_file(&path);
            }
            Some(&old) if old < len => {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(old));
            }
            Some(_) => {}
        }
    }
}
