//! Concurrent writers on one session (issue 8), with the built binary, real mounts and a real
//! `file://` remote: two writers appending to one transcript through one mount, then both
//! machines appending to it at once. Every line stays whole, none is lost or doubled, and both
//! machines end with the same lines.

use ferry_tests::ferry::Pair;
use ferry_tests::rig::eventually;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn line(cwd: &Path, writer: &str, n: usize) -> String {
    let text = serde_json::json!({
        "uuid": format!("{writer}-{n:05}"),
        "type": "user",
        "cwd": cwd,
        "message": {"content": format!("{writer} line {n} {}", "y".repeat(300))},
    });
    format!("{text}\n")
}

/// Appends `count` lines as `writer`, each in its own open/write/close cycle.
fn appender(path: &Path, cwd: &Path, writer: &str, count: usize) {
    for n in 0..count {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(line(cwd, writer, n).as_bytes()).unwrap();
    }
}

/// The uuids of a transcript, asserting that every line is whole JSON and none repeats.
fn uuids(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeSet::new();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line in {path:?}: {e}: {l}"));
        let u = v["uuid"].as_str().expect("a uuid").to_string();
        assert!(out.insert(u.clone()), "{u} twice in {path:?}");
    }
    out
}

/// Reads `path` once while it is being written, and gives its complete lines: each is whole
/// JSON and none repeats (the last line may still be coming).
fn whole_lines_once(path: &Path) -> Vec<u8> {
    let mut text = std::fs::read(path).unwrap();
    text.truncate(
        text.iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1),
    );
    let complete = &text[..];
    let mut seen = BTreeSet::new();
    for l in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap_or_else(|e| {
            panic!(
                "torn line in one read of {path:?}: {e}: {}",
                String::from_utf8_lossy(l)
            )
        });
        let u = v["uuid"].as_str().expect("a uuid").to_string();
        assert!(seen.insert(u.clone()), "{u} twice in one read of {path:?}");
    }
    text
}

fn expected(writers: &[(&str, usize)]) -> BTreeSet<String> {
    writers
        .iter()
        .flat_map(|(w, n)| (0..*n).map(move |i| format!("{w}-{i:05}")))
        .collect()
}

#[test]
fn concurrent_writers_on_one_session_keep_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Pair::new(tmp.path());
    let (on_a, on_b) = p.mounted_session("s.jsonl");

    // Two writers on machine A at once (two Claude Code processes on one session).
    std::thread::scope(|s| {
        for w in ["a1", "a2"] {
            let (file, cwd) = (&on_a, &p.a_proj);
            s.spawn(move || appender(file, cwd, w, 300));
        }
    });
    let want = expected(&[("a1", 300), ("a2", 300)]);
    assert_eq!(uuids(&on_a), want, "A's file holds both writers' lines");
    assert!(
        eventually(Duration::from_secs(60), || uuids(&on_b) == want),
        "B never saw both writers' lines:\n{}",
        p.b.log_tail()
    );

    // Both machines append to the session at the same time, while a reader on each reads it
    // whole again and again: other machines' lines arrive in between, and as in an append log
    // on a local disk, no read sees a line twice and each read finds the last one's lines where
    // they were.
    let reading = std::sync::atomic::AtomicBool::new(true);
    let want = expected(&[("a1", 300), ("a2", 300), ("a3", 200), ("b1", 200)]);
    std::thread::scope(|s| {
        let readers = [&on_a, &on_b].map(|file| {
            let reading = &reading;
            s.spawn(move || {
                let (mut reads, mut before) = (0, Vec::new());
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = whole_lines_once(file);
                    if !now.starts_with(&before) {
                        let at = before.iter().zip(&now).take_while(|(x, y)| x == y).count();
                        let line = |t: &[u8]| {
                            let from = t[..at]
                                .iter()
                                .rposition(|&b| b == b'\n')
                                .map_or(0, |i| i + 1);
                            let to = t[at..]
                                .iter()
                                .position(|&b| b == b'\n')
                                .map_or(t.len(), |i| at + i);
                            String::from_utf8_lossy(&t[from..to]).into_owned()
                        };
                        panic!(
                            "a line moved between two reads of {file:?}, at byte {at}: {} then {}",
                            line(&before),
                            line(&now)
                        );
                    }
                    before = now;
                    reads += 1;
                }
                reads
            })
        });
        let writers = [
            s.spawn(|| appender(&on_a, &p.a_proj, "a3", 200)),
            s.spawn(|| appender(&on_b, &p.b_proj, "b1", 200)),
        ];
        for w in writers {
            w.join().unwrap();
        }
        // The readers go on until each machine has the other's lines.
        let arrived = [("A", &on_a, &p.a), ("B", &on_b, &p.b)].map(|(name, file, m)| {
            let ok = eventually(Duration::from_secs(90), || uuids(file) == want);
            (name, file, m, ok)
        });
        reading.store(false, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0, "a reader read");
        }
        for (name, file, m, ok) in arrived {
            let have = uuids(file);
            let missing: Vec<_> = want.difference(&have).take(3).collect();
            assert!(
                ok,
                "{name} lacks {} lines, e.g. {missing:?}\nlog:\n{}",
                want.len() - have.len().min(want.len()),
                m.log_tail()
            );
        }
    });
    // Each machine sees its own paths in every line.
    let text = std::fs::read_to_string(&on_b).unwrap();
    assert!(!text.contains(p.a.home.to_str().unwrap()));
}
