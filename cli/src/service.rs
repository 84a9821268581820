//! `ferry service install|uninstall`: mount at login through the OS's own login manager (see
//! `ferry_platform::service`), so the view is there before Claude Code is first started and is
//! unmounted, committed and pushed when the session ends.

use crate::command::Ctx;
use crate::state::State;
use anyhow::{Context, Result, bail};
use ferry_platform::service::{self, Dirs, Manager, Plan, Spec};
use serde_json::json;

/// The variables the service must pass on: the state dir when it is not the default, and Claude
/// Code's config dir when it is set.
fn environment(state: &State) -> Vec<(String, String)> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let mut env = Vec::new();
    // The default state dir follows XDG_DATA_HOME, which a login manager may not have.
    if set("FERRY_HOME") || (!cfg!(windows) && set("XDG_DATA_HOME")) {
        env.push((
            "FERRY_HOME".into(),
            state.dir.to_string_lossy().into_owned(),
        ));
    }
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        env.push((
            "CLAUDE_CONFIG_DIR".into(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    env
}

/// This machine's plan.
pub fn plan(state: &State) -> Result<Plan> {
    let exe = std::env::current_exe()
        .and_then(dunce::canonicalize)
        .context("finding the ferry binary")?;
    let spec = Spec {
        exe,
        env: environment(state),
        log: state.log(),
    };
    let dirs = Dirs::here(&state.dir).context("HOME is not set")?;
    service::install_plan(Manager::here(), &spec, &dirs).map_err(anyhow::Error::msg)
}

/// What to try when the login manager refused.
fn hint(manager: Manager) -> &'static str {
    match manager {
        Manager::Systemd => {
            "is a systemd user session running (`systemctl --user status`)? From your login session, run `systemctl --user daemon-reload && systemctl --user enable --now ferry.service`"
        }
        Manager::Launchd => {
            "run `launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/dev.ferry.mount.plist` from your login session"
        }
        Manager::Task => {
            "if Task Scheduler refused for lack of rights, run this again from an elevated prompt"
        }
    }
}

/// `ferry service install`.
pub fn install(ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let state = ctx.state()?;
    state.config()?;
    let plan = plan(state)?;
    let dir = plan.file.parent().context("a file needs a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::files::write_atomic(&plan.file, &plan.contents)
        .with_context(|| format!("writing {}", plan.file.display()))?;
    // launchd's `bootout` of a copy that was never loaded fails; that is expected.
    let tolerate = |c: &service::Command| c.get(1).is_some_and(|a| a == "bootout");
    if let Err(e) = service::run(&plan.enable, tolerate) {
        bail!(
            "wrote {}, but {} did not take it: {e}. {}",
            plan.file.display(),
            plan.manager.name(),
            hint(plan.manager)
        );
    }
    let running = state.lock_held();
    if !running && let Err(e) = service::run(&plan.start, |_| false) {
        bail!(
            "installed {}, but starting it failed: {e}. See {} and run `ferry mount`",
            plan.file.display(),
            state.log().display()
        );
    }
    let started = !running;
    let doc = json!({"manager": plan.manager.name(), "file": plan.file, "installed": true, "started": started});
    ui.out(&doc, || {
        format!(
            "ferry: installed the login service ({}, {})\n{}",
            plan.manager.name(),
            plan.file.display(),
            if started {
                "it mounts the view at every login, and is starting now"
            } else {
                "a mount started by hand is running now; the service mounts from the next login"
            }
        )
    });
    Ok(())
}

/// `ferry service uninstall`: stops the service's mount (a clean unmount with a final push)
/// and removes the definition.
pub fn uninstall(ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let state = ctx.state()?;
    let plan = plan(state)?;
    let removed = remove(&plan)?;
    let doc = json!({"manager": plan.manager.name(), "file": plan.file, "installed": false, "was_installed": removed});
    ui.out(&doc, || {
        if !removed {
            return "ferry: no login service is installed".into();
        }
        format!(
            "ferry: removed the login service ({}); {}",
            plan.manager.name(),
            after_removal(plan.manager)
        )
    });
    Ok(())
}

/// What became of the mount when the login service was removed.
pub fn after_removal(manager: Manager) -> &'static str {
    match manager {
        Manager::Task => "a mount running now stays until `ferry unmount`",
        _ => "a mount it started was unmounted, committed and pushed",
    }
}

/// Stops and removes the login service of `plan`; whether there was one.
pub fn remove(plan: &Plan) -> Result<bool> {
    if !plan.file.exists() {
        return Ok(false);
    }
    let told = service::run(&plan.disable, |_| false);
    std::fs::remove_file(&plan.file)
        .with_context(|| format!("removing {}", plan.file.display()))?;
    if let Err(e) = told {
        bail!(
            "removed {}, but {} could not be told: {e}. It will not start at the next login",
            plan.file.display(),
            plan.manager.name()
        );
    }
    Ok(true)
}

/// Tells systemd the mount is live when it started this process as a `Type=notify` unit
/// (`$NOTIFY_SOCKET`); nothing otherwise.
pub fn notify_ready() {
    #[cfg(target_os = "linux")]
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let name = socket.as_bytes();
        let addr = match name.strip_prefix(b"@") {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
            None => SocketAddr::from_pathname(std::path::Path::new(&socket)),
        };
        let sent = addr.and_then(|addr| {
            let sock = UnixDatagram::unbound()?;
            sock.send_to_addr(b"READY=1\nSTATUS=mounted", &addr)
        });
        if let Err(e) = sent {
            tracing::warn!(error = %e, "telling systemd the mount is live failed");
        }
    }
}
