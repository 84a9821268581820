//! Fetch plus merge for 1,000 sessions across 3 machines: what a machine does after another
//! machine pushed. `cargo bench -p ferry-sync --bench fetch_merge`.
//!
//! Machines A, B and C share 1,000 sessions of ~16 KB; every machine has its own version of
//! each, and 100 of them diverged (both B and C appended lines of their own). D fetches from
//! the shared remote, reads the three branches and builds the merged, expanded view of all.

#[path = "../tests/common/mod.rs"]
mod common;

use ferry_sync::codec::{Codec, Format};
use ferry_sync::store::{
    Batch, Change, FileUpdate, MachineRecord, ProjectRecord, RelPath, Store, mapping_for,
};
use std::path::Path;
use std::time::Instant;

const SESSIONS: usize = 1000;

fn machine(id: &str, home: &str) -> (MachineRecord, ProjectRecord) {
    let root = format!("{home}/src/proj");
    (
        common::linux_machine(id, home),
        common::project("github.com/o/proj", &root),
    )
}

fn line(root: &str, s: usize, i: usize, who: &str) -> String {
    format!(
        "{{\"cwd\":\"{root}\",\"sessionId\":\"s{s}\",\"uuid\":\"{who}-{s}-{i}\",\"message\":{{\"content\":\"step {i} of session {s}: read {root}/src/m{i}.rs and ran cargo test -p ferry-sync; all green\"}}}}\n"
    )
}

fn publish(dir: &Path, id: &str, home: &str, remote: &str, extra: Option<&str>) {
    let (m, p) = machine(id, home);
    let store = Store::init(&dir.join(format!("{id}.git"))).unwrap();
    let upper = dir.join(format!("{id}-upper"));
    std::fs::create_dir_all(&upper).unwrap();
    let mut files = Vec::new();
    for s in 0..SESSIONS {
        let mut text: String = (0..80).map(|i| line(&p.root, s, i, "shared")).collect();
        if let Some(who) = extra.filter(|_| s % 10 == 0) {
            text.extend((0..5).map(|i| line(&p.root, s, i, who)));
        }
        let path = upper.join(format!("s{s}.jsonl"));
        std::fs::write(&path, text).unwrap();
        files.push(FileUpdate {
            place: p.place(),
            rel: RelPath::new(&format!("s{s}.jsonl")).unwrap(),
            change: Change::Write {
                local: path,
                dirty_from: None,
            },
        });
    }
    store
        .commit(
            &m,
            &Batch {
                projects: vec![p],
                files,
            },
        )
        .unwrap();
    let mut r = store.repo().remote_anonymous(remote).unwrap();
    let spec = format!("refs/heads/machines/{id}:refs/heads/machines/{id}");
    r.push(&[spec.as_str()], None).unwrap();
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let url = remote.to_str().unwrap();
    let t = Instant::now();
    publish(tmp.path(), "aaaa", "/home/al", url, None);
    publish(tmp.path(), "bbbb", "/Users/bob", url, Some("b"));
    publish(tmp.path(), "cccc", "/home/carol", url, Some("c"));
    let setup = t.elapsed();

    let (dm, dp) = machine("dddd", "/home/dave");
    let store = Store::init(&tmp.path().join("dddd.git")).unwrap();
    let t = Instant::now();
    let mut r = store.repo().remote_anonymous(url).unwrap();
    r.fetch(
        &["+refs/heads/machines/*:refs/remotes/origin/machines/*"],
        None,
        None,
    )
    .unwrap();
    let fetch = t.elapsed();
    let t = Instant::now();
    let snaps = common::remote_snapshots(&store);
    let snapshot = t.elapsed();
    let t = Instant::now();
    let codec = Codec::new(&mapping_for(&dm, &dp).unwrap());
    let paths = common::all_paths(&snaps);
    let (mut bytes, mut diverged) = (0usize, 0usize);
    for rel in &paths {
        let view = ferry_sync::view::view_of(&snaps, "dddd", &dp.key, rel);
        let merged = view.read(&store).unwrap();
        if view
            .versions
            .iter()
            .any(|(_, f)| store.read(f).unwrap().len() != merged.len())
        {
            diverged += 1;
        }
        bytes += codec.expand(&merged, Format::Json).len();
    }
    let merge = t.elapsed();
    println!("| step | time |");
    println!("|---|---:|");
    println!(
        "| setup: 3 machines commit and push {SESSIONS} sessions each (not part of the figure) | {:.1} s |",
        setup.as_secs_f64()
    );
    println!(
        "| fetch 3 branches from a local bare remote | {:.0} ms |",
        fetch.as_secs_f64() * 1e3
    );
    println!(
        "| read and check the 3 branches ({} files) | {:.0} ms |",
        snaps.iter().map(|s| s.files.len()).sum::<usize>(),
        snapshot.as_secs_f64() * 1e3
    );
    println!(
        "| merge and expand {} sessions ({diverged} diverged, {:.1} MB of view) | {:.0} ms |",
        paths.len(),
        bytes as f64 / 1e6,
        merge.as_secs_f64() * 1e3
    );
    println!(
        "| **fetch + merge** | **{:.0} ms** |",
        (fetch + snapshot + merge).as_secs_f64() * 1e3
    );
}
