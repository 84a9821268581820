//! This machine's side: finding its satellites, their sessions' places, and noting their
//! changes.

use super::{MISS_WAIT_MAX, Mirror, Seen, files};
use crate::core::Fs;
use ferry_sync::satellite::{self, Owner};
use ferry_sync::store::{Change, fnv1a};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

impl Mirror {
    /// The place of the session that owns the satellite at `path`, if it is here. A miss is
    /// looked up again after a wait that doubles (a satellite whose transcript retention
    /// deleted is never found, and must not cost a search every second).
    pub(super) fn slug_for(&mut self, fs: &Fs, path: &str) -> Option<String> {
        let owner = satellite::owner_of(path)?;
        if let Some(slug) = self.sessions.get(&owner) {
            let still = match &owner {
                Owner::Session(sid) => fs
                    .upper()
                    .stat(&Path::new(slug).join(format!("{sid}.jsonl")))
                    .ok()
                    .flatten()
                    .is_some(),
                Owner::Plan(_) => true,
            };
            if still {
                return Some(slug.clone());
            }
            self.sessions.remove(&owner);
        }
        let now = Instant::now();
        if self.misses.get(path).is_some_and(|(at, _)| now < *at) {
            return None;
        }
        let found = match &owner {
            Owner::Session(sid) => fs.session_slug(sid),
            Owner::Plan(name) => fs.plan_slug(name),
        };
        match found {
            Some(slug) => {
                self.misses.remove(path);
                self.sessions.insert(owner, slug.clone());
                Some(slug)
            }
            None => {
                let wait = self
                    .misses
                    .get(path)
                    .map_or(Duration::from_secs(1), |(_, w)| (*w * 2).min(MISS_WAIT_MAX));
                self.misses.insert(path.to_string(), (now + wait, wait));
                tracing::debug!(path, "a satellite whose session is not here yet");
                None
            }
        }
    }

    /// Notes this machine's new, changed and deleted satellites (a full look at every one
    /// with `full`, else at those in use lately; see [`Mirror::scan`]).
    pub(super) fn note_local(&mut self, fs: &Fs, full: bool) -> usize {
        let found = self.scan(fs, full);
        let mut n = 0;
        for (path, &(len, mtime_ns)) in &found {
            let seen = self.known.files.get(path);
            if seen.is_some_and(|s| s.stat() == (len, mtime_ns)) {
                continue;
            }
            let before = seen.map(|s| s.slug.clone());
            let Some(slug) = self.slug_for(fs, path).or(before) else {
                continue;
            };
            let local = self.local(path);
            let Ok(bytes) = std::fs::read(&local) else {
                continue;
            };
            let hash = fnv1a(&bytes);
            if let Some(s) = self.known.files.get_mut(path)
                && s.hash == hash
            {
                (s.len, s.mtime_ns) = (len, mtime_ns);
                self.dirty = true;
                continue;
            }
            let change = Change::Write {
                local,
                dirty_from: None,
            };
            fs.note_satellite(&slug, &satellite::rel_of(path), change, len);
            self.known.gone.remove(path);
            let seen = Seen {
                len,
                mtime_ns,
                hash,
                theirs: false,
                slug,
                fingerprint: 0,
            };
            self.known.files.insert(path.clone(), seen);
            self.dirty = true;
            n += 1;
        }
        n + self.note_gone(fs, &found)
    }

    /// Notes the satellites gone from the config dir: its own deleted everywhere, another
    /// machine's hidden here only, as a transcript's deletion is.
    fn note_gone(&mut self, fs: &Fs, found: &BTreeMap<String, (u64, i128)>) -> usize {
        // Gone only if really not there: a directory that could not be read (too many open
        // files, a permission) is no deletion.
        let gone: Vec<String> = self
            .known
            .files
            .keys()
            .filter(|p| !found.contains_key(*p))
            .filter(|p| {
                std::fs::symlink_metadata(self.local(p))
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            })
            .cloned()
            .collect();
        for path in &gone {
            let seen = self.known.files.remove(path).expect("listed");
            let mtime_ms = (seen.mtime_ns / 1_000_000) as i64;
            let change = if seen.theirs {
                Change::Hide { until_ms: mtime_ms }
            } else {
                Change::Delete {
                    at_ms: ferry_sync::engine::now_ms(),
                }
            };
            fs.note_satellite(&seen.slug, &satellite::rel_of(path), change, 0);
            self.known.gone.insert(path.clone(), mtime_ms);
            self.dirty = true;
        }
        gone.len()
    }

    /// At start: notes again every own satellite still as last seen. A change noted before a
    /// crash may not have been committed (the engine holds notes in memory); one committed
    /// already commits nothing new.
    pub(super) fn renote_own(&mut self, fs: &Fs) -> usize {
        let own: Vec<(String, Seen)> = self
            .known
            .files
            .iter()
            .filter(|(_, s)| !s.theirs)
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect();
        let mut n = 0;
        for (path, seen) in own {
            let local = self.local(&path);
            if files::stat(&local) == Some(seen.stat()) {
                let change = Change::Write {
                    local,
                    dirty_from: None,
                };
                fs.note_satellite(&seen.slug, &satellite::rel_of(&path), change, seen.len);
                n += 1;
            }
        }
        n
    }
}
