//! The two scanners: virtualise (find this machine's paths, escape token look-alikes) and expand
//! (replace tokens with this machine's spellings).

use super::boundary::{LEFT_CONTEXT, LOOKAHEAD, TAIL_MAX, convert_tail, left_ok, right_ok};
use super::mapping::{Mapping, Var};
use super::token::{self, ESCAPE, MAX_TOKEN_LEN, Sep, Spelling, Token};
use super::{Format, Stream, stream::Direction};
use crate::path_style::{PathStyle, SplitPath};
use aho_corasick::{AhoCorasick, Input, MatchKind, Span, packed};
use memchr::memmem;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Every separator spelling, in the order of the spelling table.
const SEPS: [Sep; 6] = [
    Sep::Native,
    Sep::Depth(0),
    Sep::Depth(1),
    Sep::Depth(2),
    Sep::Forward,
    Sep::Escaped,
];

/// Variables in order of preference when two have the same value.
const PRIORITY: [Var; 8] = [
    Var::ProjectRoot,
    Var::ClaudeDir,
    Var::ClaudeTmp,
    Var::Tmp,
    Var::Home,
    Var::HomeReal,
    Var::ProjectSlug,
    Var::RootSlug,
];

/// One spelling of one value that the virtualiser looks for.
struct Pattern {
    var: Var,
    spelling: Spelling,
    len: usize,
    /// Indexes of the other patterns that are proper prefixes of this one, longest first: the
    /// candidates when this one matches but its boundary does not.
    shorter: Vec<usize>,
}

/// A [`Mapping`] compiled for fast scanning; build once per mapping and reuse.
pub struct Codec {
    mapping: Mapping,
    /// `spellings[var][sep][lower][format]`: the bytes that expansion writes.
    spellings: Vec<Option<Vec<u8>>>,
    patterns: Vec<Pattern>,
    /// Finds pattern starts and `${` (the last pattern id).
    finder: Finder,
    token_start: memmem::Finder<'static>,
    /// Bytes a streaming scanner must hold back so that no decision lacks look-ahead.
    pub(super) window: usize,
}

fn table_index(var: Var, sep: usize, lower: bool, format: Format) -> usize {
    ((var as usize * SEPS.len() + sep) * 2 + lower as usize) * 2 + format.default_depth() as usize
}

fn sep_index(sep: Sep) -> usize {
    SEPS.iter()
        .position(|s| *s == sep)
        .expect("every Sep is in SEPS")
}

/// The bytes of `value` spelled as `spelling` in a file of `format`.
fn spell(var: Var, value: &str, spelling: Spelling, format: Format) -> Vec<u8> {
    if var.is_segment() {
        return value.as_bytes().to_vec();
    }
    let split = SplitPath::parse(value).expect("mapping values are absolute");
    let sep = match (split.style, spelling.sep) {
        (_, Sep::Escaped) => "\\/".to_string(),
        (PathStyle::Unix, _) | (PathStyle::Windows, Sep::Forward) => "/".to_string(),
        (PathStyle::Windows, Sep::Native) => "\\".repeat(1 << format.default_depth()),
        (PathStyle::Windows, Sep::Depth(d)) => "\\".repeat(1 << d),
    };
    let mut out = split.join_with(&sep).into_bytes();
    if spelling.lower_drive && split.style == PathStyle::Windows && !split.is_unc() {
        out[0] = out[0].to_ascii_lowercase();
    }
    out
}

/// The spellings a machine of `style` may have written its own value in.
fn own_spellings(style: PathStyle, var: Var) -> Vec<Spelling> {
    if var.is_segment() {
        return vec![Spelling::PLAIN];
    }
    let seps: &[Sep] = match style {
        PathStyle::Unix => &[Sep::Native, Sep::Escaped],
        PathStyle::Windows => &[
            Sep::Depth(0),
            Sep::Depth(1),
            Sep::Depth(2),
            Sep::Forward,
            Sep::Escaped,
        ],
    };
    let lowers: &[bool] = match style {
        PathStyle::Unix => &[false],
        PathStyle::Windows => &[false, true],
    };
    seps.iter()
        .flat_map(|&sep| {
            lowers
                .iter()
                .map(move |&lower_drive| Spelling { sep, lower_drive })
        })
        .collect()
}

/// The candidate search: SIMD Teddy when the pattern set allows it (a few GB/s), else a general
/// Aho-Corasick automaton. Both report the leftmost start and, there, the longest pattern.
enum Finder {
    Packed(packed::Searcher),
    General(AhoCorasick),
}

impl Finder {
    fn new(needles: &[Vec<u8>]) -> Finder {
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(needles)
            .build();
        match packed {
            Some(s) => Finder::Packed(s),
            None => Finder::General(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(needles)
                    .expect("a few short patterns always build"),
            ),
        }
    }

    /// The leftmost match at or after `from`: its start and pattern id.
    fn find(&self, hay: &[u8], from: usize) -> Option<(usize, usize)> {
        let m = match self {
            Finder::Packed(s) => s.find_in(hay, Span::from(from..hay.len())),
            Finder::General(ac) => ac.find(Input::new(hay).range(from..)),
        }?;
        Some((m.start(), m.pattern().as_usize()))
    }
}

/// How many compiled mappings [`Codec::shared`] keeps: a machine has a mapping per project
/// place, and a daemon that reads files of more places than this compiles again.
const SHARED: usize = 256;

impl Codec {
    /// `mapping` compiled, or the codec compiled for it before: compiling costs about as much
    /// as expanding a 4 KB file, and a first mount expands thousands of files per mapping.
    pub fn shared(mapping: &Mapping) -> Arc<Codec> {
        static MEMO: Mutex<Option<HashMap<Mapping, Arc<Codec>>>> = Mutex::new(None);
        let mut memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
        let memo = memo.get_or_insert_with(HashMap::new);
        if let Some(c) = memo.get(mapping) {
            return c.clone();
        }
        if memo.len() >= SHARED {
            memo.clear();
        }
        let codec = Arc::new(Codec::new(mapping));
        memo.insert(mapping.clone(), codec.clone());
        codec
    }

    /// Compiles `mapping`.
    pub fn new(mapping: &Mapping) -> Codec {
        let mut spellings = vec![None; Var::ALL.len() * SEPS.len() * 4];
        for var in Var::ALL {
            // A second spelling this machine lacks expands as the first.
            let value = mapping
                .get(var)
                .or_else(|| var.fallback().and_then(|f| mapping.get(f)));
            let Some(value) = value else {
                continue;
            };
            for (si, &sep) in SEPS.iter().enumerate() {
                for lower_drive in [false, true] {
                    for format in [Format::Text, Format::Json] {
                        let spelling = Spelling { sep, lower_drive };
                        spellings[table_index(var, si, lower_drive, format)] =
                            Some(spell(var, value, spelling, format));
                    }
                }
            }
        }
        // Patterns are spelled in the Text format, where `Depth(d)` is written explicitly, so
        // that each byte string is listed once whatever the file's format.
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        for var in PRIORITY {
            let Some(value) = mapping.get(var) else {
                continue;
            };
            for spelling in own_spellings(mapping.style(), var) {
                let b = spell(var, value, spelling, Format::Text);
                if !bytes.contains(&b) {
                    patterns.push(Pattern {
                        var,
                        spelling,
                        len: b.len(),
                        shorter: Vec::new(),
                    });
                    bytes.push(b);
                }
            }
        }
        for i in 0..patterns.len() {
            let mut shorter: Vec<usize> = (0..patterns.len())
                .filter(|&j| j != i && bytes[i].starts_with(&bytes[j]))
                .collect();
            shorter.sort_by_key(|&j| std::cmp::Reverse(bytes[j].len()));
            patterns[i].shorter = shorter;
        }
        let longest = bytes.iter().map(Vec::len).max().unwrap_or(0);
        let mut needles = bytes;
        needles.push(b"${".to_vec());
        let finder = Finder::new(&needles);
        Codec {
            mapping: mapping.clone(),
            spellings,
            patterns,
            finder,
            token_start: memmem::Finder::new(b"${").into_owned(),
            window: longest.max(MAX_TOKEN_LEN + TAIL_MAX) + LOOKAHEAD,
        }
    }

    /// The mapping this codec was compiled from.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Portable form of a whole input.
    pub fn virtualise(&self, input: &[u8], format: Format) -> Vec<u8> {
        self.convert(Direction::Virtualise, input, format)
    }

    /// Local form of a whole portable input.
    pub fn expand(&self, input: &[u8], format: Format) -> Vec<u8> {
        self.convert(Direction::Expand, input, format)
    }

    /// Converts a whole input in `direction` into a new buffer.
    pub fn convert(&self, direction: Direction, input: &[u8], format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + input.len() / 16);
        self.convert_into(direction, input, format, &mut out);
        out
    }

    /// Appends the conversion of a whole input to `out`; reusing `out` avoids allocation.
    pub fn convert_into(
        &self,
        direction: Direction,
        input: &[u8],
        format: Format,
        out: &mut Vec<u8>,
    ) {
        self.run(direction, input, 0, input.len(), format, out);
    }

    /// A streaming scanner in `direction`, for inputs too large to hold at once.
    pub fn stream(&self, direction: Direction, format: Format) -> Stream<'_> {
        Stream::new(self, direction, format)
    }

    /// The pattern to replace at `q`, given that the finder matched pattern `found` there.
    fn accept_at(&self, hay: &[u8], q: usize, found: usize) -> Option<&Pattern> {
        let first = &self.patterns[found];
        if !left_ok(hay, q, first.var.is_segment()) {
            // Segments and paths have different left rules; a shorter candidate of the other
            // kind is impossible (slugs hold no separator), so one check serves them all.
            return None;
        }
        std::iter::once(found)
            .chain(first.shorter.iter().copied())
            .map(|i| &self.patterns[i])
            .find(|p| right_ok(hay, q + p.len))
    }

    /// Virtualises positions `start..limit` of `hay`, reading context around them; returns where
    /// it stopped (past `limit` if a match straddles it).
    pub(super) fn virtualise_run(
        &self,
        hay: &[u8],
        start: usize,
        limit: usize,
        format: Format,
        out: &mut Vec<u8>,
    ) -> usize {
        let finder = &self.finder;
        let dollar = self.patterns.len();
        let (mut emitted, mut search) = (start, start);
        while search < limit {
            let Some((q, id)) = finder.find(hay, search) else {
                break;
            };
            if q >= limit {
                break;
            }
            if id == dollar {
                if let Some((_, len)) = token::parse(&hay[q..]) {
                    out.extend_from_slice(&hay[emitted..q]);
                    out.extend_from_slice(ESCAPE);
                    out.extend_from_slice(&hay[q + 1..q + len]);
                    emitted = q + len;
                    search = emitted;
                    continue;
                }
            } else if let Some(p) = self.accept_at(hay, q, id) {
                out.extend_from_slice(&hay[emitted..q]);
                token::write(out, p.var, p.spelling, format, self.windows());
                emitted = q + p.len;
                search = emitted;
                continue;
            }
            search = q + 1;
        }
        let end = limit.max(emitted);
        out.extend_from_slice(&hay[emitted..end]);
        end
    }

    fn windows(&self) -> bool {
        self.mapping.style() == PathStyle::Windows
    }

    /// The separators to rewrite in the rest of a path whose token is `spelling`, written on a
    /// Windows machine if `windows` (rule 6): `(from, to)`, or `None` when the writer's style is
    /// this machine's own (then the bytes stay exactly as written) or the spelling is unusual.
    fn tail_separators(
        &self,
        spelling: Spelling,
        windows: bool,
        format: Format,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let backslashes = |d: u8| vec![b'\\'; 1 << d];
        match (self.windows(), windows, spelling.sep) {
            (false, true, Sep::Native) => {
                Some((backslashes(format.default_depth()), b"/".to_vec()))
            }
            (false, true, Sep::Depth(d)) => Some((backslashes(d), b"/".to_vec())),
            (true, false, Sep::Native) => {
                Some((b"/".to_vec(), backslashes(format.default_depth())))
            }
            _ => None,
        }
    }

    /// Expands positions `start..limit` of `hay`; returns where it stopped.
    pub(super) fn expand_run(
        &self,
        hay: &[u8],
        start: usize,
        limit: usize,
        format: Format,
        out: &mut Vec<u8>,
    ) -> usize {
        let (mut emitted, mut search) = (start, start);
        while let Some(i) = self.token_start.find(&hay[search..]).map(|i| i + search) {
            if i >= limit {
                break;
            }
            let mut tail = None;
            let replacement: Option<(&[u8], usize)> = match token::parse(&hay[i..]) {
                Some((Token::Dollar, len)) => Some((b"$", len)),
                Some((Token::Var(var, spelling, windows), len)) => {
                    let idx =
                        table_index(var, sep_index(spelling.sep), spelling.lower_drive, format);
                    tail = self.tail_separators(spelling, windows, format);
                    self.spellings[idx].as_deref().map(|s| (s, len))
                }
                None => None,
            };
            match replacement {
                Some((bytes, len)) => {
                    out.extend_from_slice(&hay[emitted..i]);
                    out.extend_from_slice(bytes);
                    emitted = i + len;
                    if let Some((from, to)) = tail {
                        emitted = convert_tail(hay, emitted, &from, &to, out);
                    }
                    search = emitted;
                }
                None => search = i + 1,
            }
        }
        let end = limit.max(emitted);
        out.extend_from_slice(&hay[emitted..end]);
        end
    }

    /// Bytes of left context a streaming scanner keeps.
    pub(super) const LEFT_CONTEXT: usize = LEFT_CONTEXT;

    /// Runs one direction over a window; shared by the whole-input and streaming paths.
    pub(super) fn run(
        &self,
        direction: Direction,
        hay: &[u8],
        start: usize,
        limit: usize,
        format: Format,
        out: &mut Vec<u8>,
    ) -> usize {
        match direction {
            Direction::Virtualise => self.virtualise_run(hay, start, limit, format, out),
            Direction::Expand => self.expand_run(hay, start, limit, format, out),
        }
    }
}
