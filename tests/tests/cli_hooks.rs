//! `ferry hooks install` with the real Claude Code client through the mount: the SessionEnd
//! hook marks the session ended, a session whose client never ended stays open, and
//! `ferry sessions --open` lists only that one. Install is idempotent and uninstall keeps the
//! user's other settings.

use ferry_tests::claude::{User, VERSIONS};
use ferry_tests::ferry::Machine;
use serde_json::Value;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn hooks_mark_ended_sessions_and_open_ones_show() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    let user = User::new(tmp.path());
    let proj = m.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let settings = m.home.join(".claude/settings.json");
    std::fs::write(&settings, r#"{"cleanupPeriodDays": 100000}"#).unwrap();
    m.ok(&["init", "--machine", "a"]);
    m.ok(&["hooks", "install"]);
    m.ok(&["hooks", "install"]);
    let s: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(s["cleanupPeriodDays"], 100000, "other settings kept");
    assert_eq!(
        s["hooks"]["Stop"].as_array().unwrap().len(),
        1,
        "installed once: {s}"
    );
    assert_eq!(s["hooks"]["SessionEnd"].as_array().unwrap().len(), 1);
    m.ok(&["mount"]);

    let out = user.run(VERSIONS[0], &proj, &["-p", "a finished task"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A session whose client died: no SessionEnd.
    let dir = m
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()));
    let crashed = "deadbeef-0000-4000-8000-000000000003";
    std::fs::write(
        dir.join(format!("{crashed}.jsonl")),
        format!("{{\"type\":\"user\",\"uuid\":\"c1\",\"cwd\":\"{}\",\"message\":{{\"content\":\"left unfinished\"}}}}\n", proj.display()),
    )
    .unwrap();
    let all = json(&m.ok(&["sessions", "--json"]));
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let ended = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] != crashed)
        .unwrap();
    assert_eq!(ended["open"], false, "{ended}");
    let open = json(&m.ok(&["sessions", "--json", "--open"]));
    let ids: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [crashed]);
    let id = ended["id"].as_str().unwrap();
    let marker = dir.join(id).join("ferry-ended.json");
    assert!(marker.is_file(), "the SessionEnd hook wrote its marker");
    m.ok(&["unmount"]);
    assert!(
        marker.is_file(),
        "the marker is a plain file in the session's dir"
    );

    m.ok(&["hooks", "uninstall"]);
    let s: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(s["cleanupPeriodDays"], 100000);
    assert!(s["hooks"]["Stop"].as_array().unwrap().is_empty(), "{s}");
}
