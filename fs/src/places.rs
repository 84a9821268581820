//! Which of this machine's places receives another machine's project (DESIGN.md invariant 6),
//! decided by one rule and kept in the state dir, so that it is the same after every restart,
//! unmount and crash:
//!
//! 1. a `ferry link`ed directory;
//! 2. else a main checkout of the project here (its `.git` a directory, not a worktree's file),
//!    the one used most recently; a checkout the client was seen running in is adopted as one;
//! 3. else the place this machine used most recently;
//! 4. else the origin's path relative to its HOME, mapped into this HOME
//!    ([`crate::placement`]).
//!
//! A kept choice gives way only to a better kind (a link, then a checkout) or when its
//! directory is gone. The places a project left are remembered ([`Choice::retired`]): what this
//! machine wrote there for other machines' sessions is shown, merged, in the new place
//! ([`crate::foreign`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Why a place was chosen, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Why {
    /// A `ferry link` entry names it.
    Link,
    /// A main checkout of the project, or one the client was seen running in.
    Checkout,
    /// The place this machine used most recently.
    Recent,
    /// No place here: the origin's HOME-relative path.
    Home,
}

/// The place chosen for one project (key base) on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Its root directory (empty for [`Why::Home`], which each project key maps by itself).
    pub root: String,
    /// Why it was chosen.
    pub why: Why,
    /// Slug dirs that other machines' sessions of the project appeared in before: this
    /// machine's copies there are shown in the current place instead.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub retired: BTreeSet<String>,
}

/// A place this machine has for a project: a candidate for [`PlaceBook::decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its root directory.
    pub root: String,
    /// [`Why::Link`], [`Why::Checkout`] or [`Why::Recent`].
    pub why: Why,
    /// When this machine last wrote there (ms), to pick the most recent.
    pub used_ms: i64,
}

/// Every project's chosen place, by key base; saved in the state dir (`places.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceBook {
    /// By project key base (`github.com/o/r`, `~/notes`).
    pub chosen: BTreeMap<String, Choice>,
    /// The record of every slug dir another machine's project was placed in, by slug: what
    /// this machine's writes there belong to, even after the project moved on, and what the
    /// reconcile at start files such a dir under before its first commit.
    #[serde(default)]
    pub placed: BTreeMap<String, ferry_sync::store::ProjectRecord>,
}

impl PlaceBook {
    /// The book saved at `path`; empty if there is none or it cannot be read (choices are then
    /// made again by the same rule).
    pub fn load(path: &Path) -> PlaceBook {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "ignoring a damaged place book");
                PlaceBook::default()
            }),
            Err(_) => PlaceBook::default(),
        }
    }

    /// Saves the book at `path` atomically, private to the user.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)
    }

    /// The place of project `base` given this machine's `candidates`: the kept choice unless a
    /// better kind appeared or its directory is gone, else the best candidate (most recent
    /// first, then by root for determinism), else HOME-relative. Returns whether the choice
    /// changed.
    pub fn decide(&mut self, base: &str, candidates: &[Candidate]) -> bool {
        let best = candidates.iter().min_by(|a, b| {
            (a.why, std::cmp::Reverse(a.used_ms), &a.root).cmp(&(
                b.why,
                std::cmp::Reverse(b.used_ms),
                &b.root,
            ))
        });
        let best = match best {
            Some(c) => (c.root.clone(), c.why),
            None => (String::new(), Why::Home),
        };
        let keep = self.chosen.get(base).is_some_and(|kept| {
            let still_there = match kept.why {
                Why::Home => true,
                // A link is kept only while it exists; it is always a candidate then.
                Why::Link => candidates
                    .iter()
                    .any(|c| c.why == Why::Link && c.root == kept.root),
                Why::Checkout | Why::Recent => Path::new(&kept.root).is_dir(),
            };
            still_there && kept.why <= best.1
        });
        if keep {
            return false;
        }
        let entry = self.chosen.entry(base.to_string()).or_insert(Choice {
            root: String::new(),
            why: Why::Home,
            retired: BTreeSet::new(),
        });
        let changed = (entry.root.as_str(), entry.why) != (best.0.as_str(), best.1);
        entry.root = best.0;
        entry.why = best.1;
        changed
    }

    /// Makes the checkout at `root` the place of `base` unless a link or another checkout was
    /// chosen; returns whether it did.
    pub fn adopt(&mut self, base: &str, root: &str) -> bool {
        let entry = self.chosen.entry(base.to_string()).or_insert(Choice {
            root: String::new(),
            why: Why::Home,
            retired: BTreeSet::new(),
        });
        if entry.why <= Why::Checkout {
            return false;
        }
        entry.root = root.to_string();
        entry.why = Why::Checkout;
        true
    }

    /// The chosen root of `base`, unless it is HOME-relative.
    pub fn root(&self, base: &str) -> Option<&str> {
        self.chosen
            .get(base)
            .filter(|c| c.why != Why::Home)
            .map(|c| c.root.as_str())
    }

    /// Whether `slug` is a place `base` left.
    pub fn is_retired(&self, base: &str, slug: &str) -> bool {
        self.chosen
            .get(base)
            .is_some_and(|c| c.retired.contains(slug))
    }

    /// The slug dirs `base` left.
    pub fn retired(&self, base: &str) -> impl Iterator<Item = &str> {
        self.chosen
            .get(base)
            .into_iter()
            .flat_map(|c| c.retired.iter().map(String::as_str))
    }

    /// Remembers that `base` left the place at `slug`.
    pub fn retire(&mut self, base: &str, slug: &str) {
        if let Some(c) = self.chosen.get_mut(base) {
            c.retired.insert(slug.to_string());
        }
    }

    /// Forgets that `base` left `slug`: it is the project's place again.
    pub fn unretire(&mut self, base: &str, slug: &str) {
        if let Some(c) = self
            .chosen
            .get_mut(base)
            .filter(|c| c.retired.contains(slug))
        {
            c.retired.remove(slug);
        }
    }
}

/// Whether `root` is a main checkout: its `.git` is a directory (a worktree's is a file).
pub fn is_main_checkout(root: &str) -> bool {
    Path::new(root).join(".git").is_dir()
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(root: &str, why: Why, used_ms: i64) -> Candidate {
        Candidate {
            root: root.into(),
            why,
            used_ms,
        }
    }

    #[test]
    fn the_best_kind_then_the_most_recent_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, c2) = (dir.path().join("c1"), dir.path().join("c2"));
        std::fs::create_dir_all(&c1).unwrap();
        std::fs::create_dir_all(&c2).unwrap();
        let (c1, c2) = (c1.to_str().unwrap(), c2.to_str().unwrap());
        let mut book = PlaceBook::default();
        assert!(!book.decide("k", &[]), "HOME-relative from the start");
        assert_eq!(book.root("k"), None);
        assert!(book.decide("k", &[cand(c1, Why::Recent, 5), cand(c2, Why::Recent, 9)]));
        assert_eq!(book.root("k"), Some(c2));
        // Used more recently elsewhere later: the kept choice stays (stable across restarts).
        assert!(!book.decide("k", &[cand(c1, Why::Recent, 50), cand(c2, Why::Recent, 9)]));
        assert_eq!(book.root("k"), Some(c2));
        // A better kind wins.
        assert!(book.decide("k", &[cand(c1, Why::Checkout, 1), cand(c2, Why::Recent, 9)]));
        assert_eq!(book.chosen["k"].why, Why::Checkout);
        assert!(book.decide("k", &[cand("/l", Why::Link, 0), cand(c1, Why::Checkout, 1)]));
        // The link removed: back to the best remaining.
        assert!(book.decide("k", &[cand(c1, Why::Checkout, 1)]));
        assert_eq!(book.root("k"), Some(c1));
        // Its directory gone: decided again.
        std::fs::remove_dir(c1).unwrap();
        assert!(book.decide("k", &[cand(c2, Why::Recent, 9)]));
        assert_eq!(book.root("k"), Some(c2));
    }

    #[test]
    fn adoption_only_replaces_home_and_the_book_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = PlaceBook::default();
        book.decide("k", &[]);
        assert!(book.adopt("k", "/src/k"));
        assert!(!book.adopt("k", "/src/other"), "a checkout is kept");
        book.retire("k", "-old");
        assert!(book.is_retired("k", "-old"));
        book.unretire("k", "-old");
        assert!(!book.is_retired("k", "-old"));
        book.retire("k", "-old");
        let path = dir.path().join("places.json");
        book.save(&path).unwrap();
        assert_eq!(PlaceBook::load(&path), book);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(PlaceBook::load(&path), PlaceBook::default());
    }
}
