//! `ferry restore PATH [--at TIME|COMMIT] [--machine M] [--list]`: brings back a deleted or
//! overwritten file from any machine's history. PATH is inside Claude Code's `projects/`
//! (absolute, or relative to it). The chosen version is expanded for this machine and written
//! through the view, so it is committed and shows again everywhere.

use crate::state::{self, State};
use anyhow::{Context, Result, bail};
use ferry_sync::codec::{Codec, Format};
use ferry_sync::store::{FileState, HistoryEntry, RelPath, Store, mapping_for};
use ferry_sync::view::snapshots;
use serde_json::json;
use std::path::{Component, Path, PathBuf};

/// Seconds since the epoch of `YYYY-MM-DD[THH:MM[:SS]]` (UTC), or of a plain number.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00"));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .trim_end_matches('Z')
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [y, m, day] = d[..] else { return None };
    let (hh, mm, ss) = (
        t.first().copied()?,
        t.get(1).copied().unwrap_or(0),
        t.get(2).copied().unwrap_or(0),
    );
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
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

/// Runs `ferry restore`.
pub fn run(
    path: PathBuf,
    at: Option<String>,
    machine_filter: Option<String>,
    list: bool,
    json_out: bool,
) -> Result<()> {
    let st = State::locate()?;
    let config = st.config()?;
    let me = state::machine_record(&config)?;
    let mountpoint = state::mount_point()?;
    let rel_path = view_path(&path, &mountpoint)?;
    let slug = rel_path
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or_default()
        .to_string();
    let rest: PathBuf = rel_path.components().skip(1).collect();
    let rel = RelPath::new(rest.to_str().context("the path is not valid UTF-8")?)?;
    let store = Store::init(&st.store())?;
    let snaps = snapshots(&store, &me.id)?;
    let links = crate::projects::load_links(&st)?;
    let foreign = crate::projects::foreign_view(&st, &snaps, &me, &links);
    let Some(project) = foreign.projects_by_slug.get(&slug).cloned() else {
        bail!("no machine has recorded project directory {slug}; `ferry projects` lists them");
    };
    let mut versions: Vec<(String, HistoryEntry)> = Vec::new();
    for s in &snaps {
        if machine_filter
            .as_ref()
            .is_some_and(|m| *m != s.machine.name && *m != s.machine.id)
        {
            continue;
        }
        // Every place of the project on that machine (a checkout, its worktrees, ...).
        let places: std::collections::BTreeSet<_> = s
            .files
            .iter()
            .filter(|f| f.project.key == project.key)
            .map(|f| f.project.place())
            .collect();
        for place in places {
            for h in store.history(s.commit, &place, &rel, 200)? {
                versions.push((s.machine.name.clone(), h));
            }
        }
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.1.time));
    if versions.is_empty() {
        bail!("no history of {} in project {}", rel.as_str(), project.key);
    }
    if list {
        if json_out {
            let rows: Vec<_> = versions
                .iter()
                .map(|(m, h)| json!({"machine": m, "commit": h.commit.to_string(), "time": h.time,
                    "present": h.file.meta.state == FileState::Present, "mtime_ms": h.file.meta.mtime_ms, "len": h.file.meta.len}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            for (m, h) in &versions {
                let state = match h.file.meta.state {
                    FileState::Present => format!("{} bytes", h.file.meta.len),
                    FileState::Deleted { .. } => "deleted".into(),
                    FileState::Hidden { .. } => "hidden here".into(),
                };
                println!(
                    "{}  {}  {:<12} {}",
                    &h.commit.to_string()[..12],
                    crate::status::ago(Some(h.time * 1000)),
                    m,
                    state
                );
            }
        }
        return Ok(());
    }
    let present = versions
        .iter()
        .filter(|(_, h)| h.file.meta.state == FileState::Present);
    let chosen = match at.as_deref() {
        // A commit (prefix) first: a plain number may be either.
        Some(a) => match present.clone().find(|(_, h)| {
            a.len() >= 4
                && a.chars().all(|c| c.is_ascii_hexdigit())
                && h.commit.to_string().starts_with(a)
        }) {
            Some(found) => found,
            None => {
                let t = parse_time(a).with_context(|| {
                    format!(
                        "{a:?} is neither a commit nor a time (YYYY-MM-DD[THH:MM[:SS]], UTC); see `--list`"
                    )
                })?;
                present
                    .clone()
                    .find(|(_, h)| h.time <= t)
                    .with_context(|| {
                        format!(
                            "no version of {} at or before {a}; see `--list`",
                            rel.as_str()
                        )
                    })?
            }
        },
        None => present
            .clone()
            .next()
            .context("every recorded version is a deletion; nothing to restore")?,
    };
    let (from, entry) = chosen;
    let portable = store.read(&entry.file)?;
    let mapping = match foreign.placements.get(&project.key) {
        Some(p) => p.mapping.clone(),
        None => mapping_for(&me, &project)?,
    };
    let name = rel.as_str().rsplit('/').next().unwrap_or_default();
    let bytes = Codec::new(&mapping).expand(&portable, Format::for_file_name(name));
    // Through the mount when it is live (a write like any other), else into the directory.
    let target = mountpoint.join(&rel_path);
    // A transcript that is still there keeps every line it has now: the restored version's
    // lines are merged in, never written over the current ones.
    let bytes = match std::fs::read(&target) {
        Ok(current) if rel.is_lines() => ferry_sync::merge::merge_lines(&[&bytes, &current]),
        _ => bytes,
    };
    crate::state::write_private(&target, &bytes)?;
    if json_out {
        println!(
            "{}",
            json!({"path": target, "machine": from, "commit": entry.commit.to_string(), "bytes": bytes.len()})
        );
    } else {
        println!(
            "restored {} ({} bytes) from {}'s version in commit {}",
            target.display(),
            bytes.len(),
            from,
            &entry.commit.to_string()[..12]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_parse_as_utc() {
        assert_eq!(super::parse_time("1970-01-01"), Some(0));
        assert_eq!(super::parse_time("2000-03-01T12:30"), Some(951_913_800));
        assert_eq!(
            super::parse_time("2026-11-22T06:47:16Z"),
            Some(1_795_330_036)
        );
        assert_eq!(super::parse_time("12345"), Some(12345));
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
