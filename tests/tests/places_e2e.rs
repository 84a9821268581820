//! Places end to end (issue 19, DESIGN.md invariant 6), with the real client on simulated
//! machines over a `git daemon` remote: one project used in several places of one machine (a
//! main checkout and a `git worktree` where Claude Code makes them, a HOME-relative guess before
//! the client ever ran in the checkout). The other machine's requests carry only its own paths,
//! and every turn of every place reaches every machine, across unmounts and `kill -9`.

use ferry_tests::claude::VERSIONS;
use ferry_tests::git::run as git;
use ferry_tests::rig::{Host, cwds, eventually, uuids};
use ferry_tests::scenario::{
    Rig, SYNC, assert_local, assert_same_lines, kill_daemon, new_session, resume, s,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A worktree of `host`'s checkout where Claude Code's `--worktree` makes them.
fn worktree(host: &Host, name: &str) -> PathBuf {
    git(&host.checkout, &["add", "-A"]);
    git(&host.checkout, &["commit", "-q", "-m", "start"]);
    let at = host.checkout.join(".claude/worktrees").join(name);
    git(
        &host.checkout,
        &["worktree", "add", "-q", "-b", name, s(&at)],
    );
    at
}

/// `host`'s project dir for the place `dir`.
fn dir_of(host: &Host, dir: &Path) -> PathBuf {
    host.machine.projects().join(ferry_sync::slug::slug(s(dir)))
}

/// The sessions listed in `host`'s project dir for the place `dir`.
fn listed(host: &Host, dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir_of(host, dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .into_string()
                .ok()?
                .strip_suffix(".jsonl")
                .map(str::to_string)
        })
        .collect()
}

fn read_at(host: &Host, dir: &Path, id: &str) -> String {
    std::fs::read_to_string(dir_of(host, dir).join(format!("{id}.jsonl"))).unwrap_or_default()
}

/// A session started in alice's worktree reaches bob in bob's terms (not as a path under
/// alice's main checkout, which she used first), and bob's turn comes back to the worktree in
/// alice's worktree terms.
fn a_worktree_session_travels_in_its_own_terms(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    new_session(&a, version, "alpha: main checkout");
    let wt = worktree(&a, "feat");
    let before = listed(&a, &wt);
    let ack = a
        .claude_in(&wt, version, &["-p", "alpha: in the worktree"], None)
        .text();
    assert!(ack.starts_with("ACK#"), "{ack}");
    let new: Vec<String> = listed(&a, &wt).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one session in the worktree: {new:?}");
    let id = new[0].clone();
    assert_eq!(
        cwds(&read_at(&a, &wt, &id)),
        BTreeSet::from([s(&wt).to_string()])
    );

    b.wait_for(&id, &["alpha: in the worktree"], SYNC);
    let req = resume(&b, version, &id, "bravo: resume");
    assert!(
        req.contains("alpha: in the worktree"),
        "alice's turn missing on bob"
    );
    assert!(!req.contains(s(&a.machine.home)), "alice's paths on bob");
    let b_text = std::fs::read_to_string(b.transcript(&id)).unwrap();
    assert_local(&b_text, &b, &a);
    assert!(
        !b_text.contains(&ferry_sync::slug::slug(s(&wt))),
        "alice's worktree slug on bob: {b_text}"
    );

    // Back on alice: in the worktree, in the worktree's terms, and listed nowhere else.
    let back = eventually(SYNC, || read_at(&a, &wt, &id).contains("bravo: resume"));
    assert!(back, "{}\n{}", read_at(&a, &wt, &id), a.machine.log_tail());
    assert_eq!(
        cwds(&read_at(&a, &wt, &id)),
        BTreeSet::from([s(&wt).to_string()])
    );
    assert!(
        !listed(&a, &a.checkout).contains(&id),
        "listed twice on alice"
    );
    let run = a.claude_in(&wt, version, &["-p", "--resume", &id, "alpha: again"], None);
    assert!(run.text().starts_with("ACK#"));
    let req = run.agent_request();
    assert!(req.contains("bravo: resume"), "bob's turn missing on alice");
    assert!(!req.contains(s(&b.machine.home)), "bob's paths on alice");
    b.wait_for(&id, &["alpha: again"], SYNC);
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
}

#[test]
fn a_worktree_session_travels_in_its_own_terms_2_1_197() {
    a_worktree_session_travels_in_its_own_terms(VERSIONS[0], "places (2.1.197): worktree");
}

#[test]
fn a_worktree_session_travels_in_its_own_terms_2_1_330() {
    a_worktree_session_travels_in_its_own_terms(VERSIONS[1], "places (2.1.330): worktree");
}

/// bob resumes alice's session in the HOME-relative place it sits in before bob ever ran the
/// client in his checkout; `kill -9`; then bob works in his checkout, which becomes the place:
/// the first turn comes along, the session is listed there only, across an unmount, and alice
/// gets every turn.
fn a_turn_in_the_guessed_place_comes_along(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    let id = new_session(&a, version, "alpha: start");
    b.wait_for(&id, &["alpha: start"], SYNC);
    let guessed = b.machine.home.join("src/proj");
    assert!(
        listed(&b, &guessed).contains(&id),
        "at the HOME-relative guess"
    );
    std::fs::create_dir_all(&guessed).unwrap();
    let run = b.claude_in(
        &guessed,
        version,
        &["-p", "--resume", &id, "bravo: guessed"],
        None,
    );
    assert!(run.text().starts_with("ACK#"));
    assert!(run.agent_request().contains("alpha: start"));
    kill_daemon(&b);
    b.ferry(&["mount"]);
    assert!(read_at(&b, &guessed, &id).contains("bravo: guessed"));

    let req = resume(&b, version, &id, "bravo: in the checkout");
    for turn in ["alpha: start", "bravo: guessed"] {
        assert!(
            req.contains(turn),
            "{turn:?} missing from bob's request in his checkout"
        );
    }
    for round in ["mounted", "after an unmount"] {
        let text = std::fs::read_to_string(b.transcript(&id)).unwrap();
        let all = uuids(&text);
        let once: BTreeSet<&String> = all.iter().collect();
        assert_eq!(once.len(), all.len(), "{round}: a line twice");
        assert!(text.contains("bravo: guessed"), "{round}: {text}");
        assert!(
            !listed(&b, &guessed).contains(&id),
            "{round}: listed twice on bob"
        );
        b.ferry(&["unmount"]);
        b.ferry(&["mount"]);
    }
    a.wait_for(&id, &["bravo: guessed", "bravo: in the checkout"], SYNC);
    assert_local(&a.read(&id), &a, &b);
    assert_same_lines(&id, &[&a, &b]);
    let req = resume(&a, version, &id, "alpha: after");
    assert!(req.contains("bravo: guessed") && req.contains("bravo: in the checkout"));
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
}

#[test]
fn a_turn_in_the_guessed_place_comes_along_2_1_197() {
    a_turn_in_the_guessed_place_comes_along(VERSIONS[0], "places (2.1.197): guessed place");
}

#[test]
fn a_turn_in_the_guessed_place_comes_along_2_1_330() {
    a_turn_in_the_guessed_place_comes_along(VERSIONS[1], "places (2.1.330): guessed place");
}

/// `new_session` in another place of `host`: the id of the one session the run adds there.
fn new_session_in(host: &Host, dir: &Path, version: &str, prompt: &str) -> String {
    let before = listed(host, dir);
    let ack = host.claude_in(dir, version, &["-p", prompt], None).text();
    assert!(ack.starts_with("ACK#"), "{ack}");
    let new: Vec<String> = listed(host, dir).difference(&before).cloned().collect();
    assert_eq!(
        new.len(),
        1,
        "one new session in {}: {new:?}",
        dir.display()
    );
    new[0].clone()
}

/// bob has two clones of the project and has used one: alice's session is listed there, stays
/// there after bob uses the other clone more recently and restarts, `ferry projects` says so,
/// and every turn reaches alice.
fn two_clones_keep_one_place(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    let second = b.machine.home.join("other/proj");
    git(&b.checkout, &["add", "-A"]);
    git(&b.checkout, &["commit", "-q", "-m", "start"]);
    git(
        &b.machine.home,
        &["clone", "-q", s(&b.checkout), s(&second)],
    );
    git(
        &second,
        &["remote", "set-url", "origin", ferry_tests::rig::ORIGIN],
    );
    // bob works in the second clone first: it receives other machines' sessions.
    new_session_in(&b, &second, version, "bravo: own work");
    let id = new_session(&a, version, "alpha: start");
    let at_second = || listed(&b, &second).contains(&id);
    assert!(eventually(SYNC, at_second), "{}", b.machine.log_tail());
    // Then bob uses his first checkout, more recently, and restarts: the choice is kept.
    new_session(&b, version, "bravo: in the first clone");
    b.ferry(&["unmount"]);
    b.ferry(&["mount"]);
    assert!(at_second(), "moved after a restart");
    assert!(!listed(&b, &b.checkout).contains(&id));
    let projects: serde_json::Value =
        serde_json::from_str(&b.ferry(&["projects", "--json"])).unwrap();
    let row = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["project_key"] == "github.com/ferry-e2e/proj")
        .expect("the project");
    let receiving: Vec<&str> = row["places"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["receives"] == true)
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(receiving, [s(&second)], "{row}");
    assert_eq!(row["places"].as_array().unwrap().len(), 2, "{row}");
    // A resume there carries alice's turn in bob's terms, and the turn reaches alice.
    let run = b.claude_in(
        &second,
        version,
        &["-p", "--resume", &id, "bravo: resume"],
        None,
    );
    assert!(run.text().starts_with("ACK#"));
    let req = run.agent_request();
    assert!(req.contains("alpha: start"), "alice's turn missing on bob");
    assert!(!req.contains(s(&a.machine.home)), "alice's paths on bob");
    let text = read_at(&b, &second, &id);
    assert_eq!(cwds(&text), BTreeSet::from([s(&second).to_string()]));
    a.wait_for(&id, &["bravo: resume"], SYNC);
    assert_local(&a.read(&id), &a, &b);
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
}

#[test]
fn two_clones_keep_one_place_2_1_197() {
    two_clones_keep_one_place(VERSIONS[0], "places (2.1.197): two clones");
}

#[test]
fn two_clones_keep_one_place_2_1_330() {
    two_clones_keep_one_place(VERSIONS[1], "places (2.1.330): two clones");
}

/// bob's HOME is reached through a symlink, as Claude Code resolves it: alice's session of a
/// plain directory (no git) is found by `--continue` in bob's same directory.
fn a_symlinked_home_finds_a_plain_directorys_session(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let real = rig.tmp.path().join("bob-disk/bob");
    std::fs::create_dir_all(&real).unwrap();
    let link = rig.tmp.path().join("bob/Users/bob");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let b = rig.bob();
    assert_eq!(b.machine.home, link);
    let notes_a = a.machine.home.join("notes");
    std::fs::create_dir_all(&notes_a).unwrap();
    let id = new_session_in(&a, &notes_a, version, "alpha: notes");
    let notes_b = b.machine.home.join("notes");
    std::fs::create_dir_all(&notes_b).unwrap();
    let resolved = real.join("notes");
    let found = eventually(SYNC, || listed(&b, &resolved).contains(&id));
    assert!(
        found,
        "not under the resolved slug: {}",
        b.machine.log_tail()
    );
    let run = b.claude_in(
        &notes_b,
        version,
        &["-p", "--continue", "bravo: continue"],
        None,
    );
    assert!(run.text().starts_with("ACK#"));
    let req = run.agent_request();
    assert!(
        req.contains("alpha: notes"),
        "--continue started a fresh session on bob"
    );
    assert!(!req.contains(s(&a.machine.home)), "alice's paths on bob");
    let back = eventually(SYNC, || {
        read_at(&a, &notes_a, &id).contains("bravo: continue")
    });
    assert!(back, "{}", a.machine.log_tail());
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
}

#[test]
fn a_symlinked_home_finds_a_plain_directorys_session_2_1_197() {
    a_symlinked_home_finds_a_plain_directorys_session(
        VERSIONS[0],
        "places (2.1.197): symlinked HOME",
    );
}

#[test]
fn a_symlinked_home_finds_a_plain_directorys_session_2_1_330() {
    a_symlinked_home_finds_a_plain_directorys_session(
        VERSIONS[1],
        "places (2.1.330): symlinked HOME",
    );
}

/// alice's sessions run in a subdirectory of her checkout, and the project's memory sits under
/// the git root's slug, where no session runs: while mounted it reaches bob under bob's root
/// slug (never his HOME's), and the subdirectory's session resumes in bob's subdirectory.
fn memory_at_the_root_and_a_session_in_a_subdirectory(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    let (pkg_a, pkg_b) = (a.checkout.join("pkg"), b.checkout.join("pkg"));
    std::fs::create_dir_all(&pkg_a).unwrap();
    std::fs::create_dir_all(&pkg_b).unwrap();
    let id = new_session_in(&a, &pkg_a, version, "alpha: in pkg");
    let memory = a.slug_dir().join("memory");
    std::fs::create_dir_all(&memory).unwrap();
    let note = format!("- the build lives in {}\n", s(&a.checkout.join("build")));
    std::fs::write(memory.join("MEMORY.md"), &note).unwrap();

    // bob works in his subdirectory: his checkout becomes the project's place.
    b.wait_for(&id, &["alpha: in pkg"], SYNC);
    let run = b.claude_in(
        &pkg_b,
        version,
        &["-p", "--resume", &id, "bravo: in pkg"],
        None,
    );
    assert!(run.text().starts_with("ACK#"));
    let req = run.agent_request();
    assert!(req.contains("alpha: in pkg"), "alice's turn missing on bob");
    assert!(!req.contains(s(&a.machine.home)), "alice's paths on bob");
    assert_eq!(
        cwds(&read_at(&b, &pkg_b, &id)),
        BTreeSet::from([s(&pkg_b).to_string()])
    );

    let at_root = b.slug_dir().join("memory/MEMORY.md");
    let want = format!("- the build lives in {}\n", s(&b.checkout.join("build")));
    let arrived = eventually(SYNC, || {
        std::fs::read_to_string(&at_root).ok() == Some(want.clone())
    });
    assert!(
        arrived,
        "bob's root slug has no memory: {}",
        a.machine.log_tail()
    );
    let home_slug = dir_of(&b, &b.machine.home).join("memory/MEMORY.md");
    assert!(
        !home_slug.exists(),
        "the memory landed under bob's HOME slug"
    );
    let status: serde_json::Value = serde_json::from_str(&a.ferry(&["status", "--json"])).unwrap();
    assert_eq!(
        status["pending"]["waiting"],
        serde_json::json!([]),
        "{status}"
    );
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
}

#[test]
fn memory_at_the_root_and_a_session_in_a_subdirectory_2_1_197() {
    memory_at_the_root_and_a_session_in_a_subdirectory(
        VERSIONS[0],
        "places (2.1.197): memory at the root",
    );
}

#[test]
fn memory_at_the_root_and_a_session_in_a_subdirectory_2_1_330() {
    memory_at_the_root_and_a_session_in_a_subdirectory(
        VERSIONS[1],
        "places (2.1.330): memory at the root",
    );
}

/// The names in `host`'s projects directory, as the kernel lists them.
fn project_dirs(host: &Host) -> BTreeSet<String> {
    std::fs::read_dir(host.machine.projects())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// When Claude Code starts in a checkout and the view adopts it, the project moves there at
/// once in what the kernel lists too, not only in what it looks up: a listing taken before
/// (and cached by the kernel) must not keep showing the old place, whose files are gone.
#[test]
fn an_adopted_checkout_is_listed_at_once_and_the_old_place_is_gone() {
    let rig = Rig::new("adopted checkout listed at once");
    let alice = rig.alice();
    let bob = rig.bob();
    let id = new_session(&alice, VERSIONS[0], "alpha: a session to move");
    alice.ferry(&["sync"]);
    let guessed = dir_of(&bob, &bob.machine.home.join("src/proj"));
    let guessed_name = guessed.file_name().unwrap().to_string_lossy().into_owned();
    let here = dir_of(&bob, &bob.checkout);
    let here_name = here.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        eventually(SYNC, || {
            bob.ferry(&["sync"]);
            project_dirs(&bob).contains(&guessed_name)
        }),
        "bob never listed alice's session at the HOME-relative place"
    );
    // Listed there with every file's attributes, as `ls -l` (or a session picker) does.
    let ls = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ls -la '{p}' && ls -la '{p}'/*/",
            p = s(&bob.machine.projects())
        ))
        .current_dir(&bob.checkout)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).contains(&id), "{ls:?}");
    // As Claude Code starting in bob's checkout: it looks its project directory up.
    let out = std::process::Command::new("stat")
        .arg(&here)
        .current_dir(&bob.checkout)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Within moments (the kernel's caches are dropped beside the request), not at the next
    // refresh: without that, the kernel listed the old place for as long as its cache lived.
    assert!(
        eventually(std::time::Duration::from_secs(2), || {
            project_dirs(&bob) == BTreeSet::from([here_name.clone()])
        }),
        "the kernel still lists {:?}",
        project_dirs(&bob)
    );
    assert_eq!(listed(&bob, &bob.checkout), BTreeSet::from([id.clone()]));
    assert!(read_at(&bob, &bob.checkout, &id).contains("alpha: a session to move"));
}
