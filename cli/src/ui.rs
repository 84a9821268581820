//! How a command speaks to its user: text or JSON (the global `--json`), how much (`-q`, `-v`),
//! and how a failure ends: its [`Kind`] gives the exit code, and under `--json` the error is JSON
//! too, so that a script reading stdout always gets one document.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// The version of every JSON document ferry prints (the field `schema`); raised when a field
/// changes meaning or goes away, never for a field added.
pub const SCHEMA: u32 = 1;

/// The global output switches, passed to every command.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ui {
    /// One JSON document on stdout instead of text.
    pub json: bool,
    /// Only errors and the result itself; no notes or progress.
    pub quiet: bool,
    /// More detail (`-v`, `-vv`): also sent to the log level of a foreground daemon.
    pub verbose: u8,
}

impl Ui {
    /// Prints a command's result: `value` as JSON (an object gets the `schema` field), or the
    /// text `text` makes.
    pub fn out(&self, value: &impl Serialize, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", with_schema(value));
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{}", t.trim_end_matches('\n'));
            }
        }
    }

    /// A line for people on stderr (what is happening, a warning), unless `--quiet`. Under
    /// `--json` it still goes to stderr, which scripts do not parse.
    pub fn note(&self, line: impl fmt::Display) {
        if !self.quiet {
            eprintln!("ferry: {line}");
        }
    }
}

/// `value` as one JSON line, with `"schema": SCHEMA` added when it is an object.
pub fn with_schema(value: &impl Serialize) -> String {
    let v = serde_json::to_value(value).unwrap_or(Value::Null);
    let v = match v {
        Value::Object(map) => {
            let mut map = map;
            map.insert("schema".into(), SCHEMA.into());
            Value::Object(map)
        }
        other => other,
    };
    v.to_string()
}

/// What kind of failure ended a command: it sets the exit code, and scripts match on its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The command could not do what was asked; the message says what to do next.
    Failed,
    /// The command line was wrong.
    Usage,
    /// The local part was done (committed, unmounted) but the remote was not reached or did not
    /// take the push: nothing is lost, it goes out later.
    RemoteUnreachable,
    /// `ferry doctor` found a check that failed.
    CheckFailed,
}

impl Kind {
    /// The process's exit code for this kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::Failed | Kind::CheckFailed => 1,
            Kind::Usage => 2,
            Kind::RemoteUnreachable => 3,
        }
    }
}

/// A failure of a known kind, carried inside an `anyhow::Error` to `main`.
#[derive(Debug)]
pub struct Failure {
    /// Its kind.
    pub kind: Kind,
    /// What happened and what to do next.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An error of kind `kind`.
pub fn fail(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// The kind of `e`: the innermost [`Failure`] in its chain, else [`Kind::Failed`].
pub fn kind_of(e: &anyhow::Error) -> Kind {
    e.chain()
        .find_map(|c| c.downcast_ref::<Failure>())
        .map_or(Kind::Failed, |f| f.kind)
}

/// How a command that printed its result still ends: 0, or the code of a kind (a sync that
/// committed but did not reach the remote prints its report and exits 3).
pub type Exit = u8;

/// Prints `e` for the user: `ferry: message` on stderr, and under `--json` also one JSON
/// document on stdout (`{"schema":1,"error":{"kind":…,"message":…,"exit":…}}`); returns the exit
/// code.
pub fn report_error(ui: &Ui, e: &anyhow::Error) -> u8 {
    let kind = kind_of(e);
    let message = format!("{e:#}");
    if ui.json {
        let doc =
            serde_json::json!({"error": {"kind": kind, "message": message, "exit": kind.code()}});
        println!("{}", with_schema(&doc));
    }
    eprintln!("ferry: {message}");
    kind.code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn objects_get_the_schema_and_only_it() {
        let doc = with_schema(&serde_json::json!({"a": 1, "schema": 9}));
        assert_eq!(doc, r#"{"a":1,"schema":1}"#);
        assert_eq!(with_schema(&serde_json::json!([1, 2])), "[1,2]");
    }

    #[test]
    fn a_kind_survives_context_and_sets_the_code() {
        let e = Err::<(), _>(fail(Kind::RemoteUnreachable, "remote down"))
            .context("unmounting")
            .unwrap_err();
        assert_eq!(kind_of(&e), Kind::RemoteUnreachable);
        assert_eq!(kind_of(&e).code(), 3);
        assert_eq!(kind_of(&anyhow::anyhow!("plain")), Kind::Failed);
        assert_eq!(
            serde_json::to_value(Kind::CheckFailed).unwrap(),
            "check_failed"
        );
    }
}
