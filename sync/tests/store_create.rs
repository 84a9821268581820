//! Creating a store: it appears at its path whole or not at all, so a process killed while it is
//! being created (a `ferry init` interrupted, a daemon killed at its first start) leaves nothing
//! that a later start cannot open.

mod common;

use ferry_sync::store::Store;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The names beside `path` that start with `.store.git.new-`: creations' temporary layouts.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".store.git.new-"))
        .collect()
}

/// A handle on directory `dir` its times can be set through.
fn dir_handle(dir: &Path) -> std::fs::File {
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        // FILE_FLAG_BACKUP_SEMANTICS: what opens a directory on Windows.
        std::fs::File::options()
            .write(true)
            .custom_flags(0x0200_0000)
            .open(dir)
            .unwrap()
    }
    #[cfg(not(windows))]
    std::fs::File::open(dir).unwrap()
}

/// A watcher spinning on the path sees the store the first moment it exists, and git can open
/// it then. (Created in place, the directory exists before its `HEAD` does, and the watcher
/// catches that in its first round.)
#[test]
fn a_new_store_is_whole_the_first_moment_its_path_exists() {
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let path = tmp.path().join(format!("{round}/state/store.git"));
        let started = AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                started.store(true, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if path.exists() {
                        return Some(git2::Repository::open_bare(&path).map(|_| ()));
                    }
                    std::hint::spin_loop();
                }
                None
            });
            while !started.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            Store::init(&path).expect("the store is created");
            watcher.join().unwrap()
        });
        let seen = seen.expect("the watcher saw the store appear");
        assert!(
            seen.is_ok(),
            "round {round}: the store's path existed before git could open it: {seen:?}"
        );
        assert!(
            temporaries(path.parent().unwrap()).is_empty(),
            "round {round}: the temporary layout was renamed, not left beside it"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "round {round}: private to the user");
        }
    }
}

/// What an interrupted creation left: a temporary layout from long ago is removed by the next
/// creation, one that may still be in use is kept, and a store an older release left half made
/// in place is completed and opens.
#[test]
fn what_an_interrupted_creation_left_is_cleared_or_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let old = state.join(".store.git.new-4242-0123456789abcdef");
    let young = state.join(".store.git.new-4343-fedcba9876543210");
    for d in [&old, &young] {
        std::fs::create_dir_all(d.join("refs")).unwrap();
        std::fs::write(d.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    dir_handle(&old).set_modified(hour_ago).unwrap();
    let store = Store::init(&state.join("store.git")).unwrap();
    assert!(store.head("anyone", false).unwrap().is_none());
    let left = temporaries(&state);
    assert_eq!(
        left,
        vec![".store.git.new-4343-fedcba9876543210".to_string()],
        "the old layout is removed, the young one kept"
    );

    // Half made in place: a directory with `refs/` and nothing else.
    let half = tmp.path().join("half/store.git");
    std::fs::create_dir_all(half.join("refs")).unwrap();
    assert!(git2::Repository::open_bare(&half).is_err());
    let store = Store::init(&half).expect("a half-made store is completed");
    assert!(store.head("anyone", false).unwrap().is_none());
    git2::Repository::open_bare(&half)
        .and_then(|r| r.blob(b"a line"))
        .expect("git opens it and writes to it");
    // Linux's git finds it sound (Wine has no git to run).
    #[cfg(unix)]
    common::git(&half, &["fsck", "--full"]);
}
