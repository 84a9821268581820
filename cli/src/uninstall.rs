//! `ferry uninstall`: a way to leave. It stops the login service and the mount (a last commit
//! and push), writes every session the view showed into Claude Code's real directory, in this
//! machine's form, and removes the hooks and the skill, so that nothing disappears from Claude
//! Code. The state dir (the store: every machine's history) and the remote are left for the
//! user to remove, and the answer says where they are.

use crate::command::Ctx;
use crate::control::{self, Reply, Request};
use crate::state::{self, State};
use crate::view::View;
use anyhow::{Context, Result, bail};
use ferry_platform::mount::{MountState, mount_state};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What leaving did.
struct Left {
    /// The login service removed, by its manager's name.
    service: Option<&'static str>,
    /// The last stop's report, when a mount was running.
    stopped: Option<crate::report::Report>,
    /// Files written into the real directory, and their bytes.
    written: (usize, u64),
    /// The hooks removed from this settings file.
    settings: PathBuf,
    /// Whether there were any.
    had_hooks: bool,
}

/// Runs `ferry uninstall`.
pub fn run(ctx: &Ctx) -> Result<crate::ui::Exit> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let machine = state::machine_record(config)?;
    // The mount first, through the daemon, so that its last push is reported; then the service,
    // which finds nothing to stop.
    let stopped = stop(st)?;
    let plan = crate::service::plan(st)?;
    let service = crate::service::remove(&plan)?.then(|| plan.manager.name());
    #[cfg(windows)]
    real_directory(st)?;
    let written = materialise(st, &machine)?;
    let had_hooks = !crate::hooks::installed().is_empty();
    let (settings, _, _) = crate::hooks::apply(false, false)?;
    let left = Left {
        service,
        stopped,
        written,
        settings,
        had_hooks,
    };
    let doc = json!({
        "service_removed": left.service,
        "stop": left.stopped,
        "files_written": left.written.0,
        "bytes_written": left.written.1,
        "hooks_removed_from": left.had_hooks.then_some(&left.settings),
        "state_dir": st.dir,
        "remote": config.remote.as_deref().map(ferry_sync::engine::redact),
    });
    ui.out(&doc, || said(&left, st, config.remote.as_deref()));
    Ok(left.stopped.as_ref().map_or(0, |r| r.exit_code()))
}

/// Stops the mount if one runs: through the daemon (a last commit and push), or, with no
/// daemon, by removing what is mounted.
fn stop(st: &State) -> Result<Option<crate::report::Report>> {
    let mountpoint = state::mount_point()?;
    if let Some(pid) = st.daemon_pid() {
        let wait = crate::daemon::HANDLES_DEADLINE + crate::daemon::PUSH_DEADLINE;
        return match control::ask(st, Request::Stop, wait + Duration::from_secs(20))? {
            Some(Reply::Done { report }) => {
                // Its lock goes when it exits: wait for that, so the directory is its own.
                let gone = std::time::Instant::now() + Duration::from_secs(10);
                while st.lock_held() && std::time::Instant::now() < gone {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(Some(report))
            }
            _ => bail!(
                "the daemon (pid {pid}) did not stop; nothing was changed but the login service. Run `ferry unmount`, then this again"
            ),
        };
    }
    if matches!(
        mount_state(&mountpoint),
        MountState::Live | MountState::Stale
    ) {
        ferry_platform::mount::unmount(&mountpoint)
            .with_context(|| format!("removing the mount at {}", mountpoint.display()))?;
    }
    Ok(None)
}

/// Writes every file the view shows that the real directory lacks or holds otherwise: other
/// machines' sessions in this machine's form, and this machine's with the lines other machines
/// added. Returns how many files and bytes were written.
fn materialise(st: &State, machine: &ferry_sync::store::MachineRecord) -> Result<(usize, u64)> {
    let view = View::open(st, machine)?;
    if matches!(view, View::Mounted(_)) {
        bail!("the view is still mounted; run `ferry unmount`, then this again");
    }
    let root = state::mount_point()?;
    let mut files = Vec::new();
    walk(&view, Path::new(""), &mut files)?;
    let (mut n, mut bytes) = (0, 0);
    for rel in files {
        let target = root.join(&rel);
        // What is there now, before the view is read: a file written meanwhile (a Claude Code
        // still running) is left as it is.
        let seen = std::fs::metadata(&target)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        let (content, mtime_ms) = view.read(&rel)?;
        if std::fs::read(&target).ok().as_deref() == Some(&content[..]) {
            continue;
        }
        if !crate::files::replace_private(&target, &content, seen)? {
            tracing::warn!(file = %target.display(), "written meanwhile; left as it is");
            continue;
        }
        let f = std::fs::File::options().write(true).open(&target)?;
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(mtime_ms.max(0) as u64))?;
        n += 1;
        bytes += content.len() as u64;
    }
    Ok((n, bytes))
}

/// On Windows the unmounted projects directory is a junction to the upper layer in the state
/// dir: the upper layer becomes the real directory again, so that removing the state dir
/// removes no session.
#[cfg(windows)]
fn real_directory(st: &State) -> Result<()> {
    let mountpoint = state::mount_point()?;
    if std::fs::read_link(&mountpoint).is_err() {
        return Ok(());
    }
    std::fs::remove_dir(&mountpoint)
        .with_context(|| format!("removing the junction {}", mountpoint.display()))?;
    std::fs::rename(st.upper(), &mountpoint).with_context(|| {
        format!(
            "moving {} to {}: move it there yourself, then run this again",
            st.upper().display(),
            mountpoint.display()
        )
    })
}

/// Every file under `dir` of the view.
fn walk(view: &View, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for (name, is_dir) in view.list(dir)? {
        let path = dir.join(&name);
        if is_dir {
            walk(view, &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// What `ferry uninstall` says.
fn said(left: &Left, st: &State, remote: Option<&str>) -> String {
    let mut t = String::new();
    if let Some(m) = left.service {
        t += &format!("removed the login service ({m})\n");
    }
    match &left.stopped {
        Some(r) if r.remote_ok == Some(false) => {
            t += &format!(
                "unmounted; the last push did not go through ({}): this machine's last changes are only here and in the store\n",
                r.error.as_deref().unwrap_or("unknown error")
            )
        }
        Some(_) => t += "unmounted, with a last commit and push\n",
        None => {}
    }
    t += &format!(
        "wrote {} file(s), {} bytes, into Claude Code's directory: every session the view showed is there now, in this machine's paths\n",
        left.written.0, left.written.1
    );
    t += &if left.had_hooks {
        format!(
            "removed ferry's hooks from {} and its skill\n",
            left.settings.display()
        )
    } else {
        "no ferry hooks were installed; ferry's skill is gone too, if it was there\n".into()
    };
    t += &format!(
        "kept {}: the store holds every machine's history; remove it when you are sure (`rm -rf {}`)",
        st.dir.display(),
        st.dir.display()
    );
    if let Some(r) = remote {
        t += &format!(
            "\nthe remote {} keeps every machine's sessions; other machines go on using it",
            ferry_sync::engine::redact(r)
        );
    }
    t
}
