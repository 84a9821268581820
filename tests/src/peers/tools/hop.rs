//! claude-hop (PyPI `claude-hop`): A pushes its whole `projects/` tree to B and pulls B's back,
//! with the remote in local-path mode (B's HOME is a directory here) and a mapping for each
//! checkout that sits elsewhere on B, as its README's config prescribes.

use super::{Tool, step};
use crate::peers::corpus::Session;
use crate::peers::cost::Cost;
use crate::peers::world::{Arrival, World};
use std::fmt::Write as _;

/// The claude-hop peer.
#[derive(Default)]
pub struct Hop;

impl Hop {
    /// Writes A's config: remote `b` at B's HOME, and the checkouts' mappings.
    fn config(w: &World) -> std::path::PathBuf {
        let q = |p: std::path::PathBuf| serde_json::to_string(p.to_str().expect("UTF-8")).unwrap();
        let mut toml = format!(
            "[remotes.b]\nhost = \"\"\nhome = {}\n\n[remotes.b.mappings]\n",
            q(w.b.home.clone())
        );
        for p in w.projects.iter().filter(|p| p.on_a != p.on_b) {
            let _ = writeln!(toml, "{} = {}", q(w.a.dir(p)), q(w.b.dir(p)));
        }
        let path = w.root.join("claude-hop.toml");
        std::fs::write(&path, toml).expect("claude-hop config");
        path
    }
}

impl Tool for Hop {
    fn name(&self) -> &'static str {
        "claude-hop 0.4.0"
    }

    fn transfer(&mut self, w: &World, to_b: bool, _: &[Session], _: &[Arrival]) -> Cost {
        let config = Hop::config(w);
        let mut cmd = w.peer(true, "claude-hop", &w.a.home);
        cmd.env("CLAUDE_HOP_CONFIG", &config)
            .arg(if to_b { "push" } else { "pull" })
            .args(["--yes", "--force"]);
        if to_b {
            // Its advisory about unpushed git work in the checkouts (push only).
            cmd.arg("--quiet-git");
        }
        step(&mut cmd)
    }
}
