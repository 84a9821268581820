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

/// The most bytes of a path's rest after a token whose separators are rewritten (rule 6). It
/// bounds the look-ahead of streaming; longer rests keep their separators from there on.
pub(super) const TAIL_MAX: usize = 1024;

/// Copies the rest of a path that starts at `i` to `out`, writing `to` for each separator
/// `from`; returns where the rest ended. The rest is a run of name bytes and `.`, with
/// separators between them; it ends at anything else, at a `$` (a token or its escape, handled by
/// the caller), or after [`TAIL_MAX`] bytes.
pub(super) fn convert_tail(
    hay: &[u8],
    mut i: usize,
    from: &[u8],
    to: &[u8],
    out: &mut Vec<u8>,
) -> usize {
    let in_tail = |b: u8| (is_name_byte(b) || b == b'.') && b != b'$';
    let end = hay.len().min(i + TAIL_MAX);
    while i < end {
        let sep_then_name = hay[i..].starts_with(from)
            && i + from.len() < end
            && (in_tail(hay[i + from.len()]) || hay[i + from.len()] == b'$');
        if sep_then_name {
            out.extend_from_slice(to);
            i += from.len();
        } else if in_tail(hay[i]) {
            out.push(hay[i]);
            i += 1;
        } else {
            break;
        }
    }
    i
}
