//! The crate's one error type.

use crate::actor::ActorId;
use medledger_chain::Hash;

/// Everything that can go wrong in this crate. Each variant names what failed
/// and where; none carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- canonical binary encodings --------------------------------------
    /// The input ended before a field was complete.
    #[error("{what}: truncated in field `{field}` at offset {offset}")]
    Truncated {
        /// The structure being decoded (`grant`, `membership`, …).
        what: &'static str,
        /// The field being read.
        field: &'static str,
        /// Byte offset where the field starts.
        offset: usize,
    },
    /// Bytes remain after a complete structure.
    #[error("{what}: {extra} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// The structure being decoded.
        what: &'static str,
        /// Offset of the first extra byte.
        offset: usize,
        /// How many bytes are left over.
        extra: usize,
    },
    /// The four magic bytes are not this structure's.
    #[error("{what}: wrong magic bytes")]
    BadMagic {
        /// The structure being decoded.
        what: &'static str,
    },
    /// A format version this build does not know.
    #[error("{what}: unsupported format version {version}")]
    UnsupportedVersion {
        /// The structure being decoded.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A count or length above its cap.
    #[error("{what}: field `{field}` at offset {offset} has {got}, above the limit of {max}")]
    LimitExceeded {
        /// The structure being decoded or built.
        what: &'static str,
        /// The field whose count or length is too large.
        field: &'static str,
        /// Byte offset of the field (0 when building).
        offset: usize,
        /// The count or length found.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// A field whose value is not allowed (unknown tag or bit, unsorted or
    /// duplicate set member, empty set, bad characters, invalid key …).
    #[error("{what}: field `{field}` at offset {offset} is invalid: {reason}")]
    InvalidField {
        /// The structure being decoded or built.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// Byte offset of the field (0 when building).
        offset: usize,
        /// Why it was refused.
        reason: &'static str,
    },

    // --- signatures and authority -----------------------------------------
    /// A signature that does not verify under the signer's key. For a grant
    /// added to a [`crate::GrantIndex`], the grant is kept quarantined: it
    /// never allows anything and only lets a decision name this reason.
    #[error("{what} {id}: signature does not verify")]
    BadSignature {
        /// The kind of signed object.
        what: &'static str,
        /// Its id.
        id: Hash,
    },
    /// A signer whose keys were never registered, so nothing it signed can
    /// be checked.
    #[error("{what} {id}: signer {signer} is not a registered actor")]
    UnknownSigner {
        /// The kind of signed object.
        what: &'static str,
        /// Its id.
        id: Hash,
        /// The unregistered signer.
        signer: ActorId,
    },
    /// A signer that has no authority to sign this object (for example an
    /// organization membership signed by a clinician, or a revocation by
    /// someone who is neither the issuer nor the patient).
    #[error("{what} {id}: not authorized: {reason}")]
    NotAuthorized {
        /// The kind of signed object.
        what: &'static str,
        /// Its id.
        id: Hash,
        /// Which rule was broken.
        reason: &'static str,
    },
    /// A derived grant that would be wider than its parent.
    #[error("derived grant is wider than its parent in `{field}`")]
    DelegationWidens {
        /// The field that widens (`scope`, `actions`, `purposes`, …).
        field: &'static str,
    },
    /// A grant or revocation that refers to an object this index does not
    /// hold (a parent grant, or a revocation's target).
    #[error("unknown {what} {id}")]
    UnknownObject {
        /// The kind of object referred to.
        what: &'static str,
        /// Its id.
        id: Hash,
    },
    /// The object is already in the index.
    #[error("{what} {id} is already loaded")]
    Duplicate {
        /// The kind of object.
        what: &'static str,
        /// Its id.
        id: Hash,
    },

    // --- FHIR ---------------------------------------------------------------
    /// FHIR Consent JSON that is not valid JSON, not a Consent, too large, or
    /// uses something this mapping refuses (see the crate README).
    #[error("FHIR Consent: {0}")]
    Fhir(String),
    /// A FHIR Consent whose readable fields disagree with the signed grant
    /// it carries in `sourceAttachment`.
    #[error("FHIR Consent: field `{0}` disagrees with the signed grant it carries")]
    FhirMismatch(&'static str),
    /// A FHIR Consent whose `status` says it is not in force (R4
    /// ConsentState `inactive`: terminated or replaced; `draft`,
    /// `proposed`, `rejected`, `entered-in-error`). Only an `active`
    /// Consent imports as a grant.
    #[error("FHIR Consent: status `{status}` is not in force; only an active Consent imports as a grant")]
    ConsentNotInForce {
        /// The Consent's status code.
        status: &'static str,
    },
}

/// Shorthand for results with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
