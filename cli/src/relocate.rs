//! `ferry remote set URL` for an encrypted store: the store moved to another remote. The first
//! machine to move puts the keyring and every branch, sealed, on the new remote (which must be
//! empty) in one atomic push; each machine after it finds its own store there (the same key)
//! and only switches. The old remote is left as it is.

use crate::command::Ctx;
use crate::encrypt::{Plain, drop_ref, new_remote, put_sealed};
use crate::keys;
use anyhow::{Context, Result, bail};
use ferry_sync::crypt::keyring::{Identity, Keyring};
use ferry_sync::crypt::sealing::{KEYRING_HEAD, KEYRING_REF};
use ferry_sync::engine::{History, REF_MAX_BYTES, redact};
use ferry_sync::store::Store;

/// Where the new remote's keyring is fetched to, to be compared with this store's.
const THEIR_KEYRING: &str = "refs/ferry/pending/their-keyring";

/// Moves this machine's encrypted store to `to` (checked already): says how many sealed
/// branches went there, or `None` when another machine had moved the store there already.
pub fn move_to(ctx: &Ctx, to: &str) -> Result<Option<usize>> {
    let st = ctx.state()?;
    let config = ctx.config()?;
    let from = config
        .remote
        .clone()
        .context("this store has no remote to move from")?;
    let git = keys::git(st)?;
    let store = Store::open(&st.store()).context("opening the store")?;
    let sealing = keys::sealing(st, config)?
        .context("this machine's store is encrypted, but its keyring is missing: run `ferry init --remote URL` again to fetch it")?;
    let held = git
        .heads_under(to, "refs/heads/ferry/")
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .with_context(|| format!("the remote {} cannot be reached", redact(to)))?;
    if held.iter().any(|h| h == KEYRING_HEAD) {
        return same_store(ctx, &git, &store, to).map(|()| None);
    }
    new_remote(&git, &from, to)?;
    // Every branch's whole history is sealed again from the plain one, as fresh as the old
    // remote has it: a store that holds only the tips needs the rest, one that holds it all
    // goes on with what it has if the old remote cannot be reached (each machine pushes its
    // own branch to the new remote once it moves too).
    let shallow = store.repo().is_shallow();
    let history = if shallow { History::All } else { History::New };
    match crate::transfer_bar::fetch_shown(ctx, &store, &from, history, Some(&sealing)) {
        Ok(unopened) if !unopened.is_empty() => ctx.ui.note(format!(
            "some branches of {} did not open and go as this machine had them: {}",
            redact(&from),
            unopened.join("; ")
        )),
        Ok(_) => {}
        Err(e) if shallow => bail!(
            "this machine holds only the tips of the other machines' history, and fetching the rest from {} failed ({}): move the store from a machine that holds all of it (nothing was changed)",
            redact(&from),
            e.message
        ),
        Err(e) => ctx.ui.note(format!(
            "{} cannot be reached ({}): the other machines' branches go as this machine last fetched them, and each brings its own up to date once it moves too",
            redact(&from),
            e.message
        )),
    }
    // Only the branches the old remote has now, if it can be asked.
    let present = git.heads_under(&from, "refs/heads/machines/").ok();
    let plain = Plain::read(&store, &config.machine_id, present.as_deref())?;
    let ring = store
        .repo()
        .refname_to_id(KEYRING_REF)
        .context("this store's keyring is missing")?;
    let put = put_sealed(ctx, &store, &sealing, &plain, ring, to, false).map_err(|e| {
        anyhow::anyhow!("{e}\nThe remote was not changed; run `ferry remote set` again")
    })?;
    Ok(Some(put.sent))
}

/// Checks that `to`'s keyring is this store's (its keys open for this machine and begin with
/// the key this machine pinned): another machine moved the store there already.
fn same_store(ctx: &Ctx, git: &ferry_sync::engine::GitCli, store: &Store, to: &str) -> Result<()> {
    let st = ctx.state()?;
    drop_ref(store, THEIR_KEYRING);
    git.fetch_ref(
        store,
        to,
        &format!("+{KEYRING_HEAD}:{THEIR_KEYRING}"),
        REF_MAX_BYTES,
    )
    .map_err(|e| anyhow::anyhow!("{}", e.message))
    .context("fetching the new remote's keyring")?;
    let theirs = Keyring::read(store.repo(), THEIR_KEYRING);
    drop_ref(store, THEIR_KEYRING);
    let me = Identity::load_or_create(&keys::identity_path(st))?;
    let ours = Keyring::read(store.repo(), KEYRING_REF)?
        .and_then(|r| r.open(&me).ok().flatten())
        .map(|k| k.fingerprint());
    let theirs = theirs?
        .and_then(|r| r.open(&me).ok().flatten())
        .map(|k| k.fingerprint());
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => bail!(
            "{} holds another encrypted store (its keyring is not this store's, or does not open for this machine): nothing was changed",
            redact(to)
        ),
    }
}
