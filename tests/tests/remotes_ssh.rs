//! Remotes over a real OpenSSH server on 127.0.0.1 (issue 20), reached the way a user's own git
//! reaches them: a `Host` alias with a key named only by `IdentityFile`, a passphrase-protected
//! key skipped for a usable one (never a prompt), no user in the URL (the local user logs in),
//! an agent offering a key the server refuses; unknown, changed and unresolvable hosts told
//! apart with the command to run next; a refused key tried once, not in a loop; and two machines
//! exchanging a session. Each simulated machine is a local account of its own, since ssh reads
//! `~/.ssh` from the account's home.

use ferry_tests::sshd::{Sshd, TestUser, agent_with, ferry_as, ferry_as_with, shared_repo};
use std::path::Path;
use std::process::Output;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(user: &TestUser, args: &[&str]) -> String {
    let out = ferry_as(user, args);
    assert!(out.status.success(), "ferry {args:?}: {}", text(&out));
    text(&out)
}

/// A session file in `user`'s (unmounted) projects dir, for `ferry sync` to commit.
fn write_session(user: &TestUser, id: &str, line: &str) {
    let dir = user.home.join(".claude/projects/-w-proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{id}.jsonl")),
        format!("{{\"uuid\":\"{line}\",\"cwd\":\"/w/proj\"}}\n"),
    )
    .unwrap();
    user.own(&user.home.join(".claude"));
}

/// Whether the remote at `repo` has `user`'s machine branch.
fn pushed(repo: &Path) -> bool {
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["for-each-ref", "refs/heads/machines/"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

/// `ferry init` for `user` against `remote`, then `ferry sync`; the sync's output.
fn init_and_sync(user: &TestUser, remote: &str) -> Output {
    let state = user.home.join("ferry-state");
    let _ = std::fs::remove_dir_all(&state);
    ok(
        user,
        &[
            "init",
            "--machine",
            &user.name,
            "--remote",
            remote,
            "--offline",
        ],
    );
    write_session(user, "s1", "u1");
    ferry_as(user, &["sync"])
}

#[test]
fn ssh_set_ups_people_have_work_through_their_own_git() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"));
    let al = TestUser::create(tmp.path(), "al");
    let known = sshd.known_hosts_line();
    let port = sshd.port;

    // 1. A Host alias, and a key named only by IdentityFile (not a default name).
    let repo = shared_repo(&tmp.path().join("alias.git"));
    sshd.authorize(&al.keygen("work_key", "ed25519", ""));
    al.ssh_file("known_hosts", &known);
    al.ssh_file(
        "config",
        &format!(
            "Host work-github\n  HostName 127.0.0.1\n  Port {port}\n  IdentityFile ~/.ssh/work_key\n"
        ),
    );
    let out = init_and_sync(&al, &format!("work-github:{}", repo.display()));
    assert!(out.status.success(), "alias: {}", text(&out));
    assert!(pushed(&repo), "alias: nothing reached the remote");

    // 2. A passphrase-protected id_ed25519 (its prompt never shown) and a usable id_rsa, no
    //    agent; and 3. no user in the URL: the local user logs in.
    al.ssh_file("config", "");
    al.keygen("id_ed25519", "ed25519", "a passphrase");
    sshd.authorize(&al.keygen("id_rsa", "rsa", ""));
    let repo = shared_repo(&tmp.path().join("default-keys.git"));
    let mark = sshd.log_text().len();
    let out = init_and_sync(&al, &format!("ssh://127.0.0.1:{port}{}", repo.display()));
    assert!(out.status.success(), "default keys: {}", text(&out));
    assert!(pushed(&repo), "default keys: nothing reached the remote");
    // In this step's own log lines: step 1 logged this user in already.
    assert!(
        sshd.log_since(mark)
            .contains(&format!("for {} from 127.0.0.1", al.name)),
        "the local user logged in"
    );

    // 3b. An agent offering a key the server refuses, and a good id_rsa: the refused one is
    //     passed over, the good one logs in.
    al.keygen("agent_key", "ed25519", "");
    let socket = al.home.join("agent.sock");
    agent_with(&al, &socket, "agent_key");
    let _ = std::fs::rename(
        al.home.join(".ssh/id_ed25519"),
        al.home.join(".ssh/locked_key"),
    );
    let repo3 = shared_repo(&tmp.path().join("agent.git"));
    ok(
        &al,
        &[
            "init",
            "--machine",
            &al.name,
            "--remote",
            &format!("ssh://127.0.0.1:{port}{}", repo3.display()),
            "--offline",
        ],
    );
    let mark = sshd.log_text().len();
    let out = ferry_as_with(&al, &["sync"], &[("SSH_AUTH_SOCK", socket.as_path())]);
    assert!(
        out.status.success(),
        "agent with a refused key: {}",
        text(&out)
    );
    assert!(pushed(&repo3), "agent: nothing reached the remote");
    let step = sshd.log_since(mark);
    assert!(
        step.contains("Failed publickey") || step.contains("agent_key"),
        "the agent's key was offered first:\n{step}"
    );

    // 4. An unknown host key, then a changed one: refused, each with its own message.
    al.ssh_file("known_hosts", "");
    let out = init_and_sync(&al, &format!("ssh://127.0.0.1:{port}{}", repo.display()));
    assert!(!out.status.success());
    assert!(text(&out).contains("is not known yet"), "{}", text(&out));
    let other = tmp.path().join("other_host_key");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut parts = wrong.split_whitespace();
    al.ssh_file(
        "known_hosts",
        &format!(
            "[127.0.0.1]:{port} {} {}\n",
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    );
    let out = init_and_sync(&al, &format!("ssh://127.0.0.1:{port}{}", repo.display()));
    assert!(!out.status.success());
    assert!(text(&out).contains("CHANGED"), "{}", text(&out));
    assert!(text(&out).contains("ssh-keygen -R"), "{}", text(&out));
    al.ssh_file("known_hosts", &known);

    // 5. An alias that does not resolve.
    let out = init_and_sync(&al, "no-such-alias:/x.git");
    assert!(!out.status.success());
    assert!(text(&out).contains("does not resolve"), "{}", text(&out));

    // 6. Every key refused: one connection's worth of tries, and a message that says what
    //    to do (no loop of logins).
    let refused = TestUser::create(tmp.path(), "rf");
    refused.keygen("id_ed25519", "ed25519", "");
    refused.ssh_file("known_hosts", &known);
    let before = sshd.connections();
    let out = init_and_sync(
        &refused,
        &format!("ssh://127.0.0.1:{port}{}", repo.display()),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("refused every ssh key"),
        "{}",
        text(&out)
    );
    let connections = sshd.connections() - before;
    assert!(
        connections <= 2,
        "{connections} connections for one refused sync:\n{}",
        sshd.log_text()
    );
}

#[test]
fn two_machines_exchange_a_session_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"));
    let repo = shared_repo(&tmp.path().join("sessions.git"));
    let (a, b) = (
        TestUser::create(tmp.path(), "sa"),
        TestUser::create(tmp.path(), "sb"),
    );
    let url = format!("ssh://127.0.0.1:{}{}", sshd.port, repo.display());
    for u in [&a, &b] {
        sshd.authorize(&u.keygen("id_ed25519", "ed25519", ""));
        u.ssh_file("known_hosts", &sshd.known_hosts_line());
        let out = ferry_as(u, &["init", "--machine", &u.name, "--remote", &url]);
        assert!(
            out.status.success(),
            "{}\nsshd:\n{}",
            text(&out),
            sshd.log_text()
        );
    }
    write_session(&a, "s-from-a", "a1");
    ok(&a, &["sync"]);
    ok(&b, &["sync"]);
    let sessions = ok(&b, &["sessions", "--json"]);
    assert!(sessions.contains("s-from-a"), "{sessions}");
}
