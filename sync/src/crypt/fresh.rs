//! A remote must not take a machine's branch back in time. Sealing binds a branch's content to
//! the store key, not to its age: a remote could serve an older sealed commit of a branch, which
//! opens without error, and the lines written since would leave every other machine's view.
//!
//! So a branch fetched and opened must hold the newest state of it this machine has opened
//! before (the plain remote-tracking ref): the new tip descends from it, or, for a branch its
//! machine rewrote (a fold of its old history, `Store::fold_history`, which keeps each commit's
//! tree and times), its first-parent history holds a commit with that state's tree and committer
//! time, or begins with a fold whose horizon is after that state (folded away while this
//! machine was away). Anything else is refused. The plain commits compared were sealed, so the remote cannot
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
    // A rewrite by its machine keeps every commit's tree and times, or, past the history
    // horizon, folds the state seen into its oldest commit: taken when that fold's horizon is
    // after the state seen and the tip is no older than it (this machine was away longer than
    // the horizon).
    // The newest time in the state seen, its ancestry included: a commit dated too early (a
    // clock reset) must not let a fold from before it pass for one after it.
    let mut newest_seen = when.seconds();
    let mut below = seen.parent(0).ok();
    while let Some(c) = below {
        newest_seen = newest_seen.max(c.committer().when().seconds());
        below = c.parent(0).ok();
    }
    let mut at = Some(came.clone());
    while let Some(c) = at {
        if c.tree_id() == tree && c.committer().when() == when {
            return Ok(None);
        }
        let parent = c.parent(0).ok();
        if parent.is_none()
            && folded_before(&c).is_some_and(|h| h > newest_seen.saturating_mul(1000))
            && came.committer().when().seconds() >= when.seconds()
        {
            return Ok(None);
        }
        at = parent;
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

/// The horizon (ms) a fold's oldest commit names, if `c` is one (`Store::fold_history`).
fn folded_before(c: &git2::Commit<'_>) -> Option<i64> {
    let message = std::str::from_utf8(c.message_bytes()).ok()?;
    message
        .lines()
        .find_map(|l| l.strip_prefix(crate::store::FOLDED_TRAILER))
        .and_then(|ms| ms.trim().parse().ok())
}
