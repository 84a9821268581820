//! Session satellites with the real client, real mounts and a real remote: a session's
//! checkpoints (`file-history/`), task list (`tasks/`), plan (`plans/`) and prompt history
//! (`history.jsonl`) follow it to another machine, in that machine's paths, changes come back,
//! and its writer's deletion removes them as a transcript's deletion would.

use ferry_tests::claude::VERSIONS;
use ferry_tests::rig::{Host, eventually};
use ferry_tests::scenario::{Rig, SYNC, s};
use ferry_tests::tty::Terminal;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Every file under `dir` (one level of subdirectories), by relative path, with its text.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            for (k, v) in files(&e.path()) {
                out.insert(format!("{name}/{k}"), v);
            }
        } else if let Ok(text) = std::fs::read_to_string(e.path()) {
            out.insert(name, text);
        }
    }
    out
}

/// `host`'s config-dir directory `kind` for session `sid`.
fn sat(host: &Host, kind: &str, sid: &str) -> std::path::PathBuf {
    host.user.config_dir.join(kind).join(sid)
}

/// What `a`'s files say in `b`'s terms: `a`'s checkout named as `b`'s.
fn in_terms_of(files: &BTreeMap<String, String>, a: &Host, b: &Host) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(k, v)| (k.clone(), v.replace(s(&a.checkout), s(&b.checkout))))
        .collect()
}

/// The tools the scripts call, allowed without asking.
const TOOLS: &str = "Read Edit TaskCreate TaskList TaskUpdate";

fn checkpointing(host: &mut Host) {
    host.user.env.push((
        "CLAUDE_CODE_ENABLE_SDK_FILE_CHECKPOINTING".into(),
        "true".into(),
    ));
}

fn script(items: &[serde_json::Value]) -> String {
    serde_json::Value::Array(items.to_vec()).to_string()
}

fn call(name: &str, input: serde_json::Value, chain: bool) -> serde_json::Value {
    serde_json::json!({"tool_use": {"name": name, "input": input}, "chain": chain})
}

/// alice edits a file and (where the client has a task list in `-p` mode: 2.1.197) makes two
/// tasks; bob gets the checkpoint and the tasks in bob's terms, resumes, sees the tasks and
/// completes one, which comes back to alice; alice's cleanup then removes what alice wrote
/// everywhere, and leaves bob's own change.
fn checkpoints_and_tasks_travel(version: &str, scenario: &'static str) {
    let tasks = version == "2.1.197";
    let rig = Rig::new(scenario);
    let mut a = rig.alice();
    let mut b = rig.bob();
    checkpointing(&mut a);
    checkpointing(&mut b);
    let sid = alice_edits_and_plans(&a, version, tasks);
    // The checkpoint holds the file before the edit, in alice's paths.
    let a_history = files(&sat(&a, "file-history", &sid));
    assert_eq!(a_history.len(), 1, "one checkpoint on alice: {a_history:?}");
    assert!(a_history.values().all(|t| t.contains(s(&a.checkout))));
    let names = |m: BTreeMap<String, String>| m.into_keys().collect::<Vec<_>>();
    let arrived = eventually(SYNC, || {
        names(files(&sat(&b, "file-history", &sid))) == names(a_history.clone())
            && (!tasks || files(&sat(&b, "tasks", &sid)).len() == 2)
    });
    assert!(
        arrived,
        "bob's checkpoints {:?} and tasks {:?}\n{}",
        files(&sat(&b, "file-history", &sid)),
        files(&sat(&b, "tasks", &sid)),
        b.machine.log_tail()
    );
    let bobs_own = bob_resumes(&a, &b, version, &sid, tasks, &a_history);
    alice_cleans_up(&a, &b, &sid, tasks, &a_history, &bobs_own);
}

/// alice's session: a Read and an Edit of the README (which names alice's checkout) and, with
/// `tasks`, two tasks; returns its id.
fn alice_edits_and_plans(a: &Host, version: &str, tasks: bool) -> String {
    let readme = a.checkout.join("README.md");
    std::fs::write(&readme, format!("readme of {}\n", s(&a.checkout))).unwrap();
    let mut steps = vec![
        call("Read", serde_json::json!({"file_path": s(&readme)}), false),
        call(
            "Edit",
            serde_json::json!({"file_path": s(&readme), "old_string": "readme", "new_string": "README"}),
            true,
        ),
    ];
    if tasks {
        for (subject, what) in [("first thing", s(&readme)), ("second thing", "then more")] {
            steps.push(call(
                "TaskCreate",
                serde_json::json!({"subject": subject, "description": format!("work on {what}"), "activeForm": subject}),
                true,
            ));
        }
    }
    steps.push(serde_json::json!({"text": "planned"}));
    let run = a.claude(
        version,
        &["-p", "plan it", "--allowedTools", TOOLS],
        Some(&script(&steps)),
    );
    assert_eq!(run.text(), "planned");
    a.sessions().first().cloned().expect("alice's session")
}

/// bob resumes in his checkout: the satellites come in his terms, and (with `tasks`) he lists
/// the tasks and completes the second, which reaches alice. Returns the checkpoints bob's own
/// resume made.
fn bob_resumes(
    a: &Host,
    b: &Host,
    version: &str,
    sid: &str,
    tasks: bool,
    a_history: &BTreeMap<String, String>,
) -> Vec<String> {
    // bob resumes in his checkout: the session's satellites are in his checkout's terms.
    let mut steps = vec![];
    if tasks {
        steps.push(call("TaskList", serde_json::json!({}), false));
        steps.push(call(
            "TaskUpdate",
            serde_json::json!({"taskId": "2", "status": "completed"}),
            true,
        ));
    }
    steps.push(serde_json::json!({"text": "updated"}));
    let run = b.claude(
        version,
        &[
            "-p",
            "--resume",
            sid,
            "what is left?",
            "--allowedTools",
            TOOLS,
        ],
        Some(&script(&steps)),
    );
    assert_eq!(run.text(), "updated");
    // (bob's resume makes a checkpoint of its own, of bob's README: it stays bob's.)
    let want = in_terms_of(a_history, a, b);
    let has_alices = |m: &BTreeMap<String, String>| want.iter().all(|(k, v)| m.get(k) == Some(v));
    let arrived = eventually(SYNC, || has_alices(&files(&sat(b, "file-history", sid))));
    assert!(
        arrived,
        "bob's checkpoints {:?}, want {want:?}",
        files(&sat(b, "file-history", sid)),
    );
    let bobs_own: Vec<String> = files(&sat(b, "file-history", sid))
        .into_keys()
        .filter(|k| !want.contains_key(k))
        .collect();
    if tasks {
        let a_tasks = files(&sat(a, "tasks", sid));
        let results = task_results(&b.read(sid));
        assert!(
            results
                .iter()
                .any(|r| r.contains("first thing") && r.contains("second thing")),
            "bob's TaskList: {results:?}"
        );
        assert!(
            results.iter().any(|r| r.contains("Updated task #2")),
            "bob's TaskUpdate: {results:?}"
        );
        // The task bob did not change is alice's, in bob's terms.
        let first = eventually(SYNC, || {
            files(&sat(b, "tasks", sid)).get("1.json") == in_terms_of(&a_tasks, a, b).get("1.json")
        });
        assert!(first, "bob's tasks: {:?}", files(&sat(b, "tasks", sid)));
        let done = eventually(SYNC, || {
            files(&sat(a, "tasks", sid))
                .get("2.json")
                .is_some_and(|t| t.contains("\"completed\""))
        });
        assert!(done, "alice's tasks: {:?}", files(&sat(a, "tasks", sid)));
        // `ferry status` names alice's older version where `ferry restore` takes it.
        let status: serde_json::Value =
            serde_json::from_str(&a.ferry(&["status", "--json"])).unwrap();
        let task = sat(a, "tasks", sid).join("2.json");
        assert!(
            status["lost_newest_wins"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x["path"] == s(&task))),
            "{status:#}"
        );
    }
    bobs_own
}

/// alice's cleanup removes the session's satellites: what alice wrote goes everywhere, bob's own
/// change stays on bob; `ferry restore` brings a checkpoint back.
fn alice_cleans_up(
    a: &Host,
    b: &Host,
    sid: &str,
    tasks: bool,
    a_history: &BTreeMap<String, String>,
    bobs_own: &[String],
) {
    // alice's cleanup removes the session's satellites: what alice wrote goes everywhere, bob's
    // own change stays on bob.
    std::fs::remove_dir_all(sat(a, "file-history", sid)).unwrap();
    if tasks {
        std::fs::remove_dir_all(sat(a, "tasks", sid)).unwrap();
    }
    let gone = eventually(SYNC, || {
        files(&sat(b, "file-history", sid))
            .into_keys()
            .collect::<Vec<_>>()
            == bobs_own
            && (!tasks || !sat(b, "tasks", sid).join("1.json").exists())
    });
    assert!(
        gone,
        "bob kept {:?} {:?}",
        files(&sat(b, "file-history", sid)),
        files(&sat(b, "tasks", sid))
    );
    // `ferry restore` brings a deleted checkpoint back where Claude Code looks for it.
    let (name, text) = a_history.iter().next().unwrap();
    let path = sat(a, "file-history", sid).join(name);
    let said = a.ferry(&["restore", s(&path)]);
    assert!(said.contains("restored"), "{said}");
    assert_eq!(&std::fs::read_to_string(&path).unwrap(), text);
    if tasks {
        let bobs = files(&sat(b, "tasks", sid));
        assert!(
            bobs.get("2.json")
                .is_some_and(|t| t.contains("\"completed\"")),
            "bob's own task: {bobs:?}"
        );
        // And it does not come back to alice, who deleted it.
        std::thread::sleep(Duration::from_secs(3));
        assert!(!sat(a, "tasks", sid).join("2.json").exists());
    }
}

/// The text of every tool result in a transcript.
fn task_results(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["message"]["content"].as_array().cloned())
        .flatten()
        .filter(|c| c["type"] == "tool_result")
        .map(|c| c["content"].to_string())
        .collect()
}

#[test]
fn checkpoints_and_tasks_travel_2_1_197() {
    checkpoints_and_tasks_travel(VERSIONS[0], "satellites: checkpoints and tasks, 2.1.197");
}

#[test]
fn checkpoints_travel_2_1_330() {
    checkpoints_and_tasks_travel(VERSIONS[1], "satellites: checkpoints, 2.1.330");
}

/// The `history.jsonl` entries of `host` typed as `display`: their `project` fields.
fn history(host: &Host, display: &str) -> Vec<String> {
    std::fs::read_to_string(host.user.config_dir.join("history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["display"] == display)
        .map(|v| v["project"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A prompt typed on alice is in bob's prompt history with bob's checkout as its project, and
/// bob's up arrow in his checkout brings it back; bob's prompt reaches alice the same way, each
/// entry once.
fn prompt_history_travels(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    Terminal::one_prompt(
        &a.user,
        version,
        &a.checkout,
        &["--dangerously-skip-permissions"],
        None,
        "alpha prompt from alice",
        "ACK#",
    );
    assert_eq!(history(&a, "alpha prompt from alice"), [s(&a.checkout)]);
    let arrived = eventually(SYNC, || history(&b, "alpha prompt from alice").len() == 1);
    assert!(
        arrived,
        "bob's history:\n{}\nalice's log:\n{}\nalice's status:\n{}",
        b.machine.log_tail(),
        a.machine.log_tail(),
        String::from_utf8_lossy(&a.machine.ferry(&["status"]).stdout)
    );

    // Once bob uses his checkout, the entry names it.
    let t = Terminal::start(
        &b.user,
        version,
        &b.checkout,
        &["--dangerously-skip-permissions"],
    );
    let placed = eventually(SYNC, || {
        history(&b, "alpha prompt from alice") == [s(&b.checkout)]
    });
    assert!(
        placed,
        "bob's history: {:?}",
        history(&b, "alpha prompt from alice")
    );
    t.key("Up");
    let recalled = eventually(Duration::from_secs(20), || {
        t.input().contains("alpha prompt from alice")
    });
    assert!(recalled, "bob's up arrow:\n{}", t.screen());
    t.key("C-u");
    t.type_line("bravo prompt from bob");
    t.wait_for("ACK#", Duration::from_secs(60));
    t.exit();
    let back = eventually(SYNC, || {
        history(&a, "bravo prompt from bob") == [s(&a.checkout)]
    });
    assert!(
        back,
        "alice's history: {:?}",
        history(&a, "bravo prompt from bob")
    );
    // Each entry once on each machine, in time order.
    for h in [&a, &b] {
        let text = std::fs::read_to_string(h.user.config_dir.join("history.jsonl")).unwrap();
        let times: Vec<i64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["timestamp"].as_i64().unwrap())
            .collect();
        assert!(
            times.is_sorted(),
            "{}'s history out of order:\n{text}",
            h.name
        );
        assert_eq!(history(h, "alpha prompt from alice").len(), 1, "{text}");
        assert_eq!(history(h, "bravo prompt from bob").len(), 1, "{text}");
    }
}

#[test]
fn prompt_history_travels_2_1_197() {
    prompt_history_travels(VERSIONS[0], "satellites: prompt history, 2.1.197");
}

#[test]
fn prompt_history_travels_2_1_330() {
    prompt_history_travels(VERSIONS[1], "satellites: prompt history, 2.1.330");
}

/// A plan written in plan mode on alice is on bob, in bob's terms, and bob's resumed session in
/// plan mode reads it.
fn plan_travels(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    let plan = format!("# Plan\n1. edit {}/README.md\n", s(&a.checkout));
    let steps = [
        call(
            "Write",
            serde_json::json!({"file_path": "{{plan_file}}", "content": plan}),
            false,
        ),
        serde_json::json!({"text": "plan written"}),
    ];
    Terminal::one_prompt(
        &a.user,
        version,
        &a.checkout,
        &["--permission-mode", "plan"],
        Some(&script(&steps)),
        "make a plan",
        "plan written",
    );
    let a_plans = files(&a.user.config_dir.join("plans"));
    assert_eq!(a_plans.values().collect::<Vec<_>>(), [&plan], "{a_plans:?}");
    let sid = a.sessions().first().cloned().expect("alice's session");

    let arrived = eventually(SYNC, || files(&b.user.config_dir.join("plans")).len() == 1);
    assert!(arrived, "no plan on bob:\n{}", b.machine.log_tail());
    // Once bob has used his checkout, the plan is in its terms (until then, in the terms of
    // the place guessed for the project), and his resumed session reads it.
    assert!(
        b.claude(version, &["-p", "hello"], None)
            .text()
            .starts_with("ACK#")
    );
    let want = plan.replace(s(&a.checkout), s(&b.checkout));
    let placed = eventually(SYNC, || {
        files(&b.user.config_dir.join("plans"))
            .into_values()
            .collect::<Vec<_>>()
            == [want.clone()]
    });
    assert!(
        placed,
        "bob's plan: {:?}",
        files(&b.user.config_dir.join("plans"))
    );
    let steps = [
        call(
            "Read",
            serde_json::json!({"file_path": "{{plan_file}}"}),
            false,
        ),
        serde_json::json!({"text": "read it"}),
    ];
    let run = b.claude(
        version,
        &[
            "-p",
            "--resume",
            &sid,
            "go on",
            "--permission-mode",
            "plan",
            "--allowedTools",
            "Read",
        ],
        Some(&script(&steps)),
    );
    assert_eq!(run.text(), "read it");
    let results = task_results(&b.read(&sid));
    assert!(
        results
            .iter()
            .any(|r| r.contains(&format!("edit {}/README.md", s(&b.checkout)))),
        "bob's Read of the plan: {results:?}"
    );
}

#[test]
fn plan_travels_2_1_197() {
    plan_travels(VERSIONS[0], "satellites: plan, 2.1.197");
}

#[test]
fn plan_travels_2_1_330() {
    plan_travels(VERSIONS[1], "satellites: plan, 2.1.330");
}

/// alice edits the README in an interactive session; bob resumes it in his checkout and
/// `/rewind`s its code to before alice's prompt: the README comes back from alice's
/// checkpoint, in bob's terms.
fn rewind_on_bob(version: &str, scenario: &'static str) {
    let rig = Rig::new(scenario);
    let a = rig.alice();
    let b = rig.bob();
    let readme = a.checkout.join("README.md");
    let before = format!("readme of {}\n", s(&a.checkout));
    std::fs::write(&readme, &before).unwrap();
    let steps = [
        call("Read", serde_json::json!({"file_path": s(&readme)}), false),
        call(
            "Edit",
            serde_json::json!({"file_path": s(&readme), "old_string": "readme", "new_string": "README"}),
            true,
        ),
        serde_json::json!({"text": "edited"}),
    ];
    Terminal::one_prompt(
        &a.user,
        version,
        &a.checkout,
        &["--dangerously-skip-permissions"],
        Some(&script(&steps)),
        "change the readme",
        "edited",
    );
    assert!(
        std::fs::read_to_string(&readme)
            .unwrap()
            .starts_with("README of")
    );
    let sid = a.sessions().first().cloned().expect("alice's session");
    assert_eq!(files(&sat(&a, "file-history", &sid)).len(), 1);
    b.wait_for(&sid, &["edited"], SYNC);

    let t = Terminal::start(
        &b.user,
        version,
        &b.checkout,
        &["--resume", &sid, "--dangerously-skip-permissions"],
    );
    let want = before.replace(s(&a.checkout), s(&b.checkout));
    let placed = eventually(SYNC, || {
        files(&sat(&b, "file-history", &sid))
            .values()
            .any(|v| *v == want)
    });
    assert!(
        placed,
        "bob's checkpoints: {:?}",
        files(&sat(&b, "file-history", &sid))
    );
    t.rewind_code("change the readme");
    let bob_readme = b.checkout.join("README.md");
    let restored = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&bob_readme).is_ok_and(|t| t == want)
    });
    assert!(
        restored,
        "bob's README after /rewind: {:?}\n{}",
        std::fs::read_to_string(&bob_readme),
        t.screen()
    );
}

#[test]
fn rewind_on_bob_2_1_197() {
    rewind_on_bob(VERSIONS[0], "satellites: /rewind on bob, 2.1.197");
}

#[test]
fn rewind_on_bob_2_1_330() {
    rewind_on_bob(VERSIONS[1], "satellites: /rewind on bob, 2.1.330");
}
