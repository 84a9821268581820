//! Fuzzes the codec's exact round trip and its chunking invariance, on Unix and Windows
//! mappings, in both formats. Run: `fuzz/run.sh codec_round_trip 60`.
#![no_main]

use ferry_sync::codec::{Codec, Direction, Format, Mapping, Var};
use ferry_sync::path_style::PathStyle;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn codecs() -> &'static [Codec; 2] {
    static CODECS: OnceLock<[Codec; 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let unix = Mapping::from_values(
            PathStyle::Unix,
            &[
                (Var::Home, "/h/a"),
                (Var::ProjectRoot, "/h/a/p"),
                (Var::ClaudeDir, "/h/a/.c"),
                (Var::Tmp, "/t"),
                (Var::ClaudeTmp, "/t/c-1"),
                (Var::ProjectSlug, "-h-a-p"),
            ],
        )
        .unwrap();
        let windows = Mapping::from_values(
            PathStyle::Windows,
            &[
                (Var::Home, r"C:\U\b"),
                (Var::ProjectRoot, r"C:\U\b\p"),
                (Var::Tmp, r"D:\t"),
                (Var::ProjectSlug, "C--U-b-p"),
            ],
        )
        .unwrap();
        [Codec::new(&unix), Codec::new(&windows)]
    })
}

fn streamed(codec: &Codec, dir: Direction, format: Format, input: &[u8], step: usize) -> Vec<u8> {
    let mut s = codec.stream(dir, format);
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        s.push(chunk, &mut out);
    }
    s.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let codec = &codecs()[usize::from(control & 1)];
    let format = if control & 2 == 0 { Format::Text } else { Format::Json };
    let step = usize::from(control >> 2) + 1;
    let portable = codec.virtualise(input, format);
    assert_eq!(codec.expand(&portable, format), input, "round trip");
    assert_eq!(streamed(codec, Direction::Virtualise, format, input, step), portable);
    assert_eq!(streamed(codec, Direction::Expand, format, &portable, step), input);
});
