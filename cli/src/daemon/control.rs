//! How the daemon is asked to stop or sync. On Unix by signals: SIGTERM, SIGINT and SIGHUP
//! stop it (what `ferry unmount` and service managers send), SIGUSR1 asks for a sync soon
//! (`ferry sync --soon`) and SIGUSR2 for one now, with a report (`ferry sync`). Windows has no
//! such signals for a detached process, so there the commands leave a request file in the state
//! dir, which the daemon looks for four times a second; Ctrl-C stops a foreground daemon.

use crate::state::State;
#[cfg(unix)]
use anyhow::Context;
use anyhow::Result;

/// What the daemon is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Unmount, commit, push and exit.
    Stop,
    /// Commit, fetch and push soon.
    SyncSoon,
    /// Commit, fetch and push now, and write the report.
    SyncNow,
}

impl Request {
    /// The request file's name (Windows).
    #[cfg(not(unix))]
    fn file(self) -> &'static str {
        match self {
            Request::Stop => "request-stop",
            Request::SyncSoon => "request-sync-soon",
            Request::SyncNow => "request-sync-now",
        }
    }
}

/// Asks the daemon of `state` (process `pid`) for `request`.
pub fn ask(state: &State, pid: i32, request: Request) -> Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::signal::Signal;
        let _ = state;
        let sig = match request {
            Request::Stop => Signal::SIGTERM,
            Request::SyncSoon => Signal::SIGUSR1,
            Request::SyncNow => Signal::SIGUSR2,
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .with_context(|| format!("signalling the daemon (pid {pid})"))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        let path = state.dir.join(request.file());
        std::fs::write(&path, b"")
            .map_err(|e| anyhow::anyhow!("asking the daemon through {}: {e}", path.display()))
    }
}

/// Where the daemon's requests come from, installed before the mount is live so that a request
/// made right after `ferry mount` returns is not lost.
#[cfg(unix)]
pub struct Control {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Control {
    /// Installs the signal handlers (needs the runtime entered).
    pub fn new(_state: &State) -> Result<Control> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Control {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            usr1: signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?,
            usr2: signal(SignalKind::user_defined2()).context("installing the SIGUSR2 handler")?,
        })
    }

    /// The next request (cancel-safe: nothing is lost when another event wins a `select!`).
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Stop,
            _ = self.int.recv() => Request::Stop,
            _ = self.hup.recv() => Request::Stop,
            _ = self.usr1.recv() => Request::SyncSoon,
            _ = self.usr2.recv() => Request::SyncNow,
        }
    }
}

/// Where the daemon's requests come from on Windows: request files and Ctrl-C.
#[cfg(all(not(unix), mounts))]
pub struct Control {
    dir: std::path::PathBuf,
    ctrl_c: tokio::signal::windows::CtrlC,
}

#[cfg(all(not(unix), mounts))]
impl Control {
    /// Clears requests left by an earlier daemon and installs the Ctrl-C handler.
    pub fn new(state: &State) -> Result<Control> {
        for r in [Request::Stop, Request::SyncSoon, Request::SyncNow] {
            let _ = std::fs::remove_file(state.dir.join(r.file()));
        }
        Ok(Control {
            dir: state.dir.clone(),
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    /// The next request (cancel-safe: a file is removed only when its request is returned).
    pub async fn next(&mut self) -> Request {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = self.ctrl_c.recv() => return Request::Stop,
                _ = tick.tick() => {
                    for r in [Request::Stop, Request::SyncNow, Request::SyncSoon] {
                        if std::fs::remove_file(self.dir.join(r.file())).is_ok() {
                            return r;
                        }
                    }
                }
            }
        }
    }
}
