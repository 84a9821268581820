//! Project keys: the portable name of a project, so that a session started in
//! `/home/al/src/proj` on one machine shows up in `C:\Users\bob\work\proj` on another.
//!
//! A key is a base and a path inside it (`sub`, `/`-separated, empty at the base itself):
//! - in a git checkout with an `origin` remote: the normalised URL ([`crate::remote_url`]) and
//!   the cwd's path inside the checkout;
//! - in a checkout without `origin`, or outside git: the path relative to HOME (`~/code/x`);
//! - elsewhere: the absolute path, with `/` separators (not portable, but stable);
//! - a link (from `ferry link`) overrides all of these for every cwd inside the linked path.

use crate::path_style::SplitPath;
use std::fmt;
use std::path::Path;

/// The portable name of a project directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectKey {
    /// The repository or directory the project belongs to (`github.com/o/r`, `~/notes`).
    pub base: String,
    /// The cwd's path below `base`, `/`-separated; empty at the base itself.
    pub sub: String,
    /// How the key was found.
    pub kind: KeyKind,
}

/// Which rule produced a key; decides whether it can be shared between machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// From a git remote: portable.
    Remote,
    /// From a path relative to HOME: portable between machines that lay out HOME alike.
    Home,
    /// From an absolute path: only this machine (and identical layouts) will match it.
    Absolute,
    /// From a `ferry link` entry: portable.
    Linked,
}

impl fmt::Display for ProjectKey {
    /// `base`, or `base//sub`: `//` never occurs inside a normalised base.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sub.is_empty() {
            write!(f, "{}", self.base)
        } else {
            write!(f, "{}//{}", self.base, self.sub)
        }
    }
}

/// What git says about the checkout that holds a cwd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// The checkout's top directory (for a worktree, the worktree's own).
    pub root: String,
    /// The `origin` remote's URL, as configured.
    pub origin: Option<String>,
}

/// A `ferry link` entry: every cwd inside `path` belongs to project `key`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// The local directory.
    pub path: String,
    /// The project key base it stands for.
    pub key: String,
}

/// Why a key could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The cwd is not an absolute path.
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    /// The cwd is not valid UTF-8, which Claude Code itself refuses to run in.
    #[error("{0:?} is not valid UTF-8")]
    NotUtf8(std::path::PathBuf),
    /// Reading the git repository failed.
    #[error("reading the git repository at {path}: {source}")]
    Git {
        /// The cwd.
        path: String,
        /// git's error.
        source: git2::Error,
    },
}

/// Computes the key of `cwd` from what is known about it; pure, works on any OS's paths.
pub fn key_for(
    cwd: &str,
    checkout: Option<&Checkout>,
    home: Option<&str>,
    links: &[Link],
) -> Result<ProjectKey, KeyError> {
    let at = SplitPath::parse(cwd).ok_or_else(|| KeyError::NotAbsolute(cwd.into()))?;
    let inside = |base: &str| SplitPath::parse(base).and_then(|b| at.strip_prefix(&b));
    let linked = links
        .iter()
        .filter_map(|l| inside(&l.path).map(|rest| (l, rest)))
        .min_by_key(|(_, rest)| rest.len());
    if let Some((link, rest)) = linked {
        return Ok(key(link.key.trim_end_matches('/'), &rest, KeyKind::Linked));
    }
    if let Some(c) = checkout {
        let origin = c.origin.as_deref().and_then(crate::remote_url::normalise);
        if let (Some(url), Some(rest)) = (origin, inside(&c.root)) {
            return Ok(key(&url, &rest, KeyKind::Remote));
        }
    }
    if let Some(rest) = home.and_then(inside) {
        return Ok(key("~", &rest, KeyKind::Home).flatten_home());
    }
    Ok(ProjectKey {
        base: at.join_with("/"),
        sub: String::new(),
        kind: KeyKind::Absolute,
    })
}

fn key(base: &str, rest: &[&str], kind: KeyKind) -> ProjectKey {
    ProjectKey {
        base: base.to_string(),
        sub: rest.join("/"),
        kind,
    }
}

impl ProjectKey {
    /// A HOME-relative key has no meaningful base/sub split: `~/code/x` is one name.
    fn flatten_home(self) -> ProjectKey {
        let base = if self.sub.is_empty() {
            "~".to_string()
        } else {
            format!("~/{}", self.sub)
        };
        ProjectKey {
            base,
            sub: String::new(),
            kind: self.kind,
        }
    }
}

/// Asks git about the checkout holding `cwd`; `None` outside any work tree.
pub fn discover(cwd: &Path) -> Result<Option<Checkout>, KeyError> {
    let git_err = |source| KeyError::Git {
        path: cwd.display().to_string(),
        source,
    };
    let repo = match git2::Repository::discover(cwd) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git_err(e)),
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(None);
    };
    let root = dunce::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
    let root = root
        .to_str()
        .ok_or_else(|| KeyError::NotUtf8(root.clone()))?
        .to_string();
    let origin = match repo.find_remote("origin") {
        Ok(r) => Some(String::from_utf8_lossy(r.url_bytes()).into_owned()),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(git_err(e)),
    };
    Ok(Some(Checkout { root, origin }))
}

/// The key of a local `cwd`, resolved as Claude Code resolves it (`realpath`).
pub fn project_key(
    cwd: &Path,
    home: Option<&Path>,
    links: &[Link],
) -> Result<ProjectKey, KeyError> {
    let real = dunce::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let real_str = real
        .to_str()
        .ok_or_else(|| KeyError::NotUtf8(real.clone()))?;
    let home = home.map(|h| dunce::canonicalize(h).unwrap_or_else(|_| h.to_path_buf()));
    let home_str = home.as_deref().and_then(Path::to_str);
    key_for(real_str, discover(&real)?.as_ref(), home_str, links)
}

/// The branch, HEAD commit and dirty files of the checkout at `root`, for the handoff between
/// machines; `None` if it is not a git checkout.
pub fn git_state(root: &Path) -> Option<crate::store::GitState> {
    let repo = git2::Repository::open(root).ok()?;
    let head = repo.head().ok();
    let branch = head
        .as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok())
        .map(str::to_string);
    let commit = head
        .as_ref()
        .and_then(|h| h.target())
        .map(|c| c.to_string());
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(false);
    let dirty = repo
        .statuses(Some(&mut opts))
        .map(|st| {
            st.iter()
                .filter_map(|e| e.path().ok().map(str::to_string))
                .take(200)
                .collect()
        })
        .unwrap_or_default();
    Some(crate::store::GitState {
        branch,
        commit,
        dirty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(root: &str, origin: Option<&str>) -> Checkout {
        Checkout {
            root: root.into(),
            origin: origin.map(Into::into),
        }
    }

    #[test]
    fn clones_in_different_os_styles_share_a_key() {
        let linux = checkout("/home/al/src/proj", Some("git@github.com:o/proj.git"));
        let windows = checkout(r"C:\Users\bob\work\Proj", Some("https://github.com/o/proj"));
        let a = key_for(
            "/home/al/src/proj/pkg/x",
            Some(&linux),
            Some("/home/al"),
            &[],
        )
        .unwrap();
        let b = key_for(
            r"c:\users\bob\work\proj\pkg\x",
            Some(&windows),
            Some(r"C:\Users\bob"),
            &[],
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "github.com/o/proj//pkg/x");
        assert_eq!(a.kind, KeyKind::Remote);
    }

    #[test]
    fn without_remote_home_relative_else_absolute() {
        let no_origin = checkout("/home/al/notes", None);
        let k = key_for("/home/al/notes/d", Some(&no_origin), Some("/home/al"), &[]).unwrap();
        assert_eq!((k.to_string(), k.kind), ("~/notes/d".into(), KeyKind::Home));
        let w = key_for(r"C:\Users\bob\notes\d", None, Some(r"C:\Users\bob"), &[]).unwrap();
        assert_eq!(w.to_string(), "~/notes/d");
        let abs = key_for("/srv/data/x", None, Some("/home/al"), &[]).unwrap();
        assert_eq!(
            (abs.to_string(), abs.kind),
            ("/srv/data/x".into(), KeyKind::Absolute)
        );
        assert_eq!(
            key_for("/home/al", None, Some("/home/al"), &[])
                .unwrap()
                .to_string(),
            "~"
        );
        assert!(key_for("rel/x", None, None, &[]).is_err());
    }

    #[test]
    fn links_override_and_the_deepest_link_wins() {
        let links = [
            Link {
                path: "/home/al/src".into(),
                key: "work".into(),
            },
            Link {
                path: "/home/al/src/proj".into(),
                key: "github.com/o/proj".into(),
            },
        ];
        let c = checkout("/home/al/src/proj", Some("git@elsewhere:x/y"));
        let k = key_for("/home/al/src/proj/a", Some(&c), Some("/home/al"), &links).unwrap();
        assert_eq!(
            (k.to_string(), k.kind),
            ("github.com/o/proj//a".into(), KeyKind::Linked)
        );
        let k = key_for("/home/al/src/other", None, Some("/home/al"), &links).unwrap();
        assert_eq!(k.to_string(), "work//other");
    }
}
