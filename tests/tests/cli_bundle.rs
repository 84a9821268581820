//! `ferry export` and `ferry import` between two machines with no shared remote: the session
//! and its tool results arrive placed and expanded for the importing machine, importing twice
//! adds nothing, and a hostile bundle is refused.

use ferry_tests::ferry::Machine;
use serde_json::Value;

#[test]
fn a_session_moves_as_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Machine::new(&tmp.path().join("a"));
    let b = Machine::new(&tmp.path().join("b"));
    let (a_proj, b_proj) = (a.home.join("src/proj"), b.home.join("src/proj"));
    std::fs::create_dir_all(&a_proj).unwrap();
    std::fs::create_dir_all(&b_proj).unwrap();
    a.ok(&["init", "--machine", "a"]);
    b.ok(&["init", "--machine", "b"]);
    let id = "b0b0b0b0-0000-4000-8000-000000000002";
    let cwd = a_proj.to_str().unwrap();
    let results = format!(
        "{}/{id}/tool-results/r1.txt",
        a.projects().join(ferry_sync::slug::slug(cwd)).display()
    );
    let text = format!(
        "{{\"type\":\"user\",\"uuid\":\"u1\",\"cwd\":\"{cwd}\",\"message\":{{\"content\":\"ship it\"}}}}\n{{\"type\":\"user\",\"uuid\":\"u2\",\"cwd\":\"{cwd}\",\"toolUseResult\":{{\"persistedOutputPath\":\"{results}\"}}}}\n"
    );
    let dir = a.projects().join(ferry_sync::slug::slug(cwd));
    std::fs::create_dir_all(dir.join(id).join("tool-results")).unwrap();
    std::fs::write(dir.join(format!("{id}.jsonl")), &text).unwrap();
    std::fs::write(
        dir.join(id).join("tool-results/r1.txt"),
        format!("ls {cwd}\n"),
    )
    .unwrap();

    let bundle = tmp.path().join("session.json");
    let out = a.ok(&["export", &id[..8], "-o", bundle.to_str().unwrap()]);
    assert!(out.contains("ferry import"), "{out}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&bundle).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the bundle is this user's alone");
    let raw = std::fs::read_to_string(&bundle).unwrap();
    let parsed: Value = serde_json::from_str(&raw).unwrap();
    for f in parsed["files"].as_array().unwrap() {
        let t = f["text"].as_str().unwrap();
        assert!(
            !t.contains(cwd) && t.contains("${"),
            "the files are in portable form: {t}"
        );
    }

    let out = b.ok(&["import", bundle.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"], 2);
    let b_cwd = b_proj.to_str().unwrap();
    let b_dir = b.projects().join(ferry_sync::slug::slug(b_cwd));
    let got = std::fs::read_to_string(b_dir.join(format!("{id}.jsonl"))).unwrap();
    let (a_slug, b_slug) = (ferry_sync::slug::slug(cwd), ferry_sync::slug::slug(b_cwd));
    let want = text
        .replace(cwd, b_cwd)
        .replace(&a_slug, &b_slug)
        .replace(a.home.to_str().unwrap(), b.home.to_str().unwrap());
    assert_eq!(got, want);
    assert_eq!(
        std::fs::read_to_string(b_dir.join(id).join("tool-results/r1.txt")).unwrap(),
        format!("ls {b_cwd}\n")
    );
    // The tool-results path in the transcript is where the file is on b.
    let b_results = format!("{}/{id}/tool-results/r1.txt", b_dir.display());
    assert!(got.contains(&b_results), "{got}");
    // b lists it; importing again adds no line.
    let list: Value = serde_json::from_str(&b.ok(&["sessions", "--json"])).unwrap();
    assert_eq!(list["sessions"][0]["id"], id);
    assert_eq!(list["sessions"][0]["resumable_here"], true);
    b.ok(&["import", bundle.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(b_dir.join(format!("{id}.jsonl"))).unwrap(),
        got
    );

    // A bundle that tries to write outside the session is refused, and nothing is written.
    let evil = raw.replace(
        &format!("\"rel\":\"{id}/tool-results/r1.txt\""),
        "\"rel\":\"../../../../evil.txt\"",
    );
    assert_ne!(evil, raw);
    let evil_path = tmp.path().join("evil.json");
    std::fs::write(&evil_path, evil).unwrap();
    let out = b.ferry(&["import", evil_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad path"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.path().join("evil.txt").exists());
    let out = b.ferry(&["import", raw.len().to_string().as_str()]);
    assert_eq!(out.status.code(), Some(1));
}
