//! The command layer, in the manner of jj's `CommandHelper`: what every command needs, found
//! once and shared: the output switches, the state dir, its config (checked against copies),
//! this machine's record, the store (opened, never created, for a command that reads it) and
//! the links. A command takes a [`Ctx`] and asks it; nothing is read twice.

use crate::state::{self, Config, State};
use crate::ui::Ui;
use anyhow::Result;
use ferry_sync::project_key::Link;
use ferry_sync::store::{MachineRecord, Store};
use std::cell::OnceCell;

/// What a command works with.
pub struct Ctx {
    /// How it speaks.
    pub ui: Ui,
    state: OnceCell<State>,
    config: OnceCell<Config>,
    store: OnceCell<Store>,
    links: OnceCell<Vec<Link>>,
}

impl Ctx {
    /// A context for one command; nothing is read until asked for.
    pub fn new(ui: Ui) -> Ctx {
        Ctx {
            ui,
            state: OnceCell::new(),
            config: OnceCell::new(),
            store: OnceCell::new(),
            links: OnceCell::new(),
        }
    }

    /// The state dir (`$FERRY_HOME`, else the default).
    pub fn state(&self) -> Result<&State> {
        if let Some(s) = self.state.get() {
            return Ok(s);
        }
        let s = State::locate()?;
        Ok(self.state.get_or_init(|| s))
    }

    /// Its config, checked: a copy of another install's state dir takes a new machine id here.
    pub fn config(&self) -> Result<&Config> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let c = self.state()?.config()?;
        Ok(self.config.get_or_init(|| c))
    }

    /// This machine's record, as it commits.
    pub fn machine(&self) -> Result<MachineRecord> {
        state::machine_record(self.config()?)
    }

    /// The store, opened for reading (a command never creates it).
    pub fn store(&self) -> Result<&Store> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let s = self.state()?.open_store()?;
        Ok(self.store.get_or_init(|| s))
    }

    /// The `ferry link`s.
    pub fn links(&self) -> Result<&[Link]> {
        if let Some(l) = self.links.get() {
            return Ok(l);
        }
        let l = state::load_links(self.state()?)?;
        Ok(self.links.get_or_init(|| l))
    }
}
