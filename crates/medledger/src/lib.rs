//! medledger: the one type an EHR backend embeds to keep medical records
//! confidential, tamper-evident and shareable under the patient's control.
//!
//! A [`Ledger`] composes medledger's crates: records are sealed with a
//! fresh data key per version (medledger-envelope), access follows
//! patient-signed grants (medledger-grants), every write, grant,
//! revocation, access attempt (allowed, denied, emergency) and erasure is
//! an event in one Merkle log (medledger-audit over medledger-chain), and
//! everything is stored through medledger-store's traits — the embedded
//! directory store by default ([`Ledger::open`]), memory for tests
//! ([`Ledger::in_memory`]), or any backend ([`Ledger::with_stores`]).
//!
//! # Example
//!
//! ```
//! use medledger::{Ledger, LedgerKey, NewRecord};
//! use medledger::grants::*;
//!
//! let ledger = Ledger::in_memory("clinic.example/ledger", &LedgerKey::from_bytes([7; 32]))?;
//! let patient = ActorKeys::generate(ActorKind::Patient)?;
//! let doctor = ActorKeys::generate(ActorKind::Clinician)?;
//! ledger.register(patient.actor(), "patients")?;
//! ledger.register(doctor.actor(), "st-mary")?;
//!
//! ledger.write(&NewRecord {
//!     id: "Observation/1", patient: patient.id(), author: patient.id(),
//!     content_type: "application/fhir+json", category: "Observation",
//!     labels: SensitivitySet::empty(), body: br#"{"resourceType":"Observation"}"#,
//! })?;
//!
//! // Deny by default, logged either way.
//! assert!(ledger.read(&doctor, "Observation/1", Purpose::Treat).is_err());
//!
//! let grant = SignedGrant::sign(Grant {
//!     issuer: patient.id(), patient: patient.id(),
//!     grantee: Grantee::Actor(doctor.id()), parent: None,
//!     scope: Scope::Categories([Category::new("Observation")?].into()),
//!     sensitivity: SensitivitySet::empty(),
//!     actions: ActionSet::empty().with(Action::Read),
//!     purposes: PurposeSet::empty().with(Purpose::Treat),
//!     validity: Validity::new(0, u64::MAX / 2)?,
//!     max_delegation_depth: 0, issued_at: 0, nonce: Grant::fresh_nonce(),
//! }, &patient)?;
//! ledger.grant(&grant)?;
//! let record = ledger.read(&doctor, "Observation/1", Purpose::Treat)?;
//! assert_eq!(&record.body[..], br#"{"resourceType":"Observation"}"#);
//! assert_eq!(ledger.disclosure_report(&patient.id())?.len(), 1);
//! ledger.verify()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security notes
//!
//! - The log holds no PHI: a patient appears only as a keyed pseudonym,
//!   a record version only as its id and a blinded commitment (BLAKE3 over
//!   32 fresh random bytes and the ciphertext). Record ids are logged:
//!   use opaque ids.
//! - The ledger's own secrets (checkpoint signing key, pseudonym key, the
//!   KEK of per-record custody keys) are stored only sealed under the
//!   application's [`LedgerKey`] (AES-256-GCM, Argon2id for passphrases).
//!   Actors' private keys never enter the ledger: reads take a
//!   [`KeyUnwrapper`].
//! - Each record has a custody X25519 key (sealed under the KEK) so the
//!   ledger can wrap data keys to grantees. Whoever holds the
//!   [`LedgerKey`] and the store can read every record: keep the key in a
//!   KMS or HSM. Erasure destroys the custody key and every wrapped data
//!   key; a reader who already unwrapped a data key keeps it.
//! - The embedding application authenticates who calls; the ledger
//!   authorizes. The patient and their active guardians
//!   ([`Ledger::appoint_guardian`]) read, write and erase the patient's
//!   records; anyone else reads or writes only as the grants engine
//!   decides (`read` / `write` grants), and nobody else erases. Every
//!   refusal is logged.
//! - A revoked grantee loses access at once by policy and their wraps are
//!   removed; later versions use fresh data keys. Nothing can recall what
//!   they already read.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod access;
mod backend;
mod body;
mod consent;
mod custody;
mod error;
mod follow;
mod guardian;
mod identity;
mod key_unwrap;
mod ledger;
#[cfg(feature = "postgres")]
mod postgres;
mod read_decision;
mod record;
mod record_state;
mod share;
mod share_codec;
mod state_commit;
mod state_rows;
mod streaming;
mod turns;
mod verification;

pub use access::{deny_code, Record, UNWRAP_FAILED_CODE};
pub use backend::Stores;
pub use custody::LedgerKey;
pub use error::{Error, Op, Result};
pub use identity::LEDGER_ORGANIZATION;
pub use key_unwrap::KeyUnwrapper;
pub use ledger::{Ledger, MAX_ORGANIZATION_LEN};
#[cfg(feature = "postgres")]
pub use postgres::TURN_WAIT;
pub use record::{NewRecord, Written, MAX_RECORD_ID_LEN};
pub use share::Imported;
pub use share_codec::{
    ShareError, SharePackage, MAX_ENVELOPE_LEN, MAX_PACKAGE_LEN, SHARE_MAGIC, SHARE_VERSION,
    SIGNATURE_CONTEXT,
};
pub use streaming::{StreamedRead, StreamedRecord};
pub use verification::VerifyReport;

/// The composed crates, re-exported so one dependency is enough.
pub use medledger_audit as audit;
pub use medledger_chain as chain;
pub use medledger_envelope as envelope;
pub use medledger_grants as grants;
/// The PostgreSQL backend (feature `postgres`).
#[cfg(feature = "postgres")]
pub use medledger_postgres as pg;
pub use medledger_store as store;

/// The README's code blocks, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The workspace README's quick start, compiled and run as a doc test so it
/// cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct WorkspaceReadmeDoctests;
