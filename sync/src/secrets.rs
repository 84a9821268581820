//! Secret scanning before anything leaves the machine: API keys, tokens and private keys in new
//! content, found as it is committed. The policy decides what happens: `warn` (commit as is and
//! report), `redact` (commit with each secret replaced by `[REDACTED:<kind>]`, every other byte
//! unchanged; the local file keeps it) or `block` (hold the file back, report).

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// What to do with a secret found in new content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Commit and push as is; list the finding in `ferry status`.
    #[default]
    Warn,
    /// Commit with the secret replaced; the local file keeps it.
    Redact,
    /// Commit nothing of that file until the secret is gone.
    Block,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Policy, String> {
        match s {
            "warn" => Ok(Policy::Warn),
            "redact" => Ok(Policy::Redact),
            "block" => Ok(Policy::Block),
            other => Err(format!(
                "{other:?} is not a secrets policy: warn, redact or block"
            )),
        }
    }
}

/// One secret found in a file, for `ferry status`. Never holds the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The project key.
    pub project: String,
    /// The file, inside the project directory.
    pub path: String,
    /// Byte offset of the secret in the local file.
    pub offset: u64,
    /// What it looks like (`anthropic-api-key`, `private-key`, ...).
    pub kind: String,
    /// What was done: `pushed`, `redacted` or `held back`.
    pub action: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

/// A secret's kind and where it is in the scanned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// What it looks like.
    pub kind: &'static str,
    /// Its byte range.
    pub range: std::ops::Range<usize>,
}

/// A token shape: a fixed prefix, then at least `min` bytes of its alphabet.
struct Shape {
    prefix: &'static str,
    kind: &'static str,
    min: usize,
    alphabet: fn(u8) -> bool,
}

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

const SHAPES: [Shape; 12] = [
    Shape {
        prefix: "sk-ant-",
        kind: "anthropic-api-key",
        min: 32,
        alphabet: word,
    },
    Shape {
        prefix: "sk-proj-",
        kind: "openai-api-key",
        min: 32,
        alphabet: word,
    },
    Shape {
        prefix: "AKIA",
        kind: "aws-access-key-id",
        min: 16,
        alphabet: upper_digit,
    },
    Shape {
        prefix: "ghp_",
        kind: "github-token",
        min: 36,
        alphabet: word,
    },
    Shape {
        prefix: "gho_",
        kind: "github-token",
        min: 36,
        alphabet: word,
    },
    Shape {
        prefix: "ghu_",
        kind: "github-token",
        min: 36,
        alphabet: word,
    },
    Shape {
        prefix: "ghs_",
        kind: "github-token",
        min: 36,
        alphabet: word,
    },
    Shape {
        prefix: "github_pat_",
        kind: "github-token",
        min: 40,
        alphabet: word,
    },
    Shape {
        prefix: "glpat-",
        kind: "gitlab-token",
        min: 20,
        alphabet: word,
    },
    Shape {
        prefix: "xoxb-",
        kind: "slack-token",
        min: 20,
        alphabet: word,
    },
    Shape {
        prefix: "AIza",
        kind: "google-api-key",
        min: 35,
        alphabet: word,
    },
    Shape {
        prefix: "-----BEGIN ",
        kind: "private-key",
        min: 0,
        alphabet: word,
    },
];

fn finder() -> &'static AhoCorasick {
    static F: OnceLock<AhoCorasick> = OnceLock::new();
    F.get_or_init(|| AhoCorasick::new(SHAPES.iter().map(|s| s.prefix)).expect("patterns"))
}

/// The end of a PEM private key block starting at `at` (`-----BEGIN ... PRIVATE KEY-----`):
/// through its `-----END ...-----` line, or to the end of the line (or JSON string) when it is
/// cut off. `None` if this BEGIN is not a private key (a certificate, say).
fn private_key_end(bytes: &[u8], at: usize) -> Option<usize> {
    use memchr::memmem::find;
    let label_from = at + "-----BEGIN ".len();
    let label_len = find(&bytes[label_from..], b"-----")?;
    let label = &bytes[label_from..label_from + label_len];
    if label_len > 40 || !label.ends_with(b"PRIVATE KEY") {
        return None;
    }
    let body = label_from + label_len + 5;
    let window = &bytes[body..bytes.len().min(body + 16 * 1024)];
    if let Some(e) = find(window, b"-----END ") {
        let after = body + e + "-----END ".len();
        let tail = &bytes[after..bytes.len().min(after + 64)];
        if let Some(close) = find(tail, b"-----") {
            return Some(after + close + 5);
        }
    }
    let rest = &bytes[body..];
    Some(
        body + rest
            .iter()
            .position(|&b| b == b'\n' || b == b'"')
            .unwrap_or(rest.len()),
    )
}

/// Every secret in `bytes`, in order, not overlapping.
pub fn scan(bytes: &[u8]) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for m in finder().find_iter(bytes) {
        let shape = &SHAPES[m.pattern().as_usize()];
        let start = m.start();
        if hits.last().is_some_and(|h| h.range.end > start) {
            continue;
        }
        // A token starts a word: `xsk-ant-...` is something else; `\nsk-ant-...` (after a JSON
        // escape) is not.
        let escaped = start >= 2 && bytes[start - 2] == b'\\';
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() && !escaped {
            continue;
        }
        let end = if shape.kind == "private-key" {
            match private_key_end(bytes, start) {
                Some(e) => e,
                None => continue,
            }
        } else {
            let body = bytes[m.end()..]
                .iter()
                .take_while(|&&b| (shape.alphabet)(b))
                .count();
            if body < shape.min {
                continue;
            }
            m.end() + body
        };
        hits.push(Hit {
            kind: shape.kind,
            range: start..end,
        });
    }
    hits
}

/// `bytes` with each hit replaced by `[REDACTED:<kind>]`; everything else unchanged.
pub fn redact(bytes: &[u8], hits: &[Hit]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for h in hits {
        out.extend_from_slice(&bytes[at..h.range.start]);
        out.extend_from_slice(format!("[REDACTED:{}]", h.kind).as_bytes());
        at = h.range.end;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<&'static str> {
        scan(s.as_bytes()).into_iter().map(|h| h.kind).collect()
    }

    #[test]
    fn finds_keys_and_tokens_and_nothing_else() {
        let key = format!("sk-ant-api03-{}", "A1b2".repeat(20));
        let gh = format!("ghp_{}", "x".repeat(36));
        let aws = "AKIAIOSFODNN7EXAMPLE";
        let text = format!(r#"{{"t":"export KEY={key} and {gh}; {aws}"}}"#);
        assert_eq!(
            kinds(&text),
            ["anthropic-api-key", "github-token", "aws-access-key-id"]
        );
        // Too short, or inside a longer word, or ordinary text: nothing.
        for s in [
            "sk-test",
            "sk-ant-short",
            "the task-ant-xyz",
            "ghp_short",
            "AKIA lowercase",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "mask-ant-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(kinds(s).is_empty(), "{s}");
        }
    }

    #[test]
    fn a_private_key_is_found_whole_in_text_and_in_json() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----";
        let text = format!("before\n{pem}\nafter");
        let hits = scan(text.as_bytes());
        assert_eq!(hits.len(), 1);
        assert_eq!(&text[hits[0].range.clone()], pem);
        let json = serde_json::to_string(&text).unwrap();
        let hits = scan(json.as_bytes());
        assert_eq!(hits.len(), 1, "{json}");
        let redacted = String::from_utf8(redact(json.as_bytes(), &hits)).unwrap();
        let back: String = serde_json::from_str(&redacted).unwrap();
        assert_eq!(back, "before\n[REDACTED:private-key]\nafter");
    }

    #[test]
    fn redaction_keeps_every_other_byte() {
        let key = format!("sk-ant-{}", "k".repeat(40));
        let line = format!("{{\"a\":\"x {key} y\",\"b\":\"é\\u0000\"}}\n");
        let hits = scan(line.as_bytes());
        let out = redact(line.as_bytes(), &hits);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            line.replace(&key, "[REDACTED:anthropic-api-key]")
        );
        assert_eq!("redact".parse::<Policy>(), Ok(Policy::Redact));
        assert!("yes".parse::<Policy>().is_err());
    }
}
