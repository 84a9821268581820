//! The history horizon (issue 22, item 1): this machine's branch keeps every commit of the last
//! N days, and one commit holding the state at the horizon's start stands in for everything
//! older. A fold rewrites only this machine's own branch, which the next push force-pushes; the
//! folded commits become unreachable, so compaction here and git's gc on the remote reclaim
//! them. Every tree stays as it was: the live files and every version inside the horizon are
//! untouched.
//!
//! A fold is one ref move. Its commits are written first (as one pack), then the old head is
//! kept under [`fold_pending_ref`] and the branch moves: a kill before the move leaves the branch
//! as it was, a kill after leaves the fold done and its push to the next push. The pending ref
//! tells the remote's old commits apart from a twin's (`foreign_runs`) until that push lands.
//!
//! A tombstone older than the horizon can leave the tree too ([`Store::drop_tombstones`]), but
//! only when no machine could bring its file back: no branch holds a version of that file, and
//! every machine has seen this branch after the deletion.

use super::layout::{self, RelPath};
use super::records::{FileState, MachineRecord};
use super::{Store, StoreError, own_ref};
use git2::Oid;
use std::collections::HashSet;

/// The trailer of a fold's first commit: the horizon it folded to, in ms. History before that
/// commit's own time was folded away.
pub const FOLDED_TRAILER: &str = "ferry-folded-before: ";

/// How long after a deletion every other machine must have seen this branch for its tombstone
/// to go: the deletion's commit follows the unlink by at most the engine's commit delay.
pub const SEEN_MARGIN_MS: i64 = 10 * 60 * 1000;

/// Where a fold keeps the branch's head from before it, until the folded branch is pushed.
pub fn fold_pending_ref(machine_id: &str) -> String {
    format!("refs/ferry/folded/{machine_id}")
}

/// Where a fold keeps its own new head until it is pushed: what tells a push of the folded
/// branch from one that began before the fold.
fn fold_tip_ref(machine_id: &str) -> String {
    format!("refs/ferry/fold-tip/{machine_id}")
}

/// The store's git config key naming a remote that refused a fold.
const FOLD_REFUSED_KEY: &str = "ferry.foldRefusedBy";

/// What a fold did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldStats {
    /// Commits folded into the first one kept.
    pub folded: usize,
    /// Commits kept (the first included).
    pub kept: usize,
    /// The first kept commit's time, in ms: no version older than this is left.
    pub since_ms: i64,
}

impl Store {
    /// Folds this machine's history older than `horizon_ms` into one commit, once more than
    /// `slack_ms` of such history has gathered (so a branch is rewritten and force-pushed about
    /// once per `slack_ms`, not at every commit). `None` when there was nothing to fold, or
    /// when the last fold is not pushed yet.
    pub fn fold_history(
        &self,
        machine_id: &str,
        horizon_ms: i64,
        slack_ms: i64,
    ) -> Result<Option<FoldStats>, StoreError> {
        let refname = own_ref(machine_id);
        let Some(tip) = self.tip(&refname)? else {
            return Ok(None);
        };
        // One fold at a time: until the last one is pushed, its pending ref names what the
        // remote holds, and a second fold would lose that. (A pending ref at the branch's own
        // head is a fold killed before its branch moved: nothing was folded.)
        if self.fold_pending(machine_id)?.is_some_and(|old| old != tip) {
            return Ok(None);
        }
        // The whole first-parent chain, newest first, each commit with the newest time among
        // it and its ancestors: a commit dated too early (a clock reset before NTP) must not
        // take the later commits below it out of the horizon.
        let mut chain = Vec::new();
        let mut at = Some(self.repo.find_commit(tip)?);
        while let Some(c) = at {
            chain.push((c.id(), c.time().seconds().saturating_mul(1000)));
            at = first_parent(&c);
        }
        let mut newest_below = vec![i64::MIN; chain.len()];
        let mut running = i64::MIN;
        for (i, &(_, t)) in chain.iter().enumerate().rev() {
            running = running.max(t);
            newest_below[i] = running;
        }
        // The base: the newest commit that, with all its ancestors, is older than the horizon.
        let Some(b) = (0..chain.len()).find(|&i| newest_below[i] < horizon_ms) else {
            return Ok(None);
        };
        // Due only once history reaches `slack_ms` past the horizon.
        if !chain[b + 1..]
            .iter()
            .any(|&(_, t)| t < horizon_ms.saturating_sub(slack_ms))
        {
            return Ok(None);
        }
        let base = self.repo.find_commit(chain[b].0)?;
        let message = format!(
            "{}\n\n{FOLDED_TRAILER}{horizon_ms}\n",
            base.message().unwrap_or_default().trim_end()
        );
        let mut rewritten = vec![(chain[b].0, Some(message))];
        rewritten.extend(chain[..b].iter().rev().map(|&(id, _)| (id, None)));
        let new_tip = self.rewrite(None, &rewritten)?;
        self.repo
            .reference(&fold_pending_ref(machine_id), tip, true, "ferry fold")?;
        self.repo
            .reference(&fold_tip_ref(machine_id), new_tip, true, "ferry fold")?;
        self.move_branch(&refname, Some(tip), new_tip)?;
        Ok(Some(FoldStats {
            folded: chain.len() - b - 1,
            kept: b + 1,
            since_ms: chain[b].1,
        }))
    }

    /// Writes `commits` (oldest first, each with its own tree, author and committer, and its
    /// message or the one given) again as a chain on top of `onto` (`None`: the first is a root
    /// commit), as one pack; returns the new head.
    fn rewrite(
        &self,
        onto: Option<Oid>,
        commits: &[(Oid, Option<String>)],
    ) -> Result<Oid, StoreError> {
        let staged = self.staged()?;
        let odb = staged.repo.odb()?;
        let memory = odb.add_new_mempack_backend(1000)?;
        let disk = self.repo.odb()?;
        let mut parent = onto;
        for (id, message) in commits {
            // Trees given to a commit must be the committing repository's own objects.
            let c = staged.repo.find_commit(*id)?;
            let parents: Vec<git2::Commit> = parent
                .map(|p| staged.repo.find_commit(p))
                .transpose()?
                .into_iter()
                .collect();
            let parents: Vec<&git2::Commit> = parents.iter().collect();
            let message = match message {
                Some(m) => m.as_str(),
                None => c.message_raw().unwrap_or_default(),
            };
            parent = Some(staged.repo.commit(
                None,
                &c.author(),
                &c.committer(),
                message,
                &c.tree()?,
                &parents,
            )?);
        }
        let tip = parent.ok_or_else(|| StoreError::BadPath("nothing to rewrite".into()))?;
        super::packed::write_pack(&staged.repo, &disk, tip)?;
        memory.reset()?;
        Ok(tip)
    }

    /// Undoes a fold the remote would not take (it refuses rewritten branches: a protected
    /// branch, `receive.denyNonFastForwards`): the commits made since the fold go again on top
    /// of the head from before it, so the next push is a fast-forward. `false` when no fold is
    /// pending.
    pub fn unfold(&self, machine_id: &str) -> Result<bool, StoreError> {
        let refname = own_ref(machine_id);
        let (Some(old), Some(folded), Some(head)) = (
            self.fold_pending(machine_id)?,
            self.tip(&fold_tip_ref(machine_id))?,
            self.tip(&refname)?,
        ) else {
            return Ok(false);
        };
        let mut since = Vec::new();
        let mut at = Some(self.repo.find_commit(head)?);
        while let Some(c) = at.filter(|c| c.id() != folded) {
            since.push((c.id(), None));
            at = first_parent(&c);
            if at.is_none() {
                return Err(StoreError::BadPath(format!(
                    "{refname} no longer holds the fold {folded}"
                )));
            }
        }
        since.reverse();
        let new_head = if since.is_empty() {
            old
        } else {
            self.rewrite(Some(old), &since)?
        };
        self.move_branch(&refname, Some(head), new_head)?;
        self.forget_fold(machine_id)?;
        Ok(true)
    }

    /// The head this machine's branch had before a fold that is not pushed yet.
    pub fn fold_pending(&self, machine_id: &str) -> Result<Option<Oid>, StoreError> {
        self.tip(&fold_pending_ref(machine_id))
    }

    /// Forgets a fold's old head once `pushed`, a head of the folded branch, reached the
    /// remote (a push that began before the fold carried the old head: that one keeps it).
    pub(super) fn fold_pushed(&self, machine_id: &str, pushed: Oid) -> Result<(), StoreError> {
        let Some(folded) = self.tip(&fold_tip_ref(machine_id))? else {
            return self.forget_fold(machine_id);
        };
        // Walks down from `pushed` to the fold's head at most: the folded chain is short.
        if pushed == folded
            || self
                .repo
                .graph_descendant_of(pushed, folded)
                .unwrap_or(false)
        {
            self.forget_fold(machine_id)?;
        }
        Ok(())
    }

    /// Forgets a fold's old head: once it is pushed, or at once where there is no remote.
    /// Compaction then reclaims what the fold replaced.
    pub fn forget_fold(&self, machine_id: &str) -> Result<(), StoreError> {
        for name in [fold_pending_ref(machine_id), fold_tip_ref(machine_id)] {
            match self.repo.find_reference(&name) {
                Ok(mut r) => r.delete()?,
                Err(e) if e.code() == git2::ErrorCode::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Records that the remote at `url` refuses rewritten branches: no fold is tried while it
    /// is the remote.
    pub fn set_fold_refused(&self, url: &str) -> Result<(), StoreError> {
        Ok(self.repo.config()?.set_str(FOLD_REFUSED_KEY, url)?)
    }

    /// Forgets which remote refused a fold (the user set the remote again).
    pub fn clear_fold_refused(&self) {
        if let Ok(mut c) = self.repo.config() {
            let _ = c.remove(FOLD_REFUSED_KEY);
        }
    }

    /// The remote that refused a fold, if any.
    pub fn fold_refused(&self) -> Option<String> {
        self.repo.config().ok()?.get_string(FOLD_REFUSED_KEY).ok()
    }

    /// When the history of the branch at `head` was folded: the time of its first commit, if
    /// that commit is a fold's (in ms). Older versions of its files are gone.
    pub fn folded_since(&self, head: Oid) -> Result<Option<i64>, StoreError> {
        let mut at = self.repo.find_commit(head)?;
        while let Some(p) = first_parent(&at) {
            at = p;
        }
        let folded = at
            .message_raw()
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(FOLDED_TRAILER));
        Ok(folded.then(|| at.time().seconds().saturating_mul(1000)))
    }

    /// Removes from this machine's branch the tombstones of deletions before `horizon_ms` that
    /// no machine whose branch this store has fetched could bring back, as one commit: each of
    /// them that is not retired had seen this branch at least [`SEEN_MARGIN_MS`] after the
    /// deletion (by its record), and no branch, retired ones included, holds a version of the
    /// file. A branch read only in part (hostile or past the limits) counts as holding every
    /// file. Returns how many went.
    pub fn drop_tombstones(
        &self,
        machine: &MachineRecord,
        horizon_ms: i64,
    ) -> Result<usize, StoreError> {
        let refname = own_ref(&machine.id);
        let Some(tip) = self.tip(&refname)? else {
            return Ok(0);
        };
        let own = self.snapshot(&machine.id, tip)?;
        let old = |at_ms: i64| at_ms < horizon_ms;
        if !own
            .files
            .iter()
            .any(|f| matches!(f.meta.state, FileState::Deleted { at_ms } if old(at_ms)))
        {
            return Ok(0);
        }
        // Every other machine's head, and what its record says it had seen (cheap: the record
        // alone), before reading any branch whole.
        let mut heads = Vec::new();
        let mut watchers = Vec::new();
        for id in self.remote_machines()? {
            if id == machine.id {
                continue;
            }
            if let Some(head) = self.head(&id, false)? {
                if !machine.retired.contains_key(&id) {
                    watchers.push(self.machine_record(&id, head)?);
                }
                heads.push((id, head));
            }
        }
        let seen_by_all = |at_ms: i64| {
            watchers.iter().all(|m| {
                m.seen_ms
                    .get(&machine.id)
                    .is_some_and(|&seen| seen >= at_ms.saturating_add(SEEN_MARGIN_MS))
            })
        };
        let seen_old = |f: &&super::FileEntry| matches!(f.meta.state, FileState::Deleted { at_ms } if old(at_ms) && seen_by_all(at_ms));
        if !own.files.iter().any(|f| seen_old(&f)) {
            return Ok(0);
        }
        let mut others = Vec::new();
        for (id, head) in &heads {
            let s = self.snapshot(id, *head)?;
            if s.cut || !s.rejected.is_empty() {
                return Ok(0);
            }
            others.push(s);
        }
        let held: HashSet<(&str, &RelPath)> = others
            .iter()
            .flat_map(|s| &s.files)
            .filter(|f| !matches!(f.meta.state, FileState::Deleted { .. }))
            .map(|f| (f.project.key.as_str(), &f.rel))
            .collect();
        let mut builder = git2::build::TreeUpdateBuilder::new();
        let mut dropped = 0;
        for dir in &own.dirs {
            for f in &own.files[dir.files.clone()] {
                if !seen_old(&f) || held.contains(&(f.project.key.as_str(), &f.rel)) {
                    continue;
                }
                let path = format!(
                    "{}/{}/{}/{}",
                    layout::PROJECTS,
                    dir.name,
                    layout::FILES,
                    f.rel.tree_path()
                );
                builder.remove(path);
                dropped += 1;
            }
        }
        if dropped == 0 {
            return Ok(0);
        }
        let head = self.repo.find_commit(tip)?;
        let tree = builder.create_updated(&self.repo, &head.tree()?)?;
        let tree = self.repo.find_tree(tree)?;
        let sig = self.signature(machine)?;
        let mut message = format!(
            "{}: {dropped} tombstone(s) older than the history horizon dropped",
            machine.name
        );
        if let Some(run) = &self.run {
            message.push_str(&format!("\n\n{}{run}\n", super::RUN_TRAILER));
        }
        let id = self
            .repo
            .commit(None, &sig, &sig, &message, &tree, &[&head])?;
        self.move_branch(&refname, Some(tip), id)?;
        Ok(dropped)
    }
}

/// A commit's first parent, if the store has it (a shallow store's oldest commits lack theirs).
fn first_parent<'r>(c: &git2::Commit<'r>) -> Option<git2::Commit<'r>> {
    c.parent(0).ok()
}
