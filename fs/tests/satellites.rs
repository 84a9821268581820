//! The satellite mirror over the core, without FUSE: another machine's satellites land in the
//! config dir in this machine's terms and stay out of the view, a change here is never written
//! over, deletions follow their writer, and the prompt history merges every entry once.

mod common;

use common::{B_ROOT, Rig, now_ms};
use ferry_fs::satellites::Mirror;
use ferry_sync::store::Change;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

const SID: &str = "5e55a0e0-0000-4000-8000-000000000001";

fn config_dir(rig: &Rig) -> PathBuf {
    rig.upper.parent().unwrap().to_path_buf()
}

fn mirror(rig: &Rig) -> Mirror {
    Mirror::new(&config_dir(rig), &rig.dir.path().join("state"))
}

/// A pass that looks at every file: between the full ones (every 30 s) a pass looks only at
/// the sessions in use lately, and these tests change files no session here writes.
fn full_pass(m: &mut Mirror, rig: &Rig) -> usize {
    m.look_at_everything();
    m.pass(&rig.fs, true)
}

fn transcript() -> Vec<u8> {
    user_line(B_ROOT, SID).into_bytes()
}

/// A transcript line of session `sid` run in `cwd`.
fn user_line(cwd: &str, sid: &str) -> String {
    serde_json::json!({"type": "user", "cwd": cwd, "sessionId": sid}).to_string() + "\n"
}

/// This machine's root for the project, as the view places it (in this OS's form).
fn root(rig: &Rig) -> String {
    let p = Path::new(&rig.a.home).join("src").join("proj");
    p.to_str().unwrap().to_string()
}

/// A task naming `a.rs` under `root`, `/`-joined for b's root and in this OS's form for ours.
fn task(status: &str, root: &str) -> Vec<u8> {
    let file = if root == B_ROOT {
        format!("{root}/a.rs")
    } else {
        Path::new(root).join("a.rs").to_str().unwrap().to_string()
    };
    let v = serde_json::json!({"id": "1", "subject": format!("edit {file}"), "status": status});
    (v.to_string() + "\n").into_bytes()
}

fn mtime_ms(path: &Path) -> i64 {
    let t = std::fs::metadata(path).unwrap().modified().unwrap();
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A rig where machine b committed session `SID` a minute ago with one task (pending);
/// returns it with the task's store path and time.
fn b_wrote_a_pending_task() -> (Rig, String, i64) {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let t1 = now_ms() - 60_000;
    let rel = format!(".ferry-sat/tasks/{SID}/1.json");
    rig.b_writes_many(&[
        (format!("{SID}.jsonl"), transcript(), t1),
        (rel.clone(), task("pending", B_ROOT), t1),
    ]);
    (rig, rel, t1)
}

#[test]
fn another_machines_satellite_lands_here_in_this_machines_terms_and_stays_out_of_the_view() {
    let (rig, rel, t1) = b_wrote_a_pending_task();
    // Never in the view of projects/.
    let listed: Vec<String> = rig
        .fs
        .readdir(Path::new(&rig.slug()))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, [format!("{SID}.jsonl")]);
    assert!(rig.read(&format!("{}/{rel}", rig.slug())).is_err());

    let mut m = mirror(&rig);
    assert_eq!(full_pass(&mut m, &rig), 1);
    let here = config_dir(&rig).join(format!("tasks/{SID}/1.json"));
    assert_eq!(std::fs::read(&here).unwrap(), task("pending", &root(&rig)));
    assert_eq!(mtime_ms(&here), t1, "it keeps its writer's time");
    // Written here, it is not taken for a change here, now or after a restart.
    assert_eq!(full_pass(&mut m, &rig), 0);
    assert_eq!(full_pass(&mut mirror(&rig), &rig), 0);
    assert!(rig.take_notes().is_empty());

    // A newer version from b replaces it.
    rig.b_writes(&rel, &task("in_progress", B_ROOT), t1 + 1000);
    assert_eq!(full_pass(&mut m, &rig), 1);
    assert_eq!(
        std::fs::read(&here).unwrap(),
        task("in_progress", &root(&rig))
    );
    // A change here is noted before anything is written over it: when b's version is newer
    // still, it wins here, and the engine gets a copy of this machine's version to commit.
    std::fs::write(&here, task("mine", &root(&rig))).unwrap();
    rig.b_writes(&rel, &task("completed", B_ROOT), now_ms() + 60_000);
    full_pass(&mut m, &rig);
    assert_eq!(
        std::fs::read(&here).unwrap(),
        task("completed", &root(&rig))
    );
    let kept: Vec<Vec<u8>> = rig
        .take_notes()
        .into_iter()
        .filter(|(_, r, _)| *r == rel)
        .filter_map(|(_, _, c)| match c {
            Change::Write { local, .. } => std::fs::read(local).ok(),
            _ => None,
        })
        .collect();
    assert!(
        kept.contains(&task("mine", &root(&rig))),
        "this machine's version reaches the store"
    );
    // A change here newer than b's stays.
    std::fs::write(&here, task("newest", &root(&rig))).unwrap();
    let later = UNIX_EPOCH + Duration::from_millis((now_ms() + 120_000) as u64);
    std::fs::File::options()
        .write(true)
        .open(&here)
        .unwrap()
        .set_modified(later)
        .unwrap();
    full_pass(&mut m, &rig);
    assert_eq!(std::fs::read(&here).unwrap(), task("newest", &root(&rig)));

    // Its writer deletes it: gone here too, unless changed here.
    rig.b_deletes(&rel, now_ms() + 90_000);
    full_pass(&mut m, &rig);
    assert!(
        here.exists(),
        "a change here outlives the writer's deletion"
    );
}

#[test]
fn the_writers_deletion_removes_it_and_a_deletion_here_hides_it_here_only() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let t1 = now_ms() - 60_000;
    let fh = |n: u32| format!(".ferry-sat/file-history/{SID}/0123456789abcdef@v{n}");
    rig.b_writes_many(&[
        (format!("{SID}.jsonl"), transcript(), t1),
        (fh(1), b"v1\n".to_vec(), t1),
        (fh(2), b"v2\n".to_vec(), t1),
    ]);
    let mut m = mirror(&rig);
    assert_eq!(full_pass(&mut m, &rig), 2);
    let dir = config_dir(&rig).join("file-history").join(SID);
    let local = |n: u32| dir.join(format!("0123456789abcdef@v{n}"));
    assert_eq!(std::fs::read(local(1)).unwrap(), b"v1\n");

    rig.b_deletes(&fh(1), now_ms());
    full_pass(&mut m, &rig);
    assert!(!local(1).exists(), "its writer deleted it");
    assert!(local(2).exists());

    // Deleted here: hidden here only (another machine's version), never written back.
    std::fs::remove_file(local(2)).unwrap();
    full_pass(&mut m, &rig);
    let notes = rig.take_notes();
    assert!(
        notes
            .iter()
            .any(|(_, r, c)| *r == fh(2)
                && matches!(c, Change::Hide { until_ms } if *until_ms == t1)),
        "{notes:?}"
    );
    full_pass(&mut m, &rig);
    assert!(!local(2).exists());
}

#[test]
fn own_satellites_are_noted_under_their_sessions_place_once_it_is_here() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let slug = ferry_sync::slug::slug(&root(&rig));
    let here = config_dir(&rig).join(format!("tasks/{SID}/1.json"));
    std::fs::create_dir_all(here.parent().unwrap()).unwrap();
    std::fs::write(&here, task("pending", &root(&rig))).unwrap();
    std::fs::write(here.with_file_name(".lock"), b"").unwrap();
    let mut m = mirror(&rig);
    assert_eq!(full_pass(&mut m, &rig), 0, "no session here yet: it waits");
    // The session's transcript arrives in its place here.
    std::fs::create_dir_all(rig.upper.join(&slug)).unwrap();
    let line = user_line(&root(&rig), SID);
    std::fs::write(rig.upper.join(&slug).join(format!("{SID}.jsonl")), line).unwrap();
    // Looked for again a second after the miss.
    assert_eq!(full_pass(&mut m, &rig), 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(full_pass(&mut m, &rig), 1);
    let notes = rig.take_notes();
    assert_eq!(notes.len(), 1, "the lock is never synced: {notes:?}");
    assert_eq!(notes[0].1, format!(".ferry-sat/tasks/{SID}/1.json"));
    assert!(matches!(&notes[0].2, Change::Write { local, .. } if *local == here));
    // Deleted here: a tombstone, since it is this machine's own.
    std::fs::remove_dir_all(here.parent().unwrap()).unwrap();
    full_pass(&mut m, &rig);
    let notes = rig.take_notes();
    assert!(
        matches!(notes.as_slice(), [(_, _, Change::Delete { .. })]),
        "{notes:?}"
    );
}

#[test]
fn prompt_history_merges_every_entry_once_in_time_order_and_exports_only_its_own() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let slug = ferry_sync::slug::slug(&root(&rig));
    let entry = |display: &str, t: i64, root: &str, sid: &str| {
        let v = serde_json::json!({"display": display, "pastedContents": {}, "timestamp": t,
            "project": root, "sessionId": sid});
        v.to_string() + "\n"
    };
    let t = now_ms() - 100_000;
    let theirs = entry("from b", t + 10, B_ROOT, "s-b") + &entry("later b", t + 30, B_ROOT, "s-b");
    rig.b_writes_many(&[
        (format!("{SID}.jsonl"), transcript(), t),
        (".ferry-sat/history.jsonl".into(), theirs.into_bytes(), t),
    ]);
    // This machine's own entry, typed in the project's place here.
    std::fs::create_dir_all(rig.upper.join(&slug)).unwrap();
    std::fs::write(
        rig.upper.join(&slug).join("own.jsonl"),
        user_line(&root(&rig), "s-a"),
    )
    .unwrap();
    let file = config_dir(&rig).join("history.jsonl");
    let mine = entry("from a", t + 20, &root(&rig), "s-a");
    std::fs::write(&file, &mine).unwrap();

    let mut m = mirror(&rig);
    full_pass(&mut m, &rig);
    let want = entry("from b", t + 10, &root(&rig), "s-b")
        + &mine
        + &entry("later b", t + 30, &root(&rig), "s-b");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
    // Only its own entry goes to the store.
    let notes = rig.take_notes();
    let exported: Vec<&PathBuf> = notes
        .iter()
        .filter(|(_, r, _)| r == ".ferry-sat/history.jsonl")
        .filter_map(|(_, _, c)| match c {
            Change::Write { local, .. } => Some(local),
            _ => None,
        })
        .collect();
    assert_eq!(exported.len(), 1, "{notes:?}");
    assert_eq!(std::fs::read_to_string(exported[0]).unwrap(), mine);
    // Again, and after a restart: nothing more, every entry once.
    full_pass(&mut m, &rig);
    full_pass(&mut mirror(&rig), &rig);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
    assert!(rig.take_notes().is_empty());
    // An entry pruned here (Claude Code's own retention) is not brought back.
    let pruned: String = want.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, &pruned).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    full_pass(&mut m, &rig);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), pruned);
}

#[test]
fn a_prompt_recorded_before_its_sessions_first_line_is_exported_once_the_session_is_here() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let slug = ferry_sync::slug::slug(&root(&rig));
    let file = config_dir(&rig).join("history.jsonl");
    let v = serde_json::json!({"display": "early", "timestamp": 1, "project": root(&rig),
        "sessionId": "s-a"});
    let mine = v.to_string() + "\n";
    std::fs::write(&file, &mine).unwrap();
    let mut m = mirror(&rig);
    full_pass(&mut m, &rig);
    assert!(rig.take_notes().is_empty(), "no place for it yet");
    std::fs::create_dir_all(rig.upper.join(&slug)).unwrap();
    std::fs::write(
        rig.upper.join(&slug).join("s-a.jsonl"),
        user_line(&root(&rig), "s-a"),
    )
    .unwrap();
    full_pass(&mut m, &rig);
    let notes = rig.take_notes();
    assert!(
        notes
            .iter()
            .any(|(_, r, _)| r == ".ferry-sat/history.jsonl"),
        "{notes:?}"
    );
}

#[test]
fn between_full_passes_a_session_in_use_here_is_looked_at_and_an_idle_one_waits() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let slug = ferry_sync::slug::slug(&root(&rig));
    std::fs::create_dir_all(rig.upper.join(&slug)).unwrap();
    let transcript = Path::new(&slug).join(format!("{SID}.jsonl"));
    std::fs::write(rig.upper.join(&transcript), user_line(&root(&rig), SID)).unwrap();
    let here = config_dir(&rig).join(format!("tasks/{SID}/1.json"));
    std::fs::create_dir_all(here.parent().unwrap()).unwrap();
    std::fs::write(&here, task("pending", &root(&rig))).unwrap();
    // Written two days ago: not in use lately.
    let old = UNIX_EPOCH + Duration::from_millis((now_ms() - 2 * 86_400_000) as u64);
    let touch = |p: &Path| {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(old).unwrap();
    };
    touch(&here);
    let mut m = mirror(&rig);
    assert_eq!(full_pass(&mut m, &rig), 1);
    rig.take_notes();
    std::fs::write(&here, task("idle edit", &root(&rig))).unwrap();
    touch(&here);
    assert_eq!(
        m.pass(&rig.fs, true),
        0,
        "an idle session waits for the full pass"
    );
    // Claude Code writes the session's transcript through the view: its satellites are looked
    // at from the next pass on.
    let size = std::fs::metadata(rig.upper.join(&transcript))
        .unwrap()
        .len();
    let line = user_line(&root(&rig), SID);
    rig.fs
        .write(&transcript, size, line.as_bytes(), true)
        .unwrap();
    rig.take_notes();
    assert_eq!(m.pass(&rig.fs, true), 1);
    let notes = rig.take_notes();
    assert!(
        notes
            .iter()
            .any(|(_, r, _)| *r == format!(".ferry-sat/tasks/{SID}/1.json")),
        "{notes:?}"
    );
}

#[test]
fn a_deletion_here_not_seen_yet_is_never_undone() {
    let rig = Rig::new();
    std::fs::create_dir_all(rig.dir.path().join("state")).unwrap();
    let t1 = now_ms() - 2 * 86_400_000;
    let fh = |n: u32| format!(".ferry-sat/file-history/{SID}/0123456789abcdef@v{n}");
    rig.b_writes_many(&[
        (format!("{SID}.jsonl"), transcript(), t1),
        (fh(1), b"v1\n".to_vec(), t1),
    ]);
    let mut m = mirror(&rig);
    assert_eq!(full_pass(&mut m, &rig), 1);
    let local = config_dir(&rig)
        .join("file-history")
        .join(SID)
        .join("0123456789abcdef@v1");
    // Deleted by hand in an idle session's directory; b meanwhile adds another checkpoint, so
    // the next (not full) pass writes b's files.
    std::fs::remove_file(&local).unwrap();
    rig.b_writes(&fh(2), b"v2\n", t1 + 1);
    m.pass(&rig.fs, true);
    assert!(!local.exists(), "the deletion here is not undone");
    // The full pass sees it: hidden here, never written back.
    full_pass(&mut m, &rig);
    let notes = rig.take_notes();
    assert!(
        notes
            .iter()
            .any(|(_, r, c)| *r == fh(1) && matches!(c, Change::Hide { .. })),
        "{notes:?}"
    );
    full_pass(&mut m, &rig);
    assert!(!local.exists());
}

#[test]
fn a_satellite_that_arrives_is_written_by_the_next_pass_and_the_index_is_patched_in_place() {
    let (rig, rel, t1) = b_wrote_a_pending_task();
    let mut m = mirror(&rig);
    assert_eq!(full_pass(&mut m, &rig), 1);
    // Passes between the full ones write again only when the index changed.
    assert_eq!(m.pass(&rig.fs, true), 0);
    let before = std::sync::Arc::as_ptr(&rig.fs.foreign_index());
    rig.b_writes(&rel, &task("in_progress", B_ROOT), t1 + 1000);
    // The mirror keeps no hold on the index, so a fetch's patch is made where it is, not on
    // a copy of all of it.
    assert_eq!(
        std::sync::Arc::as_ptr(&rig.fs.foreign_index()),
        before,
        "the index was patched in place"
    );
    assert_eq!(m.pass(&rig.fs, true), 1, "a pass that is not a full one");
    let here = config_dir(&rig).join(format!("tasks/{SID}/1.json"));
    assert_eq!(
        std::fs::read(&here).unwrap(),
        task("in_progress", &root(&rig))
    );
}
