//! What the CLI says is true: each test pins one message, exit code or JSON document that used
//! to say something false (a push that failed called "up to date", a resume command that could
//! not work, an export over a file, a mount that ended under an open file, ...).

use ferry_tests::ferry::{Machine, Pair, ferry_bin};
use ferry_tests::rig::GitDaemon;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A transcript line of project `proj`.
fn line(uuid: &str, proj: &Path, text: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"type": "user", "uuid": uuid, "cwd": proj, "message": {"content": text}})
    )
}

/// Transcript `name` of checkout `proj` in `m`'s projects directory (its project dir created).
fn session_file(m: &Machine, proj: &Path, name: &str) -> std::path::PathBuf {
    let dir = m
        .projects()
        .join(ferry_sync::slug::slug(proj.to_str().unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Who ferry says it is, and errors as JSON with their kind and exit code.
#[test]
fn version_help_and_errors_say_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    let version = m.ok(&["--version"]);
    assert!(
        version.starts_with("ferry ") && version.contains("mount: fuse"),
        "{version}"
    );
    assert!(!version.contains("ferry-cli"), "{version}");
    let help = m.ok(&["--help"]);
    assert!(!help.contains("thin commands"), "{help}");
    assert!(
        help.contains("Exit codes") && help.contains("--json"),
        "{help}"
    );

    // Not set up: one JSON document on stdout under --json, the words on stderr.
    let out = m.ferry(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&stdout(&out));
    assert_eq!(doc["schema"], 1, "{doc}");
    assert_eq!(doc["error"]["kind"], "failed");
    assert_eq!(doc["error"]["exit"], 1);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ferry init"),
        "{doc}"
    );
    assert!(stderr(&out).contains("ferry init"));
    // Bad usage: exit 2, as JSON too when asked.
    let out = m.ferry(&["sessions", "--no-such-flag", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc = json(&stdout(&out));
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{doc}"
    );
    // `--json` is global: before the command or after it, and every document has the schema.
    m.ok(&["init", "--machine", "m"]);
    for args in [&["--json", "status"][..], &["status", "--json"][..]] {
        assert_eq!(json(&m.ok(args))["schema"], 1, "{args:?}");
    }
    // Not mounted: `unmount --json` still prints JSON, and says so.
    let doc = json(&m.ok(&["unmount", "--json"]));
    assert_eq!(doc["was_mounted"], false, "{doc}");
    // -q: nothing but the result.
    assert_eq!(m.ok(&["unmount", "-q"]), "ferry: not mounted\n");
}

/// A push that did not go through is never called "up to date", and a remote never reached
/// has no "last push".
#[test]
fn unmount_says_when_the_push_failed_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let mut remote = GitDaemon::start(tmp.path());
    let m = Machine::new(&tmp.path().join("m"));
    m.ok(&["init", "--machine", "m", "--remote", &remote.url()]);
    remote.down();

    // Nothing ever committed here, and the remote down: nothing was pushed, and it says so.
    m.ok(&["mount"]);
    let st = m.ok(&["status"]);
    assert!(st.contains("last push never"), "{st}");
    let out = m.ferry(&["unmount"]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("nothing was ever committed on this machine") && !said.contains("up to date"),
        "{said}"
    );

    // A change, and the remote still down: committed here, not pushed, exit 3.
    m.ok(&["mount"]);
    let dir = m.projects().join("-work-proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("s.jsonl"),
        line("u1", Path::new("/work/proj"), "hi"),
    )
    .unwrap();
    let out = m.ferry(&["unmount", "--json"]);
    let doc = json(&stdout(&out));
    assert_eq!(out.status.code(), Some(3), "{doc}");
    assert_eq!(doc["remote_ok"], false, "{doc}");
    assert!(doc["committed"].is_string(), "{doc}");
    assert!(doc["error"].is_string(), "{doc}");
    let st = json(&m.ok(&["status", "--json"]));
    assert!(st["last_push_ms"].is_null(), "never pushed: {st}");

    // The remote back: the next unmount pushes and says so.
    remote.up();
    m.ok(&["mount"]);
    let out = m.ferry(&["unmount"]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("and pushed") || said.contains("the remote has everything"),
        "{said}"
    );
    let remote_repo = git2::Repository::open_bare(remote.repo()).unwrap();
    let branches = remote_repo
        .references_glob("refs/heads/machines/*")
        .unwrap()
        .count();
    assert_eq!(branches, 1, "the commit reached the remote");
}

/// A file held open across `ferry unmount` keeps working until it is closed, what it writes
/// meanwhile is committed, and the unmount names it.
#[test]
fn unmount_serves_open_files_until_they_close() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, proj) = Machine::mounted_alone(tmp.path());
    let path = proj.join("held.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(line("h0", Path::new("/work/proj"), "before").as_bytes())
        .unwrap();
    let unmount = m
        .command(&["unmount", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let writer = std::thread::spawn(move || {
        let mut failed = 0;
        for i in 1..=20 {
            std::thread::sleep(Duration::from_millis(100));
            let l = line(
                &format!("h{i}"),
                Path::new("/work/proj"),
                "after the unmount",
            );
            if f.write_all(l.as_bytes()).is_err() {
                failed += 1;
            }
        }
        failed
    });
    // A second `ferry unmount` while the first waits on the open file: answered with the same
    // stop's report, never left hanging or cut off.
    std::thread::sleep(Duration::from_millis(500));
    let second = m.ferry(&["unmount", "--json"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let doc = json(&stdout(&second));
    assert!(doc["was_mounted"].is_boolean(), "{doc}");
    let failed = writer.join().unwrap();
    let out = unmount.wait_with_output().unwrap();
    assert_eq!(failed, 0, "writes to a file open across the unmount failed");
    let doc = json(&stdout(&out));
    assert_eq!(out.status.code(), Some(0), "{doc}");
    let open = doc["still_open"].as_array().unwrap();
    assert!(
        open.iter()
            .any(|o| o.as_str().unwrap().contains("held.jsonl")),
        "{doc}"
    );
    assert_eq!(doc["open_past_deadline"], false, "{doc}");
    // Every line is in the store: a fresh mount shows all 21.
    m.ok(&["mount"]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 21, "{text}");
    m.ok(&["unmount"]);
}

/// `export -o -` writes to stdout, and `export` never writes over a file unless told to.
#[test]
fn export_to_stdout_and_never_over_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair { a, b, a_proj, .. } = Pair::new(tmp.path());
    let id = "0f6c1b7e-1d2a-4c3b-9e8f-7a6b5c4d3e2f";
    std::fs::write(
        session_file(&a, &a_proj, &format!("{id}.jsonl")),
        line("e1", &a_proj, "export me"),
    )
    .unwrap();
    a.ok(&["sync"]);

    let out = a.ferry(&["export", &id[..8], "-o", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bundle = json(&stdout(&out));
    assert_eq!(bundle["session"], id);
    assert!(!Path::new("-").exists(), "no file named -");
    // ... which `import -` reads on the other machine.
    let mut import = b
        .command(&["import", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let done = import.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", stderr(&done));

    let file = tmp.path().join("bundle.json");
    std::fs::write(&file, "mine").unwrap();
    let out = a.ferry(&["export", &id[..8], "-o", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    a.ok(&["export", &id[..8], "-o", file.to_str().unwrap(), "--force"]);
    assert!(std::fs::read_to_string(&file).unwrap().contains(id));
    let out = a.ferry(&["export", &id[..8], "-o", "-", "--json"]);
    assert_eq!(out.status.code(), Some(2), "stdout cannot hold both");
}

/// A session two machines continued differently is shown in words, with what to do.
#[test]
fn status_names_divergent_sessions_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        a,
        b,
        a_proj,
        b_proj,
        ..
    } = Pair::new(tmp.path());
    let name = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6.jsonl";
    let write = |m: &Machine, proj: &Path, second: &str| {
        let text = line("d1", proj, "shared start") + &line(second, proj, second);
        std::fs::write(session_file(m, proj, name), text).unwrap();
    };
    write(&a, &a_proj, "on-a");
    a.ok(&["sync"]);
    write(&b, &b_proj, "on-b");
    b.ok(&["sync"]);
    a.ok(&["sync"]);
    let st = a.ok(&["status"]);
    assert!(st.contains("divergent sessions: 1"), "{st}");
    assert!(
        st.contains(&format!(
            "{name} in ~/work/proj, continued differently on a, b"
        )) || st.contains(&format!(
            "{name} in ~/work/proj, continued differently on b, a"
        )),
        "{st}"
    );
    assert!(
        !st.contains("[\"") && !st.contains("\"]"),
        "no debug text: {st}"
    );
    assert!(st.contains("ferry handoff"), "{st}");
    let doc = json(&a.ok(&["status", "--json"]));
    assert_eq!(doc["divergent_sessions"][0]["project_key"], "~/work/proj");
}

/// The login service is started by systemd as `Type=notify`: the daemon says READY=1 once the
/// mount is live, and the mount's type is `fuse.ferry`.
#[test]
fn a_foreground_mount_tells_systemd_and_is_fuse_ferry() {
    use std::os::unix::net::UnixDatagram;
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(&tmp.path().join("m"));
    m.ok(&["init", "--machine", "m"]);
    let socket = tmp.path().join("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let err = tmp.path().join("stderr");
    let mut daemon = m
        .command(&["mount", "--foreground"])
        .env("NOTIFY_SOCKET", &socket)
        .env("JOURNAL_STREAM", "8:12345")
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = listener.recv(&mut buf).expect("READY=1 from the daemon");
    let said = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(said.contains("READY=1"), "{said}");
    assert!(m.mounted(), "READY=1 came before the mount was live");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let projects = m.projects();
    let ours = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(projects.to_str().unwrap()))
        .expect("the mount is in mountinfo");
    assert!(ours.contains(" - fuse.ferry "), "{ours}");
    m.ok(&["unmount"]);
    daemon.wait_bounded();
    // Under the journal the log goes to stderr too.
    let out = std::fs::read_to_string(&err).unwrap();
    assert!(out.contains("INFO") && out.contains("mounted"), "{out}");
}

/// `ferry hooks install` names the binary `ferry` when that is this binary on PATH, so that a
/// hook keeps working when the binary is reinstalled.
#[test]
fn hooks_name_ferry_by_its_name_on_path() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(&tmp.path().join("m"));
    m.ok(&["init", "--machine", "m"]);
    // Removing hooks that were never there writes no settings file.
    m.ok(&["hooks", "uninstall"]);
    assert!(!m.home.join(".claude/settings.json").exists());
    let bin = ferry_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = m
        .command(&["hooks", "install"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let settings = std::fs::read_to_string(m.home.join(".claude/settings.json")).unwrap();
    assert!(settings.contains("' ferry hooks run stop"), "{settings}");
    assert!(!settings.contains(bin.to_str().unwrap()), "{settings}");
    // Off PATH, the full path.
    m.ok(&["hooks", "install"]);
    let settings = std::fs::read_to_string(m.home.join(".claude/settings.json")).unwrap();
    assert!(settings.contains(bin.to_str().unwrap()), "{settings}");
}

/// Waiting for a child with a bound, for a test that must not hang.
trait WaitBounded {
    fn wait_bounded(&mut self);
}

impl WaitBounded for std::process::Child {
    fn wait_bounded(&mut self) {
        for _ in 0..600 {
            if let Ok(Some(_)) = self.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.kill();
        panic!("the daemon did not exit");
    }
}

/// The daemon answers on its control socket, this user's only: a status live, a request it
/// does not know with an error; `ferry link` while mounted is taken at once, and says so.
#[test]
fn the_daemon_answers_on_its_control_socket() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let tmp = tempfile::tempdir().unwrap();
    let (m, proj) = Machine::mounted_alone(tmp.path());
    let socket = m.state.join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let ask = |line: &str| {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).unwrap();
        json(&answer)
    };
    std::fs::write(
        proj.join("s.jsonl"),
        line("c1", Path::new("/work/proj"), "hi"),
    )
    .unwrap();
    let status = ask("{\"op\":\"status\"}\n");
    assert_eq!(status["reply"], "status", "{status}");
    assert!(status["status"]["machines"].is_array(), "{status}");
    let bad = ask("{\"op\":\"format-the-disk\"}\n");
    assert_eq!(bad["reply"], "failed", "{bad}");
    // `ferry status` reads the same, live: the write above is pending or committed.
    let st = json(&m.ok(&["status", "--json"]));
    assert_eq!(st["mount"]["state"], "live", "{st}");
    // `ferry link` while mounted: the daemon takes it now.
    let checkout = tmp.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    let out = json(&m.ok(&[
        "link",
        checkout.to_str().unwrap(),
        "--key",
        "github.com/o/linked",
        "--json",
    ]));
    assert_eq!(out["daemon_took_it"], true, "{out}");
    m.ok(&["unmount"]);
    assert!(!socket.exists(), "the socket goes with the daemon");
    let out = json(&m.ok(&[
        "link",
        checkout.to_str().unwrap(),
        "--key",
        "github.com/o/linked",
        "--json",
    ]));
    assert_eq!(out["daemon_took_it"], false, "{out}");
}

/// `ferry uninstall` leaves nothing missing: the sessions the view showed stay in Claude
/// Code's directory, in this machine's paths, and the hooks go.
#[test]
fn uninstall_leaves_every_session_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair {
        a,
        b,
        a_proj,
        b_proj,
        ..
    } = Pair::new(tmp.path());
    let name = "5e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b.jsonl";
    std::fs::write(
        session_file(&a, &a_proj, name),
        line(
            "u1",
            &a_proj,
            &format!("read {}/src/lib.rs", a_proj.display()),
        ),
    )
    .unwrap();
    a.ok(&["sync"]);
    b.ok(&["hooks", "install"]);
    b.ok(&["mount"]);
    let b_file = b
        .projects()
        .join(ferry_sync::slug::slug(b_proj.to_str().unwrap()))
        .join(name);
    let mut seen = String::new();
    assert!(
        ferry_tests::rig::eventually(Duration::from_secs(30), || {
            seen = std::fs::read_to_string(&b_file).unwrap_or_default();
            !seen.is_empty()
        }),
        "a's session never showed on b"
    );
    let out = b.ferry(&["uninstall", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    assert!(doc["files_written"].as_u64().unwrap() >= 1, "{doc}");
    assert!(!b.mounted(), "unmounted");
    // The plain directory now holds what the view showed, byte for byte, in b's paths.
    assert_eq!(std::fs::read_to_string(&b_file).unwrap(), seen);
    assert!(seen.contains(b_proj.to_str().unwrap()) && !seen.contains(a_proj.to_str().unwrap()));
    let settings =
        std::fs::read_to_string(b.home.join(".claude/settings.json")).unwrap_or_default();
    assert!(!settings.contains("ferry"), "{settings}");
    assert!(
        !b.home.join(".claude/skills/ferry-sessions").exists(),
        "the skill is gone"
    );
    // What it keeps, it names.
    assert!(doc["state_dir"].as_str().is_some(), "{doc}");
}

/// `ferry log` tells what sync did, with times; completions and the man page are there.
#[test]
fn log_completions_and_man_page() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, proj) = Machine::mounted_alone(tmp.path());
    std::fs::write(
        proj.join("s.jsonl"),
        line("l1", Path::new("/work/proj"), "hi"),
    )
    .unwrap();
    m.ok(&["sync"]);
    m.ok(&["unmount"]);
    let log = json(&m.ok(&["log", "--json"]));
    let events = log["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "commit"), "{log}");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "info" && e["message"].as_str().unwrap().contains("mounted")),
        "{log}"
    );
    let times: Vec<i64> = events
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "newest last: {times:?}"
    );
    let text = m.ok(&["log", "-n", "3"]);
    assert_eq!(text.lines().count(), 3, "{text}");
    let bash = m.ok(&["completions", "bash"]);
    assert!(
        bash.contains("uninstall") && bash.contains("_ferry"),
        "{bash}"
    );
    let man = m.ok(&["man"]);
    assert!(
        man.contains(".TH ferry") && man.contains("uninstall"),
        "{man}"
    );
}

/// `ferry doctor` checks what surrounds the mount: hooks naming a binary that is gone, a
/// damaged store, free disk, the login service and Claude Code; each with what to do.
#[test]
fn doctor_checks_hooks_the_store_and_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(&tmp.path().join("m"));
    m.ok(&["init", "--machine", "m"]);
    let proj = m.projects().join("-work-proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(
        proj.join("s.jsonl"),
        line("d1", Path::new("/work/proj"), "hi"),
    )
    .unwrap();
    m.ok(&["sync"]);
    let checks = |m: &Machine| {
        let out = m.ferry(&["doctor", "--json"]);
        (json(&stdout(&out))["checks"].clone(), out.status.code())
    };
    let level = |checks: &Value, area: &str| {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["area"] == area)
            .map(|c| c["level"].as_str().unwrap().to_string())
    };
    let (all, _) = checks(&m);
    assert_eq!(level(&all, "hooks").as_deref(), Some("note"), "{all}");
    assert_eq!(level(&all, "store").as_deref(), Some("ok"), "{all}");
    assert_eq!(level(&all, "disk").as_deref(), Some("ok"), "{all}");
    assert_eq!(level(&all, "service").as_deref(), Some("note"), "{all}");
    assert!(level(&all, "claude").is_some(), "{all}");

    // Hooks naming a ferry that was moved away.
    std::fs::write(
        m.home.join(".claude/settings.json"),
        r#"{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"FERRY_HOME='/x' '/gone/ferry' hooks run stop"}]}]}}"#,
    )
    .unwrap();
    let (all, code) = checks(&m);
    assert_eq!(level(&all, "hooks").as_deref(), Some("fail"), "{all}");
    assert_eq!(code, Some(1));
    m.ok(&["hooks", "install"]);
    let (all, _) = checks(&m);
    assert_eq!(level(&all, "hooks").as_deref(), Some("ok"), "{all}");

    // A store whose objects are gone.
    let objects = m.state.join("store/objects");
    for entry in std::fs::read_dir(&objects).unwrap().flatten() {
        let name = entry.file_name();
        if name.len() == 2 {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    for pack in std::fs::read_dir(objects.join("pack"))
        .into_iter()
        .flatten()
        .flatten()
    {
        std::fs::remove_file(pack.path()).unwrap();
    }
    let (all, code) = checks(&m);
    assert_eq!(level(&all, "store").as_deref(), Some("fail"), "{all}");
    assert_eq!(code, Some(1));
}

/// `ferry restore` over a transcript that keeps a secret locally: the line keeps its real bytes
/// (the store's copy is redacted), and the lines that were lost come back.
#[test]
fn restore_keeps_local_lines_as_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, proj) = Machine::mounted_alone(tmp.path());
    let key = format!("sk-ant-api03-{}", "Qw3r".repeat(20));
    let first = line("r1", Path::new("/work/proj"), &format!("export KEY={key}"));
    let second = line("r2", Path::new("/work/proj"), "a line to lose");
    let path = proj.join("r.jsonl");
    std::fs::write(&path, format!("{first}{second}")).unwrap();
    m.ok(&["sync"]);
    m.ok(&["unmount"]);
    // Lines lost here (a rewrite that dropped one): the file holds the first only.
    let plain = m.projects().join("-work-proj/r.jsonl");
    std::fs::write(&plain, &first).unwrap();
    let out = json(&m.ok(&["restore", "-work-proj/r.jsonl", "--json"]));
    assert_eq!(out["restored"], true, "{out}");
    let text = std::fs::read_to_string(&plain).unwrap();
    assert_eq!(
        text,
        format!("{first}{second}"),
        "the real key stays, the lost line is back"
    );
}

/// `s` with what changes from run to run put as placeholders: the temp dir, machine ids, ages
/// and pids.
fn normalised(s: &str, tmp: &Path) -> String {
    let s = s.replace(tmp.to_str().unwrap(), "<tmp>");
    let words: Vec<String> = s
        .split('\n')
        .map(|line| {
            let mut out = Vec::new();
            let parts: Vec<&str> = line.split(' ').collect();
            let mut i = 0;
            while i < parts.len() {
                let p = parts[i];
                let unit = parts.get(i + 1).copied().unwrap_or("");
                if p.chars().all(|c| c.is_ascii_digit())
                    && !p.is_empty()
                    && matches!(unit, "s" | "min" | "h" | "d")
                    && parts.get(i + 2) == Some(&"ago")
                {
                    out.push("<ago>".to_string());
                    i += 3;
                    continue;
                }
                let bare = p.trim_matches(|c| c == '(' || c == ')' || c == ',');
                if bare.len() == 16 && bare.chars().all(|c| c.is_ascii_hexdigit()) {
                    out.push(p.replace(bare, "<id>"));
                } else {
                    out.push(p.to_string());
                }
                i += 1;
            }
            out.join(" ")
        })
        .collect();
    words.join("\n")
}

/// `ferry status` as a person reads it, whole (a snapshot: a change to any line shows here),
/// and `--json` with exactly the fields the README's schema names.
#[test]
fn status_reads_as_written_and_its_json_keeps_its_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    m.ok(&["init", "--machine", "a"]);
    let proj = m.projects().join("-work-proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(
        proj.join("s.jsonl"),
        line("s1", Path::new("/work/proj"), "hi"),
    )
    .unwrap();
    m.ok(&["sync"]);
    let text = normalised(&m.ok(&["status"]), tmp.path());
    let want = "\
mount:    <tmp>/home/.claude/projects (not mounted)
machine:  a (<id>)
remote:   none: sessions stay here; add one with `ferry remote set URL`
history:  30 days: `ferry restore` goes back that far; older history is folded away
machines:
  a (this)             last commit <ago>
pending:  0 path(s), 0 byte(s) not yet committed
divergent sessions: none
files that lost a newest-wins merge: none
secrets in new content (policy redact): none found
last error: none
";
    assert_eq!(text, want, "\n{text}");
    let doc = json(&m.ok(&["status", "--json"]));
    let mut keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "divergent_sessions",
            "history",
            "last_error",
            "last_fetch_ms",
            "last_push_ms",
            "lost_newest_wins",
            "machine",
            "machines",
            "mount",
            "pending",
            "rejected",
            "remote",
            "schema",
            "secrets",
            "unsyncable"
        ]
    );
    assert_eq!(doc["schema"], 1);
    assert!(doc["machines"][0]["last_commit_ms"].is_i64(), "{doc}");
}

/// A file written through the view in a path the store cannot hold (here: deeper than 16
/// directories in its project) stays on this machine, and `ferry status` names it with why and
/// what to do, until it goes.
#[test]
fn status_names_files_the_store_cannot_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, proj) = Machine::mounted_alone(tmp.path());
    std::fs::write(
        proj.join("s.jsonl"),
        line("u1", Path::new("/work/proj"), "hi"),
    )
    .unwrap();
    let deep = (0..17).fold(proj.clone(), |p, i| p.join(format!("d{i}")));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("notes.txt"), "kept here\n").unwrap();
    let rel = deep.join("notes.txt");
    let rel = rel
        .strip_prefix(m.projects())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let text = m.ok(&["status"]);
    assert!(
        text.contains("not synced: 1 file(s) in paths the store cannot hold stay on this machine only (rename or move them to sync them):")
            && text.contains(&format!("  {rel}: ")),
        "{text}"
    );
    let doc = json(&m.ok(&["status", "--json"]));
    assert_eq!(doc["unsyncable"][0]["path"], rel.as_str(), "{doc}");
    assert!(
        doc["unsyncable"][0]["why"]
            .as_str()
            .unwrap()
            .contains("too deep"),
        "{doc}"
    );
    // Still named after a restart: the daemon looks through what is there when it starts.
    m.ok(&["unmount"]);
    m.ok(&["mount"]);
    let named = || {
        let doc = json(&m.ok(&["status", "--json"]));
        doc["unsyncable"][0]["path"] == rel.as_str()
    };
    assert!(
        ferry_tests::rig::eventually(Duration::from_secs(10), named),
        "{}",
        m.ok(&["status"])
    );
    std::fs::remove_file(deep.join("notes.txt")).unwrap();
    let doc = json(&m.ok(&["status", "--json"]));
    assert_eq!(doc["unsyncable"], serde_json::json!([]), "{doc}");
    assert!(!m.ok(&["status"]).contains("not synced"));
    m.ok(&["unmount"]);
}

/// `ferry sync` says it pushed only when the push sent something the remote lacked.
#[test]
fn sync_says_pushed_only_when_something_went_out() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let m = Machine::new(&tmp.path().join("m"));
    m.ok(&[
        "init",
        "--machine",
        "m",
        "--remote",
        remote.to_str().unwrap(),
    ]);
    let proj = m.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    let dir = m.project_dir(&proj);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("s.jsonl"),
        format!("{{\"type\":\"user\",\"cwd\":\"{}\"}}\n", proj.display()),
    )
    .unwrap();
    let first = m.ok(&["sync"]);
    assert!(first.contains("fetched and pushed"), "{first}");
    let again = m.ok(&["sync"]);
    assert!(
        again.contains("fetched; nothing new to push") && !again.contains("pushed\n"),
        "{again}"
    );

    // Moved to another, empty remote: `ferry init` pushes the branch there and says so, though
    // nothing new was committed (the copy remembered from the first remote is not the new one's).
    let other = tmp.path().join("other.git");
    let moved = git2::Repository::init_bare(&other).unwrap();
    let to = |m: &Machine, json: bool| {
        let mut args = vec!["init", "--remote", other.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        m.ok(&args)
    };
    let switched = to(&m, false);
    assert!(switched.contains("(fetched and pushed)"), "{switched}");
    let still = to(&m, false);
    assert!(still.contains("(fetched; nothing new to push)"), "{still}");
    let last = json(&to(&m, true));
    assert_eq!(last["pushed"], false, "{last}");
    let branch = format!(
        "refs/heads/machines/{}",
        last["machine_id"].as_str().unwrap()
    );
    assert!(moved.refname_to_id(&branch).is_ok(), "{switched}");
}
