//! Chunked codec runs for large files: the same bytes out as the whole input at once.

use super::{Codec, Format};

/// Which way a [`Stream`] converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Local form to portable form.
    Virtualise,
    /// Portable form to local form.
    Expand,
}

/// A codec run fed in chunks. Holds back only the bytes whose conversion could depend on input
/// not yet seen, plus a little left context, so memory stays bounded by the codec's window.
pub struct Stream<'c> {
    codec: &'c Codec,
    direction: Direction,
    format: Format,
    buf: Vec<u8>,
    /// Start of the not-yet-converted bytes in `buf`; what precedes it is left context.
    pos: usize,
}

impl<'c> Stream<'c> {
    pub(super) fn new(codec: &'c Codec, direction: Direction, format: Format) -> Stream<'c> {
        Stream {
            codec,
            direction,
            format,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Converts what it can of `chunk`, appending the result to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.buf.extend_from_slice(chunk);
        let limit = self.buf.len().saturating_sub(self.codec.window);
        if limit > self.pos {
            let (codec, dir, fmt) = (self.codec, self.direction, self.format);
            self.pos = codec.run(dir, &self.buf, self.pos, limit, fmt, out);
        }
        let keep_from = self.pos.saturating_sub(Codec::LEFT_CONTEXT);
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.pos -= keep_from;
        }
    }

    /// Converts the rest, at end of input.
    pub fn finish(self, out: &mut Vec<u8>) {
        let len = self.buf.len();
        self.codec
            .run(self.direction, &self.buf, self.pos, len, self.format, out);
    }
}
