//! The object database of a store opened for staging ([`super::Store::staged`]): the store's
//! packs, each added on its own, and its loose objects, without the pack directory itself.
//! libgit2 looks for an object before it writes it, and on a miss (every object an import
//! makes is new) it reads the pack directory again: seven system calls per object, a fifth of
//! a first import's CPU. A pack added on its own is never looked for again; the packs this
//! process writes meanwhile are added as they are written ([`add_pack`]), and none is asked
//! whether it has an object about to be written (see [`add`]). Loose objects are
//! read only where the store has some: libgit2 also asks the loose backend about every object
//! it writes, one system call each, which a first import (whose store has none) need not pay.

use git2::{Binding, Odb};
use libgit2_sys as raw;
use std::ffi::CString;
use std::os::raw::c_int;
use std::path::Path;

/// Below a memory backend's priority (what a staged store writes to), packs before loose
/// objects, as libgit2 orders its own.
const PACKS: c_int = 2;
const LOOSE: c_int = 1;

/// The objects of the store whose object directory is `objects`, read as [`Store::staged`]
/// needs them.
///
/// [`Store::staged`]: super::Store::staged
pub(crate) fn open(objects: &Path) -> Result<Odb<'static>, git2::Error> {
    let odb = Odb::new()?;
    if has_loose(objects) {
        let dir = c_path(objects)?;
        // SAFETY: `out` is written by libgit2 on success only; `dir` outlives the call.
        add(&odb, LOOSE, |out| unsafe {
            raw::git_odb_backend_loose(out, dir.as_ptr(), -1, 0, 0, 0)
        })?;
    }
    let pack_dir = objects.join("pack");
    let entries = match std::fs::read_dir(&pack_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(odb),
        Err(e) => {
            return Err(git2::Error::from_str(&format!(
                "{}: {e}",
                pack_dir.display()
            )));
        }
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        // An index whose pack is gone (a compaction or a `git gc` cut short) holds nothing:
        // git's own scan passes over it too.
        let idx = e.path();
        if name.starts_with("pack-")
            && name.ends_with(".idx")
            && idx.with_extension("pack").exists()
        {
            add_pack(&odb, &idx)?;
        }
    }
    Ok(odb)
}

/// Whether the object directory `objects` holds any loose object (a fan-out directory with a
/// file in it); one that cannot be read counts as holding some.
fn has_loose(objects: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(objects) else {
        return true;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let fan_out = name.len() == 2
            && name
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
        fan_out && std::fs::read_dir(e.path()).map_or(true, |mut d| d.next().is_some())
    })
}

/// Makes the pack whose index is `idx` part of `odb`.
pub(crate) fn add_pack(odb: &Odb<'_>, idx: &Path) -> Result<(), git2::Error> {
    let idx = c_path(idx)?;
    // SAFETY: as in `open`.
    add(odb, PACKS, |out| unsafe {
        raw::git_odb_backend_one_pack(out, idx.as_ptr())
    })
}

/// Adds the backend `make` creates to `odb`, which then owns it.
fn add(
    odb: &Odb<'_>,
    priority: c_int,
    make: impl FnOnce(*mut *mut raw::git_odb_backend) -> c_int,
) -> Result<(), git2::Error> {
    let mut backend: *mut raw::git_odb_backend = std::ptr::null_mut();
    if make(&mut backend) < 0 || backend.is_null() {
        return Err(last_error());
    }
    // SAFETY: `backend` is a live backend that nothing else owns; on success the odb frees it,
    // on failure it is freed here, once.
    unsafe {
        // libgit2 asks every backend whether it has each object about to be written (through
        // `freshen`, else `exists`), and formats an error message for each miss. A staged
        // store writes to memory only, and the pack made from it leaves out what the disk
        // has, so a duplicate costs nothing; nor does the mtime freshening would set (it keeps
        // a `git gc` from pruning, and ferry's stores are compacted by ferry).
        (*backend).freshen = Some(not_here);
        if raw::git_odb_add_backend(odb.raw(), backend, priority) < 0 {
            let e = last_error();
            if let Some(free) = (*backend).free {
                free(backend);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// A backend's answer to whether it has an object about to be written: no, at once.
extern "C" fn not_here(_: *mut raw::git_odb_backend, _: *const raw::git_oid) -> c_int {
    raw::GIT_ENOTFOUND
}

/// libgit2's last error on this thread, as git2 reports it.
fn last_error() -> git2::Error {
    git2::Error::last_error(-1)
}

fn c_path(p: &Path) -> Result<CString, git2::Error> {
    p.to_str()
        .and_then(|s| CString::new(s).ok())
        .ok_or_else(|| git2::Error::from_str(&format!("{}: not a UTF-8 path", p.display())))
}

#[cfg(test)]
mod tests {
    use super::{add_pack, open};
    use crate::store::write_objects;
    use git2::{ObjectType, Oid};

    /// Writes `data` as a pack of one blob in `repo`; its id and the pack's index.
    fn packed(repo: &git2::Repository, data: &[u8]) -> (Oid, std::path::PathBuf) {
        let id = Oid::hash_object(ObjectType::Blob, data).unwrap();
        let idx = write_objects(repo, std::iter::once(Ok((id, ObjectType::Blob, data)))).unwrap();
        (id, idx)
    }

    #[test]
    fn it_reads_packs_and_loose_objects_and_sees_a_pack_only_once_added() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let loose = repo.blob(b"loose\n").unwrap();
        let (in_pack, idx) = packed(&repo, b"in a pack\n");
        // An index whose pack is gone, as a compaction cut short leaves: passed over.
        let stray = idx.with_file_name(format!("pack-{}.idx", "0".repeat(40)));
        std::fs::copy(&idx, &stray).unwrap();
        let odb = open(&dir.path().join("objects")).unwrap();
        for id in [loose, in_pack] {
            assert!(odb.exists(id), "{id} is the store's");
        }
        // A pack written later is not looked for in the directory: the point of it.
        let (later, idx) = packed(&repo, b"written later\n");
        odb.refresh().unwrap();
        assert!(!odb.exists(later), "seen without being added");
        add_pack(&odb, &idx).unwrap();
        assert_eq!(odb.read(later).unwrap().data(), b"written later\n");
        // Writes go to the backend above them, never to the store's loose objects.
        let staged = git2::Repository::open_bare(dir.path()).unwrap();
        staged.set_odb(&odb).unwrap();
        let memory = odb.add_new_mempack_backend(1000).unwrap();
        let new = staged.blob(b"staged\n").unwrap();
        assert!(staged.find_blob(new).is_ok());
        memory.reset().unwrap();
        assert!(repo.find_blob(new).is_err(), "it reached the disk");
    }

    #[test]
    fn loose_objects_are_read_only_where_the_store_has_some() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let objects = dir.path().join("objects");
        let (in_pack, _) = packed(&repo, b"in a pack\n");
        // An empty fan-out directory (git leaves them after a repack) holds nothing.
        std::fs::create_dir(objects.join("ab")).unwrap();
        assert!(!super::has_loose(&objects));
        assert!(open(&objects).unwrap().exists(in_pack));
        let loose = repo.blob(b"loose\n").unwrap();
        assert!(super::has_loose(&objects));
        let odb = open(&objects).unwrap();
        assert!(odb.exists(loose) && odb.exists(in_pack));
    }
}
