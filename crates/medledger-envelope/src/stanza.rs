//! Recipient stanzas: a data key wrapped to one X25519 public key.
//!
//! Wrapping (suite 0x01), for recipient public key `R`:
//!
//! ```text
//! e   = 32 bytes from the CSPRNG (X25519 scalar, clamped at use)
//! E   = X25519(e, 9)                              ephemeral public key
//! ss  = X25519(e, R)                              refused if all zero
//! kek = HKDF-SHA256(salt = E ‖ R, ikm = ss,
//!                   info = "medledger-envelope/v1 wrap", L = 32)
//! wrapped = AES-256-GCM(kek, nonce = 0^96, aad = "", dk)   (32 + 16 bytes)
//! stanza  = key_id(R) ‖ E ‖ wrapped                         (96 bytes)
//! ```
//!
//! The all-zero nonce is safe because every `kek` is used exactly once: it
//! depends on a fresh ephemeral key.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, SharedSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::keys::{
    DataKey, KeyId, RecipientPublicKey, RecipientSecretKey, DATA_KEY_LEN, KEY_ID_LEN,
};

/// Length of one encoded stanza.
pub const STANZA_LEN: usize = KEY_ID_LEN + 32 + WRAPPED_LEN;
const WRAPPED_LEN: usize = DATA_KEY_LEN + 16;
const WRAP_INFO: &[u8] = b"medledger-envelope/v1 wrap";

/// One recipient's wrapped copy of the data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stanza {
    pub(crate) key_id: KeyId,
    pub(crate) ephemeral: [u8; 32],
    pub(crate) wrapped: [u8; WRAPPED_LEN],
}

impl Stanza {
    /// Wraps `dk` to `recipient` with a fresh ephemeral key from `rng`.
    /// `index` only labels the error for a low-order recipient key.
    pub(crate) fn wrap(
        dk: &DataKey,
        recipient: &RecipientPublicKey,
        index: usize,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self> {
        let eph_secret = EphemeralSecret::random_from_rng(&mut *rng);
        let ephemeral = PublicKey::from(&eph_secret).to_bytes();
        let shared = eph_secret.diffie_hellman(&PublicKey::from(*recipient.as_bytes()));
        if !shared.was_contributory() {
            return Err(Error::LowOrderKey { index });
        }
        let kek = kek(&shared, &ephemeral, recipient.as_bytes());
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(kek.as_ref()));
        // Encrypted in place in the stanza's own array: the data key is
        // copied only there, and overwritten by its ciphertext.
        let mut wrapped = [0u8; WRAPPED_LEN];
        let (sealed, tag_out) = wrapped.split_at_mut(DATA_KEY_LEN);
        sealed.copy_from_slice(dk.as_bytes());
        match cipher.encrypt_in_place_detached(&Nonce::default(), b"", sealed) {
            Ok(tag) => tag_out.copy_from_slice(&tag),
            Err(_) => {
                wrapped.zeroize();
                return Err(Error::BadHeader {
                    what: "data key wrapping failed",
                });
            }
        }
        Ok(Stanza {
            key_id: recipient.key_id(),
            ephemeral,
            wrapped,
        })
    }

    /// Unwraps the data key with `secret`. `index` labels errors.
    pub(crate) fn unwrap(&self, secret: &RecipientSecretKey, index: usize) -> Result<DataKey> {
        let shared = secret
            .secret()
            .diffie_hellman(&PublicKey::from(self.ephemeral));
        if !shared.was_contributory() {
            return Err(Error::LowOrderKey { index });
        }
        let recipient = secret.public_key();
        let kek = kek(&shared, &self.ephemeral, recipient.as_bytes());
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(kek.as_ref()));
        let (sealed, tag) = self.wrapped.split_at(DATA_KEY_LEN);
        // Decrypted in place inside the key itself, which wipes on drop:
        // the data key never sits in an unwiped buffer, also when the tag
        // fails (aes-gcm checks the tag before decrypting).
        let mut dk = DataKey::from_bytes([0u8; DATA_KEY_LEN]);
        let buffer = dk.as_mut_bytes();
        buffer.copy_from_slice(sealed);
        cipher
            .decrypt_in_place_detached(&Nonce::default(), b"", buffer, Tag::from_slice(tag))
            .map_err(|_| Error::StanzaUnwrapFailed { index })?;
        Ok(dk)
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.wrapped);
    }

    /// Reads one stanza from the front of `bytes`, returning the rest.
    pub(crate) fn decode(bytes: &[u8]) -> Result<(Self, &[u8])> {
        const TRUNCATED: Error = Error::BadHeader {
            what: "recipient stanza truncated",
        };
        let (key_id, rest) = bytes.split_first_chunk::<KEY_ID_LEN>().ok_or(TRUNCATED)?;
        let (ephemeral, rest) = rest.split_first_chunk::<32>().ok_or(TRUNCATED)?;
        let (wrapped, rest) = rest.split_first_chunk::<WRAPPED_LEN>().ok_or(TRUNCATED)?;
        let stanza = Stanza {
            key_id: KeyId(*key_id),
            ephemeral: *ephemeral,
            wrapped: *wrapped,
        };
        Ok((stanza, rest))
    }
}

fn kek(shared: &SharedSecret, ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    let (left, right) = salt.split_at_mut(32);
    left.copy_from_slice(ephemeral);
    right.copy_from_slice(recipient);
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes of output is far below HKDF-SHA256's limit; cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes()).expand(WRAP_INFO, out.as_mut());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn wrap_round_trips_and_binds_the_recipient() {
        let alice = RecipientSecretKey::generate();
        let bob = RecipientSecretKey::generate();
        let dk = DataKey::from_bytes([3; 32]);
        let stanza = Stanza::wrap(&dk, &alice.public_key(), 0, &mut OsRng).unwrap();
        assert_eq!(stanza.key_id, alice.public_key().key_id());
        assert_eq!(stanza.unwrap(&alice, 0).unwrap().as_bytes(), &[3; 32]);
        assert!(matches!(
            stanza.unwrap(&bob, 4),
            Err(Error::StanzaUnwrapFailed { index: 4 })
        ));

        let mut encoded = Vec::new();
        stanza.encode_into(&mut encoded);
        assert_eq!(encoded.len(), STANZA_LEN);
        let (decoded, rest) = Stanza::decode(&encoded).unwrap();
        assert_eq!(decoded, stanza);
        assert!(rest.is_empty());
        assert!(Stanza::decode(&encoded[..STANZA_LEN - 1]).is_err());
    }

    /// Any changed bit of the wrapped key or its tag fails to unwrap; the
    /// untouched stanza still unwraps to the exact key.
    #[test]
    fn tampered_wrapped_keys_fail_to_unwrap() {
        let alice = RecipientSecretKey::generate();
        let dk = DataKey::from_bytes([9; 32]);
        let stanza = Stanza::wrap(&dk, &alice.public_key(), 0, &mut OsRng).unwrap();
        for bit in 0..WRAPPED_LEN * 8 {
            let mut bad = stanza.clone();
            bad.wrapped[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(
                bad.unwrap(&alice, 1),
                Err(Error::StanzaUnwrapFailed { index: 1 })
            ));
        }
        assert_eq!(stanza.unwrap(&alice, 0).unwrap().as_bytes(), &[9; 32]);
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let alice = RecipientSecretKey::generate();
        let dk = DataKey::from_bytes([3; 32]);
        let mut stanza = Stanza::wrap(&dk, &alice.public_key(), 0, &mut OsRng).unwrap();
        stanza.ephemeral = [0; 32];
        assert!(matches!(
            stanza.unwrap(&alice, 2),
            Err(Error::LowOrderKey { index: 2 })
        ));
    }
}
