//! Codec throughput on transcript-like text, against memcpy of the same bytes in the same run.
//! `cargo bench -p ferry-sync --bench codec`; prints a Markdown table for BENCHMARKS.md.
//! DESIGN.md's target: at least 1 GB/s per core in both directions.

use ferry_sync::codec::{Codec, Direction, Format, Mapping, Var};
use ferry_sync::path_style::PathStyle;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZE: usize = 64 << 20;

fn linux() -> Mapping {
    Mapping::from_values(
        PathStyle::Unix,
        &[
            (Var::Home, "/home/alice"),
            (Var::ProjectRoot, "/home/alice/src/ferry"),
            (Var::ClaudeDir, "/home/alice/.claude"),
            (Var::Tmp, "/tmp"),
            (Var::ClaudeTmp, "/tmp/claude-1000"),
            (Var::ProjectSlug, "-home-alice-src-ferry"),
        ],
    )
    .unwrap()
}

fn windows() -> Mapping {
    Mapping::from_values(
        PathStyle::Windows,
        &[
            (Var::Home, r"C:\Users\alice"),
            (Var::ProjectRoot, r"C:\Users\alice\src\ferry"),
            (Var::ClaudeDir, r"C:\Users\alice\.claude"),
            (Var::Tmp, r"C:\Users\alice\AppData\Local\Temp"),
            (Var::ProjectSlug, "C--Users-alice-src-ferry"),
        ],
    )
    .unwrap()
}

/// JSONL lines shaped like Claude Code's: a `cwd` on every line, tool inputs and results with
/// paths, prose, code, and some non-ASCII; about one path per 150 bytes.
fn transcript(root: &str, claude: &str, slug: &str) -> Vec<u8> {
    let templates = [
        format!(r#"{{"parentUuid":"4f1c2d9e-1","isSidechain":false,"userType":"external","cwd":"{root}","sessionId":"0b7a","version":"2.1.197","gitBranch":"main","type":"user","message":{{"role":"user","content":"Please refactor the codec so that it streams; keep the tests green — merci!"}},"uuid":"9e2f","timestamp":"2026-11-22T03:08:00.000Z"}}"#),
        format!(r#"{{"parentUuid":"9e2f","cwd":"{root}","type":"assistant","message":{{"id":"msg_01","type":"message","role":"assistant","model":"claude","content":[{{"type":"tool_use","id":"toolu_01","name":"Read","input":{{"file_path":"{root}/sync/src/codec/scan.rs"}}}}],"usage":{{"input_tokens":1234,"output_tokens":56}}}},"uuid":"a1b2","timestamp":"2026-11-22T03:08:01.000Z"}}"#),
        format!(r#"{{"parentUuid":"a1b2","cwd":"{root}","type":"user","message":{{"role":"user","content":[{{"tool_use_id":"toolu_01","type":"tool_result","content":"     1\t//! The two scanners: virtualise and expand.\n     2\t\n     3\tuse super::boundary::{{left_ok, right_ok}};\n     4\tuse aho_corasick::{{AhoCorasick, Input, MatchKind}};\n     5\t\n     6\tfn spell(var: Var, value: &str) -> Vec<u8> {{\n     7\t    let sep = if windows {{ \"\\\\\" }} else {{ \"/\" }};\n"}}]}},"toolUseResult":{{"type":"text","file":{{"filePath":"{root}/sync/src/codec/scan.rs","numLines":7}}}},"uuid":"c3d4"}}"#),
        format!(r#"{{"parentUuid":"c3d4","cwd":"{root}","type":"assistant","message":{{"content":[{{"type":"tool_use","id":"toolu_02","name":"Bash","input":{{"command":"cd {root} && cargo test -p ferry-sync 2>&1 | tail -20","description":"Run the sync tests"}}}}]}},"uuid":"e5f6"}}"#),
        format!(r#"{{"parentUuid":"e5f6","cwd":"{root}","type":"user","message":{{"content":[{{"type":"tool_result","content":"Output too large. Full output saved to: {claude}/projects/{slug}/0b7a/tool-results/toolu_02.txt\n\nPreview (first 2KB):\n   Compiling ferry-sync v0.1.0\n    Finished test profile in 4.2s\ntest result: ok. 25 passed; 0 failed"}}]}},"uuid":"a7b8"}}"#),
        r#"{"parentUuid":"a7b8","type":"assistant","message":{"content":[{"type":"text","text":"All 25 tests pass. The scanner now keeps a bounded window, so chunked input gives the same bytes as whole input; I also documented the trailing-punctuation rule (a final `.` ends a path only before a non-name byte)."}]},"uuid":"b9c0"}"#.to_string(),
    ];
    let mut out = Vec::with_capacity(SIZE + 4096);
    let mut i = 0;
    while out.len() < SIZE {
        out.extend_from_slice(templates[i % templates.len()].as_bytes());
        out.push(b'\n');
        i += 1;
    }
    out
}

/// Best-of-N throughput in GB/s (10^9 bytes per second) of `f` over `bytes` input bytes.
fn gbps(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    bytes as f64 / best.as_secs_f64() / 1e9
}

fn main() {
    let lin = linux();
    let win = windows();
    let (cl, cw) = (Codec::new(&lin), Codec::new(&win));
    let lin_text = transcript(
        "/home/alice/src/ferry",
        "/home/alice/.claude",
        "-home-alice-src-ferry",
    );
    let win_text = transcript(
        r"C:\\Users\\alice\\src\\ferry",
        r"C:\\Users\\alice\\.claude",
        "C--Users-alice-src-ferry",
    );
    let lin_portable = cl.virtualise(&lin_text, Format::Json);
    let win_portable = cw.virtualise(&win_text, Format::Json);
    let no_paths: Vec<u8> = lin_text
        .iter()
        .map(|&b| if b == b'/' { b'|' } else { b })
        .collect();

    let mut sink = vec![0u8; SIZE + 4096];
    let memcpy = gbps(lin_text.len(), || {
        sink[..lin_text.len()].copy_from_slice(black_box(&lin_text));
        black_box(&sink);
    });
    // One output buffer, reused like the daemon reuses its buffers, so that page faults of a
    // fresh allocation are not what is measured (memcpy writes into a warm buffer too).
    let out = std::cell::RefCell::new(Vec::with_capacity(2 * SIZE));
    let stream = |codec: &Codec, dir, input: &[u8]| {
        let mut s = codec.stream(dir, Format::Json);
        let mut out = out.borrow_mut();
        out.clear();
        for chunk in input.chunks(1 << 20) {
            s.push(chunk, &mut out);
        }
        s.finish(&mut out);
        black_box(&*out);
    };
    let whole = |codec: &Codec, dir, input: &[u8]| {
        let mut out = out.borrow_mut();
        out.clear();
        codec.convert_into(dir, black_box(input), Format::Json, &mut out);
        black_box(&*out);
    };
    let rows: Vec<(&str, f64)> = vec![
        ("memcpy (baseline)", memcpy),
        (
            "virtualise, Linux transcript",
            gbps(lin_text.len(), || {
                whole(&cl, Direction::Virtualise, &lin_text)
            }),
        ),
        (
            "expand, Linux transcript",
            gbps(lin_portable.len(), || {
                whole(&cl, Direction::Expand, &lin_portable)
            }),
        ),
        (
            "virtualise, Linux, streamed 1 MiB chunks",
            gbps(lin_text.len(), || {
                stream(&cl, Direction::Virtualise, &lin_text)
            }),
        ),
        (
            "expand, Linux, streamed 1 MiB chunks",
            gbps(lin_portable.len(), || {
                stream(&cl, Direction::Expand, &lin_portable)
            }),
        ),
        (
            "virtualise, Windows transcript",
            gbps(win_text.len(), || {
                whole(&cw, Direction::Virtualise, &win_text)
            }),
        ),
        (
            "expand, Windows transcript",
            gbps(win_portable.len(), || {
                whole(&cw, Direction::Expand, &win_portable)
            }),
        ),
        (
            "expand Linux portable for Windows",
            gbps(lin_portable.len(), || {
                whole(&cw, Direction::Expand, &lin_portable)
            }),
        ),
        (
            "virtualise, text with no paths",
            gbps(no_paths.len(), || {
                whole(&cl, Direction::Virtualise, &no_paths)
            }),
        ),
    ];
    let paths = lin_portable.windows(2).filter(|w| w == b"${").count();
    println!(
        "Input: {} MiB of transcript-like JSONL, {} paths ({} bytes per path); one thread; best of 7.\n",
        lin_text.len() >> 20,
        paths,
        lin_text.len() / paths.max(1)
    );
    println!("| operation | GB/s | vs memcpy |");
    println!("|---|---:|---:|");
    for (name, v) in rows {
        println!("| {name} | {v:.2} | {:.1}% |", 100.0 * v / memcpy);
    }
}
