//! The state dir (`$FERRY_HOME`): this machine's identity and remote (`config.json`), the store,
//! the disk cache, the daemon's lock, pid and log, and the outcome of the last unmount.

use crate::identity;
use anyhow::{Context, Result, bail};
use ferry_sync::store::MachineRecord;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `ferry init` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// Random, stable machine id.
    pub machine_id: String,
    /// The machine's name (default: hostname).
    pub machine_name: String,
    /// The shared remote, if any.
    pub remote: Option<String>,
    /// What commits do with secrets in new content: redact (default), warn or block.
    #[serde(default)]
    pub secrets: ferry_sync::secrets::Policy,
    /// How many days of history this machine keeps (0: all of it): older history is folded
    /// away, here and on the remote. A config written before the horizon existed has none and
    /// keeps every version, as it always did: an upgrade never folds away what its user kept
    /// without being asked (`ferry init --history-days N` sets it).
    #[serde(default)]
    pub history_days: u32,
    /// Where this state dir was made (see `identity.rs`): a copy of it takes a new machine id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<identity::Origin>,
    /// Set when this state dir found itself a copy and took a new machine id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied: Option<identity::Copied>,
    /// Set when `ferry init --as-machine` made this install continue an old machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued: Option<identity::Continued>,
    /// Machines retired from here (`ferry machines retire`), by id, with when.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub retired: std::collections::BTreeMap<String, i64>,
    /// The store is encrypted (`keys.rs`): nothing is pushed without its key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

/// DESIGN.md's history horizon, in days: what `ferry init` sets up a new install with.
pub const DEFAULT_HISTORY_DAYS: u32 = 30;

impl Config {
    /// The history the engine keeps, `None` for all of it.
    #[cfg_attr(not(mounts), allow(dead_code))]
    pub fn history(&self) -> Option<std::time::Duration> {
        (self.history_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.history_days) * 24 * 3600))
    }
}

/// Where everything of one ferry installation lives.
#[derive(Clone, Debug)]
pub struct State {
    /// The state dir.
    pub dir: PathBuf,
}

impl State {
    /// The state dir of this user (`$FERRY_HOME` or the platform default).
    pub fn locate() -> Result<State> {
        let dir = ferry_platform::ferry_home()
            .context("cannot tell where ferry keeps its state: set HOME or FERRY_HOME")?;
        Ok(State { dir })
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The bare git store.
    pub fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    #[cfg_attr(not(mounts), allow(dead_code))] // only the daemon uses the cache
    /// The disk cache of materialised files.
    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    #[cfg_attr(not(mounts), allow(dead_code))]
    /// Written by the daemon once its mount is live, removed when it stops: how `ferry mount`
    /// knows where the mount table cannot tell (Windows).
    pub fn mounted(&self) -> PathBuf {
        self.dir.join("mounted")
    }

    /// The upper layer on Windows, where the mount point cannot be a real directory.
    #[cfg_attr(any(unix, not(mounts)), allow(dead_code))]
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The daemon's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("ferry.log")
    }

    /// Held (flock) by the running daemon: one daemon per state dir.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }

    /// The running daemon's pid.
    pub fn pid(&self) -> PathBuf {
        self.dir.join("daemon.pid")
    }

    /// What the last stop of the daemon did (JSON): kept for a stop no command asked for.
    #[cfg_attr(not(mounts), allow(dead_code))]
    pub fn last_unmount(&self) -> PathBuf {
        self.dir.join("last-unmount.json")
    }

    /// `secrets.json`: the secrets found in new content, kept across runs for `ferry status`.
    pub fn secrets(&self) -> PathBuf {
        self.dir.join("secrets.json")
    }

    /// The secrets found so far (newest last).
    pub fn findings(&self) -> Vec<ferry_sync::secrets::Finding> {
        std::fs::read(self.secrets())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Adds `found` to `secrets.json` (each place and kind once, the newest kept).
    pub fn record_findings(&self, found: &[ferry_sync::secrets::Finding]) {
        if found.is_empty() {
            return;
        }
        let mut all = ferry_sync::engine::Status {
            secrets: self.findings(),
            ..Default::default()
        };
        let before = all.secrets.clone();
        all.add_findings(found.to_vec());
        if all.secrets != before {
            let _ = crate::files::write_json(&self.secrets(), &all.secrets);
        }
    }

    /// What the last `ferry sync` asked of the daemon did (JSON).
    pub fn sync_report(&self) -> PathBuf {
        self.dir.join("sync-report.json")
    }

    /// The engine runs this install had (JSON): a machine branch holding commits of other runs
    /// was written by a twin.
    pub fn runs(&self) -> PathBuf {
        self.dir.join("runs.json")
    }

    /// The place chosen for each project on this machine (JSON, kept by the daemon).
    pub fn places(&self) -> PathBuf {
        self.dir.join("places.json")
    }

    /// `ferry link` entries (JSON).
    pub fn links(&self) -> PathBuf {
        self.dir.join("links.json")
    }

    /// Reads `config.json`; fails with what to do if ferry was never initialised here.
    pub fn config(&self) -> Result<Config> {
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "ferry is not set up in {}: run `ferry init` (with `--remote URL` to sync)",
                self.dir.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let config: Config = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; fix it or remove it and run `ferry init` again",
                path.display()
            )
        })?;
        // A copy of another install's state dir never writes that install's branch.
        self.checked(config)
    }

    /// `config` as this state dir may use it: recorded where it is if it was not yet, or with a
    /// new machine id (and saved) if it is a copy of another install's (see [`identity`]).
    pub fn checked(&self, mut config: Config) -> Result<Config> {
        let twin = self.runs().with_file_name(ferry_sync::engine::TWIN_FILE);
        let verdict = identity::judge(config.origin.as_ref(), &self.dir, &twin, self.lock_held());
        let Some(now) = verdict.now else {
            return Ok(config);
        };
        if config.origin.is_some() && verdict.copied.is_none() {
            return Ok(config);
        }
        if let Some(why) = verdict.copied {
            let new_id = identity::new_machine_id();
            let short = &new_id[..4];
            tracing::warn!(old = %config.machine_id, new = %new_id, why, "this state dir is a copy; taking a new machine id");
            config.copied = Some(identity::Copied {
                from_id: config.machine_id.clone(),
                from_name: config.machine_name.clone(),
                at_ms: ferry_sync::engine::now_ms(),
                why,
            });
            config.machine_name = format!("{}-{short}", config.machine_name);
            config.machine_id = new_id;
            // The places chosen belong to the computer the copy came from.
            let _ = std::fs::remove_file(self.places());
            let _ = std::fs::remove_file(&twin);
        }
        config.origin = Some(now);
        self.save(&config)?;
        Ok(config)
    }

    /// Takes the daemon lock of the state dir, or says who holds it.
    /// The lock lasts as long as the returned file is open.
    pub fn take_lock(&self) -> Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock())
            .with_context(|| format!("opening {}", self.lock().display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(_) => {
                let pid = std::fs::read_to_string(self.pid()).unwrap_or_default();
                bail!(
                    "a ferry daemon is already running for {} (pid {}); `ferry unmount` stops it",
                    self.dir.display(),
                    pid.trim()
                )
            }
        }
    }

    /// Whether a daemon (or a `ferry sync` without one) holds the lock of this state dir.
    pub fn lock_held(&self) -> bool {
        let Ok(f) = std::fs::OpenOptions::new().read(true).open(self.lock()) else {
            return false;
        };
        f.try_lock_shared().is_err()
    }

    /// The running daemon's pid, if one holds the state dir's lock.
    pub fn daemon_pid(&self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.pid())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.lock_held().then_some(pid)
    }

    /// Opens the store for a command that only reads it (never creates one); fails with what to
    /// do when it is missing or damaged.
    pub fn open_store(&self) -> Result<ferry_sync::store::Store> {
        ferry_sync::store::Store::open(&self.store()).with_context(|| {
            format!(
                "the store {} cannot be opened: run `ferry init` to set it up again (your sessions in Claude Code's directory are not touched)",
                self.store().display()
            )
        })
    }

    /// Writes `config.json` (mode 0600) atomically.
    pub fn save(&self, config: &Config) -> Result<()> {
        crate::files::create_private_dir(&self.dir)?;
        crate::files::write_json(&self.config_path(), config)
            .with_context(|| format!("writing {}", self.config_path().display()))
    }
}

/// `path` resolved (symlinks, `..`) and as text, or an error that says what to pass instead.
pub fn real_dir(path: &Path) -> Result<(PathBuf, String)> {
    let real = dunce::canonicalize(path).with_context(|| {
        format!(
            "{} does not exist; pass an existing directory",
            path.display()
        )
    })?;
    let text = real
        .to_str()
        .context("the path is not valid UTF-8; Claude Code cannot run there either")?
        .to_string();
    Ok((real, text))
}

/// Claude Code's config dir, created if missing and resolved: where the session satellites
/// (`file-history/`, `tasks/`, `plans/`, `history.jsonl`) are, beside `projects/`.
pub fn config_dir() -> Result<PathBuf> {
    let config = ferry_platform::claude_config_dir()
        .context("cannot tell where Claude Code keeps its files: set HOME or CLAUDE_CONFIG_DIR")?;
    crate::files::create_private_dir(&config)?;
    dunce::canonicalize(&config).with_context(|| format!("resolving {}", config.display()))
}

/// Claude Code's `projects/` directory: the mount point. Its parent is resolved (symlinks,
/// `..`) so that it matches the kernel's mount table, without touching `projects/` itself,
/// which may be a dead mount.
pub fn mount_point() -> Result<PathBuf> {
    let config = config_dir()?;
    let projects = config.join("projects");
    // A `projects` that is a symlink is mounted at its target, which is what the mount table
    // then shows. Resolve it by reading the link: the target may be a dead mount, which
    // `canonicalize` cannot pass.
    if let Ok(target) = std::fs::read_link(&projects) {
        let target = config.join(target);
        if let (Some(parent), Some(name)) = (target.parent(), target.file_name()) {
            let parent = dunce::canonicalize(parent)
                .with_context(|| format!("resolving {}", target.display()))?;
            return Ok(parent.join(name));
        }
    }
    Ok(projects)
}

/// This machine's record, from the config and the current environment.
pub fn machine_record(config: &Config) -> Result<MachineRecord> {
    let home = ferry_platform::home_dir().context("HOME is not set")?;
    let home_real = real_home(&home);
    let claude_dir = ferry_platform::claude_config_dir().context("HOME is not set")?;
    let text = |p: PathBuf| {
        p.to_str()
            .map(str::to_string)
            .with_context(|| format!("{} is not valid UTF-8", p.display()))
    };
    Ok(MachineRecord {
        id: config.machine_id.clone(),
        name: config.machine_name.clone(),
        os: ferry_platform::os_name().into(),
        home: text(home)?,
        tmp: text(ferry_platform::temp_dir())?,
        claude_dir: text(claude_dir)?,
        claude_tmp: text(ferry_platform::claude_temp_dir())?,
        last_seen_ms: ferry_sync::engine::now_ms(),
        seen_ms: Default::default(),
        home_real,
        retired: config.retired.clone(),
    })
}

/// HOME with symlinks resolved, if that spells it differently (Claude Code resolves the cwd, so
/// its project directories are named after this spelling). Not on Windows, where resolving
/// gives a verbatim `\\?\` path that nothing else uses.
fn real_home(home: &Path) -> Option<String> {
    if cfg!(windows) {
        return None;
    }
    let real = home.canonicalize().ok()?;
    (real != home)
        .then(|| real.to_str().map(str::to_string))
        .flatten()
}

/// The `ferry link` entries of this state dir.
pub fn load_links(st: &State) -> Result<Vec<ferry_sync::project_key::Link>> {
    match std::fs::read(st.links()) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is damaged; fix it or remove it and link again",
                st.links().display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", st.links().display())),
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn a_config_from_before_the_horizon_keeps_every_version() {
        let old = r#"{"machine_id":"0123456789abcdef","machine_name":"desk","remote":null}"#;
        let c: Config = serde_json::from_str(old).unwrap();
        assert_eq!(c.history_days, 0);
        assert_eq!(c.history(), None);
        let set: Config = serde_json::from_str(
            r#"{"machine_id":"0123456789abcdef","machine_name":"desk","remote":null,"history_days":30}"#,
        )
        .unwrap();
        assert_eq!(set.history_days, 30);
    }
}
