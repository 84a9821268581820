//! The store's shallow list (`shallow` in its git dir): the commits whose parents it lacks,
//! where git and libgit2 end its history. Several writers change it: git's fetch of the tips,
//! the opening of sealed tips, compaction and a fetch run apart. Each change here is made under
//! git's own lock (`shallow.lock`, created exclusively, as git creates it), so that no writer's
//! change is lost to another's.

use super::{Store, StoreError};
use git2::Oid;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a change waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_millis(if cfg!(test) { 300 } else { 10_000 });
/// How old a lock is before it is taken for a killed writer's. git holds it for the whole of a
/// fetch of the tips or of the whole history (and never waits for it: such a fetch fails at
/// once if it is taken, and is tried again), so only a lock far older than any fetch is dead.
const LOCK_STALE: Duration = Duration::from_secs(6 * 3600);

impl Store {
    /// The commits of the shallow list (none when there is none).
    pub fn shallow_list(&self) -> Result<Vec<Oid>, StoreError> {
        let path = self.repo.path().join("shallow");
        read_list(&path).map_err(|e| StoreError::io(&path, e))
    }

    /// Changes the shallow list with `edit` (which gets it as it is now), under `shallow.lock`.
    /// An empty list removes the file: git takes an empty one for a shallow store.
    pub fn edit_shallow(&self, edit: impl FnOnce(&mut Vec<Oid>)) -> Result<(), StoreError> {
        let path = self.repo.path().join("shallow");
        let lock = self.repo.path().join("shallow.lock");
        let io = |p: &Path, e| StoreError::io(p, e);
        let mut file = take_lock(&lock).map_err(|e| io(&lock, e))?;
        let done = (|| {
            let before = read_list(&path).map_err(|e| io(&path, e))?;
            let mut list = before.clone();
            edit(&mut list);
            let mut seen = std::collections::HashSet::new();
            list.retain(|id| seen.insert(*id));
            if list == before {
                return Ok(false);
            }
            if list.is_empty() {
                return match super::compact::remove_read_only(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
                    _ => Ok(false),
                };
            }
            let text: String = list.iter().map(|id| format!("{id}\n")).collect();
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| io(&lock, e))?;
            Ok(true)
        })();
        drop(file);
        match done {
            Ok(true) => std::fs::rename(&lock, &path).map_err(|e| io(&path, e)),
            Ok(false) => std::fs::remove_file(&lock).map_err(|e| io(&lock, e)),
            Err(e) => {
                let _ = std::fs::remove_file(&lock);
                Err(e)
            }
        }
    }
}

/// Creates `lock` exclusively, waiting for another writer's, and taking over one left by a
/// writer killed long ago.
fn take_lock(lock: &Path) -> std::io::Result<std::fs::File> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(lock)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(lock)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LOCK_STALE));
                if stale {
                    let _ = std::fs::remove_file(lock);
                    continue;
                }
                if Instant::now() >= deadline {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "another process holds {} (a git fetch?); try again once it is done",
                            lock.display()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The ids of the shallow list at `path` (none where there is no file; lines that are no id
/// are left out).
pub(crate) fn read_list(path: &Path) -> std::io::Result<Vec<Oid>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| Oid::from_str(l.trim()).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_made_under_the_lock_and_an_empty_list_removes_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::init(&tmp.path().join("s.git")).unwrap();
        let (a, b) = (
            Oid::from_bytes(&[1; 20]).unwrap(),
            Oid::from_bytes(&[2; 20]).unwrap(),
        );
        store.edit_shallow(|l| l.extend([a, b, a])).unwrap();
        assert_eq!(store.shallow_list().unwrap(), vec![a, b]);
        // Another writer holds the lock: the change waits, then says who to wait for.
        let lock = store.repo().path().join("shallow.lock");
        std::fs::write(&lock, "").unwrap();
        let e = store.edit_shallow(|l| l.clear()).unwrap_err().to_string();
        assert!(e.contains("another process holds"), "{e}");
        assert_eq!(store.shallow_list().unwrap(), vec![a, b]);
        std::fs::remove_file(&lock).unwrap();
        store.edit_shallow(|l| l.retain(|id| *id != a)).unwrap();
        assert_eq!(store.shallow_list().unwrap(), vec![b]);
        store.edit_shallow(|l| l.clear()).unwrap();
        assert!(!store.repo().path().join("shallow").exists());
        assert!(!lock.exists());
    }
}
