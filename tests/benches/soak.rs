//! A bounded soak (issue 8): three machines with real mounts write Claude Code-like patterns at
//! random for a while against one `git daemon` remote that goes down at random, then the remote
//! stays up and every acknowledged line and file must reach every machine. Prints what it did.
//!
//! `cargo build --release -p ferry-cli && cargo bench -p ferry-tests --bench soak` as root.
//! Env: FERRY_SOAK_SECS (default 120), FERRY_SOAK_SEED (default: the clock; printed).

use ferry_tests::ferry::Machine;
use ferry_tests::rig::{GitDaemon, eventually};
use ferry_tests::rng::{XorShift, seed};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What one machine did and must see everywhere afterwards.
#[derive(Default)]
struct Log {
    /// Acknowledged lines, by transcript name.
    lines: BTreeMap<String, BTreeSet<String>>,
    /// Files this machine owns and their last content; `None`: deleted.
    files: BTreeMap<String, Option<String>>,
    /// Operations by kind.
    ops: BTreeMap<&'static str, usize>,
    /// Bytes acknowledged.
    bytes: usize,
    /// Writes that failed (none may).
    failed: Vec<String>,
}

/// The project's dir in `m`'s view.
fn project(m: &Machine) -> PathBuf {
    let proj = m.home.join("work/proj");
    m.projects()
        .join(ferry_sync::slug::slug(proj.to_str().expect("UTF-8")))
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// One machine's writer: appends to its own sessions and to a shared one, rewrites and
/// atomically replaces (write a temp file, rename) files of its own, and deletes some.
fn writer(m: &Machine, name: &str, seed: u64, stop: &AtomicBool) -> Log {
    let mut rng = XorShift(seed);
    let mut log = Log::default();
    let dir = project(m);
    let cwd = m.home.join("work/proj");
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let roll = rng.below(100);
        let result = if roll < 70 {
            // Append a line to one of three own sessions or the shared one.
            let session = match rng.below(4) {
                0 => "shared.jsonl".to_string(),
                k => format!("{name}-{k}.jsonl"),
            };
            let uuid = format!("{name}-{n:07}");
            let line = format!(
                "{}\n",
                serde_json::json!({"uuid": uuid, "cwd": cwd, "type": "user",
                    "message": {"content": "z".repeat(64 + rng.below(2000) as usize)}})
            );
            *log.ops.entry("append").or_default() += 1;
            append(&dir.join(&session), &line).map(|()| {
                log.bytes += line.len();
                log.lines.entry(session).or_default().insert(uuid);
            })
        } else if roll < 85 {
            // Rewrite a file in place.
            let file = format!("{name}-notes-{}.md", rng.below(3));
            let text = format!("{name} note {n} in {}\n", cwd.display());
            *log.ops.entry("rewrite").or_default() += 1;
            std::fs::write(dir.join(&file), &text).map(|()| {
                log.bytes += text.len();
                log.files.insert(file, Some(text));
            })
        } else if roll < 95 {
            // Replace a file atomically, as editors and Claude Code's settings writes do.
            let file = format!("{name}-state-{}.json", rng.below(3));
            let text = format!("{{\"n\":{n},\"by\":\"{name}\"}}\n");
            let tmp = dir.join(format!("{file}.tmp.{n}"));
            *log.ops.entry("rename").or_default() += 1;
            std::fs::write(&tmp, &text)
                .and_then(|()| std::fs::rename(&tmp, dir.join(&file)))
                .map(|()| {
                    log.bytes += text.len();
                    log.files.insert(file, Some(text));
                })
        } else {
            // Delete one of its files, if there is one.
            let existing: Vec<String> = log
                .files
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k.clone())
                .collect();
            if existing.is_empty() {
                continue;
            }
            let file = existing[rng.below(existing.len() as u64) as usize].clone();
            *log.ops.entry("delete").or_default() += 1;
            std::fs::remove_file(dir.join(&file)).map(|()| {
                log.files.insert(file, None);
            })
        };
        if let Err(e) = result {
            log.failed.push(format!("{name} op {n}: {e}"));
        }
        std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
    }
    log
}

/// What `m`'s view lacks or has wrong of everything in `logs`.
fn differences(m: &Machine, logs: &[Log]) -> Vec<String> {
    let dir = project(m);
    let mut out = Vec::new();
    let mut want_lines: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for log in logs {
        for (session, uuids) in &log.lines {
            want_lines
                .entry(session)
                .or_default()
                .extend(uuids.iter().map(String::as_str));
        }
    }
    for (session, want) in want_lines {
        let text = std::fs::read_to_string(dir.join(session)).unwrap_or_default();
        let mut have = BTreeSet::new();
        for l in text.lines() {
            match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) => {
                    if let Some(u) = v["uuid"].as_str()
                        && !have.insert(u.to_string())
                    {
                        out.push(format!("{session}: {u} twice"));
                    }
                }
                Err(_) => out.push(format!("{session}: a torn line")),
            }
        }
        let missing = want.iter().filter(|u| !have.contains(**u)).count();
        if missing > 0 {
            out.push(format!("{session}: {missing} lines missing"));
        }
    }
    for log in logs {
        for (file, want) in &log.files {
            let have = std::fs::read_to_string(dir.join(file)).ok();
            // Other machines' paths are expanded to this machine's.
            let want = want.as_ref().map(|t| {
                let writer_home = t
                    .split(" in ")
                    .nth(1)
                    .and_then(|p| p.strip_suffix("/work/proj\n"));
                match writer_home {
                    Some(h) => t.replace(h, m.home.to_str().expect("UTF-8")),
                    None => t.clone(),
                }
            });
            if have != want {
                out.push(format!("{file}: {have:?} instead of {want:?}"));
            }
        }
    }
    out
}

fn main() {
    let secs: u64 = std::env::var("FERRY_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let seed = seed("FERRY_SOAK_SEED");
    println!("soak: 3 machines, {secs} s, FERRY_SOAK_SEED={seed}");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut remote = GitDaemon::start(&tmp.path().join("remote"));
    let machines: Vec<(String, Machine)> = [
        ("alice", "home/alice"),
        ("bob", "Users/bob"),
        ("carol", "home/carol"),
    ]
    .into_iter()
    .map(|(name, home)| {
        let base = tmp.path().join(name);
        let m = Machine::at(base.join(home), base.join("state"));
        std::fs::create_dir_all(m.home.join("work/proj")).expect("project dir");
        m.ok(&["init", "--machine", name, "--remote", &remote.url()]);
        m.ok(&["mount"]);
        std::fs::create_dir_all(project(&m)).expect("project's session dir");
        (name.to_string(), m)
    })
    .collect();
    let stop = AtomicBool::new(false);
    let mut rng = XorShift(seed ^ 0x5eed);
    let mut outages = 0;
    let mut down_for = Duration::ZERO;
    let start = Instant::now();
    let logs: Vec<Log> = std::thread::scope(|s| {
        let handles: Vec<_> = machines
            .iter()
            .enumerate()
            .map(|(i, (name, m))| {
                let stop = &stop;
                s.spawn(move || writer(m, name, seed.wrapping_add(i as u64 * 7919), stop))
            })
            .collect();
        while start.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(2000 + rng.below(8000)));
            if start.elapsed() >= Duration::from_secs(secs) {
                break;
            }
            let outage = Duration::from_millis(1000 + rng.below(6000));
            remote.down();
            outages += 1;
            std::thread::sleep(outage);
            down_for += outage;
            remote.up();
        }
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("a writer"))
            .collect()
    });
    let ended = Instant::now();
    let converged = eventually(Duration::from_secs(180), || {
        machines
            .iter()
            .all(|(_, m)| differences(m, &logs).is_empty())
    });
    let settle = ended.elapsed();
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for log in &logs {
        for (k, v) in &log.ops {
            *ops.entry(k).or_default() += v;
        }
    }
    let lines: usize = logs
        .iter()
        .map(|l| l.lines.values().map(BTreeSet::len).sum::<usize>())
        .sum();
    let bytes: usize = logs.iter().map(|l| l.bytes).sum();
    let failed: Vec<&String> = logs.iter().flat_map(|l| &l.failed).collect();
    println!(
        "  operations: {} ({ops:?}); acknowledged: {lines} lines, {bytes} bytes",
        ops.values().sum::<usize>()
    );
    println!(
        "  remote outages: {outages}, {:.0} s down in all",
        down_for.as_secs_f64()
    );
    println!("  failed writes: {}", failed.len());
    println!(
        "  every machine holds every acknowledged line and file: {} ({:.1} s after the writers stopped)",
        if converged { "yes" } else { "NO" },
        settle.as_secs_f64()
    );
    for (name, m) in &machines {
        let diff = differences(m, &logs);
        println!("  {name}: {} differences", diff.len());
        for d in diff.iter().take(5) {
            println!("    {d}");
        }
        let pid = m.daemon_pid();
        println!(
            "    daemon alive: {}",
            pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
        );
        m.ok(&["unmount"]);
    }
    for f in failed.iter().take(5) {
        println!("  {f}");
    }
    assert!(
        converged && failed.is_empty(),
        "the soak lost or broke something"
    );
}
