//! ferry against the tools people use today (issue 7): commuter and claude-hop, installed from
//! PyPI into a throwaway virtualenv by `scripts/bench-peers`, which runs this. Every tool moves
//! the same generated corpus from machine A to machine B (another HOME, checkouts elsewhere) and
//! back; the real Claude Code client resumes the sessions on B; then each moves a large corpus
//! and, after one session changes, moves it again. Prints the tables BENCHMARKS.md holds.
//!
//! Env: PEERS_VENV (required), PEERS_SCALE (session counts, default "1000"), PEERS_BIG (bytes of
//! the largest transcript, default 50 MB), PEERS_OUT (also write the tables to this file),
//! PEERS_ARRIVAL (`lookup`: a file arrived on B once it is found by name, not once it is listed;
//! see `ferry_tests::peers::tools::ferry`).

use ferry_tests::claude::{User, VERSIONS};
use ferry_tests::peers::corpus::{Session, Writer, append_user, files};
use ferry_tests::peers::cost::Cost;
use ferry_tests::peers::fidelity::{self, Placed, Returned};
use ferry_tests::peers::tools::{Commuter, Ferry, Hop, Tool};
use ferry_tests::peers::world::{Arrival, World};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The corpus on A, once written: every session, the expectations, and the sessions B resumes
/// with a piece of each one's history the client must send.
struct Corpus {
    sessions: Vec<Session>,
    expects: Vec<ferry_tests::peers::corpus::Expect>,
    resumable: Vec<(Session, String)>,
}

/// One tool's figures over the fidelity corpus.
struct Row {
    name: &'static str,
    there: Cost,
    placed: Placed,
    resumed: usize,
    back: Cost,
    returned: Returned,
    late: Late,
    overall: Cost,
}

fn sh(cmd: &mut Command) {
    let st = cmd.status().expect("command runs");
    assert!(st.success(), "{cmd:?} failed");
}

/// Writes the corpus on A: synthetic sessions of every size in every project, and sessions the
/// real client writes offline.
fn corpus(w: &World) -> Corpus {
    let big: usize = std::env::var("PEERS_BIG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000_000);
    w.a.create(&w.projects);
    let writer = Writer {
        a: &w.a,
        b: &w.b,
        projects: &w.projects,
    };
    let mut c = Corpus {
        sessions: Vec::new(),
        expects: Vec::new(),
        resumable: Vec::new(),
    };
    let mut seed = 1;
    let plan = (0..w.projects.len())
        .map(|pi| (pi, 20_000, true))
        .chain([(0, big, false), (1, 1_000, true), (2, 1_000_000, true)])
        .chain([(3, 5_000_000, false), (5, 200_000, true)]);
    for (pi, size, extras) in plan {
        seed += 1;
        let (s, e) = writer.session(pi, seed, size, extras);
        if size == 20_000 {
            c.resumable
                .push((s.clone(), "the Windows build failed in".to_string()));
        }
        c.sessions.push(s);
        c.expects.extend(e);
    }
    let user = User::at(&w.a.home, w.root.join("api-a.jsonl"));
    for (k, pi) in [0, 2, 4].into_iter().enumerate() {
        let p = &w.projects[pi];
        let dir = w.a.slug_dir(p);
        let known: Vec<PathBuf> = files(&dir);
        let prompt = format!("real session R{k} written on A");
        let out = user.run(VERSIONS[1], &w.a.dir(p), &["-p", &prompt]);
        assert!(out.status.success(), "claude on A: {out:?}");
        let id = files(&dir)
            .into_iter()
            .find(|f| !known.contains(f) && f.extension().is_some_and(|e| e == "jsonl"))
            .and_then(|f| Some(f.file_stem()?.to_str()?.to_string()))
            .expect("the real client wrote a session");
        let s = Session { id, project: pi };
        c.sessions.push(s.clone());
        c.resumable.push((s, prompt));
    }
    c
}

/// Removes both machines, the remote and the bundles.
/// Moves the last run's sides out of the way; they are deleted with the bench's temporary
/// directory at the end. Deleted here, their tens of thousands of files made every file the
/// next transfer created slower: an ext4 without a journal (this bench's machine) passes over
/// every inode freed in the last minute (six, while its table is unwritten) when it allocates
/// one: in one profile, 45% of ferry's receiving daemon's CPU. A user's first transfer does
/// not follow the deletion of tens of thousands of files.
fn clear(w: &World) {
    static CLEARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CLEARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let to = w.root.join("cleared").join(n.to_string());
    std::fs::create_dir_all(&to).expect("a place for what is cleared");
    for side in ["a", "b", "remote", "commuter-bundles"] {
        match std::fs::rename(w.root.join(side), to.join(side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                panic!("clearing {side}: {e}")
            }
            _ => {}
        }
    }
}

/// Puts the world back to A's corpus and an empty B.
fn reset(w: &World, template: &Path) {
    clear(w);
    std::fs::create_dir_all(w.a.home.parent().expect("parent")).expect("A's parent");
    sh(Command::new("cp").arg("-a").arg(template).arg(&w.a.home));
    w.b.create(&w.projects);
}

fn arrivals(w: &World, originals: &[PathBuf]) -> Vec<Arrival> {
    let to = w.b.home.join(".claude/projects");
    originals
        .iter()
        .map(|rel| Arrival {
            path: to.join(w.across(true, rel)),
            needle: String::new(),
        })
        .collect()
}

fn fidelity_run(
    w: &World,
    tool: &mut dyn Tool,
    c: &Corpus,
    template: &Path,
    originals: &[PathBuf],
) -> Row {
    reset(w, template);
    eprintln!("{}: A -> B", tool.name());
    let there = tool.transfer(w, true, &c.sessions, &arrivals(w, originals));
    let placed = fidelity::on_b(w, originals, &c.sessions, &c.expects);
    eprintln!(
        "{}: resuming {} sessions on B",
        tool.name(),
        c.resumable.len()
    );
    let user = User::at(&w.b.home, w.root.join("api-b.jsonl"));
    let mut resumed = Vec::new();
    for (s, marker) in &c.resumable {
        let prompt = format!("continue on B {}", &s.id[..8]);
        if fidelity::resume(w, &user, s, marker, &prompt) {
            resumed.push((s.clone(), prompt));
        }
    }
    eprintln!("{}: B -> A", tool.name());
    let back_arrivals: Vec<Arrival> = resumed
        .iter()
        .map(|(s, prompt)| Arrival {
            path: w.transcript(true, s),
            needle: prompt.clone(),
        })
        .collect();
    let worked: Vec<Session> = c.resumable.iter().map(|(s, _)| s.clone()).collect();
    let back = tool.transfer(w, false, &worked, &back_arrivals);
    let returned = fidelity::on_a(w, &template.join(".claude/projects"), originals, &resumed);
    eprintln!("{}: one late change on A", tool.name());
    let late = change_one(w, tool, &c.resumable[0].0);
    let mut charged = there;
    for c in [back, late.cost] {
        charged.add(c);
    }
    Row {
        overall: tool.overall(charged),
        name: tool.name(),
        there,
        placed,
        resumed: resumed.len(),
        back,
        returned,
        late,
    }
}

/// How many single changes each "change one" measure makes.
const CHANGES: u32 = 5;

/// The transfers that followed single changes on A.
struct Late {
    /// Each transfer's wall time, sorted.
    walls: Vec<Duration>,
    /// What they cost together.
    cost: Cost,
    /// Whether the real client on B then resumed the session with the last change in it.
    resumed: bool,
}

impl Late {
    fn show(&self) -> String {
        format!(
            "p50 {:.2} s, max {:.2} s ({})",
            self.walls[self.walls.len() / 2].as_secs_f64(),
            self.walls[self.walls.len() - 1].as_secs_f64(),
            if self.resumed {
                "resumed"
            } else {
                "NOT resumed"
            }
        )
    }

    /// The cost of one change's transfer, on average (peak: the largest).
    fn per_change(&self) -> Cost {
        let n = self.walls.len() as u32;
        let mut c = self.cost;
        c.cpu /= n;
        c.receiving = c.receiving.map(|(cpu, git)| (cpu / n, git / n));
        c
    }
}

/// Appends a turn to `s` on A and moves it to B, [`CHANGES`] times.
fn change_one(w: &World, tool: &mut dyn Tool, s: &Session) -> Late {
    let mut late = Late {
        walls: Vec::new(),
        cost: Cost::default(),
        resumed: false,
    };
    let mut marker = String::new();
    for n in 0..CHANGES {
        // Changes at different moments of B's fetch cycle (every 2 s), not in step with it.
        std::thread::sleep(Duration::from_millis(u64::from(n) * 450));
        marker = format!("late change {n} on A");
        append_user(
            &w.transcript(true, s),
            &s.id,
            &w.project_dir(true, s),
            &marker,
            u64::from(n),
        );
        let arrival = Arrival {
            path: w.transcript(false, s),
            needle: marker.clone(),
        };
        let cost = tool.transfer(w, true, std::slice::from_ref(s), &[arrival]);
        late.walls.push(cost.wall);
        late.cost.add(cost);
    }
    late.walls.sort();
    let user = User::at(&w.b.home, w.root.join("api-b.jsonl"));
    late.resumed = fidelity::resume(w, &user, s, &marker, "after the late change");
    late
}

/// One tool over `n` sessions: the first transfer (none for a tool that moves one session per
/// command), then one session changed and moved again.
fn scale_run(w: &World, tool: &mut dyn Tool, n: usize) -> (Option<Cost>, Late) {
    clear(w);
    w.a.create(&w.projects);
    w.b.create(&w.projects);
    let writer = Writer {
        a: &w.a,
        b: &w.b,
        projects: &w.projects,
    };
    let sessions: Vec<Session> = (0..n)
        .map(|i| {
            writer
                .session(i % w.projects.len(), 100_000 + i as u64, 4_000, false)
                .0
        })
        .collect();
    let originals = files(&w.a.home.join(".claude/projects"));
    eprintln!("{}: {n} sessions A -> B", tool.name());
    let first = if tool.per_session() {
        None
    } else {
        Some(tool.transfer(w, true, &sessions, &arrivals(w, &originals)))
    };
    if first.is_none() {
        tool.transfer(w, true, &sessions[..1], &[]);
    }
    (first, change_one(w, tool, &sessions[0]))
}

fn secs(c: &Cost) -> String {
    format!("{:.2} s", c.wall.as_secs_f64())
}

fn cost(c: &Cost) -> String {
    let failed = match c.failed {
        0 => String::new(),
        n => format!("; {n} commands failed"),
    };
    let receiving = c.receiving.map_or(String::new(), |(cpu, git)| {
        format!(
            " (the receiving machine {:.3} s, its git {:.3} s)",
            cpu.as_secs_f64(),
            git.as_secs_f64()
        )
    });
    format!(
        "{:.3} s CPU{receiving}, {:.0} MiB{failed}",
        c.cpu.as_secs_f64(),
        c.peak_kib as f64 / 1024.0
    )
}

/// Per session count: each tool's first transfer (if it has one), the transfer after one change,
/// and whether B resumed the changed session.
type Scale = Vec<(usize, Vec<(&'static str, Option<Cost>, Late)>)>;

fn table(rows: &[Row], c: &Corpus, scale: &Scale) -> String {
    let mut t = String::new();
    let head = |t: &mut String, first: &str| {
        let _ = write!(t, "| {first} |");
        for r in rows {
            let _ = write!(t, " {} |", r.name);
        }
        let _ = write!(t, "\n|---|");
        for _ in rows {
            let _ = write!(t, "---:|");
        }
        t.push('\n');
    };
    let line = |t: &mut String, what: &str, f: &dyn Fn(&Row) -> String| {
        let _ = write!(t, "| {what} |");
        for r in rows {
            let _ = write!(t, " {} |", f(r));
        }
        t.push('\n');
    };
    head(&mut t, "fidelity, A → B → A");
    line(&mut t, "files placed where B's client looks", &|r| {
        format!("{} / {}", r.placed.placed, r.placed.files)
    });
    line(&mut t, "A paths left on B (plain or in a slug)", &|r| {
        r.placed.foreign.to_string()
    });
    let kinds: Vec<&str> = rows[0].placed.expects.keys().copied().collect();
    for k in kinds {
        line(&mut t, &format!("expected on B: {k}"), &|r| {
            let (m, n) = r.placed.expects[k];
            format!("{m} / {n}")
        });
    }
    line(
        &mut t,
        "sessions the real `claude --resume` finds on B",
        &|r| format!("{} / {}", r.resumed, c.resumable.len()),
    );
    line(&mut t, "files back on A byte-identical", &|r| {
        format!("{} / {}", r.returned.identical, r.returned.files)
    });
    line(&mut t, "files back on A as original + B's turn", &|r| {
        r.returned.extended.to_string()
    });
    line(&mut t, "B's turn in A's copy of a resumed session", &|r| {
        format!("{} / {}", r.returned.turns_back, r.resumed)
    });
    line(&mut t, "B paths left on A (plain or in a slug)", &|r| {
        r.returned.foreign.to_string()
    });
    t.push('\n');
    head(&mut t, "time and cost");
    line(&mut t, "first transfer A → B (set-up included)", &|r| {
        secs(&r.there)
    });
    line(&mut t, "  its cost", &|r| cost(&r.there));
    line(&mut t, "transfer back B → A", &|r| secs(&r.back));
    line(&mut t, "  its cost", &|r| cost(&r.back));
    line(
        &mut t,
        &format!("last write on A → on B, resumable ({CHANGES} changes)"),
        &|r| r.late.show(),
    );
    line(&mut t, "  cost per change", &|r| cost(&r.late.per_change()));
    line(
        &mut t,
        "whole run's cost (ferry: daemons' lifetime)",
        &|r| cost(&r.overall),
    );
    for (n, runs) in scale {
        let _ = writeln!(t, "| **{n} sessions** | | | |");
        let _ = write!(t, "| first transfer A → B |");
        for (_, first, _) in runs {
            let _ =
                write!(
                    t,
                    " {} |",
                    first.as_ref().map_or(
                        "n/a (one session per command pair)".into(),
                        |c| format!("{}; {}", secs(c), cost(c))
                    )
                );
        }
        let _ = write!(t, "\n| change one, next transfer |");
        for (_, _, next) in runs {
            let _ = write!(
                t,
                " {}; per change {} |",
                next.show(),
                cost(&next.per_change())
            );
        }
        t.push('\n');
    }
    t
}

fn main() {
    let venv = PathBuf::from(
        std::env::var("PEERS_VENV").expect("PEERS_VENV: run this through scripts/bench-peers"),
    );
    let scale: Vec<usize> = std::env::var("PEERS_SCALE")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    // No dot in the root: a peer that slugs paths wrongly must fail on the tricky names only.
    let mut tmp = tempfile::Builder::new()
        .prefix("peers")
        .tempdir()
        .expect("tmp");
    tmp.disable_cleanup(std::env::var_os("PEERS_KEEP").is_some());
    let w = World::new(&tmp.path().join("world"), &venv);
    let c = corpus(&w);
    let template = tmp.path().join("template-home");
    sh(Command::new("cp").arg("-a").arg(&w.a.home).arg(&template));
    let originals = files(&template.join(".claude/projects"));
    let a_bytes: u64 = originals
        .iter()
        .map(|f| {
            std::fs::metadata(template.join(".claude/projects").join(f)).map_or(0, |m| m.len())
        })
        .sum();
    let only = std::env::var("PEERS_TOOLS").unwrap_or_default();
    let all: [fn() -> Box<dyn Tool>; 3] = [
        || Box::<Ferry>::default(),
        || Box::<Commuter>::default(),
        || Box::<Hop>::default(),
    ];
    let makers: Vec<fn() -> Box<dyn Tool>> = all
        .into_iter()
        .filter(|make| only.is_empty() || only.split(',').any(|t| make().name().starts_with(t)))
        .collect();
    // Each tool is dropped (ferry unmounts) before the next one's run resets the machines.
    let rows: Vec<Row> = makers
        .iter()
        .map(|make| fidelity_run(&w, make().as_mut(), &c, &template, &originals))
        .collect();
    let runs: Scale = scale
        .iter()
        .map(|&n| {
            let per = makers
                .iter()
                .map(|make| {
                    let mut tool = make();
                    let (first, next) = scale_run(&w, tool.as_mut(), n);
                    (tool.name(), first, next)
                })
                .collect();
            (n, per)
        })
        .collect();
    let mut out = format!(
        "Corpus: {} sessions ({} real-client, {} synthetic) in {} projects, {} files, {:.1} MB.\n\n",
        c.sessions.len(),
        3,
        c.sessions.len() - 3,
        w.projects.len(),
        originals.len(),
        a_bytes as f64 / 1e6
    );
    out.push_str(&table(&rows, &c, &runs));
    println!("{out}");
    if let Ok(path) = std::env::var("PEERS_OUT") {
        std::fs::write(path, &out).expect("PEERS_OUT");
    }
}
