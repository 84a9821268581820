//! Another machine's line arriving at a 20 MB session the view has already served: the cost of
//! the first request after the refresh, which merges again (issue 28's read tear: the lines
//! shown keep their places, `core::steady`). Measured in the core (no FUSE), beside a plain
//! read of a file of the same size on the same disk, the least any merge of it costs.
//!
//! `cargo bench -p ferry-fs --bench arrivals`. FERRY_BENCH_MB sets the session's size (20).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{B_ROOT, Rig, long_line as line, median, now_ms};
use std::path::Path;
use std::time::Instant;

/// Milliseconds of the first stat and 64 KiB read at the end of `path` after each of `turns`
/// arrivals of one line of b's, the view served before each.
fn arrivals(rig: &Rig, rel: &str, theirs: &mut String, turns: usize, at: i64) -> Vec<f64> {
    let path = format!("{}/{rel}", rig.slug());
    let path = Path::new(&path);
    (0..turns)
        .map(|i| {
            theirs.push_str(&line(&format!("n{i}"), B_ROOT));
            rig.b_writes(rel, theirs.as_bytes(), at + i as i64);
            let t = Instant::now();
            let size = rig.fs.getattr(path).unwrap().size;
            rig.fs
                .read(path, size.saturating_sub(1 << 16), 1 << 16)
                .unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn main() {
    let mb: usize = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let turns = 9;
    let rig = Rig::new();
    let lines = mb * 1024 * 1024 / line("u", B_ROOT).len();
    let start: String = (0..lines).map(|i| line(&format!("u{i}"), B_ROOT)).collect();
    let t0 = now_ms() - 3_600_000;

    // Only b writes the session: each arrival extends what was shown.
    let mut only = start.clone();
    rig.b_writes("only.jsonl", only.as_bytes(), t0);
    rig.read(&format!("{}/only.jsonl", rig.slug())).unwrap();
    let only_ms = arrivals(&rig, "only.jsonl", &mut only, turns, t0 + 1);

    // This machine resumed it and wrote last; b's older lines arrive: the merge alone would put
    // them before this machine's line.
    let mut both = start.clone();
    rig.b_writes("both.jsonl", both.as_bytes(), t0);
    let at = format!("{}/both.jsonl", rig.slug());
    rig.fs
        .write(
            Path::new(&at),
            0,
            line("a1", &rig.a_root()).as_bytes(),
            true,
        )
        .unwrap();
    rig.read(&at).unwrap();
    let both_ms = arrivals(&rig, "both.jsonl", &mut both, turns, t0 + 100);

    let native_file = rig.dir.path().join("native.jsonl");
    std::fs::write(&native_file, &start).unwrap();
    let native: Vec<f64> = (0..turns)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(std::fs::read(&native_file).unwrap());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let n = median(native);
    println!("## A line arriving at a {mb} MB session already shown (release build)\n");
    println!(
        "| first stat and read after the refresh (ms, median of {turns}) | plain read of the file | core | core/plain read |"
    );
    println!("|---|---:|---:|---:|");
    for (what, v) in [
        ("only another machine writes it", median(only_ms)),
        (
            "this machine wrote last, the other machine's older lines arrive",
            median(both_ms),
        ),
    ] {
        println!("| {what} | {n:.1} | {v:.1} | {:.1}x |", v / n);
    }
}
