//! What the satellite mirror ([`crate::satellites`]) asks of the core: the session's place,
//! notes under it, and other machines' satellites expanded for this machine.

use super::Fs;
use crate::error::{FsError, FsResult};
use crate::foreign::{Foreign, ForeignFile};
use ferry_sync::store::Change;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How much of a transcript's start and end is searched for a plan's name.
const PLAN_SCAN: u64 = 256 * 1024;

impl Fs {
    /// The index of other machines' files, satellites included.
    pub fn foreign_index(&self) -> Arc<Foreign> {
        self.foreign()
    }

    /// Which version of the index [`Fs::foreign_index`] gives: it changes whenever the index
    /// does. Read it before the index, so that a change in between is seen as one next time.
    pub fn foreign_version(&self) -> u64 {
        self.foreign_version
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The sessions whose transcript was written here within `within` (the others are
    /// forgotten).
    pub fn active_sessions(&self, within: std::time::Duration) -> Vec<String> {
        let mut inner = self.lock();
        inner.active.retain(|_, at| at.elapsed() < within);
        inner.active.keys().cloned().collect()
    }

    /// The slug directory of this machine's upper layer that holds session `sid`'s transcript.
    pub fn session_slug(&self, sid: &str) -> Option<String> {
        let name = format!("{sid}.jsonl");
        self.slug_dirs().into_iter().find(|slug| {
            self.upper
                .stat(&Path::new(slug).join(&name))
                .ok()
                .flatten()
                .is_some()
        })
    }

    /// The slug directory holding the transcript that names plan `name`, newest first.
    pub fn plan_slug(&self, name: &str) -> Option<String> {
        let mut found: Option<(i128, String)> = None;
        for slug in self.slug_dirs() {
            let Ok(list) = self.upper.list(Path::new(&slug)) else {
                continue;
            };
            for (n, meta) in list {
                let is_transcript = Path::new(&n).extension().is_some_and(|e| e == "jsonl");
                if !is_transcript || found.as_ref().is_some_and(|(t, _)| *t >= meta.mtime_ns) {
                    continue;
                }
                let path = Path::new(&slug).join(&n);
                if self.transcript_names_plan(&path, meta.size, name) {
                    found = Some((meta.mtime_ns, slug.clone()));
                }
            }
        }
        found.map(|(_, s)| s)
    }

    fn transcript_names_plan(&self, path: &Path, size: u64, name: &str) -> bool {
        use std::io::{Seek, SeekFrom};
        let Ok(mut f) = self.upper.open_file(path) else {
            return false;
        };
        let mut head = Vec::new();
        if (&mut f).take(PLAN_SCAN).read_to_end(&mut head).is_err() {
            return false;
        }
        if ferry_sync::satellite::names_plan(&head, name) {
            return true;
        }
        let mut tail = Vec::new();
        size > PLAN_SCAN
            && f.seek(SeekFrom::Start(size.saturating_sub(PLAN_SCAN)))
                .is_ok()
            && f.take(PLAN_SCAN).read_to_end(&mut tail).is_ok()
            && ferry_sync::satellite::names_plan(&tail, name)
    }

    fn slug_dirs(&self) -> Vec<String> {
        self.upper
            .list(Path::new(""))
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, m)| m.kind == crate::upper::Kind::Dir)
            .filter_map(|(n, _)| n.into_string().ok())
            .collect()
    }

    /// Records a change of a satellite this machine holds, under its session's place `slug`
    /// (`rel` is its store path). Waits, as any change does, while the place's project is not
    /// known.
    pub fn note_satellite(&self, slug: &str, rel: &str, change: Change, bytes: u64) {
        self.note_satellite_at(slug, rel, change, bytes, None);
    }

    /// [`Fs::note_satellite`], for a change that names its working directory `cwd` (a prompt
    /// in the history): when no transcript of `slug` names one yet (a client killed before its
    /// first line with one), `cwd` gives the place's project, and whatever waited for it goes.
    pub fn note_satellite_at(
        &self,
        slug: &str,
        rel: &str,
        change: Change,
        bytes: u64,
        cwd: Option<&str>,
    ) {
        let foreign = self.foreign();
        let mut inner = self.lock();
        if let Some(cwd) = cwd
            && self.project_of(&mut inner, &foreign, slug).is_none()
            && let Some(p) = ferry_sync::upper::project_for_cwd(
                slug,
                Some(cwd),
                Path::new(&self.config.machine.home),
                &self.links(),
                false,
            )
        {
            inner.projects.insert(slug.to_string(), p);
        }
        let path: PathBuf = Path::new(slug).join(rel);
        self.note(&mut inner, &foreign, &path, change, bytes);
    }

    /// Another machine's satellite in this machine's form (its paths expanded for the place it
    /// is shown in).
    pub fn satellite_bytes(&self, foreign: &Foreign, f: &ForeignFile) -> FsResult<Vec<u8>> {
        let placement = foreign.placement(f).ok_or_else(|| {
            FsError::new(
                libc::ENOENT,
                format!("{}: its place is gone", f.rel.as_str()),
            )
        })?;
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f.materialise(&store, placement)?)
    }
}
