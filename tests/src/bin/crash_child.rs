//! A process for crash tests: appends transcript lines to an upper layer while the real sync
//! engine commits, pushes and fetches behind it, and records each line in an acknowledgement
//! file only after the write returned. The test kills it with SIGKILL at random moments.
//!
//! Usage: crash_child STATE_DIR REMOTE_URL

use ferry_sync::engine::{self, EngineConfig};
use ferry_sync::store::{Change, MachineRecord, RelPath, Store};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let state = PathBuf::from(&args[1]);
    let remote = args.get(2).cloned();
    let home = state.join("home");
    let root = home.join("src/proj");
    let upper = home
        .join(".claude/projects")
        .join(ferry_sync::slug::slug(root.to_str().unwrap()));
    std::fs::create_dir_all(&upper).unwrap();
    let machine = MachineRecord {
        id: "crashy".into(),
        name: "crashy".into(),
        os: "linux".into(),
        home: home.to_str().unwrap().into(),
        tmp: "/tmp".into(),
        claude_dir: home.join(".claude").to_str().unwrap().into(),
        claude_tmp: "/tmp/claude-0".into(),
        last_seen_ms: 0,
        seen_ms: Default::default(),
        home_real: None,
        retired: Default::default(),
    };
    let store_path = state.join("store.git");
    Store::init(&store_path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let config = EngineConfig {
        quiet: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        fetch_every: Duration::from_millis(10),
        net_timeout: Duration::from_secs(5),
        backoff_max: Duration::from_millis(100),
        max_fetch_bytes: 1 << 30,
        compact_every: 40,
        upper: Some(home.join(".claude/projects")),
        links: Vec::new(),
        ..EngineConfig::default()
    };
    let engine = engine::start(store_path, machine.clone(), remote, config);
    let transcript = upper.join("s.jsonl");
    let mut acks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("acks"))
        .unwrap();
    let start = std::fs::read_to_string(state.join("acks")).map_or(0, |s| s.lines().count());
    let mut project = None;
    for i in start.. {
        let line = format!(
            "{{\"cwd\":\"{}\",\"uuid\":\"l{i}\",\"message\":\"line {i} about {}/src/main.rs {}\"}}\n",
            root.display(),
            root.display(),
            "x".repeat(i % 700)
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&transcript)
            .unwrap();
        let at = f.metadata().unwrap().len();
        f.write_all(line.as_bytes()).unwrap();
        drop(f);
        writeln!(acks, "l{i}").unwrap();
        let p = project.get_or_insert_with(|| {
            ferry_sync::upper::project_for_dir(&upper, &home, &[]).expect("project record")
        });
        engine.note(
            p,
            RelPath::new("s.jsonl").unwrap(),
            Change::Write {
                local: transcript.clone(),
                dirty_from: Some(at),
            },
            line.len() as u64,
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
