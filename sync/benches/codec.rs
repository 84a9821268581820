//! Codec throughput on transcript-like text, against memcpy of the same bytes in the same run.
//! `cargo bench -p ferry-sync --bench codec`; prints a Markdown table for BENCHMARKS.md.
//! DESIGN.md's target: at least 1 GB/s per core in both directions.

use ferry_sync::codec::{Codec, Direction, Format, Mapping, Var};
use ferry_sync::path_style::PathStyle;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "input/mod.rs"]
mod input;

use input::{SIZE, transcript};

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
