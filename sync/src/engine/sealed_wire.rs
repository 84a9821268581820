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

use crate::store::Store;
use std::path::{Path, PathBuf};

/// How a sealed commit's message begins (`doc/ENCRYPTION.md`).
const SEALED_MESSAGE: &str = "ferry sealed commit";

/// The shallow list one fetch is shown: the sealed commits of the store's.
pub(super) struct ShownShallow {
    path: PathBuf,
    sealed: Vec<String>,
}

impl ShownShallow {
    /// Writes the sealed commits of `store`'s shallow list beside it, for a fetch to be shown.
    pub fn write(store: &Store) -> std::io::Result<ShownShallow> {
        let repo = store.repo();
        let sealed: Vec<String> = read_list(&repo.path().join("shallow"))?
            .into_iter()
            .filter(|id| {
                git2::Oid::from_str(id)
                    .and_then(|oid| repo.find_commit(oid))
                    .is_ok_and(|c| c.message_bytes().starts_with(SEALED_MESSAGE.as_bytes()))
            })
            .collect();
        let path = repo.path().join("ferry-shallow-shown");
        // No file, not an empty one: git takes a store with an empty list for a shallow one.
        remove_file(&path)?;
        if !sealed.is_empty() {
            write_list(&path, &sealed)?;
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

/// After a fetch run in the repository `apart`: its packs move into `store`, the store's
/// shallow list loses the sealed commits `shown` held (their history came, or the fetch
/// brought the tips anew) and takes the ones `apart` lists, and its refs are set as `apart`'s.
/// In that order, so that a crash between leaves no ref at a commit whose missing parents the
/// list does not name.
pub(super) fn move_in(apart: &Path, store: &Store, shown: &ShownShallow) -> std::io::Result<()> {
    let into = store.repo().path().join("objects/pack");
    let mut packs: Vec<PathBuf> = std::fs::read_dir(apart.join("objects/pack"))?
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
        std::fs::rename(p, into.join(p.file_name().expect("a file name")))?;
    }
    let own = store.repo().path().join("shallow");
    let mut list: Vec<String> = read_list(&own)?
        .into_iter()
        .filter(|id| !shown.sealed.contains(id))
        .collect();
    for id in read_list(&apart.join("shallow"))? {
        if !list.contains(&id) {
            list.push(id);
        }
    }
    if list.is_empty() {
        remove_file(&own)?;
    } else {
        let tmp = own.with_extension("ferry-tmp");
        write_list(&tmp, &list)?;
        std::fs::rename(&tmp, &own)?;
    }
    let there = git2::Repository::open_bare(apart).map_err(std::io::Error::other)?;
    for r in there.references().map_err(std::io::Error::other)?.flatten() {
        if let (Ok(name), Some(oid)) = (r.name(), r.target()) {
            store
                .repo()
                .reference(name, oid, true, "ferry fetch")
                .map_err(std::io::Error::other)?;
        }
    }
    Ok(())
}

/// The ids of a shallow list (none where there is no file).
fn read_list(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn write_list(path: &Path, ids: &[String]) -> std::io::Result<()> {
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    std::fs::write(path, text)
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
