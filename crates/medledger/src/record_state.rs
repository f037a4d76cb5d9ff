//! The record and version state kept in the state store beside each
//! record, and the blinded commitment written to the log.
//!
//! # Record state (state table `records`, key = record id)
//!
//! ```text
//! version (1) ‖ patient id (32) ‖ latest version (u64 BE) ‖ erased (u8)
//!   ‖ labels (u16 BE, SensitivitySet bits) ‖ category (u8 len ‖ UTF-8)
//!   ‖ content type (u8 len ‖ UTF-8) ‖ sealed custody key (u8 len ‖ bytes)
//! ```
//!
//! # Version state (table `versions`, key = record id ‖ 0x00 ‖ version BE)
//!
//! ```text
//! body id (32) ‖ commitment nonce (32) ‖ log index (u64 BE) ‖ commitment (32)
//! ```
//!
//! The body id names the version's envelope: the row `inline-bodies[id]`
//! (envelopes up to 64 KiB) or else the blob `id` (see `body`).
//!
//! # Version labels (table `version-labels`, same key as `versions`)
//!
//! ```text
//! labels (u16 BE, SensitivitySet bits)
//! ```
//!
//! Each version's decision uses its own labels, written in the same
//! transaction as its version state. A version without a labels row
//! (written before labels were kept per version, or by a path that does
//! not record them) is decided with the record's labels, the union over
//! all its versions, which is never less restrictive. The record state
//! keeps that union for code that has no version at hand (fail-closed).
//!
//! # Blinded commitment (in the log entry)
//!
//! `BLAKE3-derive_key("medledger/v1 record commitment", nonce ‖ body)` over
//! 32 fresh random bytes and the envelope body (the ciphertext after the
//! header, which rewraps do not change). It is carried in the `commitment`
//! field of the Create/Update audit event. After erasure the nonce is gone, so the commitment
//! cannot be tested against a guessed body.

use medledger_grants::{ActorId, SensitivitySet};
use medledger_store::BlobId;

use crate::ledger::{id_from, u64_from};

const STATE_VERSION: u8 = 1;
pub(crate) const COMMITMENT_CONTEXT: &str = "medledger/v1 record commitment";

/// A record's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordState {
    pub(crate) patient: ActorId,
    pub(crate) latest: u64,
    pub(crate) erased: bool,
    pub(crate) labels: SensitivitySet,
    pub(crate) category: String,
    pub(crate) content_type: String,
    pub(crate) custody: Vec<u8>,
}

impl RecordState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_VERSION];
        out.extend_from_slice(self.patient.as_bytes());
        out.extend_from_slice(&self.latest.to_be_bytes());
        out.push(u8::from(self.erased));
        out.extend_from_slice(&self.labels.bits().to_be_bytes());
        for field in [
            self.category.as_bytes(),
            self.content_type.as_bytes(),
            &self.custody,
        ] {
            out.push(u8::try_from(field.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(field.get(..255).unwrap_or(field));
        }
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let (&ver, b) = b.split_first()?;
        if ver != STATE_VERSION {
            return None;
        }
        let (patient, b) = b.split_at_checked(32)?;
        let (latest, b) = b.split_at_checked(8)?;
        let (&erased, b) = b.split_first()?;
        let (labels, mut b) = b.split_at_checked(2)?;
        let mut fields = Vec::with_capacity(3);
        for _ in 0..3 {
            let (&len, rest) = b.split_first()?;
            let (f, rest) = rest.split_at_checked(usize::from(len))?;
            fields.push(f.to_vec());
            b = rest;
        }
        if !b.is_empty() || erased > 1 {
            return None;
        }
        let mut fields = fields.into_iter();
        Some(RecordState {
            patient: id_from(patient)?,
            latest: u64_from(latest)?,
            erased: erased == 1,
            labels: SensitivitySet::from_bits(u16::from_be_bytes(labels.try_into().ok()?))?,
            category: String::from_utf8(fields.next()?).ok()?,
            content_type: String::from_utf8(fields.next()?).ok()?,
            custody: fields.next()?,
        })
    }
}

/// One version's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VersionState {
    pub(crate) blob: BlobId,
    pub(crate) nonce: [u8; 32],
    pub(crate) event: u64,
    pub(crate) commitment: [u8; 32],
}

impl VersionState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(104);
        out.extend_from_slice(&self.blob.0);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.event.to_be_bytes());
        out.extend_from_slice(&self.commitment);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 104 {
            return None;
        }
        let (blob, b) = b.split_at_checked(32)?;
        let (nonce, b) = b.split_at_checked(32)?;
        let (event, commitment) = b.split_at_checked(8)?;
        Some(VersionState {
            blob: BlobId(blob.try_into().ok()?),
            nonce: nonce.try_into().ok()?,
            event: u64_from(event)?,
            commitment: commitment.try_into().ok()?,
        })
    }
}

/// Table of per-version labels (see the module docs).
pub(crate) const T_VERSION_LABELS: &str = "version-labels";

/// A version's labels row.
pub(crate) fn encode_labels(labels: SensitivitySet) -> [u8; 2] {
    labels.bits().to_be_bytes()
}

/// The labels a version is decided with: its own row if there is one and it
/// decodes, else the record's union (`None` for a row that does not decode,
/// which the caller reports as corruption).
pub(crate) fn decode_labels(row: Option<&[u8]>, record: &RecordState) -> Option<SensitivitySet> {
    match row {
        None => Some(record.labels),
        Some(b) => SensitivitySet::from_bits(u16::from_be_bytes(b.try_into().ok()?)),
    }
}

pub(crate) fn version_key(record: &str, version: u64) -> Vec<u8> {
    let mut k = record.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub(crate) fn patient_record_key(patient: &ActorId, record: &str) -> Vec<u8> {
    let mut k = patient.as_bytes().to_vec();
    k.extend_from_slice(record.as_bytes());
    k
}

/// The blinded commitment to an envelope body.
pub(crate) fn commitment(nonce: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(COMMITMENT_CONTEXT);
    h.update(nonce);
    h.update(body);
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordState {
        RecordState {
            patient: ActorId(medledger_chain::Hash([5; 32])),
            latest: 3,
            erased: false,
            labels: SensitivitySet::from_bits(0b101).unwrap(),
            category: "Observation".into(),
            content_type: "application/fhir+json".into(),
            custody: vec![9; 60],
        }
    }

    #[test]
    fn record_state_round_trip_and_strict() {
        let st = sample();
        let enc = st.encode();
        assert_eq!(RecordState::decode(&enc), Some(st));
        for cut in 0..enc.len() {
            assert_eq!(RecordState::decode(&enc[..cut]), None);
        }
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(RecordState::decode(&long), None);
    }

    #[test]
    fn version_state_round_trip() {
        let vs = VersionState {
            blob: BlobId([1; 32]),
            nonce: [2; 32],
            event: 77,
            commitment: [3; 32],
        };
        assert_eq!(VersionState::decode(&vs.encode()), Some(vs));
        assert_eq!(VersionState::decode(&vs.encode()[1..]), None);
    }

    #[test]
    fn version_labels_fall_back_to_the_union_and_refuse_unknown_bits() {
        let st = sample();
        let hiv = SensitivitySet::from_bits(0b1).unwrap();
        assert_eq!(encode_labels(hiv), [0, 1]);
        assert_eq!(decode_labels(Some(&encode_labels(hiv)), &st), Some(hiv));
        assert_eq!(decode_labels(None, &st), Some(st.labels));
        assert_eq!(decode_labels(Some(&[0xff, 0xff]), &st), None);
        assert_eq!(decode_labels(Some(&[0]), &st), None);
    }

    #[test]
    fn commitment_is_blinded_and_domain_separated() {
        let a = commitment(&[0; 32], b"body");
        assert_ne!(a, commitment(&[1; 32], b"body"));
        assert_ne!(a, commitment(&[0; 32], b"bodz"));
        assert_ne!(a, *blake3::hash(b"body").as_bytes());
    }

    #[test]
    fn commitment_vector() {
        let hex: String = commitment(&[0; 32], b"body")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "27decb6134e67d1072391e0cb09ebb538078544f884150055b13a21f4038dddb"
        );
    }

    proptest::proptest! {
        #[test]
        fn record_state_decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Some(st) = RecordState::decode(&bytes) {
                proptest::prop_assert_eq!(st.encode(), bytes);
            }
        }
    }
}
