//! The view against plain ext4, in one run (DESIGN.md's performance targets, issue #4):
//! - reading a 20 MB transcript from another machine, cold and warm;
//! - Claude Code's append cycle (open O_APPEND, write 2 KB, close), p50 and p99;
//! - listing a project of 1,000 sessions: readdir, stat, and the first and last 64 KiB of each.
//!
//! `cargo bench -p ferry-fs --bench view`. Needs root (it mounts, and drops the page cache for the
//! cold figures) and /dev/fuse. The daemon's real sync engine runs behind the mount, committing
//! as it would. FERRY_BENCH_SESSIONS overrides the 1,000; FERRY_BENCH_DIR the scratch dir
//! (default /var/tmp, which must be on the filesystem to compare with).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{B_ROOT, commit_as_b};
use ferry_fs::core::{Fs, FsConfig};
use ferry_fs::upper::Upper;
use ferry_sync::engine::{self, EngineConfig};
use ferry_sync::slug::slug;
use ferry_sync::store::{Change, MachineRecord};
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

/// A live mount over the upper layer, with the real engine behind it.
struct Live {
    mounted: Option<ferry_fs::fuse::Mounted>,
    engine: engine::EngineHandle,
}

impl Bench {
    fn mount(&self, fresh_cache: bool) -> Live {
        let cache = self.dir.path().join("cache");
        if fresh_cache {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let upper = Upper::open(&self.upper).unwrap();
        let _guard = self.runtime.enter();
        let engine = engine::start(
            self.store.clone(),
            self.a.clone(),
            None,
            EngineConfig {
                upper: Some(upper.reach(Path::new(""))),
                ..EngineConfig::default()
            },
        );
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
            Arc::new(engine.clone()),
        )
        .unwrap();
        let mounted =
            ferry_fs::fuse::mount(Arc::new(fs), &self.upper).expect("mount (root, /dev/fuse)");
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
        self.runtime
            .block_on(live.engine.shutdown(Duration::from_secs(5)));
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
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
    for i in 0..sessions {
        let text = expand(&transcript(40_000, B_ROOT, i + 1));
        write_with_mtime(&nat_list.join(name(i)), text.as_bytes(), t0 + i as i64);
    }
    // This machine's own sessions, in the upper layer and natively.
    let own = "-own-project";
    std::fs::create_dir_all(upper.join(own)).unwrap();
    std::fs::create_dir_all(native.join(own)).unwrap();
    for i in 0..sessions {
        let text = transcript(40_000, &a_root, i + 7_000);
        std::fs::write(upper.join(own).join(name(i)), &text).unwrap();
        std::fs::write(native.join(own).join(name(i)), &text).unwrap();
    }

    println!("## view vs native ext4 ({sessions} sessions; release build)\n");

    // 1. Reading the 20 MB transcript from another machine.
    let view_big = upper.join(&fslug).join("big.jsonl");
    let big_len = std::fs::metadata(&nat_big).unwrap().len() as usize;
    let (mut nc, mut nw, mut vf, mut vc, mut vw) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        drop_caches();
        let (n, d) = timed(|| read_all(&nat_big));
        nc.push(mb_s(n, d));
        let (n, d) = timed(|| read_all(&nat_big));
        nw.push(mb_s(n, d));
        // The first read ever on this machine: the disk cache is empty, so it expands first.
        let live = bench.mount(true);
        drop_caches();
        let (n, d) = timed(|| read_all(&view_big));
        assert_eq!(n, big_len, "the view's size is exact");
        vf.push(mb_s(n, d));
        bench.unmount(live);
        // A new mount (the kernel's caches empty) with the disk cache kept.
        let live = bench.mount(false);
        drop_caches();
        let (n, d) = timed(|| read_all(&view_big));
        vc.push(mb_s(n, d));
        let (n, d) = timed(|| read_all(&view_big));
        vw.push(mb_s(n, d));
        bench.unmount(live);
    }
    let (nc, nw) = (median(nc), median(nw));
    let (vf, vc, vw) = (median(vf), median(vc), median(vw));
    println!("### Reading a 20 MB transcript from another machine (median of 3)\n");
    println!("| read | MB/s | vs native |\n|---|---:|---:|");
    println!("| native ext4, cold | {nc:.0} | 1.00x |");
    println!("| native ext4, warm | {nw:.0} | 1.00x |");
    println!(
        "| view, first read (expands into the disk cache) | {vf:.0} | {:.2}x |",
        vf / nc
    );
    println!(
        "| view, cold (new mount, disk cache kept) | {vc:.0} | {:.2}x |",
        vc / nc
    );
    println!("| view, warm | {vw:.0} | {:.2}x |", vw / nw);

    // 2. The append cycle on a session of this machine.
    let cycles = 2000;
    let payload = {
        let mut l = line(1, 2048, &a_root).into_bytes();
        l.truncate(2047);
        l.push(b'\n');
        l
    };
    let cycle = |path: &Path| -> Vec<f64> {
        let mut lat = Vec::with_capacity(cycles);
        for _ in 0..cycles {
            let t = Instant::now();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)
                .unwrap();
            f.write_all(&payload).unwrap();
            drop(f);
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        lat
    };
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    // One request to the daemon and back (statfs always reaches it): this machine's floor.
    let round_trip = |path: &Path| -> Vec<f64> {
        let mut lat: Vec<f64> = (0..cycles)
            .map(|_| {
                let t = Instant::now();
                nix::sys::statvfs::statvfs(path).unwrap();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        lat
    };
    let native_lat = cycle(&native.join(own).join("append.jsonl"));
    let native_rt = round_trip(&native);
    let live = bench.mount(false);
    let view_lat = cycle(&upper.join(own).join("append.jsonl"));
    let view_rt = round_trip(&upper);
    bench.unmount(live);
    assert_eq!(
        std::fs::metadata(upper.join(own).join("append.jsonl"))
            .unwrap()
            .len(),
        (cycles * payload.len()) as u64,
        "every append landed"
    );
    println!("\n### Append cycle: open O_APPEND, write 2 KB, close ({cycles} cycles, µs)\n");
    println!("| | p50 | p99 | p50 vs native |\n|---|---:|---:|---:|");
    println!(
        "| native ext4 | {:.1} | {:.1} | 1.0x |",
        pct(&native_lat, 0.5),
        pct(&native_lat, 0.99)
    );
    println!(
        "| view (upper layer, engine committing behind) | {:.1} | {:.1} | {:.1}x |",
        pct(&view_lat, 0.5),
        pct(&view_lat, 0.99),
        pct(&view_lat, 0.5) / pct(&native_lat, 0.5)
    );
    println!(
        "| statfs, native (no daemon) | {:.1} | {:.1} | |",
        pct(&native_rt, 0.5),
        pct(&native_rt, 0.99)
    );
    println!(
        "| statfs through the view: one bare round trip to the daemon, the floor | {:.1} | {:.1} | |",
        pct(&view_rt, 0.5),
        pct(&view_rt, 0.99)
    );

    // 3. Listing the sessions, cold.
    let list_of = |d: &Path| {
        drop_caches();
        let (n, t) = timed(|| list_sessions(d));
        assert!(n > 0);
        t.as_secs_f64() * 1e3
    };
    let nat_foreign = median((0..3).map(|_| list_of(&nat_list)).collect());
    let nat_own = median((0..3).map(|_| list_of(&native.join(own))).collect());
    let (mut first, mut cold, mut own_cold) = (vec![], vec![], vec![]);
    let view_list = upper.join(&fslug).join("list");
    for _ in 0..3 {
        let live = bench.mount(true);
        first.push(list_of(&view_list));
        bench.unmount(live);
        let live = bench.mount(false);
        cold.push(list_of(&view_list));
        own_cold.push(list_of(&upper.join(own)));
        bench.unmount(live);
    }
    let (first, cold, own_cold) = (median(first), median(cold), median(own_cold));
    println!(
        "\n### Listing {sessions} sessions: readdir + stat + first and last 64 KiB of each (cold, median of 3, ms)\n"
    );
    println!("| listing | ms | vs native |\n|---|---:|---:|");
    println!(
        "| native ext4, another machine's sessions (expanded copies) | {nat_foreign:.1} | 1.0x |"
    );
    println!(
        "| view, another machine's sessions, first time (expands all) | {first:.1} | {:.1}x |",
        first / nat_foreign
    );
    println!(
        "| view, another machine's sessions, new mount (disk cache kept) | {cold:.1} | {:.1}x |",
        cold / nat_foreign
    );
    println!("| native ext4, this machine's sessions | {nat_own:.1} | 1.0x |");
    println!(
        "| view, this machine's sessions (upper layer) | {own_cold:.1} | {:.1}x |",
        own_cold / nat_own
    );
}
