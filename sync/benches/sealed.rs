//! What encryption costs (issue 23), plain and sealed in one run, on the same data:
//! - a commit after a 1 KB append to a 50 MB transcript, and its push (sealing only what the
//!   append changed), and the sealing of that transcript when it was new;
//! - each machine's first push of its 1,000 sessions, sealing included;
//! - a new machine's first transfer of 1,000 sessions from each of 3 machines (fetch, and
//!   opening what came, for the sealed store);
//! - fetch plus merge after each of the 3 machines appended to 100 of its sessions.
//!
//! `cargo bench -p ferry-sync --bench sealed`. Target: at most 1.2x the plain figures.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{dir_size, git, remote_snapshots};
use ferry_sync::crypt::sealing::{SEALED_PREFIX, Sealing};
use ferry_sync::crypt::{StoreKey, StoreKeys};
use ferry_sync::store::{
    Batch, Change, FileUpdate, MachineRecord, ProjectRecord, REMOTE_PREFIX, RelPath, Store,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SESSIONS: usize = 1000;

fn line(root: &str, s: usize, i: usize, who: &str) -> String {
    format!(
        "{{\"cwd\":\"{root}\",\"sessionId\":\"s{s}\",\"uuid\":\"{who}-{s}-{i}\",\"message\":{{\"content\":\"step {i} of session {s}: read {root}/src/m{i}.rs and ran cargo test -p ferry-sync; all green, {}\"}}}}\n",
        "and the next step follows ".repeat(i % 7)
    )
}

/// One machine: its store, records and upper dir.
struct Machine {
    store: Store,
    m: MachineRecord,
    p: ProjectRecord,
    upper: PathBuf,
}

impl Machine {
    fn new(dir: &Path, id: &str, home: &str) -> Machine {
        let root = format!("{home}/src/proj");
        let upper = dir.join(format!("{id}-upper"));
        std::fs::create_dir_all(&upper).unwrap();
        Machine {
            store: Store::init(&dir.join(format!("{id}.git"))).unwrap(),
            m: common::linux_machine(id, home),
            p: common::project("github.com/o/proj", &root),
            upper,
        }
    }

    /// Commits `files` (name, where the change began) as written in the upper dir.
    fn commit(&self, files: &[(String, Option<u64>)]) -> Duration {
        let files = files
            .iter()
            .map(|(name, from)| FileUpdate {
                place: self.p.place(),
                rel: RelPath::new(name).unwrap(),
                change: Change::Write {
                    local: self.upper.join(name),
                    dirty_from: *from,
                },
            })
            .collect();
        let t = Instant::now();
        self.store
            .commit(
                &self.m,
                &Batch {
                    projects: vec![self.p.clone()],
                    files,
                },
            )
            .unwrap();
        t.elapsed()
    }

    /// Appends `text` to `name`; where it began.
    fn append(&self, name: &str, text: &str) -> u64 {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.upper.join(name))
            .unwrap();
        let at = f.metadata().unwrap().len();
        f.write_all(text.as_bytes()).unwrap();
        at
    }

    /// Pushes this machine's branch to `remote` (sealed with `sealing`, if given): the time of
    /// sealing, and of the push.
    fn push(&self, remote: &Path, sealing: Option<&Sealing>) -> (Duration, Duration) {
        let t = Instant::now();
        let source = match sealing {
            Some(s) => s
                .seal_own(&self.store, &self.m.id)
                .unwrap()
                .unwrap()
                .to_string(),
            None => format!("refs/heads/machines/{}", self.m.id),
        };
        let sealed = t.elapsed();
        let t = Instant::now();
        let spec = format!("+{source}:refs/heads/machines/{}", self.m.id);
        git(
            self.store.repo().path(),
            &["push", "-q", remote.to_str().unwrap(), &spec],
        );
        (sealed, t.elapsed())
    }
}

fn bare(dir: &Path, name: &str) -> PathBuf {
    let remote = dir.join(name);
    git(dir, &["init", "-q", "--bare", remote.to_str().unwrap()]);
    remote
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Fetches every branch of `remote` into `store` and, sealed, opens them; then reads every
/// branch and every file's merged view. The times of the fetch, the opening and the rest.
fn fetch_and_merge(store: &Store, remote: &Path, sealing: Option<&Sealing>) -> (f64, f64, f64) {
    let dest = match sealing {
        Some(_) => SEALED_PREFIX,
        None => REMOTE_PREFIX,
    };
    let t = Instant::now();
    let spec = format!("+refs/heads/machines/*:{dest}*");
    git(
        store.repo().path(),
        &["fetch", "-q", remote.to_str().unwrap(), &spec],
    );
    let fetched = t.elapsed();
    let t = Instant::now();
    if let Some(s) = sealing {
        let failed = s.open_fetched(store, false).unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let opened = t.elapsed();
    let t = Instant::now();
    let store = Store::open(store.repo().path()).unwrap();
    let snaps = remote_snapshots(&store);
    let paths = common::all_paths(&snaps);
    let mut bytes = 0;
    for rel in &paths {
        let view = ferry_sync::view::view_of(&snaps, "dddd", "github.com/o/proj", rel);
        bytes += view.read(&store).unwrap().len();
    }
    assert!(bytes > 0);
    (ms(fetched), ms(opened), ms(t.elapsed()))
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = StoreKeys::new(StoreKey::generate());

    // 1. A 1 KB append to a 50 MB transcript: commit, then seal and push.
    let (plain_remote, sealed_remote) = (bare(dir, "plain.git"), bare(dir, "sealed.git"));
    let (pa, sa) = (
        Machine::new(&dir.join("p"), "aaaa", "/home/al"),
        Machine::new(&dir.join("s"), "aaaa", "/home/al"),
    );
    let big: String = (0..)
        .map(|i| line(&pa.p.root, 0, i, "a"))
        .scan(0usize, |n, l| {
            *n += l.len();
            (*n < 50 << 20).then_some(l)
        })
        .collect();
    let sealing = Sealing::new(keys.clone());
    for m in [&pa, &sa] {
        m.append("big.jsonl", &big);
        m.commit(&[("big.jsonl".into(), None)]);
    }
    pa.push(&plain_remote, None);
    let (first_seal, _) = sa.push(&sealed_remote, Some(&sealing));
    let (mut commit, mut plain_push, mut seal, mut sealed_push, mut sealed_commit) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..15 {
        let text: String = (0..3)
            .map(|k| line(&pa.p.root, 1, i * 3 + k, "b"))
            .collect();
        let text = &text[..text.len().min(1024)];
        for (m, sealed) in [(&pa, false), (&sa, true)] {
            let from = m.append("big.jsonl", text);
            let took = m.commit(&[("big.jsonl".into(), Some(from))]);
            if sealed {
                sealed_commit.push(ms(took));
                let (s, p) = m.push(&sealed_remote, Some(&sealing));
                seal.push(ms(s));
                sealed_push.push(ms(p));
            } else {
                commit.push(ms(took));
                plain_push.push(ms(m.push(&plain_remote, None).1));
            }
        }
    }
    let (c, sc, s, pp, sp) = (
        median(commit),
        median(sealed_commit),
        median(seal),
        median(plain_push),
        median(sealed_push),
    );
    println!("## Encryption's cost, plain and sealed in one run\n");
    println!("### A 1 KB append to a 50 MB transcript (p50 of 15, ms)\n");
    println!("| step | plain | sealed | sealed/plain |\n|---|---:|---:|---:|");
    println!("| commit | {c:.2} | {sc:.2} | |");
    println!("| sealing the new commit | | {s:.2} | |");
    println!("| push to a local bare remote | {pp:.2} | {sp:.2} | |");
    println!(
        "| commit + seal + push | {:.2} | {:.2} | {:.2}x |",
        c + pp,
        sc + s + sp,
        (sc + s + sp) / (c + pp)
    );
    println!(
        "| remote size after the 16 commits | {:.1} MB | {:.1} MB | {:.2}x |",
        dir_size(&plain_remote) as f64 / 1e6,
        dir_size(&sealed_remote) as f64 / 1e6,
        dir_size(&sealed_remote) as f64 / dir_size(&plain_remote) as f64
    );
    println!(
        "| sealing the 50 MB transcript when it was new (one run) | | {:.0} | |",
        ms(first_seal)
    );

    // 2. 1,000 sessions on each of 3 machines: a new machine's first transfer, then a fetch
    // plus merge after each machine appended to 100 of its sessions.
    let (plain_remote, sealed_remote) = (bare(dir, "plain3.git"), bare(dir, "sealed3.git"));
    let mut machines = Vec::new();
    // Each machine's first push: plain, then sealing and the sealed push.
    let mut first_pushes = Vec::new();
    for (id, home) in [
        ("aaaa", "/home/al"),
        ("bbbb", "/Users/bob"),
        ("cccc", "/home/carol"),
    ] {
        let p = Machine::new(&dir.join("p3"), id, home);
        let s = Machine::new(&dir.join("s3"), id, home);
        let mut names = Vec::new();
        for n in 0..SESSIONS {
            let text: String = (0..20).map(|i| line(&p.p.root, n, i, id)).collect();
            let name = format!("s{n}.jsonl");
            p.append(&name, &text);
            s.append(&name, &text);
            names.push((name, None));
        }
        p.commit(&names);
        s.commit(&names);
        let sealing = Sealing::new(keys.clone());
        let (_, plain_push) = p.push(&plain_remote, None);
        let (sealed, sealed_push) = s.push(&sealed_remote, Some(&sealing));
        first_pushes.push((ms(plain_push), ms(sealed), ms(sealed_push)));
        machines.push((p, s, sealing));
    }
    let dp = Store::init(&dir.join("dp.git")).unwrap();
    let ds = Store::init(&dir.join("ds.git")).unwrap();
    let reader = Sealing::new(keys.clone());
    let first_plain = fetch_and_merge(&dp, &plain_remote, None);
    let first_sealed = fetch_and_merge(&ds, &sealed_remote, Some(&reader));
    for (p, s, sealing) in &machines {
        let mut names = Vec::new();
        for n in (0..SESSIONS).step_by(10) {
            let name = format!("s{n}.jsonl");
            let text = line(&p.p.root, n, 99, "more");
            let from = p.append(&name, &text);
            s.append(&name, &text);
            names.push((name, Some(from)));
        }
        p.commit(&names);
        s.commit(&names);
        p.push(&plain_remote, None);
        s.push(&sealed_remote, Some(sealing));
    }
    let next_plain = fetch_and_merge(&dp, &plain_remote, None);
    let next_sealed = fetch_and_merge(&ds, &sealed_remote, Some(&reader));
    println!("\n### 1,000 sessions on each of 3 machines, on a new machine (ms, one run each)\n");
    println!("| step | plain | sealed | sealed/plain |\n|---|---:|---:|---:|");
    let row = |what: &str, p: f64, s: f64| println!("| {what} | {p:.0} | {s:.0} | {:.2}x |", s / p);
    let all = |t: (f64, f64, f64)| t.0 + t.1 + t.2;
    let median_of = |f: fn(&(f64, f64, f64)) -> f64| median(first_pushes.iter().map(f).collect());
    println!(
        "| a machine's first push of its 1,000 sessions: sealing (median of 3) | | {:.0} | |",
        median_of(|t| t.1)
    );
    row(
        "a machine's first push, sealing included (median of 3)",
        median_of(|t| t.0),
        median_of(|t| t.1 + t.2),
    );
    row("first transfer: fetch", first_plain.0, first_sealed.0);
    println!(
        "| first transfer: open what came | | {:.0} | |",
        first_sealed.1
    );
    row(
        "first transfer: read the branches, merge every file",
        first_plain.2,
        first_sealed.2,
    );
    row(
        "first transfer, in all",
        all(first_plain),
        all(first_sealed),
    );
    row(
        "after 100 appends on each machine: fetch",
        next_plain.0,
        next_sealed.0,
    );
    println!(
        "| after 100 appends on each machine: open what came | | {:.0} | |",
        next_sealed.1
    );
    row(
        "after 100 appends on each machine: fetch and merge, in all",
        all(next_plain),
        all(next_sealed),
    );
    println!(
        "| remote size | {:.1} MB | {:.1} MB | {:.2}x |",
        dir_size(&plain_remote) as f64 / 1e6,
        dir_size(&sealed_remote) as f64 / 1e6,
        dir_size(&sealed_remote) as f64 / dir_size(&plain_remote) as f64
    );
    // What the opening leaves on the new machine's disk (its plain objects written here, the
    // sealed ones as fetched), next to the plain store's.
    let (plain_store, sealed_store) = (dir_size(dp.repo().path()), dir_size(ds.repo().path()));
    println!(
        "| the new machine's store | {:.1} MB | {:.1} MB | {:.2}x |",
        plain_store as f64 / 1e6,
        sealed_store as f64 / 1e6,
        sealed_store as f64 / plain_store as f64
    );
}
