//! Months of use (issue 22, item 5): 90 days of a heavy user on three machines, compressed into
//! minutes, once with the 30-day history horizon and once keeping every version. Each day the
//! machines that work append a few hundred turns to sessions from 1 KB up to 50 MB, commit every
//! few turns, push, fetch and fold as the daemon does; the desk and the third machine run Claude
//! Code's 30-day cleanup (their old sessions are deleted, leaving tombstones), the laptop has
//! `cleanupPeriodDays` raised and keeps everything. At days 30, 60 and 90 it reports the size of
//! the desk's store and of the remote (after git's gc there, as a host runs it), and a fourth
//! machine's `ferry init` (its time and what it fetched) next to `git clone --bare --depth 1` of
//! the same tips.
//!
//! The machines are stores driven through `ferry_sync`'s store API with the user's git for the
//! network, dated by a simulated clock (`Store::with_clock`). At each checkpoint the fourth
//! machine then mounts (a real daemon, over a copy of the remote) and its CPU per change, each
//! way, and its memory are measured.
//!
//! `cargo build --release -p ferry-cli && cargo bench -p ferry-tests --bench months`
//! (MONTHS_DAYS, default 90; MONTHS_MB_PER_DAY, default 6; MONTHS_TURNS_PER_DAY, default 300;
//! MONTHS_SEED; MONTHS_HALVES=all or =horizon runs only that half).

#[path = "../../sync/tests/common/mod.rs"]
mod common;

use ferry_sync::engine::GitCli;
use ferry_sync::store::{
    Batch, Change, FileUpdate, MachineRecord, ProjectRecord, RelPath, Store, own_ref,
};
use ferry_tests::rng::XorShift;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;
/// Claude Code's default `cleanupPeriodDays`.
const CLEANUP_DAYS: i64 = 30;
/// The horizon, in days, of the run that folds.
const HORIZON_DAYS: i64 = 30;
/// The largest session.
const LONG_SESSION: u64 = 50 << 20;
/// Turns between commits.
const TURNS_PER_COMMIT: usize = 10;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One simulated machine.
struct Machine {
    record: MachineRecord,
    project: ProjectRecord,
    /// Its project dir in Claude Code's `projects/`.
    dir: PathBuf,
    store_path: PathBuf,
    store: Store,
    /// Claude Code's cleanup period here, `None` where it was raised for good.
    cleanup_days: Option<i64>,
    /// Which days it works (1 of every `every` days).
    every: u64,
    /// The session it keeps going back to, growing up to [`LONG_SESSION`].
    long: Option<String>,
    /// The short session of the moment.
    short: Option<(String, u64)>,
    /// Sessions it made.
    made: u64,
    /// Its commits since its store was last compacted.
    since_compact: u32,
    /// The user's git, as the daemon runs it.
    git: GitCli,
    /// How long each reclaim after a fold took, and each fold.
    reclaim_s: Vec<f64>,
    fold_s: Vec<f64>,
}

impl Machine {
    fn new(
        root: &Path,
        id: &str,
        cleanup_days: Option<i64>,
        every: u64,
        clock: &Arc<AtomicI64>,
    ) -> Machine {
        let home = format!("/home/{id}");
        let record = common::linux_machine(id, &home);
        let project = common::project("github.com/me/app", &format!("{home}/src/app"));
        let dir = root.join(id).join("projects").join(&project.slug);
        std::fs::create_dir_all(&dir).unwrap();
        let store_path = root.join(id).join("store");
        let store = Store::init(&store_path).unwrap().with_clock(clock.clone());
        Machine {
            record,
            project,
            dir,
            store_path,
            store,
            cleanup_days,
            every,
            long: None,
            short: None,
            made: 0,
            since_compact: 0,
            git: GitCli::probe(None).expect("git runs"),
            reclaim_s: Vec::new(),
            fold_s: Vec::new(),
        }
    }

    fn new_session(&mut self) -> String {
        self.made += 1;
        format!("{}-{:05}.jsonl", self.record.id, self.made)
    }

    /// Appends one turn of about `bytes` to a session, dated `now_ms`; returns its name and
    /// the offset the turn began at.
    fn turn(&mut self, rng: &mut XorShift, bytes: u64, now_ms: i64) -> (String, u64) {
        // Most turns go to the long session; the rest to short ones of 1 KB to 2 MB.
        let name = if rng.below(10) < 7 {
            match &self.long {
                Some(n) if size(&self.dir.join(n)) < LONG_SESSION => n.clone(),
                _ => {
                    let n = self.new_session();
                    self.long = Some(n.clone());
                    n
                }
            }
        } else {
            match &self.short {
                Some((n, cap)) if size(&self.dir.join(n)) < *cap => n.clone(),
                _ => {
                    let n = self.new_session();
                    let cap = 1024 << rng.below(12);
                    self.short = Some((n.clone(), cap));
                    n
                }
            }
        };
        let path = self.dir.join(&name);
        let at = size(&path);
        let root = &self.project.root;
        let mut text = format!(
            "{{\"type\":\"user\",\"cwd\":\"{root}\",\"uuid\":\"{:016x}\",\"message\":{{\"content\":\"look at {root}/src/main.rs\"}}}}\n",
            rng.next_u64()
        );
        let mut body = String::new();
        // Words, and now and then an id or a hash as tool output has them: about as
        // compressible as real transcripts (zlib takes them to a third or so).
        while (body.len() as u64) < bytes.saturating_sub(300) {
            if rng.below(4) == 0 {
                body.push_str(&format!("{:08x}", rng.next_u64() as u32));
            } else {
                body.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
            }
            body.push(' ');
        }
        text += &format!(
            "{{\"type\":\"assistant\",\"cwd\":\"{root}\",\"uuid\":\"{:016x}\",\"message\":{{\"content\":\"{body}\"}}}}\n",
            rng.next_u64()
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(now_ms as u64))
            .unwrap();
        (name, at)
    }

    fn commit(&mut self, changes: BTreeMap<String, Change>) {
        if changes.is_empty() {
            return;
        }
        let files = changes
            .into_iter()
            .map(|(name, change)| FileUpdate {
                place: self.project.place(),
                rel: RelPath::new(&name).unwrap(),
                change,
            })
            .collect();
        let batch = Batch {
            projects: vec![self.project.clone()],
            files,
        };
        if self.store.commit(&self.record, &batch).unwrap().is_some() {
            self.since_compact += 1;
        }
    }

    /// Claude Code's cleanup: deletes this machine's sessions untouched for longer than its
    /// period, each leaving a tombstone.
    fn cleanup(&mut self, now_ms: i64) {
        let Some(days) = self.cleanup_days else {
            return;
        };
        let mut gone = BTreeMap::new();
        for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let m = e.metadata().unwrap().modified().unwrap();
            let age = std::time::UNIX_EPOCH + Duration::from_millis(now_ms as u64);
            if age.duration_since(m).unwrap_or_default()
                > Duration::from_millis((days * DAY_MS) as u64)
            {
                std::fs::remove_file(e.path()).unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if self.long.as_ref() == Some(&name) {
                    self.long = None;
                }
                gone.insert(name, Change::Delete { at_ms: now_ms });
            }
        }
        self.commit(gone);
    }

    fn push(&self, url: &str) {
        let own = own_ref(&self.record.id);
        git(
            &self.store_path,
            &["push", "-q", "--force", url, &format!("{own}:{own}")],
        );
        let head = self.store.head(&self.record.id, true).unwrap().unwrap();
        self.store.record_pushed(&self.record.id, head).unwrap();
    }

    fn fetch(&self, url: &str) {
        git(
            &self.store_path,
            &[
                "fetch",
                "-q",
                "--no-auto-gc",
                url,
                "+refs/heads/machines/*:refs/remotes/origin/machines/*",
            ],
        );
        if self.store.pack_count() > 32 {
            git(&self.store_path, &["repack", "-d", "-q", "--geometric=2"]);
        }
    }

    /// What the daemon does about its history at the end of a day: tombstones no machine could
    /// bring back go, history past the horizon is folded and pushed, and compaction reclaims it.
    fn fold(&mut self, url: &str, now_ms: i64) -> bool {
        let horizon = now_ms - HORIZON_DAYS * DAY_MS;
        let id = self.record.id.clone();
        self.store.drop_tombstones(&self.record, horizon).unwrap();
        let t = Instant::now();
        let folded = self
            .store
            .fold_history(&id, horizon, DAY_MS)
            .unwrap()
            .is_some();
        if folded {
            self.fold_s.push(t.elapsed().as_secs_f64());
        }
        if folded {
            self.push(url);
            // What the daemon runs once the fold is pushed (`GitCli::reclaim`).
            let t = Instant::now();
            self.git.reclaim(&self.store).unwrap();
            self.reclaim_s.push(t.elapsed().as_secs_f64());
            self.since_compact = 0;
        }
        folded
    }
}

const WORDS: [&str; 24] = [
    "the", "function", "returns", "a", "value", "error", "test", "passes", "now", "let", "me",
    "check", "file", "build", "cargo", "struct", "impl", "match", "Some", "None", "ok", "fix",
    "line", "change",
];

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn du(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let md = e.metadata().unwrap();
            total += if md.is_dir() { du(&e.path()) } else { md.len() };
        }
    }
    total
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// What one checkpoint measured.
struct Checkpoint {
    day: u64,
    written: u64,
    desk_store: u64,
    remote: u64,
    shallow: u64,
    shallow_s: f64,
    init_s: f64,
    init_store: u64,
    daemon: DaemonCost,
}

/// What the newcomer's daemon cost, mounted over the whole store of the day.
#[derive(Default)]
struct DaemonCost {
    /// Sessions in its view.
    sessions: usize,
    /// CPU seconds per change of the desk's it fetched and showed (its `git` included).
    receive_s: f64,
    /// The share of that in the `git` it ran.
    receive_git_s: f64,
    /// CPU seconds per line written through its view that it committed and pushed.
    send_s: f64,
    /// Peak and final resident set, KiB.
    peak_kib: u64,
    rss_kib: u64,
}

impl DaemonCost {
    /// Its figures as the table's cell.
    fn cell(&self) -> String {
        format!(
            "{} sessions; {:.3} s ({:.3} s) / {:.3} s; {} MiB, {} MiB",
            self.sessions,
            self.receive_s,
            self.receive_git_s,
            self.send_s,
            self.peak_kib / 1024,
            self.rss_kib / 1024
        )
    }
}

/// Changes timed each way at a checkpoint.
const CHANGES: usize = 5;

/// Every file under `dir` named `name`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        if e.file_name() == name {
            return Some(path);
        }
        if e.file_type().ok()?.is_dir()
            && let Some(p) = find(&path, name)
        {
            return Some(p);
        }
    }
    None
}

/// The last 64 KiB of the file at `p` (nothing if it cannot be read), as text.
fn tail(p: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        let len = f.metadata().map_or(0, |m| m.len());
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
        let _ = f.read_to_end(&mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: not within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newcomer `d`, mounted over a copy of the remote (its branch must not reach the real
/// one, whose tombstones would then wait on it): [`CHANGES`] appends of the desk's arrive in
/// its view, and it commits and pushes [`CHANGES`] lines written through its view. The CPU its
/// daemon spent on each, with the `git` it ran, and its memory.
fn daemon_costs(
    d: &Machine2,
    copy: &Path,
    desk: &mut Machine,
    rng: &mut XorShift,
    now_ms: i64,
) -> DaemonCost {
    use ferry_tests::peers::cost;
    let url = format!("file://{}", copy.display());
    let mut mount = d.command(&["mount"]);
    mount.env("FERRY_LOG", "info");
    let out = mount.output().unwrap();
    assert!(out.status.success(), "ferry mount: {out:?}");
    let pid = d.daemon_pid().expect("the daemon runs");
    let sessions = serde_json::from_str::<serde_json::Value>(&d.ok(&["sessions", "--json"]))
        .unwrap()["sessions"]
        .as_array()
        .map_or(0, Vec::len);
    // Settled: the first warming of the view is over.
    std::thread::sleep(Duration::from_secs(3));
    let before = cost::cpu_split(pid);
    let mut last = None;
    let mut arrived = Vec::new();
    for n in 0..CHANGES {
        let (name, _) = desk.turn(rng, 2_000, now_ms + n as i64 * 60_000);
        let local = desk.dir.join(&name);
        let mut batch = BTreeMap::new();
        batch.insert(
            name.clone(),
            Change::Write {
                local: local.clone(),
                dirty_from: None,
            },
        );
        desk.commit(batch);
        desk.push(&url);
        // Arrival is watched in the newcomer's store first, which its daemon does not serve:
        // reading the session through the view and walking the projects every 20 ms (as this
        // bench did until 2026-12-08) cost the daemon more than the change did. Then the
        // session's last 64 KiB are read through the view, as `claude --resume` lists it, until
        // they hold the turn; the whole session is checked after the CPU is taken.
        let head = desk.store.head(&desk.record.id, true).unwrap();
        wait("the change in the newcomer's store", || {
            d.fetched_head(&desk.record.id) == head
        });
        let text = std::fs::read_to_string(&local).unwrap();
        let uuid = text
            .lines()
            .last()
            .and_then(|l| l.split("\"uuid\":\"").nth(1))
            .and_then(|u| u.split('"').next())
            .expect("the turn's uuid")
            .to_string();
        let start = Instant::now();
        while find(&d.projects(), &name).is_none_or(|p| !tail(&p).contains(&uuid)) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{name}'s turn {uuid} not in the newcomer's view within 60 s: {:?}\n{}",
                find(&d.projects(), &name),
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        arrived.push((name.clone(), local.clone()));
        last = Some(name);
    }
    // The refresh that showed the change may still be warming the cache.
    std::thread::sleep(Duration::from_millis(500));
    let after = cost::cpu_split(pid);
    // Paths are expanded to the newcomer's: lines are counted, not bytes.
    let lines =
        |p: &Path| std::fs::read(p).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
    for (name, local) in &arrived {
        let shown = find(&d.projects(), name).expect("listed");
        assert_eq!(lines(&shown), lines(local), "{name} in the newcomer's view");
    }
    let per = |a: Duration, b: Duration| (a - b).as_secs_f64() / CHANGES as f64;
    let receive_s = per(after.0 + after.1, before.0 + before.1);
    let receive_git_s = per(after.1, before.1);
    let id =
        serde_json::from_str::<serde_json::Value>(&d.ok(&["status", "--json"])).unwrap()["machine"]
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let remote = git2::Repository::open_bare(copy).unwrap();
    let there = || {
        remote
            .refname_to_id(&format!("refs/heads/machines/{id}"))
            .ok()
    };
    let session = find(&d.projects(), last.as_deref().unwrap()).unwrap();
    let before = cost::cpu_split(pid);
    for n in 0..CHANGES {
        let was = there();
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&session)
            .unwrap();
        writeln!(f, "{{\"type\":\"user\",\"uuid\":\"d{n:015}\",\"message\":{{\"content\":\"a line from d\"}}}}").unwrap();
        drop(f);
        wait("the newcomer's line on the remote", || {
            there().is_some() && there() != was
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = cost::cpu_split(pid);
    let send_s = per(after.0 + after.1, before.0 + before.1);
    let c = DaemonCost {
        sessions,
        receive_s,
        receive_git_s,
        send_s,
        peak_kib: cost::status_kib(pid, "VmHWM:"),
        rss_kib: cost::status_kib(pid, "VmRSS:"),
    };
    d.ok(&["unmount"]);
    c
}

type Machine2 = ferry_tests::ferry::Machine;

/// A fourth machine's `ferry init` against the remote, and `git clone --depth 1` of it; the
/// machine, set up.
fn newcomer(tmp: &Path, url: &str, day: u64) -> (f64, u64, f64, u64, Machine2) {
    let clone = tmp.join(format!("clone-{day}"));
    let t = Instant::now();
    git(
        tmp,
        &[
            "clone",
            "-q",
            "--bare",
            "--depth",
            "1",
            "--no-single-branch",
            url,
            clone.to_str().unwrap(),
        ],
    );
    let shallow_s = t.elapsed().as_secs_f64();
    let shallow = du(&clone);
    let home = tmp.join(format!("d-{day}"));
    let d = Machine2::at(home.clone(), home.join("state"));
    let mut init = d.command(&["init", "--machine", "d", "--remote", url]);
    init.env_remove("FERRY_LOG");
    let t = Instant::now();
    let out = init.output().unwrap();
    let init_s = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "ferry init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = du(&d.state.join("store"));
    (shallow_s, shallow, init_s, store, d)
}

fn run(
    horizon: bool,
    days: u64,
    bytes_per_day: u64,
    turns_per_day: u64,
    seed: u64,
) -> Vec<Checkpoint> {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    let repo = git2::Repository::init_bare(&remote).unwrap();
    // gc runs there at each checkpoint, as a host's would have by then; not behind each push.
    repo.config()
        .unwrap()
        .set_bool("receive.autogc", false)
        .unwrap();
    let url = format!("file://{}", remote.display());
    let start_ms = 1_767_225_600_000; // 2026-01-01
    let clock = Arc::new(AtomicI64::new(start_ms));
    let mut machines = [
        Machine::new(tmp.path(), "desk", Some(CLEANUP_DAYS), 1, &clock),
        Machine::new(tmp.path(), "laptop", None, 2, &clock),
        Machine::new(tmp.path(), "third", Some(CLEANUP_DAYS), 3, &clock),
    ];
    let mut rng = XorShift(seed | 1);
    let mut written = 0u64;
    let mut out = Vec::new();
    for day in 0..days {
        let day_ms = start_ms + day as i64 * DAY_MS;
        let active: Vec<usize> = (0..machines.len())
            .filter(|&i| day.is_multiple_of(machines[i].every))
            .collect();
        let turns = (turns_per_day / active.len() as u64).max(1);
        let per_turn = bytes_per_day / active.len() as u64 / turns;
        for &i in &active {
            let m = &mut machines[i];
            clock.store(day_ms + 8 * 3_600_000, Ordering::Relaxed);
            m.cleanup(day_ms + 8 * 3_600_000);
            let mut batch = BTreeMap::new();
            for t in 0..turns {
                let now = day_ms + 8 * 3_600_000 + (t as i64 * 10 * 3_600_000) / turns as i64;
                clock.store(now, Ordering::Relaxed);
                let (name, at) = m.turn(&mut rng, per_turn, now);
                written += per_turn;
                let local = m.dir.join(&name);
                batch
                    .entry(name)
                    .and_modify(|c| {
                        if let Change::Write { dirty_from, .. } = c {
                            *dirty_from = dirty_from.map(|d: u64| d.min(at));
                        }
                    })
                    .or_insert(Change::Write {
                        local,
                        dirty_from: Some(at),
                    });
                if (t as usize + 1).is_multiple_of(TURNS_PER_COMMIT) {
                    m.commit(std::mem::take(&mut batch));
                }
            }
            m.commit(batch);
            clock.store(day_ms + 19 * 3_600_000, Ordering::Relaxed);
            m.push(&url);
            m.fetch(&url);
        }
        // Each machine that worked today sees the others' pushes, then folds.
        for &i in &active {
            let m = &mut machines[i];
            m.fetch(&url);
            if horizon {
                m.fold(&url, day_ms + 20 * 3_600_000);
            }
            if m.since_compact >= 1000 {
                // The daemon's `compact_every`, with the user's git.
                m.git.reclaim(&m.store).unwrap();
                m.since_compact = 0;
            }
        }
        let day = day + 1;
        if day.is_multiple_of(30) {
            git(&remote, &["gc", "-q", "--prune=now"]);
            // The newcomer works on a copy: its branch must not reach the remote the three
            // machines go on with.
            let copy = tmp.path().join(format!("copy-{day}.git"));
            git(
                tmp.path(),
                &[
                    "clone",
                    "-q",
                    "--mirror",
                    url.as_str(),
                    copy.to_str().unwrap(),
                ],
            );
            let copy_url = format!("file://{}", copy.display());
            let (shallow_s, shallow, init_s, init_store, d) = newcomer(tmp.path(), &copy_url, day);
            let daemon = daemon_costs(
                &d,
                &copy,
                &mut machines[0],
                &mut XorShift(day | 1),
                day_ms + 21 * 3_600_000,
            );
            drop(d);
            let c = Checkpoint {
                day,
                written,
                desk_store: du(&machines[0].store_path),
                remote: du(&remote),
                shallow,
                shallow_s,
                init_s,
                init_store,
                daemon,
            };
            eprintln!(
                "  day {day}: {:.0} MB written; desk's store {:.1} MB; remote {:.1} MB; shallow clone {:.1} MB in {:.2} s; a new machine's ferry init {:.2} s, store {:.1} MB",
                mb(c.written),
                mb(c.desk_store),
                mb(c.remote),
                mb(c.shallow),
                c.shallow_s,
                c.init_s,
                mb(c.init_store)
            );
            eprintln!("  its daemon: {}", c.daemon.cell());
            out.push(c);
        }
    }
    let times: Vec<f64> = machines.iter().flat_map(|m| m.fold_s.clone()).collect();
    let reclaims: Vec<f64> = machines.iter().flat_map(|m| m.reclaim_s.clone()).collect();
    if !times.is_empty() {
        eprintln!(
            "  {} folds: median {:.3} s, longest {:.3} s; reclaims after them (git repack -a -d, git prune): median {:.2} s, longest {:.2} s",
            times.len(),
            median(&times),
            times.iter().cloned().fold(0.0, f64::max),
            median(&reclaims),
            reclaims.iter().cloned().fold(0.0, f64::max)
        );
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let days = env("MONTHS_DAYS", 90);
    let mb_per_day = env("MONTHS_MB_PER_DAY", 6);
    let turns = env("MONTHS_TURNS_PER_DAY", 300);
    let seed = ferry_tests::rng::seed("MONTHS_SEED");
    eprintln!(
        "months of use: {days} days, {mb_per_day} MB and {turns} turns a day over 3 machines (desk daily, laptop every 2nd day, third every 3rd), sessions 1 KB to 50 MB, Claude Code's 30-day cleanup on desk and third"
    );
    let mut rows = Vec::new();
    // MONTHS_HALVES=all or =horizon runs only that half.
    let halves = std::env::var("MONTHS_HALVES").unwrap_or_default();
    for horizon in [true, false]
        .into_iter()
        .filter(|h| halves.is_empty() || (halves == "horizon") == *h)
    {
        eprintln!(
            "{}:",
            if horizon {
                "with the 30-day horizon"
            } else {
                "keeping every version"
            }
        );
        let t = Instant::now();
        let cps = run(horizon, days, mb_per_day << 20, turns, seed);
        eprintln!("  ({:.0} s)", t.elapsed().as_secs_f64());
        rows.push((horizon, cps));
    }
    println!(
        "| day | history | written | desk's store | remote (after gc) | remote / shallow clone | shallow `git clone --depth 1` | a new machine's `ferry init` | its store | its daemon: sessions; CPU per change received (git's) / per line sent; peak, resident |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (horizon, cps) in &rows {
        for c in cps {
            println!(
                "| {} | {} | {:.0} MB | {:.1} MB | {:.1} MB | {:.2}× | {:.2} s, {:.1} MB | {:.2} s ({:.2}×) | {:.1} MB | {} |",
                c.day,
                if *horizon { "30 days" } else { "all" },
                mb(c.written),
                mb(c.desk_store),
                mb(c.remote),
                c.remote as f64 / c.shallow as f64,
                c.shallow_s,
                mb(c.shallow),
                c.init_s,
                c.init_s / c.shallow_s,
                mb(c.init_store),
                c.daemon.cell()
            );
        }
    }
}
