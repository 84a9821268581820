//! Asking Claude what is unfinished, with the real client (both pinned versions) on two
//! machines: alice leaves a session open; on bob, with `ferry hooks install --announce`, a new
//! session starts with one line about it, "what's unfinished?" makes the agent load ferry's
//! skill and run the command it names, which lists alice's session with its title, and
//! "continue 1" leads to the brief and to the resume it names, which carries alice's turns.
//! The fake API plays the model: it calls the tools a model would, and the test checks what
//! the client sent back.

use ferry_tests::claude::VERSIONS;
use ferry_tests::rig::{Run, eventually};
use ferry_tests::scenario::{Rig, SYNC, json, resume, s};
use serde_json::Value;

/// The command in the skill's text whose line holds `needle`: what the skill tells the agent
/// to run.
fn command_in(skill: &str, needle: &str) -> String {
    let line = skill
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle} in the skill:\n{skill}"));
    let start = line.find('`').expect("a command in backticks") + 1;
    let end = start + line[start..].find('`').expect("its end");
    line[start..end].to_string()
}

/// Every tool result the client sent back to the model during `run`, as text.
fn tool_results(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    for r in &run.requests {
        for m in r["body"]["messages"].as_array().into_iter().flatten() {
            for b in m["content"].as_array().into_iter().flatten() {
                if b["type"] == "tool_result" {
                    out.push(b["content"].to_string());
                }
            }
        }
    }
    out.dedup();
    out
}

fn bash(command: &str, chain: bool) -> String {
    serde_json::json!({
        "chain": chain,
        "tool_use": {"name": "Bash", "input": {"command": command, "description": "ferry"}}
    })
    .to_string()
}

#[test]
fn what_is_unfinished_lists_the_other_machines_open_session_and_continue_leads_to_it() {
    for version in VERSIONS {
        let rig = Rig::new("what is unfinished");
        let alice = rig.alice();
        let bob = rig.bob();

        // alice works in her checkout, with ferry's hooks: each Stop records where the
        // checkout stands.
        ferry_tests::git::run(&alice.checkout, &["add", "-A"]);
        ferry_tests::git::run(&alice.checkout, &["commit", "-q", "-m", "start"]);
        let repo = git2::Repository::open(&alice.checkout).unwrap();
        let head = repo.head().unwrap();
        let (branch, head) = (
            head.shorthand().unwrap().to_string(),
            head.target().unwrap().to_string(),
        );
        alice.ferry(&["hooks", "install"]);
        let work = json(
            r#"{"text":"On it.","tool_use":{"name":"Bash","input":{"command":"echo streaming > parser.txt","description":"write the parser"}}},{"text":"The parser now streams; the benchmarks are next."}"#,
        );
        alice
            .claude(
                version,
                &["-p", "make the parser stream", "--allowedTools", "Bash"],
                Some(&work),
            )
            .text();
        let id = alice.sessions()[0].clone();
        // Then her laptop dies: the client never ended (no SessionEnd marker).
        let ended = alice.slug_dir().join(&id).join("ferry-ended.json");
        std::fs::remove_file(&ended).expect("the SessionEnd hook marked the session");
        assert!(
            alice
                .slug_dir()
                .join(&id)
                .join("ferry-checkout.json")
                .is_file()
        );
        alice.ferry(&["sync"]);
        bob.ferry(&["hooks", "install", "--announce"]);
        assert!(
            eventually(SYNC, || {
                bob.ferry(&["sync"]);
                bob.ferry(&["sessions", "--open", "--json"]).contains(&id)
            }),
            "bob never saw alice's open session"
        );
        let skill_file = bob
            .machine
            .home
            .join(".claude/skills/ferry-sessions/SKILL.md");
        let skill = std::fs::read_to_string(&skill_file).unwrap();

        // "what's unfinished?": the skill is offered, loaded, and the command it names runs.
        let list = command_in(&skill, "sessions --open --json");
        let script = json(&format!(
            r#"{{"tool_use":{{"name":"Skill","input":{{"skill":"ferry-sessions"}}}}}},{},{{"text":"1. alice: make the parser stream"}}"#,
            bash(&list, true)
        ));
        let run = bob.claude(
            version,
            &[
                "-p",
                "what's unfinished?",
                "--allowedTools",
                "Bash",
                "Skill",
            ],
            Some(&script),
        );
        run.text();
        // The last agent request carries the whole exchange: the skills offered, the note, the
        // skill's text and the command's result.
        let request = run.agent_request();
        assert!(
            request.contains("ferry-sessions") && request.contains("what is unfinished"),
            "{version}: the skill is not offered to the model"
        );
        let results = tool_results(&run);
        assert!(
            request.contains("# Unfinished sessions on every machine"),
            "{version}: the skill's text never reached the model"
        );
        let rows: Vec<Value> = results
            .iter()
            .filter_map(|r| {
                let text: String = serde_json::from_str(r).ok()?;
                let doc: Value = serde_json::from_str(&text).ok()?;
                doc["sessions"].as_array().cloned()
            })
            .flatten()
            .collect();
        let row = rows
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{version}: alice's session is not listed: {results:?}"));
        assert_eq!(row["last_writer"], "alice");
        assert_eq!(row["first_prompt"], "make the parser stream");
        assert_eq!(row["written_here"], false);
        let note = "1 unfinished session(s) of this project on other machines, the newest \\\"make the parser stream\\\" on alice";
        if !request.contains(note) {
            // What the hook says now, and bob's log, tell a hook that found nothing at the
            // time (a project moved under its listing, fixed since) from one whose line the
            // client dropped.
            let hook = serde_json::json!({"cwd": bob.checkout, "session_id": "again"});
            let mut again = bob.machine.command(&["hooks", "run", "session-start"]);
            let again = again
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin
                        .take()
                        .unwrap()
                        .write_all(hook.to_string().as_bytes())?;
                    c.wait_with_output()
                })
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            panic!(
                "{version}: the SessionStart note is not in the context.\nthe hook run again now: {again:?}\nbob's log:\n{}\nthe request: {request}",
                bob.machine.log_tail()
            );
        }

        // "continue 1": the brief, in bob's terms, and the resume it names. By now the view
        // lists alice's session in bob's checkout, where bob runs Claude Code.
        let here = |id: &str| {
            let doc: Value = serde_json::from_str(&bob.ferry(&["sessions", "--json"])).unwrap();
            let rows = doc["sessions"].as_array().cloned().unwrap_or_default();
            rows.iter()
                .any(|r| r["id"] == id && r["resumable_here"] == true)
        };
        assert!(
            eventually(SYNC, || here(&id)),
            "{version}: alice's session never came to bob's checkout"
        );
        let handoff = command_in(&skill, "handoff <id>").replace("<id>", &id);
        let script = json(&format!(
            r#"{},{{"text":"Resuming alice's session."}}"#,
            bash(&handoff, false)
        ));
        let run = bob.claude(
            version,
            &["-p", "continue 1", "--allowedTools", "Bash"],
            Some(&script),
        );
        run.text();
        let brief = tool_results(&run)
            .into_iter()
            .find(|r| r.contains("# Handoff"))
            .unwrap_or_else(|| panic!("{version}: no brief reached the model"));
        let resume_line = format!("cd {} && claude --resume {id}", s(&bob.checkout));
        for want in [
            "make the parser stream",
            "ran `echo streaming > parser.txt`",
            "The parser now streams",
            &format!("alice: branch {branch}, commit {}", &head[..12]),
            resume_line.as_str(),
        ] {
            assert!(brief.contains(want), "{version}: {want} not in {brief}");
        }
        assert!(
            !brief.contains(s(&alice.machine.home)),
            "alice's paths: {brief}"
        );
        let req = resume(&bob, version, &id, "go on");
        for turn in ["make the parser stream", "The parser now streams"] {
            assert!(req.contains(turn), "{version}: {turn} not carried");
        }
    }
}
