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

    // Both machines append to the session at the same time.
    std::thread::scope(|s| {
        s.spawn(|| appender(&on_a, &p.a_proj, "a3", 200));
        s.spawn(|| appender(&on_b, &p.b_proj, "b1", 200));
    });
    let want = expected(&[("a1", 300), ("a2", 300), ("a3", 200), ("b1", 200)]);
    for (name, file, m) in [("A", &on_a, &p.a), ("B", &on_b, &p.b)] {
        let ok = eventually(Duration::from_secs(90), || uuids(file) == want);
        let have = uuids(file);
        let missing: Vec<_> = want.difference(&have).take(3).collect();
        assert!(
            ok,
            "{name} lacks {} lines, e.g. {missing:?}\nlog:\n{}",
            want.len() - have.len().min(want.len()),
            m.log_tail()
        );
    }
    // Each machine sees its own paths in every line.
    let text = std::fs::read_to_string(&on_b).unwrap();
    assert!(!text.contains(p.a.home.to_str().unwrap()));
}
