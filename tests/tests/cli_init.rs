//! `ferry init`: the first machine imports the sessions it already has, a later machine fetches
//! everything, and running it twice is safe.

#[path = "../../sync/tests/common/mod.rs"]
mod common;

use ferry_tests::ferry::Machine;
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `n` sessions of one line each (its text padded with `pad`) in `a`'s project at
/// `~/work/proj`, written before ferry is set up.
fn with_sessions(a: &Machine, n: usize, pad: &str) {
    with_padded_sessions(a, n, |_| pad.to_string());
}

/// `n` sessions, the `i`th padded with `pad(i)`.
fn with_padded_sessions(a: &Machine, n: usize, pad: impl Fn(usize) -> String) {
    let proj = a.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let dir = a
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        std::fs::write(
            dir.join(format!("{i:08}-0000-4000-8000-000000000000.jsonl")),
            format!("{{\"uuid\":\"u{i}\",\"cwd\":\"{}\",\"type\":\"user\",\"message\":{{\"content\":\"task {i}{}\"}}}}\n", proj.display(), pad(i)),
        )
        .unwrap();
    }
}

#[test]
fn first_machine_imports_later_machine_fetches() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    let a = Machine::new(&tmp.path().join("a"));
    with_sessions(&a, 3, "");
    let out = json(&a.ok(&["init", "--machine", "a", "--remote", &url, "--json"]));
    assert_eq!(out["imported_files"], 3, "{out}");
    assert_eq!(out["remote_ok"], true, "{out}");
    // The import is one pack, not a loose file per object.
    let objects = a.state.join("store/objects");
    let loose: Vec<_> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().len() == 2)
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap())
        .collect();
    assert!(
        loose.is_empty(),
        "loose objects after the import: {loose:?}"
    );
    // Again: nothing new, same machine id.
    let again = json(&a.ok(&["init", "--json"]));
    assert_eq!(again["imported_files"], 0);
    assert_eq!(again["machine_id"], out["machine_id"]);
    assert_eq!(again["already_initialised"], true);
    // The human form says what it did.
    let text = a.ok(&["init"]);
    assert!(
        text.contains("updated") && text.contains("fetched; nothing new to push"),
        "{text}"
    );

    // A later machine gets everything at init.
    let b = Machine::new(&tmp.path().join("b"));
    std::fs::create_dir_all(b.home.join("work/proj")).unwrap();
    let out = json(&b.ok(&["init", "--machine", "b", "--remote", &url, "--json"]));
    assert_eq!(out["imported_files"], 0);
    let sessions = json(&b.ok(&["sessions", "--json"]))["sessions"].clone();
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{sessions}");
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["last_writer"] == "a")
    );
}

#[test]
fn an_import_killed_part_way_leaves_a_sound_store_and_the_next_init_imports_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Machine::new(&tmp.path().join("a"));
    const SESSIONS: usize = 3_000;
    with_sessions(&a, SESSIONS, &"x".repeat(200));
    let store = a.state.join("store");
    let sound = |when: &str| {
        if !store.exists() {
            return;
        }
        let fsck = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&store)
            .args(["fsck", "--full", "--no-dangling"])
            .output()
            .unwrap();
        assert!(fsck.status.success(), "after a kill {when}: {fsck:?}");
    };
    // Killed at several points of the import: each leaves a store git finds sound.
    for after_ms in [150, 400, 900] {
        let mut init = a
            .command(&["init", "--machine", "a", "--offline", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        let _ = init.kill();
        init.wait().unwrap();
        sound(&format!("{after_ms} ms in"));
    }
    let out = json(&a.ok(&["init", "--offline", "--json"]));
    sound("and a whole init");
    let sessions = json(&a.ok(&["sessions", "--json"]))["sessions"].clone();
    assert_eq!(sessions.as_array().unwrap().len(), SESSIONS, "{out}");
}

#[test]
fn a_later_machine_fetches_only_the_tips_and_the_rest_of_history_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    let a = Machine::new(&tmp.path().join("a"));
    with_sessions(&a, 1, "");
    a.ok(&["init", "--machine", "a", "--remote", &url]);
    // Two more versions of the session on a, each synced: three commits on a's branch.
    let slug = ferry_sync::slug::slug(a.home.join("work/proj").to_str().unwrap());
    let file = a
        .projects()
        .join(&slug)
        .join("00000000-0000-4000-8000-000000000000.jsonl");
    for i in 1..=2 {
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(&format!("{{\"uuid\":\"more{i}\",\"type\":\"user\"}}\n"));
        std::fs::write(&file, text).unwrap();
        assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    }
    let git = |m: &Machine, args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(m.state.join("store"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let a_id = json(&a.ok(&["status", "--json"]))["machine"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_branch = format!("refs/remotes/origin/machines/{a_id}");

    let b = Machine::new(&tmp.path().join("b"));
    std::fs::create_dir_all(b.home.join("work/proj")).unwrap();
    b.ok(&["init", "--machine", "b", "--remote", &url]);
    assert_eq!(git(&b, &["rev-parse", "--is-shallow-repository"]), "true");
    assert_eq!(
        git(&b, &["rev-list", "--count", &a_branch]),
        "1",
        "only the tip"
    );
    let sessions = json(&b.ok(&["sessions", "--json"]))["sessions"].clone();
    let path = sessions[0]["path"].as_str().unwrap().to_string();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    // With the remote away, the versions here are listed, and b says what is missing.
    let away = tmp.path().join("remote-away.git");
    std::fs::rename(&remote, &away).unwrap();
    let out = b.ferry(&["restore", &path, "--list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("could not be reached"), "{said}");
    let here = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(here["versions"].as_array().unwrap().len(), 1, "{here}");
    std::fs::rename(&away, &remote).unwrap();
    // Asked for the versions, b fetches the history first.
    let listed = json(&b.ok(&["restore", &path, "--list", "--json"]));
    assert_eq!(
        listed["versions"].as_array().unwrap().len(),
        3,
        "every version of a's: {listed}"
    );
    assert_eq!(git(&b, &["rev-parse", "--is-shallow-repository"]), "false");
    assert_eq!(git(&b, &["rev-list", "--count", &a_branch]), "3");
}

/// Text that zlib cannot shrink much, `n` bytes of it.
fn noise(n: usize, seed: u64) -> String {
    let mut x = seed | 1;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % 62) as usize] as char
        })
        .collect()
}

#[test]
fn a_later_machine_sees_its_first_fetch_as_objects_and_bytes_in_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = ferry_tests::rig::GitDaemon::start(&tmp.path().join("srv"));
    let a = Machine::new(&tmp.path().join("a"));
    // About 1.2 MB that does not compress, nor make deltas between sessions (a remote that
    // unpacks so small a push makes them anew when it serves it), over a link passing
    // 160 KiB/s: several seconds.
    with_padded_sessions(&a, 40, |i| noise(30_000, 7 + 2 * i as u64));
    a.ok(&["init", "--machine", "a", "--remote", &daemon.url()]);
    let port: u16 = daemon
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next()?.parse().ok())
        .unwrap();
    let slow = common::slow_link(port, 160 << 10);
    let b = Machine::new(&tmp.path().join("b"));
    // In a terminal (util-linux's `script` gives it one), as a user runs it.
    let line = format!(
        "'{}' init --machine b --remote git://127.0.0.1:{slow}/remote.git",
        ferry_tests::ferry::ferry_bin().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("HOME", &b.home)
        .env("FERRY_HOME", &b.state)
        .env("TERM", "xterm")
        .env_remove("CLAUDE_CONFIG_DIR")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // The bar names the objects of the total and the bytes, and they grow.
    let counted: Vec<(u64, u64)> = screen
        .split(['\r', '\n'])
        .filter_map(|l| {
            let (_, rest) = l.split_once("fetching: ")?;
            let (done, rest) = rest.split_once('/')?;
            let (total, _) = rest.split_once(" objects, ")?;
            Some((done.trim().parse().ok()?, total.trim().parse().ok()?))
        })
        .collect();
    let (last, total) = *counted.last().expect("a count");
    assert!(
        total > 40
            && counted
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1)
            && counted.first().is_some_and(|f| f.0 < last)
            && last * 4 >= total * 3,
        "the bar's counts grow to about the total: {counted:?}\n{screen}"
    );
    assert!(screen.contains("KiB") || screen.contains("MiB"), "{screen}");
    let sessions = json(&b.ok(&["sessions", "--json"]))["sessions"].clone();
    assert_eq!(sessions.as_array().unwrap().len(), 40, "{sessions}");
}
