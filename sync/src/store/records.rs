//! What the store records besides file bytes: the machine, its projects, each file's metadata.
//! Stored as JSON so that other tools (and people) can read a branch.

use crate::codec::{Mapping, MappingError, Var};
use crate::path_style::PathStyle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One machine, as recorded at the root of its branch (`machine.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRecord {
    /// Random, stable id; names the branch `machines/<id>`.
    pub id: String,
    /// The name the user gave it (default: hostname).
    pub name: String,
    /// `linux`, `macos` or `windows`.
    pub os: String,
    /// The user's home directory there.
    pub home: String,
    /// The temp directory there.
    pub tmp: String,
    /// Claude Code's config dir there.
    pub claude_dir: String,
    /// Claude Code's per-user temp dir there (`$TMPDIR/claude-<uid>`).
    pub claude_tmp: String,
    /// When the machine last committed, in ms since the epoch.
    pub last_seen_ms: i64,
    /// Per other machine, the time of its newest commit this machine had fetched when it
    /// committed, in that machine's clock: a commit dated before one its machine had already
    /// seen shows a clock running behind (`crate::clock`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seen_ms: BTreeMap<String, i64>,
    /// The home directory with symlinks resolved, when that differs from `home`: Claude Code
    /// names project directories after resolved paths, so a project's root may be under this
    /// spelling rather than `home`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_real: Option<String>,
    /// Machines this one retired (`ferry machines retire`), by id, with when: their sessions
    /// stay as history, and no machine lists them as lagging.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retired: BTreeMap<String, i64>,
}

impl MachineRecord {
    /// The style of this machine's paths.
    pub fn style(&self) -> PathStyle {
        PathStyle::of(&self.home)
    }

    /// Both spellings of the home directory: as written, then resolved (if it differs).
    pub fn homes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.home.as_str()).chain(self.home_real.as_deref())
    }

    /// The home directory as Claude Code spells the directories under it: resolved.
    pub fn home_for_places(&self) -> &str {
        self.home_real.as_deref().unwrap_or(&self.home)
    }
}

/// The state of a git checkout, so another machine can tell where the work stood.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitState {
    /// The checked-out branch, if any.
    pub branch: Option<String>,
    /// The HEAD commit id.
    pub commit: Option<String>,
    /// Paths with uncommitted changes.
    pub dirty: Vec<String>,
}

/// One project directory of a machine (`p/<dir>/project.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// The portable project key (`github.com/o/r//sub`), which groups machines' copies.
    pub key: String,
    /// The checkout root (or the directory itself outside git) on that machine.
    pub root: String,
    /// The working directory whose sessions these are, on that machine.
    pub cwd: String,
    /// The slug of `cwd` there: the name of the directory under `projects/`.
    pub slug: String,
    /// The checkout's git state when last committed.
    #[serde(default)]
    pub git: Option<GitState>,
}

impl ProjectRecord {
    /// The place these files live in on their machine: what the store keeps apart.
    pub fn place(&self) -> PlaceId {
        PlaceId {
            key: self.key.clone(),
            slug: self.slug.clone(),
        }
    }
}

/// One place of a project on one machine: its key and the slug directory of the local directory
/// it is used in. Worktrees and clones of one project share a key but not a place, and the store
/// keeps each place's files (and its mapping) apart, so no place's lines overwrite another's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlaceId {
    /// The project key.
    pub key: String,
    /// The slug of the place's directory on its machine.
    pub slug: String,
}

/// Whether a path is present, deleted by its writer, or hidden on one machine only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum FileState {
    /// The file exists with the recorded content.
    Present,
    /// Deleted by the machine that wrote it: hides versions not newer than `at_ms` everywhere.
    Deleted {
        /// When it was deleted.
        at_ms: i64,
    },
    /// Deleted on this machine while another machine's version was newest: hides versions not
    /// newer than `until_ms`, on this machine only.
    Hidden {
        /// The newest mtime that was hidden.
        until_ms: i64,
    },
}

/// Per-file metadata the view needs (`meta.json` beside the content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Modification time, ms since the epoch.
    pub mtime_ms: i64,
    /// Permission bits.
    pub mode: u32,
    /// Length of the local form on the writing machine when committed.
    pub len: u64,
    /// Stored as line-aligned chunks (transcripts) rather than one blob.
    pub lines: bool,
    /// Present, deleted or hidden.
    #[serde(flatten)]
    pub state: FileState,
}

/// The codec mapping of `machine` for `project`: what virtualises its files and expands others'.
/// A value the codec cannot use (a filesystem root such as a project run in `/`, a relative
/// path from a malformed record) is left out with a warning rather than failing every commit:
/// its paths then simply stay as written.
pub fn mapping_for(
    machine: &MachineRecord,
    project: &ProjectRecord,
) -> Result<Mapping, MappingError> {
    let mut m = Mapping::new(machine.style());
    let root_slug = crate::slug::slug(&project.root);
    let values = [
        (Var::Home, machine.home.as_str()),
        (Var::Tmp, &machine.tmp),
        (Var::ClaudeDir, &machine.claude_dir),
        (Var::ClaudeTmp, &machine.claude_tmp),
        (Var::ProjectRoot, &project.root),
        (Var::ProjectSlug, &project.slug),
        (Var::RootSlug, &root_slug),
        (
            Var::HomeReal,
            machine.home_real.as_deref().unwrap_or_default(),
        ),
    ];
    for (var, value) in values {
        if value.is_empty() {
            continue;
        }
        if let Err(e) = m.set(var, value) {
            tracing::warn!(error = %e, "leaving a placeholder out of the mapping");
        }
    }
    Ok(m)
}
