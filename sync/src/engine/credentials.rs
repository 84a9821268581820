//! Credentials for remotes, found the way git finds them: the ssh agent or the usual key files
//! for ssh, and git's credential helpers for https. Bounded retries, so a wrong credential
//! fails the operation instead of looping.

use std::cell::Cell;
use std::path::PathBuf;

/// How many times one operation may ask for credentials before giving up.
const MAX_ATTEMPTS: u32 = 6;

/// Installs the credential callback on `callbacks`.
pub fn install(callbacks: &mut git2::RemoteCallbacks<'_>, home: Option<PathBuf>) {
    let attempts = Cell::new(0u32);
    let agent_tried = Cell::new(false);
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
            if !agent_tried.replace(true)
                && let Ok(c) = git2::Cred::ssh_key_from_agent(user)
            {
                return Ok(c);
            }
            let keys = home.iter().flat_map(|h| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|k| h.join(".ssh").join(k)));
            let key_attempt = n.saturating_sub(2) as usize;
            if let Some(key) = keys.filter(|k| k.exists()).nth(key_attempt) {
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
