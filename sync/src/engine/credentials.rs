//! Credentials for remotes, found the way git finds them: the ssh agent or the usual key files
//! for ssh, and git's credential helpers for https. Bounded retries, so a wrong credential
//! fails the operation instead of looping.

use std::cell::Cell;
use std::path::PathBuf;

/// How many times one operation may ask for credentials before giving up.
const MAX_ATTEMPTS: u32 = 4;

/// Installs the credential callback on `callbacks`.
pub fn install(callbacks: &mut git2::RemoteCallbacks<'_>, home: Option<PathBuf>) {
    let attempts = Cell::new(0u32);
    callbacks.credentials(move |url, username, allowed| {
        let n = attempts.get();
        attempts.set(n + 1);
        if n >= MAX_ATTEMPTS {
            return Err(git2::Error::from_str(
                "authentication failed; check `ssh-add -l` for ssh remotes, or `git credential fill` for https",
            ));
        }
        let user = username.unwrap_or("git");
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(user);
        }
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            if let Some(c) = (n == 0).then(|| git2::Cred::ssh_key_from_agent(user).ok()).flatten() {
                return Ok(c);
            }
            let keys = home.iter().flat_map(|h| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|k| h.join(".ssh").join(k)));
            if let Some(key) = keys.filter(|k| k.exists()).nth(n.saturating_sub(1) as usize) {
                return git2::Cred::ssh_key(user, None, &key, None);
            }
        }
        #[cfg(feature = "network")]
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            let config = git2::Config::open_default()?;
            return git2::Cred::credential_helper(&config, url, username);
        }
        let _ = url;
        git2::Cred::default()
    });
}
