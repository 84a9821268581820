//! ferry: `ferry init` (which imports A's sessions) and `ferry mount` on both machines with a
//! `git daemon` remote on 127.0.0.1, then nothing: a transfer is waiting for the daemons. Its
//! cost is the commands' plus what both daemons spent meanwhile.

use super::Tool;
use crate::ferry::Machine;
use crate::peers::corpus::Session;
use crate::peers::cost::{self, Cost};
use crate::peers::world::{Arrival, World};
use crate::rig::{GitDaemon, eventually};
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
        let mut total = if self.machines.is_empty() {
            self.setup(w)
        } else {
            Cost::default()
        };
        let mut pending: Vec<&Arrival> = arrivals.iter().collect();
        let done = eventually(LIMIT, || {
            start_in_checkouts(w, to_b);
            pending.retain(|a| !arrived(a));
            pending.is_empty()
        });
        assert!(
            done,
            "ferry: {} files never arrived, e.g. {:?}\nlog:\n{}",
            pending.len(),
            pending.first(),
            self.machines[usize::from(to_b)].log_tail()
        );
        let after = self.daemons();
        total.wall = start.elapsed();
        total.cpu += after.cpu.saturating_sub(before.cpu);
        total.peak_kib = total.peak_kib.max(after.peak_kib);
        total
    }
}
