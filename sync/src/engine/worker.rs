//! The engine's loop: decides when to commit, push and fetch, and runs each on a blocking
//! thread so that nothing async ever waits on git or the network.

use super::remote::{self, RemoteError};
use super::status::{MachineStatus, now_ms};
use super::{Event, Pending, SyncReport, Worker};
use crate::store::{Batch, FileUpdate, REMOTE_PREFIX, Snapshot, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FAR: Duration = Duration::from_secs(3600);

/// Clears the in-flight flag when a network operation's thread finishes, however it finishes.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Worker {
    pub(super) async fn run(mut self) {
        let mut next_fetch = Instant::now();
        self.reconcile().await;
        self.refresh_status().await;
        loop {
            let wake_at = self.next_wake(next_fetch);
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
            let now = Instant::now();
            let (stop, explicit, due) = {
                let mut p = self.shared.pending.lock().expect("pending lock");
                let due = commit_due(&p, &self.config, now);
                let explicit = std::mem::take(&mut p.sync_requested);
                (p.stop.take(), explicit, due)
            };
            if let Some((deadline, reply)) = stop {
                let report = self.final_sync(deadline).await;
                let _ = reply.send(report);
                return;
            }
            if explicit {
                let waiters =
                    std::mem::take(&mut self.shared.pending.lock().expect("pending lock").waiters);
                let report = self.full_sync().await;
                next_fetch = Instant::now() + self.config.fetch_every;
                for w in waiters {
                    let _ = w.send(report.clone());
                }
                continue;
            }
            // Network failures are recorded in the status and retried after a backoff.
            if due && self.commit().await.is_some() {
                self.unpushed = true;
            }
            if self.unpushed && self.net_allowed() {
                let _ = self.push().await;
            }
            if self.remote.is_some() && Instant::now() >= next_fetch {
                if self.net_allowed() {
                    let _ = self.fetch().await;
                }
                next_fetch = Instant::now() + self.config.fetch_every;
            }
        }
    }

    /// At start: clears locks a crash left, then commits whatever the upper layer holds that the
    /// branch lacks.
    async fn reconcile(&mut self) {
        let (upper, links) = (self.config.upper.clone(), self.config.links.clone());
        let (path, machine) = (self.store_path.clone(), self.machine.clone());
        let secrets = self.config.secrets;
        let done = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?.with_secrets(secrets);
            let locks = store.recover_after_crash()?;
            if locks > 0 {
                tracing::warn!(locks, "removed lock files left by a crash");
            }
            let Some(upper) = upper else {
                return Ok::<_, StoreError>((None, Vec::new()));
            };
            let batch = crate::upper::reconcile(&upper, &store, &machine, &links)?;
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

    /// Repacks the store after `compact_every` commits. Runs between commits (never beside
    /// one), so pending changes wait in memory and in the upper layer meanwhile.
    async fn compact_if_due(&mut self) {
        let every = self.config.compact_every;
        if every == 0 || self.commits_since_compact < every || self.in_flight.load(Ordering::SeqCst)
        {
            return;
        }
        self.commits_since_compact = 0;
        let path = self.store_path.clone();
        match tokio::task::spawn_blocking(move || Store::open(&path)?.compact()).await {
            Ok(Ok(stats)) => tracing::info!(?stats, "compacted the store"),
            Ok(Err(e)) => self.error(format!("compacting the store: {e}")),
            Err(e) => self.error(format!("compacting the store: {e}")),
        }
    }

    fn next_wake(&self, next_fetch: Instant) -> Instant {
        let p = self.shared.pending.lock().expect("pending lock");
        let mut at = Instant::now() + FAR;
        if let (Some(first), Some(last)) = (p.first_at, p.last_at) {
            at = at.min((last + self.config.quiet).min(first + self.config.max_delay));
        }
        if self.remote.is_some() {
            let fetch_at = match self.backoff {
                Some((retry, _)) => retry.max(next_fetch),
                None => next_fetch,
            };
            at = at.min(fetch_at);
        }
        at
    }

    fn net_allowed(&self) -> bool {
        self.remote.is_some()
            && self
                .backoff
                .is_none_or(|(retry, _)| Instant::now() >= retry)
    }

    async fn full_sync(&mut self) -> SyncReport {
        let committed = self.commit().await;
        self.unpushed |= committed.is_some();
        let mut report = SyncReport {
            committed,
            ..SyncReport::default()
        };
        if self.remote.is_some() {
            let fetched = self.fetch().await;
            let pushed = self.push().await;
            report.error = fetched.err().or(pushed.err()).map(|e| e.to_string());
            report.remote_ok = Some(report.error.is_none());
        }
        report
    }

    async fn final_sync(&mut self, deadline: Duration) -> SyncReport {
        let committed = self.commit().await;
        let mut report = SyncReport {
            committed,
            ..SyncReport::default()
        };
        if self.remote.is_some() {
            let pushed = tokio::time::timeout(deadline, self.push()).await;
            let result = pushed.unwrap_or_else(|_| {
                Err(RemoteError {
                    op: "push",
                    url: self
                        .remote
                        .as_deref()
                        .map(remote::redact)
                        .unwrap_or_default(),
                    message: format!("no answer within {deadline:?}"),
                })
            });
            report.error = result.err().map(|e| e.to_string());
            report.remote_ok = Some(report.error.is_none());
        }
        report
    }

    /// Commits everything pending. On failure the changes go back to pending: nothing is lost.
    async fn commit(&mut self) -> Option<String> {
        let (batch, taken) = {
            let mut p = self.shared.pending.lock().expect("pending lock");
            if p.files.is_empty() {
                p.first_at = None;
                p.last_at = None;
                return None;
            }
            let taken = std::mem::take(&mut p.files);
            let projects: Vec<_> = p.projects.values().cloned().collect();
            p.first_at = None;
            p.last_at = None;
            let files = taken
                .iter()
                .map(|((key, rel), (change, _))| FileUpdate {
                    project_key: key.clone(),
                    rel: rel.clone(),
                    change: change.clone(),
                })
                .collect();
            (Batch { projects, files }, taken)
        };
        let path = self.store_path.clone();
        let machine = self.machine.clone();
        let secrets = self.config.secrets;
        let result = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?.with_secrets(secrets);
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
                    self.shared
                        .status
                        .lock()
                        .expect("status lock")
                        .last_commit_ms = Some(now_ms());
                    let _ = self.shared.events.send(Event::Committed(id.clone()));
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

    async fn network<F>(&mut self, op: F) -> Result<(), RemoteError>
    where
        F: FnOnce(&Store, &str, &str) -> Result<(), RemoteError> + Send + 'static,
    {
        let Some(url) = self.remote.clone() else {
            return Ok(());
        };
        let (path, id) = (self.store_path.clone(), self.machine.id.clone());
        let bound = self.config.net_timeout * 2;
        let url2 = url.clone();
        // A timed-out operation keeps running on its thread (git2 cannot be cancelled); start no
        // other until it ends, so transfers never pile up or race a compaction.
        if self.in_flight.swap(true, Ordering::SeqCst) {
            return Err(RemoteError {
                op: "network",
                url: remote::redact(&url),
                message: "the previous fetch or push is still running".into(),
            });
        }
        let flag = self.in_flight.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _clear = ClearOnDrop(flag);
            let store = Store::open(&path).map_err(|e| RemoteError {
                op: "open",
                url: remote::redact(&url2),
                message: e.to_string(),
            })?;
            op(&store, &url2, &id)
        });
        let result = match tokio::time::timeout(bound, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(RemoteError {
                op: "network",
                url: remote::redact(&url),
                message: e.to_string(),
            }),
            Err(_) => Err(RemoteError {
                op: "network",
                url: remote::redact(&url),
                message: format!("no answer within {bound:?}"),
            }),
        };
        {
            let mut s = self.shared.status.lock().expect("status lock");
            s.remote_reachable = Some(result.is_ok());
        }
        match &result {
            Ok(()) => self.backoff = None,
            Err(e) => {
                let delay = self.backoff.map_or(Duration::from_secs(1), |(_, d)| {
                    (d * 2).min(self.config.backoff_max)
                });
                self.backoff = Some((Instant::now() + delay, delay));
                tracing::warn!(error = %e, retry_in = ?delay, "remote failed; working offline");
                self.error(e.to_string());
            }
        }
        result
    }

    async fn push(&mut self) -> Result<(), RemoteError> {
        let r = self.network(remote::push).await;
        if r.is_ok() {
            self.unpushed = false;
            self.shared.status.lock().expect("status lock").last_push_ms = Some(now_ms());
            self.refresh_status().await;
        }
        r
    }

    async fn fetch(&mut self) -> Result<(), RemoteError> {
        let max = self.config.max_fetch_bytes;
        self.network(move |store, url, _| remote::fetch(store, url, max))
            .await?;
        self.shared
            .status
            .lock()
            .expect("status lock")
            .last_fetch_ms = Some(now_ms());
        let (path, own, before) = (
            self.store_path.clone(),
            self.machine.id.clone(),
            self.heads.clone(),
        );
        let diffed = tokio::task::spawn_blocking(move || changes_since(&path, &own, &before)).await;
        match diffed {
            Ok(Ok((heads, changed, rejected))) => {
                self.heads = heads;
                self.shared.status.lock().expect("status lock").rejected = rejected;
                if !changed.is_empty() {
                    let _ = self.shared.events.send(Event::Changed(changed));
                }
            }
            Ok(Err(e)) => self.error(format!("reading fetched branches: {e}")),
            Err(e) => self.error(format!("reading fetched branches: {e}")),
        }
        // The remote's copy of this machine's branch should be what was last pushed. If it is
        // not (history rewritten by a force-push, or the branch deleted), push it again now
        // rather than on the next write: other machines would see lines vanish meanwhile.
        let (path, own) = (self.store_path.clone(), self.machine.id.clone());
        let differs = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?;
            Ok::<_, StoreError>(store.head(&own, true)? != store.head(&own, false)?)
        })
        .await;
        if matches!(differs, Ok(Ok(true))) && !self.unpushed {
            tracing::warn!(
                "the remote's copy of this machine's branch was rewritten or removed; pushing it again"
            );
            self.unpushed = true;
        }
        self.refresh_status().await;
        Ok(())
    }

    fn error(&self, message: String) {
        self.shared.status.lock().expect("status lock").last_error = Some((now_ms(), message));
    }

    async fn refresh_status(&self) {
        let (path, own) = (self.store_path.clone(), self.machine.id.clone());
        if let Ok(Ok(machines)) =
            tokio::task::spawn_blocking(move || machine_statuses(&path, &own)).await
        {
            self.shared.status.lock().expect("status lock").machines = machines;
        }
    }
}

fn commit_due(p: &Pending, config: &super::EngineConfig, now: Instant) -> bool {
    match (p.first_at, p.last_at) {
        (Some(first), Some(last)) => now >= last + config.quiet || now >= first + config.max_delay,
        _ => false,
    }
}

type Changed = Vec<(String, String, crate::store::RelPath)>;

/// Heads after a fetch, what changed, and what was rejected.
type FetchOutcome = (HashMap<String, git2::Oid>, Changed, Vec<String>);

/// Other machines' heads now, the files that changed since `before`, and rejected entries.
fn changes_since(
    path: &std::path::Path,
    own: &str,
    before: &HashMap<String, git2::Oid>,
) -> Result<FetchOutcome, StoreError> {
    let store = Store::open(path)?;
    let mut heads = HashMap::new();
    let mut changed = Vec::new();
    let mut rejected = Vec::new();
    for id in store.remote_machines()? {
        if id == own {
            continue;
        }
        let Some(head) = store.head(&id, false)? else {
            continue;
        };
        heads.insert(id.clone(), head);
        if before.get(&id) == Some(&head) {
            continue;
        }
        let new = match store.snapshot(&id, head) {
            Ok(s) => s,
            Err(e) => {
                rejected.push(format!("machine {id}: {e}"));
                continue;
            }
        };
        rejected.extend(new.rejected.iter().map(|e| e.to_string()));
        let old: Option<Snapshot> = before.get(&id).and_then(|&h| store.snapshot(&id, h).ok());
        let old_trees: HashMap<(&str, &str), git2::Oid> = old
            .iter()
            .flat_map(|s| s.files.iter())
            .map(|f| ((f.project.key.as_str(), f.rel.as_str()), f.tree))
            .collect();
        for f in &new.files {
            if old_trees.get(&(f.project.key.as_str(), f.rel.as_str())) != Some(&f.tree) {
                changed.push((id.clone(), f.project.key.clone(), f.rel.clone()));
            }
        }
    }
    Ok((heads, changed, rejected))
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
