//! Privacy (DESIGN.md invariant 6) with the built binary: another user is refused the mount, the
//! store and the state dir; credentials in the remote URL never reach the logs, the status or a
//! report; secrets files placed in `projects/` are never committed nor reach another machine.

use ferry_tests::ferry::{Machine, Pair};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The uid and gid the other user runs as (`nobody`).
const OTHER: &str = "65534";

/// Runs `cmd` as the other user; its stderr, and whether it succeeded.
fn as_other(cmd: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv")
        .args(["--reuid", OTHER, "--regid", OTHER, "--clear-groups", "--"])
        .args(cmd)
        .output()
        .expect("setpriv (util-linux) runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Opens `dir` and its parents up to `root` to everyone (0755), so that only ferry's own modes
/// stand between the other user and ferry's files.
fn open_up(dir: &Path, root: &Path) {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        if d == root {
            break;
        }
        cur = d.parent();
    }
}

#[test]
fn another_user_is_refused_the_mount_the_store_and_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (m, dir) = Machine::mounted_alone(tmp.path());
    let session = dir.join("s.jsonl");
    std::fs::write(&session, "{\"uuid\":\"u1\",\"cwd\":\"/work/proj\"}\n").unwrap();
    assert_eq!(m.ferry(&["sync"]).status.code(), Some(0));
    open_up(&m.home.join(".claude"), tmp.path());
    open_up(tmp.path(), tmp.path());

    let store = m.state.join("store");
    let checks: [(&str, &Path); 7] = [
        ("ls", &m.projects()),
        ("cat", &session),
        ("ls", &m.state),
        ("cat", &m.state.join("config.json")),
        ("cat", &m.state.join("ferry.log")),
        ("ls", &store),
        ("cat", &store.join("HEAD")),
    ];
    for (tool, path) in checks {
        assert!(path.exists(), "{} exists for its owner", path.display());
        let (ok, err) = as_other(&[tool, path.to_str().unwrap()]);
        assert!(!ok, "another user could {tool} {}", path.display());
        assert!(
            err.contains("Permission denied"),
            "{tool} {}: {err}",
            path.display()
        );
    }
    // The state dir and the store are this user's alone, whatever the umask.
    for p in [&m.state, &store] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", p.display());
    }
    m.ok(&["unmount"]);
    // Unmounted, the directory underneath is this user's alone too.
    let mode = std::fs::metadata(m.projects())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    let (ok, err) = as_other(&["cat", session.to_str().unwrap()]);
    assert!(!ok && err.contains("Permission denied"), "{err}");
}

#[test]
fn credentials_in_the_remote_url_never_reach_logs_status_or_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let m = Machine::new(tmp.path());
    // Nothing listens on port 9 here: every push and fetch fails, and says why.
    let secret = "s3cr3t-t0ken";
    let url = format!("https://alice:{secret}@127.0.0.1:9/ferry.git");
    // Unreachable: refused, saying why, and nothing is set up; then set up offline.
    let refused = m.ferry(&["init", "--machine", "a", "--remote", &url]);
    assert_eq!(refused.status.code(), Some(1));
    let mut said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(said.contains("--offline"), "{said}");
    said += &m.ok(&["init", "--machine", "a", "--remote", &url, "--offline"]);
    m.ok(&["mount"]);
    let dir = m.projects().join("-work-proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s.jsonl"), "{\"uuid\":\"u1\"}\n").unwrap();
    let sync = m.ferry(&["sync"]);
    assert_eq!(sync.status.code(), Some(3), "committed, remote unreachable");
    said += &String::from_utf8_lossy(&sync.stdout);
    said += &String::from_utf8_lossy(&sync.stderr);
    for args in [&["status"][..], &["status", "--json"], &["sync", "--json"]] {
        let out = m.ferry(args);
        said += &String::from_utf8_lossy(&out.stdout);
        said += &String::from_utf8_lossy(&out.stderr);
    }
    let out = m.ferry(&["unmount"]);
    said += &String::from_utf8_lossy(&out.stdout);
    said += &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("127.0.0.1:9"),
        "the remote is named, so the check below means something: {said}"
    );
    assert!(
        !said.contains(secret),
        "a command printed the token:\n{said}"
    );
    for (name, required) in [
        ("ferry.log", true),
        ("sync-report.json", true),
        ("last-unmount.json", true),
        ("status.json", false),
    ] {
        let text = std::fs::read_to_string(m.state.join(name)).unwrap_or_default();
        assert!(!required || !text.is_empty(), "{name} was written");
        assert!(!text.contains(secret), "{name} holds the token:\n{text}");
    }
    // The config keeps the URL (it is needed to push), readable by its owner only.
    let mode = std::fs::metadata(m.state.join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn secrets_files_in_projects_are_never_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let Pair { a, b, a_proj, .. } = Pair::new(tmp.path());
    a.ok(&["mount"]);
    let dir = a
        .projects()
        .join(ferry_sync::slug::slug(a_proj.to_str().unwrap()));
    std::fs::create_dir_all(dir.join("s1/tool-results")).unwrap();
    let cwd = a_proj.to_str().unwrap();
    std::fs::write(
        dir.join("s1.jsonl"),
        format!("{{\"uuid\":\"u1\",\"cwd\":\"{cwd}\"}}\n"),
    )
    .unwrap();
    let secrets = [
        ".credentials.json",
        ".env",
        ".env.local",
        ".netrc",
        "id_ed25519",
        "server.pem",
        "s1/tool-results/deploy.key",
    ];
    for s in secrets {
        std::fs::write(dir.join(s), "TOP-SECRET\n").unwrap();
    }
    // Visible here, as written: they are this machine's files.
    for s in secrets {
        assert_eq!(
            std::fs::read_to_string(dir.join(s)).unwrap(),
            "TOP-SECRET\n"
        );
    }
    assert_eq!(a.ferry(&["sync"]).status.code(), Some(0));
    a.ok(&["unmount"]);
    // A restart's reconcile walks the upper layer: still nothing of them is committed.
    a.ok(&["mount"]);
    a.ok(&["unmount"]);

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.state.join("config.json")).unwrap()).unwrap();
    let me = config["machine_id"].as_str().unwrap();
    let store = ferry_sync::store::Store::open(&a.state.join("store")).unwrap();
    let snap = store
        .snapshot(me, store.head(me, true).unwrap().unwrap())
        .unwrap();
    let rels: Vec<&str> = snap.files.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(rels, ["s1.jsonl"], "only the transcript is committed");
    // And another machine never sees them.
    b.ok(&["sync"]);
    let on_b = b.ok(&["sessions", "--json"]);
    assert!(on_b.contains("s1"), "{on_b}");
    // Every blob of every ref on the remote: the secret is in none.
    let remote = tmp.path().join("remote.git");
    let out = Command::new("git")
        .args([
            "-C",
            remote.to_str().unwrap(),
            "log",
            "--all",
            "-p",
            "--format=%H",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("u1"), "the transcript is on the remote");
    assert!(!log.contains("TOP-SECRET"), "a secret reached the remote");
}
