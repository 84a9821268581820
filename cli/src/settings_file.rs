//! Claude Code's `settings.json`, edited in place: only the lists of hooks ferry changes are
//! written anew; every other key and every other hook keeps its exact text, its order and the
//! file's indentation, so installing and then removing ferry's hooks gives the file back byte
//! for byte.

use anyhow::{Context, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::fmt;

/// An object's members in the file's order, each value as its exact text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A value parsed only as deep as an edit needs. An object or list opened for an edit keeps
/// its text as the file had it, written back if the edit left its value as it was.
enum Node {
    Object(Vec<(String, Node)>, Option<Box<RawValue>>),
    Array(Vec<Node>, Option<Box<RawValue>>),
    /// Kept as the file had it.
    Raw(Box<RawValue>),
    /// Added now: written in the file's style.
    New(Value),
}

/// How a list or object is laid out.
#[derive(Clone, Copy)]
struct Style {
    /// One item per line, indented; else all on one line.
    pretty: bool,
    /// A space after `:` and `,` (on one line).
    spaced: bool,
}

/// The settings file's text, ready to have hook lists changed.
pub struct Settings {
    top: Vec<(String, Node)>,
    /// The file's text, written back if its value did not change.
    original: String,
    /// One level of indentation as the file has it (empty: a one-line file).
    indent: String,
    /// In a one-line file, whether `:` and `,` are followed by a space.
    spaced: bool,
    newline_at_end: bool,
}

impl Settings {
    /// Reads `text` (a JSON object); `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Settings> {
        let empty = text.trim().is_empty();
        let text = if empty { "{}\n" } else { text };
        let members: Members = serde_json::from_str(text)
            .with_context(|| format!("{what} is not a JSON object; fix it and run this again"))?;
        let indent = text
            .lines()
            .nth(1)
            .map(|l| l[..l.len() - l.trim_start().len()].to_string())
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| if text.contains('\n') { "  " } else { "" }.to_string());
        Ok(Settings {
            original: text.to_string(),
            top: members
                .0
                .into_iter()
                .map(|(k, v)| (k, Node::Raw(v)))
                .collect(),
            indent,
            spaced: text.contains("\": "),
            newline_at_end: text.ends_with('\n'),
        })
    }

    /// Removes from `hooks.<event>` every entry `ours` picks and, when `add` is given, appends
    /// it. An event list (and then `hooks`) left empty by a removal goes too. Returns whether
    /// anything was removed.
    pub fn edit_hooks(
        &mut self,
        event: &str,
        ours: impl Fn(&Value) -> bool,
        add: Option<Value>,
    ) -> Result<bool> {
        let hooks = match self.top.iter().position(|(k, _)| k == "hooks") {
            Some(i) => i,
            None if add.is_none() => return Ok(false),
            None => {
                self.top
                    .push(("hooks".into(), Node::Object(Vec::new(), None)));
                self.top.len() - 1
            }
        };
        let events = expand_object(&mut self.top[hooks].1, "`hooks` in the settings")?;
        let at = match events.iter().position(|(k, _)| k == event) {
            Some(i) => i,
            None if add.is_none() => return Ok(false),
            None => {
                events.push((event.into(), Node::Array(Vec::new(), None)));
                events.len() - 1
            }
        };
        let list = expand_array(&mut events[at].1, event)?;
        let before = list.len();
        list.retain(|n| match n {
            Node::Raw(r) => !serde_json::from_str::<Value>(r.get()).is_ok_and(|v| ours(&v)),
            _ => true,
        });
        let removed = list.len() < before;
        if let Some(entry) = add {
            list.push(Node::New(entry));
        }
        if removed && list.is_empty() {
            events.remove(at);
            if events.is_empty() {
                self.top.remove(hooks);
            }
        }
        Ok(removed)
    }

    /// The file's new text.
    pub fn text(&self) -> String {
        let now = Value::Object(
            self.top
                .iter()
                .map(|(k, n)| (k.clone(), n.value()))
                .collect(),
        );
        if serde_json::from_str::<Value>(&self.original).ok() == Some(now) {
            return self.original.clone();
        }
        let pretty = !self.indent.is_empty();
        let style = Style {
            pretty,
            spaced: pretty || self.spaced,
        };
        let mut out = String::new();
        self.write_items(
            self.top.iter().map(|(k, n)| (Some(k.as_str()), n)),
            ('{', '}'),
            0,
            style,
            &mut out,
        );
        if self.newline_at_end {
            out.push('\n');
        }
        out
    }

    /// Writes `node` at `level` in `style`, its parent's (a list or object opened for an edit
    /// keeps its own: one that was on one line stays on one line).
    fn write(&self, node: &Node, level: usize, style: Style, out: &mut String) {
        let own = |orig: &Option<Box<RawValue>>| match orig {
            Some(r) if !r.get().contains('\n') => Style {
                pretty: false,
                spaced: r.get().contains("\": ") || r.get().contains(", "),
            },
            Some(_) if !self.indent.is_empty() => Style {
                pretty: true,
                spaced: true,
            },
            _ => style,
        };
        match node {
            Node::Raw(r) => out.push_str(r.get()),
            Node::New(v) if !style.pretty => out.push_str(&v.to_string()),
            Node::New(v) => out.push_str(&self.pretty(v, level)),
            Node::Object(_, Some(orig)) | Node::Array(_, Some(orig)) if node.unchanged(orig) => {
                out.push_str(orig.get())
            }
            Node::Object(members, orig) => self.write_items(
                members.iter().map(|(k, n)| (Some(k.as_str()), n)),
                ('{', '}'),
                level,
                own(orig),
                out,
            ),
            Node::Array(items, orig) => self.write_items(
                items.iter().map(|n| (None, n)),
                ('[', ']'),
                level,
                own(orig),
                out,
            ),
        }
    }

    /// Items at `level + 1`: one per line, or all on one line.
    fn write_items<'a>(
        &self,
        items: impl ExactSizeIterator<Item = (Option<&'a str>, &'a Node)>,
        (open, close): (char, char),
        level: usize,
        style: Style,
        out: &mut String,
    ) {
        out.push(open);
        let empty = items.len() == 0;
        let inner = self.indent.repeat(level + 1);
        for (i, (key, node)) in items.enumerate() {
            if i > 0 {
                out.push(',');
                if style.spaced && !style.pretty {
                    out.push(' ');
                }
            }
            if style.pretty {
                out.push('\n');
                out.push_str(&inner);
            }
            if let Some(k) = key {
                out.push_str(&Value::from(k).to_string());
                out.push_str(if style.spaced { ": " } else { ":" });
            }
            self.write(node, level + 1, style, out);
        }
        if style.pretty && !empty {
            out.push('\n');
            out.push_str(&self.indent.repeat(level));
        }
        out.push(close);
    }

    /// `v` pretty-printed with the file's indentation, starting at `level`.
    fn pretty(&self, v: &Value, level: usize) -> String {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(self.indent.as_bytes());
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        serde::Serialize::serialize(v, &mut ser).expect("a value serialises");
        String::from_utf8(buf)
            .expect("JSON is UTF-8")
            .replace('\n', &format!("\n{}", self.indent.repeat(level)))
    }
}

impl Node {
    /// What it holds now.
    fn value(&self) -> Value {
        match self {
            Node::Raw(r) => serde_json::from_str(r.get()).expect("raw values are JSON"),
            Node::New(v) => v.clone(),
            Node::Object(m, _) => {
                Value::Object(m.iter().map(|(k, n)| (k.clone(), n.value())).collect())
            }
            Node::Array(items, _) => Value::Array(items.iter().map(Node::value).collect()),
        }
    }

    /// Whether it still holds what `orig` says.
    fn unchanged(&self, orig: &RawValue) -> bool {
        serde_json::from_str::<Value>(orig.get()).is_ok_and(|v| v == self.value())
    }
}

/// `node` as an object whose members can be changed (parsed from its text the first time).
fn expand_object<'a>(node: &'a mut Node, what: &str) -> Result<&'a mut Vec<(String, Node)>> {
    if let Node::Raw(r) = node {
        let members: Members = serde_json::from_str(r.get())
            .with_context(|| format!("{what} is not an object; fix it and run this again"))?;
        let members = members
            .0
            .into_iter()
            .map(|(k, v)| (k, Node::Raw(v)))
            .collect();
        *node = Node::Object(members, Some(r.clone()));
    }
    match node {
        Node::Object(m, _) => Ok(m),
        _ => anyhow::bail!("{what} is not an object; fix it and run this again"),
    }
}

/// `node` as a list whose items can be changed.
fn expand_array<'a>(node: &'a mut Node, event: &str) -> Result<&'a mut Vec<Node>> {
    if let Node::Raw(r) = node {
        let items: Vec<Box<RawValue>> = serde_json::from_str(r.get()).with_context(|| {
            format!("`hooks.{event}` in the settings is not a list; fix it and run this again")
        })?;
        *node = Node::Array(items.into_iter().map(Node::Raw).collect(), Some(r.clone()));
    }
    match node {
        Node::Array(items, _) => Ok(items),
        _ => anyhow::bail!("`hooks.{event}` in the settings is not a list"),
    }
}

/// The hook entry that runs `command`.
pub fn hook_entry(command: &str) -> Value {
    json!({"hooks": [{"type": "command", "command": command}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(v: &Value) -> bool {
        v.to_string().contains("ferry hooks run")
    }

    /// Adding and then removing a hook gives every file back as it was, whatever its style.
    #[test]
    fn install_then_uninstall_gives_the_file_back_byte_for_byte() {
        let files = [
            "{\n  \"model\": \"opus\",\n  \"permissions\": {\n    \"allow\": [\"Bash(ls)\"]\n  },\n  \"cleanupPeriodDays\": 100000\n}\n",
            "{\n    \"zeta\": 1,\n    \"alpha\": {\"x\": [1, 2]},\n    \"hooks\": {\n        \"Stop\": [\n            {\n                \"matcher\": \"\",\n                \"hooks\": [{\"type\": \"command\", \"command\": \"notify-send done\"}]\n            }\n        ],\n        \"PreToolUse\": []\n    }\n}",
            "{\"b\":1,\"a\":\"\\u00e9\"}",
            "{\"b\": 1, \"a\": [1, 2]}",
            "",
            "{}\n",
            "{\n  \"hooks\": {\"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"true\"}]}]}\n}\n",
        ];
        for before in files {
            let mut s = Settings::parse(before, "settings.json").unwrap();
            for event in ["Stop", "SessionEnd"] {
                s.edit_hooks(event, ours, Some(hook_entry("ferry hooks run stop")))
                    .unwrap();
            }
            let installed = s.text();
            let v: Value = serde_json::from_str(&installed).unwrap();
            assert!(ours(&v["hooks"]["Stop"]), "{installed}");
            let mut s = Settings::parse(&installed, "settings.json").unwrap();
            for event in ["Stop", "SessionEnd"] {
                assert!(s.edit_hooks(event, ours, None).unwrap());
            }
            let after = s.text();
            let expected = if before.is_empty() { "{}\n" } else { before };
            assert_eq!(after, expected, "installed:\n{installed}");
        }
    }

    #[test]
    fn a_new_hook_is_written_in_the_files_style_after_the_users_own() {
        let before = "{\n  \"hooks\": {\n    \"Stop\": [\n      {\"hooks\": [{\"type\": \"command\", \"command\": \"mine\"}]}\n    ]\n  }\n}\n";
        let mut s = Settings::parse(before, "settings.json").unwrap();
        s.edit_hooks("Stop", ours, Some(hook_entry("ferry hooks run stop")))
            .unwrap();
        assert_eq!(
            s.text(),
            "{\n  \"hooks\": {\n    \"Stop\": [\n      {\"hooks\": [{\"type\": \"command\", \"command\": \"mine\"}]},\n      {\n        \"hooks\": [\n          {\n            \"command\": \"ferry hooks run stop\",\n            \"type\": \"command\"\n          }\n        ]\n      }\n    ]\n  }\n}\n"
        );
        assert!(Settings::parse("[1]", "settings.json").is_err());
        let mut bad = Settings::parse("{\"hooks\": 3}", "settings.json").unwrap();
        assert!(bad.edit_hooks("Stop", ours, None).is_err());
    }
}
