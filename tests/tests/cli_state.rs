//! `ferry status`, `ferry sync`, `ferry link` and `ferry projects` with the built binary, over a
//! real `file://` remote: mounted and not, remote reachable and not, and a file two machines
//! wrote differently.

use ferry_tests::ferry::{Machine, Pair};
use serde_json::Value;
use std::path::Path;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn write_session(m: &Machine, cwd: &Path, name: &str, text: &str) {
    let dir = m
        .projects()
        .join(ferry_sync::slug::slug(cwd.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(name),
        format!(
            "{{\"uuid\":\"{name}\",\"cwd\":\"{}\",\"text\":\"{text}\"}}\n",
            cwd.display()
        ),
    )
    .unwrap();
}

#[test]
fn status_sync_link_and_projects() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        remote,
        a,
        b,
        a_proj,
        b_proj,
    } = Pair::new(tmp.path());

    // Not mounted: what the directory holds and the branch lacks is pending.
    write_session(&a, &a_proj, "s1.jsonl", "hello");
    let st = json(&a.ok(&["status", "--json"]));
    assert_eq!(st["mount"]["state"], "none");
    assert_eq!(st["pending"]["paths"], 1, "{st}");
    assert_eq!(
        st["machines"][0]["name"], "a",
        "this machine is listed before its first commit"
    );
    assert!(st["machines"][0]["last_commit_ms"].is_null());
    let human = a.ok(&["status"]);
    assert!(
        human.contains("not mounted") && human.contains("pending:  1 path"),
        "{human}"
    );

    // `ferry sync` without a daemon commits, fetches and pushes.
    let out = a.ferry(&["sync", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert!(
        report["committed"].is_string() && report["remote_ok"] == true,
        "{report}"
    );
    let st = json(&a.ok(&["status", "--json"]));
    assert_eq!(st["pending"]["paths"], 0);
    let me = &st["machines"][0];
    assert_eq!(me["name"], "a");
    assert!(me["last_commit_ms"].as_i64().unwrap() > 0);

    // b: the same memory note written differently, later: a's loses newest-wins on both.
    let note = |m: &Machine, proj: &Path, text: &str| {
        let dir = m
            .projects()
            .join(ferry_sync::slug::slug(proj.to_str().unwrap()))
            .join("memory");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("MEMORY.md"), text).unwrap();
    };
    note(&a, &a_proj, "a's notes");
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_session(&b, &b_proj, "s2.jsonl", "from b");
    note(&b, &b_proj, "b's notes, newer");
    assert_eq!(b.ferry(&["sync"]).status.code(), Some(0));
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    let st = json(&a.ok(&["status", "--json"]));
    let machines: Vec<&str> = st["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(machines, ["a", "b"]);
    let lost = st["lost_newest_wins"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{st}");
    assert_eq!(lost[0]["path"], "memory/MEMORY.md");
    assert_eq!(lost[0]["shown"], "b");
    assert!(a.ok(&["status"]).contains("memory/MEMORY.md"));

    // Mounted: the daemon answers `sync --soon` and `sync`, and status is live.
    a.ok(&["mount"]);
    let out = a.ferry(&["sync", "--soon"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("asked the daemon"));
    write_session(&a, &a_proj, "s3.jsonl", "through the mount");
    let out = a.ferry(&["sync", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", a.log_tail());
    let report = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["remote_ok"], true, "{report}");
    let st = json(&a.ok(&["status", "--json"]));
    assert_eq!(st["mount"]["state"], "live");
    assert!(st["mount"]["daemon_pid"].as_i64().is_some());
    assert_eq!(st["remote"]["reachable"], true, "{st}");
    assert!(st["last_push_ms"].as_i64().is_some(), "{st}");

    // projects: the project, with its path here, on both machines.
    let projects = json(&a.ok(&["projects", "--json"]));
    let p = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["project_key"] == "~/work/proj")
        .unwrap_or_else(|| panic!("{projects}"));
    assert_eq!(p["local_path"], a_proj.to_str().unwrap());
    assert_eq!(p["checkout_here"], true);
    assert_eq!(p["machines"].as_array().unwrap().len(), 2);
    a.ok(&["unmount"]);

    // link pins a key for a checkout.
    let other = a.home.join("elsewhere/proj2");
    std::fs::create_dir_all(&other).unwrap();
    let out = json(&a.ok(&[
        "link",
        other.to_str().unwrap(),
        "--key",
        "github.com/o/proj2",
        "--json",
    ]));
    assert_eq!(out["project_key"], "github.com/o/proj2");
    let links: Value =
        serde_json::from_slice(&std::fs::read(a.state.join("links.json")).unwrap()).unwrap();
    assert_eq!(links[0]["key"], "github.com/o/proj2");
    let w = json(&a.ok(&["where", other.to_str().unwrap(), "--json"]));
    assert!(w["path"].is_string());

    // The remote gone: sync commits locally and exits 3, saying so.
    std::fs::rename(&remote, tmp.path().join("moved.git")).unwrap();
    write_session(&a, &a_proj, "s4.jsonl", "offline");
    let out = a.ferry(&["sync"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("committed") && text.contains("the remote failed"),
        "{text}"
    );
}

#[test]
fn init_checks_the_remote_and_remote_changes_it_saying_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    // Refused, with nothing written: an empty remote, a phrase, a path whose parent is missing,
    // a scheme git does not speak, a directory that is not a repository.
    let not_repo = tmp.path().join("plain");
    std::fs::create_dir_all(&not_repo).unwrap();
    std::fs::write(not_repo.join("f"), "x").unwrap();
    for bad in [
        "",
        "not a url",
        "/no/such/parent/r.git",
        "ftp://h/r.git",
        not_repo.to_str().unwrap(),
    ] {
        let out = m.ferry(&["init", "--machine", "a", "--remote", bad]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {said}");
        assert!(
            !m.state.join("config.json").exists(),
            "{bad:?} wrote the config"
        );
    }
    // A new path is created as a repository, and used.
    let fresh = tmp.path().join("fresh.git");
    let said = m.ok(&[
        "init",
        "--machine",
        "a",
        "--remote",
        fresh.to_str().unwrap(),
    ]);
    assert!(fresh.join("HEAD").is_file(), "{said}");
    assert_eq!(
        json(&m.ok(&["remote", "show", "--json"]))["remote"],
        fresh.canonicalize().unwrap().to_str().unwrap()
    );
    // Changing it while mounted says exactly what to run.
    m.ok(&["mount"]);
    let other = tmp.path().join("other.git");
    let said = m.ok(&["remote", "set", other.to_str().unwrap()]);
    assert!(said.contains("ferry unmount && ferry mount"), "{said}");
    m.ok(&["unmount"]);
    let said = m.ok(&["remote", "remove"]);
    assert!(said.contains("removed"), "{said}");
    assert_eq!(
        json(&m.ok(&["remote", "show", "--json"]))["remote"],
        Value::Null
    );
}

/// `ferry doctor`'s findings about `m` and its exit code.
fn doctor(m: &Machine) -> (Vec<Value>, Option<i32>) {
    let out = m.ferry(&["doctor", "--json"]);
    let found = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(found["ok"], out.status.code() == Some(0), "{found}");
    (
        found["checks"].as_array().unwrap().clone(),
        out.status.code(),
    )
}

fn found<'a>(findings: &'a [Value], area: &str, level: &str) -> Option<&'a Value> {
    findings
        .iter()
        .find(|f| f["area"] == area && f["level"] == level)
}

/// Each problem doctor can see is named with what to do next, and a failed check fails the
/// command; a healthy install passes.
#[test]
fn doctor_names_each_problem_with_what_to_do_next() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(&tmp.path().join("m"));
    let remote = tmp.path().join("remote.git");
    m.ok(&[
        "init",
        "--machine",
        "m",
        "--remote",
        remote.to_str().unwrap(),
    ]);
    m.ok(&["mount"]);
    let (all, code) = doctor(&m);
    assert_eq!(code, Some(0), "{all:#?}");
    for area in ["state", "identity", "mount", "git", "remote", "sync"] {
        assert!(found(&all, area, "ok").is_some(), "{area}: {all:#?}");
    }

    // Transcripts readable by others; the remote gone; this install's branch written by another.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&m.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&remote, tmp.path().join("moved.git")).unwrap();
    std::fs::write(
        m.state.join("twin.json"),
        "commits of run 1234 this install never made",
    )
    .unwrap();
    let (all, code) = doctor(&m);
    assert_eq!(code, Some(1), "{all:#?}");
    let state = found(&all, "state", "fail").expect("the open state dir");
    assert!(
        state["next"].as_str().unwrap().contains("chmod -R go-rwx"),
        "{state}"
    );
    let remote = found(&all, "remote", "fail").expect("the remote gone");
    assert!(
        remote["says"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{remote}"
    );
    let twin = found(&all, "identity", "warn").expect("the twin");
    assert!(
        twin["next"]
            .as_str()
            .unwrap()
            .contains("ferry unmount && ferry mount"),
        "{twin}"
    );
    // The text form says the same, with each next step.
    let text = String::from_utf8_lossy(&m.ferry(&["doctor"]).stdout).into_owned();
    assert!(
        text.contains("FAIL state") && text.contains("next: chmod"),
        "{text}"
    );

    // A dead daemon leaves a stale mount: doctor names it and its cure.
    std::fs::set_permissions(&m.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_file(m.state.join("twin.json")).unwrap();
    m.kill_9();
    let (all, _) = doctor(&m);
    let stale = found(&all, "mount", "fail").expect("the stale mount");
    assert!(stale["says"].as_str().unwrap().contains("stale"), "{stale}");
    assert!(
        stale["next"].as_str().unwrap().contains("ferry mount"),
        "{stale}"
    );
    m.ok(&["mount"]);
    m.ok(&["unmount"]);
}
