//! The audit event model, after HL7 FHIR AuditEvent and IHE ATNA: who did
//! what to which record of which patient, when, where, why, with what
//! outcome, under which grants, and whether it was an emergency.
//!
//! An event holds no record contents and no patient identity in clear:
//! the patient appears only as a [`PatientKey`] pseudonym.

use crate::pseudonym::PatientKey;

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $code:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// The one-byte code in the binary encoding.
            pub const fn code(self) -> u8 {
                match self { $($name::$v => $code,)* }
            }

            /// The value of a code, if known.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$v),)* _ => None }
            }

            /// A short stable name (used in reports and the FHIR export).
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $text,)* }
            }
        }
    };
}

coded_enum! {
    /// What was done.
    Action {
        /// A record was written (first version).
        Create = 1, "create";
        /// A record was read.
        Read = 2, "read";
        /// A new version of a record was written.
        Update = 3, "update";
        /// Access was granted.
        Grant = 4, "grant";
        /// A grant was revoked.
        Revoke = 5, "revoke";
        /// Break-the-glass access (always carries an emergency reason).
        EmergencyAccess = 6, "emergency-access";
        /// Records were exported (disclosed in bulk).
        Export = 7, "export";
        /// A record was erased (crypto-shredded).
        Erase = 8, "erase";
        /// A record's data key was rotated.
        KeyRotation = 9, "key-rotation";
        /// An emergency access was reviewed (`refers_to` names it).
        EmergencyReview = 10, "emergency-review";
        /// A record version received from another organization's log was
        /// stored (a share package imported; the local write).
        Import = 11, "import";
    }
}

coded_enum! {
    /// The actor's role (FHIR AuditEvent.agent.type).
    Role {
        /// The patient.
        Patient = 1, "patient";
        /// A guardian or legal representative.
        Guardian = 2, "guardian";
        /// A physician or other clinician.
        Clinician = 3, "clinician";
        /// A nurse.
        Nurse = 4, "nurse";
        /// An administrator of the system.
        Administrator = 5, "administrator";
        /// A researcher.
        Researcher = 6, "researcher";
        /// An auditor or privacy officer.
        Auditor = 7, "auditor";
        /// A software system acting on its own.
        System = 8, "system";
        /// An external organization (payer, public health, court).
        ExternalParty = 9, "external-party";
    }
}

coded_enum! {
    /// Why (HL7 v3 PurposeOfUse, `http://terminology.hl7.org/CodeSystem/v3-ActReason`;
    /// the name is the HL7 code).
    PurposeOfUse {
        /// Treatment.
        Treatment = 1, "TREAT";
        /// Emergency treatment.
        EmergencyTreatment = 2, "ETREAT";
        /// Payment.
        Payment = 3, "HPAYMT";
        /// Healthcare operations.
        Operations = 4, "HOPERAT";
        /// Requested by the patient.
        PatientRequested = 5, "PATRQT";
        /// Research.
        Research = 6, "HRESCH";
        /// Public health.
        PublicHealth = 7, "PUBHLTH";
        /// Legal (court order, law enforcement).
        Legal = 8, "HLEGAL";
        /// System administration.
        SystemAdministration = 9, "HSYSADMIN";
    }
}

/// A 32-byte identifier (actor, grant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id32(pub [u8; 32]);

impl Id32 {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        crate::pseudonym::hex32(&self.0)
    }
}

/// Who acted (FHIR AuditEvent.agent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The actor's id (e.g. a hash of their signing key).
    pub id: Id32,
    /// Their role.
    pub role: Role,
    /// Their organization's id (1..=64 bytes of UTF-8).
    pub organization: String,
}

/// Which record (FHIR AuditEvent.entity.what).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// The record id (1..=64 bytes of UTF-8; an opaque id, never contents).
    pub id: String,
    /// The record version.
    pub version: u64,
}

/// The outcome (FHIR AuditEvent.outcome).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The action was carried out.
    Success,
    /// The action was refused.
    Denied {
        /// A machine-readable reason code (the policy's denial code).
        code: u16,
        /// A short human-readable reason (at most 255 bytes of UTF-8).
        reason: String,
    },
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// What was done.
    pub action: Action,
    /// Who did it.
    pub actor: Actor,
    /// Whose data (pseudonym).
    pub patient: PatientKey,
    /// Which record, if the action concerns one.
    pub record: Option<RecordRef>,
    /// When, in Unix milliseconds (below 2^63).
    pub time_ms: u64,
    /// Where: the source node's id (1..=64 bytes of UTF-8).
    pub source: String,
    /// Why.
    pub purpose: PurposeOfUse,
    /// With what result.
    pub outcome: Outcome,
    /// The grants the access relied on, from the patient's grant to the
    /// actor's (at most [`crate::codec::MAX_GRANTS`]).
    pub grant_chain: Vec<Id32>,
    /// The stated reason of a break-the-glass access (at most 255 bytes);
    /// `Some` exactly when the access was an emergency.
    pub emergency: Option<String>,
    /// The log index of this patient's previous event, or `None` for the
    /// patient's first. Set by [`crate::AuditLog::append`]; this is the
    /// per-patient chain that makes exports checkably complete.
    pub prev_for_patient: Option<u64>,
    /// The log index of an event this one acts on (the emergency access an
    /// [`Action::EmergencyReview`] closes).
    pub refers_to: Option<u64>,
    /// A commitment to the content the event concerns, for example the
    /// blinded commitment to a record version's ciphertext that a
    /// [`Action::Create`], [`Action::Update`] or [`Action::Import`] wrote.
    /// It must reveal nothing about the content by itself (blind it with a
    /// secret nonce).
    pub commitment: Option<Id32>,
}

impl AuditEvent {
    /// Whether the event is a disclosure for a HIPAA 45 CFR 164.528
    /// accounting: a successful read, export or emergency access by anyone
    /// other than the patient or their guardian.
    pub fn is_disclosure(&self) -> bool {
        matches!(
            self.action,
            Action::Read | Action::Export | Action::EmergencyAccess
        ) && self.outcome == Outcome::Success
            && !matches!(self.actor.role, Role::Patient | Role::Guardian)
    }
}
