//! What the encrypted-store tests share: a corpus of strings only the machines hold, a remote,
//! a planted project, and a search of the remote's objects for the corpus.

use crate::ferry::Machine;
use crate::git::output as git;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

/// Strings only the machines hold: a user's name in paths, a project's remote, a prompt, a file
/// name, a machine's name, a session id.
pub const CORPUS: &[&str] = &[
    "marguerite",
    "zanzibar-corp",
    "quokka-ledger",
    "flamingo invoices",
    "pelican-report",
    "ocelot-desk",
    "5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44",
];
/// The planted session's id.
pub const SID: &str = "5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44";

/// `ferry init` of machine `name` with remote `url`, and `more`.
pub fn init_args<'a>(name: &'a str, url: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["init", "--machine", name, "--remote", url];
    args.extend(more);
    args
}

/// A new bare remote under `dir`.
pub fn bare(dir: &Path) -> PathBuf {
    let remote = dir.join("remote.git");
    git(dir, &["init", "-q", "--bare", remote.to_str().unwrap()]);
    remote
}

/// A checkout of the planted project in `home`, with its remote named.
pub fn checkout(home: &Path) -> PathBuf {
    let proj = home.join("src/quokka-ledger");
    std::fs::create_dir_all(&proj).unwrap();
    git(&proj, &["init", "-q"]);
    git(
        &proj,
        &[
            "remote",
            "add",
            "origin",
            "git@github.com:zanzibar-corp/quokka-ledger.git",
        ],
    );
    proj
}

/// The project's transcript `name` as `m`'s view shows it.
pub fn transcript(m: &Machine, proj: &Path, name: &str) -> PathBuf {
    m.project_dir(proj).join(name)
}

/// Which strings of the corpus any object of `repo` holds, each read whole and decompressed.
pub fn leaks(repo: &Path) -> Vec<&'static str> {
    let all = git(
        repo,
        &["cat-file", "--batch-all-objects", "--batch", "--unordered"],
    )
    .to_ascii_lowercase();
    found(&all)
}

/// Polls `done` until it holds, failing the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    assert!(
        crate::rig::eventually(limit, done),
        "timed out waiting for {what}"
    );
}

/// Which strings of the corpus the objects reachable from `repo`'s refs hold, each read whole
/// and decompressed (the plain history a rewrite left behind is not reachable).
pub fn reachable_leaks(repo: &Path) -> Vec<&'static str> {
    let listed = String::from_utf8(git(repo, &["rev-list", "--objects", "--all"])).unwrap();
    let ids: String = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| format!("{id}\n"))
        .collect();
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeding = std::thread::spawn(move || stdin.write_all(ids.as_bytes()));
    let out = child.wait_with_output().unwrap();
    feeding.join().unwrap().unwrap();
    assert!(out.status.success());
    found(&out.stdout.to_ascii_lowercase())
}

/// The strings of the corpus in `all`.
fn found(all: &[u8]) -> Vec<&'static str> {
    assert!(all.len() > 500, "the remote holds objects");
    CORPUS
        .iter()
        .filter(|s| all.windows(s.len()).any(|w| w == s.as_bytes()))
        .copied()
        .collect()
}

/// A `ferry` command waiting for `ferry key add` on another machine, and the recipient it said
/// to add.
pub struct Joining {
    /// The command, still running.
    pub child: Child,
    /// Its stderr, from after what it said.
    pub stderr: ChildStderr,
    /// What it said so far.
    pub told: String,
    /// The recipient to add.
    pub recipient: String,
}

/// Starts `m`'s `ferry` with `args` (an `init` or `encrypt` that joins), and reads until it
/// says what to add.
pub fn joining(m: &Machine, args: &[&str]) -> Joining {
    let mut child = m
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut told = String::new();
    let mut buf = [0u8; 4096];
    wait_for("the recipient to add", Duration::from_secs(60), || {
        let n = stderr.read(&mut buf).unwrap_or(0);
        told.push_str(&String::from_utf8_lossy(&buf[..n]));
        told.contains("ferry key add age1") && told.contains('\n')
    });
    let recipient = told
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .unwrap()
        .to_string();
    Joining {
        child,
        stderr,
        told,
        recipient,
    }
}
