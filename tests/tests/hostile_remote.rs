//! A hostile branch on the shared remote, built with plain git: `..` and absolute names, a
//! symlink, a submodule, malformed and missing metadata, an oversized entry. The running daemon
//! fetches it, logs a clear error for each, lists them in `ferry status`, serves only the one
//! good file, nothing appears outside the view, and it keeps working.

use ferry_tests::ferry::Pair;
use ferry_tests::rig::eventually;
use std::time::Duration;

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_hostile_branch_is_refused_entry_by_entry_and_the_daemon_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        remote, a, a_proj, ..
    } = Pair::new(tmp.path());
    a.ok(&["mount"]);
    let key = json(&a.ok(&["where", a_proj.to_str().unwrap(), "--json"]))["project_key"]
        .as_str()
        .expect("a key")
        .to_string();

    // The branch, written straight into the bare remote.
    let repo = git2::Repository::open_bare(&remote).unwrap();
    let blob = |b: &[u8]| repo.blob(b).unwrap();
    let tree = |entries: &[(&str, git2::Oid, i32)]| {
        let mut tb = repo.treebuilder(None).unwrap();
        for (n, id, mode) in entries {
            tb.insert(n, *id, *mode).unwrap();
        }
        tb.write().unwrap()
    };
    let meta = |len: usize| {
        blob(
            format!(r#"{{"mtime_ms":1,"mode":384,"len":{len},"lines":false,"state":"present"}}"#)
                .as_bytes(),
        )
    };
    let file = |data: &[u8]| {
        tree(&[
            ("meta.json", meta(data.len()), 0o100644),
            ("data", blob(data), 0o100644),
        ])
    };
    let files = tree(&[
        ("f.good.txt", file(b"fine"), 0o040000),
        ("f..", file(b"dotdot"), 0o040000),
        (
            "d..",
            tree(&[("f.passwd", file(b"escaped"), 0o040000)]),
            0o040000,
        ),
        ("f.link", blob(b"/etc/passwd"), 0o120000),
        ("f.sub", blob(b""), 0o160000),
        (
            "f.nometa",
            tree(&[("data", blob(b"x"), 0o100644)]),
            0o040000,
        ),
        (
            "f.badmeta",
            tree(&[
                ("meta.json", blob(b"{not json"), 0o100644),
                ("data", blob(b"x"), 0o100644),
            ]),
            0o040000,
        ),
        (
            "f.liar",
            tree(&[
                ("meta.json", meta(1 << 40), 0o100644),
                ("data", blob(b"small"), 0o100644),
            ]),
            0o040000,
        ),
    ]);
    let project = serde_json::json!({
        "key": key, "root": "/home/evil/work/proj", "cwd": "/home/evil/work/proj",
        "slug": "-home-evil-work-proj", "git": null,
    });
    let machine = serde_json::json!({
        "id": "evil", "name": "evil", "os": "linux", "home": "/home/evil", "tmp": "/tmp",
        "claude_dir": "/home/evil/.claude", "claude_tmp": "/tmp/claude-0", "last_seen_ms": 1,
    });
    let project_tree = tree(&[
        (
            "project.json",
            blob(project.to_string().as_bytes()),
            0o100644,
        ),
        ("t", files, 0o040000),
    ]);
    let projects = tree(&[(
        ferry_sync::store::project_dir(&key).as_str(),
        project_tree,
        0o040000,
    )]);
    let root = tree(&[
        (
            "machine.json",
            blob(machine.to_string().as_bytes()),
            0o100644,
        ),
        ("p", projects, 0o040000),
    ]);
    let sig = git2::Signature::now("evil", "e@e").unwrap();
    repo.commit(
        Some("refs/heads/machines/evil"),
        &sig,
        &sig,
        "evil",
        &repo.find_tree(root).unwrap(),
        &[],
    )
    .unwrap();

    // The daemon fetches it by itself and shows the good file only.
    let dir = a
        .projects()
        .join(ferry_sync::slug::slug(a_proj.to_str().unwrap()));
    let good = dir.join("good.txt");
    assert!(
        eventually(Duration::from_secs(30), || good.exists()),
        "the good file arrived:\n{}",
        a.log_tail()
    );
    assert_eq!(std::fs::read_to_string(&good).unwrap(), "fine");
    let mut shown: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        ["good.txt"],
        "nothing else of the hostile branch is shown"
    );
    assert!(!a.projects().join("passwd").exists());
    assert!(!tmp.path().join("a/home/.claude/passwd").exists());

    // Each refusal is logged and listed.
    let listed = || -> Vec<String> {
        json(&a.ok(&["status", "--json"]))["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    eventually(Duration::from_secs(10), || !listed().is_empty());
    let rejected = listed();
    assert!(rejected.len() >= 6, "{rejected:#?}");
    assert!(rejected.iter().all(|r| r.contains("evil")), "{rejected:#?}");
    for why in [
        "not a name",
        "symlink, submodule",
        "malformed",
        "claims 1099511627776 bytes",
    ] {
        assert!(
            rejected.iter().any(|r| r.contains(why)),
            "{why}: {rejected:#?}"
        );
    }
    let log = std::fs::read_to_string(a.state.join("ferry.log")).unwrap();
    assert!(
        log.contains("skipping content from a remote branch"),
        "{}",
        a.log_tail()
    );

    // And the daemon goes on: a new session is written, committed and kept.
    let cwd = a_proj.to_str().unwrap();
    std::fs::write(
        dir.join("after.jsonl"),
        format!("{{\"uuid\":\"x1\",\"cwd\":\"{cwd}\"}}\n"),
    )
    .unwrap();
    assert_eq!(
        a.ferry(&["sync"]).status.code(),
        Some(0),
        "{}",
        a.log_tail()
    );
    let out = a.ok(&["unmount"]);
    assert!(out.contains("unmounted"), "{out}");
    assert!(dir.join("after.jsonl").exists());
}
