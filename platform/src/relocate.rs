//! Where the upper layer lives on Windows, and how Claude Code's own `projects` directory gets
//! there without losing a byte.
//!
//! WinFsp mounts on a directory path that does not exist yet, so on Windows the upper layer is
//! `%LOCALAPPDATA%\ferry\upper` and `%USERPROFILE%\.claude\projects` is only the mount point.
//! Before each mount, whatever is at the mount point is cleared:
//! - a real directory (the first run, or Claude Code run while nothing was there) is merged into
//!   the upper layer by [`merge_into`], then removed;
//! - a junction (what the daemon leaves at unmount, pointing at the upper layer, so that Claude
//!   Code unmounted still sees every local session) or a dead mount is removed; its target stays.
//!
//! [`merge_into`] is plain file operations, so it runs and is tested on every OS.

use std::io;
use std::path::{Path, PathBuf};

/// What a merge did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Entries moved into the upper layer (a directory that was moved whole counts once).
    pub moved: u64,
    /// Files the upper layer had already, identical or a longer version: dropped.
    pub same: u64,
    /// Files that replaced a shorter version of themselves in the upper layer (a transcript
    /// that grew while nothing was mounted).
    pub grew: u64,
    /// Files whose two versions differ otherwise, kept whole under the aside directory.
    pub aside: Vec<PathBuf>,
}

/// Moves everything in `from` into `into`, entry by entry, and removes `from`. A file both have
/// is resolved without loss: identical or a prefix of the upper's version, it is dropped; the
/// upper's version a prefix of it, it replaces that; otherwise it is moved under `aside` at the
/// same relative path. Every step is a rename or a copy before a removal, so a merge cut short
/// is finished by running it again.
pub fn merge_into(from: &Path, into: &Path, aside: &Path) -> io::Result<Merged> {
    let mut done = Merged::default();
    std::fs::create_dir_all(into)?;
    merge_dir(from, into, aside, Path::new(""), &mut done)?;
    std::fs::remove_dir(from)?;
    Ok(done)
}

fn merge_dir(
    from: &Path,
    into: &Path,
    aside: &Path,
    rel: &Path,
    done: &mut Merged,
) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let (src, dst, rel) = (entry.path(), into.join(&name), rel.join(&name));
        let src_dir = entry.file_type()?.is_dir();
        match std::fs::symlink_metadata(&dst) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                relocate(&src, &dst)?;
                done.moved += 1;
            }
            Err(e) => return Err(e),
            Ok(m) if src_dir && m.is_dir() => {
                merge_dir(&src, &dst, aside, &rel, done)?;
                std::fs::remove_dir(&src)?;
            }
            Ok(m) if !src_dir && m.is_file() => {
                let (ours, theirs) = (std::fs::read(&dst)?, std::fs::read(&src)?);
                if theirs.len() <= ours.len() && ours.starts_with(&theirs) {
                    std::fs::remove_file(&src)?;
                    done.same += 1;
                } else if theirs.starts_with(&ours) {
                    relocate(&src, &dst)?;
                    done.grew += 1;
                } else {
                    put_aside(&src, aside, &rel)?;
                    done.aside.push(rel);
                }
            }
            // A file where the upper layer has a directory, or the other way round.
            Ok(_) => {
                put_aside(&src, aside, &rel)?;
                done.aside.push(rel);
            }
        }
    }
    Ok(())
}

fn put_aside(src: &Path, aside: &Path, rel: &Path) -> io::Result<()> {
    let dst = aside.join(rel);
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    relocate(src, &dst)
}

/// Renames `src` to `dst`, replacing a file there; across volumes, copies, syncs, then removes.
fn relocate(src: &Path, dst: &Path) -> io::Result<()> {
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(_) if src.is_dir() => {
            copy_tree(src, dst)?;
            std::fs::remove_dir_all(src)
        }
        Err(_) => {
            let tmp = dst.with_extension("ferry-tmp");
            std::fs::copy(src, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, dst)?;
            std::fs::remove_file(src)
        }
    }
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
    }
    Ok(())
}

/// What is at the mount point before mounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtMountPoint {
    /// Nothing.
    Nothing,
    /// A real directory, to merge into the upper layer.
    Directory,
    /// A junction or a dead mount (a reparse point): removed, its target untouched.
    Link,
    /// A file: the user has to move it.
    File,
}

/// What is at `path`.
pub fn at_mount_point(path: &Path) -> io::Result<AtMountPoint> {
    let m = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AtMountPoint::Nothing),
        r => r?,
    };
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
        if m.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Ok(AtMountPoint::Link);
        }
    }
    Ok(if m.file_type().is_symlink() {
        AtMountPoint::Link
    } else if m.is_dir() {
        AtMountPoint::Directory
    } else {
        AtMountPoint::File
    })
}

/// Leaves a junction at `link` pointing at `target` (Windows; no elevation needed, unlike a
/// symbolic link), so that Claude Code run with nothing mounted still finds its sessions.
#[cfg(windows)]
pub fn junction(link: &Path, target: &Path) -> io::Result<()> {
    let out = std::process::Command::new("cmd")
        .args(["/d", "/c", "mklink", "/J"])
        .arg(link)
        .arg(target)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "mklink /J failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, bytes: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_first_run_moves_everything_and_a_conflict_loses_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (from, into, aside) = (t.path().join("p"), t.path().join("u"), t.path().join("a"));
        write(&from.join("only-here/s.jsonl"), "1\n");
        write(&from.join("both/same.jsonl"), "a\nb\n");
        write(&into.join("both/same.jsonl"), "a\nb\n");
        write(&from.join("both/grew.jsonl"), "a\nb\nc\n");
        write(&into.join("both/grew.jsonl"), "a\nb\n");
        write(&from.join("both/behind.jsonl"), "a\n");
        write(&into.join("both/behind.jsonl"), "a\nb\n");
        write(&from.join("both/forked.jsonl"), "a\nX\n");
        write(&into.join("both/forked.jsonl"), "a\nY\n");
        write(&from.join("both/kind"), "a file");
        std::fs::create_dir_all(into.join("both/kind")).unwrap();

        let m = merge_into(&from, &into, &aside).unwrap();
        assert!(!from.exists());
        assert_eq!(read(&into.join("only-here/s.jsonl")), "1\n");
        assert_eq!(read(&into.join("both/same.jsonl")), "a\nb\n");
        assert_eq!(read(&into.join("both/grew.jsonl")), "a\nb\nc\n");
        assert_eq!(read(&into.join("both/behind.jsonl")), "a\nb\n");
        assert_eq!(read(&into.join("both/forked.jsonl")), "a\nY\n");
        assert_eq!(read(&aside.join("both/forked.jsonl")), "a\nX\n");
        assert_eq!(read(&aside.join("both/kind")), "a file");
        assert_eq!((m.moved, m.same, m.grew), (1, 2, 1));
        let mut aside_list = m.aside.clone();
        aside_list.sort();
        assert_eq!(
            aside_list,
            [
                PathBuf::from("both/forked.jsonl"),
                PathBuf::from("both/kind")
            ]
        );
    }

    #[test]
    fn a_merge_cut_short_finishes_when_run_again() {
        let t = tempfile::tempdir().unwrap();
        let (from, into, aside) = (t.path().join("p"), t.path().join("u"), t.path().join("a"));
        write(&from.join("x/1.jsonl"), "1\n");
        write(&from.join("x/2.jsonl"), "2\n");
        // As if the first run had moved 1.jsonl and stopped.
        write(&into.join("x/1.jsonl"), "1\n");
        std::fs::remove_file(from.join("x/1.jsonl")).unwrap();
        merge_into(&from, &into, &aside).unwrap();
        assert_eq!(read(&into.join("x/1.jsonl")), "1\n");
        assert_eq!(read(&into.join("x/2.jsonl")), "2\n");
        assert!(!aside.exists());
    }

    #[test]
    fn the_mount_point_is_told_apart() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("projects");
        assert_eq!(at_mount_point(&p).unwrap(), AtMountPoint::Nothing);
        std::fs::create_dir(&p).unwrap();
        assert_eq!(at_mount_point(&p).unwrap(), AtMountPoint::Directory);
        #[cfg(unix)]
        {
            let l = t.path().join("link");
            std::os::unix::fs::symlink(&p, &l).unwrap();
            assert_eq!(at_mount_point(&l).unwrap(), AtMountPoint::Link);
        }
        std::fs::write(t.path().join("f"), "").unwrap();
        assert_eq!(
            at_mount_point(&t.path().join("f")).unwrap(),
            AtMountPoint::File
        );
    }
}
