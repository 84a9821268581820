//! An encrypted store with the built binary (issue 23): the first machine makes it with
//! `ferry init --encrypt`, a second one joins once the first runs `ferry key add`, or with the
//! passphrase; sessions go both ways with paths expanded; the remote holds none of a planted
//! corpus; a machine without the key is told what to run and pushes nothing.

use ferry_tests::ferry::Machine;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_tests::git::output as git;
use ferry_tests::sealed::{SID, bare, checkout, init_args, joining, leaks, transcript, wait_for};

#[test]
fn a_machine_joins_once_added_sessions_cross_and_the_remote_learns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let url = remote.to_str().unwrap();
    let a = Machine::new(&dir.path().join("marguerite"));
    let b = Machine::new(&dir.path().join("b"));
    a.ok(&init_args("ocelot-desk", url, &["--encrypt"]));
    let a_proj = checkout(&a.home);
    let b_proj = checkout(&b.home);

    // b waits for a key, saying what to run on a.
    let ferry_tests::sealed::Joining {
        child: mut joining,
        mut stderr,
        told,
        recipient,
    } = joining(&b, &init_args("b", url, &["--wait-for-key", "120"]));
    assert_eq!(b.ok(&["key", "show"]).trim(), recipient);
    // Before it is added, b has pushed nothing.
    let heads = String::from_utf8(git(&remote, &["for-each-ref", "--format=%(refname)"])).unwrap();
    assert_eq!(
        heads.lines().filter(|l| l.contains("machines/")).count(),
        0,
        "{heads}"
    );
    let added = a.ok(&["key", "add", &recipient]);
    assert!(added.contains("added"), "{added}");
    let status = joining.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "b's init: {told}{rest}");

    // A session crosses both ways, with each machine's paths.
    a.ok(&["mount"]);
    b.ok(&["mount"]);
    let on_a = transcript(&a, &a_proj, &format!("{SID}.jsonl"));
    std::fs::create_dir_all(on_a.parent().unwrap()).unwrap();
    let line = |who: &str, proj: &Path| {
        format!(
            "{{\"type\":\"user\",\"sessionId\":\"{SID}\",\"cwd\":\"{}\",\"message\":{{\"content\":\"{who}: please fix the flamingo invoices\"}}}}\n",
            proj.display()
        )
    };
    std::fs::write(&on_a, line("a", &a_proj)).unwrap();
    let tool = on_a.parent().unwrap().join(SID).join("tool-results");
    std::fs::create_dir_all(&tool).unwrap();
    std::fs::write(tool.join("pelican-report.txt"), "report\n").unwrap();
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    let on_b = transcript(&b, &b_proj, &format!("{SID}.jsonl"));
    wait_for("a's session on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b).is_ok_and(|t| t == line("a", &b_proj))
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&on_b)
        .unwrap();
    std::io::Write::write_all(&mut f, line("b", &b_proj).as_bytes()).unwrap();
    drop(f);
    b.ok(&["sync"]);
    a.ok(&["sync"]);
    wait_for("b's line on a", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_a).is_ok_and(|t| t == line("a", &a_proj) + &line("b", &a_proj))
    });

    // b fetched only the tips; `ferry restore` brings the sealed history and opens it.
    let versions = b.ok(&["restore", "--list", on_b.to_str().unwrap()]);
    assert!(
        versions.contains("ocelot-desk") && versions.lines().count() >= 2,
        "{versions}"
    );

    // Secrets are scanned in the plain lines, before sealing: b sees the key redacted.
    let key = format!("sk-ant-api03-{}", "Zq7x".repeat(20));
    let secret = transcript(&a, &a_proj, "secret.jsonl");
    let said = |proj: &Path, what: &str| {
        format!(
            "{{\"type\":\"user\",\"cwd\":\"{}\",\"message\":{{\"content\":\"export ANTHROPIC_API_KEY={what}\"}}}}\n",
            proj.display()
        )
    };
    std::fs::write(&secret, said(&a_proj, &key)).unwrap();
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    let on_b_secret = transcript(&b, &b_proj, "secret.jsonl");
    wait_for("the redacted session on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b_secret)
            .is_ok_and(|t| t == said(&b_proj, "[REDACTED:anthropic-api-key]"))
    });

    // The remote: sealed objects only, and commits that name nobody.
    assert_eq!(leaks(&remote), Vec::<&str>::new());
    let authors =
        String::from_utf8(git(&remote, &["log", "--all", "--format=%an %ae %cn %ce"])).unwrap();
    assert!(
        authors.lines().all(|l| l == "ferry ferry ferry ferry"),
        "{authors}"
    );
    let status = a.ok(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(doc["remote"]["encrypted"], true, "{status}");

    // A machine nobody added is told what to run, and pushes nothing, mounted or not.
    let c = Machine::new(&dir.path().join("c"));
    let out = c.ferry(&init_args("c", url, &["--wait-for-key", "1"]));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("ferry key add age1"), "{e}");
    let out = c.ferry(&["mount"]);
    assert!(
        !out.status.success(),
        "a machine without the key does not mount"
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no key to the encrypted store"), "{e}");
    // One set up offline never learned the store is encrypted: it pushes nothing all the same,
    // by `ferry sync` or mounted.
    let d = Machine::new(&dir.path().join("d"));
    d.ok(&init_args("d", url, &["--offline"]));
    let d_proj = d.home.join("work/d");
    std::fs::create_dir_all(&d_proj).unwrap();
    let on_d = transcript(&d, &d_proj, "plain.jsonl");
    std::fs::create_dir_all(on_d.parent().unwrap()).unwrap();
    std::fs::write(
        &on_d,
        format!("{{\"type\":\"user\",\"cwd\":\"{}\",\"message\":{{\"content\":\"flamingo invoices\"}}}}\n", d_proj.display()),
    )
    .unwrap();
    // Mounted first: its daemon looks before it pushes.
    d.ok(&["mount"]);
    std::thread::sleep(Duration::from_secs(3));
    let said = d.ok(&["status", "--json"]);
    assert!(
        said.contains("encrypted and this machine has no key"),
        "{said}"
    );
    let out = d.ferry(&["unmount"]);
    assert_eq!(out.status.code(), Some(3), "unmounted, nothing pushed");
    // Now it knows: it neither syncs nor mounts, and says what to run.
    for args in [&["sync"][..], &["mount"]] {
        let out = d.ferry(args);
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("ferry key add age1"), "{args:?}: {e}");
    }
    let heads = String::from_utf8(git(&remote, &["for-each-ref", "--format=%(refname)"])).unwrap();
    assert_eq!(
        heads.lines().filter(|l| l.contains("machines/")).count(),
        2,
        "{heads}"
    );
    assert_eq!(leaks(&remote), Vec::<&str>::new());
}

#[test]
fn a_machine_with_the_passphrase_joins_without_being_added() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let url = remote.to_str().unwrap();
    let phrase = dir.path().join("phrase");
    std::fs::write(&phrase, "correct horse battery staple\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "incorrect horse\n").unwrap();
    let a = Machine::new(&dir.path().join("a"));
    a.ok(&init_args(
        "a",
        url,
        &["--encrypt", "--passphrase-file", phrase.to_str().unwrap()],
    ));
    let b = Machine::new(&dir.path().join("b"));
    let out = b.ferry(&init_args(
        "b",
        url,
        &["--passphrase-file", wrong.to_str().unwrap()],
    ));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("passphrase does not open"), "{e}");
    b.ok(&init_args(
        "b",
        url,
        &["--passphrase-file", phrase.to_str().unwrap()],
    ));
    // b added itself: from now on it opens the store with its own key.
    let ring = String::from_utf8(git(
        &remote,
        &["show", "refs/heads/ferry/keyring:recipients"],
    ))
    .unwrap();
    let b_recipient = b.ok(&["key", "show"]);
    assert!(ring.contains(b_recipient.trim()), "{ring}");
    assert_eq!(ring.lines().count(), 2, "{ring}");
    // And the store goes on working from b.
    let a_proj = a.home.join("work/proj");
    std::fs::create_dir_all(&a_proj).unwrap();
    a.ok(&["mount"]);
    let on_a = transcript(&a, &a_proj, "s.jsonl");
    std::fs::create_dir_all(on_a.parent().unwrap()).unwrap();
    let line = |proj: &Path| format!("{{\"type\":\"user\",\"cwd\":\"{}\"}}\n", proj.display());
    std::fs::write(&on_a, line(&a_proj)).unwrap();
    a.ok(&["sync"]);
    let b_proj = b.home.join("work/proj");
    std::fs::create_dir_all(&b_proj).unwrap();
    b.ok(&["mount"]);
    b.ok(&["sync"]);
    let on_b = transcript(&b, &b_proj, "s.jsonl");
    wait_for("a's session on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b).is_ok_and(|t| t == line(&b_proj))
    });
}

/// A reinstalled computer continues its old machine in an encrypted store (`--as-machine`): it
/// joins (here with the passphrase), opens the old branch and goes on from it. The remote's
/// branch moves on from where it was, and another machine sees both installs' lines in one
/// session of one machine.
#[test]
fn a_reinstall_continues_its_machine_in_an_encrypted_store() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let url = remote.to_str().unwrap();
    let phrase = dir.path().join("phrase");
    std::fs::write(&phrase, "correct horse battery staple\n").unwrap();
    let phrase = phrase.to_str().unwrap();
    let a = Machine::new(&dir.path().join("a"));
    a.ok(&init_args(
        "a",
        url,
        &["--encrypt", "--passphrase-file", phrase],
    ));
    let line = |proj: &Path, n: &str| {
        format!(
            "{{\"type\":\"user\",\"cwd\":\"{}\",\"n\":\"{n}\"}}\n",
            proj.display()
        )
    };
    let proj = a.home.join("work/proj");
    std::fs::create_dir_all(&proj).unwrap();
    a.ok(&["mount"]);
    let on_a = transcript(&a, &proj, "s.jsonl");
    std::fs::create_dir_all(on_a.parent().unwrap()).unwrap();
    std::fs::write(&on_a, line(&proj, "first")).unwrap();
    a.ok(&["sync"]);
    let id = |m: &Machine| {
        let doc: serde_json::Value = serde_json::from_str(&m.ok(&["status", "--json"])).unwrap();
        doc["machine"]["id"].as_str().unwrap().to_string()
    };
    let old_id = id(&a);
    let branch = format!("refs/heads/machines/{old_id}");
    let rev = || String::from_utf8(git(&remote, &["rev-parse", &branch])).unwrap();
    let before = rev();
    a.ok(&["unmount"]);

    // The reinstall: the same HOME, a new state dir, and so a new key of its own.
    let again = Machine::at(a.home.clone(), dir.path().join("a/state-new"));
    again.ok(&[
        "init",
        "--remote",
        url,
        "--as-machine",
        "a",
        "--passphrase-file",
        phrase,
    ]);
    assert_eq!(id(&again), old_id, "the old identity continues");
    let said = again.ok(&["status"]);
    assert!(said.contains("continues machine a"), "{said}");
    again.ok(&["mount"]);
    let on_again = transcript(&again, &proj, "s.jsonl");
    assert_eq!(
        std::fs::read_to_string(&on_again).unwrap(),
        line(&proj, "first")
    );
    std::fs::write(&on_again, line(&proj, "first") + &line(&proj, "second")).unwrap();
    again.ok(&["sync"]);
    let after = rev();
    assert_ne!(after, before);
    // A fast-forward of the sealed branch: the history goes on.
    git(
        &remote,
        &["merge-base", "--is-ancestor", before.trim(), after.trim()],
    );

    let b = Machine::new(&dir.path().join("b"));
    b.ok(&init_args("b", url, &["--passphrase-file", phrase]));
    let b_proj = b.home.join("work/proj");
    std::fs::create_dir_all(&b_proj).unwrap();
    b.ok(&["mount"]);
    let on_b = transcript(&b, &b_proj, "s.jsonl");
    let both = line(&b_proj, "first") + &line(&b_proj, "second");
    wait_for("both installs' lines on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b).is_ok_and(|t| t == both)
    });
    let doc: serde_json::Value = serde_json::from_str(&b.ok(&["machines", "--json"])).unwrap();
    let rows = doc["machines"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        2,
        "no dead branch for the old install: {rows:?}"
    );
}

#[test]
fn a_removed_machine_is_kept_out_of_what_is_written_after() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let url = remote.to_str().unwrap();
    let a = Machine::new(&dir.path().join("a"));
    a.ok(&init_args("a", url, &["--encrypt"]));
    let (b, c) = (
        Machine::new(&dir.path().join("b")),
        Machine::new(&dir.path().join("c")),
    );
    // A machine's recipient is there before its init: added first, it joins at once.
    let mut recipients = Vec::new();
    for (m, name) in [(&b, "b"), (&c, "c")] {
        let r = m.ok(&["key", "show"]).trim().to_string();
        a.ok(&["key", "add", &r]);
        m.ok(&init_args(name, url, &["--wait-for-key", "1"]));
        recipients.push(r);
    }
    // A removal the remote refuses (here a hook; else a keyring changed meanwhile) changes
    // nothing here: the new key is neither taken nor recorded as seen.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho no keyrings today >&2\nexit 1\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ring_here = || {
        String::from_utf8(git(
            &a.state.join("store"),
            &["rev-parse", "refs/ferry/remote/keyring"],
        ))
        .unwrap()
    };
    let before = ring_here();
    let out = a.ferry(&["key", "remove", &recipients[1]]);
    assert!(!out.status.success());
    assert_eq!(
        ring_here(),
        before,
        "the refused keyring is not this store's"
    );
    let seen = std::fs::read_to_string(a.state.join("store-key.seen")).unwrap();
    assert_eq!(seen.lines().count(), 1, "{seen}");
    std::fs::remove_file(&hook).unwrap();
    let removed = a.ok(&["key", "remove", &recipients[1]]);
    assert!(removed.contains("generation 2"), "{removed}");
    let e = String::from_utf8_lossy(&a.ferry(&["key", "remove", &a.ok(&["key", "show"])]).stderr)
        .into_owned();
    assert!(e.contains("this machine's own key"), "{e}");

    // a writes after the removal; b, added before, follows the new key; c is kept out.
    let proj = |m: &Machine| {
        let p = m.home.join("work/proj");
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let (a_proj, b_proj, c_proj) = (proj(&a), proj(&b), proj(&c));
    let line = |p: &Path| format!("{{\"type\":\"user\",\"cwd\":\"{}\"}}\n", p.display());
    let on_a = transcript(&a, &a_proj, "after.jsonl");
    std::fs::create_dir_all(on_a.parent().unwrap()).unwrap();
    std::fs::write(&on_a, line(&a_proj)).unwrap();
    a.ok(&["sync"]);
    b.ok(&["mount"]);
    b.ok(&["sync"]);
    let on_b = transcript(&b, &b_proj, "after.jsonl");
    wait_for("a's new session on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b).is_ok_and(|t| t == line(&b_proj))
    });
    let on_c = transcript(&c, &c_proj, "mine.jsonl");
    std::fs::create_dir_all(on_c.parent().unwrap()).unwrap();
    std::fs::write(&on_c, line(&c_proj)).unwrap();
    let out = c.ferry(&["sync"]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("removed from the encrypted store"), "{said}");
    let id = |m: &Machine| {
        let doc: serde_json::Value = serde_json::from_str(&m.ok(&["status", "--json"])).unwrap();
        doc["machine"]["id"].as_str().unwrap().to_string()
    };
    let (a_id, c_id) = (id(&a), id(&c));
    // c never opened what a wrote after: its copy of a's branch is older than a's.
    let head = |m: &Machine, refname: &str| {
        String::from_utf8(git(
            &m.state.join("store"),
            &["rev-parse", "--verify", "-q", refname],
        ))
        .unwrap_or_default()
    };
    let a_now = head(&a, &format!("refs/heads/machines/{a_id}"));
    let on_c = Command::new("git")
        .args(["--git-dir"])
        .arg(c.state.join("store"))
        .args(["rev-parse", "-q", "--verify"])
        .arg(format!("refs/remotes/origin/machines/{a_id}"))
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8_lossy(&on_c.stdout),
        a_now,
        "c opened a's new commit"
    );
    assert!(!a_now.trim().is_empty());
    let c_id = c_id.as_str();
    let heads = String::from_utf8(git(&remote, &["for-each-ref", "--format=%(refname)"])).unwrap();
    assert!(
        !heads.contains(c_id),
        "c pushed nothing after its removal: {heads}"
    );

    // The remote serves the keyring from before the removal again, whose key c has: a and b,
    // which have seen the newer one, seal nothing with it, say why, and go on once the remote
    // serves the newest again.
    let ring = "refs/heads/ferry/keyring";
    let rev = |r: &str| String::from_utf8(git(&remote, &["rev-parse", r])).unwrap();
    let newest = rev(ring).trim().to_string();
    git(&remote, &["update-ref", ring, &format!("{newest}~1")]);
    let a_branch = format!("refs/heads/machines/{a_id}");
    std::fs::write(&on_a, line(&a_proj).repeat(2)).unwrap();
    for _ in 0..2 {
        let out = a.ferry(&["sync"]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{said}");
        assert!(said.contains("this machine has seen 2"), "{said}");
        assert_eq!(
            sealed_with(&remote, &a_branch),
            2,
            "a sealed with the old key"
        );
    }
    wait_for(
        "b to refuse the old keyring",
        Duration::from_secs(30),
        || {
            b.ok(&["status", "--json"])
                .contains("this machine has seen 2")
        },
    );
    git(&remote, &["update-ref", ring, &newest]);
    a.ok(&["sync"]);
    assert_eq!(sealed_with(&remote, &a_branch), 2);
    wait_for("a's second line on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b).is_ok_and(|t| t == line(&b_proj).repeat(2))
    });
    // The refusal is b's last error, and a fetch has gone through since.
    let st: serde_json::Value = serde_json::from_str(&b.ok(&["status", "--json"])).unwrap();
    assert!(
        st["last_fetch_ms"].as_i64() > st["last_error"]["at_ms"].as_i64(),
        "{st}"
    );
}

/// The generation of the store key that sealed the commit at `branch` of `remote` (the first
/// byte of the sealed plain commit in its message, `doc/ENCRYPTION.md`).
fn sealed_with(remote: &Path, branch: &str) -> u8 {
    let message = String::from_utf8(git(remote, &["log", "-1", "--format=%b", branch])).unwrap();
    let b64 = message.trim();
    let at = |i: usize| {
        let c = b64.as_bytes()[i];
        match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    (at(0) << 2) | (at(1) >> 4)
}
