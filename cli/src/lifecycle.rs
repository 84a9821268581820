//! `ferry init`, `ferry mount` and `ferry unmount`: setting a machine up, starting the daemon
//! and returning once the mount is live, and stopping it cleanly.

use crate::command::Ctx;
use crate::control::{self, Reply, Request};
use crate::daemon::{self, PUSH_DEADLINE};
use crate::report::Report;
use crate::state::{self, Config, State};
use crate::ui::Ui;
use anyhow::{Context, Result, bail};
use ferry_platform::mount::{MountState, mount_state};
use ferry_sync::store::Store;
use std::time::{Duration, Instant};

/// What `ferry init` is asked about encryption.
pub struct Encryption {
    /// Make the remote's store encrypted.
    pub encrypt: bool,
    /// A file holding the passphrase.
    pub passphrase_file: Option<std::path::PathBuf>,
    /// How long to wait for another machine's `ferry key add`.
    pub wait: Duration,
}

impl Encryption {
    /// The passphrase, from the first line of its file.
    pub fn passphrase(&self) -> Result<Option<String>> {
        let Some(path) = &self.passphrase_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the passphrase from {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end().to_string();
        if line.is_empty() {
            bail!("{} holds no passphrase on its first line", path.display());
        }
        Ok(Some(line))
    }
}

/// `ferry init`: creates the state dir and the store and records this machine; safe to re-run
/// (it keeps the machine id and updates what is given).
pub fn init(
    remote: Option<String>,
    name: Option<String>,
    (secrets, history_days): (Option<ferry_sync::secrets::Policy>, Option<u32>),
    offline: bool,
    as_machine: Option<String>,
    encryption: Encryption,
    ctx: &Ctx,
) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    // Missing means a new machine; damaged is an error (a new id would make this machine's own
    // sessions look like another's).
    let existing = if st.config_path().exists() {
        Some(st.config()?)
    } else {
        None
    };
    // Checked before anything is written: a URL git takes, an ssh address, or a path (kept
    // absolute: `ferry mount` runs elsewhere), reachable unless --offline.
    let remote = remote
        .map(|r| crate::remote_cmd::check_url(&r))
        .transpose()?;
    if let Some(r) = remote.as_deref().filter(|_| !offline) {
        crate::remote_cmd::reachable(
            r,
            "nothing was changed; fix that, or pass --offline to set up anyway",
        )?;
    }
    let running = st.daemon_pid().is_some();
    // A reinstalled computer continuing an old machine: its id and branch, from the remote.
    let taken = match (&as_machine, &remote) {
        (Some(_), Some(_)) if offline => {
            anyhow::bail!("--as-machine finds the machine on the remote: run it without --offline")
        }
        (Some(name), Some(url)) => {
            let store = Store::init(&st.store())
                .with_context(|| format!("creating the store {}", st.store().display()))?;
            crate::machines::take_over(&store, url, name)?
        }
        (Some(_), None) => {
            anyhow::bail!("--as-machine needs --remote URL: the machine is found there")
        }
        (None, _) => None,
    };
    let sealed_later = taken.is_none().then_some(as_machine.as_deref()).flatten();
    let name_given = name.clone();
    let config = config_for(
        existing.as_ref(),
        taken,
        name,
        remote,
        (secrets, history_days),
    );
    if encryption.encrypt && (offline || config.remote.is_none()) {
        bail!("--encrypt needs --remote URL, reachable now: the store's keyring is made there");
    }
    let passphrase = encryption.passphrase()?;
    st.save(&config)?;
    // Records where this state dir was made.
    let mut config = st.checked(config)?;
    Store::init(&st.store())
        .with_context(|| format!("creating the store {}", st.store().display()))?;
    // Before anything is pushed: whether the store is encrypted, and its key.
    if let Some(url) = config.remote.clone().filter(|_| !offline) {
        let settled = (|| {
            let again = match sealed_later {
                Some(name) => format!("ferry init --remote URL --as-machine {name}"),
                None => "ferry init --remote URL".to_string(),
            };
            let encrypted = crate::keys::settle(
                ctx,
                &url,
                encryption.encrypt,
                passphrase.as_deref(),
                encryption.wait,
                &again,
            )?;
            if encrypted && !config.encrypted {
                config.encrypted = true;
                st.save(&config)?;
            }
            // A machine continued in an encrypted store: found once this one has joined it.
            if let Some(name) = sealed_later {
                let taken = crate::machines::take_over_sealed(st, &config, &url, name)?;
                config = config_for(Some(&config), Some(taken), name_given, None, (None, None));
                st.save(&config)?;
            }
            anyhow::Ok(())
        })();
        // A machine to be continued that was not: no config of a new machine is left behind
        // (a `ferry mount` now would start one); the store and identity stay, for the next try.
        if let (Err(_), Some(_)) = (&settled, sealed_later) {
            match &existing {
                Some(before) => st.save(before)?,
                None => {
                    let _ = std::fs::remove_file(st.config_path());
                }
            }
        }
        settled?;
    }
    let imported = crate::import::run(st, &config, ui.json || ui.quiet, offline)?;
    let sync = imported.sync.as_ref();
    let remote = config.remote.as_deref().map(ferry_sync::engine::redact);
    let doc = serde_json::json!({
        "state_dir": st.dir,
        "machine_id": config.machine_id,
        "machine_name": config.machine_name,
        "remote": remote,
        "already_initialised": existing.is_some(),
        "imported_files": imported.files,
        "imported_bytes": imported.bytes,
        "secrets": imported.secrets,
        "secrets_policy": config.secrets,
        "history_days": config.history_days,
        "remote_ok": sync.and_then(|s| s.remote_ok),
        "pushed": sync.map(|s| s.sent),
        "error": sync.and_then(|s| s.error.clone()),
    });
    let text = if ui.json {
        String::new()
    } else {
        init_said(st, &config, existing.is_some(), &imported, running, offline)?
    };
    ui.out(&doc, || text);
    Ok(())
}

/// The config `ferry init` writes: what was given, else what there was, else the defaults; a
/// machine taken over (`--as-machine`) gives its id and name.
fn config_for(
    existing: Option<&Config>,
    taken: Option<(String, String)>,
    name: Option<String>,
    remote: Option<String>,
    (secrets, history_days): (Option<ferry_sync::secrets::Policy>, Option<u32>),
) -> Config {
    Config {
        machine_id: taken.as_ref().map(|t| t.0.clone()).unwrap_or_else(|| {
            existing.map_or_else(crate::identity::new_machine_id, |c| c.machine_id.clone())
        }),
        machine_name: name
            .or_else(|| taken.as_ref().map(|t| t.1.clone()))
            .or_else(|| existing.map(|c| c.machine_name.clone()))
            .unwrap_or_else(crate::identity::hostname),
        remote: remote.or_else(|| existing.and_then(|c| c.remote.clone())),
        secrets: secrets
            .or_else(|| existing.map(|c| c.secrets))
            .unwrap_or_default(),
        history_days: history_days
            .or_else(|| existing.map(|c| c.history_days))
            .unwrap_or(state::DEFAULT_HISTORY_DAYS),
        origin: existing.and_then(|c| c.origin.clone()),
        copied: existing.and_then(|c| c.copied.clone()),
        continued: match &taken {
            Some((_, name)) => Some(crate::identity::Continued {
                name: name.clone(),
                at_ms: ferry_sync::engine::now_ms(),
            }),
            None => existing.and_then(|c| c.continued.clone()),
        },
        retired: existing.map(|c| c.retired.clone()).unwrap_or_default(),
        encrypted: existing.is_some_and(|c| c.encrypted),
    }
}

/// What `ferry init` says.
fn init_said(
    st: &State,
    config: &Config,
    existing: bool,
    imported: &crate::import::Imported,
    running: bool,
    offline: bool,
) -> Result<String> {
    let sync = imported.sync.as_ref();
    let remote = config.remote.as_deref().map(ferry_sync::engine::redact);
    let verb = if existing { "updated" } else { "set up" };
    let mut t = format!(
        "ferry {verb} in {} for machine {} ({})\n",
        st.dir.display(),
        config.machine_name,
        config.machine_id
    );
    if imported.files > 0 {
        t += &format!(
            "imported {} existing file(s), {} bytes, from {}\n",
            imported.files,
            imported.bytes,
            state::mount_point()?.display()
        );
    }
    t += &crate::import::secrets_said(&imported.secrets, config.secrets);
    let r = remote.as_deref().unwrap_or_default();
    t += &match (&config.remote, sync) {
        (Some(_), Some(s)) if s.remote_ok == Some(false) => format!(
            "remote: {r} could not be reached ({}); ferry will retry once mounted",
            s.error.as_deref().unwrap_or("unknown error")
        ),
        (Some(_), Some(s)) if s.sent => format!("remote: {r} (fetched and pushed)"),
        (Some(_), Some(_)) => format!("remote: {r} (fetched; nothing new to push)"),
        (Some(_), None) if running => format!(
            "remote: {r} (the running daemon keeps the remote it started with: run `ferry unmount && ferry mount` to switch)"
        ),
        (Some(_), None) if offline => {
            format!("remote: {r} (not tried: --offline; `ferry mount` syncs with it)")
        }
        (Some(_), None) => format!("remote: {r}"),
        (None, _) => {
            "no remote: sessions stay on this machine; add one with `ferry remote set URL`".into()
        }
    };
    t += "\n";
    t += &history_said(config.history_days, running);
    t += "\nnext: `ferry mount`";
    Ok(t)
}

/// The line of `ferry init` on how much history is kept.
fn history_said(days: u32, running: bool) -> String {
    let kept = match days {
        0 => "history: every version is kept (`ferry init --history-days N` folds away what is older)"
            .to_string(),
        1 => "history: `ferry restore` goes back 1 day; older history is folded away".to_string(),
        n => format!("history: `ferry restore` goes back {n} days; older history is folded away"),
    };
    if running {
        format!("{kept} (from the next mount: `ferry unmount && ferry mount`)")
    } else {
        kept
    }
}

/// `ferry mount`: in the foreground (for service managers) or as a daemon, returning once the
/// mount is live.
pub fn mount(foreground: bool, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let config = ctx.config()?;
    let mountpoint = state::mount_point()?;
    if foreground {
        return daemon::run(st, ui.verbose, || {
            ui.note(format_args!("mounted {}", mountpoint.display()));
            // Under systemd (`Type=notify`): the unit is started once the mount is live.
            crate::service::notify_ready();
        });
    }
    // Refuses a live mount; recovers a dead one (a crashed daemon) by itself, saying so.
    daemon::clear_mount_point(&mountpoint)?;
    if st.lock_held() {
        bail!(
            "ferry is already mounted at {}; `ferry unmount` first if you want to remount",
            mountpoint.display()
        );
    }
    crate::files::create_private_dir(&st.dir)?;
    let pid = start_daemon(st, &mountpoint, ui)?;
    let remote = config.remote.as_deref().map(ferry_sync::engine::redact);
    let doc = serde_json::json!({"mountpoint": mountpoint, "machine_name": config.machine_name,
        "remote": remote, "daemon_pid": pid});
    ui.out(&doc, || {
        format!(
            "ferry: mounted {} (machine {}, {})",
            mountpoint.display(),
            config.machine_name,
            remote.map_or_else(|| "no remote".to_string(), |r| format!("remote {r}"))
        )
    });
    Ok(())
}

/// Starts `ferry mount --foreground` as a daemon of its own, logging to the state dir, and
/// waits until its mount at `mountpoint` is live; returns its pid.
fn start_daemon(st: &State, mountpoint: &std::path::Path, ui: &Ui) -> Result<u32> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(st.log())
        .with_context(|| format!("opening {}", st.log().display()))?;
    let log_start = log.metadata().map_or(0, |m| m.len());
    let exe = std::env::current_exe().context("finding the ferry binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["mount", "--foreground"])
        .args((0..ui.verbose).map(|_| "-v"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        // Its own hidden console: no window, and it outlives the one `ferry mount` ran in.
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
    let mut child = cmd.spawn().context("starting the ferry daemon")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read(st.log()).unwrap_or_default();
            let tail = String::from_utf8_lossy(&log[(log_start as usize).min(log.len())..]);
            bail!(
                "the ferry daemon exited ({status}) before the mount was live:\n{}",
                tail.trim()
            );
        }
        if live(st, mountpoint) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            bail!(
                "the mount did not come up within 60 s; see {}",
                st.log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.id())
}

/// `ferry unmount`: asks the daemon to stop (it unmounts, commits and pushes within a deadline)
/// and reports what happened. Clears a stale mount if the daemon is gone.
pub fn unmount(ctx: &Ctx) -> Result<crate::ui::Exit> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let mountpoint = state::mount_point()?;
    // The pid file is trusted only while the daemon holds its lock: after a crash the pid may
    // belong to an unrelated process by now.
    let pid = st.daemon_pid().filter(|&p| alive(st, p));
    let Some(pid) = pid else {
        let removed = match mount_state(&mountpoint) {
            MountState::Stale | MountState::Live => {
                ferry_platform::mount::unmount(&mountpoint)
                    .with_context(|| format!("removing the mount at {}", mountpoint.display()))?;
                true
            }
            _ => false,
        };
        let doc =
            serde_json::json!({"was_mounted": removed, "daemon": false, "mountpoint": mountpoint});
        ui.out(&doc, || {
            if removed {
                format!(
                    "ferry: removed a mount without a daemon at {}; nothing was pending",
                    mountpoint.display()
                )
            } else {
                "ferry: not mounted".into()
            }
        });
        return Ok(0);
    };
    let wait = daemon::HANDLES_DEADLINE + PUSH_DEADLINE + Duration::from_secs(20);
    let report = match control::ask(st, Request::Stop, wait)? {
        Some(Reply::Done { report }) => report,
        Some(other) => bail!("the daemon answered {other:?} when asked to stop"),
        None => bail!(
            "the daemon (pid {pid}) does not answer on {}: stop it with `kill {pid}` (it unmounts, commits and pushes on SIGTERM); see {}",
            control::endpoint(st).display(),
            st.log().display()
        ),
    };
    // The daemon answers just before it exits: a `ferry mount` right after must find it gone.
    let gone = Instant::now() + Duration::from_secs(10);
    while alive(st, pid) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(10));
    }
    let remote = st.config().ok().and_then(|c| c.remote);
    let mut doc = serde_json::to_value(&report)?;
    doc["was_mounted"] = true.into();
    doc["daemon"] = true.into();
    doc["mountpoint"] = serde_json::json!(mountpoint);
    ui.out(&doc, || {
        unmount_said(&report, &mountpoint, remote.is_some())
    });
    // Unmounted either way; a push that did not go through is said by the exit code too.
    Ok(report.exit_code())
}

/// What `ferry unmount` says of the daemon's report.
fn unmount_said(report: &Report, mountpoint: &std::path::Path, remote: bool) -> String {
    let mut t = format!("ferry: unmounted {}\n", mountpoint.display());
    if let Some(said) = report.commit_said(mountpoint) {
        t += &said;
        t.push('\n');
    }
    if !report.still_open.is_empty() {
        t += &format!(
            "{} file(s) were open in the mount; they were served {}:\n",
            report.still_open.len(),
            if report.open_past_deadline {
                "for 15 s, and were still open then: their next read or write fails"
            } else {
                "until they closed, and what they wrote is committed"
            }
        );
        for f in &report.still_open {
            t += &format!("  {f}\n");
        }
    }
    let short = |c: &String| c[..c.len().min(12)].to_string();
    t += &match (&report.committed, report.remote_ok, &report.error) {
        (_, Some(false), e) | (_, None, e @ Some(_)) => format!(
            "the push did not go through ({}); every change is safe in {} and in the local store, and goes out at a later mount or sync once that is fixed",
            e.as_deref().unwrap_or("unknown error"),
            mountpoint.display()
        ),
        (Some(c), Some(true), _) => format!("committed {} and pushed", short(c)),
        (None, Some(true), _) => "nothing new to commit; the remote has everything".into(),
        (Some(c), None, _) if !report.had_remote && remote => format!(
            "committed {} (the daemon had no remote: the one set since goes into use at the next mount)",
            short(c)
        ),
        (Some(c), None, _) if !remote => format!("committed {} (no remote)", short(c)),
        (Some(c), None, _) => format!("committed {} (not pushed)", short(c)),
        (None, None, _) if !report.had_remote && remote => {
            "nothing new to commit (the daemon had no remote: the one set since goes into use at the next mount)".into()
        }
        (None, None, _) if remote => {
            "nothing was ever committed on this machine, so nothing was pushed".into()
        }
        (None, None, _) => "nothing new to commit".into(),
    };
    t
}

/// Whether the mount the daemon is starting is live: from the mount table, or on Windows, where
/// a junction and a mount look alike, from the daemon's own word.
fn live(st: &State, mountpoint: &std::path::Path) -> bool {
    if cfg!(unix) {
        mount_state(mountpoint) == MountState::Live
    } else {
        st.mounted().exists()
    }
}

/// Whether daemon `pid` of state dir `st` still runs.
fn alive(st: &State, pid: i32) -> bool {
    #[cfg(unix)]
    {
        let _ = st;
        // Not a zombie either: a reaped or exited process does not count.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if !stat.is_empty() {
            return !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z');
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }
    #[cfg(not(unix))]
    {
        // Its lock is released when it exits.
        let _ = pid;
        st.lock_held()
    }
}
