//! A plain store's fetch of new commits, at the cost of what moved: `git ls-remote` of the
//! machines' branches and the ferry refs, `git fetch-pack` of the ones that moved, the new pack
//! checked for completeness in this process (`Store::check_arrived`), then the refs set. `git
//! fetch` checks the same by walking the whole tree of every branch that moved, as it was
//! before: at 10,000 sessions that walk was most of the CPU a one-line change cost the machine
//! receiving it. An idle fetch is the `ls-remote` alone.
//!
//! `fetch-pack` reaches local, ssh and git:// remotes only, and takes the URL as it is; a
//! remote that git reaches through a remote helper (https) keeps `git fetch`, and the URL is
//! first expanded as git would (`url.<base>.insteadOf`).

use super::git_cli::{GitCli, Incoming, failure, run};
use super::remote::{Failure, Progress, RemoteError};
use crate::store::Store;
use git2::Oid;

/// Where the remote's branches of each kind go in the store, given the machines' `dest`.
fn local_name(remote: &str, dest: &str) -> Option<String> {
    let (from, to) = crate::crypt::sealing::FERRY_REFSPEC
        .trim_start_matches('+')
        .split_once(':')?;
    let (from, to) = (from.trim_end_matches('*'), to.trim_end_matches('*'));
    let local = if let Some(id) = remote.strip_prefix("refs/heads/machines/") {
        format!("{dest}{id}")
    } else {
        format!("{to}{}", remote.strip_prefix(from)?)
    };
    git2::Reference::is_valid_name(&local).then_some(local)
}

/// What a user reads of a fetch refused as incomplete, and what to do.
fn incomplete(why: impl std::fmt::Display) -> String {
    format!(
        "{why}; nothing of this fetch was taken, and the next one asks for it again (if this goes on, the remote may be damaged: `git fsck` in it says)"
    )
}

/// Whether `git fetch-pack` reaches `url` itself: a path, `file://`, `ssh://`, `git://` or
/// `host:path`; not a remote helper's (`https://`, `transport::address`).
pub(super) fn direct(url: &str) -> bool {
    // `fetch-pack` takes no `--`: a URL like an option goes to `git fetch`, which does.
    if url.contains("::") || url.starts_with('-') {
        return false;
    }
    match url.split_once("://") {
        Some((scheme, _)) => ["file", "ssh", "git", "git+ssh", "ssh+git"].contains(&scheme),
        None => true,
    }
}

impl GitCli {
    /// Fetches the branches that moved on the remote `url` (`target` as git expands it) into
    /// `store`: machines' under `dest`, the ferry refs under theirs. Nothing is set unless the
    /// pack that came names only objects the store has.
    pub(super) fn fetch_moved(
        &self,
        store: &Store,
        url: &str,
        target: &str,
        incoming: Incoming,
        progress: &Progress,
        dest: &str,
    ) -> Result<(), RemoteError> {
        let mut ls = self.command(None);
        ls.current_dir(std::env::temp_dir()).args([
            "ls-remote",
            "--",
            target,
            "refs/heads/machines/*",
            "refs/heads/ferry/*",
        ]);
        let listed = run(ls, "fetch", url, None, &Progress::default())?;
        let repo = store.repo();
        let moved: Vec<(&str, String)> = listed
            .lines()
            .filter_map(|l| {
                let (id, name) = l.split_once('\t')?;
                let id = Oid::from_str(id).ok()?;
                let local = local_name(name, dest)?;
                (repo.refname_to_id(&local).ok() != Some(id)).then_some((name, local))
            })
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        let mut cmd = self.command(Some(repo.path()));
        cmd.args(["-c", "fetch.unpackLimit=1", "fetch-pack", "--thin", target])
            .args(moved.iter().map(|(name, _)| name));
        let out = run(cmd, "fetch", url, Some(incoming), progress)?;
        let (mut packs, mut kept, mut tips) = (Vec::new(), Vec::new(), Vec::new());
        for line in out.lines() {
            if let Some(hash) = line.strip_prefix("keep\t") {
                kept.push(hash.to_string());
                packs.push(hash.to_string());
            } else if let Some(hash) = line.strip_prefix("pack\t") {
                packs.push(hash.to_string());
            } else if let Some((id, name)) = line.split_once(' ')
                && let Ok(id) = Oid::from_str(id)
                && let Some((_, local)) = moved.iter().find(|(n, _)| *n == name)
            {
                tips.push((id, local));
            }
        }
        let ids: Vec<Oid> = tips.iter().map(|(id, _)| *id).collect();
        let done = store
            .check_arrived(url, &packs, &ids)
            .map_err(|e| failure("fetch", url, Failure::Other, incomplete(e)))
            .and_then(|()| {
                tips.iter().try_for_each(|(id, local)| {
                    repo.reference(local, *id, true, "ferry: fetch")
                        .map(|_| ())
                        .map_err(|e| failure("fetch", url, Failure::Other, e))
                })
            });
        if done.is_err() {
            for hash in &packs {
                store.remove_pack(hash);
            }
        }
        // The pack is kept from git's repacks until the refs name what it holds.
        for hash in kept {
            let _ =
                std::fs::remove_file(repo.path().join(format!("objects/pack/pack-{hash}.keep")));
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_fetch_pack_reaches_are_told_from_helpers() {
        for url in [
            "/srv/r.git",
            "file:///srv/r.git",
            "ssh://git@host/r.git",
            "git@github.com:me/r.git",
            "git://host/r.git",
        ] {
            assert!(direct(url), "{url}");
        }
        for url in [
            "https://github.com/me/r.git",
            "http://h/r",
            "ext::ssh h r",
            "-oProxyCommand=x:r",
        ] {
            assert!(!direct(url), "{url}");
        }
    }

    #[test]
    fn remote_branches_have_their_places_and_odd_ones_none() {
        let dest = "refs/remotes/origin/machines/";
        assert_eq!(
            local_name("refs/heads/machines/ab12", dest).as_deref(),
            Some("refs/remotes/origin/machines/ab12")
        );
        assert_eq!(
            local_name("refs/heads/ferry/keyring", dest).as_deref(),
            Some("refs/ferry/remote/keyring")
        );
        assert_eq!(local_name("refs/heads/main", dest), None);
        assert_eq!(local_name("refs/heads/machines/a..b", dest), None);
    }
}
