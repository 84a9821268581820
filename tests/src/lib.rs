//! Shared helpers for the end-to-end tests: where things are, and how to run the real Claude Code
//! client offline.

pub mod claude;
pub mod elsewhere;
pub mod ferry;
pub mod git;
pub mod lines;
pub mod peers;
pub mod rig;
pub mod rng;
pub mod scenario;
pub mod sealed;
pub mod sshd;
pub mod tty;
pub mod wine;

use std::path::PathBuf;

/// Runs `cmd`, which must succeed (else the panic shows its stderr); its output.
pub fn must(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The workspace root, where `target/` and `tests/claude/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}
