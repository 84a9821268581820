//! The satellite mirror: keeps the session files Claude Code writes outside `projects/`
//! (`file-history/`, `tasks/`, `todos/`, `plans/`) and its prompt history (`history.jsonl`)
//! in step with the store, as plain files in the config dir.
//!
//! Claude Code reads and writes them where they are, never through the mount, so nothing it
//! writes waits for ferry or the network. Each pass of the mirror:
//! 1. notes this machine's new, changed and deleted satellites under their session's place
//!    (a satellite whose session is not known here yet is tried again next pass);
//! 2. exports this machine's own prompt-history entries, per project, to the state dir and
//!    notes them under the project's place;
//! 3. writes other machines' satellites where Claude Code looks for them (in this machine's
//!    paths, with their time), never over a local change it has not noted yet, and removes
//!    those their writer deleted;
//! 4. merges other machines' prompt-history entries into `history.jsonl`, every entry once,
//!    in time order.
//!
//! What it has seen and written is kept in `<state dir>/satellites.json`, so a restart neither
//! commits what it wrote nor takes it for a local change.

use crate::core::Fs;
use crate::foreign::{Foreign, ForeignFile};
use ferry_sync::satellite::{self, KINDS, Owner};
use ferry_sync::store::{Change, fnv1a};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A file of the config dir as last seen or written by the mirror.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    len: u64,
    mtime_ns: i128,
    hash: u64,
    /// Written here from another machine's version (else this machine's own).
    theirs: bool,
    /// The session's place it is noted under.
    slug: String,
}

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Known {
    files: BTreeMap<String, Seen>,
    /// Deleted here: other machines' versions up to this mtime (ms) are not written again.
    gone: BTreeMap<String, i64>,
    /// The prompt-history entries written here from other machines: entry key to the hash of
    /// the line written.
    history: BTreeMap<u64, u64>,
    /// Hash of the own entries last exported for each place.
    exported: BTreeMap<String, u64>,
    /// `history.jsonl`'s length and mtime when last exported.
    history_stat: Option<(u64, i128)>,
}

/// The mirror of one config dir.
pub struct Mirror {
    config_dir: PathBuf,
    state_file: PathBuf,
    exports: PathBuf,
    known: Known,
    sessions: HashMap<Owner, String>,
    dirty: bool,
}

/// The length and mtime of a file, if it is a regular file.
fn stat(path: &Path) -> Option<(u64, i128)> {
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.is_file() {
        return None;
    }
    let t = md.modified().ok()?;
    let ns = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    Some((md.len(), ns))
}

fn now_ms() -> i64 {
    ferry_sync::engine::now_ms()
}

impl Mirror {
    /// The mirror of `config_dir`, keeping its record in `state_dir`.
    pub fn new(config_dir: &Path, state_dir: &Path) -> Mirror {
        let state_file = state_dir.join("satellites.json");
        let known = std::fs::read(&state_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Mirror {
            config_dir: config_dir.to_path_buf(),
            state_file,
            exports: state_dir.join("satellites"),
            known,
            sessions: HashMap::new(),
            dirty: false,
        }
    }

    /// One pass: this machine's changes noted, then (with `write`) other machines' written
    /// here. Returns how many files it noted or wrote.
    pub fn pass(&mut self, fs: &Fs, write: bool) -> usize {
        let _span = tracing::debug_span!("satellites").entered();
        let mut n = self.note_local(fs);
        n += self.export_history(fs);
        if write {
            let foreign = fs.foreign_index();
            n += self.write_theirs(fs, &foreign);
            n += self.merge_history(fs, &foreign);
        }
        self.save();
        n
    }

    fn local(&self, path: &str) -> PathBuf {
        path.split('/')
            .fold(self.config_dir.clone(), |p, c| p.join(c))
    }

    /// Every satellite file in the config dir, by config-dir path.
    fn scan(&self) -> BTreeMap<String, (u64, i128)> {
        let mut out = BTreeMap::new();
        for kind in KINDS {
            let dir = kind.dir();
            let Ok(top) = std::fs::read_dir(self.config_dir.join(dir)) else {
                continue;
            };
            for e in top.flatten() {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                        let Ok(file) = f.file_name().into_string() else {
                            continue;
                        };
                        let path = format!("{dir}/{name}/{file}");
                        if let (Some(_), Some(st)) = (satellite::owner_of(&path), stat(&f.path())) {
                            out.insert(path, st);
                        }
                    }
                } else if ft.is_file() {
                    let path = format!("{dir}/{name}");
                    if let (Some(_), Some(st)) = (satellite::owner_of(&path), stat(&e.path())) {
                        out.insert(path, st);
                    }
                }
            }
        }
        out
    }

    /// The place of the session that owns the satellite at `path`.
    fn slug_for(&mut self, fs: &Fs, path: &str) -> Option<String> {
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
        }
        let slug = match &owner {
            Owner::Session(sid) => fs.session_slug(sid),
            Owner::Plan(name) => fs.plan_slug(name),
        }?;
        self.sessions.insert(owner, slug.clone());
        Some(slug)
    }

    /// Notes this machine's new, changed and deleted satellites.
    fn note_local(&mut self, fs: &Fs) -> usize {
        let found = self.scan();
        let mut n = 0;
        for (path, &(len, mtime_ns)) in &found {
            let seen = self.known.files.get(path);
            if seen.is_some_and(|s| s.len == len && s.mtime_ns == mtime_ns) {
                continue;
            }
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
            let Some(slug) = self.slug_for(fs, path) else {
                tracing::debug!(path, "a satellite whose session is not here yet");
                continue;
            };
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
            };
            self.known.files.insert(path.clone(), seen);
            self.dirty = true;
            n += 1;
        }
        let gone: Vec<String> = self
            .known
            .files
            .keys()
            .filter(|p| !found.contains_key(*p))
            .cloned()
            .collect();
        for path in gone {
            let seen = self.known.files.remove(&path).expect("listed");
            let mtime_ms = (seen.mtime_ns / 1_000_000) as i64;
            // Deleting its own file tombstones it everywhere; another machine's, only here.
            let change = if seen.theirs {
                Change::Hide { until_ms: mtime_ms }
            } else {
                Change::Delete { at_ms: now_ms() }
            };
            fs.note_satellite(&seen.slug, &satellite::rel_of(&path), change, 0);
            self.known.gone.insert(path, mtime_ms);
            self.dirty = true;
            n += 1;
        }
        n
    }

    /// Writes other machines' satellites here, and removes those their writer deleted.
    fn write_theirs(&mut self, fs: &Fs, foreign: &Foreign) -> usize {
        let mut n = 0;
        for (rel, f) in &foreign.satellites {
            let Some(path) = satellite::path_of(rel) else {
                continue;
            };
            if self.known.gone.get(path).is_some_and(|&t| f.mtime_ms <= t) {
                continue;
            }
            match self.write_one(fs, foreign, path, f) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(path, error = %e, "writing another machine's satellite"),
            }
        }
        // Written here from another machine and no longer shown: its writer deleted it.
        let dropped: Vec<String> = self
            .known
            .files
            .iter()
            .filter(|(p, s)| s.theirs && !foreign.satellites.contains_key(&satellite::rel_of(p)))
            .map(|(p, _)| p.clone())
            .collect();
        for path in dropped {
            let local = self.local(&path);
            let seen = &self.known.files[&path];
            if stat(&local) == Some((seen.len, seen.mtime_ns))
                && std::fs::remove_file(&local).is_ok()
            {
                if let Some(dir) = local.parent()
                    && dir
                        != self
                            .config_dir
                            .join(path.split('/').next().unwrap_or_default())
                {
                    let _ = std::fs::remove_dir(dir);
                }
                n += 1;
            }
            self.known.files.remove(&path);
            self.dirty = true;
        }
        n
    }

    /// Writes one satellite if the file here is not newer and holds no unnoted change.
    fn write_one(
        &mut self,
        fs: &Fs,
        foreign: &Foreign,
        path: &str,
        f: &ForeignFile,
    ) -> std::io::Result<bool> {
        let local = self.local(path);
        let here = stat(&local);
        let seen = self.known.files.get(path);
        if let Some((len, mtime_ns)) = here {
            // A change here not noted yet, or this machine's own version at least as new:
            // leave it. Another machine's version written before gives way to the newest (or
            // to the same one expanded for a new place).
            let Some(s) = seen.filter(|s| (s.len, s.mtime_ns) == (len, mtime_ns)) else {
                return Ok(false);
            };
            if !s.theirs && (mtime_ns / 1_000_000) as i64 >= f.mtime_ms {
                return Ok(false);
            }
        }
        let bytes = fs
            .satellite_bytes(foreign, f)
            .map_err(std::io::Error::other)?;
        let hash = fnv1a(&bytes);
        if seen.is_some_and(|s| s.hash == hash) && here.is_some() {
            return Ok(false);
        }
        let dir = local.parent().expect("under the config dir");
        create_private_dirs(dir)?;
        let name = local.file_name().expect("a file").to_string_lossy();
        let tmp = dir.join(format!("{}{name}.part", ferry_sync::upper::TEMP_PREFIX));
        let mode = f.versions.last().map_or(0o600, |v| v.meta.mode);
        write_file(&tmp, &bytes, mode, f.mtime_ms)?;
        let (len, mtime_ns) = stat(&tmp).ok_or_else(|| std::io::Error::other("vanished"))?;
        // Recorded before it is in place: a crash in between never takes it for a change here.
        let seen = Seen {
            len,
            mtime_ns,
            hash,
            theirs: true,
            slug: f.slug.clone(),
        };
        self.known.files.insert(path.to_string(), seen);
        self.dirty = true;
        self.save();
        if stat(&local) != here {
            let _ = std::fs::remove_file(&tmp);
            return Ok(false);
        }
        std::fs::rename(&tmp, &local)?;
        tracing::debug!(path, "wrote another machine's satellite");
        Ok(true)
    }

    /// Exports this machine's own prompt-history entries, per place, when the file changed.
    fn export_history(&mut self, fs: &Fs) -> usize {
        let file = self.config_dir.join("history.jsonl");
        let st = stat(&file);
        if st.is_none() || st == self.known.history_stat {
            return 0;
        }
        let Ok(text) = std::fs::read(&file) else {
            return 0;
        };
        let mut by_slug: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in satellite::entries(&text) {
            let Some(project) = &e.project else { continue };
            if self.known.history.contains_key(&e.key()) {
                continue;
            }
            let out = by_slug.entry(ferry_sync::slug::slug(project)).or_default();
            out.extend_from_slice(e.line);
            out.push(b'\n');
        }
        // A place whose entries are all gone (pruned) is exported empty.
        for slug in self.known.exported.keys() {
            by_slug.entry(slug.clone()).or_default();
        }
        let mut n = 0;
        let mut all_done = true;
        for (slug, own) in by_slug {
            let hash = fnv1a(&own);
            if self.known.exported.get(&slug) == Some(&hash) {
                continue;
            }
            // Entries of a directory with no session here (all deleted) stay local.
            if fs.upper().stat(Path::new(&slug)).ok().flatten().is_none() {
                continue;
            }
            let out = self.exports.join("history").join(format!("{slug}.jsonl"));
            let written = create_private_dirs(out.parent().expect("dir"))
                .and_then(|()| write_file(&out, &own, 0o600, now_ms()));
            if let Err(e) = written {
                tracing::warn!(error = %e, "exporting the prompt history");
                all_done = false;
                continue;
            }
            let change = Change::Write {
                local: out,
                dirty_from: None,
            };
            fs.note_satellite(&slug, satellite::HISTORY, change, own.len() as u64);
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
    /// project placed elsewhere) is replaced, unless it was changed here.
    fn merge_history(&mut self, fs: &Fs, foreign: &Foreign) -> usize {
        let mut texts = Vec::new();
        for f in foreign.histories.values() {
            match fs.satellite_bytes(foreign, f) {
                Ok(b) => texts.push(b),
                Err(e) => tracing::warn!(error = %e, "reading another machine's prompt history"),
            }
        }
        // Entry key to (old line hash if replacing, new line).
        let mut todo: BTreeMap<u64, (Option<u64>, &[u8])> = BTreeMap::new();
        for t in &texts {
            for e in satellite::entries(t) {
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
        }
        if todo.is_empty() {
            return 0;
        }
        let file = self.config_dir.join("history.jsonl");
        let before = stat(&file);
        let local = std::fs::read(&file).unwrap_or_default();
        let mut kept: Vec<u8> = Vec::with_capacity(local.len());
        let mut replaced = BTreeSet::new();
        for e in satellite::entries(&local) {
            let line = match todo.get(&e.key()) {
                Some((Some(old), new)) if *old == fnv1a(e.line) => {
                    replaced.insert(e.key());
                    *new
                }
                _ => e.line,
            };
            kept.extend_from_slice(line);
            kept.push(b'\n');
        }
        let added: Vec<u8> = todo
            .values()
            .filter(|(old, _)| old.is_none())
            .flat_map(|(_, l)| l.iter().copied().chain([b'\n']))
            .collect();
        let merged = satellite::merge_history(&kept, &[&added]);
        let tmp = self.config_dir.join(format!(
            "{}history.jsonl.part",
            ferry_sync::upper::TEMP_PREFIX
        ));
        if let Err(e) = write_file(&tmp, &merged, 0o600, now_ms()) {
            tracing::warn!(error = %e, "merging the prompt history");
            return 0;
        }
        // Claude Code appends without a lock: replace the file only if nothing came meanwhile.
        if stat(&file) != before {
            let _ = std::fs::remove_file(&tmp);
            return 0;
        }
        for (key, (old, line)) in &todo {
            if old.is_none() || replaced.contains(key) {
                self.known.history.insert(*key, fnv1a(line));
            }
        }
        self.dirty = true;
        self.save();
        if let Err(e) = std::fs::rename(&tmp, &file) {
            tracing::warn!(error = %e, "merging the prompt history");
            return 0;
        }
        // The own entries are unchanged: no export for this rewrite.
        self.known.history_stat = stat(&file);
        todo.len()
    }

    fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let bytes = serde_json::to_vec(&self.known).expect("serialisable");
        let tmp = self.state_file.with_extension("json.tmp");
        let ok = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &self.state_file));
        match ok {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(error = %e, "saving the satellite record"),
        }
    }
}

/// Creates `dir` and its missing parents, private (0700), as Claude Code's own `mkdir -p`.
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Writes `bytes` to a new `path` with `mode` and modification time `mtime_ms`.
fn write_file(path: &Path, bytes: &[u8], mode: u32, mtime_ms: i64) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode & 0o777);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(mtime_ms.max(0) as u64);
    f.set_modified(at)?;
    Ok(())
}
