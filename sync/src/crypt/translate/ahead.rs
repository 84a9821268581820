//! Sealing and opening ahead, on every core. The files and names under a tree that have no twin
//! yet are found first, read in batches, and sealed or opened on every core; the walk that then
//! builds the tree's twin finds them done. A first push of an encrypted store and a new
//! machine's first transfer bring thousands of files, which one core did in as long as the
//! transfer took. What is done here the walk would have done, so what fails here fails the
//! same translation.

use super::{Translator, seal};
use crate::crypt::{CryptError, Keys};
use crate::parallel::map_on_cores;
use crate::store::{Body, object_id};
use git2::{ObjectType, Oid};
use std::collections::HashSet;

/// Bytes of files read for one batch: what is held at once, besides what was made of it.
const BATCH: usize = 8 << 20;

/// Names a thread takes at least: sealing or opening one costs 2 to 4 µs.
const NAMES_EACH: usize = 64;

/// Bytes of files a thread takes at least: some 100 µs of work (a 5 KB file opens in about
/// 10 µs, and seals in more).
const BYTES_EACH: usize = 64 << 10;

/// A sealed file opened: its plain blob's id and size, and the zlib stream it was sealed as.
pub(super) struct OpenedFile {
    id: Oid,
    len: u64,
    zlib: Vec<u8>,
}

/// A file sealed: its sealed blob's id and bytes.
pub(super) struct SealedFile {
    id: Oid,
    bytes: Vec<u8>,
}

/// Sealed file `sealed` opened, and its plain blob's id.
pub(super) fn open_file(keys: &Keys, sealed: &[u8]) -> Result<OpenedFile, CryptError> {
    let (zlib, bytes) = seal::open_file_deflated(keys, sealed)?;
    Ok(OpenedFile {
        id: object_id(ObjectType::Blob, &bytes),
        len: bytes.len() as u64,
        zlib,
    })
}

/// File `plain` sealed, and its sealed blob's id (never an error: a [`Translator::in_batches`]
/// step).
pub(super) fn seal_file(keys: &Keys, plain: &[u8]) -> Result<SealedFile, CryptError> {
    let bytes = seal::seal_file(keys, plain);
    Ok(SealedFile {
        id: object_id(ObjectType::Blob, &bytes),
        bytes,
    })
}

impl Translator<'_> {
    /// Opens, on every core, the files and names under sealed tree `top` not opened yet.
    pub(super) fn open_ahead(&mut self, top: Oid) -> Result<(), CryptError> {
        let (blobs, names) = self.unopened(top)?;
        let keys = &self.keys;
        let opened = map_on_cores(&names, NAMES_EACH, |n| seal::open_name(keys, n))?;
        self.names_opened.extend(names.into_iter().zip(opened));
        self.in_batches(blobs, open_file, Self::keep_opened)
    }

    /// Seals, on every core, the files and names under plain tree `top` not sealed yet.
    pub(super) fn seal_ahead(&mut self, top: Oid) -> Result<(), CryptError> {
        let (blobs, names) = self.unsealed(top)?;
        let keys = &self.keys;
        let sealed = map_on_cores(&names, NAMES_EACH, |n| {
            Ok::<_, CryptError>(seal::seal_name(keys, n))
        })?;
        self.names_sealed.extend(names.into_iter().zip(sealed));
        self.in_batches(blobs, seal_file, Self::keep_sealed)
    }

    /// The sealed blobs and names under sealed tree `top` with no plain twin here.
    pub(super) fn unopened(&self, top: Oid) -> Result<(Vec<Oid>, Vec<String>), CryptError> {
        self.not_done(top, Self::has_plain_twin, |t, n| {
            t.names_opened.contains_key(n)
        })
    }

    /// The plain blobs and names under plain tree `top` with no sealed twin here.
    pub(super) fn unsealed(&self, top: Oid) -> Result<(Vec<Oid>, Vec<String>), CryptError> {
        self.not_done(top, Self::has_sealed_twin, |t, n| {
            t.names_sealed.contains_key(n)
        })
    }

    /// Keeps `opened`, what sealed blob `sealed` opened to, as its plain twin.
    pub(super) fn keep_opened(
        &mut self,
        sealed: Oid,
        opened: OpenedFile,
    ) -> Result<Oid, CryptError> {
        // The file's zlib stream, as sealed, is what its pack entry holds: not deflated again.
        let OpenedFile { id, len, zlib } = opened;
        let plain = self.keep(
            id,
            ObjectType::Blob,
            zlib.len(),
            Body::Deflated { len, zlib },
        )?;
        self.blobs_done += 1;
        self.twins(plain, sealed);
        Ok(plain)
    }

    /// Keeps `sealed`, what blob `plain` sealed to, as its sealed twin.
    pub(super) fn keep_sealed(
        &mut self,
        plain: Oid,
        sealed: SealedFile,
    ) -> Result<Oid, CryptError> {
        let SealedFile { id, bytes } = sealed;
        let sealed = self.keep(id, ObjectType::Blob, bytes.len(), Body::Plain(bytes))?;
        self.blobs_done += 1;
        self.twins(plain, sealed);
        Ok(sealed)
    }

    /// Whether sealed object `sealed` has a plain twin remembered: a failed translation forgets
    /// the twins it did not write ([`Translator::discard`]), so this is one on disk but for one
    /// a compaction dropped, which the walk then makes again (looking on disk for each entry
    /// here too cost as much as the walk's own looks).
    fn has_plain_twin(&self, sealed: Oid) -> bool {
        self.opened.contains_key(&sealed)
    }

    /// Whether plain object `plain` has a sealed twin remembered (as [`Self::has_plain_twin`]).
    fn has_sealed_twin(&self, plain: Oid) -> bool {
        self.sealed.contains_key(&plain)
    }

    /// The blobs under tree `top` that are not `done`, and the names not `named`, each once, in
    /// no particular order; trees that are `done` are not looked into.
    fn not_done(
        &self,
        top: Oid,
        done: fn(&Self, Oid) -> bool,
        named: fn(&Self, &str) -> bool,
    ) -> Result<(Vec<Oid>, Vec<String>), CryptError> {
        let (mut blobs, mut names) = (Vec::new(), Vec::new());
        let (mut seen, mut seen_names) = (HashSet::new(), HashSet::new());
        let mut trees = vec![top];
        while let Some(id) = trees.pop() {
            if done(self, id) || !seen.insert(id) {
                continue;
            }
            for e in self.repo.find_tree(id)?.iter() {
                // A name that is not UTF-8 is left to the walk, which says so.
                if let Ok(name) = std::str::from_utf8(e.name_bytes())
                    && !named(self, name)
                    && seen_names.insert(name.to_owned())
                {
                    names.push(name.to_owned());
                }
                match e.kind() {
                    Some(ObjectType::Tree) => trees.push(e.id()),
                    Some(ObjectType::Blob) if !done(self, e.id()) && seen.insert(e.id()) => {
                        blobs.push(e.id())
                    }
                    _ => {}
                }
            }
        }
        Ok((blobs, names))
    }

    /// Reads blobs `ids` in batches of [`BATCH`] bytes (libgit2's repository is for one
    /// thread), makes of each, on every core, what `make` makes, and keeps each with `keep`.
    fn in_batches<R: Send>(
        &mut self,
        ids: Vec<Oid>,
        make: fn(&Keys, &[u8]) -> Result<R, CryptError>,
        keep: fn(&mut Self, Oid, R) -> Result<Oid, CryptError>,
    ) -> Result<(), CryptError> {
        let mut ids = ids.into_iter().peekable();
        while ids.peek().is_some() {
            let (mut batch, mut bytes) = (Vec::new(), 0);
            while bytes < BATCH
                && let Some(id) = ids.next()
            {
                let content = self.repo.find_blob(id)?.content().to_vec();
                bytes += content.len();
                batch.push((id, content));
            }
            let keys = &self.keys;
            // By bytes, and never more files than names: a file costs more than a name.
            let each = (BYTES_EACH / (bytes / batch.len()).max(1)).clamp(1, NAMES_EACH);
            let made = map_on_cores(&batch, each, |(_, content)| make(keys, content))?;
            for ((id, _), r) in batch.iter().zip(made) {
                keep(self, *id, r)?;
            }
        }
        Ok(())
    }
}
