//! `kill -9` of the daemon aimed at a view refresh (issue 8), with the built binary, real mounts
//! and a `file://` remote. Machine b keeps changing 300 sessions; each time a's log shows a
//! refresh starting, a's daemon is killed a random few milliseconds later (inside the index
//! rebuild or the cache warming that follows), and mounted again. Afterwards a's store passes
//! `git fsck`, every line a acknowledged is there, and a's view of every session equals b's,
//! in a's paths: a torn cache entry or a half-saved mark would show up as a difference.
//! The kills that land outside a refresh test a crash at any other moment instead.

use ferry_tests::ferry::{Machine, Pair};
use ferry_tests::git::fsck;
use ferry_tests::rig::eventually;
use ferry_tests::rng::{XorShift, seed};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SESSIONS: usize = 300;
const START: &str = "refreshing the foreign index";

fn append(path: &Path, cwd: &Path, id: &str) {
    let line = serde_json::json!({"uuid": id, "cwd": cwd, "type": "user",
        "message": {"content": format!("{id} wrote {}/src/{id}.rs {}", cwd.display(), "z".repeat(900))}});
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

fn slug_dir(m: &Machine, proj: &Path) -> PathBuf {
    m.projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()))
}

/// Counts refresh starts in a growing log, reading only what was added since the last call.
struct Refreshes {
    log: PathBuf,
    read: u64,
    seen: usize,
}

impl Refreshes {
    fn count(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let mut new = String::new();
            let _ = f.seek(SeekFrom::Start(self.read));
            if f.read_to_string(&mut new).is_ok() {
                // Up to the last whole line, so a line is never counted half-written.
                let whole = new.rfind('\n').map_or(0, |i| i + 1);
                self.seen += new[..whole].matches(START).count();
                self.read += whole as u64;
            }
        }
        self.seen
    }
}

/// Where the daemon was when killed: 0 inside the index rebuild, 1 warming the cache after it,
/// 2 past both (read from the log, which the daemon writes unbuffered).
fn phase_at_kill(m: &Machine) -> usize {
    let log = std::fs::read_to_string(m.state.join("ferry.log")).unwrap_or_default();
    let tail = &log[log.rfind(START).unwrap_or(0)..];
    match (tail.find("view refreshed"), tail.find("ahead of use")) {
        (None, _) => 0,
        (Some(_), None) => 1,
        _ => 2,
    }
}

#[test]
fn kill_9_during_view_refreshes_loses_nothing_and_the_view_comes_back_equal() {
    let mut rng = XorShift(seed("FERRY_CRASH_SEED"));
    let tmp = tempfile::tempdir().unwrap();
    let pair = Pair::new(tmp.path());
    let (a, b) = (&pair.a, &pair.b);
    a.ok(&["mount"]);
    b.ok(&["mount"]);
    let (on_a, on_b) = (slug_dir(a, &pair.a_proj), slug_dir(b, &pair.b_proj));
    std::fs::create_dir_all(&on_a).unwrap();
    std::fs::create_dir_all(&on_b).unwrap();
    let name = |i: usize| format!("s{i:03}.jsonl");
    for i in 0..SESSIONS {
        for n in 0..8 {
            append(&on_b.join(name(i)), &pair.b_proj, &format!("b{i}-{n}"));
        }
    }
    let mut acked = Vec::new();
    let mut phases = [0; 3];
    let mut refreshes = Refreshes {
        log: a.state.join("ferry.log"),
        read: 0,
        seen: 0,
    };
    // Until two kills have landed inside a refresh, at least 6 rounds.
    let mut rounds = 0;
    // How long after a refresh starts a kill may land (ms): halved after each kill that came
    // too late, since how long a refresh takes depends on the build and the machine.
    let mut window = 25;
    while rounds < 6 || phases[0] + phases[1] < 2 {
        assert!(
            rounds < 30,
            "no two of 30 kills landed in a refresh: {phases:?}"
        );
        let round = rounds;
        rounds += 1;
        let before = refreshes.count();
        // b changes a few sessions; a fetches them within seconds and refreshes its view.
        for _ in 0..5 {
            let i = rng.below(SESSIONS as u64) as usize;
            append(&on_b.join(name(i)), &pair.b_proj, &format!("r{round}-{i}"));
        }
        let id = format!("a{round}");
        append(&on_a.join("own.jsonl"), &pair.a_proj, &id);
        acked.push(id);
        // Refreshes here take a few ms and the warming after them a few more: poll the log
        // every millisecond, then wait a random part of the window.
        let start = Instant::now();
        while refreshes.count() == before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "round {round}: a never started a refresh\n{}",
                a.log_tail()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(match window {
            0 => 0,
            w => rng.below(w),
        }));
        a.kill_9();
        let phase = phase_at_kill(a);
        phases[phase] += 1;
        if phase == 2 {
            window /= 2;
        }
        // The store as the kill left it (with the daemon running, its commits and repacks
        // would race the check).
        fsck(&a.state.join("store"));
        a.ok(&["mount"]);
    }
    let own = std::fs::read_to_string(on_a.join("own.jsonl")).unwrap();
    for id in &acked {
        assert!(own.contains(&format!("\"uuid\":\"{id}\"")), "{id} lost");
    }
    // Every session as b has it, in a's paths, is what a's view shows once a has fetched b's
    // last change.
    let (from, to) = (b.home.to_str().unwrap(), a.home.to_str().unwrap());
    let expected = |i: usize| {
        std::fs::read_to_string(on_b.join(name(i)))
            .unwrap()
            .replace(from, to)
    };
    b.ok(&["sync"]);
    let last = expected(SESSIONS - 1);
    assert!(
        eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(on_a.join(name(SESSIONS - 1))).ok() == Some(last.clone())
        }),
        "a caught up with b\n{}",
        a.log_tail()
    );
    a.ok(&["sync"]);
    for i in 0..SESSIONS {
        let got = std::fs::read_to_string(on_a.join(name(i))).unwrap();
        assert_eq!(got, expected(i), "session {i} differs on a");
    }
    eprintln!(
        "{rounds} kills aimed at refreshes ({} started): {} in the index rebuild, {} in the cache warming, {} after; {} of a's lines kept, {SESSIONS} sessions equal",
        refreshes.count(),
        phases[0],
        phases[1],
        phases[2],
        acked.len()
    );
}
