//! The end-to-end rig: simulated machines with differently shaped HOMEs, each with its own
//! checkout of one git project, sharing a bare remote that `git daemon` serves on 127.0.0.1 and
//! that a test can take down and bring back; and the real Claude Code client on each machine.

use crate::claude::User;
use crate::ferry::Machine;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The `origin` every machine's checkout of the project has: the same repository everywhere.
pub const ORIGIN: &str = "https://github.com/ferry-e2e/proj.git";

static SCRIPTS: AtomicUsize = AtomicUsize::new(0);

/// Polls `f` every 50 ms for up to `limit`; whether it became true.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bare repository served by `git daemon` (git://, push enabled) on a fixed loopback port.
pub struct GitDaemon {
    base: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl GitDaemon {
    /// Creates `base/remote.git` and serves it.
    pub fn start(base: &Path) -> GitDaemon {
        git2::Repository::init_bare(base.join("remote.git")).expect("bare remote");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut daemon = GitDaemon {
            base: base.to_path_buf(),
            port,
            child: None,
        };
        daemon.up();
        daemon
    }

    /// The remote's URL.
    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/remote.git", self.port)
    }

    /// The bare repository on disk.
    pub fn repo(&self) -> PathBuf {
        self.base.join("remote.git")
    }

    fn reachable(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Serves the remote (again), on the same port.
    pub fn up(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::File::create(self.base.join("git-daemon.log")).expect("daemon log");
        let child = Command::new("git")
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={}", self.port))
            .arg(format!("--base-path={}", self.base.display()))
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            .arg(&self.base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("git daemon starts");
        self.child = Some(child);
        assert!(
            eventually(Duration::from_secs(20), || self.reachable()),
            "git daemon did not listen on port {}",
            self.port
        );
    }

    /// Takes the remote down: the daemon and every connection it serves are killed, and new
    /// connections are refused.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        assert!(
            eventually(Duration::from_secs(10), || !self.reachable()),
            "the remote still answers"
        );
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.down();
    }
}

/// One simulated machine: ferry's state, the Claude Code user and a checkout of the project.
pub struct Host {
    /// Its machine name.
    pub name: String,
    /// ferry as this machine runs it.
    pub machine: Machine,
    /// Claude Code as this machine runs it.
    pub user: User,
    /// This machine's checkout of the project.
    pub checkout: PathBuf,
}

/// What one `claude` run did.
pub struct Run {
    /// The process's output.
    pub out: Output,
    /// The requests the fake API received during the run, in order.
    pub requests: Vec<Value>,
}

impl Run {
    /// The client's answer; panics with its output unless it succeeded.
    pub fn text(&self) -> String {
        assert!(
            self.out.status.success(),
            "claude failed ({}):\n{}\n{}",
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        );
        String::from_utf8_lossy(&self.out.stdout).trim().to_string()
    }

    /// The main agent's last request (it carries tools), serialised as the client sent it.
    pub fn agent_request(&self) -> String {
        self.requests
            .iter()
            .rev()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/v1/messages"))
            })
            .map(|r| &r["body"])
            .find(|b| b["tools"].as_array().is_some_and(|t| !t.is_empty()))
            .map(Value::to_string)
            .expect("an agent request")
    }
}

impl Host {
    /// A machine named `name` under `root`, HOME at `root/<name>/<home>` (e.g. `home/alice` or
    /// `Users/bob`), its checkout at `~/<checkout>`, set up with `ferry init` against `remote`.
    pub fn new(root: &Path, name: &str, home: &str, checkout: &str, remote: &str) -> Host {
        Host::set_up(root, (name, home, checkout), remote, &[], |_| {})
    }

    /// [`Host::new`], with `more` for `ferry init`, and `before` run on the machine first.
    pub fn set_up(
        root: &Path,
        (name, home, checkout): (&str, &str, &str),
        remote: &str,
        more: &[&str],
        before: impl FnOnce(&Machine),
    ) -> Host {
        let base = root.join(name);
        let machine = Machine::at(base.join(home), base.join("state"));
        let user = User::at(&machine.home, base.join("api.jsonl"));
        let checkout = machine.home.join(checkout);
        let repo = git2::Repository::init(&checkout).expect("checkout");
        repo.remote("origin", ORIGIN).expect("origin");
        std::fs::write(
            checkout.join("README.md"),
            format!("The project, as checked out on {name}.\n"),
        )
        .expect("readme");
        before(&machine);
        let mut args = vec!["init", "--machine", name, "--remote", remote];
        args.extend(more);
        machine.ok(&args);
        Host {
            name: name.to_string(),
            machine,
            user,
            checkout,
        }
    }

    /// `ferry <args>`, which must succeed.
    pub fn ferry(&self, args: &[&str]) -> String {
        self.machine.ok(args)
    }

    /// The project's dir in this machine's view: `projects/<slug of the checkout>`.
    pub fn slug_dir(&self) -> PathBuf {
        self.machine.projects().join(ferry_sync::slug::slug(
            self.checkout.to_str().expect("UTF-8"),
        ))
    }

    /// A session's transcript in this machine's view, in this machine's project dir.
    pub fn transcript(&self, id: &str) -> PathBuf {
        self.slug_dir().join(format!("{id}.jsonl"))
    }

    /// Wherever the view has the session: in this machine's project dir, else in any other.
    /// (Until the client has run in this machine's checkout, another machine's session of the
    /// project sits at the origin's HOME-relative place.)
    pub fn find(&self, id: &str) -> Option<PathBuf> {
        let name = format!("{id}.jsonl");
        let here = self.transcript(id);
        if here.exists() {
            return Some(here);
        }
        std::fs::read_dir(self.machine.projects())
            .ok()?
            .flatten()
            .map(|e| e.path().join(&name))
            .find(|p| p.exists())
    }

    /// The transcript's text, wherever it is ("" while it is nowhere).
    pub fn read(&self, id: &str) -> String {
        self.find(id)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Waits until the transcript holds every one of `needles`; panics with the log if not.
    pub fn wait_for(&self, id: &str, needles: &[&str], limit: Duration) {
        let ok = eventually(limit, || {
            let text = self.read(id);
            needles.iter().all(|n| text.contains(n))
        });
        assert!(
            ok,
            "{}'s view of {id} never held {needles:?}:\n{}\nlog:\n{}",
            self.name,
            self.read(id),
            self.machine.log_tail()
        );
    }

    /// The ids of the sessions in this machine's project dir, newest first.
    pub fn sessions(&self) -> Vec<String> {
        let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(self.slug_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".jsonl")?.to_string();
                Some((e.metadata().ok()?.modified().ok()?, id))
            })
            .collect();
        found.sort();
        found.into_iter().rev().map(|(_, id)| id).collect()
    }

    /// `claude <args>` in the checkout, offline, with the fake API replying from `script` (a
    /// JSON list, see `fake_messages_api.py`).
    pub fn claude(&self, version: &str, args: &[&str], script: Option<&str>) -> Run {
        self.claude_in(&self.checkout, version, args, script)
    }

    /// `claude <args>` in `cwd` (another place of the project: a worktree, a second clone).
    pub fn claude_in(&self, cwd: &Path, version: &str, args: &[&str], script: Option<&str>) -> Run {
        let before = std::fs::metadata(&self.user.api_log).map_or(0, |m| m.len());
        let out = self
            .user
            .run_with(version, cwd, args, self.script(script).as_deref());
        let log = std::fs::read(&self.user.api_log).unwrap_or_default();
        let requests = String::from_utf8_lossy(&log[before as usize..])
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        Run { out, requests }
    }

    /// Starts `claude <args>` in the checkout without waiting for it.
    pub fn spawn_claude(&self, version: &str, args: &[&str], script: Option<&str>) -> Child {
        self.user
            .command(
                version,
                &self.checkout,
                args,
                self.script(script).as_deref(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("claude starts")
    }

    fn script(&self, script: Option<&str>) -> Option<PathBuf> {
        let body = script?;
        let path = self.user.api_log.with_file_name(format!(
            "script-{}.json",
            SCRIPTS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, body).expect("script");
        Some(path)
    }
}

/// The `uuid` of every line of a transcript, in order (lines without one are skipped).
pub fn uuids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["uuid"].as_str().map(str::to_string))
        .collect()
}

/// Every `cwd` the transcript's lines name.
pub fn cwds(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["cwd"].as_str().map(str::to_string))
        .collect()
}

/// Every path in `text` that starts with `prefix`, up to the first character a JSON string or
/// a sentence would end it with.
pub fn paths_under(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest
                .find(|c: char| c == '"' || c == '\\' || c == '<' || c.is_whitespace())
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches(['.', ',', ')']).to_string()
        })
        .collect()
}

/// `ferry hooks install` on `host`, plus a Stop hook of the test's own that appends the time it
/// ran (seconds since the epoch) to the returned file.
pub fn install_hooks_with_stamp(host: &Host) -> PathBuf {
    host.ferry(&["hooks", "install"]);
    let stamps = host.user.api_log.with_file_name("stop-stamps");
    let settings = host.user.config_dir.join("settings.json");
    let mut s: Value = serde_json::from_slice(&std::fs::read(&settings).expect("settings"))
        .expect("settings JSON");
    let stop = s["hooks"]["Stop"]
        .as_array_mut()
        .expect("ferry's Stop hook");
    stop.push(serde_json::json!({"hooks": [{
        "type": "command",
        "command": format!("date +%s.%N >> '{}'", stamps.display()),
    }]}));
    std::fs::write(&settings, s.to_string()).expect("settings written");
    stamps
}

/// Waits until `host`'s view of the session holds `needles`, and returns how long that was after
/// the last Stop hook stamp in `stamps`.
pub fn visible_after_stop(
    host: &Host,
    id: &str,
    needles: &[&str],
    stamps: &Path,
    limit: Duration,
) -> Duration {
    host.wait_for(id, needles, limit);
    let seen = std::time::SystemTime::now();
    let text = std::fs::read_to_string(stamps).expect("the Stop hook ran");
    let last: f64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("a stamp");
    let stop = std::time::UNIX_EPOCH + Duration::from_secs_f64(last);
    seen.duration_since(stop).unwrap_or_default()
}
