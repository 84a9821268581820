//! Shared helpers for the end-to-end tests: where things are, and how to run the real Claude Code
//! client offline.

pub mod claude;
pub mod ferry;
pub mod git;
pub mod peers;
pub mod rig;
pub mod rng;
pub mod scenario;
pub mod sshd;

use std::path::PathBuf;

/// The workspace root, where `target/` and `tests/claude/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}
