//! Key types: the per-record data key, recipient key pairs and key ids, and
//! the subkeys derived from a data key.
//!
//! Key schedule (suite 0x01). The data key `dk` is 32 bytes from a CSPRNG,
//! so it is used directly as the HKDF-SHA256 pseudorandom key (RFC 5869
//! §3.3: the extract step may be skipped for uniformly random input) and
//! every subkey is `HKDF-Expand(dk, label, 32)` with a distinct label:
//!
//! | label                                      | use                          |
//! |--------------------------------------------|------------------------------|
//! | `medledger-envelope/v1 commit`             | key commitment (in header)   |
//! | `medledger-envelope/v1 body`               | AES-256-GCM key of the body  |
//! | `medledger-envelope/v1 header`             | HMAC-SHA256 key, header MAC  |
//! | `medledger-envelope/v1 context` ‖ digest   | context tag (in header)      |
//!
//! The data key itself never keys a cipher.

use std::fmt;

use hkdf::Hkdf;
use rand_core::{CryptoRng, OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::context::ContextDigest;

/// Length of a data key in bytes.
pub const DATA_KEY_LEN: usize = 32;
/// Length of a key id in bytes.
pub const KEY_ID_LEN: usize = 16;
/// Length of the key commitment stored in the header.
pub const COMMITMENT_LEN: usize = 32;

pub(crate) const LABEL_COMMIT: &[u8] = b"medledger-envelope/v1 commit";
pub(crate) const LABEL_BODY: &[u8] = b"medledger-envelope/v1 body";
pub(crate) const LABEL_HEADER: &[u8] = b"medledger-envelope/v1 header";
pub(crate) const LABEL_CONTEXT: &[u8] = b"medledger-envelope/v1 context";
const LABEL_KEY_ID: &[u8] = b"medledger-envelope/v1 key id";

/// A record version's 256-bit data key.
///
/// Drawn fresh from the OS CSPRNG for every sealed record version; never
/// printed (its `Debug` is redacted), never cloned, wiped on drop. Callers
/// obtain one only by unwrapping a header they are a recipient of, to rewrap
/// it to other recipients.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// Draws a fresh data key from the OS CSPRNG.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut OsRng)
    }

    /// Draws a data key from `rng`. Production code uses [`DataKey::generate`];
    /// this exists so tests can produce deterministic vectors.
    pub fn generate_with_rng(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut key = DataKey([0u8; DATA_KEY_LEN]);
        rng.fill_bytes(&mut key.0);
        key
    }

    pub(crate) fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKey(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }

    /// The key's own storage, so a key can be decrypted into it in place.
    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; DATA_KEY_LEN] {
        &mut self.0
    }

    /// `HKDF-Expand(dk, info_parts…, 32)`.
    pub(crate) fn derive(&self, info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        // A 32-byte PRK is exactly SHA-256's output length, and 32 bytes of
        // output are far below HKDF's 255 * 32 limit: neither call can fail.
        if let Ok(hkdf) = Hkdf::<Sha256>::from_prk(&self.0) {
            let _ = hkdf.expand_multi_info(info, out.as_mut());
        }
        out
    }

    /// The key commitment this data key produces; the header stores it.
    pub fn commitment(&self) -> KeyCommitment {
        KeyCommitment(*self.derive(&[LABEL_COMMIT]))
    }

    /// The tag binding `context` to this data key; the header stores it.
    pub(crate) fn context_tag(&self, context: &ContextDigest) -> [u8; 32] {
        *self.derive(&[LABEL_CONTEXT, context.as_bytes()])
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The header's commitment to a data key: `HKDF-Expand(dk, "medledger-envelope/v1 commit", 32)`.
///
/// Finding two data keys with the same commitment means finding an
/// HMAC-SHA256 collision over keys, so a header can be opened under only one
/// data key. Compared in constant time.
#[derive(Clone, Copy)]
pub struct KeyCommitment(pub(crate) [u8; COMMITMENT_LEN]);

impl KeyCommitment {
    /// The 32 commitment bytes (public: they are stored in the header).
    pub fn as_bytes(&self) -> &[u8; COMMITMENT_LEN] {
        &self.0
    }
}

impl ConstantTimeEq for KeyCommitment {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for KeyCommitment {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for KeyCommitment {}

impl fmt::Debug for KeyCommitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCommitment({})", hex(&self.0))
    }
}

/// A recipient's X25519 secret key. Wiped on drop; `Debug` prints only the
/// key id of its public half; no `Clone`.
pub struct RecipientSecretKey(StaticSecret);

impl RecipientSecretKey {
    /// Generates a key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut OsRng)
    }

    /// Generates a key pair from `rng` (deterministic tests only).
    pub fn generate_with_rng(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        RecipientSecretKey(StaticSecret::random_from_rng(rng))
    }

    /// Restores a secret key from its 32 bytes (clamped at use, RFC 7748 §5).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecipientSecretKey(StaticSecret::from(bytes))
    }

    /// The secret key's 32 bytes, in a buffer wiped on drop, for storage in
    /// a key store.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(self.0.as_bytes());
        out
    }

    /// The public key to wrap data keys to.
    pub fn public_key(&self) -> RecipientPublicKey {
        RecipientPublicKey(PublicKey::from(&self.0).to_bytes())
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.0
    }
}

impl fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecipientSecretKey(<redacted>, {:?})",
            self.public_key().key_id()
        )
    }
}

/// A recipient's X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecipientPublicKey([u8; 32]);

impl RecipientPublicKey {
    /// Wraps 32 public-key bytes (RFC 7748 u-coordinate).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RecipientPublicKey(bytes)
    }

    /// The 32 public-key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key id stanzas carry so a reader finds its own quickly:
    /// the first 16 bytes of `SHA-256("medledger-envelope/v1 key id" ‖ pk)`.
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::new()
            .chain_update(LABEL_KEY_ID)
            .chain_update(self.0)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        for (dst, src) in id.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        KeyId(id)
    }
}

impl fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientPublicKey({})", hex(&self.0))
    }
}

/// A recipient's key id (public; a hint, not a secret).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub(crate) [u8; KEY_ID_LEN]);

impl KeyId {
    /// The 16 id bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", hex(&self.0))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_are_distinct_and_deterministic() {
        let dk = DataKey::from_bytes([7u8; 32]);
        let commit = dk.derive(&[LABEL_COMMIT]);
        let body = dk.derive(&[LABEL_BODY]);
        let header = dk.derive(&[LABEL_HEADER]);
        assert_ne!(*commit, *body);
        assert_ne!(*body, *header);
        assert_ne!(&commit[..], dk.as_bytes());
        assert_eq!(*dk.derive(&[LABEL_BODY]), *body);
        assert_eq!(dk.commitment().as_bytes(), &*commit);
    }

    #[test]
    fn debug_prints_no_secret() {
        let dk = DataKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{dk:?}"), "DataKey(<redacted>)");
        let sk = RecipientSecretKey::from_bytes([0xcd; 32]);
        let printed = format!("{sk:?}");
        assert!(!printed.contains("cdcd"), "{printed}");
        assert!(printed.starts_with("RecipientSecretKey(<redacted>"));
    }

    #[test]
    fn commitments_differ_per_key_and_compare_by_value() {
        let a = DataKey::from_bytes([1; 32]).commitment();
        let b = DataKey::from_bytes([2; 32]).commitment();
        assert_ne!(a, b);
        assert_eq!(a, DataKey::from_bytes([1; 32]).commitment());
    }

    #[test]
    fn key_id_is_a_prefix_of_the_labelled_hash() {
        let pk = RecipientPublicKey::from_bytes([9; 32]);
        let full = Sha256::new()
            .chain_update(LABEL_KEY_ID)
            .chain_update([9u8; 32])
            .finalize();
        assert_eq!(&pk.key_id().as_bytes()[..], &full[..16]);
    }
}
