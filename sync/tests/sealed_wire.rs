//! What an encrypted store's fetches and pushes tell the remote (issue 23), read from git's own
//! packet trace: the commits they name (`have` lines, and the `shallow` lines of a store that
//! fetched only the tips) are sealed ones, never the plain commits this machine also holds,
//! whose ids would let the remote confirm a guess of a machine's whole state.
//!
//! Alone in its binary: it sets `GIT_TRACE_PACKET` for every git this process runs.

mod common;

use common::git;
use common::plain::{SESSION, bare, plain, transcript};
use ferry_sync::crypt::StoreKey;
use ferry_sync::crypt::StoreKeys;
use ferry_sync::crypt::sealing::{FERRY_REFSPEC, SEALED_PREFIX, Sealing};
use ferry_sync::engine::{GitCli, History, Progress, REF_MAX_BYTES};
use ferry_sync::store::Store;
use git2::Oid;

#[test]
#[cfg_attr(windows, ignore = "pushes and fetches with Linux's git")]
fn an_encrypted_stores_fetches_and_pushes_name_no_plain_commit() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("packets");
    // SAFETY: the one test of this binary, set before it runs any git.
    unsafe { std::env::set_var("GIT_TRACE_PACKET", &trace) };
    let remote = bare(dir.path());
    let url = format!("file://{}", remote.display());
    let key = StoreKey::generate();
    let a = plain();
    let sealing = Sealing::new(StoreKeys::new(key.clone()));
    let push = |a: &common::plain::Plain| {
        let sealed = sealing.seal_own(&a.store, &a.machine.id).unwrap().unwrap();
        let dest = format!("+{sealed}:refs/heads/machines/{}", a.machine.id);
        git(
            a.store.repo().path(),
            &["push", "-q", remote.to_str().unwrap(), &dest],
        );
    };
    let mut text = transcript(3);
    a.write(SESSION, &text, None);
    text.push_str(&transcript(1));
    a.write(SESSION, &text, None);
    push(&a);

    let mut b = plain();
    b.machine.id = "1b2b3b4b5b6b7b8b".into();
    let reader = Sealing::new(StoreKeys::new(key));
    let cli = GitCli::probe(None).expect("git");
    let fetch = |history: History| {
        cli.fetch(
            &b.store,
            &url,
            u64::MAX,
            &Progress::default(),
            history,
            SEALED_PREFIX,
        )
        .unwrap();
        let failed = reader
            .open_fetched(
                &Store::open(b.store.repo().path()).unwrap(),
                history == History::All,
            )
            .unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    };
    // A new machine: the tips only, then an ordinary fetch on top of them.
    fetch(History::Tips);
    let shallow = std::fs::read_to_string(b.store.repo().path().join("shallow")).unwrap();
    text.push_str(&transcript(1));
    a.write(SESSION, &text, None);
    push(&a);
    fetch(History::New);
    // The keyring's own fetch, after a new version of it (a plain commit of its own).
    let ring = git(
        a.store.repo().path(),
        &[
            "commit-tree",
            "-m",
            "ferry keyring",
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        ],
    );
    let ring = String::from_utf8(ring).unwrap();
    git(
        a.store.repo().path(),
        &[
            "push",
            "-q",
            remote.to_str().unwrap(),
            &format!("{}:refs/heads/ferry/keyring", ring.trim()),
        ],
    );
    cli.fetch_ref(&b.store, &url, FERRY_REFSPEC, REF_MAX_BYTES)
        .unwrap();
    // b's own branch, sealed and pushed from its shallow store.
    b.write(SESSION, &transcript(2), None);
    let sealed = reader.seal_own(&b.store, &b.machine.id).unwrap().unwrap();
    cli.push(
        &b.store,
        &url,
        &b.machine.id,
        &Progress::default(),
        Some(sealed),
        None,
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .any(|l| l.contains("push>") || l.contains("send-pack>")),
        "the push is traced"
    );
    // `ferry restore`'s deepening fetch: the whole history comes, sealed and plain, and the
    // store's shallow list is empty again.
    let before_deepening = std::fs::read_to_string(b.store.repo().path().join("shallow")).unwrap();
    assert_eq!(
        before_deepening, shallow,
        "the fetches kept the store's shallow list"
    );
    fetch(History::All);
    let store = Store::open(b.store.repo().path()).unwrap();
    let tip = store
        .repo()
        .refname_to_id(&format!("refs/remotes/origin/machines/{}", a.machine.id))
        .unwrap();
    let mut walk = store.repo().revwalk().unwrap();
    walk.push(tip).unwrap();
    assert_eq!(walk.count(), 3, "a's whole plain history");
    let left = std::fs::read_to_string(b.store.repo().path().join("shallow")).unwrap_or_default();
    assert!(left.trim().is_empty(), "{left}");

    // Every commit id b's gits sent, and what each is in b's store.
    let sent = std::fs::read_to_string(&trace).unwrap();
    let named: Vec<Oid> = sent
        .lines()
        .filter(|l| l.contains("> have ") || l.contains("> shallow "))
        .filter_map(|l| Oid::from_str(l.rsplit(' ').next()?).ok())
        .collect();
    assert!(
        sent.lines().any(|l| l.contains("> have ")),
        "the trace shows what was sent: {sent}"
    );
    let repo = Store::open(b.store.repo().path()).unwrap();
    let plain_named: Vec<String> = named
        .iter()
        .filter(|id| {
            repo.repo().find_commit(**id).is_ok_and(|c| {
                !c.message()
                    .unwrap_or_default()
                    .starts_with("ferry sealed commit")
                    && c.message().ok() != Some("ferry keyring\n")
            })
        })
        .map(Oid::to_string)
        .collect();
    assert!(
        plain_named.is_empty(),
        "plain commits named to the remote: {plain_named:?} (shallow list {shallow}) in {}",
        sent.lines()
            .filter(|l| plain_named.iter().any(|p| l.contains(p.as_str())))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
