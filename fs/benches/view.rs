//! The view against plain ext4, in one run (DESIGN.md's performance targets, issues 4 and 28):
//! - reading a 20 MB transcript, another machine's (first time, and with the disk cache kept)
//!   and this machine's, cold and warm;
//! - Claude Code's append cycle (open O_APPEND, write 2 KB, close), on this machine's session
//!   with the engine committing behind and with nothing behind, and on another machine's;
//! - listing a project of 1,000 sessions: readdir, stat, and the first and last 64 KiB of each,
//!   this machine's and another machine's (first time, and with the disk cache kept).
//!
//! Each part has a floor row: the same measure through a FUSE daemon that does nothing but the
//! system call each request asks for ([`floor`]), mounted in the same run.
//!
//! Every figure is measured in pairs, native ext4 then the view back to back, at least 5 pairs
//! (FERRY_BENCH_PAIRS), and reported as the median and range of the pairs' ratios.
//!
//! `cargo bench -p ferry-fs --bench view`. Needs root (it mounts, and drops the page cache for the
//! cold figures) and /dev/fuse. FERRY_BENCH_SESSIONS overrides the 1,000; FERRY_BENCH_DIR the
//! scratch dir (default /var/tmp, which must be on the filesystem to compare with);
//! FERRY_BENCH_ONLY=read|append|list runs one part, for a profile.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "view/floor.rs"]
mod floor;

use common::{B_ROOT, commit_as_b, median};
use ferry_fs::core::{Fs, FsConfig, Sink};
use ferry_fs::upper::Upper;
use ferry_sync::engine::{self, EngineConfig};
use ferry_sync::slug::slug;
use ferry_sync::store::{Change, MachineRecord, ProjectRecord, RelPath};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A transcript-like JSON line of about `len` bytes mentioning paths under `root`.
fn line(i: usize, len: usize, root: &str) -> String {
    let head = format!(
        "{{\"type\":\"assistant\",\"uuid\":\"u{i:08}\",\"cwd\":\"{root}\",\"message\":{{\"content\":\"see {root}/src/f{i}.rs and "
    );
    let pad = len.saturating_sub(head.len() + 4);
    let words = [
        "the", "codec", "store", "session", "merge", "branch", "line", "path",
    ];
    let mut body = String::with_capacity(pad + 16);
    let mut k = i;
    while body.len() < pad {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        body.push_str(words[(k >> 33) % words.len()]);
        body.push(' ');
    }
    body.truncate(pad);
    format!("{head}{body}\"}}}}\n")
}

fn transcript(bytes: usize, root: &str, seed: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 4096);
    let mut i = seed * 1_000_000;
    while out.len() < bytes {
        out.extend_from_slice(line(i, 2000, root).as_bytes());
        i += 1;
    }
    out
}

fn drop_caches() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .expect("dropping the page cache needs root (cold figures)");
}

struct Bench {
    dir: tempfile::TempDir,
    upper: PathBuf,
    store: PathBuf,
    a: MachineRecord,
    runtime: tokio::runtime::Runtime,
}

/// What runs behind a mount.
#[derive(Clone, Copy, PartialEq)]
enum Behind {
    /// The daemon's real sync engine, committing as it would.
    Engine,
    /// Nothing: the view's own cost alone.
    Nothing,
}

/// A sink that drops every change: the view without an engine behind it.
struct Nothing;

impl Sink for Nothing {
    fn note(&self, _: &ProjectRecord, _: RelPath, _: Change, _: u64) {}
}

/// A live mount over the upper layer.
struct Live {
    mounted: Option<ferry_fs::fuse::Mounted>,
    engine: Option<engine::EngineHandle>,
}

impl Bench {
    /// Mounts the view (`fresh_cache`: with an empty disk cache, as on a machine that never
    /// read another machine's files) and waits until the engine's start-up reconcile is done,
    /// so that it does not compete with what is measured.
    fn mount(&self, fresh_cache: bool, behind: Behind) -> Live {
        let cache = self.dir.path().join("cache");
        if fresh_cache {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let upper = Upper::open(&self.upper).unwrap();
        let _guard = self.runtime.enter();
        let engine = (behind == Behind::Engine).then(|| {
            engine::start(
                self.store.clone(),
                self.a.clone(),
                None,
                EngineConfig {
                    upper: Some(upper.reach(Path::new(""))),
                    ..EngineConfig::default()
                },
            )
        });
        let sink: Arc<dyn Sink> = match &engine {
            Some(e) => Arc::new(e.clone()),
            None => Arc::new(Nothing),
        };
        let fs = Fs::new(
            upper,
            FsConfig {
                machine: self.a.clone(),
                store: self.store.clone(),
                cache_dir: cache,
                cache_budget: 4 << 30,
                links: Vec::new(),
                marks: self.dir.path().join("marks.json"),
                places: self.dir.path().join("places.json"),
            },
            sink,
        )
        .unwrap();
        let mounted =
            ferry_fs::fuse::mount(Arc::new(fs), &self.upper).expect("mount (root, /dev/fuse)");
        if let Some(e) = &engine {
            self.runtime.block_on(e.sync_now());
        }
        Live {
            mounted: Some(mounted),
            engine,
        }
    }

    fn unmount(&self, mut live: Live) {
        ferry_platform::mount::unmount(&self.upper).unwrap();
        let mounted = live.mounted.take().unwrap();
        let fs = mounted.fs().clone();
        mounted.join(Duration::from_secs(10));
        fs.close();
        if let Some(e) = live.engine.take() {
            self.runtime.block_on(e.shutdown(Duration::from_secs(5)));
        }
    }
}

/// How many native-then-view pairs each figure takes.
fn pairs() -> usize {
    std::env::var("FERRY_BENCH_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1)
}

/// One figure's pairs: native and view values, one of each per pair.
struct Pairs {
    native: Vec<f64>,
    view: Vec<f64>,
}

impl Pairs {
    fn new() -> Pairs {
        Pairs {
            native: Vec::new(),
            view: Vec::new(),
        }
    }

    fn push(&mut self, native: f64, view: f64) {
        self.native.push(native);
        self.view.push(view);
    }

    /// A table row: the medians, and the median and range of view/native over the pairs.
    fn row(&self, name: &str, unit_digits: usize) -> String {
        let mut ratios: Vec<f64> = self
            .native
            .iter()
            .zip(&self.view)
            .map(|(n, v)| v / n)
            .collect();
        ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
        format!(
            "| {name} | {:.d$} | {:.d$} | {:.2}x | {:.2}–{:.2}x |",
            median(self.native.clone()),
            median(self.view.clone()),
            median(ratios.clone()),
            ratios[0],
            ratios[ratios.len() - 1],
            d = unit_digits
        )
    }
}

fn read_all(path: &Path) -> usize {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    loop {
        match f.read(&mut buf).unwrap() {
            0 => return n,
            k => n += k,
        }
    }
}

fn mb_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// readdir + stat of each transcript + the first and last 64 KiB of each.
fn list_sessions(dir: &Path) -> usize {
    let mut n = 0;
    let mut buf = vec![0u8; 64 << 10];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        let md = std::fs::metadata(&p).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let head = f.read_at(&mut buf, 0).unwrap();
        let tail = f
            .read_at(&mut buf, md.len().saturating_sub(64 << 10))
            .unwrap();
        n += head + tail;
    }
    n
}

fn write_with_mtime(path: &Path, bytes: &[u8], mtime_ms: i64) {
    std::fs::write(path, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_millis(mtime_ms as u64))
        .unwrap();
}

fn main() {
    let scratch = std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::tempdir_in(scratch).unwrap();
    let (upper, store, a, b) = common::layout(dir.path());
    let a_root = format!("{}/src/proj", a.home);
    let fslug = slug(&a_root);
    let native = dir.path().join("native");
    let sessions: usize = std::env::var("FERRY_BENCH_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let bench = Bench {
        dir,
        upper: upper.clone(),
        store: store.clone(),
        a,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    };

    // The other machine's files: one 20 MB transcript and `sessions` sessions of ~40 KB.
    let b_src = bench.dir.path().join("b-files");
    std::fs::create_dir_all(&b_src).unwrap();
    let mut changes = Vec::new();
    let big = transcript(20 << 20, B_ROOT, 0);
    std::fs::write(b_src.join("big.jsonl"), &big).unwrap();
    changes.push((
        "big.jsonl".to_string(),
        Change::Write {
            local: b_src.join("big.jsonl"),
            dirty_from: None,
        },
    ));
    let t0 = common::now_ms() - 86_400_000;
    let name = |i: usize| format!("{i:08x}-0000-4000-8000-000000000000.jsonl");
    for i in 0..sessions {
        let src = b_src.join(name(i));
        write_with_mtime(&src, &transcript(40_000, B_ROOT, i + 1), t0 + i as i64);
        changes.push((
            format!("list/{}", name(i)),
            Change::Write {
                local: src,
                dirty_from: None,
            },
        ));
    }
    // Sessions of the other machine's that this machine appends to, one per pair.
    let appended = |k: usize| format!("{:08x}-0000-4000-8000-00000000a99d.jsonl", k);
    let pairs = pairs();
    for k in 0..pairs {
        let src = b_src.join(appended(k));
        write_with_mtime(&src, &transcript(40_000, B_ROOT, 90_000 + k), t0);
        changes.push((
            format!("theirs/{}", appended(k)),
            Change::Write {
                local: src,
                dirty_from: None,
            },
        ));
    }
    commit_as_b(&store, &b, changes);
    // The same files, expanded, on plain ext4.
    let expand = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .replace(B_ROOT, &a_root)
    };
    let nat_big = native.join(&fslug).join("big.jsonl");
    let nat_list = native.join(&fslug).join("list");
    std::fs::create_dir_all(&nat_list).unwrap();
    std::fs::write(&nat_big, expand(&big)).unwrap();
    std::fs::create_dir_all(native.join(&fslug).join("theirs")).unwrap();
    for k in 0..pairs {
        let text = expand(&transcript(40_000, B_ROOT, 90_000 + k));
        std::fs::write(native.join(&fslug).join("theirs").join(appended(k)), text).unwrap();
    }
    for i in 0..sessions {
        let text = expand(&transcript(40_000, B_ROOT, i + 1));
        write_with_mtime(&nat_list.join(name(i)), text.as_bytes(), t0 + i as i64);
    }
    // This machine's own sessions, in the upper layer and natively.
    let own = "-own-project";
    // This machine's big transcript and the sessions appended to, apart from the listed ones.
    let side = "-own-side";
    for d in [own, side] {
        std::fs::create_dir_all(upper.join(d)).unwrap();
        std::fs::create_dir_all(native.join(d)).unwrap();
    }
    for i in 0..sessions {
        let text = transcript(40_000, &a_root, i + 7_000);
        std::fs::write(upper.join(own).join(name(i)), &text).unwrap();
        std::fs::write(native.join(own).join(name(i)), &text).unwrap();
    }

    println!(
        "## view vs native ext4 ({sessions} sessions, {pairs} pairs of native then view; release build)\n"
    );

    // FERRY_BENCH_ONLY=read|append|list runs one part (for a profile); the others get no pairs.
    let only = std::env::var("FERRY_BENCH_ONLY").ok();
    let runs = |part: &str| {
        if only.as_deref().is_none_or(|o| o == part) {
            pairs
        } else {
            0
        }
    };

    // 1. Reading a 20 MB transcript.
    let view_big = upper.join(&fslug).join("big.jsonl");
    let big_len = std::fs::metadata(&nat_big).unwrap().len() as usize;
    let own_big = Path::new(side).join("big.jsonl");
    std::fs::write(upper.join(&own_big), expand(&big)).unwrap();
    std::fs::write(native.join(&own_big), expand(&big)).unwrap();
    let read_mb_s = |path: &Path, cold: bool| {
        if cold {
            drop_caches();
        }
        let (n, d) = timed(|| read_all(path));
        assert_eq!(n, big_len, "the whole file, its size exact");
        mb_s(n, d)
    };
    let (mut first, mut cold, mut warm, mut own_cold, mut own_warm) = (
        Pairs::new(),
        Pairs::new(),
        Pairs::new(),
        Pairs::new(),
        Pairs::new(),
    );
    // The floor's copy of the transcript, and where its mirror is mounted.
    let floor_src = bench.dir.path().join("floor-src");
    let floor_mnt = bench.dir.path().join("floor-mnt");
    std::fs::create_dir_all(&floor_src).unwrap();
    std::fs::create_dir_all(&floor_mnt).unwrap();
    std::fs::write(floor_src.join("big.jsonl"), expand(&big)).unwrap();
    let (mut floor_cold, mut floor_warm) = (Pairs::new(), Pairs::new());
    for _ in 0..runs("read") {
        // The first read ever on this machine: the disk cache is empty, so it expands first.
        let n = read_mb_s(&nat_big, true);
        let live = bench.mount(true, Behind::Engine);
        first.push(n, read_mb_s(&view_big, true));
        bench.unmount(live);
        // A new mount (the kernel's caches empty) with the disk cache kept.
        let live = bench.mount(false, Behind::Engine);
        cold.push(read_mb_s(&nat_big, true), read_mb_s(&view_big, true));
        // Warm: each side read once more right before, so its own pages are in the cache.
        let warm_of = |p: &Path| {
            read_mb_s(p, false);
            read_mb_s(p, false)
        };
        warm.push(warm_of(&nat_big), warm_of(&view_big));
        own_cold.push(
            read_mb_s(&native.join(&own_big), true),
            read_mb_s(&upper.join(&own_big), true),
        );
        own_warm.push(
            warm_of(&native.join(&own_big)),
            warm_of(&upper.join(&own_big)),
        );
        bench.unmount(live);
        let mirror = floor::Floor::mount(&floor_src, &floor_mnt);
        let floor_big = floor_mnt.join("big.jsonl");
        floor_cold.push(read_mb_s(&nat_big, true), read_mb_s(&floor_big, true));
        floor_warm.push(warm_of(&nat_big), warm_of(&floor_big));
        drop(mirror);
    }
    table(
        &format!(
            "### Reading a 20 MB transcript (MB/s; view/native over {pairs} pairs: higher is better)"
        ),
        "read",
        &[
            (
                &first,
                "another machine's, first read on this machine (expands it), cold",
            ),
            (&cold, "another machine's, disk cache kept, new mount, cold"),
            (&warm, "another machine's, warm"),
            (&own_cold, "this machine's, new mount, cold"),
            (&own_warm, "this machine's, warm"),
            (
                &floor_cold,
                "the floor: a FUSE daemon that only preads, new mount, cold",
            ),
            (&floor_warm, "the floor, warm"),
        ],
        0,
    );

    // 2. The append cycle.
    let cycles = 2000;
    let payload = {
        let mut l = line(1, 2048, &a_root).into_bytes();
        l.truncate(2047);
        l.push(b'\n');
        l
    };
    let append = |path: &Path| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        f.write_all(&payload).unwrap();
    };
    // `cycles` cycles after 200 untimed ones: the p50 and p99 in µs.
    let cycle = |path: &Path| -> (f64, f64) {
        for _ in 0..200 {
            append(path);
        }
        let mut lat: Vec<f64> = (0..cycles)
            .map(|_| {
                let t = Instant::now();
                append(path);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (pct(&lat, 0.5), pct(&lat, 0.99))
    };
    // One request to the daemon and back (statfs always reaches it): this machine's floor.
    let round_trip = |path: &Path| -> f64 {
        let mut lat: Vec<f64> = (0..cycles)
            .map(|_| {
                let t = Instant::now();
                nix::sys::statvfs::statvfs(path).unwrap();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        pct(&lat, 0.5)
    };
    let (mut engine_p50, mut engine_p99, mut alone_p50, mut theirs_p50, mut rt) = (
        Pairs::new(),
        Pairs::new(),
        Pairs::new(),
        Pairs::new(),
        Pairs::new(),
    );
    let (mut unaligned_p50, mut floor_p50) = (Pairs::new(), Pairs::new());
    // Whole-file comparisons of a copy with the store's versions during the appends to
    // another machine's session: what an append must not cost.
    let mut compared = 0;
    for k in 0..runs("append") {
        let own_file =
            |dir: &Path, what: &str| dir.join(side).join(format!("append-{what}-{k}.jsonl"));
        // Another machine's session, appended to here: the first append copies it up.
        let theirs = upper.join(&fslug).join("theirs").join(appended(k));
        let nat_theirs = native.join(&fslug).join("theirs").join(appended(k));
        let live = bench.mount(false, Behind::Engine);
        let (n50, n99) = cycle(&own_file(&native, "engine"));
        let (v50, v99) = cycle(&own_file(&upper, "engine"));
        engine_p50.push(n50, v50);
        engine_p99.push(n99, v99);
        let n = cycle(&nat_theirs).0;
        let fs = live.mounted.as_ref().expect("mounted").fs().clone();
        let before = fs.comparisons();
        theirs_p50.push(n, cycle(&theirs).0);
        compared += fs.comparisons() - before;
        rt.push(round_trip(&native), round_trip(&upper));
        bench.unmount(live);
        let live = bench.mount(false, Behind::Nothing);
        let n = cycle(&own_file(&native, "alone")).0;
        alone_p50.push(n, cycle(&own_file(&upper, "alone")).0);
        // The same from a file of 1,000 bytes: every other 2 KB append crosses into a page the
        // kernel does not hold whole, and goes to the daemon as two WRITE requests.
        for dir in [&native, &upper] {
            std::fs::write(own_file(dir, "unaligned"), vec![b'\n'; 1000]).unwrap();
        }
        let n = cycle(&own_file(&native, "unaligned")).0;
        unaligned_p50.push(n, cycle(&own_file(&upper, "unaligned")).0);
        bench.unmount(live);
        // The mirror creates nothing: its file is there, empty, as the native one starts.
        std::fs::write(floor_src.join(format!("append-{k}.jsonl")), b"").unwrap();
        let mirror = floor::Floor::mount(&floor_src, &floor_mnt);
        let n = cycle(&own_file(&native, "floor")).0;
        floor_p50.push(n, cycle(&floor_mnt.join(format!("append-{k}.jsonl"))).0);
        drop(mirror);
        assert_eq!(
            std::fs::metadata(own_file(&upper, "engine")).unwrap().len(),
            ((cycles + 200) * payload.len()) as u64,
            "every append landed"
        );
    }
    table(
        &format!(
            "\n### Append cycle: open O_APPEND, write 2 KB, close ({cycles} cycles after 200 untimed, µs; lower is better)"
        ),
        "append",
        &[
            (
                &engine_p50,
                "p50, this machine's session, engine committing behind",
            ),
            (&engine_p99, "p99, the same"),
            (
                &alone_p50,
                "p50, this machine's session, nothing behind the view",
            ),
            (
                &unaligned_p50,
                "p50, the same from a 1,000-byte file (half the appends cross a page: two WRITEs)",
            ),
            (
                &theirs_p50,
                "p50, another machine's session (the first append copies it up)",
            ),
            (
                &floor_p50,
                "p50, the floor: a FUSE daemon that only pwrites, the same cycle",
            ),
            (
                &rt,
                "statfs p50: one request to the daemon (which stats its upper layer)",
            ),
        ],
        1,
    );

    if runs("append") > 0 {
        println!(
            "\nWhole-file comparisons with the store's versions during the {} appends to another machine's sessions: {compared}",
            runs("append") * (cycles + 200)
        );
    }

    // 3. Listing the sessions, cold.
    let list_ms = |d: &Path| {
        drop_caches();
        let (n, t) = timed(|| list_sessions(d));
        assert!(n > 0);
        t.as_secs_f64() * 1e3
    };
    let (mut first, mut cold, mut own_cold) = (Pairs::new(), Pairs::new(), Pairs::new());
    let view_list = upper.join(&fslug).join("list");
    for _ in 0..runs("list") {
        let n = list_ms(&nat_list);
        let live = bench.mount(true, Behind::Engine);
        first.push(n, list_ms(&view_list));
        bench.unmount(live);
        let live = bench.mount(false, Behind::Engine);
        cold.push(list_ms(&nat_list), list_ms(&view_list));
        own_cold.push(list_ms(&native.join(own)), list_ms(&upper.join(own)));
        bench.unmount(live);
    }
    table(
        &format!(
            "\n### Listing {sessions} sessions: readdir + stat + first and last 64 KiB of each (cold, ms; lower is better)"
        ),
        "listing",
        &[
            (
                &first,
                "another machine's sessions, first time on this machine (expands all)",
            ),
            (
                &cold,
                "another machine's sessions, new mount, disk cache kept",
            ),
            (&own_cold, "this machine's sessions, new mount"),
        ],
        1,
    );
}

/// Prints one table: its heading, then a row per figure (`digits` after the point).
fn table(heading: &str, what: &str, rows: &[(&Pairs, &str)], digits: usize) {
    if rows.iter().all(|(p, _)| p.native.is_empty()) {
        return; // a part left out by FERRY_BENCH_ONLY
    }
    println!("{heading}\n");
    println!("| {what} | native | view | view/native, median | range |\n|---|---:|---:|---:|---:|");
    for (pairs, name) in rows {
        println!("{}", pairs.row(name, digits));
    }
}

/// The `p` quantile of sorted `v`.
fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}
