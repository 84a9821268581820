//! Rewritten history on the remote (issue 8), with the built binary, real mounts and a `file://`
//! remote: someone force-pushes machine A's branch back to an empty commit. A notices on its
//! next fetch and pushes its branch again, with no write of its own, so B's view gets back every
//! line; and a rewritten branch of another machine never takes a line out of A's own files.

use ferry_tests::ferry::Pair;
use ferry_tests::git::fsck;
use ferry_tests::lines::{append, holds, machine_id};
use ferry_tests::rig::eventually;
use std::path::Path;
use std::time::Duration;

/// Points every `refs/heads/machines/*` branch of the bare repository at `remote` whose name
/// ends with `machine` at a new root commit with an empty tree; returns how many.
fn rewrite(remote: &Path, machine: &str) -> usize {
    let repo = git2::Repository::open_bare(remote).unwrap();
    let empty = repo
        .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
        .unwrap();
    let sig = git2::Signature::now("mallory", "m@example.com").unwrap();
    let root = repo
        .commit(None, &sig, &sig, "rewritten", &empty, &[])
        .unwrap();
    let names: Vec<String> = repo
        .references_glob("refs/heads/machines/*")
        .unwrap()
        .filter_map(|r| r.ok()?.name().ok().map(str::to_string))
        .filter(|n| n.ends_with(machine))
        .collect();
    for n in &names {
        repo.reference(n, root, true, "force-push").unwrap();
    }
    names.len()
}

#[test]
fn a_force_pushed_branch_is_pushed_back_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Pair::new(tmp.path());
    let (on_a, on_b) = p.mounted_session("s.jsonl");
    let lines = ["a-1", "a-2", "a-3"];
    for u in lines {
        append(&on_a, &p.a_proj, u);
    }
    assert!(
        eventually(Duration::from_secs(30), || holds(&on_b, &lines)),
        "B never saw A's lines:\n{}",
        p.b.log_tail()
    );

    // Mallory rewrites A's branch on the remote.
    assert_eq!(rewrite(&p.remote, &machine_id(&p.a.state)), 1);
    // A writes nothing; on its next fetch it sees its branch differs and pushes it again.
    let repaired = eventually(Duration::from_secs(30), || {
        let repo = git2::Repository::open_bare(&p.remote).unwrap();
        let name = format!("refs/heads/machines/{}", machine_id(&p.a.state));
        repo.refname_to_id(&name)
            .ok()
            .and_then(|id| repo.find_commit(id).ok())
            .is_some_and(|c| c.message().ok() != Some("rewritten"))
    });
    assert!(
        repaired,
        "A never pushed its branch back:\n{}",
        p.a.log_tail()
    );
    assert!(
        eventually(Duration::from_secs(30), || holds(&on_b, &lines)),
        "B lost A's lines after the rewrite:\n{}",
        p.b.log_tail()
    );

    // B's branch rewritten too: A's own file keeps B's lines it already holds (it appended
    // after them), and B pushes its branch back as well.
    append(&on_b, &p.b_proj, "b-1");
    assert!(eventually(Duration::from_secs(30), || holds(
        &on_a,
        &["a-1", "a-2", "a-3", "b-1"]
    )));
    append(&on_a, &p.a_proj, "a-4");
    let all = ["a-1", "a-2", "a-3", "a-4", "b-1"];
    assert!(eventually(Duration::from_secs(30), || holds(&on_b, &all)));
    assert_eq!(rewrite(&p.remote, &machine_id(&p.b.state)), 1);
    std::thread::sleep(Duration::from_secs(3));
    for (name, file) in [("A", &on_a), ("B", &on_b)] {
        assert!(
            eventually(Duration::from_secs(30), || holds(file, &all)),
            "{name} lost a line after B's branch was rewritten"
        );
    }
    p.a.ok(&["unmount"]);
    p.b.ok(&["unmount"]);
    fsck(&p.remote);
}
