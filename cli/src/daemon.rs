//! The daemon behind a mount: opens the upper layer, starts the sync engine, mounts the view,
//! refreshes it after each fetch, answers commands on its control socket, and when asked to stop
//! (`ferry unmount`, or SIGTERM, SIGINT or SIGHUP: see [`control`]) unmounts, commits, pushes
//! within a deadline and exits 0.

#[cfg(mounts)]
mod control;
#[cfg(mounts)]
mod place;

#[cfg(mounts)]
use crate::control::{Reply, Request};
#[cfg(mounts)]
use crate::report::Report;
#[cfg(mounts)]
use crate::state;
use crate::state::State;
#[cfg(mounts)]
use anyhow::Context;
use anyhow::Result;
#[cfg(mounts)]
use control::{Control, Responder};
#[cfg(mounts)]
use ferry_fs::core::{Fs, FsConfig};
#[cfg(mounts)]
use ferry_fs::satellites::Mirror;
#[cfg(unix)]
use ferry_platform::mount::{MountState, mount_state, unmount};
#[cfg(mounts)]
use ferry_sync::engine::{self, EngineConfig, Event};
#[cfg(mounts)]
use ferry_sync::store::Store;
#[cfg(mounts)]
use serde::Serialize;
use std::path::Path;
#[cfg(mounts)]
use std::sync::Arc;
use std::time::Duration;

/// The live mount: FUSE on Unix, WinFsp on Windows.
#[cfg(unix)]
type Mounted = ferry_fs::fuse::Mounted;
#[cfg(all(windows, mounts))]
type Mounted = ferry_fs::winfsp::Mounted;

/// Mounts the view at `mountpoint` and returns once it is live.
#[cfg(unix)]
fn mount_view(fs: Arc<Fs>, mountpoint: &Path) -> std::io::Result<Mounted> {
    ferry_fs::fuse::mount(fs, mountpoint)
}

/// Mounts the view at `mountpoint` and returns once it is live.
#[cfg(all(windows, mounts))]
fn mount_view(fs: Arc<Fs>, mountpoint: &Path) -> std::io::Result<Mounted> {
    ferry_fs::winfsp::mount(fs, mountpoint)
}

/// How long the final push may take at unmount.
pub const PUSH_DEADLINE: Duration = Duration::from_secs(10);

/// The default byte budget of the disk cache.
pub const CACHE_BUDGET: u64 = 2 << 30;

#[cfg(mounts)]
/// How often the satellite mirror looks at the config dir: a task list changed on one machine
/// reaches the store within this, plus the engine's quiet period.
pub const SATELLITES_EVERY: Duration = Duration::from_secs(1);

/// How long files still open in the mount are served after `ferry unmount`.
pub const HANDLES_DEADLINE: Duration = Duration::from_secs(15);

#[cfg(mounts)]
/// Sends the daemon's logs to `ferry.log` in the state dir, rotated by size, and also to stderr
/// when systemd's journal reads it (`$JOURNAL_STREAM`). The level is `FERRY_LOG`, else `info`
/// (`debug` with `-v`, `trace` with `-vv`).
fn init_logging(state: &State, verbose: u8) -> Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let log = crate::logfile::RotatingLog::open(&state.log())
        .with_context(|| format!("opening {}", state.log().display()))?;
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let file = std::sync::Mutex::new(log);
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let stderr = std::io::stderr.with_filter(move |_| journal);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(file.and(stderr))
        .try_init();
    Ok(())
}

#[cfg(unix)]
/// Clears what a crashed daemon left at the mount point; fails if a live mount is there.
pub fn clear_mount_point(mountpoint: &Path) -> Result<()> {
    match mount_state(mountpoint) {
        MountState::None => Ok(()),
        MountState::Stale => {
            tracing::warn!(mountpoint = %mountpoint.display(), "recovering a stale mount left by a crashed daemon");
            eprintln!(
                "ferry: recovering the stale mount at {} (a previous daemon crashed)",
                mountpoint.display()
            );
            unmount(mountpoint).with_context(|| {
                format!(
                    "cannot remove the dead mount at {}; run `fusermount3 -u -z {}`",
                    mountpoint.display(),
                    mountpoint.display()
                )
            })
        }
        MountState::Live => anyhow::bail!(
            "{} is already mounted; `ferry unmount` first if you want to remount",
            mountpoint.display()
        ),
        MountState::Other => anyhow::bail!(
            "another filesystem is mounted at {}; unmount it first",
            mountpoint.display()
        ),
    }
}

/// Caps glibc's malloc at one arena, before the daemon starts its threads. With an arena per
/// thread, memory freed after each refresh of a 10,000-session view stayed with the thread that
/// freed it. Measured by hand over six fetches: resident memory rose to 205 MB with glibc's
/// default, 109 MB with two arenas, and about 75 MB with one. Each thread's small allocations
/// still go through glibc's per-thread cache.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tunable of the allocator; any value is valid to pass.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(all(mounts, not(all(target_os = "linux", target_env = "gnu"))))]
fn limit_malloc_arenas() {}

#[cfg(mounts)]
/// Starts the sync engine over the upper layer and builds the view on it (needs the runtime
/// entered).
fn start(
    state: &State,
    config: &state::Config,
    machine: &ferry_sync::store::MachineRecord,
    upper: ferry_fs::upper::Upper,
) -> Result<(engine::EngineHandle, Fs)> {
    let links = crate::projects::load_links(state)?;
    let store_path = state.store();
    Store::init(&store_path)
        .with_context(|| format!("opening the store {}", store_path.display()))?;
    let engine = engine::start(
        store_path.clone(),
        machine.clone(),
        config.remote.clone(),
        EngineConfig {
            upper: Some(upper.reach(Path::new(""))),
            links: links.clone(),
            placed: crate::projects::placed(state),
            state_dir: Some(state.dir.clone()),
            runs_file: Some(state.runs()),
            secrets: config.secrets,
            history: config.history(),
            sealing: crate::keys::sealing(state, config)?,
            ..EngineConfig::default()
        },
    );
    let fs = Fs::new(
        upper,
        FsConfig {
            machine: machine.clone(),
            store: store_path,
            cache_dir: state.cache(),
            cache_budget: CACHE_BUDGET,
            links,
            marks: state.dir.join("marks.json"),
            places: state.places(),
        },
        Arc::new(engine.clone()),
    )
    .context("building the view")?;
    Ok((engine, fs))
}

#[cfg(mounts)]
/// Runs the daemon in this process until a signal or an external unmount; `ready` is called
/// once the mount is live.
pub fn run(state: &State, verbose: u8, ready: impl FnOnce()) -> Result<()> {
    limit_malloc_arenas();
    let config = state.config()?;
    let _lock = state.take_lock()?;
    init_logging(state, verbose)?;
    let mountpoint = state::mount_point()?;
    let _ = std::fs::remove_file(state.mounted());
    let upper = place::open_upper(state, &mountpoint)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    let machine = state::machine_record(&config)?;
    let (engine, fs) = start(state, &config, &machine, upper)?;
    let events = engine.subscribe();
    // Before the mount is live: a `ferry unmount` right after `ferry mount` returns must find
    // the pid and a handler for its SIGTERM.
    let control = Control::new(state)?;
    std::fs::write(state.pid(), std::process::id().to_string())?;
    let mounted = mount_view(Arc::new(fs), &mountpoint)
        .with_context(|| format!("mounting {}", mountpoint.display()))?;
    tracing::info!(mountpoint = %mountpoint.display(), machine = %machine.name, "mounted");
    let _ = std::fs::write(state.mounted(), mountpoint.to_string_lossy().as_bytes());
    ready();
    let mounted = Arc::new(mounted);
    warm(&mounted);
    find_unsyncable(&mounted);
    let mirror = Arc::new(std::sync::Mutex::new(Mirror::new(
        &state::config_dir()?,
        &state.dir,
    )));
    let (report, asked_by) = runtime.block_on(serve(
        mounted.clone(),
        engine.clone(),
        events,
        control,
        mirror,
        &mountpoint,
        state,
    ));
    let _ = std::fs::remove_file(state.mounted());
    let _ = std::fs::remove_file(state.pid());
    let _ = std::fs::remove_file(crate::control::endpoint(state));
    // The record of the last stop, for a stop no command asked for (a service manager's).
    let _ = publish(&state.last_unmount(), &report);
    match &report.error {
        Some(e) => tracing::warn!(error = %e, "unmounted; the push failed, data is safe locally"),
        None => tracing::info!(commit = ?report.committed, "unmounted cleanly"),
    }
    // Each connection drops its end once the reply is written: wait for that, since stopping
    // the runtime drops its tasks where they stand.
    runtime.block_on(async {
        for reply in asked_by {
            if reply
                .send(Reply::Done {
                    report: report.clone(),
                })
                .is_ok()
            {
                let _ = tokio::time::timeout(Duration::from_secs(5), reply.closed()).await;
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

#[cfg(mounts)]
/// [`crate::files::write_json`] for the daemon's own files: a failure (a full disk, say) is
/// logged, never fatal; returns whether the file was written.
fn publish(path: &Path, value: &impl Serialize) -> bool {
    match crate::files::write_json(path, value) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "writing failed");
            false
        }
    }
}

#[cfg(mounts)]
/// Keeps the secrets the engine found for `ferry status` (`secrets.json`) when they changed.
fn keep_findings(state: &State, engine: &engine::EngineHandle, last: &mut String) {
    let secrets = engine.status().secrets;
    // By content: the engine keeps the newest findings only, so their number stops changing.
    let now = serde_json::to_string(&secrets).unwrap_or_default();
    if now != *last {
        state.record_findings(&secrets);
        *last = now;
    }
}

#[cfg(mounts)]
/// Expands other machines' files into the disk cache in the background.
fn warm(mounted: &Arc<Mounted>) {
    let m = mounted.clone();
    tokio::task::spawn_blocking(move || match m.fs().warm() {
        0 => tracing::debug!("nothing new to expand ahead of use"),
        n => tracing::info!(files = n, "expanded other machines' files ahead of use"),
    });
}

#[cfg(mounts)]
/// Finds, in the background, the files from before this start that the store cannot hold, so
/// that `ferry status` names them as it names those written since.
fn find_unsyncable(mounted: &Arc<Mounted>) {
    let m = mounted.clone();
    tokio::task::spawn_blocking(move || match m.fs().find_unsyncable() {
        0 => {}
        n => tracing::warn!(
            files = n,
            "files the store cannot hold stay on this machine only (ferry status names them)"
        ),
    });
}

#[cfg(mounts)]
/// Rebuilds the view from the store on a blocking thread; returns whether it worked.
async fn refresh(mounted: &Arc<Mounted>) -> bool {
    let m = mounted.clone();
    match tokio::task::spawn_blocking(move || m.refresh()).await {
        Ok(Ok(n)) => {
            tracing::debug!(paths = n, "view refreshed");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "refreshing the view failed");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "refreshing the view failed");
            false
        }
    }
}

#[cfg(mounts)]
/// Serves events and requests until a stop (asked, or a signal) or an external unmount, then
/// shuts down in order; returns what the stop did and who asked for it.
async fn serve(
    mounted: Arc<Mounted>,
    engine: engine::EngineHandle,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    mut control: Control,
    mirror: SharedMirror,
    mountpoint: &Path,
    state: &State,
) -> (Report, Vec<Responder>) {
    let mut last_findings = String::new();
    let mut check = tokio::time::interval(Duration::from_secs(2));
    let mut satellites = tokio::time::interval(SATELLITES_EVERY);
    satellites.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let changed = |path: &Path, seen: &mut Option<std::time::SystemTime>| {
        let now = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        std::mem::replace(seen, now) != now
    };
    let (mut links_seen, mut config_seen) = (None, None);
    changed(&state.links(), &mut links_seen);
    changed(&state.config_path(), &mut config_seen);
    #[cfg(unix)]
    let mut external = false;
    let mut asked_by = None;
    loop {
        tokio::select! {
            (request, reply) = control.next() => {
                if request == Request::Stop {
                    if let Some(r) = &reply {
                        let _ = r.send(stopping());
                    }
                    asked_by = reply;
                    break;
                }
                answer(request, reply, &mounted, &engine, state).await;
            },
            _ = satellites.tick() => drop(mirror_pass(&mounted, &mirror, true)),
            _ = check.tick() => {
                keep_findings(state, &engine, &mut last_findings);
                // `ferry link` or `ferry machines rename|retire` while mounted, if the command
                // could not tell this daemon itself.
                let links = changed(&state.links(), &mut links_seen);
                let config = changed(&state.config_path(), &mut config_seen);
                if links || config {
                    reload(&mounted, &engine, state, links, config).await;
                }
                // Only FUSE mounts can be taken away from outside (`umount`).
                #[cfg(unix)]
                if !ferry_platform::mount::is_mounted(mountpoint) {
                    tracing::warn!("the mount went away from outside; shutting down");
                    external = true;
                    break;
                }
            }
            ev = events.recv() => match ev {
                Ok(Event::Changed(_)) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if refresh(&mounted).await {
                        drop(mirror_pass(&mounted, &mirror, true));
                        warm(&mounted);
                    }
                }
                // Written in a place other than where another machine's project is listed: a copy
                // to merge there, or a place that may now receive the project.
                Ok(Event::Committed(_, places)) if mounted.fs().commit_matters(&places) => {
                    refresh(&mounted).await;
                }
                Ok(_) => {}
                Err(_) => break,
            },
        }
    }
    #[cfg(not(unix))]
    let external = false;
    // Meanwhile every request is answered: another stop gets this stop's report, anything
    // else is told the daemon is stopping.
    let waiting = Arc::new(std::sync::Mutex::new(Vec::from_iter(asked_by)));
    let drain = tokio::spawn(drain(control, waiting.clone()));
    let report = stop(mounted, &engine, &mirror, mountpoint, external).await;
    drain.abort();
    // What the last commit found.
    keep_findings(state, &engine, &mut last_findings);
    let asked_by = std::mem::take(&mut *waiting.lock().unwrap_or_else(|e| e.into_inner()));
    (report, asked_by)
}

#[cfg(mounts)]
/// The satellite mirror, shared by the passes the daemon starts.
type SharedMirror = Arc<std::sync::Mutex<Mirror>>;

#[cfg(mounts)]
/// Starts one pass of the satellite mirror off the runtime's threads, so requests are answered
/// meanwhile. With `write`, other machines' satellites are written too, and the pass is
/// skipped while another runs (a first one may write thousands of files); without, it is the
/// last one, which waits its turn.
fn mirror_pass(
    mounted: &Arc<Mounted>,
    mirror: &SharedMirror,
    write: bool,
) -> tokio::task::JoinHandle<()> {
    let (m, mirror) = (mounted.clone(), mirror.clone());
    tokio::task::spawn_blocking(move || {
        let mut mirror = match mirror.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) if write => return,
            Err(std::sync::TryLockError::WouldBlock) => {
                mirror.lock().unwrap_or_else(|e| e.into_inner())
            }
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        };
        let n = mirror.pass(m.fs(), write);
        if n > 0 {
            tracing::debug!(files = n, "satellites mirrored");
        }
    })
}

#[cfg(mounts)]
/// What a stop says first.
fn stopping() -> Reply {
    Reply::Started {
        doing: "unmounting, committing, pushing".into(),
    }
}

#[cfg(mounts)]
/// Answers requests while the daemon stops: a stop waits for the report (its responder is kept
/// in `waiting`), anything else is refused.
async fn drain(mut control: Control, waiting: Arc<std::sync::Mutex<Vec<Responder>>>) {
    loop {
        let (request, reply) = control.next().await;
        let Some(reply) = reply else {
            continue;
        };
        if request == Request::Stop {
            let _ = reply.send(stopping());
            waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(reply);
        } else {
            let _ = reply.send(Reply::Failed {
                message: "the daemon is stopping; run this again once it has".into(),
            });
        }
    }
}

#[cfg(mounts)]
/// Shuts down in order: unmounts (unless the mount was taken away from outside), serves files
/// still open until they close, commits and pushes within the deadline.
async fn stop(
    mounted: Arc<Mounted>,
    engine: &engine::EngineHandle,
    mirror: &SharedMirror,
    mountpoint: &Path,
    external: bool,
) -> Report {
    tracing::info!("stopping: unmount, commit, push");
    #[cfg(not(unix))]
    let _ = external;
    #[cfg(unix)]
    let still_open = ferry_platform::mount::open_under(mountpoint);
    #[cfg(unix)]
    if !external && let Err(e) = unmount(mountpoint) {
        tracing::warn!(error = %e, "unmounting failed");
    }
    // Files open in the mount keep working after the lazy unmount while this daemon serves
    // them: wait for them to close (what they write is committed), within a deadline.
    #[cfg(unix)]
    let open_past_deadline = if still_open.is_empty() {
        false
    } else {
        tracing::warn!(files = ?still_open, "files still open in the mount; serving them until they close");
        let until = std::time::Instant::now() + HANDLES_DEADLINE;
        // Until they close (a shell whose cwd is in the mount keeps it alive, but holds no
        // file, and is not waited for).
        let open = || !ferry_platform::mount::still_open(&still_open).is_empty();
        while mounted.serving() && open() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        mounted.serving() && open()
    };
    #[cfg(not(unix))]
    let (still_open, open_past_deadline): (Vec<ferry_platform::mount::OpenFile>, bool) =
        (Vec::new(), false);
    #[cfg(not(unix))]
    mounted.unmount();
    place::after_unmount(mountpoint, mounted.fs().upper().root());
    // What Claude Code wrote outside the mount up to now goes in the last commit.
    let _ = mirror_pass(&mounted, mirror, false).await;
    let m = mounted.clone();
    let _ = tokio::task::spawn_blocking(move || {
        m.fs().flush_unresolved();
        m.fs().close();
    })
    .await;
    let report = engine.shutdown(PUSH_DEADLINE).await;
    #[cfg(unix)]
    {
        let fs = mounted.fs().clone();
        if let Ok(m) = Arc::try_unwrap(mounted) {
            let _ = tokio::task::spawn_blocking(move || m.join(Duration::from_secs(3))).await;
        }
        // A file still open past the deadline was read after the close: what that put in the
        // disk cache took the clean close back, and is flushed and marked clean again now.
        let _ = tokio::task::spawn_blocking(move || fs.close()).await;
    }
    Report {
        still_open: still_open
            .iter()
            .map(|f| format!("{} (pid {} {})", f.path.display(), f.pid, f.command))
            .collect(),
        open_past_deadline,
        ..Report::from(report)
    }
}

#[cfg(mounts)]
/// Answers a request other than a stop.
async fn answer(
    request: Request,
    reply: Option<Responder>,
    mounted: &Arc<Mounted>,
    engine: &engine::EngineHandle,
    state: &State,
) {
    let send = |r: Reply| {
        if let Some(to) = &reply {
            let _ = to.send(r);
        }
    };
    match request {
        Request::Status => send(Reply::Status {
            status: Box::new(engine.status()),
        }),
        Request::Sync { soon: true } => {
            engine.sync_soon();
            send(Reply::Asked);
        }
        Request::Sync { soon: false } => {
            send(Reply::Started {
                doing: "committing, fetching, pushing".into(),
            });
            let (engine, state) = (engine.clone(), state.clone());
            tokio::spawn(async move {
                let mut report = Report::from(engine.sync_now().await);
                report.waiting = engine.status().waiting;
                // For `ferry status`'s last error, after this daemon is gone.
                let _ = publish(&state.sync_report(), &report);
                if let Some(to) = reply {
                    let _ = to.send(Reply::Done { report });
                }
            });
        }
        Request::Reload => {
            let moved = reload(mounted, engine, state, true, true).await;
            send(Reply::Reloaded { moved });
        }
        Request::Stop => {}
    }
}

#[cfg(mounts)]
/// Takes `links.json` (a `ferry link`: its project moves now, with what was written) and
/// `config.json` (a rename or retirement: out with the next commit) again; returns how many
/// paths moved.
async fn reload(
    mounted: &Arc<Mounted>,
    engine: &engine::EngineHandle,
    state: &State,
    links: bool,
    config: bool,
) -> usize {
    let mut moved = 0;
    if links {
        match crate::projects::load_links(state) {
            Ok(links) => {
                let m = mounted.clone();
                match tokio::task::spawn_blocking(move || m.set_links(links)).await {
                    Ok(Ok(n)) => moved = n,
                    Ok(Err(e)) => tracing::warn!(error = %e, "applying the new links failed"),
                    Err(e) => tracing::warn!(error = %e, "applying the new links failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the links failed"),
        }
    }
    if config {
        match state.config() {
            Ok(c) => engine.set_identity(c.machine_name, c.retired),
            Err(e) => tracing::warn!(error = %e, "reading the config failed"),
        }
    }
    moved
}

/// This build has no way to mount: Windows without the `winfsp` feature.
#[cfg(not(mounts))]
pub fn run(_state: &State, _verbose: u8, _ready: impl FnOnce()) -> Result<()> {
    anyhow::bail!(
        "this ferry was built without the Windows mount: build it with `cargo install --path cli --features winfsp` (WinFsp installed; see the README). `ferry sync`, `ferry sessions` and the other commands work without a mount"
    )
}

/// Nothing is mounted from outside on Windows: the daemon clears its own mount point.
#[cfg(not(unix))]
pub fn clear_mount_point(_mountpoint: &Path) -> Result<()> {
    Ok(())
}
