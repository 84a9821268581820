//! Places (DESIGN.md invariant 6, doc/SEMANTICS.md "Places"): one project used in several
//! directories of this machine (a main checkout, its worktrees, a HOME-relative guess). Another
//! machine's session is listed in exactly one of them, chosen by a rule that survives restarts;
//! this machine's copies elsewhere are merged in, and every place is stored with its own paths.

mod common;

use common::{B_ROOT, KEY, Rig, main_checkout, now_ms, project, two_places, worktree};
use ferry_sync::slug::slug;
use ferry_sync::store::{FileState, Store};
use ferry_sync::view::snapshots;
use std::path::Path;

fn line(uuid: &str, cwd: &str, text: &str) -> String {
    format!("{{\"uuid\":\"{uuid}\",\"cwd\":\"{cwd}\",\"text\":\"{text} {cwd}/main.rs\"}}\n")
}

/// How many lines of `text` carry `uuid`.
fn count(text: &[u8], uuid: &str) -> usize {
    let needle = format!("\"uuid\":\"{uuid}\"");
    String::from_utf8_lossy(text).matches(&needle).count()
}

fn listed(rig: &Rig, slug: &str) -> Vec<String> {
    rig.fs
        .readdir(Path::new(slug))
        .map(|v| {
            v.into_iter()
                .map(|(n, _)| n.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn a_session_written_in_two_places_is_listed_in_one_with_every_line_across_restarts() {
    let mut rig = Rig::new();
    let (main, wt, pm, pw) = two_places(&rig);
    rig.b_writes(
        "s1.jsonl",
        line("u1", B_ROOT, "from b").as_bytes(),
        now_ms() - 60_000,
    );
    // No place here yet: HOME-relative.
    let guessed = rig.slug();
    assert!(rig.read(&format!("{guessed}/s1.jsonl")).is_ok());
    // This machine works in its main checkout: that becomes the project's place.
    std::fs::create_dir_all(rig.upper.join(&pm.slug)).unwrap();
    std::fs::write(
        rig.upper.join(&pm.slug).join("own.jsonl"),
        line("o1", &main, "mine"),
    )
    .unwrap();
    rig.a_commits(&pm, &["own.jsonl"]);
    let at_main = format!("{}/s1.jsonl", pm.slug);
    assert_eq!(
        rig.read(&at_main).unwrap(),
        line("u1", &main, "from b").as_bytes()
    );
    assert_eq!(rig.read(&format!("{guessed}/s1.jsonl")), Err(libc::ENOENT));
    // It is resumed there (a turn), and a client in the worktree resumed it there too.
    rig.fs
        .write(
            Path::new(&at_main),
            0,
            line("a1", &main, "turn in main").as_bytes(),
            true,
        )
        .unwrap();
    rig.a_commits(&pm, &["s1.jsonl"]);
    std::fs::create_dir_all(rig.upper.join(&pw.slug)).unwrap();
    let in_wt = line("u1", &wt, "from b") + &line("w1", &wt, "turn in the worktree");
    std::fs::write(rig.upper.join(&pw.slug).join("s1.jsonl"), &in_wt).unwrap();
    rig.a_commits(&pw, &["s1.jsonl"]);
    for round in 0..2 {
        // Listed once, in the main checkout, with every line of every copy once.
        let got = rig.read(&at_main).unwrap();
        for u in ["u1", "a1", "w1"] {
            assert_eq!(count(&got, u), 1, "round {round}, {u} in {got:?}");
        }
        assert!(listed(&rig, &pm.slug).contains(&"s1.jsonl".to_string()));
        assert!(
            !listed(&rig, &pw.slug).contains(&"s1.jsonl".to_string()),
            "round {round}: listed in the worktree too"
        );
        // Looked up by name in the worktree (a client holding it open), every line too.
        let by_name = rig.read(&format!("{}/s1.jsonl", pw.slug)).unwrap();
        for u in ["u1", "a1", "w1"] {
            assert_eq!(count(&by_name, u), 1, "round {round}, {u} in {by_name:?}");
        }
        // The choice is kept: a restart (and a newer write in the worktree) changes nothing.
        rig.restart();
    }
    // Each place is stored with its own paths: the worktree's copy names no path of the main
    // checkout, and expands back to exactly what was written there.
    let store = Store::open(&rig.store).unwrap();
    let snaps = snapshots(&store, &rig.a.id).unwrap();
    let own = snaps.iter().find(|s| s.machine.id == rig.a.id).unwrap();
    let copies: Vec<_> = own
        .files
        .iter()
        .filter(|f| f.rel.as_str() == "s1.jsonl")
        .collect();
    assert_eq!(copies.len(), 2, "one copy per place");
    let wt_copy = copies.iter().find(|f| f.project.slug == pw.slug).unwrap();
    assert_eq!(wt_copy.project.root, wt);
    let portable = store.read(wt_copy).unwrap();
    assert!(
        !String::from_utf8_lossy(&portable).contains(&wt),
        "{portable:?}"
    );
    let mapping = ferry_sync::store::mapping_for(&rig.a, &wt_copy.project).unwrap();
    assert_eq!(
        ferry_sync::codec::Codec::new(&mapping).expand(
            &portable,
            ferry_sync::codec::Format::for_file_name("s1.jsonl")
        ),
        in_wt.as_bytes()
    );
}

/// A session with this machine's copies in two places: appending to the one listed compares it
/// with the other copies once, not at every append (it was every append, each reading the whole
/// file and expanding the store's versions under the core's lock); an append after a torn
/// last line is compared again; and every line stays.
#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn appends_to_a_copy_covering_the_other_places_compare_it_once() {
    let rig = Rig::new();
    let (main, wt, pm, pw) = two_places(&rig);
    // Another machine's session, resumed in the main checkout and in the worktree.
    rig.b_writes(
        "s1.jsonl",
        line("u1", B_ROOT, "from b").as_bytes(),
        now_ms() - 60_000,
    );
    std::fs::create_dir_all(rig.upper.join(&pm.slug)).unwrap();
    let own = line("o1", &main, "mine");
    std::fs::write(rig.upper.join(&pm.slug).join("own.jsonl"), own).unwrap();
    rig.a_commits(&pm, &["own.jsonl"]);
    let at_main = format!("{}/s1.jsonl", pm.slug);
    let path = Path::new(&at_main);
    let append = |text: &str| rig.fs.write(path, 0, text.as_bytes(), true).unwrap();
    append(&line("a0", &main, "turn in main"));
    rig.a_commits(&pm, &["s1.jsonl"]);
    std::fs::create_dir_all(rig.upper.join(&pw.slug)).unwrap();
    let in_wt = line("u1", &wt, "from b") + &line("w1", &wt, "turn in the worktree");
    std::fs::write(rig.upper.join(&pw.slug).join("s1.jsonl"), &in_wt).unwrap();
    rig.a_commits(&pw, &["s1.jsonl"]);
    // The next append in main takes the worktree's line into the main copy.
    append(&line("a1", &main, "turn 1"));
    rig.fs.getattr(path).unwrap();
    let before = rig.fs.comparisons();
    for i in 2..=50 {
        append(&line(&format!("a{i}"), &main, "turn"));
        // The kernel asks for attributes between appends.
        rig.fs.getattr(path).unwrap();
    }
    let compared = rig.fs.comparisons() - before;
    assert!(compared <= 1, "{compared} comparisons for 49 appends");
    // Bytes after a torn line change that line: compared again, and right.
    append("{\"torn\":");
    append("1}\n");
    rig.fs.getattr(path).unwrap();
    let got = String::from_utf8(rig.read(&at_main).unwrap()).unwrap();
    for u in ["u1", "w1", "a0", "a1", "a50"] {
        assert_eq!(count(got.as_bytes(), u), 1, "{u} in {got}");
    }
    assert!(got.ends_with("{\"torn\":1}\n"), "{got}");
}

#[test]
fn an_adopted_checkout_takes_along_what_was_written_in_the_guessed_place() {
    let mut rig = Rig::new();
    rig.b_writes(
        "s1.jsonl",
        line("u1", B_ROOT, "from b").as_bytes(),
        now_ms() - 60_000,
    );
    // Resumed in the HOME-relative place before the client ever ran in the checkout.
    let guessed = rig.slug();
    let at_guess = format!("{guessed}/s1.jsonl");
    rig.fs
        .write(
            Path::new(&at_guess),
            0,
            line("g1", &rig.a_root(), "turn in the guess").as_bytes(),
            true,
        )
        .unwrap();
    let placed = project(KEY, &rig.a_root());
    assert_eq!(placed.slug, guessed);
    rig.a_commits(&placed, &["s1.jsonl"]);
    // Then the client runs in a checkout elsewhere: adopted, and the turn comes along.
    let checkout = main_checkout(&rig, "elsewhere/proj");
    assert!(rig.fs.adopt_checkout(&checkout, KEY).unwrap().is_some());
    let at_checkout = format!("{}/s1.jsonl", slug(&checkout));
    for round in 0..2 {
        let got = rig.read(&at_checkout).unwrap();
        assert_eq!(count(&got, "u1"), 1, "round {round}: {got:?}");
        assert_eq!(count(&got, "g1"), 1, "round {round}: {got:?}");
        assert!(
            !listed(&rig, &guessed).contains(&"s1.jsonl".to_string()),
            "round {round}: still listed in the place it left"
        );
        rig.restart();
    }
    // A turn in the new place is this machine's change of that place.
    rig.take_notes();
    rig.fs
        .write(
            Path::new(&at_checkout),
            0,
            line("c1", &checkout, "turn in the checkout").as_bytes(),
            true,
        )
        .unwrap();
    let got = rig.read(&at_checkout).unwrap();
    for u in ["u1", "g1", "c1"] {
        assert_eq!(count(&got, u), 1, "{u} in {got:?}");
    }
    assert!(
        rig.take_notes()
            .iter()
            .any(|(k, rel, _)| k == KEY && rel == "s1.jsonl")
    );
}

#[test]
fn a_tombstone_in_one_place_keeps_the_same_machines_copy_in_another() {
    // Claude Code moves a session to another project dir by renaming it: the old place's
    // tombstone must not hide the copy that arrived in the new one.
    let mut rig = Rig::new();
    let main = main_checkout(&rig, "code/proj");
    let wt = worktree(&main, "w");
    let (pm, pw) = (project(KEY, &main), project(KEY, &wt));
    for p in [&pm, &pw] {
        std::fs::create_dir_all(rig.upper.join(&p.slug)).unwrap();
    }
    std::fs::write(
        rig.upper.join(&pw.slug).join("s.jsonl"),
        line("x1", &wt, "moving"),
    )
    .unwrap();
    rig.a_commits(&pw, &["s.jsonl"]);
    rig.fs
        .rename(
            Path::new(&format!("{}/s.jsonl", pw.slug)),
            Path::new(&format!("{}/s.jsonl", pm.slug)),
            false,
        )
        .unwrap();
    rig.take_notes();
    let store = Store::open(&rig.store).unwrap();
    let gone = ferry_sync::store::Batch {
        projects: vec![pw.clone(), pm.clone()],
        files: vec![
            ferry_sync::store::FileUpdate {
                place: pw.place(),
                rel: ferry_sync::store::RelPath::new("s.jsonl").unwrap(),
                change: ferry_sync::store::Change::Delete { at_ms: now_ms() },
            },
            ferry_sync::store::FileUpdate {
                place: pm.place(),
                rel: ferry_sync::store::RelPath::new("s.jsonl").unwrap(),
                change: ferry_sync::store::Change::Write {
                    local: rig.upper.join(&pm.slug).join("s.jsonl"),
                    dirty_from: None,
                },
            },
        ],
    };
    store.commit(&rig.a, &gone).unwrap();
    rig.restart();
    let snaps = snapshots(&store, &rig.a.id).unwrap();
    let view = ferry_sync::view::view_of(&snaps, "b", KEY, "s.jsonl");
    assert_eq!(view.versions.len(), 2, "both places' versions");
    assert!(
        view.versions
            .iter()
            .any(|(_, f)| matches!(f.meta.state, FileState::Deleted { .. }))
    );
    assert_eq!(
        view.resolution.shown.len(),
        1,
        "another machine still sees the moved session"
    );
    assert_eq!(
        rig.read(&format!("{}/s.jsonl", pm.slug)).unwrap(),
        line("x1", &wt, "moving").as_bytes()
    );
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Step {
    /// Another machine (0: b, 1: c) appends a line to its copy and it arrives here.
    Other(usize),
    /// This machine appends a line through the view at place `i`, if the session is there.
    Here(usize),
    /// This machine's copy at place `i` is committed.
    Commit(usize),
    /// The client runs in the main checkout (adopted).
    Adopt,
    /// This machine starts a session of its own at place `i` (a most-recent candidate).
    Own(usize),
    /// The daemon restarts.
    Restart,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..2usize).prop_map(Step::Other),
        4 => (0..3usize).prop_map(Step::Here),
        3 => (0..3usize).prop_map(Step::Commit),
        1 => Just(Step::Adopt),
        1 => (1..3usize).prop_map(Step::Own),
        1 => Just(Step::Restart),
    ]
}

/// Runs `steps` and checks that the session is listed in at most one place, and in the end in
/// exactly one, with every line ever written once.
fn places_keep_every_line(steps: &[Step]) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert_eq;
    let mut rig = Rig::new();
    let main = main_checkout(&rig, "code/proj");
    let wt = worktree(&main, "feature");
    let places = [
        project(KEY, &rig.a_root()),
        project(KEY, &main),
        project(KEY, &wt),
    ];
    let c = common::machine("c", "/home/c");
    let others = [(rig.b.clone(), B_ROOT), (c, "/home/c/work/proj")];
    let mut theirs = [String::new(), String::new()];
    let mut written: Vec<String> = Vec::new();
    let t0 = now_ms() - 3_600_000;
    let mut n = 0;
    let other = |rig: &Rig, who: usize, n: i64, theirs: &mut [String; 2]| {
        let (m, root) = &others[who];
        let uuid = format!("{}{n}", m.id);
        theirs[who].push_str(&line(&uuid, root, "theirs"));
        let src = rig.dir.path().join(format!("{}-s1.jsonl", m.id));
        std::fs::write(&src, &theirs[who]).unwrap();
        let f = std::fs::File::options().write(true).open(&src).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis((t0 + n) as u64))
            .unwrap();
        let change = ferry_sync::store::Change::Write {
            local: src,
            dirty_from: None,
        };
        common::commit_as(&rig.store, m, root, vec![("s1.jsonl".into(), change)]);
        rig.fs.refresh().unwrap();
        uuid
    };
    written.push(other(&rig, 0, 0, &mut theirs));
    let listing = |rig: &Rig| -> Vec<String> {
        places
            .iter()
            .filter(|p| listed(rig, &p.slug).contains(&"s1.jsonl".to_string()))
            .map(|p| p.slug.clone())
            .collect()
    };
    for s in steps {
        n += 1;
        match s {
            Step::Other(who) => written.push(other(&rig, *who, n, &mut theirs)),
            Step::Here(i) => {
                let p = &places[*i];
                let path = format!("{}/s1.jsonl", p.slug);
                if rig.fs.getattr(Path::new(&path)).is_ok() {
                    let uuid = format!("a{n}");
                    rig.fs
                        .write(
                            Path::new(&path),
                            0,
                            line(&uuid, &p.root, "here").as_bytes(),
                            true,
                        )
                        .unwrap();
                    written.push(uuid);
                }
            }
            Step::Commit(i) => {
                let p = &places[*i];
                if rig.upper.join(&p.slug).join("s1.jsonl").exists() {
                    rig.a_commits(p, &["s1.jsonl"]);
                }
            }
            Step::Adopt => {
                rig.fs.adopt_checkout(&main, KEY).unwrap();
            }
            Step::Own(i) => {
                let p = &places[*i];
                let name = format!("own{n}.jsonl");
                std::fs::create_dir_all(rig.upper.join(&p.slug)).unwrap();
                std::fs::write(
                    rig.upper.join(&p.slug).join(&name),
                    line(&format!("o{n}"), &p.root, "own"),
                )
                .unwrap();
                rig.a_commits(p, &[name.as_str()]);
            }
            Step::Restart => rig.restart(),
        }
        let at = listing(&rig);
        prop_assert_eq!(at.len(), 1, "after {:?}: listed in {:?}", s, at);
    }
    for p in &places {
        if rig.upper.join(&p.slug).join("s1.jsonl").exists() {
            rig.a_commits(p, &["s1.jsonl"]);
        }
    }
    let at = listing(&rig);
    prop_assert_eq!(at.len(), 1, "listed in {:?}", at);
    let got = rig.read(&format!("{}/s1.jsonl", at[0])).unwrap();
    for u in &written {
        prop_assert_eq!(
            count(&got, u),
            1,
            "{} in {}",
            u,
            String::from_utf8_lossy(&got)
        );
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 48, ..Default::default() })]
    #[test]
    fn a_session_written_through_many_places_and_machines_keeps_every_line_once(
        steps in proptest::collection::vec(step(), 1..24)
    ) {
        places_keep_every_line(&steps)?;
    }
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn memory_at_the_git_root_belongs_to_the_project_and_other_changes_wait_visibly() {
    let rig = Rig::new();
    let root = format!("{}/code/r", rig.a.home);
    let sub = format!("{root}/pkg");
    std::fs::create_dir_all(&sub).unwrap();
    git2::Repository::init(&root)
        .unwrap()
        .remote("origin", "https://github.com/o/proj.git")
        .unwrap();
    let (root_slug, sub_slug) = (slug(&root), slug(&sub));
    // A session in the subdirectory, then the project's memory at the git root's slug.
    for (dir, file, text) in [
        (&sub_slug, "s.jsonl", line("u1", &sub, "hi")),
        (&root_slug, "memory/MEMORY.md", "- remember\n".to_string()),
    ] {
        let path = format!("{dir}/{file}");
        rig.fs
            .upper()
            .mkdir_all(Path::new(&path).parent().unwrap())
            .unwrap();
        rig.fs.create(Path::new(&path), 0o600, false).unwrap();
        rig.fs
            .write(Path::new(&path), 0, text.as_bytes(), true)
            .unwrap();
    }
    let notes = rig.take_notes();
    let key_of = |rel: &str| {
        notes
            .iter()
            .find(|(_, r, _)| r == rel)
            .map(|(k, _, _)| k.clone())
    };
    assert_eq!(key_of("s.jsonl").as_deref(), Some("github.com/o/proj//pkg"));
    assert_eq!(
        key_of("memory/MEMORY.md").as_deref(),
        Some(KEY),
        "{notes:?}"
    );
    assert!(rig.recorder.waiting.lock().unwrap().is_empty());

    // A directory that is nobody's: its change waits, and says so.
    let lone = "-nowhere-in-particular/memory/MEMORY.md";
    rig.fs
        .upper()
        .mkdir_all(Path::new(lone).parent().unwrap())
        .unwrap();
    rig.fs.create(Path::new(lone), 0o600, false).unwrap();
    assert!(rig.take_notes().is_empty());
    let waiting = rig.recorder.waiting.lock().unwrap().clone();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        (waiting[0].dir.as_str(), waiting[0].paths),
        ("-nowhere-in-particular", 1)
    );
    // At unmount it is handed over under a key naming the directory.
    rig.fs.flush_unresolved();
    assert!(rig.recorder.waiting.lock().unwrap().is_empty());
    assert!(
        rig.take_notes()
            .iter()
            .any(|(k, _, _)| k == "slug:-nowhere-in-particular")
    );
}
