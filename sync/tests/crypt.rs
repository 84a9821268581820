//! Sealing a machine branch for an encrypted remote (issue 23): the remote's objects, read
//! whole, hold none of a planted corpus; another machine with the key opens them to the very
//! same plain commits; an append seals only what it changed; a damaged or foreign object and a
//! wrong key fail clearly.

mod common;

use common::git;
use common::plain::{Plain, SESSION, bare, plain, transcript};
use ferry_sync::crypt::translate::Translator;
use ferry_sync::crypt::{StoreKey, StoreKeys};
use ferry_sync::store::{Store, own_ref};
use git2::Oid;
use std::path::{Path, PathBuf};

/// Strings only the plain store holds: a path, a project's remote, a prompt, file names, a
/// machine's name, a session id, a branch.
const CORPUS: &[&str] = &[
    "marguerite",
    "zanzibar-corp",
    "quokka-ledger",
    "flamingo invoices",
    "pelican-report",
    "5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44",
    "ocelot",
];

/// Every object of `repo`, each decompressed whole, one after another.
fn every_object(repo: &Path) -> Vec<u8> {
    git(
        repo,
        &["cat-file", "--batch-all-objects", "--batch", "--unordered"],
    )
}

/// Which strings of the corpus `bytes` hold, as written or as JSON would escape them.
fn leaks(bytes: &[u8]) -> Vec<&'static str> {
    let lower = bytes.to_ascii_lowercase();
    CORPUS
        .iter()
        .filter(|s| lower.windows(s.len()).any(|w| w == s.as_bytes()))
        .copied()
        .collect()
}

#[test]
#[cfg_attr(windows, ignore = "pushes and fetches with Linux's git")]
fn the_remote_learns_nothing_and_another_machine_opens_the_very_same_commits() {
    let a = plain();
    a.write(SESSION, &transcript(40), None);
    a.write(
        "5f0c2a9e-77aa-4bcd-9e01-3d2b6c8f1a44/tool-results/pelican-report.txt",
        "the pelican-report for zanzibar-corp\n",
        None,
    );
    let tip = a.store.head(&a.machine.id, true).unwrap().unwrap();
    // The plain store holds the corpus (or this test would prove nothing).
    let plain_objects = every_object(a.store.repo().path());
    assert_eq!(
        leaks(&plain_objects).len(),
        CORPUS.len(),
        "{:?}",
        leaks(&plain_objects)
    );

    let key = StoreKey::generate();
    let sealed = seal(&a.store, &key, tip);
    assert_eq!(
        seal(&a.store, &key, tip),
        sealed,
        "sealing again gives the same commit"
    );
    let (_dir, remote) = push_sealed(&a, sealed);
    let on_remote = every_object(&remote);
    assert!(
        on_remote.len() > 1000,
        "the remote holds the sealed objects"
    );
    assert_eq!(leaks(&on_remote), Vec::<&str>::new());
    let log = git(&remote, &["log", "--format=%an %ae %cn %ce %s", "--all"]);
    assert_eq!(
        String::from_utf8_lossy(&log).trim(),
        ["ferry ferry ferry ferry ferry sealed commit"; 2].join("\n"),
        "authors and messages say nothing"
    );

    // Machine B fetches the sealed branch and opens it: the very commit A made.
    let b = plain();
    let opened = fetch_and_open(&b, remote.to_str().unwrap(), &[], &a, &key);
    assert_eq!(opened.commit, tip);
    assert!(opened.shallow.is_empty());
    let text = b
        .store
        .repo()
        .find_commit(opened.commit)
        .unwrap()
        .tree()
        .unwrap()
        .id();
    assert_eq!(
        text,
        a.store.repo().find_commit(tip).unwrap().tree_id(),
        "the same plain tree, so every file is the same"
    );
    let _ = own_ref(&a.machine.id);
}

#[test]
fn an_append_seals_only_what_it_changed() {
    let a = plain();
    let mut text = transcript(400);
    a.write(SESSION, &text, None);
    let first = a.store.head(&a.machine.id, true).unwrap().unwrap();
    let key = StoreKey::generate();
    let mut t = Translator::new(a.store.repo(), key.keys());
    let sealed_first = t.seal_commit(first).unwrap();
    t.write().unwrap();
    let all = t.blobs_done;
    assert!(all > 4, "a long transcript is several chunks: {all}");

    let from = text.len() as u64;
    text.push_str(&transcript(1));
    let second = a.write(SESSION, &text, Some(from));
    t.blobs_done = 0;
    let sealed_second = t.seal_commit(second).unwrap();
    t.write().unwrap();
    assert!(t.blobs_done <= 3, "an append sealed {} blobs", t.blobs_done);
    let parent = a
        .store
        .repo()
        .find_commit(sealed_second)
        .unwrap()
        .parent_id(0)
        .unwrap();
    assert_eq!(
        parent, sealed_first,
        "the sealed history is the plain one's"
    );

    // After a restart the twins are learned from the last pair, without reading a blob.
    let mut again = Translator::new(a.store.repo(), key.keys());
    again.learn(second, sealed_second).unwrap();
    assert_eq!(again.blobs_done, 0);
    text.push_str(&transcript(1));
    let third = a.write(SESSION, &text, Some(from));
    again.seal_commit(third).unwrap();
    assert!(
        again.blobs_done <= 3,
        "after learning, an append sealed {} blobs",
        again.blobs_done
    );

    // And opening the new commit on another machine opens only what is new.
    let b = plain();
    copy_objects(a.store.repo().path(), b.store.repo().path());
    let mut open = Translator::new(b.store.repo(), key.keys());
    open.open_commit(sealed_first).unwrap();
    open.blobs_done = 0;
    assert_eq!(open.open_commit(sealed_second).unwrap().commit, second);
    assert!(
        open.blobs_done <= 3,
        "opening an append opened {} blobs",
        open.blobs_done
    );
}

/// A store whose session has `lines` lines, its tip, a new store key, and the tip sealed.
fn sealed_session(lines: usize) -> (Plain, Oid, StoreKey, Oid) {
    let a = plain();
    a.write(SESSION, &transcript(lines), None);
    let tip = a.store.head(&a.machine.id, true).unwrap().unwrap();
    let key = StoreKey::generate();
    let sealed = seal(&a.store, &key, tip);
    (a, tip, key, sealed)
}

/// Fetches every sealed branch of `url` into `b` (with `how`), and opens `a`'s.
fn fetch_and_open(
    b: &Plain,
    url: &str,
    how: &[&str],
    a: &Plain,
    key: &StoreKey,
) -> ferry_sync::crypt::translate::Opened {
    let mut args = vec!["fetch", "-q"];
    args.extend(how);
    args.extend([url, "+refs/heads/machines/*:refs/ferry/sealed/machines/*"]);
    git(b.store.repo().path(), &args);
    let fetched = b
        .store
        .repo()
        .refname_to_id(&format!("refs/ferry/sealed/machines/{}", a.machine.id))
        .unwrap();
    let mut t = Translator::new(b.store.repo(), key.keys());
    let opened = t.open_commit(fetched).unwrap();
    t.write().unwrap();
    opened
}

/// `tip` sealed in `store` with `key`, written.
fn seal(store: &Store, key: &StoreKey, tip: Oid) -> Oid {
    let mut t = Translator::new(store.repo(), key.keys());
    let sealed = t.seal_commit(tip).unwrap();
    t.write().unwrap();
    sealed
}

/// A new bare remote holding `sealed` as `a`'s branch (with the dir it is in).
fn push_sealed(a: &Plain, sealed: Oid) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let dest = format!("{sealed}:refs/heads/machines/{}", a.machine.id);
    git(
        a.store.repo().path(),
        &["push", "-q", remote.to_str().unwrap(), &dest],
    );
    (dir, remote)
}

/// Makes every object of `from` reachable in `to` (an alternate), as a fetch would bring them.
fn copy_objects(from: &Path, to: &Path) {
    let alt = to.join("objects/info/alternates");
    std::fs::create_dir_all(alt.parent().unwrap()).unwrap();
    std::fs::write(alt, format!("{}\n", from.join("objects").display())).unwrap();
}

#[test]
fn damage_a_plain_commit_or_another_key_fails_clearly_and_writes_nothing_wrong() {
    let (a, tip, key, sealed) = sealed_session(3);
    let repo = a.store.repo();

    // Another store's key.
    let e = Translator::new(repo, StoreKey::generate().keys())
        .open_commit(sealed)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not open with this store's key"), "{e}");

    // A plain commit where a sealed one should be (a remote that was never encrypted).
    let e = Translator::new(repo, key.keys())
        .open_commit(tip)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a sealed ferry commit"), "{e}");

    // A sealed commit whose tree was swapped for another sealed tree: it names another tree.
    let later = a.write("other.jsonl", "{\"x\":1}\n", None);
    let other = seal(&a.store, &key, later);
    let s = repo.find_commit(sealed).unwrap();
    // The sealed commit's own message over `tree`: what opening it says.
    let over = |tree: &git2::Tree<'_>| {
        let forged = repo
            .commit(
                None,
                &s.author(),
                &s.committer(),
                s.message().unwrap(),
                tree,
                &[],
            )
            .unwrap();
        Translator::new(repo, key.keys())
            .open_commit(forged)
            .err()
            .expect("a forged commit does not open")
            .to_string()
    };
    let swapped_tree = repo.find_commit(other).unwrap().tree().unwrap();
    let e = over(&swapped_tree);
    assert!(e.contains("opens to another tree than it names"), "{e}");

    // A sealed blob with one byte flipped, in a tree of its own.
    let tree = s.tree().unwrap();
    let mut builder = repo.treebuilder(Some(&tree)).unwrap();
    let victim = tree
        .iter()
        .find(|e| e.kind() == Some(git2::ObjectType::Blob))
        .expect("a sealed machine record at the top");
    let mut bytes = repo.find_blob(victim.id()).unwrap().content().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let damaged = repo.blob(&bytes).unwrap();
    builder
        .insert(victim.name().unwrap(), damaged, victim.filemode())
        .unwrap();
    let damaged_tree = repo.find_tree(builder.write().unwrap()).unwrap();
    let e = over(&damaged_tree);
    assert!(e.contains("does not open"), "{e}");
}

#[test]
#[cfg_attr(windows, ignore = "pushes and fetches with Linux's git")]
fn a_shallow_fetch_opens_the_tip_and_says_which_commits_lack_parents() {
    let a = plain();
    let mut text = transcript(5);
    a.write(SESSION, &text, None);
    text.push_str(&transcript(1));
    let tip = a.write(SESSION, &text, None);
    let key = StoreKey::generate();
    let sealed = seal(&a.store, &key, tip);
    let (_dir, remote) = push_sealed(&a, sealed);
    let b = plain();
    let url = format!("file://{}", remote.display());
    let opened = fetch_and_open(&b, &url, &["--depth", "1"], &a, &key);
    assert_eq!(
        opened.commit, tip,
        "the same commit, parent and all, though the parent is not here"
    );
    assert_eq!(opened.shallow, vec![tip]);
}

/// The engine's side: a new machine fetches only the tips and opens them (the plain tip is
/// listed shallow); a later commit arrives by an ordinary fetch on top of it; `ferry restore`'s
/// deepening fetch brings the rest, which opens below both, and the plain history is whole.
#[test]
#[cfg_attr(windows, ignore = "pushes and fetches with Linux's git")]
fn a_deepening_fetch_opens_the_history_below_a_shallow_tip() {
    use ferry_sync::crypt::sealing::Sealing;
    let a = plain();
    let mut text = transcript(5);
    let first = a.write(SESSION, &text, None);
    text.push_str(&transcript(1));
    let second = a.write(SESSION, &text, None);
    let key = StoreKey::generate();
    let sealing = Sealing::new(StoreKeys::new(key.clone()));
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let push = |a: &Plain| {
        let sealed = sealing.seal_own(&a.store, &a.machine.id).unwrap().unwrap();
        let dest = format!("+{sealed}:refs/heads/machines/{}", a.machine.id);
        git(
            a.store.repo().path(),
            &["push", "-q", remote.to_str().unwrap(), &dest],
        );
    };
    push(&a);
    let url = format!("file://{}", remote.display());
    let spec = "+refs/heads/machines/*:refs/ferry/sealed/machines/*";
    let b = plain();
    let reader = Sealing::new(StoreKeys::new(key));
    let b_git = b.store.repo().path().to_path_buf();
    let tracking = format!("refs/remotes/origin/machines/{}", a.machine.id);
    let fetch_and_open = |how: &[&str], deepened: bool| {
        let mut args = vec!["fetch", "-q"];
        args.extend(how);
        args.extend([url.as_str(), spec]);
        git(&b_git, &args);
        let failed = reader
            .open_fetched(&Store::open(&b_git).unwrap(), deepened)
            .unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        Store::open(&b_git)
            .unwrap()
            .repo()
            .refname_to_id(&tracking)
            .unwrap()
    };
    assert_eq!(fetch_and_open(&["--depth", "1"], false), second);
    let shallow = std::fs::read_to_string(b_git.join("shallow")).unwrap();
    assert!(shallow.contains(&second.to_string()), "{shallow}");
    let store = Store::open(&b_git).unwrap();
    assert!(
        store.repo().find_commit(first).is_err(),
        "only the tip came"
    );

    // A third commit comes by an ordinary fetch: complete itself, on a shallow second.
    text.push_str(&transcript(1));
    let third = a.write(SESSION, &text, None);
    push(&a);
    assert_eq!(fetch_and_open(&[], false), third);

    assert_eq!(fetch_and_open(&["--unshallow"], true), third);
    let shallow = std::fs::read_to_string(b_git.join("shallow")).unwrap_or_default();
    assert!(!shallow.contains(&second.to_string()), "{shallow}");
    let store = Store::open(&b_git).unwrap();
    let mut walk = store.repo().revwalk().unwrap();
    walk.push(third).unwrap();
    let history: Vec<Oid> = walk.map(Result::unwrap).collect();
    assert_eq!(
        history,
        vec![third, second, first],
        "the whole plain history, as a wrote it"
    );
}

/// A remote that serves an older sealed commit of a branch (which opens without error) is
/// refused, and the view keeps the newer state; a branch its machine rewrote, folding its old
/// history away, is taken; an older state served after the fold is refused too.
#[test]
#[cfg_attr(windows, ignore = "pushes and fetches with Linux's git")]
fn a_branch_the_remote_takes_back_is_refused_and_a_fold_is_taken() {
    use ferry_sync::crypt::sealing::Sealing;
    let a = plain();
    let mut text = transcript(5);
    a.write(SESSION, &text, None);
    let key = StoreKey::generate();
    let sealing = Sealing::new(StoreKeys::new(key.clone()));
    let dir = tempfile::tempdir().unwrap();
    let remote = bare(dir.path());
    let branch = format!("refs/heads/machines/{}", a.machine.id);
    let push = |a: &Plain| {
        let sealed = sealing.seal_own(&a.store, &a.machine.id).unwrap().unwrap();
        git(
            a.store.repo().path(),
            &[
                "push",
                "-q",
                remote.to_str().unwrap(),
                &format!("+{sealed}:{branch}"),
            ],
        );
        sealed
    };
    let serve = |sealed: Oid| git(&remote, &["update-ref", &branch, &sealed.to_string()]);
    let first = push(&a);
    text.push_str(&transcript(1));
    let second = a.write(SESSION, &text, None);
    let sealed_second = push(&a);

    let url = format!("file://{}", remote.display());
    let tracking = format!("refs/remotes/origin/machines/{}", a.machine.id);
    // Fetches and opens in the store at `git_dir` with `reader`: what did not open, and a's
    // branch there.
    let open_in = |git_dir: &Path, reader: &Sealing| {
        git(
            git_dir,
            &[
                "fetch",
                "-q",
                &url,
                "+refs/heads/machines/*:refs/ferry/sealed/machines/*",
            ],
        );
        let store = Store::open(git_dir).unwrap();
        let failed = reader.open_fetched(&store, false).unwrap();
        (failed, store.repo().refname_to_id(&tracking).unwrap())
    };
    // c opens a's branch now, then is away for longer than the history horizon.
    let c = plain();
    let c_reader = Sealing::new(StoreKeys::new(key.clone()));
    serve(first);
    assert!(open_in(c.store.repo().path(), &c_reader).0.is_empty());
    serve(sealed_second);
    let b = plain();
    let reader = Sealing::new(StoreKeys::new(key));
    let b_git = b.store.repo().path().to_path_buf();
    let fetch_and_open = || open_in(&b_git, &reader);
    assert_eq!(fetch_and_open(), (vec![], second));

    // The remote takes the branch back one commit.
    serve(first);
    let (failed, at) = fetch_and_open();
    assert_eq!(at, second, "the view keeps what it had");
    assert!(
        failed.len() == 1 && failed[0].contains("an older state of the branch"),
        "{failed:?}"
    );
    // Said at every fetch while it lasts, and gone once the remote serves the branch again.
    assert_eq!(fetch_and_open().0, failed);
    serve(sealed_second);
    assert_eq!(fetch_and_open(), (vec![], second));

    // Its machine folds its history away: a rewritten branch, taken.
    let far = (std::time::SystemTime::now() + std::time::Duration::from_secs(86_400))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    a.store
        .fold_history(&a.machine.id, far, 0)
        .unwrap()
        .expect("a fold");
    push(&a);
    let (failed, folded) = fetch_and_open();
    assert!(failed.is_empty(), "{failed:?}");
    let repo = b.store.repo();
    assert_ne!(folded, second, "a rewritten branch");
    assert_eq!(
        repo.find_commit(folded).unwrap().tree_id(),
        repo.find_commit(second).unwrap().tree_id()
    );
    // c, back after the horizon: the state it saw was folded away, and the fold is taken.
    let (failed, at) = open_in(c.store.repo().path(), &c_reader);
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(at, folded);
    // The older state, served again after the fold, lacks the state seen since.
    serve(first);
    let (failed, at) = fetch_and_open();
    assert_eq!(at, folded);
    assert!(
        failed.len() == 1 && failed[0].contains("lacks the state"),
        "{failed:?}"
    );
}

/// `doc/ENCRYPTION.md`, done again here with the primitives alone: HKDF-SHA256 for the keys,
/// the generation byte, the nonce, XChaCha20-Poly1305 with the kind as associated data, zlib
/// files, base32 names and base64 commits. If ferry's sealing ever drifts from the document, this fails.
#[test]
fn the_format_document_is_enough_to_open_a_sealed_branch() {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let (a, tip, key, sealed) = sealed_session(2);
    let repo = a.store.repo();

    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"ferry store v1"), key.bytes());
    let derive = |info: &str| {
        let mut k = [0u8; 32];
        hk.expand(info.as_bytes(), &mut k).unwrap();
        k
    };
    let open = |kind: &str, bytes: &[u8]| -> Vec<u8> {
        assert_eq!(bytes[0], 1, "version 1");
        let cipher =
            chacha20poly1305::XChaCha20Poly1305::new((&derive(&format!("{kind} cipher"))).into());
        cipher
            .decrypt(
                chacha20poly1305::XNonce::from_slice(&bytes[1..25]),
                Payload {
                    msg: &bytes[25..],
                    aad: kind.as_bytes(),
                },
            )
            .expect("opens as the document says")
    };
    let base32 = |text: &str| -> Vec<u8> {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let (mut acc, mut bits, mut out) = (0u64, 0, Vec::new());
        for c in text.bytes() {
            acc = (acc << 5) | alphabet.iter().position(|&a| a == c).unwrap() as u64;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    };

    // The commit: its message, base64, opens to the plain commit's exact bytes.
    let commit = repo.find_commit(sealed).unwrap();
    assert_eq!(commit.author().name().ok(), Some("ferry"));
    assert_eq!(commit.author().email().ok(), Some("ferry"));
    let message = commit.message().unwrap();
    let body = message
        .strip_prefix("ferry sealed commit\n\n")
        .unwrap()
        .trim();
    let raw = open(
        "commit",
        &base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap(),
    );
    assert_eq!(raw, repo.odb().unwrap().read(tip).unwrap().data());

    // The tree: every name opens, and a blob under the right name opens to the plain bytes.
    let plain_tree = repo.find_commit(tip).unwrap().tree().unwrap();
    let mut names = Vec::new();
    for e in commit.tree().unwrap().iter() {
        let name = String::from_utf8(open("name", &base32(e.name().unwrap()))).unwrap();
        let plain = plain_tree
            .get_name(&name)
            .expect("a plain entry of that name");
        if e.kind() == Some(git2::ObjectType::Blob) {
            let bytes = repo.find_blob(e.id()).unwrap().content().to_vec();
            let deflated = open("blob", &bytes);
            assert_eq!(bytes.len(), deflated.len() + 41);
            let mut inflated = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::ZlibDecoder::new(&deflated[..]),
                &mut inflated,
            )
            .unwrap();
            assert_eq!(inflated, repo.find_blob(plain.id()).unwrap().content());
        }
        names.push(name);
    }
    names.sort();
    let mut plain_names: Vec<String> = plain_tree
        .iter()
        .map(|e| e.name().unwrap().to_string())
        .collect();
    plain_names.sort();
    assert_eq!(names, plain_names);
}
