//! The engine's loop: decides when to commit, push and fetch, and runs each on a blocking
//! thread so that nothing async ever waits on git or the network.

use super::remote;
use super::status::{MachineStatus, now_ms};
use super::{Event, Pending, SyncReport, Worker};
use crate::store::{Batch, FileUpdate, PlaceId, REMOTE_PREFIX, Store, StoreError};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Far enough away to mean never.
pub(super) const FAR: Duration = Duration::from_secs(3600);

/// How far the wall clock may run ahead of the monotonic one between two turns of the loop
/// before it counts as the machine having slept.
const WAKE_GAP: Duration = Duration::from_secs(10);

impl Worker {
    pub(super) async fn run(mut self) {
        let mut next_fetch = if self.config.fetch_at_start {
            Instant::now()
        } else {
            Instant::now() + self.fetch_interval()
        };
        self.reconcile().await;
        self.refresh_status().await;
        let mut clocks = (Instant::now(), std::time::SystemTime::now());
        loop {
            let wake_at = self.next_wake(next_fetch);
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
            let now = Instant::now();
            // The monotonic clock stands still while the machine sleeps and the wall clock does
            // not: a gap between them is a wake-up, when other machines have likely moved on
            // and the network may be back.
            let wall = std::time::SystemTime::now();
            let slept = wall
                .duration_since(clocks.1)
                .unwrap_or_default()
                .saturating_sub(now - clocks.0);
            clocks = (now, wall);
            if slept > WAKE_GAP {
                tracing::info!(?slept, "woke from sleep; fetching now");
                next_fetch = now;
                if self
                    .shared
                    .status
                    .lock()
                    .expect("status lock")
                    .paused
                    .is_none()
                {
                    self.backoff = None;
                }
            }
            let (stop, explicit, due, fetch_now) = {
                let mut p = self.shared.pending.lock().expect("pending lock");
                let due = commit_due(&p, &self.config, now);
                let explicit = std::mem::take(&mut p.sync_requested);
                let fetch_now = std::mem::take(&mut p.fetch_requested);
                (p.stop.take(), explicit, due, fetch_now)
            };
            if fetch_now {
                next_fetch = next_fetch.min(now);
            }
            if let Some((deadline, reply)) = stop {
                let report = self.final_sync(deadline).await;
                // A `ferry sync` waiting when the stop came gets the stop's report.
                let waiters =
                    std::mem::take(&mut self.shared.pending.lock().expect("pending lock").waiters);
                for w in waiters {
                    let _ = w.send(report.clone());
                }
                let _ = reply.send(report);
                return;
            }
            if explicit {
                let waiters =
                    std::mem::take(&mut self.shared.pending.lock().expect("pending lock").waiters);
                // The user asked: a pause or backoff gives way to one try now.
                self.backoff = None;
                self.refused = None;
                let report = self.full_sync().await;
                next_fetch = Instant::now() + self.fetch_interval();
                for w in waiters {
                    let _ = w.send(report.clone());
                }
                continue;
            }
            // Network failures are recorded in the status and retried after a backoff.
            if due {
                self.commit().await;
            }
            if self.unpushed && self.push_allowed() {
                let _ = self.push().await;
            }
            if self.remote.is_some() && Instant::now() >= next_fetch {
                if self.net_allowed() {
                    let _ = self.fetch().await;
                }
                next_fetch = Instant::now() + self.fetch_interval();
            }
            self.fold_history_if_due().await;
            self.reclaim_if_pushed().await;
        }
    }

    /// At start: clears locks a crash left, then commits whatever the upper layer holds that the
    /// branch lacks.
    async fn reconcile(&mut self) {
        let (upper, links) = (self.config.upper.clone(), self.config.links.clone());
        let placed = self.config.placed.clone();
        let (path, machine) = (self.store_path.clone(), self.machine.clone());
        let secrets = self.config.secrets;
        let run = self.run.clone();
        let done = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?.with_secrets(secrets).with_run(&run);
            let locks = store.recover_after_crash()?;
            if locks > 0 {
                tracing::warn!(locks, "removed lock files left by a crash");
            }
            let Some(upper) = upper else {
                return Ok::<_, StoreError>((None, Vec::new()));
            };
            let batch = crate::upper::reconcile(&upper, &store, &machine, &links, &placed)?;
            let commit = store.commit(&machine, &batch)?;
            Ok((commit, store.take_findings()))
        })
        .await;
        let done = done.map(|r| {
            r.map(|(c, found)| {
                self.shared
                    .status
                    .lock()
                    .expect("status lock")
                    .add_findings(found);
                c
            })
        });
        match done {
            Ok(Ok(Some(c))) => {
                tracing::info!(commit = %c, "reconciled the upper layer");
                self.shared
                    .status
                    .lock()
                    .expect("status lock")
                    .last_commit_ms = Some(now_ms());
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => self.error(format!("reconciling the upper layer: {e}")),
            Err(e) => self.error(format!("reconciling the upper layer: {e}")),
        }
    }

    /// Repacks the store after `compact_every` commits, with the user's git where there is one
    /// (`GitCli::reclaim`), else by `Store::compact`. Runs between commits (never beside one),
    /// so pending changes wait in memory and in the upper layer meanwhile.
    async fn compact_if_due(&mut self) {
        let every = self.config.compact_every;
        if every == 0 || self.commits_since_compact < every || self.in_flight.load(Ordering::SeqCst)
        {
            return;
        }
        self.commits_since_compact = 0;
        let (path, transport) = (self.store_path.clone(), self.transport.clone());
        let done =
            tokio::task::spawn_blocking(move || transport.reclaim(&Store::open(&path)?)).await;
        match done {
            Ok(Ok(how)) => tracing::info!(how, "compacted the store"),
            Ok(Err(e)) => self.error(format!("compacting the store: {e}")),
            Err(e) => self.error(format!("compacting the store: {e}")),
        }
    }

    /// Folds the store's packs when fetches left more than `pack_limit`: with `git`, rolling
    /// the small ones up (cheap); without it, or if that fails, by a whole compaction. Runs
    /// between commits and transfers, as [`Self::compact_if_due`].
    pub(super) async fn fold_if_due(&mut self) {
        let limit = self.config.pack_limit;
        if limit == 0 || self.in_flight.load(Ordering::SeqCst) {
            return;
        }
        let (path, transport) = (self.store_path.clone(), self.transport.clone());
        let folded = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?;
            let before = store.pack_count();
            if before <= limit {
                return Ok::<_, StoreError>(None);
            }
            if let super::Transport::Git(git) = &transport {
                match git.fold_packs(&store) {
                    Ok(()) if store.pack_count() <= limit => {
                        return Ok(Some((before, store.pack_count())));
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "git repack failed; compacting instead"),
                }
            }
            store.compact()?;
            Ok(Some((before, store.pack_count())))
        })
        .await;
        match folded {
            Ok(Ok(Some((before, after)))) => {
                tracing::info!(before, after, "folded the packs fetches left")
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => self.error(format!("folding the store's packs: {e}")),
            Err(e) => self.error(format!("folding the store's packs: {e}")),
        }
    }

    /// When pending changes come due for a commit, if any are pending.
    pub(super) fn commit_at(&self) -> Option<Instant> {
        let p = self.shared.pending.lock().expect("pending lock");
        match (p.first_at, p.last_at) {
            (Some(first), Some(last)) => {
                Some((last + self.config.quiet).min(first + self.config.max_delay))
            }
            _ => None,
        }
    }

    fn next_wake(&self, next_fetch: Instant) -> Instant {
        let mut at = self.commit_at().unwrap_or_else(|| Instant::now() + FAR);
        if self.remote.is_some() {
            let fetch_at = match self.backoff {
                Some((retry, _)) => retry.max(next_fetch),
                None => next_fetch,
            };
            at = at.min(fetch_at);
        }
        at
    }

    /// How long until the next periodic fetch: short while any machine is active, long when
    /// every machine is quiet (a person moving between machines takes longer than that, and
    /// touching the view after a quiet spell fetches at once).
    pub(super) fn fetch_interval(&self) -> Duration {
        if Instant::now() < self.active_until {
            self.config.fetch_every
        } else {
            self.config.idle_fetch_every
        }
    }

    /// Notes a sign of activity (a change here, another machine's new commit).
    pub(super) fn active(&mut self) {
        self.active_until = Instant::now() + self.config.active_for;
    }

    fn net_allowed(&self) -> bool {
        self.remote.is_some()
            && self
                .backoff
                .is_none_or(|(retry, _)| Instant::now() >= retry)
    }

    /// Whether a push may go now: the network allows it, and the remote's last refusal (if
    /// any) is old enough to try again.
    fn push_allowed(&self) -> bool {
        self.net_allowed()
            && self
                .refused
                .is_none_or(|(retry, _)| Instant::now() >= retry)
    }

    async fn full_sync(&mut self) -> SyncReport {
        let committed = self.commit().await.or(self.early_commit.take());
        self.early_commit = None;
        let mut report = SyncReport {
            committed,
            commit_error: self.commit_error(),
            had_remote: self.remote.is_some(),
            ..SyncReport::default()
        };
        if self.remote.is_some() {
            let fetched = self.fetch().await;
            // A refused login is not tried again at once with the same credentials.
            let pushed = match &fetched {
                Err(e) if e.kind.needs_the_user() => Ok(false),
                _ => self.push().await,
            };
            report.sent = matches!(pushed, Ok(true)) && self.sent;
            report.error = fetched.err().or(pushed.err()).map(|e| e.to_string());
            report.remote_ok = Some(report.error.is_none());
        }
        report
    }

    async fn final_sync(&mut self, deadline: Duration) -> SyncReport {
        let committed = self.commit().await;
        let mut report = SyncReport {
            committed,
            commit_error: self.commit_error(),
            had_remote: self.remote.is_some(),
            ..SyncReport::default()
        };
        let paused = self
            .shared
            .status
            .lock()
            .expect("status lock")
            .paused
            .clone();
        if let (Some(_), Some(why)) = (&self.remote, paused) {
            // Paused until the user acts: no last try with credentials the server refused.
            report.error = Some(format!("not pushed: {why}"));
            report.remote_ok = Some(false);
        } else if self.remote.is_some() {
            // A transfer still running from before the stop holds the slot: let it end first.
            let waited = self.settle(deadline).await;
            let deadline = deadline.saturating_sub(waited);
            let pushed = tokio::time::timeout(deadline, self.push()).await;
            let result = pushed.unwrap_or_else(|_| {
                Err(self.remote_error(
                    "push",
                    format!("no answer within {deadline:?}"),
                    remote::Failure::Network,
                ))
            });
            match result {
                // Nothing was ever committed here: the remote was not contacted, and is not
                // said to be up to date.
                Ok(false) => {}
                Ok(true) => report.remote_ok = Some(true),
                Err(e) => {
                    report.error = Some(e.to_string());
                    report.remote_ok = Some(false);
                }
            }
        }
        report
    }

    /// Commits everything pending. On failure the changes go back to pending: nothing is lost.
    pub(super) async fn commit(&mut self) -> Option<String> {
        let (batch, taken) = {
            let mut p = self.shared.pending.lock().expect("pending lock");
            // A new name or retirement goes out even with no file changed; the store commits
            // it only if the record it has differs.
            let identity = p.identity.take();
            if identity.is_none() && p.files.is_empty() {
                p.first_at = None;
                p.last_at = None;
                return None;
            }
            if let Some((name, retired)) = identity {
                self.machine.name = name;
                self.machine.retired = retired;
            }
            let taken = std::mem::take(&mut p.files);
            let projects: Vec<_> = p.projects.values().cloned().collect();
            p.first_at = None;
            p.last_at = None;
            let files = taken
                .iter()
                .map(|((place, rel), (change, _))| FileUpdate {
                    place: place.clone(),
                    rel: rel.clone(),
                    change: change.clone(),
                })
                .collect();
            (Batch { projects, files }, taken)
        };
        let mut places: Vec<PlaceId> = batch.files.iter().map(|f| f.place.clone()).collect();
        places.dedup();
        let path = self.store_path.clone();
        let machine = self.machine.clone();
        let secrets = self.config.secrets;
        let run = self.run.clone();
        let result = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?.with_secrets(secrets).with_run(&run);
            let commit = store.commit(&machine, &batch)?;
            Ok((commit, store.take_findings()))
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::BadPath(format!("commit task failed: {e}"))));
        let result = result.map(|(c, found)| {
            self.shared
                .status
                .lock()
                .expect("status lock")
                .add_findings(found);
            c
        });
        match result {
            Ok(commit) => {
                self.commit_failures = 0;
                let id = commit.map(|c| c.to_string());
                if let Some(id) = &id {
                    self.unpushed = true;
                    self.commits += 1;
                    self.active();
                    // Made while a sync request waited for a transfer: that sync reports it.
                    if !self
                        .shared
                        .pending
                        .lock()
                        .expect("pending lock")
                        .waiters
                        .is_empty()
                    {
                        self.early_commit = Some(id.clone());
                    }
                    self.shared
                        .status
                        .lock()
                        .expect("status lock")
                        .last_commit_ms = Some(now_ms());
                    let _ = self
                        .shared
                        .events
                        .send(Event::Committed(id.clone(), std::mem::take(&mut places)));
                    tracing::debug!(commit = %id, "committed");
                    self.commits_since_compact += 1;
                }
                self.compact_if_due().await;
                self.refresh_status().await;
                id
            }
            Err(e) => {
                tracing::warn!(error = %e, "commit failed; changes kept pending");
                self.error(format!("commit: {e}"));
                let mut p = self.shared.pending.lock().expect("pending lock");
                for (k, failed) in taken {
                    // Put it back before any newer note for the same path, keeping both
                    // dirty ranges.
                    let merged = match p.files.remove(&k) {
                        Some(newer) => super::combine(failed, newer),
                        None => failed,
                    };
                    p.files.insert(k, merged);
                }
                // And the name, so that the retry commits it even with no file pending.
                p.identity
                    .get_or_insert((self.machine.name.clone(), self.machine.retired.clone()));
                // Try again after 0.3 s, 0.6 s, 1.2 s ... at most a minute: a disk that stays
                // full is retried without filling the log. A new write tries sooner.
                self.commit_failures = self.commit_failures.saturating_add(1);
                let wait = self.config.quiet * 2u32.pow(self.commit_failures.min(8) - 1);
                let retry = Instant::now() + wait.min(Duration::from_secs(60)) - self.config.quiet;
                p.first_at = Some(retry);
                p.last_at = Some(retry);
                None
            }
        }
    }

    /// Why the last commit failed, while it is failing (the changes are pending again).
    fn commit_error(&self) -> Option<String> {
        (self.commit_failures > 0).then(|| {
            let last = self
                .shared
                .status
                .lock()
                .expect("status lock")
                .last_error
                .clone();
            last.map_or_else(|| "commit failed".to_string(), |(_, e)| e)
        })
    }

    /// Records `message` as the status's last error.
    pub(super) fn error(&self, message: String) {
        self.shared.status.lock().expect("status lock").last_error = Some((now_ms(), message));
    }

    /// Reads every machine's head and how far this one is ahead into the status.
    pub(super) async fn refresh_status(&self) {
        let (path, own) = (self.store_path.clone(), self.machine.id.clone());
        if let Ok(Ok(machines)) =
            tokio::task::spawn_blocking(move || machine_statuses(&path, &own)).await
        {
            self.shared.status.lock().expect("status lock").machines = machines;
        }
    }
}

/// Whether pending changes should be committed now.
pub(super) fn commit_due(p: &Pending, config: &super::EngineConfig, now: Instant) -> bool {
    match (p.first_at, p.last_at) {
        (Some(first), Some(last)) => now >= last + config.quiet || now >= first + config.max_delay,
        _ => false,
    }
}

fn machine_statuses(path: &std::path::Path, own: &str) -> Result<Vec<MachineStatus>, StoreError> {
    let store = Store::open(path)?;
    let repo = store.repo();
    let mut out = Vec::new();
    let describe = |id: &str, head: Option<git2::Oid>, this: bool| -> MachineStatus {
        let commit = head.and_then(|h| repo.find_commit(h).ok());
        let name = commit
            .as_ref()
            .and_then(|c| store.machine_record(id, c.id()).ok())
            .map(|m| m.name)
            .unwrap_or_default();
        MachineStatus {
            id: id.to_string(),
            name,
            this_machine: this,
            head: head.map(|h| h.to_string()),
            last_commit_ms: commit.map(|c| c.time().seconds() * 1000),
            ahead: None,
        }
    };
    let own_head = store.head(own, true)?;
    let mut me = describe(own, own_head, true);
    if let Some(h) = own_head {
        let pushed = repo.refname_to_id(&format!("{REMOTE_PREFIX}{own}")).ok();
        me.ahead = Some(match pushed {
            Some(p) => repo.graph_ahead_behind(h, p).map_or(0, |(a, _)| a),
            None => count_commits(repo, h),
        });
    }
    out.push(me);
    for id in store.remote_machines()? {
        if id != own {
            let head = store.head(&id, false)?;
            out.push(describe(&id, head, false));
        }
    }
    Ok(out)
}

fn count_commits(repo: &git2::Repository, head: git2::Oid) -> usize {
    let Ok(mut walk) = repo.revwalk() else {
        return 0;
    };
    if walk.push(head).is_err() {
        return 0;
    }
    walk.count()
}
