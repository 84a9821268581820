//! What an encrypted store's fetches tell the remote. git names commits to the remote as it
//! fetches: those under the refs it negotiates from (`have`, which ferry limits to the sealed
//! refs with `--negotiation-tip`) and every commit of the store's shallow list (`shallow`). An
//! encrypted store's shallow list holds plain commits too (those opened from sealed tips fetched
//! without their parents), and each such id is a hash of a machine's whole plain state. So:
//! - an ordinary fetch is shown a shallow list of its own (`git --shallow-file`) that holds only
//!   the sealed commits ([`ShownShallow`]);
//! - a fetch that changes how much history the store holds (the tips only, or all of it: git
//!   names every shallow commit to deepen, and writes the store's own list) runs in a repository
//!   of its own that holds nothing, and what arrives is moved into the store ([`move_in`]).

use crate::store::{Store, StoreError, shallow};
use git2::Oid;
use std::path::{Path, PathBuf};

/// How a sealed commit's message begins (`doc/ENCRYPTION.md`).
const SEALED_MESSAGE: &str = "ferry sealed commit";

/// The shallow list one fetch is shown: the sealed commits of the store's.
pub(super) struct ShownShallow {
    path: PathBuf,
    sealed: Vec<Oid>,
}

impl ShownShallow {
    /// Writes the sealed commits of `store`'s shallow list beside it, for a fetch to be shown.
    pub fn write(store: &Store) -> Result<ShownShallow, StoreError> {
        let repo = store.repo();
        let sealed: Vec<Oid> = store
            .shallow_list()?
            .into_iter()
            .filter(|id| {
                repo.find_commit(*id)
                    .is_ok_and(|c| c.message_bytes().starts_with(SEALED_MESSAGE.as_bytes()))
            })
            .collect();
        let path = own_name(repo.path(), "ferry-shallow-shown");
        // No file, not an empty one: git takes a store with an empty list for a shallow one.
        let io = |e| StoreError::Io {
            path: path.clone(),
            source: e,
        };
        if !sealed.is_empty() {
            let text: String = sealed.iter().map(|id| format!("{id}\n")).collect();
            std::fs::write(&path, text).map_err(io)?;
        }
        Ok(ShownShallow { path, sealed })
    }

    /// Where the list is, for `git --shallow-file`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store holds sealed commits whose parents it lacks (a deepening fetch would
    /// bring them).
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty()
    }

    /// Done with: the file goes.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// After a fetch run in the repository `apart`: its packs move into `store`; the store's
/// shallow list takes the commits `apart` lists and loses those of `shown` whose parents are
/// all here now; and the store's refs are set as `apart`'s. In that order, so that no ref is
/// ever at a commit whose missing parents the list does not name.
pub(super) fn move_in(apart: &Path, store: &Store, shown: &ShownShallow) -> Result<(), StoreError> {
    let into = store.repo().path().join("objects/pack");
    let from = apart.join("objects/pack");
    let io = |p: &Path, e| StoreError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    let mut packs: Vec<PathBuf> = std::fs::read_dir(&from)
        .map_err(|e| io(&from, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("pack-"))
        })
        .collect();
    // The index last: git and libgit2 take a pack for there once its index is.
    packs.sort_by_key(|p| p.extension().is_some_and(|e| e == "idx"));
    for p in &packs {
        let to = into.join(p.file_name().expect("a file name"));
        std::fs::rename(p, &to).map_err(|e| io(&to, e))?;
    }
    let came = shallow::read_list(&apart.join("shallow")).map_err(|e| io(apart, e))?;
    let odb = store.repo().odb()?;
    let complete: Vec<Oid> = shown
        .sealed
        .iter()
        .copied()
        .filter(|id| parents_of(&odb, *id).is_some_and(|ps| ps.iter().all(|p| odb.exists(*p))))
        .collect();
    store.edit_shallow(|list| {
        list.retain(|id| !complete.contains(id));
        list.extend(came);
    })?;
    let there = git2::Repository::open_bare(apart)?;
    for r in there.references()?.flatten() {
        if let (Ok(name), Some(oid)) = (r.name(), r.target()) {
            store.repo().reference(name, oid, true, "ferry fetch")?;
        }
    }
    Ok(())
}

/// The parents commit `id` names, read from its own bytes (libgit2 shows a commit of the
/// shallow list without them); `None` if it is not here.
fn parents_of(odb: &git2::Odb<'_>, id: Oid) -> Option<Vec<Oid>> {
    let object = odb.read(id).ok()?;
    let text = std::str::from_utf8(object.data()).ok()?;
    Some(
        text.lines()
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.strip_prefix("parent "))
            .filter_map(|hex| Oid::from_str(hex).ok())
            .collect(),
    )
}

/// A name in the store's git dir `dir` that no other fetch running now uses (the daemon's and a
/// command's may run at once): `stem`, this process and a count.
pub(super) fn own_name(dir: &Path, stem: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{stem}-{}-{n}", std::process::id()))
}

/// Removes what fetches stopped long ago (killed) left in the store's git dir `dir` under
/// names that begin with one of `stems`, in one pass over it.
pub(super) fn clear_left(dir: &Path, stems: &[&str], older_than: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if stems.iter().any(|s| name.starts_with(s)) && aged(&e, older_than) {
            let path = e.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

/// Whether the entry `e` was last changed more than `older_than` ago.
pub(super) fn aged(e: &std::fs::DirEntry, older_than: std::time::Duration) -> bool {
    e.metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > older_than))
}
