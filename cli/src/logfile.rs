//! The daemon's log, `ferry.log` in the state dir: rotated by size (the current file and three
//! older ones, `ferry.log.1` newest), so months of mounts never fill the disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Size at which the log is rotated.
pub const LIMIT: u64 = 8 << 20;

/// How many rotated files are kept beside the current one.
pub const KEEP: usize = 3;

/// An append-only log file that rotates itself once it passes [`LIMIT`].
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    len: u64,
    limit: u64,
}

impl RotatingLog {
    /// Opens (creates) the log at `path`, rotating it first if it is already past the limit.
    pub fn open(path: &Path) -> io::Result<RotatingLog> {
        RotatingLog::with_limit(path, LIMIT)
    }

    /// [`RotatingLog::open`] with another limit (for tests).
    pub fn with_limit(path: &Path, limit: u64) -> io::Result<RotatingLog> {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len >= limit {
            rotate(path)?;
        }
        let file = append(path)?;
        let len = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            len,
            limit,
        })
    }
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Whole records: tracing writes one line per call.
        if self.len > 0 && self.len + buf.len() as u64 > self.limit && rotate(&self.path).is_ok() {
            self.file = append(&self.path)?;
            self.len = 0;
        }
        let n = self.file.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// `ferry.log.2` → `.3`, `.1` → `.2`, the log → `.1`; the oldest falls away.
fn rotate(path: &Path) -> io::Result<()> {
    let numbered = |n: usize| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    let _ = std::fs::remove_file(numbered(KEEP));
    for n in (1..KEEP).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_the_limit_and_keeps_three() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.log");
        let mut log = RotatingLog::with_limit(&path, 100).unwrap();
        for i in 0..50 {
            log.write_all(format!("line {i:02} of the log, twenty-odd bytes\n").as_bytes())
                .unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert!(read(&path).len() <= 100, "{}", read(&path));
        assert!(read(&path).ends_with("line 49 of the log, twenty-odd bytes\n"));
        let older: Vec<String> = (1..=4)
            .map(|n| read(&dir.path().join(format!("ferry.log.{n}"))))
            .collect();
        assert!(!older[0].is_empty() && !older[2].is_empty());
        assert!(older[3].is_empty(), "a fourth old file is kept");
        assert!(older[0].contains("line 4"), "newest first: {}", older[0]);
        // Reopening a full log rotates it first.
        drop(log);
        std::fs::write(&path, "x".repeat(150)).unwrap();
        let _log = RotatingLog::with_limit(&path, 100).unwrap();
        assert_eq!(read(&path), "");
        assert_eq!(read(&dir.path().join("ferry.log.1")), "x".repeat(150));
    }
}
