//! `ferry sessions`, `ferry handoff` and `ferry restore` with the built binary: a session
//! written on a, seen on b (unmounted, then through the mount) with b's paths, a brief for
//! picking it up on b, and a deleted transcript brought back from history.

use ferry_tests::ferry::Pair;
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn sessions_handoff_and_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        a,
        b,
        a_proj,
        b_proj,
        ..
    } = Pair::new(tmp.path());
    let id = "5e55e55e-0000-4000-8000-000000000001";
    let cwd = a_proj.to_str().unwrap();
    let lines = [
        format!(
            r#"{{"type":"user","uuid":"u1","cwd":"{cwd}","gitBranch":"feature","message":{{"role":"user","content":"make the parser faster"}}}}"#
        ),
        format!(
            r#"{{"type":"assistant","uuid":"u2","cwd":"{cwd}","message":{{"content":[{{"type":"tool_use","id":"t1","name":"Read","input":{{"file_path":"{cwd}/src/parse.rs"}}}}]}}}}"#
        ),
        format!(
            r#"{{"type":"assistant","uuid":"u3","cwd":"{cwd}","message":{{"content":[{{"type":"text","text":"The parser now streams."}}]}}}}"#
        ),
    ];
    let text = lines.join("\n") + "\n";
    let a_dir = a.projects().join(ferry_sync::slug::slug(cwd));
    std::fs::create_dir_all(&a_dir).unwrap();
    let a_file = a_dir.join(format!("{id}.jsonl"));
    std::fs::write(&a_file, &text).unwrap();
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    assert_eq!(b.ferry(&["sync"]).status.code(), Some(0));

    // b, not mounted: the session, placed and expanded for b.
    let check = |label: &str, mounted: bool| {
        let list = json(&b.ok(&["sessions", "--json"]));
        let s = list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{label}: {list}"));
        assert_eq!(s["last_writer"], "a", "{label}");
        assert_eq!(s["project_key"], "~/work/proj");
        assert_eq!(s["first_prompt"], "make the parser faster");
        assert_eq!(s["branch"], "feature");
        // Unmounted, a's transcript is not on b's disk: resuming it cannot work yet.
        assert_eq!(s["resumable_here"], mounted, "{label}: {s}");
        if !mounted {
            assert!(
                s["not_resumable_why"]
                    .as_str()
                    .unwrap()
                    .contains("ferry mount"),
                "{s}"
            );
        }
        let b_slug = ferry_sync::slug::slug(b_proj.to_str().unwrap());
        assert!(
            s["path"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{b_slug}/{id}.jsonl")),
            "{s}"
        );
    };
    check("unmounted", false);
    let brief = b.ok(&["handoff", &id[..8]]);
    assert!(
        !brief.contains("Resume here") && brief.contains("`ferry mount` first"),
        "an unmounted brief offers no resume that cannot work:\n{brief}"
    );
    let only_a = json(&b.ok(&["sessions", "--json", "--machine", "a"]));
    assert_eq!(only_a["sessions"].as_array().unwrap().len(), 1);
    let none = json(&b.ok(&["sessions", "--json", "--project", "github.com/nothing"]));
    assert!(none["sessions"].as_array().unwrap().is_empty());
    b.ok(&["mount"]);
    check("mounted", true);

    // The brief, with b's paths.
    let brief = b.ok(&["handoff", &id[..8]]);
    let b_cwd = b_proj.to_str().unwrap();
    for want in [
        "make the parser faster".to_string(),
        format!("{b_cwd}/src/parse.rs"),
        "The parser now streams.".to_string(),
        format!("cd {b_cwd} && claude --resume {id}"),
    ] {
        assert!(brief.contains(&want), "{want} missing from:\n{brief}");
    }
    assert!(!brief.contains(cwd), "no path of a's left:\n{brief}");
    let j = json(&b.ok(&["handoff", id, "--json"]));
    assert_eq!(j["files_touched"][0], format!("{b_cwd}/src/parse.rs"));
    b.ok(&["unmount"]);

    // a deletes its transcript; restore brings it back from history.
    std::fs::remove_file(&a_file).unwrap();
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    let path = a_file.to_str().unwrap();
    let versions = json(&a.ok(&["restore", path, "--list", "--json"]));
    let states: Vec<bool> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["present"].as_bool().unwrap())
        .collect();
    assert_eq!(states, [false, true], "{versions}");
    let out = a.ok(&["restore", path]);
    assert!(out.contains("restored"), "{out}");
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), text);
    // Restoring over a transcript that is still there keeps the lines it has now.
    let extra =
        "{\"type\":\"user\",\"uuid\":\"u9\",\"message\":{\"content\":\"not yet committed\"}}\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&a_file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, extra.as_bytes()))
        .unwrap();
    a.ok(&["restore", path]);
    assert_eq!(
        std::fs::read_to_string(&a_file).unwrap(),
        text.clone() + extra
    );
    let bad = a.ferry(&["restore", path, "--at", "1999-01-01"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--list"));

    // A path relative to the projects dir begins with `-`, as every project dir does: it is a
    // path, not an option.
    let rel = a_file.strip_prefix(a.projects()).unwrap().to_str().unwrap();
    assert!(rel.starts_with('-'), "{rel}");
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    let listed = json(&a.ok(&["restore", rel, "--list", "--json"]));
    let oldest = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|v| v["present"] == true)
        .unwrap_or_else(|| panic!("{listed}"));
    let commit = oldest["commit"].as_str().unwrap();
    // Every line of the oldest version is still in the file: nothing to restore, nothing
    // written, and no session left looking divergent.
    let before = std::fs::read(&a_file).unwrap();
    let out = json(&a.ok(&["restore", rel, "--at", &commit[..10], "--json"]));
    assert_eq!(out["restored"], false, "{out}");
    assert_eq!(std::fs::read(&a_file).unwrap(), before);
    let said = a.ok(&["restore", rel, "--at", &commit[..10]]);
    assert!(said.starts_with("nothing to restore"), "{said}");
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    let st = json(&a.ok(&["status", "--json"]));
    assert_eq!(st["divergent_sessions"], serde_json::json!([]), "{st}");
    // Times are checked: no month 13, and a number is a commit or nothing (epoch needs `@`).
    for at in ["2026-13-45", "2026-02-30T10:00", "987654321"] {
        let bad = a.ferry(&["restore", rel, "--at", at]);
        assert_eq!(bad.status.code(), Some(1), "{at}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains("is not a time"), "{at}: {err}");
    }
    // `@SECONDS` is a time: one second after the epoch, before any version.
    let epoch = a.ferry(&["restore", rel, "--at", "@1"]);
    let err = String::from_utf8_lossy(&epoch.stderr);
    assert!(
        err.contains("no version of") && err.contains("at or before @1"),
        "{err}"
    );
}
