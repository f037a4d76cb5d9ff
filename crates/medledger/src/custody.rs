//! Key custody: the ledger's own secrets, sealed under a key the embedding
//! application supplies.
//!
//! The ledger holds three 32-byte secrets: the Ed25519 seed of its
//! checkpoint signing key, the pseudonym key of patient partition keys, and
//! the key-encryption key (KEK) that seals each record's custody key. They
//! are stored only in this sealed form (state table `ledger`, key
//! `secrets`):
//!
//! ```text
//! "MLKS" ‖ version (1) ‖ kdf (0 = raw key, 1 = Argon2id) ‖ salt (16)
//!        ‖ nonce (12) ‖ AES-256-GCM(signing ‖ pseudonym ‖ kek) (96 + 16 tag)
//! AAD = "medledger/v1 sealed secrets\n" ‖ the 34-byte prefix ‖ origin
//! ```
//!
//! The sealing key is the application's 32 bytes, or Argon2id (argon2 crate
//! defaults: m = 19 MiB, t = 2, p = 1) over a passphrase and the salt. A
//! wrong key fails the GCM tag: [`crate::Error::WrongLedgerKey`].

use core::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Op, Result};

const MAGIC: &[u8; 4] = b"MLKS";
const VERSION: u8 = 1;
const KDF_RAW: u8 = 0;
const KDF_ARGON2ID: u8 = 1;
const PREFIX_LEN: usize = 4 + 1 + 1 + 16 + 12;
const SECRETS_LEN: usize = 96;
/// Length of the sealed secrets.
pub(crate) const SEALED_LEN: usize = PREFIX_LEN + SECRETS_LEN + 16;
const AAD_LABEL: &[u8] = b"medledger/v1 sealed secrets\n";
const RECORD_KEY_LABEL: &[u8] = b"medledger/v1 record custody key\n";
/// Length of a sealed record custody key: nonce ‖ ciphertext ‖ tag.
pub(crate) const SEALED_RECORD_KEY_LEN: usize = 12 + 32 + 16;

/// The key that seals the ledger's secrets: 32 bytes from the
/// application's KMS or HSM, or a passphrase stretched with Argon2id.
/// Zeroized on drop; `Debug` prints nothing secret.
#[derive(Zeroize, ZeroizeOnDrop)]
pub enum LedgerKey {
    /// A 32-byte key.
    Raw([u8; 32]),
    /// A passphrase (Argon2id with a per-ledger salt).
    Passphrase(String),
}

impl fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerKey::Raw(_) => f.write_str("LedgerKey::Raw(<redacted>)"),
            LedgerKey::Passphrase(_) => f.write_str("LedgerKey::Passphrase(<redacted>)"),
        }
    }
}

impl LedgerKey {
    /// A raw 32-byte key (the caller should zeroize its copy).
    pub fn from_bytes(key: [u8; 32]) -> Self {
        LedgerKey::Raw(key)
    }

    /// A passphrase.
    pub fn from_passphrase(passphrase: &str) -> Self {
        LedgerKey::Passphrase(passphrase.to_owned())
    }

    fn kdf(&self) -> u8 {
        match self {
            LedgerKey::Raw(_) => KDF_RAW,
            LedgerKey::Passphrase(_) => KDF_ARGON2ID,
        }
    }

    fn derive(&self, salt: &[u8; 16], op: Op) -> Result<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new([0u8; 32]);
        match self {
            LedgerKey::Raw(k) => out.copy_from_slice(k),
            LedgerKey::Passphrase(p) => argon2::Argon2::default()
                .hash_password_into(p.as_bytes(), salt, out.as_mut())
                .map_err(|_| Error::InvalidInput {
                    op,
                    what: "passphrase",
                    reason: "Argon2id refused it (empty or too long)",
                })?,
        }
        Ok(out)
    }
}

/// The ledger's secrets in clear, in memory only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secrets {
    pub(crate) signing: [u8; 32],
    pub(crate) pseudonym: [u8; 32],
    pub(crate) kek: [u8; 32],
}

impl Secrets {
    pub(crate) fn generate() -> Self {
        let mut s = Secrets {
            signing: [0; 32],
            pseudonym: [0; 32],
            kek: [0; 32],
        };
        OsRng.fill_bytes(&mut s.signing);
        OsRng.fill_bytes(&mut s.pseudonym);
        OsRng.fill_bytes(&mut s.kek);
        s
    }

    /// Seals the secrets under `key` for the ledger named `origin`.
    pub(crate) fn seal(&self, key: &LedgerKey, origin: &str) -> Result<Vec<u8>> {
        let mut prefix = Vec::with_capacity(SEALED_LEN);
        prefix.extend_from_slice(MAGIC);
        prefix.push(VERSION);
        prefix.push(key.kdf());
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        prefix.extend_from_slice(&salt);
        prefix.extend_from_slice(&nonce);
        let k = key.derive(&salt, Op::Open)?;
        let mut plain = Zeroizing::new([0u8; SECRETS_LEN]);
        for (dst, src) in
            plain
                .chunks_exact_mut(32)
                .zip([&self.signing, &self.pseudonym, &self.kek])
        {
            dst.copy_from_slice(src);
        }
        let aad = aad(&prefix, origin);
        let ct = Aes256Gcm::new(k.as_ref().into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::InvalidInput {
                op: Op::Open,
                what: "ledger secrets",
                reason: "AES-256-GCM refused to seal them",
            })?;
        prefix.extend_from_slice(&ct);
        Ok(prefix)
    }

    /// Opens sealed secrets; a wrong key is [`Error::WrongLedgerKey`].
    pub(crate) fn unseal(sealed: &[u8], key: &LedgerKey, origin: &str) -> Result<Self> {
        let corrupt = |reason| Error::CorruptState {
            op: Op::Open,
            table: "ledger",
            reason,
        };
        if sealed.len() != SEALED_LEN {
            return Err(corrupt("sealed secrets have the wrong length"));
        }
        let (prefix, ct) = sealed
            .split_at_checked(PREFIX_LEN)
            .ok_or(corrupt("sealed secrets are short"))?;
        let (magic, rest) = prefix.split_at_checked(4).ok_or(corrupt("short"))?;
        if magic != MAGIC {
            return Err(corrupt("sealed secrets have a bad magic"));
        }
        let (head, rest) = rest.split_at_checked(2).ok_or(corrupt("short"))?;
        if head.first() != Some(&VERSION) {
            return Err(corrupt("sealed secrets have an unknown version"));
        }
        match head.get(1) {
            Some(&k) if k == key.kdf() => {}
            Some(&KDF_RAW) | Some(&KDF_ARGON2ID) => {
                return Err(Error::WrongLedgerKey {
                    op: Op::Open,
                    reason:
                        "the ledger was sealed with the other kind of key (raw key vs passphrase)",
                })
            }
            _ => return Err(corrupt("sealed secrets name an unknown KDF")),
        }
        let (salt, nonce) = rest.split_at_checked(16).ok_or(corrupt("short"))?;
        let salt: [u8; 16] = salt.try_into().map_err(|_| corrupt("short salt"))?;
        let k = key.derive(&salt, Op::Open)?;
        let plain = Aes256Gcm::new(k.as_ref().into())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &aad(prefix, origin),
                },
            )
            .map_err(|_| Error::WrongLedgerKey {
                op: Op::Open,
                reason: "authentication failed: wrong key, wrong origin, or altered secrets",
            })?;
        let plain = Zeroizing::new(plain);
        let mut s = Secrets {
            signing: [0; 32],
            pseudonym: [0; 32],
            kek: [0; 32],
        };
        for (dst, src) in [&mut s.signing, &mut s.pseudonym, &mut s.kek]
            .into_iter()
            .zip(plain.chunks_exact(32))
        {
            dst.copy_from_slice(src);
        }
        Ok(s)
    }

    /// Seals a record's custody key under the KEK, bound to the record id.
    pub(crate) fn seal_record_key(&self, record: &str, key: &[u8; 32]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = Aes256Gcm::new((&self.kek).into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: &record_aad(record),
                },
            )
            .map_err(|_| Error::InvalidInput {
                op: Op::Write,
                what: "record key",
                reason: "AES-256-GCM refused to seal it",
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a record's custody key.
    pub(crate) fn open_record_key(
        &self,
        record: &str,
        sealed: &[u8],
        op: Op,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let bad = Error::CorruptState {
            op,
            table: "records",
            reason: "the record's custody key does not open under the ledger KEK",
        };
        if sealed.len() != SEALED_RECORD_KEY_LEN {
            return Err(Error::CorruptState {
                op,
                table: "records",
                reason: "sealed record key has the wrong length",
            });
        }
        let (nonce, ct) = sealed.split_at_checked(12).ok_or(Error::CorruptState {
            op,
            table: "records",
            reason: "sealed record key is short",
        })?;
        let plain = Zeroizing::new(
            Aes256Gcm::new((&self.kek).into())
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: &record_aad(record),
                    },
                )
                .map_err(|_| bad)?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(Error::CorruptState {
                op,
                table: "records",
                reason: "record key has the wrong length",
            });
        }
        out.copy_from_slice(&plain);
        Ok(out)
    }
}

fn aad(prefix: &[u8], origin: &str) -> Vec<u8> {
    let mut a = AAD_LABEL.to_vec();
    a.extend_from_slice(prefix);
    a.extend_from_slice(origin.as_bytes());
    a
}

fn record_aad(record: &str) -> Vec<u8> {
    let mut a = RECORD_KEY_LABEL.to_vec();
    a.extend_from_slice(record.as_bytes());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_wrong_key() {
        let s = Secrets::generate();
        let key = LedgerKey::from_bytes([7; 32]);
        let sealed = s.seal(&key, "a.example/log").unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        let back = Secrets::unseal(&sealed, &key, "a.example/log").unwrap();
        assert_eq!(back.signing, s.signing);
        assert_eq!(back.kek, s.kek);
        assert!(matches!(
            Secrets::unseal(&sealed, &LedgerKey::from_bytes([8; 32]), "a.example/log"),
            Err(Error::WrongLedgerKey { .. })
        ));
        assert!(matches!(
            Secrets::unseal(&sealed, &key, "b.example/log"),
            Err(Error::WrongLedgerKey { .. })
        ));
        assert!(matches!(
            Secrets::unseal(&sealed, &LedgerKey::from_passphrase("x"), "a.example/log"),
            Err(Error::WrongLedgerKey { .. })
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(Secrets::unseal(&bad, &key, "a.example/log").is_err());
        }
        assert_eq!(format!("{key:?}"), "LedgerKey::Raw(<redacted>)");
    }

    #[test]
    fn record_key_round_trip_bound_to_record() {
        let s = Secrets::generate();
        let sealed = s.seal_record_key("rec-1", &[3; 32]).unwrap();
        assert_eq!(sealed.len(), SEALED_RECORD_KEY_LEN);
        assert_eq!(
            *s.open_record_key("rec-1", &sealed, Op::Read).unwrap(),
            [3; 32]
        );
        assert!(s.open_record_key("rec-2", &sealed, Op::Read).is_err());
    }
}
