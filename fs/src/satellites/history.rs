//! The prompt history: this machine's own entries exported per project, and other machines'
//! merged into `history.jsonl`, each entry once, in time order.

use super::{Mirror, files};
use crate::core::Fs;
use crate::foreign::Foreign;
use ferry_sync::satellite;
use ferry_sync::store::{Change, fnv1a};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

impl Mirror {
    fn history_file(&self) -> PathBuf {
        self.config_dir.join("history.jsonl")
    }

    /// Exports this machine's own prompt-history entries, per place, when the file changed.
    /// Entries of a directory with no session here wait for one (a prompt is recorded before
    /// its transcript's first line; a project whose sessions were all deleted keeps its
    /// entries local).
    pub(super) fn export_history(&mut self, fs: &Fs) -> usize {
        let file = self.history_file();
        let st = files::stat(&file);
        // A project whose directory is here now (its first transcript came after the prompt)
        // gets its entries exported.
        let arrived = self
            .known
            .history_waits
            .iter()
            .any(|slug| fs.upper().stat(Path::new(slug)).ok().flatten().is_some());
        if st.is_none() || (st == self.known.history_stat && !arrived) {
            return 0;
        }
        let Ok(text) = std::fs::read(&file) else {
            return 0;
        };
        let mut by_slug: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut cwds: BTreeMap<String, String> = BTreeMap::new();
        for e in satellite::entries(&text) {
            let Some(project) = &e.project else { continue };
            if self.known.history.contains_key(&e.key()) {
                continue;
            }
            let slug = ferry_sync::slug::slug(project);
            cwds.entry(slug.clone()).or_insert_with(|| project.clone());
            let out = by_slug.entry(slug).or_default();
            out.extend_from_slice(e.line);
            out.push(b'\n');
        }
        // A place whose entries are all gone (pruned) is exported empty.
        for slug in self.known.exported.keys() {
            by_slug.entry(slug.clone()).or_default();
        }
        let mut n = 0;
        let mut all_done = true;
        self.known.history_waits.clear();
        for (slug, own) in by_slug {
            let hash = fnv1a(&own);
            if self.known.exported.get(&slug) == Some(&hash) {
                continue;
            }
            if fs.upper().stat(Path::new(&slug)).ok().flatten().is_none() {
                self.known.history_waits.insert(slug);
                continue;
            }
            let out = self.exports.join("history").join(format!("{slug}.jsonl"));
            let written = files::create_private_dirs(out.parent().expect("dir"))
                .and_then(|()| files::replace(&out, &own, 0o600, None));
            if let Err(e) = written {
                tracing::warn!(error = %e, "exporting the prompt history");
                all_done = false;
                continue;
            }
            let change = Change::Write {
                local: out,
                dirty_from: None,
            };
            let cwd = cwds.get(&slug).map(String::as_str);
            fs.note_satellite_at(&slug, satellite::HISTORY, change, own.len() as u64, cwd);
            self.known.exported.insert(slug, hash);
            n += 1;
        }
        if all_done {
            self.known.history_stat = st;
        }
        self.dirty = true;
        n
    }

    /// Merges other machines' prompt-history entries into `history.jsonl`: new entries are
    /// added in time order, and an entry written here before whose line changed since (its
    /// project placed elsewhere) is replaced, unless it was changed here. An entry is written
    /// once: one the client pruned here stays pruned.
    pub(super) fn merge_history(&mut self, fs: &Fs, foreign: &Foreign) -> usize {
        let fingerprint = fnv1a(
            &foreign
                .histories
                .values()
                .flat_map(|f| f.fingerprint.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        if fingerprint == self.known.histories {
            return 0;
        }
        let mut texts = Vec::new();
        for f in foreign.histories.values() {
            match fs.satellite_bytes(foreign, f) {
                Ok(b) => texts.push(b),
                Err(e) => {
                    tracing::warn!(error = %e, "reading another machine's prompt history");
                    return 0;
                }
            }
        }
        // Entry key to (the line written before, if replacing; the line now).
        let mut todo: BTreeMap<u64, (Option<u64>, &[u8])> = BTreeMap::new();
        for e in texts.iter().flat_map(|t| satellite::entries(t)) {
            let (key, hash) = (e.key(), fnv1a(e.line));
            match self.known.history.get(&key) {
                None => {
                    todo.entry(key).or_insert((None, e.line));
                }
                Some(&old) if old != hash => {
                    todo.entry(key).or_insert((Some(old), e.line));
                }
                Some(_) => {}
            }
        }
        let n = todo.len();
        if n > 0 && !self.write_history(&todo) {
            return 0;
        }
        self.known.histories = fingerprint;
        self.dirty = true;
        n
    }

    /// Rewrites `history.jsonl` with `todo` merged in; false if it could not (it changed
    /// meanwhile, or a write failed: tried again next pass).
    fn write_history(&mut self, todo: &BTreeMap<u64, (Option<u64>, &[u8])>) -> bool {
        let file = self.history_file();
        // Read through a handle kept open: a line the client appends to the old file after the
        // rename is carried over (on Unix).
        let mut old = std::fs::File::open(&file).ok();
        let mut local = Vec::new();
        if let Some(f) = old.as_mut()
            && f.read_to_end(&mut local).is_err()
        {
            return false;
        }
        let before = files::stat(&file);
        // A line the client is appending (no newline yet): tried again next pass.
        if local.last().is_some_and(|&b| b != b'\n') {
            return false;
        }
        let here: BTreeSet<u64> = satellite::entries(&local).iter().map(|e| e.key()).collect();
        let mut kept: Vec<u8> = Vec::with_capacity(local.len());
        for e in satellite::entries(&local) {
            let line = match todo.get(&e.key()) {
                Some((Some(old), new)) if *old == fnv1a(e.line) => *new,
                _ => e.line,
            };
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
        let added: Vec<u8> = todo
            .iter()
            .filter(|(k, (old, _))| old.is_none() && !here.contains(k))
            .flat_map(|(_, (_, l))| l.iter().copied().chain([b'\n']))
            .collect();
        let merged = satellite::merge_history(&kept, &[&added]);
        let previous = self.known.history.clone();
        // Recorded: what is written now (an entry the file has already stays as it is, and
        // this machine's own entries are never taken for another's).
        for (key, (old, line)) in todo {
            if old.is_some() || !here.contains(key) {
                self.known.history.insert(*key, fnv1a(line));
            }
        }
        if merged == local {
            return true;
        }
        let tmp = files::temp_for(&file);
        if let Err(e) = files::write_new(&tmp, &merged, 0o600, None) {
            tracing::warn!(error = %e, "merging the prompt history");
            self.known.history = previous;
            return false;
        }
        self.dirty = true;
        self.save();
        // Windows does not replace a file that is open (and a line appended to it in the
        // rename's instant is not carried over there).
        #[cfg(not(unix))]
        drop(old.take());
        // The client appends without a lock: replace the file only if nothing came meanwhile.
        if files::stat(&file) != before || std::fs::rename(&tmp, &file).is_err() {
            let _ = std::fs::remove_file(&tmp);
            self.known.history = previous;
            self.dirty = true;
            return false;
        }
        let carried = old
            .as_mut()
            .map_or(0, |f| carry_over(f, local.len() as u64, &file));
        // The own entries are as exported if nothing came since the export, nor during this.
        if carried == 0 && before == self.known.history_stat {
            self.known.history_stat = files::stat(&file);
        }
        true
    }
}

/// Appends to `file` what was appended to the replaced file (open as `old`) past `len`;
/// returns how many bytes.
fn carry_over(old: &mut std::fs::File, len: u64, file: &Path) -> usize {
    let mut extra = Vec::new();
    if old.seek(SeekFrom::Start(len)).is_err() || old.read_to_end(&mut extra).is_err() {
        return 0;
    }
    if !extra.is_empty() {
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(file)
            .and_then(|mut f| f.write_all(&extra));
        if let Err(e) = appended {
            tracing::warn!(error = %e, "carrying over prompt history appended during a merge");
        }
    }
    extra.len()
}
