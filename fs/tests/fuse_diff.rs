//! Differential test: the same random sequences of Claude Code's file operations, through a real
//! FUSE mount of the view and on a plain directory, must give the same results and the same
//! tree; after unmounting, the directory under the mount holds exactly that tree as plain files.
//! Needs root (or fusermount3) and /dev/fuse, as CI has.
#![cfg(unix)] // the FUSE mount; Windows mounts through WinFsp, which Wine cannot run

mod common;

use common::Rig;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const DIRS: [&str; 4] = ["-p", "-p/s", "-q", "-q/s"];
const FILES: [&str; 4] = ["-p/a.jsonl", "-p/s/t.txt", "-q/a.jsonl", "-q/s/t.txt"];

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    CreateExcl(usize),
    Rewrite(usize, u8),
    PWrite(usize, u16, u8),
    Truncate(usize, u16),
    SetMtime(usize, u32),
    Unlink(usize),
    Mkdir(usize),
    MkdirAll(usize),
    Rmdir(usize),
    RemoveAll(usize),
    RenameFile(usize, usize),
    RenameDir(usize, usize),
    LinkOrCopy(usize, usize),
    /// Opens a file and keeps the descriptor (at most three are kept, the oldest closed).
    Hold(usize),
    /// pwrite through a kept descriptor, whatever happened to its name since.
    HeldWrite(usize, u16, u8),
    /// ftruncate through a kept descriptor.
    HeldTruncate(usize, u16),
    /// fstat and pread of the whole file through a kept descriptor.
    HeldRead(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let f = 0..4usize;
    prop_oneof![
        4 => f.clone().prop_map(Op::Append),
        1 => f.clone().prop_map(Op::CreateExcl),
        1 => (f.clone(), any::<u8>()).prop_map(|(a, b)| Op::Rewrite(a, b)),
        1 => (f.clone(), 0..400u16, 1..50u8).prop_map(|(a, b, c)| Op::PWrite(a, b, c)),
        1 => (f.clone(), 0..300u16).prop_map(|(a, b)| Op::Truncate(a, b)),
        1 => (f.clone(), any::<u32>()).prop_map(|(a, b)| Op::SetMtime(a, b)),
        1 => f.clone().prop_map(Op::Unlink),
        1 => (0..4usize).prop_map(Op::Mkdir),
        2 => (0..4usize).prop_map(Op::MkdirAll),
        1 => (0..4usize).prop_map(Op::Rmdir),
        1 => (0..4usize).prop_map(Op::RemoveAll),
        1 => (f.clone(), f.clone()).prop_map(|(a, b)| Op::RenameFile(a, b)),
        1 => (0..4usize, 0..4usize).prop_map(|(a, b)| Op::RenameDir(a, b)),
        1 => (f.clone(), f.clone()).prop_map(|(a, b)| Op::LinkOrCopy(a, b)),
        1 => f.prop_map(Op::Hold),
        1 => (0..3usize, 0..400u16, 1..50u8).prop_map(|(a, b, c)| Op::HeldWrite(a, b, c)),
        1 => (0..3usize, 0..300u16).prop_map(|(a, b)| Op::HeldTruncate(a, b)),
        2 => (0..3usize).prop_map(Op::HeldRead),
    ]
}

/// Applies `op` under `root`, with the descriptors kept so far in `held`; returns what a
/// read through one saw, or the errno of a failure. `mounted` only changes `link`, which the
/// view refuses with EXDEV (Claude Code then copies).
fn apply(
    root: &Path,
    op: &Op,
    n: usize,
    mounted: bool,
    held: &mut Vec<std::fs::File>,
) -> Result<String, i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(-1);
    let kept =
        |h: &usize, held: &Vec<std::fs::File>| held.len().checked_sub(1).map(|_| *h % held.len());
    match op {
        Op::Hold(f) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(root.join(FILES[*f]))
                .map_err(errno)?;
            if held.len() == 3 {
                held.remove(0);
            }
            held.push(file);
            Ok(String::new())
        }
        Op::HeldWrite(h, off, len) => match kept(h, held) {
            Some(i) => held[i]
                .write_all_at(&vec![b'%'; *len as usize], *off as u64)
                .map(|()| String::new())
                .map_err(errno),
            None => Ok(String::new()),
        },
        Op::HeldTruncate(h, len) => match kept(h, held) {
            Some(i) => held[i]
                .set_len(*len as u64)
                .map(|()| String::new())
                .map_err(errno),
            None => Ok(String::new()),
        },
        Op::HeldRead(h) => match kept(h, held) {
            Some(i) => {
                let md = held[i].metadata().map_err(errno)?;
                let mut data = vec![0; md.len() as usize + 10];
                let got = held[i].read_at(&mut data, 0).map_err(errno)?;
                data.truncate(got);
                Ok(format!(
                    "size {} links {} mode {:o}: {}",
                    md.len(),
                    md.nlink(),
                    md.mode() & 0o777,
                    String::from_utf8_lossy(&data)
                ))
            }
            None => Ok(String::new()),
        },
        other => apply_named(root, other, n, mounted).map(|()| String::new()),
    }
}

/// Applies an operation on names under `root` (see [`apply`]).
fn apply_named(root: &Path, op: &Op, n: usize, mounted: bool) -> Result<(), i32> {
    let p = |s: &str| root.join(s);
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(-1);
    match op {
        Op::Append(f) => {
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(p(FILES[*f]))
                .map_err(errno)?;
            file.write_all(format!("{{\"uuid\":\"u{n}\",\"n\":{n}}}\n").as_bytes())
                .map_err(errno)
        }
        Op::CreateExcl(f) => OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p(FILES[*f]))
            .map(drop)
            .map_err(errno),
        Op::Rewrite(f, b) => {
            std::fs::write(p(FILES[*f]), vec![*b; 100 + *b as usize]).map_err(errno)
        }
        Op::PWrite(f, off, len) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(p(FILES[*f]))
                .map_err(errno)?;
            file.write_all_at(&vec![b'#'; *len as usize], *off as u64)
                .map_err(errno)
        }
        Op::Truncate(f, len) => {
            let file = OpenOptions::new()
                .write(true)
                .open(p(FILES[*f]))
                .map_err(errno)?;
            file.set_len(*len as u64).map_err(errno)
        }
        Op::SetMtime(f, t) => {
            let file = OpenOptions::new()
                .write(true)
                .open(p(FILES[*f]))
                .map_err(errno)?;
            file.set_modified(UNIX_EPOCH + Duration::from_secs(*t as u64))
                .map_err(errno)
        }
        Op::Unlink(f) => std::fs::remove_file(p(FILES[*f])).map_err(errno),
        Op::Mkdir(d) => std::fs::create_dir(p(DIRS[*d])).map_err(errno),
        Op::MkdirAll(d) => std::fs::create_dir_all(p(DIRS[*d])).map_err(errno),
        Op::Rmdir(d) => std::fs::remove_dir(p(DIRS[*d])).map_err(errno),
        Op::RemoveAll(d) => std::fs::remove_dir_all(p(DIRS[*d])).map_err(errno),
        Op::RenameFile(a, b) => std::fs::rename(p(FILES[*a]), p(FILES[*b])).map_err(errno),
        Op::RenameDir(a, b) => std::fs::rename(p(DIRS[*a]), p(DIRS[*b])).map_err(errno),
        Op::LinkOrCopy(a, b) => {
            if mounted {
                let exists = |f: &str| std::fs::symlink_metadata(p(f)).is_ok();
                let (code, want) = match std::fs::hard_link(p(FILES[*a]), p(FILES[*b])) {
                    Err(e) => (e.raw_os_error(), libc::EXDEV),
                    Ok(()) => (None, libc::EXDEV),
                };
                // A missing source or an existing target fail before the view is asked.
                let parent_b = Path::new(FILES[*b]).parent().unwrap().to_str().unwrap();
                if exists(FILES[*a]) && !exists(FILES[*b]) && exists(parent_b) {
                    assert_eq!(
                        code,
                        Some(want),
                        "link through the view must fail with EXDEV"
                    );
                }
            }
            // What Claude Code does next: copy, failing if the target exists.
            let data = std::fs::read(p(FILES[*a])).map_err(errno)?;
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p(FILES[*b]))
                .map_err(errno)?;
            out.write_all(&data).map_err(errno)
        }
        Op::Hold(_) | Op::HeldWrite(..) | Op::HeldTruncate(..) | Op::HeldRead(_) => {
            unreachable!("descriptor operations are applied by `apply`")
        }
    }
}

/// Every entry under `root`: path, kind, mode, and content and mtime (files) or link count
/// (directories).
fn tree(root: &Path) -> BTreeMap<String, (bool, u32, Vec<u8>, i64)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (bool, u32, Vec<u8>, i64)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if md.is_dir() {
                // A directory's link count: two, plus one per subdirectory.
                out.insert(
                    rel,
                    (true, md.mode() & 0o777, Vec::new(), md.nlink() as i64),
                );
                walk(root, &path, out);
            } else {
                let data = std::fs::read(&path).unwrap();
                assert_eq!(data.len() as u64, md.len(), "{rel}: st_size is exact");
                out.insert(rel, (false, md.mode() & 0o777, data, md.mtime()));
            }
        }
    }
    walk(root, root, &mut out);
    // Only the times that were set explicitly are comparable; the others are "now" on each side.
    out
}

fn same_tree(
    a: &BTreeMap<String, (bool, u32, Vec<u8>, i64)>,
    b: &BTreeMap<String, (bool, u32, Vec<u8>, i64)>,
    explicit_times: bool,
) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((pa, va), (pb, vb))| {
            pa == pb
                && va.0 == vb.0
                && va.1 == vb.1
                && va.2 == vb.2
                && if va.0 {
                    va.3 == vb.3
                } else {
                    !explicit_times || va.3 == vb.3 || va.3 > 1_700_000_000
                }
        })
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let rig = Rig::new();
    let plain = tempfile::tempdir().unwrap();
    let fs = Arc::new(rig_fs(rig));
    let mountpoint = fs.0.upper.clone();
    let mounted =
        ferry_fs::fuse::mount(fs.1.clone(), &mountpoint).expect("mount (needs root and /dev/fuse)");
    let mut result = Ok(());
    let (mut held_plain, mut held_view) = (Vec::new(), Vec::new());
    for (n, op) in ops.iter().enumerate() {
        let want = apply(plain.path(), op, n, false, &mut held_plain);
        let got = apply(&mountpoint, op, n, true, &mut held_view);
        if got != want {
            result = Err(TestCaseError::fail(format!(
                "step {n} {op:?}: view {got:?}, plain {want:?}"
            )));
            break;
        }
        let (t1, t2) = (tree(&mountpoint), tree(plain.path()));
        if !same_tree(&t1, &t2, true) {
            result = Err(TestCaseError::fail(format!(
                "step {n} {op:?}:\nview  {t1:?}\nplain {t2:?}"
            )));
            break;
        }
    }
    drop(held_view);
    let before = tree(&mountpoint);
    ferry_platform::mount::unmount(&mountpoint).unwrap();
    mounted.join(Duration::from_secs(5));
    result?;
    // Unmounted, the directory holds the same tree as plain files.
    let after = tree(&mountpoint);
    prop_assert!(
        same_tree(&before, &after, true),
        "after unmount:\n{after:?}\nmounted:\n{before:?}"
    );
    drop(fs);
    Ok(())
}

/// The rig's core, shareable with the mount, plus the rig for its paths.
struct Shared(RigPaths, Arc<ferry_fs::core::Fs>);
struct RigPaths {
    upper: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn rig_fs(rig: Rig) -> Shared {
    let Rig { dir, upper, fs, .. } = rig;
    Shared(RigPaths { upper, _dir: dir }, Arc::new(fs))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn the_mount_behaves_like_a_local_directory(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}

/// pjdfstest `unlink/14.t`'s case, through the mount: descriptors open on a file keep reading,
/// writing and truncating it after its name is removed or replaced, as on a plain directory.
#[test]
fn descriptors_open_on_a_file_outlive_its_name() {
    use Op::*;
    let ops = [
        MkdirAll(0),
        MkdirAll(2),
        Append(0),
        Hold(0),
        Unlink(0),
        HeldWrite(0, 3, 5),
        HeldRead(0),
        Append(0),
        Append(2),
        Hold(2),
        Hold(0),
        RenameFile(0, 2),
        HeldTruncate(1, 7),
        HeldRead(1),
        HeldWrite(2, 0, 4),
        HeldRead(2),
        HeldRead(0),
    ];
    run(&ops).unwrap();
}
