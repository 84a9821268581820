//! `ferry init`: the first machine imports the sessions it already has, a later machine fetches
//! everything, and running it twice is safe.

use ferry_tests::ferry::Machine;
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn first_machine_imports_later_machine_fetches() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let url = format!("file://{}", remote.display());
    let a = Machine::new(&tmp.path().join("a"));
    let proj = a.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let dir = a
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.join(format!("0000000{i}-0000-4000-8000-000000000000.jsonl")),
            format!("{{\"uuid\":\"u{i}\",\"cwd\":\"{}\",\"type\":\"user\",\"message\":{{\"content\":\"task {i}\"}}}}\n", proj.display()),
        )
        .unwrap();
    }
    let out = json(&a.ok(&["init", "--machine", "a", "--remote", &url, "--json"]));
    assert_eq!(out["imported_files"], 3, "{out}");
    assert_eq!(out["remote_ok"], true, "{out}");
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
