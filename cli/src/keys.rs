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
use ferry_sync::crypt::sealing::{FERRY_REFSPEC, KEYRING_HEAD, KEYRING_REF, Sealing};
use ferry_sync::crypt::{CryptError, StoreKey};
use ferry_sync::engine::GitCli;
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
pub fn sealing(st: &State, config: &Config) -> Result<Option<Arc<Sealing>>> {
    let store = Store::open(&st.store()).context("opening the store")?;
    Ok(store_key(st, config, &store)?.map(|k| Arc::new(Sealing::new(k))))
}

/// The store key of `store`, if it is encrypted.
fn store_key(st: &State, config: &Config, store: &Store) -> Result<Option<StoreKey>> {
    let Some(ring) = Keyring::read(store.repo(), KEYRING_REF)? else {
        if config.encrypted {
            bail!(
                "this machine's store is encrypted, but its keyring is missing: run `ferry init --remote URL` again to fetch it"
            );
        }
        return Ok(None);
    };
    let id = Identity::load_or_create(&identity_path(st))?;
    match ring.open(&id)? {
        Some(k) => Ok(Some(k)),
        None => Err(CryptError::NoKey {
            recipient: id.recipient(),
        }
        .into()),
    }
}

fn git(st: &State) -> Result<GitCli> {
    GitCli::probe(Some(&st.dir)).context("an encrypted store needs `git` on PATH")
}

/// At `ferry init --remote URL`: makes the remote's store encrypted when `encrypt` asks and it
/// has none yet, or joins the encrypted store it holds, waiting up to `wait` for a machine
/// that has the key to add this one. Says whether the store is encrypted.
pub fn settle(
    ctx: &Ctx,
    url: &str,
    encrypt: bool,
    passphrase: Option<&str>,
    wait: Duration,
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
        join(ctx, &store, passphrase, wait, || fetch(&store))?;
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
            "the remote already holds a plain store ({} machine branches): encrypting an existing store is not built yet; use a new, empty remote for an encrypted one",
            machines.len()
        );
    }
    let id = Identity::load_or_create(&identity_path(st))?;
    let key = StoreKey::generate();
    let ring = Keyring::new(&key, vec![id.recipient()], passphrase)?;
    ring.write(store.repo(), KEYRING_REF)?;
    git.push_ref(&store, url, &format!("{KEYRING_REF}:{KEYRING_HEAD}"))
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("pushing the new store's keyring")?;
    ctx.ui.note(format!(
        "encrypted: the remote holds only sealed objects. Other machines join with `ferry init --remote URL`, then `ferry key add RECIPIENT` here (this machine's: {})",
        id.recipient()
    ));
    Ok(true)
}

/// Waits until the keyring opens for this machine (or the passphrase opens it).
fn join(
    ctx: &Ctx,
    store: &Store,
    passphrase: Option<&str>,
    wait: Duration,
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
            // Joined by passphrase: this machine adds itself, so it needs it no more.
            let mut recipients = ring.recipients.clone();
            recipients.push(id.recipient());
            let git = git(st)?;
            let url = ctx.config()?.remote.clone().unwrap_or_default();
            Keyring::new(&key, recipients, Some(p))?.write(store.repo(), KEYRING_REF)?;
            git.push_ref(store, &url, &format!("{KEYRING_REF}:{KEYRING_HEAD}"))
                .map_err(|e| anyhow::anyhow!("{}", e.message))
                .context("adding this machine to the keyring")?;
            return Ok(());
        }
        if passphrase.is_some() {
            bail!("the passphrase does not open this store's key");
        }
        if !said {
            ctx.ui.note(format!(
                "this store is encrypted. On a machine that has its key, run:\n  ferry key add {}\nwaiting up to {} s for it (Ctrl-C stops; `ferry init --remote URL` again goes on later)",
                id.recipient(),
                wait.as_secs()
            ));
            said = true;
        }
        if Instant::now() >= deadline {
            return Err(CryptError::NoKey {
                recipient: id.recipient(),
            }
            .into());
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
    let doc = serde_json::json!({"recipient": id.recipient(), "encrypted": encrypted});
    ctx.ui.out(&doc, || format!("{}\n", id.recipient()));
    Ok(())
}

/// `ferry key add RECIPIENT`: lets another machine open the store from now on.
pub fn add(ctx: &Ctx, who: &str) -> Result<()> {
    recipient(who)?;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let url = config
        .remote
        .clone()
        .context("this machine has no remote: `ferry init --remote URL` first")?;
    let git = git(st)?;
    let store = Store::open(&st.store()).context("opening the store")?;
    git.fetch_ref(&store, &url, FERRY_REFSPEC)
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("fetching the keyring")?;
    let ring = Keyring::read(store.repo(), KEYRING_REF)?
        .context("this store is not encrypted: there is no key to add to")?;
    let key = store_key(st, config, &store)?.context("this store is not encrypted")?;
    let who = who.trim().to_string();
    let added = !ring.recipients.contains(&who);
    if added {
        let mut recipients = ring.recipients.clone();
        recipients.push(who.clone());
        let passphrase = None;
        let mut next = Keyring::new(&key, recipients, passphrase)?;
        // A passphrase wrapping is kept as it is: the key it wraps did not change.
        next.passphrase = ring.passphrase.clone();
        next.write(store.repo(), KEYRING_REF)?;
        git.push_ref(&store, &url, &format!("{KEYRING_REF}:{KEYRING_HEAD}"))
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .context("pushing the keyring (run `ferry key add` again)")?;
    }
    let doc = serde_json::json!({"recipient": who, "added": added});
    ctx.ui.out(&doc, || match added {
        true => format!(
            "added {who}: that machine opens the store from now on (its `ferry init` goes on by itself)\n"
        ),
        false => format!("{who} opens the store already\n"),
    });
    Ok(())
}
