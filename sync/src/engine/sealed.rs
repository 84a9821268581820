//! The engine's transfers on an encrypted store: where a fetch puts the branches, what is done
//! after it (the sealed branches opened), and what a push sends (this machine's branch sealed).
//! A machine without the store key never pushes its plain branch into an encrypted store.

use super::remote::{Failure, RemoteError, redact};
use crate::crypt::sealing::{KEYRING_REF, SEALED_PREFIX, Sealing};
use crate::store::{REMOTE_PREFIX, Store};
use git2::Oid;

/// Where a fetch puts the machine branches: the plain remote-tracking refs, or, for a store that
/// is sealed, the sealed refs to be opened.
pub fn fetch_dest(sealing: Option<&Sealing>) -> &'static str {
    match sealing {
        Some(_) => SEALED_PREFIX,
        None => REMOTE_PREFIX,
    }
}

pub(super) fn refused(op: &'static str, url: &str, message: String) -> RemoteError {
    RemoteError {
        op,
        url: redact(url),
        message,
        kind: Failure::Other,
    }
}

/// What a machine without the key is told when the remote's store is encrypted.
fn encrypted_elsewhere(op: &'static str, url: &str) -> RemoteError {
    refused(
        op,
        url,
        "the store on this remote is encrypted and this machine has no key to it: nothing was pushed, and what the view shows of other machines stays as it was. Run `ferry encrypt` to join it (it prints this machine's recipient for `ferry key add`); if this machine joined since, run `ferry unmount && ferry mount`".into(),
    )
}

/// After a fetch: the sealed branches opened (what did not open, by machine, is returned), or,
/// for a plain store, an error if the remote turned out to be encrypted. `before`: a plain
/// store's remote-tracking branches as they were before the fetch, put back then, so that what
/// the view shows stays as it was until this machine joins (`None`: the fetch brought no
/// machine branch).
pub fn after_fetch(
    store: &Store,
    url: &str,
    sealing: Option<&Sealing>,
    deepened: bool,
    before: Option<&[(String, Oid)]>,
) -> Result<Vec<String>, RemoteError> {
    match sealing {
        Some(s) => s
            .open_fetched(store, deepened)
            .map_err(|e| refused("fetch", url, format!("opening the sealed branches: {e}"))),
        None if store.repo().refname_to_id(KEYRING_REF).is_ok() => {
            // What came are sealed branches: nothing plain may read them as its own.
            if let Some(before) = before {
                put_back(store, before);
            }
            Err(encrypted_elsewhere("fetch", url))
        }
        None => Ok(Vec::new()),
    }
}

/// The remote-tracking machine branches, by full name.
pub fn remote_branches(store: &Store) -> Vec<(String, Oid)> {
    match store.repo().references_glob(&format!("{REMOTE_PREFIX}*")) {
        Ok(refs) => refs
            .flatten()
            .filter_map(|r| Some((r.name().ok()?.to_string(), r.target()?)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Sets the remote-tracking machine branches back to `before`: those it names to what they
/// were, the others dropped.
fn put_back(store: &Store, before: &[(String, Oid)]) {
    for (name, _) in remote_branches(store) {
        if !before.iter().any(|(n, _)| *n == name)
            && let Ok(mut r) = store.repo().find_reference(&name)
        {
            let _ = r.delete();
        }
    }
    for (name, oid) in before {
        if let Err(e) = store
            .repo()
            .reference(name, *oid, true, "ferry: not sealed here")
        {
            tracing::warn!(%name, %e, "putting a remote-tracking branch back failed");
        }
    }
}

/// Drops every remote-tracking machine branch (sealed ones fetched by a machine without the key).
pub fn forget_remote_branches(store: &Store) {
    for (name, _) in remote_branches(store) {
        if let Ok(mut r) = store.repo().find_reference(&name) {
            let _ = r.delete();
        }
    }
}

/// Before a push: the sealed commit to send in place of this machine's branch (`None` for a
/// plain store), or an error where a plain branch must not go.
pub fn before_push(
    store: &Store,
    url: &str,
    machine_id: &str,
    sealing: Option<&Sealing>,
) -> Result<Option<Oid>, RemoteError> {
    match sealing {
        Some(s) => s
            .seal_own(store, machine_id)
            .map_err(|e| refused("push", url, format!("sealing this machine's branch: {e}"))),
        None if store.repo().refname_to_id(KEYRING_REF).is_ok() => {
            Err(encrypted_elsewhere("push", url))
        }
        None => Ok(None),
    }
}
