//! Appending to a session this machine has copies of in two places (a main checkout and a
//! worktree of one project: issue 28's profile of the append path). The view lists the session
//! in one place, and the copy there must show every line of the other; each append is measured
//! in the core (no FUSE), beside a plain append to a file of the same size on the same disk.
//!
//! `cargo bench -p ferry-fs --bench places`. FERRY_BENCH_MB sets the session's size (20).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{B_ROOT, Rig, long_line as line, median, now_ms, two_places};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn main() {
    let mb: usize = std::env::var("FERRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rig = Rig::new();
    let (main, wt, pm, pw) = two_places(&rig);
    // Another machine's session of `mb` MB, resumed in the main checkout and in the worktree.
    let lines = mb * 1024 * 1024 / line("u", B_ROOT).len();
    let theirs: String = (0..lines).map(|i| line(&format!("u{i}"), B_ROOT)).collect();
    rig.b_writes("s1.jsonl", theirs.as_bytes(), now_ms() - 60_000);
    std::fs::create_dir_all(rig.upper.join(&pm.slug)).unwrap();
    std::fs::write(
        rig.upper.join(&pm.slug).join("own.jsonl"),
        line("o1", &main),
    )
    .unwrap();
    rig.a_commits(&pm, &["own.jsonl"]);
    let at_main = format!("{}/s1.jsonl", pm.slug);
    let path = Path::new(&at_main);
    let append = |text: &str| {
        rig.fs.write(path, 0, text.as_bytes(), true).unwrap();
        rig.fs.getattr(path).unwrap();
    };
    append(&line("a0", &main));
    rig.a_commits(&pm, &["s1.jsonl"]);
    std::fs::create_dir_all(rig.upper.join(&pw.slug)).unwrap();
    let in_wt: String = theirs.replace(B_ROOT, &wt) + &line("w1", &wt);
    std::fs::write(rig.upper.join(&pw.slug).join("s1.jsonl"), in_wt).unwrap();
    rig.a_commits(&pw, &["s1.jsonl"]);
    // The first append after the worktree's turn takes its line in.
    append(&line("a1", &main));

    let turns = 200;
    let before = rig.fs.comparisons();
    let view: Vec<f64> = (0..turns)
        .map(|i| {
            let l = line(&format!("b{i}"), &main);
            let t = Instant::now();
            append(&l);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let compared = rig.fs.comparisons() - before;
    let native_file = rig.dir.path().join("native.jsonl");
    std::fs::write(&native_file, theirs.replace(B_ROOT, &main)).unwrap();
    let native: Vec<f64> = (0..turns)
        .map(|i| {
            let l = line(&format!("b{i}"), &main);
            let t = Instant::now();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&native_file)
                .unwrap();
            f.write_all(l.as_bytes()).unwrap();
            std::fs::metadata(&native_file).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let (n, v) = (median(native), median(view));
    println!("## Appending to a session with copies in two places ({mb} MB, release build)\n");
    println!("| append of 2 KB, then stat (µs, p50 of {turns}) | native | core | core/native |");
    println!("|---|---:|---:|---:|");
    println!(
        "| another machine's session, this machine's copies in a checkout and its worktree | {n:.1} | {v:.1} | {:.1}x |",
        v / n
    );
    println!(
        "\nWhole-file comparisons of the copy with the store's versions: {compared} in {turns} appends"
    );
}
