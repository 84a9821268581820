//! Running the built `ferry` binary as one simulated machine: its own HOME, FERRY_HOME and
//! Claude config dir.

use crate::elsewhere::Elsewhere;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `ferry` binary cargo built next to this test.
pub fn ferry_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("ferry");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the CLI is built",
        bin.display()
    );
    bin
}

/// `ferry <args>` as the machine whose HOME and state dir these are (on this computer).
pub fn command_as(home: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args)
        .env("HOME", home)
        .env("FERRY_HOME", state)
        .env_remove("CLAUDE_CONFIG_DIR")
        // The host's CA bundle would override each machine's own `http.sslCAInfo`.
        .env_remove("GIT_SSL_CAINFO")
        .env("FERRY_LOG", "debug");
    cmd
}

/// One simulated machine.
pub struct Machine {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$FERRY_HOME`.
    pub state: PathBuf,
    /// The other computer it runs on, when its paths are this computer's too.
    elsewhere: Option<Arc<Elsewhere>>,
}

impl Machine {
    /// A machine under `dir` (created).
    pub fn new(dir: &Path) -> Machine {
        Machine::at(dir.join("home"), dir.join("state"))
    }

    /// Machine `a` under `dir`, set up with no remote and mounted, with an empty project dir
    /// `-work-proj` in its view; returns the machine and that dir.
    pub fn mounted_alone(dir: &Path) -> (Machine, PathBuf) {
        let m = Machine::new(dir);
        m.ok(&["init", "--machine", "a"]);
        m.ok(&["mount"]);
        let proj = m.projects().join("-work-proj");
        std::fs::create_dir_all(&proj).expect("project dir");
        (m, proj)
    }

    /// A machine with this HOME and state dir (HOME and `~/.claude` are created).
    pub fn at(home: PathBuf, state: PathBuf) -> Machine {
        std::fs::create_dir_all(home.join(".claude")).expect("create home");
        Machine {
            home,
            state,
            elsewhere: None,
        }
    }

    /// A machine on the other computer `elsewhere`, with this HOME and state dir there.
    pub fn elsewhere(home: PathBuf, state: PathBuf, elsewhere: Arc<Elsewhere>) -> Machine {
        std::fs::create_dir_all(elsewhere.outside(&home.join(".claude"))).expect("create home");
        Machine {
            home,
            state,
            elsewhere: Some(elsewhere),
        }
    }

    /// Where `path`, as this machine spells it, is reached from the test.
    fn reach(&self, path: &Path) -> PathBuf {
        match &self.elsewhere {
            Some(e) => e.outside(path),
            None => path.to_path_buf(),
        }
    }

    /// Claude Code's projects directory, the mount point, as the test reaches it.
    pub fn projects(&self) -> PathBuf {
        self.reach(&self.home.join(".claude/projects"))
    }

    /// The view's directory of the project checked out at `proj` (Claude Code's slug of it).
    pub fn project_dir(&self, proj: &Path) -> PathBuf {
        self.projects()
            .join(ferry_sync::slug::slug(proj.to_str().expect("a UTF-8 path")))
    }

    /// The command that runs `ferry <args>` as this machine, for a caller that wants to time it.
    pub fn command(&self, args: &[&str]) -> Command {
        let cmd = command_as(&self.home, &self.state, args);
        match &self.elsewhere {
            Some(e) => e.wrap(&cmd),
            None => cmd,
        }
    }

    /// Runs `ferry <args>` as this machine.
    pub fn ferry(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ferry")
    }

    /// Runs `ferry <args>` and panics with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        assert!(
            out.status.success(),
            "ferry {args:?} failed ({}):\n{}\n{}\nlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.reach(&self.state.join("ferry.log"))).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The head of machine `id`'s branch as this machine's store last fetched it: a bench
    /// watches it to see a change arrive without making the daemon serve anything.
    pub fn fetched_head(&self, id: &str) -> Option<git2::Oid> {
        ferry_sync::store::Store::open(&self.state.join("store"))
            .ok()?
            .head(id, false)
            .ok()?
    }

    /// The running daemon's pid.
    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.reach(&self.state.join("daemon.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the view is mounted (per the kernel's mount table).
    pub fn mounted(&self) -> bool {
        let info = match &self.elsewhere {
            Some(e) => e.mountinfo(),
            None => std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        };
        let want = self.home.join(".claude/projects");
        info.lines().any(|l| l.split(' ').nth(4) == want.to_str())
    }

    /// Kills the daemon with SIGKILL (a crash), with the `git` it may be running (it leads its
    /// own process group), and waits until all of it is gone.
    pub fn kill_9(&self) {
        let pid = self.daemon_pid().expect("the daemon runs");
        kill_group(pid);
    }

    /// Waits until `pid` is gone (or panics after `limit`).
    pub fn wait_gone(pid: i32, limit: Duration) {
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
            {
                return;
            }
            assert!(start.elapsed() < limit, "process {pid} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Two machines, `a` and `b`, set up (`ferry init`) with one shared bare `file://` remote and
/// a checkout of the same project at `~/work/proj` under each HOME.
pub struct Pair {
    /// The bare remote.
    pub remote: PathBuf,
    /// Machine a.
    pub a: Machine,
    /// Machine b.
    pub b: Machine,
    /// a's checkout.
    pub a_proj: PathBuf,
    /// b's checkout.
    pub b_proj: PathBuf,
}

impl Pair {
    /// Sets the pair up under `dir`.
    pub fn new(dir: &Path) -> Pair {
        let remote = dir.join("remote.git");
        git2::Repository::init_bare(&remote).expect("bare remote");
        let url = format!("file://{}", remote.display());
        let a = Machine::new(&dir.join("a"));
        let b = Machine::new(&dir.join("b"));
        let (a_proj, b_proj) = (a.home.join("work/proj"), b.home.join("work/proj"));
        for (m, proj, name) in [(&a, &a_proj, "a"), (&b, &b_proj, "b")] {
            std::fs::create_dir_all(proj).expect("checkout dir");
            m.ok(&["init", "--machine", name, "--remote", &url]);
        }
        Pair {
            remote,
            a,
            b,
            a_proj,
            b_proj,
        }
    }
}

impl Pair {
    /// Mounts both machines and returns transcript `name` of the project as each view shows
    /// it (on a, then on b), with its dir created on a.
    pub fn mounted_session(&self, name: &str) -> (PathBuf, PathBuf) {
        self.a.ok(&["mount"]);
        self.b.ok(&["mount"]);
        let at = |m: &Machine, proj: &Path| {
            m.projects()
                .join(ferry_sync::slug::slug(proj.to_str().expect("UTF-8")))
                .join(name)
        };
        let (on_a, on_b) = (at(&self.a, &self.a_proj), at(&self.b, &self.b_proj));
        std::fs::create_dir_all(on_a.parent().expect("a slug dir")).expect("project dir");
        (on_a, on_b)
    }
}

impl Drop for Machine {
    /// Never leaves a mount behind, whatever the test did.
    fn drop(&mut self) {
        if self.mounted() {
            let _ = self.ferry(&["unmount"]);
        }
        if self.mounted() && self.elsewhere.is_none() {
            let _ = nix_umount(&self.projects());
        }
    }
}

fn nix_umount(path: &Path) -> std::io::Result<()> {
    let status = Command::new("umount").arg("-l").arg(path).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("umount -l failed"))
    }
}

/// Kills process group `pgid` with SIGKILL and waits until nothing of it runs. A crash test
/// kills a process together with the `git` it runs for a fetch or a push: killed alone, that
/// git goes on writing to the store or the remote while the test checks them (`git fsck` once
/// read the remote's refs after a push it had not seen the objects of finish).
pub fn kill_group(pgid: i32) {
    let ok = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -9 -{pgid}");
    let start = Instant::now();
    while in_group(pgid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process group {pgid} did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a live process (not a zombie) is in process group `pgid`.
fn in_group(pgid: i32) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        // After the command's name: state, parent, process group.
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        state != "Z" && group == Some(pgid)
    })
}
