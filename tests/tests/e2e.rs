//! End to end: a session started on one machine continues on another, with the real Claude Code
//! client, real mounts and a real `git daemon` remote on 127.0.0.1. The machines have
//! differently shaped HOMEs (`/home/alice`, `/Users/bob`, `/home/carol`) and their checkouts of
//! the project sit at different places under them. Each scenario prints its wall time.

use ferry_tests::claude::VERSIONS;
use ferry_tests::rig::{Host, eventually, paths_under, uuids};
use ferry_tests::scenario::{
    Rig, SYNC, assert_local, assert_same_lines, kill_daemon, new_session, resume, s, tool,
};
use std::time::{Duration, SystemTime};

/// Scenarios 1 and 2: a session with text turns, a big Bash output, a Read, a Write and a
/// subagent on alice continues on bob (`--resume` and `--continue`) with bob's paths, and
/// alice resumes it again.
fn continue_on_b_and_back(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    let readme = a.checkout.join("README.md");
    let notes = a.checkout.join("notes.txt");

    let bash = tool(
        "Bash",
        serde_json::json!({"command": "seq 1 60000", "description": "count"}),
        "counted",
    );
    let run = a.claude(
        version,
        &["-p", "alpha: count", "--allowedTools", "Bash"],
        Some(&bash),
    );
    assert_eq!(run.text(), "counted");
    let id = a.sessions().first().cloned().expect("alice's session");
    let steps = [
        (
            "Read",
            serde_json::json!({"file_path": s(&readme)}),
            "alpha: read",
        ),
        (
            "Write",
            serde_json::json!({"file_path": s(&notes), "content": "notes from alice\n"}),
            "alpha: write",
        ),
        (
            "Agent",
            serde_json::json!({"description": "look", "prompt": "say hi", "subagent_type": "general-purpose"}),
            "alpha: agent",
        ),
    ];
    for (name, input, prompt) in steps {
        let script = tool(name, input, &format!("{name} done"));
        let run = a.claude(
            version,
            &["-p", "--continue", prompt, "--allowedTools", name],
            Some(&script),
        );
        assert!(!run.text().is_empty());
    }
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "notes from alice\n"
    );
    assert_eq!(a.sessions(), [id.as_str()], "one session on alice");
    let a_text = a.read(&id);
    assert_local(&a_text, &a, &b);

    // bob has it, with no command run; bob has never used Claude Code in its checkout. Wait for
    // alice's last line: a commit during alice's last run may carry its prompt but not its end.
    let a_uuids = uuids(&a_text);
    let last = a_uuids.last().expect("alice's lines");
    b.wait_for(&id, &["alpha: agent", last.as_str()], SYNC);

    // `--resume <id>` on bob, in bob's checkout: the request carries alice's turns in bob's terms.
    let req = resume(&b, version, &id, "bravo: resume");
    // The session now lives under bob's slug, with bob's paths, and so do its files.
    let b_text = std::fs::read_to_string(b.transcript(&id)).unwrap();
    assert_local(&b_text, &b, &a);
    assert_eq!(
        uuids(&b_text)[..a_uuids.len()],
        a_uuids,
        "alice's lines, in order"
    );
    let b_results = b.slug_dir().join(&id).join("tool-results");
    assert_eq!(std::fs::read_dir(&b_results).unwrap().count(), 1);
    let b_subagents = b.slug_dir().join(&id).join("subagents");
    for e in std::fs::read_dir(&b_subagents).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains(s(&a.machine.home)), "subagent file: {text}");
    }
    for turn in [
        "alpha: count",
        "alpha: read",
        "alpha: write",
        "alpha: agent",
    ] {
        assert!(req.contains(turn), "{turn} in bob's request");
    }
    assert!(!req.contains(s(&a.machine.home)), "alice's paths: {req}");
    let b_readme = b.checkout.join("README.md");
    assert!(
        req.contains(s(&b_readme)),
        "Read's path in bob's form: {req}"
    );
    assert!(req.contains(s(&b.checkout.join("notes.txt"))));
    let prefix = format!("{}/projects/", b.user.config_dir.display());
    let results: Vec<String> = paths_under(&req, &prefix)
        .into_iter()
        .filter(|p| p.contains("/tool-results/"))
        .collect();
    assert!(
        !results.is_empty(),
        "the tool-results path under bob's config dir: {req}"
    );
    for p in &results {
        let saved = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(saved.contains("\n60000"), "{p} holds the output");
    }
    // `--continue` on bob picks the same session.
    let run = b.claude(version, &["-p", "--continue", "bravo: continue"], None);
    assert!(run.text().starts_with("ACK#"));
    assert!(run.agent_request().contains("bravo: resume"));
    assert_eq!(b.sessions(), [id.as_str()], "bob continued alice's session");

    // Scenario 2: alice resumes what bob added, in alice's terms.
    a.wait_for(&id, &["bravo: continue"], SYNC);
    let req = resume(&a, version, &id, "alpha: again");
    assert!(req.contains("bravo: resume") && req.contains("bravo: continue"));
    assert!(!req.contains(s(&b.machine.home)), "bob's paths: {req}");
    b.wait_for(&id, &["alpha: again"], SYNC);
    assert_local(&a.read(&id), &a, &b);
    assert_local(&b.read(&id), &b, &a);
    assert_same_lines(&id, &[&a, &b]);
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
}

#[test]
fn continue_on_b_and_back_2_1_197() {
    continue_on_b_and_back(VERSIONS[0], "1+2 (2.1.197): continue on B, round trip");
}

#[test]
fn continue_on_b_and_back_2_1_330() {
    continue_on_b_and_back(VERSIONS[1], "1+2 (2.1.330): continue on B, round trip");
}

/// Scenario 3: with the remote down, alice and bob both extend the session; once it is back,
/// both have every line, so does carol, a third machine, and all three resume it.
#[test]
fn divergence_while_the_remote_is_down() {
    let mut rig = Rig::new("3: divergence");
    let v = VERSIONS[1];
    let a = rig.alice();
    let b = rig.bob();
    let id = new_session(&a, v, "alpha: start");
    b.wait_for(&id, &["alpha: start"], SYNC);

    rig.remote.down();
    resume(&a, v, &id, "alpha: offline");
    resume(&b, v, &id, "bravo: offline");
    assert!(!a.read(&id).contains("bravo: offline"));
    rig.remote.up();

    a.wait_for(&id, &["bravo: offline"], SYNC);
    b.wait_for(&id, &["alpha: offline"], SYNC);
    let c = rig.carol();
    c.wait_for(&id, &["alpha: offline", "bravo: offline"], SYNC);
    assert_same_lines(&id, &[&a, &b, &c]);
    for (h, others) in [(&a, [&b, &c]), (&b, [&c, &a]), (&c, [&a, &b])] {
        // The transcript is a tree: the client resumes one branch (the newest leaf's); the
        // other's lines stay in the file.
        let req = resume(h, v, &id, &format!("{}: after", h.name));
        assert!(req.contains("alpha: start"));
        assert!(req.contains("alpha: offline") || req.contains("bravo: offline"));
        for other in others {
            assert!(!req.contains(s(&other.machine.home)));
            assert_local(
                &std::fs::read_to_string(h.transcript(&id)).unwrap(),
                h,
                other,
            );
        }
    }
}

/// Scenario 4: bob's Claude Code deletes an aged session of alice's in its housekeeping; it goes
/// on bob only, and `ferry restore` brings it back.
#[test]
fn retention_on_b_hides_and_restore_brings_back() {
    let rig = Rig::new("4: retention");
    let v = VERSIONS[1];
    let a = rig.alice();
    let b = rig.bob();
    let id = new_session(&a, v, "alpha: long ago");
    let aged = SystemTime::now() - Duration::from_secs(60 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(a.transcript(&id))
        .unwrap()
        .set_modified(aged)
        .unwrap();
    let old = |h: &Host| {
        h.find(&id)
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| t < SystemTime::now() - Duration::from_secs(30 * 86_400))
    };
    assert!(
        eventually(SYNC, || old(&b)),
        "the aged session reached bob with its age:\n{}",
        b.machine.log_tail()
    );
    let before = b.read(&id);

    // A run longer than 5 s starts the client's housekeeping (cleanupPeriodDays: 30).
    let sleep = tool(
        "Bash",
        serde_json::json!({"command": "sleep 8", "description": "wait"}),
        "waited",
    );
    let run = b.claude(
        v,
        &["-p", "bravo: wait", "--allowedTools", "Bash"],
        Some(&sleep),
    );
    assert_eq!(run.text(), "waited");
    assert!(
        eventually(Duration::from_secs(20), || b.find(&id).is_none()),
        "bob's housekeeping removed the aged session"
    );
    // Not asserted: the client's `.last-cleanup` marker. 2.1.330 writes it only after some fifty
    // later sweeps, and a `-p` run can exit before them (CI saw the session gone and no marker).

    // Only on bob: alice still has it after both have synced.
    b.ferry(&["sync"]);
    a.ferry(&["sync"]);
    assert!(a.transcript(&id).exists(), "alice keeps her session");
    assert!(a.read(&id).contains("alpha: long ago"));
    assert!(b.find(&id).is_none());

    let out = b.ferry(&["restore", s(&b.transcript(&id))]);
    assert!(out.contains("restored"), "{out}");
    let restored = std::fs::read_to_string(b.transcript(&id)).unwrap();
    assert_eq!(uuids(&restored), uuids(&before), "restored as it was");
    assert_local(&restored, &b, &a);
    let req = resume(&b, v, &id, "bravo: restored");
    assert!(req.contains("alpha: long ago"));
}

/// Scenario 5: with the remote down, sessions go on locally; when it comes back, the other
/// machine catches up with no command run.
#[test]
fn offline_work_catches_up_by_itself() {
    let mut rig = Rig::new("5: offline");
    let v = VERSIONS[0];
    let a = rig.alice();
    let b = rig.bob();
    rig.remote.down();
    let id = new_session(&a, v, "alpha: offline one");
    let req = resume(&a, v, &id, "alpha: offline two");
    assert!(req.contains("alpha: offline one"));
    let status: serde_json::Value = serde_json::from_str(&a.ferry(&["status", "--json"])).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            let st: serde_json::Value =
                serde_json::from_str(&a.ferry(&["status", "--json"])).unwrap();
            st["remote"]["reachable"] == false
        }),
        "status says the remote is unreachable: {status}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(b.find(&id).is_none());
    rig.remote.up();
    b.wait_for(&id, &["alpha: offline one", "alpha: offline two"], SYNC);
    let req = resume(&b, v, &id, "bravo: caught up");
    assert!(req.contains("alpha: offline two"));
    assert!(
        eventually(SYNC, || {
            let st: serde_json::Value =
                serde_json::from_str(&a.ferry(&["status", "--json"])).unwrap();
            st["remote"]["reachable"] == true
        }),
        "alice sees the remote again"
    );
}

/// Scenario 6: unmount and mount again, and `kill -9` of the daemon in the middle of a session
/// and mount again: nothing acknowledged is lost, and the client resumes.
#[test]
fn lifecycle_unmount_and_kill_9() {
    let rig = Rig::new("6: lifecycle");
    let v = VERSIONS[0];
    let a = rig.alice();
    let b = rig.bob();
    let id = new_session(&a, v, "alpha: before unmount");
    let before = a.read(&id);
    a.ferry(&["unmount"]);
    assert_eq!(
        a.read(&id),
        before,
        "the plain file is what the view showed"
    );
    a.ferry(&["mount"]);
    assert_eq!(a.read(&id), before);
    resume(&a, v, &id, "alpha: after remount");

    // kill -9 while the client runs a tool.
    let sleep = tool(
        "Bash",
        serde_json::json!({"command": "sleep 4", "description": "wait"}),
        "slept",
    );
    let child = a.spawn_claude(
        v,
        &[
            "-p",
            "--resume",
            &id,
            "alpha: crash",
            "--allowedTools",
            "Bash",
        ],
        Some(&sleep),
    );
    assert!(
        eventually(Duration::from_secs(60), || a.read(&id).contains("sleep 4")),
        "the tool call was written"
    );
    let acked = a.read(&id);
    kill_daemon(&a);
    let _ = child.wait_with_output();
    let out = a.machine.ferry(&["mount"]);
    assert!(out.status.success(), "{}", a.machine.log_tail());
    let after = a.read(&id);
    assert!(
        after.starts_with(&acked),
        "every acknowledged line is there:\n{acked}\n---\n{after}"
    );
    let req = resume(&a, v, &id, "alpha: after crash");
    assert!(req.contains("alpha: crash"));
    b.wait_for(&id, &["alpha: after crash"], SYNC);
    assert_same_lines(&id, &[&a, &b]);
}

/// Scenario 7: with the hooks installed, from alice's Stop hook to the session being resumable
/// on bob. The figure is printed; `cargo bench -p ferry-tests --bench handoff` measures it.
#[test]
fn stop_hook_to_resumable_on_b() {
    let rig = Rig::new("7: latency");
    let v = VERSIONS[1];
    let a = rig.alice();
    let b = rig.bob();
    let stamps = ferry_tests::rig::install_hooks_with_stamp(&a);
    let ack = a.claude(v, &["-p", "alpha: hooked"], None).text();
    let id = a.sessions().first().cloned().expect("alice's session");
    let latency =
        ferry_tests::rig::visible_after_stop(&b, &id, &["alpha: hooked", &ack], &stamps, SYNC);
    eprintln!("Stop hook on alice -> resumable on bob: {latency:?}");
    let req = resume(&b, v, &id, "bravo: resumed");
    assert!(req.contains("alpha: hooked"));
}
