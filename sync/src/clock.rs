//! Other machines' clocks. File times in a machine's branch are that machine's own clock
//! readings, and newest-wins choices and Claude Code's session order both compare them with
//! this machine's. A machine whose clock runs hours ahead would win every newest-wins choice
//! and keep its sessions at the top of the list until real time caught up, so its times are
//! brought onto this machine's clock before anything compares them.

use crate::store::Snapshot;
use std::collections::HashMap;

/// Per machine id, how far (ms) its clock has been seen running ahead of this one. Kept
/// across refreshes by the daemon, so an estimate only grows: a lead is seen best just after
/// the machine commits.
pub type Skews = HashMap<String, i64>;

/// Moves other machines' file times in `snaps` onto this machine's clock, `now_ms` being its
/// time now: a commit time (the machine record's `last_seen_ms`) later than now means the
/// writer's clock runs ahead by at least that much, so its times move back by the largest lead
/// seen. The viewer's own branch is left alone. A single file dated after its own commit is not
/// clamped: the view's newest-wins rules (and their reference model) treat file times as given.
pub fn sanitise(snaps: &mut [Snapshot], viewer: &str, now_ms: i64, skews: &mut Skews) {
    for s in snaps.iter_mut().filter(|s| s.machine.id != viewer) {
        let committed = s.machine.last_seen_ms;
        // A record without a commit time (older branches) gives no bound.
        if committed <= 0 {
            continue;
        }
        let skew = skews.entry(s.machine.id.clone()).or_insert(0);
        *skew = (*skew).max(committed - now_ms);
        for f in &mut s.files {
            f.meta.mtime_ms -= *skew;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Skews, sanitise};
    use crate::store::Snapshot;
    use crate::store::{FileEntry, FileMeta, FileState, MachineRecord, ProjectRecord, RelPath};

    const HOUR: i64 = 3_600_000;

    fn snap(id: &str, committed: i64, mtimes: &[i64]) -> Snapshot {
        let machine = MachineRecord {
            id: id.into(),
            name: id.into(),
            os: "linux".into(),
            home: "/home/x".into(),
            tmp: "/tmp".into(),
            claude_dir: "/home/x/.claude".into(),
            claude_tmp: "/tmp/claude".into(),
            last_seen_ms: committed,
        };
        let project = ProjectRecord {
            key: "p".into(),
            root: "/home/x/p".into(),
            cwd: "/home/x/p".into(),
            slug: "-home-x-p".into(),
            git: None,
        };
        let files = mtimes
            .iter()
            .map(|&m| FileEntry {
                project: project.clone(),
                rel: RelPath::new("s.jsonl").unwrap(),
                meta: FileMeta {
                    mtime_ms: m,
                    mode: 0o600,
                    len: 1,
                    lines: true,
                    state: FileState::Present,
                },
                tree: git2::Oid::ZERO_SHA1,
            })
            .collect();
        Snapshot {
            commit: git2::Oid::ZERO_SHA1,
            machine,
            files,
            rejected: Vec::new(),
        }
    }

    fn mtimes(s: &Snapshot) -> Vec<i64> {
        s.files.iter().map(|f| f.meta.mtime_ms).collect()
    }

    #[test]
    fn a_clock_ahead_is_brought_back_and_the_estimate_only_grows() {
        let now = 1_000 * HOUR;
        // "ahead" committed 3 h in our future, its files 3 h ahead too; "fair" keeps time;
        // "me" is the viewer and is left alone.
        let mut snaps = vec![
            snap("ahead", now + 3 * HOUR, &[now + 3 * HOUR, now + 2 * HOUR]),
            snap("fair", now - HOUR, &[now - 2 * HOUR, now - HOUR]),
            snap("me", now + 9 * HOUR, &[now + 9 * HOUR]),
        ];
        let mut skews = Skews::new();
        sanitise(&mut snaps, "me", now, &mut skews);
        assert_eq!(mtimes(&snaps[0]), [now, now - HOUR]);
        assert_eq!(mtimes(&snaps[1]), [now - 2 * HOUR, now - HOUR]);
        assert_eq!(mtimes(&snaps[2]), [now + 9 * HOUR]);
        assert_eq!(skews["ahead"], 3 * HOUR);
        assert_eq!(skews["fair"], 0);

        // An hour later, with no new commit from "ahead": its lead looks like 2 h now, but
        // the 3 h seen before still applies, so its session does not drift into the future.
        let later = now + HOUR;
        let mut again = vec![snap("ahead", now + 3 * HOUR, &[now + 3 * HOUR])];
        sanitise(&mut again, "me", later, &mut skews);
        assert_eq!(mtimes(&again[0]), [now]);
        assert_eq!(skews["ahead"], 3 * HOUR);
    }

    #[test]
    fn a_record_without_a_commit_time_is_left_as_it_is() {
        let mut snaps = vec![snap("old", 0, &[42])];
        sanitise(&mut snaps, "me", 1_000, &mut Skews::new());
        assert_eq!(mtimes(&snaps[0]), [42]);
    }
}
