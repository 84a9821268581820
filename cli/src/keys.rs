//! Encrypted stores on the command line: `ferry key show` and `ferry key add`, `ferry init`
//! making a store encrypted (`--encrypt`) or joining one, and the store key for every command
//! and the daemon that transfers.
//!
//! A store is encrypted when its remote has a keyring (`refs/heads/ferry/keyring`); this
//! machine's config then says so too, so that it never pushes plain, even before a fetch.

use crate::command::Ctx;
use crate::state::{Config, State};
use anyhow::{Context, Result, bail};
use ferry_sync::crypt::keyring::{Identity, Keyring, recipient};
use ferry_sync::crypt::pin::KeyPin;
use ferry_sync::crypt::sealing::{FERRY_REFSPEC, KEYRING_HEAD, KEYRING_KEPT, KEYRING_REF, Sealing};
use ferry_sync::crypt::{CryptError, StoreKey, StoreKeys};
use ferry_sync::engine::{GitCli, REF_MAX_BYTES};
use ferry_sync::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// This machine's age identity, beside its config.
pub fn identity_path(st: &State) -> PathBuf {
    st.dir.join("identity.age")
}

/// The sealing of this machine's store: `None` for a plain one. An encrypted store this
/// machine cannot open is an error that says what to run.
/// It starts from the remote's keyring as last fetched, or, when this machine refuses that one
/// (a rollback by the remote, a key replaced), from the newest it took, so that it goes on with
/// the keys it has and takes the remote's once that holds them again.
pub fn sealing(st: &State, config: &Config) -> Result<Option<Arc<Sealing>>> {
    let store = Store::open(&st.store()).context("opening the store")?;
    let (keys, ring) = match store_keys_at(st, config, &store, KEYRING_REF) {
        Ok(None) => return Ok(None),
        Ok(Some(keys)) => (keys, KEYRING_REF),
        // Refused (older than what this machine has seen, a key replaced, or no longer opening
        // for it): the newest keyring it took goes on, and each fetch says why the remote's is
        // not taken.
        Err(e)
            if matches!(
                e.downcast_ref(),
                Some(
                    CryptError::Older { .. }
                        | CryptError::Replaced { .. }
                        | CryptError::NoKey { .. }
                )
            ) =>
        {
            match store_keys_at(st, config, &store, KEYRING_KEPT) {
                Ok(Some(keys)) => (keys, KEYRING_KEPT),
                _ => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let ring = store.repo().refname_to_id(ring).ok();
    if let Some(ring) = ring {
        store
            .repo()
            .reference(KEYRING_KEPT, ring, true, "ferry: keyring taken")?;
    }
    let id = Identity::load_or_create(&identity_path(st))?;
    Ok(Some(Arc::new(Sealing::following(
        keys,
        id,
        ring,
        key_pin(st),
        &config.machine_id,
    ))))
}

/// The store keys of `store`, if it is encrypted, from the remote's keyring as last fetched.
fn store_keys(st: &State, config: &Config, store: &Store) -> Result<Option<StoreKeys>> {
    store_keys_at(st, config, store, KEYRING_REF)
}

/// The store keys of `store` from the keyring at `refname`, if it is encrypted.
fn store_keys_at(
    st: &State,
    config: &Config,
    store: &Store,
    refname: &str,
) -> Result<Option<StoreKeys>> {
    let Some(ring) = Keyring::read(store.repo(), refname)? else {
        if config.encrypted {
            bail!(
                "this machine's store is encrypted, but its keyring is missing: run `ferry init --remote URL` again to fetch it"
            );
        }
        return Ok(None);
    };
    let id = Identity::load_or_create(&identity_path(st))?;
    match ring.open(&id)? {
        Some(k) => pinned(st, k).map(Some),
        None => Err(CryptError::NoKey {
            recipient: id.recipient(),
        }
        .into()),
    }
}

/// What this machine keeps of the store's keys: the first one's fingerprint and their count.
pub(crate) fn key_pin(st: &State) -> KeyPin {
    KeyPin::new(&st.dir)
}

/// `keys`, if their first key is the one this machine saw first and they are no fewer than it
/// has seen: a keyring swapped by the remote for one around a key of its own, or one from
/// before a `ferry key remove` served again, is refused.
pub(crate) fn pinned(st: &State, keys: StoreKeys) -> Result<StoreKeys> {
    key_pin(st).check(&keys)?;
    Ok(keys)
}

/// Pins `keys` as this machine's store's, whatever was pinned before: a store made here now.
pub(crate) fn pin_new(st: &State, keys: &StoreKeys) -> Result<()> {
    Ok(key_pin(st).reset(keys)?)
}

pub(crate) fn git(st: &State) -> Result<GitCli> {
    GitCli::probe(Some(&st.dir)).context("an encrypted store needs `git` on PATH")
}

/// At `ferry init --remote URL`: makes the remote's store encrypted when `encrypt` asks and it
/// has none yet, or joins the encrypted store it holds, waiting up to `wait` for a machine
/// that has the key to add this one (`again`: the command to run again, said if none does). Says
/// whether the store is encrypted.
pub fn settle(
    ctx: &Ctx,
    url: &str,
    encrypt: bool,
    passphrase: Option<&str>,
    wait: Duration,
    again: &str,
) -> Result<bool> {
    let st = ctx.state()?;
    let store = Store::init(&st.store()).context("opening the store")?;
    let fetch = |store: &Store| {
        ferry_sync::engine::fetch_ref(store, url, FERRY_REFSPEC, Some(&st.dir))
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .context("fetching the remote's keyring")
    };
    fetch(&store)?;
    if Keyring::read(store.repo(), KEYRING_REF)?.is_some() {
        join(ctx, &store, passphrase, wait, again, || fetch(&store))?;
        return Ok(true);
    }
    if !encrypt {
        return Ok(false);
    }
    let git = git(st)?;
    let machines = git
        .heads_under(url, "refs/heads/machines/")
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    if !machines.is_empty() {
        bail!(
            "the remote already holds a plain store ({} machine branches): join it with `ferry init --remote URL`, then run `ferry encrypt` to make it encrypted (nothing was changed)",
            machines.len()
        );
    }
    let id = Identity::load_or_create(&identity_path(st))?;
    let keys = StoreKeys::new(StoreKey::generate());
    let ring = Keyring::new(&keys, vec![id.recipient()], passphrase)?;
    push_keyring(&git, &store, url, &ring)?;
    ctx.ui.note(format!(
        "encrypted: the remote holds only sealed objects. Other machines join with `ferry init --remote URL`, then `ferry key add RECIPIENT` here (this machine's: {})",
        id.recipient()
    ));
    Ok(true)
}

/// Waits until the keyring opens for this machine (or the passphrase opens it).
pub(crate) fn join(
    ctx: &Ctx,
    store: &Store,
    passphrase: Option<&str>,
    wait: Duration,
    again: &str,
    fetch: impl Fn() -> Result<()>,
) -> Result<()> {
    let st = ctx.state()?;
    let id = Identity::load_or_create(&identity_path(st))?;
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let ring = Keyring::read(store.repo(), KEYRING_REF)?.context("the keyring went away")?;
        if ring.open(&id)?.is_some() {
            return Ok(());
        }
        if let Some(p) = passphrase
            && let Some(key) = ring.open_passphrase(p)?
        {
            let key = pinned(st, key)?;
            // Joined by passphrase: this machine adds itself, so it needs it no more.
            let mut recipients = ring.recipients.clone();
            recipients.push(id.recipient());
            let url = ctx.config()?.remote.clone().unwrap_or_default();
            let next = Keyring::new(&key, recipients, Some(p))?;
            return push_keyring(&git(st)?, store, &url, &next);
        }
        if passphrase.is_some() {
            bail!(
                "the passphrase does not open this store's key (the file's first line is the passphrase): check it, or on a machine that has the key run `ferry key add {}`, then `{again}` here again without --passphrase-file",
                id.recipient()
            );
        }
        if !said {
            ctx.ui.note(format!(
                "this store is encrypted. On a machine that has its key, run:\n  ferry key add {}\nwaiting up to {} s for it (Ctrl-C stops; `{again}` again goes on later)",
                id.recipient(),
                wait.as_secs()
            ));
            said = true;
        }
        if Instant::now() >= deadline {
            bail!(
                "this machine has no key to the encrypted store yet: on a machine that has one, run `ferry key add {}`, then `{again}` here again (or add `--passphrase-file FILE` to it, to join with the store's passphrase)",
                id.recipient()
            );
        }
        std::thread::sleep(Duration::from_secs(2).min(wait));
        fetch()?;
    }
}

/// `ferry key show`: this machine's recipient, which a machine with the key adds.
pub fn show(ctx: &Ctx) -> Result<()> {
    let st = ctx.state()?;
    let id = Identity::load_or_create(&identity_path(st))?;
    let encrypted = ctx.config().map(|c| c.encrypted).unwrap_or(false);
    // The store key's fingerprint, to compare between machines outside ferry.
    let fingerprint = Store::open(&st.store())
        .ok()
        .and_then(|s| store_keys(st, ctx.config().ok()?, &s).ok().flatten())
        .map(|k| k.fingerprint());
    let doc = serde_json::json!({"recipient": id.recipient(), "encrypted": encrypted, "store_fingerprint": fingerprint});
    // Only the recipient on stdout: `ferry key add $(ferry key show)` works.
    if let Some(f) = &fingerprint {
        ctx.ui.note(format!("the store's key: {f}"));
    }
    ctx.ui.out(&doc, || format!("{}\n", id.recipient()));
    Ok(())
}

/// What `ferry key add` and `ferry key remove` change: the keyring as the remote has it now,
/// and the keys this machine opens it with.
struct Editing<'a> {
    st: &'a State,
    url: String,
    git: GitCli,
    store: Store,
    ring: Keyring,
    keys: StoreKeys,
    /// The recipient named, checked.
    who: String,
}

/// The keyring fetched now, to change it for recipient `who`.
fn editing<'a>(ctx: &'a Ctx, who: &str) -> Result<Editing<'a>> {
    recipient(who)?;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let url = config
        .remote
        .clone()
        .context("this machine has no remote: `ferry init --remote URL` first")?;
    let git = git(st)?;
    let store = Store::open(&st.store()).context("opening the store")?;
    git.fetch_ref(&store, &url, FERRY_REFSPEC, REF_MAX_BYTES)
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("fetching the keyring")?;
    let ring = Keyring::read(store.repo(), KEYRING_REF)?
        .context("this store is not encrypted: it has no keys to change (`ferry encrypt` makes it encrypted)")?;
    let keys = store_keys(st, config, &store)?.context("this store is not encrypted")?;
    Ok(Editing {
        st,
        url,
        git,
        store,
        ring,
        keys,
        who: who.trim().to_string(),
    })
}

impl Editing<'_> {
    /// Writes `next` as the keyring and pushes it.
    fn push(&self, next: &Keyring) -> Result<()> {
        push_keyring(&self.git, &self.store, &self.url, next)
    }
}

/// Writes `next` as the store's keyring and pushes it to `url` (never forced: a keyring changed
/// meanwhile elsewhere makes this fail, to be run again).
/// The keyring is written under a ref of its own, pushed from there, and is this store's own
/// copy of the remote's only once the push went through: a keyring the remote refused (another
/// machine changed it meanwhile) is never taken here, neither sealed with nor recorded as seen.
fn push_keyring(git: &GitCli, store: &Store, url: &str, next: &Keyring) -> Result<()> {
    // The new version goes on top of the remote's, as fetched.
    crate::encrypt::drop_ref(store, PENDING_KEYRING);
    if let Ok(now) = store.repo().refname_to_id(KEYRING_REF) {
        store
            .repo()
            .reference(PENDING_KEYRING, now, true, "ferry: keyring to change")?;
    }
    let commit = next.write(store.repo(), PENDING_KEYRING)?;
    let pushed = git
        .push_ref(store, url, &format!("{PENDING_KEYRING}:{KEYRING_HEAD}"))
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("pushing the store's keyring (run the command again)");
    crate::encrypt::drop_ref(store, PENDING_KEYRING);
    pushed?;
    store
        .repo()
        .reference(KEYRING_REF, commit, true, "ferry: keyring pushed")?;
    Ok(())
}

/// Where a new keyring waits for the push that puts it on the remote.
pub(crate) const PENDING_KEYRING: &str = "refs/ferry/pending/keyring";

/// `ferry key add RECIPIENT`: lets another machine open the store from now on.
pub fn add(ctx: &Ctx, who: &str) -> Result<()> {
    let e = editing(ctx, who)?;
    let (ring, keys, who) = (&e.ring, &e.keys, &e.who);
    let added = !ring.recipients.contains(who);
    if added {
        let mut recipients = ring.recipients.clone();
        recipients.push(who.clone());
        // A passphrase wrapping is kept as it is: the keys it wraps did not change.
        e.push(&Keyring::new(keys, recipients, None)?.keeping_passphrase_of(ring, keys))?;
    }
    let doc = serde_json::json!({"recipient": who, "added": added});
    ctx.ui.out(&doc, || match added {
        true => format!(
            "added {who}: that machine opens the store from now on (a `ferry init` or `ferry encrypt` waiting there goes on by itself; else run it there again). The store's key: {}; `ferry key show` there says the same once it joined\n",
            keys.fingerprint()
        ),
        false => format!("{who} opens the store already\n"),
    });
    Ok(())
}

/// `ferry key remove RECIPIENT`: a new store key seals everything written from now on, and
/// the keyring opens for the other machines only.
pub fn remove(ctx: &Ctx, who: &str) -> Result<()> {
    let e = editing(ctx, who)?;
    let (ring, keys, who) = (&e.ring, &e.keys, &e.who);
    let me = Identity::load_or_create(&identity_path(e.st))?.recipient();
    if *who == me {
        bail!("that is this machine's own key: remove it from another machine");
    }
    let removed = ring.recipients.contains(who);
    let mut generation = keys.generations();
    if removed {
        let rest: Vec<String> = ring
            .recipients
            .iter()
            .filter(|r| *r != who)
            .cloned()
            .collect();
        let next = keys
            .rotated()
            .context("this store has had 255 keys, the most it can have")?;
        generation = next.generations();
        // The passphrase goes too: the machine removed may know it.
        e.push(&Keyring::new(&next, rest, None)?)?;
    }
    let dropped = removed && ring.passphrase.is_some();
    let doc = serde_json::json!({
        "recipient": who,
        "removed": removed,
        "key_generation": generation,
        "passphrase_dropped": dropped,
    });
    ctx.ui.out(&doc, || match removed {
        true => format!(
            "removed {who}: what is written from now on is sealed with a new key (generation {generation}) that machine does not have. What it could read before, it may have kept, and files unchanged since keep their old sealing.{}\n",
            if dropped {
                " The passphrase opens the store no more."
            } else {
                ""
            }
        ),
        false => format!("{who} does not open the store; nothing changed\n"),
    });
    Ok(())
}
