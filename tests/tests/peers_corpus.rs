//! The peer comparison's corpus and cost probes: every synthetic session is written where
//! Claude Code keeps it on A, is as large as asked, carries each tricky form it promises, and
//! the cost of a command is measured, not assumed.

use ferry_tests::peers::corpus::{Layout, Writer, files, projects};
use ferry_tests::peers::cost;
use std::process::Command;

#[test]
fn synthetic_sessions_hold_every_tricky_form_on_a() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Layout {
        home: tmp.path().join("a/home/alice"),
        is_a: true,
    };
    let b = Layout {
        home: tmp.path().join("b/Users/bob"),
        is_a: false,
    };
    let projects = projects();
    a.create(&projects);
    let w = Writer {
        a: &a,
        b: &b,
        projects: &projects,
    };
    let mut ids = std::collections::BTreeSet::new();
    for (pi, p) in projects.iter().enumerate() {
        let size = 20_000 + pi * 1000;
        let (s, expects) = w.session(pi, pi as u64 + 1, size, pi == 0);
        assert!(ids.insert(s.id.clone()), "ids are unique");
        let path = a.slug_dir(p).join(format!("{}.jsonl", s.id));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() >= size,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        let mut message_ids = std::collections::BTreeSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
            assert_eq!(v["cwd"], a.dir(p).to_str().unwrap());
            if let Some(m) = v["message"]["id"].as_str() {
                assert!(message_ids.insert(m.to_string()), "message id {m} twice");
            }
        }
        assert!(message_ids.len() > 1);
        assert_eq!(expects.len(), 5);
        for e in &expects {
            assert!(text.contains(&e.on_a), "{} missing: {}", e.what, e.on_a);
        }
        assert!(
            expects.iter().any(|e| e.on_a != e.on_b),
            "some form must change between machines"
        );
    }
    // The long project's slug is Claude Code's truncated-and-hashed form.
    let long = a.slug_dir(&projects[5]);
    assert!(long.file_name().unwrap().len() < a.dir(&projects[5]).to_str().unwrap().len());
    let all = files(&a.home.join(".claude/projects"));
    assert_eq!(
        all.len(),
        projects.len() + 2,
        "sessions plus a tool result and a subagent: {all:?}"
    );
}

#[test]
fn a_command_costs_what_it_burns() {
    let (out, c) = cost::run(Command::new("sh").args([
        "-c",
        "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done",
    ]));
    assert_eq!(out.trim(), "done");
    assert!(c.cpu.as_millis() > 20, "{c:?}");
    assert!(c.peak_kib > 100, "{c:?}");
    assert!(c.wall >= c.cpu / 2, "{c:?}");
    let me = cost::process(std::process::id() as i32);
    assert!(me.peak_kib > 1000, "{me:?}");
}
