//! Golden cases, one group per rule in the module doc.

use super::*;
use crate::path_style::PathStyle;

fn linux_al() -> Mapping {
    Mapping::from_values(
        PathStyle::Unix,
        &[
            (Var::Home, "/home/al"),
            (Var::ProjectRoot, "/home/al/src/proj"),
            (Var::ClaudeDir, "/home/al/.claude"),
            (Var::Tmp, "/tmp"),
            (Var::ClaudeTmp, "/tmp/claude-1000"),
            (Var::ProjectSlug, "-home-al-src-proj"),
        ],
    )
    .unwrap()
}

fn mac_bob() -> Mapping {
    Mapping::from_values(
        PathStyle::Unix,
        &[
            (Var::Home, "/Users/bob"),
            (Var::ProjectRoot, "/Users/bob/work/proj"),
            (Var::ClaudeDir, "/Users/bob/.claude"),
            (Var::Tmp, "/var/folders/x1/T"),
            (Var::ClaudeTmp, "/var/folders/x1/T/claude-501"),
            (Var::ProjectSlug, "-Users-bob-work-proj"),
        ],
    )
    .unwrap()
}

fn windows_bob() -> Mapping {
    Mapping::from_values(
        PathStyle::Windows,
        &[
            (Var::Home, r"C:\Users\bob"),
            (Var::ProjectRoot, r"C:\Users\bob\work\proj"),
            (Var::ClaudeDir, r"C:\Users\bob\.claude"),
            (Var::ProjectSlug, "C--Users-bob-work-proj"),
        ],
    )
    .unwrap()
}

fn v(s: &str, m: &Mapping, f: Format) -> String {
    String::from_utf8(virtualise(s.as_bytes(), m, f)).unwrap()
}

fn x(s: &str, m: &Mapping, f: Format) -> String {
    String::from_utf8(expand(s.as_bytes(), m, f)).unwrap()
}

/// Virtualises on `a`, checks the portable form, the round trip on `a`, and the form on `b`.
fn check(a: &Mapping, b: &Mapping, f: Format, input: &str, portable: &str, on_b: &str) {
    assert_eq!(v(input, a, f), portable, "portable form of {input:?}");
    assert_eq!(x(portable, a, f), input, "round trip of {input:?}");
    assert_eq!(x(portable, b, f), on_b, "translation of {input:?}");
}

#[test]
fn round_trip_escapes_token_lookalikes() {
    let m = linux_al();
    for s in [
        "${HOME}",
        "echo ${HOME}/x ${$} ${PROJECT_ROOT:s} $${HOME}",
        "${$}${$}{HOME}",
        "${HOME:zz} ${FOO} $HOME ${ ${",
    ] {
        let p = virtualise(s.as_bytes(), &m, Format::Text);
        assert_eq!(expand(&p, &m, Format::Text), s.as_bytes(), "{s}");
        assert_eq!(
            expand(&p, &mac_bob(), Format::Text),
            s.as_bytes(),
            "{s} on bob"
        );
    }
    assert_eq!(v("${HOME}", &m, Format::Text), "${$}{HOME}");
    // Not tokens: untouched.
    assert_eq!(
        v("${FOO} $HOME ${HOME:zz}", &m, Format::Text),
        "${FOO} $HOME ${HOME:zz}"
    );
}

#[test]
fn round_trip_keeps_invalid_utf8_nul_runs_and_torn_lines() {
    let m = linux_al();
    let mut input = b"{\"cwd\":\"/home/al/src/proj\"}\n".to_vec();
    input.extend_from_slice(&[0u8; 4096]);
    input.extend_from_slice(b"\xff\xfe/home/al\x00/home/al/x\n{\"torn\":\"/home/al/sr");
    let p = virtualise(&input, &m, Format::Json);
    assert_eq!(expand(&p, &m, Format::Json), input);
    assert!(p.windows(14).any(|w| w == b"${PROJECT_ROOT"));
}

#[test]
fn lines_without_paths_are_byte_identical() {
    let m = linux_al();
    let line = "{\"type\":\"user\",\"message\":\"rm -rf build/ && ls ~/x; echo $HOME\"}\n";
    assert_eq!(v(line, &m, Format::Json), line);
}

#[test]
fn boundaries_on_both_sides() {
    let (a, b) = (linux_al(), mac_bob());
    let f = Format::Text;
    check(
        &a,
        &b,
        f,
        "/home/alice /srv/home/al",
        "/home/alice /srv/home/al",
        "/home/alice /srv/home/al",
    );
    check(
        &a,
        &b,
        f,
        "/home/al-old /home/al_x /home/alé",
        "/home/al-old /home/al_x /home/alé",
        "/home/al-old /home/al_x /home/alé",
    );
    check(
        &a,
        &b,
        f,
        "x/home/al a:/home/al",
        "x/home/al a:${HOME}",
        "x/home/al a:/Users/bob",
    );
    check(&a, &b, f, "/home/al", "${HOME}", "/Users/bob");
    check(
        &a,
        &b,
        f,
        "file:///home/al/x",
        "file://${HOME}/x",
        "file:///Users/bob/x",
    );
    check(&a, &b, f, "//home/al", "//home/al", "//home/al");
    // JSON escapes before and after a path.
    let f = Format::Json;
    check(
        &a,
        &b,
        f,
        r#""a\n/home/al\n\t/tmp\"""#,
        r#""a\n${HOME}\n\t${TMP}\"""#,
        r#""a\n/Users/bob\n\t/var/folders/x1/T\"""#,
    );
    check(
        &a,
        &b,
        f,
        r#""a\\n/home/al""#,
        r#""a\\n/home/al""#,
        r#""a\\n/home/al""#,
    );
}

#[test]
fn trailing_punctuation_rule() {
    let (a, b) = (linux_al(), mac_bob());
    let f = Format::Text;
    check(
        &a,
        &b,
        f,
        "see /home/al.",
        "see ${HOME}.",
        "see /Users/bob.",
    );
    check(
        &a,
        &b,
        f,
        "in /home/al...",
        "in ${HOME}...",
        "in /Users/bob...",
    );
    check(
        &a,
        &b,
        f,
        "/home/al.bak /home/al.d",
        "/home/al.bak /home/al.d",
        "/home/al.bak /home/al.d",
    );
    check(
        &a,
        &b,
        f,
        "(/home/al) '/home/al' `/home/al`, /home/al: /home/al; [/home/al]",
        "(${HOME}) '${HOME}' `${HOME}`, ${HOME}: ${HOME}; [${HOME}]",
        "(/Users/bob) '/Users/bob' `/Users/bob`, /Users/bob: /Users/bob; [/Users/bob]",
    );
    check(
        &a,
        &b,
        f,
        "PATH=/tmp:/home/al/bin",
        "PATH=${TMP}:${HOME}/bin",
        "PATH=/var/folders/x1/T:/Users/bob/bin",
    );
}

#[test]
fn longest_path_wins() {
    let (a, b) = (linux_al(), mac_bob());
    let f = Format::Json;
    check(
        &a,
        &b,
        f,
        r#"{"cwd":"/home/al/src/proj/sub","p":"/home/al/src/project2","c":"/home/al/.claude/x"}"#,
        r#"{"cwd":"${PROJECT_ROOT}/sub","p":"${HOME}/src/project2","c":"${CLAUDE_DIR}/x"}"#,
        r#"{"cwd":"/Users/bob/work/proj/sub","p":"/Users/bob/src/project2","c":"/Users/bob/.claude/x"}"#,
    );
    check(
        &a,
        &b,
        f,
        "/tmp/claude-1000/x /tmp/claude-10000",
        "${CLAUDE_TMP}/x ${TMP}/claude-10000",
        "/var/folders/x1/T/claude-501/x /var/folders/x1/T/claude-10000",
    );
    // Equal values: the more specific variable.
    let home_repo = Mapping::from_values(
        PathStyle::Unix,
        &[(Var::Home, "/home/al"), (Var::ProjectRoot, "/home/al")],
    )
    .unwrap();
    assert_eq!(v("/home/al/x", &home_repo, f), "${PROJECT_ROOT}/x");
}

#[test]
fn slugs_match_only_as_whole_segments() {
    let (a, b) = (linux_al(), mac_bob());
    let f = Format::Json;
    check(
        &a,
        &b,
        f,
        r#""/home/al/.claude/projects/-home-al-src-proj/s1/tool-results/t.txt""#,
        r#""${CLAUDE_DIR}/projects/${PROJECT_SLUG}/s1/tool-results/t.txt""#,
        r#""/Users/bob/.claude/projects/-Users-bob-work-proj/s1/tool-results/t.txt""#,
    );
    check(
        &a,
        &b,
        f,
        "/tmp/claude-1000/-home-al-src-proj/x",
        "${CLAUDE_TMP}/${PROJECT_SLUG}/x",
        "/var/folders/x1/T/claude-501/-Users-bob-work-proj/x",
    );
    // Not a segment: a flag, a longer slug, a suffix of a component.
    for s in [
        "ls -home-al-src-proj",
        "/x/-home-al-src-project",
        "/x/a-home-al-src-proj",
        "x-home-al-src-proj/",
    ] {
        assert_eq!(v(s, &a, f), s);
    }
}

#[test]
fn json_escaped_slashes_are_recognised() {
    let (a, b) = (linux_al(), mac_bob());
    check(
        &a,
        &b,
        Format::Json,
        r#""\/home\/al\/src\/proj\/x""#,
        r#""${PROJECT_ROOT:s}\/x""#,
        r#""\/Users\/bob\/work\/proj\/x""#,
    );
}

#[test]
fn windows_forms_round_trip_and_translate() {
    let (w, l) = (windows_bob(), linux_al());
    // Inside JSON, the native form is the escaped one.
    check(
        &w,
        &l,
        Format::Json,
        r#"{"cwd":"C:\\Users\\bob\\work\\proj\\src\\a.rs"}"#,
        r#"{"cwd":"${PROJECT_ROOT:w}\\src\\a.rs"}"#,
        r#"{"cwd":"/home/al/src/proj/src/a.rs"}"#,
    );
    // The rest of a path takes the reader's separators; JSON escapes and text around it stay.
    check(
        &w,
        &l,
        Format::Json,
        r#""C:\\Users\\bob\\.claude\\projects\\C--Users-bob-work-proj\\s1\\t.txt\nnext \\x""#,
        r#""${CLAUDE_DIR:w}\\projects\\${PROJECT_SLUG:w}\\s1\\t.txt\nnext \\x""#,
        r#""/home/al/.claude/projects/-home-al-src-proj/s1/t.txt\nnext \\x""#,
    );
    check(
        &w,
        &l,
        Format::Text,
        r"cd C:\Users\bob\work\proj\src",
        r"cd ${PROJECT_ROOT:w}\src",
        "cd /home/al/src/proj/src",
    );
    check(
        &w,
        &l,
        Format::Text,
        "C:/Users/bob/x c:/Users/bob",
        "${HOME:fw}/x ${HOME:flw}",
        "/home/al/x /home/al",
    );
    check(
        &w,
        &l,
        Format::Json,
        r#""c:\\Users\\bob""#,
        r#""${HOME:lw}""#,
        r#""/home/al""#,
    );
    check(
        &w,
        &l,
        Format::Json,
        r#""C:\Users\bob" "C:\\\\Users\\\\bob""#,
        r#""${HOME:0w}" "${HOME:2w}""#,
        r#""/home/al" "/home/al""#,
    );
    check(
        &w,
        &l,
        Format::Json,
        r#""C:\\Users\\bobby""#,
        r#""C:\\Users\\bobby""#,
        r#""C:\\Users\\bobby""#,
    );
    check(
        &w,
        &l,
        Format::Text,
        "x/C--Users-bob-work-proj/y",
        "x/${PROJECT_SLUG:w}/y",
        "x/-home-al-src-proj/y",
    );
}

#[test]
fn linux_to_windows_writes_valid_json() {
    let (l, w) = (linux_al(), windows_bob());
    let line = r#"{"cwd":"/home/al/src/proj","file_path":"/home/al/.claude/projects/-home-al-src-proj/a.txt","t":"cd /home/al"}"#;
    let p = virtualise(line.as_bytes(), &l, Format::Json);
    let on_w = expand(&p, &w, Format::Json);
    let parsed: serde_json_like::Value = serde_json_like::parse(&on_w);
    assert_eq!(parsed.get("cwd"), r"C:\Users\bob\work\proj");
    assert_eq!(
        parsed.get("file_path"),
        r"C:\Users\bob\.claude\projects\C--Users-bob-work-proj\a.txt"
    );
    assert_eq!(parsed.get("t"), r"cd C:\Users\bob");
    // And back: Windows's own form of it comes back to Linux as the original.
    let back = virtualise(&on_w, &w, Format::Json);
    assert_eq!(expand(&back, &l, Format::Json), line.as_bytes());
    // A text file gets single backslashes; a path's rest does too.
    assert_eq!(x("${HOME}/a/b", &w, Format::Text), r"C:\Users\bob\a\b");
    // Text after the path keeps its slashes: `a/b c/d` is a path and then other text.
    assert_eq!(x("${HOME}/a c/d", &w, Format::Text), r"C:\Users\bob\a c/d");
}

#[test]
fn unknown_variables_stay_tokens() {
    let partial = Mapping::new(PathStyle::Unix).with(Var::Home, "/h").unwrap();
    assert_eq!(
        x("${PROJECT_ROOT}/a ${HOME}", &partial, Format::Text),
        "${PROJECT_ROOT}/a /h"
    );
}

#[test]
fn mapping_rejects_bad_values() {
    let mut m = Mapping::new(PathStyle::Unix);
    assert!(m.set(Var::Home, "relative").is_err());
    assert!(m.set(Var::Home, "/").is_err());
    assert!(m.set(Var::Home, r"C:\Users\x").is_err());
    assert!(m.set(Var::ProjectSlug, "a/b").is_err());
    m.set(Var::Home, "/home/al/").unwrap();
    assert_eq!(m.get(Var::Home), Some("/home/al"));
    let mut w = Mapping::new(PathStyle::Windows);
    w.set(Var::Home, "c:/Users/bob/").unwrap();
    assert_eq!(w.get(Var::Home), Some(r"C:\Users\bob"));
}

#[test]
fn streaming_equals_whole_input_for_every_split() {
    let m = linux_al();
    let input =
        "x /home/al/src/proj/a ${HOME} \\n/tmp/claude-1000/-home-al-src-proj/q /home/al. end";
    for dir in [Direction::Virtualise, Direction::Expand] {
        let codec = Codec::new(&m);
        let src = match dir {
            Direction::Virtualise => input.as_bytes().to_vec(),
            Direction::Expand => codec.virtualise(input.as_bytes(), Format::Json),
        };
        let whole = match dir {
            Direction::Virtualise => codec.virtualise(&src, Format::Json),
            Direction::Expand => codec.expand(&src, Format::Json),
        };
        for split in 0..=src.len() {
            for step in [1, 3, 7, 64] {
                let mut s = codec.stream(dir, Format::Json);
                let mut out = Vec::new();
                s.push(&src[..split], &mut out);
                for c in src[split..].chunks(step) {
                    s.push(c, &mut out);
                }
                s.finish(&mut out);
                assert_eq!(out, whole, "{dir:?} split {split} step {step}");
            }
        }
    }
}

/// A tiny JSON string-field reader, so the Windows test checks real JSON escapes without
/// depending on a JSON crate in this library.
mod serde_json_like {
    pub struct Value(Vec<(String, String)>);
    impl Value {
        pub fn get(&self, k: &str) -> &str {
            &self.0.iter().find(|(key, _)| key == k).expect("field").1
        }
    }
    fn string(b: &[u8], i: &mut usize) -> String {
        assert_eq!(b[*i], b'"');
        *i += 1;
        let mut s = Vec::new();
        loop {
            match b[*i] {
                b'"' => break,
                b'\\' => {
                    *i += 1;
                    match b[*i] {
                        b'\\' => s.push(b'\\'),
                        b'/' => s.push(b'/'),
                        b'"' => s.push(b'"'),
                        b'n' => s.push(b'\n'),
                        other => panic!("invalid JSON escape \\{}", other as char),
                    }
                }
                c => s.push(c),
            }
            *i += 1;
        }
        *i += 1;
        String::from_utf8(s).unwrap()
    }
    /// Parses a flat object of string fields.
    pub fn parse(b: &[u8]) -> Value {
        let mut i = 1;
        let mut out = Vec::new();
        while b[i] != b'}' {
            let k = string(b, &mut i);
            assert_eq!(b[i], b':');
            i += 1;
            let v = string(b, &mut i);
            out.push((k, v));
            if b[i] == b',' {
                i += 1;
            }
        }
        Value(out)
    }
}

#[test]
fn both_spellings_of_a_symlinked_home_virtualise_and_round_trip() {
    let al = Mapping::new(PathStyle::Unix)
        .with(Var::Home, "/home/al")
        .unwrap()
        .with(Var::HomeReal, "/data/al")
        .unwrap();
    let bob = Mapping::new(PathStyle::Unix)
        .with(Var::Home, "/Users/bob")
        .unwrap();
    let text = "{\"cwd\":\"/data/al/notes\",\"cfg\":\"/home/al/.claude\"}";
    let portable = Codec::new(&al).virtualise(text.as_bytes(), Format::Json);
    assert_eq!(
        String::from_utf8_lossy(&portable),
        "{\"cwd\":\"${HOME_REAL}/notes\",\"cfg\":\"${HOME}/.claude\"}"
    );
    assert_eq!(
        Codec::new(&al).expand(&portable, Format::Json),
        text.as_bytes()
    );
    // A machine with one spelling expands both to it.
    assert_eq!(
        x(&String::from_utf8_lossy(&portable), &bob, Format::Json),
        "{\"cwd\":\"/Users/bob/notes\",\"cfg\":\"/Users/bob/.claude\"}"
    );
}

#[test]
fn a_mapping_is_compiled_once_and_each_mapping_gets_its_own_codec() {
    let mut a = Mapping::new(PathStyle::Unix);
    a.set(Var::Home, "/home/shared-codec-a").unwrap();
    let mut b = a.clone();
    b.set(Var::Home, "/home/shared-codec-b").unwrap();
    let (a1, a2, b1) = (
        Codec::shared(&a),
        Codec::shared(&a.clone()),
        Codec::shared(&b),
    );
    assert!(std::sync::Arc::ptr_eq(&a1, &a2), "compiled again");
    assert!(!std::sync::Arc::ptr_eq(&a1, &b1));
    assert_eq!(
        b1.expand(b"${HOME}/x", Format::Text),
        b"/home/shared-codec-b/x"
    );
    assert_eq!(
        a1.expand(b"${HOME}/x", Format::Text),
        b"/home/shared-codec-a/x"
    );
}
