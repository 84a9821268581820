//! The history horizon with the built binary, real mounts and a `file://` remote (issue 22,
//! item 1): machine a's history is made to reach back 40 days; once mounted, a folds what is
//! older than its 30 days and force-pushes its branch. b keeps every line, the remote holds no
//! folded commit once git's gc ran there, and `ferry restore` says where history ends.

#[path = "../../sync/tests/common/mod.rs"]
mod common;

use ferry_tests::ferry::Pair;
use ferry_tests::git::fsck;
use ferry_tests::lines::{append, holds, machine_id};
use ferry_tests::rig::eventually;
use std::path::Path;
use std::time::Duration;

const DAY_S: i64 = 24 * 3600;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Re-dates every commit of `refname` in `repo` but the newest `keep` to 40 days ago (a
/// minute apart), as if a had worked then; returns the new head.
fn age_history(repo: &git2::Repository, refname: &str, keep: usize) -> git2::Oid {
    let n = common::chain_len(repo, refname);
    assert!(n > keep + 1, "{n} commits");
    let start = now_s() - 40 * DAY_S;
    common::redate_chain(repo, refname, |i, c| {
        if i < n - keep {
            start + 60 * i as i64
        } else {
            c.time().seconds()
        }
    })
}

/// The first commit of `refname`'s first-parent chain in the repository at `path`.
fn root_message(path: &Path, refname: &str) -> Option<String> {
    let repo = git2::Repository::open_bare(path).ok()?;
    let mut c = repo.find_commit(repo.refname_to_id(refname).ok()?).ok()?;
    while let Ok(p) = c.parent(0) {
        c = p;
    }
    c.message().ok().map(str::to_string)
}

fn commit_count(path: &Path, refname: &str) -> usize {
    let repo = git2::Repository::open_bare(path).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref(refname).unwrap();
    walk.count()
}

#[test]
fn history_older_than_the_horizon_is_folded_here_and_on_the_remote_and_nothing_live_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Pair::new(tmp.path());
    let (on_a, on_b) = p.mounted_session("s.jsonl");
    let mut lines = Vec::new();
    for i in 0..6 {
        let u = format!("a-{i}");
        append(&on_a, &p.a_proj, &u);
        lines.push(u);
        // One commit each: a's history has several versions to fold.
        p.a.ok(&["sync"]);
    }
    let all: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert!(
        eventually(Duration::from_secs(30), || holds(&on_b, &all)),
        "b never saw a's lines:\n{}",
        p.b.log_tail()
    );
    p.a.ok(&["unmount"]);

    // a's history, as if most of it were 40 days old, on a and on the remote alike.
    let id = machine_id(&p.a.state);
    let own = format!("refs/heads/machines/{id}");
    let store = p.a.state.join("store");
    let head = age_history(&git2::Repository::open_bare(&store).unwrap(), &own, 2);
    let push = std::process::Command::new("git")
        .args(["push", "-q", "--force"])
        .arg(format!("file://{}", p.remote.display()))
        .arg(format!("{own}:{own}"))
        .current_dir(&store)
        .output()
        .unwrap();
    assert!(push.status.success(), "{push:?}");
    git2::Repository::open_bare(&store)
        .unwrap()
        .reference(
            &format!("refs/remotes/origin/machines/{id}"),
            head,
            true,
            "pushed",
        )
        .unwrap();
    let before = commit_count(&p.remote, &own);

    // Mounted again, a folds what is older than 30 days and pushes the fold.
    p.a.ok(&["mount"]);
    let folded = eventually(Duration::from_secs(30), || {
        root_message(&p.remote, &own).is_some_and(|m| m.contains("ferry-folded-before: "))
    });
    assert!(folded, "a never pushed a fold:\n{}", p.a.log_tail());
    let after = commit_count(&p.remote, &own);
    assert_eq!(
        after, 3,
        "the two recent commits and the one holding the state before them (of {before})"
    );

    // Nothing live is lost, on either machine, and both keep working.
    append(&on_a, &p.a_proj, "a-after");
    let mut all = all.clone();
    all.push("a-after");
    assert!(
        eventually(Duration::from_secs(30), || holds(&on_b, &all)),
        "b lost a line after the fold:\n{}",
        p.b.log_tail()
    );
    assert!(holds(&on_a, &all));
    let status: serde_json::Value = serde_json::from_str(&p.a.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["history"]["days"], 30);
    assert_eq!(status["history"]["not_folded"], serde_json::Value::Null);
    assert_eq!(
        status["remote"]["twin"],
        serde_json::Value::Null,
        "{status}"
    );

    // `ferry restore` says where history ends, and refuses a time before it in those words.
    let out = p.a.ferry(&["restore", "--list", on_a.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("was folded away on a"), "{said}");
    let day = format!("@{}", now_s() - 45 * DAY_S);
    let out =
        p.a.ferry(&["restore", "--at", &day, on_a.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("no version") && said.contains("was folded away on a"),
        "{said}"
    );

    p.a.ok(&["unmount"]);
    p.b.ok(&["unmount"]);
    // Once git's gc ran on the remote, the folded commits are gone from it.
    let gc = std::process::Command::new("git")
        .args(["gc", "-q", "--prune=now"])
        .current_dir(&p.remote)
        .output()
        .unwrap();
    assert!(gc.status.success());
    fsck(&p.remote);
    let remote = git2::Repository::open_bare(&p.remote).unwrap();
    assert!(
        remote.find_commit(head).is_err(),
        "the folded head is still on the remote"
    );
}
