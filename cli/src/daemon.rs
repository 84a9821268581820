//! The daemon behind a mount: opens the upper layer, starts the sync engine, mounts the view,
//! refreshes it after each fetch, and when asked to stop (SIGTERM, SIGINT or SIGHUP on Unix, a
//! request file on Windows: see [`control`]) unmounts, commits, pushes within a deadline and
//! exits 0.

pub mod control;
#[cfg(mounts)]
mod place;

#[cfg(mounts)]
use crate::state;
use crate::state::State;
use anyhow::{Context, Result, bail};
#[cfg(mounts)]
use control::{Control, Request};
#[cfg(mounts)]
use ferry_fs::core::{Fs, FsConfig};
#[cfg(unix)]
use ferry_platform::mount::{MountState, mount_state, unmount};
#[cfg(mounts)]
use ferry_sync::engine::{self, EngineConfig, Event};
#[cfg(mounts)]
use ferry_sync::store::Store;
use serde::{Deserialize, Serialize};
use std::io::Write;
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

/// What the last unmount did, for `ferry unmount` to report.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UnmountReport {
    /// The final commit, if anything was pending.
    pub committed: Option<String>,
    /// Whether the remote took the push (`None`: no remote).
    pub pushed: Option<bool>,
    /// Why not.
    pub error: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Files other processes held open in the mount when it was asked to stop: served until
    /// they closed.
    #[serde(default)]
    pub still_open: Vec<String>,
    /// Whether some were still open when [`HANDLES_DEADLINE`] passed (their next access fails).
    #[serde(default)]
    pub open_past_deadline: bool,
}

/// How long files still open in the mount are served after `ferry unmount`.
pub const HANDLES_DEADLINE: Duration = Duration::from_secs(15);

/// Takes the daemon lock of the state dir, or says who holds it.
/// The lock lasts as long as the returned file is open.
pub fn lock(state: &State) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.lock())
        .with_context(|| format!("opening {}", state.lock().display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(_) => {
            let pid = std::fs::read_to_string(state.pid()).unwrap_or_default();
            bail!(
                "a ferry daemon is already running for {} (pid {}); `ferry unmount` stops it",
                state.dir.display(),
                pid.trim()
            )
        }
    }
}

/// Whether a daemon holds the lock of this state dir.
pub fn lock_held(state: &State) -> bool {
    let Ok(f) = std::fs::OpenOptions::new().read(true).open(state.lock()) else {
        return false;
    };
    f.try_lock_shared().is_err()
}

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
        MountState::Live => bail!(
            "{} is already mounted; `ferry unmount` first if you want to remount",
            mountpoint.display()
        ),
        MountState::Other => bail!(
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
/// Runs the daemon in this process until a signal or an external unmount; `ready` is called
/// once the mount is live.
pub fn run(state: &State, verbose: u8, ready: impl FnOnce()) -> Result<()> {
    limit_malloc_arenas();
    let config = state.config()?;
    let _lock = lock(state)?;
    init_logging(state, verbose)?;
    let mountpoint = state::mount_point()?;
    let _ = std::fs::remove_file(state.mounted());
    let upper = place::open_upper(state, &mountpoint)?;
    let machine = state::machine_record(&config)?;
    let links = crate::projects::load_links(state)?;
    let store_path = state.store();
    Store::init(&store_path)
        .with_context(|| format!("opening the store {}", store_path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
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
            ..EngineConfig::default()
        },
    );
    let events = engine.subscribe();
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
    let report = runtime.block_on(serve(
        mounted.clone(),
        engine.clone(),
        events,
        control,
        &mountpoint,
        state,
    ));
    let _ = std::fs::remove_file(state.mounted());
    let _ = std::fs::remove_file(state.status());
    let _ = std::fs::remove_file(state.pid());
    let text = serde_json::to_vec_pretty(&report)?;
    let _ = std::fs::File::create(state.last_unmount()).and_then(|mut f| f.write_all(&text));
    match &report.error {
        Some(e) => tracing::warn!(error = %e, "unmounted; the push failed, data is safe locally"),
        None => tracing::info!(commit = ?report.committed, "unmounted cleanly"),
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// Writes `value` as JSON to `path` atomically (a reader never sees half a file), readable by
/// this user only.
pub fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file beside it (a reader never sees half a
/// file), readable by this user only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&tmp)?.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(mounts)]
/// [`write_json`] for the daemon's own files: a failure (a full disk, say) is logged, never
/// fatal; returns whether the file was written.
fn publish(path: &Path, value: &impl Serialize) -> bool {
    match write_json(path, value) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "writing failed");
            false
        }
    }
}

#[cfg(mounts)]
/// Publishes the engine's status for `ferry status` when it changed.
fn write_status(state: &State, engine: &engine::EngineHandle, last: &mut String) {
    let status = engine.status();
    let text = serde_json::to_string(&status).unwrap_or_default();
    // Until it is written (a full disk), it is tried again on the next tick.
    if text != *last {
        state.record_findings(&status.secrets);
        if publish(&state.status(), &status) {
            *last = text;
        }
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
/// Serves events until a stop signal or an external unmount, then shuts down in order.
async fn serve(
    mounted: Arc<Mounted>,
    engine: engine::EngineHandle,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    mut control: Control,
    mountpoint: &Path,
    state: &State,
) -> UnmountReport {
    let mut last_status = String::new();
    let mut check = tokio::time::interval(Duration::from_secs(2));
    let changed = |path: &Path, seen: &mut Option<std::time::SystemTime>| {
        let now = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        std::mem::replace(seen, now) != now
    };
    let (mut links_seen, mut config_seen) = (None, None);
    changed(&state.links(), &mut links_seen);
    changed(&state.config_path(), &mut config_seen);
    #[cfg(unix)]
    let mut external = false;
    loop {
        tokio::select! {
            request = control.next() => match request {
                Request::Stop => break,
                Request::SyncSoon => engine.sync_soon(),
                Request::SyncNow => {
                    let (engine, state) = (engine.clone(), state.clone());
                    tokio::spawn(async move {
                        let report = engine.sync_now().await;
                        let mut report = crate::sync_cmd::Report::from(report);
                        report.waiting = engine.status().waiting;
                        let _ = publish(&state.sync_report(), &report);
                        write_status(&state, &engine, &mut String::new());
                    });
                }
            },
            _ = check.tick() => {
                write_status(state, &engine, &mut last_status);
                // `ferry link` while mounted: its project moves now, with what was written.
                if changed(&state.links(), &mut links_seen) {
                    match crate::projects::load_links(state) {
                        Ok(links) => {
                            let m = mounted.clone();
                            let set = tokio::task::spawn_blocking(move || m.set_links(links));
                            if let Ok(Err(e)) = set.await {
                                tracing::warn!(error = %e, "applying the new links failed");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "reading the links failed"),
                    }
                }
                // `ferry machines rename|retire` while mounted: out with the next commit.
                if changed(&state.config_path(), &mut config_seen) {
                    match state.config() {
                        Ok(c) => engine.set_identity(c.machine_name, c.retired),
                        Err(e) => tracing::warn!(error = %e, "reading the config failed"),
                    }
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
    tracing::info!("stopping: unmount, commit, push");
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
        while mounted.serving() && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        mounted.serving()
    };
    #[cfg(not(unix))]
    let (still_open, open_past_deadline): (Vec<ferry_platform::mount::OpenFile>, bool) =
        (Vec::new(), false);
    #[cfg(not(unix))]
    mounted.unmount();
    place::after_unmount(mountpoint, mounted.fs().upper().root());
    let m = mounted.clone();
    let _ = tokio::task::spawn_blocking(move || {
        m.fs().flush_unresolved();
        m.fs().close();
    })
    .await;
    let report = engine.shutdown(PUSH_DEADLINE).await;
    #[cfg(unix)]
    if let Ok(m) = Arc::try_unwrap(mounted) {
        let _ = tokio::task::spawn_blocking(move || m.join(Duration::from_secs(3))).await;
    }
    UnmountReport {
        committed: report.committed,
        pushed: report.remote_ok,
        error: report.error,
        at_ms: engine::now_ms(),
        still_open: still_open
            .iter()
            .map(|f| format!("{} (pid {} {})", f.path.display(), f.pid, f.command))
            .collect(),
        open_past_deadline,
    }
}

/// This build has no way to mount: Windows without the `winfsp` feature.
#[cfg(not(mounts))]
pub fn run(_state: &State, _verbose: u8, _ready: impl FnOnce()) -> Result<()> {
    bail!(
        "this ferry was built without the Windows mount: build it with `cargo install --path cli --features winfsp` (WinFsp installed; see the README). `ferry sync`, `ferry sessions` and the other commands work without a mount"
    )
}

/// Nothing is mounted from outside on Windows: the daemon clears its own mount point.
#[cfg(not(unix))]
pub fn clear_mount_point(_mountpoint: &Path) -> Result<()> {
    Ok(())
}
