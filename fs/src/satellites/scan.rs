//! Finding the satellites in the config dir without looking at every file every second: a
//! full scan now and then, and in between only the units (a session's directory, or a file of
//! a flat directory) that changed lately or are new.

use super::{Mirror, files};
use crate::core::Fs;
use ferry_sync::satellite::{self, KINDS, Kind};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a unit written to stays looked at every pass.
pub(super) const HOT_FOR: Duration = Duration::from_secs(600);

/// Whether a kind keeps one directory per session (else files side by side).
fn per_session(kind: Kind) -> bool {
    matches!(kind, Kind::FileHistory | Kind::Tasks)
}

impl Mirror {
    /// Every satellite file in the config dir, by config-dir path, with its stat. With `full`,
    /// every file is looked at and the units in use lately are found again; else only those
    /// and new units are, and the rest are taken as last seen.
    pub(super) fn scan(&mut self, fs: &Fs, full: bool) -> BTreeMap<String, (u64, i128)> {
        // A session in use here (its transcript written lately) has its satellites looked at.
        for sid in fs.active_sessions(HOT_FOR) {
            for kind in KINDS.into_iter().filter(|k| per_session(*k)) {
                self.hot.insert(format!("{}/{sid}", kind.dir()));
            }
        }
        let hot_since = SystemTime::now()
            .checked_sub(HOT_FOR)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        let mut out = BTreeMap::new();
        let mut units = std::collections::BTreeSet::new();
        for kind in KINDS {
            let dir = kind.dir();
            let Ok(top) = std::fs::read_dir(self.config_dir.join(dir)) else {
                continue;
            };
            for e in top.flatten() {
                let (Ok(name), Ok(ft)) = (e.file_name().into_string(), e.file_type()) else {
                    continue;
                };
                let unit = format!("{dir}/{name}");
                units.insert(unit.clone());
                let look = full || self.hot.contains(&unit) || !self.units.contains(&unit);
                if !look {
                    continue;
                }
                let mut newest = i128::MIN;
                let mut add = |path: String, st: Option<(u64, i128)>| {
                    if let Some(st) = st.filter(|_| satellite::owner_of(&path).is_some()) {
                        newest = newest.max(st.1);
                        out.insert(path, st);
                    }
                };
                if per_session(kind) && ft.is_dir() {
                    for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                        if let Ok(file) = f.file_name().into_string() {
                            add(format!("{unit}/{file}"), files::stat(&f.path()));
                        }
                    }
                } else if !per_session(kind) && ft.is_file() {
                    add(unit.clone(), files::stat(&e.path()));
                }
                // A unit new since the last scan is looked at until the next full one.
                if newest >= hot_since || (!full && !self.units.contains(&unit)) {
                    self.hot.insert(unit);
                } else if full {
                    self.hot.remove(&unit);
                }
            }
        }
        // What was not looked at is as last seen, unless its unit is gone.
        for (path, seen) in &self.known.files {
            let unit = unit_of(path);
            if units.contains(unit) && !out.contains_key(path) && !self.looked(unit, full) {
                out.insert(path.clone(), seen.stat());
            }
        }
        // (A session in use is made hot again at the start of each scan.)
        self.hot.retain(|u| units.contains(u));
        self.units = units;
        out
    }

    /// Whether `unit` was looked at in this scan.
    fn looked(&self, unit: &str, full: bool) -> bool {
        full || self.hot.contains(unit)
    }
}

/// The unit a satellite belongs to: its session's directory, or itself.
pub(super) fn unit_of(path: &str) -> &str {
    let mut parts = path.splitn(3, '/');
    let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let len = kind.len() + 1 + name.len();
    let per = Kind::of_dir(kind).is_some_and(per_session);
    if per && len <= path.len() {
        &path[..len]
    } else {
        path
    }
}
