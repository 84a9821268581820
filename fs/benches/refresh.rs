//! A fetch that changes one session of many: what the view's refresh costs (issue 22, item 4:
//! a refresh should cost what changed). Another machine holds N sessions (a transcript and a
//! subagent file each, across 50 projects) in a real store; it changes one session at a time,
//! and each change arrives here as fetched. Each refresh is timed whole (it patches the index),
//! beside two of its parts timed alone on the same store: reading every branch, and building
//! the whole index (what every refresh did before, and one does still when places change).
//!
//! `cargo bench -p ferry-fs --bench refresh` (FERRY_BENCH_SESSIONS, default 10,000;
//! FERRY_BENCH_ROUNDS, default 7).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{median, now_ms, project};
use ferry_fs::foreign::Foreign;
use ferry_sync::store::{Batch, Change, FileUpdate, MachineRecord, REMOTE_PREFIX, RelPath, Store};
use std::path::Path;
use std::time::Instant;

/// Commits `files` (project index, rel, bytes) on `machine`'s branch as if fetched.
fn commit(store: &Store, machine: &MachineRecord, dir: &Path, files: &[(usize, String, String)]) {
    let mut projects = Vec::new();
    let mut updates = Vec::new();
    for (p, rel, bytes) in files {
        let record = project(
            &format!("github.com/o/proj{p}"),
            &format!("{}/src/proj{p}", machine.home),
        );
        let local = dir.join(format!("{p}-{}", rel.replace('/', "_")));
        std::fs::write(&local, bytes).unwrap();
        updates.push(FileUpdate {
            place: record.place(),
            rel: RelPath::new(rel).unwrap(),
            change: Change::Write {
                local,
                dirty_from: None,
            },
        });
        if !projects.contains(&record) {
            projects.push(record);
        }
    }
    let batch = Batch {
        projects,
        files: updates,
    };
    let oid = store.commit(machine, &batch).unwrap().unwrap();
    let name = format!("{REMOTE_PREFIX}{}", machine.id);
    store
        .repo()
        .reference(&name, oid, true, "as if fetched")
        .unwrap();
}

fn session(i: usize, turns: usize, home: &str) -> Vec<(usize, String, String)> {
    let id = format!("{i:08x}-0000-4000-8000-000000000000");
    let line = |t: usize| {
        format!(
            "{{\"uuid\":\"{id}-{t}\",\"cwd\":\"{home}/src/proj{}\",\"text\":\"turn {t}\"}}\n",
            i % 50
        )
    };
    let text: String = (0..turns).map(line).collect();
    vec![
        (i % 50, format!("{id}.jsonl"), text.clone()),
        (i % 50, format!("{id}/subagents/agent-{i}.jsonl"), text),
    ]
}

fn main() {
    let n: usize = std::env::var("FERRY_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let (upper, store_dir, a, b) = common::layout(dir.path());
    let files_dir = dir.path().join("b-files");
    std::fs::create_dir_all(&files_dir).unwrap();
    let store = Store::open(&store_dir).unwrap();
    let t = Instant::now();
    let all: Vec<_> = (0..n).flat_map(|i| session(i, 3, &b.home)).collect();
    for chunk in all.chunks(4_000) {
        commit(&store, &b, &files_dir, chunk);
    }
    eprintln!(
        "{n} sessions committed in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (fs, _) = common::core(dir.path(), &a, &upper, &store_dir);
    let rounds: usize = std::env::var("FERRY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let (mut whole, mut read, mut index) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        commit(&store, &b, &files_dir, &session(r * 97 % n, 4 + r, &b.home));
        let t = Instant::now();
        let changed = fs.refresh().unwrap();
        whole.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            changed
                .iter()
                .any(|p| p.to_string_lossy().ends_with(".jsonl"))
        );
        // The same work in parts, on the same store.
        let t = Instant::now();
        let snaps = ferry_sync::view::snapshots(&store, &a.id).unwrap();
        read.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let f = Foreign::from_snapshots(&snaps, &a, &[], &mut Default::default());
        index.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(f.files.len(), 2 * n);
    }
    let _ = now_ms();
    println!("## A refresh after one changed session of {n} (release build, median of {rounds})\n");
    println!("| part | ms |");
    println!("|---|---:|");
    println!(
        "| reading every branch (`snapshots`) | {:.1} |",
        median(read)
    );
    println!(
        "| building the whole index alone (`Foreign::from_snapshots`) | {:.1} |",
        median(index)
    );
    println!(
        "| the whole refresh, the index patched (`Fs::refresh`) | {:.1} |",
        median(whole)
    );
}
