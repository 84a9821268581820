//! The core with machines of other shapes: a session written on a Windows machine
//! (`C:\Users\bob`, paths JSON-escaped with `\\`) or a macOS machine (`/Users/carol`, temp dir
//! under `/var/folders`) appears on this Linux machine in its own paths; this machine appends to
//! it; and a core running *as* that Windows or macOS machine shows the session back in that
//! machine's own form, its original lines byte for byte.

mod common;

use common::{commit_as, core, layout, now_ms};
use ferry_sync::slug::slug;
use ferry_sync::store::{Change, MachineRecord};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

fn windows(id: &str, home: &str) -> MachineRecord {
    MachineRecord {
        id: id.into(),
        name: id.into(),
        os: "windows".into(),
        home: home.into(),
        tmp: format!(r"{home}\AppData\Local\Temp"),
        claude_dir: format!(r"{home}\.claude"),
        claude_tmp: format!(r"{home}\AppData\Local\Temp\claude"),
        last_seen_ms: 0,
        seen_ms: Default::default(),
        home_real: None,
        retired: Default::default(),
    }
}

fn macos(id: &str, home: &str) -> MachineRecord {
    MachineRecord {
        id: id.into(),
        name: id.into(),
        os: "macos".into(),
        home: home.into(),
        tmp: "/var/folders/zz/x1/T".into(),
        claude_dir: format!("{home}/.claude"),
        claude_tmp: "/var/folders/zz/x1/T/claude-501".into(),
        last_seen_ms: 0,
        seen_ms: Default::default(),
        home_real: None,
        retired: Default::default(),
    }
}

/// `s` as a JSON string literal (Windows backslashes doubled).
fn j(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// One transcript line naming a machine's paths: its checkout as the cwd, a file in it, the
/// tool-results file under its config dir, and its temp dir.
fn line(uuid: &str, m: &MachineRecord, root: &str) -> String {
    let sep = if m.os == "windows" { '\\' } else { '/' };
    let results = format!(
        "{}{sep}projects{sep}{}{sep}s1{sep}tool-results{sep}t.txt",
        m.claude_dir,
        slug(root)
    );
    format!(
        r#"{{"uuid":"{uuid}","cwd":{},"message":{{"content":[{{"type":"tool_use","name":"Read","input":{{"file_path":{}}}}}],"saved":{},"tmp":{}}}}}"#,
        j(root),
        j(root),
        j(&results),
        j(&m.tmp)
    ) + "\n"
}

fn write(dir: &Path, name: &str, bytes: &[u8], mtime_ms: i64) -> Change {
    let src = dir.join(name);
    std::fs::write(&src, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_millis(mtime_ms as u64))
        .unwrap();
    Change::Write {
        local: src,
        dirty_from: None,
    }
}

fn read(fs: &ferry_fs::core::Fs, path: &str) -> String {
    let size = fs.getattr(Path::new(path)).unwrap().size;
    let bytes = fs.read(Path::new(path), 0, size as u32).unwrap();
    assert_eq!(bytes.len() as u64, size, "exact size");
    String::from_utf8(bytes).unwrap()
}

/// `origin` (checkout `origin_root`) writes a session; this Linux machine shows it in its own
/// paths and appends; `origin` shows both lines in its own form.
fn round_trip(origin: MachineRecord, origin_root: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (upper, store, linux, _) = layout(dir.path());
    let t = now_ms() - 60_000;
    let theirs = line("u1", &origin, origin_root);
    let change = write(dir.path(), "origin.jsonl", theirs.as_bytes(), t);
    commit_as(
        &store,
        &origin,
        origin_root,
        vec![("s1.jsonl".into(), change)],
    );

    // Here: the origin's HOME-relative place under this HOME, in this machine's paths.
    let (fs, _) = core(&dir.path().join("linux"), &linux, &upper, &store);
    let here_root = format!("{}/src/proj", linux.home);
    let path = format!("{}/s1.jsonl", slug(&here_root));
    let shown = read(&fs, &path);
    assert_eq!(shown, line("u1", &linux, &here_root), "{shown}");

    // This machine appends a line of its own, and commits it.
    let mine = line("u2", &linux, &here_root);
    fs.write(Path::new(&path), 0, mine.as_bytes(), true)
        .unwrap();
    let local = upper.join(&path);
    commit_as(
        &store,
        &linux,
        &here_root,
        vec![(
            "s1.jsonl".into(),
            Change::Write {
                local,
                dirty_from: None,
            },
        )],
    );

    // Back on the origin, with an empty upper layer: its own line as it wrote it, and this
    // machine's line in the origin's form.
    let origin_upper = dir.path().join("origin-upper");
    std::fs::create_dir_all(&origin_upper).unwrap();
    let (back, _) = core(&dir.path().join("origin"), &origin, &origin_upper, &store);
    let there = format!("{}/s1.jsonl", slug(origin_root));
    let shown = read(&back, &there);
    assert_eq!(
        shown,
        theirs.clone() + &line("u2", &origin, origin_root),
        "{shown}"
    );
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn a_windows_session_comes_here_in_linux_paths_and_goes_back_in_windows_form() {
    round_trip(windows("w", r"C:\Users\bob"), r"C:\Users\bob\src\proj");
}

#[test]
#[cfg_attr(
    windows,
    ignore = "its expected text is built in a Linux machine's form (unescaped, `/`-joined paths)"
)]
fn a_macos_session_comes_here_in_linux_paths_and_goes_back_in_macos_form() {
    round_trip(macos("m", "/Users/carol"), "/Users/carol/src/proj");
}

#[test]
fn the_windows_slug_is_the_one_claude_code_uses_there() {
    assert_eq!(slug(r"C:\Users\bob\src\proj"), "C--Users-bob-src-proj");
}
