//! Fixtures shared by the sync crate's integration tests and benches (and the fs crate's).

#![allow(dead_code)]

pub mod plain;

use ferry_sync::store::{MachineRecord, ProjectRecord};
use std::time::Duration;

/// A Linux machine record with `home`, `/tmp`, and Claude Code's dirs where they default.
pub fn linux_machine(id: &str, home: &str) -> MachineRecord {
    MachineRecord {
        id: id.into(),
        name: id.into(),
        os: "linux".into(),
        home: home.into(),
        tmp: "/tmp".into(),
        claude_dir: format!("{home}/.claude"),
        claude_tmp: "/tmp/claude-0".into(),
        last_seen_ms: 0,
        seen_ms: Default::default(),
        home_real: None,
        retired: Default::default(),
    }
}

/// The bytes of every file under `p`.
pub fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(md) if md.is_dir() => dir_size(&e.path()),
                    Ok(md) => md.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Every other machine's branch of `store` as fetched, read.
pub fn remote_snapshots(store: &ferry_sync::store::Store) -> Vec<ferry_sync::store::Snapshot> {
    store
        .remote_machines()
        .unwrap()
        .iter()
        .map(|id| {
            store
                .snapshot(id, store.head(id, false).unwrap().unwrap())
                .unwrap()
        })
        .collect()
}

/// Every file path of `snaps`, once each, sorted: what a merged view holds.
pub fn all_paths(snaps: &[ferry_sync::store::Snapshot]) -> Vec<&str> {
    let mut paths: Vec<&str> = snaps
        .iter()
        .flat_map(|s| s.files.iter().map(|f| f.rel.as_str()))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// `git -C dir <args>`, which must succeed; what it printed on stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The record of project `key` checked out at `root`, sessions run at its top.
pub fn project(key: &str, root: &str) -> ProjectRecord {
    ProjectRecord {
        key: key.into(),
        root: root.into(),
        cwd: root.into(),
        slug: ferry_sync::slug::slug(root),
        git: None,
    }
}

/// Runs a test's body on a fresh runtime, then shuts it down without waiting more than a few
/// seconds for blocking git threads: a transfer stuck past libgit2's own timeouts must fail the
/// test it belongs to, never hang the whole binary.
pub fn run<F: std::future::Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(body);
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// Rewrites the first-parent chain of `refname` in `repo` with each commit dated
/// `time_of(index from the oldest, the commit)` (seconds), trees and messages kept, and points
/// `refname` at the new head, which it returns: commits are made now, and the history horizon
/// is about days.
pub fn redate_chain(
    repo: &git2::Repository,
    refname: &str,
    time_of: impl Fn(usize, &git2::Commit) -> i64,
) -> git2::Oid {
    let mut ids = Vec::new();
    let mut at = Some(
        repo.find_commit(repo.refname_to_id(refname).unwrap())
            .unwrap(),
    );
    while let Some(c) = at {
        ids.push(c.id());
        at = c.parent(0).ok();
    }
    ids.reverse();
    let mut parent: Option<git2::Oid> = None;
    for (i, id) in ids.iter().enumerate() {
        let c = repo.find_commit(*id).unwrap();
        let sig = git2::Signature::new(
            c.author().name().unwrap(),
            c.author().email().unwrap(),
            &git2::Time::new(time_of(i, &c), 0),
        )
        .unwrap();
        let parents: Vec<git2::Commit> = parent
            .map(|p| repo.find_commit(p).unwrap())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        let message = c.message_raw().unwrap();
        parent = Some(
            repo.commit(None, &sig, &sig, message, &c.tree().unwrap(), &parents)
                .unwrap(),
        );
    }
    let head = parent.expect("a branch has a commit");
    repo.reference(refname, head, true, "redated").unwrap();
    head
}

/// How many commits `refname`'s first-parent chain holds.
pub fn chain_len(repo: &git2::Repository, refname: &str) -> usize {
    let mut n = 0;
    let mut at = repo.find_commit(repo.refname_to_id(refname).unwrap()).ok();
    while let Some(c) = at {
        n += 1;
        at = c.parent(0).ok();
    }
    n
}

/// A TCP proxy on loopback to `port` passing at most `rate` bytes a second each way, in slices
/// every 50 ms: a slow link that never stalls. Returns the proxy's port.
pub fn slow_link(port: u16, rate: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let pairs = [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ];
            for (from, to) in pairs {
                std::thread::spawn(move || pump(from, to, rate / 20));
            }
        }
    });
    proxy
}

fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, slice: usize) {
    use std::io::{Read, Write};
    let mut buf = vec![0; slice];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
