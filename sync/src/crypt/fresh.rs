//! A remote must not take a machine's branch back in time. Sealing binds a branch's content to
//! the store key, not to its age: a remote could serve an older sealed commit of a branch, which
//! opens without error, and the lines written since would leave every other machine's view.
//!
//! So a branch fetched and opened must hold the newest state of it this machine has opened
//! before (the plain remote-tracking ref): the new tip descends from it, or, for a branch its
//! machine rewrote (a fold of its old history, `Store::fold_history`, which keeps each commit's
//! tree and times), its first-parent history holds a commit with that state's tree and committer
//! time. Anything else is refused. The plain commits compared were sealed, so the remote cannot
//! forge their trees or times.

use git2::{ErrorCode, Oid, Repository, Time};
use std::collections::HashSet;

/// Why `new` may not replace `old` (the plain tip this machine opened last) as a machine's
/// branch, or `None` when it may.
pub fn rolled_back(repo: &Repository, old: Oid, new: Oid) -> Result<Option<String>, git2::Error> {
    if reaches(repo, new, old)? {
        return Ok(None);
    }
    let seen = repo.find_commit(old)?;
    let (tree, when) = (seen.tree_id(), seen.committer().when());
    let came = repo.find_commit(new)?;
    let said = |t: Time| {
        jiff::Timestamp::from_second(t.seconds())
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| format!("{} s", t.seconds()))
    };
    if reaches(repo, old, new)? {
        return Ok(Some(format!(
            "an older state of the branch (its commit of {}, where this machine has opened the one of {})",
            said(came.committer().when()),
            said(when)
        )));
    }
    // A rewrite by its machine keeps every commit's tree and times.
    let mut at = Some(came.clone());
    while let Some(c) = at {
        if c.tree_id() == tree && c.committer().when() == when {
            return Ok(None);
        }
        at = c.parent(0).ok();
    }
    Ok(Some(format!(
        "a history that lacks the state this machine has opened (its commit of {}; the one served is of {})",
        said(when),
        said(came.committer().when())
    )))
}

/// Whether `to` is `from` or one of its ancestors. Parents that are not here (below a shallow
/// fetch's tips) end a path, as they end git's walks.
fn reaches(repo: &Repository, from: Oid, to: Oid) -> Result<bool, git2::Error> {
    let mut seen = HashSet::new();
    let mut next = vec![from];
    while let Some(id) = next.pop() {
        if id == to {
            return Ok(true);
        }
        if !seen.insert(id) {
            continue;
        }
        match repo.find_commit(id) {
            Ok(c) => next.extend(c.parent_ids()),
            Err(e) if e.code() == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}
