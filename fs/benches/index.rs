//! Building the foreign index, which every fetch that changes anything redoes: the CPU a
//! refresh of a large view costs besides reading the store. Two machines that both hold N
//! sessions (a transcript and a subagent file each, across 50 projects); this machine indexes
//! the other's, in memory.
//!
//! `cargo bench -p ferry-fs --bench index` (FERRY_BENCH_SESSIONS, default 10,000).

#[path = "../../sync/tests/common/mod.rs"]
mod common;

use common::{linux_machine, project};
use ferry_fs::foreign::Foreign;
use ferry_sync::store::{FileEntry, FileMeta, FileState, MachineRecord, RelPath, Snapshot};
use std::time::Instant;

fn snapshot(m: &MachineRecord, sessions: usize) -> Snapshot {
    let mut files = Vec::with_capacity(sessions * 2);
    for i in 0..sessions {
        let p = i % 50;
        let project = project(
            &format!("github.com/o/proj{p}"),
            &format!("{}/src/proj{p}", m.home),
        );
        let id = format!("{i:08x}-0000-4000-8000-000000000000");
        for rel in [
            format!("{id}.jsonl"),
            format!("{id}/subagents/agent-{i}.jsonl"),
        ] {
            files.push(FileEntry {
                project: project.clone().into(),
                rel: RelPath::new(&rel).expect("rel"),
                meta: FileMeta {
                    mtime_ms: 1_700_000_000_000 + i as i64,
                    mode: 0o600,
                    len: 4096,
                    lines: true,
                    state: FileState::Present,
                },
                tree: git2::Oid::ZERO_SHA1,
            });
        }
    }
    Snapshot {
        commit: git2::Oid::ZERO_SHA1,
        machine: m.clone(),
        files,
        rejected: vec![],
        dirs: vec![],
        cut: false,
    }
}

/// How many builds are timed: this machine's timings move by a third from one to the next.
const BUILDS: usize = 11;

fn main() {
    let n: usize = std::env::var("FERRY_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (a, b) = (
        linux_machine("aaaa", "/home/a"),
        linux_machine("bbbb", "/home/b"),
    );
    let snaps = vec![snapshot(&a, n), snapshot(&b, n)];
    let mut times = Vec::new();
    let mut files = 0;
    for _ in 0..BUILDS {
        let t = Instant::now();
        let f = Foreign::from_snapshots(&snaps, &a, &[], &mut Default::default());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        files = f.files.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "foreign index of {n} sessions ({files} files shown, 2 machines): median {:.1} ms, min {:.1} ms over {BUILDS} builds",
        times[BUILDS / 2],
        times[0]
    );
    assert_eq!(files, 2 * n, "every file of the other machine is shown");
}
