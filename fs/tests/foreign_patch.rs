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

/// The last key's checkout is where the first one's is on every machine: two keys at one slug.
const KEYS: [&str; 4] = [
    "github.com/o/k0",
    "github.com/o/k1",
    "github.com/o/k1//sub",
    "github.com/o/k3",
];
const RELS: [&str; 9] = [
    "s0.jsonl",
    "s1.jsonl",
    "s0/subagents/agent-1.jsonl",
    "notes.md",
    ".ferry-sat/tasks/s0/1.json",
    ".ferry-sat/history.jsonl",
    // A file of one key where another key has a directory.
    "d",
    "d/e.md",
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
    /// The project record of a dir changes, its files not: the checkout's git state (as every
    /// edit there changes it), and for a multiple of 3 its working directory too.
    Record {
        m: usize,
        key: usize,
        place: usize,
        n: u64,
    },
    /// The client starts in a checkout of a key's project on this machine (at a path of its
    /// own, or where one of its places is), which becomes the project's place, as
    /// `Fs::adopt_checkout` does it.
    Adopt { key: usize, at: usize },
}

/// Steps over the first `keys` keys and `rels` rels, adopting checkouts of the first `adopts`
/// keys. (A project whose base has two keys, once moved, leaves places both may file at: every
/// later refresh builds, see `Foreign::slug_shared`.)
fn step(keys: usize, rels: usize, adopts: usize) -> impl Strategy<Value = Step> {
    let (m, k, p, r) = (0..3usize, 0..keys, 0..2usize, 0..rels);
    prop_oneof![
        4 => (m.clone(), k.clone(), p.clone(), r.clone(), 1..50i64)
            .prop_map(|(m, key, place, rel, mtime)| Step::Write { m, key, place, rel, mtime }),
        1 => (m.clone(), k.clone(), p.clone(), r.clone(), 1..50i64)
            .prop_map(|(m, key, place, rel, at)| Step::Delete { m, key, place, rel, at }),
        1 => (m.clone(), k.clone(), p.clone(), r).prop_map(|(m, key, place, rel)| Step::Drop { m, key, place, rel }),
        1 => (m, k.clone(), p, 1..9u64).prop_map(|(m, key, place, n)| Step::Record { m, key, place, n }),
        1 => (0..adopts, 0..3usize).prop_map(|(key, at)| Step::Adopt { key, at }),
    ]
}

/// Each machine's files: (key, place, rel) to (meta, content id).
type Branches = Vec<BTreeMap<(usize, usize, usize), (FileMeta, u64)>>;

/// Each machine's project records changed by a [`Step::Record`]: (key, place) to its `n`.
type Records = Vec<BTreeMap<(usize, usize), u64>>;

/// A present file's metadata.
fn present(mtime_ms: i64, lines: bool) -> FileMeta {
    FileMeta {
        mtime_ms,
        mode: 0o600,
        len: 10,
        lines,
        state: FileState::Present,
    }
}

fn machines() -> Vec<MachineRecord> {
    vec![
        linux_machine("aaaa", "/home/a"),
        linux_machine("bbbb", "/home/b"),
        linux_machine("cccc", "/home/c"),
    ]
}

fn root(m: &MachineRecord, key: usize, place: usize) -> String {
    let base = format!("{}/src/k{}", m.home, if key == 3 { 0 } else { key.min(1) });
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

/// The machines' snapshots, each file and each project dir with a tree id that changes with
/// what it holds.
fn snapshots(ms: &[MachineRecord], branches: &Branches, records: &Records) -> Vec<Snapshot> {
    ms.iter()
        .zip(branches)
        .zip(records)
        .map(|((m, files), records)| {
            let mut dirs: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
            for (&(key, place, rel), &(meta, content)) in files {
                let mut p = project(KEYS[key], &root(m, key, place));
                if let Some(&n) = records.get(&(key, place)) {
                    p.git = Some(ferry_sync::store::GitState {
                        branch: Some("main".into()),
                        commit: None,
                        dirty: vec![format!("f{n}")],
                    });
                    if n % 3 == 0 {
                        p.cwd = format!("{}/x", p.root);
                    }
                }
                let name = format!("{}@{}", p.key, p.slug);
                dirs.entry(name).or_default().push(FileEntry {
                    project: p.into(),
                    rel: RelPath::new(RELS[rel]).unwrap(),
                    meta,
                    // A file's tree holds its `meta.json`: it changes with the meta too.
                    tree: oid(format!("{}{content}{rel}{meta:?}", m.id).as_bytes()),
                });
            }
            let mut snap = Snapshot {
                commit: oid(format!("{}{files:?}{records:?}", m.id).as_bytes()),
                machine: m.clone(),
                files: Vec::new(),
                rejected: Vec::new(),
                dirs: Vec::new(),
                cut: false,
            };
            for (name, files) in dirs {
                let from = snap.files.len();
                // The dir's tree holds its `project.json`, in `files`' projects.
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
    // The places its versions were written in, which reading a version reads.
    let written: Vec<&str> = f.versions.iter().map(|v| v.project.cwd.as_str()).collect();
    format!(
        "{} {} {} {} {} {} {} {written:?}",
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

/// The lines of two [`seen`] forms that differ, marked with the side they are on.
fn differing(patched: &str, built: &str) -> String {
    let (p, b): (Vec<&str>, Vec<&str>) = (patched.lines().collect(), built.lines().collect());
    let only = |xs: &[&str], ys: &[&str], mark: &str| {
        xs.iter()
            .filter(|l| !ys.contains(l))
            .map(|l| format!("{mark} {l}\n"))
            .collect::<String>()
    };
    only(&p, &b, "patched:") + &only(&b, &p, "built:  ")
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

/// Makes a checkout of `key`'s project this machine's place of it, as `Fs::adopt_checkout`
/// does when the client starts there: the places the project leaves are retired.
fn adopt(index: &Foreign, book: &mut PlaceBook, local: &MachineRecord, key: usize, at: usize) {
    let base = ferry_fs::foreign::key_base(KEYS[key]);
    let root = match at {
        0 => format!("{}/checkouts/k{key}", local.home),
        n => root(local, key, n - 1),
    };
    let wanted = index
        .placements
        .keys()
        .any(|k| ferry_fs::foreign::key_base(k) == base);
    if !wanted || index.roots.get(base) == Some(&root) || !book.adopt(base, &root) {
        return;
    }
    for (k, p) in &index.placements {
        if ferry_fs::foreign::key_base(k) == base {
            book.retire(base, &p.project.slug);
        }
    }
}

/// Runs `steps`; with `most`, asserts that most of them were patched, not built.
fn run(steps: Vec<Step>, most: bool) -> Result<(), TestCaseError> {
    let ms = machines();
    let local = &ms[0];
    let mut branches: Branches = vec![BTreeMap::new(); 3];
    for (m, files) in branches.iter_mut().enumerate() {
        for key in 0..3 {
            for place in 0..2 {
                files.insert((key, place, RELS.len() - 1), (present(1, true), m as u64));
            }
        }
    }
    let mut records: Records = vec![BTreeMap::new(); 3];
    let mut book = PlaceBook::default();
    let mut index =
        Foreign::from_snapshots(&snapshots(&ms, &branches, &records), local, &[], &mut book);
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
                let meta = present(mtime, RELS[rel].ends_with(".jsonl"));
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
            Step::Record { m, key, place, n } => {
                records[m].insert((key, place), n);
            }
            Step::Adopt { key, at } => adopt(&index, &mut book, local, key, at),
        }
        let snaps = snapshots(&ms, &branches, &records);
        let mut built_book = book.clone();
        let built = Foreign::from_snapshots(&snaps, local, &[], &mut built_book);
        match index.plan(&snaps, local, &[], &book) {
            Some(plan) => {
                book = plan.book().clone();
                let before = fingerprints(&index);
                let changed = index.apply(plan);
                patched += 1;
                let (got, want) = (seen(&index), seen(&built));
                prop_assert!(
                    got == want,
                    "step {}: {:?}\n{}",
                    n,
                    s,
                    differing(&got, &want)
                );
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
        !most || steps.len() < 8 || patched * 2 >= steps.len(),
        "patched {patched} of {} steps",
        steps.len()
    );
    Ok(())
}

#[test]
fn a_branch_read_cut_short_at_the_limits_is_never_patched() {
    let ms = machines();
    let mut branches: Branches = vec![BTreeMap::new(); 3];
    let meta = present(1, true);
    branches[1].insert((0, 0, 0), (meta, 1));
    let mut book = PlaceBook::default();
    let none: Records = vec![BTreeMap::new(); 3];
    let index = Foreign::from_snapshots(&snapshots(&ms, &branches, &none), &ms[0], &[], &mut book);
    branches[1].insert((0, 0, 1), (meta, 2));
    let mut snaps = snapshots(&ms, &branches, &none);
    assert!(index.plan(&snaps, &ms[0], &[], &book).is_some(), "patched");
    // What a read stopped at the limits gave of each dir depends on the dirs before it.
    snaps[1].cut = true;
    assert!(index.plan(&snaps, &ms[0], &[], &book).is_none(), "built");
}

/// The client starting in a checkout of a project moves that project there by a patch, which
/// resolves only its paths: no build of the whole index on the request that found it.
#[test]
fn a_checkout_adopted_moves_its_project_by_a_patch() {
    let ms = machines();
    let local = &ms[0];
    let mut branches: Branches = vec![BTreeMap::new(); 3];
    for key in [0, 1] {
        for rel in [0, 1] {
            branches[1].insert((key, 0, rel), (present(1, true), key as u64));
        }
    }
    let none: Records = vec![BTreeMap::new(); 3];
    let snaps = snapshots(&ms, &branches, &none);
    let mut book = PlaceBook::default();
    let index = Foreign::from_snapshots(&snaps, local, &[], &mut book);
    let before = fingerprints(&index);
    // A checkout that exists: a choice whose directory is gone gives way at the next build.
    let checkout = tempfile::tempdir().unwrap();
    let root = checkout.path().to_str().unwrap().to_string();
    let base = ferry_fs::foreign::key_base(KEYS[0]);
    assert!(book.adopt(base, &root));
    let old_slug = index.placements[KEYS[0]].project.slug.clone();
    book.retire(base, &old_slug);

    let mut built_book = book.clone();
    let built = Foreign::from_snapshots(&snaps, local, &[], &mut built_book);
    let new_slug = built.placements[KEYS[0]].project.slug.clone();
    assert_ne!(new_slug, old_slug, "the project moved");
    let plan = index
        .plan(&snaps, local, &[], &book)
        .expect("patched, not built");
    assert!(plan.places_moved());
    assert_eq!(*plan.book(), built_book, "the book a build keeps");
    let mut patched = index.clone();
    let changed = patched.apply(plan);
    let (got, want) = (seen(&patched), seen(&built));
    assert!(got == want, "{}", differing(&got, &want));
    // Only the moved project's paths changed: its two sessions gone from the old place and
    // shown in the new one.
    let after = fingerprints(&built);
    assert_eq!(changed.len(), 4, "{changed:?}");
    for p in &changed {
        assert!(p.starts_with(&format!("{old_slug}/")) || p.starts_with(&format!("{new_slug}/")));
        assert_ne!(before.get(p), after.get(p));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn the_patched_index_is_the_built_one(steps in prop::collection::vec(step(3, 6, 1), 1..40)) {
        run(steps, true)?;
    }

    /// With two keys at one slug, and a file of one key where another has a directory: the
    /// index is built whole when a patch could differ, and is right either way.
    #[test]
    fn the_patched_index_is_the_built_one_where_keys_meet(
        steps in prop::collection::vec(step(4, 8, 4), 1..40),
    ) {
        run(steps, false)?;
    }
}
