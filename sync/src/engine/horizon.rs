//! The history horizon in the engine's loop: now and then, this machine's branch drops the
//! tombstones no machine could bring back and folds the history older than the horizon
//! (`Store::fold_history`). The next push carries the fold; once it has, the store is repacked
//! without the folded objects (`Transport::reclaim`).

use super::Worker;
use super::status::now_ms;
use crate::store::{Store, StoreError};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What `ferry status` says while a horizon is set and this machine's history is not folded
/// because the remote refuses rewritten branches.
const FOLD_REFUSED: &str = "not folded: the remote refused this machine's branch with its old history folded away, so it keeps its whole history there (allow force-pushes to ferry's branches on the remote, then run `ferry remote set URL` again to fold)";

impl Worker {
    /// Folds this machine's history past `EngineConfig::history`, at most once per
    /// `history_check_every`. Runs between commits and transfers, as compaction does.
    pub(super) async fn fold_history_if_due(&mut self) {
        let Some(history) = self.config.history else {
            return;
        };
        if Instant::now() < self.next_history_check || self.in_flight.load(Ordering::SeqCst) {
            return;
        }
        self.next_history_check = Instant::now() + self.config.history_check_every;
        let horizon_ms = now_ms().saturating_sub(history.as_millis() as i64);
        // Folding about thirty times per horizon: once a day at the default 30 days.
        let slack_ms = (history / 30).as_millis() as i64;
        let (path, machine, run) = (
            self.store_path.clone(),
            self.machine.clone(),
            self.run.clone(),
        );
        let remote = self.remote.clone();
        let local_only = remote.is_none();
        let transport = self.transport.clone();
        let done = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?.with_run(&run);
            // A tombstone that cannot go yet (or a branch that cannot be read) never keeps the
            // history from folding.
            let dropped = store
                .drop_tombstones(&machine, horizon_ms)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "old tombstones stay: reading the other branches failed");
                    0
                });
            if remote.is_some() && store.fold_refused() == remote {
                return Ok::<_, StoreError>((dropped, None, true));
            }
            if local_only {
                // Nothing to push a fold to (the remote was removed since the last one).
                store.forget_fold(&machine.id)?;
            }
            let folded = store.fold_history(&machine.id, horizon_ms, slack_ms)?;
            if folded.is_some() && local_only {
                store.forget_fold(&machine.id)?;
                transport.reclaim(&store)?;
            }
            Ok((dropped, folded, false))
        })
        .await;
        match done {
            Ok(Ok((dropped, folded, refused))) => {
                if refused {
                    self.shared.status.lock().expect("status lock").history =
                        Some(FOLD_REFUSED.into());
                }
                if dropped > 0 {
                    tracing::info!(dropped, "dropped tombstones older than the history horizon");
                    self.unpushed = true;
                }
                if let Some(stats) = folded {
                    tracing::info!(?stats, "folded history older than the horizon");
                    self.unpushed = true;
                    self.reclaim_after_push = !local_only;
                }
            }
            Ok(Err(e)) => self.error(format!("folding old history: {e}")),
            Err(e) => self.error(format!("folding old history: {e}")),
        }
    }

    /// After the remote refused a push as a rewrite, or refused pushes three times in a row: if
    /// the push carried a fold, the remote may refuse rewritten branches (a protected branch,
    /// `receive.denyNonFastForwards`), so the fold is undone (the next push is a fast-forward)
    /// and no other is tried against this remote.
    pub(super) async fn unfold_after_refusal(&mut self) {
        let (path, own, url) = (
            self.store_path.clone(),
            self.machine.id.clone(),
            self.remote.clone().unwrap_or_default(),
        );
        let done = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?;
            let undone = store.unfold(&own)?;
            if undone {
                store.set_fold_refused(&url)?;
            }
            Ok::<_, StoreError>(undone)
        })
        .await;
        match done {
            Ok(Ok(true)) => {
                tracing::warn!("{FOLD_REFUSED}; the fold is undone");
                self.shared.status.lock().expect("status lock").history = Some(FOLD_REFUSED.into());
                self.reclaim_after_push = false;
                // The fast-forward goes at once.
                self.refused = None;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => self.error(format!("undoing a fold the remote refused: {e}")),
            Err(e) => self.error(format!("undoing a fold the remote refused: {e}")),
        }
    }

    /// Once a fold has reached the remote, compacts the store: what the fold replaced is
    /// reachable from nothing now, and compaction keeps only what is.
    pub(super) async fn reclaim_if_pushed(&mut self) {
        if !self.reclaim_after_push || self.unpushed || self.in_flight.load(Ordering::SeqCst) {
            return;
        }
        self.reclaim_after_push = false;
        let (path, own) = (self.store_path.clone(), self.machine.id.clone());
        let transport = self.transport.clone();
        let done = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?;
            if store.fold_pending(&own)?.is_some() {
                return Ok(None);
            }
            let t = std::time::Instant::now();
            transport
                .reclaim(&store)
                .map(|how| Some((how, t.elapsed())))
        })
        .await;
        match done {
            Ok(Ok(Some((how, took)))) => {
                tracing::info!(how, ?took, "reclaimed what a fold replaced")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => self.error(format!("compacting the store after a fold: {e}")),
            Err(e) => self.error(format!("compacting the store after a fold: {e}")),
        }
    }
}
