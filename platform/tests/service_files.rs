//! Every OS's login-service definition, built here and read back by a real parser of its
//! format: systemd's own `systemd-analyze verify` for the unit, Python's `plistlib` for the
//! launchd agent (the format `launchctl` reads) and an XML parser for the Windows task, with
//! paths and variables full of characters each format must escape.
#![cfg(unix)] // the parsers are Linux's systemd-analyze and python3

use ferry_platform::service::{Dirs, Manager, Spec, install_plan, launchd, systemd, task};
use std::path::PathBuf;
use std::process::Command;

fn spec(exe: &str) -> Spec {
    Spec {
        exe: exe.into(),
        env: vec![
            (
                "FERRY_HOME".into(),
                "/data/a & b <c> 'q' \"d\" %h $X".into(),
            ),
            ("CLAUDE_CONFIG_DIR".into(), "/cfg/é".into()),
        ],
        log: "/data/ferry & co/ferry.log".into(),
    }
}

fn dirs() -> Dirs {
    Dirs {
        home: "/Users/carol".into(),
        xdg_config: None,
        state: r"C:\Users\bob\AppData\Local\ferry".into(),
    }
}

/// Runs a Python snippet with `input` on stdin and returns its stdout.
fn python(code: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn systemd_accepts_the_unit_and_reads_back_the_command_and_variables() {
    let tmp = tempfile::tempdir().unwrap();
    // A binary whose path needs quoting, which `verify` requires to exist.
    let bin = tmp.path().join("my bin %h");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("ferry");
    std::fs::copy("/bin/true", &exe).unwrap();
    let unit = tmp.path().join(systemd::UNIT);
    std::fs::write(&unit, systemd::unit(&spec(exe.to_str().unwrap()))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (scripts/test installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains("my bin %%h/ferry\" mount --foreground"),
        "{text}"
    );
    assert!(text.contains(r#"Environment="FERRY_HOME=/data/a & b <c> 'q' \"d\" %%h $X""#));
    // Started once the mount is live (the daemon sends READY=1), with time to serve open files
    // (15 s) and push (10 s) when stopped.
    assert!(text.contains("Type=notify\nNotifyAccess=main\n"), "{text}");
    assert!(text.contains("TimeoutStopSec=60\n"), "{text}");

    // A unit systemd rejects fails the same check: the check is not vacuous.
    let bad = tmp.path().join("bad.service");
    std::fs::write(&bad, "[Service]\nExecStart=relative/ferry mount\n").unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_launchd_agent_is_a_property_list_with_the_right_values() {
    let plan = install_plan(
        Manager::Launchd,
        &spec("/Applications/Fe & Ry/ferry"),
        &dirs(),
    )
    .unwrap();
    assert_eq!(
        plan.file,
        PathBuf::from("/Users/carol/Library/LaunchAgents/dev.ferry.mount.plist")
    );
    let read = python(
        "import plistlib,sys,json; p=plistlib.loads(sys.stdin.buffer.read()); print(json.dumps(p, sort_keys=True))",
        &plan.contents,
    );
    let p: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(p["Label"], launchd::LABEL);
    assert_eq!(
        p["ProgramArguments"],
        serde_json::json!(["/Applications/Fe & Ry/ferry", "mount", "--foreground"])
    );
    assert_eq!(
        p["EnvironmentVariables"]["FERRY_HOME"],
        "/data/a & b <c> 'q' \"d\" %h $X"
    );
    assert_eq!(p["EnvironmentVariables"]["CLAUDE_CONFIG_DIR"], "/cfg/é");
    assert_eq!(p["RunAtLoad"], true);
    assert_eq!(p["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(p["StandardErrorPath"], "/data/ferry & co/ferry.log");
    assert_eq!(
        plan.start,
        vec![vec![
            "launchctl".to_string(),
            "bootstrap".into(),
            format!("gui/{}", nix_uid()),
            plan.file.to_string_lossy().into_owned()
        ]]
    );
}

fn nix_uid() -> u32 {
    // The test runs as some user; launchd's domain is named by the numeric id.
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn the_windows_task_is_utf16_xml_that_runs_ferry_at_this_users_logon() {
    let s = Spec {
        exe: r"C:\Program Files\ferry\ferry.exe".into(),
        env: vec![],
        log: Default::default(),
    };
    let xml = task::xml(&s, r"CORP\bob & co").unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    for u in xml.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    let read = python(
        r#"
import sys, json, xml.etree.ElementTree as ET
ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
root = ET.fromstring(sys.stdin.buffer.read().decode("utf-16"))
get = lambda p: root.find(p, ns).text
print(json.dumps({
    "user": get("t:Triggers/t:LogonTrigger/t:UserId"),
    "principal": get("t:Principals/t:Principal/t:UserId"),
    "level": get("t:Principals/t:Principal/t:RunLevel"),
    "command": get("t:Actions/t:Exec/t:Command"),
    "arguments": get("t:Actions/t:Exec/t:Arguments"),
    "limit": get("t:Settings/t:ExecutionTimeLimit"),
}))
"#,
        &bytes,
    );
    let t: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(t["user"], r"CORP\bob & co");
    assert_eq!(t["principal"], r"CORP\bob & co");
    assert_eq!(t["level"], "LeastPrivilege");
    assert_eq!(t["command"], r"C:\Program Files\ferry\ferry.exe");
    assert_eq!(t["arguments"], "mount");
    assert_eq!(
        t["limit"], "PT0S",
        "no time limit: the daemon outlives the task"
    );

    // Through the plan: the file is the same text in UTF-16 with its mark, and schtasks gets
    // its path.
    let plan = install_plan(Manager::Task, &s, &dirs()).unwrap();
    assert_eq!(&plan.contents[..2], &[0xFF, 0xFE]);
    assert_eq!(plan.enable[0][0], "schtasks");
    assert!(plan.enable[0].contains(&plan.file.to_string_lossy().into_owned()));
}
