//! Keeps the repository compact over thousands of commits: packs every reachable object with
//! deltas (successive versions of a transcript's last chunk delta well against each other) and
//! removes the loose copies. What `git gc` does, through libgit2, so no git binary is needed.

use super::{Store, StoreError};
use git2::{ObjectType, Oid};
use std::collections::HashSet;

/// How old an object nothing reaches must be for compaction to remove it.
const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Objects written to the new pack.
    pub objects: usize,
    /// Loose object files removed.
    pub loose_removed: usize,
    /// Files of older packs removed.
    pub packs_removed: usize,
}

impl Store {
    /// How many packs the store has.
    pub fn pack_count(&self) -> usize {
        std::fs::read_dir(self.repo.path().join("objects/pack")).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
        })
    }

    /// Packs everything reachable from any ref into one pack, deletes the loose objects that
    /// went into it, and those nothing reaches that are older than an hour (what a fold of
    /// history replaced, a killed commit's). Must not run concurrently with a commit (the
    /// engine serialises them).
    pub fn compact(&self) -> Result<CompactStats, StoreError> {
        self.compact_pruning(PRUNE_AFTER)
    }

    /// [`Store::compact`], removing unreachable loose objects once they are older than `grace`:
    /// younger ones may be a concurrent writer's, not yet named by a ref (git's own prune
    /// keeps them two weeks).
    pub fn compact_pruning(&self, grace: std::time::Duration) -> Result<CompactStats, StoreError> {
        let repo = &self.repo;
        let pack_dir = repo.path().join("objects/pack");
        // The packs there are before the walk: one a fetch writes meanwhile holds objects the
        // walk may not have met, and stays.
        let packs_before: HashSet<std::ffi::OsString> = std::fs::read_dir(&pack_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let mut seen: HashSet<Oid> = HashSet::new();
        let mut pb = repo.packbuilder()?;
        let mut stack: Vec<(Oid, String)> = Vec::new();
        let mut tips = Vec::new();
        for r in repo.references()? {
            if let Some(id) = r?.target().filter(|&id| repo.find_commit(id).is_ok()) {
                tips.push(id);
            }
        }
        for id in self.commits(&tips)? {
            let commit = repo.find_commit(id)?;
            if seen.insert(commit.id()) {
                pb.insert_object(commit.id(), None)?;
                stack.push((commit.tree_id(), String::new()));
            }
            // Names (paths) let the packer pair each tree and blob with its own earlier
            // versions, which is where the deltas are.
            while let Some((t, path)) = stack.pop() {
                if !seen.insert(t) {
                    continue;
                }
                pb.insert_object(t, Some(&path))?;
                for e in repo.find_tree(t)?.iter() {
                    let name = format!("{path}/{}", e.name().unwrap_or(""));
                    match e.kind() {
                        Some(ObjectType::Tree) => stack.push((e.id(), name)),
                        Some(ObjectType::Blob) if seen.insert(e.id()) => {
                            pb.insert_object(e.id(), Some(&name))?
                        }
                        _ => {}
                    }
                }
            }
        }
        let objects = pb.object_count();
        if objects == 0 {
            return Ok(CompactStats::default());
        }
        pb.write(&pack_dir, 0o600)?;
        let mut loose_removed = 0;
        let old_enough = |path: &std::path::Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= grace))
        };
        for fan in std::fs::read_dir(repo.path().join("objects"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let prefix = fan.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            for object in std::fs::read_dir(fan.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = object.file_name().to_string_lossy().into_owned();
                let Ok(id) = Oid::from_str(&format!("{prefix}{name}")) else {
                    continue;
                };
                let path = object.path();
                if (seen.contains(&id) || old_enough(&path)) && remove_read_only(&path).is_ok() {
                    loose_removed += 1;
                }
            }
        }
        // Held by a git fetching now: pruned at a later compaction.
        if let Err(e) = self.prune_shallow(&seen) {
            tracing::warn!(error = %e, "the shallow list was not pruned");
        }
        // Drop now-empty fan-out directories; failures (not empty) are expected and ignored.
        if let Ok(dirs) = std::fs::read_dir(repo.path().join("objects")) {
            for d in dirs.flatten() {
                if d.file_name().len() == 2 {
                    let _ = std::fs::remove_dir(d.path());
                }
            }
        }
        // The new pack holds everything reachable, so older packs hold only duplicates and
        // garbage; remove them now that the new pack and its index are complete. One that
        // cannot be removed (on Windows, a pack some handle still has open) stays for a later
        // compaction, as loose objects above do: its objects are in the new pack too.
        let mut packs_removed = 0;
        if let Some(name) = pb.name()? {
            let keep = format!("pack-{name}");
            for e in std::fs::read_dir(&pack_dir)
                .map_err(|e| StoreError::io(&pack_dir, e))?
                .flatten()
            {
                let name = e.file_name();
                let file = name.to_string_lossy();
                let old_pack = file.starts_with("pack-")
                    && !file.starts_with(&keep)
                    && packs_before.contains(&name);
                // A pack libgit2 or ferry was writing when its process was killed (an
                // import's, an opening's), not one it is writing now.
                let torn = (file.starts_with("pack_git2_")
                    || file.starts_with(super::packed::TMP_PREFIX))
                    && old_enough(&e.path());
                if torn
                    || old_pack
                        && (file.ends_with(".pack")
                            || file.ends_with(".idx")
                            || file.ends_with(".rev"))
                {
                    match remove_read_only(&e.path()) {
                        Ok(()) => packs_removed += 1,
                        Err(err) => {
                            tracing::debug!(pack = %e.path().display(), error = %err, "an old pack stays for a later compaction");
                        }
                    }
                }
            }
        }
        Ok(CompactStats {
            objects,
            loose_removed,
            packs_removed,
        })
    }
}

impl Store {
    /// Keeps in `shallow` (the commits a store fetched only the tips of ends its history at)
    /// only those still reachable: a branch rewritten by its machine (a fold) leaves its old
    /// tip unreachable, compaction removes it, and git's next deepening fetch would name a
    /// commit the store no longer has.
    fn prune_shallow(&self, reachable: &HashSet<Oid>) -> Result<(), StoreError> {
        self.edit_shallow(|list| list.retain(|id| reachable.contains(id)))
    }
}

/// Removes `path`, a file git may have written read-only (loose objects and packs are 0444):
/// on Windows that attribute refuses the removal, so it is cleared first.
pub(super) fn remove_read_only(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let mut perms = std::fs::metadata(path)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(path, perms)?;
            std::fs::remove_file(path)
        }
        other => other,
    }
}
