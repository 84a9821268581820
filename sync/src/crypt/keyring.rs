//! This machine's identity, and the store key wrapped for the machines that share the store.
//!
//! Each machine has its own age X25519 identity, kept 0600 in its state dir; its recipient (the
//! public half, `age1…`) is what another machine adds. The keyring the store keeps lists the
//! recipients, and holds the store key wrapped for all of them in one age file, and, when the
//! store has a passphrase, wrapped for it in another (age keeps passphrases apart).

use super::{CryptError, StoreKeys};
use age::secrecy::{ExposeSecret, SecretString};
use std::path::Path;

/// This machine's age identity.
#[derive(Clone)]
pub struct Identity(age::x25519::Identity);

impl Identity {
    /// The identity kept at `path`, made (readable by this user only) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Identity, CryptError> {
        if let Some(id) = Identity::load(path)? {
            return Ok(id);
        }
        let id = age::x25519::Identity::generate();
        let text = format!(
            "# ferry: this machine's key to encrypted stores. Keep it secret.\n{}\n",
            id.to_string().expose_secret()
        );
        let io = |source| CryptError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(path).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(Identity(id))
    }

    /// The identity kept at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Identity>, CryptError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CryptError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .ok_or_else(|| CryptError::Key(format!("{} holds no age identity", path.display())))?;
        line.parse()
            .map(|id| Some(Identity(id)))
            .map_err(|e| CryptError::Key(format!("{}: {e}", path.display())))
    }

    /// The public half, which other machines add: `age1…`.
    pub fn recipient(&self) -> String {
        self.0.to_public().to_string()
    }
}

/// `text` checked as a recipient: an age X25519 public key.
pub fn recipient(text: &str) -> Result<age::x25519::Recipient, CryptError> {
    text.trim().parse().map_err(|e: &str| {
        CryptError::Key(format!(
            "{text:?} is not a machine's recipient (`ferry key show` prints one, age1…): {e}"
        ))
    })
}

/// The store keys wrapped for every one of `recipients` at once.
pub fn wrap(key: &StoreKeys, recipients: &[String]) -> Result<Vec<u8>, CryptError> {
    let parsed = recipients
        .iter()
        .map(|r| recipient(r))
        .collect::<Result<Vec<_>, _>>()?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| CryptError::Key(format!("wrapping the store key: {e}")))?;
    finish(encryptor, key)
}

/// The store keys wrapped for a passphrase (scrypt, about a second to open).
pub fn wrap_passphrase(key: &StoreKeys, passphrase: &str) -> Result<Vec<u8>, CryptError> {
    finish(
        age::Encryptor::with_user_passphrase(SecretString::from(passphrase.to_owned())),
        key,
    )
}

fn finish(encryptor: age::Encryptor, key: &StoreKeys) -> Result<Vec<u8>, CryptError> {
    let fail = |e: std::io::Error| CryptError::Key(format!("wrapping the store key: {e}"));
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).map_err(fail)?;
    std::io::Write::write_all(&mut w, &key.to_bytes()).map_err(fail)?;
    w.finish().map_err(fail)?;
    Ok(out)
}

/// The store keys from `wrapped`, if `identity` is one of its recipients.
pub fn unwrap(wrapped: &[u8], identity: &Identity) -> Result<Option<StoreKeys>, CryptError> {
    open_with(wrapped, &identity.0)
}

/// The store keys from `wrapped`, if they were wrapped for `passphrase`.
pub fn unwrap_passphrase(
    wrapped: &[u8],
    passphrase: &str,
) -> Result<Option<StoreKeys>, CryptError> {
    open_with(
        wrapped,
        &age::scrypt::Identity::new(SecretString::from(passphrase.to_owned())),
    )
}

fn open_with(
    wrapped: &[u8],
    identity: &dyn age::Identity,
) -> Result<Option<StoreKeys>, CryptError> {
    let damaged = |e: &dyn std::fmt::Display| {
        CryptError::Damaged(format!("the store's keyring does not open: {e}"))
    };
    let decryptor = age::Decryptor::new_buffered(wrapped).map_err(|e| damaged(&e))?;
    let mut reader = match decryptor.decrypt(std::iter::once(identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed) => {
            return Ok(None);
        }
        Err(e) => return Err(damaged(&e)),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut bytes).map_err(|e| damaged(&e))?;
    StoreKeys::from_bytes(&bytes)
        .map(Some)
        .ok_or_else(|| damaged(&"the keys inside are not whole 32-byte keys"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/identity.age");
        let made = Identity::load_or_create(&path).unwrap();
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(made.recipient(), again.recipient());
        assert!(made.recipient().starts_with("age1"), "{}", made.recipient());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "nothing here\n").unwrap();
        let e = Identity::load(&path).err().unwrap().to_string();
        assert!(e.contains("holds no age identity"), "{e}");
    }

    #[test]
    fn the_store_key_opens_for_its_recipients_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(&dir.path().join("a")).unwrap();
        let b = Identity::load_or_create(&dir.path().join("b")).unwrap();
        let c = Identity::load_or_create(&dir.path().join("c")).unwrap();
        let key = StoreKeys::new(super::super::StoreKey::generate());
        let wrapped = wrap(&key, &[a.recipient(), b.recipient()]).unwrap();
        assert_eq!(
            unwrap(&wrapped, &a).unwrap().unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(
            unwrap(&wrapped, &b).unwrap().unwrap().to_bytes(),
            key.to_bytes()
        );
        assert!(unwrap(&wrapped, &c).unwrap().is_none());
        assert!(unwrap(b"not age at all", &a).is_err());
        let e = wrap(&key, &["age1nope".into()]).err().unwrap().to_string();
        assert!(e.contains("ferry key show"), "{e}");
    }

    #[test]
    fn a_passphrase_opens_the_store_key_and_a_wrong_one_does_not() {
        let key = StoreKeys::new(super::super::StoreKey::generate());
        let wrapped = wrap_passphrase(&key, "correct horse").unwrap();
        let opened = unwrap_passphrase(&wrapped, "correct horse").unwrap();
        assert_eq!(opened.unwrap().to_bytes(), key.to_bytes());
        assert!(
            unwrap_passphrase(&wrapped, "wrong horse")
                .unwrap()
                .is_none()
        );
    }
}

/// The keyring as the store keeps it on the branch `refs/heads/ferry/keyring`: the machines'
/// recipients, the store key wrapped for all of them, and for the passphrase if there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    /// Every machine's recipient (`age1…`), one per machine that may open the store.
    pub recipients: Vec<String>,
    /// The store key wrapped for all of `recipients`.
    pub wrapped: Vec<u8>,
    /// The store key wrapped for the passphrase, if the store has one.
    pub passphrase: Option<Vec<u8>>,
    /// An HMAC of all the above under the keys: the recipients file is plain, and a remote
    /// that added its own recipient to it, or wrapped a key of its own, is refused.
    pub mac: Vec<u8>,
}

/// Names in the keyring's tree.
const RECIPIENTS: &str = "recipients";
const WRAPPED: &str = "machines.age";
const PASSPHRASE: &str = "passphrase.age";
const MAC: &str = "mac";

/// What the keyring's MAC covers: each part with its length.
fn macced(recipients: &[String], wrapped: &[u8], passphrase: Option<&[u8]>) -> Vec<u8> {
    let mut data = b"ferry keyring v1\0".to_vec();
    let mut part = |bytes: &[u8]| {
        data.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        data.extend_from_slice(bytes);
    };
    part(recipients.join("\n").as_bytes());
    part(wrapped);
    part(passphrase.unwrap_or_default());
    data.push(u8::from(passphrase.is_some()));
    data
}

impl Keyring {
    /// A keyring for `key` that `recipients` open (and `passphrase`, if given).
    pub fn new(
        key: &StoreKeys,
        recipients: Vec<String>,
        passphrase: Option<&str>,
    ) -> Result<Keyring, CryptError> {
        let mut recipients = recipients;
        recipients.sort();
        recipients.dedup();
        let wrapped = wrap(key, &recipients)?;
        let passphrase = passphrase.map(|p| wrap_passphrase(key, p)).transpose()?;
        let mac = key
            .mac(&macced(&recipients, &wrapped, passphrase.as_deref()))
            .to_vec();
        Ok(Keyring {
            wrapped,
            recipients,
            passphrase,
            mac,
        })
    }

    /// This keyring with the passphrase wrapping of `other` (the passphrase is not known here,
    /// and the keys it wraps did not change), sealed again with `keys`.
    pub fn keeping_passphrase_of(mut self, other: &Keyring, keys: &StoreKeys) -> Keyring {
        self.passphrase = other.passphrase.clone();
        self.mac = keys
            .mac(&macced(
                &self.recipients,
                &self.wrapped,
                self.passphrase.as_deref(),
            ))
            .to_vec();
        self
    }

    /// `keys` if this keyring's MAC is theirs, else the error that says it was tampered with.
    fn checked(&self, keys: StoreKeys) -> Result<StoreKeys, CryptError> {
        let want = keys.mac(&macced(
            &self.recipients,
            &self.wrapped,
            self.passphrase.as_deref(),
        ));
        if !same(&want, &self.mac) {
            return Err(CryptError::Damaged(
                "the store's keyring was changed by someone without its key (its recipients or wrapped keys do not match their seal): refusing it".into(),
            ));
        }
        Ok(keys)
    }

    /// The store keys, if `identity` is one of the recipients.
    pub fn open(&self, identity: &Identity) -> Result<Option<StoreKeys>, CryptError> {
        unwrap(&self.wrapped, identity)?
            .map(|k| self.checked(k))
            .transpose()
    }

    /// The store keys, if the keyring has a passphrase and it is `passphrase`.
    pub fn open_passphrase(&self, passphrase: &str) -> Result<Option<StoreKeys>, CryptError> {
        match &self.passphrase {
            Some(w) => unwrap_passphrase(w, passphrase)?
                .map(|k| self.checked(k))
                .transpose(),
            None => Ok(None),
        }
    }

    /// The keyring at `refname` of `repo`, if there is one there.
    pub fn read(repo: &git2::Repository, refname: &str) -> Result<Option<Keyring>, CryptError> {
        let Ok(commit) = repo.refname_to_id(refname) else {
            return Ok(None);
        };
        let tree = repo.find_commit(commit)?.tree()?;
        let blob = |name: &str| -> Result<Option<Vec<u8>>, CryptError> {
            match tree.get_name(name) {
                Some(e) => Ok(Some(repo.find_blob(e.id())?.content().to_vec())),
                None => Ok(None),
            }
        };
        let damaged =
            || CryptError::Damaged("the store's keyring lacks its recipients or key".into());
        let recipients = String::from_utf8(blob(RECIPIENTS)?.ok_or_else(damaged)?)
            .map_err(|_| damaged())?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        Ok(Some(Keyring {
            recipients,
            wrapped: blob(WRAPPED)?.ok_or_else(damaged)?,
            passphrase: blob(PASSPHRASE)?,
            mac: blob(MAC)?.unwrap_or_default(),
        }))
    }

    /// Writes this keyring as a commit on top of what `refname` holds, and points `refname` at
    /// it; returns the commit.
    pub fn write(&self, repo: &git2::Repository, refname: &str) -> Result<git2::Oid, CryptError> {
        let mut builder = repo.treebuilder(None)?;
        let mut text = self.recipients.join("\n");
        text.push('\n');
        builder.insert(RECIPIENTS, repo.blob(text.as_bytes())?, 0o100644)?;
        builder.insert(WRAPPED, repo.blob(&self.wrapped)?, 0o100644)?;
        if let Some(p) = &self.passphrase {
            builder.insert(PASSPHRASE, repo.blob(p)?, 0o100644)?;
        }
        builder.insert(MAC, repo.blob(&self.mac)?, 0o100644)?;
        let tree = repo.find_tree(builder.write()?)?;
        let parent = repo
            .refname_to_id(refname)
            .ok()
            .and_then(|p| repo.find_commit(p).ok());
        // The time only, in UTC: no name, no time zone.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let sig = git2::Signature::new("ferry", "ferry", &git2::Time::new(now, 0))?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let commit = repo.commit(None, &sig, &sig, "ferry keyring", &tree, &parents)?;
        repo.reference(refname, commit, true, "ferry keyring")?;
        Ok(commit)
    }
}

/// Equality of two byte strings, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod keyring_tests {
    use super::*;

    #[test]
    fn a_keyring_is_written_read_back_and_opens_for_its_machines() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path().join("s.git")).unwrap();
        let a = Identity::load_or_create(&dir.path().join("a")).unwrap();
        let b = Identity::load_or_create(&dir.path().join("b")).unwrap();
        let key = StoreKeys::new(super::super::StoreKey::generate());
        let ring = Keyring::new(&key, vec![a.recipient()], None).unwrap();
        ring.write(&repo, "refs/ferry/remote/keyring").unwrap();
        let read = Keyring::read(&repo, "refs/ferry/remote/keyring")
            .unwrap()
            .unwrap();
        assert_eq!(read, ring);
        assert_eq!(read.open(&a).unwrap().unwrap().to_bytes(), key.to_bytes());
        assert!(read.open(&b).unwrap().is_none());
        assert!(read.open_passphrase("x").unwrap().is_none());
        let more = Keyring::new(&key, vec![b.recipient(), a.recipient()], None).unwrap();
        let second = more.write(&repo, "refs/ferry/remote/keyring").unwrap();
        assert_eq!(repo.find_commit(second).unwrap().parent_count(), 1);
        let read = Keyring::read(&repo, "refs/ferry/remote/keyring")
            .unwrap()
            .unwrap();
        assert_eq!(read.open(&b).unwrap().unwrap().to_bytes(), key.to_bytes());
        assert!(
            Keyring::read(&repo, "refs/ferry/nothing")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_keyring_changed_without_the_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(&dir.path().join("a")).unwrap();
        let eve = Identity::load_or_create(&dir.path().join("eve")).unwrap();
        let key = StoreKeys::new(super::super::StoreKey::generate());
        let ring = Keyring::new(&key, vec![a.recipient()], None).unwrap();
        // A recipient slipped into the plain list: the next `key add` would wrap for it.
        let mut added = ring.clone();
        added.recipients.push(eve.recipient());
        let e = added.open(&a).err().unwrap().to_string();
        assert!(e.contains("changed by someone without its key"), "{e}");
        // A key of the remote's own, wrapped for the listed recipient.
        let theirs = StoreKeys::new(super::super::StoreKey::generate());
        let mut swapped = ring.clone();
        swapped.wrapped = wrap(&theirs, &ring.recipients).unwrap();
        let e = swapped.open(&a).err().unwrap().to_string();
        assert!(e.contains("changed by someone without its key"), "{e}");
        // And one without a MAC at all.
        let mut bare = ring.clone();
        bare.mac.clear();
        assert!(bare.open(&a).is_err());
        assert_eq!(ring.open(&a).unwrap().unwrap().to_bytes(), key.to_bytes());
        assert_eq!(key.fingerprint(), key.rotated().unwrap().fingerprint());
        assert_ne!(key.fingerprint(), theirs.fingerprint());
        // A keyring made anew around the remote's own key seals itself well: what refuses it is
        // that its keys do not extend those this machine had (and the pinned fingerprint).
        let forged = Keyring::new(&theirs, ring.recipients.clone(), None).unwrap();
        let opened = forged.open(&a).unwrap().unwrap();
        assert!(!key.extended_by(&opened));
        assert!(key.extended_by(&key.rotated().unwrap()));
    }
}
