//! What the WinFsp adapter translates, kept free of Windows APIs so that it is tested on every
//! OS: errnos to NTSTATUS codes, Unix nanoseconds to FILETIME ticks and back, modes to file
//! attributes, and WinFsp's `\dir\name` paths to the core's relative view paths.

use crate::upper::Kind;
use std::path::PathBuf;

/// NTSTATUS codes the adapter returns (values from the Windows SDK's `ntstatus.h`).
pub mod status {
    /// The name does not exist.
    pub const OBJECT_NAME_NOT_FOUND: i32 = 0xC000_0034_u32 as i32;
    /// A directory on the way does not exist.
    pub const OBJECT_PATH_NOT_FOUND: i32 = 0xC000_003A_u32 as i32;
    /// The name exists already.
    pub const OBJECT_NAME_COLLISION: i32 = 0xC000_0035_u32 as i32;
    /// The name is not valid here.
    pub const OBJECT_NAME_INVALID: i32 = 0xC000_0033_u32 as i32;
    /// Not allowed.
    pub const ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
    /// The disk is full.
    pub const DISK_FULL: i32 = 0xC000_007F_u32 as i32;
    /// A directory where a file was expected.
    pub const FILE_IS_A_DIRECTORY: i32 = 0xC000_00BA_u32 as i32;
    /// A file where a directory was expected.
    pub const NOT_A_DIRECTORY: i32 = 0xC000_0103_u32 as i32;
    /// The directory is not empty.
    pub const DIRECTORY_NOT_EMPTY: i32 = 0xC000_0101_u32 as i32;
    /// A bad argument.
    pub const INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
    /// Across filesystems (hard links, which Claude Code then copies).
    pub const NOT_SAME_DEVICE: i32 = 0xC000_00D4_u32 as i32;
    /// Not supported.
    pub const NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
    /// Any other I/O failure.
    pub const UNEXPECTED_IO_ERROR: i32 = 0xC000_00E9_u32 as i32;
    /// Reading at or past the end.
    pub const END_OF_FILE: i32 = 0xC000_0011_u32 as i32;
    /// Out of memory or handles.
    pub const INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32 as i32;
    /// The caller's buffer is too small (a warning severity).
    pub const BUFFER_OVERFLOW: i32 = 0x8000_0005_u32 as i32;
    /// Read-only media.
    pub const MEDIA_WRITE_PROTECTED: i32 = 0xC000_00A2_u32 as i32;
}

/// The NTSTATUS for a core error's errno.
pub fn ntstatus(errno: i32) -> i32 {
    use status::*;
    match errno {
        libc::ENOENT => OBJECT_NAME_NOT_FOUND,
        libc::EEXIST => OBJECT_NAME_COLLISION,
        libc::EACCES | libc::EPERM => ACCESS_DENIED,
        libc::ENOSPC => DISK_FULL,
        libc::EISDIR => FILE_IS_A_DIRECTORY,
        libc::ENOTDIR => NOT_A_DIRECTORY,
        libc::ENOTEMPTY => DIRECTORY_NOT_EMPTY,
        libc::EINVAL => INVALID_PARAMETER,
        libc::ENAMETOOLONG | libc::EILSEQ => OBJECT_NAME_INVALID,
        libc::EXDEV => NOT_SAME_DEVICE,
        libc::ENOSYS | libc::EOPNOTSUPP => NOT_SUPPORTED,
        libc::EROFS => MEDIA_WRITE_PROTECTED,
        libc::ENOMEM | libc::EMFILE | libc::ENFILE => INSUFFICIENT_RESOURCES,
        _ => UNEXPECTED_IO_ERROR,
    }
}

/// 100 ns ticks from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
const EPOCH_TICKS: i128 = 116_444_736_000_000_000;

/// Unix nanoseconds as FILETIME ticks (0 before 1601).
pub fn filetime(unix_ns: i128) -> u64 {
    (unix_ns / 100 + EPOCH_TICKS).clamp(0, u64::MAX as i128) as u64
}

/// FILETIME ticks as Unix nanoseconds; `None` for 0, which WinFsp sends for "leave as is".
pub fn unix_ns(ticks: u64) -> Option<i128> {
    (ticks != 0).then(|| (ticks as i128 - EPOCH_TICKS) * 100)
}

/// `FILE_ATTRIBUTE_READONLY`.
pub const ATTRIBUTE_READONLY: u32 = 0x1;
/// `FILE_ATTRIBUTE_DIRECTORY`.
pub const ATTRIBUTE_DIRECTORY: u32 = 0x10;
/// `FILE_ATTRIBUTE_ARCHIVE`, what a plain file carries.
pub const ATTRIBUTE_ARCHIVE: u32 = 0x20;

/// The file attributes for an entry of `kind` with permission bits `mode`: a file nobody may
/// write is read-only.
pub fn attributes(kind: Kind, mode: u32) -> u32 {
    match kind {
        Kind::Dir => ATTRIBUTE_DIRECTORY,
        Kind::File if mode & 0o222 == 0 => ATTRIBUTE_ARCHIVE | ATTRIBUTE_READONLY,
        Kind::File => ATTRIBUTE_ARCHIVE,
    }
}

/// The permission bits a file gets when its read-only attribute is set or cleared.
pub fn mode_for(attributes: u32, mode: u32) -> u32 {
    if attributes & ATTRIBUTE_READONLY != 0 {
        mode & !0o222
    } else {
        mode | 0o200
    }
}

/// The core's view path for WinFsp's file name (`\`, `\proj`, `\proj\id.jsonl`); `None` for a
/// name the view cannot hold (a stream `name:stream`, `.` or `..`, broken UTF-16).
pub fn view_path(name: &[u16]) -> Option<PathBuf> {
    let text: String = char::decode_utf16(name.iter().copied())
        .collect::<Result<_, _>>()
        .ok()?;
    let mut path = PathBuf::new();
    for part in text.split('\\').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." || part.contains([':', '/']) {
            return None;
        }
        path.push(part);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn paths_become_relative_view_paths_and_odd_names_are_refused() {
        assert_eq!(view_path(&wide("\\")), Some(PathBuf::new()));
        let p = view_path(&wide("\\C--Users-bob-proj\\0a1b.jsonl")).unwrap();
        let parts: Vec<_> = p.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(parts, ["C--Users-bob-proj", "0a1b.jsonl"]);
        assert_eq!(view_path(&wide("\\proj\\ä 🙂")).unwrap().iter().count(), 2);
        for bad in ["\\proj\\..", "\\.\\x", "\\x:stream", "\\a/b"] {
            assert_eq!(view_path(&wide(bad)), None, "{bad}");
        }
        assert_eq!(view_path(&[0x5C, 0xD800, 0x61]), None, "a lone surrogate");
    }

    #[test]
    fn times_round_trip_through_filetime() {
        assert_eq!(filetime(0), 116_444_736_000_000_000);
        let t = 1_763_000_000_123_456_700_i128;
        assert_eq!(unix_ns(filetime(t)), Some(t));
        assert_eq!(unix_ns(0), None);
        // Before 1970 and before 1601.
        assert_eq!(unix_ns(filetime(-1_000_000_000)), Some(-1_000_000_000));
        assert_eq!(filetime(-20_000_000_000_000_000_000), 0);
    }

    #[test]
    fn errnos_map_to_the_status_windows_programs_expect() {
        assert_eq!(ntstatus(libc::ENOENT), status::OBJECT_NAME_NOT_FOUND);
        assert_eq!(ntstatus(libc::ENOSPC), status::DISK_FULL);
        assert_eq!(ntstatus(libc::ENOTEMPTY), status::DIRECTORY_NOT_EMPTY);
        assert_eq!(ntstatus(libc::EXDEV), status::NOT_SAME_DEVICE);
        assert_eq!(ntstatus(12345), status::UNEXPECTED_IO_ERROR);
        const { assert!(status::OBJECT_NAME_NOT_FOUND < 0, "an error severity") };
    }

    #[test]
    fn read_only_is_the_absence_of_write_bits() {
        assert_eq!(attributes(Kind::File, 0o600), ATTRIBUTE_ARCHIVE);
        assert_eq!(
            attributes(Kind::File, 0o400),
            ATTRIBUTE_ARCHIVE | ATTRIBUTE_READONLY
        );
        assert_eq!(attributes(Kind::Dir, 0o500), ATTRIBUTE_DIRECTORY);
        assert_eq!(mode_for(ATTRIBUTE_READONLY, 0o600), 0o400);
        assert_eq!(mode_for(ATTRIBUTE_ARCHIVE, 0o400), 0o600);
    }
}
