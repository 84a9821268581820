//! Property tests of the codec: the exact round trip on arbitrary bytes, chunking invariance,
//! and translation between machines.

use ferry_sync::codec::{Codec, Direction, Format, Mapping, Var, virtualise};
use ferry_sync::path_style::PathStyle;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-c]{1,3}"
}

/// A mapping whose values overlap a lot, so boundary and longest-match logic is exercised.
fn mapping() -> impl Strategy<Value = Mapping> {
    (any::<bool>(), name(), name(), name(), name(), "[a-c-]{1,6}").prop_map(
        |(windows, h, r, t, c, slug)| {
            let (style, root) = if windows {
                (PathStyle::Windows, r"C:\")
            } else {
                (PathStyle::Unix, "/")
            };
            let sep = if windows { '\\' } else { '/' };
            let home = format!("{root}{h}");
            let mut m = Mapping::new(style);
            m.set(Var::Home, &home).unwrap();
            m.set(Var::ProjectRoot, &format!("{home}{sep}{r}")).unwrap();
            m.set(Var::Tmp, &format!("{root}{t}")).unwrap();
            m.set(Var::ClaudeDir, &format!("{home}{sep}{c}")).unwrap();
            m.set(Var::ProjectSlug, &format!("-{slug}")).unwrap();
            m
        },
    )
}

/// Bytes built from fragments that matter to the codec, plus arbitrary bytes.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"/".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\\\".to_vec()),
        Just(b"\\/".to_vec()),
        Just(b"C:".to_vec()),
        Just(b"c:".to_vec()),
        Just(b"${".to_vec()),
        Just(b"${$}".to_vec()),
        Just(b"${HOME}".to_vec()),
        Just(b"${TMP:0l}".to_vec()),
        Just(b"${PROJECT_SLUG}".to_vec()),
        Just(b"}".to_vec()),
        Just(b"://".to_vec()),
        Just(b"\\n".to_vec()),
        Just(b".".to_vec()),
        Just(b"\"".to_vec()),
        Just(b" ".to_vec()),
        Just(b"-".to_vec()),
        Just(vec![0u8; 3]),
        Just(b"\xff\xc3".to_vec()),
        name().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(fragment, 0..40).prop_map(|f| f.concat())
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Text), Just(Format::Json)]
}

fn streamed(codec: &Codec, dir: Direction, f: Format, input: &[u8], chunks: &[usize]) -> Vec<u8> {
    let mut s = codec.stream(dir, f);
    let mut out = Vec::new();
    let mut rest = input;
    for &c in chunks {
        let (head, tail) = rest.split_at(c.min(rest.len()));
        s.push(head, &mut out);
        rest = tail;
    }
    s.push(rest, &mut out);
    s.finish(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn round_trip_is_exact(m in mapping(), x in tricky_bytes(), f in format()) {
        let codec = Codec::new(&m);
        let p = codec.virtualise(&x, f);
        prop_assert_eq!(codec.expand(&p, f), x);
    }

    #[test]
    fn round_trip_is_exact_on_arbitrary_bytes(m in mapping(), x in any::<Vec<u8>>(), f in format()) {
        let codec = Codec::new(&m);
        prop_assert_eq!(codec.expand(&codec.virtualise(&x, f), f), x);
    }

    #[test]
    fn chunking_never_changes_the_result(
        m in mapping(), x in tricky_bytes(), f in format(),
        chunks in proptest::collection::vec(0usize..20, 0..30),
    ) {
        let codec = Codec::new(&m);
        let p = codec.virtualise(&x, f);
        prop_assert_eq!(&streamed(&codec, Direction::Virtualise, f, &x, &chunks), &p);
        prop_assert_eq!(streamed(&codec, Direction::Expand, f, &p, &chunks), x);
    }
}

/// One piece of a generated document: text that holds no path, a reference to a placeholder's
/// value with a tail, or a near miss that must never be translated.
#[derive(Clone, Debug)]
enum Item {
    Literal(String),
    Path(Var, String),
    NearMiss(String),
}

fn items() -> impl Strategy<Value = Vec<Item>> {
    let var = prop_oneof![
        Just(Var::Home),
        Just(Var::ProjectRoot),
        Just(Var::Tmp),
        Just(Var::ClaudeDir),
        Just(Var::ProjectSlug),
    ];
    let item = prop_oneof![
        "[a-z0-9 ,;:()'.]{0,8}".prop_map(Item::Literal),
        (var, "(/[s-z]{1,3}){0,3}").prop_map(|(v, t)| Item::Path(v, t)),
        "[s-z_.]{1,2}[s-z]".prop_map(Item::NearMiss),
    ];
    proptest::collection::vec(item, 0..12)
}

/// Distinct, non-nested values (except the project root inside home), so that every reference
/// in a generated document has exactly one right answer.
fn unix_machine(home: &str) -> Mapping {
    Mapping::from_values(
        PathStyle::Unix,
        &[
            (Var::Home, home),
            (Var::ProjectRoot, &format!("{home}/a/proj")),
            (Var::ClaudeDir, &format!("{home}/.claude")),
            (Var::Tmp, &format!("/tmp{}", home.len())),
            (Var::ProjectSlug, &format!("-p{}", home.len())),
        ],
    )
    .unwrap()
}

/// The document as machine `m` sees it; near misses are machine A's home with a name continuing
/// it (`/home/alx`, `/home/al.s`), which no machine may translate.
fn render(items: &[Item], m: &Mapping, f: Format, a_home: &str) -> String {
    let codec = Codec::new(m);
    let spelled = |v: Var| {
        let token = format!("${{{}}}", v.name());
        String::from_utf8(codec.expand(token.as_bytes(), f)).unwrap()
    };
    // The rest of a path is written with the machine's separator (rule 6).
    let sep = match (m.style(), f) {
        (PathStyle::Windows, Format::Json) => r"\\",
        (PathStyle::Windows, Format::Text) => r"\",
        _ => "/",
    };
    let rest = |tail: &str| tail.replace('/', sep);
    let mut out = String::new();
    for item in items {
        out.push(' ');
        match item {
            Item::Literal(s) => out.push_str(s),
            Item::Path(Var::ProjectSlug, tail) => {
                out.push_str(&format!(
                    "{}{sep}projects{sep}{}{}",
                    spelled(Var::ClaudeDir),
                    spelled(Var::ProjectSlug),
                    rest(tail)
                ));
            }
            Item::Path(v, tail) => out.push_str(&format!("{}{}", spelled(*v), rest(tail))),
            Item::NearMiss(tail) => out.push_str(&format!("{a_home}{tail}")),
        }
        out.push(' ');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn translation_maps_a_paths_to_b_paths(doc in items(), f in format(), windows_b in any::<bool>()) {
        let a = unix_machine("/home/al");
        let b = if windows_b {
            Mapping::from_values(
                PathStyle::Windows,
                &[
                    (Var::Home, r"C:\Users\bob"),
                    (Var::ProjectRoot, r"D:\w\proj"),
                    (Var::ClaudeDir, r"C:\Users\bob\.claude"),
                    (Var::Tmp, r"C:\Temp"),
                    (Var::ProjectSlug, "D--w-proj"),
                ],
            )
            .unwrap()
        } else {
            unix_machine("/Users/bob")
        };
        let on_a = render(&doc, &a, f, "/home/al");
        let portable = virtualise(on_a.as_bytes(), &a, f);
        let on_b = Codec::new(&b).expand(&portable, f);
        prop_assert_eq!(String::from_utf8(on_b).unwrap(), render(&doc, &b, f, "/home/al"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The other way: a Windows machine's paths, with the rest of each path in backslashes,
    /// become the Unix machine's paths with slashes.
    #[test]
    fn translation_maps_windows_paths_to_unix_paths(doc in items(), f in format()) {
        let a = Mapping::from_values(
            PathStyle::Windows,
            &[
                (Var::Home, r"C:\Users\al"),
                (Var::ProjectRoot, r"D:\w\proj"),
                (Var::ClaudeDir, r"C:\Users\al\.claude"),
                (Var::Tmp, r"C:\Temp"),
                (Var::ProjectSlug, "D--w-proj"),
            ],
        )
        .unwrap();
        let b = unix_machine("/Users/bob");
        let a_home = Codec::new(&a).expand(b"${HOME}", f);
        let a_home = String::from_utf8(a_home).unwrap();
        let on_a = render(&doc, &a, f, &a_home);
        let portable = virtualise(on_a.as_bytes(), &a, f);
        prop_assert_eq!(Codec::new(&a).expand(&portable, f), on_a.as_bytes(), "round trip on a");
        let on_b = Codec::new(&b).expand(&portable, f);
        prop_assert_eq!(String::from_utf8(on_b).unwrap(), render(&doc, &b, f, &a_home));
    }
}
