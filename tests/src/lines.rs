//! Transcript lines as the end-to-end tests write them through a view and look for them.

use std::io::Write;
use std::path::Path;

/// Appends a user line with `uuid`, written in `cwd`, to the transcript at `path`.
pub fn append(path: &Path, cwd: &Path, uuid: &str) {
    let line = serde_json::json!({"uuid": uuid, "cwd": cwd, "type": "user",
        "message": {"content": format!("line {uuid}")}});
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the transcript");
    writeln!(f, "{line}").expect("append a line");
}

/// Whether the transcript at `path` holds a line with each of `uuids`.
pub fn holds(path: &Path, uuids: &[&str]) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    uuids
        .iter()
        .all(|u| text.contains(&format!("\"uuid\":\"{u}\"")))
}

/// The machine id `ferry init` recorded in the state dir `state`.
pub fn machine_id(state: &Path) -> String {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("config.json")).expect("config.json"))
            .expect("config.json is JSON");
    config["machine_id"]
        .as_str()
        .expect("a machine id")
        .to_string()
}
