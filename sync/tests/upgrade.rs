//! A store written by the release before places (one directory per project key, a worktree's
//! files filed under the main checkout's record) opens and upgrades without losing a line:
//! the fixture `fixtures/store-0.1.0.bundle` was made by that release (see `fixtures/README.md`).

mod common;

use ferry_sync::project_key::Link;
use ferry_sync::store::{Change, FileState, PlaceId, RelPath, Store};
use ferry_sync::upper::reconcile;
use ferry_sync::view::{snapshots, view_of};
use std::path::Path;

const KEY: &str = "github.com/o/proj";
const MAIN: &str = "/home/m1/src/proj";
const WORKTREE: &str = "/home/m1/src/proj/.claude/worktrees/feat";

fn line(uuid: &str, cwd: &str) -> String {
    format!(
        "{{\"uuid\":\"{uuid}\",\"cwd\":\"{cwd}\",\"text\":\"{uuid} edits {cwd}/src/main.rs\"}}\n"
    )
}

fn uuids(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["uuid"].as_str().map(str::to_string))
        .collect()
}

/// A store holding the fixture's branches, as the old release left them.
fn old_store(dir: &Path) -> Store {
    let path = dir.join("store.git");
    let store = Store::init(&path).unwrap();
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-0.1.0.bundle");
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&path)
        .args(["fetch", "--quiet"])
        .arg(&bundle)
        .arg("refs/*:refs/*")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store
}

#[test]
#[cfg_attr(windows, ignore = "unpacks its fixture with the git CLI")]
fn a_store_from_before_places_opens_and_upgrades_without_losing_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let store = old_store(tmp.path());
    let m1 = common::linux_machine("m1", "/home/m1");
    // Read as it is: every file, the worktree's session under the main checkout's record.
    let snaps = snapshots(&store, "m1").unwrap();
    assert!(
        snaps.iter().all(|s| s.rejected.is_empty()),
        "{:?}",
        snaps[0].rejected
    );
    let own = snaps.iter().find(|s| s.machine.id == "m1").unwrap();
    let mut rels: Vec<&str> = own.files.iter().map(|f| f.rel.as_str()).collect();
    rels.sort();
    assert_eq!(rels, ["s1.jsonl", "s2.jsonl"]);
    let main_place = PlaceId {
        key: KEY.into(),
        slug: ferry_sync::slug::slug(MAIN),
    };
    let history = store
        .history(
            own.commit,
            &main_place,
            &RelPath::new("s1.jsonl").unwrap(),
            10,
        )
        .unwrap();
    assert_eq!(history.len(), 2, "both versions of s1 in the old directory");

    // The upper layer as the old release left it, with a turn more in each place since.
    let upper = tmp.path().join("projects");
    let (dx, dy) = (
        upper.join(ferry_sync::slug::slug(MAIN)),
        upper.join(ferry_sync::slug::slug(WORKTREE)),
    );
    std::fs::create_dir_all(&dx).unwrap();
    std::fs::create_dir_all(&dy).unwrap();
    std::fs::write(
        dx.join("s1.jsonl"),
        line("u1", MAIN) + &line("u2", MAIN) + &line("u3", MAIN),
    )
    .unwrap();
    std::fs::write(
        dy.join("s2.jsonl"),
        line("w1", WORKTREE) + &line("w2", WORKTREE),
    )
    .unwrap();
    // The worktree is a checkout of the project (here by a link: its directory is not real).
    let links = [Link {
        path: WORKTREE.into(),
        key: KEY.into(),
    }];
    let batch = reconcile(&upper, &store, &m1, &links, &Default::default()).unwrap();
    assert!(
        !batch
            .files
            .iter()
            .any(|f| matches!(f.change, Change::Delete { .. })),
        "the worktree's file in the old directory is no deletion: {:?}",
        batch.files
    );
    let worktree = batch.projects.iter().find(|p| p.root == WORKTREE).unwrap();
    assert_eq!(worktree.key, KEY);
    store.commit(&m1, &batch).unwrap().unwrap();

    // The old directory keeps serving the main checkout; the worktree has a place of its own.
    let snaps = snapshots(&store, "m1").unwrap();
    let own = snaps.iter().find(|s| s.machine.id == "m1").unwrap();
    let s2: Vec<_> = own
        .files
        .iter()
        .filter(|f| f.rel.as_str() == "s2.jsonl")
        .collect();
    assert_eq!(s2.len(), 2, "the old copy and the worktree's own");
    assert!(s2.iter().all(|f| f.meta.state == FileState::Present));
    assert!(s2.iter().any(|f| f.project.root == WORKTREE));
    // Another machine sees every line of every session, once.
    for (rel, want) in [
        ("s1.jsonl", &["u1", "u2", "u3"][..]),
        ("s2.jsonl", &["w1", "w2"][..]),
        ("s3.jsonl", &["v1"][..]),
    ] {
        let view = view_of(&snaps, "m3", KEY, rel);
        let got = uuids(&view.read(&store).unwrap());
        assert_eq!(got, want, "{rel}");
    }
    // A second start finds nothing more to do.
    let again = reconcile(&upper, &store, &m1, &links, &Default::default()).unwrap();
    assert!(again.files.is_empty(), "{:?}", again.files);
}
