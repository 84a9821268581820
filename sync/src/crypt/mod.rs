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
//! - [`translate`]: plain commits and trees to sealed ones and back.
//! - [`sealing`]: the engine's side: this machine's branch sealed to push, fetched ones opened.

pub mod keyring;
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
        "this machine has no key to the encrypted store: on a machine that has one, run `ferry key add {recipient}`, or join with the store's passphrase"
    )]
    NoKey {
        /// This machine's recipient, to be added.
        recipient: String,
    },
    /// An identity, recipient or passphrase file that cannot be used.
    #[error("{0}")]
    Key(String),
    /// git failed reading or writing an object.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
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

    /// The keys of each kind of piece, derived with HKDF-SHA256.
    pub fn keys(&self) -> Keys {
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
        Keys {
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

/// The derived keys, one pair per kind of piece.
#[derive(Clone)]
pub struct Keys {
    /// Files' bytes.
    pub blob: PieceKeys,
    /// Names in trees.
    pub name: PieceKeys,
    /// Commits.
    pub commit: PieceKeys,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_gets_its_own_keys_and_each_store_its_own() {
        let a = StoreKey::generate();
        let b = StoreKey::generate();
        assert_ne!(a.bytes(), b.bytes());
        let k = a.keys();
        assert_ne!(k.blob.cipher, k.name.cipher);
        assert_ne!(k.blob.cipher, k.blob.nonce);
        assert_ne!(k.commit.nonce, k.name.nonce);
        assert_eq!(
            StoreKey::from_bytes(a.bytes()).unwrap().keys().blob.cipher,
            k.blob.cipher
        );
        assert!(StoreKey::from_bytes(&[0; 31]).is_none());
        assert_eq!(format!("{a:?}"), "StoreKey(..)");
    }
}
