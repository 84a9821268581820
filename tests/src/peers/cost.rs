//! What a tool costs: wall time, CPU seconds and peak memory, for commands (through GNU time)
//! and for long-running daemons (from /proc).

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Wall, CPU and peak resident memory of some work.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// Wall-clock time.
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident set of the largest process, in KiB.
    pub peak_kib: u64,
    /// Commands that failed.
    pub failed: usize,
    /// Of `cpu`, what the machine the files went to spent, and of that what its `git` spent,
    /// where the tool can tell them apart (ferry: the receiving daemon, apart from the sender's).
    pub receiving: Option<(Duration, Duration)>,
}

impl Cost {
    /// Adds `other` to this: times add up, peaks take the larger.
    pub fn add(&mut self, other: Cost) {
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.peak_kib = self.peak_kib.max(other.peak_kib);
        self.failed += other.failed;
        if let Some((cpu, git)) = other.receiving {
            let mine = self.receiving.get_or_insert_default();
            mine.0 += cpu;
            mine.1 += git;
        }
    }
}

/// Runs `cmd` under `/usr/bin/time`, panicking with its output unless it succeeds; returns
/// its stdout and what it cost (its children included).
pub fn run(cmd: &mut Command) -> (String, Cost) {
    let (out, cost) = attempt(cmd);
    match out {
        Ok(stdout) => (stdout, cost),
        Err(e) => panic!("{e}"),
    }
}

/// Runs `cmd` under `/usr/bin/time`; its stdout, or why it failed (its command line and
/// output), and what it cost either way (a failure counted in [`Cost::failed`]).
pub fn attempt(cmd: &mut Command) -> (Result<String, String>, Cost) {
    let report = tempfile::NamedTempFile::new().expect("time report");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let mut timed = ferry_sync::wrapped::under(
        "/usr/bin/time",
        [
            OsStr::new("-f"),
            OsStr::new("%U %S %M"),
            OsStr::new("-o"),
            report.path().as_os_str(),
        ],
        cmd,
    );
    let start = Instant::now();
    let out = timed
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let wall = start.elapsed();
    let text = std::fs::read_to_string(report.path()).expect("time's report");
    let f: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // A failed command's report starts with "Command exited with non-zero status N".
    assert_eq!(f.len(), 3, "time's report: {text}");
    let cost = Cost {
        wall,
        cpu: Duration::from_secs_f64(f[0] + f[1]),
        peak_kib: f[2] as u64,
        failed: usize::from(!out.status.success()),
        receiving: None,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        (Ok(stdout), cost)
    } else {
        let why = format!(
            "{program:?} {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        (Err(why), cost)
    }
}

/// A running process's CPU time so far, with that of the children it waited for (the `git`
/// a ferry daemon runs to fetch and push), and its peak resident set (KiB), from /proc.
pub fn process(pid: i32) -> Cost {
    let (own, children) = cpu_split(pid);
    Cost {
        wall: Duration::ZERO,
        cpu: own + children,
        peak_kib: status_kib(pid, "VmHWM:"),
        failed: 0,
        receiving: None,
    }
}

/// A running process's own CPU time so far, and that of the children it waited for.
pub fn cpu_split(pid: i32) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat (11 and 12 after the comm), cutime and
    // cstime (children waited for) 16 and 17, in clock ticks.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let hz = clock_ticks();
    let secs = |t: u64| Duration::from_secs_f64(t as f64 / hz);
    (secs(ticks(11) + ticks(12)), secs(ticks(13) + ticks(14)))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `/proc/<pid>/status` memory field (`VmHWM:`, `VmRSS:`, ...) in KiB (0 if unreadable).
pub fn status_kib(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
