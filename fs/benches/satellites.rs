//! The satellite mirror's cost, against the same work done plainly on the same disk, in one
//! run (issue 24): the daemon runs a pass every second, so its idle pass is what every user
//! pays all the time.
//! - an idle pass over N sessions' satellites, this machine's and another's: against a walk
//!   that stats the same files (the least any scan costs);
//! - one task changed here, noted: against reading that file;
//! - the first pass that writes another machine's satellites here: against writing the same
//!   bytes into a fresh directory.
//!
//! `cargo bench -p ferry-fs --bench satellites`. FERRY_BENCH_SESSIONS sets N (default 1,000:
//! 3 checkpoints and 2 tasks each, on each side); FERRY_BENCH_DIR the scratch dir (default
//! /var/tmp, which must be on the filesystem to compare with).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{B_ROOT, Rig};
use ferry_fs::satellites::Mirror;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 15;

fn sid(side: &str, i: usize) -> String {
    format!("{side}0000000-0000-4000-8000-{i:012}")
}

/// One session's satellites: three checkpoints of ~4 KB and two tasks naming `root`.
fn satellites(sid: &str, root: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for v in 1..=3 {
        let body = format!("// {root}/src/lib.rs v{v}\n").repeat(120);
        out.push((
            format!("file-history/{sid}/{:016x}@v{v}", v * 7919),
            body.into_bytes(),
        ));
    }
    for t in 1..=2 {
        let task = format!(
            "{{\"id\":\"{t}\",\"subject\":\"edit {root}/src/lib.rs\",\"status\":\"pending\"}}\n"
        );
        out.push((format!("tasks/{sid}/{t}.json"), task.into_bytes()));
    }
    out
}

fn set_mtime(path: &Path, ms: i64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
        .unwrap();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<T>(mut f: impl FnMut() -> T) -> Duration {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed()
}

fn walk(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let md = e.metadata().unwrap();
        n += if md.is_dir() { walk(&e.path()) } else { 1 };
    }
    n
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let n: usize = std::env::var("FERRY_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let scratch = PathBuf::from(std::env::var("FERRY_BENCH_DIR").unwrap_or("/var/tmp".into()));
    // SAFETY: set before any thread starts; the rig's tempdir honours it.
    unsafe { std::env::set_var("TMPDIR", &scratch) };
    let rig = Rig::new();
    let config = rig.upper.parent().unwrap().to_path_buf();
    let state = rig.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();

    // Sessions of two days ago, as most are: the idle pass looks only at those in use lately.
    let old = common::now_ms() - 2 * 86_400_000;
    // This machine's sessions: transcripts in the project's place, satellites beside.
    let root = rig.a_root();
    let slug = ferry_sync::slug::slug(&root);
    std::fs::create_dir_all(rig.upper.join(&slug)).unwrap();
    for i in 0..n {
        let id = sid("a", i);
        let line = format!("{{\"type\":\"user\",\"cwd\":\"{root}\",\"sessionId\":\"{id}\"}}\n");
        std::fs::write(rig.upper.join(&slug).join(format!("{id}.jsonl")), line).unwrap();
        for (path, bytes) in satellites(&id, &root) {
            let p = config.join(&path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            set_mtime(&p, old);
        }
    }
    // The other machine's, arriving as fetched.
    let mut theirs = Vec::new();
    for i in 0..n {
        let id = sid("b", i);
        let line = format!("{{\"type\":\"user\",\"cwd\":\"{B_ROOT}\",\"sessionId\":\"{id}\"}}\n");
        theirs.push((format!("{id}.jsonl"), line.into_bytes(), old));
        for (path, bytes) in satellites(&id, B_ROOT) {
            theirs.push((format!(".ferry-sat/{path}"), bytes, old));
        }
    }
    rig.b_writes_many(&theirs);
    let bytes: usize = theirs.iter().map(|(_, b, _)| b.len()).sum();

    // Baseline for the first pass: the same bytes written plainly.
    let plain = rig.dir.path().join("plain");
    let write_plain = time(|| {
        for (path, b, _) in &theirs {
            let p = plain.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        }
    });
    let mut mirror = Mirror::new(&config, &state);
    let first = time(|| mirror.pass(&rig.fs, true));
    let files = walk(&config.join("file-history")) + walk(&config.join("tasks"));
    assert_eq!(files, 2 * 5 * n, "every satellite here");
    rig.take_notes();

    let idle = median(
        (0..RUNS)
            .map(|_| time(|| mirror.pass(&rig.fs, true)))
            .collect(),
    );
    let full = median(
        (0..RUNS)
            .map(|_| time(|| mirror.pass(&rig.fs, false)))
            .collect(),
    );
    let stat_walk = median(
        (0..RUNS)
            .map(|_| time(|| walk(&config.join("file-history")) + walk(&config.join("tasks"))))
            .collect(),
    );
    // The session in use: its transcript written through the view, as Claude Code does.
    let busy = sid("a", n / 2);
    let line = format!("{{\"type\":\"user\",\"cwd\":\"{root}\",\"sessionId\":\"{busy}\"}}\n");
    let at = rig.upper.join(&slug).join(format!("{busy}.jsonl"));
    let size = std::fs::metadata(&at).unwrap().len();
    rig.fs
        .write(
            &Path::new(&slug).join(format!("{busy}.jsonl")),
            size,
            line.as_bytes(),
            true,
        )
        .unwrap();
    rig.take_notes();
    let task = config.join(format!("tasks/{busy}/1.json"));
    let mut k = 0;
    let change = median(
        (0..RUNS)
            .map(|_| {
                k += 1;
                std::fs::write(&task, format!("{{\"id\":\"1\",\"status\":\"step {k}\"}}\n"))
                    .unwrap();
                time(|| mirror.pass(&rig.fs, true))
            })
            .collect(),
    );
    let read_one = median(
        (0..RUNS)
            .map(|_| time(|| std::fs::read(&task).unwrap()))
            .collect(),
    );
    assert_eq!(rig.take_notes().len(), RUNS, "each change noted once");

    println!(
        "satellite mirror, {n} sessions a side, {files} satellite files, {:.1} MB from the other machine",
        bytes as f64 / 1e6
    );
    println!("| measure | mirror | plain baseline | ratio |");
    println!("|---|---:|---:|---:|");
    let row = |what: &str, m: Duration, b: Duration, base: &str| {
        println!(
            "| {what} | {} | {} ({base}) | {:.1}x |",
            ms(m),
            ms(b),
            m.as_secs_f64() / b.as_secs_f64()
        )
    };
    row(
        "idle pass (p50 of 15)",
        idle,
        stat_walk,
        "stat walk of the same files",
    );
    row(
        "full look at every file: every 30 s and at unmount (p50 of 15)",
        full,
        stat_walk,
        "stat walk of the same files",
    );
    row(
        "pass noting one changed task (p50 of 15)",
        change,
        stat_walk + read_one,
        "stat walk + read of the file",
    );
    row(
        "first pass writing the other machine's",
        first,
        write_plain,
        "writing the same files plainly",
    );
}
