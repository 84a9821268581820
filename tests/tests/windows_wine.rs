//! Windows for real: `ferry.exe`, built for x86_64-pc-windows-gnu, run under Wine as a Windows
//! machine next to a Linux machine, both on one remote. WinFsp cannot run under Wine, so the
//! Windows machine works unmounted, as it does before its first mount: Claude Code's own
//! `projects` directory is the upper layer, and commands read the view in-process.

use ferry_tests::ferry::Machine;
use ferry_tests::rig::eventually;
use ferry_tests::wine::{FakeApi, Windows, z};
use serde_json::Value;
use std::time::Duration;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `ferry where` names a Windows directory as the Windows client does: the path as given (no
/// verbatim `\\?\` prefix), the slug the real `claude.exe` made for it.
#[test]
fn where_names_a_windows_directory_as_the_windows_client_does() {
    let win = Windows::new("wherebob");
    let dir = format!("{}\\src\\app", win.home);
    std::fs::create_dir_all(win.here(&dir)).unwrap();
    let said = json(&win.ok(&["where", &dir, "--json"]));
    assert_eq!(said["path"], dir.as_str());
    assert_eq!(said["slug"], "C--users-wherebob-src-app");
    assert_eq!(said["project_key"], "~/src/app");
}

/// A line as a client writes it, with `cwd` and a file under it in the machine's own form.
fn line(uuid: &str, cwd: &str, file: &str, text: &str) -> String {
    let v = serde_json::json!({
        "type": "assistant", "uuid": uuid, "cwd": cwd,
        "message": {"content": [
            {"type": "text", "text": text},
            {"type": "tool_use", "name": "Read", "input": {"file_path": file}},
        ]},
    });
    format!("{v}\n")
}

/// Machine `lin` under `dir`, mounted, on a new remote there; and the remote's path.
fn linux_on_a_remote(dir: &std::path::Path) -> (Machine, std::path::PathBuf) {
    let remote = dir.join("remote.git");
    let lin = Machine::new(&dir.join("lin"));
    lin.ok(&[
        "init",
        "--machine",
        "lin",
        "--remote",
        remote.to_str().unwrap(),
    ]);
    lin.ok(&["mount"]);
    (lin, remote)
}

/// A Linux machine and a Windows machine on one remote: each one's sessions reach the other in
/// its own paths, and the Windows machine's lines come back to it byte for byte.
#[test]
fn a_linux_and_a_windows_machine_share_sessions_each_in_its_own_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (lin, remote) = linux_on_a_remote(tmp.path());
    let lin_proj = lin.home.join("work/proj");
    std::fs::create_dir_all(&lin_proj).unwrap();
    let lin_slug = ferry_sync::slug::slug(lin_proj.to_str().unwrap());
    let lin_cwd = lin_proj.to_str().unwrap();
    let from_linux = "0d6c3f0e-1111-4000-8000-000000000001";
    let lin_dir = lin.projects().join(&lin_slug);
    std::fs::create_dir_all(&lin_dir).unwrap();
    std::fs::write(
        lin_dir.join(format!("{from_linux}.jsonl")),
        line(
            "l1",
            lin_cwd,
            &format!("{lin_cwd}/src/main.rs"),
            "linux turn",
        ),
    )
    .unwrap();
    lin.ok(&["sync"]);

    // The Windows machine joins and sees the Linux session in its own terms.
    let win = Windows::new("bob");
    let win_proj = format!("{}\\work\\proj", win.home);
    std::fs::create_dir_all(win.here(&win_proj)).unwrap();
    win.ok(&["init", "--machine", "win", "--remote", &z(&remote)]);
    let sessions = json(&win.ok(&["sessions", "--json"]));
    let row = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == from_linux)
        .unwrap_or_else(|| panic!("the Linux session is not listed: {sessions}"));
    assert_eq!(row["cwd"], win_proj.as_str(), "{row}");
    assert_eq!(
        row["path"],
        format!(
            "{}\\.claude\\projects\\C--users-bob-work-proj\\{from_linux}.jsonl",
            win.home
        )
        .as_str(),
        "{row}"
    );
    // Not mounted (this build has no WinFsp): the transcript is not on disk here, so it cannot be
    // resumed yet, and the row says why.
    assert_eq!(row["resumable_here"], false, "{row}");
    assert!(
        row["not_resumable_why"]
            .as_str()
            .is_some_and(|w| w.contains("ferry mount")),
        "{row}"
    );

    // A session written on Windows as the Windows client writes it: JSON-escaped backslashes,
    // the drive letter as the client spells it, a tool result under the config dir, a file
    // under the temp dir.
    let from_windows = "0d6c3f0e-2222-4000-8000-000000000002";
    let win_dir = format!("{}\\.claude\\projects\\C--users-bob-work-proj", win.home);
    let results = format!("{win_dir}\\{from_windows}\\tool-results\\t1.txt");
    let temp = "C:\\users\\root\\Temp\\claude\\C--users-bob-work-proj\\out.txt";
    let mut text = line(
        "w1",
        &win_proj,
        &format!("{win_proj}\\src\\main.rs"),
        "windows turn",
    );
    text.push_str(&format!(
        "{}\n",
        serde_json::json!({"type": "user", "uuid": "w2", "cwd": win_proj,
            "toolUseResult": {"persistedOutputPath": results, "scratch": temp}})
    ));
    std::fs::create_dir_all(win.here(&win_dir)).unwrap();
    let win_file = win.here(&format!("{win_dir}\\{from_windows}.jsonl"));
    std::fs::write(&win_file, &text).unwrap();
    std::fs::create_dir_all(win.here(&results).parent().unwrap()).unwrap();
    std::fs::write(win.here(&results), "a result\n").unwrap();
    win.ok(&["sync"]);

    // Linux has it in Linux terms.
    let on_linux = lin_dir.join(format!("{from_windows}.jsonl"));
    assert!(
        eventually(Duration::from_secs(30), || {
            lin.ok(&["sync"]);
            on_linux.exists()
        }),
        "the Windows session never reached Linux:\n{}",
        lin.log_tail()
    );
    let linux_text = std::fs::read_to_string(&on_linux).unwrap();
    let lin_claude = lin.home.join(".claude");
    for want in [
        format!("\"cwd\":\"{lin_cwd}\""),
        format!("\"file_path\":\"{lin_cwd}/src/main.rs\""),
        format!(
            "\"persistedOutputPath\":\"{}/projects/{lin_slug}/{from_windows}/tool-results/t1.txt\"",
            lin_claude.display()
        ),
    ] {
        assert!(linux_text.contains(&want), "{want} not in {linux_text}");
    }
    assert!(
        !linux_text.contains("C:\\\\"),
        "a Windows path left: {linux_text}"
    );
    assert!(
        linux_text.contains(&format!("\"scratch\":\"/tmp/claude-0/{lin_slug}/out.txt\"")),
        "{linux_text}"
    );
    assert_eq!(
        std::fs::read_to_string(lin_dir.join(from_windows).join("tool-results/t1.txt")).unwrap(),
        "a result\n"
    );

    // Linux goes on with it; Windows takes Linux's version back, in Windows terms: its own
    // lines byte for byte, then Linux's.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&on_linux)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        line(
            "l2",
            lin_cwd,
            &format!("{lin_cwd}/src/lib.rs"),
            "linux goes on",
        )
        .as_bytes(),
    )
    .unwrap();
    drop(f);
    lin.ok(&["sync"]);
    win.ok(&["sync"]);
    let win_path = format!("{win_dir}\\{from_windows}.jsonl");
    win.ok(&["restore", &win_path, "--machine", "lin"]);
    let back = std::fs::read_to_string(&win_file).unwrap();
    assert!(
        back.starts_with(&text),
        "Windows' own lines changed:\n{back}"
    );
    assert_eq!(
        &back[text.len()..],
        line(
            "l2",
            &win_proj,
            &format!("{win_proj}\\src\\lib.rs"),
            "linux goes on"
        )
    );

    // A session carried by hand, both ways: exported on one machine, imported on the other.
    let by_hand = "0d6c3f0e-3333-4000-8000-000000000003";
    std::fs::write(
        win.here(&format!("{win_dir}\\{by_hand}.jsonl")),
        line(
            "h1",
            &win_proj,
            &format!("{win_proj}\\README.md"),
            "carried",
        ),
    )
    .unwrap();
    let bundle = tmp.path().join("carried.ferry");
    win.ok(&["export", by_hand, "-o", &z(&bundle)]);
    lin.ok(&["import", bundle.to_str().unwrap()]);
    let carried = std::fs::read_to_string(lin_dir.join(format!("{by_hand}.jsonl"))).unwrap();
    assert_eq!(
        carried,
        line("h1", lin_cwd, &format!("{lin_cwd}/README.md"), "carried")
    );
    let other_way = "0d6c3f0e-4444-4000-8000-000000000004";
    std::fs::write(
        lin_dir.join(format!("{other_way}.jsonl")),
        line(
            "o1",
            lin_cwd,
            &format!("{lin_cwd}/Cargo.toml"),
            "the other way",
        ),
    )
    .unwrap();
    let bundle = tmp.path().join("other.ferry");
    lin.ok(&["export", other_way, "-o", bundle.to_str().unwrap()]);
    win.ok(&["import", &z(&bundle)]);
    assert_eq!(
        std::fs::read_to_string(win.here(&format!("{win_dir}\\{other_way}.jsonl"))).unwrap(),
        line(
            "o1",
            &win_proj,
            &format!("{win_proj}\\Cargo.toml"),
            "the other way"
        )
    );
    lin.ok(&["unmount"]);
}

/// The commands that set a Windows machine up: its identity stays put from one command to the
/// next, the hooks name `ferry.exe`, the login task is registered with Task Scheduler and
/// removed again, and doctor reports the install.
#[test]
fn a_windows_machine_keeps_its_identity_and_installs_hooks_and_its_login_task() {
    let win = Windows::new("carol");
    win.ok(&["init", "--machine", "carol"]);
    let id = |w: &Windows| json(&w.ok(&["status", "--json"]))["machine"].clone();
    let first = id(&win);
    assert_eq!(first["name"], "carol", "{first}");
    assert_eq!(id(&win), first, "the identity changed between two commands");
    assert!(first["copied_from"].is_null(), "{first}");

    win.ok(&["hooks", "install"]);
    let settings =
        std::fs::read_to_string(win.here(&format!("{}\\.claude\\settings.json", win.home)))
            .unwrap();
    assert!(settings.contains("ferry.exe' hooks run stop"), "{settings}");
    assert!(
        win.here(&format!(
            "{}\\.claude\\skills\\ferry-sessions\\SKILL.md",
            win.home
        ))
        .is_file()
    );

    let said = win.ok(&["service", "install", "--json"]);
    assert_eq!(json(&said)["installed"], true, "{said}");
    let task = win.here(&format!("{}\\ferry\\ferry-task.xml", win.home));
    let xml = std::fs::read(&task).unwrap();
    assert_eq!(&xml[..2], [0xff, 0xfe], "UTF-16LE with a byte order mark");
    win.ok(&["service", "uninstall"]);
    let doctor = json(&win.ok(&["doctor", "--json"]));
    assert!(
        doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["area"] == "identity" && f["level"] == "ok"),
        "{doctor}"
    );
}

/// The real Windows client (`claude.exe`, both pinned versions, under Wine) writes a session;
/// it reaches the Linux machine in Linux paths, the real Linux client resumes it there with
/// every turn, and the Windows machine gets Linux's continuation back with its own client's
/// lines byte for byte, and the Windows client resumes it there with Linux's turn. (Wine 8.0
/// lacks a call the client makes now and then: see `Windows::claude`.)
#[test]
fn a_session_of_the_real_windows_client_is_resumed_by_the_linux_client() {
    for version in ferry_tests::claude::VERSIONS {
        let tmp = tempfile::tempdir().unwrap();
        let (lin, remote) = linux_on_a_remote(tmp.path());
        let win = Windows::new("dave");
        let win_proj = format!("{}\\work\\proj", win.home);
        std::fs::create_dir_all(win.here(&win_proj)).unwrap();
        win.ok(&["init", "--machine", "win", "--remote", &z(&remote)]);

        let api = FakeApi::start(tmp.path());
        let out = win.claude(version, &win_proj, &api, &["-p", "make the parser stream"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.starts_with("ACK#"),
            "{version}: claude.exe: {said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let win_dir = format!("{}\\.claude\\projects\\C--users-dave-work-proj", win.home);
        let ids: Vec<String> = std::fs::read_dir(win.here(&win_dir))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".jsonl").map(str::to_string)
            })
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "{version}: one session in the client's slug dir: {ids:?}"
        );
        let id = &ids[0];
        let win_path = format!("{win_dir}\\{id}.jsonl");
        let text = std::fs::read_to_string(win.here(&win_path)).unwrap();
        let escaped = win_proj.replace('\\', "\\\\");
        assert!(
            text.contains(&format!("\"cwd\":\"{escaped}\"")),
            "{version}: the client's cwd form: {text}"
        );
        win.ok(&["sync"]);

        // On Linux, in Linux terms; the Linux client resumes it with the Windows turn.
        let lin_proj = lin.home.join("work/proj");
        std::fs::create_dir_all(&lin_proj).unwrap();
        let lin_dir = lin
            .projects()
            .join(ferry_sync::slug::slug(lin_proj.to_str().unwrap()));
        let on_linux = lin_dir.join(format!("{id}.jsonl"));
        assert!(
            eventually(Duration::from_secs(30), || {
                lin.ok(&["sync"]);
                on_linux.exists()
            }),
            "{version}: the Windows session never reached Linux:\n{}",
            lin.log_tail()
        );
        let linux_text = std::fs::read_to_string(&on_linux).unwrap();
        assert!(
            !linux_text.contains("C:\\\\users"),
            "{version}: {linux_text}"
        );
        assert!(
            linux_text.contains(&format!("\"cwd\":\"{}\"", lin_proj.display())),
            "{version}: {linux_text}"
        );
        let user = ferry_tests::claude::User::at(&lin.home, tmp.path().join("lin-api.jsonl"));
        let resumed = user.run(version, &lin_proj, &["-p", "--resume", id, "go on"]);
        let ack = String::from_utf8_lossy(&resumed.stdout).trim().to_string();
        assert!(
            resumed.status.success() && ack.starts_with("ACK#") && ack != "ACK#1",
            "{version}: the resume did not carry the Windows turn: {ack}\n{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        let requests = std::fs::read_to_string(&user.api_log).unwrap();
        assert!(requests.contains("make the parser stream"), "{version}");

        // Back on Windows: its client's lines byte for byte, then Linux's, in Windows terms.
        lin.ok(&["sync"]);
        win.ok(&["sync"]);
        win.ok(&["restore", &win_path, "--machine", "lin"]);
        let back = std::fs::read_to_string(win.here(&win_path)).unwrap();
        assert!(
            back.starts_with(&text),
            "{version}: Windows' own lines changed"
        );
        let tail = &back[text.len()..];
        assert!(tail.contains("go on"), "{version}: Linux's turn is missing");
        assert!(
            !tail.contains(lin.home.to_str().unwrap()) && tail.contains(&escaped),
            "{version}: Linux's turn is not in Windows terms: {tail}"
        );
        // ... and the Windows client resumes it there, with the turn taken on Linux.
        let again = win.claude(
            version,
            &win_proj,
            &api,
            &["-p", "--resume", id, "back on windows"],
        );
        let ack = String::from_utf8_lossy(&again.stdout).trim().to_string();
        assert!(
            again.status.success() && ack.starts_with("ACK#"),
            "{version}: claude.exe --resume ({}): {ack}\n{}",
            again.status,
            String::from_utf8_lossy(&again.stderr)
        );
        let last = std::fs::read_to_string(&api.log)
            .unwrap()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        assert!(
            last.contains("go on") && last.contains("back on windows"),
            "{version}: the Windows resume did not carry Linux's turn: {last}"
        );
        lin.ok(&["unmount"]);
    }
}
