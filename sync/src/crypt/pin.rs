//! What a machine holds on to across runs so that the remote cannot take an encrypted store back
//! or slip in a key: the fingerprint of the store's first key (a keyring swapped for one around a
//! key of the remote's own is refused) and of every key it has seen since (a keyring from before
//! a `ferry key remove`, served again, is refused: sealing with it would use a key the removed
//! machine has; and so is one that replaces a key seen, which a removed machine could make
//! around the keys it has).
//!
//! Two files in the machine's state dir: `store-key.pin` (the first key's fingerprint, as ever)
//! and `store-key.seen` (every key's, oldest first, one a line). A pin written anew (a machine
//! joining, a store made here) sets both. Only a keyring that passes is recorded.

use super::{CryptError, StoreKeys};
use std::path::{Path, PathBuf};

/// The pinned keys of this machine's store.
#[derive(Clone, Debug)]
pub struct KeyPin {
    dir: PathBuf,
}

impl KeyPin {
    /// The pin kept in the state dir `dir`.
    pub fn new(dir: &Path) -> KeyPin {
        KeyPin {
            dir: dir.to_path_buf(),
        }
    }

    /// Where the first key's fingerprint is kept.
    pub fn path(&self) -> PathBuf {
        self.dir.join("store-key.pin")
    }

    fn seen_path(&self) -> PathBuf {
        self.dir.join("store-key.seen")
    }

    /// `Ok` if `keys` begin with the pinned first key and hold every key this machine has seen,
    /// in order (and maybe newer ones, then recorded). A machine with no pin yet pins them.
    pub fn check(&self, keys: &StoreKeys) -> Result<(), CryptError> {
        let path = self.path();
        let pin = match std::fs::read_to_string(&path) {
            Ok(pin) => pin,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.reset(keys),
            Err(source) => return Err(CryptError::Io { path, source }),
        };
        if pin.trim() != keys.fingerprint() {
            return Err(CryptError::Damaged(format!(
                "the store's key is not the one this machine joined (fingerprint {} here, {} on the remote): refusing it, as a keyring swapped by someone without the key would be. If the store was made anew on purpose, remove {} and run `ferry init --remote URL` again",
                pin.trim(),
                keys.fingerprint(),
                path.display()
            )));
        }
        let seen = self.seen(pin.trim())?;
        let has = keys.fingerprints();
        if let Some(at) = seen.iter().zip(&has).position(|(a, b)| a != b) {
            return Err(CryptError::Replaced { at: at + 1 });
        }
        if has.len() < seen.len() {
            return Err(CryptError::Older {
                has: has.len(),
                seen: seen.len(),
            });
        }
        if has.len() > seen.len() {
            // Another process (the daemon, a command) may have recorded more meanwhile: what is
            // kept only ever grows.
            let now = self.seen(pin.trim())?;
            if has.len() > now.len() && has.starts_with(&now) {
                self.write_seen(&has)?;
            }
        }
        Ok(())
    }

    /// Pins `keys`, whatever was pinned before: a store joined or made here now.
    pub fn reset(&self, keys: &StoreKeys) -> Result<(), CryptError> {
        let path = self.path();
        std::fs::write(&path, format!("{}\n", keys.fingerprint()))
            .map_err(|source| CryptError::Io { path, source })?;
        self.write_seen(&keys.fingerprints())
    }

    /// The fingerprints of every key this machine has seen (the first alone, `first`, for a pin
    /// from before they were kept).
    fn seen(&self, first: &str) -> Result<Vec<String>, CryptError> {
        let path = self.seen_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![first.to_string()]),
            Err(source) => Err(CryptError::Io { path, source }),
        }
    }

    fn write_seen(&self, fingerprints: &[String]) -> Result<(), CryptError> {
        let path = self.seen_path();
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let text: String = fingerprints.iter().map(|f| format!("{f}\n")).collect();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| CryptError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::StoreKey;

    #[test]
    fn a_keyring_that_drops_or_replaces_a_key_seen_is_refused_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let one = StoreKeys::new(StoreKey::generate());
        let two = one.rotated().unwrap();
        let three = two.rotated().unwrap();
        let pin = KeyPin::new(dir.path());
        pin.check(&two).unwrap();
        pin.check(&three).unwrap();
        // A later run: what was seen was kept on disk.
        let pin = KeyPin::new(dir.path());
        pin.check(&three).unwrap();
        let e = pin.check(&two).unwrap_err().to_string();
        assert!(
            e.contains("holds 2 store key(s)") && e.contains("seen 3"),
            "{e}"
        );
        // Made by a machine that holds the first two keys only: as many keys, the third its own;
        // or many more. Neither is taken, and neither changes what is kept.
        let forged = two.rotated().unwrap();
        let e = pin.check(&forged).unwrap_err().to_string();
        assert!(e.contains("replaces store key 3"), "{e}");
        let mut many = two.clone();
        for _ in 0..50 {
            many = many.rotated().unwrap();
        }
        assert!(pin.check(&many).is_err());
        pin.check(&three).unwrap();
        let e = pin
            .check(&StoreKeys::new(StoreKey::generate()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not the one this machine joined"), "{e}");
        // A store made anew here starts again.
        pin.reset(&one).unwrap();
        pin.check(&one).unwrap();
        assert!(pin.check(&three).is_ok());
    }

    #[test]
    fn a_pin_from_before_keys_were_kept_has_seen_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let one = StoreKeys::new(StoreKey::generate());
        std::fs::write(dir.path().join("store-key.pin"), one.fingerprint() + "\n").unwrap();
        let pin = KeyPin::new(dir.path());
        pin.check(&one).unwrap();
        pin.check(&one.rotated().unwrap()).unwrap();
        assert!(pin.check(&one).is_err());
    }
}
