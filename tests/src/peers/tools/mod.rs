//! The tools compared, behind one interface: each moves sessions from A to B and back the way
//! its README prescribes, and reports what that cost.

mod commuter;
mod ferry;
mod hop;

pub use commuter::Commuter;
pub use ferry::Ferry;
pub use hop::Hop;

use super::corpus::Session;
use super::cost::{self, Cost};
use super::world::{Arrival, World};

/// One tool's way of moving sessions between the machines.
pub trait Tool {
    /// Its name in the report.
    fn name(&self) -> &'static str;

    /// Moves `sessions` from A (`to_b`) or from B to the other machine, set-up included the first
    /// time, and returns once `arrivals` are there; what it cost.
    fn transfer(
        &mut self,
        w: &World,
        to_b: bool,
        sessions: &[Session],
        arrivals: &[Arrival],
    ) -> Cost;

    /// What the whole run cost, given what its transfers were charged: the same for a tool that
    /// runs only when asked; a daemon also spends between transfers (serving reads and writes,
    /// syncing in the background), so ferry charges its daemons' whole lifetime.
    fn overall(&self, charged: Cost) -> Cost {
        charged
    }

    /// Whether a transfer moves only what is named (`sessions`), so a run over a large corpus
    /// may name just the session that changed.
    fn per_session(&self) -> bool {
        false
    }
}

/// Runs one of a peer's commands; a failure is the peer's result, counted in the cost and
/// reported with what the command said.
fn step(cmd: &mut std::process::Command) -> Cost {
    let (out, cost) = cost::attempt(cmd);
    if let Err(why) = out {
        let why: Vec<&str> = why.lines().take(12).collect();
        eprintln!("FAILED: {}", why.join("\n"));
    }
    cost
}
