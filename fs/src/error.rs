//! Errors of filesystem operations. Each carries the errno the kernel (or WinFsp) is given, a
//! message for the log, and the error it came from, so the adapters only translate and never
//! decide. The adapters log each failure inside the operation's span, so the log names it.

use ferry_sync::store::StoreError;

/// A failed operation: the errno to return and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{message} (errno {errno})")]
pub struct FsError {
    /// The errno the caller sees.
    pub errno: i32,
    /// What went wrong, for the log.
    pub message: String,
    /// The error this one came from, if any (an I/O error, the store's).
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

impl FsError {
    /// An error with `errno` and a message.
    pub fn new(errno: i32, message: impl Into<String>) -> FsError {
        FsError {
            errno,
            message: message.into(),
            source: None,
        }
    }

    /// An error with `errno` and a message, caused by `source`.
    pub fn caused_by(
        errno: i32,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> FsError {
        FsError {
            source: Some(Box::new(source)),
            ..FsError::new(errno, message)
        }
    }

    /// Whether this is an answer the kernel asks for every day (a name that does not exist, a
    /// directory not empty, an operation the view does not do), not a failure worth a warning.
    pub fn is_routine(&self) -> bool {
        [
            libc::ENOENT,
            libc::EEXIST,
            libc::ENOTEMPTY,
            libc::ENOSYS,
            libc::EXDEV,
            libc::ENOTDIR,
            libc::EISDIR,
            libc::EPERM,
            libc::EACCES,
        ]
        .contains(&self.errno)
    }

    /// The path does not exist in the view.
    pub fn not_found(what: impl std::fmt::Debug) -> FsError {
        FsError::new(libc::ENOENT, format!("{what:?} is not in the view"))
    }
}

impl From<std::io::Error> for FsError {
    fn from(e: std::io::Error) -> FsError {
        FsError::caused_by(errno_of(&e), e.to_string(), e)
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
                let message = format!("{}: {source}", path.display());
                FsError::caused_by(errno_of(&source), message, source)
            }
            other => FsError::caused_by(libc::EIO, other.to_string(), other),
        }
    }
}

#[cfg(unix)]
impl From<nix::Error> for FsError {
    fn from(e: nix::Error) -> FsError {
        FsError::caused_by(e as i32, e.desc(), e)
    }
}
