//! `ferry hooks install` with the real Claude Code client through the mount: the SessionEnd
//! hook marks the session ended, a session whose client never ended stays open, and
//! `ferry sessions --open` lists only that one. Install is idempotent, and uninstall gives the
//! user's settings, skills and commands back byte for byte.

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
    // The user's own settings, hooks, skill and command, as they wrote them.
    let mine = "{\n    \"cleanupPeriodDays\": 100000,\n    \"model\": \"opus\",\n    \"hooks\": {\n        \"Stop\": [{\"matcher\": \"\", \"hooks\": [{\"type\": \"command\", \"command\": \"true\"}]}]\n    },\n    \"env\": {\"B\": \"1\", \"A\": \"2\"}\n}\n";
    std::fs::write(&settings, mine).unwrap();
    let user_files = [
        (
            m.home.join(".claude/skills/mine/SKILL.md"),
            "---\nname: mine\ndescription: mine\n---\nmine\n",
        ),
        (m.home.join(".claude/commands/deploy.md"), "deploy it\n"),
    ];
    for (path, text) in &user_files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    m.ok(&["init", "--machine", "a"]);
    // Install and uninstall give every file of the user's back byte for byte (checked before
    // the client runs: Claude Code rewrites settings.json itself).
    let skill = m.home.join(".claude/skills/ferry-sessions/SKILL.md");
    m.ok(&["hooks", "install", "--announce"]);
    assert!(skill.is_file(), "the skill is installed");
    assert_ne!(std::fs::read_to_string(&settings).unwrap(), mine);
    m.ok(&["hooks", "uninstall"]);
    assert_eq!(
        std::fs::read_to_string(&settings).unwrap(),
        mine,
        "the user's settings, byte for byte"
    );
    for (path, text) in &user_files {
        assert_eq!(&std::fs::read_to_string(path).unwrap(), text);
    }
    assert!(
        !skill.exists() && !skill.parent().unwrap().exists(),
        "the skill is gone"
    );

    m.ok(&["hooks", "install"]);
    m.ok(&["hooks", "install"]);
    let s: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(s["cleanupPeriodDays"], 100000, "other settings kept");
    assert_eq!(
        s["hooks"]["Stop"].as_array().unwrap().len(),
        2,
        "installed once, after the user's own: {s}"
    );
    assert!(
        s["hooks"]["SessionStart"].is_null(),
        "no note without --announce"
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
    let all = json(&m.ok(&["sessions", "--json"]))["sessions"].clone();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let ended = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] != crashed)
        .unwrap();
    assert_eq!(ended["open"], false, "{ended}");
    let open = json(&m.ok(&["sessions", "--json", "--open"]))["sessions"].clone();
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
    let after = std::fs::read_to_string(&settings).unwrap();
    assert!(!after.contains("hooks run"), "{after}");
    assert!(
        after.contains("\"command\": \"true\""),
        "the user's hook stays: {after}"
    );
    for (path, text) in &user_files {
        assert_eq!(&std::fs::read_to_string(path).unwrap(), text);
    }
    assert!(!skill.exists(), "the skill is gone");
    // A hook event ferry does not have is a mistake in the settings: said, not ignored.
    let out = m.ferry(&["hooks", "run", "bogus"]);
    assert_eq!(out.status.code(), Some(1));
}
