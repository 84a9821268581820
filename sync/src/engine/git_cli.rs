//! Fetch and push through the user's own `git`, as a subprocess in the store (as Cargo's
//! `net.git-fetch-with-cli` and jj's subprocess fetch do): ssh config and `Host` aliases, agents,
//! `IdentityFile`, `ProxyJump`, known_hosts, `insteadOf`, `http.sslCAInfo`, proxies and every
//! credential helper behave exactly as in `git fetch`. It never prompts: no terminal prompts, no
//! askpass, ssh in batch mode. libgit2 keeps all local object work; with no usable `git` on
//! PATH the engine falls back to libgit2 (`remote.rs`) and says so in the status.
//!
//! ssh connections are reused through a control socket under the state dir when the user has
//! not set an ssh command of their own, so active syncing does not cost a handshake per fetch.

use super::remote::{Failure, History, Progress, RemoteError, redact, redact_text};
use super::sealed_wire::{ShownShallow, aged, clear_left, move_in, own_name};
use crate::store::{Store, own_ref};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long an idle ssh master connection stays open for the next fetch.
const CONTROL_PERSIST: Duration = Duration::from_secs(300);

/// How many objects before each one git's packing tries as a delta base (its default: 10),
/// for ferry's pushes and repacks. What deltas there are in a store are versions of one chunk or
/// tree, which sort next to each other: on 10,000 sessions with ten rounds of appends, window 2
/// packed 10.70 MB against 10.62 MB with 10 (and 18.3 MB with none), and a first push of
/// 10,000 sessions took 0.74 s against 1.05 s.
const PACK_WINDOW: [&str; 2] = ["-c", "pack.window=2"];

/// Longest unix socket path (`sun_path` is 108 bytes on Linux, 104 on macOS).
const MAX_SOCKET_PATH: usize = 100;

/// The user's `git`, found on PATH, and how ferry runs it.
#[derive(Clone, Debug)]
pub struct GitCli {
    /// `git --version`'s answer (`git version 2.47.3`).
    pub version: String,
    /// The ssh command ferry sets (batch mode, a control socket), unless the user has one.
    ssh: Option<String>,
    /// Remote URLs as git expands them (`url.<base>.insteadOf`), each asked once.
    expanded: Arc<Mutex<std::collections::HashMap<String, String>>>,
}

impl GitCli {
    /// The `git` on PATH, if it runs. `control_dir` is where ssh control sockets go.
    pub fn probe(control_dir: Option<&Path>) -> Option<GitCli> {
        let (version, configured) = asked_git().clone()?;
        Some(GitCli {
            version,
            ssh: ssh_command(control_dir, configured),
            expanded: Arc::default(),
        })
    }

    /// `git` set up to run in the store at `git_dir` (if any), never prompting, in English.
    pub(super) fn command(&self, git_dir: Option<&Path>) -> Command {
        let mut cmd = Command::new("git");
        if let Some(dir) = git_dir {
            cmd.arg("--git-dir").arg(dir);
        }
        // An askpass program named in the user's config would prompt in a window.
        cmd.args(["-c", "core.askPass="])
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GCM_INTERACTIVE", "never")
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ssh) = &self.ssh {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        cmd
    }

    /// A git command on `store` shown only the sealed commits of its shallow list (see
    /// `sealed_wire`), for a transfer that must name no plain commit to the remote; the list
    /// goes once the command has run.
    fn shown_command(
        &self,
        store: &Store,
        url: &str,
        op: &'static str,
    ) -> Result<(Command, ShownShallow), RemoteError> {
        let shown = ShownShallow::write(store).map_err(|e| {
            failure(
                op,
                url,
                Failure::Other,
                format!("writing the shallow list git is shown: {e}"),
            )
        })?;
        let mut cmd = self.command(Some(store.repo().path()));
        cmd.arg("--shallow-file").arg(shown.path());
        Ok((cmd, shown))
    }

    /// The remote's branches under `prefix` (`refs/heads/machines/`), by their full names.
    pub fn heads_under(&self, url: &str, prefix: &str) -> Result<Vec<String>, RemoteError> {
        let mut cmd = self.command(None);
        cmd.current_dir(std::env::temp_dir())
            .args(["ls-remote", "--", url])
            .arg(format!("{prefix}*"));
        let out = run(cmd, "ls-remote", url, None, &Progress::default())?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|name| name.starts_with(prefix))
            .map(String::from)
            .collect())
    }

    /// Fetches `refspec` alone into the store (the encrypted store's keyring), giving up once
    /// the remote has sent more than `max_bytes`.
    pub fn fetch_ref(
        &self,
        store: &Store,
        url: &str,
        refspec: &str,
        max_bytes: u64,
    ) -> Result<(), RemoteError> {
        let (mut cmd, shown) = self.shown_command(store, url, "fetch")?;
        // As a pack, whose growing file bounds what arrives.
        cmd.args(["-c", "fetch.unpackLimit=1"]);
        cmd.args([
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-auto-gc",
        ]);
        // It tells the remote of the commits under the refs it fetches into only (the keyring's
        // versions), never of this store's plain commits.
        if let Some((_, dest)) = refspec.split_once(':') {
            cmd.arg(format!("--negotiation-tip={}", dest.trim_end_matches('*')) + "*");
        }
        cmd.args(["--", url, refspec]);
        // Another fetch (the daemon's) may be receiving beside this one: its packs are neither
        // cleared nor counted.
        let incoming = Incoming::new(store, max_bytes);
        let done = run(cmd, "fetch", url, Some(incoming), &Progress::default()).map(|_| ());
        shown.remove();
        done
    }

    /// Pushes `refspec` alone (not forced unless it says so): the keyring, which every machine
    /// only adds to.
    pub fn push_ref(&self, store: &Store, url: &str, refspec: &str) -> Result<(), RemoteError> {
        let (mut cmd, shown) = self.shown_command(store, url, "push")?;
        cmd.args(PACK_WINDOW)
            .args(["push", "--porcelain", "--", url, refspec]);
        let done = run(cmd, "push", url, None, &Progress::default()).map(|_| ());
        shown.remove();
        done
    }

    /// Sets every ref of `updates` on the remote in one atomic push, each only if the remote
    /// still has it as expected: all of them or none (`ferry encrypt` putting sealed branches
    /// and the keyring in place of plain ones; a machine that pushed meanwhile makes it fail).
    pub fn push_atomic(
        &self,
        store: &Store,
        url: &str,
        updates: &[Lease],
        progress: &Progress,
    ) -> Result<(), RemoteError> {
        let (mut cmd, shown) = self.shown_command(store, url, "push")?;
        cmd.args(PACK_WINDOW)
            .args(["push", "--atomic", "--porcelain", "--progress"]);
        for u in updates {
            let expect = u.expect.map(|o| o.to_string()).unwrap_or_default();
            cmd.arg(format!("--force-with-lease={}:{expect}", u.dst));
        }
        cmd.args(["--", url]);
        // No `+`: it would force each ref from any value, past its lease.
        for u in updates {
            cmd.arg(format!("{}:{}", u.src, u.dst));
        }
        let done = run(cmd, "push", url, None, progress).map(|_| ());
        shown.remove();
        done
    }

    /// The commit the remote's ref `refname` names now (`None`: it has no such ref).
    pub fn head_of(&self, url: &str, refname: &str) -> Result<Option<git2::Oid>, RemoteError> {
        let mut cmd = self.command(None);
        cmd.current_dir(std::env::temp_dir())
            .args(["ls-remote", "--", url, refname]);
        let out = run(cmd, "ls-remote", url, None, &Progress::default())?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(_, name)| *name == refname)
            .and_then(|(id, _)| git2::Oid::from_str(id).ok()))
    }

    /// Asks the remote for its branches (nothing is written): whether it can be reached.
    pub fn ls_remote(&self, url: &str) -> Result<(), RemoteError> {
        let mut cmd = self.command(None);
        cmd.current_dir(std::env::temp_dir())
            .args(["ls-remote", "--heads", "--", url]);
        run(cmd, "ls-remote", url, None, &Progress::default()).map(|_| ())
    }

    /// Fetches every machine's branch into `refs/remotes/origin/machines/*`, giving up once the
    /// remote has sent more than `max_bytes`.
    pub fn fetch(
        &self,
        store: &Store,
        url: &str,
        max_bytes: u64,
        progress: &Progress,
        history: History,
        dest: &str,
    ) -> Result<(), RemoteError> {
        let sealed = dest == crate::crypt::sealing::SEALED_PREFIX;
        let shown = sealed
            .then(|| self.shown_command(store, url, "fetch"))
            .transpose()?;
        let shallow = shown
            .as_ref()
            .map_or_else(|| store.repo().is_shallow(), |(_, s)| !s.is_empty());
        let deepens = match history {
            History::New => false,
            History::Tips => true,
            History::All => shallow,
        };
        // A pack half-received by a fetch that was stopped long ago is garbage, and so is what
        // such a fetch left beside it.
        Incoming::clear_stale(store);
        // git's own `shallow_*` is its shallow list for one fetch from a shallow remote.
        let left = [
            "ferry-fetch-apart-",
            "ferry-shallow-shown-",
            super::fetch_moved::QUARANTINE,
            "shallow_",
        ];
        clear_left(store.repo().path(), &left, LEFT_BY_A_FETCH);
        if let Some((in_store, shown)) = shown {
            let done = if deepens {
                // Run in a repository of its own that holds nothing, so that git names no
                // commit of the store to the remote; what arrives is moved into the store (see
                // `sealed_wire`). A whole-history fetch brings the tips again too.
                let apart = own_name(store.repo().path(), "ferry-fetch-apart");
                // One left by a killed process of the same pid is no fetch's now.
                let _ = std::fs::remove_dir_all(&apart);
                let history = match history {
                    History::Tips => History::Tips,
                    _ => History::New,
                };
                let io = |what: &str, e: &dyn std::fmt::Display| {
                    failure("fetch", url, Failure::Other, format!("{what}: {e}"))
                };
                let done = git2::Repository::init_bare(&apart)
                    .map_err(|e| io("making a repository to fetch into", &e))
                    .and_then(|_| {
                        let (cmd, incoming) =
                            (self.command(Some(&apart)), Incoming::at(&apart, max_bytes));
                        self.fetch_into(cmd, incoming, url, progress, history, dest)
                    })
                    .and_then(|()| {
                        move_in(&apart, store, &shown)
                            .map_err(|e| io("moving what came into the store", &e))
                    });
                let _ = std::fs::remove_dir_all(&apart);
                done
            } else {
                let incoming = Incoming::new(store, max_bytes);
                // Nothing sealed lacks its parents: the whole history is what the store has.
                let history = match history {
                    History::All => History::New,
                    h => h,
                };
                self.fetch_into(in_store, incoming, url, progress, history, dest)
            };
            shown.remove();
            return done;
        }
        let history = match history {
            History::All if !shallow => History::New,
            h => h,
        };
        if history == History::New
            && let Some(target) = self.expanded(url).filter(|t| super::fetch_moved::direct(t))
        {
            let done = self.fetch_moved(store, (url, &target), max_bytes, progress, dest);
            if done.is_err() {
                // Asked again next time, in case the user's git config changed.
                self.expanded.lock().expect("expanded lock").remove(url);
            }
            return done;
        }
        let cmd = self.command(Some(store.repo().path()));
        let incoming = Incoming::new(store, max_bytes);
        self.fetch_into(cmd, incoming, url, progress, history, dest)
    }

    /// `url` as git expands it (`url.<base>.insteadOf`), asked once; none if git cannot say.
    fn expanded(&self, url: &str) -> Option<String> {
        if let Some(known) = self.expanded.lock().expect("expanded lock").get(url) {
            return Some(known.clone());
        }
        let mut cmd = self.command(None);
        cmd.current_dir(std::env::temp_dir())
            .args(["ls-remote", "--get-url", "--", url]);
        let out = run(cmd, "fetch", url, None, &Progress::default()).ok()?;
        let target = out.trim().to_string();
        (!target.is_empty()).then(|| {
            let mut known = self.expanded.lock().expect("expanded lock");
            known.insert(url.to_string(), target.clone());
            target
        })
    }

    /// Runs the fetch `cmd` (git, pointed at a repository) for `history` into `dest`, bounded
    /// as `incoming` says.
    fn fetch_into(
        &self,
        mut cmd: Command,
        incoming: Incoming,
        url: &str,
        progress: &Progress,
        history: History,
        dest: &str,
    ) -> Result<(), RemoteError> {
        // Everything arrives as a pack (never loose objects), whose growing temporary file
        // bounds what a remote can send.
        cmd.args(["-c", "fetch.unpackLimit=1"]);
        cmd.args([
            "fetch",
            "--progress",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-auto-gc",
            "--no-recurse-submodules",
        ]);
        match history {
            History::New => {}
            History::Tips => {
                cmd.arg("--depth=1");
            }
            History::All => {
                cmd.arg("--unshallow");
            }
        }
        // An encrypted store's fetch tells the remote of its sealed commits only, never of
        // the plain ones under this store's other refs.
        if dest == crate::crypt::sealing::SEALED_PREFIX {
            cmd.arg(format!("--negotiation-tip={dest}*"));
        }
        cmd.args(["--", url])
            .arg(format!("+refs/heads/machines/*:{dest}*"))
            .arg(crate::crypt::sealing::FERRY_REFSPEC);
        run(cmd, "fetch", url, Some(incoming), progress).map(|_| ())
    }

    /// Rolls the store's packs up so that each is at least twice the size of the ones after it
    /// (`git repack --geometric=2`): the many small packs fetches leave become one, and the
    /// large pack stays as it is, so this costs about what those packs hold.
    pub fn fold_packs(&self, store: &Store) -> Result<(), RemoteError> {
        let mut cmd = self.command(Some(store.repo().path()));
        cmd.args(PACK_WINDOW).args([
            "repack",
            "-d",
            "-q",
            "--geometric=2",
            "--no-write-bitmap-index",
        ]);
        run(cmd, "repack", "", None, &Progress::default()).map(|_| ())
    }

    /// Packs everything reachable into one pack, reusing the deltas the packs have, drops
    /// what nothing reaches (what a fold of history replaced), and removes unreachable loose
    /// objects older than an hour (`git repack -a -d`, `git prune`; prune also drops the tips
    /// a shallow fetch recorded that are gone). What `Store::compact` does, at a tenth of its
    /// cost, for the user's git to do.
    pub fn reclaim(&self, store: &Store) -> Result<(), RemoteError> {
        let mut cmd = self.command(Some(store.repo().path()));
        cmd.args(PACK_WINDOW)
            .args(["repack", "-a", "-d", "-q", "--no-write-bitmap-index"]);
        run(cmd, "repack", "", None, &Progress::default())?;
        let mut cmd = self.command(Some(store.repo().path()));
        cmd.args(["prune", "--expire=1.hour.ago"]);
        run(cmd, "prune", "", None, &Progress::default()).map(|_| ())
    }

    /// Pushes this machine's branch (forced: the branch is this machine's alone) and records the
    /// pushed commit as the remote's copy of it; `true` when the remote's branch moved (it
    /// lacked this head), as git's porcelain output says.
    pub fn push(
        &self,
        store: &Store,
        url: &str,
        machine_id: &str,
        progress: &Progress,
        sealed: Option<git2::Oid>,
        lease: Option<Option<git2::Oid>>,
    ) -> Result<bool, RemoteError> {
        let own = own_ref(machine_id);
        let Ok(head) = store.repo().refname_to_id(&own) else {
            return Ok(false);
        };
        // A sealed branch's push names no plain commit to the remote.
        let (mut cmd, shown) = match sealed {
            Some(_) => {
                let (cmd, shown) = self.shown_command(store, url, "push")?;
                (cmd, Some(shown))
            }
            None => (self.command(Some(store.repo().path())), None),
        };
        cmd.args(PACK_WINDOW)
            .args(["push", "--porcelain", "--progress"]);
        // A lease forces the ref only from the value it names; a `+` would force it from any.
        let force = match lease {
            Some(expect) => {
                let expect = expect.map(|o| o.to_string()).unwrap_or_default();
                cmd.arg(format!("--force-with-lease={own}:{expect}"));
                ""
            }
            None => "+",
        };
        cmd.args(["--", url])
            .arg(format!("{force}{}:{own}", sealed.unwrap_or(head)));
        // A refused ref makes git exit non-zero; `run` reports its porcelain line.
        let done = run(cmd, "push", url, None, progress);
        if let Some(s) = shown {
            s.remove();
        }
        let moved = ref_moved(&done?);
        store
            .record_pushed(machine_id, head)
            .map_err(|e| failure("push", url, Failure::Other, e.to_string()))?;
        Ok(moved)
    }
}

/// Whether `git push --porcelain` says a ref moved: a line `<flag>\t<from>:<to>\t<summary>`
/// whose flag is a fast-forward (` `), a forced update (`+`) or a new ref (`*`); `=` is a ref
/// already there.
fn ref_moved(porcelain: &str) -> bool {
    porcelain.lines().any(|l| {
        let mut parts = l.splitn(3, '\t');
        matches!(
            (parts.next(), parts.next()),
            (Some(" " | "+" | "*"), Some(refs)) if refs.contains(':')
        )
    })
}

/// One ref of an atomic push: set `dst` on the remote to `src` (an object id or a local ref),
/// if the remote has it at `expect` now (`None`: if it has no such ref).
#[derive(Clone, Debug)]
pub struct Lease {
    /// What to push.
    pub src: String,
    /// The remote's ref.
    pub dst: String,
    /// The remote's value that may be replaced.
    pub expect: Option<git2::Oid>,
}

/// The ssh command ferry sets for git: batch mode (never a passphrase or host-key prompt) and a
/// reused connection; `None` when the user has their own (`GIT_SSH_COMMAND`, `GIT_SSH` or
/// `core.sshCommand`), which is then used as it is.
fn ssh_command(control_dir: Option<&Path>, configured: bool) -> Option<String> {
    if std::env::var_os("GIT_SSH_COMMAND").is_some()
        || std::env::var_os("GIT_SSH").is_some()
        || configured
    {
        return None;
    }
    let mut ssh = "ssh -o BatchMode=yes".to_string();
    if let Some(dir) = control_dir.and_then(control_socket_dir) {
        ssh.push_str(&format!(
            " -o ControlMaster=auto -o ControlPath='{}/%C' -o ControlPersist={}",
            dir.display(),
            CONTROL_PERSIST.as_secs()
        ));
    }
    Some(ssh)
}

/// What `git --version` says, and whether the user's git config names an ssh command
/// (`core.sshCommand`), asked once per process (`None` if git does not run): `ferry init` made
/// three transports, each of which ran the same two programs.
fn asked_git() -> &'static Option<(String, bool)> {
    static ASKED: std::sync::OnceLock<Option<(String, bool)>> = std::sync::OnceLock::new();
    ASKED.get_or_init(|| {
        let out = Command::new("git")
            .arg("--version")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let configured = Command::new("git")
            .args(["config", "--get", "core.sshCommand"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty());
        Some((version, configured))
    })
}

/// The directory for ssh control sockets (created, private), if its sockets' paths fit.
fn control_socket_dir(state: &Path) -> Option<PathBuf> {
    if cfg!(windows) {
        return None;
    }
    let dir = state.join("ssh");
    // `%C` is 40 hex digits.
    if dir.as_os_str().len() + 41 > MAX_SOCKET_PATH || dir.to_str()?.contains('\'') {
        return None;
    }
    std::fs::create_dir_all(&dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    }
    Some(dir)
}

/// Where a fetch's pack arrives, and how big it may grow.
pub(super) struct Incoming {
    /// `objects/pack` of the store: git writes the arriving pack to `tmp_pack_*` there.
    pack_dir: PathBuf,
    /// Most bytes accepted.
    max_bytes: u64,
    /// The packs arriving before this fetch began (another fetch's): not this one's.
    others: std::collections::HashSet<std::ffi::OsString>,
}

/// How old what a fetch leaves in the store's git dir (its repository apart, its shallow list)
/// is before it is taken for a killed fetch's: longer than any fetch runs.
const LEFT_BY_A_FETCH: Duration = Duration::from_secs(6 * 3600);

/// How old a half-received pack is before it is taken for a stopped fetch's.
const STALE_PACK: Duration = Duration::from_secs(600);

impl Incoming {
    /// The packs arriving in `store` from now on, bounded at `max_bytes`.
    fn new(store: &Store, max_bytes: u64) -> Incoming {
        Incoming::at(store.repo().path(), max_bytes)
    }

    /// The packs arriving in the repository at `git_dir` from now on, bounded at `max_bytes`.
    pub(super) fn at(git_dir: &Path, max_bytes: u64) -> Incoming {
        let pack_dir = git_dir.join("objects/pack");
        let others = arriving_in(&pack_dir).map(|e| e.file_name()).collect();
        Incoming {
            pack_dir,
            max_bytes,
            others,
        }
    }

    /// Removes what a fetch stopped long ago left arriving (not what one arriving now has).
    fn clear_stale(store: &Store) {
        clear_pack_dir(
            &store.repo().path().join("objects/pack"),
            STALE_PACK,
            LEFT_BY_A_FETCH,
        );
    }

    fn arriving(&self) -> impl Iterator<Item = std::fs::DirEntry> {
        arriving_in(&self.pack_dir).filter(|e| !self.others.contains(&e.file_name()))
    }

    /// Removes this fetch's packs still arriving, once its git has exited.
    fn remove_left(&self) {
        for e in self.arriving() {
            let _ = std::fs::remove_file(e.path());
        }
    }

    /// Bytes of the packs arriving now.
    fn arrived(&self) -> u64 {
        self.arriving()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Removes, in one pass over `pack_dir`, what killed fetches left there:
/// - half-received packs (`tmp_pack_*`) older than `stale`;
/// - files of packs older than `stale` that have no index: a fetch killed while moving its
///   pack into the store (the index goes in last), which git never reads and never removes;
/// - `.keep` files older than `kept` that a fetch's git wrote ("fetch-pack <pid> on <host>"):
///   each would hold its pack out of every repack for good. Anyone else's stay.
fn clear_pack_dir(pack_dir: &Path, stale: Duration, kept: Duration) {
    for e in std::fs::read_dir(pack_dir).into_iter().flatten().flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let gone = if name.starts_with("tmp_pack_") {
            aged(&e, stale)
        } else if let Some((stem, ext)) = name.strip_prefix("pack-").and_then(|n| n.split_once('.'))
        {
            match ext {
                "pack" | "rev" | "bitmap" => {
                    aged(&e, stale) && !pack_dir.join(format!("pack-{stem}.idx")).exists()
                }
                "keep" => {
                    aged(&e, kept)
                        && std::fs::read(&path).is_ok_and(|b| b.starts_with(b"fetch-pack "))
                }
                _ => false,
            }
        } else {
            false
        };
        if gone {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The packs arriving in `pack_dir` (git's `tmp_pack_*`).
fn arriving_in(pack_dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(pack_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_pack_"))
}

/// A program that did not start (`what`: the program and why), as a failure that says what to
/// do: not the remote's.
fn not_started(op: &'static str, url: &str, what: &str) -> RemoteError {
    failure(
        op,
        url,
        Failure::Other,
        format!("running {what} (is git installed, and on PATH?)"),
    )
}

/// Has `cmd` speak git's first wire protocol (v0), for a `git://` remote. git's own TCP
/// transport does not set `TCP_NODELAY`, and a protocol v2 request goes out in several small
/// writes: the later ones wait for the server's delayed ACK, 40 ms on Linux, once per request.
/// Against `git daemon` on 127.0.0.1, `ls-remote` took 40 ms with v2 and under 5 ms with v0, a
/// fetch that found nothing new 100 ms against 30 ms. Over ssh (through its control socket)
/// the two took the same time. ferry's remote holds only its own few branches, so v2's
/// filtering of the ref advertisement gains it nothing. Set through `GIT_CONFIG_COUNT` (git
/// 2.31), after any pairs the environment already holds; an older git ignores it.
fn first_protocol(cmd: &mut Command) {
    let n = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    cmd.env("GIT_CONFIG_COUNT", (n + 1).to_string())
        .env(format!("GIT_CONFIG_KEY_{n}"), "protocol.version")
        .env(format!("GIT_CONFIG_VALUE_{n}"), "0");
}

/// Runs `cmd`, ticking `progress` on every chunk it writes to stderr (and as a fetch's pack
/// grows), and stopping it when `progress` is cancelled or more than `incoming` allows arrives;
/// its stdout on success.
pub(super) fn run(
    mut cmd: Command,
    op: &'static str,
    url: &str,
    incoming: Option<Incoming>,
    progress: &Progress,
) -> Result<String, RemoteError> {
    let max_bytes = incoming.as_ref().map(|i| i.max_bytes);
    if url.starts_with("git://") {
        first_protocol(&mut cmd);
    }
    // `ls-remote` writes nothing, so it need not die with the daemon: without a step between
    // fork and exec it is spawned without forking this process, whose copy cost more CPU than
    // the `ls-remote` itself (one every poll).
    if subcommand(&cmd) != Some(std::ffi::OsStr::new("ls-remote")) {
        cmd = die_with_this_thread(cmd);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let program = cmd.get_program().to_string_lossy();
        not_started(op, url, &format!("{program}: {e}"))
    })?;
    let mut stderr = child.stderr.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let tail: Arc<Mutex<Vec<u8>>> = Arc::default();
    let too_big = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each reader says when its pipe closed, which is when git exits (or, if a process git
    // started still holds it, later: the wait then looks every 20 ms, as it always did). The
    // wait below wakes then instead of at its next look: about 10 ms saved per run of git, a
    // dozen of which make up a first `ferry init`.
    let (closed, closing) = std::sync::mpsc::channel::<()>();
    let reader = {
        let (tail, too_big, progress) = (tail.clone(), too_big.clone(), progress.clone());
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                progress.tick();
                let mut t = tail.lock().expect("tail lock");
                t.extend_from_slice(&buf[..n]);
                let excess = t.len().saturating_sub(16 << 10);
                t.drain(..excess);
                if let Some((objects, total, bytes)) =
                    transferred(&t[t.len().saturating_sub(512)..])
                {
                    progress.transferred(objects, total, bytes.unwrap_or(0));
                }
                if let Some(max) = max_bytes
                    && received_bytes(&t).is_some_and(|b| b > max)
                {
                    too_big.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let _ = closed.send(());
        })
    };
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        let _ = closed.send(());
        s
    });
    let (mut open_ends, mut after_close) = (2, Duration::from_millis(1));
    let mut arrived = 0;
    let status = loop {
        if let Some(i) = &incoming {
            let now = i.arrived();
            if now != arrived {
                progress.tick();
                progress.bytes(now);
                arrived = now;
            }
            if now > i.max_bytes {
                too_big.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        if progress.cancelled() || too_big.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = child.kill();
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            // Progress and limits are looked at every 20 ms; once git closed both ends it is
            // exiting, and a short sleep finds it gone.
            Ok(None) if open_ends > 0 => match closing.recv_timeout(Duration::from_millis(20)) {
                Ok(()) => open_ends -= 1,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open_ends = 0,
            },
            Ok(None) => {
                std::thread::sleep(after_close);
                after_close = (after_close * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(failure(
                    op,
                    url,
                    Failure::Other,
                    format!("waiting for git: {e}"),
                ));
            }
        }
    };
    let _ = reader.join();
    let stdout = out_reader.join().unwrap_or_default();
    // git was killed (too big, cancelled): the pack it was receiving stays behind, garbage at
    // once (a git that fails on its own removes its own).
    let stopped = too_big.load(std::sync::atomic::Ordering::SeqCst) || progress.cancelled();
    if let Some(i) = incoming.as_ref().filter(|_| stopped) {
        i.remove_left();
    }
    if too_big.load(std::sync::atomic::Ordering::SeqCst) {
        let why = super::remote::too_much(max_bytes.unwrap_or_default());
        return Err(failure(op, url, Failure::Other, why));
    }
    if status.success() {
        return Ok(stdout);
    }
    if progress.cancelled() {
        return Err(failure(
            op,
            url,
            Failure::Network,
            "stopped: it stopped moving",
        ));
    }
    // `push --porcelain` reports refused refs on stdout.
    let mut text = String::from_utf8_lossy(&tail.lock().expect("tail lock")).into_owned();
    // `setpriv` could not start git (removed while this process runs: 127; not executable:
    // 126): said as any failure to start a program is, not as the remote's.
    if matches!(status.code(), Some(126 | 127))
        && let Some(why) = text.strip_prefix("setpriv: failed to execute ")
    {
        return Err(not_started(op, url, why.trim_end()));
    }
    text.push('\n');
    text.push_str(&stdout);
    let (kind, message) = classify(&text, url);
    Err(failure(op, url, kind, message))
}

/// The git subcommand `cmd` runs: its first argument after the `--git-dir` and `-c` options
/// [`GitCli::command`] puts first.
fn subcommand(cmd: &Command) -> Option<&std::ffi::OsStr> {
    let mut args = cmd.get_args();
    while let Some(a) = args.next() {
        if a == "--git-dir" || a == "-c" {
            args.next();
            continue;
        }
        return Some(a);
    }
    None
}

/// Makes git die when the thread that runs it does (Linux): a daemon killed with SIGKILL must
/// not leave a fetch or a push behind it, still writing to the store (whose ref locks the next
/// daemon clears at start) or the remote. `run` waits on the same thread until git exits, so
/// the thread outlives it in every other case.
///
/// util-linux's `setpriv` sets that and runs git, so git is spawned without forking this
/// process (a daemon's copy costs more CPU than a fetch of one change); where it is missing,
/// this process forks and sets it itself.
#[cfg(target_os = "linux")]
fn die_with_this_thread(cmd: Command) -> Command {
    if setpriv_works() {
        through_setpriv(&cmd)
    } else {
        forked(cmd)
    }
}

/// Whether this machine has a `setpriv` that runs a program with `--pdeathsig` (older
/// util-linux releases lack the option); asked once.
#[cfg(target_os = "linux")]
fn setpriv_works() -> bool {
    static SETPRIV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SETPRIV.get_or_init(|| {
        Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `cmd` run by `setpriv --pdeathsig KILL`, with `run`'s stdio. One gap the fork has not:
/// `setpriv` sets the signal just before it runs git, so a daemon killed in the milliseconds
/// before that leaves the git running.
#[cfg(target_os = "linux")]
fn through_setpriv(cmd: &Command) -> Command {
    let mut wrapped = crate::wrapped::under("setpriv", ["--pdeathsig", "KILL", "--"], cmd);
    wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    wrapped
}

/// `cmd` set to receive the signal between fork and exec, and refused if this process is
/// gone by then.
#[cfg(target_os = "linux")]
fn forked(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec the closure only makes two system calls (prctl, getppid),
    // both async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // Gone already, before the line above: no signal will come.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
    cmd
}

#[cfg(not(target_os = "linux"))]
fn die_with_this_thread(cmd: Command) -> Command {
    cmd
}

pub(super) fn failure(
    op: &'static str,
    url: &str,
    kind: Failure,
    message: impl ToString,
) -> RemoteError {
    RemoteError {
        op,
        url: redact(url),
        message: redact_text(&message.to_string()),
        kind,
    }
}

/// The bytes received so far, from the last `Receiving objects: …, 1.50 MiB | …` in git's
/// progress.
fn received_bytes(progress: &[u8]) -> Option<u64> {
    transferred(progress).and_then(|(_, _, bytes)| bytes)
}

/// How far a transfer has got, from the last `Receiving objects:  40% (2/5), 1.50 MiB | …`
/// (a fetch) or `Writing objects: …` (a push) in git's progress: objects, of how many, and the
/// bytes once git has said them.
fn transferred(progress: &[u8]) -> Option<(u64, u64, Option<u64>)> {
    let text = String::from_utf8_lossy(progress);
    let line = text
        .rsplit(['\r', '\n'])
        .find(|l| l.contains("Receiving objects:") || l.contains("Writing objects:"))?;
    let (done, total) = line.split_once('(')?.1.split_once(')')?.0.split_once('/')?;
    let (done, total) = (done.trim().parse().ok()?, total.trim().parse().ok()?);
    Some((done, total, bytes_said(line)))
}

/// The size in `…), 1.50 MiB | …` of a progress line.
fn bytes_said(line: &str) -> Option<u64> {
    let after = line.split("), ").nth(1)?;
    let mut words = after.split_whitespace();
    let n: f64 = words.next()?.parse().ok()?;
    let unit = match words.next()?.trim_end_matches(',') {
        "bytes" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * unit) as u64)
}

/// The host of a remote URL (`ssh://u@h:22/p`, `u@h:p`, `https://h/p`), for messages.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    authority.split(':').next().unwrap_or(authority).to_string()
}

/// Whether `line` is one of git's progress lines ("Resolving deltas: 50% (9/18)").
fn is_progress(line: &str) -> bool {
    const STEPS: [&str; 9] = [
        "Enumerating objects",
        "Counting objects",
        "Delta compression",
        "Compressing objects",
        "Writing objects",
        "Receiving objects",
        "Resolving deltas",
        "Unpacking objects",
        "Total ",
    ];
    STEPS.iter().any(|s| line.starts_with(s))
}

/// What went wrong, from git's and ssh's own words (in the C locale), and the message that
/// says what to do next.
pub fn classify(stderr: &str, url: &str) -> (Failure, String) {
    let host = host_of(url);
    let has = |needle: &str| stderr.contains(needle);
    let (kind, message) = if has("[remote rejected]") || has("[rejected]") {
        // What the remote's hooks said, without the progress git prints between them (each
        // step redrawn after a carriage return).
        let said: Vec<&str> = stderr
            .split(['\n', '\r'])
            .filter_map(|l| l.strip_prefix("remote: "))
            .map(str::trim)
            .filter(|l| !l.is_empty() && !is_progress(l))
            .collect();
        let why = stderr
            .lines()
            .find(|l| l.contains("rejected]"))
            .map(|l| l.rsplit('\t').next().unwrap_or(l).trim())
            .unwrap_or("rejected");
        (
            Failure::Rejected,
            format!(
                "the remote rejected the branch: {why}{}{}; everything stays committed here",
                if said.is_empty() { "" } else { ": " },
                said.join(" ")
            ),
        )
    } else if has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        (
            Failure::HostKeyChanged,
            format!(
                "the ssh host key of {host} CHANGED since it was recorded in ~/.ssh/known_hosts: this may be an attack. If the change is expected (a reinstalled server), remove the old key with `ssh-keygen -R {host}`, connect once with `ssh {host}` to accept the new one, then run `ferry sync`"
            ),
        )
    } else if has("Host key verification failed")
        || has("No ED25519 host key is known")
        || has("host key is known for")
    {
        (
            Failure::HostKeyUnknown,
            format!(
                "the ssh host key of {host} is not known yet: connect once with `ssh {host}` (or add it with `ssh-keyscan {host} >> ~/.ssh/known_hosts`) and check its fingerprint, then run `ferry sync`"
            ),
        )
    } else if has("Could not resolve hostname") || has("Could not resolve host") {
        (
            Failure::Resolve,
            format!(
                "{host} does not resolve: check the remote (`ferry remote show`) and, for an ssh alias, its `Host` entry in ~/.ssh/config"
            ),
        )
    } else if has("Permission denied (publickey") || has("Permission denied (") {
        (
            Failure::Auth,
            format!(
                "{host} refused every ssh key offered: check `ssh -T {host}`, `ssh-add -l` and the `IdentityFile` for it in ~/.ssh/config (a key with a passphrase needs the agent), then run `ferry sync`"
            ),
        )
    } else if has("terminal prompts disabled")
        || has("could not read Username")
        || has("could not read Password")
    {
        (
            Failure::Auth,
            format!(
                "no stored credentials for {host}: set up a credential helper (`git config --global credential.helper store`, or your platform's) and fetch once with `git fetch` so it saves them, then run `ferry sync`"
            ),
        )
    } else if has("Authentication failed") || has("returned error: 401") {
        (
            Failure::Auth,
            format!(
                "{host} refused the stored credentials: update them in your credential helper (for example `git credential reject`, then fetch once with `git fetch` to enter new ones), then run `ferry sync`"
            ),
        )
    } else if has("Repository not found")
        || has("does not appear to be a git repository")
        || has("returned error: 403")
        || has("returned error: 404")
        || has("not found") && has("fatal:")
    {
        (
            Failure::NoAccess,
            format!(
                "the repository at {} does not exist or this account has no access to it: check the URL (`ferry remote show`) and your access, then run `ferry sync`",
                redact(url)
            ),
        )
    } else if has("certificate") || has("SSL") {
        (
            Failure::Auth,
            format!(
                "the TLS certificate of {host} is not trusted: point git at its CA (`git config --global http.sslCAInfo /path/ca.pem`), then run `ferry sync`"
            ),
        )
    } else {
        // The first specific complaint: git's generic advice ("Could not read from remote
        // repository... and the repository exists.") says nothing.
        let generic = |l: &str| {
            l.contains("Could not read from remote repository")
                || l.contains("make sure you have the correct access")
                || l.contains("and the repository exists")
        };
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.contains("objects:") && !generic(l))
            .collect();
        let first = lines
            .iter()
            .position(|l| l.starts_with("fatal:") || l.starts_with("error:"))
            .or(lines.len().checked_sub(1));
        let said = match first {
            // A complaint that ends in a colon goes on on the next line (git:// says "unable
            // to connect to HOST:", then why).
            Some(i) if lines[i].ends_with(':') && i + 1 < lines.len() => {
                format!("{} {}", lines[i], lines[i + 1])
            }
            Some(i) => lines[i].to_string(),
            None => "git failed without a message".to_string(),
        };
        (Failure::Network, said)
    };
    (kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferrys_ssh_command_gives_way_to_the_users_and_git_is_asked_once() {
        // The test process's environment decides first; only its own config is looked at here.
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            let dir = tempfile::tempdir().unwrap();
            let ours = ssh_command(Some(dir.path()), false).expect("ferry's when none is set");
            assert!(ours.starts_with("ssh -o BatchMode=yes"), "{ours}");
            // Windows's ssh has no control sockets.
            assert_eq!(ours.contains("ControlMaster=auto"), cfg!(unix), "{ours}");
        }
        assert_eq!(ssh_command(None, true), None, "the user's config names one");
        assert!(std::ptr::eq(asked_git(), asked_git()));
        // (Wine has no git: then neither probe finds one.)
        let version = || GitCli::probe(None).map(|g| g.version);
        assert_eq!(version(), version());
        if cfg!(unix) {
            let v = version().expect("git runs");
            assert!(v.starts_with("git version"), "{v}");
        }
    }

    #[test]
    fn a_push_moved_the_ref_only_when_git_says_it_did() {
        let said = |flag: &str, summary: &str| {
            format!("To ../r.git\n{flag}\t1784e1af:refs/heads/machines/x\t{summary}\nDone\n")
        };
        assert!(ref_moved(&said("*", "[new branch]")));
        assert!(ref_moved(&said(" ", "1784e1a..78ba2d2")));
        assert!(ref_moved(&said("+", "78ba2d2...1784e1a (forced update)")));
        assert!(!ref_moved(&said("=", "[up to date]")));
        assert!(!ref_moved(&said("!", "[rejected] (stale info)")));
        assert!(!ref_moved("To ../r.git\nDone\n"));
    }

    #[test]
    fn the_subcommand_is_read_past_the_options_ferry_puts_first() {
        let git = GitCli {
            version: String::new(),
            ssh: None,
            expanded: Arc::default(),
        };
        let mut ls = git.command(None);
        ls.args(["ls-remote", "--", "/r.git"]);
        assert_eq!(subcommand(&ls), Some(std::ffi::OsStr::new("ls-remote")));
        // A fetch into a store whose path or refspec says `ls-remote` is still a fetch.
        let mut fetch = git.command(Some(Path::new("ls-remote")));
        fetch.args(["fetch", "--", "/r.git", "ls-remote"]);
        assert_eq!(subcommand(&fetch), Some(std::ffi::OsStr::new("fetch")));
    }

    /// A git that cannot be started (removed while the daemon runs) is said as such, though
    /// it was to start through `setpriv`, and is not taken for the remote's failure.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_git_that_cannot_start_through_setpriv_is_said_as_such() {
        assert!(setpriv_works(), "util-linux's setpriv is missing here");
        let mut cmd = Command::new("/nonexistent/git");
        cmd.arg("push")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let err = run(cmd, "push", "/r.git", None, &Progress::default()).unwrap_err();
        assert_eq!(err.kind, Failure::Other, "{err:?}");
        assert!(
            err.message.starts_with(
                "running /nonexistent/git: No such file or directory (is git installed,"
            ),
            "{err:?}"
        );
    }

    /// Both ways of making git die with the thread that started it: the thread ends once the
    /// child has started (it said so), and the child is killed.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_git_dies_with_the_thread_that_started_it_through_setpriv_or_a_fork() {
        use std::io::BufRead;
        use std::os::unix::process::ExitStatusExt;
        let have_setpriv = setpriv_works();
        type Wrap = fn(Command) -> Command;
        let mut ways: Vec<(&str, Wrap)> = vec![("a fork", forked)];
        if have_setpriv {
            ways.push(("setpriv", |c| through_setpriv(&c)));
        }
        for (how, wrap) in ways {
            let mut child = std::thread::spawn(move || {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", "echo started; exec sleep 30"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = wrap(cmd).spawn().unwrap();
                let mut line = String::new();
                let out = child.stdout.take().unwrap();
                std::io::BufReader::new(out).read_line(&mut line).unwrap();
                assert_eq!(line, "started\n");
                child
            })
            .join()
            .unwrap();
            let started = std::time::Instant::now();
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(9), "{how}: {status:?}");
            assert!(started.elapsed() < Duration::from_secs(5), "{how}");
        }
        assert!(have_setpriv, "util-linux's setpriv is missing here");
    }

    #[cfg(unix)]
    #[test]
    fn a_git_that_exits_at_once_is_seen_gone_at_once_and_one_that_leaves_a_child_still_ends() {
        let sh = |script: &str| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let t = std::time::Instant::now();
            let out = run(cmd, "fetch", "url", None, &Progress::default()).unwrap();
            (out, t.elapsed())
        };
        // The wait once looked every 20 ms: every run of git took at least that.
        let quickest = (0..5).map(|_| sh("echo done")).map(|(out, took)| {
            assert_eq!(out, "done\n");
            took
        });
        let quickest = quickest.min().unwrap();
        assert!(quickest < Duration::from_millis(15), "took {quickest:?}");
        // A process it started holds the pipes past its exit: the wait still ends, with what
        // git wrote.
        let (out, took) = sh("(sleep 0.3) & echo done");
        assert_eq!(out, "done\n");
        assert!(took >= Duration::from_millis(300), "took {took:?}");
    }

    #[test]
    fn only_a_fetchs_old_keep_files_and_unindexed_packs_are_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, age: u64| {
            let path = tmp.path().join(name);
            std::fs::write(&path, text).unwrap();
            let at = std::time::SystemTime::now() - Duration::from_secs(age);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
            path
        };
        let orphan = write("pack-o.pack", "PACK", 7200);
        let young = write("pack-y.pack", "PACK", 10);
        let indexed = write("pack-a.idx", "", 7200);
        let hour = Duration::from_secs(3600);
        clear_pack_dir(tmp.path(), hour, hour);
        assert!(!orphan.exists());
        assert!(young.exists() && indexed.exists());
        let dead = write("pack-a.keep", "fetch-pack 12 on host\n", 7200);
        let live = write("pack-b.keep", "fetch-pack 13 on host\n", 10);
        let users = write("pack-c.keep", "kept by hand\n", 7200);
        let pack = write("pack-a.pack", "fetch-pack ", 7200);
        clear_pack_dir(tmp.path(), hour, hour);
        assert!(!dead.exists());
        assert!(live.exists() && users.exists() && pack.exists());
    }

    #[test]
    fn failures_are_told_apart_and_say_what_to_do() {
        let url = "ssh://git@example.org:2222/me/s.git";
        let cases = [
            (
                "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\nfatal: Could not read from remote repository.",
                Failure::HostKeyChanged,
            ),
            (
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n",
                Failure::HostKeyUnknown,
            ),
            (
                "ssh: Could not resolve hostname work-github: Name or service not known\nfatal: Could not read from remote repository.",
                Failure::Resolve,
            ),
            (
                "git@example.org: Permission denied (publickey).\nfatal: Could not read from remote repository.",
                Failure::Auth,
            ),
            (
                "fatal: could not read Username for 'https://h': terminal prompts disabled",
                Failure::Auth,
            ),
            (
                "remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/r.git/'",
                Failure::Auth,
            ),
            (
                "ERROR: Repository not found.\nfatal: Could not read from remote repository.",
                Failure::NoAccess,
            ),
            (
                "ssh: connect to host h port 22: Connection refused\nfatal: Could not read from remote repository.",
                Failure::Network,
            ),
        ];
        for (stderr, want) in cases {
            let (kind, message) = classify(stderr, url);
            assert_eq!(kind, want, "{stderr}");
            assert!(!message.is_empty());
        }
        assert!(
            classify(cases[0].0, url)
                .1
                .contains("ssh-keygen -R example.org")
        );
        assert!(classify(cases[3].0, url).1.contains("ferry sync"));
        // As git 2.47 printed it for a git:// remote with nothing listening: the why is on
        // the line after.
        let (kind, message) = classify(
            "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused\n",
            "git://127.0.0.1:1/r.git",
        );
        assert_eq!(kind, Failure::Network);
        assert!(message.ends_with("errno=Connection refused"), "{message}");
    }

    #[test]
    fn a_refused_push_says_what_the_remote_said_without_its_progress() {
        // As git 2.47 printed it when a pre-receive hook refused a push.
        let stderr = "remote: Resolving deltas:   0% (0/18)        \rremote: Resolving deltas:  50% (9/18)        \rremote: Resolving deltas: 100% (18/18), done.\nremote: pushes are closed\nTo /tmp/r.git\n!\tabc:refs/heads/machines/a\t[remote rejected] (pre-receive hook declined)\nDone\n";
        let (kind, message) = classify(stderr, "/tmp/r.git");
        assert_eq!(kind, Failure::Rejected);
        assert_eq!(
            message,
            "the remote rejected the branch: [remote rejected] (pre-receive hook declined): pushes are closed; everything stays committed here"
        );
    }

    #[test]
    fn received_bytes_come_from_the_progress_line() {
        let p = b"remote: Enumerating objects: 5\rReceiving objects:  40% (2/5), 1.50 MiB | 3.00 MiB/s\r";
        assert_eq!(received_bytes(p), Some((1.5 * 1024.0 * 1024.0) as u64));
        assert_eq!(
            received_bytes(b"Receiving objects: 100% (5/5), 812 bytes | 1 KiB/s, done.\n"),
            Some(812)
        );
        assert_eq!(received_bytes(b"nothing"), None);
    }

    #[test]
    fn objects_and_bytes_come_from_the_last_counting_line() {
        let p = b"remote: Counting objects: 100% (9/9)\rReceiving objects:  40% (2/5), 1.50 MiB | 3.00 MiB/s\rReceiving objects:  60% (3/5)";
        assert_eq!(transferred(p), Some((3, 5, None)));
        let p = b"Writing objects: 100% (12/12), 3.20 KiB | 3.20 MiB/s, done.\n";
        assert_eq!(transferred(p), Some((12, 12, Some(3276))));
        assert_eq!(transferred(b"remote: Compressing objects: 50% (1/2)"), None);
    }

    #[test]
    fn hosts_of_every_url_shape() {
        assert_eq!(host_of("ssh://git@h.org:22/a/b"), "h.org");
        assert_eq!(host_of("work-github:me/s.git"), "work-github");
        assert_eq!(host_of("git@github.com:me/s.git"), "github.com");
        assert_eq!(host_of("https://u:p@h.org:8443/r.git"), "h.org");
    }
}
