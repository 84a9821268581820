//! The remote: checking a URL before it is used (`ferry init --remote`, `ferry remote set`),
//! and `ferry remote show|set|remove`.

use crate::command::Ctx;
use anyhow::{Context, Result, bail};
use ferry_sync::engine::{GitCli, redact};
use std::path::Path;

/// `url` as ferry keeps it, checked: a URL git takes (`ssh://`, `https://`, `git://`,
/// `file://`), an scp-style ssh address (`host:path`, an ssh alias included), or a local path
/// (absolute, or `./`, `../`, `~/`) that is a repository or can be made one (it is then created,
/// bare).
pub fn check_url(url: &str) -> Result<String> {
    let url = url.trim();
    if url.is_empty() {
        bail!(
            "the remote is empty: give a URL (`ssh://host/path`, `https://host/path`), `host:path`, or a path"
        );
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let known = ["ssh", "git", "http", "https", "file", "git+ssh", "ssh+git"];
        if !known.contains(&scheme) {
            bail!(
                "{}: git does not reach `{scheme}://` remotes; use ssh://, https://, git:// or file://",
                redact(url)
            );
        }
        let host = rest.split('/').next().unwrap_or_default();
        if scheme != "file" && host.rsplit('@').next().unwrap_or_default().is_empty() {
            bail!("{} names no host", redact(url));
        }
        if scheme == "file" {
            return local(&rest[rest.find('/').unwrap_or(0)..]).map(|p| format!("file://{p}"));
        }
        return Ok(url.to_string());
    }
    if url.chars().any(char::is_whitespace) {
        bail!(
            "{url:?} is neither a URL (`ssh://host/path`, `https://host/path`), an ssh address (`host:path`) nor a path to a repository"
        );
    }
    let windows_drive =
        url.len() > 2 && url.as_bytes()[1] == b':' && url.as_bytes()[0].is_ascii_alphabetic();
    let scp = url
        .find(':')
        .filter(|&i| !windows_drive && !url[..i].contains('/'));
    if scp.is_some() {
        return Ok(url.to_string());
    }
    local(url)
}

/// A local path remote, absolute, existing as a repository (created if missing).
fn local(path: &str) -> Result<String> {
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => ferry_platform::home_dir()
            .context("HOME is not set")?
            .join(rest),
        None => Path::new(path).to_path_buf(),
    };
    let explicit = expanded.is_absolute() || path.starts_with("./") || path.starts_with("../");
    if !explicit {
        bail!(
            "{path:?} is neither a URL (`ssh://host/path`, `https://host/path`), an ssh address (`host:path`) nor a path; for a directory here write ./{path}"
        );
    }
    let abs = std::path::absolute(&expanded)
        .with_context(|| format!("resolving {}", expanded.display()))?;
    let repository = abs.join("HEAD").is_file() || abs.join(".git").exists();
    let empty = abs.read_dir().is_ok_and(|mut d| d.next().is_none());
    if abs.exists() && !repository && !empty {
        bail!(
            "{} exists but is not a git repository; give a repository, an empty directory, or a new path",
            abs.display()
        );
    }
    if !repository {
        let parent = abs.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            // The nearest part of the path that is there says why.
            let nearest = parent.ancestors().find(|a| a.exists());
            let why = match (nearest, std::fs::metadata(parent)) {
                (Some(file), _) if !file.is_dir() => format!(
                    "{} is a file, not a directory; give a path in a directory",
                    file.display()
                ),
                (_, Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
                    "{} cannot be looked into ({e}); give a path you can write to",
                    parent.display()
                ),
                _ => format!(
                    "its parent directory {} does not exist; create it first, or give another path",
                    parent.display()
                ),
            };
            bail!("{}: {why}", abs.display());
        }
        ferry_sync::store::Store::init(&abs)
            .with_context(|| format!("creating the repository {}", abs.display()))?;
        // Beside the command's own output (which may be JSON), not in it.
        eprintln!("ferry: created an empty repository at {}", abs.display());
    }
    Ok(dunce::canonicalize(&abs)
        .unwrap_or(abs)
        .to_string_lossy()
        .into_owned())
}

/// Whether the remote answers, through the user's `git` (never prompting); if not, why, then
/// `next` (what to do). `Ok` without a `git` on PATH (the first sync says).
pub fn reachable(url: &str, next: &str) -> Result<()> {
    let Some(git) = GitCli::probe(None) else {
        return Ok(());
    };
    git.ls_remote(url).map_err(|e| {
        anyhow::anyhow!(
            "the remote {} cannot be reached: {}\n{next}",
            redact(url),
            e.message
        )
    })
}

/// `ferry remote show|set|remove`.
pub fn run(action: crate::RemoteAction, ctx: &Ctx) -> Result<()> {
    let ui = &ctx.ui;
    let st = ctx.state()?;
    let mut config = st.config()?;
    let running = st.daemon_pid();
    // An encrypted store moved: how many sealed branches went (`None`: they were there).
    let mut moved: Option<Option<usize>> = None;
    match action {
        crate::RemoteAction::Show => {
            let shown = config.remote.as_deref().map(redact);
            ui.out(&serde_json::json!({"remote": shown}), || match &shown {
                Some(r) => r.clone(),
                None => {
                    "no remote: sessions stay on this machine; add one with `ferry remote set URL`"
                        .into()
                }
            });
            return Ok(());
        }
        crate::RemoteAction::Set { url, offline } => {
            if config.encrypted && offline {
                anyhow::bail!(
                    "this store is encrypted: its keyring and sealed branches go to the new remote as it is set, so it must be reachable now: run it without --offline (nothing was changed)"
                );
            }
            let url = check_url(&url)?;
            if !offline {
                reachable(
                    &url,
                    "nothing was changed; fix that, or pass --offline to set it anyway",
                )?;
            }
            if config.encrypted && config.remote.as_deref() != Some(url.as_str()) {
                if running.is_some() {
                    anyhow::bail!(
                        "ferry is mounted here, and its daemon transfers with the sealed refs a move rewrites: run `ferry unmount`, then `ferry remote set` again, then `ferry mount` (nothing was changed)"
                    );
                }
                moved = Some(crate::relocate::move_to(ctx, &url)?);
            }
            // Set again: a fold it refused before is tried once more.
            if let Ok(store) = st.open_store() {
                store.clear_fold_refused();
            }
            config.remote = Some(url);
        }
        crate::RemoteAction::Remove => config.remote = None,
    }
    st.save(&config)?;
    let shown = config.remote.as_deref().map(redact);
    let doc = serde_json::json!({
        "remote": shown,
        "daemon_restart_needed": running.is_some(),
        "moved_sealed_branches": moved.flatten(),
        "found_there": moved.is_some_and(|m| m.is_none()),
    });
    ui.out(&doc, || {
        let mut text = match &shown {
            Some(r) => format!("remote: {r}"),
            None => "remote removed: sessions stay on this machine".into(),
        };
        match moved {
            Some(Some(n)) => text += &format!(
                "\nthe encrypted store moved there: its keyring and {n} sealed branch(es), history included. The old remote is left as it was; each other machine runs `ferry remote set` with this URL too"
            ),
            Some(None) => text += "\nthe encrypted store is there already: this machine goes on with it there",
            None => {}
        }
        if running.is_some() {
            text += "\nthe running daemon still uses the old remote: run `ferry unmount && ferry mount` to switch";
        }
        text
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::local;

    /// Each way a path cannot take a new repository is said as what it is, and nothing is made.
    #[test]
    fn a_path_that_cannot_be_a_remote_is_said_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("notes.txt");
        std::fs::write(&file, "x").unwrap();
        let said = |p: &std::path::Path| format!("{:#}", local(p.to_str().unwrap()).unwrap_err());

        let e = said(&file.join("r.git"));
        assert!(e.contains("notes.txt is a file, not a directory"), "{e}");
        let e = said(&file.join("a/r.git"));
        assert!(e.contains("notes.txt is a file, not a directory"), "{e}");
        let e = said(&tmp.path().join("missing/r.git"));
        assert!(
            e.contains("its parent directory") && e.contains("does not exist"),
            "{e}"
        );
        let full = tmp.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("f"), "x").unwrap();
        let e = said(&full);
        assert!(e.contains("exists but is not a git repository"), "{e}");
        assert!(!tmp.path().join("missing").exists());

        let made = local(tmp.path().join("r.git").to_str().unwrap()).unwrap();
        assert!(std::path::Path::new(&made).join("HEAD").is_file());
    }
}
