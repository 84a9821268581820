//! `ferry restore PATH [--at TIME|COMMIT] [--machine M] [--list]`: brings back a deleted or
//! overwritten file from any machine's history. PATH is inside Claude Code's `projects/`
//! (absolute, or relative to it), or a session satellite in the config dir (a checkpoint,
//! task, to-do or plan). The chosen version is expanded for this machine and written through
//! the view (a satellite in its place, where the daemon's mirror takes it up), so it is
//! committed and shows again everywhere.

use crate::command::Ctx;
use crate::state::{self};
use crate::ui::Ui;
use anyhow::{Context, Result, bail};
use ferry_sync::codec::{Codec, Format};
use ferry_sync::engine::History;
use ferry_sync::store::{FileState, HistoryEntry, RelPath, mapping_for};
use ferry_sync::view::snapshots;
use serde_json::json;
use std::path::{Component, Path, PathBuf};

/// Seconds since the epoch of a time as people type it: `YYYY-MM-DD[THH:MM[:SS]]` in this
/// machine's time zone, the same with `Z` or an offset (`+01:00`), or `@SECONDS`.
pub fn parse_time(text: &str) -> Result<i64> {
    let bad = || {
        format!(
            "{text:?} is not a time: give YYYY-MM-DD[THH:MM[:SS]] (local time; add Z or +HH:MM for another zone) or @SECONDS"
        )
    };
    if let Some(n) = text.strip_prefix('@') {
        return n.parse().with_context(bad);
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    let civil = text
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| {
            text.parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .with_context(bad)?;
    let zoned = jiff::tz::TimeZone::system()
        .to_zoned_datetime(civil)
        .with_context(bad)?;
    Ok(zoned.timestamp().as_second())
}

/// PATH as a path inside `projects/`.
fn view_path(path: &Path, mountpoint: &Path) -> Result<PathBuf> {
    let rel = if path.is_absolute() {
        // The file may be gone: resolve its parent only as far as it exists.
        path.strip_prefix(mountpoint)
            .map(Path::to_path_buf)
            .with_context(|| format!("{} is not inside {}", path.display(), mountpoint.display()))?
    } else {
        path.to_path_buf()
    };
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || rel.components().count() < 2
    {
        bail!(
            "give a file inside a project directory of {}",
            mountpoint.display()
        );
    }
    Ok(rel)
}

/// The file a restore is about, found in the store.
struct Target {
    store: ferry_sync::store::Store,
    snaps: Vec<ferry_sync::store::Snapshot>,
    project: ferry_sync::store::ProjectRecord,
    /// Its mapping on this machine.
    mapping: ferry_sync::codec::Mapping,
    /// Inside the project directory.
    rel: RelPath,
    /// Where it is written: through the mount when it is live, else into the directory.
    path: PathBuf,
}

/// Runs `ferry restore`.
pub fn run(
    path: PathBuf,
    at: Option<String>,
    machine_filter: Option<String>,
    list: bool,
    ctx: &Ctx,
) -> Result<()> {
    let ui = &ctx.ui;
    let mut t = target(ctx, &path)?;
    // Only for a path that names something: a store holding only the tips fetches the rest.
    match fetch_history(ctx, &t.store)? {
        Fetched::Complete => {}
        Fetched::Now => t = target(ctx, &path)?,
        Fetched::Not(why) => ui.note(format!(
            "only the versions this machine holds were looked at; older ones, where their machine keeps them, are on the remote ({why})"
        )),
    }
    let versions = versions(&t, machine_filter.as_deref())?;
    let folded = folded(&t, &versions, ctx)?;
    if list {
        print_versions(&versions, ui);
        if let Some(f) = &folded {
            ui.note(&f.said);
        }
        return Ok(());
    }
    let present = versions
        .iter()
        .filter(|(_, h)| h.file.meta.state == FileState::Present);
    let (from, entry) = match at.as_deref() {
        Some(a) => match choose(present, a, t.rel.as_str()) {
            Ok(v) => v,
            // A time before a machine's history was folded: say so, not only "no version".
            Err(e) => match (&folded, parse_time(a)) {
                (Some(f), Ok(secs)) if secs.saturating_mul(1000) < f.since_ms => {
                    bail!("no version of {} at or before {a}: {}", t.rel, f.said)
                }
                _ => return Err(e),
            },
        },
        None => present
            .clone()
            .next()
            .context("every recorded version is a deletion; nothing to restore")?,
    };
    let (bytes, restored) = write_back(&t, entry)?;
    let short = &entry.commit.to_string()[..12];
    let doc = json!({"path": t.path, "machine": from, "commit": entry.commit.to_string(),
        "bytes": bytes, "restored": restored});
    ui.out(&doc, || {
        if restored {
            format!(
                "restored {} ({bytes} bytes) from {from}'s version in commit {short}",
                t.path.display(),
            )
        } else {
            format!(
                "nothing to restore: {} already holds every line of {from}'s version in commit {short}",
                t.path.display()
            )
        }
    });
    Ok(())
}

/// Where the history looked at ends because it was folded (the horizon).
struct Folded {
    /// The newest time before which some machine's versions were folded away, in ms.
    since_ms: i64,
    /// That, in words.
    said: String,
}

/// Whether the history of a machine that has `versions` of the file was folded, and since
/// when (the newest such fold).
fn folded(t: &Target, versions: &[(String, HistoryEntry)], ctx: &Ctx) -> Result<Option<Folded>> {
    let mut newest: Option<(i64, &str)> = None;
    for s in &t.snaps {
        if !versions.iter().any(|(m, _)| *m == s.machine.name) {
            continue;
        }
        if let Some(since) = t.store.folded_since(s.commit)?
            && newest.is_none_or(|(n, _)| since > n)
        {
            newest = Some((since, &s.machine.name));
        }
    }
    let kept = match ctx.config()?.history_days {
        0 => "this machine keeps every version now".to_string(),
        1 => "1 day here; a larger N keeps more from then on, 0 keeps all".to_string(),
        n => format!("{n} days here; a larger N keeps more from then on, 0 keeps all"),
    };
    Ok(newest.map(|(since_ms, name)| {
        let when = jiff::Timestamp::from_millisecond(since_ms)
            .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| since_ms.to_string());
        Folded {
            since_ms,
            said: format!(
                "history before {when} was folded away on {name} (a machine keeps the days its `ferry init --history-days N` sets: {kept})"
            ),
        }
    }))
}

/// Whether a store holds every machine's history.
enum Fetched {
    /// It held it already.
    Complete,
    /// It held only the tips and has the rest now.
    Now,
    /// It holds only the tips, and why the rest could not be fetched.
    Not(String),
}

/// A store that holds only the tips of other machines' branches (a machine set up after them
/// fetches no more) gets the rest of their history.
fn fetch_history(ctx: &Ctx, store: &ferry_sync::store::Store) -> Result<Fetched> {
    if !store.repo().is_shallow() {
        return Ok(Fetched::Complete);
    }
    let Some(url) = ctx.config()?.remote.clone() else {
        return Ok(Fetched::Not(
            "no remote is set: `ferry remote set URL` sets one".into(),
        ));
    };
    ctx.ui.note("fetching older history from the remote");
    let sealing = crate::keys::sealing(ctx.state()?, ctx.config()?)?;
    let fetched =
        crate::transfer_bar::fetch_shown(ctx, store, &url, History::All, sealing.as_deref());
    Ok(match fetched {
        Ok(unopened) if unopened.is_empty() => Fetched::Now,
        Ok(unopened) => Fetched::Not(format!(
            "some branches did not open: {}",
            unopened.join("; ")
        )),
        Err(e) => Fetched::Not(format!("it could not be reached: {}", e.message)),
    })
}

/// PATH as a file of a project in the store.
fn target(ctx: &Ctx, path: &Path) -> Result<Target> {
    let me = ctx.machine()?;
    let mountpoint = state::mount_point()?;
    if let Some(t) = satellite_target(ctx, path, &mountpoint)? {
        return Ok(t);
    }
    let rel_path = view_path(path, &mountpoint)?;
    let slug = rel_path
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or_default()
        .to_string();
    let rest: PathBuf = rel_path.components().skip(1).collect();
    let rel = RelPath::new(rest.to_str().context("the path is not valid UTF-8")?)?;
    let (store, snaps, foreign) = open(ctx)?;
    let Some(project) = foreign.projects_by_slug.get(&slug).cloned() else {
        bail!("no machine has recorded project directory {slug}; `ferry projects` lists them");
    };
    let mapping = match foreign.placements.get(&project.key) {
        Some(p) => p.mapping.clone(),
        None => mapping_for(&me, &project)?,
    };
    Ok(Target {
        store,
        snaps,
        project,
        mapping,
        rel,
        path: mountpoint.join(&rel_path),
    })
}

/// The store, every machine's snapshot and the view of them, as a restore reads them.
fn open(
    ctx: &Ctx,
) -> Result<(
    ferry_sync::store::Store,
    Vec<ferry_sync::store::Snapshot>,
    ferry_fs::foreign::Foreign,
)> {
    let (st, me) = (ctx.state()?, ctx.machine()?);
    let store = st.open_store()?;
    let snaps = snapshots(&store, &me.id)?;
    let foreign = crate::projects::foreign_view(st, &snaps, &me, ctx.links()?);
    Ok((store, snaps, foreign))
}

/// PATH as a session satellite in the config dir (`~/.claude/tasks/<sid>/1.json`, or relative
/// to the current directory), filed in the store under its session's place; `None` for any
/// other path.
fn satellite_target(ctx: &Ctx, path: &Path, mountpoint: &Path) -> Result<Option<Target>> {
    let config_dir = state::config_dir()?;
    let path = match path.is_relative() {
        true => std::env::current_dir()?.join(path),
        false => path.to_path_buf(),
    };
    let Some(inside) = path
        .strip_prefix(&config_dir)
        .ok()
        .filter(|_| !path.starts_with(mountpoint))
    else {
        return Ok(None);
    };
    let parts: Option<Vec<&str>> = inside
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    let inside = parts.context("the path is not valid UTF-8")?.join("/");
    if ferry_sync::satellite::owner_of(&inside).is_none() {
        bail!(
            "{} is not a file ferry keeps: give a session file under {}, or a checkpoint, task, to-do or plan of the config dir",
            path.display(),
            mountpoint.display()
        );
    }
    let rel = RelPath::new(&ferry_sync::satellite::rel_of(&inside))?;
    let me = ctx.machine()?;
    let (store, snaps, foreign) = open(ctx)?;
    // Its session's project: this machine's own record of it first.
    let Some((owner, project)) = snaps
        .iter()
        .flat_map(|s| s.files.iter().map(move |f| (s, f)))
        .filter(|(_, f)| f.rel == rel)
        .min_by_key(|(s, _)| s.machine.id != me.id)
        .map(|(s, f)| (s.machine.id.clone(), (*f.project).clone()))
    else {
        bail!(
            "no machine has recorded {}: ferry keeps a session's checkpoints, tasks and plans while mounted, once the session's transcript is in {} (check the name with `ls {}`)",
            path.display(),
            mountpoint.display(),
            path.parent().unwrap_or(&config_dir).display()
        );
    };
    let mapping = match foreign.placements.get(&project.key) {
        Some(p) if owner != me.id => p.mapping.clone(),
        _ => mapping_for(&me, &project)?,
    };
    Ok(Some(Target {
        store,
        snaps,
        project,
        mapping,
        rel,
        path,
    }))
}

/// Every version of the file in every machine's history (or one machine's), newest first.
fn versions(t: &Target, machine: Option<&str>) -> Result<Vec<(String, HistoryEntry)>> {
    let mut versions: Vec<(String, HistoryEntry)> = Vec::new();
    for s in &t.snaps {
        if machine.is_some_and(|m| m != s.machine.name && m != s.machine.id) {
            continue;
        }
        // Every place of the project on that machine (a checkout, its worktrees, ...).
        let places: std::collections::BTreeSet<_> = s
            .files
            .iter()
            .filter(|f| f.project.key == t.project.key)
            .map(|f| f.project.place())
            .collect();
        for place in places {
            for h in t.store.history(s.commit, &place, &t.rel, 200)? {
                versions.push((s.machine.name.clone(), h));
            }
        }
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.1.time));
    if versions.is_empty() {
        bail!(
            "no history of {} in project {}",
            t.rel.as_str(),
            t.project.key
        );
    }
    Ok(versions)
}

/// `ferry restore --list`.
fn print_versions(versions: &[(String, HistoryEntry)], ui: &Ui) {
    let rows: Vec<_> = versions
        .iter()
        .map(|(m, h)| json!({"machine": m, "commit": h.commit.to_string(), "time_ms": h.time * 1000,
            "present": h.file.meta.state == FileState::Present, "mtime_ms": h.file.meta.mtime_ms, "bytes": h.file.meta.len}))
        .collect();
    ui.out(&json!({"versions": rows}), || {
        let mut text = String::new();
        for (m, h) in versions {
            let state = match h.file.meta.state {
                FileState::Present => format!("{} bytes", h.file.meta.len),
                FileState::Deleted { .. } => "deleted".into(),
                FileState::Hidden { .. } => "hidden here".into(),
            };
            text += &format!(
                "{}  {}  {:<12} {}\n",
                &h.commit.to_string()[..12],
                crate::status::ago(Some(h.time * 1000)),
                m,
                state
            );
        }
        text
    });
}

/// Writes `entry`'s version to the file, expanded for this machine; returns its size and
/// whether anything was written.
fn write_back(t: &Target, entry: &HistoryEntry) -> Result<(usize, bool)> {
    let name = t.rel.as_str().rsplit('/').next().unwrap_or_default();
    let format = Format::for_file_name(name);
    let codec = Codec::new(&t.mapping);
    let chosen = codec.expand(&t.store.read(&entry.file)?, format);
    let current = std::fs::read(&t.path).ok();
    let bytes = if t.rel.is_lines() {
        // A transcript keeps every line it has now, here and on every machine: the restored
        // version's lines are merged into all of them, never written over them.
        let mut live = Vec::new();
        for s in &t.snaps {
            for f in s.files.iter().filter(|f| {
                f.project.key == t.project.key
                    && f.rel == t.rel
                    && f.meta.state == FileState::Present
            }) {
                live.push(codec.expand(&t.store.read(f)?, format));
            }
        }
        // A line the file has keeps its bytes here: the store's copy may be redacted.
        let mut from_store = vec![chosen];
        from_store.extend(live);
        if let Some(c) = &current {
            for v in &mut from_store {
                *v = ferry_sync::merge::prefer_lines(v, c);
            }
        }
        let mut all: Vec<&[u8]> = from_store.iter().map(Vec::as_slice).collect();
        all.extend(current.as_deref());
        ferry_sync::merge::merge_lines(&all)
    } else {
        chosen
    };
    // Written unless the file holds exactly that already. A file not shown here (hidden, or
    // another machine's while unmounted) is written: with every machine's lines, so its copy
    // here is no divergent version of theirs.
    let restored = current.as_deref() != Some(&bytes[..]);
    if restored {
        // A satellite's session directory may be gone with it.
        if let Some(dir) = t.path.parent().filter(|d| !d.exists()) {
            crate::files::create_private_dir(dir)?;
        }
        crate::files::write_private(&t.path, &bytes)?;
    }
    Ok((bytes.len(), restored))
}

/// The version `at` names among `present` (newest first): a commit (a hex prefix of at least
/// 4, which must name one commit) or the newest at or before a time.
fn choose<'a>(
    present: impl Iterator<Item = &'a (String, HistoryEntry)> + Clone,
    at: &str,
    rel: &str,
) -> Result<&'a (String, HistoryEntry)> {
    let hex = at.len() >= 4 && at.chars().all(|c| c.is_ascii_hexdigit());
    if hex {
        let at = at.to_ascii_lowercase();
        let mut commits: Vec<_> = present
            .clone()
            .filter(|(_, h)| h.commit.to_string().starts_with(&at))
            .collect();
        commits.dedup_by_key(|(_, h)| h.commit);
        match commits.as_slice() {
            [one] => return Ok(one),
            [] => {}
            _ => bail!(
                "{at} names {} commits; give more of it (`--list` shows them)",
                commits.len()
            ),
        }
    }
    let t = match parse_time(at) {
        Ok(t) => t,
        // Hex that names no commit: say both what it is not.
        Err(e) if hex => bail!("{at:?} names no commit of {rel} (`--list` shows them); {e:#}"),
        Err(e) => return Err(e),
    };
    present
        .clone()
        .find(|(_, h)| h.time <= t)
        .with_context(|| format!("no version of {rel} at or before {at}; see `--list`"))
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_take_offsets_and_refuse_what_is_no_date() {
        assert_eq!(parse_time("1970-01-01T00:00Z").unwrap(), 0);
        assert_eq!(parse_time("2000-03-01T12:30Z").unwrap(), 951_913_800);
        assert_eq!(parse_time("2026-11-22T06:47:16Z").unwrap(), 1_795_330_036);
        assert_eq!(
            parse_time("2026-11-22T07:47:16+01:00").unwrap(),
            1_795_330_036
        );
        assert_eq!(parse_time("@12345").unwrap(), 12345);
        for bad in [
            "2026-13-45",
            "2026-02-30",
            "2026-11-22T25:00",
            "12345",
            "yesterday",
        ] {
            let e = parse_time(bad).unwrap_err().to_string();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_time_without_a_zone_is_local() {
        let local = jiff::tz::TimeZone::system()
            .to_zoned_datetime(jiff::civil::date(2026, 7, 1).at(12, 0, 0, 0))
            .unwrap()
            .timestamp()
            .as_second();
        assert_eq!(parse_time("2026-07-01T12:00").unwrap(), local);
        assert_eq!(parse_time("2026-07-01 12:00:00").unwrap(), local);
        assert_eq!(parse_time("2026-07-01").unwrap(), local - 12 * 3600);
    }
}
