//! `ferry encrypt`: a plain store made encrypted, where it is (its branches rewritten sealed,
//! once the user agrees) or into a new, empty remote (`--to`); on every other machine, the same
//! command joins it.
//!
//! The first machine fetches the whole history of every branch, seals each one whole (its own,
//! and the others' as fetched), and puts the sealed branches and the keyring on the remote in
//! one atomic push, each branch only if the remote still has the plain commit sealed: a machine
//! that pushed meanwhile makes it fail, with nothing changed. Sealing is deterministic, so a
//! machine that joins later seals its own branch to the very commits already there.

use crate::command::Ctx;
use crate::keys;
use anyhow::{Context, Result, bail};
use ferry_sync::crypt::keyring::{Identity, Keyring};
use ferry_sync::crypt::sealing::{
    FERRY_REFSPEC, KEYRING_HEAD, KEYRING_REF, SEALED_PREFIX, Sealing,
};
use ferry_sync::crypt::{StoreKey, StoreKeys};
use ferry_sync::engine::{GitCli, History, Lease, REF_MAX_BYTES, redact};
use ferry_sync::store::Oid;
use ferry_sync::store::{REMOTE_PREFIX, Store};
use std::io::IsTerminal;
use std::time::Duration;

/// What `ferry encrypt` is asked.
pub struct Asked {
    /// Seal the store into this new, empty remote, leaving the current one as it is.
    pub to: Option<String>,
    /// A second way in (or, joining, the way in).
    pub passphrase: Option<String>,
    /// The user agrees to the remote's branches being rewritten sealed.
    pub yes: bool,
    /// Joining: how long to wait for `ferry key add` on another machine.
    pub wait: Duration,
}

/// `ferry encrypt`.
pub fn run(ctx: &Ctx, asked: Asked) -> Result<()> {
    let st = ctx.state()?;
    let url = ctx.config()?.remote.clone().context(
        "this machine has no remote, so there is nothing to encrypt: an encrypted store is made with `ferry init --remote URL --encrypt`",
    )?;
    let git = keys::git(st)?;
    let store = Store::open(&st.store()).context("opening the store")?;
    let keyring = |store: &Store| {
        git.fetch_ref(store, &url, FERRY_REFSPEC, REF_MAX_BYTES)
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .context("fetching the remote's keyring")
    };
    keyring(&store)?;
    if Keyring::read(store.repo(), KEYRING_REF)?.is_some() {
        if asked.to.is_some() {
            bail!(
                "the store on {} is encrypted already: `ferry remote set NEW_URL` moves it, sealed, to another remote (nothing was changed)",
                redact(&url)
            );
        }
        return join(ctx, &store, &url, &asked, || keyring(&store));
    }
    if ctx.config()?.encrypted {
        bail!(
            "this machine's store is encrypted, but the remote has no keyring: run `ferry init --remote URL` again to fetch it"
        );
    }
    if st.daemon_pid().is_some() {
        bail!(
            "ferry is mounted here, and its daemon pushes this machine's branch plain: run `ferry unmount`, then `ferry encrypt`, then `ferry mount` (nothing was changed)"
        );
    }
    make(ctx, &git, &store, &url, &asked)
}

/// Makes the plain store on `url` encrypted (or seals it into `--to`): fetched whole, told and
/// agreed, sealed and put in place in one push, then this machine's config.
fn make(ctx: &Ctx, git: &GitCli, store: &Store, url: &str, asked: &Asked) -> Result<()> {
    let st = ctx.state()?;
    let target = match &asked.to {
        Some(to) => new_remote(git, url, to)?,
        None => url.to_string(),
    };
    let fetched = crate::transfer_bar::fetch_shown(ctx, store, url, History::All, None);
    fetched
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("fetching every branch's history to seal it (nothing was changed)")?;
    let own_id = ctx.config()?.machine_id.clone();
    // Only the branches the remote has now: one deleted there stays deleted.
    let present = git
        .heads_under(url, "refs/heads/machines/")
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("listing the remote's branches (nothing was changed)")?;
    let plain = Plain::read(store, &own_id, Some(&present))?;
    if plain.branches.is_empty() {
        bail!(
            "this machine has committed nothing and the remote holds no branch: nothing to encrypt. Make an encrypted store with `ferry init --remote URL --encrypt` instead"
        );
    }
    let summary = plain.summary(store, url, asked.to.is_some());
    if asked.to.is_none() && !agreed(ctx, &summary, asked.yes)? {
        bail!("nothing was changed");
    }
    let me = Identity::load_or_create(&keys::identity_path(st))?;
    let store_keys = StoreKeys::new(StoreKey::generate());
    let ring = Keyring::new(
        &store_keys,
        vec![me.recipient()],
        asked.passphrase.as_deref(),
    )?;
    let sealing = Sealing::new(store_keys.clone());
    // Written under a ref of its own until the push has gone through: a store whose keyring
    // ref is set counts as encrypted, which it is not while the remote is plain.
    drop_ref(store, keys::PENDING_KEYRING);
    let ring_commit = ring.write(store.repo(), keys::PENDING_KEYRING)?;
    let sealed = put_sealed(
        ctx,
        store,
        &sealing,
        &plain,
        ring_commit,
        &target,
        asked.to.is_none(),
    );
    drop_ref(store, keys::PENDING_KEYRING);
    let put = sealed.map_err(|e| {
        anyhow::anyhow!(
            "{e}\nThis store is plain still. Run `ferry encrypt` again (a machine that pushed meanwhile is taken along then)"
        )
    })?;
    store
        .repo()
        .reference(KEYRING_REF, ring_commit, true, "ferry encrypt")?;
    // The store was made here: its key is the one to pin, whatever was pinned before.
    keys::pin_new(st, &store_keys)?;
    let mut config = ctx.config()?.clone();
    config.encrypted = true;
    config.remote = Some(target.clone());
    st.save(&config)?;
    said(ctx, &summary, &target, &me, &store_keys, &put)
}

/// Seals every branch of `plain` with `sealing` and puts them, with the keyring commit `ring`,
/// on `target` in one atomic push: each branch only if the remote has it as `plain` saw it
/// (`in_place`), else only if it has no such branch. Then records the twins. When the push
/// fails, nothing is recorded and the sealed refs are as they were.
pub(crate) fn put_sealed(
    ctx: &Ctx,
    store: &Store,
    sealing: &Sealing,
    plain: &Plain,
    ring: Oid,
    target: &str,
    in_place: bool,
) -> Result<Put> {
    let before: Vec<(String, Option<Oid>)> = plain
        .branches
        .iter()
        .map(|(id, _)| {
            let name = format!("{SEALED_PREFIX}{id}");
            let was = store.repo().refname_to_id(&name).ok();
            (name, was)
        })
        .collect();
    let put_back = || {
        for (name, was) in &before {
            match was {
                Some(oid) => {
                    let _ = store.repo().reference(name, *oid, true, "ferry: put back");
                }
                None => drop_ref(store, name),
            }
        }
    };
    let sealing_words = format!("sealing {} branch(es)", plain.branches.len());
    let sealed = crate::transfer_bar::shown(ctx, &sealing_words, |_| {
        sealing.seal_branches(store, &plain.branches)
    });
    let sealed = match sealed {
        Ok(s) => s,
        Err(e) => {
            put_back();
            bail!("sealing the branches failed, and nothing was pushed: {e}");
        }
    };
    let mut leases = vec![Lease {
        src: ring.to_string(),
        dst: KEYRING_HEAD.into(),
        expect: None,
    }];
    for (id, s) in &sealed {
        leases.push(Lease {
            src: s.to_string(),
            dst: format!("refs/heads/machines/{id}"),
            expect: plain.on_remote(id).filter(|_| in_place),
        });
    }
    let git = keys::git(ctx.state()?)?;
    let pushed = crate::transfer_bar::shown(ctx, "push", |progress| {
        git.push_atomic(store, target, &leases, progress)
    });
    if let Err(e) = pushed {
        put_back();
        bail!(
            "the push to {} failed, and it is all or nothing: nothing there changed. {}",
            redact(target),
            e.message
        );
    }
    for (id, s) in &sealed {
        sealing.pushed(store, id, *s)?;
    }
    if let Some((own, head)) = &plain.own {
        store.record_pushed(own, *head)?;
    }
    // A machine that pushed its first commit while this ran has a branch no lease covered.
    let plain_left = git
        .heads_under(target, "refs/heads/machines/")
        .map(|heads| {
            heads
                .iter()
                .filter_map(|h| h.strip_prefix("refs/heads/machines/"))
                .filter(|id| !sealed.iter().any(|(s, _)| s == id))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(Put {
        sent: sealed.len(),
        plain_left,
    })
}

/// What [`put_sealed`] did.
pub(crate) struct Put {
    /// How many sealed branches went.
    pub sent: usize,
    /// Machines whose branches came while it ran, and are plain (until each joins).
    pub plain_left: Vec<String>,
}

/// `--to`: checked, reachable, not the current remote, and holding no store yet.
pub(crate) fn new_remote(git: &GitCli, url: &str, to: &str) -> Result<String> {
    let to = crate::remote_cmd::check_url(to)?;
    if to == url {
        bail!("--to names the remote the store is on already: leave it out to encrypt in place");
    }
    let held = |prefix| {
        git.heads_under(&to, prefix)
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .with_context(|| {
                format!(
                    "the remote {} cannot be reached (nothing was changed)",
                    redact(&to)
                )
            })
    };
    let (machines, ferry) = (held("refs/heads/machines/")?, held("refs/heads/ferry/")?);
    if !machines.is_empty() || !ferry.is_empty() {
        bail!(
            "{} holds a store already ({} branches): --to takes a new, empty remote (nothing was changed)",
            redact(&to),
            machines.len() + ferry.len()
        );
    }
    Ok(to)
}

/// The plain branches to seal: every other machine's as fetched, and this machine's own.
pub(crate) struct Plain {
    /// (machine id, plain commit), this machine's last.
    pub(crate) branches: Vec<(String, Oid)>,
    /// Each branch as the remote has it now (this machine's may be behind its own).
    remote: Vec<(String, Oid)>,
    /// This machine's id and head, if it has committed.
    own: Option<(String, Oid)>,
}

impl Plain {
    /// The branches of `store`, whose own machine is `own_id`.
    /// `present`: the remote's branches now, by full name (a branch fetched once and deleted
    /// there since is left out); `None` takes every branch fetched.
    pub(crate) fn read(store: &Store, own_id: &str, present: Option<&[String]>) -> Result<Plain> {
        let there = |id: &str| {
            present.is_none_or(|p| p.iter().any(|h| h == &format!("refs/heads/machines/{id}")))
        };
        let remote: Vec<(String, Oid)> = ferry_sync::engine::remote_branches(store)
            .into_iter()
            .filter_map(|(name, oid)| Some((name.strip_prefix(REMOTE_PREFIX)?.to_string(), oid)))
            .filter(|(id, _)| there(id))
            .collect();
        let mut branches: Vec<(String, Oid)> = remote
            .iter()
            .filter(|(id, _)| id != own_id)
            .cloned()
            .collect();
        let own_head = store.head(own_id, true)?;
        if let Some(head) = own_head {
            branches.push((own_id.to_string(), head));
        }
        Ok(Plain {
            branches,
            remote,
            own: own_head.map(|h| (own_id.to_string(), h)),
        })
    }

    /// Branch `id` as the remote has it.
    fn on_remote(&self, id: &str) -> Option<Oid> {
        self.remote.iter().find(|(i, _)| i == id).map(|(_, o)| *o)
    }

    /// What the remote's plain history holds, in numbers, for the user to weigh.
    fn summary(&self, store: &Store, url: &str, moving: bool) -> Summary {
        let repo = store.repo();
        let (mut commits, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        if let Ok(mut walk) = repo.revwalk() {
            for (_, tip) in &self.remote {
                let _ = walk.push(*tip);
            }
            for oid in walk.flatten() {
                if let Ok(c) = repo.find_commit(oid) {
                    commits += 1;
                    first = first.min(c.time().seconds());
                    last = last.max(c.time().seconds());
                }
            }
        }
        let mut names: Vec<String> = self
            .remote
            .iter()
            .map(|(id, tip)| {
                store
                    .machine_record(id, *tip)
                    .map(|r| r.name)
                    .unwrap_or_else(|_| id.to_string())
            })
            .collect();
        names.sort();
        Summary {
            url: redact(url),
            commits,
            machines: names,
            first_ms: (commits > 0).then_some(first * 1000),
            last_ms: (commits > 0).then_some(last * 1000),
            moving,
        }
    }
}

/// The remote's plain history, as `ferry encrypt` tells it.
#[derive(serde::Serialize)]
struct Summary {
    url: String,
    commits: u64,
    machines: Vec<String>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    #[serde(skip)]
    moving: bool,
}

impl Summary {
    /// What stays readable, and where, once the store is sealed.
    fn text(&self) -> String {
        let day = |s: Option<i64>| {
            s.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map(|t| t.strftime("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "-".into())
        };
        let mut t = format!(
            "the branches of {} hold {} plain commit(s) of {} machine(s) ({}), from {} to {}: the lines, file names and paths of every session, readable by anyone who can read that remote.\n",
            self.url,
            self.commits,
            self.machines.len(),
            self.machines.join(", "),
            day(self.first_ms),
            day(self.last_ms)
        );
        if self.moving {
            t += &format!(
                "They are sealed, history included, into the new remote; {} is left as it is, plain: delete it once every machine has joined the new one, for nothing plain to stay. Until a machine joins (`ferry init --remote NEW_URL` there), it goes on pushing plain to the old remote.",
                self.url
            );
        } else {
            t += "ferry encrypt seals all of it, history included, and puts the sealed branches in the plain ones' place in one push. After that:\n  - the plain commits are on no branch of the remote, but its host keeps them until it collects garbage, and some hosts serve them by their id long after (GitHub does): whoever could read the remote may still read them;\n  - every clone, fork and backup of the remote made before keeps them;\n  - the other machines push nothing more until each joins: `ferry encrypt` there, then `ferry key add` here with the recipient it prints.\nFor nothing plain to stay anywhere, seal the store into a new, empty remote instead (`ferry encrypt --to NEW_URL`) and delete this one.";
        }
        t
    }
}

/// Whether the user agrees to the branches being rewritten sealed: `--yes`, or asked on a
/// terminal.
fn agreed(ctx: &Ctx, summary: &Summary, yes: bool) -> Result<bool> {
    if !ctx.ui.quiet || !yes {
        eprintln!("{}", summary.text());
    }
    if yes {
        return Ok(true);
    }
    if ctx.ui.json || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        bail!(
            "nothing was changed: rewriting the remote's branches sealed needs your agreement; run `ferry encrypt --yes` to go on, or `ferry encrypt --to NEW_URL` to leave this remote as it is"
        );
    }
    eprint!("Seal the store and rewrite the remote's branches? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Deletes ref `name` if it is there.
pub(crate) fn drop_ref(store: &Store, name: &str) {
    if let Ok(mut r) = store.repo().find_reference(name) {
        let _ = r.delete();
    }
}

/// Joins the store on `url`, encrypted by another machine: waits for `ferry key add` there
/// (or opens it with the passphrase).
fn join(
    ctx: &Ctx,
    store: &Store,
    url: &str,
    asked: &Asked,
    fetch: impl Fn() -> Result<()>,
) -> Result<()> {
    let st = ctx.state()?;
    let already = ctx.config()?.encrypted;
    keys::join(
        ctx,
        store,
        asked.passphrase.as_deref(),
        asked.wait,
        "ferry encrypt",
        fetch,
    )?;
    let mut config = ctx.config()?.clone();
    config.encrypted = true;
    st.save(&config)?;
    let running = st.daemon_pid().is_some() && !already;
    let doc = serde_json::json!({
        "remote": redact(url),
        "encrypted": true,
        "joined": !already,
        "daemon_restart_needed": running,
    });
    ctx.ui.out(&doc, || {
        let mut t = match already {
            true => "this machine is in the encrypted store already".to_string(),
            false => format!(
                "joined the encrypted store on {}: this machine's branch goes out sealed from now on",
                redact(url)
            ),
        };
        if running {
            t += "\nthe running daemon transfers nothing until it starts again: run `ferry unmount && ferry mount`";
        }
        t
    });
    Ok(())
}

/// What `ferry encrypt` says once the store is sealed.
fn said(
    ctx: &Ctx,
    summary: &Summary,
    target: &str,
    me: &Identity,
    keys: &StoreKeys,
    put: &Put,
) -> Result<()> {
    let branches = put.sent;
    let doc = serde_json::json!({
        "remote": redact(target),
        "moved_from": summary.moving.then(|| summary.url.clone()),
        "encrypted": true,
        "joined": false,
        "sealed_branches": branches,
        "plain_branches_left": put.plain_left,
        "plain_history": summary,
        "recipient": me.recipient(),
        "store_fingerprint": keys.fingerprint(),
    });
    // On the old remote, `ferry encrypt` would seal it anew: the others move with `init`.
    let join = match summary.moving {
        true => format!("`ferry init --remote {}`", redact(target)),
        false => "`ferry encrypt`".into(),
    };
    let left = match put.plain_left.as_slice() {
        [] => ", and nothing plain on any branch".to_string(),
        ids => format!(
            "; the branches of {} came while this ran and stay plain until those machines join",
            ids.join(", ")
        ),
    };
    ctx.ui.out(&doc, || {
        format!(
            "encrypted: {} holds {branches} sealed branch(es) and the keyring{left}. The store's key: {}.\nOn each other machine run {join} (it prints that machine's recipient), then here `ferry key add RECIPIENT`",
            redact(target),
            keys.fingerprint(),
        )
    });
    Ok(())
}
