//! Claude Code's project directory name ("slug") for a working directory. Computed exactly as
//! the client does, never decoded: the mapping is lossy (`/a/b_c`, `/a/b.c` and `/a-b/c` all give
//! `-a-b-c`), so ferry always goes from a path to a slug.

/// Slugs longer than this many UTF-16 code units are cut and given a hash suffix.
pub const MAX_SLUG_UNITS: usize = 200;

/// The slug of `path` (which the client takes after `realpath`): every UTF-16 code unit outside
/// `[A-Za-z0-9]` becomes `-`; past 200 units, the first 200, `-`, and the base-36 absolute value
/// of Java's `String.hashCode` of the unsanitised path.
pub fn slug(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for unit in path.encode_utf16() {
        match u8::try_from(unit) {
            Ok(b) if b.is_ascii_alphanumeric() => out.push(b as char),
            _ => out.push('-'),
        }
    }
    if out.len() <= MAX_SLUG_UNITS {
        return out;
    }
    out.truncate(MAX_SLUG_UNITS);
    out.push('-');
    out.push_str(&base36(u64::from(java_hash(path).unsigned_abs())));
    out
}

/// Whether a directory named `dir` is where the client would look for `path`'s sessions: the
/// exact slug, or for long paths any directory with the same 200-unit prefix and a `-` suffix
/// (the client accepts those, since the hash differs between its runtimes).
pub fn dir_matches(dir: &str, path: &str) -> bool {
    let want = slug(path);
    if dir == want {
        return true;
    }
    want.len() > MAX_SLUG_UNITS
        && dir.len() > MAX_SLUG_UNITS + 1
        && dir.as_bytes()[..=MAX_SLUG_UNITS] == want.as_bytes()[..=MAX_SLUG_UNITS]
}

/// Java's `String.hashCode`: `h = 31*h + unit` over UTF-16 code units, wrapping at 32 bits.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_replace_every_non_alphanumeric_unit() {
        assert_eq!(slug("/home/al/my_proj.v2"), "-home-al-my-proj-v2");
        assert_eq!(slug("/a/b_c"), slug("/a-b/c"));
        assert_eq!(slug("/tmp/é"), "-tmp--");
        // An astral character is two UTF-16 code units, so two dashes.
        assert_eq!(slug("/tmp/😀x"), "-tmp---x");
        assert_eq!(slug(r"C:\Users\bob\proj"), "C--Users-bob-proj");
    }

    #[test]
    fn java_hash_matches_known_values() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("hello"), 99_162_322);
        // Wraps like Java's int.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(base36(u64::from(i32::MIN.unsigned_abs())), "zik0zk");
    }

    #[test]
    fn long_paths_get_a_hash_suffix() {
        let path = format!("/home/al/{}", "d".repeat(300));
        let s = slug(&path);
        assert_eq!(&s[..200], &slug(&path)[..200]);
        assert_eq!(
            s.len(),
            201 + base36(u64::from(java_hash(&path).unsigned_abs())).len()
        );
        assert!(dir_matches(&format!("{}-otherhash", &s[..200]), &path));
        assert!(!dir_matches(&s[..200], &path));
        assert!(!dir_matches("-home-al", "/home/al/x"));
    }
}
