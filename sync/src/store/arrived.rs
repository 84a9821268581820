//! What a fetch brought, checked for completeness at the cost of what arrived, then taken in.
//! Git's own check after a fetch (`rev-list --objects <new tips> --not --all`) walks the whole
//! tree of every branch the new tips replace: tens of thousands of objects at 10,000 sessions,
//! on every fetch of one changed line. Here the fetch writes its pack into a directory of its
//! own beside the store (a quarantine, as `git receive-pack` keeps one), each object of it has
//! the objects it names looked up (a commit's tree and parents, a tree's entries, a tag's
//! target), and only a complete pack is moved into the store. The store held a closed set
//! before (every earlier fetch was checked, by git or by this), so it is closed again; and
//! nothing of a refused pack ever stood in the store, where a local commit could have taken an
//! object of it for one the store has.

use super::{Store, StoreError};
use git2::{ObjectType, Oid};
use std::collections::HashSet;
use std::path::Path;

/// A pack index's magic and version (git's `.idx` version 2).
const IDX_V2: [u8; 8] = [0xff, b't', b'O', b'c', 0, 0, 0, 2];

/// The order a pack's files go into the store in: the `.keep` first, so that no repack takes
/// the pack before its refs are set, and the index last, which is what makes git see a pack.
const TAKEN_IN: [&str; 5] = ["keep", "pack", "rev", "bitmap", "idx"];

impl Store {
    /// Checks that the objects of the packs a fetch wrote in the object directory `objects`
    /// name only objects that it or the store holds, and that `tips` are there; the first
    /// missing one otherwise, as [`StoreError::Incomplete`]. Commits on the shallow list keep
    /// their missing parents, as they did before. A tip that came in no pack is one `git
    /// fetch-pack` found reachable from the store's refs (it asks for every other), which name
    /// only what the store holds whole.
    pub fn check_arrived(&self, objects: &Path, tips: &[Oid]) -> Result<(), StoreError> {
        // The quarantine's objects are read through a repository of their own (index-pack made
        // the pack whole: its deltas' bases are in it).
        let arrived = git2::Odb::new()?;
        arrived.add_disk_alternate(&objects.to_string_lossy())?;
        let repo = git2::Repository::from_odb(arrived)?;
        let odb = repo.odb()?;
        let mut names = Vec::new();
        for idx in pack_files(objects, "idx") {
            let bytes = std::fs::read(&idx).map_err(|e| StoreError::io(&idx, e))?;
            names.extend(pack_names(&bytes).map_err(|why| StoreError::Rejected {
                branch: "the fetched pack".to_string(),
                path: idx.display().to_string(),
                why,
            })?);
        }
        // What came is known by name; the rest is looked up in the store, where it is (a miss
        // makes libgit2 scan a pack directory again, so none is asked of the quarantine).
        let arrived: HashSet<Oid> = names.iter().copied().collect();
        let held = self.repo.odb()?;
        let here = |id: Oid| arrived.contains(&id) || held.exists(id);
        let missing = |missing: Oid, by: String| StoreError::Incomplete { missing, by };
        let shallow: HashSet<Oid> = self.shallow_list()?.into_iter().collect();
        if let Some(&tip) = tips.iter().find(|t| !here(**t)) {
            return Err(missing(tip, "the remote's branch".into()));
        }
        for id in names {
            match odb.read_header(id)?.1 {
                ObjectType::Commit => {
                    let commit = repo.find_commit(id)?;
                    let tree = commit.tree_id();
                    if !here(tree) {
                        return Err(missing(tree, format!("commit {id}")));
                    }
                    if shallow.contains(&id) {
                        continue;
                    }
                    if let Some(p) = commit.parent_ids().find(|p| !here(*p)) {
                        return Err(missing(p, format!("commit {id}")));
                    }
                }
                ObjectType::Tree => {
                    let tree = repo.find_tree(id)?;
                    // A gitlink (a submodule's commit) names what another repository holds.
                    let entry = tree
                        .iter()
                        .filter(|e| e.kind() != Some(ObjectType::Commit))
                        .find(|e| !here(e.id()));
                    if let Some(e) = entry {
                        return Err(missing(e.id(), format!("tree {id}")));
                    }
                }
                ObjectType::Tag => {
                    let target = repo.find_tag(id)?.target_id();
                    if !here(target) {
                        return Err(missing(target, format!("tag {id}")));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves the packs in the object directory `objects` (checked by [`Store::check_arrived`])
    /// into the store; returns the `.keep` files moved, to remove once the refs name the packs.
    pub fn take_packs(&self, objects: &Path) -> Result<Vec<std::path::PathBuf>, StoreError> {
        let into = self.repo.path().join("objects/pack");
        let mut kept = Vec::new();
        for ext in TAKEN_IN {
            for from in pack_files(objects, ext) {
                let to = into.join(from.file_name().unwrap_or_default());
                // The same pack the store has already (the same name is the same content).
                if to.exists() {
                    continue;
                }
                std::fs::rename(&from, &to).map_err(|e| StoreError::io(&to, e))?;
                if ext == "keep" {
                    kept.push(to);
                }
            }
        }
        Ok(kept)
    }
}

/// The files `pack-*.<ext>` of the object directory `objects`.
fn pack_files(objects: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let dir = objects.join("pack");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == ext)
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("pack-"))
        })
        .collect();
    out.sort();
    out
}

/// The object names a version 2 pack index lists: after the magic and version, a 256-entry
/// fan-out table whose last entry is the count, then the sorted 20-byte names.
fn pack_names(idx: &[u8]) -> Result<Vec<Oid>, String> {
    if idx.get(..8) != Some(&IDX_V2[..]) {
        return Err("not a version 2 pack index".to_string());
    }
    let count_at = 8 + 255 * 4;
    let count = idx
        .get(count_at..count_at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("pack index cut short")?;
    let names = idx
        .get(count_at + 4..)
        .and_then(|rest| rest.get(..count.checked_mul(20)?))
        .ok_or("pack index cut short")?;
    names
        .chunks_exact(20)
        .map(|n| Oid::from_bytes(n).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_index_lists_its_names_and_a_short_one_is_refused() {
        let names = [[1u8; 20], [7u8; 20]];
        let mut idx = IDX_V2.to_vec();
        for i in 0..256u32 {
            let below = if i >= 7 { 2u32 } else { u32::from(i >= 1) };
            idx.extend_from_slice(&below.to_be_bytes());
        }
        for n in &names {
            idx.extend_from_slice(n);
        }
        let read = pack_names(&idx).unwrap();
        assert_eq!(read, names.map(|n| Oid::from_bytes(&n).unwrap()).to_vec());
        assert!(pack_names(&idx[..idx.len() - 1]).is_err());
        assert!(pack_names(b"PACK").is_err());
    }
}
