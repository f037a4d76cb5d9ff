//! Patient-controlled access for medledger: signed grants, delegation with
//! attenuation, guardians, revocation, break-the-glass, and the decision
//! engine that answers "may this actor do this to this record now?".
//!
//! A patient (or a guardian acting for one) signs a [`Grant`] naming a
//! grantee — one actor, an organization, or a role within an organization —
//! with a scope, included sensitivity labels, actions, purposes of use, a
//! validity window and how far it may be re-delegated. Grantees holding
//! `share` may derive narrower grants. Grants, [`Membership`]s,
//! [`GuardianAppointment`]s and [`Revocation`]s are loaded into a
//! [`GrantIndex`] in log order; [`GrantIndex::decide`] then answers a
//! [`Request`] with a [`Decision`] as of a time and a log position.
//!
//! # Example
//!
//! ```
//! use medledger_grants::*;
//!
//! let patient = ActorKeys::generate(ActorKind::Patient)?;
//! let doctor = ActorKeys::generate(ActorKind::Clinician)?;
//!
//! let grant = Grant {
//!     issuer: patient.id(),
//!     patient: patient.id(),
//!     grantee: Grantee::Actor(doctor.id()),
//!     parent: None,
//!     scope: Scope::Categories([Category::new("Observation")?].into()),
//!     sensitivity: SensitivitySet::empty(),
//!     actions: ActionSet::empty().with(Action::Read),
//!     purposes: PurposeSet::empty().with(Purpose::Treat),
//!     validity: Validity::new(1_700_000_000, 1_800_000_000)?,
//!     max_delegation_depth: 0,
//!     issued_at: 1_700_000_000,
//!     nonce: Grant::fresh_nonce(),
//! };
//! let signed = SignedGrant::sign(grant, &patient)?;
//! // What goes into the log is the canonical encoding; decoding is strict.
//! let signed = SignedGrant::decode(&signed.encode())?;
//!
//! let mut index = GrantIndex::new();
//! index.register_actor(*patient.actor());
//! let id = index.add_grant(&signed, LogPosition(10))?;
//!
//! let mut request = Request {
//!     actor: doctor.id(),
//!     patient: patient.id(),
//!     record: RecordMeta {
//!         id: RecordId::new("Observation/42")?,
//!         category: Category::new("Observation")?,
//!         labels: SensitivitySet::empty(),
//!     },
//!     action: Action::Read,
//!     purpose: Purpose::Treat,
//!     time: 1_750_000_000,
//!     position: LogPosition(11),
//!     break_glass: None,
//! };
//! assert_eq!(index.decide(&request), Decision::Allow { chain: vec![id], emergency: None });
//!
//! // A record labelled HIV is excluded unless the grant names the label.
//! request.record.labels = SensitivitySet::empty().with(Sensitivity::Hiv);
//! assert_eq!(index.decide(&request), Decision::Deny(DenyReason::ExcludedSensitivity));
//! # Ok::<(), medledger_grants::Error>(())
//! ```
//!
//! # Security notes
//!
//! - Deny by default: a request is allowed only by a chain of verified
//!   grants from the patient (or an active guardian) down to the actor, each
//!   valid at the request's time, unrevoked as of its log position, and each
//!   covering the record, action and purpose — or by break-the-glass, which
//!   requires an active `emergency` membership in an organization the index
//!   trusts and a stated reason, and is marked so it can be audited and
//!   reported to the patient.
//! - Signatures are verified once, at load ([`GrantIndex::add_grant`],
//!   [`GrantIndex::add_grants`]); decisions never re-verify. The
//!   `add_verified_*` paths skip verification and are only for objects that
//!   were verified when first appended.
//! - Sensitivity labels of a record must come from the record's own
//!   metadata; a record labelled with anything the grant does not name is
//!   excluded.
//! - All ids (actors, grants, memberships, appointments, revocations) are
//!   BLAKE3 over a per-type context string and the canonical encoding; all
//!   signatures are Ed25519 over a per-type context string and the same
//!   encoding. Decoders are strict and bounded: malformed input is a typed
//!   [`Error`], never a panic.
//! - Secret keys ([`ActorKeys`]) are zeroized on drop and never printed.
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

pub mod actor;
mod codec;
pub mod decision;
pub mod error;
pub mod fhir;
pub mod grant;
pub mod guardian;
pub mod index;
pub mod membership;
pub mod permission;
pub mod revocation;
pub mod scope;
pub mod signed;

pub use actor::{Actor, ActorId, ActorKeys, ActorKind};
pub use decision::{Decision, DenyReason, Emergency, Request};
pub use error::{Error, Result};
pub use grant::{Grant, GrantId, Grantee, SignedGrant, MAX_CHAIN_LEN, MAX_DELEGATION_DEPTH};
pub use guardian::{AppointmentId, GuardianAppointment, SignedGuardianAppointment};
pub use index::{GrantIndex, LoadReport, Verification};
pub use membership::{Membership, MembershipId, Role, SignedMembership};
pub use permission::{Action, ActionSet, Purpose, PurposeSet, Sensitivity, SensitivitySet};
pub use revocation::{Revocation, RevocationId, RevocationTarget, SignedRevocation};
pub use scope::{Category, LogPosition, RecordId, RecordMeta, Scope, Validity};
pub use signed::{Signable, Signed};
