//! Reading the view from a command: through the mount when it is live, otherwise through the
//! filesystem core in this process over the unmounted directory (the same view, without FUSE).

use crate::state::{self, State};
use anyhow::{Context, Result};
use ferry_fs::core::{Fs, FsConfig, Sink};
use ferry_fs::upper::{Kind, Upper};
use ferry_platform::mount::{MountState, mount_state};
use ferry_sync::store::{Change, MachineRecord, ProjectRecord, RelPath};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Changes made by a command's own core go nowhere: commands only read through it.
struct ReadOnly;

impl Sink for ReadOnly {
    fn note(&self, _: &ProjectRecord, _: RelPath, _: Change, _: u64) {}
}

/// The view, either way.
pub enum View {
    /// The live mount at this path.
    Mounted(PathBuf),
    /// A core over the unmounted directory, with a disk cache and marks of its own (a scratch
    /// directory, removed afterwards): a command never writes the daemon's.
    Core(Box<Fs>, PathBuf),
}

impl View {
    /// Opens the view of this machine.
    pub fn open(st: &State, machine: &MachineRecord) -> Result<View> {
        let mountpoint = state::mount_point()?;
        match mount_state(&mountpoint) {
            MountState::Live => Ok(View::Mounted(mountpoint)),
            MountState::Stale => anyhow::bail!(
                "the mount at {} is dead (the daemon crashed); run `ferry mount` to recover it",
                mountpoint.display()
            ),
            _ => {
                let scratch =
                    std::env::temp_dir().join(format!("ferry-view-{}", std::process::id()));
                std::fs::create_dir_all(&scratch)?;
                // The daemon's marks say which other machines' versions each file took in; read
                // a copy, so the view is the same without ever writing the daemon's.
                let marks = scratch.join("marks.json");
                let _ = std::fs::copy(st.dir.join("marks.json"), &marks);
                let _ = std::fs::copy(st.places(), scratch.join("places.json"));
                let fs = Fs::new(
                    Upper::open(&mountpoint)
                        .with_context(|| format!("opening {}", mountpoint.display()))?,
                    FsConfig {
                        machine: machine.clone(),
                        store: st.store(),
                        cache_dir: scratch.join("cache"),
                        cache_budget: crate::daemon::CACHE_BUDGET,
                        links: crate::projects::load_links(st)?,
                        marks,
                        places: scratch.join("places.json"),
                    },
                    Arc::new(ReadOnly),
                )
                .context("reading the store")?;
                Ok(View::Core(Box::new(fs), scratch))
            }
        }
    }

    /// The entries of `dir` (relative to `projects/`): name and whether it is a directory.
    pub fn list(&self, dir: &Path) -> Result<Vec<(String, bool)>> {
        match self {
            View::Mounted(root) => Ok(std::fs::read_dir(root.join(dir))
                .with_context(|| format!("listing {}", root.join(dir).display()))?
                .flatten()
                .filter_map(|e| {
                    let dir = e.file_type().ok()?.is_dir();
                    Some((e.file_name().to_str()?.to_string(), dir))
                })
                .collect()),
            View::Core(fs, _) => Ok(fs
                .readdir(dir)?
                .into_iter()
                .filter_map(|(n, a)| Some((n.to_str()?.to_string(), a.kind == Kind::Dir)))
                .collect()),
        }
    }

    /// The bytes of `path`, and its mtime (ms).
    pub fn read(&self, path: &Path) -> Result<(Vec<u8>, i64)> {
        match self {
            View::Mounted(root) => {
                let p = root.join(path);
                let md = std::fs::metadata(&p)?;
                let mtime = md
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                Ok((std::fs::read(&p)?, mtime))
            }
            View::Core(fs, _) => {
                let attr = fs.getattr(path)?;
                let mut out = Vec::with_capacity(attr.size as usize);
                while (out.len() as u64) < attr.size {
                    let chunk = fs.read(path, out.len() as u64, 1 << 20)?;
                    if chunk.is_empty() {
                        break;
                    }
                    out.extend_from_slice(&chunk);
                }
                Ok((out, (attr.mtime_ns / 1_000_000) as i64))
            }
        }
    }

    /// Where a view path is for the user: under the mount, or the directory it will be.
    pub fn local_path(&self, path: &Path) -> PathBuf {
        match self {
            View::Mounted(root) => root.join(path),
            View::Core(fs, _) => fs.upper().root().join(path),
        }
    }
}

impl View {
    /// Up to `len` bytes of `path` from `offset`.
    pub fn read_at(&self, path: &Path, offset: u64, len: u32) -> Result<Vec<u8>> {
        match self {
            View::Mounted(root) => {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(root.join(path))?;
                f.seek(SeekFrom::Start(offset))?;
                let mut buf = Vec::with_capacity(len as usize);
                f.take(u64::from(len)).read_to_end(&mut buf)?;
                Ok(buf)
            }
            View::Core(fs, _) => Ok(fs.read(path, offset, len)?),
        }
    }

    /// The size and mtime (ms) of `path`.
    pub fn stat(&self, path: &Path) -> Result<(u64, i64)> {
        match self {
            View::Mounted(root) => {
                let md = std::fs::metadata(root.join(path))?;
                let mtime = md
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                Ok((md.len(), mtime))
            }
            View::Core(fs, _) => {
                let a = fs.getattr(path)?;
                Ok((a.size, (a.mtime_ns / 1_000_000) as i64))
            }
        }
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let View::Core(_, scratch) = self {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}
