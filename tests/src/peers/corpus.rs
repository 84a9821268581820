//! The corpus the peer comparison moves: Claude Code-shaped sessions written on machine A, with
//! what to expect of each on machine B. Real-client sessions are added by the bench; this module
//! writes the synthetic ones (1 KB to 50 MB, tool results, subagents, tricky paths) and
//! describes every project's place on both machines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A project: where it sits on A and where it belongs on B, both relative to the HOMEs.
#[derive(Clone, Debug)]
pub struct Project {
    /// Its dir under A's HOME.
    pub on_a: String,
    /// Its dir under B's HOME.
    pub on_b: String,
    /// The git `origin` of its checkouts, if it is a checkout on both machines.
    pub origin: Option<String>,
}

/// The projects of the corpus: two checkouts that sit elsewhere on B, and tricky names that
/// keep their HOME-relative place.
pub fn projects() -> Vec<Project> {
    let long = format!("src/{}", "deeply-nested-name-".repeat(12));
    let mut out = vec![
        Project {
            on_a: "src/proj".into(),
            on_b: "work/proj".into(),
            origin: Some(crate::rig::ORIGIN.into()),
        },
        Project {
            on_a: "src/app".into(),
            on_b: "code/app".into(),
            origin: Some("https://github.com/ferry-e2e/app.git".into()),
        },
    ];
    for dir in [
        "src/my_proj.v2",
        "src/my proj",
        "src/projé 日本",
        long.trim_end_matches('-'),
    ] {
        out.push(Project {
            on_a: dir.into(),
            on_b: dir.into(),
            origin: None,
        });
    }
    out
}

/// One machine's layout: its HOME, and with it every project's absolute dir.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `$HOME`.
    pub home: PathBuf,
    /// Whether this is A (projects at `on_a`) or B (at `on_b`).
    pub is_a: bool,
}

impl Layout {
    /// The project's absolute dir on this machine.
    pub fn dir(&self, p: &Project) -> PathBuf {
        self.home.join(if self.is_a { &p.on_a } else { &p.on_b })
    }

    /// Claude Code's dir for the project's sessions on this machine.
    pub fn slug_dir(&self, p: &Project) -> PathBuf {
        self.home
            .join(".claude/projects")
            .join(ferry_sync::slug::slug(self.dir(p).to_str().expect("UTF-8")))
    }

    /// Creates the project's dirs (checkouts with their origin).
    pub fn create(&self, projects: &[Project]) {
        for p in projects {
            let dir = self.dir(p);
            std::fs::create_dir_all(&dir).expect("project dir");
            if let Some(origin) = &p.origin {
                let repo = git2::Repository::init(&dir).expect("checkout");
                if repo.find_remote("origin").is_err() {
                    repo.remote("origin", origin).expect("origin");
                }
            }
        }
    }
}

/// A session the corpus holds: its id and its project.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session id (a UUID).
    pub id: String,
    /// Index into [`projects`].
    pub project: usize,
}

/// A string that must appear in B's copy of a session, and the form it had on A.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The session id.
    pub id: String,
    /// The form on A, for the report.
    pub on_a: String,
    /// The exact text B's copy must contain.
    pub on_b: String,
    /// What it tests.
    pub what: &'static str,
}

/// A deterministic UUID-shaped id.
pub fn uuid(seed: u64, n: u64) -> String {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (x >> 32) as u32,
        (x >> 16) as u16,
        (x & 0xfff) as u16,
        (n & 0xfff) as u16,
        (seed << 24 | n) & 0xffff_ffff_ffff
    )
}

fn esc(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// Writes Claude Code-shaped transcripts for the synthetic part of the corpus.
pub struct Writer<'a> {
    /// A's layout.
    pub a: &'a Layout,
    /// B's layout, for the expectations.
    pub b: &'a Layout,
    /// The projects.
    pub projects: &'a [Project],
}

const PROSE: &str = "The change keeps the reader and the writer apart, so a slow disk never holds up \
the editor; the tests cover the torn line, the rename and the full disk. ";

impl Writer<'_> {
    /// One session of about `size` bytes in project `pi`, with a tool-results file and a
    /// subagent transcript when `extras`; returns it and the expectations it carries.
    pub fn session(
        &self,
        pi: usize,
        seed: u64,
        size: usize,
        extras: bool,
    ) -> (Session, Vec<Expect>) {
        let p = &self.projects[pi];
        let id = uuid(seed, 0);
        let cwd = self.a.dir(p);
        let cwd = cwd.to_str().expect("UTF-8");
        let dir = self.a.slug_dir(p);
        std::fs::create_dir_all(&dir).expect("slug dir");
        let (a_home, b_home) = (
            self.a.home.to_str().expect("UTF-8"),
            self.b.home.to_str().expect("UTF-8"),
        );
        let b_cwd = self.b.dir(p);
        let b_cwd = b_cwd.to_str().expect("UTF-8");
        let results = dir.join(&id).join("tool-results");
        let result_file = results.join("toolu_big01.txt");
        let b_result = self
            .b
            .slug_dir(p)
            .join(&id)
            .join("tool-results/toolu_big01.txt");
        let expects = vec![
            Expect {
                id: id.clone(),
                on_a: format!("{cwd}/src/main.rs"),
                on_b: format!("{b_cwd}/src/main.rs"),
                what: "a file in the project",
            },
            Expect {
                id: id.clone(),
                on_a: format!("{a_home}/src/projects/notes.md"),
                on_b: format!("{b_home}/src/projects/notes.md"),
                what: "a dir the project's path is a prefix of",
            },
            Expect {
                id: id.clone(),
                on_a: "${HOME}/.bashrc".into(),
                on_b: "${HOME}/.bashrc".into(),
                what: "literal ${HOME} text",
            },
            Expect {
                id: id.clone(),
                on_a: r"C:\\Users\\alice\\proj\\main.rs".into(),
                on_b: r"C:\\Users\\alice\\proj\\main.rs".into(),
                what: "a Windows path in content",
            },
            Expect {
                id: id.clone(),
                on_a: result_file.display().to_string(),
                on_b: b_result.display().to_string(),
                what: "a tool-results path",
            },
        ];
        let mut text = String::new();
        let mut parent = "null".to_string();
        let mut n = 0u64;
        let mut line = |text: &mut String, body: String, parent: &mut String| {
            n += 1;
            let uuid = esc(&uuid(seed, n));
            let ts = format!(
                "2026-11-{:02}T{:02}:{:02}:{:02}.000Z",
                1 + seed % 20,
                (n / 3600) % 24,
                (n / 60) % 60,
                n % 60
            );
            let _ = writeln!(
                text,
                r#"{{"parentUuid":{parent},"isSidechain":false,{body},"uuid":{uuid},"timestamp":"{ts}","userType":"external","entrypoint":"cli","cwd":{},"sessionId":"{id}","version":"2.1.330","gitBranch":"main"}}"#,
                esc(cwd)
            );
            *parent = uuid;
        };
        let user = |t: &str| {
            format!(
                r#""type":"user","message":{{"role":"user","content":{}}}"#,
                esc(t)
            )
        };
        // Every assistant message has its own id: the client groups streamed chunks by it.
        let assistant = |k: usize, t: &str| {
            format!(
                r#""type":"assistant","message":{{"id":"msg_{seed:x}_{k}","type":"message","role":"assistant","model":"claude-opus-5-5","content":[{{"type":"text","text":{}}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":10,"output_tokens":5}}}}"#,
                esc(t)
            )
        };
        let marks = format!(
            "Look at {cwd}/src/main.rs and {a_home}/src/projects/notes.md, not ${{HOME}}/.bashrc; \
             the Windows build failed in C:\\Users\\alice\\proj\\main.rs; the output is in {}.",
            result_file.display()
        );
        line(&mut text, user(&marks), &mut parent);
        line(&mut text, assistant(0, "I will read them."), &mut parent);
        let mut i = 0;
        while text.len() < size {
            i += 1;
            let body = if i % 2 == 1 {
                user(&format!(
                    "step {i}: open {cwd}/src/mod_{i}.rs and compare with {cwd}/tests/t_{i}.rs"
                ))
            } else {
                let mut t = format!("Read {cwd}/src/mod_{}.rs. ", i - 1);
                while t.len() < 1500 {
                    t.push_str(PROSE);
                }
                assistant(i, &t)
            };
            line(&mut text, body, &mut parent);
        }
        std::fs::write(dir.join(format!("{id}.jsonl")), &text).expect("transcript");
        if extras {
            std::fs::create_dir_all(&results).expect("tool-results");
            let mut out = String::new();
            for k in 0..2000 {
                let _ = writeln!(out, "{cwd}/target/debug/build/out-{k}.o");
            }
            std::fs::write(&result_file, out).expect("tool result");
            let agents = dir.join(&id).join("subagents");
            std::fs::create_dir_all(&agents).expect("subagents");
            let mut sub = String::new();
            let mut sp = "null".to_string();
            for k in 0..20u64 {
                let body = if k % 2 == 0 {
                    user(&format!("search {cwd} for TODO {k}"))
                } else {
                    assistant(k as usize, &format!("found {cwd}/src/lib.rs:{k}"))
                };
                let uuid = esc(&uuid(seed ^ 0xa6e, k + 1));
                let _ = writeln!(
                    sub,
                    r#"{{"parentUuid":{sp},"isSidechain":true,"agentId":"a{seed:x}",{body},"uuid":{uuid},"timestamp":"2026-11-01T00:00:{k:02}.000Z","cwd":{},"sessionId":"{id}"}}"#,
                    esc(cwd)
                );
                sp = uuid;
            }
            std::fs::write(agents.join(format!("agent-a{seed:x}.jsonl")), sub).expect("subagent");
        }
        (Session { id, project: pi }, expects)
    }
}

/// Every file under `dir`, relative to it, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &path, out),
                Ok(t) if t.is_file() => {
                    out.push(path.strip_prefix(root).expect("under root").into())
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Appends a user turn saying `text` to the transcript at `path`, chained to its last line, as
/// the client would on the machine whose project dir is `cwd`.
pub fn append_user(path: &Path, id: &str, cwd: &Path, text: &str, n: u64) {
    use std::io::Write as _;
    let old = std::fs::read_to_string(path).expect("transcript");
    let parent = old
        .lines()
        .rev()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v["uuid"].as_str()?.to_string())
        })
        .map_or("null".to_string(), |u| esc(&u));
    let line = format!(
        r#"{{"parentUuid":{parent},"isSidechain":false,"type":"user","message":{{"role":"user","content":{}}},"uuid":{},"timestamp":"2026-11-22T12:00:{:02}.000Z","userType":"external","entrypoint":"cli","cwd":{},"sessionId":"{id}","version":"2.1.330","gitBranch":"main"}}"#,
        esc(text),
        esc(&uuid(0xc4a96e, n)),
        n % 60,
        esc(cwd.to_str().expect("UTF-8"))
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    writeln!(f, "{line}").expect("append");
}
