//! The `ferry` command: each command a function over the libraries, speaking through [`ui::Ui`]
//! (text, or one JSON document under the global `--json`).
//!
//! Exit codes come from the kind of failure ([`ui::Kind`]): 0 success; 1 failed (the message says
//! what to do next); 2 bad usage; 3 the local part was done but the remote was not reached.

mod bundle;
mod command;
mod control;
mod daemon;
mod doctor;
mod encrypt;
mod files;
mod hooks;
mod identity;
mod import;
mod invoke;
mod keys;
mod lifecycle;
mod log_cmd;
#[cfg_attr(not(mounts), allow(dead_code))]
mod logfile;
mod machines;
mod markers;
mod projects;
mod relocate;
mod remote_cmd;
mod report;
mod restore;
mod service;
mod sessions;
mod settings_file;
mod skill;
mod state;
mod status;
mod sync_cmd;
mod transcript;
mod transfer_bar;
mod ui;
mod uninstall;
mod view;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferry_sync::project_key::{KeyKind, project_key};
use ferry_sync::slug::slug;
use std::path::PathBuf;
use std::process::ExitCode;
use ui::Ui;

/// Continue the same Claude Code session on any of your machines: ferry mounts Claude Code's
/// projects directory as a view of every machine's sessions, synced through a git remote.
#[derive(Parser)]
#[command(
    name = "ferry",
    version = VERSION,
    after_help = "Exit codes: 0 success; 1 failure (the message says what to do next; `ferry doctor`: a check failed); 2 bad usage; 3 the local part was done but the remote was not reached or refused the push (`ferry sync`, `ferry unmount`): nothing is lost, it goes out later.\nUnder --json every command prints one JSON object with \"schema\": 1; a failure is {\"schema\":1,\"error\":{\"kind\",\"message\",\"exit\"}}."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON object (with "schema": 1) instead of text; errors too.
    #[arg(long, global = true)]
    json: bool,
    /// Say only what failed and the result itself.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more (a foreground daemon also logs at debug level; -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// `ferry --version`: the release, the commit it was built from, and the built features.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FERRY_COMMIT"),
    "; ",
    env!("FERRY_FEATURES"),
    ")"
);

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
        /// What to do with API keys, tokens, passwords in URLs and private keys found in new
        /// content before it is pushed: redact (the default: push with each replaced by
        /// [REDACTED:kind]; the local file keeps it), warn (push as is, and list them in
        /// `ferry status`) or block (hold the file back).
        #[arg(long, value_name = "redact|warn|block")]
        secrets: Option<ferry_sync::secrets::Policy>,
        /// How many days back `ferry restore` can go (default 30; 0 keeps everything). History
        /// older than that is folded away, here and on the remote, about once a day; the live
        /// files are never folded away. Takes effect at the next mount.
        #[arg(long, value_name = "DAYS")]
        history_days: Option<u32>,
        /// Set up even if the remote cannot be reached now (it is tried again once mounted).
        #[arg(long)]
        offline: bool,
        /// Continue the machine of this name (or id) on the remote: a reinstalled computer
        /// takes over its old identity and branch instead of leaving a dead one.
        #[arg(long, value_name = "NAME")]
        as_machine: Option<String>,
        /// Make the store on the remote encrypted (a new, empty remote): it then holds only
        /// sealed objects, and each other machine joins with `ferry key add` here.
        #[arg(long)]
        encrypt: bool,
        /// A file whose first line is the store's passphrase: with --encrypt, a second way in;
        /// joining, opens the store without `ferry key add`.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Joining an encrypted store: how long to wait for `ferry key add` on another machine.
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        wait_for_key: u64,
    },
    /// Make this store encrypted: seal every branch, history included, and put the sealed
    /// branches and the keyring on the remote in the plain ones' place (or into a new, empty
    /// remote with --to). On a machine whose store another one encrypted, joins it.
    Encrypt {
        /// Seal the store into this new, empty remote and move to it, leaving the current one
        /// as it is (plain): for nothing plain to stay on a remote once it is deleted.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// A file whose first line is the store's passphrase: a second way in; joining, opens
        /// the store without `ferry key add`.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Agree to the remote's branches being rewritten sealed (asked on a terminal).
        #[arg(long)]
        yes: bool,
        /// Joining: how long to wait for `ferry key add` on another machine.
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        wait_for_key: u64,
    },
    /// This machine's key to encrypted stores: show it, or let another machine in.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// List every machine with when it was last seen; rename this one; retire one.
    Machines {
        #[command(subcommand)]
        action: Option<MachinesAction>,
    },
    /// Show, change or remove the shared remote.
    Remote {
        #[command(subcommand)]
        action: RemoteAction,
    },
    /// Mount the view at Claude Code's projects directory; returns once it is live.
    Mount {
        /// Stay in the foreground (for service managers) instead of starting a daemon.
        #[arg(long)]
        foreground: bool,
    },
    /// Unmount: commit, push within a deadline, unmount. Local data is safe even if the push fails.
    Unmount,
    /// Show sync state: the mount, the remote, every machine, what is pending, conflicts, errors.
    Status,
    /// Make every session in a checkout belong to a project key (default: its key now, pinned).
    Link {
        /// The checkout.
        path: PathBuf,
        /// The project key, e.g. github.com/owner/repo.
        #[arg(long)]
        key: Option<String>,
    },
    /// List every project with its local path on this machine.
    Projects,
    /// List sessions across machines, newest first.
    Sessions {
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
    },
    /// Bring back a deleted or overwritten file from any machine's history.
    Restore {
        /// The file, inside Claude Code's projects directory (absolute, or relative to it; a
        /// relative path may begin with `-`, as every project dir does).
        #[arg(allow_hyphen_values = true)]
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
    },
    /// Write one session to a single portable file, for moving it without a shared remote.
    Export {
        /// The session id (a unique prefix is enough).
        session: String,
        /// The file to write; `-` writes to stdout.
        #[arg(short, long, allow_hyphen_values = true)]
        output: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Bring in a session exported on another machine, placed and expanded for this one.
    Import {
        /// The bundle; `-` reads it from stdin.
        #[arg(allow_hyphen_values = true)]
        file: PathBuf,
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
    },
    /// Check this install: state dir, machine identity, mount, git, the remote (tried now) and
    /// sync. Each finding says what to do next. Exit code 1: a check failed.
    Doctor,
    /// What sync did: this machine's commits and the daemon's fetches, pushes, errors and
    /// stops, with their times (newest last).
    Log {
        /// How many events.
        #[arg(short = 'n', long, default_value_t = 40)]
        count: usize,
    },
    /// Leave ferry: stop the login service and the mount (a last push), write every session the
    /// view showed into Claude Code's directory in this machine's form, remove the hooks and
    /// the skill. The state dir and the remote are kept for you to remove.
    Uninstall,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print ferry's man page (roff), e.g. `ferry man > ~/.local/share/man/man1/ferry.1`.
    Man,
    /// Show how ferry names a directory: its Claude Code slug and its portable project key.
    Where {
        /// The directory (default: the current one).
        path: Option<PathBuf>,
    },
}

/// What `ferry key` does.
#[derive(Subcommand)]
pub enum KeyAction {
    /// Print this machine's recipient (`age1…`), which a machine with the key adds.
    Show,
    /// Let the machine with this recipient open the store from now on.
    Add {
        /// Its recipient, as its `ferry key show` or `ferry init` printed it.
        recipient: String,
    },
    /// Keep the machine with this recipient out of everything written from now on (a new
    /// store key; what it could read before, it may have kept).
    Remove {
        /// Its recipient.
        recipient: String,
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
    Install,
    /// Stop it (unmount, commit, push) and remove it.
    Uninstall,
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
    },
    /// Remove them and the skill, keeping every other setting.
    Uninstall,
    /// What a hook runs (Claude Code calls it, with the hook's JSON on stdin).
    Run {
        /// `stop`, `session-end` or `session-start`.
        event: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let ui = Ui {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let ctx = command::Ctx::new(ui);
    match run(cli.command, &ctx) {
        Ok(code) => ExitCode::from(code),
        Err(e) => ExitCode::from(ui::report_error(&ui, &e)),
    }
}

/// A command line clap refused (or `--help`, `--version`): clap's own text, and under `--json`
/// the error as JSON too; exit code 2 (0 for help and version).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--json") {
        // clap's first line, without its `error: ` and colours.
        let rendered = e.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or("bad usage")
            .trim_start_matches("error: ");
        let doc = serde_json::json!({"error": {"kind": ui::Kind::Usage, "message": message, "exit": ui::Kind::Usage.code()}});
        println!("{}", ui::with_schema(&doc));
    }
    let _ = e.print();
    ExitCode::from(ui::Kind::Usage.code())
}

fn run(command: Command, ctx: &command::Ctx) -> Result<ui::Exit> {
    let ui = &ctx.ui;
    let done = |r: Result<()>| r.map(|()| 0);
    match command {
        Command::Sync { soon } => sync_cmd::run(soon, ctx),
        Command::Doctor => doctor::run(ctx),
        Command::Where { path } => done(where_cmd(path, ui)),
        Command::Init {
            remote,
            machine,
            secrets,
            history_days,
            offline,
            as_machine,
            encrypt,
            passphrase_file,
            wait_for_key,
        } => done(lifecycle::init(
            remote,
            machine,
            (secrets, history_days),
            offline,
            as_machine,
            lifecycle::Encryption {
                encrypt,
                passphrase_file,
                wait: std::time::Duration::from_secs(wait_for_key),
            },
            ctx,
        )),
        Command::Encrypt {
            to,
            passphrase_file,
            yes,
            wait_for_key,
        } => done((|| {
            let passphrase = lifecycle::Encryption {
                encrypt: true,
                passphrase_file,
                wait: std::time::Duration::from_secs(wait_for_key),
            };
            encrypt::run(
                ctx,
                encrypt::Asked {
                    to,
                    passphrase: passphrase.passphrase()?,
                    yes,
                    wait: passphrase.wait,
                },
            )
        })()),
        Command::Key { action } => done(match action {
            KeyAction::Show => keys::show(ctx),
            KeyAction::Add { recipient } => keys::add(ctx, &recipient),
            KeyAction::Remove { recipient } => keys::remove(ctx, &recipient),
        }),
        Command::Machines { action } => done(machines::run(action, ctx)),
        Command::Remote { action } => done(remote_cmd::run(action, ctx)),
        Command::Mount { foreground } => done(lifecycle::mount(foreground, ctx)),
        Command::Unmount => lifecycle::unmount(ctx),
        Command::Status => done(status::run(ctx)),
        Command::Hooks { action } => done(match action {
            HooksAction::Install { announce } => hooks::set(true, announce, ctx),
            HooksAction::Uninstall => hooks::set(false, false, ctx),
            HooksAction::Run { event } => hooks::run(&event),
        }),
        Command::Service { action } => done(match action {
            ServiceAction::Install => service::install(ctx),
            ServiceAction::Uninstall => service::uninstall(ctx),
        }),
        Command::Export {
            session,
            output,
            force,
        } => done(bundle::export(&session, &output, force, ctx)),
        Command::Import { file } => done(bundle::import(&file, ctx)),
        Command::Restore {
            path,
            at,
            machine,
            list,
        } => done(restore::run(path, at, machine, list, ctx)),
        Command::Sessions {
            machine,
            project,
            open,
        } => done(sessions::list(ctx, machine, project, open)),
        Command::Handoff { session } => done(sessions::handoff(&session, ctx)),
        Command::Link { path, key } => done(projects::link(path, key, ctx)),
        Command::Projects => done(projects::list(ctx)),
        Command::Log { count } => done(log_cmd::run(count, ctx)),
        Command::Uninstall => uninstall::run(ctx),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "ferry", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(0)
        }
    }
}

/// `ferry where`: how ferry names a directory.
fn where_cmd(path: Option<PathBuf>, ui: &Ui) -> Result<()> {
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
    let v = serde_json::json!({
        "path": real_str,
        "slug": slug,
        "project_key": key.to_string(),
        "key_kind": format!("{:?}", key.kind).to_lowercase(),
    });
    ui.out(&v, || {
        format!("path:        {real_str}\nslug:        {slug}\nproject key: {key}\nportable:    {portable}")
    });
    Ok(())
}
