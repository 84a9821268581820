//! The daemon's control API: one request per connection to a local socket in the state dir (a
//! Unix domain socket, `control.sock`; on Windows a named pipe named after the state dir), JSON
//! lines both ways: the request, then replies ending with a final one. `ferry status` reads the
//! live status there, `ferry sync` asks for a sync and gets its report, `ferry unmount` asks
//! the daemon to stop and gets what the stop did, `ferry link` and `ferry machines` ask it to
//! reload. On Unix only this user can connect: the state dir is private, and so is the socket.
//! On Windows the pipe takes local clients only, with Windows' default security for a pipe
//! (its owner and administrators may write; other users may only open it for reading, which
//! gets them no answer: an answer needs a request).

use crate::report::Report;
use crate::state::State;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

/// What a command asks the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The engine's status now.
    Status,
    /// Commit, fetch and push: now, answering with the report, or soon, answering at once.
    Sync {
        /// Return at once; the daemon syncs within seconds.
        soon: bool,
    },
    /// Unmount, commit, push and exit, answering with what was done.
    Stop,
    /// Take `links.json` and `config.json` again (a `ferry link`, a rename) now.
    Reload,
}

/// What the daemon answers; every exchange ends with a final reply (see [`Reply::is_final`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The live status.
    Status {
        /// The engine's status.
        status: Box<ferry_sync::engine::Status>,
    },
    /// Work has begun (a sync or a stop); the final reply follows.
    Started {
        /// What is being done.
        doing: String,
    },
    /// Asked, and it will happen within seconds.
    Asked,
    /// A sync or a stop is done.
    Done {
        /// What it did.
        report: Report,
    },
    /// `links.json` and `config.json` were taken again.
    Reloaded {
        /// Paths whose listing moved with new links.
        moved: usize,
    },
    /// The daemon could not do it.
    Failed {
        /// Why.
        message: String,
    },
}

impl Reply {
    /// Whether this reply ends the exchange.
    pub fn is_final(&self) -> bool {
        !matches!(self, Reply::Started { .. })
    }
}

/// Where the daemon of `state` listens: `control.sock` in the state dir on Unix; on Windows a
/// pipe named after the state dir (pipes live in their own namespace).
pub fn endpoint(state: &State) -> PathBuf {
    #[cfg(unix)]
    {
        state.dir.join("control.sock")
    }
    #[cfg(not(unix))]
    {
        // A hash that stays the same across releases: a new ferry reaches an old daemon.
        let dir = state.dir.to_string_lossy();
        let h = ferry_sync::store::fnv1a(dir.as_bytes());
        PathBuf::from(format!(r"\\.\pipe\ferry-{h:016x}"))
    }
}

/// Asks the running daemon of `state` for `request` and returns its final reply, waiting at
/// most `wait` for it; `Ok(None)` when no daemon listens.
pub fn ask(state: &State, request: Request, wait: Duration) -> Result<Option<Reply>> {
    // On a thread, so that the wait holds on every OS (a pipe opened as a file has no read
    // timeout): the thread is left behind if the daemon never answers.
    let (tx, rx) = std::sync::mpsc::channel();
    let st = state.clone();
    std::thread::spawn(move || {
        let _ = tx.send(exchange(&st, request));
    });
    match rx.recv_timeout(wait) {
        Ok(answer) => answer,
        Err(_) => bail!(
            "the daemon did not answer within {} s; it goes on in the background: watch `ferry status`, and see {}",
            wait.as_secs(),
            state.log().display()
        ),
    }
}

/// One exchange with the daemon: the request, then replies until the final one.
fn exchange(state: &State, request: Request) -> Result<Option<Reply>> {
    let Some(stream) = connect(state)? else {
        return Ok(None);
    };
    let mut reader = BufReader::new(stream.try_clone_stream()?);
    let mut writer = stream;
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    writer
        .write_all(&line)
        .and_then(|()| writer.flush())
        .context("asking the daemon")?;
    loop {
        let mut text = String::new();
        let n = reader
            .read_line(&mut text)
            .context("reading the daemon's answer")?;
        if n == 0 {
            bail!(
                "the daemon closed the connection without answering; see {}",
                state.log().display()
            );
        }
        let reply: Reply = serde_json::from_str(text.trim_end())
            .with_context(|| format!("the daemon's answer is not understood: {}", text.trim()))?;
        if reply.is_final() {
            return Ok(Some(reply));
        }
    }
}

/// Has a running daemon take `links.json` and `config.json` again now; whether one did.
pub fn reload(state: &State) -> Result<bool> {
    if state.daemon_pid().is_none() {
        return Ok(false);
    }
    match ask(state, Request::Reload, Duration::from_secs(30))? {
        Some(Reply::Reloaded { .. }) => Ok(true),
        Some(Reply::Failed { message }) => bail!("the daemon could not take it: {message}"),
        // It takes the files within 2 s by itself too.
        _ => Ok(false),
    }
}

/// A connection to the daemon: a Unix stream, or a pipe opened as a file.
trait Stream: std::io::Read + Write + Sized {
    fn try_clone_stream(&self) -> std::io::Result<Self>;
}

#[cfg(unix)]
impl Stream for std::os::unix::net::UnixStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

#[cfg(not(unix))]
impl Stream for std::fs::File {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

/// Connects to the daemon of `state`, if one listens.
#[cfg(unix)]
fn connect(state: &State) -> Result<Option<std::os::unix::net::UnixStream>> {
    let path = endpoint(state);
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("connecting to the daemon at {}", path.display())),
    }
}

/// Connects to the daemon of `state`, if one listens.
#[cfg(not(unix))]
fn connect(state: &State) -> Result<Option<std::fs::File>> {
    let path = endpoint(state);
    // ERROR_PIPE_BUSY: every instance is taken for a moment; the daemon makes another.
    const PIPE_BUSY: i32 = 231;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => return Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(PIPE_BUSY) && std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("connecting to the daemon at {}", path.display()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_tagged_json_lines() {
        let r = serde_json::to_string(&Request::Sync { soon: true }).unwrap();
        assert_eq!(r, r#"{"op":"sync","soon":true}"#);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"stop"}"#).unwrap(),
            Request::Stop
        );
        let started = Reply::Started {
            doing: "stopping".into(),
        };
        assert!(!started.is_final());
        let text = serde_json::to_string(&Reply::Reloaded { moved: 2 }).unwrap();
        assert_eq!(text, r#"{"reply":"reloaded","moved":2}"#);
        assert!(serde_json::from_str::<Reply>(&text).unwrap().is_final());
    }
}
