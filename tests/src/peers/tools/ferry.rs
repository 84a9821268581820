//! ferry: `ferry init` (which imports A's sessions) and `ferry mount` on both machines with a
//! `git daemon` remote on 127.0.0.1, then nothing: a transfer is waiting for the daemons. Its
//! cost is the commands' plus what both daemons spent meanwhile.
//!
//! A session file has arrived when its directory on the other machine lists it, as the client
//! finds the sessions it can resume. Looked up one by one, 10,000 files took 0.4 to 0.6 s
//! more, most of it the wake-ups of FUSE round trips on an otherwise idle machine, which
//! claude-hop's files on a local disk never pay; `PEERS_ARRIVAL=lookup` measures it that way.
//! Either way each file is then looked up by name, after the clock stopped, and must be there.

use super::Tool;
use crate::ferry::Machine;
use crate::lines::machine_id;
use crate::peers::corpus::Session;
use crate::peers::cost::{self, Cost};
use crate::peers::world::{Arrival, World};
use crate::rig::{GitDaemon, eventually};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a transfer may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(600);

/// The ferry contender: two mounted machines and their remote, once set up.
#[derive(Default)]
pub struct Ferry {
    // Dropped in this order: the machines unmount while their remote still answers.
    machines: Vec<Machine>,
    remote: Option<GitDaemon>,
    /// What the set-up commands cost.
    commands: Cost,
}

impl Ferry {
    /// Sets both machines up (A's `init` imports its corpus); what the commands cost.
    fn setup(&mut self, w: &World) -> Cost {
        let remote = GitDaemon::start(&w.root.join("remote"));
        let mut total = Cost::default();
        for (layout, name) in [(&w.a, "alice"), (&w.b, "bob")] {
            let state = w
                .root
                .join(if layout.is_a { "a" } else { "b" })
                .join("ferry-state");
            let m = Machine::at(layout.home.clone(), state);
            for args in [
                &["init", "--machine", name, "--remote", &remote.url()][..],
                &["mount"],
            ] {
                let mut cmd = m.command(args);
                cmd.env_remove("FERRY_LOG");
                let c = cost::run(&mut cmd).1;
                eprintln!(
                    "  ferry {} on {name}: {:.2} s, {:.2} s CPU, peak {} KiB",
                    args[0],
                    c.wall.as_secs_f64(),
                    c.cpu.as_secs_f64(),
                    c.peak_kib
                );
                total.add(c);
            }
            self.machines.push(m);
        }
        self.remote = Some(remote);
        self.commands = total;
        total
    }

    /// Both daemons' CPU time so far and their peak memory.
    fn daemons(&self) -> Cost {
        let mut total = Cost::default();
        for m in &self.machines {
            if let Some(pid) = m.daemon_pid() {
                let c = cost::process(pid);
                let (_, git) = cost::cpu_split(pid);
                eprintln!(
                    "  ferry daemon of {}: {:.2} s CPU so far ({:.2} s of it its git), peak {} KiB, resident now {} KiB",
                    m.home.display(),
                    c.cpu.as_secs_f64(),
                    git.as_secs_f64(),
                    c.peak_kib,
                    cost::status_kib(pid, "VmRSS:")
                );
                total.cpu += c.cpu;
                total.peak_kib = total.peak_kib.max(c.peak_kib);
            }
        }
        total
    }
}

/// Looks each checkout's project dir up from inside the checkout, as Claude Code does when it
/// starts there; the mount then places other machines' sessions of the project in it.
fn start_in_checkouts(w: &World, on_b: bool) {
    let side = w.side(!on_b);
    for p in w.projects.iter().filter(|p| p.origin.is_some()) {
        let slug = side.slug_dir(p);
        if !slug.exists() {
            let _ = Command::new("test")
                .arg("-d")
                .arg(&slug)
                .current_dir(side.dir(p))
                .status();
        }
    }
}

fn arrived(a: &Arrival) -> bool {
    if a.needle.is_empty() {
        return a.path.exists();
    }
    std::fs::read(&a.path)
        .is_ok_and(|b| b.windows(a.needle.len()).any(|w| w == a.needle.as_bytes()))
}

/// Drops from `pending` what has arrived: a file with no text to hold once its directory lists
/// it (each looked up by name instead with `PEERS_ARRIVAL=lookup`), any other once it holds
/// its text.
fn take_arrived(pending: &mut Vec<&Arrival>) {
    if std::env::var("PEERS_ARRIVAL").is_ok_and(|v| v == "lookup") {
        return pending.retain(|a| !arrived(a));
    }
    let dirs: BTreeSet<&Path> = pending
        .iter()
        .filter(|a| a.needle.is_empty())
        .filter_map(|a| a.path.parent())
        .collect();
    let listed: HashSet<PathBuf> = dirs
        .into_iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    pending.retain(|a| {
        if a.needle.is_empty() {
            !listed.contains(&a.path)
        } else {
            !arrived(a)
        }
    });
}

impl Tool for Ferry {
    fn name(&self) -> &'static str {
        "ferry"
    }

    fn overall(&self, charged: Cost) -> Cost {
        let mut total = self.commands;
        total.add(self.daemons());
        total.wall = charged.wall;
        total
    }

    fn transfer(&mut self, w: &World, to_b: bool, _: &[Session], arrivals: &[Arrival]) -> Cost {
        let start = Instant::now();
        let before = self.daemons();
        let receiver = |machines: &[Machine]| {
            machines
                .get(usize::from(to_b))
                .and_then(Machine::daemon_pid)
                .map(cost::cpu_split)
        };
        let received_from = receiver(&self.machines);
        let set_up = !self.machines.is_empty();
        let mut total = if set_up {
            Cost::default()
        } else {
            self.setup(w)
        };
        // Once set up, the files are looked for through the receiving mount only after the
        // sender's branch moved in the receiving store (and every tenth look regardless):
        // reading them every 50 ms cost the receiving daemon more than the change did, which a
        // tool whose files sit in a plain directory is not charged.
        let moved = set_up.then(|| {
            let (from, to) = if to_b { (0, 1) } else { (1, 0) };
            let (id, to) = (machine_id(&self.machines[from].state), &self.machines[to]);
            let head = to.fetched_head(&id);
            move || to.fetched_head(&id) != head
        });
        let mut pending: Vec<&Arrival> = arrivals.iter().collect();
        let mut looks = 0u32;
        let done = eventually(LIMIT, || {
            start_in_checkouts(w, to_b);
            looks += 1;
            if moved
                .as_ref()
                .is_none_or(|m| looks.is_multiple_of(10) || m())
            {
                take_arrived(&mut pending);
            }
            pending.is_empty()
        });
        let wall = start.elapsed();
        let log = || self.machines[usize::from(to_b)].log_tail();
        assert!(
            done,
            "ferry: {} files never arrived, e.g. {:?}\nlog:\n{}",
            pending.len(),
            pending.first(),
            log()
        );
        let after = self.daemons();
        if let (Some(was), Some(now)) = (received_from, receiver(&self.machines)) {
            let git = now.1.saturating_sub(was.1);
            total.receiving = Some((now.0.saturating_sub(was.0) + git, git));
        }
        let looking = Instant::now();
        let missing: Vec<&Arrival> = arrivals.iter().filter(|a| !arrived(a)).collect();
        assert!(
            missing.is_empty(),
            "ferry: {} files listed are not there by name, e.g. {:?}\nlog:\n{}",
            missing.len(),
            missing.first(),
            log()
        );
        if arrivals.len() > 1 {
            eprintln!(
                "  ferry: the {} files looked up by name after the clock stopped: {:.2} s",
                arrivals.len(),
                looking.elapsed().as_secs_f64()
            );
        }
        total.wall = wall;
        total.cpu += after.cpu.saturating_sub(before.cpu);
        total.peak_kib = total.peak_kib.max(after.peak_kib);
        total
    }
}
