//! Remotes over ssh on loopback (issue 20): two machines, each a local account of its own with a
//! mounted daemon, sharing a repository behind a real OpenSSH server on 127.0.0.1. Measures new
//! ssh connections per hour while a machine is active and with every machine idle (target
//! ≤ 120 idle), the time from a line written on A to B's view holding it (p50 target ≤ 1.5 s),
//! and a no-op `ferry sync` against `git fetch` of the same repository. Needs root (accounts,
//! `/dev/fuse` opened to them as on a desktop distribution) and openssh-server.
//!
//! `cargo bench -p ferry-tests --bench remotes` (FERRY_BENCH_IDLE_SECS, default 120: how long
//! the idle count runs, after the 3 minutes a machine stays active).

use ferry_tests::sshd::{Sshd, TestUser, ferry_as, shared_repo};
use std::time::{Duration, Instant};

fn ok(user: &TestUser, args: &[&str]) {
    let out = ferry_as(user, args);
    assert!(
        out.status.success(),
        "ferry {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Appends a line to `user`'s session `id` through its mount (as the user: the mount is private).
fn append(user: &TestUser, id: &str, line: &str) {
    let dir = user.home.join(".claude/projects/-w-proj");
    let script = format!(
        "mkdir -p '{}' && printf '%s\\n' '{{\"uuid\":\"{line}\",\"cwd\":\"/w/proj\"}}' >> '{}/{id}.jsonl'",
        dir.display(),
        dir.display()
    );
    let out = user.command("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `user`'s view of session `id` holds `needle`.
fn holds(user: &TestUser, id: &str, needle: &str) -> bool {
    let path = user
        .home
        .join(format!(".claude/projects/-w-proj/{id}.jsonl"));
    user.command("cat")
        .arg(&path)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(needle))
}

fn per_hour(n: usize, over: Duration) -> f64 {
    n as f64 * 3600.0 / over.as_secs_f64()
}

fn main() {
    let idle_secs: u64 = std::env::var("FERRY_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let tmp = tempfile::tempdir().unwrap();
    std::process::Command::new("chmod")
        .args(["666", "/dev/fuse"])
        .status()
        .unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"));
    let repo = shared_repo(&tmp.path().join("sessions.git"));
    let url = format!("ssh://127.0.0.1:{}{}", sshd.port, repo.display());
    let (a, b) = (
        TestUser::create(tmp.path(), "ba"),
        TestUser::create(tmp.path(), "bb"),
    );
    for u in [&a, &b] {
        sshd.authorize(&u.keygen("id_ed25519", "ed25519", ""));
        u.ssh_file("known_hosts", &sshd.known_hosts_line());
        ok(u, &["init", "--machine", &u.name, "--remote", &url]);
        std::fs::create_dir_all(u.home.join(".claude/projects")).unwrap();
        u.own(&u.home.join(".claude"));
        ok(u, &["mount"]);
    }

    // A line on A, then on B's view: 10 rounds.
    let mut lat = Vec::new();
    for i in 0..10 {
        let line = format!("l{i}");
        let start = Instant::now();
        append(&a, "s1", &line);
        while !holds(&b, "s1", &line) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "line {i} never arrived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        lat.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(700));
    }
    lat.sort();
    println!(
        "line on A -> B's view over ssh: p50 {:.2} s, max {:.2} s ({} rounds)",
        lat[lat.len() / 2].as_secs_f64(),
        lat[lat.len() - 1].as_secs_f64(),
        lat.len()
    );

    // Active: A writes every 2 s for 60 s.
    let before = sshd.connections();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(60) {
        append(&a, "s2", &format!("active{i}"));
        i += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    let active = sshd.connections() - before;
    println!(
        "new ssh connections, both machines, A active: {active} in {:.0} s = {:.0}/hour",
        start.elapsed().as_secs_f64(),
        per_hour(active, start.elapsed())
    );

    // Idle: after the 3 minutes a machine stays active, count for idle_secs.
    std::thread::sleep(Duration::from_secs(185));
    let before = sshd.connections();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let idle = sshd.connections() - before;
    println!(
        "new ssh connections, both machines idle: {idle} in {idle_secs} s = {:.0}/hour",
        per_hour(idle, start.elapsed())
    );

    // A no-op `ferry sync` (the daemon fetches and pushes) against `git fetch` of the same.
    let time = |f: &dyn Fn()| {
        let mut t: Vec<Duration> = (0..5)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect();
        t.sort();
        t[2]
    };
    let sync = time(&|| ok(&a, &["sync"]));
    let clone = a.home.join("plain.git");
    let _ = a
        .command("git")
        .args(["init", "-q", "--bare"])
        .arg(&clone)
        .output();
    let fetch = time(&|| {
        ferry_tests::must(a.command("git").arg("--git-dir").arg(&clone).args([
            "fetch",
            "-q",
            &url,
            "+refs/heads/*:refs/heads/*",
        ]));
    });
    println!(
        "no-op sync, median of 5: ferry sync {:.0} ms, git fetch {:.0} ms",
        sync.as_secs_f64() * 1000.0,
        fetch.as_secs_f64() * 1000.0
    );
    for u in [&a, &b] {
        ok(u, &["unmount"]);
    }
}
