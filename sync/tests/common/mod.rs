//! Fixtures shared by the sync crate's integration tests and benches (and the fs crate's).

#![allow(dead_code)]

use ferry_sync::store::{MachineRecord, ProjectRecord};
use std::time::Duration;

/// A Linux machine record with `home`, `/tmp`, and Claude Code's dirs where they default.
pub fn linux_machine(id: &str, home: &str) -> MachineRecord {
    MachineRecord {
        id: id.into(),
        name: id.into(),
        os: "linux".into(),
        home: home.into(),
        tmp: "/tmp".into(),
        claude_dir: format!("{home}/.claude"),
        claude_tmp: "/tmp/claude-0".into(),
        last_seen_ms: 0,
        seen_ms: Default::default(),
        home_real: None,
        retired: Default::default(),
    }
}

/// The record of project `key` checked out at `root`, sessions run at its top.
pub fn project(key: &str, root: &str) -> ProjectRecord {
    ProjectRecord {
        key: key.into(),
        root: root.into(),
        cwd: root.into(),
        slug: ferry_sync::slug::slug(root),
        git: None,
    }
}

/// Runs a test's body on a fresh runtime, then shuts it down without waiting more than a few
/// seconds for blocking git threads: a transfer stuck past libgit2's own timeouts must fail the
/// test it belongs to, never hang the whole binary.
pub fn run<F: std::future::Future<Output = ()>>(body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(body);
    rt.shutdown_timeout(Duration::from_secs(5));
}
