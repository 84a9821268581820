//! `ferry sessions` and `ferry handoff`: every session across machines, as this machine sees
//! it, and a brief for picking one up here, built without any model call.

use crate::command::Ctx;
use crate::state::{self, State};
use crate::status::ago;
use crate::transcript::{Summary, clip, summarise};
use crate::view::View;
use anyhow::{Result, bail};
use ferry_sync::project_key::git_state;
use ferry_sync::store::GitState;
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
    /// Whether `claude --resume` works here now: a checkout to resume in, and the transcript on
    /// disk (through the mount, for another machine's session).
    pub resumable_here: bool,
    /// Why not, when it is not.
    pub not_here: Option<&'static str>,
    /// What the transcript says.
    pub summary: Summary,
    /// Where the last writer's checkout stood.
    pub their_git: Option<GitState>,
    /// Whether its Claude Code never ended since the last write (no SessionEnd marker newer
    /// than the transcript).
    pub open: bool,
    /// Whether this machine wrote last.
    pub written_here: bool,
}

impl Session {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "project_key": self.project, "path": self.path, "cwd": self.cwd,
            "machines": self.machines, "last_writer": self.last_writer,
            "updated_ms": self.updated_ms, "title": self.summary.title,
            "first_prompt": self.summary.first_prompt, "branch": self.summary.branch,
            "resumable_here": self.resumable_here, "not_resumable_why": self.not_here,
            "open": self.open,
            "written_here": self.written_here,
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
    collect_in(st, |_, _| true)
}

/// Other machines' sessions of the project in `cwd` that were left open, newest first, but for
/// the session `except` (the one asking).
pub fn open_elsewhere(st: &State, cwd: &Path, except: Option<&str>) -> Result<Vec<Session>> {
    let (real, real_str) = state::real_dir(cwd)?;
    let links = crate::projects::load_links(st)?;
    let home = ferry_platform::home_dir();
    let key = ferry_sync::project_key::project_key(&real, home.as_deref(), &links)
        .ok()
        .map(|k| k.to_string());
    let here = ferry_sync::slug::slug(&real_str);
    let sessions = collect_in(st, |slug, k| {
        slug == here || (key.is_some() && k == key.as_deref())
    })?;
    Ok(sessions
        .into_iter()
        .filter(|s| s.open && !s.written_here && Some(s.id.as_str()) != except)
        .collect())
}

/// The sessions in the project dirs `want` picks by slug and, where it is known before any
/// transcript is read, project key; newest first.
fn collect_in(st: &State, want: impl Fn(&str, Option<&str>) -> bool) -> Result<Vec<Session>> {
    // A directory listed a moment ago may be gone (Claude Code moves sessions, and the view
    // moves another machine's project to a better place while the client starts): then the
    // listing is taken again, places and all, a few times before it makes do.
    for _ in 0..4 {
        if let Some(found) = collect_once(st, &want, false)? {
            return Ok(found);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(collect_once(st, &want, true)?.unwrap_or_default())
}

/// Project dirs and their entries (name, is a directory), sorted.
type Listing = Vec<(String, Vec<(String, bool)>)>;

/// The project dirs `want` picks and their entries; `None` if one vanished meanwhile, unless
/// `make_do`, which skips it.
fn listing(view: &View, want: impl Fn(&str) -> bool, make_do: bool) -> Result<Option<Listing>> {
    let mut out = Vec::new();
    for (slug, is_dir) in view.list(Path::new(""))? {
        if !is_dir || !want(&slug) {
            continue;
        }
        match view.list(Path::new(&slug)) {
            Ok(mut entries) => {
                entries.sort();
                out.push((slug, entries));
            }
            Err(e)
                if e.root_cause()
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) =>
            {
                if !make_do {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(Some(out))
}

/// What [`collect`] knows while it lists: this machine, the store's view of every machine, and
/// the files.
struct Seen<'a> {
    machine: &'a ferry_sync::store::MachineRecord,
    links: &'a [ferry_sync::project_key::Link],
    view: &'a View,
    foreign: &'a ferry_fs::foreign::Foreign,
    placed: &'a HashMap<String, ferry_sync::store::ProjectRecord>,
    /// (key, rel) -> every machine's (name, mtime, git state) for it.
    versions: &'a HashMap<(String, String), Vec<Known>>,
}

impl Seen<'_> {
    /// The session whose transcript is `name` in project directory `slug`, if it is one.
    fn session(&self, slug: &str, name: &str) -> Option<Session> {
        let id = name.strip_suffix(".jsonl")?;
        let rel = Path::new(slug).join(name);
        let ((head, tail), mtime) = head_and_tail(self.view, &rel).ok()?;
        // As Claude Code lists sessions: the first and last 64 KiB only.
        let mut summary = summarise(&head);
        let last = summarise(&tail);
        summary.title = last.title.or(summary.title);
        summary.branch = last.branch.or(summary.branch);
        summary.last_assistant = last.last_assistant.or(summary.last_assistant);
        let ended = self
            .view
            .read(&Path::new(slug).join(id).join(crate::markers::ENDED))
            .ok()
            .and_then(|(b, _)| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["ended_ms"].as_i64());
        // The marker is written after the last line; allow for the view's ms rounding.
        let open = ended.is_none_or(|e| e + 1000 < mtime);
        let project = self.project(slug, summary.cwd.as_deref());
        let project = project.as_ref();
        let key = project
            .map(|p| p.key.clone())
            .unwrap_or_else(|| format!("slug:{slug}"));
        let cwd = project
            .map(|p| p.cwd.clone())
            .or_else(|| summary.cwd.clone());
        let (last_writer, machines, newest) = self.writers(&key, name, mtime);
        let written_here = last_writer == self.machine.name;
        let path = self.view.local_path(&rel);
        let not_here = if !cwd.as_deref().is_some_and(|c| Path::new(c).is_dir()) {
            Some("no checkout of its project here")
        } else if !path.is_file() {
            Some("not mounted: `ferry mount` first, and it is there")
        } else {
            None
        };
        Some(Session {
            id: id.to_string(),
            project: key,
            path,
            resumable_here: not_here.is_none(),
            not_here,
            cwd,
            machines,
            last_writer,
            updated_ms: mtime,
            their_git: newest.and_then(|n| n.2),
            summary,
            open,
            written_here,
        })
    }

    /// The project of directory `slug` as the daemon files it: recorded, placed, else from
    /// the transcript's cwd (a session not committed yet).
    fn project(&self, slug: &str, cwd: Option<&str>) -> Option<ferry_sync::store::ProjectRecord> {
        self.foreign
            .projects_by_slug
            .get(slug)
            .or_else(|| self.placed.get(slug))
            .cloned()
            .or_else(|| {
                ferry_sync::upper::project_for_cwd(
                    slug,
                    Some(cwd?),
                    Path::new(&self.machine.home),
                    self.links,
                    false,
                )
            })
    }

    /// Who wrote transcript `name` of project `key` (modified at `mtime` here) last, every
    /// machine that has it, and the newest version's record.
    fn writers(&self, key: &str, name: &str, mtime: i64) -> (String, Vec<String>, Option<Known>) {
        let mut known = self
            .versions
            .get(&(key.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default();
        known.sort_by_key(|v| v.1);
        let newest = known.last().cloned();
        let me = &self.machine.name;
        let last_writer = match &newest {
            Some((m, t, _)) if *t >= mtime => m.clone(),
            _ => me.clone(),
        };
        let mut machines: Vec<String> = known.iter().map(|v| v.0.clone()).collect();
        if last_writer == *me && !machines.contains(me) {
            machines.push(me.clone());
        }
        machines.dedup();
        (last_writer, machines, newest)
    }
}

/// One listing; `None` if the view changed while it ran, unless `make_do`, which takes it as
/// it is (a directory gone meanwhile skipped).
fn collect_once(
    st: &State,
    want: &impl Fn(&str, Option<&str>) -> bool,
    make_do: bool,
) -> Result<Option<Vec<Session>>> {
    let config = st.config()?;
    let machine = state::machine_record(&config)?;
    let links = crate::projects::load_links(st)?;
    let store = st.open_store()?;
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
    let key_of = |slug: &str| {
        foreign
            .projects_by_slug
            .get(slug)
            .or_else(|| placed.get(slug))
            .map(|p| p.key.as_str())
    };
    // Listed twice: a listing taken while the view moved a project differs from the next one.
    let take = || listing(&view, |slug| want(slug, key_of(slug)), make_do);
    let dirs = match (take()?, make_do) {
        (Some(a), true) => a,
        (Some(a), false) => match take()? {
            Some(b) if a == b => b,
            _ => return Ok(None),
        },
        (None, _) => return Ok(None),
    };
    let known = Seen {
        machine: &machine,
        links: &links,
        view: &view,
        foreign: &foreign,
        placed: &placed,
        versions: &versions,
    };
    let mut out = Vec::new();
    for (slug, entries) in &dirs {
        for (name, is_dir) in entries {
            if *is_dir {
                continue;
            }
            out.extend(known.session(slug, name));
        }
    }
    // And once more after reading: a project the view moved meanwhile (a client starting in a
    // checkout adopts it) had its transcripts gone from under the names just listed, and
    // they were skipped. (The SessionStart note once missed the only session so.)
    if !make_do && take()?.as_ref() != Some(&dirs) {
        return Ok(None);
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.updated_ms));
    Ok(Some(out))
}

/// `ferry sessions`.
pub fn list(ctx: &Ctx, machine: Option<String>, project: Option<String>, open: bool) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let sessions: Vec<Session> = collect(st)?
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
    let rows: Vec<Value> = sessions.iter().map(Session::json).collect();
    ui.out(&json!({"sessions": rows}), || {
        if sessions.is_empty() {
            return "no sessions".into();
        }
        let mut t = String::new();
        for s in &sessions {
            let what = s
                .summary
                .title
                .clone()
                .or_else(|| s.summary.first_prompt.clone())
                .unwrap_or_default();
            t += &format!(
                "{}  {:<12} by {:<10} {}{}\n    {}{}  {}\n",
                s.id,
                ago(Some(s.updated_ms)),
                s.last_writer,
                s.project,
                s.summary
                    .branch
                    .as_deref()
                    .map_or(String::new(), |b| format!(" [{b}]")),
                s.not_here.unwrap_or("resumable here"),
                if s.open { ", open (never ended)" } else { "" },
                clip(&what, 80)
            );
        }
        t
    });
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

/// What a brief says of the work, from the transcript alone.
struct Work {
    done: Vec<String>,
    in_progress: Vec<String>,
    next: Vec<String>,
}

/// The work of a session: its to-do list if it kept one, else what its tools changed and ran;
/// a call it stopped in; else its last request.
fn work(summary: &Summary) -> Work {
    let with = |status: &str| -> Vec<String> {
        summary
            .todos
            .iter()
            .filter(|(_, s)| s == status)
            .map(|(t, _)| t.clone())
            .collect()
    };
    let mut done = with("completed");
    if summary.todos.is_empty() {
        done.extend(
            summary
                .edited
                .iter()
                .take(10)
                .map(|f| format!("changed {f}")),
        );
        done.extend(summary.commands.iter().map(|c| format!("ran `{c}`")));
    }
    let mut in_progress = with("in_progress");
    if let Some(call) = &summary.unanswered {
        in_progress.push(format!("stopped while running {call}"));
    }
    if in_progress.is_empty()
        && let Some(p) = summary.prompts.last()
    {
        in_progress.push(format!("the last request: {}", clip(p, 200)));
    }
    Work {
        done,
        in_progress,
        next: with("pending"),
    }
}

/// What `ferry handoff` tells: the session, its work, both checkouts, the last exchange.
struct Brief<'a> {
    s: &'a Session,
    summary: &'a Summary,
    task: Option<String>,
    work: Work,
    their_git: Option<GitState>,
    here: Option<GitState>,
    resume: Option<String>,
}

/// `ferry handoff SESSION`: a brief for picking the work up on this machine.
pub fn handoff(id: &str, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let all = collect(st)?;
    let s = find(&all, id)?;
    // The brief reads the whole transcript, not just the ends a listing reads.
    let machine = state::machine_record(&st.config()?)?;
    let view = View::open(st, &machine)?;
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
    // Where the writer's checkout stood at the session's last Stop (ferry's hook records it),
    // else at the writer's last start.
    let checkout = rel.with_extension("").join(crate::markers::CHECKOUT);
    let their_git: Option<GitState> = view
        .read(&checkout)
        .ok()
        .and_then(|(b, _)| serde_json::from_slice(&b).ok())
        .or_else(|| s.their_git.clone());
    let summary = full.as_ref().unwrap_or(&s.summary);
    let brief = Brief {
        s,
        summary,
        task: s
            .summary
            .title
            .clone()
            .or_else(|| summary.first_prompt.clone()),
        work: work(summary),
        their_git,
        here: s.cwd.as_deref().and_then(|c| git_state(Path::new(c))),
        resume: s.resumable_here.then(|| {
            format!(
                "cd {} && claude --resume {}",
                s.cwd.as_deref().unwrap_or("."),
                s.id
            )
        }),
    };
    let doc = json!({
        "session": s.json(), "task": brief.task, "done": brief.work.done,
        "in_progress": brief.work.in_progress, "next_steps": brief.work.next,
        "files_touched": summary.files, "files_changed": summary.edited,
        "last_exchange": {"user": summary.prompts.last(), "assistant": summary.last_assistant},
        "their_checkout": brief.their_git, "this_checkout": brief.here, "resume": brief.resume,
    });
    ui.out(&doc, || brief_text(&brief));
    Ok(())
}

/// The brief as Markdown.
fn brief_text(b: &Brief) -> String {
    use std::fmt::Write;
    let (s, summary) = (b.s, b.summary);
    let mut t = format!("# Handoff: session {}\n\n", s.id);
    let _ = writeln!(
        t,
        "Project {} — last written by {} {}.",
        s.project,
        s.last_writer,
        ago(Some(s.updated_ms))
    );
    let _ = writeln!(
        t,
        "Task: {}",
        b.task
            .as_deref()
            .map_or("(no prompt yet)".into(), |x| clip(x, 300))
    );
    let mut section = |title: &str, items: &[String], none: &str| {
        let _ = writeln!(t, "\n## {title}");
        if items.is_empty() {
            let _ = writeln!(t, "- {none}");
        }
        for i in items {
            let _ = writeln!(t, "- {}", clip(i, 200));
        }
    };
    section("What was done", &b.work.done, "nothing recorded");
    section("In progress", &b.work.in_progress, "nothing recorded");
    section(
        "Next steps",
        &b.work.next,
        "none recorded: go on from the last exchange below",
    );
    section("Files touched", &summary.files, "none recorded");
    checkouts_text(b, &mut t);
    let _ = writeln!(t, "\n## Last exchange");
    let _ = writeln!(
        t,
        "User: {}",
        summary
            .prompts
            .last()
            .map_or("(none)".into(), |p| clip(p, 400))
    );
    let _ = writeln!(
        t,
        "Claude: {}\n",
        summary
            .last_assistant
            .as_deref()
            .map_or("(none)".into(), |x| clip(x, 600))
    );
    t += &match (&b.resume, s.not_here) {
        (Some(r), _) => format!("Resume here: {r}"),
        (None, Some(why)) if why.starts_with("not mounted") => format!(
            "Not resumable here yet: {why}; then `cd {} && claude --resume {}`. Or continue from this brief.",
            s.cwd.as_deref().unwrap_or("."),
            s.id
        ),
        (None, _) => format!(
            "No checkout of {} here: clone it, `ferry link` it, then `claude --resume {}` in it; or continue from this brief.",
            s.project, s.id
        ),
    };
    t
}

/// Where the writer's checkout and this one stand.
fn checkouts_text(b: &Brief, t: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(t, "\n## Checkouts");
    let show = |g: &Option<GitState>| match g {
        Some(g) => format!(
            "branch {}, commit {}, {} dirty file(s)",
            g.branch.as_deref().unwrap_or("(detached)"),
            g.commit.as_deref().map_or("-", |c| &c[..c.len().min(12)]),
            g.dirty.len()
        ),
        None => "unknown".into(),
    };
    let theirs = match (&b.their_git, &b.summary.branch) {
        (None, Some(br)) => format!(
            "branch {br} (from the transcript; `ferry hooks install` there records the commit too)"
        ),
        _ => show(&b.their_git),
    };
    let _ = writeln!(t, "- {}: {theirs}", b.s.last_writer);
    let _ = writeln!(
        t,
        "- here ({}): {}",
        b.s.cwd.as_deref().unwrap_or("no checkout"),
        show(&b.here)
    );
    if let (Some(x), Some(h)) = (&b.their_git, &b.here)
        && (x.commit != h.commit || x.branch != h.branch)
    {
        let _ = writeln!(
            t,
            "- the checkouts differ: bring this one to {} first",
            show(&b.their_git)
        );
    }
}
