//! Golden cases and a reference-model property test of the merge.

use super::*;
use proptest::prelude::*;

fn meta(mtime_ms: i64, state: FileState) -> FileMeta {
    FileMeta {
        mtime_ms,
        mode: 0o600,
        len: 0,
        lines: false,
        state,
    }
}

fn v(machine: &str, mtime: i64, state: FileState) -> Version<'_> {
    Version {
        machine,
        place: "-p",
        meta: meta(mtime, state),
    }
}

#[test]
fn newest_wins_and_losers_are_reported() {
    let vs = [
        v("a", 10, FileState::Present),
        v("b", 30, FileState::Present),
        v("c", 20, FileState::Present),
    ];
    let r = resolve(&vs, "a", false);
    assert_eq!(r.shown, vec![1]);
    assert_eq!(r.losers, vec![0, 2]);
    // Ties break by machine id, the same on every machine.
    let tie = [v("b", 5, FileState::Present), v("a", 5, FileState::Present)];
    assert_eq!(resolve(&tie, "x", false).shown, vec![0]);
    assert_eq!(resolve(&tie, "y", false).shown, vec![0]);
}

#[test]
fn tombstones_hide_everywhere_and_hides_only_for_their_machine() {
    let deleted = [
        v("a", 10, FileState::Present),
        v("a", 0, FileState::Deleted { at_ms: 15 }),
        v("b", 12, FileState::Present),
    ];
    assert!(resolve(&deleted[1..], "b", true).shown.is_empty());
    let after = [
        v("a", 0, FileState::Deleted { at_ms: 15 }),
        v("b", 20, FileState::Present),
    ];
    assert_eq!(
        resolve(&after, "a", true).shown,
        vec![1],
        "a version written after the delete survives"
    );
    let hidden = [
        v("a", 10, FileState::Present),
        v("b", 0, FileState::Hidden { until_ms: 10 }),
    ];
    assert!(resolve(&hidden, "b", false).shown.is_empty(), "hidden on b");
    assert_eq!(resolve(&hidden, "c", false).shown, vec![0], "not on c");
    let newer = [
        v("a", 11, FileState::Present),
        v("b", 0, FileState::Hidden { until_ms: 10 }),
    ];
    assert_eq!(
        resolve(&newer, "b", false).shown,
        vec![0],
        "a newer version reappears"
    );
}

fn line(uuid: &str, text: &str) -> String {
    format!(
        "{{\"type\":\"user\",\"message\":{{\"uuid\":\"nested\"}},\"text\":\"{text}\",\"uuid\":\"{uuid}\"}}\n"
    )
}

#[test]
fn divergent_transcripts_keep_every_line_once() {
    let p = line("p1", "start") + &line("p2", "more");
    let a = p.clone() + &line("a1", "on A") + "{\"type\":\"last-prompt\"}\n";
    let b = p.clone() + &line("b1", "on B") + "{\"type\":\"last-prompt\"}\n" + &line("a1", "on A");
    let merged = String::from_utf8(merge_lines(&[a.as_bytes(), b.as_bytes()])).unwrap();
    assert_eq!(
        merged,
        p + &line("a1", "on A") + "{\"type\":\"last-prompt\"}\n" + &line("b1", "on B")
    );
}

#[test]
fn torn_lines_do_not_swallow_the_next_line() {
    let a = line("p", "x") + "{\"torn";
    let b = line("p", "x") + &line("b", "y");
    let merged = String::from_utf8(merge_lines(&[a.as_bytes(), b.as_bytes()])).unwrap();
    assert_eq!(merged, line("p", "x") + "{\"torn\n" + &line("b", "y"));
    assert_eq!(
        merge_lines(&[a.as_bytes()]),
        a.as_bytes(),
        "one version is untouched"
    );
}

#[test]
fn a_torn_line_a_merge_ended_with_a_newline_is_still_the_same_line() {
    // The view served a torn last line with the newline a merge gave it; merged again with a
    // version that still ends with it torn, it is kept once.
    let served = "{\"torn\n".to_string() + &line("b", "y");
    let again = line("b", "y") + "{\"torn";
    let merged = String::from_utf8(merge_lines(&[served.as_bytes(), again.as_bytes()])).unwrap();
    assert_eq!(merged, served);
}

proptest! {
    /// Reference model: a session starts with shared lines, then each machine appends its own
    /// lines, sometimes after syncing another machine's lines into its copy. Every line of
    /// every version must appear exactly once, and each version's own order must be kept.
    #[test]
    fn merge_keeps_every_line_once_in_each_versions_order(
        shared in 0usize..5,
        ops in proptest::collection::vec((0usize..3, any::<bool>()), 0..20),
    ) {
        let mut versions: Vec<Vec<String>> = vec![(0..shared).map(|i| line(&format!("s{i}"), "s")).collect(); 3];
        for (n, (m, sync)) in ops.into_iter().enumerate() {
            if sync {
                // Machine m takes in the merge of everything, as a copy-up would.
                let refs: Vec<String> = versions.iter().map(|v| v.concat()).collect();
                let merged = merge_lines(&refs.iter().map(String::as_bytes).collect::<Vec<_>>());
                versions[m] = split_lines(&merged).iter().map(|l| String::from_utf8(l.to_vec()).unwrap()).collect();
            }
            versions[m].push(line(&format!("m{m}-{n}"), "x"));
        }
        let texts: Vec<String> = versions.iter().map(|v| v.concat()).collect();
        let merged = String::from_utf8(merge_lines(&texts.iter().map(String::as_bytes).collect::<Vec<_>>())).unwrap();
        let out: Vec<&str> = merged.split_inclusive('\n').collect();
        let all: HashSet<&String> = versions.iter().flatten().collect();
        prop_assert_eq!(out.len(), all.len(), "each line once");
        for v in &versions {
            let positions: Vec<usize> = v.iter().map(|l| out.iter().position(|o| *o == l).expect("line kept")).collect();
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "order of a version kept");
        }
    }
}

#[test]
fn a_hide_keeps_the_hiders_own_lines_for_everyone_else() {
    let versions = [
        v("a", 20, FileState::Present),
        Version {
            machine: "b",
            place: "-p",
            meta: FileMeta {
                mtime_ms: 15,
                ..meta(0, FileState::Hidden { until_ms: 20 })
            },
        },
    ];
    assert!(
        resolve(&versions, "b", true).shown.is_empty(),
        "hidden on b"
    );
    assert_eq!(
        resolve(&versions, "a", true).shown,
        vec![1, 0],
        "a still merges b's lines"
    );
}
