//! pjdfstest, the POSIX filesystem suite, run inside a project dir of the view through a real
//! FUSE mount: every case passes but those `pjdfstest.toml` lists as off by design (each group
//! with its reason), and those fail. `scripts/test` installs pjdfstest 0.2.0, pinned, and the
//! users it acts as; it needs root, as CI has.
#![cfg(target_os = "linux")] // pjdfstest's cases are written for Linux and FreeBSD

mod common;

use common::Rig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where `scripts/test` installs it (`PJDFSTEST` overrides).
fn pjdfstest() -> PathBuf {
    std::env::var_os("PJDFSTEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pjdfstest/bin/pjdfstest")
        })
}

/// Unmounts when the test ends, however it ends.
struct Unmount<'a>(&'a Path, Option<ferry_fs::fuse::Mounted>);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = ferry_platform::mount::unmount(self.0);
        if let Some(m) = self.1.take() {
            m.join(Duration::from_secs(5));
        }
    }
}

#[test]
fn pjdfstest_passes_but_for_what_the_view_does_not_do_by_design() {
    let bin = pjdfstest();
    assert!(
        bin.exists(),
        "pjdfstest is not at {bin:?}: run scripts/test, which installs it \
         (cargo install pjdfstest --version 0.2.0 --locked --root target/pjdfstest)"
    );
    for user in ["nobody", "tests", "pjdfstest"] {
        assert!(
            nix::unistd::User::from_name(user).unwrap().is_some(),
            "pjdfstest acts as user {user:?}, missing here: run scripts/test as root, which adds it"
        );
    }
    let rig = Rig::new();
    let mountpoint = rig.upper.clone();
    let fs = std::sync::Arc::new(rig.fs);
    let mounted = ferry_fs::fuse::mount(fs, &mountpoint).expect("mount (needs root and /dev/fuse)");
    let _unmount = Unmount(&mountpoint, Some(mounted));
    let project = mountpoint.join("-work-proj");
    std::fs::create_dir(&project).unwrap();
    let out = Command::new(&bin)
        .arg("-c")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pjdfstest.toml"))
        .arg("-p")
        .arg(&project)
        .env("NO_COLOR", "1")
        .output()
        .expect("pjdfstest runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or("no summary");
    // A new failure with what it said, and an unexpected pass (the list is stale then).
    let mut wrong = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.ends_with("FAILED") {
            wrong.push(format!(
                "{l}\n    {}",
                lines.get(i + 1).unwrap_or(&"").trim()
            ));
        } else if l.ends_with("PASSED UNEXPECTEDLY") {
            wrong.push(format!("{l} (take it off pjdfstest.toml's list)"));
        }
    }
    assert!(
        out.status.success() && wrong.is_empty() && summary.starts_with("Summary: 0 failed"),
        "{summary}\n{}\nstderr: {}",
        wrong.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("pjdfstest in the view: {summary}");
}
