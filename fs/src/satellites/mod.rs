//! The satellite mirror: keeps the session files Claude Code writes outside `projects/`
//! (`file-history/`, `tasks/`, `todos/`, `plans/`) and its prompt history (`history.jsonl`)
//! in step with the store, as plain files in the config dir.
//!
//! Claude Code reads and writes them where they are, never through the mount, so nothing it
//! writes waits for ferry or the network. Each pass of the mirror:
//! 1. notes this machine's new, changed and deleted satellites under their session's place
//!    ([`local`]; a satellite whose session is not known here yet is tried again later);
//! 2. exports this machine's own prompt-history entries, per project, and merges other
//!    machines' into `history.jsonl`, every entry once, in time order ([`history`]);
//! 3. writes other machines' satellites where Claude Code looks for them, in this machine's
//!    paths and with their time, never over a local change it has not noted, and removes those
//!    their writer deleted ([`theirs`]).
//!
//! What it has seen and written is kept in `<state dir>/satellites.json`, so a restart neither
//! commits what it wrote nor takes it for a local change.

mod files;
mod history;
mod local;
mod scan;
mod theirs;

use crate::core::Fs;
use ferry_sync::satellite::Owner;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// The other machine's version it was written from ([`crate::foreign::ForeignFile`]'s
    /// fingerprint; 0 for this machine's own).
    #[serde(default)]
    fingerprint: u64,
}

impl Seen {
    fn stat(&self) -> (u64, i128) {
        (self.len, self.mtime_ns)
    }
}

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Known {
    files: BTreeMap<String, Seen>,
    /// Being written from other machines: settled at the next start (a crash between the
    /// record and the rename).
    pending: BTreeMap<String, Seen>,
    /// Deleted here: other machines' versions up to this mtime (ms) are not written again.
    gone: BTreeMap<String, i64>,
    /// The prompt-history entries written here from other machines: entry key to the hash of
    /// the line written.
    history: BTreeMap<u64, u64>,
    /// Hash of the own entries last exported for each place.
    exported: BTreeMap<String, u64>,
    /// `history.jsonl`'s length and mtime when last exported.
    history_stat: Option<(u64, i128)>,
    /// Places with own entries and no directory here yet: exported once it is.
    history_waits: std::collections::BTreeSet<String>,
    /// The other machines' histories last merged (their fingerprints, combined).
    histories: u64,
}

/// The mirror of one config dir.
pub struct Mirror {
    config_dir: PathBuf,
    state_file: PathBuf,
    exports: PathBuf,
    known: Known,
    /// Each satellite owner's place, once found.
    sessions: HashMap<Owner, String>,
    /// Satellites whose session is not here: when to look again, and the wait after that.
    misses: HashMap<String, (Instant, Duration)>,
    started: bool,
    dirty: bool,
    /// Units (a session's directory, or a flat file) written to lately: looked at every pass.
    hot: BTreeSet<String>,
    /// Every unit seen at the last scan.
    units: BTreeSet<String>,
    /// When every file was last looked at.
    last_full: Option<Instant>,
    /// The version of the other machines' index last written here from: written again only
    /// once it changes ([`Fs::foreign_version`]; a reference kept to the index itself would
    /// make every refresh patch a copy of it).
    last_foreign: Option<u64>,
}

/// How often every satellite is looked at; in between, only those in use lately and new
/// ones are (an idle pass over thousands of sessions would cost a stat of every file each
/// second).
const FULL_EVERY: Duration = Duration::from_secs(30);

/// The longest wait before looking again for a satellite's session.
const MISS_WAIT_MAX: Duration = Duration::from_secs(60);

impl Mirror {
    /// The mirror of `config_dir`, keeping its record in `state_dir`.
    pub fn new(config_dir: &Path, state_dir: &Path) -> Mirror {
        let state_file = state_dir.join("satellites.json");
        let known = match std::fs::read(&state_file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the satellite record is unreadable; starting afresh");
                let _ = std::fs::rename(&state_file, state_file.with_extension("json.bad"));
                Known::default()
            }),
            Err(_) => Known::default(),
        };
        Mirror {
            config_dir: config_dir.to_path_buf(),
            state_file,
            exports: state_dir.join("satellites"),
            known,
            sessions: HashMap::new(),
            misses: HashMap::new(),
            started: false,
            dirty: false,
            hot: BTreeSet::new(),
            units: BTreeSet::new(),
            last_full: None,
            last_foreign: None,
        }
    }

    /// One pass: this machine's changes noted, then (with `write`) other machines' written
    /// here. A pass without `write` (the last, at unmount) looks at every file. Returns how
    /// many files it noted or wrote.
    pub fn pass(&mut self, fs: &Fs, write: bool) -> usize {
        let _span = tracing::debug_span!("satellites").entered();
        let mut n = 0;
        if !self.started {
            self.started = true;
            self.settle();
            n += self.renote_own(fs);
        }
        let full = !write || self.last_full.is_none_or(|t| t.elapsed() >= FULL_EVERY);
        if full {
            self.last_full = Some(Instant::now());
        }
        let noted = self.note_local(fs, full);
        n += noted + self.export_history(fs);
        if write {
            let version = fs.foreign_version();
            let foreign = fs.foreign_index();
            if self.last_foreign != Some(version) || noted > 0 || full {
                n += self.write_theirs(fs, &foreign);
                self.last_foreign = Some(version);
            }
            n += self.merge_history(fs, &foreign);
        }
        self.save();
        n
    }

    /// Makes the next pass look at every file, not only at those in use lately.
    pub fn look_at_everything(&mut self) {
        self.last_full = None;
    }

    /// The file at config-dir path `path`.
    fn local(&self, path: &str) -> PathBuf {
        path.split('/')
            .fold(self.config_dir.clone(), |p, c| p.join(c))
    }

    /// Settles what a crash left: a file being written from another machine is taken as
    /// written if it is in place, and its temporary file goes; copies kept for the engine
    /// older than a day go.
    fn settle(&mut self) {
        for (path, seen) in std::mem::take(&mut self.known.pending) {
            let local = self.local(&path);
            if files::stat(&local) == Some(seen.stat()) {
                self.known.files.insert(path, seen);
            }
            let _ = std::fs::remove_file(files::temp_for(&local));
            self.dirty = true;
        }
        files::remove_older(&self.exports.join("kept"), Duration::from_secs(86_400));
    }

    fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let bytes = serde_json::to_vec(&self.known).expect("serialisable");
        match files::replace(&self.state_file, &bytes, 0o600, None) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(error = %e, "saving the satellite record"),
        }
    }
}
