//! Deterministic authenticated encryption of one piece: a file's bytes, a name in a tree, a
//! commit. The same plaintext under the same key always seals to the same bytes, so an object
//! that did not change keeps its sealed object, and a commit sealed again on another day is the
//! same commit: pushes stay O(bytes changed) and nothing is force-pushed for nothing.
//!
//! Each piece is XChaCha20-Poly1305 with a synthetic nonce: the first 24 bytes of
//! HMAC-SHA256(nonce key, kind ‖ plaintext). The kind (`blob`, `name`, `commit`) is also the
//! associated data, so a sealed piece of one kind never opens as another. Equal plaintexts give
//! equal ciphertexts, and nothing else about them shows (see `doc/ENCRYPTION.md`).

use super::{CryptError, Generation, Keys};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Nonce bytes.
const NONCE: usize = 24;
/// Tag bytes.
const TAG: usize = 16;

/// What a piece is, bound into its nonce and its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A file's bytes, or any blob of a tree.
    Blob,
    /// One entry name of a tree.
    Name,
    /// A whole commit object, as git hashes it.
    Commit,
}

impl Kind {
    /// This kind's keys in generation `g`.
    fn keys(self, g: &Generation) -> &PieceKeys {
        match self {
            Kind::Blob => &g.blob,
            Kind::Name => &g.name,
            Kind::Commit => &g.commit,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Kind::Blob => b"blob",
            Kind::Name => b"name",
            Kind::Commit => b"commit",
        }
    }
}

/// The two keys of one kind: one for the cipher, one for the synthetic nonce.
#[derive(Clone)]
pub struct PieceKeys {
    pub(super) cipher: [u8; 32],
    pub(super) nonce: [u8; 32],
}

/// Seals `plain` with the newest key: its generation, the nonce, ciphertext and tag.
pub fn seal(keys: &Keys, kind: Kind, plain: &[u8]) -> Vec<u8> {
    let (generation, g) = keys.current();
    let keys = kind.keys(g);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.nonce).expect("any key length");
    mac.update(kind.label());
    mac.update(plain);
    let tag = mac.finalize().into_bytes();
    let nonce = XNonce::from_slice(&tag[..NONCE]);
    let cipher = XChaCha20Poly1305::new((&keys.cipher).into());
    let sealed = cipher
        .encrypt(
            nonce,
            Payload {
                msg: plain,
                aad: kind.label(),
            },
        )
        .expect("XChaCha20-Poly1305 seals any length that fits in memory");
    let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
    out.push(generation);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] made with a key of `keys` and the same kind; any other bytes are an
/// error.
pub fn open(keys: &Keys, kind: Kind, sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
    if sealed.len() < 1 + NONCE + TAG {
        return Err(CryptError::Damaged(format!(
            "a sealed {} of {} bytes is too short",
            kind_word(kind),
            sealed.len()
        )));
    }
    let Some(g) = keys.generation(sealed[0]) else {
        return Err(CryptError::Damaged(format!(
            "a sealed {} of key generation {}, which this machine does not have (a machine removed from the store, or a newer key: `ferry init --remote URL` fetches the keyring again)",
            kind_word(kind),
            sealed[0]
        )));
    };
    let keys = kind.keys(g);
    let nonce = XNonce::from_slice(&sealed[1..1 + NONCE]);
    let cipher = XChaCha20Poly1305::new((&keys.cipher).into());
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &sealed[1 + NONCE..],
                aad: kind.label(),
            },
        )
        .map_err(|_| {
            CryptError::Damaged(format!(
                "a sealed {} does not open with this store's key (damaged, or sealed with another key)",
                kind_word(kind)
            ))
        })
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Blob => "file",
        Kind::Name => "name",
        Kind::Commit => "commit",
    }
}

/// The most a sealed file may inflate to: a damaged or hostile piece cannot fill the memory.
const MAX_FILE: u64 = 2 << 30;

/// Seals a file's bytes: zlib-compressed first (RFC 1950, at level 6), since sealed bytes no
/// longer compress, and a remote of them would be several times the size of a plain one.
pub fn seal_file(keys: &Keys, plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(plain.len() / 3 + 64),
        flate2::Compression::new(6),
    );
    z.write_all(plain).expect("writing to memory");
    seal(keys, Kind::Blob, &z.finish().expect("writing to memory"))
}

/// The file's bytes [`seal_file`] sealed.
pub fn open_file(keys: &Keys, sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
    open_file_deflated(keys, sealed).map(|(_, plain)| plain)
}

/// The zlib stream [`seal_file`] sealed, and the file's bytes it inflates to: the stream is
/// what a pack entry of the file holds, so it is written as it is. It must end where the sealed
/// bytes do (a valid pack entry), and inflate to at most 2 GiB.
pub fn open_file_deflated(keys: &Keys, sealed: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptError> {
    let deflated = open(keys, Kind::Blob, sealed)?;
    let damaged = |what: String| CryptError::Damaged(format!("a sealed file {what}"));
    let mut z = flate2::Decompress::new(true);
    let mut out = Vec::with_capacity(deflated.len().saturating_mul(4).min(1 << 20) + 64);
    loop {
        let before = (z.total_in(), z.total_out());
        let input = &deflated[z.total_in() as usize..];
        let status = z
            .decompress_vec(input, &mut out, flate2::FlushDecompress::None)
            .map_err(|e| damaged(format!("does not inflate: {e}")))?;
        if z.total_out() > MAX_FILE {
            return Err(damaged("inflates past 2 GiB".into()));
        }
        if status == flate2::Status::StreamEnd {
            break;
        }
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        } else if (z.total_in(), z.total_out()) == before {
            return Err(damaged("ends before its stream does".into()));
        }
    }
    if z.total_in() as usize != deflated.len() {
        return Err(damaged("holds bytes after its stream".into()));
    }
    Ok((deflated, out))
}

/// The lowercase base32 alphabet of RFC 4648: names git, every filesystem and every host take.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A sealed name as a tree entry name: lowercase base32, no padding.
pub fn seal_name(keys: &Keys, name: &str) -> String {
    base32(&seal(keys, Kind::Name, name.as_bytes()))
}

/// The name [`seal_name`] sealed.
pub fn open_name(keys: &Keys, sealed: &str) -> Result<String, CryptError> {
    let bytes = unbase32(sealed)
        .ok_or_else(|| CryptError::Damaged(format!("{sealed:?} is not a sealed name")))?;
    String::from_utf8(open(keys, Kind::Name, &bytes)?)
        .map_err(|_| CryptError::Damaged("a sealed name is not UTF-8".into()))
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE32.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // What is left must be the zero padding of the last character, never a whole byte.
    (bits < 5 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(seed: u8) -> PieceKeys {
        PieceKeys {
            cipher: [seed; 32],
            nonce: [seed.wrapping_add(1); 32],
        }
    }

    fn generation(seed: u8) -> Generation {
        Generation {
            blob: pair(seed),
            name: pair(seed.wrapping_add(2)),
            commit: pair(seed.wrapping_add(4)),
        }
    }

    fn keys(seed: u8) -> Keys {
        Keys {
            gens: vec![generation(seed)],
        }
    }

    #[test]
    fn the_same_bytes_seal_the_same_way_and_open_again() {
        let k = keys(7);
        let a = seal(&k, Kind::Blob, b"{\"cwd\":\"/home/ana/src/acme\"}\n");
        assert_eq!(
            a,
            seal(&k, Kind::Blob, b"{\"cwd\":\"/home/ana/src/acme\"}\n")
        );
        assert_ne!(
            a,
            seal(&k, Kind::Blob, b"{\"cwd\":\"/home/ana/src/acmf\"}\n")
        );
        assert!(!a.windows(4).any(|w| w == b"acme"));
        assert_eq!(
            open(&k, Kind::Blob, &a).unwrap(),
            b"{\"cwd\":\"/home/ana/src/acme\"}\n"
        );
    }

    #[test]
    fn a_piece_opens_only_with_its_key_and_as_its_kind() {
        let sealed = seal(&keys(1), Kind::Blob, b"secret");
        assert!(open(&keys(2), Kind::Blob, &sealed).is_err());
        assert!(open(&keys(1), Kind::Name, &sealed).is_err());
        // The same bytes sealed as another kind differ: a name never stands for a blob.
        assert_ne!(sealed, seal(&keys(1), Kind::Name, b"secret"));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&keys(1), Kind::Blob, &flipped).is_err());
        let mut version = sealed.clone();
        version[0] = 9;
        let e = open(&keys(1), Kind::Blob, &version)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key generation 9"), "{e}");
        assert!(open(&keys(1), Kind::Blob, &sealed[..20]).is_err());
    }

    #[test]
    fn names_are_lowercase_base32_and_open_again() {
        let k = keys(3);
        let s = seal_name(&k, "f.0b5c7a1e-acme-session.jsonl");
        assert!(s.bytes().all(|c| BASE32.contains(&c)), "{s}");
        assert!(!s.contains("acme"));
        assert_eq!(open_name(&k, &s).unwrap(), "f.0b5c7a1e-acme-session.jsonl");
        assert!(open_name(&k, "not-base32!").is_err());
        assert!(open_name(&k, &s[..s.len() - 1]).is_err());
    }

    #[test]
    fn files_are_compressed_before_sealing_and_open_to_their_bytes() {
        let k = keys(4);
        let text = "{\"cwd\":\"/home/ana/src/acme\",\"n\":1}\n".repeat(2000);
        let sealed = seal_file(&k, text.as_bytes());
        assert!(sealed.len() < text.len() / 10, "{} bytes", sealed.len());
        assert_eq!(open_file(&k, &sealed).unwrap(), text.as_bytes());
        assert_eq!(sealed, seal_file(&k, text.as_bytes()), "deterministic");
        // Sealed but not deflated: refused, not taken as it is.
        let raw = seal(&k, Kind::Blob, b"not zlib");
        assert!(open_file(&k, &raw).is_err());
    }

    #[test]
    fn a_file_opens_to_its_stream_as_sealed_which_must_be_whole() {
        use std::io::Write;
        let k = keys(5);
        let text = "{\"cwd\":\"/home/ana/src/acme\",\"n\":2}\n".repeat(3000);
        let sealed = seal_file(&k, text.as_bytes());
        let (zlib, plain) = open_file_deflated(&k, &sealed).unwrap();
        assert_eq!(plain, text.as_bytes());
        assert_eq!(
            seal(&k, Kind::Blob, &zlib),
            sealed,
            "the very stream sealed"
        );
        let stream = |bytes: &[u8]| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            z.write_all(bytes).unwrap();
            z.finish().unwrap()
        };
        // Bytes after the stream would sit in a pack between two entries: refused.
        let mut trailing = stream(b"a line\n");
        trailing.extend_from_slice(b"more");
        let err = open_file_deflated(&k, &seal(&k, Kind::Blob, &trailing)).unwrap_err();
        assert!(err.to_string().contains("after its stream"), "{err}");
        // A stream cut short: refused.
        let whole = stream(text.as_bytes());
        let cut = &whole[..whole.len() / 2];
        let err = open_file_deflated(&k, &seal(&k, Kind::Blob, cut)).unwrap_err();
        assert!(err.to_string().contains("ends before"), "{err}");
        // An empty file's stream.
        let (_, empty) = open_file_deflated(&k, &seal_file(&k, b"")).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn each_piece_opens_with_the_generation_that_sealed_it() {
        let old = keys(1);
        let both = Keys {
            gens: vec![generation(1), generation(9)],
        };
        let before = seal(&old, Kind::Blob, b"written before the rotation");
        let after = seal(&both, Kind::Blob, b"written after it");
        assert_eq!((before[0], after[0]), (1, 2));
        assert_eq!(
            open(&both, Kind::Blob, &before).unwrap(),
            b"written before the rotation"
        );
        assert_eq!(
            open(&both, Kind::Blob, &after).unwrap(),
            b"written after it"
        );
        let e = open(&old, Kind::Blob, &after).unwrap_err().to_string();
        assert!(e.contains("key generation 2"), "{e}");
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(unbase32(&base32(&bytes)), Some(bytes));
        }

        #[test]
        fn any_name_round_trips(name in "\\PC{1,60}") {
            let k = keys(5);
            prop_assert_eq!(open_name(&k, &seal_name(&k, &name)).unwrap(), name);
        }
    }
}
