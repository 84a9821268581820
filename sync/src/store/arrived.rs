//! What a fetch brought, checked for completeness at the cost of what arrived. Git's own check
//! after a fetch (`rev-list --objects <new tips> --not --all`) walks the whole tree of every
//! branch the new tips replace: tens of thousands of objects at 10,000 sessions, on every
//! fetch of one changed line. Here each object of the new pack has the objects it names looked
//! up: a commit's tree and parents, a tree's entries, a tag's target. The store held a closed
//! set before the fetch (every earlier fetch was checked, by git or by this), so when every
//! new object's names are here, the store is closed again.

use super::{Store, StoreError};
use git2::{ObjectType, Oid};
use std::collections::HashSet;

/// A pack index's magic and version (git's `.idx` version 2).
const IDX_V2: [u8; 8] = [0xff, b't', b'O', b'c', 0, 0, 0, 2];

impl Store {
    /// Checks that the objects of the packs `pack-<hash>` that a fetch wrote name only objects
    /// the store has, and that `tips` are here; the first missing one otherwise, as
    /// [`StoreError::Incomplete`] (a pack index that cannot be read is rejected as `what`'s,
    /// the remote's). Commits on the shallow list keep their
    /// missing parents, as they did before. A tip that came in no pack is one `git fetch-pack`
    /// found reachable from the store's refs (it asks for every other), which name only what
    /// the store holds whole.
    pub fn check_arrived(
        &self,
        what: &str,
        packs: &[String],
        tips: &[Oid],
    ) -> Result<(), StoreError> {
        let odb = self.repo.odb()?;
        let missing = |missing: Oid, by: Oid| StoreError::Incomplete { missing, by };
        let shallow: HashSet<Oid> = self.shallow_list()?.into_iter().collect();
        for &tip in tips {
            if !odb.exists(tip) {
                return Err(missing(tip, tip));
            }
        }
        for hash in packs {
            let idx = self
                .repo
                .path()
                .join(format!("objects/pack/pack-{hash}.idx"));
            let bytes = std::fs::read(&idx).map_err(|e| StoreError::io(&idx, e))?;
            let names = pack_names(&bytes).map_err(|why| StoreError::Rejected {
                branch: what.to_string(),
                path: idx.display().to_string(),
                why,
            })?;
            for id in names {
                let object = self.repo.find_object(id, None)?;
                match object.kind() {
                    Some(ObjectType::Commit) => {
                        let commit = object.peel_to_commit()?;
                        let tree = commit.tree_id();
                        if !odb.exists(tree) {
                            return Err(missing(tree, id));
                        }
                        if shallow.contains(&id) {
                            continue;
                        }
                        if let Some(p) = commit.parent_ids().find(|p| !odb.exists(*p)) {
                            return Err(missing(p, id));
                        }
                    }
                    Some(ObjectType::Tree) => {
                        let tree = object.peel_to_tree()?;
                        // A gitlink (a submodule's commit) names what another repository holds.
                        let entry = tree
                            .iter()
                            .filter(|e| e.kind() != Some(ObjectType::Commit))
                            .find(|e| !odb.exists(e.id()));
                        if let Some(e) = entry {
                            return Err(missing(e.id(), id));
                        }
                    }
                    Some(ObjectType::Tag) => {
                        let target = object.peel_to_tag()?.target_id();
                        if !odb.exists(target) {
                            return Err(missing(target, id));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Removes the pack `pack-<hash>` (its index and every file beside it): a fetch's pack
    /// refused as incomplete, whose objects would otherwise pass for had at the next fetch.
    pub fn remove_pack(&self, hash: &str) {
        let dir = self.repo.path().join("objects/pack");
        let stem = format!("pack-{hash}.");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
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
