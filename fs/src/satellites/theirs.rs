//! Other machines' side: writing their satellites where Claude Code looks for them, and
//! removing those their writer deleted.

use super::{Mirror, Seen, files};
use crate::core::Fs;
use crate::foreign::{Foreign, ForeignFile};
use ferry_sync::satellite;
use ferry_sync::store::{Change, fnv1a};
use std::path::PathBuf;

/// A file written beside its place, to be renamed into it.
struct Ready {
    path: String,
    tmp: PathBuf,
    /// The stat of the file it replaces (none if new): renamed only if it is still that.
    replaces: Option<(u64, i128)>,
    seen: Seen,
}

impl Mirror {
    /// Writes other machines' satellites here, and removes those their writer deleted.
    pub(super) fn write_theirs(&mut self, fs: &Fs, foreign: &Foreign) -> usize {
        let mut ready = Vec::new();
        for (rel, f) in &foreign.satellites {
            let Some(path) = satellite::path_of(rel) else {
                continue;
            };
            if self.known.gone.get(path).is_some_and(|&t| f.mtime_ms <= t) {
                continue;
            }
            match self.prepare(fs, foreign, path, f) {
                Ok(Some(r)) => ready.push(r),
                Ok(None) => {}
                Err(e) => tracing::warn!(path, error = %e, "writing another machine's satellite"),
            }
        }
        let n = self.put_in_place(ready);
        n + self.remove_dropped(foreign)
    }

    /// Writes another machine's version beside the file, if the file here is not newer and
    /// holds no unnoted change.
    fn prepare(
        &mut self,
        fs: &Fs,
        foreign: &Foreign,
        path: &str,
        f: &ForeignFile,
    ) -> std::io::Result<Option<Ready>> {
        let local = self.local(path);
        let here = files::stat(&local);
        let seen = self.known.files.get(path).cloned();
        // Deleted here and not noted yet: the next scan notes it; never written back.
        if here.is_none() && seen.is_some() {
            return Ok(None);
        }
        if let Some((_, mtime_ns)) = here {
            // A change here not noted yet, or this machine's own version at least as new:
            // leave it. Another machine's version written before gives way to the newest (or
            // to the same one expanded for a new place).
            let Some(s) = seen.as_ref().filter(|s| Some(s.stat()) == here) else {
                return Ok(None);
            };
            if s.fingerprint == f.fingerprint {
                return Ok(None);
            }
            if !s.theirs && (mtime_ns / 1_000_000) as i64 >= f.mtime_ms {
                return Ok(None);
            }
        }
        let bytes = fs
            .satellite_bytes(foreign, f)
            .map_err(std::io::Error::other)?;
        let hash = fnv1a(&bytes);
        if let Some(s) = seen.as_ref().filter(|s| here.is_some() && s.hash == hash) {
            let s = Seen {
                fingerprint: f.fingerprint,
                ..s.clone()
            };
            self.known.files.insert(path.to_string(), s);
            self.dirty = true;
            return Ok(None);
        }
        if let Some(s) = seen.as_ref().filter(|s| !s.theirs && here.is_some()) {
            // This machine's own version gives way to a newer one: the engine may not have
            // committed it yet, and reads the file when it does, so it gets a copy to read.
            self.keep_own(fs, path, s)?;
        }
        files::create_private_dirs(local.parent().expect("under the config dir"))?;
        let tmp = files::temp_for(&local);
        let mode = f.versions.last().map_or(0o600, |v| v.meta.mode);
        files::write_new(&tmp, &bytes, mode, Some(f.mtime_ms))?;
        let (len, mtime_ns) = files::stat(&tmp).ok_or_else(|| std::io::Error::other("vanished"))?;
        let seen = Seen {
            len,
            mtime_ns,
            hash,
            theirs: true,
            slug: f.slug.clone(),
            fingerprint: f.fingerprint,
        };
        Ok(Some(Ready {
            path: path.to_string(),
            tmp,
            replaces: here,
            seen,
        }))
    }

    /// Copies this machine's own version of `path` for the engine, with its time, and notes
    /// the copy in its place.
    fn keep_own(&self, fs: &Fs, path: &str, seen: &Seen) -> std::io::Result<()> {
        let local = self.local(path);
        let bytes = std::fs::read(&local)?;
        let dir = self.exports.join("kept");
        files::create_private_dirs(&dir)?;
        let copy = dir.join(format!("{:016x}-{}", fnv1a(path.as_bytes()), seen.hash));
        files::write_new(
            &copy,
            &bytes,
            0o600,
            Some((seen.mtime_ns / 1_000_000) as i64),
        )?;
        let change = Change::Write {
            local: copy,
            dirty_from: None,
        };
        fs.note_satellite(&seen.slug, &satellite::rel_of(path), change, seen.len);
        Ok(())
    }

    /// Renames what [`Mirror::prepare`] wrote into place, each only if the file there is
    /// still as it was; the record of them is saved first, so that a crash in between never
    /// takes one for a change here.
    fn put_in_place(&mut self, ready: Vec<Ready>) -> usize {
        if ready.is_empty() {
            return 0;
        }
        for r in &ready {
            self.known.pending.insert(r.path.clone(), r.seen.clone());
        }
        self.dirty = true;
        self.save();
        let mut n = 0;
        for r in ready {
            self.known.pending.remove(&r.path);
            let local = self.local(&r.path);
            let moved = files::stat(&local) == r.replaces && put(&r.tmp, &local, r.replaces);
            if moved {
                tracing::debug!(path = r.path, "wrote another machine's satellite");
                // Known to the scan: not a new unit to look at until the next full scan.
                self.units.insert(super::scan::unit_of(&r.path).to_string());
                self.known.files.insert(r.path, r.seen);
                n += 1;
            } else {
                let _ = std::fs::remove_file(&r.tmp);
            }
        }
        n
    }

    /// Removes the satellites written here from another machine that are no longer shown:
    /// their writer deleted them (one changed here since stays).
    fn remove_dropped(&mut self, foreign: &Foreign) -> usize {
        let dropped: Vec<String> = self
            .known
            .files
            .iter()
            .filter(|(p, s)| s.theirs && !foreign.satellites.contains_key(&satellite::rel_of(p)))
            .map(|(p, _)| p.clone())
            .collect();
        let mut n = 0;
        for path in dropped {
            let local = self.local(&path);
            let seen = self.known.files.remove(&path).expect("listed");
            self.dirty = true;
            if files::stat(&local) == Some(seen.stat()) && std::fs::remove_file(&local).is_ok() {
                // The session's directory goes with its last file, as Claude Code's cleanup
                // removes it.
                let kind_dir = self
                    .config_dir
                    .join(path.split('/').next().unwrap_or_default());
                if let Some(dir) = local.parent().filter(|d| *d != kind_dir) {
                    let _ = std::fs::remove_dir(dir);
                }
                n += 1;
            }
        }
        n
    }
}

/// Moves `tmp` to `local`. A new file is linked, which fails if the client made one there in
/// the meantime; one that replaces a file is renamed over it.
fn put(tmp: &std::path::Path, local: &std::path::Path, replaces: Option<(u64, i128)>) -> bool {
    if replaces.is_some() {
        return std::fs::rename(tmp, local).is_ok();
    }
    match std::fs::hard_link(tmp, local) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            true
        }
        // A filesystem without hard links: the stat checked just before stands.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            std::fs::rename(tmp, local).is_ok()
        }
        Err(_) => false,
    }
}
