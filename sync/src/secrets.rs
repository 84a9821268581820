//! Secret scanning before anything leaves the machine: API keys, tokens and private keys in new
//! content, found as it is committed. The policy decides what happens: `warn` (commit as is and
//! report), `redact` (commit with each secret replaced by `[REDACTED:<kind>]`, every other byte
//! unchanged; the local file keeps it; the default) or `block` (hold the file back, report).
//!
//! The rules follow gitleaks' (MIT-licensed) for the token shapes an agent's transcript meets
//! most: each is a fixed keyword, found for all rules in one pass (Aho-Corasick), then checked
//! by its shape: a token body of an alphabet and a length, a PEM private key, a JWT, or the
//! password of a URL (`postgres://user:pw@host`).

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// What to do with a secret found in new content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Commit and push as is; list the finding in `ferry status`.
    Warn,
    /// Commit with the secret replaced; the local file keeps it. The default: nothing a
    /// scanner recognises leaves the machine unless the user says so.
    #[default]
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

/// A token shape: a fixed prefix, then at least `min` bytes of its alphabet (the body of a
/// structured shape is checked by its own code: see [`scan`]).
struct Shape {
    prefix: &'static str,
    kind: &'static str,
    min: usize,
    alphabet: fn(u8) -> bool,
}

/// A shape with a fixed prefix and a body of `min` or more bytes of `alphabet`.
const fn token(
    prefix: &'static str,
    kind: &'static str,
    min: usize,
    alphabet: fn(u8) -> bool,
) -> Shape {
    Shape {
        prefix,
        kind,
        min,
        alphabet,
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

fn base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn dotted(b: u8) -> bool {
    word(b) || b == b'.' || b == b'='
}

/// The kinds whose body is checked by code of its own, not by an alphabet.
const PRIVATE_KEY: &str = "private-key";
const JWT: &str = "jwt";
const URL_PASSWORD: &str = "url-password";

fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

const SHAPES: &[Shape] = &[
    token("sk-ant-", "anthropic-api-key", 32, word),
    token("sk-proj-", "openai-api-key", 32, word),
    token("sk-svcacct-", "openai-api-key", 32, word),
    token("sk-", "openai-api-key", 40, alnum),
    token("AKIA", "aws-access-key-id", 16, upper_digit),
    token("ASIA", "aws-access-key-id", 16, upper_digit),
    token("ghp_", "github-token", 36, word),
    token("gho_", "github-token", 36, word),
    token("ghu_", "github-token", 36, word),
    token("ghs_", "github-token", 36, word),
    token("ghr_", "github-token", 36, word),
    token("github_pat_", "github-token", 40, word),
    token("glpat-", "gitlab-token", 20, word),
    token("glrt-", "gitlab-token", 20, word),
    token("gldt-", "gitlab-token", 20, word),
    token("xoxb-", "slack-token", 20, word),
    token("xoxp-", "slack-token", 20, word),
    token("xoxa-", "slack-token", 20, word),
    token("xoxr-", "slack-token", 20, word),
    token("xoxs-", "slack-token", 20, word),
    token("xapp-", "slack-token", 20, word),
    token("AIza", "google-api-key", 35, word),
    token("ya29.", "google-oauth-token", 30, word),
    token("sk_live_", "stripe-key", 20, alnum),
    token("rk_live_", "stripe-key", 20, alnum),
    token("sk_test_", "stripe-key", 20, alnum),
    token("rk_test_", "stripe-key", 20, alnum),
    token("whsec_", "stripe-webhook-secret", 24, alnum),
    token("hf_", "huggingface-token", 34, alnum),
    token("npm_", "npm-token", 36, alnum),
    token("pypi-AgEIcHlwaS5vcmc", "pypi-token", 50, word),
    token("dckr_pat_", "docker-token", 27, word),
    token("dop_v1_", "digitalocean-token", 64, hex),
    token("doo_v1_", "digitalocean-token", 64, hex),
    token("dor_v1_", "digitalocean-token", 64, hex),
    token("shpat_", "shopify-token", 32, hex),
    token("shpss_", "shopify-token", 32, hex),
    token("shpca_", "shopify-token", 32, hex),
    token("shppa_", "shopify-token", 32, hex),
    token("SG.", "sendgrid-api-key", 66, dotted),
    token("lin_api_", "linear-api-key", 40, alnum),
    token("gsk_", "groq-api-key", 52, alnum),
    token("xai-", "xai-api-key", 80, alnum),
    token("sq0atp-", "square-token", 22, word),
    token("sq0csp-", "square-token", 43, word),
    token("AccountKey=", "azure-storage-key", 86, base64),
    token("-----BEGIN ", PRIVATE_KEY, 0, word),
    token("eyJ", JWT, 0, base64url),
    token("://", URL_PASSWORD, 0, word),
];

fn finder() -> &'static AhoCorasick {
    static F: OnceLock<AhoCorasick> = OnceLock::new();
    // Leftmost-longest: `sk-ant-…` is Anthropic's, not the shorter `sk-`.
    F.get_or_init(|| {
        AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(SHAPES.iter().map(|s| s.prefix))
            .expect("patterns")
    })
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

/// The end of a JWT whose header starts at `at` (`eyJ…`): three base64url parts, the second
/// a JSON object too (`eyJ…`), each of 10 or more bytes.
fn jwt_end(bytes: &[u8], at: usize) -> Option<usize> {
    let part = |from: usize| {
        let n = bytes[from..].iter().take_while(|&&b| base64url(b)).count();
        (n >= 10).then_some(from + n)
    };
    let header = part(at)?;
    if bytes.get(header) != Some(&b'.') || !bytes[header + 1..].starts_with(b"eyJ") {
        return None;
    }
    let payload = part(header + 1)?;
    if bytes.get(payload) != Some(&b'.') {
        return None;
    }
    part(payload + 1)
}

/// The password of a URL whose `://` is at `at`: `scheme://user:password@host`, the password
/// alone (the rest of the URL stays readable).
fn url_password(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let scheme = bytes[..at]
        .iter()
        .rev()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'.' || b == b'-')
        .count();
    if scheme == 0 {
        return None;
    }
    let from = at + 3;
    // The userinfo: up to `@`, never past what ends a URL or a JSON string.
    let info_len = bytes[from..bytes.len().min(from + 256)]
        .iter()
        .position(|&b| {
            matches!(
                b,
                b'@' | b'/' | b'"' | b'\\' | b' ' | b'\n' | b'\'' | b'<' | b'>' | b'?' | b'#'
            )
        })?;
    if bytes[from + info_len] != b'@' {
        return None;
    }
    let info = &bytes[from..from + info_len];
    let colon = info.iter().position(|&b| b == b':')?;
    let password = &info[colon + 1..];
    if colon == 0 || password.len() < 3 || placeholder(password) {
        return None;
    }
    Some(from + colon + 1..from + info_len)
}

/// Whether a URL's password is a placeholder of documentation or a template, not a secret:
/// `$VAR`, `{pw}`, `<password>`, `%(pw)s`, `***`, or a word like `password`.
fn placeholder(password: &[u8]) -> bool {
    const WORDS: [&[u8]; 8] = [
        b"password",
        b"passwd",
        b"pass",
        b"secret",
        b"changeme",
        b"example",
        b"xxx",
        b"pwd",
    ];
    matches!(password.first(), Some(b'$' | b'{' | b'<' | b'*' | b'%'))
        || WORDS.iter().any(|w| password.eq_ignore_ascii_case(w))
        || password
            .iter()
            .all(|&b| b == b'x' || b == b'X' || b == b'*')
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
        let starts_word = start == 0 || !bytes[start - 1].is_ascii_alphanumeric() || escaped;
        let range = match shape.kind {
            URL_PASSWORD => url_password(bytes, start),
            _ if !starts_word => None,
            PRIVATE_KEY => private_key_end(bytes, start).map(|e| start..e),
            JWT => jwt_end(bytes, start).map(|e| start..e),
            _ => {
                let body = bytes[m.end()..]
                    .iter()
                    .take_while(|&&b| (shape.alphabet)(b))
                    .count();
                (body >= shape.min).then(|| start..m.end() + body)
            }
        };
        if let Some(range) = range {
            hits.push(Hit {
                kind: shape.kind,
                range,
            });
        }
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
    fn finds_the_shapes_gitleaks_knows_beyond_prefixes() {
        let cases = [
            (format!("STRIPE=sk_live_{}", "a1B2".repeat(6)), "stripe-key"),
            (
                format!("token hf_{}", "abcdEFGH".repeat(5)),
                "huggingface-token",
            ),
            (
                format!("//registry/:_authToken=npm_{}", "a1b2".repeat(9)),
                "npm-token",
            ),
            (format!("sk-{}", "Ab12".repeat(12)), "openai-api-key"),
            (format!("xoxp-{}", "1234-".repeat(6)), "slack-token"),
            (
                format!(
                    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}",
                    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
                ),
                "jwt",
            ),
        ];
        for (text, kind) in &cases {
            assert_eq!(kinds(text), [*kind], "{text}");
        }
        // A URL's password alone is the secret; the rest of the URL stays.
        let url = r#"{"cmd":"psql postgres://app:s3cr3t-pw@db.internal:5432/prod"}"#;
        let hits = scan(url.as_bytes());
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].kind, "url-password");
        assert_eq!(&url[hits[0].range.clone()], "s3cr3t-pw");
        let shown = String::from_utf8(redact(url.as_bytes(), &hits)).unwrap();
        assert!(shown.contains("postgres://app:[REDACTED:url-password]@db.internal"));
        // Neither a URL without a password, nor a variable, nor a short `sk-`, nor one JWT part.
        for s in [
            "https://github.com/o/r",
            "ssh://git@github.com/o/r",
            "https://user@host/x",
            "postgres://u:$PASSWORD@h/db",
            "postgres://{user}:{pw}@{host}/db",
            "mysql://root:password@localhost/app",
            "redis://:<password>@cache:6379",
            "sk-learn is a library",
            "eyJhbGciOiJIUzI1NiJ9 alone",
            "task_live_now",
        ] {
            assert!(kinds(s).is_empty(), "{s}: {:?}", kinds(s));
        }
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
        assert_eq!(Policy::default(), Policy::Redact);
        assert!("yes".parse::<Policy>().is_err());
    }
}
