//! Where a path may start and end (rules 2, 3 and 7 of the codec).

/// How far back any boundary decision looks.
pub(super) const LEFT_CONTEXT: usize = 16;

/// How far past the end of a match any boundary decision looks.
pub(super) const LOOKAHEAD: usize = 4;

/// Bytes that can continue a file name, so a path next to them is part of a longer one.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'_' | b'-' | b'~' | b'+' | b'%' | b'@' | b'#' | b'$')
        || b >= 0x80
}

/// Whether the byte at `i` is escaped by an odd run of backslashes (counted within the context).
fn is_escaped(hay: &[u8], i: usize) -> bool {
    let from = i.saturating_sub(LEFT_CONTEXT - 1);
    let run = hay[from..i]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    run % 2 == 1
}

/// Whether a path (or, with `segment`, a slug component) may start at `q`.
pub(super) fn left_ok(hay: &[u8], q: usize, segment: bool) -> bool {
    let Some(&prev) = q.checked_sub(1).and_then(|i| hay.get(i)) else {
        return !segment;
    };
    if segment {
        return prev == b'/' || prev == b'\\';
    }
    match prev {
        b'/' => q >= 3 && &hay[q - 3..q] == b"://",
        b'\\' | b'.' => false,
        b'n' | b't' | b'r' => is_escaped(hay, q - 1),
        b => !is_name_byte(b),
    }
}

/// Whether a path (or slug) that ends just before `e` ends at a boundary.
pub(super) fn right_ok(hay: &[u8], e: usize) -> bool {
    match hay.get(e) {
        None | Some(b'/' | b'\\') => true,
        Some(b'.') => {
            let mut after = hay[e..].iter().take(LOOKAHEAD).skip_while(|&&b| b == b'.');
            after.next().is_none_or(|&b| !is_name_byte(b))
        }
        Some(&b) => !is_name_byte(b),
    }
}
