//! The WinFsp adapter proper: Windows' file requests as calls on the core, its errors as
//! NTSTATUS codes. The core keeps no per-open state, so a handle is only the view path it was
//! opened at, plus the listing being read through it.
//!
//! Deleting follows Windows' three steps: `set_delete` only checks (a directory must be empty),
//! and the delete happens at the `cleanup` that carries the delete flag (whichever handle that
//! is, and also for files opened delete-on-close). Every entry carries the security descriptor of
//! the upper layer's directory, read at mount: the same owner and access as this user's own
//! files, so WinFsp's access checks keep other users out as the real directory does. Handles
//! follow renames: an open handle keeps reaching its file after it, or a directory above it, is
//! renamed.

use super::translate::{self, attributes, filetime, mode_for, unix_ns, view_path};
use crate::core::{Attr, Fs, SetAttr};
use crate::error::FsError;
use crate::upper::{Kind, SetTime};
use std::collections::HashMap;
use std::ffi::c_void;
use std::os::windows::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use winfsp::filesystem::{
    DirBuffer, DirInfo, DirMarker, FileInfo, FileSecurity, FileSystemContext, OpenFileInfo,
    VolumeInfo, WideNameInfo,
};
use winfsp::host::{FileSystemHost, FileSystemParams, VolumeParams};
use winfsp::{FspError, U16CStr};

/// `FILE_DIRECTORY_FILE` in `create_options`: make a directory.
const FILE_DIRECTORY_FILE: u32 = 0x1;
/// `FspCleanupDelete`.
const CLEANUP_DELETE: u32 = 0x1;

fn err(e: FsError) -> FspError {
    tracing::debug!(error = %e, "operation failed");
    FspError::NTSTATUS(translate::ntstatus(e.errno))
}

fn status(code: i32) -> FspError {
    FspError::NTSTATUS(code)
}

fn path_of(name: &U16CStr) -> winfsp::Result<PathBuf> {
    view_path(name.as_slice()).ok_or_else(|| status(translate::status::OBJECT_NAME_INVALID))
}

fn fill(info: &mut FileInfo, a: &Attr) {
    info.file_attributes = attributes(a.kind, a.mode);
    info.reparse_tag = 0;
    info.file_size = a.size;
    info.allocation_size = a.size.div_ceil(4096) * 4096;
    info.creation_time = filetime(a.mtime_ns);
    info.last_access_time = filetime(a.atime_ns);
    info.last_write_time = filetime(a.mtime_ns);
    info.change_time = filetime(a.ctime_ns);
    info.index_number = 0;
    info.hard_links = 0;
    info.ea_size = 0;
}

/// A view path that renames move.
type SharedPath = Arc<RwLock<PathBuf>>;

/// An open file or directory.
pub struct Handle {
    id: u64,
    path: SharedPath,
    dir: bool,
    /// The listing read through this handle, filled at its first read.
    listing: DirBuffer,
}

impl Handle {
    /// Where it is now.
    fn path(&self) -> PathBuf {
        self.path.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[link(name = "advapi32")]
unsafe extern "system" {
    fn GetFileSecurityW(
        name: *const u16,
        requested: u32,
        descriptor: *mut c_void,
        length: u32,
        needed: *mut u32,
    ) -> i32;
}

/// The self-relative security descriptor (owner, group, access list) of `dir`; empty if it
/// cannot be read, which leaves access unchecked by WinFsp.
fn descriptor_of(dir: &Path) -> Vec<u8> {
    const OWNER_GROUP_DACL: u32 = 0x1 | 0x2 | 0x4;
    let name: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
    let mut needed = 0u32;
    // SAFETY: a NUL-terminated name; a null buffer of length 0 only asks for the size.
    unsafe {
        GetFileSecurityW(
            name.as_ptr(),
            OWNER_GROUP_DACL,
            std::ptr::null_mut(),
            0,
            &mut needed,
        )
    };
    let mut buf = vec![0u8; needed as usize];
    // SAFETY: `buf` holds `needed` bytes.
    let ok = needed > 0
        && unsafe {
            GetFileSecurityW(
                name.as_ptr(),
                OWNER_GROUP_DACL,
                buf.as_mut_ptr().cast(),
                needed,
                &mut needed,
            )
        } != 0;
    if !ok {
        tracing::warn!(dir = %dir.display(), "cannot read the upper layer's security descriptor; entries carry none");
        buf.clear();
    }
    buf
}

/// What WinFsp calls into.
pub struct Adapter {
    fs: Arc<Fs>,
    /// The security descriptor every entry carries.
    descriptor: Vec<u8>,
    /// The paths of open handles, by handle id, for renames to move.
    open: Mutex<HashMap<u64, SharedPath>>,
    next: AtomicU64,
}

impl Adapter {
    fn handle(&self, path: PathBuf, kind: Kind) -> Handle {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let path = Arc::new(RwLock::new(path));
        self.handles().insert(id, path.clone());
        Handle {
            id,
            path,
            dir: kind == Kind::Dir,
            listing: DirBuffer::new(),
        }
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SharedPath>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attr(&self, path: &Path, info: &mut FileInfo) -> winfsp::Result<Attr> {
        let a = self.fs.getattr(path).map_err(err)?;
        fill(info, &a);
        Ok(a)
    }

    /// Applies `set`; one that changes nothing only reports (the core would copy another
    /// machine's file up for it).
    fn set(&self, path: &Path, set: SetAttr, info: &mut FileInfo) -> winfsp::Result<()> {
        if set == SetAttr::default() {
            return self.attr(path, info).map(|_| ());
        }
        let a = self.fs.setattr(path, set).map_err(err)?;
        fill(info, &a);
        Ok(())
    }

    /// Copies the descriptor into WinFsp's buffer, if one is given; its size.
    fn give_descriptor(&self, out: Option<&mut [c_void]>) -> winfsp::Result<u64> {
        let sd = &self.descriptor;
        if let Some(buf) = out {
            if buf.len() < sd.len() {
                return Err(status(translate::status::BUFFER_OVERFLOW));
            }
            // SAFETY: `buf` has room for `sd.len()` bytes, checked above.
            unsafe {
                std::ptr::copy_nonoverlapping(sd.as_ptr(), buf.as_mut_ptr().cast::<u8>(), sd.len())
            };
        }
        Ok(sd.len() as u64)
    }
}

impl FileSystemContext for Adapter {
    type FileContext = Handle;

    fn get_security_by_name(
        &self,
        file_name: &U16CStr,
        security_descriptor: Option<&mut [c_void]>,
        _resolver: impl FnOnce(&U16CStr) -> Option<FileSecurity>,
    ) -> winfsp::Result<FileSecurity> {
        let path = path_of(file_name)?;
        let a = self.fs.getattr(&path).map_err(err)?;
        Ok(FileSecurity {
            reparse: false,
            sz_security_descriptor: self.give_descriptor(security_descriptor)?,
            attributes: attributes(a.kind, a.mode),
        })
    }

    fn open(
        &self,
        file_name: &U16CStr,
        _create_options: u32,
        _granted_access: u32,
        file_info: &mut OpenFileInfo,
    ) -> winfsp::Result<Handle> {
        let path = path_of(file_name)?;
        let a = self.attr(&path, file_info.as_mut())?;
        Ok(self.handle(path, a.kind))
    }

    fn create(
        &self,
        file_name: &U16CStr,
        create_options: u32,
        _granted_access: u32,
        _file_attributes: u32,
        _security_descriptor: Option<&[c_void]>,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        _extra_buffer_is_reparse_point: bool,
        file_info: &mut OpenFileInfo,
    ) -> winfsp::Result<Handle> {
        let path = path_of(file_name)?;
        let a = if create_options & FILE_DIRECTORY_FILE != 0 {
            self.fs.mkdir(&path, 0o700)
        } else {
            self.fs.create(&path, 0o600, true)
        }
        .map_err(err)?;
        fill(file_info.as_mut(), &a);
        Ok(self.handle(path, a.kind))
    }

    fn close(&self, context: Handle) {
        self.handles().remove(&context.id);
    }

    fn cleanup(&self, context: &Handle, _file_name: Option<&U16CStr>, flags: u32) {
        if flags & CLEANUP_DELETE == 0 {
            return;
        }
        let result = if context.dir {
            self.fs.rmdir(&context.path())
        } else {
            self.fs.unlink(&context.path())
        };
        // Windows has no way to report a failed cleanup.
        if let Err(e) = result {
            tracing::warn!(path = ?context.path(), error = %e, "deleting failed");
        }
    }

    fn flush(&self, context: Option<&Handle>, file_info: &mut FileInfo) -> winfsp::Result<()> {
        let Some(h) = context else {
            return Ok(());
        };
        if !h.dir {
            self.fs.fsync(&h.path()).map_err(err)?;
        }
        self.attr(&h.path(), file_info).map(|_| ())
    }

    fn get_file_info(&self, context: &Handle, file_info: &mut FileInfo) -> winfsp::Result<()> {
        self.attr(&context.path(), file_info).map(|_| ())
    }

    fn get_security(
        &self,
        _context: &Handle,
        security_descriptor: Option<&mut [c_void]>,
    ) -> winfsp::Result<u64> {
        self.give_descriptor(security_descriptor)
    }

    fn overwrite(
        &self,
        context: &Handle,
        _file_attributes: u32,
        _replace_file_attributes: bool,
        _allocation_size: u64,
        _extra_buffer: Option<&[u8]>,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<()> {
        let set = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        self.set(&context.path(), set, file_info)
    }

    fn read_directory(
        &self,
        context: &Handle,
        _pattern: Option<&U16CStr>,
        marker: DirMarker,
        buffer: &mut [u8],
    ) -> winfsp::Result<u32> {
        // Filled when a listing starts (no marker); later reads page through it.
        // `acquire` answers STATUS_SUCCESS as an error when the buffer needs no filling.
        let lock = match context.listing.acquire(marker.is_none(), None) {
            Ok(lock) => Some(lock),
            Err(e) if e.to_ntstatus() == 0 => None,
            Err(e) => return Err(e),
        };
        if let Some(lock) = lock {
            let path = context.path();
            let mut entries = Vec::new();
            if !path.as_os_str().is_empty() {
                let me = self.fs.getattr(&path).map_err(err)?;
                let parent = path.parent().unwrap_or(Path::new(""));
                let up = self.fs.getattr(parent).unwrap_or(me);
                entries.push((".".into(), me));
                entries.push(("..".into(), up));
            }
            entries.extend(self.fs.readdir(&path).map_err(err)?);
            let mut info: DirInfo = DirInfo::new();
            for (name, a) in entries {
                info.reset();
                // No terminating NUL: WinFsp takes the name's length from the entry's size.
                let wide: Vec<u16> = name.encode_wide().collect();
                if info.set_name_raw(wide.as_slice()).is_err() {
                    tracing::warn!(
                        ?name,
                        "a name too long for Windows is left out of a listing"
                    );
                    continue;
                }
                fill(info.file_info_mut(), &a);
                lock.write(&mut info)?;
            }
        }
        Ok(context.listing.read(marker, buffer))
    }

    fn rename(
        &self,
        _context: &Handle,
        file_name: &U16CStr,
        new_file_name: &U16CStr,
        replace_if_exists: bool,
    ) -> winfsp::Result<()> {
        let (from, to) = (path_of(file_name)?, path_of(new_file_name)?);
        self.fs
            .rename(&from, &to, !replace_if_exists)
            .map_err(err)?;
        // Open handles at or below the old name now reach the new one.
        for path in self.handles().values() {
            let mut p = path.write().unwrap_or_else(|e| e.into_inner());
            if let Ok(rest) = p.strip_prefix(&from) {
                let moved = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                *p = moved;
            }
        }
        Ok(())
    }

    fn set_basic_info(
        &self,
        context: &Handle,
        file_attributes: u32,
        _creation_time: u64,
        last_access_time: u64,
        last_write_time: u64,
        _last_change_time: u64,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<()> {
        let cur = self.fs.getattr(&context.path()).map_err(err)?;
        // INVALID_FILE_ATTRIBUTES (all bits) leaves them as they are.
        let mode = (file_attributes != u32::MAX && !context.dir)
            .then(|| mode_for(file_attributes, cur.mode))
            .filter(|&m| m != cur.mode);
        let set = SetAttr {
            size: None,
            atime: unix_ns(last_access_time).map(SetTime::At),
            mtime: unix_ns(last_write_time).map(SetTime::At),
            mode,
        };
        self.set(&context.path(), set, file_info)
    }

    fn set_delete(
        &self,
        context: &Handle,
        _file_name: &U16CStr,
        delete_file: bool,
    ) -> winfsp::Result<()> {
        // Only a check: the delete itself happens at cleanup.
        if delete_file && context.dir && !self.fs.readdir(&context.path()).map_err(err)?.is_empty()
        {
            return Err(status(translate::status::DIRECTORY_NOT_EMPTY));
        }
        Ok(())
    }

    fn set_file_size(
        &self,
        context: &Handle,
        new_size: u64,
        set_allocation_size: bool,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<()> {
        let cur = self.fs.getattr(&context.path()).map_err(err)?;
        // An allocation size below the file's size cuts it; above, nothing is preallocated.
        let size = if set_allocation_size {
            (new_size < cur.size).then_some(new_size)
        } else {
            Some(new_size)
        };
        let set = SetAttr {
            size,
            ..SetAttr::default()
        };
        self.set(&context.path(), set, file_info)
    }

    fn read(&self, context: &Handle, buffer: &mut [u8], offset: u64) -> winfsp::Result<u32> {
        let data = self
            .fs
            .read(&context.path(), offset, buffer.len() as u32)
            .map_err(err)?;
        if data.is_empty() && !buffer.is_empty() {
            return Err(status(translate::status::END_OF_FILE));
        }
        buffer[..data.len()].copy_from_slice(&data);
        Ok(data.len() as u32)
    }

    fn write(
        &self,
        context: &Handle,
        buffer: &[u8],
        offset: u64,
        write_to_eof: bool,
        constrained_io: bool,
        file_info: &mut FileInfo,
    ) -> winfsp::Result<u32> {
        let mut data = buffer;
        if constrained_io {
            // Paging I/O never extends the file.
            let size = self.fs.getattr(&context.path()).map_err(err)?.size;
            if offset >= size {
                return self.attr(&context.path(), file_info).map(|_| 0);
            }
            data = &data[..data.len().min((size - offset) as usize)];
        }
        let n = self
            .fs
            .write(&context.path(), offset, data, write_to_eof)
            .map_err(err)?;
        self.attr(&context.path(), file_info)?;
        Ok(n)
    }

    fn get_volume_info(&self, out: &mut VolumeInfo) -> winfsp::Result<()> {
        let s = self.fs.statfs().map_err(err)?;
        out.total_size = s.blocks * s.block_size as u64;
        out.free_size = s.blocks_available * s.block_size as u64;
        out.set_volume_label("ferry");
        Ok(())
    }
}

/// An error of WinFsp's (an NTSTATUS or a Windows error) as an I/O error saying what failed.
fn fail(what: &str, e: impl std::fmt::Debug) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e:?}"))
}

/// A live mount: WinFsp's host, which serves requests on its own threads.
pub struct Mounted {
    fs: Arc<Fs>,
    host: Mutex<FileSystemHost<Adapter>>,
}

/// Mounts `fs` at `mountpoint`, a directory path that must not exist (WinFsp creates it), and
/// returns once WinFsp serves it.
pub fn mount(fs: Arc<Fs>, mountpoint: &Path) -> std::io::Result<Mounted> {
    winfsp::winfsp_init().map_err(|e| {
        fail(
            "WinFsp is not installed (get it from https://winfsp.dev/rel/)",
            e,
        )
    })?;
    let mut volume = VolumeParams::new();
    volume
        .filesystem_name("ferry")
        .sector_size(4096)
        .sectors_per_allocation_unit(1)
        .max_component_length(255)
        .case_sensitive_search(true)
        .case_preserved_names(true)
        .unicode_on_disk(true)
        .persistent_acls(false)
        .post_cleanup_when_modified_only(true)
        // Attributes are trusted for a second: other machines' changes show within that.
        .file_info_timeout(1000);
    let adapter = Adapter {
        descriptor: descriptor_of(fs.upper().root()),
        fs: fs.clone(),
        open: Mutex::new(HashMap::new()),
        next: AtomicU64::new(1),
    };
    let mut host =
        FileSystemHost::new_with_options(FileSystemParams::default_params(volume), adapter)
            .map_err(|e| fail("starting WinFsp", e))?;
    host.mount(mountpoint.as_os_str())
        .map_err(|e| fail(&format!("mounting at {}", mountpoint.display()), e))?;
    host.start()
        .map_err(|e| fail("starting the dispatcher", e))?;
    Ok(Mounted {
        fs,
        host: Mutex::new(host),
    })
}

impl Mounted {
    /// The core behind the mount.
    pub fn fs(&self) -> &Arc<Fs> {
        &self.fs
    }

    /// Re-reads the store after a fetch; Windows re-asks for attributes within a second.
    pub fn refresh(&self) -> Result<usize, FsError> {
        Ok(self.fs.refresh()?.len())
    }

    /// Takes new `ferry link` entries (see [`Fs::set_links`]).
    pub fn set_links(&self, links: Vec<ferry_sync::project_key::Link>) -> Result<usize, FsError> {
        Ok(self.fs.set_links(links)?.len())
    }

    /// Takes the mount down and stops serving.
    pub fn unmount(&self) {
        let mut host = self.host.lock().unwrap_or_else(|e| e.into_inner());
        host.unmount();
        host.stop();
    }
}
