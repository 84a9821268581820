//! Runs the built `ferry` binary.

use std::process::Command;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

#[test]
fn where_reports_slug_and_key_as_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my_proj.v2");
    std::fs::create_dir(&dir).unwrap();
    let out = ferry()
        .args(["where", "--json"])
        .arg(&dir)
        .env("HOME", tmp.path())
        .env("USERPROFILE", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let real = dunce::canonicalize(&dir).unwrap();
    assert_eq!(v["path"], real.to_str().unwrap());
    assert_eq!(v["slug"], ferry_sync::slug::slug(real.to_str().unwrap()));
    assert_eq!(v["project_key"], "~/my_proj.v2");
    assert_eq!(v["key_kind"], "home");

    let text = ferry()
        .arg("where")
        .arg(&dir)
        .env("HOME", tmp.path())
        .env("USERPROFILE", tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("project key: ~/my_proj.v2"), "{text}");
}

#[test]
fn errors_say_what_to_do_and_exit_codes_are_documented() {
    let out = ferry().args(["where", "/no/such/dir"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist; pass an existing directory"),
        "{err}"
    );
    assert_eq!(
        ferry().arg("--bogus").output().unwrap().status.code(),
        Some(2)
    );
    let help = ferry().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes"));
}
