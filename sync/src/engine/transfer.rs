//! Fetch and push as the engine runs them: on a blocking thread, one at a time, watched for
//! progress rather than bounded in total (a slow link may take minutes, a stalled one is given
//! up), with local commits going on while a transfer runs.

use super::remote::{self, Failure, Progress, RemoteError};
use super::status::now_ms;
use super::watch::{Bounds, watch};
use super::worker::{FAR, commit_due};
use super::{Event, Transport, Worker};
use crate::store::{Snapshot, Store, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Clears the in-flight flag when a network operation's thread finishes, however it finishes.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Worker {
    /// Runs `op` on a blocking thread, watched for progress, committing meanwhile; records
    /// the outcome in the status and the backoff (or, for a failure only the user can fix, the
    /// pause).
    async fn network<F>(&mut self, name: &'static str, op: F) -> Result<(), RemoteError>
    where
        F: FnOnce(&Transport, &Store, &str, &str, &Progress) -> Result<(), RemoteError>
            + Send
            + 'static,
    {
        let Some(url) = self.remote.clone() else {
            return Ok(());
        };
        let fail = |message: String| RemoteError {
            op: "network",
            url: remote::redact(&url),
            message,
            kind: Failure::Other,
        };
        if self
            .shared
            .pending
            .lock()
            .expect("pending lock")
            .stop
            .is_some()
        {
            return Err(fail("not started or not awaited: ferry is stopping".into()));
        }
        let (path, id) = (self.store_path.clone(), self.machine.id.clone());
        let bounds = Bounds::for_timeout(self.config.net_timeout);
        let url2 = url.clone();
        let progress = Progress::default();
        let moved = progress.clone();
        let transport = self.transport.clone();
        // A timed-out libgit2 operation keeps running on its thread (it cannot be cancelled; a
        // git subprocess is killed); start no other until it ends, so transfers never pile up
        // or race a compaction.
        if self.in_flight.swap(true, Ordering::SeqCst) {
            return Err(fail("the previous fetch or push is still running".into()));
        }
        let flag = self.in_flight.clone();
        *self.shared.transfer.lock().expect("transfer lock") = Some((name, progress.clone()));
        let task = tokio::task::spawn_blocking(move || {
            let _clear = ClearOnDrop(flag);
            let store = Store::open(&path).map_err(|e| RemoteError {
                op: "open",
                url: remote::redact(&url2),
                message: e.to_string(),
                kind: Failure::Other,
            })?;
            op(&transport, &store, &url2, &id, &moved)
        });
        let watched = watch(task, progress, bounds);
        let outcome = self.commit_while(watched).await;
        *self.shared.transfer.lock().expect("transfer lock") = None;
        let Some(outcome) = outcome else {
            return Err(fail("not started or not awaited: ferry is stopping".into()));
        };
        let result = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(why) => Err(RemoteError {
                kind: Failure::Network,
                ..fail(format!("{why}; gave up this attempt"))
            }),
        };
        let refused = matches!(&result, Err(e) if e.kind == Failure::Rejected);
        {
            let mut s = self.shared.status.lock().expect("status lock");
            s.remote_reachable = Some(result.is_ok() || refused);
        }
        match &result {
            Ok(()) => {
                self.backoff = None;
                self.set_paused(None);
            }
            // The remote answered: fetches go on, and pushes wait on their own backoff.
            Err(e) if refused => {
                let delay = self.refused.map_or(Duration::from_secs(1), |(_, d)| {
                    (d * 2).min(self.config.backoff_max)
                });
                self.refused = Some((Instant::now() + delay, delay));
                tracing::warn!(error = %e, retry_in = ?delay, "the remote refused the push");
                self.error(e.to_string());
            }
            // One refused login, then nothing until the user acts (`ferry sync`) or a long
            // pause passes: the same credentials are never retried in a loop.
            Err(e) if e.kind.needs_the_user() => {
                let until = Instant::now() + self.config.auth_pause;
                tracing::warn!(error = %e, pause = ?self.config.auth_pause, "the remote needs the user; transfers paused");
                self.backoff = Some((until, self.config.auth_pause));
                self.set_paused(Some(e.message.clone()));
                self.error(e.to_string());
            }
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

    /// A failure of `op` on this engine's remote.
    pub(super) fn remote_error(
        &self,
        op: &'static str,
        message: String,
        kind: Failure,
    ) -> RemoteError {
        RemoteError {
            op,
            url: self
                .remote
                .as_deref()
                .map(remote::redact)
                .unwrap_or_default(),
            message,
            kind,
        }
    }

    /// Records whether transfers are paused until the user acts, and why.
    fn set_paused(&mut self, why: Option<String>) {
        self.shared.status.lock().expect("status lock").paused = why;
    }

    /// Records that another install writes this machine's branch (its commits name run
    /// `other`, which this install never had): pushes stop, the status says what to do, and the
    /// next start takes a new machine id (a marker beside the runs file).
    fn twin_found(&mut self, other: &str) {
        let why = format!(
            "another install writes this machine's branch (commits of run {other}, never this install's: a cloned disk or VM?). This one stopped pushing and keeps committing here; run `ferry unmount && ferry mount` to give it a machine id of its own (its files come along)"
        );
        if self.twin.is_none() {
            tracing::error!(run = other, "{why}");
            if let Some(runs) = &self.config.runs_file {
                let marker = serde_json::json!({"other_run": other, "at_ms": now_ms()});
                let _ = std::fs::write(runs.with_file_name(super::TWIN_FILE), marker.to_string());
            }
        }
        self.twin = Some(why.clone());
        self.shared.status.lock().expect("status lock").twin = Some(why);
    }

    /// Pushes this machine's branch; `Ok(false)` when it has none yet (nothing was ever
    /// committed here), so the remote was not contacted. Commits made while the push ran leave
    /// it unpushed.
    pub(super) async fn push(&mut self) -> Result<bool, RemoteError> {
        if let Some(why) = &self.twin {
            return Err(self.remote_error("push", why.clone(), Failure::Other));
        }
        let (path, own) = (self.store_path.clone(), self.machine.id.clone());
        let head = tokio::task::spawn_blocking(move || Store::open(&path)?.head(&own, true)).await;
        if matches!(head, Ok(Ok(None))) {
            self.unpushed = false;
            return Ok(false);
        }
        // A plain branch never goes out before this run has seen the remote is not encrypted.
        if !self.plain_known && self.config.sealing.is_none() {
            let max = self.config.max_fetch_bytes;
            self.network("fetch", move |t, store, url, _, _| {
                t.probe_plain(store, url, max)
            })
            .await?;
            self.plain_known = true;
        }
        let commits = self.commits;
        let sealing = self.config.sealing.clone();
        // Whether the remote's branch moved, as the push itself saw (a copy remembered from
        // another remote, before `ferry init --remote` changed it, would say otherwise).
        let sent = Arc::new(AtomicBool::new(false));
        let sent_in = sent.clone();
        let r = self
            .network("push", move |t, store, url, id, moved| {
                let went = t.push(store, url, id, moved, sealing.as_deref())?;
                sent_in.store(went, Ordering::Relaxed);
                Ok(())
            })
            .await;
        if let Err(e) = &r
            && e.kind == Failure::Rejected
        {
            // A push carrying a fold that the remote refuses as a rewrite, or three times in a
            // row for any reason, has the fold undone; one refused for a passing reason (a
            // killed push's leftovers there) is only retried.
            self.rejections += 1;
            let rewrite = ["non-fast-forward", "force", "protected"]
                .iter()
                .any(|w| e.message.to_lowercase().contains(w));
            if rewrite || self.rejections >= 3 {
                self.unfold_after_refusal().await;
            }
        }
        if r.is_ok() {
            self.sent = sent.load(Ordering::Relaxed);
            self.rejections = 0;
            self.refused = None;
            self.unpushed = self.commits != commits;
            self.shared.status.lock().expect("status lock").last_push_ms = Some(now_ms());
            self.refresh_status().await;
        }
        r.map(|()| true)
    }

    /// Fetches every machine's branch and tells subscribers which files changed.
    pub(super) async fn fetch(&mut self) -> Result<(), RemoteError> {
        let max = self.config.max_fetch_bytes;
        let sealing = self.config.sealing.clone();
        let unopened = Arc::new(std::sync::Mutex::new(Vec::new()));
        let unopened_in = unopened.clone();
        self.network("fetch", move |t, store, url, _, moved| {
            // A store with no other machine's branch yet (a new machine) takes only the tips:
            // the view needs nothing older, and `ferry restore` fetches the rest when asked.
            let history = match store.remote_machines() {
                Ok(m) if m.is_empty() => remote::History::Tips,
                _ => remote::History::New,
            };
            let fetch = |history| {
                let failed = t.fetch(store, url, max, moved, history, sealing.as_deref())?;
                *unopened_in.lock().expect("unopened lock") = failed;
                Ok::<(), RemoteError>(())
            };
            // A shallow fetch fails where there is nothing to fetch yet (git says nothing
            // then) and through libgit2's local transport: the whole history then. Never again
            // after a refused login or host key: that would ask twice.
            match fetch(history) {
                Err(e)
                    if history == remote::History::Tips
                        && matches!(e.kind, remote::Failure::Network | remote::Failure::Other) =>
                {
                    fetch(remote::History::New)
                }
                done => done,
            }
        })
        .await?;
        self.plain_known = true;
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
                let moved = self.heads != heads;
                self.rejected.retain(|id, _| heads.contains_key(id));
                self.rejected.extend(rejected);
                self.heads = heads;
                let mut listed: Vec<String> = self.rejected.values().flatten().cloned().collect();
                listed.extend(unopened.lock().expect("unopened lock").drain(..));
                self.shared.status.lock().expect("status lock").rejected = listed;
                if !changed.is_empty() {
                    self.active();
                    let _ = self.shared.events.send(Event::Changed(changed));
                }
                // Any fetch that moved a branch left a pack, one that changed no file too (a
                // machine's record, a deletion).
                if moved {
                    self.fold_if_due().await;
                }
            }
            Ok(Err(e)) => self.error(format!("reading fetched branches: {e}")),
            Err(e) => self.error(format!("reading fetched branches: {e}")),
        }
        // The remote's copy of this machine's branch should be what was last pushed. If it is
        // not (history rewritten by a force-push, or the branch deleted), push it again now
        // rather than on the next write: other machines would see lines vanish meanwhile.
        // Unless another install writes this branch (a twin: a cloned disk or VM with this
        // machine's id): then pushing over its commits would hide its lines from every other
        // machine, so this install stops pushing and says what to do.
        let (path, own) = (self.store_path.clone(), self.machine.id.clone());
        let differs = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path)?;
            let differs = store.head(&own, true)? != store.head(&own, false)?;
            let runs = if differs {
                store.foreign_runs(&own)?
            } else {
                Default::default()
            };
            Ok::<_, StoreError>((differs, runs))
        })
        .await;
        let twin = match &differs {
            Ok(Ok((true, runs))) => runs
                .iter()
                .flatten()
                .find(|r| !self.known_runs.contains(*r))
                .cloned(),
            _ => None,
        };
        if let Some(other) = twin {
            self.twin_found(&other);
        } else if matches!(differs, Ok(Ok((true, _)))) && !self.unpushed {
            tracing::warn!(
                "the remote's copy of this machine's branch was rewritten or removed; pushing it again"
            );
            self.unpushed = true;
        }
        self.refresh_status().await;
        Ok(())
    }

    /// Waits for `transfer`, committing meanwhile whenever changes come due: a slow remote never
    /// holds local commits up. `None` when asked to stop first (the transfer's thread runs on,
    /// and `in_flight` says when it ends).
    async fn commit_while<T>(&mut self, transfer: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(transfer);
        let out = loop {
            let due_at = self.commit_at().unwrap_or_else(|| Instant::now() + FAR);
            tokio::select! {
                out = &mut transfer => break Some(out),
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(due_at.into()) => {}
            }
            let (stop, due) = {
                let p = self.shared.pending.lock().expect("pending lock");
                (
                    p.stop.is_some(),
                    commit_due(&p, &self.config, Instant::now()),
                )
            };
            if stop {
                break None;
            }
            if due {
                self.commit().await;
            }
        };
        // A wake taken here may have been meant for the loop (a sync or stop request).
        self.shared.wake.notify_one();
        out
    }

    /// Waits up to `limit` for a transfer still running on its thread to end; returns how long
    /// that took.
    pub(super) async fn settle(&self, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.in_flight.load(Ordering::SeqCst) && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }
}
type Changed = Vec<(String, String, crate::store::RelPath)>;

/// Heads after a fetch, what changed, and what was refused of each branch that moved (by
/// machine id; an empty list when nothing was).
type FetchOutcome = (
    HashMap<String, git2::Oid>,
    Changed,
    HashMap<String, Vec<String>>,
);

/// The files of `new` that are not in `old` as they are now. A project dir whose tree is the
/// one `old` read holds the same files, so only the dirs that changed are compared, file by
/// file and by place (two places of one project each have their own version of a path).
fn changed_files<'a>(
    old: Option<&Snapshot>,
    new: &'a Snapshot,
) -> impl Iterator<Item = &'a crate::store::FileEntry> {
    let old_dirs: HashMap<&str, &crate::store::ProjectDir> = old
        .iter()
        .flat_map(|s| s.dirs.iter())
        .map(|d| (d.name.as_str(), d))
        .collect();
    let at = |f: &crate::store::FileEntry| {
        (
            f.project.key.clone(),
            f.project.slug.clone(),
            f.rel.as_str().to_string(),
        )
    };
    // A read cut at the limits, or one without dirs, is compared whole.
    let whole = new.cut || old.is_some_and(|o| o.cut) || new.dirs.is_empty();
    let mut old_trees: HashMap<(String, String, String), git2::Oid> = HashMap::new();
    let mut wanted: Vec<std::ops::Range<usize>> = Vec::new();
    if whole {
        old_trees.extend(
            old.iter()
                .flat_map(|s| s.files.iter())
                .map(|f| (at(f), f.tree)),
        );
        wanted.push(0..new.files.len());
    } else {
        for d in &new.dirs {
            let before = old_dirs.get(d.name.as_str());
            if before.is_some_and(|b| b.tree == d.tree) {
                continue;
            }
            if let (Some(b), Some(o)) = (before, old) {
                let files = o.files.get(b.files.clone()).unwrap_or_default();
                old_trees.extend(files.iter().map(|f| (at(f), f.tree)));
            }
            wanted.push(d.files.clone());
        }
    }
    wanted
        .into_iter()
        .flat_map(|r| new.files.get(r).unwrap_or_default())
        .filter(move |f| old_trees.get(&at(f)) != Some(&f.tree))
}

/// Other machines' heads now, the files that changed since `before`, and rejected entries.
fn changes_since(
    path: &std::path::Path,
    own: &str,
    before: &HashMap<String, git2::Oid>,
) -> Result<FetchOutcome, StoreError> {
    let store = Store::open(path)?;
    let mut heads = HashMap::new();
    let mut changed = Vec::new();
    let mut rejected = HashMap::new();
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
                rejected.insert(id.clone(), vec![format!("machine {id}: {e}")]);
                continue;
            }
        };
        rejected.insert(
            id.clone(),
            new.rejected.iter().map(|e| e.to_string()).collect(),
        );
        let old: Option<Snapshot> = before.get(&id).and_then(|&h| store.snapshot(&id, h).ok());
        changed.extend(
            changed_files(old.as_ref(), &new)
                .map(|f| (id.clone(), f.project.key.clone(), f.rel.clone())),
        );
    }
    Ok((heads, changed, rejected))
}
