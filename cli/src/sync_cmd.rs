//! `ferry sync [--soon]`: commit, fetch and push now. With a daemon running it asks the daemon
//! on its control socket and prints the report it answers with (`--soon`: asks and returns);
//! without one it runs the engine in this process over the unmounted directory.

use crate::command::Ctx;
use crate::control::{self, Reply, Request};
use crate::report::Report;
use crate::state::{self, State};
use anyhow::{Result, bail};
use ferry_sync::engine::{self, EngineConfig};
use std::time::Duration;

/// How long `ferry sync` waits for the daemon's report (a slow remote, a big first transfer
/// take longer; the sync goes on in the background).
const SYNC_WAIT: Duration = Duration::from_secs(60);

/// Runs `ferry sync`; returns the exit code.
pub fn run(soon: bool, ctx: &Ctx) -> Result<crate::ui::Exit> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let report = match st.daemon_pid() {
        Some(pid) => match control::ask(st, Request::Sync { soon }, SYNC_WAIT)? {
            Some(Reply::Asked) => {
                ui.out(
                    &serde_json::json!({"asked": true, "daemon_pid": pid}),
                    || format!("ferry: asked the daemon (pid {pid}) to commit, fetch and push"),
                );
                return Ok(0);
            }
            Some(Reply::Done { report }) => report,
            Some(Reply::Failed { message }) => bail!("the daemon could not sync: {message}"),
            Some(other) => bail!("the daemon answered {other:?} to a sync"),
            None => bail!(
                "the daemon (pid {pid}) does not answer on {}; see {}",
                control::endpoint(st).display(),
                st.log().display()
            ),
        },
        None => {
            let report = sync_here(st, config, ui.quiet || ui.json)?;
            // For `ferry status`, which has no daemon to ask.
            let _ = crate::files::write_json(&st.sync_report(), &report);
            report
        }
    };
    let dir = state::mount_point()?;
    ui.out(&report, || {
        let mut t = report.commit_said(&dir).map(|s| s + "\n").unwrap_or_default();
        t += &match &report.committed {
            Some(_) => format!("committed {}\n", report.short_commit().unwrap_or_default()),
            None if report.waiting.is_empty() => "nothing new to commit\n".to_string(),
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
            (Some(true), _) if report.sent => "fetched and pushed".into(),
            (Some(true), _) => "fetched; nothing new to push".into(),
            (Some(false), e) => format!(
                "the remote failed: {}\neverything is committed locally, and goes out at a later sync once that is fixed",
                e.as_deref().unwrap_or("unknown error")
            ),
        };
        t
    });
    Ok(report.exit_code())
}

/// Commits, fetches and pushes from this process, with no daemon: the unmounted directory is
/// this machine's truth and is committed first. Holds the daemon's lock meanwhile, so that no
/// daemon starts on the same store.
pub fn sync_here(st: &State, config: &crate::state::Config, quiet: bool) -> Result<Report> {
    let _lock = st.take_lock()?;
    let bar = crate::transfer_bar::new(quiet || config.remote.is_none(), "syncing");
    let report = sync_here_locked(st, config, &bar, true);
    bar.finish_and_clear();
    report
}

/// [`sync_here`] for a caller that holds the lock already; `reconcile` is false for one that
/// has just committed the unmounted directory itself (`ferry init`'s import), which a second
/// walk of it would only find as it left it.
pub fn sync_here_locked(
    st: &State,
    config: &crate::state::Config,
    bar: &indicatif::ProgressBar,
    reconcile: bool,
) -> Result<Report> {
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
    let sealing = crate::keys::sealing(st, config)?;
    let mut report = runtime.block_on(async {
        let engine = engine::start(
            st.store(),
            machine,
            config.remote.clone(),
            EngineConfig {
                upper: reconcile.then_some(upper),
                placed: crate::projects::placed(st),
                fetch_at_start: false,
                runs_file: Some(st.runs()),
                links,
                secrets: config.secrets,
                sealing,
                // Folding history is the daemon's: a one-shot sync pushes what it folds only
                // at its next run.
                history: None,
                ..EngineConfig::default()
            },
        );
        // The bar follows the fetch and the push as they run.
        let ticker = {
            let (engine, bar) = (engine.clone(), bar.clone());
            tokio::spawn(async move {
                loop {
                    if let Some(t) = engine.transfer() {
                        crate::transfer_bar::show(&bar, &t.op, t.so_far);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let report = engine.sync_now().await;
        ticker.abort();
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
