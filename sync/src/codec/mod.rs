//! The path codec: turns file bytes into *portable form* by replacing this machine's absolute
//! paths with placeholders (`${HOME}`, `${PROJECT_ROOT}`, …), and expands portable form into any
//! machine's local form. The store holds only portable form.
//!
//! # Rules (each decided here, each tested in `tests.rs`)
//! 1. **Exact round trip.** `expand(virtualise(x, m), m) == x` for every byte string: invalid
//!    UTF-8, NUL runs and torn lines pass through as bytes. Text that already looks like a token
//!    is escaped: a `$` that starts a recognised token is written `${$}` (then the rest verbatim).
//!    Only the fixed token grammar counts, so `${FOO}` or `$HOME` stay untouched.
//! 2. **Boundaries.** A path matches only where it is a whole path:
//!    - on the left, the byte before it must not continue a name (letters, digits, `_-.~+%@#$`,
//!      any non-ASCII byte) nor be a separator; exceptions: the `n`/`t`/`r` of a JSON escape
//!      (`\n/home/al`), and `scheme://` (`file:///home/al`);
//!    - on the right, the byte after it must be a separator (`/`, `\`, which also covers JSON
//!      escapes such as `\n` and `\"`) or a byte that cannot continue a name.
//! 3. **Trailing punctuation.** `:`, `)`, `,`, `;`, quotes, backtick, brackets and white space end
//!    a path. A run of `.` (up to 3) ends it only when the byte after the run cannot continue a
//!    name, so `/home/al.` and `/home/al...` in prose match, and `/home/al.bak` and
//!    `/home/al..x` do not.
//! 4. **Longest wins.** Among the values that match at one place with valid boundaries, the
//!    longest wins (`${PROJECT_ROOT}` before `${HOME}`). Equal values prefer the more specific
//!    variable (project root, config dir, Claude temp, temp, home).
//! 5. **Spellings.** Each value is recognised as written natively, with JSON's `\/`, and for
//!    Windows values with `\`, `\\` or `\\\\` separators, with `/`, and with either drive-letter
//!    case. The token records the spelling (see [`token`]) so the round trip is exact; on another
//!    machine the same spelling is rebuilt in that machine's style. Backslash depth defaults to the
//!    [`Format`]: inside JSON files (`.json`, `.jsonl`) a Windows path is written with `\\`, so a
//!    Linux path expanded for Windows stays valid JSON.
//! 6. **The rest of a path takes the reader's separators.** Tokens written on a Windows machine
//!    carry the `w` flag. Expanding on a machine of the other style rewrites the separators of the
//!    rest of the path (a run of name bytes and `.` joined by separators, up to 1 KiB, stopping at
//!    the next token): Windows `${PROJECT_ROOT:w}\\src\\a.rs` becomes `/home/al/src/proj/src/a.rs`
//!    on Linux, and Linux `${PROJECT_ROOT}/src/a.rs` becomes `C:\\Users\\bob\\proj\\src\\a.rs` on
//!    Windows. Expanding on a machine of the writer's style leaves the rest as written, so rule 1
//!    holds; a path that went to the other style and back comes back as it was when its separators
//!    were uniform.
//! 7. **Slugs are segments.** `${PROJECT_SLUG}` and `${ROOT_SLUG}` match only as a whole path
//!    component: after a separator and followed by a separator or a non-name byte.
//! 8. **Streaming.** [`Stream`] gives byte-for-byte the result of the whole input at once, for any
//!    chunking: every decision looks at most [`token::MAX_TOKEN_LEN`] or the longest pattern (plus
//!    4 bytes) ahead and 16 bytes back.
//!
//! Not recognised (documented limits): paths inside `\uXXXX`-escaped JSON, Windows paths with
//! mixed separators in the matched prefix, case variants of Windows paths beyond the drive letter, and Unix paths whose
//! names need JSON escaping (`"` or `\` in a directory name).

mod boundary;
mod mapping;
mod scan;
mod stream;
pub mod token;

#[cfg(test)]
mod tests;

pub use mapping::{Mapping, MappingError, Var};
pub use scan::Codec;
pub use stream::{Direction, Stream};

/// What kind of file the bytes come from; decides the default escape depth of Windows paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain text: paths are written raw.
    Text,
    /// JSON or JSON Lines: paths sit inside JSON strings, so `\` is written `\\`.
    Json,
}

impl Format {
    /// The format of a file, judged by its name.
    pub fn for_file_name(name: &str) -> Format {
        if name.ends_with(".jsonl") || name.ends_with(".json") {
            Format::Json
        } else {
            Format::Text
        }
    }

    /// How many times a path's backslashes are escaped by default in this format.
    pub fn default_depth(self) -> u8 {
        match self {
            Format::Text => 0,
            Format::Json => 1,
        }
    }
}

/// Portable form of `input`, virtualised with this machine's `mapping`.
pub fn virtualise(input: &[u8], mapping: &Mapping, format: Format) -> Vec<u8> {
    Codec::shared(mapping).virtualise(input, format)
}

/// Local form of portable `input` for the machine described by `mapping`.
pub fn expand(input: &[u8], mapping: &Mapping, format: Format) -> Vec<u8> {
    Codec::shared(mapping).expand(input, format)
}
