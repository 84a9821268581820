//! The core without FUSE: other machines' files placed, expanded and merged; copy-up on the
//! first write; deletion that belongs to the writer (DESIGN.md invariants 3, 4 and 5).

mod common;

use common::{B_ROOT, KEY, Rig, now_ms};
use ferry_fs::core::SetAttr;
use ferry_fs::upper::{Kind, SetTime};
use ferry_sync::store::Change;
use std::path::Path;

fn line(uuid: &str, text: &str) -> String {
    format!("{{\"uuid\":\"{uuid}\",\"cwd\":\"{B_ROOT}\",\"text\":\"{text} {B_ROOT}/main.rs\"}}\n")
}

/// A session of `n` lines `u0`, `u1`, ... (each names a path under b's root).
fn long_session(n: usize) -> String {
    (0..n)
        .map(|i| line(&format!("u{i}"), "a line of a long session"))
        .collect()
}

fn local(rig: &Rig, l: &str) -> String {
    l.replace(B_ROOT, &rig.a_root())
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn another_machines_session_appears_under_this_machines_slug_expanded_with_exact_size() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    let text = line("u1", "hello") + &line("u2", "more");
    rig.b_writes("s1.jsonl", text.as_bytes(), t);
    let path = format!("{}/s1.jsonl", rig.slug());
    let want = local(&rig, &text);
    let attr = rig.fs.getattr(Path::new(&path)).unwrap();
    assert_eq!(attr.size, want.len() as u64);
    assert_eq!(attr.kind, Kind::File);
    assert_eq!(attr.mtime_ns / 1_000_000, t as i128);
    assert_eq!(attr.mode, 0o600);
    assert_eq!(rig.read(&path).unwrap(), want.as_bytes());
    // Listed at the root and in its directory.
    let root: Vec<_> = rig.fs.readdir(Path::new("")).unwrap();
    assert!(
        root.iter()
            .any(|(n, a)| n == rig.slug().as_str() && a.kind == Kind::Dir)
    );
    let dir = rig.fs.readdir(Path::new(&rig.slug())).unwrap();
    assert_eq!(dir.len(), 1);
    // Nothing was written to the upper layer by reading.
    assert!(!rig.upper.join(&path).exists());
    assert!(rig.take_notes().is_empty());
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn the_first_append_copies_the_view_up_then_appends() {
    let rig = Rig::new();
    let text = line("u1", "from b");
    rig.b_writes("s1.jsonl", text.as_bytes(), now_ms() - 60_000);
    let path = format!("{}/s1.jsonl", rig.slug());
    let mine = "{\"uuid\":\"a1\"}\n";
    rig.fs
        .write(Path::new(&path), 0, mine.as_bytes(), true)
        .unwrap();
    let want = local(&rig, &text) + mine;
    assert_eq!(
        std::fs::read(rig.upper.join(&path)).unwrap(),
        want.as_bytes()
    );
    assert_eq!(rig.read(&path).unwrap(), want.as_bytes());
    let notes = rig.take_notes();
    assert!(notes.iter().all(|(k, r, _)| k == KEY && r == "s1.jsonl"));
    assert!(matches!(notes.last().unwrap().2, Change::Write { .. }));
    // b goes on writing: the view holds every line of both, ours not lost.
    let more = text.clone() + &line("u2", "b again");
    rig.b_writes("s1.jsonl", more.as_bytes(), now_ms() + 60_000);
    let shown = String::from_utf8(rig.read(&path).unwrap()).unwrap();
    for l in [
        local(&rig, &line("u1", "from b")),
        mine.to_string(),
        local(&rig, &line("u2", "b again")),
    ] {
        assert_eq!(shown.matches(&l).count(), 1, "{l} once in {shown}");
    }
    // The next write copies the merge up and lands after it.
    rig.fs
        .write(Path::new(&path), 0, b"{\"uuid\":\"a2\"}\n", true)
        .unwrap();
    let upper = String::from_utf8(std::fs::read(rig.upper.join(&path)).unwrap()).unwrap();
    assert!(upper.starts_with(&shown) && upper.ends_with("{\"uuid\":\"a2\"}\n"));
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn unlinking_anothers_newer_file_hides_it_here_and_a_newer_version_brings_it_back() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    rig.b_writes("s1.jsonl", line("u1", "x").as_bytes(), t);
    let path = format!("{}/s1.jsonl", rig.slug());
    rig.fs.unlink(Path::new(&path)).unwrap();
    assert_eq!(
        rig.fs.getattr(Path::new(&path)).unwrap_err().errno,
        libc::ENOENT
    );
    let notes = rig.take_notes();
    assert!(
        matches!(notes[..], [(_, _, Change::Hide { until_ms })] if until_ms == t),
        "{notes:?}"
    );
    // The directory stays until removed, as on a local disk; then it goes.
    assert!(rig.fs.readdir(Path::new(&rig.slug())).unwrap().is_empty());
    rig.fs.rmdir(Path::new(&rig.slug())).unwrap();
    assert!(rig.fs.getattr(Path::new(&rig.slug())).is_err());
    rig.b_writes(
        "s1.jsonl",
        (line("u1", "x") + &line("u2", "y")).as_bytes(),
        t + 1000,
    );
    assert!(
        rig.read(&path)
            .unwrap()
            .ends_with(local(&rig, &line("u2", "y")).as_bytes())
    );
}

#[test]
fn unlinking_ones_own_newest_version_records_a_tombstone() {
    let rig = Rig::new();
    rig.b_writes("s1.jsonl", line("u1", "x").as_bytes(), now_ms() - 60_000);
    let path = format!("{}/s1.jsonl", rig.slug());
    rig.fs
        .write(Path::new(&path), 0, b"{\"uuid\":\"a1\"}\n", true)
        .unwrap();
    rig.take_notes();
    rig.fs.unlink(Path::new(&path)).unwrap();
    assert!(!rig.upper.join(&path).exists());
    assert!(rig.fs.getattr(Path::new(&path)).is_err());
    let notes = rig.take_notes();
    assert!(
        matches!(notes[..], [(_, _, Change::Delete { .. })]),
        "{notes:?}"
    );
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn newest_wins_for_other_files_and_a_local_newer_file_is_served_as_it_is() {
    let rig = Rig::new();
    let rel = "s1/tool-results/r.txt";
    let path = format!("{}/{rel}", rig.slug());
    rig.b_writes(
        rel,
        format!("output at {B_ROOT}\n").as_bytes(),
        now_ms() - 60_000,
    );
    assert_eq!(
        rig.read(&path).unwrap(),
        format!("output at {}\n", rig.a_root()).as_bytes()
    );
    // Truncating to nothing needs none of the old bytes; the local version is now newest.
    rig.fs
        .setattr(
            Path::new(&path),
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        )
        .unwrap();
    rig.fs.write(Path::new(&path), 0, b"mine", false).unwrap();
    assert_eq!(rig.read(&path).unwrap(), b"mine");
    // A newer version from b wins over it.
    rig.b_writes(rel, b"theirs", now_ms() + 60_000);
    assert_eq!(rig.read(&path).unwrap(), b"theirs");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn renaming_a_session_and_its_directory_into_another_project_moves_the_view() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    rig.b_writes("s1.jsonl", line("u1", "x").as_bytes(), t);
    rig.b_writes(
        "s1/subagents/agent-1.jsonl",
        line("g1", "sub").as_bytes(),
        t,
    );
    let slug = rig.slug();
    rig.fs.mkdir(Path::new("-elsewhere"), 0o700).unwrap();
    rig.fs
        .rename(
            Path::new(&format!("{slug}/s1.jsonl")),
            Path::new("-elsewhere/s1.jsonl"),
            false,
        )
        .unwrap();
    rig.fs
        .rename(
            Path::new(&format!("{slug}/s1")),
            Path::new("-elsewhere/s1"),
            false,
        )
        .unwrap();
    assert_eq!(
        rig.read("-elsewhere/s1.jsonl").unwrap(),
        local(&rig, &line("u1", "x")).as_bytes()
    );
    assert_eq!(
        rig.read("-elsewhere/s1/subagents/agent-1.jsonl").unwrap(),
        local(&rig, &line("g1", "sub")).as_bytes()
    );
    assert!(
        rig.fs
            .getattr(Path::new(&format!("{slug}/s1.jsonl")))
            .is_err()
    );
    assert!(rig.fs.getattr(Path::new(&format!("{slug}/s1"))).is_err());
    // Both are plain files in the upper layer now.
    assert!(
        rig.upper
            .join("-elsewhere/s1/subagents/agent-1.jsonl")
            .is_file()
    );
}

fn e<T: std::fmt::Debug>(r: Result<T, ferry_fs::FsError>) -> i32 {
    r.unwrap_err().errno
}

#[test]
fn errors_carry_the_errno_a_local_disk_gives() {
    let rig = Rig::new();
    rig.fs.mkdir(Path::new("-p"), 0o700).unwrap();
    rig.fs.create(Path::new("-p/a.jsonl"), 0o600, true).unwrap();
    assert_eq!(
        e(rig.fs.create(Path::new("-p/a.jsonl"), 0o600, true)),
        libc::EEXIST
    );
    assert_eq!(e(rig.fs.mkdir(Path::new("-p"), 0o700)), libc::EEXIST);
    assert_eq!(
        e(rig.fs.create(Path::new("-none/a"), 0o600, true)),
        libc::ENOENT
    );
    assert_eq!(e(rig.fs.rmdir(Path::new("-p"))), libc::ENOTEMPTY);
    assert_eq!(e(rig.fs.unlink(Path::new("-p"))), libc::EISDIR);
    assert_eq!(e(rig.fs.rmdir(Path::new("-p/a.jsonl"))), libc::ENOTDIR);
    assert_eq!(
        e(rig.fs.rename(Path::new("-p"), Path::new("-p/x"), false)),
        libc::EINVAL
    );
    assert_eq!(
        e(rig
            .fs
            .rename(Path::new("-p/a.jsonl"), Path::new("-p"), false)),
        libc::EISDIR
    );
    assert_eq!(e(rig.fs.read(Path::new("-p/none"), 0, 1)), libc::ENOENT);
    // Modes are kept; utimens sets the time Claude Code asks for.
    let a = rig.fs.mkdir(Path::new("-p/d"), 0o700).unwrap();
    assert_eq!(a.mode, 0o700);
    let a = rig
        .fs
        .setattr(
            Path::new("-p/a.jsonl"),
            SetAttr {
                mtime: Some(SetTime::At(1_000_000_000_000)),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(a.mtime_ns, 1_000_000_000_000);
    assert_eq!(a.mode, 0o600);
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn removing_a_message_from_a_resumed_session_keeps_the_file_as_written() {
    let rig = Rig::new();
    let text = line("u1", "one") + &line("u2", "two");
    rig.b_writes("s1.jsonl", text.as_bytes(), now_ms() - 60_000);
    let path = format!("{}/s1.jsonl", rig.slug());
    let p = Path::new(&path);
    // Resumed here: an append copies the session up.
    rig.fs.write(p, 0, b"{\"uuid\":\"a1\"}\n", true).unwrap();
    // Claude Code removes the last two messages: ftruncate, then pwrite of a new tail.
    let keep = local(&rig, &line("u1", "one")).len() as u64;
    let a = rig
        .fs
        .setattr(
            p,
            SetAttr {
                size: Some(keep),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(a.size, keep, "the size is what was asked for, not a merge");
    rig.fs
        .write(p, keep, b"{\"uuid\":\"a2\"}\n", false)
        .unwrap();
    let want = local(&rig, &line("u1", "one")) + "{\"uuid\":\"a2\"}\n";
    assert_eq!(String::from_utf8(rig.read(&path).unwrap()).unwrap(), want);
    assert_eq!(
        std::fs::read(rig.upper.join(&path)).unwrap(),
        want.as_bytes()
    );
    // A rewrite with O_TRUNC of a session never copied up takes effect too.
    rig.b_writes("s2.jsonl", text.as_bytes(), now_ms() - 60_000);
    let p2 = format!("{}/s2.jsonl", rig.slug());
    rig.fs
        .setattr(
            Path::new(&p2),
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            },
        )
        .unwrap();
    rig.fs
        .write(Path::new(&p2), 0, b"{\"uuid\":\"r\"}\n", false)
        .unwrap();
    assert_eq!(rig.read(&p2).unwrap(), b"{\"uuid\":\"r\"}\n");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn a_checkout_where_the_client_runs_is_adopted_as_the_projects_place() {
    let rig = Rig::new();
    let text = line("u1", "from b");
    rig.b_writes("s1.jsonl", text.as_bytes(), now_ms() - 60_000);
    let elsewhere = format!("{}/work/clients/proj", rig.a.home);
    std::fs::create_dir_all(&elsewhere).unwrap();
    let at = |root: &str| format!("{}/s1.jsonl", ferry_sync::slug::slug(root));
    // No checkout known here: the origin's HOME-relative place.
    assert!(rig.read(&at(&rig.a_root())).is_ok());
    assert_eq!(rig.read(&at(&elsewhere)), Err(libc::ENOENT));
    // A checkout of another project, or of nothing any machine has, changes nothing.
    assert!(
        rig.fs
            .adopt_checkout(&elsewhere, "github.com/o/other")
            .unwrap()
            .is_none()
    );
    // A checkout of this project is adopted: the session moves there, in its terms.
    assert!(rig.fs.adopt_checkout(&elsewhere, KEY).unwrap().is_some());
    assert_eq!(
        rig.read(&at(&elsewhere)).unwrap(),
        text.replace(B_ROOT, &elsewhere).as_bytes()
    );
    assert_eq!(rig.read(&at(&rig.a_root())), Err(libc::ENOENT));
    // Once placed, a second checkout does not move it again.
    let third = format!("{}/third/proj", rig.a.home);
    assert!(rig.fs.adopt_checkout(&third, KEY).unwrap().is_none());
    // Writes there are this machine's changes of the same project.
    rig.fs
        .write(Path::new(&at(&elsewhere)), 0, b"{\"uuid\":\"a1\"}\n", true)
        .unwrap();
    let notes = rig.take_notes();
    assert!(
        notes
            .iter()
            .any(|(k, rel, _)| k == KEY && rel == "s1.jsonl"),
        "{notes:?}"
    );
}

/// ext4's rule (pjdfstest `open/02.t`, issue 28): a new file or directory gets the mode the
/// caller asked for, under the caller's umask only (the kernel applies it before the request
/// reaches the daemon), never under the daemon's own as well.
#[cfg(unix)]
#[test]
fn a_new_file_and_directory_get_exactly_the_mode_asked_for_whatever_the_daemons_umask() {
    use std::os::unix::fs::PermissionsExt;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let rig = Rig::new();
    let slug = rig.slug();
    rig.fs.mkdir(Path::new(&slug), 0o777).unwrap();
    let file = Path::new(&slug).join("s.jsonl");
    rig.fs.create(&file, 0o620, true).unwrap();
    let mode = |p: &Path| {
        std::fs::metadata(rig.upper.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(Path::new(&slug)), 0o777);
    assert_eq!(mode(&file), 0o620);
    // An existing file keeps its mode when created again without O_EXCL.
    rig.fs.create(&file, 0o666, false).unwrap();
    assert_eq!(mode(&file), 0o620);
}

/// ext4's rule (pjdfstest `unlink/14.t`, issue 28): a file open when its name is removed or
/// replaced keeps its bytes for the descriptors on it: they read, write, truncate and stat the
/// same file, which no name shows any more.
#[cfg(unix)]
#[test]
fn a_file_whose_name_is_removed_keeps_its_bytes_for_the_descriptors_open_on_it() {
    let rig = Rig::new();
    let slug = rig.slug();
    rig.fs.mkdir(Path::new(&slug), 0o700).unwrap();
    let own = Path::new(&slug).join("own.jsonl");
    rig.fs.create(&own, 0o640, true).unwrap();
    rig.fs.write(&own, 0, b"abc\n", false).unwrap();
    let d = rig.fs.detach(&own).unwrap().expect("a file");
    rig.fs.unlink(&own).unwrap();
    assert_eq!(rig.fs.getattr(&own).unwrap_err().errno, libc::ENOENT);
    assert!(!rig.upper.join(&own).exists());
    assert_eq!(d.read(0, 100).unwrap(), b"abc\n");
    d.write(0, b"def\n", true).unwrap();
    d.write(0, b"A", false).unwrap();
    assert_eq!(d.read(0, 100).unwrap(), b"Abc\ndef\n");
    let a = d.setattr(SetAttr {
        size: Some(2),
        mode: Some(0o600),
        ..SetAttr::default()
    });
    let a = a.unwrap();
    assert_eq!((a.size, a.mode), (2, 0o600));
    // A new file under the old name is another file.
    rig.fs.create(&own, 0o600, true).unwrap();
    rig.fs.write(&own, 0, b"new\n", false).unwrap();
    assert_eq!(d.read(0, 100).unwrap(), b"Ab");
    assert_eq!(rig.read(&own.to_string_lossy()).unwrap(), b"new\n");

    // Another machine's file, replaced by a rename over it: the descriptors read its bytes in
    // this machine's form, and a write changes only that descriptor's file, never the cache
    // the view serves from.
    let t = now_ms() - 60_000;
    // Small entries share a slab file in the disk cache: another one first, so that this
    // one's bytes start further in.
    let other = line("u0", "another of theirs");
    rig.b_writes("s0.jsonl", other.as_bytes(), t);
    let other_path = format!("{slug}/s0.jsonl");
    assert_eq!(
        rig.read(&other_path).unwrap(),
        local(&rig, &other).as_bytes()
    );
    let text = line("u1", "theirs");
    rig.b_writes("s1.jsonl", text.as_bytes(), t);
    let theirs = format!("{slug}/s1.jsonl");
    let want = local(&rig, &text);
    let d1 = rig.fs.detach(Path::new(&theirs)).unwrap().expect("a file");
    let d2 = rig.fs.detach(Path::new(&theirs)).unwrap().expect("a file");
    rig.fs
        .rename(&own, Path::new(&theirs), false)
        .expect("a rename over it");
    assert_eq!(rig.read(&theirs).unwrap(), b"new\n");
    assert_eq!(d1.read(0, 10_000).unwrap(), want.as_bytes());
    let attr = d1.getattr().unwrap();
    assert_eq!(
        (attr.size, attr.mode, attr.mtime_ns / 1_000_000),
        (want.len() as u64, 0o600, t as i128)
    );
    d1.write(0, b"#", false).unwrap();
    assert_eq!(
        d1.read(0, 10_000).unwrap(),
        [b"#", &want.as_bytes()[1..]].concat(),
        "the copy a write makes holds what the descriptor showed"
    );
    assert_eq!(d1.getattr().unwrap().mode, 0o600);
    assert_eq!(d2.read(0, 10_000).unwrap(), want.as_bytes());
    assert!(d.fsync().is_ok() && d1.fsync().is_ok());
    // A directory has nothing to hold.
    assert!(rig.fs.detach(Path::new(&slug)).unwrap().is_none());
}

/// Directory `slug` made through the view, with `levels` directories named `name` nested in it;
/// the innermost.
#[cfg(unix)]
fn nest(rig: &Rig, slug: &str, name: &str, levels: usize) -> std::path::PathBuf {
    let mut dir = std::path::PathBuf::from(slug);
    rig.fs.mkdir(&dir, 0o700).unwrap();
    for _ in 0..levels {
        dir.push(name);
        rig.fs.mkdir(&dir, 0o700).unwrap();
    }
    dir
}

/// ext4's rule (pjdfstest's `*/03.t`, issue 28): a path's length is counted from the caller's
/// directory, so a tree may go deeper than `PATH_MAX` from the view's root; every operation
/// works at any depth.
#[cfg(unix)]
#[test]
fn a_tree_deeper_than_path_max_from_the_root_works_at_every_depth() {
    let rig = Rig::new();
    let slug = rig.slug();
    let mut dir = nest(&rig, &slug, &"d".repeat(200), 25);
    assert!(dir.as_os_str().len() > libc::PATH_MAX as usize);
    let file = dir.join("s.jsonl");
    rig.fs.create(&file, 0o600, true).unwrap();
    rig.fs.write(&file, 0, b"deep\n", true).unwrap();
    assert_eq!(rig.fs.read(&file, 0, 100).unwrap(), b"deep\n");
    assert_eq!(rig.fs.getattr(&file).unwrap().size, 5);
    let names: Vec<_> = rig
        .fs
        .readdir(&dir)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["s.jsonl"]);
    rig.fs
        .setattr(
            &file,
            SetAttr {
                mode: Some(0o640),
                mtime: Some(SetTime::At(1_000_000_000_000_000_000)),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(rig.fs.getattr(&file).unwrap().mode, 0o640);
    // Deeper than the store holds: it stays here, and `ferry status` says so.
    let unsyncable = || rig.recorder.unsyncable.lock().unwrap().clone();
    let listed = unsyncable();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].path, file.to_string_lossy());
    assert!(listed[0].why.contains("too deep"), "{listed:?}");
    let moved = dir.join("t.jsonl");
    rig.fs.rename(&file, &moved, true).unwrap();
    assert_eq!(unsyncable()[0].path, moved.to_string_lossy());
    let d = rig.fs.detach(&moved).unwrap().expect("a file");
    rig.fs.unlink(&moved).unwrap();
    assert_eq!(d.read(0, 100).unwrap(), b"deep\n");
    assert!(unsyncable().is_empty());
    // A name that is not UTF-8 is no path the store holds either.
    use std::os::unix::ffi::OsStrExt;
    let odd = Path::new(&slug).join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    rig.fs.create(&odd, 0o600, true).unwrap();
    assert!(
        unsyncable()[0].why.contains("not UTF-8"),
        "{:?}",
        unsyncable()
    );
    rig.fs.unlink(&odd).unwrap();
    assert!(unsyncable().is_empty());
    while dir.as_os_str() != slug.as_str() {
        rig.fs.rmdir(&dir).unwrap();
        dir.pop();
    }
    assert!(rig.fs.readdir(Path::new(&slug)).unwrap().is_empty());
}

/// ext4's rule (pjdfstest `rename/24.t`, issue 28): a directory's link count is two plus one
/// per subdirectory, whichever machine's files make the subdirectory.
#[test]
#[cfg_attr(
    windows,
    ignore = "Windows reports no link counts for directories (the upper layer gives 2 for each)"
)]
fn a_directorys_link_count_counts_its_subdirectories_from_every_machine() {
    let rig = Rig::new();
    let slug = rig.slug();
    rig.b_writes("theirs/x.txt", b"x", now_ms() - 60_000);
    rig.b_writes("both/y.txt", b"y", now_ms() - 60_000);
    let links = |p: &str| rig.fs.getattr(Path::new(p)).unwrap().nlink;
    // Only other machines' files: no upper directory yet.
    assert_eq!(links(&slug), 4);
    rig.fs.mkdir(&Path::new(&slug).join("own"), 0o700).unwrap();
    rig.fs
        .mkdir(&Path::new(&slug).join("both"), 0o700)
        .unwrap_err();
    rig.fs
        .create(&Path::new(&slug).join("both/z.txt"), 0o600, true)
        .unwrap();
    assert_eq!(links(&slug), 5, "own, theirs and both");
    let listed = rig.fs.readdir(Path::new("")).unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|(n, _)| n == slug.as_str())
            .unwrap()
            .1
            .nlink,
        5
    );
    assert_eq!(links(&format!("{slug}/own")), 2);
    rig.fs
        .rename(
            &Path::new(&slug).join("own"),
            &Path::new(&slug).join("theirs/own"),
            false,
        )
        .unwrap();
    assert_eq!(links(&slug), 4);
    assert_eq!(links(&format!("{slug}/theirs")), 3);
    assert_eq!(
        rig.fs
            .getattr(&Path::new(&slug).join("both/z.txt"))
            .unwrap()
            .nlink,
        1
    );
    // A subdirectory of theirs emptied and removed here is hidden, and not counted.
    rig.b_writes("gone/w.txt", b"w", now_ms() - 60_000);
    assert_eq!(links(&slug), 5);
    let gone = Path::new(&slug).join("gone");
    rig.fs.unlink(&gone.join("w.txt")).unwrap();
    assert_eq!(links(&slug), 5, "an emptied directory stays, as on ext4");
    rig.fs.rmdir(&gone).unwrap();
    assert_eq!(
        rig.fs.getattr(&gone).err().map(|e| e.errno),
        Some(libc::ENOENT)
    );
    assert_eq!(links(&slug), 4, "the hidden subdirectory is not counted");
}

/// A path within the store's depth but longer than another machine could reach (more than
/// 3,800 bytes inside its project) stays here and is named, not noted for a commit the engine
/// could not read (it was skipped, with only a log line). (Unix: the upper layer on Windows
/// takes a path whole, which Windows limits far below this.)
#[cfg(unix)]
#[test]
fn a_path_too_long_to_reach_everywhere_stays_here_and_is_named() {
    let rig = Rig::new();
    let slug = rig.slug();
    let dir = nest(&rig, &slug, &"n".repeat(250), 15);
    let file = dir.join(format!("{}.jsonl", "x".repeat(60)));
    rig.fs.create(&file, 0o600, true).unwrap();
    rig.fs.write(&file, 0, b"long\n", true).unwrap();
    assert_eq!(rig.fs.read(&file, 0, 100).unwrap(), b"long\n");
    let listed = rig.recorder.unsyncable.lock().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].why.starts_with("too long"), "{listed:?}");
    let noted = rig.take_notes();
    assert!(
        noted.iter().all(|(_, rel, _)| !rel.ends_with(".jsonl")),
        "noted for a commit: {noted:?}"
    );
}

/// A file the store cannot hold that was written before the view started (unmounted, or
/// under another daemon) is named as well, once the daemon has looked; deleting it through the
/// view takes it off the list.
#[cfg(unix)]
#[test]
fn files_the_store_cannot_hold_from_before_the_start_are_found() {
    let rig = Rig::new();
    let slug = rig.slug();
    let rel: std::path::PathBuf = (0..17).map(|i| format!("d{i}")).collect();
    let deep = rig.upper.join(&slug).join(&rel);
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("notes.txt"), "kept here\n").unwrap();
    std::fs::write(rig.upper.join(&slug).join("fine.txt"), "synced\n").unwrap();
    assert!(rig.recorder.unsyncable.lock().unwrap().is_empty());
    assert_eq!(rig.fs.find_unsyncable(), 1);
    let file = Path::new(&slug).join(&rel).join("notes.txt");
    let listed = rig.recorder.unsyncable.lock().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].path, file.to_string_lossy());
    assert!(listed[0].why.contains("too deep"), "{listed:?}");
    rig.fs.unlink(&file).unwrap();
    assert!(rig.recorder.unsyncable.lock().unwrap().is_empty());
}

/// Machine `c` (HOME `/home/c`) commits `bytes` at `rel` with `mtime_ms`, arriving here as
/// fetched; the core is refreshed.
fn c_writes(rig: &Rig, rel: &str, bytes: &str, mtime_ms: i64) {
    let c = common::machine("c", "/home/c");
    let src = rig.dir.path().join("c-files").join(rel);
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    std::fs::write(&src, bytes.replace(B_ROOT, "/home/c/src/proj")).unwrap();
    let f = std::fs::File::options().write(true).open(&src).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(mtime_ms as u64))
        .unwrap();
    let change = Change::Write {
        local: src,
        dirty_from: None,
    };
    common::commit_as(
        &rig.store,
        &c,
        "/home/c/src/proj",
        vec![(rel.to_string(), change)],
    );
    rig.fs.refresh().unwrap();
}

/// Reads `path` in two READs with a refresh by `between` in the middle, as a `read` of a big
/// file spans a fetch, and asserts that every line came whole and once.
fn read_across(rig: &Rig, path: &str, between: impl FnOnce()) -> String {
    let p = Path::new(path);
    let first = rig.fs.read(p, 0, 40).unwrap();
    between();
    let rest = rig.fs.read(p, first.len() as u64, 1 << 22).unwrap();
    let text = String::from_utf8([first, rest].concat()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?} ({e}) in {text}"));
        let u = v["uuid"].as_str().unwrap().to_string();
        assert!(seen.insert(u.clone()), "{u} twice in {text}");
    }
    text
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn lines_shown_keep_their_places_when_older_lines_arrive_from_another_machine() {
    let rig = Rig::new();
    let path = format!("{}/s1.jsonl", rig.slug());
    let p = Path::new(&path);
    let mut theirs = line("u1", "start");
    rig.b_writes("s1.jsonl", theirs.as_bytes(), now_ms() - 60_000);
    // Resumed here: this machine's copy is the newest.
    rig.fs.write(p, 0, b"{\"uuid\":\"a1\"}\n", true).unwrap();
    let mut shown = String::from_utf8(rig.read(&path).unwrap()).unwrap();
    // b's lines, written before this machine's, keep arriving: the merge puts the older
    // version's lines first, and each time the view served this machine's line at a later offset.
    for (i, n) in ["b1", "b2", "b3"].into_iter().enumerate() {
        theirs += &line(n, "more");
        let at = now_ms() - 50_000 + i as i64 * 1_000;
        let now = read_across(&rig, &path, || {
            rig.b_writes("s1.jsonl", theirs.as_bytes(), at);
        });
        assert!(
            now.starts_with(&shown),
            "what was shown moved:\n{shown}\nthen\n{now}"
        );
        assert!(now.contains(&local(&rig, &line(n, "more"))), "{n} shown");
        shown = now;
    }
    // A write lands after every line shown.
    rig.fs.write(p, 0, b"{\"uuid\":\"a2\"}\n", true).unwrap();
    let upper = String::from_utf8(std::fs::read(rig.upper.join(&path)).unwrap()).unwrap();
    assert_eq!(upper, shown + "{\"uuid\":\"a2\"}\n");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn lines_shown_keep_their_places_when_two_other_machines_take_turns() {
    let rig = Rig::new();
    let path = format!("{}/s2.jsonl", rig.slug());
    let t = now_ms() - 60_000;
    let mut b = line("u1", "start") + &line("b1", "b");
    rig.b_writes("s2.jsonl", b.as_bytes(), t);
    let c = line("u1", "start") + &line("c1", "c");
    c_writes(&rig, "s2.jsonl", &c, t + 1_000);
    let shown = String::from_utf8(rig.read(&path).unwrap()).unwrap();
    // b writes again, now the newest: the merge of the two alone would put c's line before b's.
    b += &line("b2", "b");
    let now = read_across(&rig, &path, || {
        rig.b_writes("s2.jsonl", b.as_bytes(), t + 2_000);
    });
    assert!(
        now.starts_with(&shown),
        "what was shown moved:\n{shown}\nthen\n{now}"
    );
    assert_eq!(now, shown + &local(&rig, &line("b2", "b")));
    // A restart serves the merge as it is, every line once.
    let mut rig = rig;
    rig.restart();
    let fresh = read_across(&rig, &path, || {});
    assert_eq!(fresh.lines().count(), 4);
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn a_transcript_its_writer_rewrote_is_shown_as_rewritten() {
    let rig = Rig::new();
    let path = format!("{}/s3.jsonl", rig.slug());
    let t = now_ms() - 60_000;
    rig.b_writes(
        "s3.jsonl",
        (line("u1", "one") + &line("u2", "two")).as_bytes(),
        t,
    );
    assert_eq!(rig.read(&path).unwrap().len(), {
        local(&rig, &(line("u1", "one") + &line("u2", "two"))).len()
    });
    // b removed its last message and wrote another (Claude Code's ftruncate and pwrite).
    let rewritten = line("u1", "one") + &line("u3", "three");
    rig.b_writes("s3.jsonl", rewritten.as_bytes(), t + 1_000);
    assert_eq!(
        String::from_utf8(rig.read(&path).unwrap()).unwrap(),
        local(&rig, &rewritten)
    );
}

#[test]
fn warming_expands_every_file_once_then_what_each_refresh_changed() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    let text = |n: &str| line(&format!("{n}-1"), "hello") + &line(&format!("{n}-2"), "more");
    rig.b_writes_many(&[
        ("s1.jsonl".into(), text("s1").into_bytes(), t),
        ("s2.jsonl".into(), text("s2").into_bytes(), t),
    ]);
    assert_eq!(rig.fs.warm(), 2, "the first warming looks at every file");
    assert_eq!(rig.fs.warm(), 0, "then nothing is left to expand");
    // Read and expanded with the warming's own store handle, outside the core's lock:
    // requests go on meanwhile.
    assert_eq!(rig.fs.warmed_unlocked(), 2);
    // A new session and a changed one arrive: the next warming expands those two.
    rig.b_writes("s3.jsonl", text("s3").as_bytes(), t);
    let grown = text("s1") + &line("s1-3", "again");
    rig.b_writes("s1.jsonl", grown.as_bytes(), t + 1_000);
    assert_eq!(rig.fs.warm(), 2);
    assert_eq!(rig.fs.warm(), 0);
    // What was expanded ahead is what a read gets (the expected text is in a Linux machine's
    // form: unescaped, `/`-joined paths).
    if cfg!(not(windows)) {
        let slug = rig.slug();
        assert_eq!(
            rig.read(&format!("{slug}/s1.jsonl")).unwrap(),
            local(&rig, &grown).as_bytes()
        );
        assert_eq!(
            rig.read(&format!("{slug}/s3.jsonl")).unwrap(),
            local(&rig, &text("s3")).as_bytes()
        );
    }
}

/// A refresh when no branch moved (a daemon's first fetch after `ferry init` filled its store)
/// leaves the index as it is, neither patched nor built again; once a branch moves, it is read.
#[test]
fn a_refresh_with_no_branch_moved_leaves_the_index_as_it_is() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    rig.b_writes("s1.jsonl", line("s1-1", "hello").as_bytes(), t);
    let (version, index) = (rig.fs.foreign_version(), rig.fs.foreign_index());
    assert_eq!(rig.fs.refresh().unwrap(), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        rig.fs.foreign_version(),
        version,
        "nothing patched or built"
    );
    assert!(std::sync::Arc::ptr_eq(&index, &rig.fs.foreign_index()));
    rig.b_writes("s2.jsonl", line("s2-1", "hello").as_bytes(), t);
    assert!(rig.fs.foreign_version() > version, "a moved branch is read");
    let s2 = format!("{}/s2.jsonl", rig.slug());
    assert!(rig.fs.foreign_index().files.contains_key(&s2), "{s2} shown");
}

#[test]
fn a_closed_cache_is_not_warmed_and_a_read_after_the_close_takes_the_close_back() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    let text = |n: &str| line(&format!("{n}-1"), "hello");
    rig.b_writes("s1.jsonl", text("s1").as_bytes(), t);
    assert_eq!(rig.fs.warm(), 1);
    rig.fs.close();
    let clean = rig.dir.path().join("cache/.clean");
    assert!(clean.exists(), "closed cleanly");
    // A file arriving after the close (an unmount under way) is not expanded ahead: that would
    // write to a cache marked as flushed.
    rig.b_writes("s2.jsonl", text("s2").as_bytes(), t);
    assert_eq!(rig.fs.warm(), 0);
    assert!(clean.exists(), "still closed cleanly");
    // A read served after the close (a file held open past the unmount's deadline) writes it,
    // and the close is taken back until the next one.
    let slug = rig.slug();
    let read = rig.read(&format!("{slug}/s2.jsonl")).unwrap();
    // (The expected text is in a Linux machine's form.)
    if cfg!(not(windows)) {
        assert_eq!(read, local(&rig, &text("s2")).as_bytes());
    }
    assert!(
        !clean.exists(),
        "written after the close: not to be trusted"
    );
    rig.fs.close();
    assert!(clean.exists(), "closed cleanly again");
}

#[test]
fn a_transcript_the_warming_expanded_ahead_reads_right_and_grows_by_what_was_added() {
    let rig = Rig::new();
    let path = format!("{}/s1.jsonl", rig.slug());
    // Several chunks, each with paths the expansion lengthens or shortens.
    let mut theirs = long_session(1_500);
    assert!(theirs.len() > 8 * 16_384);
    let t = now_ms() - 60_000;
    rig.b_writes("s1.jsonl", theirs.as_bytes(), t);
    let before = rig.fs.expanded();
    assert_eq!(rig.fs.warm(), 1);
    let expanded = rig.fs.expanded() - before;
    assert!(expanded > 8 * 16_384, "the warming expanded it: {expanded}");
    shows(&rig, &rig.read(&path).unwrap(), &theirs);
    // A line appended on b: the entry the warming made grows by the chunk it changed, which
    // takes where each of its chunks ends as the warming recorded it.
    theirs += &line("more", "appended on b");
    rig.b_writes("s1.jsonl", theirs.as_bytes(), t + 1_000);
    let before = rig.fs.expanded();
    shows(&rig, &rig.read(&path).unwrap(), &theirs);
    let cost = rig.fs.expanded() - before;
    assert!(cost < 64 << 10, "grown, not expanded whole: {cost} bytes");
}

#[test]
fn a_warming_cut_short_by_the_cache_budget_goes_on_at_the_next() {
    let rig = Rig::new();
    let t = now_ms() - 60_000;
    // Three sessions of 17 MB: half the rig's 64 MiB budget holds two of them.
    let big = |n: usize| -> Vec<u8> {
        (0..17_000)
            .map(|i| line(&format!("s{n}-{i}"), &"w".repeat(900)))
            .collect::<String>()
            .into_bytes()
    };
    rig.b_writes_many(&[
        ("s1.jsonl".into(), big(1), t),
        ("s2.jsonl".into(), big(2), t),
        ("s3.jsonl".into(), big(3), t),
    ]);
    assert_eq!(rig.fs.warm(), 2, "cut at half the budget");
    assert_eq!(rig.fs.warm(), 1, "the next warming expands the one left");
    assert_eq!(rig.fs.warm(), 0);
    // Too long to hold whole: written a megabyte at a time, under the core's lock.
    assert_eq!(rig.fs.warmed_unlocked(), 0);
}

/// `got` is `theirs` in this machine's form: byte for byte on Unix; on Windows, whose form
/// escapes and joins paths its own way, the same lines (by uuid) in the same order.
fn shows(rig: &Rig, got: &[u8], theirs: &str) {
    if cfg!(windows) {
        let uuids = |b: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(b)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["uuid"].to_string())
                .collect()
        };
        assert_eq!(uuids(got), uuids(theirs.as_bytes()));
    } else {
        assert_eq!(got, local(rig, theirs).as_bytes());
    }
}

#[test]
fn a_new_version_of_a_long_transcript_costs_what_it_added() {
    let rig = Rig::new();
    let path = format!("{}/s1.jsonl", rig.slug());
    // Over a megabyte: the first expansion is written out a megabyte at a time.
    let mut theirs = long_session(11_000);
    assert!(theirs.len() > 1_100_000);
    let t = now_ms() - 60_000;
    rig.b_writes("s1.jsonl", theirs.as_bytes(), t);
    shows(&rig, &rig.read(&path).unwrap(), &theirs);
    // b appends, a line at a time: each new version is read here in full, and only what was
    // added (and the chunk it grew) is expanded again.
    for n in 0..5 {
        let before = rig.fs.expanded();
        theirs += &line(&format!("more{n}"), "appended on b");
        let now = read_across(&rig, &path, || {
            rig.b_writes("s1.jsonl", theirs.as_bytes(), t + 1_000 * (n + 1));
        });
        shows(&rig, now.as_bytes(), &theirs);
        let cost = rig.fs.expanded() - before;
        assert!(
            cost < 64 << 10,
            "append {n} expanded {cost} bytes of a {}-byte transcript",
            theirs.len()
        );
    }
    // b rewrites its file without a line near the start: nothing after it is reused, and the
    // view is the new version.
    theirs = theirs.replacen(&line("u1", "a line of a long session"), "", 1);
    rig.b_writes("s1.jsonl", theirs.as_bytes(), t + 10_000);
    shows(&rig, &rig.read(&path).unwrap(), &theirs);
    // And appends after that are cheap again.
    let before = rig.fs.expanded();
    theirs += &line("last", "appended on b");
    rig.b_writes("s1.jsonl", theirs.as_bytes(), t + 11_000);
    shows(&rig, &rig.read(&path).unwrap(), &theirs);
    assert!(rig.fs.expanded() - before < 64 << 10);
}

/// Descriptors left on a removed name are held on Unix only (`Fs::detach`).
#[cfg(unix)]
#[test]
fn a_descriptor_left_on_a_removed_transcript_keeps_its_bytes_when_a_newer_version_grows_them() {
    let rig = Rig::new();
    let path = format!("{}/s1.jsonl", rig.slug());
    let text = long_session(2000);
    rig.b_writes("s1.jsonl", text.as_bytes(), now_ms() - 60_000);
    let want = local(&rig, &text);
    assert_eq!(rig.read(&path).unwrap(), want.as_bytes());
    let d = rig.fs.detach(Path::new(&path)).unwrap().expect("a file");
    rig.fs.unlink(Path::new(&path)).unwrap();
    // b appends after the deletion: its newer version shows the name again, made by growing
    // the disk cache entry the descriptor still reads.
    let more = text.clone() + &line("late", "after the unlink");
    let before = rig.fs.expanded();
    rig.b_writes("s1.jsonl", more.as_bytes(), now_ms() + 1_000);
    assert_eq!(rig.read(&path).unwrap(), local(&rig, &more).as_bytes());
    assert!(
        rig.fs.expanded() - before < 64 << 10,
        "grown, not expanded whole"
    );
    // The descriptor reads what it showed, and its first write keeps exactly that.
    assert_eq!(d.read(0, 1 << 22).unwrap(), want.as_bytes());
    assert_eq!(d.getattr().unwrap().size, want.len() as u64);
    d.write(0, b"#", false).unwrap();
    let mine = d.read(0, 1 << 22).unwrap();
    assert_eq!(mine.len(), want.len());
    assert_eq!(&mine[1..], &want.as_bytes()[1..]);
}
