//! An encrypted store end to end, with the real Claude Code client, real mounts and a real
//! `git daemon` remote (issue 23): a session started on alice continues on bob, with bob's
//! paths; carol joins later and sees it; carol is removed and sees nothing written after;
//! a branch of tampered ciphertext on the remote is refused and reported while the others go
//! on; and the remote holds none of what the machines wrote.

use ferry_tests::claude::VERSIONS;
use ferry_tests::rig::eventually;
use ferry_tests::scenario::{Rig, SYNC, assert_local, new_session, resume, s};
use std::path::Path;
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    ferry_tests::git::output(dir, args)
}

/// Writes, in the remote, a branch for machine `id` whose one file is the sealed bytes of
/// `from`'s first blob with a byte flipped: ciphertext nobody with the key made.
fn tampered_branch(remote: &Path, from: &str, id: &str) {
    let repo = git2::Repository::open_bare(remote).unwrap();
    let commit = repo
        .find_reference(&format!("refs/heads/machines/{from}"))
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let tree = commit.tree().unwrap();
    let entry = tree
        .iter()
        .find(|e| e.kind() == Some(git2::ObjectType::Blob))
        .expect("a sealed record at the top");
    let mut bytes = repo.find_blob(entry.id()).unwrap().content().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut builder = repo.treebuilder(Some(&tree)).unwrap();
    builder
        .insert(entry.name().unwrap(), repo.blob(&bytes).unwrap(), 0o100644)
        .unwrap();
    let forged = repo.find_tree(builder.write().unwrap()).unwrap();
    repo.commit(
        Some(&format!("refs/heads/machines/{id}")),
        &commit.author(),
        &commit.committer(),
        commit.message().unwrap(),
        &forged,
        &[],
    )
    .unwrap();
}

#[test]
fn an_encrypted_store_hands_a_session_over_and_keeps_out_who_it_must() {
    let version = VERSIONS[VERSIONS.len() - 1];
    let rig = Rig::encrypted("encrypted");
    let a = rig.alice();
    let b = rig.bob();

    // A session on alice continues on bob, in bob's terms, through the sealed remote.
    let id = new_session(&a, version, "alpha: the quokka ledger");
    b.wait_for(&id, &["alpha: the quokka ledger"], SYNC);
    let req = resume(&b, version, &id, "bravo: the pelican report");
    assert!(req.contains("alpha: the quokka ledger"), "{req}");
    assert!(!req.contains(s(&a.machine.home)), "alice's paths: {req}");
    a.wait_for(&id, &["bravo: the pelican report"], SYNC);
    assert_local(&a.read(&id), &a, &b);

    // carol joins later, and has the session.
    let c = rig.carol();
    c.wait_for(&id, &["bravo: the pelican report"], SYNC);
    let on_c = c.read(&id);
    for other in [&a, &b] {
        assert!(
            !on_c.contains(s(&other.machine.home)),
            "{}'s paths on carol",
            other.name
        );
    }

    // carol is removed: what alice writes after reaches bob, and not carol.
    let carol = c.ferry(&["key", "show"]);
    let removed = a.ferry(&["key", "remove", carol.trim()]);
    assert!(removed.contains("generation 2"), "{removed}");
    resume(&a, version, &id, "alpha: after carol left");
    b.wait_for(&id, &["alpha: after carol left"], SYNC);
    assert!(
        eventually(Duration::from_secs(20), || c
            .ferry(&["status", "--json"])
            .contains("removed from the encrypted store")),
        "carol says she was removed: {}",
        c.ferry(&["status"])
    );
    assert!(!c.read(&id).contains("alpha: after carol left"));

    // Tampered ciphertext on the remote: refused and reported; the rest goes on.
    let remote = rig.remote.repo();
    let alice_id = {
        let doc: serde_json::Value = serde_json::from_str(&a.ferry(&["status", "--json"])).unwrap();
        doc["machine"]["id"].as_str().unwrap().to_string()
    };
    tampered_branch(&remote, &alice_id, "00000000deadbeef");
    resume(&a, version, &id, "alpha: despite the forgery");
    b.wait_for(&id, &["alpha: despite the forgery"], SYNC);
    assert!(
        eventually(Duration::from_secs(30), || {
            let st = b.ferry(&["status", "--json"]);
            st.contains("00000000deadbeef") && st.contains("does not open")
        }),
        "bob reports the forged branch: {}",
        b.ferry(&["status"])
    );

    // The remote: nothing the machines wrote, in any object.
    let all = git(&remote, &["cat-file", "--batch-all-objects", "--batch"]);
    let all = String::from_utf8_lossy(&all).to_lowercase();
    for planted in [
        "quokka",
        "pelican",
        "after carol left",
        &id,
        "alice",
        "/users/bob",
        "github.com",
    ] {
        assert!(
            !all.contains(planted),
            "{planted} is readable on the remote"
        );
    }
    for h in [&a, &b, &c] {
        h.ferry(&["unmount"]);
    }
}
