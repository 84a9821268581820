//! Where the daemon's requests come from: its control socket (see [`crate::control`]), for
//! every command; and on Unix SIGTERM, SIGINT and SIGHUP, which stop it (what service managers
//! and Ctrl-C send); Ctrl-C on Windows.

use crate::control::{Reply, Request, endpoint};
use crate::state::State;
use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest request line taken.
const MAX_REQUEST: u64 = 64 << 10;

/// How long a client has to send its request.
const REQUEST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the replies to one request go (the connection that asked); none for a signal.
pub type Responder = mpsc::UnboundedSender<Reply>;

/// The daemon's requests, from the socket and from signals.
pub struct Control {
    requests: mpsc::UnboundedReceiver<(Request, Responder)>,
    signals: Signals,
}

impl Control {
    /// Listens on the control socket and installs the signal handlers (needs the runtime
    /// entered). Called before the mount is live, so that a command run right after
    /// `ferry mount` returns is answered.
    pub fn new(state: &State) -> Result<Control> {
        let (tx, requests) = mpsc::unbounded_channel();
        listen(state, tx)?;
        Ok(Control {
            requests,
            signals: Signals::new()?,
        })
    }

    /// The next request (cancel-safe: nothing is lost when another event wins a `select!`).
    pub async fn next(&mut self) -> (Request, Option<Responder>) {
        tokio::select! {
            Some((request, reply)) = self.requests.recv() => (request, Some(reply)),
            () = self.signals.stop() => (Request::Stop, None),
        }
    }
}

/// Serves one connection: reads its request, hands it to the daemon with a responder, and
/// writes the replies until the final one.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    daemon: mpsc::UnboundedSender<(Request, Responder)>,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut line = String::new();
    // One request line, soon and short: a client that sends nothing, or no end of line, is
    // not kept.
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    match tokio::time::timeout(REQUEST_WAIT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let (tx, mut replies) = mpsc::unbounded_channel();
    match serde_json::from_str::<Request>(line.trim_end()) {
        Ok(request) => {
            if daemon.send((request, tx)).is_err() {
                return;
            }
        }
        Err(e) => {
            let _ = tx.send(Reply::Failed {
                message: format!("not a request this daemon knows: {e}"),
            });
        }
    }
    while let Some(reply) = replies.recv().await {
        let mut text = serde_json::to_vec(&reply).unwrap_or_default();
        text.push(b'\n');
        if write.write_all(&text).await.is_err() || reply.is_final() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// Binds `control.sock` in the state dir (this user's only) and accepts connections on it.
#[cfg(unix)]
fn listen(state: &State, daemon: mpsc::UnboundedSender<(Request, Responder)>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = endpoint(state);
    // Left by a daemon that crashed: this one holds the state dir's lock, so no other listens.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, daemon.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a control connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// Creates the daemon's named pipe (local clients only) and serves each connection on it.
#[cfg(not(unix))]
fn listen(state: &State, daemon: mpsc::UnboundedSender<(Request, Responder)>) -> Result<()> {
    use tokio::net::windows::named_pipe::ServerOptions;
    let name = endpoint(state);
    let instance = move |first: bool| {
        ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .create(&name)
    };
    let mut server = instance(true)
        .with_context(|| format!("creating the pipe {}", endpoint(state).display()))?;
    tokio::spawn(async move {
        loop {
            // A client gone before it was connected fails this instance: take a fresh one.
            let connected = server.connect().await;
            let next = loop {
                match instance(false) {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %e, "the control pipe cannot take another connection yet");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            };
            let done = std::mem::replace(&mut server, next);
            match connected {
                Ok(()) => {
                    tokio::spawn(serve_connection(done, daemon.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a control connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    });
    Ok(())
}

/// The signals that stop the daemon.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Ctrl-C, which stops a foreground daemon.
#[cfg(not(unix))]
struct Signals {
    ctrl_c: tokio::signal::windows::CtrlC,
}

#[cfg(not(unix))]
impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    async fn stop(&mut self) {
        let _ = self.ctrl_c.recv().await;
    }
}
