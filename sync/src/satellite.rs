//! Session satellites: the files Claude Code keeps outside `projects/` for a session (its
//! file-history checkpoints, task list, to-dos and plan) and the prompt history. They travel in
//! the store inside their session's place, under [`PREFIX`], and appear on every machine where
//! Claude Code looks for them (see `doc/SEMANTICS.md`, "Session satellites").

/// The directory inside a place's file tree that holds its sessions' satellites. Claude Code
/// never writes such a name inside a project directory, and the view never shows it there.
pub const PREFIX: &str = ".ferry-sat";

/// The prompt history's path inside a place: this place's entries of `history.jsonl`.
pub const HISTORY: &str = ".ferry-sat/history.jsonl";

/// The satellite directories of the config dir, each keyed by session in its own way.
pub const KINDS: [Kind; 4] = [Kind::FileHistory, Kind::Tasks, Kind::Todos, Kind::Plans];

/// One kind of per-session satellite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `file-history/<sid>/<hash>@v<n>`: the checkpoints `/rewind` restores code from.
    FileHistory,
    /// `tasks/<sid>/<n>.json` and `.highwatermark`: the task list.
    Tasks,
    /// `todos/<sid>-agent-<id>.json`: the older to-do list.
    Todos,
    /// `plans/<name>.md`: a plan, named by the session's plan slug.
    Plans,
}

impl Kind {
    /// The directory's name in the config dir.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::FileHistory => "file-history",
            Kind::Tasks => "tasks",
            Kind::Todos => "todos",
            Kind::Plans => "plans",
        }
    }

    /// The kind whose directory is `dir`.
    pub fn of_dir(dir: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.dir() == dir)
    }
}

/// What names a satellite's session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The session id itself.
    Session(String),
    /// A plan's name, which the session's transcript names (`"slug":"<name>"` or the plan's
    /// path).
    Plan(String),
}

/// The owner of the satellite at `path` (relative to the config dir, `/`-separated), or
/// `None` for a file that is not synced: Claude Code's lock files, anything outside the
/// satellite directories, a name that names no session.
pub fn owner_of(path: &str) -> Option<Owner> {
    let (dir, rest) = path.split_once('/')?;
    let name = rest.rsplit('/').next()?;
    if name.is_empty() || name == ".lock" || name.ends_with(".lock") || name.starts_with(".tmp") {
        return None;
    }
    match Kind::of_dir(dir)? {
        Kind::FileHistory | Kind::Tasks => {
            let (sid, file) = rest.split_once('/')?;
            (!sid.is_empty() && !file.is_empty() && !file.contains('/'))
                .then(|| Owner::Session(sid.to_string()))
        }
        Kind::Todos => {
            let stem = rest.strip_suffix(".json")?;
            let (sid, _) = stem.split_once("-agent-")?;
            (!rest.contains('/') && !sid.is_empty()).then(|| Owner::Session(sid.to_string()))
        }
        Kind::Plans => {
            let stem = rest.strip_suffix(".md")?;
            (!rest.contains('/') && !stem.is_empty()).then(|| Owner::Plan(stem.to_string()))
        }
    }
}

/// The store path (inside a place) of the satellite at config-dir path `path`.
pub fn rel_of(path: &str) -> String {
    format!("{PREFIX}/{path}")
}

/// The config-dir path of the satellite at store path `rel`, if it is one (the history is
/// not: it is merged, not placed).
pub fn path_of(rel: &str) -> Option<&str> {
    let path = rel.strip_prefix(PREFIX)?.strip_prefix('/')?;
    (rel != HISTORY && owner_of(path).is_some()).then_some(path)
}

/// Whether store path `rel` is a satellite (or a place's prompt history): kept out of the
/// view of `projects/`.
pub fn is_satellite(rel: &str) -> bool {
    rel.strip_prefix(PREFIX)
        .is_some_and(|r| r.is_empty() || r.starts_with('/'))
}

/// Whether a transcript's text names plan `name`: its plan slug or its plan file.
pub fn names_plan(text: &[u8], name: &str) -> bool {
    let slug = format!("\"slug\":\"{name}\"");
    let file = format!("plans/{name}.md");
    let has = |needle: &str| memchr::memmem::find(text, needle.as_bytes()).is_some();
    has(&slug) || has(&file)
}

/// One entry of `history.jsonl`: its bytes (without the newline), the `project` it was typed
/// in and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The line.
    pub line: &'a [u8],
    /// Its `project` field.
    pub project: Option<String>,
    /// Its `timestamp` field (ms).
    pub timestamp: Option<i64>,
    /// Its `sessionId` field.
    pub session: Option<String>,
}

impl Entry<'_> {
    /// What identifies the entry across machines and rewrites of its line: its time and
    /// session, as Claude Code itself tells entries apart (else the line's bytes).
    pub fn key(&self) -> u64 {
        use crate::store::fnv1a;
        match (self.timestamp, &self.session) {
            (Some(t), Some(s)) => fnv1a(format!("{t}\0{s}").as_bytes()),
            _ => fnv1a(self.line),
        }
    }
}

/// The entries of a history file, in file order (empty lines skipped).
pub fn entries(text: &[u8]) -> Vec<Entry<'_>> {
    #[derive(serde::Deserialize)]
    struct Fields {
        project: Option<String>,
        timestamp: Option<serde_json::Number>,
        #[serde(rename = "sessionId")]
        session: Option<String>,
    }
    text.split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|line| {
            let f = serde_json::from_slice::<Fields>(line).ok();
            Entry {
                line,
                project: f.as_ref().and_then(|f| f.project.clone()),
                session: f.as_ref().and_then(|f| f.session.clone()),
                timestamp: f
                    .and_then(|f| f.timestamp)
                    .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|x| x as i64))),
            }
        })
        .collect()
}

/// The history file with `add` merged into `local`: every entry once (by [`Entry::key`], the
/// first line of it kept), in time order. A line
/// with no readable time keeps its place after the line before it; lines of equal time keep
/// their order, local ones first.
pub fn merge_history(local: &[u8], add: &[&[u8]]) -> Vec<u8> {
    let mut all: Vec<(i64, usize, &[u8])> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut last = i64::MIN;
    let added = add.iter().flat_map(|a| entries(a));
    for (i, e) in entries(local).into_iter().chain(added).enumerate() {
        if !seen.insert(e.key()) {
            continue;
        }
        last = e.timestamp.unwrap_or(last);
        all.push((last, i, e.line));
    }
    all.sort_by_key(|&(t, i, _)| (t, i));
    let mut out = Vec::with_capacity(local.len() + add.iter().map(|a| a.len()).sum::<usize>());
    for (_, _, line) in all {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_its_session_and_locks_are_never_synced() {
        let s = |x: &str| Some(Owner::Session(x.to_string()));
        assert_eq!(owner_of("file-history/abc/82c7882df7f2bf38@v1"), s("abc"));
        assert_eq!(owner_of("tasks/abc/1.json"), s("abc"));
        assert_eq!(owner_of("tasks/abc/.highwatermark"), s("abc"));
        assert_eq!(owner_of("tasks/abc/.lock"), None);
        assert_eq!(owner_of("todos/abc-agent-abc.json"), s("abc"));
        assert_eq!(owner_of("todos/abc.json"), None);
        assert_eq!(
            owner_of("plans/happy-dancing-cat.md"),
            Some(Owner::Plan("happy-dancing-cat".into()))
        );
        assert_eq!(owner_of("plans/x.txt"), None);
        assert_eq!(owner_of("sessions/123.json"), None);
        assert_eq!(owner_of("file-history/abc"), None);
        assert_eq!(owner_of("tasks/abc/sub/1.json"), None);
    }

    #[test]
    fn store_paths_round_trip_and_stay_out_of_the_view() {
        let rel = rel_of("tasks/abc/1.json");
        assert_eq!(rel, ".ferry-sat/tasks/abc/1.json");
        assert!(is_satellite(&rel));
        assert_eq!(path_of(&rel), Some("tasks/abc/1.json"));
        assert!(is_satellite(HISTORY));
        assert_eq!(path_of(HISTORY), None);
        assert!(!is_satellite(".ferry-satx/a"));
        assert!(!is_satellite("abc.jsonl"));
        assert_eq!(path_of(".ferry-sat/sessions/1.json"), None);
    }

    #[test]
    fn a_plan_is_found_by_its_slug_or_its_path() {
        assert!(names_plan(br#"{"slug":"red-fox","x":1}"#, "red-fox"));
        assert!(names_plan(
            b"see /h/.claude/plans/red-fox.md now",
            "red-fox"
        ));
        assert!(!names_plan(br#"{"slug":"red-foxes"}"#, "red-fox"));
    }

    #[test]
    fn history_merges_every_line_once_in_time_order() {
        let local = b"{\"display\":\"b\",\"timestamp\":20,\"project\":\"/p\"}\n{\"display\":\"d\",\"timestamp\":40,\"project\":\"/p\"}\n";
        let theirs: &[u8] = b"{\"display\":\"a\",\"timestamp\":10,\"project\":\"/p\"}\n{\"display\":\"c\",\"timestamp\":30,\"project\":\"/p\"}\n{\"display\":\"d\",\"timestamp\":40,\"project\":\"/p\"}\n";
        let merged = merge_history(local, &[theirs]);
        let displays: Vec<String> = entries(&merged)
            .iter()
            .map(|e| {
                serde_json::from_slice::<serde_json::Value>(e.line).unwrap()["display"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(displays, ["a", "b", "c", "d"]);
        // A line with no time stays after the line before it; nothing is dropped.
        let odd = b"{\"timestamp\":50}\nnot json\n";
        let merged = merge_history(odd, &[b"{\"timestamp\":45}\n"]);
        assert_eq!(
            merged,
            b"{\"timestamp\":45}\n{\"timestamp\":50}\nnot json\n".to_vec()
        );
    }
}
