//! The two machines of the comparison and what every tool is given: A's and B's layouts, the
//! projects, a scratch dir, and the virtualenv the peers were installed into.

use super::corpus::{Layout, Project, Session};
use std::path::{Path, PathBuf};

/// Machines A and B, laid out under one root.
pub struct World {
    /// A's layout (HOME `root/a/home/alice`).
    pub a: Layout,
    /// B's layout (HOME `root/b/Users/bob`).
    pub b: Layout,
    /// The projects of the corpus.
    pub projects: Vec<Project>,
    /// The root every machine lives under.
    pub root: PathBuf,
    /// The virtualenv holding the peers (`bin/commuter`, `bin/claude-hop`).
    pub venv: PathBuf,
}

/// A file that must arrive on a machine: its path there and text it must hold ("" for any).
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Where it must be.
    pub path: PathBuf,
    /// What it must contain.
    pub needle: String,
}

impl World {
    /// The world under `root`, with the peers in `venv`.
    pub fn new(root: &Path, venv: &Path) -> World {
        World {
            a: Layout {
                home: root.join("a/home/alice"),
                is_a: true,
            },
            b: Layout {
                home: root.join("b/Users/bob"),
                is_a: false,
            },
            projects: super::corpus::projects(),
            root: root.to_path_buf(),
            venv: venv.to_path_buf(),
        }
    }

    /// The layout of A (`true`) or B.
    pub fn side(&self, a: bool) -> &Layout {
        if a { &self.a } else { &self.b }
    }

    /// The session's transcript where Claude Code looks for it on A (`true`) or B.
    pub fn transcript(&self, a: bool, s: &Session) -> PathBuf {
        self.side(a)
            .slug_dir(&self.projects[s.project])
            .join(format!("{}.jsonl", s.id))
    }

    /// The session's project dir on A (`true`) or B.
    pub fn project_dir(&self, a: bool, s: &Session) -> PathBuf {
        self.side(a).dir(&self.projects[s.project])
    }

    /// A path relative to one machine's `projects/`, moved to the other machine's slug dir of
    /// the same project (unchanged when its first component is no project's slug).
    pub fn across(&self, from_a: bool, rel: &Path) -> PathBuf {
        let (from, to) = (self.side(from_a), self.side(!from_a));
        let mut parts = rel.components();
        let Some(first) = parts.next() else {
            return rel.to_path_buf();
        };
        for p in &self.projects {
            if from.slug_dir(p).file_name() == Some(first.as_os_str()) {
                let slug = to.slug_dir(p);
                return Path::new(slug.file_name().expect("slug")).join(parts.as_path());
            }
        }
        rel.to_path_buf()
    }

    /// Makes a peer's command: `venv/bin/<tool> <args>` as A (`true`) or B, in `cwd`.
    pub fn peer(&self, a: bool, tool: &str, cwd: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.venv.join("bin").join(tool));
        cmd.current_dir(cwd)
            .env("HOME", &self.side(a).home)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .stdin(std::process::Stdio::null());
        cmd
    }
}
