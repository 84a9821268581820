//! The index patched by what changed is the index a build gives (`fs/src/foreign/patch.rs`):
//! a reference-model test over random histories of three machines' branches, in memory. Each
//! step changes one file of one machine (written, deleted with a tombstone, or gone from the
//! branch), in one of several projects and places, transcripts, other files and satellites.
//! After every step the index patched from the last one must equal a fresh build, and a
//! patch must be taken for most steps (else the test would pass by always building).

#[path = "../../sync/tests/common/mod.rs"]
mod common;

use common::{linux_machine, project};
use ferry_fs::foreign::{Foreign, ForeignFile};
use ferry_fs::places::PlaceBook;
use ferry_sync::store::{
    FileEntry, FileMeta, FileState, MachineRecord, Oid, ProjectDir, RelPath, Snapshot, fnv1a,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const KEYS: [&str; 3] = ["github.com/o/k0", "github.com/o/k1", "github.com/o/k1//sub"];
const RELS: [&str; 7] = [
    "s0.jsonl",
    "s1.jsonl",
    "s0/subagents/agent-1.jsonl",
    "notes.md",
    ".ferry-sat/tasks/s0/1.json",
    ".ferry-sat/history.jsonl",
    // Only in the first state: every machine's every place has one, so that most steps change
    // a project the index already placed.
    "seed.jsonl",
];

#[derive(Clone, Debug)]
enum Step {
    Write {
        m: usize,
        key: usize,
        place: usize,
        rel: usize,
        mtime: i64,
    },
    Delete {
        m: usize,
        key: usize,
        place: usize,
        rel: usize,
        at: i64,
    },
    Drop {
        m: usize,
        key: usize,
        place: usize,
        rel: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let (m, k, p, r) = (0..3usize, 0..3usize, 0..2usize, 0..6usize);
    prop_oneof![
        4 => (m.clone(), k.clone(), p.clone(), r.clone(), 1..50i64)
            .prop_map(|(m, key, place, rel, mtime)| Step::Write { m, key, place, rel, mtime }),
        1 => (m.clone(), k.clone(), p.clone(), r.clone(), 1..50i64)
            .prop_map(|(m, key, place, rel, at)| Step::Delete { m, key, place, rel, at }),
        1 => (m, k, p, r).prop_map(|(m, key, place, rel)| Step::Drop { m, key, place, rel }),
    ]
}

/// Each machine's files: (key, place, rel) to (meta, content id).
type Branches = Vec<BTreeMap<(usize, usize, usize), (FileMeta, u64)>>;

fn machines() -> Vec<MachineRecord> {
    vec![
        linux_machine("aaaa", "/home/a"),
        linux_machine("bbbb", "/home/b"),
        linux_machine("cccc", "/home/c"),
    ]
}

fn root(m: &MachineRecord, key: usize, place: usize) -> String {
    let base = format!("{}/src/k{}", m.home, key.min(1));
    let base = if key == 2 {
        format!("{base}/sub")
    } else {
        base
    };
    match place {
        0 => base,
        _ => format!("{base}/.claude/worktrees/w"),
    }
}

fn oid(bytes: &[u8]) -> Oid {
    let h = fnv1a(bytes).to_le_bytes();
    let mut id = [0u8; 20];
    for (i, b) in id.iter_mut().enumerate() {
        *b = h[i % 8] ^ (i as u8);
    }
    Oid::from_bytes(&id).unwrap()
}

/// The machines' snapshots, each project dir with a tree id that changes with its files.
fn snapshots(ms: &[MachineRecord], branches: &Branches) -> Vec<Snapshot> {
    ms.iter()
        .zip(branches)
        .map(|(m, files)| {
            let mut dirs: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
            for (&(key, place, rel), &(meta, content)) in files {
                let p = project(KEYS[key], &root(m, key, place));
                let name = format!("{}@{}", p.key, p.slug);
                dirs.entry(name).or_default().push(FileEntry {
                    project: p,
                    rel: RelPath::new(RELS[rel]).unwrap(),
                    meta,
                    tree: oid(format!("{}{content}{rel}", m.id).as_bytes()),
                });
            }
            let mut snap = Snapshot {
                commit: oid(format!("{}{files:?}", m.id).as_bytes()),
                machine: m.clone(),
                files: Vec::new(),
                rejected: Vec::new(),
                dirs: Vec::new(),
            };
            for (name, files) in dirs {
                let from = snap.files.len();
                let tree = oid(format!("{name}{files:?}").as_bytes());
                snap.files.extend(files);
                snap.dirs.push(ProjectDir {
                    name,
                    tree,
                    files: from..snap.files.len(),
                });
            }
            snap
        })
        .collect()
}

fn file(f: &ForeignFile) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        f.key, f.slug, f.rel, f.fingerprint, f.mtime_ms, f.theirs_ms, f.has_own
    )
}

/// What a reader of the index can see, in one comparable form.
fn seen(f: &Foreign) -> String {
    let mut out = String::new();
    let mut slugs = std::collections::BTreeSet::new();
    for (what, map) in [
        ("file", &f.files),
        ("moved", &f.moved),
        ("satellite", &f.satellites),
        ("history", &f.histories),
    ] {
        for (p, x) in map {
            out.push_str(&format!("{what} {p}: {}\n", file(x)));
            slugs.insert(x.slug.clone());
        }
    }
    let mut dirs: Vec<_> = f.dirs.iter().collect();
    dirs.sort();
    out.push_str(&format!("dirs {dirs:?}\n"));
    let mut placements: Vec<_> = f.placements.iter().collect();
    placements.sort_by(|a, b| a.0.cmp(b.0));
    out.push_str(&format!("placements {placements:?}\n"));
    for s in slugs {
        out.push_str(&format!("home {s}: {:?}\n", f.homes.get(&s)));
    }
    let mut projects: Vec<_> = f.projects_by_slug.iter().collect();
    projects.sort_by(|a, b| a.0.cmp(b.0));
    out.push_str(&format!(
        "projects {projects:?}\nrejected {:?}\n",
        f.rejected
    ));
    out
}

/// Each view path's file (shown, or a copy listed elsewhere) and its fingerprint.
fn fingerprints(f: &Foreign) -> BTreeMap<String, (bool, u64)> {
    let files = f
        .files
        .iter()
        .map(|(p, x)| (p.clone(), (true, x.fingerprint)));
    let moved = f
        .moved
        .iter()
        .map(|(p, x)| (p.clone(), (false, x.fingerprint)));
    files.chain(moved).collect()
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let ms = machines();
    let local = &ms[0];
    let mut branches: Branches = vec![BTreeMap::new(); 3];
    for (m, files) in branches.iter_mut().enumerate() {
        for key in 0..3 {
            for place in 0..2 {
                let meta = FileMeta {
                    mtime_ms: 1,
                    mode: 0o600,
                    len: 10,
                    lines: true,
                    state: FileState::Present,
                };
                files.insert((key, place, 6), (meta, m as u64));
            }
        }
    }
    let mut book = PlaceBook::default();
    let mut index = Foreign::from_snapshots(&snapshots(&ms, &branches), local, &[], &mut book);
    let mut patched = 0;
    for (n, s) in steps.iter().enumerate() {
        match *s {
            Step::Write {
                m,
                key,
                place,
                rel,
                mtime,
            } => {
                let meta = FileMeta {
                    mtime_ms: mtime,
                    mode: 0o600,
                    len: 10,
                    lines: RELS[rel].ends_with(".jsonl"),
                    state: FileState::Present,
                };
                branches[m].insert((key, place, rel), (meta, 100 + n as u64));
            }
            Step::Delete {
                m,
                key,
                place,
                rel,
                at,
            } => {
                if let Some((meta, _)) = branches[m].get_mut(&(key, place, rel)) {
                    meta.state = FileState::Deleted { at_ms: at };
                }
            }
            Step::Drop { m, key, place, rel } => {
                branches[m].remove(&(key, place, rel));
            }
        }
        let snaps = snapshots(&ms, &branches);
        let mut built_book = book.clone();
        let built = Foreign::from_snapshots(&snaps, local, &[], &mut built_book);
        match index.plan(&snaps, local, &[], &book) {
            Some(plan) => {
                let before = fingerprints(&index);
                let changed = index.apply(plan);
                patched += 1;
                prop_assert_eq!(seen(&index), seen(&built), "step {}: {:?}", n, s);
                // What the patch says changed is every view path whose file changed, appeared
                // or went: the kernel's caches of exactly those are dropped.
                let after = fingerprints(&built);
                let want: Vec<&String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|p| before.get(*p) != after.get(*p))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let got: Vec<&String> = changed.iter().collect();
                prop_assert_eq!(got, want, "step {}: {:?}", n, s);
            }
            None => {
                book = built_book;
                index = built;
            }
        }
    }
    prop_assert!(
        steps.len() < 8 || patched * 2 >= steps.len(),
        "patched {patched} of {} steps",
        steps.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn the_patched_index_is_the_built_one(steps in prop::collection::vec(step(), 1..40)) {
        run(steps)?;
    }
}
