//! What a transfer got right: files placed where Claude Code looks on the receiving machine,
//! paths still pointing at the other machine, the corpus's expectations met, sessions the real
//! client resumes, and, after the round trip, the originals intact.

use super::corpus::{Expect, Session, files};
use super::world::World;
use crate::claude::{User, VERSIONS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// B's side after the first transfer.
#[derive(Debug, Default)]
pub struct Placed {
    /// Files A sent.
    pub files: usize,
    /// Of them, at the place Claude Code looks for them on B.
    pub placed: usize,
    /// Occurrences of A's HOME on B, as a path or inside a slug.
    pub foreign: usize,
    /// Per kind of expectation: (met, total).
    pub expects: BTreeMap<&'static str, (usize, usize)>,
}

/// A's side after the round trip.
#[derive(Debug, Default)]
pub struct Returned {
    /// A's files before it all.
    pub files: usize,
    /// Of them, byte-identical now.
    pub identical: usize,
    /// Of them, the original followed by what B appended.
    pub extended: usize,
    /// Occurrences of B's HOME on A, as a path or inside a slug.
    pub foreign: usize,
    /// Sessions resumed on B whose B turn is in A's copy, where A's client looks.
    pub turns_back: usize,
}

/// How often `home` occurs in the files under `dir`: as a path, or slugged inside a dir name.
pub fn foreign(dir: &Path, home: &Path) -> usize {
    let path = home.to_str().expect("UTF-8");
    let slug = ferry_sync::slug::slug(path);
    files(dir)
        .iter()
        .map(|f| {
            let text = std::fs::read(dir.join(f)).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            text.matches(path).count() + text.matches(slug.as_str()).count()
        })
        .sum()
}

fn projects(home: &Path) -> PathBuf {
    home.join(".claude/projects")
}

/// Checks B after the first transfer of `originals` (paths relative to A's `projects/`).
pub fn on_b(w: &World, originals: &[PathBuf], sessions: &[Session], expects: &[Expect]) -> Placed {
    let to = projects(&w.b.home);
    let missing: Vec<&PathBuf> = originals
        .iter()
        .filter(|rel| !to.join(w.across(true, rel)).exists())
        .collect();
    for rel in &missing {
        eprintln!("  not where B's client looks: {}", rel.display());
    }
    let mut out = Placed {
        files: originals.len(),
        placed: originals.len() - missing.len(),
        foreign: foreign(&to, &w.a.home),
        ..Placed::default()
    };
    let by_id: BTreeMap<&str, &Session> = sessions.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut texts: BTreeMap<&str, String> = BTreeMap::new();
    for e in expects {
        let text = texts.entry(e.id.as_str()).or_insert_with(|| {
            std::fs::read_to_string(w.transcript(false, by_id[e.id.as_str()])).unwrap_or_default()
        });
        let slot = out.expects.entry(e.what).or_default();
        slot.1 += 1;
        if text.contains(&e.on_b) {
            slot.0 += 1;
        }
    }
    out
}

/// Checks A after the round trip against `template` (A's `projects/` before anything ran);
/// `resumed` are the sessions B resumed, with the prompt B's turn carried.
pub fn on_a(
    w: &World,
    template: &Path,
    originals: &[PathBuf],
    resumed: &[(Session, String)],
) -> Returned {
    let here = projects(&w.a.home);
    let mut out = Returned {
        files: originals.len(),
        foreign: foreign(&here, &w.b.home),
        ..Returned::default()
    };
    for rel in originals {
        let before = std::fs::read(template.join(rel)).expect("template file");
        let Ok(now) = std::fs::read(here.join(rel)) else {
            continue;
        };
        if now == before {
            out.identical += 1;
        } else if now.len() > before.len() && now.starts_with(&before) {
            out.extended += 1;
        }
    }
    out.turns_back = resumed
        .iter()
        .filter(|(s, prompt)| {
            std::fs::read_to_string(w.transcript(true, s)).is_ok_and(|t| t.contains(prompt))
        })
        .count();
    out
}

/// Resumes the session with the real client on B, in its project dir there, saying `prompt`;
/// whether the client found it: it answered, and what it sent the API holds `marker`, a piece
/// of the session's history.
pub fn resume(w: &World, user: &User, s: &Session, marker: &str, prompt: &str) -> bool {
    let before = std::fs::metadata(&user.api_log).map_or(0, |m| m.len());
    let out = user.run(
        VERSIONS[1],
        &w.project_dir(false, s),
        &["-p", "--resume", &s.id, prompt],
    );
    let log = std::fs::read(&user.api_log).unwrap_or_default();
    let sent = String::from_utf8_lossy(&log[before as usize..]);
    out.status.success() && sent.contains(marker)
}
