//! A plain store's fetch of new commits, at the cost of what moved: `git ls-remote` of the
//! machines' branches and the ferry refs, `git fetch-pack` of the ones that moved into a
//! quarantine, the new pack checked for completeness in this process (`Store::check_arrived`)
//! and moved into the store, then the refs set. `git fetch` checks the same by walking the whole
//! tree of every branch that moved, as it was before: at 10,000 sessions that walk was most of
//! the CPU a one-line change cost the machine receiving it. An idle fetch is the `ls-remote`
//! alone.
//!
//! `fetch-pack` reaches local, ssh and git:// remotes only, and takes the URL as it is; a
//! remote that git reaches through a remote helper (https) keeps `git fetch`, and the URL is
//! first expanded as git would (`url.<base>.insteadOf`).

use super::git_cli::{GitCli, Incoming, failure, run};
use super::remote::{Failure, Progress, RemoteError};
use super::sealed_wire::own_name;
use crate::store::{Store, StoreError};
use git2::Oid;

/// The stem of a fetch's quarantine in the store's git dir (`ferry-fetch-moved-<pid>-<n>`).
pub(super) const QUARANTINE: &str = "ferry-fetch-moved";

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
        "{why}; nothing of this fetch was taken, and the next one asks for it again (if this goes on, the remote may be damaged: run `git fsck` in it)"
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
    /// `store`: machines' under `dest`, the ferry refs under theirs, giving up once the remote
    /// has sent more than `max_bytes`. The pack arrives in a quarantine of its own, and
    /// nothing of it enters the store, nor any ref moves, unless it names only objects that it
    /// or the store holds.
    pub(super) fn fetch_moved(
        &self,
        store: &Store,
        (url, target): (&str, &str),
        max_bytes: u64,
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
        // Watched as the transfer is: a remote that stops answering is given up on.
        let listed = run(ls, "fetch", url, None, progress)?;
        let repo = store.repo();
        // Each branch that moved: its remote name, its name here, and where it is here now.
        let moved: Vec<(&str, String, Option<Oid>)> = listed
            .lines()
            .filter_map(|l| {
                let (id, name) = l.split_once('\t')?;
                let id = Oid::from_str(id).ok()?;
                let local = local_name(name, dest)?;
                let here = repo.refname_to_id(&local).ok();
                (here != Some(id)).then_some((name, local, here))
            })
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        // git writes the shallow list itself when a shallow remote unshallows a commit of it,
        // before anything is checked: put back if the fetch then comes to nothing.
        let shallow = store.shallow_list().ok();
        let quarantine = own_name(repo.path(), QUARANTINE);
        let objects = quarantine.join("objects");
        let done = std::fs::create_dir_all(objects.join("pack"))
            .map_err(|e| {
                let why = format!("making the fetch's quarantine: {e}");
                failure("fetch", url, Failure::Other, why)
            })
            .and_then(|()| {
                let mut cmd = self.command(Some(repo.path()));
                cmd.env("GIT_OBJECT_DIRECTORY", &objects)
                    .env(
                        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                        alternate(&repo.path().join("objects")),
                    )
                    .args(["-c", "fetch.unpackLimit=1", "-c", "transfer.unpackLimit=1"])
                    .args(["-c", "pack.indexVersion=2"])
                    // The store is the quarantine's alternate, and its refs are this command's
                    // own already: no `git for-each-ref` in it to learn them again.
                    .args(["-c", "core.alternateRefsCommand=true"])
                    .args(["fetch-pack", "--keep", "--thin", target])
                    .args(moved.iter().map(|(name, _, _)| name));
                run(
                    cmd,
                    "fetch",
                    url,
                    Some(Incoming::at(&quarantine, max_bytes)),
                    progress,
                )
            })
            .and_then(|out| take_in(store, url, &objects, &moved, &out));
        let _ = std::fs::remove_dir_all(&quarantine);
        if done.is_err()
            && let Some(before) = shallow
            && store.shallow_list().ok().as_ref() != Some(&before)
        {
            let _ = store.edit_shallow(|list| *list = before);
        }
        done
    }
}

/// Takes what `git fetch-pack` brought into the quarantine `objects` (its stdout `out` names
/// the tips) into `store`, once checked, and sets the `moved` branches' refs to the tips.
fn take_in(
    store: &Store,
    url: &str,
    objects: &std::path::Path,
    moved: &[(&str, String, Option<Oid>)],
    out: &str,
) -> Result<(), RemoteError> {
    let io = |what: &str, e: &dyn std::fmt::Display| {
        failure("fetch", url, Failure::Other, format!("{what}: {e}"))
    };
    let tips: Vec<(Oid, &str, Option<Oid>)> = out
        .lines()
        .filter_map(|line| {
            let (id, name) = line.split_once(' ')?;
            let id = Oid::from_str(id).ok()?;
            let (_, local, was) = moved.iter().find(|(n, _, _)| *n == name)?;
            Some((id, local.as_str(), *was))
        })
        .collect();
    if let Some((name, _, _)) = moved
        .iter()
        .find(|(_, local, _)| !tips.iter().any(|(_, l, _)| l == local))
    {
        return Err(io(
            "the fetch",
            &format!(
                "git fetch-pack did not bring {name} (gone from the remote meanwhile?); the next fetch asks again"
            ),
        ));
    }
    let ids: Vec<Oid> = tips.iter().map(|(id, _, _)| *id).collect();
    store.check_arrived(objects, &ids).map_err(|e| match e {
        StoreError::Incomplete { .. } => failure("fetch", url, Failure::Other, incomplete(e)),
        e => io("checking what the fetch brought", &e),
    })?;
    let kept = store
        .take_packs(objects)
        .map_err(|e| io("moving what the fetch brought into the store", &e))?;
    let set = set_refs(store.repo(), &tips).map_err(|e| io("setting the fetched branches", &e));
    // The packs are kept from git's repacks until the refs name what they hold.
    for k in kept {
        let _ = std::fs::remove_file(k);
    }
    set
}

/// Sets each of `tips` (id, ref, where the ref was when the fetch began) with every ref locked
/// first. A ref another fetch moved meanwhile is left as that fetch set it, which is as new as
/// this one's or newer. (libgit2 writes the locked refs one after another.)
fn set_refs(repo: &git2::Repository, tips: &[(Oid, &str, Option<Oid>)]) -> Result<(), git2::Error> {
    let mut tx = repo.transaction()?;
    for (_, name, _) in tips {
        tx.lock_ref(name)?;
    }
    for (id, name, was) in tips {
        if repo.refname_to_id(name).ok() == *was {
            tx.set_target(name, *id, None, "ferry: fetch")?;
        }
    }
    tx.commit()
}

/// The store's object directory as `GIT_ALTERNATE_OBJECT_DIRECTORIES` takes it: quoted as a C
/// string when it holds the list's separator (`:`, or `;` on Windows) or begins with a quote.
fn alternate(objects: &std::path::Path) -> std::ffi::OsString {
    let path = objects.to_string_lossy();
    let separator = if cfg!(windows) { ';' } else { ':' };
    if !path.contains(separator) && !path.starts_with('"') {
        return objects.as_os_str().to_owned();
    }
    let escaped = path.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"").into()
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
    fn an_alternate_with_the_separator_is_quoted() {
        let plain = std::path::Path::new("/home/al/store/objects");
        assert_eq!(alternate(plain), plain.as_os_str());
        let odd = if cfg!(windows) {
            r#"C:\a;b\"q\objects"#
        } else {
            r#"/home/a:b/"q/objects"#
        };
        let want = if cfg!(windows) {
            r#""C:\\a;b\\\"q\\objects""#
        } else {
            r#""/home/a:b/\"q/objects""#
        };
        assert_eq!(alternate(std::path::Path::new(odd)), want);
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
