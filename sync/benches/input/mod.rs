//! The codec bench's input, shared with the secrets bench: 64 MiB of transcript-like text.

/// How much input each bench converts.
pub const SIZE: usize = 64 << 20;

/// JSONL lines shaped like Claude Code's: a `cwd` on every line, tool inputs and results with
/// paths, prose, code, and some non-ASCII; about one path per 150 bytes.
pub fn transcript(root: &str, claude: &str, slug: &str) -> Vec<u8> {
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
