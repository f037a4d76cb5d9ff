//! Witness cosignatures: C2SP tlog-cosignature `cosignature/v1`, Ed25519,
//! signature type `0x04`.
//!
//! A cosignature is a note signature line over a checkpoint whose bytes after
//! the key ID are a `timestamped_signature` (tlog-cosignature "Format"):
//!
//! ```text
//! key ID (4, big endian) ‖ timestamp (u64 big endian, ≤ 2^63 - 1) ‖ Ed25519 signature (64)
//! ```
//!
//! and whose signed message is (tlog-cosignature "Ed25519 signed message")
//!
//! ```text
//! cosignature/v1\ntime <timestamp, decimal>\n<checkpoint body>
//! ```
//!
//! The key ID is `SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]`.

use core::fmt;

use ed25519_dalek::{Signer as _, SigningKey};

use crate::error::{Error, Result};
use crate::note::{
    cosignature_message, is_valid_key_name, key_id, NoteError, NoteSignature, NoteVerifier,
    SIG_TYPE_COSIGNATURE_V1,
};

/// Largest timestamp a cosignature may carry (tlog-cosignature "Format").
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// How far ahead of the verifier's clock a cosignature may be dated by
/// default: 10 minutes, for clock skew between witness and verifier.
pub const DEFAULT_MAX_FUTURE_SKEW: u64 = 600;

/// Length of a `timestamped_signature` with Ed25519: 8 + 64 bytes.
pub const TIMESTAMPED_SIGNATURE_LEN: usize = 72;

/// A parsed (not yet verified) `cosignature/v1` signature line.
#[derive(Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The cosigner's key name.
    pub name: String,
    /// The cosigner's key ID (type `0x04`).
    pub key_id: u32,
    /// When the cosigner signed, in Unix seconds.
    pub timestamp: u64,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
}

impl fmt::Debug for Cosignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cosignature({}+{:08x} at {})",
            self.name, self.key_id, self.timestamp
        )
    }
}

impl Cosignature {
    /// Reads a cosignature from a note signature line: its body must be
    /// exactly a 72-byte `timestamped_signature` with a timestamp ≤ 2^63 - 1.
    pub fn from_note_signature(sig: &NoteSignature) -> Result<Self> {
        let bad = || {
            Error::Note(NoteError::CosignatureLength {
                len: sig.signature.len(),
            })
        };
        let (ts, rest) = sig.signature.split_first_chunk::<8>().ok_or_else(bad)?;
        let signature: [u8; 64] = rest.try_into().map_err(|_| bad())?;
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp > MAX_TIMESTAMP {
            return Err(Error::CosignatureTimestamp { timestamp });
        }
        Ok(Cosignature {
            name: sig.name.clone(),
            key_id: sig.key_id,
            timestamp,
            signature,
        })
    }

    /// Parses one or more cosignature lines, such as a witness's response
    /// to add-checkpoint (tlog-witness "add-checkpoint").
    pub fn parse_lines(bytes: &[u8]) -> Result<Vec<Self>> {
        NoteSignature::parse_lines(bytes)?
            .iter()
            .map(Self::from_note_signature)
            .collect()
    }

    /// The note signature line this cosignature is.
    pub fn to_note_signature(&self) -> NoteSignature {
        let mut raw = Vec::with_capacity(TIMESTAMPED_SIGNATURE_LEN);
        raw.extend_from_slice(&self.timestamp.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: raw,
        }
    }

    /// The signature line, with its newline.
    pub fn to_line(&self) -> String {
        self.to_note_signature().to_line()
    }

    /// Refuses a timestamp more than `max_skew` seconds after `now` (Unix
    /// seconds, the caller's clock) with [`Error::CosignatureFromFuture`].
    /// A witness cosigns with its own clock when it sees a checkpoint, so a
    /// timestamp far ahead of every honest clock is a wrong clock or a
    /// cosignature made to look fresher than it is; either way it proves
    /// nothing about when the witness saw the checkpoint.
    pub fn check_time(&self, now: u64, max_skew: u64) -> Result<()> {
        if self.timestamp > now.saturating_add(max_skew) {
            return Err(Error::CosignatureFromFuture {
                name: self.name.clone(),
                timestamp: self.timestamp,
                now,
                max_skew,
            });
        }
        Ok(())
    }

    /// [`Cosignature::verify`], and refuses a cosignature dated more than
    /// [`DEFAULT_MAX_FUTURE_SKEW`] (10 minutes) after `now` (Unix seconds,
    /// the caller's clock) with [`Error::CosignatureFromFuture`].
    pub fn verify_at(&self, verifier: &NoteVerifier, body: &str, now: u64) -> Result<()> {
        self.verify_at_with_skew(verifier, body, now, DEFAULT_MAX_FUTURE_SKEW)
    }

    /// [`Cosignature::verify_at`] with an explicit skew in seconds.
    pub fn verify_at_with_skew(
        &self,
        verifier: &NoteVerifier,
        body: &str,
        now: u64,
        max_skew: u64,
    ) -> Result<()> {
        self.check_time(now, max_skew)?;
        self.verify(verifier, body)
    }

    /// Checks this cosignature over a checkpoint `body` with `verifier`
    /// (which must be of type `0x04` and match the name and key ID). The
    /// timestamp is not compared with any clock: use
    /// [`Cosignature::verify_at`] to refuse one dated in the future.
    pub fn verify(&self, verifier: &NoteVerifier, body: &str) -> Result<()> {
        if verifier.sig_type() != SIG_TYPE_COSIGNATURE_V1
            || verifier.name() != self.name
            || verifier.key_id() != self.key_id
        {
            return Err(Error::InvalidSignature {
                name: self.name.clone(),
                key_id: self.key_id,
            });
        }
        verifier
            .verify_signature(body.as_bytes(), &self.to_note_signature().signature)
            .map(|_| ())
    }
}

/// A witness's cosigning key: Ed25519 with a key name, signature type `0x04`.
///
/// The secret key is zeroized on drop and never printed by `Debug`. Use one
/// key per cosigner: the `cosignature/v1` message does not name the cosigner.
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CosignatureSigner({}+{:08x}, secret elided)",
            self.name, self.key_id
        )
    }
}

impl CosignatureSigner {
    /// A cosigner named `name` holding `key`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self> {
        if !is_valid_key_name(name) {
            return Err(Error::Note(NoteError::InvalidKeyName {
                context: "cosigner",
            }));
        }
        Ok(CosignatureSigner {
            key_id: key_id(
                name,
                SIG_TYPE_COSIGNATURE_V1,
                key.verifying_key().as_bytes(),
            ),
            name: name.to_owned(),
            key,
        })
    }

    /// A fresh key from the operating system's random generator.
    pub fn generate(name: &str) -> Result<Self> {
        Self::new(name, SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching verifier (type `0x04`).
    pub fn verifier(&self) -> Result<NoteVerifier> {
        NoteVerifier::new(
            &self.name,
            SIG_TYPE_COSIGNATURE_V1,
            self.key.verifying_key(),
        )
    }

    /// Cosigns a checkpoint body at `timestamp` (Unix seconds, not zero and
    /// at most 2^63 - 1, as tlog-witness requires of add-checkpoint).
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<Cosignature> {
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return Err(Error::CosignatureTimestamp { timestamp });
        }
        let sig = self
            .key
            .sign(&cosignature_message(body.as_bytes(), timestamp));
        Ok(Cosignature {
            name: self.name.clone(),
            key_id: self.key_id,
            timestamp,
            signature: sig.to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_verify_and_reject_other_body_or_time() {
        let s = CosignatureSigner::new("w.example/1", SigningKey::from_bytes(&[7; 32])).unwrap();
        let v = s.verifier().unwrap();
        let body = "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = s.cosign(body, 1_700_000_000).unwrap();
        c.verify(&v, body).unwrap();
        assert!(c
            .verify(&v, "o\n2\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
            .is_err());
        let mut later = c.clone();
        later.timestamp += 1;
        assert!(matches!(
            later.verify(&v, body),
            Err(Error::InvalidSignature { .. })
        ));
        let line = c.to_line();
        assert_eq!(Cosignature::parse_lines(line.as_bytes()).unwrap(), vec![c]);
    }

    /// A cosignature dated more than the allowed skew after the verifier's
    /// clock is refused with a typed error, at exactly the boundary; one
    /// within the skew, or in the past, verifies. `verify` (no clock) still
    /// accepts it, as before.
    #[test]
    fn cosignatures_from_the_future_are_refused() {
        let s = CosignatureSigner::new("w.example/1", SigningKey::from_bytes(&[7; 32])).unwrap();
        let v = s.verifier().unwrap();
        let body = "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let now = 1_700_000_000;
        let at = |t: u64| s.cosign(body, t).unwrap();
        at(now + DEFAULT_MAX_FUTURE_SKEW)
            .verify_at(&v, body, now)
            .unwrap();
        at(now - 86_400).verify_at(&v, body, now).unwrap();
        let future = at(now + DEFAULT_MAX_FUTURE_SKEW + 1);
        future.verify(&v, body).unwrap();
        assert_eq!(
            future.verify_at(&v, body, now).unwrap_err().to_string(),
            Error::CosignatureFromFuture {
                name: "w.example/1".into(),
                timestamp: now + 601,
                now,
                max_skew: 600,
            }
            .to_string()
        );
        assert!(matches!(
            at(now + 61).verify_at_with_skew(&v, body, now, 60),
            Err(Error::CosignatureFromFuture {
                timestamp: 1_700_000_061,
                max_skew: 60,
                ..
            })
        ));
        at(now + 60).verify_at_with_skew(&v, body, now, 60).unwrap();
        // Far-future timestamps near the format's limit do not overflow.
        let far = at(MAX_TIMESTAMP);
        far.check_time(now, u64::MAX).unwrap();
        assert!(matches!(
            far.verify_at(&v, body, now),
            Err(Error::CosignatureFromFuture { .. })
        ));
        // A forged cosignature in range still fails on its signature.
        let mut forged = at(now);
        forged.signature[0] ^= 1;
        assert!(matches!(
            forged.verify_at(&v, body, now),
            Err(Error::InvalidSignature { .. })
        ));
    }

    #[test]
    fn timestamps_out_of_range_are_refused() {
        let s = CosignatureSigner::generate("w").unwrap();
        assert!(matches!(
            s.cosign("x\n", 0),
            Err(Error::CosignatureTimestamp { timestamp: 0 })
        ));
        assert!(s.cosign("x\n", 1 << 63).is_err());
        let mut raw = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0];
        raw.extend_from_slice(&[0; 64]);
        let ns = NoteSignature {
            name: "w".into(),
            key_id: 1,
            signature: raw,
        };
        assert!(matches!(
            Cosignature::from_note_signature(&ns),
            Err(Error::CosignatureTimestamp { .. })
        ));
    }
}
