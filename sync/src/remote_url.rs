//! Normalised git remote URLs: the repository half of a project key. Two clones of one repository
//! must give the same string whichever URL form each was cloned with.
//!
//! Decisions: the scheme, user info (and so any credential) and port are dropped, so
//! `ssh://git@host:2222/o/r.git`, `git@host:o/r` and `https://host/o/r` are one repository; the
//! host is lower-cased; a trailing `.git` and `/` are dropped; on hosts known to ignore case
//! (GitHub, GitLab, Bitbucket, Codeberg) the path is lower-cased too. Local remotes (a path or
//! `file://`) become `file://<path>` with `/` separators: they name a repository only on one
//! machine, which is the best a local remote can do.

use crate::path_style::SplitPath;

/// Hosts whose repository paths are case-insensitive.
const CASELESS_HOSTS: [&str; 4] = ["github.com", "gitlab.com", "bitbucket.org", "codeberg.org"];

/// The normalised form of a remote URL (`github.com/o/r`), or `None` if it is not a URL git
/// would accept.
pub fn normalise(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().any(char::is_control) {
        return None;
    }
    if let Some(rest) = url.strip_prefix("file://") {
        return local(rest);
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let known = [
            "ssh", "git", "http", "https", "git+ssh", "ssh+git", "ftp", "ftps",
        ];
        if !known.contains(&scheme.to_ascii_lowercase().as_str()) {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = strip_port(host_port);
        return join(host, path);
    }
    if SplitPath::parse(url).is_some() || url.starts_with('.') {
        return local(url);
    }
    // scp-like `[user@]host:path`; a ':' after a '/' would make it a local path.
    let (authority, path) = url.split_once(':')?;
    if authority.contains('/') {
        return local(url);
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    join(host, path)
}

fn strip_port(host_port: &str) -> &str {
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map_or(host_port, |(h, _)| h);
    }
    match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

fn join(host: &str, path: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let mut path = path.trim_matches('/').to_string();
    if let Some(p) = path.strip_suffix(".git") {
        path = p.trim_end_matches('/').to_string();
    }
    if CASELESS_HOSTS.contains(&host.as_str()) {
        path = path.to_ascii_lowercase();
    }
    if path.is_empty() {
        return None;
    }
    Some(format!("{host}/{path}"))
}

fn local(path: &str) -> Option<String> {
    let split = SplitPath::parse(path)?;
    let mut canonical = split.join_with("/");
    if let Some(p) = canonical.strip_suffix(".git") {
        canonical = p.to_string();
    }
    let canonical = canonical.trim_end_matches('/');
    if canonical.is_empty() {
        return None;
    }
    Some(format!("file://{canonical}"))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn every_form_of_one_repository_is_one_key() {
        let forms = [
            "git@github.com:Owner/Repo.git",
            "github.com:owner/repo",
            "ssh://git@github.com/owner/repo.git",
            "ssh://git@GitHub.com:22/owner/repo",
            "git+ssh://git@github.com/owner/repo/",
            "https://github.com/owner/repo",
            "https://github.com/owner/repo.git",
            "https://user:secret-token@github.com:443/Owner/Repo.git",
            "http://github.com/owner/repo.git/",
            "git://github.com/owner/repo.git",
            "  https://github.com/owner/repo\n",
        ];
        for f in forms {
            assert_eq!(
                normalise(f).as_deref(),
                Some("github.com/owner/repo"),
                "{f}"
            );
        }
    }

    #[test]
    fn other_hosts_keep_path_case_and_drop_credentials() {
        assert_eq!(
            normalise("https://u:pw@git.example.org:8443/Team/Sub/Proj.git").as_deref(),
            Some("git.example.org/Team/Sub/Proj")
        );
        assert_eq!(
            normalise("ssh://[::1]:2222/srv/r.git").as_deref(),
            Some("::1/srv/r")
        );
    }

    #[test]
    fn local_remotes() {
        assert_eq!(
            normalise("/srv/git/r.git").as_deref(),
            Some("file:///srv/git/r")
        );
        assert_eq!(
            normalise("file:///srv/git/r").as_deref(),
            Some("file:///srv/git/r")
        );
        assert_eq!(
            normalise(r"C:\git\r.git").as_deref(),
            Some("file://C:/git/r")
        );
        assert_eq!(normalise("./rel/x:y").as_deref(), None);
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "   ",
            "nocolon",
            "gopher://h/x",
            "https:///x",
            "host:",
            "a\nb:c",
        ] {
            assert_eq!(normalise(bad), None, "{bad:?}");
        }
    }
}
