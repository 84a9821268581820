//! A machine's values for the placeholders of the portable form.

use crate::path_style::{PathStyle, SplitPath};
use std::fmt;

/// A placeholder of the portable form. The set is fixed across all machines and versions, so a
/// token written by one machine is recognised (and, if literal text, escaped) by every other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Var {
    /// The user's home directory.
    Home,
    /// The temp directory (`$TMPDIR`, `/tmp`, `%TEMP%`).
    Tmp,
    /// Claude Code's config dir (`$CLAUDE_CONFIG_DIR`, else `~/.claude`).
    ClaudeDir,
    /// Claude Code's per-user temp dir, `$TMPDIR/claude-<uid>`: the uid differs between machines.
    ClaudeTmp,
    /// The git root of the project's checkout on this machine.
    ProjectRoot,
    /// The slug of the session's project dir (a path segment, never a path).
    ProjectSlug,
    /// The slug of the project's git root, which names the `memory/` dir (a path segment).
    RootSlug,
    /// The user's home directory with symlinks resolved, on a machine where that spells it
    /// differently (Claude Code writes resolved paths). Expands to the home directory on a
    /// machine with no such second spelling.
    HomeReal,
}

impl Var {
    /// Every placeholder, in a fixed order.
    pub const ALL: [Var; 8] = [
        Var::Home,
        Var::Tmp,
        Var::ClaudeDir,
        Var::ClaudeTmp,
        Var::ProjectRoot,
        Var::ProjectSlug,
        Var::RootSlug,
        Var::HomeReal,
    ];

    /// The name inside `${…}`.
    pub fn name(self) -> &'static str {
        match self {
            Var::Home => "HOME",
            Var::Tmp => "TMP",
            Var::ClaudeDir => "CLAUDE_DIR",
            Var::ClaudeTmp => "CLAUDE_TMP",
            Var::ProjectRoot => "PROJECT_ROOT",
            Var::ProjectSlug => "PROJECT_SLUG",
            Var::RootSlug => "ROOT_SLUG",
            Var::HomeReal => "HOME_REAL",
        }
    }

    /// The variable with this name, if any.
    pub fn from_name(name: &[u8]) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name().as_bytes() == name)
    }

    /// Segment variables match only as a whole path component; the others are path prefixes.
    pub fn is_segment(self) -> bool {
        matches!(self, Var::ProjectSlug | Var::RootSlug)
    }

    /// What a token of this variable expands to on a machine that has no value for it.
    pub fn fallback(self) -> Option<Var> {
        match self {
            Var::HomeReal => Some(Var::Home),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.name())
    }
}

/// Why a value cannot go into a [`Mapping`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Path placeholders stand for absolute directories, in the mapping's own style.
    #[error("{var}: {value:?} is not an absolute {style:?} path")]
    NotAbsolute {
        /// The placeholder.
        var: Var,
        /// The rejected value.
        value: String,
        /// The mapping's style.
        style: PathStyle,
    },
    /// A root (`/`, `C:\`) would match every path on the machine.
    #[error("{var}: {value:?} is a filesystem root; it would capture every path")]
    Root {
        /// The placeholder.
        var: Var,
        /// The rejected value.
        value: String,
    },
    /// A slug is one path component of `[A-Za-z0-9-]`.
    #[error("{var}: {value:?} is not a slug (one component of letters, digits and '-')")]
    BadSlug {
        /// The placeholder.
        var: Var,
        /// The rejected value.
        value: String,
    },
}

/// One machine's values for the placeholders, as they apply to one project. Path values are kept
/// in canonical form (native separators, no trailing separator, upper-case drive letter).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mapping {
    style: PathStyle,
    values: [Option<String>; Var::ALL.len()],
}

impl Mapping {
    /// An empty mapping for a machine whose paths have `style`.
    pub fn new(style: PathStyle) -> Mapping {
        Mapping {
            style,
            values: Default::default(),
        }
    }

    /// Sets one placeholder's value, checking and canonicalising it.
    pub fn set(&mut self, var: Var, value: &str) -> Result<&mut Mapping, MappingError> {
        let canonical = if var.is_segment() {
            let ok = !value.is_empty()
                && value.len() <= 255
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(MappingError::BadSlug {
                    var,
                    value: value.into(),
                });
            }
            value.to_string()
        } else {
            let split = SplitPath::parse(value)
                .filter(|s| s.style == self.style)
                .ok_or_else(|| MappingError::NotAbsolute {
                    var,
                    value: value.into(),
                    style: self.style,
                })?;
            if split.components.is_empty() {
                return Err(MappingError::Root {
                    var,
                    value: value.into(),
                });
            }
            split.canonical()
        };
        self.values[var.index()] = Some(canonical);
        Ok(self)
    }

    /// A mapping with every `(var, value)` pair set.
    pub fn from_values(style: PathStyle, values: &[(Var, &str)]) -> Result<Mapping, MappingError> {
        let mut m = Mapping::new(style);
        for &(var, value) in values {
            m.set(var, value)?;
        }
        Ok(m)
    }

    /// Builder form of [`Mapping::set`].
    pub fn with(mut self, var: Var, value: &str) -> Result<Mapping, MappingError> {
        self.set(var, value)?;
        Ok(self)
    }

    /// The canonical value of a placeholder on this machine, if it has one.
    pub fn get(&self, var: Var) -> Option<&str> {
        self.values[var.index()].as_deref()
    }

    /// The path style of this machine.
    pub fn style(&self) -> PathStyle {
        self.style
    }
}
