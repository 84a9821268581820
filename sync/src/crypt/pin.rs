//! What a machine holds on to across runs so that the remote cannot take an encrypted store back:
//! the fingerprint of the store's first key (a keyring swapped for one around a key of the
//! remote's own is refused) and how many keys it has seen (a keyring from before a
//! `ferry key remove`, served again, is refused: sealing with it would use a key the removed
//! machine has).
//!
//! Two files in the machine's state dir: `store-key.pin` (the fingerprint, as ever) and
//! `store-key.generations` (the count, a decimal number). A pin written anew (a machine joining,
//! a store made here) sets both.

use super::{CryptError, StoreKeys};
use std::path::{Path, PathBuf};

/// The pinned first key and key count of this machine's store.
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

    fn count_path(&self) -> PathBuf {
        self.dir.join("store-key.generations")
    }

    /// `Ok` if `keys` begin with the pinned first key and are at least as many as this machine
    /// has seen; records their count when it grew. A machine with no pin yet pins them.
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
        let seen = self.seen()?;
        if keys.generations() < seen {
            return Err(CryptError::Older {
                has: keys.generations(),
                seen,
            });
        }
        if keys.generations() > seen {
            self.write_count(keys.generations())?;
        }
        Ok(())
    }

    /// Pins `keys`, whatever was pinned before: a store joined or made here now.
    pub fn reset(&self, keys: &StoreKeys) -> Result<(), CryptError> {
        let path = self.path();
        std::fs::write(&path, format!("{}\n", keys.fingerprint()))
            .map_err(|source| CryptError::Io { path, source })?;
        self.write_count(keys.generations())
    }

    /// How many keys this machine has seen (1 for a pin from before counts were kept).
    fn seen(&self) -> Result<usize, CryptError> {
        let path = self.count_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                CryptError::Damaged(format!(
                    "{} does not hold a number: remove it to count the store's keys again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
            Err(source) => Err(CryptError::Io { path, source }),
        }
    }

    fn write_count(&self, n: usize) -> Result<(), CryptError> {
        let path = self.count_path();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{n}\n"))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| CryptError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::StoreKey;

    #[test]
    fn a_keyring_with_fewer_keys_or_another_first_key_is_refused_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let one = StoreKeys::new(StoreKey::generate());
        let two = one.rotated().unwrap();
        let three = two.rotated().unwrap();
        let pin = KeyPin::new(dir.path());
        pin.check(&two).unwrap();
        pin.check(&three).unwrap();
        // A later run: the count was kept on disk.
        let pin = KeyPin::new(dir.path());
        pin.check(&three).unwrap();
        let e = pin.check(&two).unwrap_err().to_string();
        assert!(
            e.contains("holds 2 store key(s)") && e.contains("seen 3"),
            "{e}"
        );
        let e = pin
            .check(&StoreKeys::new(StoreKey::generate()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not the one this machine joined"), "{e}");
        // A store made anew here starts counting again.
        pin.reset(&one).unwrap();
        pin.check(&one).unwrap();
        assert!(pin.check(&three).is_ok());
    }

    #[test]
    fn a_pin_from_before_counts_were_kept_counts_one() {
        let dir = tempfile::tempdir().unwrap();
        let one = StoreKeys::new(StoreKey::generate());
        std::fs::write(dir.path().join("store-key.pin"), one.fingerprint() + "\n").unwrap();
        let pin = KeyPin::new(dir.path());
        pin.check(&one).unwrap();
        pin.check(&one.rotated().unwrap()).unwrap();
        assert!(pin.check(&one).is_err());
    }
}
