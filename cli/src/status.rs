//! `ferry status [--json]`: is the view mounted, which remote and can it be reached, each
//! machine's last commit (and this one's fetch, push and what it has not pushed), what is
//! pending, which sessions diverged and which files lost a newest-wins merge, the last error.
//! With a daemon running, the live figures come from it, over its control socket; without one
//! they are worked out from the store and the unmounted directory.

use crate::command::Ctx;
use crate::state::{self, State};
use anyhow::Result;
use ferry_platform::mount::{MountState, mount_state};
use ferry_sync::engine::{MachineStatus, Status, now_ms, redact};
use ferry_sync::merge::{Version, resolve};
use ferry_sync::store::{Change, Snapshot, Store};
use ferry_sync::view::snapshots;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

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
/// A session satellite is named by its path in `config_dir`, where `ferry restore` takes it.
fn conflicts(snaps: &[Snapshot], me: &str, config_dir: &Path) -> (Vec<Value>, Vec<Value>) {
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
        // Each machine's prompt history differs by design: they are merged, never in conflict.
        if versions.len() < 2 || rel == ferry_sync::satellite::HISTORY {
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
                divergent.push(json!({"project_key": key, "path": rel, "machines": machines}));
            }
        } else if !r.losers.is_empty() {
            let shown = r.shown.first().map(|&i| name(versions[i].0));
            let losers: Vec<String> = r.losers.iter().map(|&i| name(versions[i].0)).collect();
            let path = match ferry_sync::satellite::path_of(&rel) {
                Some(p) => config_dir.join(p).display().to_string(),
                None => rel,
            };
            lost.push(json!({"project_key": key, "path": path, "shown": shown, "losers": losers}));
        }
    }
    (divergent, lost)
}

/// How long `ferry status` waits for the daemon's answer.
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the running daemon says now (`None` when none runs), and the status to show:
/// that, or an empty one, with the last `ferry sync`'s error if it is newer.
pub fn observed(st: &State, pid: Option<i32>) -> (Option<Status>, Status) {
    // Live, from the daemon; a daemon that does not answer within seconds is taken as none.
    let live: Option<Status> = pid
        .and_then(|_| {
            crate::control::ask(st, crate::control::Request::Status, STATUS_WAIT)
                .ok()
                .flatten()
        })
        .and_then(|reply| match reply {
            crate::control::Reply::Status { status } => Some(*status),
            _ => None,
        });
    let mut status = live.clone().unwrap_or_default();
    // The last `ferry sync`, daemon or not, may have failed since the daemon's last error.
    let synced: Option<crate::report::Report> = std::fs::read(st.sync_report())
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

/// Everything `ferry status` reports, gathered once, then shown as JSON or text.
struct Seen {
    config: crate::state::Config,
    machine: ferry_sync::store::MachineRecord,
    mountpoint: std::path::PathBuf,
    mount: MountState,
    pid: Option<i32>,
    status: Status,
    divergent: Vec<Value>,
    lost: Vec<Value>,
    findings: Vec<ferry_sync::secrets::Finding>,
    /// Machines retired (by any machine): history, never lagging.
    retired: std::collections::BTreeSet<String>,
}

/// Runs `ferry status`.
pub fn run(ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let seen = gather(ctx)?;
    ui.out(&doc(&seen), || text(&seen));
    Ok(())
}

/// Reads the state dir, the store and the daemon's published status.
fn gather(ctx: &Ctx) -> Result<Seen> {
    let st = ctx.state()?;
    let config = ctx.config()?.clone();
    let machine = state::machine_record(&config)?;
    let mountpoint = state::mount_point()?;
    let mount = mount_state(&mountpoint);
    let pid = st.daemon_pid();
    let store = ctx.store()?;
    let snaps = snapshots(store, &machine.id)?;
    let (live, mut status) = observed(st, pid);
    if status.machines.is_empty() {
        status.machines = machines_from_store(store, &snaps, &machine.id);
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
        let placed = crate::projects::placed(st);
        let batch =
            ferry_sync::upper::reconcile(&mountpoint, store, &machine, ctx.links()?, &placed)?;
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
    let config_dir = state::config_dir()?;
    let (divergent, lost) = conflicts(&snaps, &machine.id, &config_dir);
    let retired = snaps
        .iter()
        .flat_map(|s| s.machine.retired.keys())
        .chain(config.retired.keys())
        .cloned()
        .collect();
    Ok(Seen {
        findings: st.findings(),
        config,
        machine,
        mountpoint,
        mount,
        pid,
        status,
        divergent,
        lost,
        retired,
    })
}

/// The JSON document.
fn doc(s: &Seen) -> Value {
    let machines: Vec<Value> = s
        .status
        .machines
        .iter()
        .map(|m| {
            let retired = s.retired.contains(&m.id);
            json!({
                "id": m.id, "name": m.name, "this_machine": m.this_machine,
                "last_commit_ms": m.last_commit_ms,
                "lag_ms": m.last_commit_ms.filter(|_| !retired).map(|t| (now_ms() - t).max(0)),
                "retired": retired,
                "not_pushed": m.ahead,
            })
        })
        .collect();
    let status = &s.status;
    json!({
        "mount": {"path": s.mountpoint, "state": format!("{:?}", s.mount).to_lowercase(), "daemon_pid": s.pid},
        "machine": {"id": s.machine.id, "name": s.machine.name, "copied_from": s.config.copied, "continues": s.config.continued},
        "remote": {"url": s.config.remote.as_deref().map(redact), "reachable": status.remote_reachable, "transport": status.transport, "paused": status.paused, "twin": status.twin, "transfer": status.transfer, "encrypted": s.config.encrypted},
        "machines": machines,
        "last_fetch_ms": status.last_fetch_ms,
        "last_push_ms": status.last_push_ms,
        "pending": {"paths": status.pending_paths, "bytes": status.pending_bytes, "waiting": status.waiting},
        "unsyncable": status.unsyncable,
        "divergent_sessions": s.divergent,
        "lost_newest_wins": s.lost,
        "last_error": status.last_error.as_ref().map(|(at, e)| json!({"at_ms": at, "message": e})),
        "rejected": status.rejected,
        "secrets": {"policy": s.config.secrets, "findings": s.findings},
        "history": {"days": s.config.history_days, "not_folded": status.history},
    })
}

/// Names from a JSON list of strings, joined for people: `laptop, desk2`.
fn names(v: &Value) -> String {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|n| n.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(n) => n.clone(),
        _ => "?".into(),
    }
}

/// The text for people.
fn text(s: &Seen) -> String {
    let mut t = String::new();
    header(s, &mut t);
    machines_text(s, &mut t);
    conflicts_text(s, &mut t);
    secrets_text(s, &mut t);
    let status = &s.status;
    t += &match &status.last_error {
        Some((at, e)) => format!("last error: {e} ({})\n", ago(Some(*at))),
        None => "last error: none\n".into(),
    };
    t
}

/// Mount, machine and remote lines.
fn header(s: &Seen, t: &mut String) {
    use std::fmt::Write;
    let (status, pid) = (&s.status, s.pid);
    let mount_word = match s.mount {
        MountState::Live => "live",
        MountState::Stale => "stale (the daemon died; `ferry mount` recovers it)",
        MountState::None => "not mounted",
        MountState::Other => "another filesystem is mounted there",
    };
    let daemon = pid.map_or(String::new(), |p| format!(", daemon pid {p}"));
    let _ = writeln!(
        t,
        "mount:    {} ({mount_word}{daemon})",
        s.mountpoint.display()
    );
    let _ = writeln!(t, "machine:  {} ({})", s.machine.name, s.machine.id);
    if let Some(c) = &s.config.copied {
        let _ = writeln!(
            t,
            "          a copy of machine {} ({}), noticed {}: {}; it took this new id, and its own files go to this machine's branch. Rename it with `ferry machines rename NAME`",
            c.from_name,
            c.from_id,
            ago(Some(c.at_ms)),
            c.why
        );
    }
    if let Some(c) = &s.config.continued {
        let _ = writeln!(
            t,
            "          continues machine {} since {} (`ferry init --as-machine`)",
            c.name,
            ago(Some(c.at_ms))
        );
    }
    let remote = s.config.remote.as_deref().map(redact);
    let reach = match (&remote, status.remote_reachable, pid) {
        (None, _, _) => "none: sessions stay here; add one with `ferry remote set URL`".to_string(),
        (Some(r), Some(true), _) => format!("{r} (reachable)"),
        (Some(r), Some(false), _) if status.paused.is_some() => {
            format!("{r} (transfers paused until you act: see below)")
        }
        (Some(r), Some(false), _) => format!("{r} (unreachable; retrying with backoff)"),
        (Some(r), None, Some(_)) => format!("{r} (not reached yet)"),
        (Some(r), None, None) => format!("{r} (not mounted; `ferry sync` tries it now)"),
    };
    let _ = writeln!(t, "remote:   {reach}");
    if s.config.encrypted {
        let _ = writeln!(
            t,
            "          encrypted: the remote holds only sealed objects (`ferry key show`, `ferry key add`)"
        );
    }
    if let Some(x) = &status.transport {
        let _ = writeln!(t, "transport: {x}");
    }
    if let Some(x) = &status.transfer {
        let _ = writeln!(
            t,
            "now:      {}",
            crate::transfer_bar::words(&x.op, x.so_far)
        );
    }
    if let Some(why) = &status.history {
        let _ = writeln!(t, "history:  {why}");
    } else {
        let _ = match s.config.history_days {
            0 => writeln!(
                t,
                "history:  every version is kept (`ferry init --history-days N` folds away what is older)"
            ),
            1 => writeln!(
                t,
                "history:  1 day: `ferry restore` goes back that far; older history is folded away"
            ),
            n => writeln!(
                t,
                "history:  {n} days: `ferry restore` goes back that far; older history is folded away"
            ),
        };
    }
    if let Some(why) = &status.twin {
        let _ = writeln!(t, "twin:     {why}");
    }
    if let Some(why) = &status.paused {
        let _ = writeln!(t, "paused:   {why}");
    }
}

/// One line per machine, then what is pending.
fn machines_text(s: &Seen, t: &mut String) {
    use std::fmt::Write;
    let status = &s.status;
    t.push_str("machines:\n");
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
        if s.retired.contains(&m.id) {
            line.push_str(" (retired: its sessions stay as history)");
        }
        if m.this_machine {
            if let Some(a) = m.ahead {
                line.push_str(&format!(", {a} commit(s) not pushed"));
            }
            if s.pid.is_some() && s.config.remote.is_some() {
                line.push_str(&format!(
                    ", last fetch {}, last push {}",
                    ago(status.last_fetch_ms),
                    ago(status.last_push_ms)
                ));
            }
        }
        let _ = writeln!(t, "{line}");
    }
    let _ = writeln!(
        t,
        "pending:  {} path(s), {} byte(s) not yet committed",
        status.pending_paths, status.pending_bytes
    );
    for w in &status.waiting {
        let _ = writeln!(t, "  of which {} in {} wait: {}", w.paths, w.dir, w.why);
    }
    unsyncable_text(&status.unsyncable, t);
}

/// Most files the text names that the store cannot hold (`--json` gives all).
const UNSYNCABLE_SHOWN: usize = 10;

/// Files that stay on this machine because the store cannot hold their paths, and what to do.
fn unsyncable_text(files: &[ferry_sync::engine::Unsyncable], t: &mut String) {
    use std::fmt::Write;
    if files.is_empty() {
        return;
    }
    let _ = writeln!(
        t,
        "not synced: {} file(s) in paths the store cannot hold stay on this machine only (rename or move them to sync them):",
        files.len()
    );
    for f in files.iter().take(UNSYNCABLE_SHOWN) {
        let _ = writeln!(t, "  {}: {}", one_line_path(&f.path), f.why);
    }
    if files.len() > UNSYNCABLE_SHOWN {
        let _ = writeln!(
            t,
            "  and {} more (ferry status --json lists them all)",
            files.len() - UNSYNCABLE_SHOWN
        );
    }
}

/// `path` fit for one line of text: control characters escaped (a name may hold a newline),
/// and a path too long to read (one can be 3,800 bytes) cut to its project directory and its
/// file's name (`--json` gives it whole).
fn one_line_path(path: &str) -> String {
    let escaped: String = path
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect();
    let parts: Vec<&str> = escaped.split('/').collect();
    match parts.as_slice() {
        [first, middle @ .., last] if escaped.chars().count() > 160 && !middle.is_empty() => {
            format!("{first}/…({} more)…/{last}", middle.len())
        }
        _ => escaped,
    }
}

/// Divergent sessions and files that lost a newest-wins merge, each with what to do.
fn conflicts_text(s: &Seen, t: &mut String) {
    use std::fmt::Write;
    let count = |v: &[Value]| match v.len() {
        0 => "none".to_string(),
        n => n.to_string(),
    };
    let str_of = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let _ = writeln!(t, "divergent sessions: {}", count(&s.divergent));
    for d in &s.divergent {
        let _ = writeln!(
            t,
            "  {} in {}, continued differently on {}",
            str_of(&d["path"]),
            str_of(&d["project_key"]),
            names(&d["machines"])
        );
    }
    if !s.divergent.is_empty() {
        t.push_str("  every line of each is kept and shown; `ferry handoff ID` sums one up, `ferry restore --list PATH` shows each machine's versions\n");
    }
    let _ = writeln!(t, "files that lost a newest-wins merge: {}", count(&s.lost));
    for l in &s.lost {
        let _ = writeln!(
            t,
            "  {} in {}: shown from {}, older from {} (bring one back with `ferry restore --list`)",
            str_of(&l["path"]),
            str_of(&l["project_key"]),
            names(&l["shown"]),
            names(&l["losers"])
        );
    }
}

/// Secrets found in new content, and what to do about pushed ones.
fn secrets_text(s: &Seen, t: &mut String) {
    use std::fmt::Write;
    let policy = serde_json::to_value(s.config.secrets).unwrap_or_default();
    let _ = writeln!(
        t,
        "secrets in new content (policy {}): {}",
        policy.as_str().unwrap_or("warn"),
        if s.findings.is_empty() {
            "none found".to_string()
        } else {
            s.findings.len().to_string()
        }
    );
    for f in &s.findings {
        let _ = writeln!(
            t,
            "  {} in {} at byte {}: {}, {} {}",
            f.path,
            f.project,
            f.offset,
            f.kind,
            f.action,
            ago(Some(f.at_ms))
        );
    }
    if s.findings.iter().any(|f| f.action == "pushed") {
        t.push_str("  a pushed secret is in the remote's history: revoke it; `ferry init --secrets redact` redacts new ones\n");
    }
}

#[cfg(test)]
mod tests {
    use super::one_line_path;

    #[test]
    fn a_path_is_shown_on_one_line_and_a_long_one_cut() {
        assert_eq!(one_line_path("-p/a.txt"), "-p/a.txt");
        assert_eq!(one_line_path("-p/a\nb.txt"), "-p/a\\nb.txt");
        let long = format!("-p/{}/x.jsonl", vec!["n".repeat(250); 15].join("/"));
        assert_eq!(one_line_path(&long), "-p/…(15 more)…/x.jsonl");
    }
}
