//! Pseudonymous patient keys: a keyed hash of the patient id under the
//! ledger's secret.
//!
//! ```text
//! PatientKey = BLAKE3-keyed(key = LedgerSecret,
//!                           "medledger/audit/patient-key/v1\n" ‖ u16 BE len ‖ patient id)
//! ```
//!
//! Without the secret, the key reveals nothing about the patient id and
//! cannot be recomputed from a guessed id (BLAKE3's keyed mode is a PRF), so
//! witnesses, mirrors and thieves of the log can group entries per patient
//! but not name anyone. The length prefix makes the input injective.

use core::fmt;

use rand_core::{OsRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// Domain-separation context of the patient key.
pub const PATIENT_KEY_CONTEXT: &[u8] = b"medledger/audit/patient-key/v1\n";

/// Longest patient id accepted, in bytes.
pub const MAX_PATIENT_ID_LEN: usize = 1024;

/// The ledger's 32-byte pseudonymization secret. Zeroized on drop; its
/// `Debug` prints nothing of the value; it is not `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct LedgerSecret([u8; 32]);

impl fmt::Debug for LedgerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LedgerSecret(<redacted>)")
    }
}

impl LedgerSecret {
    /// A fresh secret from the operating system's RNG.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        LedgerSecret(k)
    }

    /// A secret from its 32 bytes (e.g. unwrapped from a KMS). The caller
    /// should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        LedgerSecret(bytes)
    }

    /// The pseudonymous key of `patient_id`.
    pub fn patient_key(&self, patient_id: &[u8]) -> Result<PatientKey> {
        let len = u16::try_from(patient_id.len())
            .ok()
            .filter(|l| usize::from(*l) <= MAX_PATIENT_ID_LEN)
            .ok_or(Error::InvalidEvent {
                field: "patient id",
                reason: "is longer than 1024 bytes",
            })?;
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(PATIENT_KEY_CONTEXT);
        h.update(&len.to_be_bytes());
        h.update(patient_id);
        Ok(PatientKey(*h.finalize().as_bytes()))
    }
}

/// A patient's pseudonym: 32 bytes that group entries per patient without
/// naming the patient. Public (it is in the log).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatientKey(pub [u8; 32]);

impl PatientKey {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex32(&self.0)
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s).map(PatientKey)
    }
}

impl fmt::Debug for PatientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PatientKey({})", self.to_hex())
    }
}

/// Lowercase hex of 32 bytes.
pub(crate) fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses exactly 64 lowercase hex digits.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let d = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let (hi, lo) = match pair {
            [h, l] => (d(*h)?, d(*l)?),
            _ => return None,
        };
        *o = hi << 4 | lo;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_keyed_and_domain_separated() {
        let s = LedgerSecret::from_bytes([7; 32]);
        let a = s.patient_key(b"MRN-0001").unwrap();
        let b = LedgerSecret::from_bytes([8; 32])
            .patient_key(b"MRN-0001")
            .unwrap();
        assert_ne!(a, b);
        assert_ne!(a, s.patient_key(b"MRN-0002").unwrap());
        let mut h = blake3::Hasher::new_keyed(&[7; 32]);
        h.update(b"medledger/audit/patient-key/v1\n\x00\x08MRN-0001");
        assert_eq!(a.0, *h.finalize().as_bytes());
        assert!(s.patient_key(&[0; 1025]).is_err());
    }

    #[test]
    fn debug_hides_secret_and_hex_round_trips() {
        let s = LedgerSecret::from_bytes([0xab; 32]);
        assert_eq!(format!("{s:?}"), "LedgerSecret(<redacted>)");
        let k = s.patient_key(b"p").unwrap();
        assert_eq!(PatientKey::from_hex(&k.to_hex()), Some(k));
        assert_eq!(PatientKey::from_hex(&k.to_hex().to_uppercase()), None);
    }
}
