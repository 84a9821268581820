//! Plain commits and trees to sealed ones and back, object by object.
//!
//! Every plain object has one sealed twin: a blob's bytes sealed, a tree with each name sealed
//! and each entry its twin, a commit whose tree and parents are twins and whose message carries
//! the plain commit sealed whole. Twins are remembered both ways, so sealing a new commit seals
//! only what it added (the chunks an append changed, and the trees above them), and opening a
//! fetched commit opens only what is new. Opening rebuilds the plain commit byte for byte, so it
//! has the very id it had on the machine that wrote it, and checks it: the plain tree it opens
//! must have the id the sealed commit names, and so must its parents.
//!
//! Objects are made here as bytes (git's own tree and commit formats) and kept until
//! [`Translator::write`] puts them on disk as one pack: libgit2's object writes looked for each
//! new object in every pack first, and re-read the pack directory on every miss.

mod ahead;

use super::seal::{self, Kind};
use super::{CryptError, Keys};
use crate::store::{Body, object_id};
use base64::Engine;
use git2::{ObjectType, Oid, Repository};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// The first line of a sealed commit's message; the sealed plain commit follows in base64.
const MESSAGE: &str = "ferry sealed commit";

/// The twins known so far, both ways, kept between translations (the engine keeps them for
/// its life).
#[derive(Default)]
pub struct Twins {
    /// Plain object to its sealed twin.
    sealed: HashMap<Oid, Oid>,
    /// Sealed object to its plain twin.
    opened: HashMap<Oid, Oid>,
    /// Sealed name to the plain name it opens to: a fetch opens again each entry of a tree
    /// that changed (the 1,000 sessions of a project, for one that did).
    names: HashMap<String, String>,
}

impl Twins {
    /// How many pairs it holds.
    pub fn len(&self) -> usize {
        self.sealed.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty()
    }

    /// Takes the pairs `other` knows too.
    pub fn absorb(&mut self, other: Twins) {
        self.sealed.extend(other.sealed);
        self.opened.extend(other.opened);
        self.names.extend(other.names);
    }
}

/// Bytes of made objects held before they are written out as a pack, whatever the
/// translation still has to do.
const WRITE_EVERY: usize = 64 << 20;

/// Seals and opens objects of one repository with one store's keys, remembering twins.
pub struct Translator<'r> {
    repo: &'r Repository,
    keys: Keys,
    sealed: HashMap<Oid, Oid>,
    opened: HashMap<Oid, Oid>,
    /// Objects made and not written yet, by id: their type and bytes.
    made: HashMap<Oid, (ObjectType, Body<Vec<u8>>)>,
    /// The bytes `made` holds.
    made_bytes: usize,
    /// How many blobs were sealed or opened (not found as twins): what a change cost.
    pub blobs_done: usize,
    /// Names sealed in this translation (every file's tree repeats the same few, `data` and
    /// `meta.json`): kept for no longer, since a new key seals them anew.
    names_sealed: HashMap<String, String>,
    /// Sealed names opened, kept with the twins: a sealed name opens only with the key of the
    /// generation it names, which never changes, so always to the same plain name.
    names_opened: HashMap<String, String>,
}

/// What [`Translator::open_commit`] made: the plain commit, those of its plain commits whose
/// parents are not here (a shallow fetch), which the caller records as shallow, and those that
/// were shallow and have their parents now (a deepening fetch).
pub struct Opened {
    /// The plain commit.
    pub commit: Oid,
    /// Plain commits opened without their parents.
    pub shallow: Vec<Oid>,
    /// Plain commits opened before without their parents, which have them now.
    pub deepened: Vec<Oid>,
}

impl<'r> Translator<'r> {
    /// A translator with nothing remembered yet.
    pub fn new(repo: &'r Repository, keys: Keys) -> Translator<'r> {
        Translator::with(repo, keys, Twins::default())
    }

    /// A translator that knows `twins` already.
    pub fn with(repo: &'r Repository, keys: Keys, twins: Twins) -> Translator<'r> {
        Translator {
            repo,
            keys,
            sealed: twins.sealed,
            opened: twins.opened,
            made: HashMap::new(),
            made_bytes: 0,
            blobs_done: 0,
            names_sealed: HashMap::new(),
            names_opened: twins.names,
        }
    }

    /// Writes the objects made so far as one pack, which the repository sees at once: what
    /// was sealed or opened is read from the repository only after this.
    pub fn write(&mut self) -> Result<(), CryptError> {
        if self.made.is_empty() {
            return Ok(());
        }
        let made = std::mem::take(&mut self.made);
        self.made_bytes = 0;
        let ids: Vec<Oid> = made.keys().copied().collect();
        crate::store::write_bodies(
            self.repo,
            made.into_iter().map(|(id, (k, d))| Ok((id, k, d))),
        )
        .map(drop)
        .map_err(|e| {
            self.forget(&ids);
            CryptError::Damaged(format!("writing what was translated: {e}"))
        })
    }

    /// Drops what was made and not written, and forgets the twins it was half of: after a
    /// failed translation the twins remembered are those on disk, and the next one works ahead
    /// on the rest again.
    pub fn discard(&mut self) {
        let made = std::mem::take(&mut self.made);
        self.made_bytes = 0;
        self.forget(&made.into_keys().collect::<Vec<_>>());
    }

    /// Forgets every pair one of `ids` is half of.
    fn forget(&mut self, ids: &[Oid]) {
        for id in ids {
            if let Some(s) = self.sealed.remove(id) {
                self.opened.remove(&s);
            }
            if let Some(p) = self.opened.remove(id) {
                self.sealed.remove(&p);
            }
        }
    }

    /// Keeps object `data` of type `kind` to be written; its id. Not looked for on disk (a
    /// look costs a file system call per object, and what is translated is new but for the
    /// rare object a twin was not remembered for, which a second copy in a pack costs nothing).
    fn put(&mut self, kind: ObjectType, data: Vec<u8>) -> Result<Oid, CryptError> {
        let id = object_id(kind, &data);
        self.keep(id, kind, data.len(), Body::Plain(data))
    }

    /// Keeps object `id` of type `kind` to be written, as `body` (of `size` bytes held).
    fn keep(
        &mut self,
        id: Oid,
        kind: ObjectType,
        size: usize,
        body: Body<Vec<u8>>,
    ) -> Result<Oid, CryptError> {
        if !self.made.contains_key(&id) {
            self.made_bytes += size;
            self.made.insert(id, (kind, body));
            if self.made_bytes > WRITE_EVERY {
                self.write()?;
            }
        }
        Ok(id)
    }

    /// Whether object `id` is here: made, or in the repository.
    fn here(&self, id: Oid) -> bool {
        self.made.contains_key(&id) || self.repo.odb().is_ok_and(|odb| odb.exists(id))
    }

    /// The bytes of object `id`, made or in the repository.
    fn raw(&self, id: Oid) -> Result<Cow<'_, [u8]>, CryptError> {
        match self.made.get(&id) {
            Some((_, Body::Plain(data))) => Ok(Cow::Borrowed(data)),
            // Only opened files come deflated, and only commits are read back.
            Some((_, Body::Deflated { .. })) | None => {
                Ok(Cow::Owned(self.repo.odb()?.read(id)?.data().to_vec()))
            }
        }
    }

    /// The twins it knows now, to keep for the next translation.
    pub fn into_twins(self) -> Twins {
        Twins {
            sealed: self.sealed,
            opened: self.opened,
            names: self.names_opened,
        }
    }

    /// Whether `sealed` is known as the twin of `plain` already.
    pub fn knows(&self, plain: Oid, sealed: Oid) -> bool {
        self.sealed.get(&plain) == Some(&sealed)
    }

    fn twins(&mut self, plain: Oid, sealed: Oid) {
        self.sealed.insert(plain, sealed);
        self.opened.insert(sealed, plain);
    }

    /// Remembers that `sealed` is `plain`'s twin, and so is every object of its tree, by
    /// walking both trees side by side: names only, no blob read. After a restart this keeps
    /// the next seal or open to what changed.
    pub fn learn(&mut self, plain: Oid, sealed: Oid) -> Result<(), CryptError> {
        let (p, s) = (
            self.repo.find_commit(plain)?,
            self.repo.find_commit(sealed)?,
        );
        // Only a true pair: the refs it comes from are written one after the other, and a
        // crash between them must not pair a new plain commit with an old sealed one.
        let carried = self.plain_commit_of(&s)?;
        if object_id(ObjectType::Commit, &carried) != plain {
            return Err(CryptError::Damaged(format!(
                "sealed commit {sealed} is not the twin of {plain}"
            )));
        }
        self.twins(plain, sealed);
        self.learn_tree(p.tree_id(), s.tree_id())
    }

    fn learn_tree(&mut self, plain: Oid, sealed: Oid) -> Result<(), CryptError> {
        if self.sealed.get(&plain) == Some(&sealed) {
            return Ok(());
        }
        let (p, s) = (self.repo.find_tree(plain)?, self.repo.find_tree(sealed)?);
        if p.len() != s.len() {
            return Err(CryptError::Damaged(
                "a sealed tree has other entries than its plain twin".into(),
            ));
        }
        self.twins(plain, sealed);
        // Names are opened, not sealed again: each opens with the key that sealed it, whatever
        // key seals now.
        for e in s.iter() {
            let sealed_name = std::str::from_utf8(e.name_bytes())
                .map_err(|_| CryptError::Damaged("a sealed name is not ASCII".into()))?;
            let name = self.open_name(sealed_name)?;
            let Some(twin) = p.get_name(&name) else {
                return Err(CryptError::Damaged(format!(
                    "the plain tree lacks the twin of {name:?}"
                )));
            };
            match twin.kind() {
                Some(ObjectType::Tree) => self.learn_tree(twin.id(), e.id())?,
                _ => self.twins(twin.id(), e.id()),
            }
        }
        Ok(())
    }

    /// The sealed twin remembered for `plain`, if it is still here (a compaction may have
    /// dropped what a fold left unreachable).
    fn known_twin(&self, plain: Oid) -> Option<Oid> {
        let s = *self.sealed.get(&plain)?;
        self.here(s).then_some(s)
    }

    /// The plain twin remembered for `sealed`, if it is still here (what a failed translation
    /// wrote is dropped with it).
    fn known_plain(&self, sealed: Oid) -> Option<Oid> {
        let p = *self.opened.get(&sealed)?;
        self.here(p).then_some(p)
    }

    /// The sealed twin of blob `plain`.
    fn seal_blob(&mut self, plain: Oid) -> Result<Oid, CryptError> {
        if let Some(s) = self.known_twin(plain) {
            return Ok(s);
        }
        let blob = self.repo.find_blob(plain)?;
        let sealed = ahead::seal_file(&self.keys, blob.content())?;
        self.keep_sealed(plain, sealed)
    }

    /// The sealed twin of tree `plain`: what it holds is sealed ahead on every core, then the
    /// tree is walked.
    pub fn seal_tree(&mut self, plain: Oid) -> Result<Oid, CryptError> {
        if self.known_twin(plain).is_none() {
            self.seal_ahead(plain)?;
        }
        self.seal_tree_walked(plain)
    }

    /// The sealed twin of tree `plain`, entry by entry: names sealed, entries their twins.
    fn seal_tree_walked(&mut self, plain: Oid) -> Result<Oid, CryptError> {
        if let Some(s) = self.known_twin(plain) {
            return Ok(s);
        }
        let tree = self.repo.find_tree(plain)?;
        let mut entries = Vec::with_capacity(tree.len());
        for e in tree.iter() {
            let name = std::str::from_utf8(e.name_bytes()).map_err(|_| {
                CryptError::Damaged("a name in this machine's branch is not UTF-8".into())
            })?;
            let twin = match e.kind() {
                Some(ObjectType::Tree) => self.seal_tree_walked(e.id())?,
                Some(ObjectType::Blob) => self.seal_blob(e.id())?,
                _ => {
                    return Err(CryptError::Damaged(format!(
                        "{name:?} in this machine's branch is neither a file nor a directory"
                    )));
                }
            };
            entries.push(Entry {
                name: self.seal_name(name).into_bytes(),
                mode: e.filemode(),
                id: twin,
            });
        }
        let sealed = self.put(ObjectType::Tree, tree_bytes(entries)?)?;
        self.twins(plain, sealed);
        Ok(sealed)
    }

    /// Name `plain` sealed.
    fn seal_name(&mut self, plain: &str) -> String {
        if let Some(s) = self.names_sealed.get(plain) {
            return s.clone();
        }
        let sealed = seal::seal_name(&self.keys, plain);
        self.names_sealed.insert(plain.to_owned(), sealed.clone());
        sealed
    }

    /// Sealed name `sealed` opened.
    fn open_name(&mut self, sealed: &str) -> Result<String, CryptError> {
        if let Some(p) = self.names_opened.get(sealed) {
            return Ok(p.clone());
        }
        let plain = seal::open_name(&self.keys, sealed)?;
        self.names_opened.insert(sealed.to_owned(), plain.clone());
        Ok(plain)
    }

    /// The sealed twin of commit `plain`, its ancestors sealed first.
    pub fn seal_commit(&mut self, plain: Oid) -> Result<Oid, CryptError> {
        // Depth first without recursion: a branch's history may be thousands of commits long.
        let mut stack = vec![plain];
        while let Some(&top) = stack.last() {
            if self.known_twin(top).is_some() {
                stack.pop();
                continue;
            }
            let commit = self.repo.find_commit(top)?;
            let waiting: Vec<Oid> = commit
                .parent_ids()
                .filter(|p| self.known_twin(*p).is_none())
                .collect();
            if !waiting.is_empty() {
                stack.extend(waiting);
                continue;
            }
            stack.pop();
            let raw = self.repo.odb()?.read(top)?.data().to_vec();
            let tree = self.seal_tree(commit.tree_id())?;
            let parents: Vec<Oid> = commit.parent_ids().map(|p| self.sealed[&p]).collect();
            let body = base64::engine::general_purpose::STANDARD.encode(seal::seal(
                &self.keys,
                Kind::Commit,
                &raw,
            ));
            let message = format!("{MESSAGE}\n\n{body}\n");
            let bytes = commit_bytes(tree, &parents, commit.time().seconds(), &message);
            let sealed = self.put(ObjectType::Commit, bytes)?;
            self.twins(top, sealed);
        }
        Ok(self.sealed[&plain])
    }

    /// The plain twin of sealed blob `sealed`.
    fn open_blob(&mut self, sealed: Oid) -> Result<Oid, CryptError> {
        if let Some(p) = self.known_plain(sealed) {
            return Ok(p);
        }
        let blob = self.repo.find_blob(sealed)?;
        let opened = ahead::open_file(&self.keys, blob.content())?;
        self.keep_opened(sealed, opened)
    }

    /// The plain twin of sealed tree `sealed`: what it holds is opened ahead on every core,
    /// then the tree is walked.
    pub fn open_tree(&mut self, sealed: Oid) -> Result<Oid, CryptError> {
        if self.known_plain(sealed).is_none() {
            self.open_ahead(sealed)?;
        }
        self.open_tree_walked(sealed)
    }

    /// The plain twin of sealed tree `sealed`, entry by entry.
    fn open_tree_walked(&mut self, sealed: Oid) -> Result<Oid, CryptError> {
        if let Some(p) = self.known_plain(sealed) {
            return Ok(p);
        }
        let tree = self.repo.find_tree(sealed)?;
        let mut entries = Vec::with_capacity(tree.len());
        for e in tree.iter() {
            let name = std::str::from_utf8(e.name_bytes())
                .map_err(|_| CryptError::Damaged("a sealed name is not ASCII".into()))?;
            let plain_name = self.open_name(name)?;
            let twin = match e.kind() {
                Some(ObjectType::Tree) => self.open_tree_walked(e.id())?,
                Some(ObjectType::Blob) => self.open_blob(e.id())?,
                _ => {
                    return Err(CryptError::Damaged(
                        "a sealed tree holds something that is neither a file nor a directory"
                            .into(),
                    ));
                }
            };
            entries.push(Entry {
                name: plain_name.into_bytes(),
                mode: e.filemode(),
                id: twin,
            });
        }
        let plain = self.put(ObjectType::Tree, tree_bytes(entries)?)?;
        self.twins(plain, sealed);
        Ok(plain)
    }

    /// The plain twin of sealed commit `sealed`, with the sealed ancestors that are here opened
    /// first: those a deepening fetch brought too, below commits opened before without their
    /// parents. Fails when anything does not open, or opens to other ids than the commit says.
    pub fn open_commit(&mut self, sealed: Oid) -> Result<Opened, CryptError> {
        self.open_history(sealed, false)
    }

    /// [`Translator::open_commit`]; with `whole`, every sealed ancestor here is looked at, not
    /// only those below the commits opened without their parents (after a deepening fetch).
    pub fn open_history(&mut self, sealed: Oid, whole: bool) -> Result<Opened, CryptError> {
        let odb = self.repo.odb()?;
        let mut shallow = Vec::new();
        let mut deepened = Vec::new();
        let mut revisited: HashSet<Oid> = HashSet::new();
        let mut reopen: HashSet<Oid> = HashSet::new();
        let mut stack = vec![sealed];
        while let Some(&top) = stack.last() {
            // Parents as the object names them (a shallow list must not hide them here).
            let (_, sealed_parents) = header(odb.read(top)?.data())?;
            let here: Vec<Oid> = sealed_parents
                .iter()
                .copied()
                .filter(|p| odb.exists(*p))
                .collect();
            // A commit opened before is done, unless it lacked its parents and some are here
            // now; it is looked at once.
            if let Some(plain) = self.known_plain(top)
                && !reopen.contains(&top)
            {
                let first_look = revisited.insert(top);
                if !first_look || here.is_empty() {
                    stack.pop();
                    continue;
                }
                if self.complete(plain)? {
                    stack.pop();
                    if whole {
                        // Older commits may lack their parents, further down.
                        stack.extend(here.iter().copied().filter(|p| !revisited.contains(p)));
                    }
                    continue;
                }
                reopen.insert(top);
            }
            let waiting: Vec<Oid> = here
                .iter()
                .copied()
                .filter(|p| {
                    self.known_plain(*p).is_none()
                        || (!revisited.contains(p) && self.shallow_twin(*p))
                })
                .collect();
            if !waiting.is_empty() {
                stack.extend(waiting);
                continue;
            }
            stack.pop();
            let commit = self.repo.find_commit(top)?;
            let raw = self.plain_commit_of(&commit)?;
            let (tree, parents) = header(&raw)?;
            if self.open_tree(commit.tree_id())? != tree {
                return Err(CryptError::Damaged(format!(
                    "sealed commit {top} opens to another tree than it names"
                )));
            }
            if parents.len() != sealed_parents.len() {
                return Err(CryptError::Damaged(format!(
                    "sealed commit {top} has other parents than it names"
                )));
            }
            for (sealed_parent, named) in sealed_parents.iter().zip(&parents) {
                if let Some(opened) = self.opened.get(sealed_parent)
                    && opened != named
                {
                    return Err(CryptError::Damaged(format!(
                        "sealed commit {top} has other parents than it names"
                    )));
                }
            }
            let plain = self.put(ObjectType::Commit, raw)?;
            let reopened = reopen.remove(&top);
            if here.len() < parents.len() {
                shallow.push(plain);
            } else if reopened {
                deepened.push(plain);
            }
            self.twins(plain, top);
        }
        Ok(Opened {
            commit: self.opened[&sealed],
            shallow,
            deepened,
        })
    }

    /// Whether sealed commit `sealed` was opened to a plain commit whose parents are not here.
    fn shallow_twin(&self, sealed: Oid) -> bool {
        self.opened
            .get(&sealed)
            .is_some_and(|&p| !self.complete(p).unwrap_or(true))
    }

    /// Whether every parent plain commit `plain` names is here.
    fn complete(&self, plain: Oid) -> Result<bool, CryptError> {
        let (_, parents) = header(&self.raw(plain)?)?;
        Ok(parents.iter().all(|p| self.here(*p)))
    }

    /// The plain commit's bytes a sealed commit carries.
    fn plain_commit_of(&self, commit: &git2::Commit<'_>) -> Result<Vec<u8>, CryptError> {
        let not_sealed = || {
            CryptError::Damaged(format!(
                "commit {} is not a sealed ferry commit (a plain store's, or damaged)",
                commit.id()
            ))
        };
        let message = commit.message_bytes();
        let body = message
            .strip_prefix(MESSAGE.as_bytes())
            .ok_or_else(not_sealed)?;
        let body: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| not_sealed())?;
        seal::open(&self.keys, Kind::Commit, &sealed)
    }
}

/// Whether every parent commit `commit` names (as written, whatever the shallow list says) is in
/// `repo`.
pub fn parents_here(repo: &Repository, commit: Oid) -> Result<bool, CryptError> {
    let odb = repo.odb()?;
    let (_, parents) = header(odb.read(commit)?.data())?;
    Ok(parents.iter().all(|p| odb.exists(*p)))
}

/// The tree and parents a raw commit object names (its header, up to the first empty line).
fn header(raw: &[u8]) -> Result<(Oid, Vec<Oid>), CryptError> {
    let bad = || CryptError::Damaged("a sealed commit holds no commit".into());
    let oid = |hex: &[u8]| {
        std::str::from_utf8(hex)
            .ok()
            .and_then(|h| Oid::from_str(h).ok())
            .ok_or_else(bad)
    };
    let mut tree = None;
    let mut parents = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(t) = line.strip_prefix(b"tree ") {
            tree = Some(oid(t)?);
        } else if let Some(p) = line.strip_prefix(b"parent ") {
            parents.push(oid(p)?);
        }
    }
    Ok((tree.ok_or_else(bad)?, parents))
}

/// One entry of a tree being made.
struct Entry {
    name: Vec<u8>,
    mode: i32,
    id: Oid,
}

/// A tree object's bytes, as git writes them: entries in git's order (a directory's name
/// compares as if it ended in `/`), each its mode in octal, its name and its id. A name that no
/// tree may hold (empty, `.`, `..`, `.git`, with `/` or NUL, or twice) or a mode other than a
/// directory's or a file's is refused.
fn tree_bytes(mut entries: Vec<Entry>) -> Result<Vec<u8>, CryptError> {
    const TREE: i32 = 0o40000;
    for e in &entries {
        let bad_name = e.name.is_empty()
            || e.name == b"."
            || e.name == b".."
            || e.name.eq_ignore_ascii_case(b".git")
            || e.name.iter().any(|&b| b == b'/' || b == 0);
        if bad_name || ![TREE, 0o100644, 0o100755].contains(&e.mode) {
            return Err(CryptError::Damaged(format!(
                "a tree entry no tree may hold: {:?}, mode {:o}",
                String::from_utf8_lossy(&e.name),
                e.mode
            )));
        }
    }
    let key = |e: &Entry| {
        let mut k = e.name.clone();
        if e.mode == TREE {
            k.push(b'/');
        }
        k
    };
    // A file and a directory of one name sort apart (`a`, `a.b`, `a/`): looked for by name.
    let mut names = HashSet::with_capacity(entries.len());
    if let Some(e) = entries.iter().find(|e| !names.insert(e.name.as_slice())) {
        return Err(CryptError::Damaged(format!(
            "a tree names {:?} twice",
            String::from_utf8_lossy(&e.name)
        )));
    }
    entries.sort_by_cached_key(key);
    let mut out = Vec::with_capacity(entries.len() * 60);
    for e in &entries {
        out.extend_from_slice(format!("{:o} ", e.mode).as_bytes());
        out.extend_from_slice(&e.name);
        out.push(0);
        out.extend_from_slice(e.id.as_bytes());
    }
    Ok(out)
}

/// A sealed commit's bytes, as git writes them: `tree`, `parents`, author and committer
/// `ferry <ferry>` at `seconds` in UTC (only the time shows: no name, no address, no time
/// zone), and `message`.
fn commit_bytes(tree: Oid, parents: &[Oid], seconds: i64, message: &str) -> Vec<u8> {
    let mut s = format!("tree {tree}\n");
    for p in parents {
        s += &format!("parent {p}\n");
    }
    s += &format!(
        "author ferry <ferry> {seconds} +0000\ncommitter ferry <ferry> {seconds} +0000\n\n{message}"
    );
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trees and commits made here are git's own, byte for byte: the very ids libgit2 gives.
    #[test]
    fn trees_and_commits_are_made_as_git_makes_them() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"x").unwrap();
        let sub = {
            let mut b = repo.treebuilder(None).unwrap();
            b.insert("f", blob, 0o100644).unwrap();
            b.write().unwrap()
        };
        // `a.b` sorts before `a/` but after the directory `a` read as `a`: git's order.
        let names = [
            ("a.b", blob, 0o100644),
            ("a", sub, 0o40000),
            ("a-c", blob, 0o100755),
            ("Z", blob, 0o100644),
        ];
        let mut b = repo.treebuilder(None).unwrap();
        for (n, id, mode) in names {
            b.insert(n, id, mode).unwrap();
        }
        let theirs = b.write().unwrap();
        let ours = tree_bytes(
            names
                .iter()
                .map(|(n, id, mode)| Entry {
                    name: n.as_bytes().to_vec(),
                    mode: *mode,
                    id: *id,
                })
                .collect(),
        )
        .unwrap();
        assert_eq!(Oid::hash_object(ObjectType::Tree, &ours).unwrap(), theirs);

        let tree = repo.find_tree(theirs).unwrap();
        let sig =
            git2::Signature::new("ferry", "ferry", &git2::Time::new(1_700_000_000, 0)).unwrap();
        let first = repo.commit(None, &sig, &sig, "m\n", &tree, &[]).unwrap();
        let parent = repo.find_commit(first).unwrap();
        let second = repo
            .commit(
                None,
                &sig,
                &sig,
                "ferry sealed commit\n\nAAAA\n",
                &tree,
                &[&parent],
            )
            .unwrap();
        let ours = commit_bytes(
            theirs,
            &[first],
            1_700_000_000,
            "ferry sealed commit\n\nAAAA\n",
        );
        assert_eq!(Oid::hash_object(ObjectType::Commit, &ours).unwrap(), second);

        for bad in ["", ".", "..", ".GIT", "a/b", "a\0b"] {
            let e = Entry {
                name: bad.as_bytes().to_vec(),
                mode: 0o100644,
                id: blob,
            };
            assert!(tree_bytes(vec![e]).is_err(), "{bad:?}");
        }
        let twice = (0..2)
            .map(|_| Entry {
                name: b"f".to_vec(),
                mode: 0o100644,
                id: blob,
            })
            .collect();
        assert!(tree_bytes(twice).is_err());
        // A file and a directory of one name, with a name between them in git's order.
        let apart = vec![
            Entry {
                name: b"a".to_vec(),
                mode: 0o100644,
                id: blob,
            },
            Entry {
                name: b"a.b".to_vec(),
                mode: 0o100644,
                id: blob,
            },
            Entry {
                name: b"a".to_vec(),
                mode: 0o40000,
                id: sub,
            },
        ];
        assert!(tree_bytes(apart).is_err());
    }

    /// A tree of `files` (name, bytes) under directory `dir`, in `repo`.
    fn tree_of(repo: &Repository, dir: &str, files: &[(String, Vec<u8>)]) -> Oid {
        let mut sub = repo.treebuilder(None).unwrap();
        for (name, bytes) in files {
            sub.insert(name, repo.blob(bytes).unwrap(), 0o100644)
                .unwrap();
        }
        let sub = sub.write().unwrap();
        let mut top = repo.treebuilder(None).unwrap();
        top.insert(dir, sub, 0o40000).unwrap();
        top.write().unwrap()
    }

    /// What a fetch brought is opened ahead, all of it and only it: after one file changed,
    /// one file is opened and no name, and the walk that follows opens nothing more. Sealing
    /// ahead does the same for a push.
    #[test]
    fn working_ahead_takes_what_is_new_and_leaves_the_walk_nothing() {
        // Enough files for more than one thread.
        const N: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let keys = super::super::StoreKeys::new(super::super::StoreKey::generate());
        let mut files: Vec<(String, Vec<u8>)> = (0..N)
            .map(|i| {
                (
                    format!("s{i}.jsonl"),
                    format!("{{\"n\":{i}}}\n").repeat(i + 1).into_bytes(),
                )
            })
            .collect();
        let first = tree_of(&repo, "proj", &files);
        files[7].1.extend_from_slice(b"{\"n\":\"more\"}\n");
        let second = tree_of(&repo, "proj", &files);

        let mut sealer = Translator::new(&repo, keys.keys());
        let counts = |(b, n): (Vec<Oid>, Vec<String>)| (b.len(), n.len());
        assert_eq!(counts(sealer.unsealed(first).unwrap()), (N, N + 1));
        sealer.seal_ahead(first).unwrap();
        assert_eq!(sealer.blobs_done, N);
        let sealed_first = sealer.seal_tree(first).unwrap();
        assert_eq!(sealer.blobs_done, N, "the walk sealed a file again");
        assert_eq!(counts(sealer.unsealed(second).unwrap()), (1, 0));
        let sealed_second = sealer.seal_tree(second).unwrap();
        assert_eq!(sealer.blobs_done, N + 1);
        sealer.write().unwrap();
        // Sealing is deterministic: file by file, with no work ahead, gives the same tree.
        let mut one_by_one = Translator::new(&repo, keys.keys());
        assert_eq!(one_by_one.seal_tree_walked(second).unwrap(), sealed_second);
        assert_eq!(one_by_one.blobs_done, N);

        let mut opener = Translator::new(&repo, keys.keys());
        assert_eq!(counts(opener.unopened(sealed_first).unwrap()), (N, N + 1));
        opener.open_ahead(sealed_first).unwrap();
        assert_eq!(opener.blobs_done, N);
        assert_eq!(opener.open_tree(sealed_first).unwrap(), first);
        assert_eq!(opener.blobs_done, N, "the walk opened a file again");

        assert_eq!(counts(opener.unopened(sealed_second).unwrap()), (1, 0));
        assert_eq!(opener.open_tree(sealed_second).unwrap(), second);
        assert_eq!(opener.blobs_done, N + 1);
        opener.write().unwrap();
        let changed = repo.find_tree(second).unwrap();
        let changed = repo
            .find_tree(changed.get_name("proj").unwrap().id())
            .unwrap();
        let blob = repo
            .find_blob(changed.get_name("s7.jsonl").unwrap().id())
            .unwrap();
        assert_eq!(blob.content(), &files[7].1[..]);
    }

    /// A translation that fails forgets the twins of what it did not write: the next one finds
    /// them new, works ahead on them again, and makes the same objects.
    #[test]
    fn what_a_failed_translation_did_not_write_is_new_again() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let keys = super::super::StoreKeys::new(super::super::StoreKey::generate());
        let files: Vec<(String, Vec<u8>)> = (0..200)
            .map(|i| (format!("s{i}.jsonl"), format!("line {i}\n").into_bytes()))
            .collect();
        let plain = tree_of(&repo, "proj", &files);
        let mut t = Translator::new(&repo, keys.keys());
        let sealed = t.seal_tree(plain).unwrap();
        assert!(t.knows(plain, sealed));
        t.discard();
        assert!(!t.knows(plain, sealed));
        assert_eq!(t.unsealed(plain).unwrap().0.len(), 200);
        assert_eq!(t.seal_tree(plain).unwrap(), sealed);
        t.write().unwrap();
        assert!(repo.find_tree(sealed).is_ok());
    }
}
