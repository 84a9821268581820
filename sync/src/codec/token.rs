//! The placeholder tokens of the portable form: `${NAME}` or `${NAME:FLAGS}`, and the escape
//! `${$}` for a literal `$` that would otherwise start a token.
//!
//! Flags record how the source machine spelled the path, relative to the file's [`Format`], so
//! that expanding on the same machine gives back the exact bytes:
//! - a digit `0`–`2`: backslash separators written `2^d` times (`\`, `\\`, `\\\\`), present only
//!   when it differs from the format's default depth (text 0, JSON 1);
//! - `f`: forward slashes on a Windows path (`C:/Users/bob`);
//! - `s`: JSON's escaped slash (`\/home\/al`);
//! - `l`: a lower-case drive letter;
//! - `w`: written on a Windows machine, so the separators in the rest of the path are Windows
//!   ones (see rule 6 in the module above).

use super::Format;
use super::mapping::Var;

/// The escape token: stands for one literal `$`.
pub const ESCAPE: &[u8] = b"${$}";

/// The longest possible token, for look-ahead windows.
pub const MAX_TOKEN_LEN: usize = 2 + 12 + 1 + 4 + 1;

/// How the separators of a matched path were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sep {
    /// The machine's own separator, at the format's default escape depth.
    Native,
    /// Backslashes at an explicit escape depth (Windows only): `2^d` backslashes each.
    Depth(u8),
    /// `/` on a Windows path.
    Forward,
    /// `\/`, JSON's optional escape of `/`.
    Escaped,
}

/// How one occurrence of a path was spelled; rebuilt exactly on expansion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Spelling {
    /// The separators.
    pub sep: Sep,
    /// A Windows drive letter written in lower case.
    pub lower_drive: bool,
}

impl Spelling {
    /// The plain spelling: native separators, upper-case drive.
    pub const PLAIN: Spelling = Spelling {
        sep: Sep::Native,
        lower_drive: false,
    };
}

/// A parsed token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// `${$}`.
    Dollar,
    /// A placeholder with the spelling of the original, and whether a Windows machine wrote it.
    Var(Var, Spelling, bool),
}

/// Writes the token for `var` spelled as `spelling` in a file of `format`, by a Windows machine
/// if `windows`.
pub fn write(out: &mut Vec<u8>, var: Var, spelling: Spelling, format: Format, windows: bool) {
    out.extend_from_slice(b"${");
    out.extend_from_slice(var.name().as_bytes());
    let mut flags = [0u8; 4];
    let mut n = 0;
    match spelling.sep {
        Sep::Native => {}
        Sep::Depth(d) if d == format.default_depth() => {}
        Sep::Depth(d) => {
            flags[n] = b'0' + d;
            n += 1;
        }
        Sep::Forward | Sep::Escaped => {
            flags[n] = if spelling.sep == Sep::Forward {
                b'f'
            } else {
                b's'
            };
            n += 1;
        }
    }
    if spelling.lower_drive {
        flags[n] = b'l';
        n += 1;
    }
    if windows {
        flags[n] = b'w';
        n += 1;
    }
    if n > 0 {
        out.push(b':');
        out.extend_from_slice(&flags[..n]);
    }
    out.push(b'}');
}

/// Parses a token at the start of `s`: the token and its length, or `None` if `s` does not start
/// with one. Strict: only the spellings [`write`] produces (and the escape) are tokens, so that
/// "is a token" means the same thing to the virtualiser and the expander.
pub fn parse(s: &[u8]) -> Option<(Token, usize)> {
    if !s.starts_with(b"${") {
        return None;
    }
    if s.starts_with(ESCAPE) {
        return Some((Token::Dollar, ESCAPE.len()));
    }
    let body = &s[2..s.len().min(MAX_TOKEN_LEN)];
    let end = memchr::memchr(b'}', body)?;
    let body = &body[..end];
    let (name, flags) = match memchr::memchr(b':', body) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let var = Var::from_name(name)?;
    let mut spelling = Spelling::PLAIN;
    let mut windows = false;
    if let Some(flags) = flags {
        let mut rest = flags;
        if let [d @ b'0'..=b'2', tail @ ..] = rest {
            spelling.sep = Sep::Depth(d - b'0');
            rest = tail;
        } else if let [c @ (b'f' | b's'), tail @ ..] = rest {
            spelling.sep = if *c == b'f' {
                Sep::Forward
            } else {
                Sep::Escaped
            };
            rest = tail;
        }
        if let [b'l', tail @ ..] = rest {
            spelling.lower_drive = true;
            rest = tail;
        }
        if let [b'w', tail @ ..] = rest {
            windows = true;
            rest = tail;
        }
        if flags.is_empty() || !rest.is_empty() {
            return None;
        }
    }
    Some((Token::Var(var, spelling, windows), 2 + end + 1))
}
