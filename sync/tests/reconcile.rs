//! Start-up reconcile of the upper layer with this machine's branch.

mod common;

use ferry_sync::store::{Change, FileState, Store};
use ferry_sync::upper::reconcile;

#[test]
fn reconcile_commits_what_is_new_records_deletions_and_skips_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let root = home.join("src/proj");
    std::fs::create_dir_all(&root).unwrap();
    let projects = home.join(".claude/projects");
    let dir = projects.join(ferry_sync::slug::slug(root.to_str().unwrap()));
    std::fs::create_dir_all(dir.join("s1/tool-results")).unwrap();
    let line = format!("{}\n", serde_json::json!({"cwd": root, "uuid": "u1"}));
    std::fs::write(dir.join("s1.jsonl"), &line).unwrap();
    std::fs::write(dir.join("s1/tool-results/t.txt"), "out").unwrap();
    std::fs::write(dir.join(".credentials.json"), "{\"token\":\"secret\"}").unwrap();
    let machine = common::linux_machine("m1", home.to_str().unwrap());
    let store = Store::init(&tmp.path().join("store.git")).unwrap();
    let batch = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    let mut rels: Vec<&str> = batch.files.iter().map(|f| f.rel.as_str()).collect();
    rels.sort();
    assert_eq!(
        rels,
        ["s1.jsonl", "s1/tool-results/t.txt"],
        "secrets are never synced"
    );
    assert_eq!(batch.projects.len(), 1);
    assert_eq!(batch.projects[0].key, "~/src/proj");
    assert_eq!(batch.projects[0].cwd, root.to_str().unwrap());
    store.commit(&machine, &batch).unwrap().unwrap();

    // Level with the disk: nothing to do.
    let again = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    assert!(again.files.is_empty(), "{:?}", again.files);

    // A file deleted while ferry was not running becomes a tombstone; a changed one is written.
    std::fs::remove_file(dir.join("s1/tool-results/t.txt")).unwrap();
    std::fs::write(dir.join("s1.jsonl"), format!("{line}{line}")).unwrap();
    let batch = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    let change = |rel: &str| {
        batch
            .files
            .iter()
            .find(|f| f.rel.as_str() == rel)
            .map(|f| f.change.clone())
    };
    assert!(matches!(
        change("s1/tool-results/t.txt"),
        Some(Change::Delete { .. })
    ));
    assert!(matches!(
        change("s1.jsonl"),
        Some(Change::Write {
            dirty_from: None,
            ..
        })
    ));
    store.commit(&machine, &batch).unwrap().unwrap();
    let snap = store
        .snapshot("own", store.head("m1", true).unwrap().unwrap())
        .unwrap();
    let t = snap
        .files
        .iter()
        .find(|f| f.rel.as_str() == "s1/tool-results/t.txt")
        .unwrap();
    assert!(matches!(t.meta.state, FileState::Deleted { .. }));
}

#[test]
#[cfg_attr(windows, ignore = "makes its repository with the git CLI")]
fn a_moved_checkout_or_changed_remote_never_turns_sessions_into_tombstones() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let root = home.join("code/r");
    std::fs::create_dir_all(&root).unwrap();
    let run = |args: &[&str]| {
        assert!(
            std::process::Command::new("git")
                .args(args)
                .current_dir(&root)
                .output()
                .unwrap()
                .status
                .success()
        )
    };
    run(&["init", "-q"]);
    run(&["remote", "add", "origin", "git@github.com:o/r.git"]);
    let projects = home.join(".claude/projects");
    let dir = projects.join(ferry_sync::slug::slug(root.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("s.jsonl"),
        format!("{}\n", serde_json::json!({"cwd": root, "uuid": "1"})),
    )
    .unwrap();
    let machine = common::linux_machine("m1", home.to_str().unwrap());
    let store = Store::init(&tmp.path().join("store.git")).unwrap();
    let batch = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    assert_eq!(batch.projects[0].key, "github.com/o/r");
    store.commit(&machine, &batch).unwrap().unwrap();
    // The remote changes and the checkout goes away; the session files stay where they are.
    run(&[
        "remote",
        "set-url",
        "origin",
        "git@github.com:o/renamed.git",
    ]);
    std::fs::remove_dir_all(&root).unwrap();
    let batch = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    assert!(
        batch
            .files
            .iter()
            .all(|f| !matches!(f.change, Change::Delete { .. })),
        "{:?}",
        batch.files
    );
    assert_eq!(
        batch.projects[0].key, "github.com/o/r",
        "the recorded key is kept"
    );
}

#[test]
fn a_memory_dir_at_the_git_root_belongs_to_the_project_even_when_filed_under_its_slug_before() {
    // Sessions run in a subdirectory; Claude Code keeps the project's memory under the git
    // root's slug, where no transcript names a cwd.
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let root = home.join("src").join("r");
    let sub = root.join("pkg");
    std::fs::create_dir_all(&sub).unwrap();
    let repo = git2::Repository::init(&root).unwrap();
    repo.remote("origin", "git@github.com:o/r.git").unwrap();
    let projects = home.join(".claude/projects");
    let (root_s, sub_s) = (root.to_str().unwrap(), sub.to_str().unwrap());
    let (root_dir, sub_dir) = (
        projects.join(ferry_sync::slug::slug(root_s)),
        projects.join(ferry_sync::slug::slug(sub_s)),
    );
    std::fs::create_dir_all(root_dir.join("memory")).unwrap();
    std::fs::create_dir_all(&sub_dir).unwrap();
    std::fs::write(root_dir.join("memory/MEMORY.md"), "- notes\n").unwrap();
    let line = format!("{}\n", serde_json::json!({"cwd": sub_s, "uuid": "u1"}));
    std::fs::write(sub_dir.join("s.jsonl"), &line).unwrap();
    let machine = common::linux_machine("m1", home.to_str().unwrap());
    let store = Store::init(&tmp.path().join("store.git")).unwrap();

    // As the release before filed it: under a key naming the slug, placed at HOME elsewhere.
    let mut old = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    let memory_place = |b: &ferry_sync::store::Batch| {
        b.files
            .iter()
            .find(|f| f.rel.as_str() == "memory/MEMORY.md")
            .map(|f| f.place.clone())
            .unwrap()
    };
    assert_eq!(
        memory_place(&old).key,
        "github.com/o/r",
        "filed under the project"
    );
    let root_record = old
        .projects
        .iter()
        .find(|p| p.slug == ferry_sync::slug::slug(root_s))
        .unwrap();
    assert_eq!(
        (root_record.root.as_str(), root_record.cwd.as_str()),
        (root_s, root_s)
    );
    for p in &mut old.projects {
        if p.slug == ferry_sync::slug::slug(root_s) {
            p.key = format!("slug:{}", p.slug);
            p.root = home.to_str().unwrap().into();
            p.cwd = p.root.clone();
        }
    }
    for f in &mut old.files {
        if f.rel.as_str() == "memory/MEMORY.md" {
            f.place.key = format!("slug:{}", f.place.slug);
        }
    }
    store.commit(&machine, &old).unwrap().unwrap();

    // Today's start files it under the project and retires the old copy.
    let batch = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    let changes: Vec<(String, bool)> = batch
        .files
        .iter()
        .filter(|f| f.rel.as_str() == "memory/MEMORY.md")
        .map(|f| {
            (
                f.place.key.clone(),
                matches!(f.change, Change::Delete { .. }),
            )
        })
        .collect();
    assert!(
        changes.contains(&("github.com/o/r".into(), false)),
        "{changes:?}"
    );
    assert!(
        changes.contains(&(format!("slug:{}", ferry_sync::slug::slug(root_s)), true)),
        "{changes:?}"
    );
    store.commit(&machine, &batch).unwrap().unwrap();
    let again = reconcile(&projects, &store, &machine, &[], &Default::default()).unwrap();
    assert!(again.files.is_empty(), "{:?}", again.files);
}
