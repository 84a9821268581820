//! How paths map into a machine's branch, and the checks that keep a hostile remote's trees
//! from escaping the view.
//!
//! ```text
//! machine.json                              MachineRecord
//! p/<place dir>/project.json                ProjectRecord (key, root, cwd, slug)
//! p/<place dir>/t/d.<dir>/…/f.<file>/       one file:
//!     meta.json                             FileMeta
//!     data                                  portable bytes (plain files, and transcripts
//!                                           of one chunk), or
//!     c/<a>/<b>/<c>                          line-aligned chunks of a longer transcript
//!                                           (chunk k at a = k>>12, b = (k>>6)&63, c = k&63)
//! ```
//! A place dir is [`place_dir`] of the project key and the place's slug: one per place, so a
//! worktree and its main checkout keep their own files and records. Stores written before places
//! have one dir per key, [`project_dir`]; such a dir keeps serving the place its record names.
//! Directory and file names get `d.` and `f.` prefixes so a directory can never be mistaken for
//! a file's own tree, whatever the user's files are called.

use super::StoreError;

/// The root entry holding the machine record.
pub const MACHINE_FILE: &str = "machine.json";
/// The root tree holding the projects.
pub const PROJECTS: &str = "p";
/// A project's record.
pub const PROJECT_FILE: &str = "project.json";
/// A project's file tree.
pub const FILES: &str = "t";
/// A file's metadata.
pub const META: &str = "meta.json";
/// A plain file's content.
pub const DATA: &str = "data";
/// A transcript's chunk tree.
pub const CHUNKS: &str = "c";

/// Longest path component accepted from a remote (ext4's limit).
pub const MAX_NAME: usize = 255;
/// Deepest file path accepted from a remote, in components.
pub const MAX_DEPTH: usize = 16;
/// Longest path inside a project, in bytes: what every Linux machine still reaches under its
/// projects directory. The engine reads a file as `/proc/self/fd/N/<project dir>/<path>`, and
/// the kernel takes at most 4,096 bytes at once; a project dir's name is up to 255.
pub const MAX_PATH_BYTES: usize = 3800;

/// A path inside a project directory (`<sid>.jsonl`, `<sid>/tool-results/x.txt`), checked to
/// be relative, normalised and free of anything that could escape.
/// Shared, not copied: every read of a branch hands out each of its 10,000 files' paths again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(std::sync::Arc<str>);

impl RelPath {
    /// Checks and wraps a `/`-separated relative path.
    pub fn new(path: &str) -> Result<RelPath, StoreError> {
        Self::checked(path).map_err(|why| StoreError::BadPath(format!("{path:?}: {why}")))
    }

    /// Checks and wraps `path`, or says why the store cannot hold it, in words for the person
    /// whose file it is.
    pub fn checked(path: &str) -> Result<RelPath, String> {
        if path.is_empty() {
            return Err("empty".into());
        }
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() > MAX_DEPTH {
            return Err(format!(
                "too deep: more than {MAX_DEPTH} levels inside its project, the file's name included"
            ));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(format!(
                "too long: more than {MAX_PATH_BYTES} bytes inside its project"
            ));
        }
        match parts.iter().find_map(|p| check_name(p).err()) {
            Some(why) => Err(why),
            None => Ok(RelPath(path.into())),
        }
    }

    /// The path as a `/`-separated string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the file is a transcript (JSON Lines), stored as chunks and merged by line.
    pub fn is_lines(&self) -> bool {
        self.0.ends_with(".jsonl")
    }

    /// The path of this file's tree inside a project's `t/` tree.
    pub fn tree_path(&self) -> String {
        let parts: Vec<&str> = self.0.split('/').collect();
        let (file, dirs) = parts.split_last().expect("RelPath is never empty");
        let mut out = String::new();
        for d in dirs {
            out.push_str("d.");
            out.push_str(d);
            out.push('/');
        }
        out.push_str("f.");
        out.push_str(file);
        out
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Rejects names that are empty, `.`/`..`, too long, or hold separators or control bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("{name:?} is not a name"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("a name longer than {MAX_NAME} bytes"));
    }
    if name.contains(['/', '\\']) {
        return Err("a name holds / or \\, which Windows takes for a separator".into());
    }
    if name.chars().any(char::is_control) {
        return Err("a name holds a control character".into());
    }
    Ok(())
}

/// The store's directory name for a project key: readable, and unique per key thanks to a hash.
pub fn project_dir(key: &str) -> String {
    format!("{}-{:016x}", readable(key), fnv1a(key.as_bytes()))
}

/// The readable part of a directory name for `key`: safe characters, at most 80 of them.
fn readable(key: &str) -> String {
    let mut readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    readable.truncate(80);
    readable.trim_start_matches('.').to_string()
}

/// The store's directory name for one place of a project (key and slug): readable, and unique
/// per place thanks to a hash of both.
pub fn place_dir(key: &str, slug: &str) -> String {
    let mut id = Vec::with_capacity(key.len() + slug.len() + 1);
    id.extend_from_slice(key.as_bytes());
    id.push(0);
    id.extend_from_slice(slug.as_bytes());
    format!("{}-{:016x}", readable(key), fnv1a(&id))
}

/// Whether `name` is a right directory name for the record `(key, slug)`: its place dir, or the
/// per-key dir of a store written before places.
pub fn dir_matches(name: &str, key: &str, slug: &str) -> bool {
    name == place_dir(key, slug) || name == project_dir(key)
}

/// The tree path of chunk `k` inside a file's `c/` tree: three levels of at most 64 entries, so
/// that appending rewrites three small trees whatever the file's size.
pub fn chunk_path(k: u64) -> String {
    format!("{}/{}/{}", k >> 12, (k >> 6) & 63, k & 63)
}

/// One level of a chunk path (`0`..`63`), or `None` for anything else.
pub fn chunk_level(name: &str) -> Option<u64> {
    name.parse::<u64>()
        .ok()
        .filter(|&n| n < 64 && name == n.to_string())
}

/// FNV-1a: a stable 64-bit hash that never changes between versions (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_parts([bytes])
}

/// [`fnv1a`] of the parts joined, without joining them (an index build hashes every file's
/// versions so).
pub fn fnv1a_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    parts
        .into_iter()
        .flatten()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// 16 random hex digits, for ids no other install will pick (a machine, an engine run):
/// from `/dev/urandom`, else (Windows) the clock and the process id, hashed.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if filled.is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        bytes = fnv1a(seed.as_bytes()).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths_are_checked_and_mapped() {
        let p = RelPath::new("s1/tool-results/t.txt").unwrap();
        assert_eq!(p.tree_path(), "d.s1/d.tool-results/f.t.txt");
        assert!(RelPath::new("a.jsonl").unwrap().is_lines());
        for bad in ["", "/abs", "a//b", "../x", "a/./b", "a\\b", "a\nb"] {
            assert!(RelPath::new(bad).is_err(), "{bad:?}");
        }
        assert!(RelPath::new("d/".repeat(20).trim_end_matches('/')).is_err());
        // 16 levels of 250-byte names fit the depth, not the length.
        let name = "n".repeat(250);
        let long = vec![name.as_str(); 16].join("/");
        assert!(RelPath::checked(&long).is_err_and(|w| w.starts_with("too long")));
        let fits = vec![name.as_str(); 15].join("/");
        assert!(fits.len() <= MAX_PATH_BYTES && RelPath::new(&fits).is_ok());
    }

    #[test]
    fn project_dirs_are_distinct_and_safe() {
        let a = project_dir("github.com/o/r");
        let b = project_dir("github.com/o/r//sub");
        assert_ne!(a, b);
        assert!(a.starts_with("github.com_o_r-"));
        assert!(check_name(&project_dir("../../etc")).is_ok());
        assert!(!project_dir("..").starts_with('.'));
        let (w, m) = (place_dir("k", "-a-wt"), place_dir("k", "-a"));
        assert_ne!(w, m);
        assert!(w.starts_with("k-") && check_name(&w).is_ok());
        assert!(dir_matches(&w, "k", "-a-wt") && !dir_matches(&w, "k", "-a"));
        assert!(
            dir_matches(&project_dir("k"), "k", "-a"),
            "a dir from before places"
        );
    }

    /// Fingerprints name what the disk cache holds across restarts: hashing in parts must give
    /// what hashing the joined bytes gave (FNV-1a's published values).
    #[test]
    fn fnv1a_in_parts_is_fnv1a_of_the_parts_joined() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        let parts: [&[u8]; 4] = [b"fo", b"", b"oba", b"r"];
        assert_eq!(fnv1a_parts(parts), fnv1a(b"foobar"));
        assert_eq!(fnv1a_parts(std::iter::empty()), fnv1a(b""));
    }

    #[test]
    fn chunk_paths_round_trip() {
        for k in [0, 1, 63, 64, 4095, 4096, 262_143] {
            let p = chunk_path(k);
            let l: Vec<u64> = p.split('/').map(|n| chunk_level(n).unwrap()).collect();
            assert_eq!((l[0] << 12) | (l[1] << 6) | l[2], k);
        }
        assert_eq!(chunk_level("64"), None);
        assert_eq!(chunk_level("07"), None, "one spelling per level");
    }
}
