//! The git store without any mount: commit from an upper layer, read back, merge machines,
//! history, and hostile content.

mod common;

use ferry_sync::codec::{Codec, Format};
use ferry_sync::merge::{Version, merge_lines, resolve};
use ferry_sync::store::{
    Batch, CHUNK, Change, FileState, FileUpdate, MachineRecord, ProjectRecord, RelPath, Store,
    StoreError, mapping_for,
};
use std::path::{Path, PathBuf};

struct Machine {
    record: MachineRecord,
    project: ProjectRecord,
    upper: PathBuf,
    store: Store,
    _tmp: tempfile::TempDir,
}

const KEY: &str = "github.com/o/proj";

fn machine(id: &str, home: &str, root: &str) -> Machine {
    let tmp = tempfile::tempdir().unwrap();
    let record = common::linux_machine(id, home);
    let project = common::project(KEY, root);
    let slug = project.slug.clone();
    let upper = tmp.path().join("projects").join(&slug);
    std::fs::create_dir_all(&upper).unwrap();
    let store = Store::init(&tmp.path().join("store.git")).unwrap();
    Machine {
        record,
        project,
        upper,
        store,
        _tmp: tmp,
    }
}

impl Machine {
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.upper.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn commit(&self, changes: Vec<(&str, Change)>) -> Option<git2::Oid> {
        let files = changes
            .into_iter()
            .map(|(rel, change)| FileUpdate {
                place: self.project.place(),
                rel: RelPath::new(rel).unwrap(),
                change,
            })
            .collect();
        self.store
            .commit(
                &self.record,
                &Batch {
                    projects: vec![self.project.clone()],
                    files,
                },
            )
            .unwrap()
    }

    fn written(&self, rel: &str) -> Change {
        Change::Write {
            local: self.upper.join(rel),
            dirty_from: None,
        }
    }

    fn own(&self) -> ferry_sync::store::Snapshot {
        let head = self.store.head(&self.record.id, true).unwrap().unwrap();
        self.store.snapshot("own", head).unwrap()
    }

    fn read_local(&self, rel: &str) -> Vec<u8> {
        let snap = self.own();
        let f = snap
            .files
            .iter()
            .find(|f| f.rel.as_str() == rel)
            .expect("file in branch");
        let portable = self.store.read(f).unwrap();
        Codec::new(&mapping_for(&self.record, &self.project).unwrap())
            .expand(&portable, Format::for_file_name(rel))
    }

    fn objects_bytes(&self) -> u64 {
        dir_size(&self.store.repo().path().join("objects"))
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                dir_size(&e.path())
            } else {
                md.len()
            }
        })
        .sum()
}

fn transcript_line(root: &str, i: usize) -> String {
    format!(
        "{{\"cwd\":\"{root}\",\"type\":\"user\",\"message\":{{\"content\":\"step {i}: edit {root}/src/f{i}.rs please\"}},\"uuid\":\"u{i}\"}}\n"
    )
}

#[test]
fn commit_stores_portable_form_and_reads_back_exactly() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    let t: String = (0..500)
        .map(|i| transcript_line("/home/al/src/proj", i))
        .collect();
    let s1_path = m.write("s1.jsonl", t.as_bytes());
    // Mode 0600 as Claude Code writes it (Windows has no such mode).
    #[cfg(unix)]
    std::fs::set_permissions(
        &s1_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    #[cfg(not(unix))]
    let _ = s1_path;
    m.write(
        "s1/tool-results/t1.txt",
        b"listing of /home/al/src/proj/src\n",
    );
    m.write("memory/MEMORY.md", b"# notes\n${HOME} is literal here\n");
    let c = m.commit(vec![
        ("s1.jsonl", m.written("s1.jsonl")),
        (
            "s1/tool-results/t1.txt",
            m.written("s1/tool-results/t1.txt"),
        ),
        ("memory/MEMORY.md", m.written("memory/MEMORY.md")),
    ]);
    assert!(c.is_some());
    let snap = m.own();
    assert!(snap.rejected.is_empty(), "{:?}", snap.rejected);
    assert_eq!(snap.files.len(), 3);
    let s1 = snap
        .files
        .iter()
        .find(|f| f.rel.as_str() == "s1.jsonl")
        .unwrap();
    assert_eq!(s1.meta.len, t.len() as u64);
    assert_eq!(
        s1.meta.mode & 0o777,
        0o600,
        "Claude Code's mode is recorded"
    );
    let portable = m.store.read(s1).unwrap();
    assert!(
        !String::from_utf8_lossy(&portable).contains("/home/al"),
        "only portable form in the store"
    );
    assert!(String::from_utf8_lossy(&portable).contains("${PROJECT_ROOT}/src/f1.rs"));
    for rel in ["s1.jsonl", "s1/tool-results/t1.txt", "memory/MEMORY.md"] {
        assert_eq!(
            m.read_local(rel),
            std::fs::read(m.upper.join(rel)).unwrap(),
            "{rel}"
        );
    }
    // Nothing changed: no commit.
    assert_eq!(m.commit(vec![("s1.jsonl", m.written("s1.jsonl"))]), None);
}

#[test]
fn appends_cost_bytes_changed_and_rewrites_and_truncates_read_back() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    let root = "/home/al/src/proj";
    let mut t: String = (0..40_000).map(|i| transcript_line(root, i)).collect();
    assert!(t.len() > 5 << 20);
    m.write("big.jsonl", t.as_bytes());
    m.commit(vec![("big.jsonl", m.written("big.jsonl"))])
        .unwrap();
    let chunks_before = m.store.read(&m.own().files[0]).unwrap().len();
    assert!(chunks_before > 0);

    // Append 1 KB, telling the store where the write began.
    let old_len = t.len() as u64;
    let extra: String = (40_000..40_010).map(|i| transcript_line(root, i)).collect();
    t.push_str(&extra);
    m.write("big.jsonl", t.as_bytes());
    let before = m.objects_bytes();
    let start = std::time::Instant::now();
    m.commit(vec![(
        "big.jsonl",
        Change::Write {
            local: m.upper.join("big.jsonl"),
            dirty_from: Some(old_len),
        },
    )])
    .unwrap();
    let took = start.elapsed();
    let added = m.objects_bytes() - before;
    assert!(added < 64 * 1024, "an append added {added} bytes");
    assert!(
        took.as_millis() < 2000,
        "debug-build sanity bound: {took:?}"
    );
    assert_eq!(m.read_local("big.jsonl"), t.as_bytes());

    // Rewrite in the middle (ftruncate + pwrite of the tail), then shrink.
    let cut = t.len() / 2;
    t.truncate(cut);
    t.push_str("{\"rewritten\":true}\n");
    m.write("big.jsonl", t.as_bytes());
    m.commit(vec![(
        "big.jsonl",
        Change::Write {
            local: m.upper.join("big.jsonl"),
            dirty_from: Some(cut as u64),
        },
    )])
    .unwrap();
    assert_eq!(m.read_local("big.jsonl"), t.as_bytes());
    t.truncate(3 * CHUNK as usize + 17);
    m.write("big.jsonl", t.as_bytes());
    m.commit(vec![(
        "big.jsonl",
        Change::Write {
            local: m.upper.join("big.jsonl"),
            dirty_from: Some(t.len() as u64),
        },
    )])
    .unwrap();
    assert_eq!(
        m.read_local("big.jsonl"),
        t.as_bytes(),
        "stale chunks past the end are gone"
    );
    // And a full rescan (no dirty information) agrees.
    assert_eq!(m.commit(vec![("big.jsonl", m.written("big.jsonl"))]), None);
}

/// The names in a file's own tree, and the blobs that hold its bytes.
fn file_form(m: &Machine, rel: &str) -> (Vec<String>, Vec<git2::Oid>) {
    let snap = m.own();
    let f = snap.files.iter().find(|f| f.rel.as_str() == rel).unwrap();
    let tree = m.store.repo().find_tree(f.tree).unwrap();
    let names = tree.iter().map(|e| e.name().unwrap().to_string()).collect();
    (names, m.store.chunk_ids(f).unwrap())
}

#[test]
fn a_one_chunk_transcript_is_one_blob_and_keeps_it_as_its_first_chunk_when_it_grows() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    let root = "/home/al/src/proj";
    let mut t: String = (0..20).map(|i| transcript_line(root, i)).collect();
    assert!(t.len() < CHUNK as usize);
    m.write("s.jsonl", t.as_bytes());
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    let (names, small) = file_form(&m, "s.jsonl");
    assert_eq!(names, ["data", "meta.json"], "no chunk tree for one chunk");
    assert_eq!(small.len(), 1);
    assert!(
        m.read_local("s.jsonl") == t.as_bytes(),
        "s.jsonl reads back other bytes"
    );

    // An append that stays in the first chunk keeps the one blob.
    let grow = |t: &mut String, lines: std::ops::Range<usize>| {
        let from = t.len() as u64;
        t.extend(lines.map(|i| transcript_line(root, i)));
        m.write("s.jsonl", t.as_bytes());
        let change = Change::Write {
            local: m.upper.join("s.jsonl"),
            dirty_from: Some(from),
        };
        m.commit(vec![("s.jsonl", change)]).unwrap();
        assert!(
            m.read_local("s.jsonl") == t.as_bytes(),
            "s.jsonl reads back other bytes"
        );
        // A full rescan finds the same tree: the form depends on the bytes alone.
        assert_eq!(m.commit(vec![("s.jsonl", m.written("s.jsonl"))]), None);
    };
    grow(&mut t, 20..30);
    let (names, ids) = file_form(&m, "s.jsonl");
    assert_eq!((names.len(), ids.len()), (2, 1));

    // Past the first chunk it is chunked, and the first chunk is the blob it was (nothing
    // before the append is written again, and a reader that expanded it expands only the rest).
    let at_full = t.len();
    let mut n = 30;
    while t.len() < at_full.max(CHUNK as usize) {
        grow(&mut t, n..n + 1);
        n += 1;
    }
    let (_, before) = file_form(&m, "s.jsonl");
    grow(&mut t, n..n + 400);
    let (names, ids) = file_form(&m, "s.jsonl");
    assert_eq!(names, ["c", "meta.json"]);
    assert!(ids.len() > 2, "{} chunks", ids.len());
    assert_eq!(
        ids[0], before[0],
        "the first chunk is the blob the file was"
    );

    // Written again small from the start, it is one blob again.
    t = transcript_line(root, 0);
    m.write("s.jsonl", t.as_bytes());
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    let (names, _) = file_form(&m, "s.jsonl");
    assert_eq!(names, ["data", "meta.json"]);
    assert!(
        m.read_local("s.jsonl") == t.as_bytes(),
        "s.jsonl reads back other bytes"
    );

    // Emptied, it holds no bytes at all.
    m.write("s.jsonl", b"");
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    assert_eq!(
        file_form(&m, "s.jsonl"),
        (vec!["meta.json".to_string()], vec![])
    );
}

/// Commits on `m`'s branch what an older ferry, which kept every transcript under `c/` and
/// never removed the `data` of a file it continued, leaves for `rel`: `chunks` as its chunks,
/// by index, and `len` in its record, with whatever `data` was there kept.
fn older_ferry_writes(m: &Machine, rel: &str, chunks: &[(u64, &[u8])], len: u64) {
    let repo = m.store.repo();
    let snap = m.own();
    let f = snap.files.iter().find(|f| f.rel.as_str() == rel).unwrap();
    let head = repo.find_commit(snap.commit).unwrap();
    let mut at = None;
    head.tree()
        .unwrap()
        .walk(git2::TreeWalkMode::PreOrder, |dir, e| {
            if e.id() == f.tree {
                at = Some(format!("{dir}{}", e.name().unwrap()));
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
    let at = at.unwrap();
    let mut edit = git2::build::TreeUpdateBuilder::new();
    if head
        .tree()
        .unwrap()
        .get_path(Path::new(&format!("{at}/c")))
        .is_ok()
    {
        edit.remove(format!("{at}/c"));
    }
    for (k, bytes) in chunks {
        let id = repo.blob(bytes).unwrap();
        edit.upsert(format!("{at}/c/0/0/{k}"), id, git2::FileMode::Blob);
    }
    let mut meta = serde_json::to_value(f.meta).unwrap();
    meta["len"] = len.into();
    let meta = repo.blob(&serde_json::to_vec(&meta).unwrap()).unwrap();
    edit.upsert(format!("{at}/meta.json"), meta, git2::FileMode::Blob);
    let tree = edit.create_updated(repo, &head.tree().unwrap()).unwrap();
    let tree = repo.find_tree(tree).unwrap();
    let sig = git2::Signature::now("old", "old@x").unwrap();
    let own = format!("refs/heads/machines/{}", m.record.id);
    repo.commit(Some(&own), &sig, &sig, "older ferry", &tree, &[&head])
        .unwrap();
}

#[test]
fn a_one_chunk_transcript_continued_by_an_older_ferry_reads_whole_and_is_continued_right() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    // Lines the codec leaves as they are, so the chunks can be written by hand.
    let line = |i: usize| format!("{{\"type\":\"user\",\"n\":{i},\"pad\":\"{:0>200}\"}}\n", 0);
    let text = |n: std::ops::Range<usize>| n.map(line).collect::<String>();
    let small = text(0..10);
    m.write("s.jsonl", small.as_bytes());
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    assert_eq!(file_form(&m, "s.jsonl").0, ["data", "meta.json"]);

    // The older ferry appends past the first chunk: chunk 0 written again under `c/`, the
    // `data` of the one-chunk file left behind, out of date. The chunks are the file.
    let mut t = text(0..100);
    let cut = t[CHUNK as usize..].find('\n').unwrap() + CHUNK as usize + 1;
    let chunks = [(0, &t.as_bytes()[..cut]), (1, &t.as_bytes()[cut..])];
    older_ferry_writes(&m, "s.jsonl", &chunks, t.len() as u64);
    m.write("s.jsonl", t.as_bytes());
    assert!(
        m.read_local("s.jsonl") == t.as_bytes(),
        "s.jsonl reads back other bytes"
    );

    // This ferry appends after it: the stale `data` goes, and is not taken for chunk 0.
    let from = t.len() as u64;
    t.push_str(&text(100..110));
    m.write("s.jsonl", t.as_bytes());
    let change = Change::Write {
        local: m.upper.join("s.jsonl"),
        dirty_from: Some(from),
    };
    m.commit(vec![("s.jsonl", change)]).unwrap();
    assert_eq!(file_form(&m, "s.jsonl").0, ["c", "meta.json"]);
    assert!(
        m.read_local("s.jsonl") == t.as_bytes(),
        "s.jsonl reads back other bytes"
    );

    // An older ferry that adds chunks after a first chunk it did not write again leaves
    // `data` as that chunk; it empties a file by removing its chunks alone: a file recorded
    // empty is empty.
    m.write("s.jsonl", small.as_bytes());
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    let second = text(10..11);
    older_ferry_writes(&m, "s.jsonl", &[(1, second.as_bytes())], 1);
    assert_eq!(
        m.read_local("s.jsonl"),
        format!("{small}{second}").as_bytes()
    );
    older_ferry_writes(&m, "s.jsonl", &[], 0);
    assert!(
        m.read_local("s.jsonl") == b"",
        "s.jsonl reads back other bytes"
    );
}

#[test]
fn deletes_are_tombstones_and_history_restores() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    m.write(
        "s.jsonl",
        transcript_line("/home/al/src/proj", 1).as_bytes(),
    );
    let first = m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    m.write(
        "s.jsonl",
        (transcript_line("/home/al/src/proj", 1) + &transcript_line("/home/al/src/proj", 2))
            .as_bytes(),
    );
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    std::fs::remove_file(m.upper.join("s.jsonl")).unwrap();
    let head = m
        .commit(vec![(
            "s.jsonl",
            Change::Delete {
                at_ms: 4_000_000_000_000,
            },
        )])
        .unwrap();
    let snap = m.own();
    assert!(matches!(
        snap.files[0].meta.state,
        FileState::Deleted { .. }
    ));
    assert!(m.store.read(&snap.files[0]).unwrap().is_empty());
    let h = m
        .store
        .history(
            head,
            &m.project.place(),
            &RelPath::new("s.jsonl").unwrap(),
            10,
        )
        .unwrap();
    assert_eq!(h.len(), 3, "tombstone and two versions");
    assert_eq!(h[2].commit, first);
    let restored = m.store.read(&h[1].file).unwrap();
    let local =
        Codec::new(&mapping_for(&m.record, &m.project).unwrap()).expand(&restored, Format::Json);
    assert_eq!(
        local,
        (transcript_line("/home/al/src/proj", 1) + &transcript_line("/home/al/src/proj", 2))
            .as_bytes()
    );
}

/// Fetches `from`'s own branch into `to` as a remote machine, through git's local transport.
fn fetch(to: &Machine, from: &Machine) {
    let url = from.store.repo().path().to_str().unwrap().to_string();
    let mut remote = to.store.repo().remote_anonymous(&url).unwrap();
    remote
        .fetch(
            &["+refs/heads/machines/*:refs/remotes/origin/machines/*"],
            None,
            None,
        )
        .unwrap();
}

#[test]
fn two_machines_diverge_and_the_view_keeps_every_line_in_each_machines_paths() {
    let a = machine("aaaa", "/home/al", "/home/al/src/proj");
    let b = machine("bbbb", "/Users/bob", "/Users/bob/work/proj");
    let start: String = (0..3)
        .map(|i| transcript_line("/home/al/src/proj", i))
        .collect();
    a.write("s.jsonl", start.as_bytes());
    a.commit(vec![("s.jsonl", a.written("s.jsonl"))]).unwrap();
    fetch(&b, &a);
    // B copies up A's version, in B's paths, and appends; A appends meanwhile.
    let a_snap = b
        .store
        .snapshot("aaaa", b.store.head("aaaa", false).unwrap().unwrap())
        .unwrap();
    let portable = b.store.read(&a_snap.files[0]).unwrap();
    let on_b =
        Codec::new(&mapping_for(&b.record, &b.project).unwrap()).expand(&portable, Format::Json);
    let b_text = String::from_utf8(on_b).unwrap() + &transcript_line("/Users/bob/work/proj", 100);
    assert!(
        b_text.starts_with(&transcript_line("/Users/bob/work/proj", 0)),
        "A's paths became B's"
    );
    b.write("s.jsonl", b_text.as_bytes());
    b.commit(vec![("s.jsonl", b.written("s.jsonl"))]).unwrap();
    a.write(
        "s.jsonl",
        (start.clone() + &transcript_line("/home/al/src/proj", 50)).as_bytes(),
    );
    a.commit(vec![("s.jsonl", a.written("s.jsonl"))]).unwrap();
    fetch(&a, &b);
    fetch(&b, &a);
    for (viewer, other_id, me) in [(&a, "bbbb", &a), (&b, "aaaa", &b)] {
        let mine = viewer.own();
        let theirs = viewer
            .store
            .snapshot(
                other_id,
                viewer.store.head(other_id, false).unwrap().unwrap(),
            )
            .unwrap();
        let versions = [
            Version {
                machine: &mine.machine.id,
                place: &mine.files[0].project.slug,
                meta: mine.files[0].meta,
            },
            Version {
                machine: &theirs.machine.id,
                place: &theirs.files[0].project.slug,
                meta: theirs.files[0].meta,
            },
        ];
        let res = resolve(&versions, &viewer.record.id, true);
        assert_eq!(res.shown.len(), 2);
        let texts = [
            viewer.store.read(&mine.files[0]).unwrap(),
            viewer.store.read(&theirs.files[0]).unwrap(),
        ];
        let ordered: Vec<&[u8]> = res.shown.iter().map(|&i| texts[i].as_slice()).collect();
        let merged = merge_lines(&ordered);
        let local = String::from_utf8(
            Codec::new(&mapping_for(&me.record, &me.project).unwrap())
                .expand(&merged, Format::Json),
        )
        .unwrap();
        let root = &me.project.root;
        for i in [0, 1, 2, 50, 100] {
            assert_eq!(
                local.matches(&transcript_line(root, i)).count(),
                1,
                "line {i} once, in {root}'s form:\n{local}"
            );
        }
        assert_eq!(local.lines().count(), 5);
    }
}

#[test]
fn hostile_branches_are_skipped_with_reasons_and_never_escape() {
    let victim = machine("vvvv", "/home/v", "/home/v/p");
    let repo = victim.store.repo();
    let blob = |b: &[u8]| repo.blob(b).unwrap();
    let tree = |entries: &[(&str, git2::Oid, i32)]| {
        let mut tb = repo.treebuilder(None).unwrap();
        for (n, id, mode) in entries {
            tb.insert(n, *id, *mode).unwrap();
        }
        tb.write().unwrap()
    };
    let machine_json = serde_json::to_vec(&MachineRecord {
        id: "evil".into(),
        ..victim.record.clone()
    })
    .unwrap();
    let project_json = serde_json::to_vec(&victim.project).unwrap();
    let meta = blob(br#"{"mtime_ms":1,"mode":384,"len":1,"lines":false,"state":"present"}"#);
    let good_file = tree(&[
        ("meta.json", meta, 0o100644),
        ("data", blob(b"ok"), 0o100644),
    ]);
    let no_meta = tree(&[("data", blob(b"x"), 0o100644)]);
    let bad_meta = tree(&[("meta.json", blob(b"{not json"), 0o100644)]);
    let files = tree(&[
        ("f.good.txt", good_file, 0o040000),
        ("f.link", blob(b"/etc/passwd"), 0o120000),
        ("f..", good_file, 0o040000),
        ("d...", tree(&[("f.x", good_file, 0o040000)]), 0o040000),
        ("f.nometa", no_meta, 0o040000),
        ("f.badmeta", bad_meta, 0o040000),
        ("zz", good_file, 0o040000),
        ("f.sub", repo.blob(b"").unwrap(), 0o160000),
    ]);
    let project = tree(&[
        ("project.json", blob(&project_json), 0o100644),
        ("t", files, 0o040000),
    ]);
    let wrong_dir = tree(&[("project.json", blob(&project_json), 0o100644)]);
    let p = tree(&[
        (
            ferry_sync::store::project_dir(KEY).as_str(),
            project,
            0o040000,
        ),
        ("elsewhere", wrong_dir, 0o040000),
    ]);
    let root = tree(&[
        ("machine.json", blob(&machine_json), 0o100644),
        ("p", p, 0o040000),
    ]);
    let sig = git2::Signature::now("evil", "e@e").unwrap();
    let commit = repo
        .commit(
            Some("refs/remotes/origin/machines/evil"),
            &sig,
            &sig,
            "evil",
            &repo.find_tree(root).unwrap(),
            &[],
        )
        .unwrap();
    let snap = victim.store.snapshot("evil", commit).unwrap();
    let names: Vec<&str> = snap.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(names, ["good.txt"]);
    assert_eq!(snap.rejected.len(), 8, "{:#?}", snap.rejected);
    // Read again (as every refresh does): the same files, and every rejection reported again.
    let again = victim.store.snapshot("evil", commit).unwrap();
    let names_again: Vec<&str> = again.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(names_again, names);
    assert_eq!(again.rejected.len(), 8, "{:#?}", again.rejected);
    assert!(
        snap.rejected
            .iter()
            .any(|e| matches!(e, StoreError::Malformed { .. }))
    );
    assert_eq!(victim.store.remote_machines().unwrap(), ["evil"]);
    // A branch whose machine record is garbage is an error, not a panic.
    let bad_root = tree(&[("machine.json", blob(b"[]"), 0o100644)]);
    let c2 = repo
        .commit(
            None,
            &sig,
            &sig,
            "x",
            &repo.find_tree(bad_root).unwrap(),
            &[],
        )
        .unwrap();
    assert!(victim.store.snapshot("evil", c2).is_err());
}

/// Commits a branch for machine `evil` whose only project has `files` as its file tree, built
/// with plain git so the tests can put anything in it.
fn evil_commit(victim: &Machine, files: git2::Oid) -> git2::Oid {
    let repo = victim.store.repo();
    let tree = |entries: &[(&str, git2::Oid, i32)]| {
        let mut tb = repo.treebuilder(None).unwrap();
        for (name, id, mode) in entries {
            tb.insert(name, *id, *mode).unwrap();
        }
        tb.write().unwrap()
    };
    let project_json = repo
        .blob(&serde_json::to_vec(&victim.project).unwrap())
        .unwrap();
    let project = tree(&[
        ("project.json", project_json, 0o100644),
        ("t", files, 0o040000),
    ]);
    let projects = tree(&[(
        ferry_sync::store::project_dir(KEY).as_str(),
        project,
        0o040000,
    )]);
    let record = MachineRecord {
        id: "evil".into(),
        ..victim.record.clone()
    };
    let machine_json = repo.blob(&serde_json::to_vec(&record).unwrap()).unwrap();
    let root = repo
        .find_tree(tree(&[
            ("machine.json", machine_json, 0o100644),
            ("p", projects, 0o040000),
        ]))
        .unwrap();
    let sig = git2::Signature::now("evil", "e@e").unwrap();
    repo.commit(None, &sig, &sig, "evil", &root, &[]).unwrap()
}

#[test]
#[cfg(unix)] // names that are not UTF-8 exist only on Unix
fn invalid_utf8_names_and_a_million_entries_are_bounded() {
    use std::os::unix::ffi::OsStrExt;
    let victim = machine("vvvv", "/home/v", "/home/v/p");
    let repo = victim.store.repo();
    let meta = repo
        .blob(br#"{"mtime_ms":1,"mode":384,"len":1,"lines":false,"state":"present"}"#)
        .unwrap();
    let data = repo.blob(b"x").unwrap();
    let mut fb = repo.treebuilder(None).unwrap();
    fb.insert("meta.json", meta, 0o100644).unwrap();
    fb.insert("data", data, 0o100644).unwrap();
    let file = fb.write().unwrap();
    let mut files = repo.treebuilder(None).unwrap();
    files
        .insert(
            std::ffi::OsStr::from_bytes(b"f.!bad\xff\xfe"),
            file,
            0o040000,
        )
        .unwrap();
    let start = std::time::Instant::now();
    for i in 0..1_000_000u32 {
        files.insert(format!("f.{i}"), file, 0o040000).unwrap();
    }
    let files = files.write().unwrap();
    let commit = evil_commit(&victim, files);
    eprintln!("built a 1,000,001-entry tree in {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let snap = victim.store.snapshot("evil", commit).unwrap();
    eprintln!(
        "snapshot stopped at {} files in {:?}",
        snap.files.len(),
        start.elapsed()
    );
    assert_eq!(snap.files.len(), ferry_sync::store::MAX_FILES);
    let why: Vec<String> = snap.rejected.iter().map(|e| e.to_string()).collect();
    assert!(
        why.iter().any(|w| w.contains("more than 200000 files")),
        "{why:?}"
    );
    assert!(why.iter().any(|w| w.contains("not UTF-8")), "{why:?}");
}

#[test]
fn a_vanished_file_does_not_hold_back_the_rest() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    m.write(
        "kept.jsonl",
        transcript_line("/home/al/src/proj", 1).as_bytes(),
    );
    let gone = m.upper.join("gone.jsonl");
    let c = m.commit(vec![
        (
            "gone.jsonl",
            Change::Write {
                local: gone,
                dirty_from: None,
            },
        ),
        ("kept.jsonl", m.written("kept.jsonl")),
    ]);
    assert!(c.is_some());
    let names: Vec<String> = m.own().files.iter().map(|f| f.rel.to_string()).collect();
    assert_eq!(names, ["kept.jsonl"]);
}

#[test]
fn projects_whose_slugs_collide_stay_apart_in_the_store() {
    // `/a/b_c` and `/a/b.c` share Claude Code's slug `-a-b-c`; the store keys by project key, so
    // their files never mix (where each shows in the view is the view's decision).
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    let mk = common::project;
    let (p1, p2) = (
        mk("~/a/b_c", "/home/al/a/b_c"),
        mk("~/a/b.c", "/home/al/a/b.c"),
    );
    assert_eq!(p1.slug, p2.slug);
    let f1 = m.write("one.jsonl", b"{\"uuid\":\"1\"}\n");
    let f2 = m.write("two.jsonl", b"{\"uuid\":\"2\"}\n");
    let files = vec![
        FileUpdate {
            place: p1.place(),
            rel: RelPath::new("s.jsonl").unwrap(),
            change: Change::Write {
                local: f1,
                dirty_from: None,
            },
        },
        FileUpdate {
            place: p2.place(),
            rel: RelPath::new("s.jsonl").unwrap(),
            change: Change::Write {
                local: f2,
                dirty_from: None,
            },
        },
    ];
    m.store
        .commit(
            &m.record,
            &Batch {
                projects: vec![p1.clone(), p2.clone()],
                files,
            },
        )
        .unwrap()
        .unwrap();
    let snap = m.own();
    assert_eq!(snap.files.len(), 2);
    for (p, want) in [(&p1, "1"), (&p2, "2")] {
        let f = snap.files.iter().find(|f| f.project.key == p.key).unwrap();
        assert!(
            String::from_utf8(m.store.read(f).unwrap())
                .unwrap()
                .contains(&format!("\"uuid\":\"{want}\""))
        );
    }
}

#[test]
fn a_tree_bomb_and_non_ascii_names_are_cut_short() {
    let victim = machine("vvvv", "/home/v", "/home/v/p");
    let repo = victim.store.repo();
    let stray = repo.blob(b"x").unwrap();
    // 15 levels of 64 directories all pointing at the same next level: 64^15 paths in ~30 KB.
    let mut level = {
        let mut tb = repo.treebuilder(None).unwrap();
        tb.insert("stray", stray, 0o100644).unwrap();
        tb.write().unwrap()
    };
    for _ in 0..15 {
        let mut tb = repo.treebuilder(None).unwrap();
        for i in 0..64 {
            tb.insert(format!("d.{i}"), level, 0o040000).unwrap();
        }
        level = tb.write().unwrap();
    }
    let mut files = repo.treebuilder(None).unwrap();
    files.insert("aé", level, 0o040000).unwrap();
    files.insert("d.€", level, 0o040000).unwrap();
    files.insert("d.bomb", level, 0o040000).unwrap();
    let files = files.write().unwrap();
    let commit = evil_commit(&victim, files);
    let start = std::time::Instant::now();
    let snap = victim.store.snapshot("evil", commit).unwrap();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "bounded: {:?}",
        start.elapsed()
    );
    assert!(snap.files.is_empty());
    assert!(snap.cut, "the read says it stopped at the limits");
    assert!(snap.rejected.len() <= 1001, "capped, plus the limit itself");
    let why: Vec<String> = snap.rejected.iter().map(|e| e.to_string()).collect();
    assert!(
        why.iter()
            .any(|w| w.contains("entries; the rest are ignored")),
        "{:?}",
        &why[why.len().saturating_sub(3)..]
    );
    assert!(
        why.iter()
            .any(|w| w.contains("\"aé\" is not a d./f. entry"))
    );
    // Read again: cut short and reported again, never taken from an earlier read.
    let again = victim.store.snapshot("evil", commit).unwrap();
    assert!(again.files.is_empty());
    assert!(
        again
            .rejected
            .iter()
            .any(|e| e.to_string().contains("entries; the rest are ignored"))
    );
}

#[test]
fn a_branch_read_again_gives_each_projects_files_as_they_are_now() {
    let m = machine("a2", "/home/al", "/home/al/src/proj");
    let other = common::project("github.com/o/other", "/home/al/src/other");
    let dir = m.upper.parent().unwrap().join(&other.slug);
    std::fs::create_dir_all(&dir).unwrap();
    let write_other = |rel: &str, text: &str| {
        std::fs::write(dir.join(rel), text).unwrap();
        FileUpdate {
            place: other.place(),
            rel: RelPath::new(rel).unwrap(),
            change: Change::Write {
                local: dir.join(rel),
                dirty_from: None,
            },
        }
    };
    let commit_other = |files: Vec<FileUpdate>| {
        m.store
            .commit(
                &m.record,
                &Batch {
                    projects: vec![other.clone()],
                    files,
                },
            )
            .unwrap()
    };
    m.write("s.jsonl", b"{\"uuid\":\"1\"}\n");
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]);
    commit_other(vec![write_other("t.jsonl", "{\"uuid\":\"2\"}\n")]);
    let files = |snap: &ferry_sync::store::Snapshot| {
        let mut v: Vec<(String, String, git2::Oid)> = snap
            .files
            .iter()
            .map(|f| (f.project.key.clone(), f.rel.to_string(), f.tree))
            .collect();
        v.sort();
        v
    };
    let first = files(&m.own());
    assert_eq!(first.len(), 2);
    // One project changes (a file added, one changed); the other is read as it was.
    commit_other(vec![
        write_other("t.jsonl", "{\"uuid\":\"2\"}\n{\"uuid\":\"3\"}\n"),
        write_other("u.jsonl", "{\"uuid\":\"4\"}\n"),
    ]);
    let second = files(&m.own());
    assert_eq!(second.len(), 3, "{second:?}");
    let mine = |v: &[(String, String, git2::Oid)]| v.iter().find(|f| f.0 == KEY).cloned();
    assert_eq!(
        mine(&second),
        mine(&first),
        "the unchanged project as it was"
    );
    let t = |v: &[(String, String, git2::Oid)]| v.iter().find(|f| f.1 == "t.jsonl").map(|f| f.2);
    assert_ne!(t(&second), t(&first), "the changed file's new version");
    assert_eq!(
        m.store
            .read(
                m.own()
                    .files
                    .iter()
                    .find(|f| f.rel.as_str() == "t.jsonl")
                    .unwrap()
            )
            .unwrap(),
        b"{\"uuid\":\"2\"}\n{\"uuid\":\"3\"}\n"
    );
}

#[test]
fn a_lock_left_by_a_kill_mid_commit_is_recovered() {
    let m = machine("a1", "/home/al", "/home/al/src/proj");
    m.write("s.jsonl", b"{\"uuid\":\"1\"}\n");
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]).unwrap();
    let lock = m.store.repo().path().join("refs/heads/machines/a1.lock");
    std::fs::write(&lock, "").unwrap();
    m.write("s.jsonl", b"{\"uuid\":\"1\"}\n{\"uuid\":\"2\"}\n");
    let batch = |m: &Machine| Batch {
        projects: vec![m.project.clone()],
        files: vec![FileUpdate {
            place: m.project.place(),
            rel: RelPath::new("s.jsonl").unwrap(),
            change: m.written("s.jsonl"),
        }],
    };
    assert!(
        m.store.commit(&m.record, &batch(&m)).is_err(),
        "libgit2 refuses while the lock exists"
    );
    assert_eq!(m.store.recover_after_crash().unwrap(), 1);
    assert!(m.store.commit(&m.record, &batch(&m)).unwrap().is_some());
}

#[test]
fn a_secret_is_reported_once_and_only_where_content_is_new() {
    let m = machine("aaaa", "/home/a", "/home/a/p");
    let key = format!("sk-ant-{}", "k".repeat(40));
    let first = format!("{{\"uuid\":\"1\",\"t\":\"{key}\"}}\n");
    m.write("s.jsonl", first.as_bytes());
    m.commit(vec![("s.jsonl", m.written("s.jsonl"))]);
    let found = m.store.take_findings();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].offset, first.find("sk-ant-").unwrap() as u64);
    assert_eq!(found[0].action, "redacted", "redact is the default");
    // An append in the same chunk: the old secret is not new content.
    let path = m.write("s.jsonl", (first.clone() + "{\"uuid\":\"2\"}\n").as_bytes());
    m.commit(vec![(
        "s.jsonl",
        Change::Write {
            local: path,
            dirty_from: Some(first.len() as u64),
        },
    )]);
    assert!(m.store.take_findings().is_empty());
}

/// Loose object files and pack files in `store`'s object database.
fn object_files(store: &Store) -> (usize, usize) {
    let objects = store.repo().path().join("objects");
    let loose = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().len() == 2)
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum();
    let packs = std::fs::read_dir(objects.join("pack"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("pack".as_ref()))
        .count();
    (loose, packs)
}

impl Machine {
    /// Batches of `per` files each, for every transcript written under `rels`.
    fn batches(&self, rels: &[String], per: usize) -> Vec<Batch> {
        rels.chunks(per)
            .map(|chunk| Batch {
                projects: vec![self.project.clone()],
                files: chunk
                    .iter()
                    .map(|rel| FileUpdate {
                        place: self.project.place(),
                        rel: RelPath::new(rel).unwrap(),
                        change: self.written(rel),
                    })
                    .collect(),
            })
            .collect()
    }
}

#[test]
#[cfg_attr(windows, ignore = "checks the store with Linux's git")]
fn batches_committed_as_a_pack_read_back_as_committed_one_by_one_with_no_loose_object() {
    let root = "/home/al/src/proj";
    let (one_by_one, packed) = (
        machine("a1", "/home/al", root),
        machine("a1", "/home/al", root),
    );
    let rels: Vec<String> = (0..30).map(|i| format!("s{i}.jsonl")).collect();
    for m in [&one_by_one, &packed] {
        for (i, rel) in rels.iter().enumerate() {
            let t: String = (0..20 + i).map(|n| transcript_line(root, n)).collect();
            m.write(rel, t.as_bytes());
        }
    }
    for b in one_by_one.batches(&rels, 10) {
        one_by_one.store.commit(&one_by_one.record, &b).unwrap();
    }
    let mut done = 0;
    let tip = packed
        .store
        .commit_packed(
            &packed.record,
            &packed.batches(&rels, 10),
            |b| b.files.len() as u64,
            |_| done += 1,
        )
        .unwrap();
    assert_eq!(done, 3);
    assert_eq!(tip, packed.store.head(&packed.record.id, true).unwrap());
    // The same files, by name and size (their times are each upper's own).
    let files = |m: &Machine| -> Vec<(String, u64)> {
        m.own()
            .files
            .iter()
            .map(|f| (f.rel.to_string(), f.meta.len))
            .collect()
    };
    assert_eq!(files(&packed), files(&one_by_one));
    for rel in &rels {
        assert_eq!(packed.read_local(rel), one_by_one.read_local(rel));
    }
    assert_eq!(
        object_files(&packed.store),
        (0, 1),
        "one pack and no loose object"
    );
    assert!(object_files(&one_by_one.store).0 > 30);
    // Three commits, one per batch, as one by one.
    let mut walk = packed.store.repo().revwalk().unwrap();
    walk.push(tip.unwrap()).unwrap();
    assert_eq!(walk.count(), 3);
    let fsck = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(packed.store.repo().path())
        .args(["fsck", "--full", "--strict"])
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{fsck:?}");
    // Commits after it build on it as usual.
    let grown: String = (0..40).map(|n| transcript_line(root, n)).collect();
    packed.write("s0.jsonl", grown.as_bytes());
    assert!(
        packed
            .commit(vec![("s0.jsonl", packed.written("s0.jsonl"))])
            .is_some()
    );
    assert_eq!(packed.read_local("s0.jsonl"), grown.as_bytes());
}

#[test]
fn a_packed_commit_that_fails_part_way_leaves_the_branch_and_the_objects_as_they_were() {
    let root = "/home/al/src/proj";
    let m = machine("a1", "/home/al", root);
    let rels: Vec<String> = (0..4).map(|i| format!("s{i}.jsonl")).collect();
    for rel in &rels {
        m.write(rel, transcript_line(root, 1).as_bytes());
    }
    let mut batches = m.batches(&rels, 2);
    // The second batch names a place with no project record.
    batches[1].projects.clear();
    for f in &mut batches[1].files {
        f.place.slug = "-elsewhere".into();
    }
    let err = m
        .store
        .commit_packed(&m.record, &batches, |_| 0, |_| {})
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownProject(_)), "{err}");
    assert_eq!(m.store.head(&m.record.id, true).unwrap(), None);
    assert_eq!(object_files(&m.store), (0, 0), "nothing written");
}

#[test]
#[cfg_attr(windows, ignore = "checks the store with Linux's git")]
fn packs_written_part_way_and_onto_an_existing_branch_hold_each_object_once() {
    let root = "/home/al/src/proj";
    let m = machine("a1", "/home/al", root);
    let rels: Vec<String> = (0..40).map(|i| format!("s{i}.jsonl")).collect();
    for (i, rel) in rels.iter().enumerate() {
        let t: String = (0..5 + i).map(|n| transcript_line(root, n)).collect();
        m.write(rel, t.as_bytes());
    }
    // Each batch counts as a whole pack's worth of input: a pack after each.
    let huge = |_: &Batch| u64::MAX / 8;
    m.store
        .commit_packed(&m.record, &m.batches(&rels[..30], 10), huge, |_| {})
        .unwrap();
    assert_eq!(object_files(&m.store), (0, 3));
    // More sessions later, onto the branch the first import left.
    m.store
        .commit_packed(&m.record, &m.batches(&rels[30..], 10), |_| 0, |_| {})
        .unwrap();
    assert_eq!(object_files(&m.store), (0, 4));
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(m.store.repo().path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["fsck", "--full", "--strict"]);
    let reachable = git(&["rev-list", "--objects", "--all"]).lines().count();
    let in_packs: usize = git(&["count-objects", "-v"])
        .lines()
        .find_map(|l| l.strip_prefix("in-pack: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(in_packs, reachable, "every object once, none the disk had");
    assert_eq!(m.own().files.len(), 40);
    assert_eq!(m.read_local("s39.jsonl").len(), {
        let t: String = (0..44).map(|n| transcript_line(root, n)).collect();
        t.len()
    });
}

#[test]
fn compaction_leaves_one_pack_and_clears_a_pack_a_killed_import_was_writing() {
    let root = "/home/al/src/proj";
    let m = machine("a1", "/home/al", root);
    let rels: Vec<String> = (0..12).map(|i| format!("s{i}.jsonl")).collect();
    for rel in &rels {
        m.write(rel, transcript_line(root, 1).as_bytes());
    }
    m.store
        .commit_packed(&m.record, &m.batches(&rels, 4), |_| 0, |_| {})
        .unwrap();
    let grown = transcript_line(root, 1) + &transcript_line(root, 2);
    m.write("s0.jsonl", grown.as_bytes());
    m.commit(vec![("s0.jsonl", m.written("s0.jsonl"))]);
    let pack_dir = m.store.repo().path().join("objects/pack");
    // One a process killed two hours ago left, and one a process is writing now.
    let torn = pack_dir.join("pack_git2_a1b2c3");
    std::fs::write(&torn, b"PACK half of it").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&torn)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let writing = pack_dir.join("pack_git2_d4e5f6");
    std::fs::write(&writing, b"PACK being written").unwrap();
    let stats = m.store.compact().unwrap();
    assert!(
        stats.loose_removed > 0 && stats.packs_removed > 0,
        "{stats:?}"
    );
    assert!(!torn.exists(), "the torn pack is gone");
    assert!(writing.exists(), "the pack being written stays");
    std::fs::remove_file(&writing).unwrap();
    // On Windows a pack this store's handle has open stays for a later compaction.
    if cfg!(windows) {
        assert_eq!(object_files(&m.store).0, 0, "no loose object");
    } else {
        assert_eq!(object_files(&m.store), (0, 1));
    }
    assert_eq!(m.read_local("s0.jsonl"), grown.as_bytes());
    assert_eq!(m.own().files.len(), 12);
}

#[test]
#[cfg_attr(windows, ignore = "fetches with Linux's git")]
fn a_store_holding_only_the_tips_is_read_walked_and_compacted() {
    let root = "/home/al/src/proj";
    let m = machine("a1", "/home/al", root);
    for n in 1..=3 {
        let t: String = (0..n).map(|i| transcript_line(root, i)).collect();
        m.write("s.jsonl", t.as_bytes());
        m.commit(vec![("s.jsonl", m.written("s.jsonl"))]);
    }
    // Another store that fetched a1's branch at depth 1, as a new machine does.
    let tmp = tempfile::tempdir().unwrap();
    let shallow_path = tmp.path().join("shallow.git");
    let shallow = Store::init(&shallow_path).unwrap();
    let url = format!("file://{}", m.store.repo().path().display());
    let fetch = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&shallow_path)
        .args(["fetch", "-q", "--depth=1", &url])
        .arg("+refs/heads/machines/*:refs/remotes/origin/machines/*")
        .output()
        .unwrap();
    assert!(fetch.status.success(), "{fetch:?}");
    assert!(shallow.repo().is_shallow());
    let head = shallow.head("a1", false).unwrap().unwrap();
    assert_eq!(
        shallow.commits(&[head]).unwrap(),
        [head],
        "the history ends at the tip"
    );
    let snap = shallow.snapshot("a1", head).unwrap();
    let f = snap
        .files
        .iter()
        .find(|f| f.rel.as_str() == "s.jsonl")
        .unwrap();
    let place = f.project.place();
    assert_eq!(shallow.history(head, &place, &f.rel, 10).unwrap().len(), 1);
    shallow.compact().unwrap();
    assert_eq!(object_files(&shallow), (0, 1));
    assert_eq!(shallow.read(f).unwrap(), m.store.read(f).unwrap());
    // The full store walks all three.
    assert_eq!(m.store.commits(&[head]).unwrap().len(), 3);
}
