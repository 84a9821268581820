//! `ferry link PATH [--key KEY]` and `ferry projects [--json]`: which project key a checkout
//! stands for, and every project with where it lives on this machine.

use crate::command::Ctx;
use crate::state::{self, State};
use anyhow::{Context, Result};
use ferry_fs::foreign::Foreign;
use ferry_sync::project_key::{Link, project_key};
use ferry_sync::view::snapshots;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::state::load_links;

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
/// now, pinned). A running daemon takes it within 2 s.
pub fn link(path: PathBuf, key: Option<String>, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    st.config()?;
    let (real, real_str) = state::real_dir(&path)?;
    let mut links = load_links(st)?;
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
    crate::files::write_json(&st.links(), &links)
        .with_context(|| format!("writing {}", st.links().display()))?;
    let taken = crate::control::reload(st)?;
    let doc = json!({"path": real_str, "project_key": key, "daemon_took_it": taken});
    ui.out(&doc, || {
        let when = if taken {
            "the running daemon lists them there now"
        } else {
            "from the next `ferry mount`"
        };
        format!("linked {real_str} to project {key}\nother machines' sessions of it are listed there: {when}")
    });
    Ok(())
}

/// One place of a project on this machine, as `ferry projects` shows it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PlaceRow {
    /// The local directory.
    pub path: String,
    /// Its project directory under `projects/`.
    pub slug: String,
    /// Whether other machines' sessions of the project are listed here.
    pub receives: bool,
    /// Whether the directory exists here.
    pub exists: bool,
}

/// One project, as `ferry projects` shows it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ProjectRow {
    /// The project key.
    #[serde(rename = "project_key")]
    pub key: String,
    /// The place that receives other machines' sessions (its cwd), if any.
    pub local_path: Option<String>,
    /// Whether that place exists here.
    pub checkout_here: bool,
    /// Why that place receives them: `link`, `checkout`, `recent` or `home`.
    pub chosen_by: Option<String>,
    /// Every place of the project on this machine.
    pub places: Vec<PlaceRow>,
    /// The machines that have it.
    pub machines: Vec<String>,
    /// How many sessions (top-level transcripts) the machines have, counted per machine.
    pub sessions: usize,
}

/// Every project known here with its places on this machine.
pub fn rows(st: &State) -> Result<Vec<ProjectRow>> {
    let config = st.config()?;
    let machine = state::machine_record(&config)?;
    let links = load_links(st)?;
    let store = st.open_store()?;
    let snaps = snapshots(&store, &machine.id)?;
    let mut book = ferry_fs::places::PlaceBook::load(&st.places());
    let foreign = Foreign::from_snapshots(&snaps, &machine, &links, &mut book);
    let mut projects: BTreeMap<String, ProjectRow> = BTreeMap::new();
    for s in &snaps {
        for f in &s.files {
            let row = projects.entry(f.project.key.clone()).or_default();
            if s.machine.id == machine.id && !row.places.iter().any(|p| p.slug == f.project.slug) {
                row.places.push(PlaceRow {
                    path: f.project.cwd.clone(),
                    slug: f.project.slug.clone(),
                    receives: false,
                    exists: std::path::Path::new(&f.project.cwd).is_dir(),
                });
            }
            if !row.machines.contains(&s.machine.name) {
                row.machines.push(s.machine.name.clone());
            }
            if f.rel.as_str().ends_with(".jsonl") && !f.rel.as_str().contains('/') {
                row.sessions += 1;
            }
        }
    }
    for (key, p) in &foreign.placements {
        let row = projects.entry(key.clone()).or_default();
        match row.places.iter_mut().find(|r| r.slug == p.project.slug) {
            Some(r) => r.receives = true,
            None => row.places.push(PlaceRow {
                path: p.project.cwd.clone(),
                slug: p.project.slug.clone(),
                receives: true,
                exists: std::path::Path::new(&p.project.cwd).is_dir(),
            }),
        }
        row.local_path = Some(p.project.cwd.clone());
        row.chosen_by = book
            .chosen
            .get(ferry_fs::foreign::key_base(key))
            .map(|c| format!("{:?}", c.why).to_lowercase());
    }
    for (key, row) in &mut projects {
        row.key = key.clone();
        if row.local_path.is_none() {
            row.local_path = row.places.first().map(|p| p.path.clone());
        }
        row.checkout_here = row
            .local_path
            .as_deref()
            .is_some_and(|p| std::path::Path::new(p).is_dir());
        row.places
            .sort_by(|a, b| (!a.receives, &a.path).cmp(&(!b.receives, &b.path)));
    }
    Ok(projects.into_values().collect())
}

/// `ferry projects`: every project known here, with its places on this machine and the one
/// that receives other machines' sessions.
pub fn list(ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let rows = rows(st)?;
    if ui.json {
        ui.out(&json!({"projects": rows}), String::new);
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no projects yet: sessions appear here once Claude Code runs with the view mounted"
        );
    }
    for r in &rows {
        println!("{}", r.key);
        for p in &r.places {
            let why = match (p.receives, r.chosen_by.as_deref()) {
                (true, Some("link")) => "  <- other machines' sessions (ferry link)",
                (true, Some("checkout")) => "  <- other machines' sessions (a checkout here)",
                (true, Some("recent")) => "  <- other machines' sessions (used most recently)",
                (true, _) => "  <- other machines' sessions (no checkout here: `ferry link` one)",
                (false, _) => "",
            };
            let missing = if p.exists { "" } else { " (not on disk)" };
            println!("  {}{missing}{why}", p.path);
        }
        println!(
            "  machines: {}, sessions: {}",
            r.machines.join(", "),
            r.sessions
        );
    }
    Ok(())
}
