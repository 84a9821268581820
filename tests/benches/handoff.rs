//! Hand-off latency (DESIGN.md: a line written on A is visible through B's mount within 5 s):
//! from the Stop hook on machine A to the session being resumable on machine B, with the real
//! Claude Code client, real mounts and a `git daemon` remote on 127.0.0.1. Runs with ferry's
//! hooks installed on A (the target) and without them (the commit debounce alone), then checks
//! that B really resumes. Needs root (FUSE) and the pinned client (`scripts/test` installs it).
//!
//! `cargo bench -p ferry-tests --bench handoff` (FERRY_BENCH_ROUNDS, default 8).

use ferry_tests::claude::VERSIONS;
use ferry_tests::rig::{GitDaemon, Host, install_hooks_with_stamp, visible_after_stop};
use std::time::Duration;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rounds(hooks: bool, n: usize) -> Vec<Duration> {
    let tmp = tempfile::tempdir().expect("tmp");
    let remote = GitDaemon::start(&tmp.path().join("remote"));
    let a = Host::new(tmp.path(), "alice", "home/alice", "src/proj", &remote.url());
    let b = Host::new(tmp.path(), "bob", "Users/bob", "work/proj", &remote.url());
    let stamps = if hooks {
        install_hooks_with_stamp(&a)
    } else {
        // The test's own stamp hook only: when the client stopped, with nothing pushing early.
        let stamps = install_hooks_with_stamp(&a);
        a.ferry(&["hooks", "uninstall"]);
        stamps
    };
    a.ferry(&["mount"]);
    b.ferry(&["mount"]);
    let v = VERSIONS[1];
    let mut id: Option<String> = None;
    let mut out = Vec::new();
    for i in 0..n {
        let prompt = format!("turn {i}");
        let args: Vec<&str> = match &id {
            None => vec!["-p", prompt.as_str()],
            Some(id) => vec!["-p", "--resume", id.as_str(), prompt.as_str()],
        };
        let ack = a.claude(v, &args, None).text();
        let sid = id
            .get_or_insert_with(|| a.sessions().first().cloned().expect("a session"))
            .clone();
        out.push(visible_after_stop(
            &b,
            &sid,
            &[&prompt, &ack],
            &stamps,
            Duration::from_secs(120),
        ));
    }
    let id = id.expect("a session");
    let run = b.claude(v, &["-p", "--resume", &id, "bob resumes"], None);
    assert!(run.text().starts_with("ACK#"), "bob resumed");
    assert!(run.agent_request().contains(&format!("turn {}", n - 1)));
    a.ferry(&["unmount"]);
    b.ferry(&["unmount"]);
    out
}

fn main() {
    let n: usize = std::env::var("FERRY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    println!(
        "hand-off: Stop hook on A -> resumable on B (Claude Code {}), {n} rounds",
        VERSIONS[1]
    );
    for hooks in [true, false] {
        let mut t = rounds(hooks, n);
        t.sort();
        println!(
            "  {:<22} p50 {:>6.2} s  max {:>6.2} s  (target < 5 s with hooks)",
            if hooks {
                "hooks installed"
            } else {
                "no hooks (debounce)"
            },
            percentile(&t, 0.5).as_secs_f64(),
            t[t.len() - 1].as_secs_f64()
        );
    }
}
