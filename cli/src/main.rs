//! The `ferry` command: thin commands over the libraries, human output and `--json`.
//!
//! Exit codes: 0 success; 1 the command failed (the message says what to do next); 2 bad usage;
//! 3 `ferry sync` committed locally but could not reach the remote. `ferry doctor` exits 1 when a
//! check fails.

mod bundle;
mod daemon;
mod doctor;
mod hooks;
mod identity;
mod import;
mod lifecycle;
mod machines;
mod projects;
mod remote_cmd;
mod restore;
mod service;
mod sessions;
mod settings_file;
mod skill;
mod state;
mod status;
mod sync_cmd;
mod transcript;
mod view;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferry_sync::project_key::{KeyKind, project_key};
use ferry_sync::slug::slug;
use std::path::PathBuf;
use std::process::ExitCode;

/// Continue the same Claude Code session on any of your machines.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Exit codes: 0 success, 1 failure (the message says what to do next), 2 bad usage, 3 `ferry sync` committed locally but could not reach the remote; `ferry doctor` exits 1 when a check fails."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set this machine up: the state dir, the store, the machine's name and the remote.
    Init {
        /// The shared git remote (a path, file://, ssh:// or https:// URL).
        #[arg(long)]
        remote: Option<String>,
        /// This machine's name (default: the hostname).
        #[arg(long)]
        machine: Option<String>,
        /// What to do with API keys, tokens and private keys found in new content before it is
        /// pushed: warn (default: push, and list them in `ferry status`), redact (push with each
        /// replaced by [REDACTED:kind]; the local file keeps it) or block (hold the file back).
        #[arg(long, value_name = "warn|redact|block")]
        secrets: Option<ferry_sync::secrets::Policy>,
        /// Set up even if the remote cannot be reached now (it is tried again once mounted).
        #[arg(long)]
        offline: bool,
        /// Continue the machine of this name (or id) on the remote: a reinstalled computer
        /// takes over its old identity and branch instead of leaving a dead one.
        #[arg(long, value_name = "NAME")]
        as_machine: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every machine with when it was last seen; rename this one; retire one.
    Machines {
        #[command(subcommand)]
        action: Option<MachinesAction>,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Show, change or remove the shared remote.
    Remote {
        #[command(subcommand)]
        action: RemoteAction,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Mount the view at Claude Code's projects directory; returns once it is live.
    Mount {
        /// Stay in the foreground (for service managers) instead of starting a daemon.
        #[arg(long)]
        foreground: bool,
    },
    /// Unmount: commit, push within a deadline, unmount. Local data is safe even if the push fails.
    Unmount {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show sync state: the mount, the remote, every machine, what is pending, conflicts, errors.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make every session in a checkout belong to a project key (default: its key now, pinned).
    Link {
        /// The checkout.
        path: PathBuf,
        /// The project key, e.g. github.com/owner/repo.
        #[arg(long)]
        key: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every project with its local path on this machine.
    Projects {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List sessions across machines, newest first.
    Sessions {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Only sessions this machine (by name) has.
        #[arg(long)]
        machine: Option<String>,
        /// Only sessions whose project key contains this.
        #[arg(long)]
        project: Option<String>,
        /// Only sessions whose Claude Code never ended (no SessionEnd since the last write):
        /// what was left unfinished. Needs `ferry hooks install` on every machine.
        #[arg(long)]
        open: bool,
    },
    /// Print a brief for picking a session up on this machine (no model call).
    Handoff {
        /// The session id (a unique prefix is enough).
        session: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Bring back a deleted or overwritten file from any machine's history.
    Restore {
        /// The file, inside Claude Code's projects directory (absolute, or relative to it).
        path: PathBuf,
        /// Which version: a commit (prefix) or a time, YYYY-MM-DD[THH:MM[:SS]] UTC (default: the newest).
        #[arg(long)]
        at: Option<String>,
        /// Only versions from this machine (name or id).
        #[arg(long)]
        machine: Option<String>,
        /// List the versions instead of restoring.
        #[arg(long)]
        list: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write one session to a single portable file, for moving it without a shared remote.
    Export {
        /// The session id (a unique prefix is enough).
        session: String,
        /// The file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Bring in a session exported on another machine, placed and expanded for this one.
    Import {
        /// The bundle.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Claude Code hooks: commit at once when a turn stops, mark sessions that ended.
    Hooks {
        #[command(subcommand)]
        action: HooksAction,
    },
    /// Mount at every login through the OS's login manager (systemd, launchd, Task Scheduler).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Commit, fetch and push now. Exit code 3: committed locally, but the remote was not reached.
    Sync {
        /// Ask the running daemon to sync and return at once.
        #[arg(long)]
        soon: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check this install: state dir, machine identity, mount, git, the remote (tried now) and
    /// sync. Each finding says what to do next. Exit code 1: a check failed.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show how ferry names a directory: its Claude Code slug and its portable project key.
    Where {
        /// The directory (default: the current one).
        path: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// What `ferry machines` does besides listing.
#[derive(Subcommand)]
pub enum MachinesAction {
    /// Give this machine a new name.
    Rename {
        /// The new name.
        name: String,
    },
    /// Retire a machine that is gone: its sessions stay as history, and no lag is reported
    /// for it.
    Retire {
        /// Its name or id.
        name: String,
    },
}

/// What `ferry remote` does.
#[derive(Subcommand)]
pub enum RemoteAction {
    /// Print the remote (credentials removed).
    Show,
    /// Use URL from now on (checked, and tried unless --offline).
    Set {
        /// The shared git remote (`ssh://`, `https://`, `host:path`, or a path).
        url: String,
        /// Set it even if it cannot be reached now.
        #[arg(long)]
        offline: bool,
    },
    /// Work locally only.
    Remove,
}

#[derive(Subcommand)]
enum ServiceAction {
    /// Install and start the login service (it runs `ferry mount --foreground`).
    Install {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Stop it (unmount, commit, push) and remove it.
    Uninstall {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HooksAction {
    /// Add ferry's Stop and SessionEnd hooks to Claude Code's settings.json, and the skill that
    /// lets Claude list and continue unfinished sessions ("what's unfinished?").
    Install {
        /// Also add a SessionStart hook: one line in a new session's context when other
        /// machines left sessions of its project unfinished.
        #[arg(long)]
        announce: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove them and the skill, keeping every other setting.
    Uninstall {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What a hook runs (Claude Code calls it, with the hook's JSON on stdin).
    Run {
        /// `stop`, `session-end` or `session-start`.
        event: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sync { soon, json } => sync_cmd::run(soon, json),
        Command::Doctor { json } => doctor::run(json),
        command => run(Cli { command }).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ferry: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Where { path, json } => where_cmd(path, json),
        Command::Init {
            remote,
            machine,
            secrets,
            offline,
            as_machine,
            json,
        } => lifecycle::init(remote, machine, secrets, offline, as_machine, json),
        Command::Machines { action, json } => machines::run(action, json),
        Command::Remote { action, json } => remote_cmd::run(action, json),
        Command::Mount { foreground } => lifecycle::mount(foreground),
        Command::Unmount { json } => lifecycle::unmount(json),
        Command::Status { json } => status::run(json),
        Command::Hooks { action } => match action {
            HooksAction::Install { announce, json } => hooks::set(true, announce, json),
            HooksAction::Uninstall { json } => hooks::set(false, false, json),
            HooksAction::Run { event } => hooks::run(&event),
        },
        Command::Service { action } => match action {
            ServiceAction::Install { json } => service::install(json),
            ServiceAction::Uninstall { json } => service::uninstall(json),
        },
        Command::Export { session, output } => bundle::export(&session, &output),
        Command::Import { file, json } => bundle::import(&file, json),
        Command::Restore {
            path,
            at,
            machine,
            list,
            json,
        } => restore::run(path, at, machine, list, json),
        Command::Sessions {
            json,
            machine,
            project,
            open,
        } => sessions::list(json, machine, project, open),
        Command::Handoff { session, json } => sessions::handoff(&session, json),
        Command::Link { path, key, json } => projects::link(path, key, json),
        Command::Projects { json } => projects::list(json),
        Command::Sync { .. } | Command::Doctor { .. } => {
            unreachable!("handled with its own exit code")
        }
    }
}

fn where_cmd(path: Option<PathBuf>, json: bool) -> Result<()> {
    let path = match path {
        Some(p) => p,
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let (real, real_str) = state::real_dir(&path)?;
    let real_str = real_str.as_str();
    let home = ferry_platform::home_dir();
    let links = state::State::locate()
        .ok()
        .and_then(|st| projects::load_links(&st).ok())
        .unwrap_or_default();
    let key = project_key(&real, home.as_deref(), &links)
        .with_context(|| format!("computing the project key of {real_str}"))?;
    let portable = match key.kind {
        KeyKind::Remote | KeyKind::Linked => "yes",
        KeyKind::Home => "if the other machine has it at the same place under its home",
        KeyKind::Absolute => "no: add a git remote or `ferry link` it",
    };
    let slug = slug(real_str);
    if json {
        let v = serde_json::json!({
            "path": real_str,
            "slug": slug,
            "project_key": key.to_string(),
            "key_kind": format!("{:?}", key.kind).to_lowercase(),
        });
        println!("{v}");
    } else {
        println!("path:        {real_str}");
        println!("slug:        {slug}");
        println!("project key: {key}");
        println!("portable:    {portable}");
    }
    Ok(())
}
