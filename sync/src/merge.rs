//! The merge of machines' versions of one path (DESIGN.md invariants 4 and 5).
//!
//! - **Deletion belongs to the writer.** A tombstone (`Deleted`) from any machine hides every
//!   version not newer than it, everywhere. A `Hidden` marker hides versions not newer than it,
//!   but only on the machine that wrote it; elsewhere that machine's content still counts. A
//!   version written after either survives. A machine's tombstone in one place (a slug dir)
//!   never hides that machine's own version in another place: its live copy there shows it was
//!   not deleted (Claude Code moves a session to another project dir by renaming it).
//! - **Transcripts keep every line.** The surviving versions are merged line by line: their
//!   common prefix, then each version's remaining lines, oldest version first (so the newest
//!   machine's `last-prompt` comes last and `--resume` continues from it). A line with a top-level
//!   `uuid` appears once; a line without one is dropped only if another version already gave the
//!   same bytes. A torn last line that ends up followed by other lines gets a `\n`, so it cannot
//!   corrupt the line after it.
//! - **Other files: newest wins** by mtime (then machine id, for determinism); the others are
//!   reported as losers and stay in history.

use crate::store::{FileMeta, FileState};
use std::collections::{HashMap, HashSet};

/// One machine's version of a path, as the merge sees it.
#[derive(Clone, Copy, Debug)]
pub struct Version<'a> {
    /// The machine that wrote it.
    pub machine: &'a str,
    /// The place (slug dir) on that machine it was written in.
    pub place: &'a str,
    /// Its metadata.
    pub meta: FileMeta,
}

/// What the view shows for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// Indexes of the versions to show: one for newest-wins, every survivor (oldest first) for
    /// a transcript; empty when the path is deleted or hidden.
    pub shown: Vec<usize>,
    /// Indexes of present versions that lost a newest-wins merge.
    pub losers: Vec<usize>,
}

/// Decides what `viewer` sees of a path given every machine's version of it.
pub fn resolve(versions: &[Version<'_>], viewer: &str, lines: bool) -> Resolution {
    // The newest hide that applies to version `v`.
    let hidden_upto = |v: &Version<'_>| {
        let mut upto = i64::MIN;
        for t in versions {
            match t.meta.state {
                FileState::Deleted { at_ms } if !(t.machine == v.machine && t.place != v.place) => {
                    upto = upto.max(at_ms)
                }
                FileState::Hidden { until_ms } if t.machine == viewer => upto = upto.max(until_ms),
                _ => {}
            }
        }
        upto
    };
    // Another machine's hide marker still carries that machine's content: it counts as present.
    let shows = |v: &Version<'_>| match v.meta.state {
        FileState::Present => true,
        FileState::Hidden { .. } => v.machine != viewer,
        FileState::Deleted { .. } => false,
    };
    let mut alive: Vec<usize> = (0..versions.len())
        .filter(|&i| shows(&versions[i]) && versions[i].meta.mtime_ms > hidden_upto(&versions[i]))
        .collect();
    alive.sort_by(|&a, &b| {
        let (va, vb) = (&versions[a], &versions[b]);
        (va.meta.mtime_ms, va.machine, va.place).cmp(&(vb.meta.mtime_ms, vb.machine, vb.place))
    });
    if lines || alive.len() <= 1 {
        return Resolution {
            shown: alive,
            losers: Vec::new(),
        };
    }
    let newest = alive.pop().expect("more than one");
    Resolution {
        shown: vec![newest],
        losers: alive,
    }
}

/// The top-level `uuid` of a transcript line, if it is a JSON object with one.
pub fn uuid_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        uuid: Option<String>,
    }
    serde_json::from_slice::<Line>(line).ok()?.uuid
}

/// Splits into lines, each keeping its `\n` (the last may lack one).
fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

/// `version` with each line whose uuid `preferred` also has replaced by `preferred`'s bytes
/// for it: where the store's copy of a line differs from the local one (redacted, say), the
/// local one wins, and the order stays `version`'s.
pub fn prefer_lines(version: &[u8], preferred: &[u8]) -> Vec<u8> {
    let mine: HashMap<String, &[u8]> = split_lines(preferred)
        .into_iter()
        .filter_map(|l| Some((uuid_of(l)?, l)))
        .collect();
    let mut out = Vec::with_capacity(version.len());
    for line in split_lines(version) {
        let chosen = uuid_of(line).and_then(|u| mine.get(&u).copied());
        match chosen {
            Some(l) => {
                out.extend_from_slice(l.strip_suffix(b"\n").unwrap_or(l));
                if line.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// A line without its newline.
fn bare(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// Merges transcript versions (oldest first) so that every line of every version is kept once.
pub fn merge_lines(versions: &[&[u8]]) -> Vec<u8> {
    match versions {
        [] => return Vec::new(),
        [one] => return one.to_vec(),
        _ => {}
    }
    let split: Vec<Vec<&[u8]>> = versions.iter().map(|v| split_lines(v)).collect();
    let prefix = (0..)
        .take_while(|&i| split.iter().all(|v| i < v.len() && v[i] == split[0][i]))
        .count();
    let mut out: Vec<u8> = Vec::with_capacity(versions.iter().map(|v| v.len()).max().unwrap_or(0));
    let mut uuids: HashSet<String> = HashSet::new();
    // Which version first gave a uuid-less line, known by its bytes without the newline: a
    // torn last line that a merge ended with a newline is still the same line.
    let mut plain: HashMap<&[u8], usize> = HashMap::new();
    for line in &split[0][..prefix] {
        out.extend_from_slice(line);
        match uuid_of(line) {
            Some(u) => {
                uuids.insert(u);
            }
            None => {
                plain.insert(bare(line), usize::MAX);
            }
        }
    }
    for (vi, lines) in split.iter().enumerate() {
        for line in &lines[prefix..] {
            let keep = match uuid_of(line) {
                Some(u) => uuids.insert(u),
                None => match plain.get(bare(line)) {
                    Some(&first) => first == vi,
                    None => {
                        plain.insert(bare(line), vi);
                        true
                    }
                },
            };
            if keep {
                if out.last().is_some_and(|&b| b != b'\n') {
                    out.push(b'\n');
                }
                out.extend_from_slice(line);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prefer_tests {
    use super::prefer_lines;

    #[test]
    fn the_preferred_bytes_of_a_line_win_and_the_order_stays() {
        let store = b"{\"uuid\":\"1\",\"t\":\"[REDACTED:k]\"}\n{\"uuid\":\"2\"}\n{\"uuid\":\"3\"}";
        let local = b"{\"uuid\":\"3\"}\n{\"uuid\":\"1\",\"t\":\"sk-real\"}\n";
        let out = prefer_lines(store, local);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"uuid\":\"1\",\"t\":\"sk-real\"}\n{\"uuid\":\"2\"}\n{\"uuid\":\"3\"}"
        );
    }
}
