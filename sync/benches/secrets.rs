//! What secret scanning adds to a commit, on the codec bench's 64 MiB transcript input: the
//! file committed new, and one 1 KB append to it committed, each with the scanner (policy
//! `redact`, the default: what is rewritten is scanned once, and its secrets replaced) and with
//! no scanning, in the same run; and the scanner's own throughput.
//! `cargo bench -p ferry-sync --bench secrets`; prints a Markdown table for BENCHMARKS.md.
//! The target (issue 25): scanning slows a commit by at most 10%.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "input/mod.rs"]
mod input;

use ferry_sync::store::{Batch, Change, FileUpdate, RelPath, Store};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const ROOT: &str = "/home/alice/src/ferry";

/// One commit of `s.jsonl` (`dirty_from`: where an append began) in a store at `dir`.
fn commit(store: &Store, file: &Path, dirty_from: Option<u64>) -> Duration {
    let machine = common::linux_machine("bench", "/home/alice");
    let project = common::project("github.com/o/ferry", ROOT);
    let batch = Batch {
        projects: vec![project.clone()],
        files: vec![FileUpdate {
            place: project.place(),
            rel: RelPath::new("s.jsonl").unwrap(),
            change: Change::Write {
                local: file.to_path_buf(),
                dirty_from,
            },
        }],
    };
    let t = Instant::now();
    store.commit(&machine, &batch).unwrap().expect("a change");
    t.elapsed()
}

/// One fresh store: the new file's commit, and the median of 15 appends' commits.
fn measure(text: &[u8], scanning: bool) -> (Duration, Duration) {
    // In memory where there is a tmpfs: on ext4, creating the commit's thousands of loose
    // objects costs more and varies by tens of ms from run to run (its inode allocator walks
    // the inodes earlier runs deleted), which hides what is measured here. The scanner's share
    // of a commit on disk is smaller still.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let store = Store::init(&tmp.path().join("store.git")).unwrap();
    let store = if scanning {
        store
    } else {
        store.without_scanning()
    };
    let file = tmp.path().join("s.jsonl");
    std::fs::write(&file, text).unwrap();
    let first = commit(&store, &file, None);
    let mut times = Vec::new();
    for i in 0..15 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        let at = f.metadata().unwrap().len();
        let line = format!(
            "{{\"cwd\":\"{ROOT}\",\"type\":\"user\",\"uuid\":\"{i:04}\",\"message\":{{\"content\":\"{}\"}}}}\n",
            "one more turn of prose ".repeat(44)
        );
        f.write_all(line.as_bytes()).unwrap();
        drop(f);
        times.push(commit(&store, &file, Some(at)));
    }
    times.sort();
    (first, times[7])
}

fn main() {
    let text = input::transcript(ROOT, "/home/alice/.claude", "-home-alice-src-ferry");
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        black_box(ferry_sync::secrets::scan(black_box(&text)));
        best = best.min(t.elapsed());
    }
    // Paired runs, the order alternating, so that neither side gets the warmer page cache.
    let runs = 7;
    let (mut plain_first, mut plain_append) = (Duration::MAX, Duration::MAX);
    let (mut scan_first, mut scan_append) = (Duration::MAX, Duration::MAX);
    for run in 0..runs {
        for scanning in [run % 2 == 0, run % 2 == 1] {
            let (first, append) = measure(&text, scanning);
            let (f, a) = if scanning {
                (&mut scan_first, &mut scan_append)
            } else {
                (&mut plain_first, &mut plain_append)
            };
            *f = (*f).min(first);
            *a = (*a).min(append);
        }
    }
    let pct = |with: Duration, without: Duration| {
        (with.as_secs_f64() / without.as_secs_f64() - 1.0) * 100.0
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("## Secret scanning's cost in a commit\n");
    println!(
        "Input: the codec bench's {} MiB transcript. Best of {runs} fresh stores each (on tmpfs), paired, the order alternating.\n",
        text.len() >> 20
    );
    println!("| measure | no scanning | scanning (redact) | slowdown |");
    println!("|---|---:|---:|---:|");
    println!(
        "| commit of the new 64 MiB file | {:.0} ms | {:.0} ms | {:+.1}% |",
        ms(plain_first),
        ms(scan_first),
        pct(scan_first, plain_first)
    );
    println!(
        "| commit of a 1 KB append to it (p50 of 15) | {:.2} ms | {:.2} ms | {:+.1}% |",
        ms(plain_append),
        ms(scan_append),
        pct(scan_append, plain_append)
    );
    println!(
        "\nThe scanner alone: {:.2} GB/s ({:.0} ms for the 64 MiB, best of 7; {} secrets found in it).",
        text.len() as f64 / best.as_secs_f64() / 1e9,
        ms(best),
        ferry_sync::secrets::scan(&text).len()
    );
}
