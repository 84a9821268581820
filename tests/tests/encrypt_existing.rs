//! `ferry encrypt` with the built binary (issue 23): a plain store in use on two machines made
//! encrypted where it is, history included, with the other machine still mounted and writing;
//! and one sealed into a new, empty remote, which another machine joins with the passphrase.

use ferry_tests::ferry::Machine;
use ferry_tests::git::output as git;
use ferry_tests::sealed::{
    SID, bare, checkout, init_args, joining, leaks, reachable_leaks, transcript, wait_for,
};
use std::path::Path;
use std::time::Duration;

/// A user line of `who` in `proj`, naming the corpus.
fn line(who: &str, proj: &Path) -> String {
    format!(
        "{{\"type\":\"user\",\"sessionId\":\"{SID}\",\"cwd\":\"{}\",\"message\":{{\"content\":\"{who}: the flamingo invoices, see pelican-report\"}}}}\n",
        proj.display()
    )
}

/// Appends `text` to `path`.
fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
}

/// The remote's machine branches: (id, commit count, authors).
fn branches(remote: &Path) -> Vec<(String, usize, String)> {
    let refs = String::from_utf8(git(
        remote,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads/machines/",
        ],
    ))
    .unwrap();
    refs.lines()
        .map(|r| {
            let log = String::from_utf8(git(remote, &["log", "--format=%an", r])).unwrap();
            let mut authors: Vec<&str> = log.lines().collect();
            authors.dedup();
            (
                r.trim_start_matches("refs/heads/machines/").to_string(),
                log.lines().count(),
                authors.join(","),
            )
        })
        .collect()
}

fn rev(repo: &Path, what: &str) -> String {
    String::from_utf8(git(repo, &["rev-parse", what]))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_plain_store_in_use_is_encrypted_in_place_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let url = remote.to_str().unwrap();
    let a = Machine::new(&dir.path().join("marguerite"));
    let b = Machine::new(&dir.path().join("b"));
    a.ok(&init_args("ocelot-desk", url, &[]));
    b.ok(&init_args("b", url, &[]));
    let (a_proj, b_proj) = (checkout(&a.home), checkout(&b.home));
    a.ok(&["mount"]);
    b.ok(&["mount"]);
    let name = format!("{SID}.jsonl");
    let (on_a, on_b) = (
        transcript(&a, &a_proj, &name),
        transcript(&b, &b_proj, &name),
    );
    std::fs::create_dir_all(on_a.parent().unwrap()).unwrap();
    append(&on_a, &line("a", &a_proj));
    a.ok(&["sync"]);
    b.ok(&["sync"]);
    wait_for("a's line on b", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_b).is_ok_and(|t| t == line("a", &b_proj))
    });
    append(&on_b, &line("b", &b_proj));
    b.ok(&["sync"]);
    a.ok(&["sync"]);
    let both = |proj: &Path| line("a", proj) + &line("b", proj);
    wait_for("b's line on a", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_a).is_ok_and(|t| t == both(&a_proj))
    });
    let plain = branches(&remote);
    assert_eq!(plain.len(), 2, "{plain:?}");
    assert!(plain.iter().all(|(_, n, _)| *n >= 1), "{plain:?}");
    assert!(
        !reachable_leaks(&remote).is_empty(),
        "the plain store shows"
    );

    // Mounted, or without agreement, nothing is done.
    let out = a.ferry(&["encrypt", "--yes"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("ferry unmount"), "{e}");
    a.ferry(&["unmount"]);
    let out = a.ferry(&["encrypt"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("plain commit(s) of 2 machine(s)") && e.contains("--yes") && e.contains("--to"),
        "{e}"
    );
    assert_eq!(branches(&remote), plain, "nothing changed");

    // A push the remote refuses changes nothing, there or here.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho not today >&2\nexit 1\n").unwrap();
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
    let out = a.ferry(&["encrypt", "--yes"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("all or nothing") && e.contains("not today"),
        "{e}"
    );
    std::fs::remove_file(&hook).unwrap();
    assert_eq!(branches(&remote), plain, "nothing changed");
    let local_refs = |m: &Machine| {
        String::from_utf8(git(
            &m.state.join("store"),
            &["for-each-ref", "refs/ferry/"],
        ))
        .unwrap()
    };
    assert!(!local_refs(&a).contains("keyring"), "{}", local_refs(&a));
    let doc: serde_json::Value = serde_json::from_str(&a.ok(&["status", "--json"])).unwrap();
    assert_eq!(doc["remote"]["encrypted"], false);

    // Agreed: every branch sealed, history included, and the keyring, in one push.
    let said = a.ok(&["encrypt", "--yes"]);
    assert!(said.contains("2 sealed branch(es)"), "{said}");
    let sealed = branches(&remote);
    assert_eq!(sealed.len(), 2);
    for ((id, n, authors), (pid, pn, _)) in sealed.iter().zip(&plain) {
        assert_eq!((id, n), (pid, pn), "each branch keeps its whole history");
        assert_eq!(authors, "ferry", "{id}");
    }
    assert_eq!(reachable_leaks(&remote), Vec::<&str>::new());
    let b_id = {
        let doc: serde_json::Value = serde_json::from_str(&b.ok(&["status", "--json"])).unwrap();
        doc["machine"]["id"].as_str().unwrap().to_string()
    };
    let b_sealed = rev(&remote, &format!("refs/heads/machines/{b_id}"));
    a.ok(&["mount"]);

    // b, still mounted and plain, writes on: nothing of it goes out plain, and what it
    // showed of a stays.
    append(&on_b, &line("b again", &b_proj));
    // Its daemon commits and pushes on its own before it fetches again: the push is refused.
    wait_for("b's daemon to try a push", Duration::from_secs(30), || {
        let doc: serde_json::Value = serde_json::from_str(&b.ok(&["status", "--json"])).unwrap();
        doc["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("push ") && m.contains("ferry encrypt"))
    });
    let out = b.ferry(&["sync"]);
    let e =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{e}");
    assert!(e.contains("ferry encrypt"), "{e}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        rev(&remote, &format!("refs/heads/machines/{b_id}")),
        b_sealed,
        "b pushed nothing over its sealed branch: {}\n{}",
        String::from_utf8_lossy(&git(
            &remote,
            &[
                "log",
                "--format=%H %an %s",
                &format!("refs/heads/machines/{b_id}")
            ]
        )),
        a.log_tail()
    );
    assert_eq!(
        std::fs::read_to_string(&on_b).unwrap(),
        both(&b_proj) + &line("b again", &b_proj)
    );

    // b joins: a lets it in.
    let waiting = joining(&b, &["encrypt", "--wait-for-key", "120"]);
    let told = waiting.told;
    a.ok(&["key", "add", &waiting.recipient]);
    let out = waiting.child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{told}");
    assert!(
        said.contains("joined") && said.contains("ferry unmount && ferry mount"),
        "{said}"
    );
    b.ferry(&["unmount"]);
    b.ok(&["mount"]);
    b.ok(&["sync"]);
    a.ok(&["sync"]);
    let all = |proj: &Path| both(proj) + &line("b again", proj);
    wait_for(
        "b's line of the meantime on a",
        Duration::from_secs(30),
        || std::fs::read_to_string(&on_a).is_ok_and(|t| t == all(&a_proj)),
    );
    // b sealed its own branch to the very commits a had sealed for it, and went on from there.
    let b_now = rev(&remote, &format!("refs/heads/machines/{b_id}"));
    assert_ne!(b_now, b_sealed);
    git(&remote, &["merge-base", "--is-ancestor", &b_sealed, &b_now]);
    // Once the host collects garbage, nothing plain is left at all.
    git(&remote, &["gc", "-q", "--prune=now"]);
    assert_eq!(leaks(&remote), Vec::<&str>::new());
}

#[test]
fn a_store_sealed_into_a_new_remote_leaves_the_old_one_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let old = bare(dir.path());
    let new = dir.path().join("new.git");
    git(dir.path(), &["init", "-q", "--bare", new.to_str().unwrap()]);
    let phrase = dir.path().join("phrase");
    std::fs::write(&phrase, "correct horse battery staple\n").unwrap();
    let a = Machine::new(&dir.path().join("marguerite"));
    a.ok(&init_args("ocelot-desk", old.to_str().unwrap(), &[]));
    let a_proj = checkout(&a.home);
    a.ok(&["mount"]);
    let on_a = transcript(&a, &a_proj, &format!("{SID}.jsonl"));
    std::fs::create_dir_all(on_a.parent().unwrap()).unwrap();
    append(&on_a, &line("a", &a_proj));
    a.ok(&["sync"]);
    a.ferry(&["unmount"]);
    let before = branches(&old);

    // Into a remote that holds a store already: refused.
    let out = a.ferry(&["encrypt", "--to", old.to_str().unwrap()]);
    assert!(!out.status.success());
    let said = a.ok(&[
        "encrypt",
        "--to",
        new.to_str().unwrap(),
        "--passphrase-file",
        phrase.to_str().unwrap(),
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(doc["sealed_branches"], 1, "{said}");
    assert_eq!(doc["plain_history"]["machines"][0], "ocelot-desk", "{said}");
    assert_eq!(branches(&old), before, "the old remote is as it was");
    assert!(
        String::from_utf8(git(&old, &["for-each-ref"]))
            .unwrap()
            .lines()
            .all(|l| !l.contains("keyring"))
    );
    assert_eq!(reachable_leaks(&new), Vec::<&str>::new());
    let shown = a.ok(&["remote", "show"]);
    assert!(shown.contains("new.git"), "{shown}");

    // Another machine joins the new remote with the passphrase and has the session.
    let c = Machine::new(&dir.path().join("c"));
    c.ok(&init_args(
        "c",
        new.to_str().unwrap(),
        &["--passphrase-file", phrase.to_str().unwrap()],
    ));
    let c_proj = checkout(&c.home);
    c.ok(&["mount"]);
    c.ok(&["sync"]);
    let on_c = transcript(&c, &c_proj, &format!("{SID}.jsonl"));
    wait_for("a's session on c", Duration::from_secs(30), || {
        std::fs::read_to_string(&on_c).is_ok_and(|t| t == line("a", &c_proj))
    });
    assert_eq!(leaks(&new), Vec::<&str>::new());

    // The encrypted store moves on: a takes it to a third remote, c finds it there.
    let third = dir.path().join("third.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", third.to_str().unwrap()],
    );
    let out = a.ferry(&["remote", "set", old.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "a remote with a plain store is refused"
    );
    // c wrote too, and a has not fetched it: the move takes it along all the same.
    append(&on_c, &line("c", &c_proj));
    c.ok(&["sync"]);
    let before_move = branches(&new);
    assert_eq!(before_move.len(), 2);
    let said = a.ok(&["remote", "set", third.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(doc["moved_sealed_branches"], 2, "a's and c's: {said}");
    assert_eq!(branches(&new), before_move, "the old remote is as it was");
    assert_eq!(
        branches(&third),
        before_move,
        "the very same sealed branches"
    );
    // Mounted, c's daemon transfers with the refs a move rewrites: it is refused.
    let out = c.ferry(&["remote", "set", third.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ferry unmount"));
    c.ferry(&["unmount"]);
    let said = c.ok(&["remote", "set", third.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(doc["found_there"], true, "{said}");
    c.ok(&["mount"]);
    a.ok(&["mount"]);
    append(&on_a, &line("a, moved", &a_proj));
    a.ok(&["sync"]);
    c.ok(&["sync"]);
    wait_for(
        "a's line through the third remote",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&on_c).is_ok_and(|t| {
                t == line("a", &c_proj) + &line("c", &c_proj) + &line("a, moved", &c_proj)
            })
        },
    );
    assert_eq!(branches(&new), before_move);
    assert_eq!(leaks(&third), Vec::<&str>::new());
}
