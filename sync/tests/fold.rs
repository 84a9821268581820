//! The history horizon: folding a machine's history older than the horizon keeps every commit
//! inside it and every live file, survives `kill -9` at any point, and drops a tombstone only
//! when no machine could bring its file back.

mod common;

use ferry_sync::store::{
    Batch, Change, FOLDED_TRAILER, FileState, FileUpdate, MachineRecord, ProjectRecord, RelPath,
    SEEN_MARGIN_MS, Store, own_ref,
};
use git2::Oid;
use std::path::{Path, PathBuf};

const KEY: &str = "github.com/o/proj";
const DAY_S: i64 = 24 * 3600;

struct Machine {
    record: MachineRecord,
    project: ProjectRecord,
    upper: PathBuf,
    store_path: PathBuf,
    store: Store,
    _tmp: tempfile::TempDir,
}

fn machine(id: &str) -> Machine {
    let tmp = tempfile::tempdir().unwrap();
    let home = format!("/home/{id}");
    let record = common::linux_machine(id, &home);
    let project = common::project(KEY, &format!("{home}/src/proj"));
    let upper = tmp.path().join("projects").join(&project.slug);
    std::fs::create_dir_all(&upper).unwrap();
    let store_path = tmp.path().join("store.git");
    let store = Store::init(&store_path).unwrap();
    Machine {
        record,
        project,
        upper,
        store_path,
        store,
        _tmp: tmp,
    }
}

impl Machine {
    fn update(&self, rel: &str, change: Change) -> FileUpdate {
        FileUpdate {
            place: self.project.place(),
            rel: RelPath::new(rel).unwrap(),
            change,
        }
    }

    /// Writes `text` as the whole of `rel` and commits it.
    fn write(&self, rel: &str, text: &str) -> Oid {
        let local = self.upper.join(rel);
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, text).unwrap();
        let change = Change::Write {
            local,
            dirty_from: None,
        };
        self.commit(vec![self.update(rel, change)])
    }

    fn delete(&self, rel: &str, at_ms: i64) -> Oid {
        std::fs::remove_file(self.upper.join(rel)).ok();
        self.commit(vec![self.update(rel, Change::Delete { at_ms })])
    }

    fn commit(&self, files: Vec<FileUpdate>) -> Oid {
        let batch = Batch {
            projects: vec![self.project.clone()],
            files,
        };
        self.store.commit(&self.record, &batch).unwrap().unwrap()
    }

    fn head(&self) -> Oid {
        self.store.head(&self.record.id, true).unwrap().unwrap()
    }

    /// Fetches `other`'s own branch as a remote machine's.
    fn fetch(&self, other: &Machine) {
        let repo = self.store.repo();
        let mut remote = repo
            .remote_anonymous(other.store_path.to_str().unwrap())
            .unwrap();
        let spec = format!(
            "+{}:refs/remotes/origin/machines/{}",
            own_ref(&other.record.id),
            other.record.id
        );
        remote.fetch(&[spec.as_str()], None, None).unwrap();
    }

    /// Whether `rel` shows in this machine's view.
    fn sees(&self, rel: &str) -> bool {
        let snaps = ferry_sync::view::snapshots(&self.store, &self.record.id).unwrap();
        ferry_sync::view::view_of(&snaps, &self.record.id, KEY, rel).visible()
    }
}

/// One commit of a chain as a fold must keep it: its tree, time and message.
#[derive(Debug, PartialEq, Eq)]
struct Kept {
    tree: Oid,
    time: i64,
    message: String,
}

/// The first-parent chain from `head`, oldest first.
fn chain(store: &Store, head: Oid) -> Vec<Kept> {
    let repo = store.repo();
    let mut out = Vec::new();
    let mut at = Some(repo.find_commit(head).unwrap());
    while let Some(c) = at {
        out.push(Kept {
            tree: c.tree_id(),
            time: c.time().seconds(),
            message: c.message().unwrap().to_string(),
        });
        at = c.parent(0).ok();
    }
    out.reverse();
    out
}

/// Rewrites `m`'s branch so that its commits, oldest first, are dated `times` (seconds).
fn backdate(m: &Machine, times: &[i64]) {
    let refname = own_ref(&m.record.id);
    let repo = m.store.repo();
    assert_eq!(
        common::chain_len(repo, &refname),
        times.len(),
        "one time per commit"
    );
    common::redate_chain(repo, &refname, |i, _| times[i]);
}

/// A machine with `days` commits, one a day ending yesterday, each appending a line to the
/// transcript and rewriting a note; returns the commits' times (oldest first).
fn history_of_days(m: &Machine, days: i64) -> Vec<i64> {
    let now = now_s();
    let mut transcript = String::new();
    for d in 0..days {
        transcript += &format!("{{\"uuid\":\"u{d}\",\"cwd\":\"/home/a/src/proj\"}}\n");
        m.write("s.jsonl", &transcript);
        m.write("notes.md", &format!("day {d}\n"));
    }
    let times: Vec<i64> = (0..2 * days)
        .map(|i| now - (days - i / 2) * DAY_S + (i % 2) * 60)
        .collect();
    backdate(m, &times);
    times
}

fn ms(s: i64) -> i64 {
    s * 1000
}

fn git_fsck(store: &Path) {
    if cfg!(windows) {
        return;
    }
    let out = std::process::Command::new("git")
        .args(["fsck", "--strict", "--no-dangling"])
        .current_dir(store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git fsck: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_fold_keeps_every_commit_inside_the_horizon_and_the_live_files() {
    let a = machine("aaaa");
    let times = history_of_days(&a, 10);
    let before = chain(&a.store, a.head());
    let old_head = a.head();
    // The horizon falls between the commits of day 5 and day 6 (of 0..10).
    let horizon = ms(times[12] - 1);
    let stats = a
        .store
        .fold_history(&a.record.id, horizon, ms(DAY_S))
        .unwrap()
        .expect("ten days of history, horizon at day 6: due");
    let after = chain(&a.store, a.head());
    // The commits at or after the horizon, exactly; before them, the state at the horizon.
    assert_eq!(after[1..], before[12..]);
    assert_eq!(after.len(), stats.kept);
    assert_eq!(stats.folded, 11);
    assert_eq!(
        after[0].tree, before[11].tree,
        "the state just before the horizon"
    );
    assert_eq!(after[0].time, before[11].time);
    assert!(after[0].message.contains(FOLDED_TRAILER));
    assert_eq!(stats.since_ms, ms(before[11].time));
    assert_eq!(
        a.store.folded_since(a.head()).unwrap(),
        Some(ms(before[11].time))
    );
    assert_eq!(a.store.folded_since(old_head).unwrap(), None);
    // The old head is kept until the fold is pushed; then compaction reclaims the old commits.
    assert_eq!(a.store.fold_pending(&a.record.id).unwrap(), Some(old_head));
    a.store.forget_fold(&a.record.id).unwrap();
    a.store.compact_pruning(std::time::Duration::ZERO).unwrap();
    let a2 = Store::open(&a.store_path).unwrap();
    assert!(a2.repo().find_commit(old_head).is_err(), "folded away");
    git_fsck(&a.store_path);
    // Every version inside the horizon is still restorable; nothing older than its first.
    let history = a2
        .history(
            a.head(),
            &a.project.place(),
            &RelPath::new("notes.md").unwrap(),
            100,
        )
        .unwrap();
    let notes: Vec<String> = history
        .iter()
        .map(|h| String::from_utf8(a2.read(&h.file).unwrap()).unwrap())
        .collect();
    let want: Vec<String> = (5..10).rev().map(|d| format!("day {d}\n")).collect();
    assert_eq!(notes, want);
}

#[test]
fn a_fold_waits_until_a_slack_of_history_has_gathered_past_the_horizon() {
    let a = machine("aaaa");
    let times = history_of_days(&a, 10);
    let head = a.head();
    // Nothing older than the horizon.
    assert_eq!(
        a.store
            .fold_history(&a.record.id, ms(times[0] - 1), 0)
            .unwrap(),
        None
    );
    // Older history, but less than the slack of it.
    assert_eq!(
        a.store
            .fold_history(&a.record.id, ms(times[4] - 1), ms(3 * DAY_S))
            .unwrap(),
        None
    );
    assert_eq!(a.head(), head, "nothing moved");
    assert_eq!(a.store.fold_pending(&a.record.id).unwrap(), None);
    // Once folded, the next fold is due only a slack later.
    let folded = a
        .store
        .fold_history(&a.record.id, ms(times[4] - 1), ms(DAY_S))
        .unwrap();
    assert!(folded.is_some());
    a.store.forget_fold(&a.record.id).unwrap();
    let again = a
        .store
        .fold_history(&a.record.id, ms(times[5] - 1), ms(DAY_S))
        .unwrap();
    assert_eq!(again, None, "the first commit kept is within a day's slack");
    // (Pushed: the next fold may go.)
    a.store.forget_fold(&a.record.id).unwrap();
    let later = a
        .store
        .fold_history(&a.record.id, ms(times[8] - 1), ms(DAY_S))
        .unwrap();
    assert_eq!(later.map(|s| s.folded), Some(4), "two days on");
}

/// Re-dates every commit of `m`'s branch to `from_s` and a second apart after it: deletions
/// here are dated ahead of now, and what other machines record as seen of `m` is its commits'
/// times.
fn redate(m: &Machine, from_s: i64) {
    let n = chain(&m.store, m.head()).len() as i64;
    backdate(m, &(0..n).map(|i| from_s + i).collect::<Vec<_>>());
}

#[test]
fn a_tombstone_goes_only_when_no_machine_could_bring_its_file_back() {
    let a = machine("aaaa");
    let b = machine("bbbb");
    let c = machine("cccc");
    a.write("old.jsonl", "{\"uuid\":\"1\"}\n");
    a.write("kept.jsonl", "{\"uuid\":\"2\"}\n");
    // c continued kept.jsonl: its branch holds a version of it.
    c.fetch(&a);
    c.write("kept.jsonl", "{\"uuid\":\"2\"}\n{\"uuid\":\"3\"}\n");
    let deleted_at = ms(now_s() + 3600);
    a.delete("old.jsonl", deleted_at);
    a.delete("kept.jsonl", deleted_at);
    let horizon = deleted_at + 1;
    // b and c have not seen a's branch since the deletions.
    b.fetch(&a);
    b.write("b.md", "x");
    a.fetch(&b);
    a.fetch(&c);
    let dropped = a.store.drop_tombstones(&a.record, horizon).unwrap();
    assert_eq!(
        dropped, 0,
        "no machine has seen a's branch after the deletions"
    );
    // Both have seen it a second after the deletions: within the margin a deletion's commit
    // may take, so not yet.
    let seen_by_both = |at_s: i64, what: &str| {
        redate(&a, at_s);
        for m in [&b, &c] {
            m.fetch(&a);
            m.write(&format!("{}.md", m.record.id), what);
            a.fetch(m);
        }
    };
    seen_by_both(deleted_at / 1000 + 1, "soon");
    let dropped = a.store.drop_tombstones(&a.record, horizon).unwrap();
    assert_eq!(dropped, 0, "seen within the margin");
    // Now both have, past the margin.
    seen_by_both((deleted_at + SEEN_MARGIN_MS) / 1000 + 1, "later");
    let dropped = a.store.drop_tombstones(&a.record, horizon).unwrap();
    assert_eq!(
        dropped, 1,
        "old.jsonl's goes; kept.jsonl's stays, c holds a version"
    );
    let own = a.store.snapshot("own", a.head()).unwrap();
    let states: Vec<(&str, FileState)> = own
        .files
        .iter()
        .map(|f| (f.rel.as_str(), f.meta.state))
        .collect();
    assert!(!states.iter().any(|(r, _)| *r == "old.jsonl"), "{states:?}");
    assert!(
        states
            .iter()
            .any(|(r, s)| *r == "kept.jsonl" && matches!(s, FileState::Deleted { .. })),
        "{states:?}"
    );
    // Neither file comes back anywhere: c's older version of kept.jsonl stays hidden.
    for m in [&a, &b, &c] {
        for other in [&a, &b, &c] {
            if other.record.id != m.record.id {
                m.fetch(other);
            }
        }
        assert!(!m.sees("old.jsonl"), "{} sees old.jsonl", m.record.id);
        assert!(!m.sees("kept.jsonl"), "{} sees kept.jsonl", m.record.id);
    }
}

#[test]
fn a_tombstone_stays_while_a_machine_is_away_for_longer_than_the_horizon() {
    let a = machine("aaaa");
    let b = machine("bbbb");
    let c = machine("cccc");
    a.write("s.jsonl", "{\"uuid\":\"1\"}\n");
    // c fetched, committed once, and went away; offline, it went on with the session.
    c.fetch(&a);
    c.write("c.md", "c");
    let deleted_at = ms(now_s() + 3600);
    a.delete("s.jsonl", deleted_at);
    a.write("a.md", "a");
    redate(&a, now_s() + 2 * 3600);
    // b keeps up and has seen the deletion.
    b.fetch(&a);
    b.write("b.md", "b");
    a.fetch(&b);
    a.fetch(&c);
    let dropped = a.store.drop_tombstones(&a.record, deleted_at + 1).unwrap();
    assert_eq!(dropped, 0, "c never saw the deletion");
    // Past the horizon, a's history is folded meanwhile.
    let times = chain(&a.store, a.head());
    let last = times.last().unwrap().time;
    assert!(
        a.store
            .fold_history(&a.record.id, ms(last), 0)
            .unwrap()
            .is_some()
    );
    // c comes back with the lines it wrote offline (before the deletion, by its clock).
    c.write("s.jsonl", "{\"uuid\":\"1\"}\n{\"uuid\":\"c\"}\n");
    c.fetch(&a);
    c.fetch(&b);
    assert!(!c.sees("s.jsonl"), "the deletion still holds on c");
    b.fetch(&c);
    assert!(!b.sees("s.jsonl"), "and on b");
}

/// Now, in seconds since the epoch.
fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Set for the copy of this test binary that folds a store and is killed part-way.
const CHILD: &str = "FERRY_FOLD_CHILD";

/// Not a test of its own: the body of the process `a_fold_killed_at_any_point_*` kills. Does
/// nothing unless [`CHILD`] names a store, a machine and a horizon.
#[test]
fn fold_child_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.split('\n');
    let (path, id, horizon) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    );
    let store = Store::open(Path::new(path)).unwrap();
    store.fold_history(id, horizon, 0).unwrap().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn spawn_fold(store: &Path, id: &str, horizon: i64) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fold_child_process",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD, format!("{}\n{id}\n{horizon}", store.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_fold_killed_at_any_point_leaves_the_branch_whole_and_the_next_one_finishes_it() {
    let a = machine("aaaa");
    let n = 600;
    for i in 0..n {
        a.write("notes.md", &format!("version {i}\n"));
    }
    let start = now_s() - 30 * DAY_S;
    let times: Vec<i64> = (0..n).map(|i| start + i * 3600).collect();
    backdate(&a, &times);
    // Packed, as a store of months is (and quick to copy for each try).
    a.store.compact_pruning(std::time::Duration::ZERO).unwrap();
    let horizon = ms(times[n as usize / 2]);
    let before = chain(&a.store, a.head());
    let inside = &before[n as usize / 2..];
    let tmp = tempfile::tempdir().unwrap();
    // What a fold left alone makes: the branch to reach in the end.
    let whole = tmp.path().join("whole.git");
    copy_dir(&a.store_path, &whole);
    let t0 = std::time::Instant::now();
    assert!(
        spawn_fold(&whole, "aaaa", horizon)
            .wait()
            .unwrap()
            .success()
    );
    let full = t0.elapsed();
    let s = Store::open(&whole).unwrap();
    let folded = chain(&s, s.head("aaaa", true).unwrap().unwrap());
    assert_eq!(&folded[1..], inside);

    let (mut before_move, mut after_move) = (0, 0);
    let tries = 16;
    // Across the fold's time, and on past it while no kill has come after the move (a loaded
    // machine folds slower than the first, timed, run).
    let mut k = 0;
    while k <= tries || (after_move == 0 && k < 4 * tries) {
        let work = tmp.path().join(format!("try{k}.git"));
        copy_dir(&a.store_path, &work);
        let mut child = spawn_fold(&work, "aaaa", horizon);
        std::thread::sleep(full.mul_f64(1.2 * k as f64 / tries as f64));
        let _ = child.kill();
        child.wait().unwrap();
        let s = Store::open(&work).unwrap();
        s.recover_after_crash().unwrap();
        let head = s.head("aaaa", true).unwrap().unwrap();
        let now = chain(&s, head);
        if now == before {
            before_move += 1;
        } else {
            assert!(
                now == folded,
                "try {k}: folded, or not at all ({} commits)",
                now.len()
            );
            after_move += 1;
        }
        git_fsck(&work);
        // The next start folds what is left to fold, and the result is the same.
        s.fold_history("aaaa", horizon, 0).unwrap();
        let end = chain(&s, s.head("aaaa", true).unwrap().unwrap());
        assert!(
            end == folded,
            "try {k}: {} commits, not the fold's {}",
            end.len(),
            folded.len()
        );
        git_fsck(&work);
        k += 1;
    }
    eprintln!(
        "a fold took {full:?} in a child; killed before its ref moved {before_move} times, after {after_move}"
    );
    assert!(
        before_move > 0 && after_move > 0,
        "{before_move} {after_move}"
    );
}

/// Makes every loose object of `store` an hour and a half old: what compaction may prune.
fn age_loose_objects(store: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(5400);
    for fan in std::fs::read_dir(store.join("objects")).unwrap().flatten() {
        if fan.file_name().len() != 2 {
            continue;
        }
        for object in std::fs::read_dir(fan.path()).unwrap().flatten() {
            let f = std::fs::File::options().write(true).open(object.path());
            // Loose objects are read-only; make them writable to date them.
            let f = f.or_else(|_| {
                let mut p = std::fs::metadata(object.path())?.permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                p.set_readonly(false);
                std::fs::set_permissions(object.path(), p)?;
                std::fs::File::options().write(true).open(object.path())
            });
            f.unwrap().set_modified(old).unwrap();
        }
    }
}

/// Machine `aaaa` with ten days of history written by a run its install no longer lists,
/// pushed to a new bare remote under `tmp`; returns the machine, the remote and its head.
fn pushed_history(tmp: &Path) -> (Machine, PathBuf, Oid) {
    let mut a = machine("aaaa");
    a.store = Store::open(&a.store_path).unwrap().with_run("an-old-run");
    history_of_days(&a, 10);
    let remote = tmp.join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let head = a.head();
    {
        let repo = a.store.repo();
        let mut r = repo.remote_anonymous(remote.to_str().unwrap()).unwrap();
        let spec = format!("+{0}:{0}", own_ref("aaaa"));
        r.push(&[spec.as_str()], None).unwrap();
    }
    a.store.record_pushed("aaaa", head).unwrap();
    (a, remote, head)
}

#[test]
fn the_engine_folds_pushes_the_fold_and_reclaims_what_it_replaced() {
    use ferry_sync::engine::{self, EngineConfig};
    let tmp = tempfile::tempdir().unwrap();
    let (a, remote, old_head) = pushed_history(tmp.path());
    let tip_tree = a.store.repo().find_commit(old_head).unwrap().tree_id();
    age_loose_objects(&a.store_path);
    let config = EngineConfig {
        history: Some(std::time::Duration::from_secs(5 * DAY_S as u64)),
        runs_file: Some(tmp.path().join("runs.json")),
        fetch_every: std::time::Duration::from_millis(300),
        quiet: std::time::Duration::from_millis(100),
        max_delay: std::time::Duration::from_millis(300),
        ..EngineConfig::default()
    };
    let (store_path, record) = (a.store_path.clone(), a.record.clone());
    let remote_url = remote.to_str().unwrap().to_string();
    common::run(async move {
        let e = engine::start(store_path.clone(), record, Some(remote_url), config);
        let start = std::time::Instant::now();
        loop {
            let s = Store::open(&store_path).unwrap();
            let here = s.head("aaaa", true).unwrap();
            let there = git2::Repository::open_bare(&remote)
                .unwrap()
                .refname_to_id(&own_ref("aaaa"))
                .ok();
            let reclaimed = s.repo().find_commit(old_head).is_err();
            if here != Some(old_head) && here == there && reclaimed {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no fold pushed and reclaimed: here {here:?}, there {there:?}, status {:?}",
                e.status()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let status = e.status();
        assert_eq!(status.twin, None, "the fold's old commits are not a twin's");
        e.shutdown(std::time::Duration::from_secs(5)).await;
    });
    let s = Store::open(&a.store_path).unwrap();
    let head = s.head("aaaa", true).unwrap().unwrap();
    assert!(s.folded_since(head).unwrap().is_some());
    assert_eq!(s.fold_pending("aaaa").unwrap(), None);
    assert_eq!(s.repo().find_commit(head).unwrap().tree_id(), tip_tree);
}

#[test]
fn a_fold_not_pushed_yet_is_not_taken_for_a_twin_nor_folded_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _remote, old_head) = pushed_history(tmp.path());
    // The remote holds the old history, written by a run this install no longer lists.
    let horizon = ms(now_s() - 5 * DAY_S);
    assert!(a.store.fold_history("aaaa", horizon, 0).unwrap().is_some());
    assert_eq!(a.store.fold_pending("aaaa").unwrap(), Some(old_head));
    assert_eq!(
        a.store.foreign_runs("aaaa").unwrap(),
        Default::default(),
        "the remote's commits are the fold's old ones, not a twin's"
    );
    // Not pushed yet: no second fold, even one that is due, so the pending ref keeps naming
    // what the remote holds.
    let later = ms(now_s() - DAY_S);
    assert_eq!(a.store.fold_history("aaaa", later, 0).unwrap(), None);
    // A push of the folded branch forgets it; the next fold may go.
    a.store.record_pushed("aaaa", a.head()).unwrap();
    assert_eq!(a.store.fold_pending("aaaa").unwrap(), None);
    assert!(a.store.fold_history("aaaa", later, 0).unwrap().is_some());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "libgit2's local transport does not apply receive.denyNonFastForwards"
)]
fn a_remote_that_refuses_rewritten_branches_gets_the_fold_undone_and_loses_nothing() {
    use ferry_sync::engine::{self, EngineConfig};
    let tmp = tempfile::tempdir().unwrap();
    let (a, remote, old_head) = pushed_history(tmp.path());
    // As `git init --shared` makes it, or a protected branch on a host.
    git2::Repository::open_bare(&remote)
        .unwrap()
        .config()
        .unwrap()
        .set_bool("receive.denyNonFastForwards", true)
        .unwrap();
    let config = EngineConfig {
        history: Some(std::time::Duration::from_secs(5 * DAY_S as u64)),
        runs_file: Some(tmp.path().join("runs.json")),
        fetch_every: std::time::Duration::from_millis(200),
        backoff_max: std::time::Duration::from_millis(300),
        ..EngineConfig::default()
    };
    let (store_path, record) = (a.store_path.clone(), a.record.clone());
    let remote_url = remote.to_str().unwrap().to_string();
    let url = remote_url.clone();
    common::run(async move {
        let e = engine::start(store_path.clone(), record, Some(remote_url), config);
        let start = std::time::Instant::now();
        // The engine folds, the remote refuses the push, the fold is undone and the branch
        // goes out as a fast-forward.
        loop {
            let status = e.status();
            let s = Store::open(&store_path).unwrap();
            let here = s.head("aaaa", true).unwrap().unwrap();
            let there = git2::Repository::open_bare(&remote)
                .unwrap()
                .refname_to_id(&own_ref("aaaa"))
                .unwrap();
            if status.history.is_some() && here == there {
                break;
            }
            assert!(start.elapsed().as_secs() < 20, "{status:?}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let s = Store::open(&store_path).unwrap();
        let head = s.head("aaaa", true).unwrap().unwrap();
        assert!(
            head == old_head || s.repo().graph_descendant_of(head, old_head).unwrap(),
            "the branch keeps its whole history"
        );
        assert_eq!(s.fold_pending("aaaa").unwrap(), None);
        assert_eq!(s.fold_refused(), Some(url));
        assert_eq!(e.status().twin, None);
        e.shutdown(std::time::Duration::from_secs(2)).await;
    });
    // And no fold is tried again against it.
    let s = Store::open(&a.store_path).unwrap();
    let head = s.head("aaaa", true).unwrap().unwrap();
    assert!(s.folded_since(head).unwrap().is_none());
}

#[test]
fn a_commit_dated_too_early_keeps_the_later_history_below_it_inside_the_horizon() {
    let a = machine("aaaa");
    let mut times = history_of_days(&a, 10);
    // The third newest commit was made before the clock was set (a dead CMOS battery).
    let n = times.len();
    times[n - 3] = 946_684_800; // 2000-01-01
    backdate(&a, &times);
    let before = chain(&a.store, a.head());
    let horizon = ms(times[12] - 1);
    a.store
        .fold_history(&a.record.id, horizon, ms(DAY_S))
        .unwrap()
        .expect("due");
    let after = chain(&a.store, a.head());
    // Every commit at or after the horizon by the clock is kept, the early one included.
    assert_eq!(after[1..], before[12..]);
}

#[test]
#[cfg_attr(windows, ignore = "fetches with Linux's git")]
fn a_store_that_fetched_only_the_tips_deepens_after_their_machine_folded() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, remote, _) = pushed_history(tmp.path());
    let url = format!("file://{}", remote.display());
    let b = tmp.path().join("b.git");
    let git = |dir: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git2::Repository::init_bare(&b).unwrap();
    let spec = "+refs/heads/machines/*:refs/remotes/origin/machines/*";
    git(&b, &["fetch", "-q", "--depth=1", &url, spec]);
    // a folds and pushes the folded branch.
    assert!(
        a.store
            .fold_history("aaaa", ms(now_s() - 5 * DAY_S), 0)
            .unwrap()
            .is_some()
    );
    git(
        &a.store_path,
        &[
            "push",
            "-q",
            "--force",
            &url,
            &format!("{0}:{0}", own_ref("aaaa")),
        ],
    );
    // b fetches it and compacts: the tip it fetched first is reachable from nothing now.
    git(&b, &["fetch", "-q", &url, spec]);
    let store = Store::open(&b).unwrap();
    store.compact_pruning(std::time::Duration::ZERO).unwrap();
    // `ferry restore`'s deepening fetch works, and leaves a whole store.
    let progress = ferry_sync::engine::Progress::default();
    ferry_sync::engine::fetch_once(
        &store,
        &url,
        ferry_sync::engine::History::All,
        &progress,
        None,
    )
    .unwrap();
    assert!(!Store::open(&b).unwrap().repo().is_shallow());
    git_fsck(&b);
}

#[test]
#[cfg_attr(windows, ignore = "pushes with Linux's git")]
fn a_force_push_of_a_fold_killed_at_any_point_is_finished_by_the_next_start() {
    use ferry_sync::engine::{self, EngineConfig};
    let tmp = tempfile::tempdir().unwrap();
    let (a, remote, _) = pushed_history(tmp.path());
    assert!(
        a.store
            .fold_history("aaaa", ms(now_s() - 5 * DAY_S), 0)
            .unwrap()
            .is_some()
    );
    let folded = a.head();
    let own = own_ref("aaaa");
    // How long a whole push takes, into a copy of the remote.
    // In a process group of its own, to wait for all of it.
    let push = |to: &Path| {
        let mut cmd = std::process::Command::new("git");
        cmd.args(["push", "-q", "--force"])
            .arg(format!("file://{}", to.display()))
            .arg(format!("{own}:{own}"))
            .current_dir(&a.store_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().unwrap()
    };
    let whole = tmp.path().join("whole.git");
    copy_dir(&remote, &whole);
    let t = std::time::Instant::now();
    assert!(push(&whole).wait().unwrap().success());
    let full = t.elapsed();
    let (mut landed, mut not) = (0, 0);
    for k in 0..=8 {
        let there = tmp.path().join(format!("remote{k}.git"));
        copy_dir(&remote, &there);
        let mut child = push(&there);
        std::thread::sleep(full.mul_f64(1.2 * k as f64 / 8.0));
        // The client only: the remote's side (here the receive-pack git runs for a file://
        // remote) finishes or gives up by itself, as a server's does.
        let _ = child.kill();
        child.wait().unwrap();
        // Until nothing of the group runs.
        while std::process::Command::new("kill")
            .args(["-0", "--", &format!("-{}", child.id())])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let head_there = || {
            git2::Repository::open_bare(&there)
                .unwrap()
                .refname_to_id(&own)
                .unwrap()
        };
        if head_there() == folded {
            landed += 1;
        } else {
            not += 1;
        }
        // The next start of a's engine finishes it: the remote ends at the folded branch, and
        // a forgets the old head.
        let store = tmp.path().join(format!("a{k}.git"));
        copy_dir(&a.store_path, &store);
        // A horizon a day longer: nothing more to fold, so the branch to reach is the fold's.
        let config = EngineConfig {
            history: Some(std::time::Duration::from_secs(6 * DAY_S as u64)),
            runs_file: Some(tmp.path().join(format!("runs{k}.json"))),
            ..EngineConfig::default()
        };
        let url = there.to_str().unwrap().to_string();
        let record = a.record.clone();
        let store2 = store.clone();
        common::run(async move {
            let e = engine::start(store2.clone(), record, Some(url), config);
            let start = std::time::Instant::now();
            while head_there() != folded
                || Store::open(&store2)
                    .unwrap()
                    .fold_pending("aaaa")
                    .unwrap()
                    .is_some()
            {
                assert!(start.elapsed().as_secs() < 20, "try {k}: {:?}", e.status());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let status = e.status();
            assert_eq!(status.twin, None);
            assert_eq!(status.history, None, "try {k}: the fold was not undone");
            e.shutdown(std::time::Duration::from_secs(2)).await;
        });
        git_fsck(&there);
    }
    eprintln!("a push took {full:?}; killed before it landed {not} times, after {landed}");
    assert!(landed > 0 && not > 0, "{landed} {not}");
}
