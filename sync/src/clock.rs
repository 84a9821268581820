//! Other machines' clocks. File times in a machine's branch are that machine's own clock
//! readings, and newest-wins choices and Claude Code's session order both compare them with
//! this machine's. A machine whose clock runs hours ahead would win every newest-wins choice
//! and keep its sessions at the top of the list until real time caught up; one running hours
//! behind would lose every choice and sink its fresh sessions down the list. So its times are
//! brought onto this machine's clock before anything compares them.

use crate::store::{FileState, MachineRecord, Snapshot};
use std::collections::HashMap;

/// Per machine id, how far (ms) its clock has been seen running ahead of this one (behind when
/// negative). Kept across refreshes by the daemon, so an estimate only grows: a lead or a lag
/// is seen best just after the machine commits.
pub type Skews = HashMap<String, i64>;

/// Moves other machines' file times in `snaps` onto this machine's clock, `now_ms` being its
/// time now. The viewer's own branch is left alone. Two signs, each a lower bound:
/// - ahead: a commit time (the record's `last_seen_ms`) later than now means the writer's clock
///   runs ahead by at least that much;
/// - behind: a commit dated before a commit of this machine that the writer had already
///   fetched (`seen_ms`, in this machine's clock) means the writer's clock runs behind by at
///   least the difference. Never more than would put the commit after now, so a record that
///   lies cannot push a machine's sessions into the future.
///
/// Both file times and deletion times move: a tombstone from a machine hours ahead would
/// otherwise hide every version of the path written here for those hours.
///
/// A single file dated after its own commit is not clamped: the view's newest-wins rules (and
/// their reference model) treat file times as given.
pub fn sanitise(snaps: &mut [Snapshot], viewer: &str, now_ms: i64, skews: &mut Skews) {
    for s in snaps.iter_mut().filter(|s| s.machine.id != viewer) {
        // A record without a commit time (older branches) gives no bound.
        if s.machine.last_seen_ms <= 0 {
            continue;
        }
        note_skew(&s.machine, viewer, now_ms, skews);
        let skew = skews.get(&s.machine.id).copied().unwrap_or(0);
        let onto_ours = |t: i64| t.saturating_sub(skew);
        for f in &mut s.files {
            f.meta.mtime_ms = onto_ours(f.meta.mtime_ms);
            if let FileState::Deleted { at_ms } = &mut f.meta.state {
                *at_ms = onto_ours(*at_ms);
            }
        }
    }
}

/// Updates `skews` by what the record of another machine's branch says of its clock (see
/// [`sanitise`]); its files are not looked at, so a caller can tell from the records alone
/// whether the skews would move.
pub fn note_skew(record: &MachineRecord, viewer: &str, now_ms: i64, skews: &mut Skews) {
    let committed = record.last_seen_ms;
    if committed <= 0 {
        return;
    }
    let lead = committed - now_ms;
    let lag = record
        .seen_ms
        .get(viewer)
        .map_or(0, |&seen| (seen - committed).min(now_ms - committed));
    let skew = skews.entry(record.id.clone()).or_insert(0);
    if lead > 0 {
        *skew = (*skew).max(lead);
    } else if lag > 0 && *skew <= 0 {
        *skew = (*skew).min(-lag);
    }
}

#[cfg(test)]
mod tests {
    use super::{Skews, sanitise};
    use crate::merge::{Version, resolve};
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
            seen_ms: Default::default(),
            home_real: None,
            retired: Default::default(),
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
                project: project.clone().into(),
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
            dirs: Vec::new(),
            cut: false,
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
    fn a_clock_behind_is_brought_forward_by_what_it_had_seen_of_ours() {
        let now = 1_000 * HOUR;
        // "behind" runs 3 h slow: it fetched our commit of 10 minutes ago, then committed
        // 5 minutes ago, which its clock calls 3 h 5 min ago.
        let seen = now - HOUR / 6;
        let committed = now - HOUR / 12 - 3 * HOUR;
        let mut b = snap("behind", committed, &[committed, committed - HOUR]);
        b.machine.seen_ms.insert("me".into(), seen);
        // "liar" claims to have seen a commit of ours a day from now: never past now.
        let mut liar = snap("liar", now - 10 * HOUR, &[now - 10 * HOUR]);
        liar.machine.seen_ms.insert("me".into(), now + 24 * HOUR);
        // "other" saw another machine's commit, which says nothing about our clock.
        let mut other = snap("other", now - 4 * HOUR, &[now - 4 * HOUR]);
        other.machine.seen_ms.insert("ahead".into(), now);
        let mut snaps = vec![b, liar, other];
        let mut skews = Skews::new();
        sanitise(&mut snaps, "me", now, &mut skews);
        let lag = seen - committed;
        assert_eq!(mtimes(&snaps[0]), [committed + lag, committed + lag - HOUR]);
        assert!(
            mtimes(&snaps[0])[0] >= now - HOUR / 6 && mtimes(&snaps[0])[0] <= now,
            "the fresh session sorts as fresh"
        );
        assert_eq!(mtimes(&snaps[1]), [now]);
        assert_eq!(mtimes(&snaps[2]), [now - 4 * HOUR]);

        // Later, a commit made long after its last fetch shows a smaller lag: the larger
        // estimate stands.
        let mut again = vec![snap("behind", now - 5 * HOUR, &[now - 5 * HOUR])];
        again[0].machine.seen_ms.insert("me".into(), now - 4 * HOUR);
        sanitise(&mut again, "me", now, &mut skews);
        assert_eq!(skews["behind"], -lag);
        assert_eq!(mtimes(&again[0]), [now - 5 * HOUR + lag]);
    }

    #[test]
    fn a_deletion_from_a_clock_ahead_does_not_hide_what_is_written_after_it() {
        let now = 1_000 * HOUR;
        // "ahead" (3 h fast) deleted the session just now; then this machine writes it again.
        let mut ahead = snap("ahead", now + 3 * HOUR, &[now + 3 * HOUR]);
        ahead.files[0].meta.state = FileState::Deleted {
            at_ms: now + 3 * HOUR,
        };
        let mut snaps = vec![ahead];
        sanitise(&mut snaps, "me", now, &mut Skews::new());
        let FileState::Deleted { at_ms } = snaps[0].files[0].meta.state else {
            panic!("{:?}", snaps[0].files[0].meta.state)
        };
        assert_eq!(at_ms, now);

        let mine = snap("me", now, &[now + 60_000]);
        let versions = [
            Version {
                machine: "ahead",
                place: "-p",
                meta: snaps[0].files[0].meta,
            },
            Version {
                machine: "me",
                place: "-p",
                meta: mine.files[0].meta,
            },
        ];
        assert_eq!(
            resolve(&versions, "me", true).shown,
            [1],
            "written after, so it stays"
        );
    }

    #[test]
    fn a_record_without_a_commit_time_is_left_as_it_is() {
        let mut snaps = vec![snap("old", 0, &[42])];
        sanitise(&mut snaps, "me", 1_000, &mut Skews::new());
        assert_eq!(mtimes(&snaps[0]), [42]);
    }
}
