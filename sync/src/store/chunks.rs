//! Line-aligned chunking of transcripts, so that a commit costs O(bytes changed): appending to a
//! 200 MB transcript rewrites one small chunk and three small trees.
//!
//! Chunk `k` starts at `b_k`, the first line start at or after `k * CHUNK` (`b_0 = 0`), and ends
//! where the next non-empty chunk starts. Boundaries depend only on the bytes before them, so a
//! change at offset `from` leaves every chunk that starts at or before `from` and ends before it
//! untouched, and each chunk holds whole lines (but a torn last line), which the codec converts
//! exactly as it would the whole file.

use memchr::memchr;

/// Target chunk size of the local form.
pub const CHUNK: u64 = 16 * 1024;

/// One chunk: its index and its byte range in the local file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's index (`start / CHUNK`); indexes are sparse when a line spans several.
    pub index: u64,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The first line start at or after `at` in `data` (whose first byte is at file offset `base`),
/// or `None` if there is none within `data`.
fn line_start_at_or_after(data: &[u8], base: u64, at: u64) -> Option<u64> {
    if at == 0 {
        return Some(0);
    }
    let from = usize::try_from(at - 1 - base).ok()?;
    let rel = memchr(b'\n', data.get(from..)?)?;
    Some(base + (from + rel) as u64 + 1)
}

/// Splits `data`, which holds the file from offset `start` (a chunk start) to its end, into the
/// chunks from `start` on.
pub fn split(data: &[u8], start: u64) -> Vec<Chunk> {
    let end = start + data.len() as u64;
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let index = s / CHUNK;
        let next = line_start_at_or_after(data, start, (index + 1) * CHUNK)
            .filter(|&n| n < end)
            .unwrap_or(end);
        out.push(Chunk {
            index,
            start: s,
            end: next,
        });
        s = next;
    }
    out
}

/// Where re-chunking must start after the file changed at offset `from`: the chunk start at or
/// before `from` that bytes before `from` decide. `read` returns the file bytes in a range.
pub fn restart_point(
    from: u64,
    mut read: impl FnMut(u64, u64) -> std::io::Result<Vec<u8>>,
) -> std::io::Result<u64> {
    let mut k = from / CHUNK;
    while k > 0 {
        let lo = k * CHUNK - 1;
        if lo < from {
            // A line start past the next chunk's window would have been found by the step
            // before, so one window is enough: the search stays linear in the line's length.
            let bytes = read(lo, from.min((k + 1) * CHUNK))?;
            if let Some(s) = line_start_at_or_after(&bytes, lo, k * CHUNK).filter(|&s| s <= from) {
                return Ok(s);
            }
        }
        k -= 1;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(n: usize, len: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("{:0>w$}\n", i, w = len - 1).into_bytes())
            .collect()
    }

    #[test]
    fn chunks_are_line_aligned_and_cover_the_file() {
        let data = lines(3000, 100);
        let chunks = split(&data, 0);
        assert_eq!(chunks[0].start, 0);
        assert_eq!(chunks.last().unwrap().end, data.len() as u64);
        for w in chunks.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert_eq!(data[w[1].start as usize - 1], b'\n');
            assert_eq!(w[1].index, w[1].start / CHUNK);
        }
        assert!(chunks.iter().all(|c| c.end - c.start <= CHUNK + 100));
    }

    #[test]
    fn a_long_line_makes_one_chunk_and_sparse_indexes() {
        let mut data = vec![b'x'; 3 * CHUNK as usize];
        data.push(b'\n');
        data.extend_from_slice(b"tail\n");
        let chunks = split(&data, 0);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].index, 3);
    }

    proptest! {
        /// Appending or changing bytes at `from` never changes a chunk that ends at or before the
        /// restart point, and re-chunking from there equals chunking the whole new file.
        #[test]
        fn restart_reproduces_whole_file_chunking(
            line_lens in proptest::collection::vec(1usize..40_000, 1..12),
            cut in 0.0f64..1.0, extra in proptest::collection::vec(any::<u8>(), 0..30_000),
        ) {
            let old: Vec<u8> = line_lens.iter().flat_map(|&n| { let mut l = vec![b'a'; n - 1]; l.push(b'\n'); l }).collect();
            let from = (old.len() as f64 * cut) as u64;
            let mut new = old[..from as usize].to_vec();
            new.extend_from_slice(&extra);
            let r = restart_point(from, |a, b| Ok(new[a as usize..b as usize].to_vec())).unwrap();
            prop_assert!(r <= from);
            let whole_old = split(&old, 0);
            let whole_new = split(&new, 0);
            let kept: Vec<_> = whole_old.iter().filter(|c| c.end <= r).copied().collect();
            let mut rebuilt = kept.clone();
            rebuilt.extend(split(&new[r as usize..], r));
            prop_assert_eq!(rebuilt, whole_new);
        }
    }
}
