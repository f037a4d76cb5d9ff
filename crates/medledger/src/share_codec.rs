//! The share package's binary encoding (`MLSP` version 1): one record
//! version sent from one organization's ledger to another's, with the
//! evidence the importer checks offline.
//!
//! # Byte layout
//!
//! All integers are big-endian; `str8` is a `u8` length then that many
//! bytes of UTF-8 (never empty).
//!
//! ```text
//! magic        4   "MLSP"
//! version      1   0x01
//! origin       str8   the exporting log's origin (checkpoint origin line)
//! record       str8   record id (1..=64 bytes)
//! rec_version  8   u64, >= 1
//! content_type str8
//! category     str8   (a valid grants Category)
//! labels       2   u16 SensitivitySet bits (unknown bits refused)
//! patient      32  the patient's ActorId
//! recipient    32  the recipient's ActorId
//! nonce        32  the commitment nonce of this version
//! event        u16 length (1..=MAX_EVENT_LEN) ‖ the Create/Update audit
//!                  event exactly as it is in the exporter's log (MLAE v2)
//! proof        u32 length (1..=MAX_PROOF_LEN) ‖ C2SP tlog-proof text:
//!                  the event's index, inclusion path and the cosigned
//!                  checkpoint note it verifies against
//! envelope     u32 length (1..=MAX_ENVELOPE_LEN) ‖ the record's envelope
//!                  (header rewrapped to the recipient alone, body as
//!                  stored and committed to)
//! signature    64  Ed25519 by the exporting log's key over
//!                  SIGNATURE_CONTEXT ‖ every byte above
//! ```
//!
//! Nothing may follow the signature. The decoder checks the framing, every
//! length against its cap, the strings, the labels, that the event decodes
//! and re-encodes to exactly its bytes and that the proof parses and
//! re-prints to exactly its text, so every accepted package re-encodes to
//! its input. It checks no signature or proof: that is import's job
//! (see `share.rs`).

use medledger_audit::codec::MAX_EVENT_LEN;
use medledger_audit::AuditEvent;
use medledger_chain::tlog_proof::MAX_PROOF_LEN;
use medledger_chain::TlogProof;
use medledger_grants::{ActorId, Category, SensitivitySet};

use crate::ledger::id_from;
use crate::record::MAX_RECORD_ID_LEN;

/// The package's first four bytes.
pub const SHARE_MAGIC: [u8; 4] = *b"MLSP";
/// The only package version this crate reads and writes.
pub const SHARE_VERSION: u8 = 1;
/// Largest envelope a package may carry (1 GiB).
pub const MAX_ENVELOPE_LEN: usize = 1 << 30;
/// Largest package: every field at its cap.
pub const MAX_PACKAGE_LEN: usize = 5
    + 4 * 256
    + 8
    + 2
    + 3 * 32
    + 2
    + MAX_EVENT_LEN
    + 4
    + MAX_PROOF_LEN
    + 4
    + MAX_ENVELOPE_LEN
    + 64;
/// What the exporter's Ed25519 signature covers, before the package bytes.
/// Distinct from any signed-note text (it holds a NUL), so a package
/// signature can never pass as a checkpoint signature or the reverse.
pub const SIGNATURE_CONTEXT: &[u8] = b"medledger/v1 share package\0";

/// Why a share package was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// Longer than [`MAX_PACKAGE_LEN`].
    #[error("package is {len} bytes, above the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first four bytes are not `MLSP`.
    #[error("not a share package (bad magic)")]
    BadMagic,
    /// A version this crate does not read.
    #[error("unknown share package version {0}")]
    UnknownVersion(u8),
    /// The package ends inside a field.
    #[error("truncated in field {field}")]
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// Bytes after the signature.
    #[error("{len} bytes after the signature")]
    TrailingBytes {
        /// How many.
        len: usize,
    },
    /// A field that is malformed or out of range.
    #[error("field {field}: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// No trust is configured for the exporting log's origin.
    #[error("no trust configured for log {origin:?}")]
    UntrustedLog {
        /// The origin named in the package.
        origin: String,
    },
    /// The logged event is not the write of this record version.
    #[error("the logged event does not match the package: {what}")]
    EventMismatch {
        /// What differs.
        what: &'static str,
    },
    /// The ciphertext does not match the commitment in the logged event.
    #[error("the ciphertext does not match the logged commitment")]
    CommitmentMismatch,
    /// The exporting log's signature over the package does not verify.
    #[error("the exporting log's signature over the package does not verify")]
    BadSignature,
    /// The local record's latest version was imported from a later write
    /// of the same log: importing this package would make an older
    /// version the latest.
    #[error("stale package: the record holds log event {imported} of that log, the package event {package}")]
    Stale {
        /// The exporter's event the latest local version came from.
        imported: u64,
        /// The exporter's event of this package.
        package: u64,
    },
    /// The key unwrapper given to import is not the package's recipient.
    #[error("the package is for recipient {expected}, not {given}")]
    WrongRecipient {
        /// The package's recipient.
        expected: ActorId,
        /// The unwrapper's actor.
        given: ActorId,
    },
    /// The recipient is not registered with the importing ledger.
    #[error("recipient {recipient} is not a member of this ledger")]
    RecipientNotMember {
        /// The recipient.
        recipient: ActorId,
    },
}

/// A decoded share package. Nothing in it is trusted until
/// [`crate::Ledger::import_share`] verified it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharePackage {
    /// The exporting log's origin.
    pub origin: String,
    /// The record id at the exporter.
    pub record: String,
    /// The record version.
    pub version: u64,
    /// Its media type.
    pub content_type: String,
    /// Its category.
    pub category: String,
    /// Its sensitivity labels.
    pub labels: SensitivitySet,
    /// The patient.
    pub patient: ActorId,
    /// Who the envelope is wrapped to.
    pub recipient: ActorId,
    /// The nonce of the blinded commitment.
    pub nonce: [u8; 32],
    /// The Create/Update event's bytes, as logged.
    pub event: Vec<u8>,
    /// The C2SP tlog-proof text (index, path, cosigned checkpoint).
    pub proof: String,
    /// The envelope (header for the recipient, committed body).
    pub envelope: Vec<u8>,
    /// The exporting log's signature (see [`SIGNATURE_CONTEXT`]).
    pub signature: [u8; 64],
}

impl core::fmt::Debug for SharePackage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharePackage")
            .field("origin", &self.origin)
            .field("record", &self.record)
            .field("version", &self.version)
            .field("recipient", &self.recipient)
            .field("envelope_len", &self.envelope.len())
            .finish_non_exhaustive()
    }
}

fn put_str8(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(s.as_bytes().get(..255).unwrap_or(s.as_bytes()));
}

fn put_len(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
    let len = (bytes.len() as u64).to_be_bytes();
    out.extend_from_slice(len.get(8 - width..).unwrap_or(&[]));
    out.extend_from_slice(bytes);
}

impl SharePackage {
    /// Everything the signature covers (the encoding without it).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.envelope.len() + self.proof.len());
        out.extend_from_slice(&SHARE_MAGIC);
        out.push(SHARE_VERSION);
        put_str8(&mut out, &self.origin);
        put_str8(&mut out, &self.record);
        out.extend_from_slice(&self.version.to_be_bytes());
        put_str8(&mut out, &self.content_type);
        put_str8(&mut out, &self.category);
        out.extend_from_slice(&self.labels.bits().to_be_bytes());
        out.extend_from_slice(self.patient.as_bytes());
        out.extend_from_slice(self.recipient.as_bytes());
        out.extend_from_slice(&self.nonce);
        put_len(&mut out, &self.event, 2);
        put_len(&mut out, self.proof.as_bytes(), 4);
        put_len(&mut out, &self.envelope, 4);
        out
    }

    /// The message the exporter signs: [`SIGNATURE_CONTEXT`] ‖ the
    /// signed bytes.
    pub fn signature_message(&self) -> Vec<u8> {
        let mut m = SIGNATURE_CONTEXT.to_vec();
        m.extend_from_slice(&self.signed_bytes());
        m
    }

    /// The package's bytes. A package built with fields out of range
    /// (rather than decoded or exported) does not decode.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes a package strictly (see the module docs for what is
    /// checked).
    pub fn decode(bytes: &[u8]) -> Result<Self, ShareError> {
        if bytes.len() > MAX_PACKAGE_LEN {
            return Err(ShareError::TooLarge {
                len: bytes.len(),
                max: MAX_PACKAGE_LEN,
            });
        }
        let mut r = Reader(bytes);
        if r.take(4, "magic")? != SHARE_MAGIC {
            return Err(ShareError::BadMagic);
        }
        let version = r.u8("version")?;
        if version != SHARE_VERSION {
            return Err(ShareError::UnknownVersion(version));
        }
        let origin = r.str8("origin")?;
        let record = r.str8("record")?;
        if record.len() > MAX_RECORD_ID_LEN {
            return Err(bad("record", "longer than 64 bytes"));
        }
        let version = u64::from_be_bytes(r.array("record version")?);
        if version == 0 {
            return Err(bad("record version", "must be at least 1"));
        }
        let content_type = r.str8("content type")?;
        let category = r.str8("category")?;
        Category::new(&category).map_err(|_| bad("category", "not a valid category"))?;
        let labels = SensitivitySet::from_bits(u16::from_be_bytes(r.array("labels")?))
            .ok_or(bad("labels", "unknown label bits"))?;
        let patient = r.id("patient")?;
        let recipient = r.id("recipient")?;
        let nonce = r.array("nonce")?;
        let event = r.sized(2, MAX_EVENT_LEN, "event")?.to_vec();
        match AuditEvent::decode(&event) {
            Ok(e) if e.encode().ok().as_deref() == Some(&event[..]) => {}
            Ok(_) => return Err(bad("event", "not in canonical encoding")),
            Err(_) => return Err(bad("event", "does not decode")),
        }
        let proof = r.sized(4, MAX_PROOF_LEN, "proof")?;
        let proof = String::from_utf8(proof.to_vec()).map_err(|_| bad("proof", "not UTF-8"))?;
        match TlogProof::parse(proof.as_bytes()) {
            Ok(p) if p.to_text().ok().as_deref() == Some(proof.as_str()) => {}
            Ok(_) => return Err(bad("proof", "not in canonical form")),
            Err(_) => return Err(bad("proof", "not a tlog proof")),
        }
        let envelope = r.sized(4, MAX_ENVELOPE_LEN, "envelope")?.to_vec();
        let signature = r.array("signature")?;
        if !r.0.is_empty() {
            return Err(ShareError::TrailingBytes { len: r.0.len() });
        }
        Ok(SharePackage {
            origin,
            record,
            version,
            content_type,
            category,
            labels,
            patient,
            recipient,
            nonce,
            event,
            proof,
            envelope,
            signature,
        })
    }
}

fn bad(field: &'static str, reason: &'static str) -> ShareError {
    ShareError::BadField { field, reason }
}

/// A cursor over the package that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ShareError> {
        let (head, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(ShareError::Truncated { field })?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ShareError> {
        self.take(N, field)?
            .try_into()
            .map_err(|_| ShareError::Truncated { field })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ShareError> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    fn id(&mut self, field: &'static str) -> Result<ActorId, ShareError> {
        id_from(self.take(32, field)?).ok_or(ShareError::Truncated { field })
    }

    fn str8(&mut self, field: &'static str) -> Result<String, ShareError> {
        let len = usize::from(self.u8(field)?);
        if len == 0 {
            return Err(bad(field, "empty"));
        }
        let b = self.take(len, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad(field, "not UTF-8"))
    }

    /// A field prefixed by a `width`-byte length in `1..=max`.
    fn sized(
        &mut self,
        width: usize,
        max: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ShareError> {
        let mut len = [0u8; 8];
        let dst = len
            .get_mut(8 - width..)
            .ok_or(ShareError::Truncated { field })?;
        dst.copy_from_slice(self.take(width, field)?);
        let len = usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len == 0 || len > max {
            return Err(bad(field, "length out of range"));
        }
        self.take(len, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use medledger_audit::{
        Action, Actor, Id32, LedgerSecret, Outcome, PurposeOfUse, RecordRef, Role,
    };
    use medledger_chain::{Checkpoint, CosignatureSigner, Ed25519Signer, HashAlg, Note};
    use proptest::prelude::*;

    /// The package of the README's test vector: every key and value fixed.
    fn vector() -> SharePackage {
        let origin = "a.example/ledger";
        let patient = LedgerSecret::from_bytes([3; 32])
            .patient_key(&[6; 32])
            .unwrap();
        let event = AuditEvent {
            action: Action::Create,
            actor: Actor {
                id: Id32([5; 32]),
                role: Role::Patient,
                organization: "patients".into(),
            },
            patient,
            record: Some(RecordRef {
                id: "Observation/1".into(),
                version: 1,
            }),
            time_ms: 1_700_000_000_000,
            source: "a.example/ledger".into(),
            purpose: PurposeOfUse::Treatment,
            outcome: Outcome::Success,
            grant_chain: Vec::new(),
            emergency: None,
            prev_for_patient: None,
            refers_to: None,
            commitment: Some(Id32([7; 32])),
        }
        .encode()
        .unwrap();
        let cp = Checkpoint::first(
            origin,
            HashAlg::Blake3,
            1,
            HashAlg::Blake3.leaf_hash(&event),
            1_700_000_000,
        );
        let mut note = Note::new(&cp.to_body()).unwrap();
        let log = Ed25519Signer::new(origin, SigningKey::from_bytes(&[9; 32])).unwrap();
        note.sign(&log).unwrap();
        let w = CosignatureSigner::new("w.example", SigningKey::from_bytes(&[10; 32])).unwrap();
        let cosig = w.cosign(&cp.to_body(), 1_700_000_001).unwrap();
        note.add_signature(cosig.to_note_signature()).unwrap();
        let proof = TlogProof {
            extra: None,
            index: 0,
            path: Vec::new(),
            checkpoint: note,
        }
        .to_text()
        .unwrap();
        let mut p = SharePackage {
            origin: origin.into(),
            record: "Observation/1".into(),
            version: 1,
            content_type: "application/fhir+json".into(),
            category: "Observation".into(),
            labels: SensitivitySet::empty(),
            patient: ActorId(medledger_chain::Hash([6; 32])),
            recipient: ActorId(medledger_chain::Hash([8; 32])),
            nonce: [4; 32],
            event,
            proof,
            envelope: b"MLENV (opaque to the codec)".to_vec(),
            signature: [0; 64],
        };
        p.signature = SigningKey::from_bytes(&[9; 32])
            .sign(&p.signature_message())
            .to_bytes();
        p
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn test_vector() {
        let enc = vector().encode();
        assert_eq!(
            hex(&enc[..24]),
            "4d4c53500110612e6578616d706c652f6c65646765720d4f"
        );
        assert_eq!(enc.len(), 822);
        assert_eq!(
            hex(blake3::hash(&enc).as_bytes()),
            "451d0e6cc0b5c9016055d106bbba9abd5cab8e24f8e2dcf4d392dabff7711083"
        );
        assert_eq!(SharePackage::decode(&enc).unwrap(), vector());
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let enc = vector().encode();
        for cut in 0..enc.len() {
            assert!(
                matches!(
                    SharePackage::decode(&enc[..cut]),
                    Err(ShareError::Truncated { .. } | ShareError::BadField { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut long = enc.clone();
        long.extend_from_slice(&[0; 3]);
        assert_eq!(
            SharePackage::decode(&long),
            Err(ShareError::TrailingBytes { len: 3 })
        );
    }

    #[test]
    fn out_of_range_fields_are_refused() {
        let mut p = vector();
        p.version = 0;
        assert_eq!(
            SharePackage::decode(&p.encode()),
            Err(ShareError::BadField {
                field: "record version",
                reason: "must be at least 1"
            })
        );
        let mut p = vector();
        p.envelope.clear();
        assert!(matches!(
            SharePackage::decode(&p.encode()),
            Err(ShareError::BadField {
                field: "envelope",
                ..
            })
        ));
        let mut p = vector();
        p.proof.insert(0, ' ');
        assert!(matches!(
            SharePackage::decode(&p.encode()),
            Err(ShareError::BadField { field: "proof", .. })
        ));
        let mut enc = vector().encode();
        let labels_at = 5 + 17 + 14 + 8 + 22 + 12;
        enc[labels_at] = 0xff;
        assert!(matches!(
            SharePackage::decode(&enc),
            Err(ShareError::BadField {
                field: "labels",
                ..
            })
        ));
        assert!(matches!(
            SharePackage::decode(&vec![0; MAX_PACKAGE_LEN + 1]),
            Err(ShareError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(
            origin in "[a-z./]{1,80}",
            record in "[A-Za-z0-9/]{1,64}",
            version in 1u64..,
            content_type in "[a-z/+]{1,100}",
            labels in 0u16..0x0400,
            ids in any::<[u8; 32]>(),
            nonce in any::<[u8; 32]>(),
            envelope in proptest::collection::vec(any::<u8>(), 1..300),
            signature in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let mut p = vector();
            p.origin = origin;
            p.record = record;
            p.version = version;
            p.content_type = content_type;
            p.labels = match SensitivitySet::from_bits(labels) {
                Some(l) => l,
                None => SensitivitySet::empty(),
            };
            p.patient = ActorId(medledger_chain::Hash(ids));
            p.nonce = nonce;
            p.envelope = envelope;
            p.signature.copy_from_slice(&signature);
            let enc = p.encode();
            prop_assert_eq!(SharePackage::decode(&enc), Ok(p));
        }

        #[test]
        fn a_changed_byte_is_refused_or_re_encodes_identically(
            at in any::<prop::sample::Index>(), xor in 1u8..,
        ) {
            let mut enc = vector().encode();
            let i = at.index(enc.len());
            enc[i] ^= xor;
            if let Ok(p) = SharePackage::decode(&enc) {
                prop_assert_eq!(p.encode(), enc);
            }
        }
    }
}
