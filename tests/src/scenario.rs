//! Scenarios with several machines on one remote, for the end-to-end tests: a `git daemon`
//! remote, machines with differently shaped HOMEs (`/home/alice`, `/Users/bob`, `/home/carol`)
//! and their checkouts of the project at different places under them, the real client's runs
//! (a new session, a resume) and what must hold of the transcripts (only local paths, every
//! line once on every machine). Each scenario prints its wall time.

use crate::ferry::command_as;
use crate::rig::{GitDaemon, Host, cwds, eventually, uuids};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a change may take to reach another machine in these tests (not a performance
/// target: the latency bench measures that).
pub const SYNC: Duration = Duration::from_secs(60);

/// A remote, and the machines on it.
pub struct Rig {
    /// Where every machine lives.
    pub tmp: tempfile::TempDir,
    /// The shared remote.
    pub remote: GitDaemon,
    start: Instant,
    scenario: &'static str,
    /// An encrypted store: the first machine makes it, and lets each later one in. Its HOME and
    /// state dir, once it exists.
    encrypted: Option<std::cell::RefCell<Option<(PathBuf, PathBuf)>>>,
}

impl Rig {
    /// A fresh remote for the scenario named `scenario`.
    pub fn new(scenario: &'static str) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let remote = GitDaemon::start(&tmp.path().join("remote"));
        Rig {
            tmp,
            remote,
            start: Instant::now(),
            scenario,
            encrypted: None,
        }
    }

    /// [`Rig::new`], for an encrypted store: the first host made runs `ferry init --encrypt`,
    /// and adds each later one with `ferry key add` before its `ferry init`.
    pub fn encrypted(scenario: &'static str) -> Rig {
        let mut rig = Rig::new(scenario);
        rig.encrypted = Some(std::cell::RefCell::new(None));
        rig
    }

    /// A machine named `name` with HOME `home` and its checkout at `~/checkout`, mounted.
    pub fn host(&self, name: &str, home: &str, checkout: &str) -> Host {
        let (root, url) = (self.tmp.path(), self.remote.url());
        let host = match &self.encrypted {
            None => Host::new(root, name, home, checkout, &url),
            Some(keyholder) => {
                let first = keyholder.borrow().is_none();
                let more: &[&str] = if first { &["--encrypt"] } else { &[] };
                let host = Host::set_up(root, (name, home, checkout), &url, more, |m| {
                    if let Some((home, state)) = keyholder.borrow().as_ref() {
                        let me = m.ok(&["key", "show"]);
                        let out = command_as(home, state, &["key", "add", me.trim()])
                            .output()
                            .expect("ferry runs");
                        assert!(out.status.success(), "key add: {out:?}");
                    }
                });
                if first {
                    *keyholder.borrow_mut() =
                        Some((host.machine.home.clone(), host.machine.state.clone()));
                }
                host
            }
        };
        host.ferry(&["mount"]);
        host
    }

    /// alice: `/home/alice`, checkout `~/src/proj`.
    pub fn alice(&self) -> Host {
        self.host("alice", "home/alice", "src/proj")
    }

    /// bob: `/Users/bob`, checkout `~/work/clients/proj`.
    pub fn bob(&self) -> Host {
        self.host("bob", "Users/bob", "work/clients/proj")
    }

    /// carol: `/home/carol`, checkout `~/code/proj`.
    pub fn carol(&self) -> Host {
        self.host("carol", "home/carol", "code/proj")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        eprintln!(
            "scenario {}: {:.1} s",
            self.scenario,
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// A fake API script of `items`.
pub fn json(items: &str) -> String {
    format!("[{items}]")
}

/// A script that calls tool `name` with `input`, then says `then`.
pub fn tool(name: &str, input: serde_json::Value, then: &str) -> String {
    json(&format!(
        r#"{{"tool_use":{{"name":"{name}","input":{input}}}}},{{"text":"{then}"}}"#
    ))
}

/// A new session on `host` whose first prompt is `prompt`; returns its id.
pub fn new_session(host: &Host, version: &str, prompt: &str) -> String {
    let before: BTreeSet<String> = host.sessions().into_iter().collect();
    let ack = host.claude(version, &["-p", prompt], None).text();
    assert!(ack.starts_with("ACK#"), "{ack}");
    // Only this run's: another machine's session may arrive meanwhile and be listed here (this
    // client's start places its project in this checkout), as it did in CI.
    let (mut new, others): (Vec<String>, Vec<String>) = host
        .sessions()
        .into_iter()
        .filter(|s| !before.contains(s))
        .partition(|s| first_of(host, s, "prompt") == prompt);
    assert_eq!(
        new.len(),
        1,
        "one new session: {}\nand besides: {}\n{}",
        described(host, &new),
        described(host, &others),
        host.machine.log_tail()
    );
    new.pop().unwrap()
}

/// Each session in `ids` with the cwd and the first prompt its transcript gives, so that a
/// failure says which sessions these are and where they were written.
fn described(host: &Host, ids: &[String]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "{id}: cwd {}, first prompt {:?}",
                first_of(host, id, "cwd"),
                first_of(host, id, "prompt")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first `cwd` or first user prompt (`key`) of session `id` in `host`'s project dir, or `?`.
fn first_of(host: &Host, id: &str, key: &str) -> String {
    std::fs::read_to_string(host.slug_dir().join(format!("{id}.jsonl")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| match key {
            "cwd" => v["cwd"].as_str().map(str::to_string),
            _ => (v["type"] == "user")
                .then(|| v["message"]["content"].as_str().map(str::to_string))
                .flatten(),
        })
        .unwrap_or_else(|| "?".into())
}

/// `claude -p --resume <id> <prompt>` on `host`; returns the main request the client sent.
pub fn resume(host: &Host, version: &str, id: &str, prompt: &str) -> String {
    let run = host.claude(version, &["-p", "--resume", id, prompt], None);
    let ack = run.text();
    assert!(ack.starts_with("ACK#"), "{ack}");
    run.agent_request()
}

/// A path as text.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// No path of `other`'s in `text`, and every `cwd` is `here`'s checkout.
pub fn assert_local(text: &str, here: &Host, other: &Host) {
    assert!(
        !text.contains(s(&other.machine.home)),
        "{} still names {}'s home {}:\n{text}",
        here.name,
        other.name,
        other.machine.home.display()
    );
    let cwds = cwds(text);
    assert!(
        cwds.iter().all(|c| c == s(&here.checkout)),
        "{}'s cwds: {cwds:?}",
        here.name
    );
}

/// Each line once, and the same lines on every host, once the last writes have synced.
pub fn assert_same_lines(id: &str, hosts: &[&Host]) {
    let set = |h: &Host| uuids(&h.read(id)).into_iter().collect::<BTreeSet<String>>();
    eventually(SYNC, || hosts.iter().all(|h| set(h) == set(hosts[0])));
    let first: BTreeSet<String> = uuids(&hosts[0].read(id)).into_iter().collect();
    assert!(!first.is_empty());
    for h in hosts {
        let all = uuids(&h.read(id));
        let set: BTreeSet<String> = all.iter().cloned().collect();
        assert_eq!(set.len(), all.len(), "a line twice on {}", h.name);
        assert_eq!(set, first, "{} and {} differ", h.name, hosts[0].name);
    }
}

/// `kill -9` of `host`'s daemon; returns once it is gone (its mount is left dead).
pub fn kill_daemon(host: &Host) {
    host.machine.kill_9();
}
