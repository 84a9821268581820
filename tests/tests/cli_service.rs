//! `ferry service install|uninstall` on Linux: the unit lands in the user's systemd directory
//! with this binary and this state dir, systemd's own checker accepts it, and when no systemd
//! user manager can be reached (none runs here, and the test makes sure it reaches no real one)
//! both commands fail saying what was done and what to run instead.

use ferry_tests::ferry::{Machine, ferry_bin};
use std::process::{Command, Output};

fn run(m: &Machine, cfg: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd: Command = m.command(args);
    // No systemd user manager is reachable, even on a developer's machine that runs one.
    cmd.env("XDG_CONFIG_HOME", cfg)
        .env("XDG_RUNTIME_DIR", cfg.join("no-runtime"))
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn install_writes_a_unit_systemd_accepts_and_says_what_to_run_without_a_user_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    let cfg = tmp.path().join("xdg config");

    // Before `ferry init` there is nothing to serve.
    let out = run(&m, &cfg, &["service", "install"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("ferry init"), "{}", text(&out));

    m.ok(&["init", "--machine", "a"]);
    let out = run(&m, &cfg, &["service", "install"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let unit = cfg.join("systemd/user/ferry.service");
    assert!(
        said.contains(&format!("wrote {}", unit.display())),
        "{said}"
    );
    assert!(
        said.contains("systemctl --user enable --now ferry.service"),
        "{said}"
    );

    let body = std::fs::read_to_string(&unit).unwrap();
    let exe = ferry_bin().canonicalize().unwrap();
    assert!(
        body.contains(&format!(
            "ExecStart=\"{}\" mount --foreground",
            exe.display()
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("Environment=\"FERRY_HOME={}\"", m.state.display())),
        "{body}"
    );
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));

    // Uninstall removes the unit even though systemd cannot be told, and says so.
    let out = run(&m, &cfg, &["service", "uninstall"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("could not be told"), "{}", text(&out));
    assert!(!unit.exists());
    let out = run(&m, &cfg, &["service", "uninstall", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["installed"], false);
    assert_eq!(j["manager"], "systemd");
}
