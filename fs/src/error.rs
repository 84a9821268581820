//! Errors of filesystem operations. Each carries the errno the kernel (or WinFsp) is given, and a
//! message for the log, so the adapters only translate and never decide.

use ferry_sync::store::StoreError;

/// A failed operation: the errno to return and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{message} (errno {errno})")]
pub struct FsError {
    /// The errno the caller sees.
    pub errno: i32,
    /// What went wrong, for the log.
    pub message: String,
}

/// The result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    /// An error with `errno` and a message.
    pub fn new(errno: i32, message: impl Into<String>) -> FsError {
        FsError {
            errno,
            message: message.into(),
        }
    }

    /// The path does not exist in the view.
    pub fn not_found(what: impl std::fmt::Debug) -> FsError {
        FsError::new(libc::ENOENT, format!("{what:?} is not in the view"))
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> FsError {
        FsError::new(errno_of(&e), e.to_string())
    }
}

/// The errno of an I/O error: the OS's own on Unix.
#[cfg(unix)]
fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The errno of an I/O error on Windows, whose OS codes are not errnos: by its kind.
#[cfg(not(unix))]
fn errno_of(e: &std::io::Error) -> i32 {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => libc::ENOENT,
        K::PermissionDenied => libc::EACCES,
        K::AlreadyExists => libc::EEXIST,
        K::DirectoryNotEmpty => libc::ENOTEMPTY,
        K::NotADirectory => libc::ENOTDIR,
        K::IsADirectory => libc::EISDIR,
        K::StorageFull => libc::ENOSPC,
        K::InvalidInput | K::InvalidFilename => libc::EINVAL,
        K::ReadOnlyFilesystem => libc::EROFS,
        _ => libc::EIO,
    }
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> FsError {
        match e {
            StoreError::Io { source, path } => {
                FsError::new(errno_of(&source), format!("{}: {source}", path.display()))
            }
            other => FsError::new(libc::EIO, other.to_string()),
        }
    }
}

#[cfg(unix)]
impl From<nix::Error> for FsError {
    fn from(e: nix::Error) -> FsError {
        FsError::new(e as i32, e.desc())
    }
}
