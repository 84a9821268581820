//! A full disk (issue 8), with the built binary and a real mount: HOME (so the upper layer) and
//! FERRY_HOME (the store, the log, the status) on one small tmpfs. A write that cannot be
//! stored fails with ENOSPC, visibly; every acknowledged line stays in the file; and once space
//! is freed the daemon commits and pushes them by itself, with no new write and no restart.
//! Needs root (tmpfs and FUSE).

use ferry_tests::ferry::Machine;
use ferry_tests::git::{blobs, fsck};
use ferry_tests::rig::eventually;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size` mounted at `dir` for as long as this lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(st.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn line(cwd: &Path, n: usize) -> (String, String) {
    let uuid = format!("00000000-0000-4000-8000-{n:012}");
    let text = serde_json::json!({
        "uuid": uuid,
        "type": "user",
        "cwd": cwd,
        "message": {"content": "x".repeat(900)},
    });
    (uuid, format!("{text}\n"))
}

/// Appends `text` in one open/write/close cycle, as Claude Code does.
fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Fills the filesystem holding `dir` with a file there; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    // Large blocks, then page-sized ones: not even a small file fits afterwards.
    for size in [64 << 10, 4 << 10] {
        let block = vec![0u8; size];
        let full = loop {
            if let Err(e) = f.write_all(&block).and_then(|_| f.sync_all()) {
                break e;
            }
        };
        assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    }
    filler
}

#[test]
fn a_full_disk_fails_writes_with_enospc_and_recovers_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let home = Tmpfs::mount(&tmp.path().join("home"), "24m");
    let state = Tmpfs::mount(&tmp.path().join("state"), "24m");
    let remote = tmp.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let m = Machine::at(home.0.join("alice"), state.0.join("ferry"));
    let url = format!("file://{}", remote.display());
    m.ok(&["init", "--machine", "a", "--remote", &url]);
    m.ok(&["mount"]);
    let proj = m.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let dir = m
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("s.jsonl");
    let mut acked = Vec::new();
    let mut written = String::new();
    let mut write = |n: usize| {
        let (uuid, text) = line(&proj, n);
        let result = append(&file, &text);
        if result.is_ok() {
            acked.push(uuid);
            written.push_str(&text);
        }
        result
    };
    for n in 0..10 {
        write(n).expect("a write with space left");
    }

    // The store's disk is full: writes still land in the upper layer, commits cannot.
    let state_filler = fill(&state.0);
    for n in 10..30 {
        write(n).expect("the upper layer has space");
    }
    std::thread::sleep(Duration::from_secs(2));

    // Now the upper layer's disk is full too: appends fail with ENOSPC (a few may still fit in
    // the file's last page).
    let home_filler = fill(&home.0);
    let failure = (30..200)
        .find_map(|n| write(n).err())
        .expect("a write on a full disk fails");
    assert_eq!(
        failure.kind(),
        std::io::ErrorKind::StorageFull,
        "the writer is told why (ENOSPC): {failure}"
    );
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(
        now.starts_with(&written),
        "every acknowledged line is still in the file"
    );
    assert!(m.mounted(), "the daemon survives a full disk");
    let before = blobs(&remote).concat();
    assert!(
        acked.iter().any(|u| !before.contains(u.as_str())),
        "some acknowledged lines waited for space"
    );

    // Free the space, then write nothing: the daemon must commit and push by itself.
    std::fs::remove_file(&state_filler).unwrap();
    std::fs::remove_file(&home_filler).unwrap();
    let pushed = eventually(Duration::from_secs(60), || {
        let all = blobs(&remote).concat();
        acked.iter().all(|u| all.contains(u.as_str()))
    });
    let all = blobs(&remote).concat();
    let missing: Vec<_> = acked.iter().filter(|u| !all.contains(u.as_str())).collect();
    assert!(
        pushed,
        "{} acknowledged lines never reached the remote, e.g. {:?}\nlog:\n{}",
        missing.len(),
        missing.first(),
        m.log_tail()
    );
    // `ferry status` says what happened (the daemon publishes its status every 2 s).
    let status =
        || -> serde_json::Value { serde_json::from_str(&m.ok(&["status", "--json"])).unwrap() };
    let told = eventually(Duration::from_secs(10), || {
        status()["last_error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("No space left"))
    });
    assert!(told, "status: {}\nlog:\n{}", status(), m.log_tail());

    // And it keeps working: a new line goes through.
    let (uuid, text) = line(&proj, 1000);
    append(&file, &text).expect("a write after space is freed");
    assert!(eventually(Duration::from_secs(30), || blobs(&remote)
        .concat()
        .contains(&uuid)));
    m.ok(&["unmount"]);
    fsck(&remote);
    fsck(&m.state.join("store"));
}
