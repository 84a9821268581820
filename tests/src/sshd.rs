//! Real servers for the remote tests, on 127.0.0.1, started by the tests: an OpenSSH server with
//! its own config, host key, port and log, and local users whose own HOMEs hold their ssh
//! config and keys (ssh reads `~/.ssh` from the account's home, not `$HOME`, so a simulated
//! machine that reaches a remote over ssh is a user of its own).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Runs `cmd`, which must succeed; its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A local account for one test, with its home under the test's dir; removed on drop.
pub struct TestUser {
    /// Its login name.
    pub name: String,
    /// Its home (the account's, so ssh finds `~/.ssh` there).
    pub home: PathBuf,
    /// Its uid.
    pub uid: u32,
}

impl TestUser {
    /// Creates the account `ferry-<tag>-<pid>` with home `dir/<tag>`.
    pub fn create(dir: &Path, tag: &str) -> TestUser {
        let name = format!("fy{tag}{}", std::process::id() % 100_000);
        let home = dir.join(tag);
        std::fs::create_dir_all(home.join(".ssh")).expect("home");
        let _ = Command::new("userdel").arg(&name).output();
        ok(Command::new("useradd")
            .args(["-M", "-p", "*", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name));
        let uid: u32 = ok(Command::new("id").args(["-u", &name]))
            .trim()
            .parse()
            .expect("a uid");
        let user = TestUser { name, home, uid };
        // As a server's user, it reaches the test's repositories, whoever made them.
        std::fs::write(user.home.join(".gitconfig"), "[safe]\n\tdirectory = *\n")
            .expect("gitconfig");
        user.own(&user.home);
        // The test's dirs above it must be passable.
        let mut up = dir.to_path_buf();
        loop {
            let _ = Command::new("chmod").arg("o+x").arg(&up).output();
            if !up.pop() || up == Path::new("/") {
                break;
            }
        }
        user
    }

    /// Gives `path` (recursively) to this user.
    pub fn own(&self, path: &Path) {
        ok(Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.uid))
            .arg(path));
    }

    /// `program args` as this user, with HOME set to its home and the environment given.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.uid.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(program)
        .env_clear()
        .env("HOME", &self.home)
        .env("USER", &self.name)
        .env("LOGNAME", &self.name)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FERRY_HOME", self.home.join("ferry-state"))
        .current_dir(&self.home);
        cmd
    }

    /// `ssh-keygen` a key of `kind` (`ed25519`, `rsa`) at `~/.ssh/<name>`, with a passphrase
    /// if one is given; its public line.
    pub fn keygen(&self, name: &str, kind: &str, passphrase: &str) -> String {
        let path = self.home.join(".ssh").join(name);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("pub"));
        ok(Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
            .arg(&path));
        self.own(&self.home.join(".ssh"));
        std::fs::read_to_string(path.with_extension("pub")).expect("public key")
    }

    /// Writes `~/.ssh/<name>` (config, known_hosts) as this user's own, private file.
    pub fn ssh_file(&self, name: &str, text: &str) {
        let path = self.home.join(".ssh").join(name);
        std::fs::write(&path, text).expect("ssh file");
        self.own(&path);
        ok(Command::new("chmod").arg("600").arg(&path));
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .output();
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// An OpenSSH server on 127.0.0.1 with its own host key, accepting the keys in
/// `authorized_keys` for every account; stopped on drop.
pub struct Sshd {
    child: Child,
    /// Its port.
    pub port: u16,
    /// Its log (`LogLevel VERBOSE`): connections and every failed login.
    pub log: PathBuf,
    /// Where its host key's public half is.
    pub host_key: PathBuf,
    /// The keys it accepts (one per line, for every account).
    pub authorized_keys: PathBuf,
}

impl Sshd {
    /// Starts a server under `dir`.
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).expect("sshd dir");
        std::fs::create_dir_all("/run/sshd").expect("privilege separation dir");
        let host_key = dir.join("host_ed25519");
        if !host_key.exists() {
            ok(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key));
        }
        let authorized_keys = dir.join("authorized_keys");
        if !authorized_keys.exists() {
            std::fs::write(&authorized_keys, "").expect("authorized_keys");
        }
        ok(Command::new("chmod").arg("644").arg(&authorized_keys));
        let port = free_port();
        let log = dir.join("sshd.log");
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\nLogLevel VERBOSE\nMaxAuthTries 6\nMaxStartups 100\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                authorized_keys.display()
            ),
        )
        .expect("sshd_config");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .spawn()
            .expect("sshd starts (apt install openssh-server)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd {
            child,
            port,
            log,
            host_key: host_key.with_extension("pub"),
            authorized_keys,
        }
    }

    /// Accepts `public_key` from now on.
    pub fn authorize(&self, public_key: &str) {
        let mut keys = std::fs::read_to_string(&self.authorized_keys).unwrap_or_default();
        keys.push_str(public_key.trim());
        keys.push('\n');
        std::fs::write(&self.authorized_keys, keys).expect("authorized_keys");
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        let key = std::fs::read_to_string(&self.host_key).expect("host key");
        let mut parts = key.split_whitespace();
        let (kind, body) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        format!("[127.0.0.1]:{} {kind} {body}\n", self.port)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log written since it was `mark` bytes long (a step's own lines: `mark` is
    /// `log_text().len()` when the step began).
    pub fn log_since(&self, mark: usize) -> String {
        self.log_text().get(mark..).unwrap_or_default().to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log_text().matches("Connection from 127.0.0.1").count()
    }

    /// Logins refused so far: keys refused, and connections closed while authenticating.
    pub fn failed_logins(&self) -> usize {
        let log = self.log_text();
        log.lines()
            .filter(|l| {
                l.contains("Failed publickey")
                    || l.contains("Connection closed by authenticating user")
                    || l.contains("Disconnected from authenticating user")
            })
            .count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare repository at `path` owned by `user`, for it to push to over ssh.
pub fn bare_repo_for(path: &Path, user: &TestUser) -> PathBuf {
    ok(Command::new("git").args(["init", "-q", "--bare"]).arg(path));
    user.own(path);
    path.to_path_buf()
}

/// The output of `ferry <args>` run as `user` (not checked).
pub fn ferry_as(user: &TestUser, args: &[&str]) -> Output {
    ferry_as_with(user, args, &[])
}

/// [`ferry_as`] with more environment (`SSH_AUTH_SOCK`, say).
pub fn ferry_as_with(user: &TestUser, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let bin = crate::ferry::ferry_bin();
    let mut up = bin.clone();
    while up.pop() && up != Path::new("/") {
        let _ = Command::new("chmod").arg("o+x").arg(&up).output();
    }
    let mut cmd = user.command(bin);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("ferry runs")
}

/// An ssh agent of `user`'s, listening at `socket`, holding the key `~/.ssh/<key>`; killed with
/// the user.
pub fn agent_with(user: &TestUser, socket: &Path, key: &str) {
    ok(user.command("ssh-agent").arg("-a").arg(socket));
    ok(user
        .command("ssh-add")
        .arg(user.home.join(".ssh").join(key))
        .env("SSH_AUTH_SOCK", socket));
}

/// A bare repository at `path` that every test user may push to.
pub fn shared_repo(path: &Path) -> PathBuf {
    ok(Command::new("git")
        .args(["init", "-q", "--bare", "--shared=0777"])
        .arg(path));
    ok(Command::new("chmod").arg("-R").arg("a+rwX").arg(path));
    path.to_path_buf()
}
