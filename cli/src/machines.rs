//! `ferry machines [rename NAME | retire NAME] [--json]`: every machine the store knows with when
//! it was last seen; renaming this one; retiring one that is gone, whose sessions stay visible as
//! history (a retirement is no deletion) and for which no lag is reported any more. Names
//! and retirements travel in this machine's record at its next commit.

use crate::command::Ctx;
use crate::state::{self, State};
use anyhow::{Context, Result, bail};
use ferry_sync::store::Store;
use ferry_sync::view::snapshots;
use serde::Serialize;
use std::collections::BTreeMap;

/// One machine, as `ferry machines` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct MachineRow {
    /// Its id (its branch is `machines/<id>`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `linux`, `macos` or `windows`.
    pub os: String,
    /// Its newest commit known here (ms since the epoch).
    pub last_seen_ms: Option<i64>,
    /// Whether it is this machine.
    pub this_machine: bool,
    /// When some machine retired it, if one did.
    pub retired_ms: Option<i64>,
}

/// Every machine the store knows, this one first, then by name.
pub fn rows(st: &State) -> Result<Vec<MachineRow>> {
    let config = st.config()?;
    let me = state::machine_record(&config)?;
    let store = st.open_store()?;
    let snaps = snapshots(&store, &me.id)?;
    let mut retired: BTreeMap<String, i64> = config.retired.clone();
    for s in &snaps {
        for (id, at) in &s.machine.retired {
            retired.entry(id.clone()).or_insert(*at);
        }
    }
    let mut rows: Vec<MachineRow> = snaps
        .iter()
        .map(|s| MachineRow {
            id: s.machine.id.clone(),
            name: if s.machine.id == me.id {
                me.name.clone()
            } else {
                s.machine.name.clone()
            },
            os: s.machine.os.clone(),
            last_seen_ms: store
                .repo()
                .find_commit(s.commit)
                .map(|c| c.time().seconds() * 1000)
                .ok(),
            this_machine: s.machine.id == me.id,
            retired_ms: retired.get(&s.machine.id).copied(),
        })
        .collect();
    if !rows.iter().any(|r| r.this_machine) {
        rows.push(MachineRow {
            id: me.id.clone(),
            name: me.name.clone(),
            os: me.os.clone(),
            last_seen_ms: None,
            this_machine: true,
            retired_ms: None,
        });
    }
    rows.sort_by(|a, b| (!a.this_machine, &a.name).cmp(&(!b.this_machine, &b.name)));
    Ok(rows)
}

/// `ferry machines`.
pub fn run(action: Option<crate::MachinesAction>, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let mut config = st.config()?;
    let said = match action {
        None => {
            let rows = rows(st)?;
            ui.out(&serde_json::json!({"machines": rows}), || {
                let mut text = String::new();
                for r in &rows {
                    let seen = crate::status::ago(r.last_seen_ms);
                    let mark = match (r.this_machine, r.retired_ms) {
                        (true, _) => " (this machine)",
                        (false, Some(_)) => " (retired: its sessions stay as history)",
                        _ => "",
                    };
                    text += &format!(
                        "{:<24} {} {:<8} last seen {seen}{mark}\n",
                        r.name, r.id, r.os
                    );
                }
                text
            });
            return Ok(());
        }
        Some(crate::MachinesAction::Rename { name }) => {
            let name = name.trim().to_string();
            if name.is_empty() {
                bail!("give the new name: `ferry machines rename NAME`");
            }
            config.machine_name = name.clone();
            serde_json::json!({"renamed": name})
        }
        Some(crate::MachinesAction::Retire { name }) => {
            let rows = rows(st)?;
            let found: Vec<&MachineRow> = rows
                .iter()
                .filter(|r| !r.this_machine && (r.name == name || r.id == name))
                .collect();
            let row = match found.as_slice() {
                [one] => *one,
                [] => bail!("no other machine is called {name:?}; `ferry machines` lists them"),
                _ => bail!(
                    "several machines are called {name:?}; retire one by its id (`ferry machines` lists them)"
                ),
            };
            config
                .retired
                .insert(row.id.clone(), ferry_sync::engine::now_ms());
            serde_json::json!({"retired": row.id, "name": row.name})
        }
    };
    st.save(&config)?;
    let running = crate::control::reload(st)?;
    ui.out(&said, || {
    let done = match said.get("renamed") {
        Some(n) => format!("this machine is now {}", n.as_str().unwrap_or_default()),
        None => format!("retired {}", said["name"].as_str().unwrap_or_default()),
    };
    let when = match (config.remote.is_some(), running) {
        (false, _) => "",
        (true, true) => {
            "; other machines learn it at this machine's next commit (the running daemon makes one within seconds)"
        }
        (true, false) => {
            "; other machines learn it at this machine's next commit (`ferry sync` makes it now)"
        }
    };
    format!("{done}{when}")
    });
    Ok(())
}

/// For `ferry init --as-machine NAME`: the id and name of the machine called `name` on the
/// remote at `url` (fetched into `store` first), whose branch then continues here; `None` when
/// the store there is encrypted, whose branches this machine opens only once it has joined
/// ([`take_over_sealed`]).
pub fn take_over(store: &Store, url: &str, name: &str) -> Result<Option<(String, String)>> {
    let git = ferry_sync::engine::GitCli::probe(None)
        .context("--as-machine needs `git` on PATH to read the remote first")?;
    git.fetch_ref(
        store,
        url,
        ferry_sync::crypt::sealing::FERRY_REFSPEC,
        ferry_sync::engine::REF_MAX_BYTES,
    )
    .map_err(|e| anyhow::anyhow!("{}", e.message))
    .context("fetching the remote's keyring")?;
    if store
        .repo()
        .refname_to_id(ferry_sync::crypt::sealing::KEYRING_REF)
        .is_ok()
    {
        return Ok(None);
    }
    git.fetch(
        store,
        url,
        8 << 30,
        &Default::default(),
        ferry_sync::engine::History::All,
        ferry_sync::store::REMOTE_PREFIX,
    )
    .map_err(|e| anyhow::anyhow!("{}", e.message))
    .context("fetching the remote to find the machine")?;
    continue_branch(store, name, &[]).map(Some)
}

/// For `ferry init --as-machine NAME` on an encrypted store, once this machine has joined it:
/// every sealed branch fetched whole and opened, and the one of the machine called `name`
/// continued here. Its id and name.
pub fn take_over_sealed(
    st: &State,
    config: &state::Config,
    url: &str,
    name: &str,
) -> Result<(String, String)> {
    let store = Store::open(&st.store()).context("opening the store")?;
    let sealing = crate::keys::sealing(st, config)?
        .context("the remote's store is not encrypted any more: run `ferry init` again")?;
    crate::keys::git(st)?
        .fetch(
            &store,
            url,
            8 << 30,
            &Default::default(),
            ferry_sync::engine::History::All,
            ferry_sync::crypt::sealing::SEALED_PREFIX,
        )
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("fetching the remote to find the machine")?;
    let failed = sealing.open_fetched(&store, true)?;
    continue_branch(&store, name, &failed)
}

/// Continues here the branch of the machine called `name` (or with that id) among the
/// remote-tracking branches of `store`; `failed`: the branches that did not open, said if none
/// is found.
fn continue_branch(store: &Store, name: &str, failed: &[String]) -> Result<(String, String)> {
    let mut found = Vec::new();
    for id in store.remote_machines()? {
        if let Some(head) = store.head(&id, false)? {
            let record = store.machine_record(&id, head)?;
            if record.name == name || record.id == name {
                found.push((id, head, record.name));
            }
        }
    }
    let (id, head, found_name) = match found.as_slice() {
        [one] => one.clone(),
        [] if !failed.is_empty() => bail!(
            "no machine called {name:?} among the remote's branches that opened; these did not: {}",
            failed.join("; ")
        ),
        [] => bail!(
            "no machine called {name:?} on the remote; `ferry machines` lists them once set up"
        ),
        _ => bail!("several machines are called {name:?}; give its id instead"),
    };
    store
        .repo()
        .reference(
            &ferry_sync::store::own_ref(&id),
            head,
            true,
            "ferry init --as-machine",
        )
        .context("continuing the machine's branch")?;
    Ok((id, found_name))
}
