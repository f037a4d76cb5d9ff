//! The audit trail of medledger: every write, grant, revocation, key event,
//! erasure and access attempt (allowed, denied or emergency) as an event in
//! the Merkle log; indexed queries and HIPAA disclosure reports; FHIR R4
//! `AuditEvent` export; and a verifiable export that an auditor checks
//! offline, including that no event of a patient was left out.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use medledger_audit::*;
//! use medledger_chain::{CosignatureSigner, Ed25519Signer, HashAlg, LogKey, MerkleLog, Policy, Witness};
//! use medledger_store::MemoryLog;
//!
//! let secret = LedgerSecret::generate();
//! let patient = secret.patient_key(b"MRN-000042")?;
//! let log = AuditLog::open("audit.example/log", Arc::new(MemoryLog::new()),
//!                          MerkleLog::in_memory(HashAlg::Blake3))?;
//! let receipt = log.append(AuditEvent {
//!     action: Action::Read,
//!     actor: Actor { id: Id32([1; 32]), role: Role::Clinician, organization: "st-mary".into() },
//!     patient,
//!     record: Some(RecordRef { id: "rec-1".into(), version: 1 }),
//!     time_ms: 1_764_307_200_000,
//!     source: "node-a".into(),
//!     purpose: PurposeOfUse::Treatment,
//!     outcome: Outcome::Success,
//!     grant_chain: vec![Id32([9; 32])],
//!     emergency: None,
//!     prev_for_patient: None,
//!     refers_to: None,
//!     commitment: None,
//! })?;
//! assert_eq!(receipt.index, 0);
//!
//! // The operator commits every patient's head and signs a checkpoint;
//! // a witness cosigns it.
//! let signer = Ed25519Signer::generate("audit.example/log")?;
//! let log_key = LogKey::new("audit.example/log", signer.verifier(), HashAlg::Blake3)?;
//! let mut witness = Witness::in_memory(CosignatureSigner::generate("witness.example")?);
//! witness.add_log(log_key.clone());
//! log.checkpoint_with_heads(&signer, 1_764_307_201, &[&witness])?;
//!
//! // The auditor verifies the patient's export offline.
//! let json = log.export_patient(&patient, None, 0)?.to_json()?;
//! let policy = Policy::new(log_key, vec![witness.signer().verifier()?], 1)?;
//! let report = verify_patient_export(json.as_bytes(), &policy, &patient)?;
//! assert!(report.tail_complete());
//! assert_eq!(report.head, Some(CommittedHead::At(0)));
//! assert_eq!(report.disclosures().len(), 1);
//! // The report keeps the checked encodings and decodes events when read.
//! assert_eq!(report.events.get(0).map(|v| v.event.action), Some(Action::Read));
//! # Ok::<(), medledger_audit::Error>(())
//! ```
//!
//! # Security notes
//!
//! - No event holds record contents or a patient identity: the patient is a
//!   [`PatientKey`], a BLAKE3 keyed hash under the [`LedgerSecret`]. Whoever
//!   holds the secret can test a guessed patient id; keep it with the
//!   ledger's other keys.
//! - An export proves what it contains and, for a patient export, that no
//!   event of that patient is missing between `from_size` and the patient's
//!   last exported event (each event names the patient's previous one).
//!   Under a checkpoint issued by [`AuditLog::checkpoint_with_heads`], it
//!   also proves the patient's committed head, so no newer event can have
//!   been withheld ([`verify_patient_export`] requires this; a plain
//!   [`AuditLog::checkpoint`] does not commit heads). No export can show an
//!   event the operator never logged; witnesses and the append-only log
//!   bound what can be changed after the fact.
//! - Checkpoint verification follows the signed-note rules: signature lines
//!   from keys outside the [`medledger_chain::Policy`] are ignored unless
//!   the policy is `strict()`.
//! - Exports are untrusted input: parsing is size-capped, schema-strict,
//!   canonical-only, and every failure names the first bad item.
//! - The indexes live in memory and are rebuilt from the log on open
//!   ([`AuditLog::open`]); the log is the only source of truth.
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

pub mod audit_log;
pub mod auditor;
mod base64_codec;
pub mod batch_proof;
pub mod checkpoint_entry;
pub mod codec;
pub mod embedded;
pub mod error;
pub mod event;
pub mod export;
mod export_json;
pub mod fhir;
pub mod heads;
pub mod index;
pub mod pseudonym;
pub mod report;
pub mod verify;

pub use audit_log::{AuditLog, IssuedCheckpoint, Receipt};
pub use codec::DecodeError;
pub use error::{Error, Result};
pub use event::{Action, Actor, AuditEvent, Id32, Outcome, PurposeOfUse, RecordRef, Role};
pub use export::Export;
pub use heads::CommittedHead;
pub use pseudonym::{LedgerSecret, PatientKey};
pub use report::Disclosure;
pub use verify::{
    verify_export, verify_patient_export, CheckpointSummary, Report, VerifiedEvent, VerifiedEvents,
    VerifiedEventsIter,
};
