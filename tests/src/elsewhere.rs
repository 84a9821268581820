//! Another computer with the same paths as this one, for a copy of a state dir that lands at
//! the very path it came from (a restored backup on a new laptop): a process holding private
//! mount and hostname namespaces, in which chosen directories are bind-mounted over others and
//! `/etc/machine-id` is another computer's. Commands run inside through `nsenter`; the test
//! reaches files inside from outside through `/proc/<pid>/root`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The namespaces of another computer, alive while this value is.
pub struct Elsewhere {
    holder: Child,
    /// The other computer's machine-id, bound over `/etc/machine-id` there.
    id_file: PathBuf,
}

impl Elsewhere {
    /// Another computer called `hostname` on which each `(source, target)` of `binds` shows
    /// `source` at `target`, and whose machine-id is `machine_id`. Mounts under a target
    /// (a view mounted there) are gone inside.
    pub fn new(hostname: &str, machine_id: &str, binds: &[(&Path, &Path)]) -> Elsewhere {
        let id_file = std::env::temp_dir().join(format!(
            "ferry-machine-id-{}-{hostname}",
            std::process::id()
        ));
        std::fs::write(&id_file, format!("{machine_id}\n")).expect("machine-id file");
        let mut script = format!("set -e; hostname {hostname}; ");
        for (source, target) in binds {
            // A view mounted under the target on this computer is not the other's.
            script.push_str(&format!(
                "grep -F ' {t}/' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l; mount --bind '{s}' '{t}'; ",
                s = source.display(),
                t = target.display()
            ));
        }
        if Path::new("/etc/machine-id").exists() {
            script.push_str(&format!(
                "mount --bind '{}' /etc/machine-id; ",
                id_file.display()
            ));
        }
        script.push_str("echo ready; exec sleep 100000");
        let mut holder = Command::new("unshare")
            .args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare runs (root is needed)");
        let mut line = String::new();
        BufReader::new(holder.stdout.as_mut().expect("holder's stdout"))
            .read_line(&mut line)
            .expect("holder speaks");
        assert_eq!(line.trim(), "ready", "setting up the other computer failed");
        Elsewhere { holder, id_file }
    }

    /// The holder's pid: its namespaces are the other computer.
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// The path from here of `inside`, a path on the other computer.
    pub fn outside(&self, inside: &Path) -> PathBuf {
        let rel = inside.strip_prefix("/").unwrap_or(inside);
        PathBuf::from(format!("/proc/{}/root", self.pid())).join(rel)
    }

    /// `cmd` as it would run on the other computer: the same program, arguments and
    /// environment, entered into its namespaces.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let target = self.pid().to_string();
        let args = ["--target", &target, "--mount", "--uts", "--"];
        ferry_sync::wrapped::under("nsenter", args, cmd)
    }

    /// The mount table on the other computer.
    pub fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid())).unwrap_or_default()
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_file(&self.id_file);
    }
}
