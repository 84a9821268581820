//! `ferry sync [--soon]`: commit, fetch and push now. With a daemon running it asks the daemon
//! (SIGUSR2, then waits for its report; `--soon`: SIGUSR1 and return); without one it runs the
//! engine in this process over the unmounted directory.

use crate::daemon;
use crate::state::{self, State};
use crate::ui::Ui;
use anyhow::{Context, Result, bail};
use ferry_sync::engine::{self, EngineConfig, SyncReport};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// What one sync did, as `ferry sync` prints it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// The commit made, if anything was pending.
    pub committed: Option<String>,
    /// Whether fetch and push reached the remote (`None`: no remote).
    pub remote_ok: Option<bool>,
    /// Why not.
    pub error: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Changes held back until their project is known (a daemon's only).
    #[serde(default)]
    pub waiting: Vec<ferry_sync::engine::Waiting>,
}

impl From<SyncReport> for Report {
    fn from(r: SyncReport) -> Report {
        Report {
            committed: r.committed,
            remote_ok: r.remote_ok,
            error: r.error,
            at_ms: engine::now_ms(),
            waiting: Vec::new(),
        }
    }
}

/// The running daemon's pid, if one holds the state dir's lock.
pub fn daemon_pid(st: &State) -> Option<i32> {
    let pid = std::fs::read_to_string(st.pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    daemon::lock_held(st).then_some(pid)
}

/// Asks the daemon `pid` of `st` to sync: soon, or now, writing its report.
pub fn signal(st: &State, pid: i32, now: bool) -> Result<()> {
    use daemon::control::{Request, ask};
    ask(
        st,
        pid,
        if now {
            Request::SyncNow
        } else {
            Request::SyncSoon
        },
    )
}

/// Runs `ferry sync`; returns the exit code.
pub fn run(soon: bool, ui: &Ui) -> Result<crate::ui::Exit> {
    let st = State::locate()?;
    let config = st.config()?;
    let report = match daemon_pid(&st) {
        Some(pid) if soon => {
            signal(&st, pid, false)?;
            ui.out(
                &serde_json::json!({"asked": true, "daemon_pid": pid}),
                || format!("ferry: asked the daemon (pid {pid}) to commit, fetch and push"),
            );
            return Ok(0);
        }
        Some(pid) => {
            let before = std::fs::metadata(st.sync_report())
                .and_then(|m| m.modified())
                .ok();
            let asked = Instant::now();
            signal(&st, pid, true)?;
            loop {
                let now = std::fs::metadata(st.sync_report())
                    .and_then(|m| m.modified())
                    .ok();
                if now.is_some() && now != before {
                    let bytes = std::fs::read(st.sync_report())?;
                    break serde_json::from_slice::<Report>(&bytes)
                        .context("reading the daemon's sync report")?;
                }
                if asked.elapsed() > Duration::from_secs(60) {
                    bail!(
                        "the daemon did not finish within 60 s (a slow remote, or a big first transfer); it goes on in the background: watch `ferry status`, and see {}",
                        st.log().display()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        None => {
            let report = sync_here(&st, &config)?;
            // For `ferry status`, which has no daemon to ask.
            let _ = crate::daemon::write_json(&st.sync_report(), &report);
            report
        }
    };
    ui.out(&report, || {
        let mut t = match &report.committed {
            Some(c) => format!("committed {}\n", &c[..c.len().min(12)]),
            None if report.waiting.is_empty() => "nothing new to commit\n".into(),
            None => "nothing committed\n".into(),
        };
        for w in &report.waiting {
            t += &format!("waiting: {} path(s) in {}: {}\n", w.paths, w.dir, w.why);
        }
        t += &match (report.remote_ok, &report.error) {
            (None, _) => {
                "no remote: sessions stay on this machine; add one with `ferry remote set URL`"
                    .to_string()
            }
            (Some(true), _) => "fetched and pushed".into(),
            (Some(false), e) => format!(
                "the remote failed: {}\neverything is committed locally and will be pushed once the remote works",
                e.as_deref().unwrap_or("unknown error")
            ),
        };
        t
    });
    Ok(match report.remote_ok {
        Some(false) => crate::ui::Kind::RemoteUnreachable.code(),
        _ => 0,
    })
}

/// Commits, fetches and pushes from this process, with no daemon: the unmounted directory is
/// this machine's truth and is committed first. Holds the daemon's lock meanwhile, so that no
/// daemon starts on the same store.
pub fn sync_here(st: &State, config: &crate::state::Config) -> Result<Report> {
    let _lock = daemon::lock(st)?;
    sync_here_locked(st, config)
}

/// [`sync_here`] for a caller that holds the lock already.
pub fn sync_here_locked(st: &State, config: &crate::state::Config) -> Result<Report> {
    let mountpoint = state::mount_point()?;
    if ferry_platform::mount::mount_state(&mountpoint) == ferry_platform::mount::MountState::Stale {
        bail!(
            "the mount at {} is dead (a daemon crashed); run `ferry mount`, which recovers it and syncs",
            mountpoint.display()
        );
    }
    let machine = state::machine_record(config)?;
    let head = |id: &str| {
        ferry_sync::store::Store::init(&st.store())
            .and_then(|s| s.head(id, true))
            .ok()
            .flatten()
    };
    let before = head(&machine.id);
    let id = machine.id.clone();
    let upper = state::mount_point()?;
    let links = crate::projects::load_links(st)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(async {
        let engine = engine::start(
            st.store(),
            machine,
            config.remote.clone(),
            EngineConfig {
                upper: Some(upper),
                placed: crate::projects::placed(st),
                fetch_at_start: false,
                runs_file: Some(st.runs()),
                links,
                secrets: config.secrets,
                ..EngineConfig::default()
            },
        );
        let report = engine.sync_now().await;
        st.record_findings(&engine.status().secrets);
        let _ = engine.shutdown(Duration::from_secs(10)).await;
        Report::from(report)
    });
    // The engine's start-up reconcile commits what the directory holds by itself.
    let after = head(&id);
    if report.committed.is_none() && after != before {
        report.committed = after.map(|h| h.to_string());
    }
    Ok(report)
}
