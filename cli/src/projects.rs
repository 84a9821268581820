//! `ferry link PATH [--key KEY]` and `ferry projects [--json]`: which project key a checkout
//! stands for, and every project with where it lives on this machine.

use crate::state::{self, State};
use anyhow::{Context, Result};
use ferry_fs::foreign::Foreign;
use ferry_sync::project_key::{Link, project_key};
use ferry_sync::store::Store;
use ferry_sync::view::snapshots;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `ferry link` entries of this state dir.
pub fn load_links(st: &State) -> Result<Vec<Link>> {
    match std::fs::read(st.links()) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is damaged; fix it or remove it and link again",
                st.links().display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", st.links().display())),
    }
}

/// The view of other machines' files as the daemon places them: its place book read, never
/// written.
pub fn foreign_view(
    st: &State,
    snaps: &[ferry_sync::store::Snapshot],
    machine: &ferry_sync::store::MachineRecord,
    links: &[Link],
) -> Foreign {
    let mut book = ferry_fs::places::PlaceBook::load(&st.places());
    Foreign::from_snapshots(snaps, machine, links, &mut book)
}

/// The records of the slug dirs where the daemon placed other machines' projects, by slug (see
/// `ferry_sync::upper::reconcile`).
pub fn placed(st: &State) -> std::collections::HashMap<String, ferry_sync::store::ProjectRecord> {
    ferry_fs::places::PlaceBook::load(&st.places())
        .placed
        .into_iter()
        .collect()
}

/// `ferry link`: makes every cwd inside PATH belong to project KEY (default: the key PATH has
/// now, pinned). Takes effect at the next mount.
pub fn link(path: PathBuf, key: Option<String>, json_out: bool) -> Result<()> {
    let st = State::locate()?;
    st.config()?;
    let (real, real_str) = state::real_dir(&path)?;
    let mut links = load_links(&st)?;
    links.retain(|l| l.path != real_str);
    let key = match key {
        Some(k) => k.trim_end_matches('/').to_string(),
        None => {
            let home = ferry_platform::home_dir();
            let k = project_key(&real, home.as_deref(), &links)
                .with_context(|| format!("computing the project key of {real_str}"))?;
            k.base
        }
    };
    links.push(Link {
        path: real_str.clone(),
        key: key.clone(),
    });
    links.sort_by(|a, b| a.path.cmp(&b.path));
    crate::daemon::write_json(&st.links(), &links)
        .with_context(|| format!("writing {}", st.links().display()))?;
    if json_out {
        println!("{}", json!({"path": real_str, "key": key}));
    } else {
        println!("linked {real_str} to project {key}");
        println!("it takes effect at the next `ferry mount` (or now, if not mounted)");
    }
    Ok(())
}

/// `ferry projects`: every project known here, with its local path on this machine.
pub fn list(json_out: bool) -> Result<()> {
    let st = State::locate()?;
    let config = st.config()?;
    let machine = state::machine_record(&config)?;
    let links = load_links(&st)?;
    let store = Store::init(&st.store())?;
    let snaps = snapshots(&store, &machine.id)?;
    let foreign = foreign_view(&st, &snaps, &machine, &links);
    // key -> (local path, machines, sessions)
    let mut projects: BTreeMap<String, (Option<String>, Vec<String>, usize)> = BTreeMap::new();
    for s in &snaps {
        for f in &s.files {
            let e = projects.entry(f.project.key.clone()).or_default();
            if s.machine.id == machine.id {
                e.0 = Some(f.project.cwd.clone());
            }
            if !e.1.contains(&s.machine.name) {
                e.1.push(s.machine.name.clone());
            }
            if f.rel.as_str().ends_with(".jsonl") && !f.rel.as_str().contains('/') {
                e.2 += 1;
            }
        }
    }
    for (key, p) in &foreign.placements {
        let e = projects.entry(key.clone()).or_default();
        e.0.get_or_insert_with(|| p.project.cwd.clone());
    }
    let rows: Vec<_> = projects
        .into_iter()
        .map(|(key, (path, machines, sessions))| {
            let exists = path.as_deref().is_some_and(|p| std::path::Path::new(p).is_dir());
            json!({"key": key, "local_path": path, "checkout_here": exists, "machines": machines, "sessions": sessions})
        })
        .collect();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no projects yet: sessions appear here once Claude Code runs with the view mounted"
        );
    }
    for r in &rows {
        println!(
            "{}\n  here: {}{}\n  machines: {}, sessions: {}",
            r["key"].as_str().unwrap_or_default(),
            r["local_path"].as_str().unwrap_or("-"),
            if r["checkout_here"].as_bool() == Some(true) {
                ""
            } else {
                " (no checkout here: `ferry link` one)"
            },
            r["machines"],
            r["sessions"]
        );
    }
    Ok(())
}
