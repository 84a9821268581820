//! Store costs: commit latency and bytes added per 1 KB append for transcripts of 1 to 200 MB,
//! and repository size after 10,000 commits on one growing session, before and after compaction.
//! `cargo bench -p ferry-sync --bench store` (FERRY_BENCH_COMMITS overrides the 10,000).
//! DESIGN.md: one commit after appending 1 KB to a 50 MB transcript takes < 50 ms and adds
//! < 64 KB; the repository stays within a small factor of the compressed raw data.

#[path = "../tests/common/mod.rs"]
mod common;

use common::dir_size;

use ferry_sync::store::{Batch, Change, FileUpdate, MachineRecord, ProjectRecord, RelPath, Store};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const ROOT: &str = "/home/alice/src/ferry";

/// A transcript-like line of about `len` bytes: a fixed JSON frame and prose drawn from a
/// vocabulary by a PRNG, so it compresses about as well as real transcripts (3-5x), not better.
fn line(i: usize, len: usize) -> String {
    const WORDS: [&str; 32] = [
        "the",
        "codec",
        "store",
        "commit",
        "session",
        "transcript",
        "merge",
        "branch",
        "remote",
        "fetch",
        "push",
        "chunk",
        "line",
        "path",
        "home",
        "project",
        "slug",
        "key",
        "error",
        "test",
        "passes",
        "fails",
        "because",
        "when",
        "after",
        "while",
        "value",
        "returns",
        "bytes",
        "index",
        "7f3a",
        "0x1c",
    ];
    let head = format!(
        "{{\"cwd\":\"{ROOT}\",\"type\":\"assistant\",\"uuid\":\"{i:08x}-4e2b-9c1d\",\"message\":{{\"content\":\"edited {ROOT}/src/f{i}.rs: "
    );
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut body = String::new();
    while head.len() + body.len() + 4 < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        body.push_str(WORDS[(state % 32) as usize]);
        body.push(if state.is_multiple_of(11) { '.' } else { ' ' });
        if state.is_multiple_of(29) {
            body.push_str(&format!("{}", state % 100_000));
        }
    }
    format!("{head}{body}\"}}}}\n")
}

fn setup(dir: &Path) -> (Store, MachineRecord, ProjectRecord) {
    let store = Store::init(&dir.join("store.git")).unwrap();
    let machine = common::linux_machine("bench", "/home/alice");
    let project = common::project("github.com/o/ferry", ROOT);
    (store, machine, project)
}

fn commit(
    store: &Store,
    m: &MachineRecord,
    p: &ProjectRecord,
    file: &Path,
    dirty_from: Option<u64>,
) {
    let batch = Batch {
        projects: vec![p.clone()],
        files: vec![FileUpdate {
            place: p.place(),
            rel: RelPath::new("s.jsonl").unwrap(),
            change: Change::Write {
                local: file.to_path_buf(),
                dirty_from,
            },
        }],
    };
    store.commit(m, &batch).unwrap().expect("a change");
}

fn append(file: &Path, text: &str) -> u64 {
    let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
    let at = f.metadata().unwrap().len();
    f.write_all(text.as_bytes()).unwrap();
    at
}

fn main() {
    println!("## Commit after a 1 KB append\n");
    println!(
        "| transcript | first commit | append commit p50 | p99 (max of 30) | bytes added p50 |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if std::env::var_os("FERRY_BENCH_SKIP_SIZES").is_some() {
        &[]
    } else {
        &[1, 10, 50, 200]
    };
    for &mb in sizes {
        let tmp = tempfile::tempdir().unwrap();
        let (store, m, p) = setup(tmp.path());
        let file = tmp.path().join("s.jsonl");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut i = 0;
        let mut len = 0;
        while len < mb << 20 {
            let l = line(i, 2000);
            len += l.len();
            f.write_all(l.as_bytes()).unwrap();
            i += 1;
        }
        drop(f);
        let t = Instant::now();
        commit(&store, &m, &p, &file, None);
        let first = t.elapsed();
        let objects = store.repo().path().join("objects");
        let mut times: Vec<Duration> = Vec::new();
        let mut added: Vec<u64> = Vec::new();
        for _ in 0..30 {
            let at = append(&file, &line(i, 1024));
            i += 1;
            let before = dir_size(&objects);
            let t = Instant::now();
            commit(&store, &m, &p, &file, Some(at));
            times.push(t.elapsed());
            added.push(dir_size(&objects) - before);
        }
        times.sort();
        added.sort();
        println!(
            "| {mb} MB | {:.0} ms | {:.2} ms | {:.2} ms | {:.1} KB |",
            first.as_secs_f64() * 1e3,
            times[15].as_secs_f64() * 1e3,
            times[29].as_secs_f64() * 1e3,
            added[15] as f64 / 1024.0
        );
    }

    let n: usize = std::env::var("FERRY_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let (store, m, p) = setup(tmp.path());
    let file = tmp.path().join("s.jsonl");
    std::fs::write(&file, line(0, 1024)).unwrap();
    commit(&store, &m, &p, &file, None);
    let t = Instant::now();
    for i in 1..n {
        let at = append(&file, &line(i, 1024));
        commit(&store, &m, &p, &file, Some(at));
    }
    let commits = t.elapsed();
    let objects = store.repo().path().join("objects");
    let loose = dir_size(&objects);
    let t = Instant::now();
    let stats = store.compact().unwrap();
    let compact_time = t.elapsed();
    let packed = dir_size(&objects);
    // The compressed raw data: the final transcript as one zlib-compressed git object.
    let raw = std::fs::read(&file).unwrap();
    let probe = Store::init(&tmp.path().join("probe.git")).unwrap();
    probe.repo().blob(&raw).unwrap();
    let compressed = dir_size(&tmp.path().join("probe.git/objects"));
    println!("\n## {n} commits of 1 KB appends to one session\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| raw transcript | {:.1} MB |", raw.len() as f64 / 1e6);
    println!(
        "| raw, zlib-compressed | {:.2} MB |",
        compressed as f64 / 1e6
    );
    println!(
        "| {n} commits took | {:.1} s ({:.2} ms each) |",
        commits.as_secs_f64(),
        commits.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "| repository before compaction (loose) | {:.1} MB |",
        loose as f64 / 1e6
    );
    println!(
        "| compaction | {:.1} s, {} objects |",
        compact_time.as_secs_f64(),
        stats.objects
    );
    println!(
        "| repository after compaction | {:.2} MB ({:.1}x compressed raw) |",
        packed as f64 / 1e6,
        packed as f64 / compressed as f64
    );
}
