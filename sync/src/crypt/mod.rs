//! End-to-end encryption of the store (issue 23): the remote holds only sealed objects, and learns
//! nothing but sizes, times and the shape of the trees. `doc/ENCRYPTION.md` is the format.
//!
//! The store on this machine stays plain: it holds nothing the machine's own disk does not. Sealing
//! happens at the edge, between a machine branch and the remote ([`translate`]): each plain object
//! has exactly one sealed twin, made deterministically ([`seal`]), so an unchanged chunk keeps its
//! sealed object and a re-sealed commit is the same commit. One random store key seals everything;
//! it reaches each machine wrapped with age for that machine's X25519 identity, or for a
//! passphrase ([`keyring`]).
//!
//! - [`seal`]: one piece (a file, a name, a commit) sealed and opened.
//! - [`keyring`]: this machine's identity, and the store key wrapped for the machines that share it.
//! - [`pin`]: the first key and the key count this machine has seen, so a remote cannot take them back.
//! - [`fresh`]: a fetched branch must hold the newest state of it this machine has seen.
//! - [`translate`]: plain commits and trees to sealed ones and back.
//! - [`sealing`]: the engine's side: this machine's branch sealed to push, fetched ones opened.

pub mod fresh;
pub mod keyring;
pub mod pin;
pub mod seal;
pub mod sealing;
pub mod translate;

use hkdf::Hkdf;
use seal::PieceKeys;
use sha2::Sha256;

/// What went wrong sealing or opening.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    /// Sealed bytes that do not open: damaged, forged, or sealed with another key.
    #[error("{0}")]
    Damaged(String),
    /// No identity this machine has opens the store key.
    #[error(
        "this machine has no key to the encrypted store: on a machine that has one, run `ferry key add {recipient}`, or join with the store's passphrase (`ferry encrypt --passphrase-file FILE`)"
    )]
    NoKey {
        /// This machine's recipient, to be added.
        recipient: String,
    },
    /// A keyring with fewer keys than this machine has seen: one from before a
    /// `ferry key remove`, served again by the remote.
    #[error(
        "the remote's keyring holds {has} store key(s), and this machine has seen {seen}: refusing it, as a keyring from before a `ferry key remove`, served again by the remote, would be (sealing with it would use a key the removed machine has). Nothing is sealed with it; this machine goes on with the keys it has, and takes the remote's keyring again once it holds every key"
    )]
    Older {
        /// The keys the keyring holds.
        has: usize,
        /// The keys this machine has seen.
        seen: usize,
    },
    /// A keyring that holds another key in place of one this machine has seen: made by someone
    /// who holds only the older keys (a removed machine).
    #[error(
        "the remote's keyring replaces store key {at} of those this machine has seen: refusing it, as a keyring made by someone who holds only the older keys (a removed machine) would be. Nothing is sealed with it; this machine goes on with the keys it has"
    )]
    Replaced {
        /// Which key (1 for the first).
        at: usize,
    },
    /// An identity, recipient or passphrase file that cannot be used.
    #[error("{0}")]
    Key(String),
    /// git failed reading or writing an object.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The store failed writing what was sealed or opened.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// A local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The store's one secret: 32 random bytes, from which every sealing key is derived.
#[derive(Clone)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// A new random key, for a store being encrypted.
    pub fn generate() -> StoreKey {
        use chacha20poly1305::aead::{KeyInit, OsRng};
        let key = chacha20poly1305::XChaCha20Poly1305::generate_key(&mut OsRng);
        StoreKey(key.into())
    }

    /// The key from its 32 bytes (as unwrapped from the keyring).
    pub fn from_bytes(bytes: &[u8]) -> Option<StoreKey> {
        Some(StoreKey(bytes.try_into().ok()?))
    }

    /// Its 32 bytes, to be wrapped.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The keys of each kind of piece, derived with HKDF-SHA256: a store with this one key.
    pub fn keys(&self) -> Keys {
        Keys {
            gens: vec![self.generation()],
        }
    }

    /// This key's derived keys, one pair per kind of piece.
    fn generation(&self) -> Generation {
        let hk = Hkdf::<Sha256>::new(Some(b"ferry store v1"), &self.0);
        let derive = |info: &str| {
            let mut out = [0u8; 32];
            hk.expand(info.as_bytes(), &mut out)
                .expect("32 bytes is a valid HKDF-SHA256 length");
            out
        };
        let piece = |kind: &str| PieceKeys {
            cipher: derive(&format!("{kind} cipher")),
            nonce: derive(&format!("{kind} nonce")),
        };
        Generation {
            blob: piece("blob"),
            name: piece("name"),
            commit: piece("commit"),
        }
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

/// Every store key the store has had, oldest first. The newest seals; each opens what it
/// sealed. A new one is added when a machine is removed (`ferry key remove`), so that what is
/// written from then on is out of that machine's reach.
#[derive(Clone, Debug)]
pub struct StoreKeys(Vec<StoreKey>);

/// The first 16 bytes of SHA-256 of `ferry store fingerprint` and the key, in hex.
fn key_fingerprint(key: &StoreKey) -> String {
    use sha2::Digest;
    let digest = Sha256::digest([&b"ferry store fingerprint"[..], key.bytes()].concat());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Most store keys a store may have (the generation is one byte).
pub const MAX_GENERATIONS: usize = 255;

impl StoreKeys {
    /// A store's first key.
    pub fn new(first: StoreKey) -> StoreKeys {
        StoreKeys(vec![first])
    }

    /// The keys from their bytes as the keyring wraps them: 32 per key, oldest first.
    pub fn from_bytes(bytes: &[u8]) -> Option<StoreKeys> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(32) || bytes.len() / 32 > MAX_GENERATIONS
        {
            return None;
        }
        Some(StoreKeys(
            bytes
                .chunks(32)
                .map(|c| StoreKey::from_bytes(c).expect("32 bytes"))
                .collect(),
        ))
    }

    /// Their bytes, to be wrapped.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|k| *k.bytes()).collect()
    }

    /// These keys and a new one, which seals from now on.
    pub fn rotated(&self) -> Option<StoreKeys> {
        if self.0.len() >= MAX_GENERATIONS {
            return None;
        }
        let mut keys = self.0.clone();
        keys.push(StoreKey::generate());
        Some(StoreKeys(keys))
    }

    /// How many keys: the newest one's generation.
    pub fn generations(&self) -> usize {
        self.0.len()
    }

    /// The first key's fingerprint: the same for every keyring a store ever has, and what a
    /// machine keeps to refuse a keyring swapped by someone without the key.
    pub fn fingerprint(&self) -> String {
        key_fingerprint(&self.0[0])
    }

    /// Every key's fingerprint, oldest first: what a machine keeps to refuse a keyring that
    /// drops or replaces a key it has seen.
    pub fn fingerprints(&self) -> Vec<String> {
        self.0.iter().map(key_fingerprint).collect()
    }

    /// An HMAC-SHA256 of `data` under a key derived from the newest key: only a holder of the
    /// keys can make it.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let hk = Hkdf::<Sha256>::new(Some(b"ferry store v1"), self.0[self.0.len() - 1].bytes());
        let mut key = [0u8; 32];
        hk.expand(b"keyring mac", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let mut mac =
            <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `other` holds every key these hold, in order (and maybe newer ones).
    pub fn extended_by(&self, other: &StoreKeys) -> bool {
        other.0.len() >= self.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.bytes() == b.bytes())
    }

    /// The derived keys of every generation.
    pub fn keys(&self) -> Keys {
        Keys {
            gens: self.0.iter().map(StoreKey::generation).collect(),
        }
    }
}

/// One store key's derived keys, one pair per kind of piece.
#[derive(Clone)]
pub struct Generation {
    /// Files' bytes.
    pub blob: PieceKeys,
    /// Names in trees.
    pub name: PieceKeys,
    /// Commits.
    pub commit: PieceKeys,
}

/// The derived keys of every generation: the newest seals, and a sealed piece's first byte
/// says which one opens it.
#[derive(Clone)]
pub struct Keys {
    gens: Vec<Generation>,
}

impl Keys {
    /// The generation that seals now (counted from 1) and its keys.
    pub fn current(&self) -> (u8, &Generation) {
        let g = self.gens.last().expect("a store has a key");
        (self.gens.len() as u8, g)
    }

    /// Generation `g`'s keys (counted from 1), if this machine has them.
    pub fn generation(&self, g: u8) -> Option<&Generation> {
        self.gens.get(usize::from(g).checked_sub(1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_gets_its_own_keys_and_each_store_its_own() {
        let a = StoreKey::generate();
        let b = StoreKey::generate();
        assert_ne!(a.bytes(), b.bytes());
        let keys = a.keys();
        let (g, k) = keys.current();
        assert_eq!(g, 1);
        assert_ne!(k.blob.cipher, k.name.cipher);
        assert_ne!(k.blob.cipher, k.blob.nonce);
        assert_ne!(k.commit.nonce, k.name.nonce);
        assert_eq!(
            StoreKey::from_bytes(a.bytes())
                .unwrap()
                .keys()
                .current()
                .1
                .blob
                .cipher,
            k.blob.cipher
        );
        assert!(StoreKey::from_bytes(&[0; 31]).is_none());
        assert_eq!(format!("{a:?}"), "StoreKey(..)");
    }
}

#[cfg(test)]
mod generations {
    use super::*;

    #[test]
    fn a_rotation_adds_a_key_that_seals_and_keeps_the_old_ones_for_opening() {
        let first = StoreKeys::new(StoreKey::generate());
        let second = first.rotated().unwrap();
        assert_eq!(second.generations(), 2);
        let back = StoreKeys::from_bytes(&second.to_bytes()).unwrap();
        assert_eq!(back.to_bytes(), second.to_bytes());
        let second_keys = second.keys();
        let (g, newest) = second_keys.current();
        assert_eq!(g, 2);
        let old = second.keys();
        let old = old.generation(1).unwrap();
        assert_eq!(
            old.blob.cipher,
            first.keys().current().1.blob.cipher,
            "generation 1 is the first key"
        );
        assert_ne!(newest.blob.cipher, old.blob.cipher);
        assert!(second.keys().generation(3).is_none());
        assert!(second.keys().generation(0).is_none());
        assert!(StoreKeys::from_bytes(&[0; 33]).is_none());
        assert!(StoreKeys::from_bytes(&[]).is_none());
    }
}
