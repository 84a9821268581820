//! Who this computer is, and which directory is which: what a state dir records so that a
//! copy of it (a restored backup, a cloned disk, a synced home) can tell it is one. Each OS
//! names its installation its own way; all of them survive renaming the computer.

use std::path::Path;

/// The OS's identity of this installation: Linux's machine-id (systemd or D-Bus), macOS's
/// platform UUID, Windows' MachineGuid. `None` where none can be read (a container without
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
    let out = std::process::Command::new("reg")
        .args([
            "query",
            r"HKLM\SOFTWARE\Microsoft\Cryptography",
            "/v",
            "MachineGuid",
        ])
        .output()
        .ok()?;
    value_after(&String::from_utf8_lossy(&out.stdout), "MachineGuid")
}

/// The value on the line that starts with `key` in a tool's listing: the last word after it,
/// unquoted (`"IOPlatformUUID" = "…"` from `ioreg`, `MachineGuid    REG_SZ    …` from `reg`).
#[cfg_attr(all(unix, not(target_os = "macos")), allow(dead_code))]
fn value_after(listing: &str, key: &str) -> Option<String> {
    listing
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().last())
        .map(|v| v.trim_matches('"').to_string())
}

/// What tells this directory from a copy of it at the same path: its device and inode on
/// Unix, its volume-independent creation time on Windows (a copy is created anew, unless a
/// tool carries creation times over; a clone is then found by what it pushes).
pub fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    let md = std::fs::metadata(dir).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((md.dev(), md.ino()))
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        Some((0, md.creation_time()))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = md;
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
