//! The peer comparison's corpus and cost probes: every synthetic session is written where
//! Claude Code keeps it on A, is as large as asked, carries each tricky form it promises, and
//! the cost of a command is measured, not assumed.

use ferry_tests::peers::corpus::{Layout, Writer, append_user, files, projects};
use ferry_tests::peers::world::World;
use ferry_tests::peers::{cost, fidelity};
use std::path::Path;
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

/// A perfect move of one session to B is counted as placed, with every expectation met and no A
/// path left; one A path left behind is counted; on the way back, an untouched file, a file
/// extended by B's turn and a rewritten file are told apart.
#[test]
fn fidelity_counts_what_a_transfer_got_right() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::new(&tmp.path().join("w"), Path::new("/no/venv"));
    w.a.create(&w.projects);
    let writer = Writer {
        a: &w.a,
        b: &w.b,
        projects: &w.projects,
    };
    let (moved, mut expects) = writer.session(0, 1, 5_000, true);
    let (left, more) = writer.session(2, 2, 5_000, false);
    expects.extend(more);
    let a_projects = w.a.home.join(".claude/projects");
    let template = tmp.path().join("template");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&a_projects)
        .arg(&template)
        .status()
        .unwrap();
    assert!(st.success());
    let originals = files(&template);
    // Move the first session's files by hand, as a perfect tool would; leave the other on A.
    let p = &w.projects[0];
    let slug = |l: &Layout| {
        l.slug_dir(p)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let (a_dir, b_dir) = (w.a.dir(p), w.b.dir(p));
    let (a_dir, b_dir) = (a_dir.to_str().unwrap(), b_dir.to_str().unwrap());
    let b_projects = w.b.home.join(".claude/projects");
    let mine: Vec<_> = originals
        .iter()
        .filter(|r| r.starts_with(slug(&w.a)))
        .collect();
    assert_eq!(mine.len(), 3, "transcript, tool result, subagent");
    for rel in &mine {
        let text = std::fs::read_to_string(template.join(rel))
            .unwrap()
            .replace(&slug(&w.a), &slug(&w.b))
            .replace(&format!("{a_dir}/"), &format!("{b_dir}/"))
            .replace(&format!("{a_dir}\""), &format!("{b_dir}\""))
            .replace(w.a.home.to_str().unwrap(), w.b.home.to_str().unwrap());
        let to = b_projects.join(w.across(true, rel));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, text).unwrap();
    }
    let sessions = [moved.clone(), left.clone()];
    let placed = fidelity::on_b(&w, &originals, &sessions, &expects);
    assert_eq!((placed.files, placed.placed), (originals.len(), 3));
    assert_eq!(placed.foreign, 0);
    assert_eq!(placed.expects.len(), 5);
    for (what, met) in &placed.expects {
        assert_eq!(*met, (1, 2), "{what}: met on B by the moved session only");
    }
    let b_transcript = w.transcript(false, &moved);
    let mut text = std::fs::read_to_string(&b_transcript).unwrap();
    text.push_str(&format!("left behind: {}/x\n", w.a.home.display()));
    std::fs::write(&b_transcript, text).unwrap();
    assert_eq!(
        fidelity::on_b(&w, &originals, &sessions, &expects).foreign,
        1
    );

    // Back on A: B's turn appended to the moved session, the other session rewritten.
    append_user(
        &w.transcript(true, &moved),
        &moved.id,
        Path::new(a_dir),
        "B's turn",
        9,
    );
    std::fs::write(w.transcript(true, &left), "rewritten\n").unwrap();
    let back = fidelity::on_a(
        &w,
        &template,
        &originals,
        &[
            (moved, "B's turn".to_string()),
            (left, "never said".to_string()),
        ],
    );
    assert_eq!(back.files, originals.len());
    assert_eq!(back.identical, originals.len() - 2);
    assert_eq!(back.extended, 1);
    assert_eq!(back.turns_back, 1);
    assert_eq!(back.foreign, 0);
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
    let (out, c) = cost::attempt(Command::new("sh").args(["-c", "echo why >&2; exit 3"]));
    let why = out.expect_err("a failing command is reported");
    assert!(why.contains("why") && why.contains('3'), "{why}");
    assert_eq!(c.failed, 1);
    let me = cost::process(std::process::id() as i32);
    assert!(me.peak_kib > 1000, "{me:?}");
}
