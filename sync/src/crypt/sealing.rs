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
//! - `refs/ferry/remote/keyring`: the remote's keyring as last fetched (see [`super::keyring`]).
//! - `refs/ferry/kept/keyring`: the newest keyring this machine has taken.

use super::fresh::rolled_back;
use super::keyring::{Identity, Keyring};
use super::pin::KeyPin;
use super::translate::{Translator, Twins, parents_here};
use super::{CryptError, Keys, StoreKeys};
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
/// The newest keyring this machine has taken: what it seals with when it starts, whatever older
/// keyring the remote served since (which it refuses, see [`super::pin`]).
pub const KEYRING_KEPT: &str = "refs/ferry/kept/keyring";
/// What every fetch also brings: the remote's ferry refs (the keyring, if the store is
/// encrypted), so a machine without the key learns that it must not push plain.
pub const FERRY_REFSPEC: &str = "+refs/heads/ferry/*:refs/ferry/remote/*";

/// The store's keys, and the twins known so far (learned from the twin refs on first use).
pub struct Sealing {
    keys: Mutex<StoreKeys>,
    /// This machine's identity and the keyring its keys came from: a newer keyring fetched
    /// (another key after a machine was removed) is opened with it.
    follow: Option<(Identity, Mutex<Option<Oid>>, KeyPin)>,
    /// This machine's id, whose branch as the remote has it is not held to what was seen.
    own: Option<String>,
    /// Why this machine may push no more: its key was removed from the keyring.
    removed: Mutex<Option<String>>,
    twins: Mutex<Option<Twins>>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealing(..)")
    }
}

impl Sealing {
    /// Sealing with the store keys `keys`, for good.
    pub fn new(keys: StoreKeys) -> Sealing {
        Sealing {
            keys: Mutex::new(keys),
            follow: None,
            own: None,
            removed: Mutex::new(None),
            twins: Mutex::new(None),
        }
    }

    /// Sealing with `keys` for machine `own`, opened by `identity` from the keyring at commit
    /// `ring`: a newer keyring fetched later is followed ([`Sealing::follow_keyring`]), if `pin`
    /// takes its keys.
    pub fn following(
        keys: StoreKeys,
        identity: Identity,
        ring: Option<Oid>,
        pin: KeyPin,
        own: &str,
    ) -> Sealing {
        Sealing {
            follow: Some((identity, Mutex::new(ring), pin)),
            own: Some(own.to_string()),
            ..Sealing::new(keys)
        }
    }

    /// After a fetch: takes the keys of a newer keyring (a new key, after a machine was
    /// removed), or, when it no longer opens for this machine, stops its pushes.
    pub fn follow_keyring(&self, store: &Store) -> Result<(), CryptError> {
        let Some((identity, seen, pin)) = &self.follow else {
            return Ok(());
        };
        let Ok(now) = store.repo().refname_to_id(KEYRING_REF) else {
            return Ok(());
        };
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen == Some(now) {
            return Ok(());
        }
        let Some(ring) = Keyring::read(store.repo(), KEYRING_REF)? else {
            return Ok(());
        };
        match ring.open(identity)? {
            Some(keys) => {
                // Kept on disk: a later run refuses this keyring's predecessors too.
                pin.check(&keys)?;
                let mut current = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                if !current.extended_by(&keys) {
                    return Err(CryptError::Damaged(
                        "the remote's keyring holds other keys than this store's: refusing it (a keyring swapped by someone without the key?)".into(),
                    ));
                }
                *current = keys;
                *self.removed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                store
                    .repo()
                    .reference(KEYRING_KEPT, now, true, "ferry: keyring taken")?;
            }
            None => {
                tracing::error!("this machine's key was removed from the encrypted store");
                *self.removed.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                    "this machine's key was removed from the encrypted store, or the remote serves a keyring from before it joined: it pushes nothing more. To be let in again, run `ferry key add {}` on a machine that has the key",
                    identity.recipient()
                ));
            }
        }
        *seen = Some(now);
        Ok(())
    }

    /// Runs `f` with a translator that knows every twin known so far, then writes what it made
    /// (as one pack) if `f` went through: `f`'s error is the outer one, the writing's too. After
    /// either error, what was made is dropped and its twins are forgotten.
    fn translate<T>(
        &self,
        store: &Store,
        f: impl FnOnce(&mut Translator<'_>) -> Result<T, CryptError>,
    ) -> Result<T, CryptError> {
        let mut guard = self.twins.lock().unwrap_or_else(|e| e.into_inner());
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner()).keys();
        let twins = match guard.take() {
            Some(t) => t,
            None => learned(store, &keys)?,
        };
        let mut t = Translator::with(store.repo(), keys, twins);
        let out = f(&mut t).and_then(|out| t.write().map(|()| out));
        if out.is_err() {
            t.discard();
        }
        let twins = t.into_twins();
        // About 100 bytes a pair, and some 200 for each sealed name opened (fewer than the
        // pairs: most entries share a few names). Past this they are learned again from the
        // twin refs, which hold only the live trees, so months of history never pile up in
        // the daemon.
        *guard = (twins.len() < MAX_TWINS).then_some(twins);
        out
    }

    /// Seals this machine's branch and points its sealed ref at the result: the commit to push
    /// (`None` when the branch has no commit yet).
    pub fn seal_own(&self, store: &Store, machine_id: &str) -> Result<Option<Oid>, CryptError> {
        // A `ferry key remove` run here a moment ago seals this push with the new key already.
        self.follow_keyring(store)?;
        if let Some(why) = self
            .removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(CryptError::Key(why));
        }
        let Ok(head) = store.repo().refname_to_id(&own_ref(machine_id)) else {
            return Ok(None);
        };
        let sealed = self.translate(store, |t| t.seal_commit(head))?;
        store.repo().reference(
            &format!("{SEALED_PREFIX}{machine_id}"),
            sealed,
            true,
            "ferry seal",
        )?;
        Ok(Some(sealed))
    }

    /// Seals every branch of `branches` (machine id, plain commit) whole, history included,
    /// and points each one's sealed ref at the result: a plain store made encrypted
    /// (`ferry encrypt`) seals the other machines' branches too, as they were fetched. Sealing
    /// is deterministic, so a machine that joins later seals its own branch to the very same
    /// commits.
    pub fn seal_branches(
        &self,
        store: &Store,
        branches: &[(String, Oid)],
    ) -> Result<Vec<(String, Oid)>, CryptError> {
        let sealed = self.translate(store, |t| {
            branches
                .iter()
                .map(|(id, plain)| Ok((id.clone(), t.seal_commit(*plain)?)))
                .collect::<Result<Vec<_>, CryptError>>()
        })?;
        for (id, s) in &sealed {
            store
                .repo()
                .reference(&format!("{SEALED_PREFIX}{id}"), *s, true, "ferry seal")?;
        }
        Ok(sealed)
    }

    /// Records that the remote holds `sealed`, the twin of machine `machine_id`'s branch as
    /// pushed (this machine's, or any machine's sealed by `ferry encrypt`).
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
    /// `deepened`: the fetch brought older history (`ferry restore`), which is opened whole.
    pub fn open_fetched(&self, store: &Store, deepened: bool) -> Result<Vec<String>, CryptError> {
        self.follow_keyring(store)?;
        let fetched = refs_under(store, SEALED_PREFIX)?;
        // Said with every fetch, as long as it holds: `ferry status` shows it.
        let mut failed: Vec<String> = self
            .removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let (mut shallow, mut complete, mut refs) = (Vec::new(), Vec::new(), Vec::new());
        for (id, sealed) in fetched {
            let twin = format!("{TWIN_PREFIX}{id}");
            let plain = format!("{REMOTE_PREFIX}{id}");
            // Opened already, unless a deepening fetch brought what it lacked.
            if !deepened
                && store.repo().refname_to_id(&twin).ok() == Some(sealed)
                && !store
                    .repo()
                    .refname_to_id(&plain)
                    .is_ok_and(|p| !parents_here(store.repo(), p).unwrap_or(true))
            {
                continue;
            }
            match self.translate(store, |t| t.open_history(sealed, deepened)) {
                Ok(opened) => {
                    match refused_branch(store, &id, &plain, opened.commit, self.own.as_deref()) {
                        None => {
                            shallow.extend(opened.shallow);
                            complete.extend(opened.deepened);
                            refs.push((plain, opened.commit, twin, sealed));
                        }
                        Some(why) => failed.push(why),
                    }
                }
                Err(e) => failed.push(format!("machine {id}: {e}")),
            }
        }
        // The shallow list first: a crash after it leaves refs that are merely not moved yet.
        if !shallow.is_empty() || !complete.is_empty() {
            mark_shallow(store, &shallow, &complete)?;
        }
        let repo = store.repo();
        for (plain, commit, twin, sealed) in refs {
            repo.reference(&plain, commit, true, "ferry open")?;
            repo.reference(&twin, sealed, true, "ferry open")?;
        }
        Ok(failed)
    }
}

/// Why machine `id`'s branch, opened to `commit`, may not replace its remote-tracking ref
/// `plain`: a branch is bound to its machine by the record it holds, sealed, and must hold the
/// newest state of it opened here (no rollback by the remote), unless it is this machine's own
/// (`own`; without one, a branch of the store's own).
fn refused_branch(
    store: &Store,
    id: &str,
    plain: &str,
    commit: Oid,
    own: Option<&str>,
) -> Option<String> {
    match store.machine_record(id, commit) {
        Ok(r) if r.id != id => {
            return Some(format!(
                "machine {id}: its sealed branch holds machine {}'s record (moved by the remote?)",
                r.id
            ));
        }
        Err(e) => return Some(format!("machine {id}: {e}")),
        Ok(_) => {}
    }
    // This machine's own branch as the remote has it is not held to what was seen: another
    // install writing it (a copy of this one) must be seen, and this machine pushes its own
    // over it anyway.
    let is_own = match own {
        Some(own) => own == id,
        None => store.repo().refname_to_id(&own_ref(id)).is_ok(),
    };
    if is_own {
        return None;
    }
    let old = store.repo().refname_to_id(plain).ok()?;
    match rolled_back(store.repo(), old, commit) {
        Ok(None) => None,
        Ok(Some(why)) => Some(format!(
            "machine {id}: the remote served {why}: refused, as a rollback by the remote would be; what the view shows of it stays as it was"
        )),
        Err(e) => Some(format!("machine {id}: {e}")),
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
fn learned(store: &Store, keys: &Keys) -> Result<Twins, CryptError> {
    let mut twins = Twins::default();
    for (id, sealed) in refs_under(store, TWIN_PREFIX)? {
        let Ok(plain) = store.repo().refname_to_id(&format!("{REMOTE_PREFIX}{id}")) else {
            continue;
        };
        // Each pair on its own: one that does not match leaves nothing behind.
        let mut pair = Translator::new(store.repo(), keys.clone());
        match pair.learn(plain, sealed) {
            Ok(()) => twins.absorb(pair.into_twins()),
            Err(e) => {
                tracing::warn!(machine = %id, %e, "the sealed twin of a branch does not match it; sealing it again")
            }
        }
    }
    Ok(twins)
}

/// Adds `added` to the store's shallow list (their parents were not fetched, and git must not
/// look for them) and takes `complete` off it (their parents came with a deepening fetch).
fn mark_shallow(store: &Store, added: &[Oid], complete: &[Oid]) -> Result<(), CryptError> {
    Ok(store.edit_shallow(|list| {
        list.retain(|id| !complete.contains(id));
        list.extend(added);
    })?)
}
