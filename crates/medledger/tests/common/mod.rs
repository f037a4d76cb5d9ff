//! Fixtures shared by the facade's integration tests: one clock reading per
//! test binary, ledgers and registered actors, records, the signed grants,
//! revocations, memberships and appointments the flows are built from, a
//! clinic to run them in, witnesses, and an impostor key holder. Each test
//! file declares `mod common;` and `use common::*;`.

// Each test binary compiles this module and uses only some of its helpers.
#![allow(dead_code)]

use medledger::chain::{CosignatureSigner, MemoryNodeStore, NodeStore, Policy, Witness};
use medledger::grants::*;
use medledger::{Error, Ledger, LedgerKey, NewRecord};

/// One clock reading for the whole test binary: a child grant built a
/// second after its parent would otherwise outlive it by that second and
/// be refused as broader.
pub fn now() -> u64 {
    static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NOW.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    })
}

/// From a minute before [`now`] to an hour after it.
pub fn validity() -> Validity {
    Validity::new(now() - 60, now() + 3600).unwrap()
}

/// An in-memory ledger of `origin` under the ledger key of 32 `key` bytes.
pub fn memory_ledger(origin: &str, key: u8) -> Ledger<MemoryNodeStore> {
    Ledger::in_memory(origin, &LedgerKey::from_bytes([key; 32])).unwrap()
}

/// The in-memory ledger of the single-ledger tests.
pub fn ledger() -> Ledger<MemoryNodeStore> {
    memory_ledger("test.example/ledger", 1)
}

/// Fresh keys of `kind`, registered with `ledger` under `org`.
pub fn actor<N: NodeStore>(ledger: &Ledger<N>, kind: ActorKind, org: &str) -> ActorKeys {
    let keys = ActorKeys::generate(kind).unwrap();
    ledger.register(keys.actor(), org).unwrap();
    keys
}

/// An unlabelled FHIR JSON observation of `patient` written by `author`.
pub fn record<'a>(
    id: &'a str,
    patient: &ActorKeys,
    author: &ActorKeys,
    body: &'a [u8],
) -> NewRecord<'a> {
    NewRecord {
        id,
        patient: patient.id(),
        author: author.id(),
        content_type: "application/fhir+json",
        category: "Observation",
        labels: SensitivitySet::empty(),
        body,
    }
}

/// The category most grants cover: observations.
pub fn observations() -> Scope {
    Scope::Categories([Category::new("Observation").unwrap()].into())
}

/// `issuer`'s grant to `grantee` of reading `patient`'s observations for
/// treatment: no sensitive labels, not delegable, valid for [`validity`].
pub fn grant_body(issuer: &ActorKeys, patient: &ActorKeys, grantee: &ActorKeys) -> Grant {
    Grant {
        issuer: issuer.id(),
        patient: patient.id(),
        grantee: Grantee::Actor(grantee.id()),
        parent: None,
        scope: observations(),
        sensitivity: SensitivitySet::empty(),
        actions: ActionSet::empty().with(Action::Read),
        purposes: PurposeSet::empty().with(Purpose::Treat),
        validity: validity(),
        max_delegation_depth: 0,
        issued_at: now(),
        nonce: Grant::fresh_nonce(),
    }
}

/// The patient's own signed grant to `grantee` of `actions` over `scope`,
/// otherwise as [`grant_body`].
pub fn patient_grant(
    patient: &ActorKeys,
    grantee: &ActorKeys,
    scope: Scope,
    actions: ActionSet,
) -> SignedGrant {
    let body = Grant {
        scope,
        actions,
        ..grant_body(patient, patient, grantee)
    };
    SignedGrant::sign(body, patient).unwrap()
}

/// `revoker`'s signed revocation of `target`.
pub fn revocation(revoker: &ActorKeys, target: RevocationTarget) -> SignedRevocation {
    SignedRevocation::sign(
        Revocation {
            revoker: revoker.id(),
            target,
            issued_at: now(),
        },
        revoker,
    )
    .unwrap()
}

/// `org`'s signed membership of `member` in `role`, valid for [`validity`].
pub fn membership(org: &ActorKeys, member: &ActorKeys, role: &str) -> SignedMembership {
    SignedMembership::sign(
        Membership {
            organization: org.id(),
            member: member.id(),
            role: Role::new(role).unwrap(),
            validity: validity(),
            issued_at: now(),
        },
        org,
    )
    .unwrap()
}

/// `appointer`'s signed appointment of `guardian` for `patient`, valid for
/// [`validity`].
pub fn appointment(
    appointer: &ActorKeys,
    guardian: &ActorKeys,
    patient: &ActorKeys,
) -> SignedGuardianAppointment {
    SignedGuardianAppointment::sign(
        GuardianAppointment {
            appointer: appointer.id(),
            guardian: guardian.id(),
            patient: patient.id(),
            validity: validity(),
            issued_at: now(),
        },
        appointer,
    )
    .unwrap()
}

/// A patient, a doctor and an emergency-room clinician who holds the
/// emergency role in a trusted hospital, all registered with `ledger`.
pub struct Clinic<N: NodeStore> {
    pub ledger: Ledger<N>,
    pub patient: ActorKeys,
    pub doctor: ActorKeys,
    pub er: ActorKeys,
    pub hospital: ActorKeys,
}

/// Registers a [`Clinic`]'s actors with `ledger` (patient, doctor, ER
/// clinician, hospital, in that order), trusts the hospital and loads the
/// ER clinician's emergency membership.
pub fn clinic<N: NodeStore>(ledger: Ledger<N>) -> Clinic<N> {
    let patient = actor(&ledger, ActorKind::Patient, "patients");
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    let er = actor(&ledger, ActorKind::Clinician, "st-mary");
    let hospital = actor(&ledger, ActorKind::Organization, "st-mary");
    ledger.trust_organization(hospital.id()).unwrap();
    ledger
        .add_membership(&membership(&hospital, &er, Role::EMERGENCY))
        .unwrap();
    Clinic {
        ledger,
        patient,
        doctor,
        er,
        hospital,
    }
}

/// Grants `grantee` reading the clinic patient's observations for
/// treatment.
pub fn grant_to<N: NodeStore>(w: &Clinic<N>, grantee: &ActorKeys) -> GrantId {
    let g = patient_grant(
        &w.patient,
        grantee,
        observations(),
        ActionSet::empty().with(Action::Read),
    );
    w.ledger.grant(&g).unwrap()
}

/// The reason and logged event of an access denial; panics on anything
/// else.
pub fn denial<T: std::fmt::Debug>(r: medledger::Result<T>) -> (DenyReason, u64) {
    match r {
        Err(Error::AccessDenied { reason, event, .. }) => (reason, event),
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// The reason of an access denial; panics on anything else.
pub fn denied<T: std::fmt::Debug>(r: medledger::Result<T>) -> DenyReason {
    denial(r).0
}

/// The last event logged under `patient`'s pseudonym, with its index.
pub fn last_patient_event<N: NodeStore>(
    ledger: &Ledger<N>,
    patient: &ActorKeys,
) -> (u64, medledger::audit::AuditEvent) {
    ledger.patient_events(&patient.id()).unwrap().pop().unwrap()
}

/// An in-memory witness named `name` that cosigns `ledger`'s log.
pub fn witness<N: NodeStore>(name: &str, ledger: &Ledger<N>) -> Witness {
    let mut w = Witness::in_memory(CosignatureSigner::generate(name).unwrap());
    w.add_log(ledger.log_key().unwrap());
    w
}

/// A verification policy trusting `ledger`'s log key and requiring the
/// cosignature of `witness`.
pub fn policy<N: NodeStore>(ledger: &Ledger<N>, witness: &Witness) -> Policy {
    Policy::new(
        ledger.log_key().unwrap(),
        vec![witness.signer().verifier().unwrap()],
        1,
    )
    .unwrap()
}

/// A key unwrapper that claims to be `claimed` but holds `keys`' secret.
pub struct Impostor<'a> {
    pub claimed: ActorId,
    pub keys: &'a ActorKeys,
}

impl medledger::KeyUnwrapper for Impostor<'_> {
    fn actor(&self) -> ActorId {
        self.claimed
    }

    fn public_key(&self) -> medledger::envelope::RecipientPublicKey {
        medledger::KeyUnwrapper::public_key(self.keys)
    }

    fn unwrap_data_key(
        &self,
        header: &medledger::envelope::Header,
        context: &medledger::envelope::RecordContext,
    ) -> medledger::envelope::Result<medledger::envelope::DataKey> {
        medledger::KeyUnwrapper::unwrap_data_key(self.keys, header, context)
    }
}
