//! Fixtures shared by the sync crate's integration tests.

use ferry_sync::store::MachineRecord;

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
    }
}
