//! What a transcript says about its session, read without any model: the title or first
//! prompt, the last prompts, the files its tools touched and changed, the commands it ran, its
//! to-do list (TodoWrite, or the Task tools of newer clients), a tool call that never got its
//! result, the last assistant message, the git branch and the cwd. Lines that are not JSON
//! (torn, spliced) are skipped.

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
    /// The to-do list as last written: (what, status), status `pending`, `in_progress` or
    /// `completed`.
    pub todos: Vec<(String, String)>,
    /// Files the tools changed (Edit, Write, MultiEdit, NotebookEdit), first change first.
    pub edited: Vec<String>,
    /// The last shell commands run, oldest first (at most [`COMMANDS_KEPT`]).
    pub commands: Vec<String>,
    /// The last tool call that never got its result (the session stopped in it): the tool
    /// and what it was given.
    pub unanswered: Option<String>,
}

/// How many of the last shell commands a summary keeps.
pub const COMMANDS_KEPT: usize = 5;

/// What a tool call is about, in one line: the command, the file or the description.
fn gist(block: &Value) -> String {
    let input = &block["input"];
    let what = ["description", "command", "file_path", "subject", "prompt"]
        .iter()
        .find_map(|k| input[k].as_str())
        .unwrap_or_default();
    format!(
        "{} {}",
        block["name"].as_str().unwrap_or("a tool"),
        clip(what, 120)
    )
    .trim()
    .to_string()
}

/// The numbers of the tasks on the list, in its order, and how many were ever made (the client
/// numbers them from 1 and never reuses one).
#[derive(Default)]
struct TaskIds {
    ids: Vec<String>,
    made: usize,
}

/// The tools that keep the to-do list: a call of theirs is bookkeeping, not work in progress.
const TODO_TOOLS: [&str; 3] = ["TodoWrite", "TaskCreate", "TaskUpdate"];

/// Follows the to-do list through a tool call: TodoWrite writes it whole; TaskCreate adds one
/// and TaskUpdate changes one.
fn track_todos(s: &mut Summary, tasks: &mut TaskIds, block: &Value) {
    let input = &block["input"];
    match block["name"].as_str() {
        Some("TodoWrite") => {
            s.todos = input["todos"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    Some((
                        t["content"].as_str()?.to_string(),
                        t["status"].as_str().unwrap_or("pending").to_string(),
                    ))
                })
                .collect();
            tasks.ids.clear();
        }
        Some("TaskCreate") => {
            if let Some(what) = input["subject"].as_str() {
                tasks.made += 1;
                tasks.ids.push(tasks.made.to_string());
                s.todos.push((what.to_string(), "pending".into()));
            }
        }
        Some("TaskUpdate") => {
            let id = match &input["taskId"] {
                Value::String(id) => id.clone(),
                Value::Number(n) => n.to_string(),
                _ => return,
            };
            let Some(i) = tasks.ids.iter().position(|x| *x == id) else {
                return;
            };
            if input["status"] == "deleted" {
                tasks.ids.remove(i);
                s.todos.remove(i);
                return;
            }
            if let Some(status) = input["status"].as_str() {
                s.todos[i].1 = status.to_string();
            }
            if let Some(what) = input["subject"].as_str() {
                s.todos[i].0 = what.to_string();
            }
        }
        _ => {}
    }
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

/// What one tool call of the assistant tells: its to-dos, a call waiting for its result, a
/// file it changed, a command it ran, the files it touched.
fn tool_call(
    s: &mut Summary,
    task_ids: &mut TaskIds,
    waiting: &mut Vec<(String, String)>,
    block: &Value,
) {
    track_todos(s, task_ids, block);
    let name = block["name"].as_str().unwrap_or_default();
    if let Some(id) = block["id"].as_str().filter(|_| !TODO_TOOLS.contains(&name)) {
        waiting.push((id.to_string(), gist(block)));
    }
    if let Some(f) = block["input"]["file_path"]
        .as_str()
        .or(block["input"]["notebook_path"].as_str())
        .filter(|_| matches!(name, "Edit" | "Write" | "MultiEdit" | "NotebookEdit"))
        && !s.edited.iter().any(|x| x == f)
    {
        s.edited.push(f.to_string());
    }
    if name == "Bash"
        && let Some(c) = block["input"]["command"].as_str()
    {
        s.commands.push(clip(c, 200));
        if s.commands.len() > COMMANDS_KEPT {
            s.commands.remove(0);
        }
    }
    for key in ["file_path", "notebook_path", "path"] {
        if let Some(f) = block["input"][key].as_str()
            && !s.files.iter().any(|x| x == f)
        {
            s.files.push(f.to_string());
        }
    }
}

/// Summarises a transcript.
pub fn summarise(bytes: &[u8]) -> Summary {
    let mut s = Summary::default();
    let mut task_ids = TaskIds::default();
    // Tool calls waiting for their result, by id.
    let mut waiting: Vec<(String, String)> = Vec::new();
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
                for block in content.as_array().into_iter().flatten() {
                    if let Some(id) = block["tool_use_id"].as_str() {
                        waiting.retain(|(w, _)| w != id);
                    }
                }
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
                    if block["type"] == "tool_use" {
                        tool_call(&mut s, &mut task_ids, &mut waiting, block);
                    }
                }
            }
            _ => {}
        }
    }
    s.unanswered = waiting.pop().map(|(_, what)| what);
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
        assert_eq!(s.edited, ["/w/b.rs"]);
        assert_eq!(s.unanswered, None);
        assert_eq!(clip("a  b\nc", 10), "a b c");
        assert_eq!(clip("abcdef", 3), "abc…");
    }

    #[test]
    fn follows_the_todo_list_the_commands_and_a_call_left_without_result() {
        let t = br#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"TodoWrite","input":{"todos":[{"content":"write the parser","status":"completed"},{"content":"test it","status":"in_progress"},{"content":"document it","status":"pending"}]}}]}}
{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Bash","input":{"command":"cargo test -p parser"}}]}}"#;
        let s = summarise(t);
        assert_eq!(
            s.todos,
            [
                ("write the parser".to_string(), "completed".to_string()),
                ("test it".into(), "in_progress".into()),
                ("document it".into(), "pending".into())
            ]
        );
        assert_eq!(s.commands, ["cargo test -p parser"]);
        assert_eq!(s.unanswered.as_deref(), Some("Bash cargo test -p parser"));

        // The Task tools of newer clients: created in order, updated by number.
        let t = br#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"a","name":"TaskCreate","input":{"subject":"add login"}},{"type":"tool_use","id":"b","name":"TaskCreate","input":{"subject":"add logout"}}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","id":"c","name":"TaskUpdate","input":{"taskId":"1","status":"completed"}},{"type":"tool_use","id":"d","name":"TaskUpdate","input":{"taskId":"2","status":"in_progress"}}]}}"#;
        let s = summarise(t);
        assert_eq!(
            s.todos,
            [
                ("add login".to_string(), "completed".to_string()),
                ("add logout".into(), "in_progress".into())
            ]
        );

        // Numbers are never reused: a task made after a deletion is number 3, not 2 again.
        let t = br#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"a","name":"TaskCreate","input":{"subject":"one"}},{"type":"tool_use","id":"b","name":"TaskCreate","input":{"subject":"two"}},{"type":"tool_use","id":"c","name":"TaskUpdate","input":{"taskId":"1","status":"deleted"}},{"type":"tool_use","id":"d","name":"TaskCreate","input":{"subject":"three"}},{"type":"tool_use","id":"e","name":"TaskUpdate","input":{"taskId":"3","status":"completed"}}]}}"#;
        let s = summarise(t);
        assert_eq!(
            s.todos,
            [
                ("two".to_string(), "pending".to_string()),
                ("three".into(), "completed".into())
            ]
        );
        assert_eq!(
            s.unanswered, None,
            "keeping the list is no work in progress"
        );
    }
}
