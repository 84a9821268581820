//! What a transcript says about its session, read without any model: the title or first
//! prompt, the last prompts, the files its tools touched, the last assistant message, the git
//! branch and the cwd. Lines that are not JSON (torn, spliced) are skipped.

use serde_json::Value;

/// A session, summarised.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// A title Claude Code or the user gave it.
    pub title: Option<String>,
    /// The first thing the user asked.
    pub first_prompt: Option<String>,
    /// The user's prompts, oldest first.
    pub prompts: Vec<String>,
    /// Files named by tool inputs (`file_path`, `notebook_path`, `path`), first use first.
    pub files: Vec<String>,
    /// The last text the assistant wrote.
    pub last_assistant: Option<String>,
    /// The git branch of the last line that names one.
    pub branch: Option<String>,
    /// The cwd of the first line that names one.
    pub cwd: Option<String>,
}

fn texts(content: &Value) -> Vec<String> {
    match content {
        Value::String(s) => vec![s.clone()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Summarises a transcript.
pub fn summarise(bytes: &[u8]) -> Summary {
    let mut s = Summary::default();
    for line in bytes.split(|&b| b == b'\n') {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if let Some(c) = v["cwd"].as_str().filter(|c| !c.is_empty()) {
            s.cwd.get_or_insert_with(|| c.to_string());
        }
        if let Some(b) = v["gitBranch"].as_str().filter(|b| !b.is_empty()) {
            s.branch = Some(b.to_string());
        }
        for key in ["customTitle", "aiTitle", "title", "summary"] {
            if let Some(t) = v[key].as_str().filter(|t| !t.is_empty()) {
                s.title = Some(t.to_string());
            }
        }
        let content = &v["message"]["content"];
        match v["type"].as_str() {
            Some("user") if v["isMeta"] != true => {
                for t in texts(content) {
                    let t = t.trim();
                    if t.is_empty() || t.starts_with('<') {
                        continue;
                    }
                    s.first_prompt.get_or_insert_with(|| t.to_string());
                    s.prompts.push(t.to_string());
                }
            }
            Some("assistant") => {
                if let Some(t) = texts(content).into_iter().rfind(|t| !t.trim().is_empty()) {
                    s.last_assistant = Some(t);
                }
                for block in content.as_array().into_iter().flatten() {
                    if block["type"] != "tool_use" {
                        continue;
                    }
                    for key in ["file_path", "notebook_path", "path"] {
                        if let Some(f) = block["input"][key].as_str()
                            && !s.files.iter().any(|x| x == f)
                        {
                            s.files.push(f.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// One line of at most `n` characters.
pub fn clip(text: &str, n: usize) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        one
    } else {
        format!("{}…", one.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prompts_tools_titles_and_skips_torn_lines() {
        let t = br#"{"type":"user","cwd":"/w","gitBranch":"main","message":{"role":"user","content":"fix the bug"}}
{"type":"assistant","message":{"content":[{"type":"text","text":"Looking"},{"type":"tool_use","name":"Read","input":{"file_path":"/w/a.rs"}}]}}
{"type":"user","isMeta":true,"message":{"content":"<caveat>"}}
{"type":"user","message":{"content":[{"type":"tool_result","content":"x"}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Edit","input":{"file_path":"/w/b.rs"}},{"type":"text","text":"Fixed it"}]}}
{"type":"custom-title","customTitle":"Bug hunt"}
{"type":"user","message":{"content":[{"type":"text","text":"now test"}]},"gitBranch":"fix"}
{"type":"assi"#;
        let s = summarise(t);
        assert_eq!(s.title.as_deref(), Some("Bug hunt"));
        assert_eq!(s.first_prompt.as_deref(), Some("fix the bug"));
        assert_eq!(s.prompts, ["fix the bug", "now test"]);
        assert_eq!(s.files, ["/w/a.rs", "/w/b.rs"]);
        assert_eq!(s.last_assistant.as_deref(), Some("Fixed it"));
        assert_eq!(s.branch.as_deref(), Some("fix"));
        assert_eq!(s.cwd.as_deref(), Some("/w"));
        assert_eq!(clip("a  b\nc", 10), "a b c");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
