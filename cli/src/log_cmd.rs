//! `ferry log [-n N]`: what sync did, newest last: this machine's commits (from the store) and
//! the daemon's notes of fetches, pushes, errors and stops (from `ferry.log` and its rotated
//! files; debug lines left out), merged by time.

use crate::command::Ctx;
use crate::state::State;
use anyhow::Result;
use serde::Serialize;

/// One thing that happened.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Event {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// `commit`, or the log level: `info`, `warn`, `error`.
    pub kind: String,
    /// What.
    pub message: String,
}

/// Runs `ferry log`: the last `n` events.
pub fn run(n: usize, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let mut events = commits(st, &config.machine_id, n);
    for path in log_files(st) {
        if let Ok(text) = std::fs::read_to_string(&path) {
            events.extend(text.lines().filter_map(parse_line));
        }
    }
    events.sort_by_key(|e| e.at_ms);
    let skip = events.len().saturating_sub(n);
    let events = &events[skip..];
    ui.out(&serde_json::json!({"events": events}), || {
        if events.is_empty() {
            return "nothing yet: no commit, and no daemon has run".into();
        }
        events
            .iter()
            .map(|e| {
                let at = jiff::Timestamp::from_millisecond(e.at_ms)
                    .map(|t| {
                        t.to_zoned_datetime(jiff::tz::TimeZone::system())
                            .strftime("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_default();
                format!("{at}  {:<6} {}\n", e.kind, e.message)
            })
            .collect()
    });
    Ok(())
}

/// The last `n` commits of this machine's branch.
fn commits(st: &State, me: &str, n: usize) -> Vec<Event> {
    let Ok(store) = st.open_store() else {
        return Vec::new();
    };
    let Ok(Some(head)) = store.head(me, true) else {
        return Vec::new();
    };
    let repo = store.repo();
    let Ok(mut walk) = repo.revwalk() else {
        return Vec::new();
    };
    if walk.push(head).is_err() {
        return Vec::new();
    }
    walk.take(n)
        .flatten()
        .filter_map(|id| repo.find_commit(id).ok())
        .map(|c| Event {
            at_ms: c.time().seconds() * 1000,
            kind: "commit".into(),
            message: format!(
                "{} {}",
                &c.id().to_string()[..12],
                c.summary().ok().flatten().unwrap_or_default()
            ),
        })
        .collect()
}

/// `ferry.log` and its rotated files, oldest first.
fn log_files(st: &State) -> Vec<std::path::PathBuf> {
    let log = st.log();
    let mut out: Vec<_> = (1..=crate::logfile::KEEP)
        .rev()
        .map(|k| {
            let mut p = log.clone().into_os_string();
            p.push(format!(".{k}"));
            std::path::PathBuf::from(p)
        })
        .collect();
    out.push(log);
    out
}

/// One line of the daemon's log (`2026-12-05T13:26:36.804242Z  WARN target: message fields`),
/// unless it is a debug or trace line or not a log line at all.
fn parse_line(line: &str) -> Option<Event> {
    let (time, rest) = line.split_once(' ')?;
    let at = time.parse::<jiff::Timestamp>().ok()?;
    let rest = rest.trim_start();
    let (level, rest) = rest.split_once(' ')?;
    let kind = match level {
        "INFO" | "WARN" | "ERROR" => level.to_ascii_lowercase(),
        _ => return None,
    };
    // The target (`ferry::daemon:`) says where, not what.
    let message = match rest.split_once(": ") {
        Some((target, m)) if !target.contains(' ') => m,
        _ => rest,
    };
    Some(Event {
        at_ms: at.as_millisecond(),
        kind,
        message: message.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn log_lines_become_events_and_debug_lines_do_not() {
        let e = parse_line("2026-12-05T13:26:36.804Z  WARN ferry_sync::engine::transfer: remote failed; working offline error=fetch x")
            .unwrap();
        assert_eq!(e.kind, "warn");
        assert_eq!(e.message, "remote failed; working offline error=fetch x");
        assert_eq!(e.at_ms, 1_796_477_196_804);
        assert!(parse_line("2026-12-05T13:26:36.804Z DEBUG ferry_fs: x").is_none());
        assert!(parse_line("ferry: mounted /home/a/.claude/projects").is_none());
    }
}
