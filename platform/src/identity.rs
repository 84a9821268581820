//! Who this computer is, and which directory is which: what a state dir records so that a
//! copy of it (a restored backup, a cloned disk, a synced home) can tell it is one. Each OS
//! names its installation its own way; all of them survive renaming the computer.

use std::path::Path;

/// The OS's identity of this installation: Linux's machine-id (systemd or D-Bus), macOS's
/// platform UUID, Windows' MachineGuid (read from the registry). `None` where none can be read (a container without
/// one, say): copies are then told only by [`dir_identity`].
pub fn machine_identity() -> Option<String> {
    read_identity()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

#[cfg(all(unix, not(target_os = "macos")))]
fn read_identity() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
}

#[cfg(target_os = "macos")]
fn read_identity() -> Option<String> {
    let out = std::process::Command::new("/usr/sbin/ioreg")
        .args(["-rd1", "-c", "IOPlatformExpertDevice"])
        .output()
        .ok()?;
    value_after(&String::from_utf8_lossy(&out.stdout), "\"IOPlatformUUID\"")
}

#[cfg(windows)]
fn read_identity() -> Option<String> {
    use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ, RegGetValueW};
    let wide = |s: &str| s.encode_utf16().chain([0]).collect::<Vec<u16>>();
    let (key, value) = (
        wide(r"SOFTWARE\Microsoft\Cryptography"),
        wide("MachineGuid"),
    );
    let mut buf = [0u16; 128];
    let mut len = std::mem::size_of_val(&buf) as u32;
    // SAFETY: the key and value names are NUL-terminated, and `len` is `buf`'s size in bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let chars = (len as usize / 2).min(buf.len());
    Some(
        String::from_utf16_lossy(&buf[..chars])
            .trim_end_matches('\0')
            .to_string(),
    )
}

/// The value on the line that starts with `key` in a tool's listing: the last word after it,
/// unquoted (`"IOPlatformUUID" = "…"` from `ioreg`, `MachineGuid    REG_SZ    …` from `reg`).
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn value_after(listing: &str, key: &str) -> Option<String> {
    listing
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().last())
        .map(|v| v.trim_matches('"').to_string())
}

/// What tells this directory from a copy of it at the same path: its device and inode on
/// Unix, its volume's serial number and its file id on Windows (NTFS keeps both for the life
/// of the directory; a copy, a restore or a clone gets a new id).
pub fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(dir).ok()?;
        Some((md.dev(), md.ino()))
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::Storage::FileSystem::{
            BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, GetFileInformationByHandle,
        };
        // A directory opens only with backup semantics.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
            .open(dir)
            .ok()?;
        // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is valid, and the handle is open.
        let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
        let ok = unsafe { GetFileInformationByHandle(f.as_raw_handle(), &mut info) };
        (ok != 0).then(|| {
            (
                u64::from(info.dwVolumeSerialNumber),
                (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
            )
        })
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listings_of_ioreg_and_reg_give_their_value() {
        let ioreg = "+-o J314sAP  <class IOPlatformExpertDevice>\n    {\n      \"IOPlatformSerialNumber\" = \"C02X\"\n      \"IOPlatformUUID\" = \"1A2B-3C4D\"\n    }\n";
        assert_eq!(
            value_after(ioreg, "\"IOPlatformUUID\""),
            Some("1A2B-3C4D".into())
        );
        let reg = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Cryptography\r\n    MachineGuid    REG_SZ    6f1c-42\r\n\r\n";
        assert_eq!(value_after(reg, "MachineGuid"), Some("6f1c-42".into()));
        assert_eq!(value_after("nothing here", "MachineGuid"), None);
    }

    #[test]
    fn a_copy_of_a_directory_is_another_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir(&b).unwrap();
        assert_eq!(dir_identity(&a), dir_identity(&a));
        assert_ne!(dir_identity(&a), dir_identity(&b));
    }
}
