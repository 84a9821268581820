//! The `ferry` command: thin commands over the libraries, human output and `--json`.
//!
//! Exit codes: 0 success; 1 the command failed (the message says what to do next); 2 bad usage.

mod daemon;
mod lifecycle;
mod state;

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
    after_help = "Exit codes: 0 success, 1 failure, 2 bad usage."
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
        /// Print JSON instead of text.
        #[arg(long)]
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
    /// Show how ferry names a directory: its Claude Code slug and its portable project key.
    Where {
        /// The directory (default: the current one).
        path: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
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
            json,
        } => lifecycle::init(remote, machine, json),
        Command::Mount { foreground } => lifecycle::mount(foreground),
        Command::Unmount { json } => lifecycle::unmount(json),
    }
}

fn where_cmd(path: Option<PathBuf>, json: bool) -> Result<()> {
    let path = match path {
        Some(p) => p,
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let real = path.canonicalize().with_context(|| {
        format!(
            "{} does not exist; pass an existing directory",
            path.display()
        )
    })?;
    let real_str = real
        .to_str()
        .context("the path is not valid UTF-8; Claude Code cannot run there either")?;
    let home = ferry_platform::home_dir();
    let key = project_key(&real, home.as_deref(), &[])
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
