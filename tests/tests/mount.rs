//! The mount with the built binary: `ferry init`, `ferry mount`, the real Claude Code client
//! working through the view (create, `--continue`, `--resume`, a big tool output, a subagent),
//! mounting twice, SIGTERM, unmount leaving plain files, and a `kill -9` of the daemon in the
//! middle of appends followed by a remount that recovers the dead mount and loses nothing.

use ferry_tests::claude::{User, VERSIONS};
use ferry_tests::ferry::{Machine, Pair};
use ferry_tests::rig::eventually;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "claude failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every `*.jsonl` directly in the project's slug dir.
fn transcripts(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    v.sort();
    v
}

fn real_client_through_the_mount(version: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    let user = User::new(tmp.path());
    let proj = m.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    // A session from before ferry: it must stay visible through the mount.
    let slug = ferry_sync::slug::slug(proj.to_str().unwrap());
    let old = m
        .projects()
        .join(&slug)
        .join("00000000-0000-4000-8000-000000000000.jsonl");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, "{\"type\":\"summary\",\"summary\":\"old\"}\n").unwrap();
    m.ok(&["init", "--machine", "a"]);
    m.ok(&["mount"]);
    assert!(m.mounted());
    assert!(old.exists(), "a session from before the mount is visible");
    let again = m.ferry(&["mount"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already mounted"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // A session with a big Bash output (goes to tool-results/).
    let s1 = script(
        tmp.path(),
        "s1.json",
        r#"[{"tool_use":{"name":"Bash","input":{"command":"seq 1 60000","description":"count"}}},{"text":"counted"}]"#,
    );
    let out = user.run_with(
        version,
        &proj,
        &["-p", "first prompt", "--allowedTools", "Bash"],
        Some(&s1),
    );
    assert_eq!(stdout(&out), "counted");
    let dir = m.projects().join(&slug);
    let sessions: Vec<_> = transcripts(&dir)
        .into_iter()
        .filter(|p| *p != old)
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let session = &sessions[0];
    let id = session.file_stem().unwrap().to_str().unwrap().to_string();
    let results = dir.join(&id).join("tool-results");
    let saved: Vec<_> = std::fs::read_dir(&results).unwrap().collect();
    assert_eq!(saved.len(), 1, "one persisted tool output");

    // --continue with a subagent.
    let s2 = script(
        tmp.path(),
        "s2.json",
        r#"[{"tool_use":{"name":"Agent","input":{"description":"look","prompt":"say hi","subagent_type":"general-purpose"}}},{"text":"sub says hi"}]"#,
    );
    let out = user.run_with(
        version,
        &proj,
        &[
            "-p",
            "--continue",
            "second prompt",
            "--allowedTools",
            "Agent",
        ],
        Some(&s2),
    );
    let said = stdout(&out);
    assert!(!said.is_empty(), "the continued session answered");
    let subagents = dir.join(&id).join("subagents");
    assert!(
        std::fs::read_dir(&subagents).unwrap().count() >= 2,
        "the subagent's transcript and meta are in the session's dir"
    );

    // --resume by id: the request carries the earlier turns.
    let out = user.run(version, &proj, &["-p", "--resume", &id, "third prompt"]);
    let ack = stdout(&out);
    let n: usize = ack.trim_start_matches("ACK#").parse().unwrap();
    assert!(n >= 5, "resumed with the earlier turns: {ack}");
    let text = std::fs::read_to_string(session).unwrap();
    for p in ["first prompt", "second prompt", "third prompt"] {
        assert!(text.contains(p), "{p} is in the transcript");
    }
    let in_view = std::fs::read(session).unwrap();

    // SIGTERM does what `ferry unmount` does.
    let pid = m.daemon_pid().expect("daemon pid");
    nix_kill(pid, "TERM");
    Machine::wait_gone(pid, Duration::from_secs(30));
    assert!(!m.mounted(), "unmounted after SIGTERM:\n{}", m.log_tail());
    // Plain files now, exactly as the view showed them.
    assert_eq!(std::fs::read(session).unwrap(), in_view);
    assert!(old.exists());
    assert!(results.is_dir() && subagents.is_dir());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.state.join("last-unmount.json")).unwrap()).unwrap();
    assert!(report["error"].is_null(), "{report}");

    // The store has the session.
    let store = ferry_sync::store::Store::open(&m.state.join("store")).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.state.join("config.json")).unwrap()).unwrap();
    let me = config["machine_id"].as_str().unwrap();
    let head = store.head(me, true).unwrap().expect("own branch");
    let snap = store.snapshot(me, head).unwrap();
    let rels: Vec<&str> = snap.files.iter().map(|f| f.rel.as_str()).collect();
    assert!(rels.contains(&format!("{id}.jsonl").as_str()), "{rels:?}");
    assert!(
        rels.iter()
            .any(|r| r.starts_with(&format!("{id}/tool-results/"))),
        "{rels:?}"
    );
    assert!(
        rels.iter()
            .any(|r| r.starts_with(&format!("{id}/subagents/"))),
        "{rels:?}"
    );

    // Mounted again, the session resumes as before.
    m.ok(&["mount"]);
    let out = user.run(version, &proj, &["-p", "--resume", &id, "fourth prompt"]);
    assert!(stdout(&out).starts_with("ACK#"));
    let out = m.ok(&["unmount"]);
    assert!(out.contains("unmounted"), "{out}");
    assert!(
        std::fs::read_to_string(session)
            .unwrap()
            .contains("fourth prompt")
    );
}

fn nix_kill(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn claude_code_2_1_197_works_through_the_mount() {
    real_client_through_the_mount(VERSIONS[0]);
}

#[test]
fn claude_code_2_1_330_works_through_the_mount() {
    real_client_through_the_mount(VERSIONS[1]);
}

#[test]
fn kill_9_of_the_daemon_mid_appends_then_remount_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, dir) = Machine::mounted_alone(tmp.path());
    let file = dir.join("s.jsonl");
    let pid = m.daemon_pid().unwrap();
    let mut acked = Vec::new();
    for i in 0.. {
        let line = format!(
            "{{\"uuid\":\"u{i}\",\"cwd\":\"/work/proj\",\"n\":\"{}\"}}\n",
            "x".repeat(i % 300)
        );
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&file)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match written {
            Ok(()) => acked.push(line),
            Err(e) => {
                assert!(i > 200, "writes failed before the kill: {e}");
                break;
            }
        }
        if i == 300 {
            nix_kill(pid, "KILL");
            Machine::wait_gone(pid, Duration::from_secs(10));
        }
        assert!(
            i < 10_000,
            "writes kept succeeding after the daemon was killed"
        );
    }
    // The mount is dead now (ENOTCONN); mounting again recovers it by itself.
    let err = std::fs::metadata(&file).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_enotconn()), "{err}");
    let out = m.ferry(&["mount"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_tail()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale mount"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        acked.concat(),
        "every acknowledged line, in order, nothing else"
    );
    m.ok(&["unmount"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), acked.concat());
    // And the store caught up at the reconcile and the unmount.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.state.join("config.json")).unwrap()).unwrap();
    let me = config["machine_id"].as_str().unwrap();
    let store = ferry_sync::store::Store::open(&m.state.join("store")).unwrap();
    let snap = store
        .snapshot(me, store.head(me, true).unwrap().unwrap())
        .unwrap();
    let entry = snap
        .files
        .iter()
        .find(|f| f.rel.as_str() == "s.jsonl")
        .expect("committed");
    let stored = String::from_utf8(store.read(entry).unwrap()).unwrap();
    assert_eq!(stored.lines().count(), acked.len());
}

fn libc_enotconn() -> i32 {
    107
}

#[test]
fn another_machines_session_appears_expanded_and_follows_its_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        remote: _,
        a,
        b,
        a_proj,
        b_proj,
    } = Pair::new(tmp.path());
    a.ok(&["mount"]);
    b.ok(&["mount"]);
    // A session on a, written through its mount, naming a's paths.
    let user_a = User::new(&tmp.path().join("a"));
    let out = user_a.run(VERSIONS[0], &a_proj, &["-p", "hello from a"]);
    assert!(stdout(&out).starts_with("ACK#"));
    let a_dir = a
        .projects()
        .join(ferry_sync::slug::slug(a_proj.to_str().unwrap()));
    let session = transcripts(&a_dir).pop().expect("a's session");
    let name = session.file_name().unwrap().to_owned();
    // On b it appears under b's slug for the same project, with b's paths.
    let b_dir = b
        .projects()
        .join(ferry_sync::slug::slug(b_proj.to_str().unwrap()));
    let b_session = b_dir.join(&name);
    assert!(
        eventually(Duration::from_secs(30), || b_session.exists()),
        "a's session reached b's view:\n{}",
        b.log_tail()
    );
    let seen = std::fs::read_to_string(&b_session).unwrap();
    assert!(
        seen.contains(b_proj.to_str().unwrap()),
        "b's paths in b's view"
    );
    assert!(
        !seen.contains(a.home.to_str().unwrap()),
        "no path of a's left"
    );
    assert_eq!(
        std::fs::metadata(&b_session).unwrap().len(),
        seen.len() as u64
    );
    // b resumes it in its own checkout.
    let user_b = User::new(&tmp.path().join("b"));
    let id = name
        .to_str()
        .unwrap()
        .trim_end_matches(".jsonl")
        .to_string();
    let out = user_b.run(
        VERSIONS[0],
        &b_proj,
        &["-p", "--resume", &id, "hello from b"],
    );
    let ack = stdout(&out);
    let n: usize = ack.trim_start_matches("ACK#").parse().unwrap_or(0);
    assert!(n >= 3, "b's request carried a's turns: {ack}");
    // a goes on; b's view, read and cached by its kernel, follows.
    let out = user_a.run(
        VERSIONS[0],
        &a_proj,
        &["-p", "--resume", &id, "more from a"],
    );
    assert!(stdout(&out).starts_with("ACK#"));
    assert!(
        eventually(Duration::from_secs(30), || std::fs::read_to_string(
            &b_session
        )
        .is_ok_and(|t| t.contains("more from a") && t.contains("hello from b"))),
        "b's view shows both machines' lines:\n{}",
        b.log_tail()
    );
    let text = std::fs::read_to_string(&b_session).unwrap();
    assert_eq!(
        std::fs::metadata(&b_session).unwrap().len(),
        text.len() as u64,
        "exact size after the change"
    );
    a.ok(&["unmount"]);
    b.ok(&["unmount"]);
}
