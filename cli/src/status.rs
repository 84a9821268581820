//! `ferry status [--json]`: is the view mounted, which remote and can it be reached, each
//! machine's last commit (and this one's fetch, push and what it has not pushed), what is
//! pending, which sessions diverged and which files lost a newest-wins merge, the last error.
//! With a daemon running, the live figures come from its `status.json`; without one they are
//! worked out from the store and the unmounted directory.

use crate::state::{self, State};
use crate::sync_cmd::daemon_pid;
use anyhow::Result;
use ferry_platform::mount::{MountState, mount_state};
use ferry_sync::engine::{MachineStatus, Status, now_ms, redact};
use ferry_sync::merge::{Version, resolve};
use ferry_sync::store::{Change, Snapshot, Store};
use ferry_sync::view::snapshots;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// "3 s ago", "2 min ago", "5 h ago", "4 d ago".
pub fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let s = (now_ms() - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// Machines and their last commits, from the store alone.
fn machines_from_store(store: &Store, snaps: &[Snapshot], me: &str) -> Vec<MachineStatus> {
    snaps
        .iter()
        .map(|s| {
            let time = store
                .repo()
                .find_commit(s.commit)
                .map(|c| c.time().seconds() * 1000)
                .ok();
            MachineStatus {
                id: s.machine.id.clone(),
                name: s.machine.name.clone(),
                this_machine: s.machine.id == me,
                head: Some(s.commit.to_string()),
                last_commit_ms: time,
                ahead: None,
            }
        })
        .collect()
}

/// Sessions that more than one machine extended differently, and files that lost a
/// newest-wins merge.
fn conflicts(snaps: &[Snapshot], me: &str) -> (Vec<Value>, Vec<Value>) {
    let mut by_path: BTreeMap<(String, String), Vec<(&str, &ferry_sync::store::FileEntry)>> =
        BTreeMap::new();
    for s in snaps {
        for f in &s.files {
            by_path
                .entry((f.project.key.clone(), f.rel.as_str().to_string()))
                .or_default()
                .push((s.machine.id.as_str(), f));
        }
    }
    // `resolve` works on ids (a hide counts only on the machine that recorded it); people read
    // names.
    let name = |id: &str| {
        snaps
            .iter()
            .find(|s| s.machine.id == id)
            .map_or_else(|| id.to_string(), |s| s.machine.name.clone())
    };
    let (mut divergent, mut lost) = (Vec::new(), Vec::new());
    for ((key, rel), versions) in by_path {
        if versions.len() < 2 {
            continue;
        }
        let input: Vec<Version> = versions
            .iter()
            .map(|(m, f)| Version {
                machine: m,
                place: &f.project.slug,
                meta: f.meta,
            })
            .collect();
        let lines = rel.ends_with(".jsonl");
        let r = resolve(&input, me, lines);
        if lines {
            let mut trees: Vec<_> = r.shown.iter().map(|&i| versions[i].1.tree).collect();
            trees.sort();
            trees.dedup();
            if trees.len() > 1 {
                let machines: Vec<String> = r.shown.iter().map(|&i| name(versions[i].0)).collect();
                divergent.push(json!({"project": key, "path": rel, "machines": machines}));
            }
        } else if !r.losers.is_empty() {
            let shown = r.shown.first().map(|&i| name(versions[i].0));
            let losers: Vec<String> = r.losers.iter().map(|&i| name(versions[i].0)).collect();
            lost.push(json!({"project": key, "path": rel, "shown": shown, "losers": losers}));
        }
    }
    (divergent, lost)
}

/// Runs `ferry status`.
/// What the running daemon last published (`None` when none runs), and the status to show:
/// that, or an empty one, with the last `ferry sync`'s error if it is newer.
pub fn observed(st: &State, pid: Option<i32>) -> (Option<Status>, Status) {
    let live: Option<Status> = pid
        .and_then(|_| std::fs::read(st.status()).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut status = live.clone().unwrap_or_default();
    // The last `ferry sync`, daemon or not, may have failed since the daemon's last error.
    let synced: Option<crate::sync_cmd::Report> = std::fs::read(st.sync_report())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(r) = synced
        && let Some(e) = r.error
        && status
            .last_error
            .as_ref()
            .is_none_or(|(at, _)| *at < r.at_ms)
    {
        status.last_error = Some((r.at_ms, e));
    }
    (live, status)
}

pub fn run(json_out: bool) -> Result<()> {
    let st = State::locate()?;
    let config = st.config()?;
    let machine = state::machine_record(&config)?;
    let mountpoint = state::mount_point()?;
    let mount = mount_state(&mountpoint);
    let pid = daemon_pid(&st);
    let store = Store::init(&st.store())?;
    let snaps = snapshots(&store, &machine.id)?;
    let (live, mut status) = observed(&st, pid);
    if status.machines.is_empty() {
        status.machines = machines_from_store(&store, &snaps, &machine.id);
    }
    // Before its first commit this machine is in no branch, and the daemon knows it by id only.
    if !status.machines.iter().any(|m| m.this_machine) {
        status.machines.insert(
            0,
            MachineStatus {
                id: machine.id.clone(),
                this_machine: true,
                ..MachineStatus::default()
            },
        );
    }
    for m in status
        .machines
        .iter_mut()
        .filter(|m| m.this_machine && m.name.is_empty())
    {
        m.name = machine.name.clone();
    }
    if live.is_none() && mount == MountState::None {
        // No daemon: what the unmounted directory holds that the branch lacks.
        let links = crate::projects::load_links(&st)?;
        let placed = crate::projects::placed(&st);
        let batch = ferry_sync::upper::reconcile(&mountpoint, &store, &machine, &links, &placed)?;
        status.pending_paths = batch.files.len();
        status.pending_bytes = batch
            .files
            .iter()
            .filter_map(|f| match &f.change {
                Change::Write { local, .. } => std::fs::metadata(local).ok().map(|m| m.len()),
                _ => None,
            })
            .sum();
    }
    let (divergent, lost) = conflicts(&snaps, &machine.id);
    let findings = st.findings();
    let mount_word = match mount {
        MountState::Live => "live",
        MountState::Stale => "stale (the daemon died; `ferry mount` recovers it)",
        MountState::None => "not mounted",
        MountState::Other => "another filesystem is mounted there",
    };
    // Retired machines (by any machine): history, never lagging.
    let retired: std::collections::BTreeSet<&str> = snaps
        .iter()
        .flat_map(|s| s.machine.retired.keys())
        .chain(config.retired.keys())
        .map(String::as_str)
        .collect();
    let machines: Vec<Value> = status
        .machines
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "name": m.name, "this_machine": m.this_machine,
                "last_commit_ms": m.last_commit_ms,
                "lag_ms": m.last_commit_ms.filter(|_| !retired.contains(m.id.as_str())).map(|t| (now_ms() - t).max(0)),
                "retired": retired.contains(m.id.as_str()),
                "not_pushed": m.ahead,
            })
        })
        .collect();
    let remote = config.remote.as_deref().map(redact);
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "mount": {"path": mountpoint, "state": format!("{mount:?}").to_lowercase(), "daemon_pid": pid},
                "machine": {"id": machine.id, "name": machine.name, "copied_from": config.copied, "continues": config.continued},
                "remote": {"url": remote, "reachable": status.remote_reachable, "transport": status.transport, "paused": status.paused, "twin": status.twin},
                "machines": machines,
                "last_fetch_ms": status.last_fetch_ms,
                "last_push_ms": status.last_push_ms,
                "pending": {"paths": status.pending_paths, "bytes": status.pending_bytes, "waiting": status.waiting},
                "divergent_sessions": divergent,
                "lost_newest_wins": lost,
                "last_error": status.last_error.as_ref().map(|(at, e)| json!({"at_ms": at, "message": e})),
                "rejected": status.rejected,
                "secrets": {"policy": config.secrets, "findings": findings},
            }))?
        );
        return Ok(());
    }
    let daemon = pid.map_or(String::new(), |p| format!(", daemon pid {p}"));
    println!("mount:    {} ({mount_word}{daemon})", mountpoint.display());
    println!("machine:  {} ({})", machine.name, machine.id);
    if let Some(c) = &config.copied {
        println!(
            "          a copy of machine {} ({}), noticed {}: {}; it took this new id, and its own files go to this machine's branch. Rename it with `ferry machines rename NAME`",
            c.from_name,
            c.from_id,
            ago(Some(c.at_ms)),
            c.why
        );
    }
    if let Some(c) = &config.continued {
        println!(
            "          continues machine {} since {} (`ferry init --as-machine`)",
            c.name,
            ago(Some(c.at_ms))
        );
    }
    let reach = match (&remote, status.remote_reachable, pid) {
        (None, _, _) => "none: sessions stay here; add one with `ferry remote set URL`".to_string(),
        (Some(r), Some(true), _) => format!("{r} (reachable)"),
        (Some(r), Some(false), _) if status.paused.is_some() => {
            format!("{r} (transfers paused until you act: see below)")
        }
        (Some(r), Some(false), _) => format!("{r} (unreachable; retrying with backoff)"),
        (Some(r), None, Some(_)) => format!("{r} (not tried yet)"),
        (Some(r), None, None) => format!("{r} (not mounted; `ferry sync` tries it now)"),
    };
    println!("remote:   {reach}");
    if let Some(t) = &status.transport {
        println!("transport: {t}");
    }
    if let Some(why) = &status.twin {
        println!("twin:     {why}");
    }
    if let Some(why) = &status.paused {
        println!("paused:   {why}");
    }
    println!("machines:");
    for m in &status.machines {
        let mut line = format!(
            "  {:<20} last commit {}",
            if m.this_machine {
                format!("{} (this)", m.name)
            } else {
                m.name.clone()
            },
            ago(m.last_commit_ms)
        );
        if retired.contains(m.id.as_str()) {
            line.push_str(" (retired: its sessions stay as history)");
        }
        if m.this_machine {
            if let Some(a) = m.ahead {
                line.push_str(&format!(", {a} commit(s) not pushed"));
            }
            if pid.is_some() && config.remote.is_some() {
                line.push_str(&format!(
                    ", last fetch {}, last push {}",
                    ago(status.last_fetch_ms),
                    ago(status.last_push_ms)
                ));
            }
        }
        println!("{line}");
    }
    println!(
        "pending:  {} path(s), {} byte(s) not yet committed",
        status.pending_paths, status.pending_bytes
    );
    for w in &status.waiting {
        println!("  of which {} in {} wait: {}", w.paths, w.dir, w.why);
    }
    println!(
        "divergent sessions: {}",
        if divergent.is_empty() {
            "none".to_string()
        } else {
            divergent.len().to_string()
        }
    );
    for d in &divergent {
        println!("  {} in {} ({})", d["path"], d["project"], d["machines"]);
    }
    println!(
        "files that lost a newest-wins merge: {}",
        if lost.is_empty() {
            "none".to_string()
        } else {
            lost.len().to_string()
        }
    );
    for l in &lost {
        println!(
            "  {} in {}: shown from {}, older from {} (restore with `ferry restore`)",
            l["path"], l["project"], l["shown"], l["losers"]
        );
    }
    let policy = serde_json::to_value(config.secrets)?;
    println!(
        "secrets in new content (policy {}): {}",
        policy.as_str().unwrap_or("warn"),
        if findings.is_empty() {
            "none found".to_string()
        } else {
            findings.len().to_string()
        }
    );
    for f in &findings {
        println!(
            "  {} in {} at byte {}: {}, {} {}",
            f.path,
            f.project,
            f.offset,
            f.kind,
            f.action,
            ago(Some(f.at_ms))
        );
    }
    if findings.iter().any(|f| f.action == "pushed") {
        println!(
            "  a pushed secret is in the remote's history: revoke it; `ferry init --secrets redact` redacts new ones"
        );
    }
    match &status.last_error {
        Some((at, e)) => println!("last error: {e} ({})", ago(Some(*at))),
        None => println!("last error: none"),
    }
    Ok(())
}
