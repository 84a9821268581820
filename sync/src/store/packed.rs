//! Committing many batches as packs (issue 22, item 3): a first import of 10,000 sessions wrote
//! about 50,000 loose object files, one inode each, which the import, the push and every later
//! object lookup paid for. Here the commits' objects are kept in memory and written as a pack
//! (one per [`PACK_EVERY`] bytes of input), and the branch moves only once the packs are in
//! place: a crash part-way leaves the branch where it was, pointing at nothing missing.
//!
//! The pack is written here, each object deflated on its own as a loose object would be:
//! libgit2's pack builder searches for deltas between every pair of nearby objects, which made
//! an import of five 40 MB transcripts take 55 s instead of 6 s, and its dump of a memory store
//! packs each commit's whole tree again, what the disk already has included.

use super::write::Batch;
use super::{MachineRecord, Store, StoreError, own_ref};
use git2::{ObjectType, Oid};
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
        // What the disk has, seen without the memory store.
        let disk = self.repo.odb()?;
        let refname = own_ref(&machine.id);
        let start = staged.tip(&refname)?;
        let mut tip = start;
        // Input bytes committed since the last pack, and whether any commit was.
        let (mut held, mut written) = (0u64, false);
        let result = (|| {
            for batch in batches {
                let bytes = size(batch);
                if let Some(tip) = tip.filter(|_| written && held + bytes > PACK_EVERY) {
                    write_pack(&staged.repo, &disk, tip)?;
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
    /// commits must reach the disk.
    pub(crate) fn staged(&self) -> Result<Store, StoreError> {
        Ok(Store {
            repo: git2::Repository::open_bare(self.repo.path())?,
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

/// Writes the objects `tip` added to what `disk` has as one pack in `objects/pack` (indexed by
/// libgit2 as it arrives), each object deflated on its own.
pub(crate) fn write_pack(
    repo: &git2::Repository,
    disk: &git2::Odb<'_>,
    tip: Oid,
) -> Result<(), StoreError> {
    write_pack_of(repo, disk, &[tip])
}

/// [`write_pack`] for the objects of several commits.
pub(crate) fn write_pack_of(
    repo: &git2::Repository,
    disk: &git2::Odb<'_>,
    tips: &[Oid],
) -> Result<(), StoreError> {
    let objects = added(repo, disk, tips)?;
    let odb = repo.odb()?;
    let pack_dir = repo.path().join("objects/pack");
    let io = |e: std::io::Error| StoreError::io(&pack_dir, e);
    let mut out = Hashed {
        inner: odb.packwriter()?,
        sha: sha1_smol::Sha1::new(),
    };
    out.write_all(b"PACK").map_err(io)?;
    out.write_all(&2u32.to_be_bytes()).map_err(io)?;
    let count = u32::try_from(objects.len()).map_err(|_| StoreError::BadPath("pack".into()))?;
    out.write_all(&count.to_be_bytes()).map_err(io)?;
    for id in objects {
        let object = odb.read(id)?;
        let kind: u8 = match object.kind() {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            _ => 4,
        };
        out.write_all(&entry_header(kind, object.len() as u64))
            .map_err(io)?;
        let mut z = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::fast());
        z.write_all(object.data()).map_err(io)?;
        z.finish().map_err(io)?;
    }
    let trailer = out.sha.digest().bytes();
    out.inner.write_all(&trailer).map_err(io)?;
    out.inner.commit()?;
    // Later walks see this pack as the disk's.
    disk.refresh()?;
    Ok(())
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

/// A writer that hashes what passes through it (a pack ends with the SHA-1 of what precedes).
struct Hashed<W> {
    inner: W,
    sha: sha1_smol::Sha1,
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::entry_header;

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
