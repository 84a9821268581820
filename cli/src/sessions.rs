//! `ferry sessions` and `ferry handoff`: every session across machines, as this machine sees
//! it, and a brief for picking one up here, built without any model call.

use crate::state::{self, State};
use crate::status::ago;
use crate::transcript::{Summary, clip, summarise};
use crate::view::View;
use anyhow::{Result, bail};
use ferry_sync::project_key::git_state;
use ferry_sync::store::{GitState, Store};
use ferry_sync::view::snapshots;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One machine's version of a file: its name, the mtime (ms), and where its checkout stood.
type Known = (String, i64, Option<GitState>);

/// One session as this machine sees it.
pub struct Session {
    /// The session id (the transcript's name).
    pub id: String,
    /// Its project key.
    pub project: String,
    /// The transcript's path on this machine.
    pub path: PathBuf,
    /// The project's directory on this machine.
    pub cwd: Option<String>,
    /// Every machine whose branch has it.
    pub machines: Vec<String>,
    /// The machine that wrote last.
    pub last_writer: String,
    /// When (ms).
    pub updated_ms: i64,
    /// Whether this machine has a checkout to resume it in.
    pub resumable_here: bool,
    /// What the transcript says.
    pub summary: Summary,
    /// Where the last writer's checkout stood.
    pub their_git: Option<GitState>,
    /// Whether its Claude Code never ended since the last write (no SessionEnd marker newer
    /// than the transcript).
    pub open: bool,
}

impl Session {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project": self.project, "path": self.path, "cwd": self.cwd,
            "machines": self.machines, "last_writer": self.last_writer,
            "updated_ms": self.updated_ms, "title": self.summary.title,
            "first_prompt": self.summary.first_prompt, "branch": self.summary.branch,
            "resumable_here": self.resumable_here, "open": self.open,
        })
    }
}

/// The first and last bytes of a file.
type Ends = (Vec<u8>, Vec<u8>);

/// The first and last 64 KiB of a transcript, and its mtime.
fn head_and_tail(view: &View, rel: &Path) -> Result<(Ends, i64)> {
    const SPAN: u64 = 64 << 10;
    let (size, mtime) = view.stat(rel)?;
    let head = view.read_at(rel, 0, SPAN as u32)?;
    let tail = if size > SPAN {
        view.read_at(rel, size - SPAN, SPAN as u32)?
    } else {
        Vec::new()
    };
    Ok(((head, tail), mtime))
}

/// Every session in the view, newest first.
pub fn collect(st: &State) -> Result<Vec<Session>> {
    let config = st.config()?;
    let machine = state::machine_record(&config)?;
    let links = crate::projects::load_links(st)?;
    let store = Store::init(&st.store())?;
    let snaps = snapshots(&store, &machine.id)?;
    let foreign = crate::projects::foreign_view(st, &snaps, &machine, &links);
    let placed = crate::projects::placed(st);
    // (key, rel) -> every machine's (name, mtime, git state) for it.
    let mut versions: HashMap<(String, String), Vec<Known>> = HashMap::new();
    for s in &snaps {
        for f in &s.files {
            versions
                .entry((f.project.key.clone(), f.rel.as_str().to_string()))
                .or_default()
                .push((
                    s.machine.name.clone(),
                    f.meta.mtime_ms,
                    f.project.git.clone(),
                ));
        }
    }
    let view = View::open(st, &machine)?;
    let mut out = Vec::new();
    for (slug, is_dir) in view.list(Path::new(""))? {
        if !is_dir {
            continue;
        }
        for (name, is_dir) in view.list(Path::new(&slug))? {
            let Some(id) = name.strip_suffix(".jsonl").filter(|_| !is_dir) else {
                continue;
            };
            let rel = Path::new(&slug).join(&name);
            let Ok(((head, tail), mtime)) = head_and_tail(&view, &rel) else {
                continue;
            };
            // As Claude Code lists sessions: the first and last 64 KiB only.
            let mut summary = summarise(&head);
            let last = summarise(&tail);
            summary.title = last.title.or(summary.title);
            summary.branch = last.branch.or(summary.branch);
            summary.last_assistant = last.last_assistant.or(summary.last_assistant);
            let ended = view
                .read(&Path::new(&slug).join(id).join(crate::hooks::ENDED))
                .ok()
                .and_then(|(b, _)| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["ended_ms"].as_i64());
            // The marker is written after the last line; allow for the view's ms rounding.
            let open = ended.is_none_or(|e| e + 1000 < mtime);
            // As the daemon files the directory: recorded, placed, else from the transcript's
            // cwd (a session not committed yet).
            let project = foreign
                .projects_by_slug
                .get(&slug)
                .or_else(|| placed.get(&slug))
                .cloned()
                .or_else(|| {
                    ferry_sync::upper::project_for_cwd(
                        &slug,
                        Some(summary.cwd.as_deref()?),
                        Path::new(&machine.home),
                        &links,
                        false,
                    )
                });
            let project = project.as_ref();
            let key = project
                .map(|p| p.key.clone())
                .unwrap_or_else(|| format!("slug:{slug}"));
            let cwd = project
                .map(|p| p.cwd.clone())
                .or_else(|| summary.cwd.clone());
            let mut known = versions
                .get(&(key.clone(), name.clone()))
                .cloned()
                .unwrap_or_default();
            known.sort_by_key(|v| v.1);
            let newest = known.last().cloned();
            let last_writer = match &newest {
                Some((m, t, _)) if *t >= mtime => m.clone(),
                _ => machine.name.clone(),
            };
            let mut machines: Vec<String> = known.iter().map(|v| v.0.clone()).collect();
            if last_writer == machine.name && !machines.contains(&machine.name) {
                machines.push(machine.name.clone());
            }
            machines.dedup();
            out.push(Session {
                id: id.to_string(),
                project: key,
                path: view.local_path(&rel),
                resumable_here: cwd.as_deref().is_some_and(|c| Path::new(c).is_dir()),
                cwd,
                machines,
                last_writer,
                updated_ms: mtime,
                their_git: newest.and_then(|n| n.2),
                summary,
                open,
            });
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.updated_ms));
    Ok(out)
}

/// `ferry sessions`.
pub fn list(
    json_out: bool,
    machine: Option<String>,
    project: Option<String>,
    open: bool,
) -> Result<()> {
    let st = State::locate()?;
    let sessions: Vec<Session> = collect(&st)?
        .into_iter()
        .filter(|s| {
            machine
                .as_ref()
                .is_none_or(|m| s.machines.contains(m) || &s.last_writer == m)
        })
        .filter(|s| {
            project
                .as_ref()
                .is_none_or(|p| s.project.contains(p.as_str()))
        })
        .filter(|s| !open || s.open)
        .collect();
    if json_out {
        let rows: Vec<Value> = sessions.iter().map(Session::json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if sessions.is_empty() {
        println!("no sessions");
    }
    for s in &sessions {
        let what = s
            .summary
            .title
            .clone()
            .or_else(|| s.summary.first_prompt.clone())
            .unwrap_or_default();
        println!(
            "{}  {:<12} by {:<10} {}{}\n    {}{}  {}",
            s.id,
            ago(Some(s.updated_ms)),
            s.last_writer,
            s.project,
            s.summary
                .branch
                .as_deref()
                .map_or(String::new(), |b| format!(" [{b}]")),
            if s.resumable_here {
                "resumable here"
            } else {
                "no checkout here"
            },
            if s.open { ", open (never ended)" } else { "" },
            clip(&what, 80)
        );
    }
    Ok(())
}

/// The one session whose id starts with `prefix`, or an error that says what to do.
pub fn find<'a>(all: &'a [Session], prefix: &str) -> Result<&'a Session> {
    let matches: Vec<&Session> = all.iter().filter(|s| s.id.starts_with(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => bail!("no session {prefix}; `ferry sessions` lists them"),
        _ => bail!(
            "{prefix} matches {} sessions; give more of the id",
            matches.len()
        ),
    }
}

/// `ferry handoff SESSION`: a brief for picking the work up on this machine.
pub fn handoff(id: &str, json_out: bool) -> Result<()> {
    let st = State::locate()?;
    let all = collect(&st)?;
    let s = find(&all, id)?;
    // The brief reads the whole transcript, not just the ends a listing reads.
    let machine = state::machine_record(&st.config()?)?;
    let view = View::open(&st, &machine)?;
    let rel: PathBuf = s
        .path
        .iter()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let full = view.read(&rel).map(|(b, _)| summarise(&b)).ok();
    let summary = full.as_ref().unwrap_or(&s.summary);
    let here: Option<GitState> = s.cwd.as_deref().and_then(|c| git_state(Path::new(c)));
    let task = s
        .summary
        .title
        .clone()
        .or_else(|| summary.first_prompt.clone());
    let last_prompts: Vec<&String> = summary.prompts.iter().rev().take(3).rev().collect();
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "session": s.json(), "task": task, "last_prompts": last_prompts,
                "files_touched": summary.files, "last_assistant": summary.last_assistant,
                "their_checkout": s.their_git, "this_checkout": here,
            }))?
        );
        return Ok(());
    }
    println!("# Handoff: session {}", s.id);
    println!();
    println!(
        "Project {} — last written by {} {}.",
        s.project,
        s.last_writer,
        ago(Some(s.updated_ms))
    );
    println!(
        "Task: {}",
        task.as_deref()
            .map_or("(no prompt yet)".into(), |t| clip(t, 300))
    );
    println!();
    println!("## Last prompts");
    for p in &last_prompts {
        println!("- {}", clip(p, 200));
    }
    println!();
    println!("## Files touched");
    if summary.files.is_empty() {
        println!("- none recorded");
    }
    for f in &summary.files {
        println!("- {f}");
    }
    println!();
    println!("## Last assistant message");
    println!(
        "{}",
        s.summary
            .last_assistant
            .as_deref()
            .map_or("(none)".into(), |t| clip(t, 600))
    );
    println!();
    println!("## Checkout");
    let show = |g: &Option<GitState>| match g {
        Some(g) => format!(
            "branch {}, commit {}, {} dirty file(s)",
            g.branch.as_deref().unwrap_or("(detached)"),
            g.commit.as_deref().map_or("-", |c| &c[..c.len().min(12)]),
            g.dirty.len()
        ),
        None => "unknown".into(),
    };
    println!("- {}: {}", s.last_writer, show(&s.their_git));
    println!(
        "- here ({}): {}",
        s.cwd.as_deref().unwrap_or("no checkout"),
        show(&here)
    );
    if let (Some(t), Some(h)) = (&s.their_git, &here)
        && (t.commit != h.commit || t.branch != h.branch)
    {
        println!(
            "- the checkouts differ: bring this one to {} first",
            show(&s.their_git)
        );
    }
    println!();
    println!(
        "Resume here: cd {} && claude --resume {}",
        s.cwd.as_deref().unwrap_or("<your checkout>"),
        s.id
    );
    Ok(())
}
