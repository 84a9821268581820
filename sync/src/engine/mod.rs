//! The background sync engine: debounced commits of this machine's changes, pushes of its
//! branch, periodic and on-demand fetches, and notices of what other machines changed.
//!
//! No caller ever waits on the network: [`EngineHandle::note`] only records a change, and every
//! git operation runs on a blocking thread. A transfer is given up once it stops moving, and
//! commits go on while one runs. When the remote fails, the engine backs off (doubling up to a
//! limit) and keeps committing locally.

mod credentials;
mod fetch_moved;
mod git_cli;
mod remote;
mod sealed;
mod sealed_wire;
mod stale_lock;
mod status;
mod transfer;
mod watch;

pub use git_cli::{GitCli, Lease, classify};
pub use remote::{Failure, History, Progress, REF_MAX_BYTES, RemoteError, Transferred, redact};
pub use sealed::{forget_remote_branches, remote_branches};
pub use status::{MachineStatus, Status, Transfer, Unsyncable, Waiting, now_ms};

use crate::store::{Change, MachineRecord, PlaceId, ProjectRecord, RelPath};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast, oneshot};

/// The user's home, where ssh keys live.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" }).map(PathBuf::from)
}

/// The marker a twin leaves beside the runs file, for the next start to take a new machine id.
pub const TWIN_FILE: &str = "twin.json";

/// Most runs the runs file keeps.
const MAX_RUNS: usize = 1000;

/// A random id for this engine run (16 hex digits).
fn new_run() -> String {
    crate::store::random_id()
}

/// The runs this install had, with `run` added and saved (the newest [`MAX_RUNS`]).
fn remember_run(file: Option<&std::path::Path>, run: &str) -> std::collections::BTreeSet<String> {
    let mut runs: Vec<String> = file
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    runs.push(run.to_string());
    let excess = runs.len().saturating_sub(MAX_RUNS);
    runs.drain(..excess);
    if let Some(f) = file {
        let tmp = f.with_extension("tmp");
        let saved = serde_json::to_vec(&runs)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, f));
        if let Err(e) = saved {
            tracing::warn!(file = %f.display(), error = %e, "saving the runs file failed");
        }
    }
    runs.into_iter().collect()
}

/// How long the view must have gone untouched for a touch to ask for a fetch at once.
const TOUCH_QUIET: Duration = Duration::from_secs(30);

/// How long history is kept by default: DESIGN.md's horizon, 30 days.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Timing of the engine; the defaults make a line visible on another machine within seconds.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Commit once no change has arrived for this long.
    pub quiet: Duration,
    /// Commit at the latest this long after the first pending change.
    pub max_delay: Duration,
    /// Fetch this often while this machine or another one is active.
    pub fetch_every: Duration,
    /// Fetch this often when every machine is quiet.
    pub idle_fetch_every: Duration,
    /// How long after the last sign of activity (a change here, a new commit of another
    /// machine's) fetching stays at `fetch_every`.
    pub active_for: Duration,
    /// How long transfers pause after a failure only the user can fix (a refused login, an
    /// unknown host key), unless `ferry sync` asks sooner.
    pub auth_pause: Duration,
    /// How the network is reached: the user's `git` (the default), or libgit2.
    pub transport: TransportChoice,
    /// Where ssh control sockets go (the state dir), for reusing connections.
    pub state_dir: Option<PathBuf>,
    /// Fetch as soon as the engine starts (a daemon); a one-shot `ferry sync` asks by itself.
    pub fetch_at_start: bool,
    /// Where this install lists the engine runs it had (each commit names its run): a branch
    /// holding commits of other runs was written by a twin.
    pub runs_file: Option<PathBuf>,
    /// The network's time scale: the connect timeout, and the unit of the bounds on a fetch or
    /// push (`watch::Bounds`). A transfer that keeps moving is never cut short by it.
    pub net_timeout: Duration,
    /// Longest wait between retries while the remote fails.
    pub backoff_max: Duration,
    /// Most bytes one fetch may receive.
    pub max_fetch_bytes: u64,
    /// Repack the store into one delta pack after this many commits (0: never).
    pub compact_every: u32,
    /// How much of this machine's history its branch keeps (`None`: all of it); older history
    /// is folded into one commit (`Store::fold_history`).
    pub history: Option<Duration>,
    /// How often the engine looks for history to fold.
    pub history_check_every: Duration,
    /// Fold the store's packs once there are more than this many (0: never): every fetch that
    /// brings something leaves a pack, and a machine that mostly reads commits too seldom for
    /// `compact_every` to keep their number down.
    pub pack_limit: usize,
    /// This machine's `projects/` directory, reconciled with the branch at start: whatever it
    /// holds that the branch lacks (a crash, edits while unmounted) is committed first.
    pub upper: Option<PathBuf>,
    /// `ferry link` entries, for the projects of directories found at the reconcile.
    pub links: Vec<crate::project_key::Link>,
    /// The records of the slug dirs where the view placed other machines' projects, by slug:
    /// what the reconcile files such a dir under when the branch does not know it yet.
    pub placed: HashMap<String, ProjectRecord>,
    /// What commits do with secrets in new content.
    pub secrets: crate::secrets::Policy,
    /// The store key of an encrypted store: this machine's branch is sealed before it is
    /// pushed, and the fetched branches are opened (`None`: a plain store).
    pub sealing: Option<Arc<crate::crypt::sealing::Sealing>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            quiet: Duration::from_millis(300),
            max_delay: Duration::from_secs(2),
            fetch_every: Duration::from_secs(2),
            idle_fetch_every: Duration::from_secs(30),
            active_for: Duration::from_secs(180),
            auth_pause: Duration::from_secs(600),
            transport: TransportChoice::Git,
            state_dir: None,
            fetch_at_start: true,
            runs_file: None,
            net_timeout: Duration::from_secs(15),
            backoff_max: Duration::from_secs(60),
            max_fetch_bytes: 8 << 30,
            compact_every: 1000,
            history: Some(DEFAULT_HISTORY),
            history_check_every: Duration::from_secs(3600),
            pack_limit: 32,
            upper: None,
            links: Vec::new(),
            placed: HashMap::new(),
            secrets: crate::secrets::Policy::default(),
            sealing: None,
        }
    }
}

/// Which transport to use for fetch and push.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransportChoice {
    /// The user's `git` on PATH, falling back to libgit2 if there is none.
    #[default]
    Git,
    /// libgit2 only.
    Libgit2,
}

/// The transport the engine runs transfers with.
#[derive(Clone, Debug)]
pub(crate) enum Transport {
    /// The user's `git`.
    Git(GitCli),
    /// libgit2 (no usable `git`, or asked for).
    Libgit2,
}

impl Transport {
    fn choose(config: &EngineConfig) -> Transport {
        match config.transport {
            TransportChoice::Git => GitCli::probe(config.state_dir.as_deref())
                .map_or(Transport::Libgit2, Transport::Git),
            TransportChoice::Libgit2 => Transport::Libgit2,
        }
    }

    /// Packs everything reachable and drops what nothing reaches: with the user's git
    /// (`GitCli::reclaim`, which reuses the packs' deltas: a tenth of the cost), else, or if
    /// that fails, by `Store::compact`. Says which did it.
    fn reclaim(
        &self,
        store: &crate::store::Store,
    ) -> Result<&'static str, crate::store::StoreError> {
        if let Transport::Git(git) = self {
            match git.reclaim(store) {
                Ok(()) => return Ok("git repack"),
                Err(e) => tracing::warn!(error = %e, "git repack failed; compacting instead"),
            }
        }
        store.compact().map(|_| "compaction")
    }

    /// Fetches every machine's branch into `store`, with `history`, by this transport, and
    /// opens them if the store is sealed; what did not open, by machine.
    fn fetch(
        &self,
        store: &crate::store::Store,
        url: &str,
        max_bytes: u64,
        progress: &remote::Progress,
        history: History,
        sealing: Option<&crate::crypt::sealing::Sealing>,
    ) -> Result<Vec<String>, RemoteError> {
        let dest = sealed::fetch_dest(sealing);
        // A plain store's branches as they were: put back if the fetch turns out to have
        // brought an encrypted store's sealed ones.
        let before = match sealing {
            None => Some(sealed::remote_branches(store)),
            Some(_) => None,
        };
        match self {
            Transport::Git(git) => git.fetch(store, url, max_bytes, progress, history, dest),
            // libgit2 tells the remote of every commit under every ref (`have`), plain ones too.
            Transport::Libgit2 if sealing.is_some() => Err(sealed::refused(
                "fetch",
                url,
                "an encrypted store fetches with `git` only (libgit2 would name this machine's plain commits to the remote): install git so that `git --version` runs, then run `ferry unmount && ferry mount`".into(),
            )),
            Transport::Libgit2 => remote::fetch(store, url, max_bytes, progress, history, dest),
        }?;
        sealed::after_fetch(
            store,
            url,
            sealing,
            history == History::All,
            before.as_deref(),
        )
    }

    /// Fetches the remote's keyring branch alone, and fails if there is one: for a plain store
    /// about to push, when no fetch has gone through yet (a huge or broken branch may stop
    /// those for good).
    fn probe_plain(
        &self,
        store: &crate::store::Store,
        url: &str,
        max_bytes: u64,
    ) -> Result<(), RemoteError> {
        let refspec = crate::crypt::sealing::FERRY_REFSPEC;
        let max_bytes = max_bytes.min(remote::REF_MAX_BYTES);
        match self {
            Transport::Git(git) => git.fetch_ref(store, url, refspec, max_bytes),
            Transport::Libgit2 => remote::fetch_ref(store, url, refspec, max_bytes),
        }?;
        sealed::after_fetch(store, url, None, false, None).map(|_| ())
    }

    /// The commit the remote's ref `refname` names now, by this transport.
    fn head_of(
        &self,
        store: &crate::store::Store,
        url: &str,
        refname: &str,
    ) -> Result<Option<git2::Oid>, RemoteError> {
        match self {
            Transport::Git(git) => git.head_of(url, refname),
            Transport::Libgit2 => remote::head_of(store, url, refname),
        }
    }

    /// Pushes this machine's branch, sealed first if the store is; `true` when the remote's
    /// branch moved (it lacked what was pushed).
    fn push(
        &self,
        store: &crate::store::Store,
        url: &str,
        machine_id: &str,
        progress: &remote::Progress,
        sealing: Option<&crate::crypt::sealing::Sealing>,
    ) -> Result<bool, RemoteError> {
        let sealed = sealed::before_push(store, url, machine_id, sealing)?;
        let push = |lease| match self {
            Transport::Git(git) => git.push(store, url, machine_id, progress, sealed, lease),
            Transport::Libgit2 => remote::push(store, url, machine_id, progress, sealed, lease),
        };
        // A plain branch replaces only the remote's copy this machine last saw: one sealed in
        // its place since (`ferry encrypt` on another machine) is never pushed over. Any other
        // move (a branch rewritten or deleted there, a push that landed but was not recorded)
        // is pushed over once the remote is seen not to be encrypted.
        let lease = match sealed {
            None => Some(
                store
                    .head(machine_id, false)
                    .map_err(|e| sealed::refused("push", url, e.to_string()))?,
            ),
            Some(_) => None,
        };
        let moved = match push(lease) {
            Err(e) if lease.is_some() && e.message.contains(remote::STALE) => {
                tracing::info!(
                    "the remote's copy of this branch moved; checking it is not encrypted"
                );
                // Listed first, then the keyring looked for, then pushed over only as listed: a
                // store encrypted meanwhile (sealed branches and keyring in one push) is seen
                // by the look, or refuses the push.
                let there = self.head_of(store, url, &crate::store::own_ref(machine_id))?;
                self.probe_plain(store, url, remote::REF_MAX_BYTES)
                    .map_err(|e| RemoteError { op: "push", ..e })?;
                push(Some(there))
            }
            // A dead push's lock on this machine's branch in a remote on this computer.
            Err(e)
                if stale_lock::is_lock_failure(&e.message)
                    && stale_lock::clear_own_lock(url, machine_id) =>
            {
                push(lease)
            }
            done => done,
        }?;
        if let (Some(s), Some(sealed)) = (sealing, sealed) {
            s.pushed(store, machine_id, sealed)
                .map_err(|e| sealed::refused("push", url, e.to_string()))?;
        }
        Ok(moved)
    }

    /// How `ferry status` names it.
    fn describe(&self, asked: TransportChoice) -> String {
        match (self, asked) {
            (Transport::Git(g), _) => g.version.clone(),
            (Transport::Libgit2, TransportChoice::Libgit2) => "libgit2".into(),
            (Transport::Libgit2, TransportChoice::Git) => {
                "libgit2: no usable `git` on PATH, so ssh config, agents' confirmations and credential helpers work only as libgit2 supports them; install git".into()
            }
        }
    }
}

/// Something subscribers (the mount) need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Another machine's files changed: `(machine id, project key, path)`.
    Changed(Vec<(String, String, RelPath)>),
    /// This machine committed: the commit, and the places it changed.
    Committed(String, Vec<PlaceId>),
}

/// What one explicit sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The commit made, if anything was pending.
    pub committed: Option<String>,
    /// Whether the remote was reached for both fetch and push (`None`: no remote).
    pub remote_ok: Option<bool>,
    /// The network error, if any.
    pub error: Option<String>,
    /// Why the last commit failed, if it did (the changes stay pending, and nothing is lost).
    pub commit_error: Option<String>,
    /// Whether this engine had a remote to sync with.
    pub had_remote: bool,
    /// Whether the push sent commits the remote's copy of this machine's branch lacked.
    pub sent: bool,
}

#[derive(Default)]
struct Pending {
    /// By place and path: two places of one project never merge their changes.
    files: BTreeMap<(PlaceId, RelPath), (Change, u64)>,
    projects: HashMap<PlaceId, ProjectRecord>,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    waiters: Vec<oneshot::Sender<SyncReport>>,
    sync_requested: bool,
    /// A fetch is wanted at once (the view was touched after a quiet spell).
    fetch_requested: bool,
    stop: Option<(Duration, oneshot::Sender<SyncReport>)>,
    /// A new name and retirements for this machine's record (`ferry machines` while mounted),
    /// committed by themselves at the next commit.
    identity: Option<(String, BTreeMap<String, i64>)>,
}

struct Shared {
    /// When the view was last touched (ms since the epoch), read on the mount's paths.
    touched_ms: std::sync::atomic::AtomicI64,
    pending: Mutex<Pending>,
    status: Mutex<Status>,
    /// The fetch or push running now.
    transfer: Mutex<Option<(&'static str, remote::Progress)>>,
    wake: Notify,
    events: broadcast::Sender<Event>,
}

/// One pending change followed by a later one for the same path: the later kind wins, and a
/// write keeps the lowest offset either knew to be dirty, so no changed range is forgotten.
fn combine(earlier: (Change, u64), later: (Change, u64)) -> (Change, u64) {
    match (earlier, later) {
        (
            (Change::Write { dirty_from: a, .. }, b0),
            (
                Change::Write {
                    local,
                    dirty_from: b,
                },
                b1,
            ),
        ) => {
            let dirty_from = a.zip(b).map(|(a, b)| a.min(b));
            (Change::Write { local, dirty_from }, b0 + b1)
        }
        // A write after a delete recreates the file: nothing before it is known unchanged.
        ((Change::Delete { .. } | Change::Hide { .. }, _), (Change::Write { local, .. }, b1)) => (
            Change::Write {
                local,
                dirty_from: None,
            },
            b1,
        ),
        (_, later) => later,
    }
}

/// The cheap, cloneable side of the engine that the mount and the CLI hold.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl EngineHandle {
    /// Records a change to commit soon. Never blocks on I/O.
    pub fn note(&self, project: &ProjectRecord, rel: RelPath, change: Change, bytes: u64) {
        let mut p = self.shared.pending.lock().expect("pending lock");
        let now = Instant::now();
        // Only the first pending change needs to wake the worker: it then sleeps until the
        // quiet period after the latest change (or the maximum delay) by itself. Waking it on
        // every append would cost a context switch per write on the mount's hot path.
        let wake = p.first_at.is_none();
        p.first_at.get_or_insert(now);
        p.last_at = Some(now);
        let place = project.place();
        p.projects
            .entry(place.clone())
            .or_insert_with(|| project.clone());
        let key = (place, rel);
        let merged = match p.files.remove(&key) {
            Some(earlier) => combine(earlier, (change, bytes)),
            None => (change, bytes),
        };
        p.files.insert(key, merged);
        drop(p);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Records which changes wait for their project to be known (see [`Waiting`]).
    pub fn set_waiting(&self, waiting: Vec<Waiting>) {
        self.shared.status.lock().expect("status lock").waiting = waiting;
    }

    /// Records which files written here the store cannot hold (see [`Unsyncable`]).
    pub fn set_unsyncable(&self, unsyncable: Vec<Unsyncable>) {
        self.shared.status.lock().expect("status lock").unsyncable = unsyncable;
    }

    /// Notes that the view was used (Claude Code looking at its projects): after a quiet
    /// spell, that asks for a fetch at once, without anything waiting for it.
    pub fn touch(&self) {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let last = self.shared.touched_ms.swap(now, Ordering::Relaxed);
        if now.saturating_sub(last) >= TOUCH_QUIET.as_millis() as i64 {
            self.shared
                .pending
                .lock()
                .expect("pending lock")
                .fetch_requested = true;
            self.shared.wake.notify_one();
        }
    }

    /// Takes a new name and set of retired machines for this machine's record (`ferry machines
    /// rename|retire` while mounted): they go out with a commit of their own after the quiet
    /// period.
    pub fn set_identity(&self, name: String, retired: BTreeMap<String, i64>) {
        let mut p = self.shared.pending.lock().expect("pending lock");
        p.identity = Some((name, retired));
        // Due like any change: committed after the quiet period and pushed as commits are
        // (never past a pause for refused credentials).
        let now = Instant::now();
        p.first_at.get_or_insert(now);
        p.last_at = Some(now);
        drop(p);
        self.shared.wake.notify_one();
    }

    /// Asks for a commit, fetch and push as soon as possible; returns at once.
    pub fn sync_soon(&self) {
        self.shared
            .pending
            .lock()
            .expect("pending lock")
            .sync_requested = true;
        self.shared.wake.notify_one();
    }

    /// Commits, fetches and pushes now, and waits for the outcome.
    pub async fn sync_now(&self) -> SyncReport {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().expect("pending lock");
            p.waiters.push(tx);
            p.sync_requested = true;
        }
        self.shared.wake.notify_one();
        rx.await.unwrap_or_default()
    }

    /// Commits what is pending, pushes within `deadline`, and stops the engine.
    pub async fn shutdown(&self, deadline: Duration) -> SyncReport {
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().expect("pending lock").stop = Some((deadline, tx));
        self.shared.wake.notify_one();
        rx.await.unwrap_or_default()
    }

    /// A copy of the current status.
    pub fn status(&self) -> Status {
        let mut s = self.shared.status.lock().expect("status lock").clone();
        let p = self.shared.pending.lock().expect("pending lock");
        // Changes that wait for their project are pending too, only not the engine's yet.
        s.pending_paths = p.files.len() + s.waiting.iter().map(|w| w.paths).sum::<usize>();
        s.pending_bytes = p.files.values().map(|(_, b)| b).sum();
        s.transfer = self.transfer();
        s
    }

    /// The fetch or push running now, and how far it has got.
    pub fn transfer(&self) -> Option<Transfer> {
        let t = self.shared.transfer.lock().expect("transfer lock");
        t.as_ref().map(|(op, p)| Transfer {
            op: op.to_string(),
            so_far: p.so_far(),
        })
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }
}

/// Fetches every machine's branch once, with `history`, through the user's `git` (libgit2
/// without one): for a command that fetches by itself, such as `ferry restore` bringing the
/// history a new machine did not fetch.
pub fn fetch_once(
    store: &crate::store::Store,
    url: &str,
    history: History,
    progress: &remote::Progress,
    sealing: Option<&crate::crypt::sealing::Sealing>,
) -> Result<Vec<String>, RemoteError> {
    let config = EngineConfig::default();
    Transport::choose(&config).fetch(
        store,
        url,
        config.max_fetch_bytes,
        progress,
        history,
        sealing,
    )
}

/// Fetches `refspec` alone (the keyring of an encrypted store) through the user's `git`, or
/// libgit2 without one.
pub fn fetch_ref(
    store: &crate::store::Store,
    url: &str,
    refspec: &str,
    state_dir: Option<&std::path::Path>,
) -> Result<(), RemoteError> {
    match GitCli::probe(state_dir) {
        Some(git) => git.fetch_ref(store, url, refspec, remote::REF_MAX_BYTES),
        None => remote::fetch_ref(store, url, refspec, remote::REF_MAX_BYTES),
    }
}

/// Starts the engine on the current tokio runtime and returns its handle.
pub fn start(
    store_path: PathBuf,
    machine: MachineRecord,
    remote: Option<String>,
    config: EngineConfig,
) -> EngineHandle {
    remote::set_timeouts(
        config.net_timeout,
        config.net_timeout * watch::SOCKET_FACTOR,
    );
    let (events, _) = broadcast::channel(256);
    let transport = Transport::choose(&config);
    let shared = Arc::new(Shared {
        touched_ms: std::sync::atomic::AtomicI64::new(now_ms()),
        pending: Mutex::new(Pending::default()),
        transfer: Mutex::new(None),
        status: Mutex::new(Status {
            remote: remote.as_deref().map(redact),
            transport: remote
                .is_some()
                .then(|| transport.describe(config.transport)),
            ..Status::default()
        }),
        wake: Notify::new(),
        events,
    });
    let active_for = config.active_for;
    let run = new_run();
    let known_runs = remember_run(config.runs_file.as_deref(), &run);
    let worker = Worker {
        shared: shared.clone(),
        store_path,
        machine,
        remote,
        config,
        heads: HashMap::new(),
        rejected: std::collections::BTreeMap::new(),
        backoff: None,
        refused: None,
        rejections: 0,
        commit_failures: 0,
        unpushed: true,
        plain_known: false,
        sent: false,
        commits: 0,
        early_commit: None,
        commits_since_compact: 0,
        next_history_check: Instant::now(),
        reclaim_after_push: false,
        in_flight: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        transport,
        run,
        known_runs,
        twin: None,
        // Just started (a login, a mount): likely about to be used.
        active_until: Instant::now() + active_for,
    };
    tokio::spawn(worker.run());
    EngineHandle { shared }
}

struct Worker {
    shared: Arc<Shared>,
    store_path: PathBuf,
    machine: MachineRecord,
    remote: Option<String>,
    config: EngineConfig,
    /// Other machines' heads after the last fetch, to tell what changed.
    heads: HashMap<String, git2::Oid>,
    /// What was refused of each other machine's branch when its head was last read: kept
    /// until the branch moves or goes, so that `ferry status` lists it all along, by machine.
    rejected: std::collections::BTreeMap<String, Vec<String>>,
    /// While the remote fails: when to try again, and the current delay.
    backoff: Option<(Instant, Duration)>,
    /// While the remote refuses pushes (it answers, so fetches go on): when to push again,
    /// and the current delay.
    refused: Option<(Instant, Duration)>,
    /// Pushes the remote refused in a row.
    rejections: u32,
    /// Commits failed in a row (a full disk, say): the next try waits longer, up to a minute.
    commit_failures: u32,
    /// Whether the branch may hold commits the remote lacks (true at start: a previous run may
    /// have committed offline).
    unpushed: bool,
    /// Whether this run has seen that the remote's store is not encrypted (a fetch went
    /// through, or a look at its keyring branch): a plain store pushes nothing before.
    plain_known: bool,
    /// Whether the last push that went through sent commits the remote lacked.
    sent: bool,
    /// Commits made by this run, so a push can tell whether one landed while it ran.
    commits: u64,
    /// A commit made while a sync request waited for a running transfer, for its report.
    early_commit: Option<String>,
    /// Commits since the store was last compacted.
    commits_since_compact: u32,
    /// When to look for history past the horizon next.
    next_history_check: Instant,
    /// Whether a fold waits for its push before compaction reclaims what it replaced.
    reclaim_after_push: bool,
    /// Whether a fetch or push is running on a blocking thread (possibly past its timeout).
    in_flight: Arc<std::sync::atomic::AtomicBool>,
    /// How fetches and pushes reach the remote.
    transport: Transport,
    /// This engine run's id, named in each commit.
    run: String,
    /// Every run this install had (its runs file), this one included.
    known_runs: std::collections::BTreeSet<String>,
    /// Why pushes stopped, when another install writes this machine's branch.
    twin: Option<String>,
    /// Until when some machine counts as active: fetches run at `fetch_every` until then, at
    /// `idle_fetch_every` after.
    active_until: Instant,
}

mod horizon;
mod worker;

#[cfg(test)]
mod tests {
    use super::*;

    fn write(from: Option<u64>) -> (Change, u64) {
        (
            Change::Write {
                local: "/x".into(),
                dirty_from: from,
            },
            1,
        )
    }

    #[test]
    fn combining_keeps_the_lowest_dirty_offset_and_the_later_kind() {
        let c = |a, b| match combine(a, b).0 {
            Change::Write { dirty_from, .. } => Some(dirty_from),
            _ => None,
        };
        assert_eq!(c(write(Some(100)), write(Some(5000))), Some(Some(100)));
        assert_eq!(c(write(Some(100)), write(None)), Some(None));
        assert_eq!(
            c((Change::Delete { at_ms: 1 }, 0), write(Some(7))),
            Some(None)
        );
        assert!(matches!(
            combine(write(Some(1)), (Change::Delete { at_ms: 2 }, 0)).0,
            Change::Delete { .. }
        ));
    }
}
