//! Fetch and push through git2 (the fallback when no `git` is on PATH; see `git_cli.rs`),
//! reporting progress to a watcher, never called from a filesystem path.
//! This machine pushes only its own branch; every machine's branch is fetched.

use crate::store::{Store, own_ref};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts the callbacks of a running transfer, so that a slow transfer that still moves is told
/// apart from one that stalled (see `engine::watch`), and carries the watcher's word to stop.
#[derive(Clone, Debug, Default)]
pub struct Progress(
    Arc<AtomicU64>,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<[AtomicU64; 3]>,
);

/// How far a fetch or push has got, as git counts it, for a progress bar and `ferry status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transferred {
    /// Objects received (a fetch) or written (a push) so far.
    pub objects: u64,
    /// Objects the transfer holds in all (0 until the remote has said).
    pub total_objects: u64,
    /// Bytes received or sent so far.
    pub bytes: u64,
}

impl Progress {
    /// Records how far the transfer has got (bytes only ever grow: two sources report them).
    pub fn transferred(&self, objects: u64, total_objects: u64, bytes: u64) {
        self.2[0].store(objects, Ordering::Relaxed);
        self.2[1].store(total_objects, Ordering::Relaxed);
        self.2[2].fetch_max(bytes, Ordering::Relaxed);
    }

    /// Records the bytes received so far, where nothing else is known.
    pub fn bytes(&self, bytes: u64) {
        self.2[2].fetch_max(bytes, Ordering::Relaxed);
    }

    /// How far the transfer has got.
    pub fn so_far(&self) -> Transferred {
        Transferred {
            objects: self.2[0].load(Ordering::Relaxed),
            total_objects: self.2[1].load(Ordering::Relaxed),
            bytes: self.2[2].load(Ordering::Relaxed),
        }
    }

    /// Asks the transfer to stop (a `git` subprocess is killed; libgit2 cannot be).
    pub fn cancel(&self) {
        self.1.store(true, Ordering::SeqCst);
    }

    /// Whether the watcher gave up on the transfer.
    pub fn cancelled(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    /// Notes that the transfer moved.
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times it has moved so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A network failure, with the remote URL stripped of credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} {url}: {message}")]
pub struct RemoteError {
    /// `fetch` or `push`.
    pub op: &'static str,
    /// The remote, without user info.
    pub url: String,
    /// What went wrong.
    pub message: String,
    /// Which kind of failure: an authentication failure pauses transfers.
    pub kind: Failure,
}

/// Kinds of remote failure that need different answers from the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The network or the server failed (down, refused, timed out): retried with a backoff.
    #[default]
    Network,
    /// The login was refused (no usable key, a wrong password, no credentials, an untrusted
    /// certificate): never retried in a loop.
    Auth,
    /// The server's ssh host key is not in known_hosts.
    HostKeyUnknown,
    /// The server's ssh host key differs from the one in known_hosts.
    HostKeyChanged,
    /// The host (or ssh alias) does not resolve.
    Resolve,
    /// The repository does not exist, or the account cannot reach it.
    NoAccess,
    /// The remote answered and refused the branch (a hook, a protected branch, a full quota):
    /// pushes are retried with their own backoff, and fetches go on meanwhile.
    Rejected,
    /// Anything else (a local problem).
    Other,
}

impl Failure {
    /// Whether trying again without the user acting would only fail again and count against
    /// the account (a refused login) or the user's trust (a host key). A name that does not
    /// resolve or a missing repository is retried with the backoff: the network may be down, a
    /// disk not mounted yet.
    pub fn needs_the_user(self) -> bool {
        matches!(
            self,
            Failure::Auth | Failure::HostKeyUnknown | Failure::HostKeyChanged
        )
    }
}

/// Removes `user:password@` from a URL before it reaches a log or a status line, even when the
/// password holds a `/` or an `@` (everything up to the last `@` that a plausible host follows
/// goes).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let plausible_host = |s: &str| {
        let host = s.split('/').next().unwrap_or(s);
        !host.is_empty()
            && host.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_')
            })
    };
    let cut = rest
        .match_indices('@')
        .map(|(i, _)| i)
        .rfind(|&i| plausible_host(&rest[i + 1..]));
    match cut {
        Some(i) => format!("{scheme}://{}", &rest[i + 1..]),
        None => url.to_string(),
    }
}

/// [`redact`] for every URL in a piece of text (a message from git or libgit2).
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+'))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>'))
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Sets libgit2's socket timeouts (process-wide), so a stalled server cannot hold a network
/// operation's thread forever: `connect` to connect, `read` for any one read or write.
pub fn set_timeouts(connect: Duration, read: Duration) {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: these set process-wide integers in libgit2; concurrent operations read them.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms(read));
    }
}

fn error(op: &'static str, url: &str, message: impl ToString) -> RemoteError {
    RemoteError {
        op,
        url: redact(url),
        message: redact_text(&message.to_string()),
        kind: Failure::Network,
    }
}

/// Fetches every machine's branch into `refs/remotes/origin/machines/*`, giving up once the
/// remote has sent more than `max_bytes` (a hostile or broken remote cannot fill the disk).
/// Local-path remotes copy objects without a transfer to watch; the bound is for networks.
pub fn fetch(
    store: &Store,
    url: &str,
    max_bytes: u64,
    progress: &Progress,
    history: History,
    dest: &str,
) -> Result<(), RemoteError> {
    let mut remote = store
        .repo()
        .remote_anonymous(url)
        .map_err(|e| error("fetch", url, e))?;
    let refspec = format!("+refs/heads/machines/*:{dest}*");
    let too_big = std::cell::Cell::new(false);
    let mut callbacks = git2::RemoteCallbacks::new();
    super::credentials::install(&mut callbacks, crate::engine::home_dir());
    callbacks.sideband_progress(|_| {
        progress.tick();
        true
    });
    callbacks.transfer_progress(|p| {
        progress.tick();
        progress.transferred(
            p.received_objects() as u64,
            p.total_objects() as u64,
            p.received_bytes() as u64,
        );
        let over = p.received_bytes() as u64 > max_bytes;
        too_big.set(over);
        !over
    });
    let mut opts = git2::FetchOptions::new();
    opts.prune(git2::FetchPrune::Off)
        .remote_callbacks(callbacks);
    match history {
        History::New => {}
        History::Tips => {
            opts.depth(1);
        }
        // libgit2's "unshallow" depth.
        History::All if store.repo().is_shallow() => {
            opts.depth(i32::MAX);
        }
        History::All => {}
    }
    let result = remote.fetch(
        &[refspec.as_str(), crate::crypt::sealing::FERRY_REFSPEC],
        Some(&mut opts),
        Some("ferry fetch"),
    );
    drop(opts);
    if too_big.get() {
        return Err(error("fetch", url, too_much(max_bytes)));
    }
    result.map_err(|e| error("fetch", url, e))
}

/// Most bytes a fetch of the keyring branch alone takes: a keyring is kilobytes, its whole
/// history at most a few megabytes.
pub const REF_MAX_BYTES: u64 = 64 << 20;

/// Fetches `refspec` alone (the keyring of an encrypted store) through libgit2, giving up once
/// the remote has sent more than `max_bytes`.
pub fn fetch_ref(
    store: &Store,
    url: &str,
    refspec: &str,
    max_bytes: u64,
) -> Result<(), RemoteError> {
    let mut remote = store
        .repo()
        .remote_anonymous(url)
        .map_err(|e| error("fetch", url, e))?;
    let too_big = std::cell::Cell::new(false);
    let mut callbacks = git2::RemoteCallbacks::new();
    super::credentials::install(&mut callbacks, crate::engine::home_dir());
    callbacks.transfer_progress(|p| {
        let over = p.received_bytes() as u64 > max_bytes;
        too_big.set(over);
        !over
    });
    let mut opts = git2::FetchOptions::new();
    opts.prune(git2::FetchPrune::Off)
        .remote_callbacks(callbacks);
    let result = remote.fetch(&[refspec], Some(&mut opts), Some("ferry fetch"));
    drop(opts);
    if too_big.get() {
        return Err(error("fetch", url, too_much(max_bytes)));
    }
    result.map_err(|e| error("fetch", url, e))
}

/// What a fetch refused for its size says.
pub(super) fn too_much(max_bytes: u64) -> String {
    format!(
        "the remote sent more than {max_bytes} bytes; refusing the rest (raise max_fetch_bytes if this is real)"
    )
}

/// How much of the branches' history a fetch brings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History {
    /// What the store lacks on top of what it has.
    New,
    /// Only each branch's tip: a new machine's first fetch, which is all the view needs.
    /// Older versions follow when asked for (`History::All`).
    Tips,
    /// All of it, a store that holds only tips included (`ferry restore`).
    All,
}

/// The commit the remote's ref `refname` names now (`None`: it has no such ref), through
/// libgit2.
pub fn head_of(store: &Store, url: &str, refname: &str) -> Result<Option<git2::Oid>, RemoteError> {
    let mut remote = store
        .repo()
        .remote_anonymous(url)
        .map_err(|e| error("push", url, e))?;
    let mut callbacks = git2::RemoteCallbacks::new();
    super::credentials::install(&mut callbacks, crate::engine::home_dir());
    let connection = remote
        .connect_auth(git2::Direction::Fetch, Some(callbacks), None)
        .map_err(|e| error("push", url, e))?;
    let heads = connection.list().map_err(|e| error("push", url, e))?;
    Ok(heads.iter().find(|h| h.name() == refname).map(|h| h.oid()))
}

/// What a push refused by its lease says (git's own words): the remote's copy of the branch
/// is not the one this machine last saw.
pub const STALE: &str = "stale info";

/// Pushes this machine's branch (forced: the branch is this machine's alone) and records the
/// pushed commit as the remote's copy of it; `true` when the remote's branch moved (it lacked
/// this head). `lease`: only if the remote has the branch at that commit (`Some(None)`: has no
/// such branch).
pub fn push(
    store: &Store,
    url: &str,
    machine_id: &str,
    progress: &Progress,
    sealed: Option<git2::Oid>,
    lease: Option<Option<git2::Oid>>,
) -> Result<bool, RemoteError> {
    let own = own_ref(machine_id);
    let Ok(head) = store.repo().refname_to_id(&own) else {
        return Ok(false);
    };
    // On Windows, when the remote has this head already, there is nothing to send: libgit2
    // would send the pack again all the same, and renaming it onto the identical pack there
    // fails. The remote is asked, not the copy last fetched, which may be another remote's
    // (the remote changed since). Elsewhere the push goes ahead.
    if cfg!(windows) && head_of(store, url, &own)? == Some(head) {
        return store
            .record_pushed(machine_id, head)
            .map(|()| false)
            .map_err(|e| error("push", url, e));
    }
    let mut remote = store
        .repo()
        .remote_anonymous(url)
        .map_err(|e| error("push", url, e))?;
    let rejected = std::cell::RefCell::new(None);
    let moved = std::cell::Cell::new(false);
    let mut callbacks = git2::RemoteCallbacks::new();
    super::credentials::install(&mut callbacks, crate::engine::home_dir());
    callbacks.push_negotiation(|updates| {
        progress.tick();
        let there = updates
            .first()
            .map(|u| u.src())
            .filter(|o| !o.is_zero());
        moved.set(updates.first().is_some_and(|u| u.src() != u.dst()));
        match lease {
            Some(expect) if there != expect => Err(git2::Error::from_str(&format!(
                "[rejected] ({STALE}): the remote's copy of this machine's branch moved since it was last seen"
            ))),
            _ => Ok(()),
        }
    });
    callbacks.pack_progress(|_, _, _| progress.tick());
    callbacks.push_transfer_progress(|sent, total, bytes| {
        progress.tick();
        progress.transferred(sent as u64, total as u64, bytes as u64);
    });
    callbacks.sideband_progress(|_| {
        progress.tick();
        true
    });
    callbacks.push_update_reference(|name, status| {
        if let Some(msg) = status {
            *rejected.borrow_mut() = Some(format!("the remote rejected {name}: {msg}"));
        }
        Ok(())
    });
    let mut opts = git2::PushOptions::new();
    opts.remote_callbacks(callbacks);
    let source = match sealed {
        Some(_) => format!("{}{machine_id}", crate::crypt::sealing::SEALED_PREFIX),
        None => own.clone(),
    };
    let spec = format!("+{source}:{own}");
    remote
        .push(&[spec.as_str()], Some(&mut opts))
        .map_err(|e| error("push", url, e))?;
    drop(opts);
    if let Some(msg) = rejected.into_inner() {
        return Err(RemoteError {
            kind: Failure::Rejected,
            ..error("push", url, msg)
        });
    }
    store
        .record_pushed(machine_id, head)
        .map_err(|e| error("push", url, e))?;
    Ok(moved.get())
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_text};

    #[test]
    fn a_push_by_libgit2_says_whether_the_remote_branch_moved() {
        let tmp = tempfile::tempdir().unwrap();
        let store = crate::store::Store::init(&tmp.path().join("store.git")).unwrap();
        let repo = store.repo();
        let sig = git2::Signature::now("t", "t@t").unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let own = crate::store::own_ref("m");
        repo.commit(Some(&own), &sig, &sig, "one", &tree, &[])
            .unwrap();
        let bare = |name: &str| {
            let path = tmp.path().join(name);
            git2::Repository::init_bare(&path).unwrap();
            path.to_str().unwrap().to_string()
        };
        let (first, other) = (bare("first.git"), bare("other.git"));
        let push = |url: &str| super::push(&store, url, "m", &Default::default(), None, None);
        assert!(push(&first).unwrap(), "a new branch there");
        assert!(!push(&first).unwrap(), "the same head again");
        let head = repo.refname_to_id(&own).unwrap();
        let parent = repo.find_commit(head).unwrap();
        repo.commit(Some(&own), &sig, &sig, "two", &tree, &[&parent])
            .unwrap();
        assert!(push(&first).unwrap(), "a fast-forward");
        // Another remote, though the copy remembered (the first's) is this head.
        assert!(push(&other).unwrap(), "a new branch in another remote");
        assert!(!push(&other).unwrap());
    }

    #[test]
    fn credentials_never_survive_redaction() {
        assert_eq!(
            redact("https://u:tok@h.com/o/r.git"),
            "https://h.com/o/r.git"
        );
        assert_eq!(redact("https://h.com"), "https://h.com");
        assert_eq!(redact("git@h.com:o/r"), "git@h.com:o/r");
        assert_eq!(redact("/srv/r.git"), "/srv/r.git");
        assert_eq!(
            redact_text("fatal: unable to access 'https://u:p@ss@h.org/r.git/': refused"),
            "fatal: unable to access 'https://h.org/r.git/': refused"
        );
        for secret in ["p/ss", "p@ss", "a/b@c", "p%40ss"] {
            let shown = redact(&format!("https://me:{secret}@h.org:8443/o/r.git"));
            assert_eq!(shown, "https://h.org:8443/o/r.git", "{secret}");
        }
    }
}
