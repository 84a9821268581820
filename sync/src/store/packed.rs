//! Committing many batches as packs (issue 22, item 3): a first import of 10,000 sessions wrote
//! about 50,000 loose object files, one inode each, which the import, the push and every later
//! object lookup paid for. Here the commits' objects are kept in memory and written as a pack
//! (one per [`PACK_EVERY`] bytes of input), and the branch moves only once the packs are in
//! place: a crash part-way leaves the branch where it was, pointing at nothing missing.
//!
//! The pack is written here, each object deflated on its own as a loose object would be (one
//! under 2 KB stored as it is), and so is its index: libgit2's pack builder searches for deltas
//! between every pair of nearby objects, which made an import of five 40 MB transcripts take
//! 55 s instead of 6 s, its dump of a memory store packs each commit's whole tree again, what the
//! disk already has included, and its indexer inflates and hashes every object again.

use super::write::Batch;
use super::{MachineRecord, Store, StoreError, own_ref};
use git2::{ObjectType, Oid};
use sha1::{Digest, Sha1};
use std::collections::HashSet;
use std::io::Write;

/// Most bytes of input committed in memory before they are written out as a pack (a batch
/// larger than this is written alone): the memory store holds objects uncompressed, so this
/// and the trees its commits rewrote bound what an import holds.
const PACK_EVERY: u64 = 16 << 20;

impl Store {
    /// Commits `batches` one after another on `machine`'s branch, as [`Store::commit`] would,
    /// writing their objects as packs rather than loose files. `sizes` gives each batch's input
    /// bytes (for [`PACK_EVERY`]) and `done` is called after each batch is committed in memory.
    /// Returns the branch's new tip, or `None` when nothing changed.
    ///
    /// The packs written before the branch moves hold objects nothing reaches yet, and
    /// [`Store::compact`] removes every pack but its own: the caller must keep compaction out
    /// meanwhile (`ferry init` holds the store's lock, which keeps the daemon out).
    pub fn commit_packed(
        &self,
        machine: &MachineRecord,
        batches: &[Batch],
        size: impl Fn(&Batch) -> u64,
        mut done: impl FnMut(&Batch),
    ) -> Result<Option<Oid>, StoreError> {
        let staged = self.staged()?;
        let odb = staged.repo.odb()?;
        // Above the loose and pack backends: every object written goes to memory first.
        let memory = odb.add_new_mempack_backend(1000)?;
        // What the disk has, seen without the memory store, and as the staged store sees it:
        // its packs one by one, and loose objects only if it has some (each object the import
        // writes is looked for in it, one system call each in the loose objects).
        let disk = super::staged_odb::open(&self.repo.path().join("objects"))?;
        let refname = own_ref(&machine.id);
        let start = staged.tip(&refname)?;
        let mut tip = start;
        // Input bytes committed since the last pack, and whether any commit was.
        let (mut held, mut written) = (0u64, false);
        let result = (|| {
            for batch in batches {
                let bytes = size(batch);
                if let Some(tip) = tip.filter(|_| written && held + bytes > PACK_EVERY) {
                    let idx = write_pack(&staged.repo, &disk, tip)?;
                    super::staged_odb::add_pack(&disk, &idx)?;
                    memory.reset()?;
                    (held, written) = (0, false);
                }
                if let Some(id) = staged.commit_onto(machine, batch, tip)? {
                    tip = Some(id);
                    written = true;
                }
                held += bytes;
                done(batch);
            }
            if let Some(tip) = tip.filter(|_| written) {
                write_pack(&staged.repo, &disk, tip)?;
                memory.reset()?;
            }
            Ok::<(), StoreError>(())
        })();
        self.findings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(staged.take_findings());
        result?;
        match tip {
            Some(id) if tip != start => {
                self.move_branch(&refname, start, id)?;
                Ok(Some(id))
            }
            _ => Ok(None),
        }
    }
}

impl Store {
    /// This store opened a second time, for staging objects in a memory backend: one added to
    /// an object database stays for as long as the repository is open, and this one's later
    /// commits must reach the disk. Its object database holds the store's packs one by one
    /// (see [`super::staged_odb`]), so [`write_pack`] adds each pack it writes to it.
    pub(crate) fn staged(&self) -> Result<Store, StoreError> {
        let repo = git2::Repository::open_bare(self.repo.path())?;
        repo.set_odb(&super::staged_odb::open(&self.repo.path().join("objects"))?)?;
        Ok(Store {
            repo,
            secrets: self.secrets,
            scan: self.scan,
            findings: std::sync::Mutex::new(Vec::new()),
            run: self.run.clone(),
            clock: self.clock.clone(),
        })
    }
}

/// The objects `tip` and its ancestors hold that `disk` has not: walked down from `tip`,
/// stopping at any object the disk has (it has all that one holds).
fn added(
    repo: &git2::Repository,
    disk: &git2::Odb<'_>,
    tips: &[Oid],
) -> Result<Vec<Oid>, StoreError> {
    let on_disk = |id: Oid| disk.exists_ext(id, git2::OdbLookupFlags::NO_REFRESH);
    let (mut out, mut seen) = (Vec::new(), HashSet::new());
    let (mut commits, mut trees) = (tips.to_vec(), Vec::new());
    while let Some(id) = commits.pop() {
        if !seen.insert(id) || on_disk(id) {
            continue;
        }
        // A parent that is nowhere: a commit opened from a shallow fetch.
        let Ok(commit) = repo.find_commit(id) else {
            continue;
        };
        out.push(id);
        commits.extend(commit.parent_ids());
        trees.push(commit.tree_id());
    }
    while let Some(id) = trees.pop() {
        if !seen.insert(id) || on_disk(id) {
            continue;
        }
        out.push(id);
        for entry in repo.find_tree(id)?.iter() {
            match entry.kind() {
                Some(ObjectType::Tree) => trees.push(entry.id()),
                Some(ObjectType::Blob) if seen.insert(entry.id()) && !on_disk(entry.id()) => {
                    out.push(entry.id())
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Writes the objects `tip` added to what `disk` has as one pack in `objects/pack`, each
/// object deflated on its own, and adds it to `repo`'s object database (a staged store's);
/// returns where its index is, for a `disk` that does not read the pack directory.
pub(crate) fn write_pack(
    repo: &git2::Repository,
    disk: &git2::Odb<'_>,
    tip: Oid,
) -> Result<std::path::PathBuf, StoreError> {
    let idx = write_pack_of(repo, disk, &[tip])?;
    super::staged_odb::add_pack(&repo.odb()?, &idx)?;
    Ok(idx)
}

/// [`write_pack`] for the objects of several commits.
pub(crate) fn write_pack_of(
    repo: &git2::Repository,
    disk: &git2::Odb<'_>,
    tips: &[Oid],
) -> Result<std::path::PathBuf, StoreError> {
    let ids = added(repo, disk, tips)?;
    let odb = repo.odb()?;
    let objects = ids
        .into_iter()
        .map(|id| odb.read(id).map(|o| (id, o.kind(), Read(o))));
    let idx = write_objects(repo, objects)?;
    // Later walks see this pack as the disk's.
    disk.refresh()?;
    Ok(idx)
}

/// An object read from the database, as the bytes a pack takes.
struct Read<'a>(git2::OdbObject<'a>);

impl AsRef<[u8]> for Read<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0.data()
    }
}

/// Writes `objects` (each its id, type and bytes; no id twice) as one pack in `objects/pack`,
/// each object deflated on its own, with its index (version 2) made here from the ids, offsets
/// and CRCs already known: libgit2's indexer inflated and hashed every object again and
/// unmapped the pack after each one, three quarters of the cost. The pack is renamed into
/// place before its index, and the repository's object database sees both at once. Returns
/// where the index is.
pub(crate) fn write_objects<D: AsRef<[u8]>>(
    repo: &git2::Repository,
    objects: impl ExactSizeIterator<Item = Result<(Oid, ObjectType, D), git2::Error>>,
) -> Result<std::path::PathBuf, StoreError> {
    write_bodies(
        repo,
        objects.map(|o| o.map(|(id, kind, data)| (id, kind, Body::Plain(data)))),
    )
}

/// An object's bytes as a pack entry is made from them.
pub(crate) enum Body<D> {
    /// The bytes, which the pack deflates.
    Plain(D),
    /// A zlib stream (RFC 1950) made before, which inflates to `len` bytes: a sealed file
    /// carries one, which is then written as it is instead of deflated again.
    Deflated {
        /// The bytes the stream inflates to.
        len: u64,
        /// The stream, whole: it ends where the entry does.
        zlib: Vec<u8>,
    },
}

/// [`write_objects`] for objects some of which come deflated already.
pub(crate) fn write_bodies<D: AsRef<[u8]>>(
    repo: &git2::Repository,
    objects: impl ExactSizeIterator<Item = Result<(Oid, ObjectType, Body<D>), git2::Error>>,
) -> Result<std::path::PathBuf, StoreError> {
    let pack_dir = repo.path().join("objects/pack");
    let io = |e: std::io::Error| StoreError::io(&pack_dir, e);
    let stem = format!(
        "{TMP_PREFIX}{}_{}",
        std::process::id(),
        NEXT_PACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let tmp_pack = pack_dir.join(format!("{stem}_pack"));
    let tmp_idx = pack_dir.join(format!("{stem}_idx"));
    let written = (|| {
        let file = std::fs::File::create(&tmp_pack).map_err(io)?;
        let mut out = Counted {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            sha: Sha1::new(),
            crc: crc32fast::Hasher::new(),
            at: 0,
        };
        out.write_all(b"PACK").map_err(io)?;
        out.write_all(&2u32.to_be_bytes()).map_err(io)?;
        let count = u32::try_from(objects.len()).map_err(|_| StoreError::BadPath("pack".into()))?;
        out.write_all(&count.to_be_bytes()).map_err(io)?;
        let mut entries = Vec::with_capacity(objects.len());
        // Read in batches (libgit2's objects are for this thread), deflated on every core,
        // written in order.
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut objects = objects.peekable();
        while let Some(object) = objects.next() {
            let (id, kind, body) = object?;
            bytes += match &body {
                Body::Plain(data) => data.as_ref().len(),
                Body::Deflated { zlib, .. } => zlib.len(),
            };
            batch.push((id, kind, body));
            if bytes < DEFLATE_BATCH && objects.peek().is_some() {
                continue;
            }
            let plain: Vec<&[u8]> = batch
                .iter()
                .filter_map(|(_, _, b)| match b {
                    Body::Plain(data) => Some(data.as_ref()),
                    Body::Deflated { .. } => None,
                })
                .collect();
            let each = (DEFLATE_EACH / (bytes / batch.len()).max(1)).clamp(1, 64);
            let mut deflated =
                crate::parallel::map_on_cores(&plain, each, |d| Ok::<_, Never>(deflated(d)))
                    .unwrap_or_else(|never| match never {})
                    .into_iter();
            for (id, kind, body) in batch.drain(..) {
                let at = out.at;
                out.crc = crc32fast::Hasher::new();
                let (len, zlib) = match body {
                    Body::Plain(data) => (
                        data.as_ref().len() as u64,
                        deflated.next().expect("one per plain body"),
                    ),
                    Body::Deflated { len, zlib } => (len, zlib),
                };
                out.write_all(&entry_header(pack_type(kind), len))
                    .map_err(io)?;
                out.write_all(&zlib).map_err(io)?;
                entries.push((id, out.crc.clone().finalize(), at));
            }
            bytes = 0;
        }
        let trailer: [u8; 20] = out.sha.finalize().into();
        let mut file = out.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.write_all(&trailer).map_err(io)?;
        // On disk before any name points at them, as git does its packs, so that a branch
        // moved to these objects never outlives them in a power cut. (Loose objects, which
        // libgit2 writes for the daemon's commits, are not fsynced: libgit2's default.)
        file.sync_all().map_err(io)?;
        let mut idx = std::fs::File::create(&tmp_idx).map_err(io)?;
        idx.write_all(&pack_index(entries, &trailer)).map_err(io)?;
        idx.sync_all().map_err(io)?;
        Ok::<_, StoreError>(trailer)
    })();
    let trailer = match written {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp_pack);
            let _ = std::fs::remove_file(&tmp_idx);
            return Err(e);
        }
    };
    let name = pack_dir.join(format!("pack-{}", hex(&trailer)));
    std::fs::rename(&tmp_pack, name.with_extension("pack")).map_err(io)?;
    let idx = name.with_extension("idx");
    std::fs::rename(&tmp_idx, &idx).map_err(io)?;
    sync_dir(&pack_dir).map_err(io)?;
    // Later reads and walks see this pack.
    repo.odb()?.refresh()?;
    Ok(idx)
}

/// Makes the names in directory `dir` durable (Unix; NTFS journals its own).
pub(super) fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// How the files of a pack being written here begin, until they are renamed into place (what a
/// killed process leaves, compaction removes once it is old).
pub(crate) const TMP_PREFIX: &str = "tmp_ferry_";

/// Numbers the packs this process writes, for their temporary names.
static NEXT_PACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Objects smaller than this are stored in their zlib stream as they are: resetting the
/// compressor (clearing its hash table) cost more than the few bytes deflating saves them.
const STORED_BELOW: usize = 2048;

/// Bytes of objects read before they are deflated together: what a pack write holds at once
/// besides its objects' streams.
const DEFLATE_BATCH: usize = 8 << 20;

/// Bytes of objects a thread deflates at least: some 100 µs of work (level 1 deflates about
/// 1 MB in 2 to 5 ms here).
const DEFLATE_EACH: usize = 64 << 10;

/// No error: what deflating into memory returns.
enum Never {}

/// A pack entry's type number for `kind`.
fn pack_type(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Blob => 3,
        _ => 4,
    }
}

/// `data` as a zlib stream, by this thread's compressor (made once per thread: making one
/// allocates and clears its tables).
fn deflated(data: &[u8]) -> Vec<u8> {
    thread_local! {
        static Z: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), true));
    }
    let mut out = Vec::new();
    Z.with_borrow_mut(|z| deflate(z, data, &mut out));
    out
}

/// `data` deflated (zlib) into `out`, by `z`, which is reset first; small data stored.
fn deflate(z: &mut flate2::Compress, data: &[u8], out: &mut Vec<u8>) {
    if data.len() < STORED_BELOW {
        return stored(data, out);
    }
    z.reset();
    out.clear();
    out.reserve(data.len() + data.len() / 64 + 128);
    let mut input = data;
    loop {
        let before = z.total_in();
        let status = z
            .compress_vec(input, out, flate2::FlushCompress::Finish)
            .expect("deflating into memory");
        input = &input[(z.total_in() - before) as usize..];
        if status == flate2::Status::StreamEnd {
            break;
        }
        out.reserve(out.capacity().max(1024));
    }
}

/// `data` as a zlib stream of one stored (uncompressed) deflate block (it is shorter than a
/// block's 65,535 bytes).
fn stored(data: &[u8], out: &mut Vec<u8>) {
    let len = data.len() as u16;
    out.clear();
    // CMF (deflate, 32K window) and FLG (fastest; a multiple of 31 with CMF).
    out.extend_from_slice(&[0x78, 0x01]);
    // BFINAL set, BTYPE 00 (stored), then LEN and its complement, little-endian.
    out.push(0x01);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    // Adler-32, reduced once at the end: under 65,536 bytes, `a` stays below 2^24 and `b`
    // below 2^40.
    let (mut a, mut b) = (1u64, 0u64);
    for &byte in data {
        a += byte as u64;
        b += a;
    }
    out.extend_from_slice(&((((b % 65521) << 16) | (a % 65521)) as u32).to_be_bytes());
}

/// A pack index, version 2, for `entries` (id, CRC-32 of the entry's bytes in the pack, offset)
/// of the pack whose trailer is `pack_sha`.
fn pack_index(mut entries: Vec<(Oid, u32, u64)>, pack_sha: &[u8; 20]) -> Vec<u8> {
    entries.sort_unstable_by_key(|e| e.0);
    let mut out = Vec::with_capacity(1072 + entries.len() * 28);
    out.extend_from_slice(&[0xff, b't', b'O', b'c']);
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (id, _, _) in &entries {
        fanout[id.as_bytes()[0] as usize] += 1;
    }
    let mut total = 0;
    for n in fanout {
        total += n;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for (id, _, _) in &entries {
        out.extend_from_slice(id.as_bytes());
    }
    for (_, crc, _) in &entries {
        out.extend_from_slice(&crc.to_be_bytes());
    }
    // Offsets past 2 GiB go to a table of 8-byte ones, named by index with the top bit set.
    let mut large = Vec::new();
    for (_, _, at) in &entries {
        match u32::try_from(*at) {
            Ok(small) if small < 0x8000_0000 => out.extend_from_slice(&small.to_be_bytes()),
            _ => {
                let n = 0x8000_0000 | large.len() as u32;
                out.extend_from_slice(&n.to_be_bytes());
                large.push(*at);
            }
        }
    }
    for at in large {
        out.extend_from_slice(&at.to_be_bytes());
    }
    out.extend_from_slice(pack_sha);
    let own = Sha1::digest(&out);
    out.extend_from_slice(&own);
    out
}

/// The id git gives object `data` of type `kind`: the SHA-1 of its header and bytes. Not
/// libgit2's, whose SHA-1 detects collisions at several times the cost: what is hashed here
/// was made on this machine, or opened from what the store's own key sealed.
pub(crate) fn object_id(kind: ObjectType, data: &[u8]) -> Oid {
    let mut sha = Sha1::new();
    sha.update(format!("{} {}\0", kind.str(), data.len()).as_bytes());
    sha.update(data);
    Oid::from_bytes(&sha.finalize()).expect("a SHA-1 is 20 bytes")
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A pack entry's header: the type in bits 4 to 6 of the first byte, the size below it in
/// 4 bits, then 7 bits a byte, each byte but the last with its top bit set.
fn entry_header(kind: u8, mut size: u64) -> Vec<u8> {
    let mut out = vec![(kind << 4) | (size & 0x0f) as u8];
    size >>= 4;
    while size > 0 {
        *out.last_mut().expect("one byte at least") |= 0x80;
        out.push((size & 0x7f) as u8);
        size >>= 7;
    }
    out
}

/// A writer that hashes what passes through it (a pack ends with the SHA-1 of what precedes),
/// keeps the CRC-32 of the entry being written, and counts the bytes (each entry's offset).
struct Counted<W> {
    inner: W,
    sha: Sha1,
    crc: crc32fast::Hasher,
    at: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::{Body, ObjectType, Oid, entry_header, object_id, write_bodies, write_objects};

    /// Ids are git's: the same as libgit2 gives, for every type, empty or not.
    #[test]
    fn object_ids_are_the_ones_git_gives() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for kind in [ObjectType::Blob, ObjectType::Tree, ObjectType::Commit] {
            for data in [
                &b""[..],
                b"a",
                b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n",
                &big,
            ] {
                assert_eq!(object_id(kind, data), Oid::hash_object(kind, data).unwrap());
            }
        }
    }

    /// A pack written here, with its index made here, is one libgit2 reads and git verifies.
    #[test]
    fn a_pack_and_its_index_are_read_back_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut blobs: Vec<Vec<u8>> = vec![b"one\n".to_vec(), Vec::new(), big];
        // More than one batch of deflating (DEFLATE_BATCH), spread over threads, in order.
        let line = |n: usize| format!("{{\"n\":{n},\"text\":\"line {n} of a transcript\"}}\n");
        let medium = (0..300).map(|n| line(n).repeat((32 << 10) / line(n).len()).into_bytes());
        blobs.extend(medium);
        assert!(blobs.iter().map(Vec::len).sum::<usize>() > super::DEFLATE_BATCH);
        let ids: Vec<Oid> = blobs
            .iter()
            .map(|b| Oid::hash_object(ObjectType::Blob, b).unwrap())
            .collect();
        let objects = blobs
            .iter()
            .zip(&ids)
            .map(|(b, id)| Ok((*id, ObjectType::Blob, b.as_slice())));
        write_objects(&repo, objects).unwrap();
        for (b, id) in blobs.iter().zip(&ids) {
            assert_eq!(repo.find_blob(*id).unwrap().content(), b.as_slice());
        }
        let packs: Vec<_> = std::fs::read_dir(dir.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            packs.len(),
            2,
            "a pack and its index, nothing else: {packs:?}"
        );
        let idx = packs
            .iter()
            .find(|p| p.extension().unwrap() == "idx")
            .unwrap();
        if cfg!(not(windows)) {
            let out = std::process::Command::new("git")
                .arg("verify-pack")
                .arg(idx)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }

    /// An entry made from a zlib stream made elsewhere (at another level) is written as it
    /// is, beside one deflated here, and both read back.
    #[test]
    fn a_stream_deflated_before_is_written_as_it_is() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let text = b"{\"n\":1,\"m\":\"a line of a transcript\"}\n".repeat(500);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&text).unwrap();
        let zlib = z.finish().unwrap();
        let id = Oid::hash_object(ObjectType::Blob, &text).unwrap();
        let other = Oid::hash_object(ObjectType::Blob, b"other\n").unwrap();
        let bodies = vec![
            Ok((
                id,
                ObjectType::Blob,
                Body::Deflated {
                    len: text.len() as u64,
                    zlib: zlib.clone(),
                },
            )),
            Ok((other, ObjectType::Blob, Body::Plain(b"other\n".to_vec()))),
        ];
        let idx = write_bodies(&repo, bodies.into_iter()).unwrap();
        assert_eq!(repo.find_blob(id).unwrap().content(), &text[..]);
        assert_eq!(repo.find_blob(other).unwrap().content(), b"other\n");
        let pack = std::fs::read(idx.with_extension("pack")).unwrap();
        assert!(
            pack.windows(zlib.len()).any(|w| w == zlib),
            "the stream is in the pack as it came"
        );
        if cfg!(not(windows)) {
            let out = std::process::Command::new("git")
                .arg("verify-pack")
                .arg(&idx)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }

    #[test]
    fn entry_headers_carry_the_type_and_the_size_in_seven_bit_groups() {
        assert_eq!(entry_header(3, 5), [0x35]);
        assert_eq!(entry_header(1, 15), [0x1f]);
        // 16: low 4 bits 0, then 1.
        assert_eq!(entry_header(2, 16), [0xa0, 0x01]);
        // 1,000,000 = 0xF4240: its low 4 bits (0), then 0xF424 in groups of 7 bits from the
        // lowest: 0x24, 0x68, 0x03.
        assert_eq!(entry_header(3, 1_000_000), [0xb0, 0xa4, 0xe8, 0x03]);
    }
}
