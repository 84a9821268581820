//! Sealing as the engine uses it at each transfer: this machine's branch sealed before a push,
//! every fetched sealed branch opened after a fetch into the plain remote-tracking refs the rest
//! of ferry reads. Nothing else in ferry sees a sealed object.
//!
//! Refs (all local):
//! - `refs/ferry/sealed/machines/<id>`: each machine's sealed branch as last fetched (this
//!   machine's as last sealed).
//! - `refs/ferry/twin/machines/<id>`: the sealed commit whose plain twin the remote-tracking ref
//!   `refs/remotes/origin/machines/<id>` is, set only here, after opening or sealing it: the
//!   pairs learned again after a restart, so that the next seal or open costs what changed.
//! - `refs/ferry/remote/keyring`: the remote's keyring (see [`super::keyring`]).

use super::translate::{Translator, Twins};
use super::{CryptError, StoreKey};
use crate::store::{REMOTE_PREFIX, Store, own_ref};
use git2::Oid;
use std::sync::Mutex;

/// Most twins kept between transfers.
const MAX_TWINS: usize = 400_000;

/// Where fetched sealed branches land.
pub const SEALED_PREFIX: &str = "refs/ferry/sealed/machines/";
/// The sealed twins of the plain remote-tracking refs.
pub const TWIN_PREFIX: &str = "refs/ferry/twin/machines/";
/// The keyring's branch on the remote.
pub const KEYRING_HEAD: &str = "refs/heads/ferry/keyring";
/// The keyring as last fetched.
pub const KEYRING_REF: &str = "refs/ferry/remote/keyring";
/// What every fetch also brings: the remote's ferry refs (the keyring, if the store is
/// encrypted), so a machine without the key learns that it must not push plain.
pub const FERRY_REFSPEC: &str = "+refs/heads/ferry/*:refs/ferry/remote/*";

/// The store key, and the twins known so far (learned from the twin refs on first use).
pub struct Sealing {
    key: StoreKey,
    twins: Mutex<Option<Twins>>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealing(..)")
    }
}

impl Sealing {
    /// Sealing with the store key `key`.
    pub fn new(key: StoreKey) -> Sealing {
        Sealing {
            key,
            twins: Mutex::new(None),
        }
    }

    /// Runs `f` with a translator that knows every twin known so far.
    fn translate<T>(
        &self,
        store: &Store,
        f: impl FnOnce(&mut Translator<'_>) -> T,
    ) -> Result<T, CryptError> {
        let mut guard = self.twins.lock().unwrap_or_else(|e| e.into_inner());
        let twins = match guard.take() {
            Some(t) => t,
            None => learned(store, &self.key)?,
        };
        let mut t = Translator::with(store.repo(), self.key.keys(), twins);
        let out = f(&mut t);
        let twins = t.into_twins();
        // About 100 bytes a pair: past this they are learned again from the twin refs, which
        // hold only the live trees, so months of history never pile up in the daemon.
        *guard = (twins.len() < MAX_TWINS).then_some(twins);
        Ok(out)
    }

    /// Seals this machine's branch and points its sealed ref at the result: the commit to push
    /// (`None` when the branch has no commit yet).
    pub fn seal_own(&self, store: &Store, machine_id: &str) -> Result<Option<Oid>, CryptError> {
        let Ok(head) = store.repo().refname_to_id(&own_ref(machine_id)) else {
            return Ok(None);
        };
        let sealed = self.translate(store, |t| t.seal_commit(head))??;
        store.repo().reference(
            &format!("{SEALED_PREFIX}{machine_id}"),
            sealed,
            true,
            "ferry seal",
        )?;
        Ok(Some(sealed))
    }

    /// Records that the remote holds `sealed`, the twin of this machine's branch as pushed.
    pub fn pushed(&self, store: &Store, machine_id: &str, sealed: Oid) -> Result<(), CryptError> {
        store.repo().reference(
            &format!("{TWIN_PREFIX}{machine_id}"),
            sealed,
            true,
            "ferry push",
        )?;
        Ok(())
    }

    /// Opens every fetched sealed branch into its plain remote-tracking ref; says, by machine,
    /// what did not open (that machine's branch is then left as it was).
    pub fn open_fetched(&self, store: &Store) -> Result<Vec<String>, CryptError> {
        let fetched = refs_under(store, SEALED_PREFIX)?;
        let mut failed = Vec::new();
        let (mut shallow, mut deepened) = (Vec::new(), Vec::new());
        for (id, sealed) in fetched {
            let twin = format!("{TWIN_PREFIX}{id}");
            let plain = format!("{REMOTE_PREFIX}{id}");
            // Opened already, unless a deepening fetch brought what it lacked.
            if store.repo().refname_to_id(&twin).ok() == Some(sealed)
                && !store
                    .repo()
                    .refname_to_id(&plain)
                    .is_ok_and(|p| is_shallow(store, p))
            {
                continue;
            }
            match self.translate(store, |t| t.open_commit(sealed))? {
                Ok(opened) => {
                    let repo = store.repo();
                    repo.reference(&plain, opened.commit, true, "ferry open")?;
                    repo.reference(&twin, sealed, true, "ferry open")?;
                    shallow.extend(opened.shallow);
                    deepened.extend(opened.deepened);
                }
                Err(e) => failed.push(format!("machine {id}: {e}")),
            }
        }
        if !shallow.is_empty() || !deepened.is_empty() {
            mark_shallow(store, &shallow, &deepened)?;
        }
        Ok(failed)
    }
}

/// The refs under `prefix`, by the name after it.
fn refs_under(store: &Store, prefix: &str) -> Result<Vec<(String, Oid)>, CryptError> {
    let mut out = Vec::new();
    for r in store.repo().references_glob(&format!("{prefix}*"))? {
        let r = r?;
        if let (Ok(name), Some(oid)) = (r.name(), r.target()) {
            out.push((name[prefix.len()..].to_string(), oid));
        }
    }
    Ok(out)
}

/// The twins of every pair the twin refs record (plain remote-tracking ref, sealed twin), walked
/// side by side: names only, no file read. A pair that does not match is skipped (it is only
/// a head start).
fn learned(store: &Store, key: &StoreKey) -> Result<Twins, CryptError> {
    let mut t = Translator::new(store.repo(), key.keys());
    for (id, sealed) in refs_under(store, TWIN_PREFIX)? {
        let Ok(plain) = store.repo().refname_to_id(&format!("{REMOTE_PREFIX}{id}")) else {
            continue;
        };
        let mut trial = Translator::new(store.repo(), key.keys());
        if trial.learn(plain, sealed).is_ok() {
            t.learn(plain, sealed)?;
        } else {
            tracing::warn!(machine = %id, "the sealed twin of a branch does not match it; sealing it again");
        }
    }
    Ok(t.into_twins())
}

/// Whether plain commit `plain` lacks a parent here (opened from a shallow fetch).
fn is_shallow(store: &Store, plain: Oid) -> bool {
    let Ok(odb) = store.repo().odb() else {
        return false;
    };
    let Ok(object) = odb.read(plain) else {
        return false;
    };
    object
        .data()
        .split(|&b| b == b'\n')
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix(b"parent "))
        .filter_map(|hex| Oid::from_str(std::str::from_utf8(hex).ok()?).ok())
        .any(|p| !odb.exists(p))
}

/// Adds `added` to the store's shallow list (their parents were not fetched, and git must not
/// look for them) and takes `complete` off it (their parents came with a deepening fetch).
fn mark_shallow(store: &Store, added: &[Oid], complete: &[Oid]) -> Result<(), CryptError> {
    let path = store.repo().path().join("shallow");
    let io = |source| CryptError::Io {
        path: path.clone(),
        source,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let gone: Vec<String> = complete.iter().map(Oid::to_string).collect();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && !gone.iter().any(|g| g == l))
        .map(String::from)
        .collect();
    for c in added {
        let hex = c.to_string();
        if !lines.contains(&hex) {
            lines.push(hex);
        }
    }
    if lines.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("ferry-tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n").map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}
