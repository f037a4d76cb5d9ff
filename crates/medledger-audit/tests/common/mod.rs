//! Shared fixtures: events of every kind, a log with a witness, and the
//! scripted history the report tests check.
#![allow(dead_code)]

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use medledger_audit::*;
use medledger_chain::{
    CosignatureSigner, Ed25519Signer, HashAlg, LogKey, MemoryNodeStore, MerkleLog, Policy, Witness,
};
use medledger_store::MemoryLog;

pub const ORIGIN: &str = "audit.example/log";

pub fn id(b: u8) -> Id32 {
    Id32([b; 32])
}

pub fn event(action: Action, patient: PatientKey, actor: (u8, Role), time_ms: u64) -> AuditEvent {
    AuditEvent {
        action,
        actor: Actor {
            id: id(actor.0),
            role: actor.1,
            organization: "st-mary".into(),
        },
        patient,
        record: Some(RecordRef {
            id: "rec-1".into(),
            version: 1,
        }),
        time_ms,
        source: "node-a".into(),
        purpose: PurposeOfUse::Treatment,
        outcome: Outcome::Success,
        grant_chain: vec![id(0xa0)],
        emergency: if action == Action::EmergencyAccess {
            Some("patient unconscious in ER".into())
        } else {
            None
        },
        prev_for_patient: None,
        refers_to: None,
        commitment: None,
    }
}

pub fn secret() -> LedgerSecret {
    LedgerSecret::from_bytes([0x5e; 32])
}

pub fn patient_a() -> PatientKey {
    secret().patient_key(b"MRN-A").unwrap()
}

pub fn patient_b() -> PatientKey {
    secret().patient_key(b"MRN-B").unwrap()
}

/// The log, its signer, a witness and the matching policy.
pub struct Fixture {
    pub log: AuditLog<MemoryNodeStore>,
    pub signer: Ed25519Signer,
    pub witness: Witness,
    pub policy: Policy,
}

pub fn log_signer() -> Ed25519Signer {
    Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[0x11; 32])).unwrap()
}

pub fn witness_signer() -> CosignatureSigner {
    CosignatureSigner::new("witness.example", SigningKey::from_bytes(&[0x22; 32])).unwrap()
}

pub fn fixture() -> Fixture {
    let log = AuditLog::open(
        ORIGIN,
        Arc::new(MemoryLog::new()),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap();
    let signer = log_signer();
    let log_key = LogKey::new(ORIGIN, signer.verifier(), HashAlg::Blake3).unwrap();
    let mut witness = Witness::in_memory(witness_signer());
    witness.add_log(log_key.clone());
    let policy = Policy::new(log_key, vec![witness.signer().verifier().unwrap()], 1).unwrap();
    Fixture {
        log,
        signer,
        witness,
        policy,
    }
}

pub const T0: u64 = 1_764_307_200_000;

/// The scripted history (log indexes in the comments):
///
/// 0 A create by clinician 1      5 A emergency access by nurse 2
/// 1 A grant by patient           6 A export by external party 4 (legal)
/// 2 A read by clinician 1        7 A emergency review of 5 by admin 5
/// 3 B read by clinician 1        8 B emergency access by nurse 2
/// 4 A read by researcher 3, denied
///
/// with checkpoint 0 after index 4 (size 5) and checkpoint 1 after 8 (size 9),
/// signed without heads entries (see [`scripted_with_heads`]).
pub fn scripted() -> Fixture {
    scripted_with(false)
}

/// The same history with checkpoints issued by `checkpoint_with_heads`:
/// a heads entry at 5 (checkpoint 0 at size 6), the later events at 6..=9,
/// a heads entry at 10 (checkpoint 1 at size 11).
pub fn scripted_with_heads() -> Fixture {
    scripted_with(true)
}

fn checkpoint(f: &Fixture, heads: bool, time: u64) {
    if heads {
        f.log
            .checkpoint_with_heads(&f.signer, time, &[&f.witness])
            .unwrap();
    } else {
        f.log.checkpoint(&f.signer, time, &[&f.witness]).unwrap();
    }
}

fn scripted_with(heads: bool) -> Fixture {
    let f = fixture();
    let (a, b) = (patient_a(), patient_b());
    let mut denied = event(Action::Read, a, (3, Role::Researcher), T0 + 4000);
    denied.purpose = PurposeOfUse::Research;
    denied.outcome = Outcome::Denied {
        code: 403,
        reason: "no grant for research".into(),
    };
    denied.grant_chain.clear();
    let mut grant = event(Action::Grant, a, (7, Role::Patient), T0 + 1000);
    grant.purpose = PurposeOfUse::PatientRequested;
    let first = [
        event(Action::Create, a, (1, Role::Clinician), T0),
        grant,
        event(Action::Read, a, (1, Role::Clinician), T0 + 2000),
        event(Action::Read, b, (1, Role::Clinician), T0 + 3000),
        denied,
    ];
    for e in first {
        f.log.append(e).unwrap();
    }
    checkpoint(&f, heads, 1_764_307_210);
    let base = f.log.size();
    let mut emergency = event(Action::EmergencyAccess, a, (2, Role::Nurse), T0 + 5000);
    emergency.purpose = PurposeOfUse::EmergencyTreatment;
    emergency.grant_chain.clear();
    let mut export = event(Action::Export, a, (4, Role::ExternalParty), T0 + 6000);
    export.purpose = PurposeOfUse::Legal;
    export.actor.organization = "county-court".into();
    let mut review = event(
        Action::EmergencyReview,
        a,
        (5, Role::Administrator),
        T0 + 7000,
    );
    review.refers_to = Some(base);
    review.record = None;
    let mut emergency_b = event(Action::EmergencyAccess, b, (2, Role::Nurse), T0 + 8000);
    emergency_b.purpose = PurposeOfUse::EmergencyTreatment;
    let receipts = f
        .log
        .append_batch(vec![emergency, export, review, emergency_b])
        .unwrap();
    assert_eq!(
        receipts.iter().map(|r| r.index).collect::<Vec<_>>(),
        [base, base + 1, base + 2, base + 3]
    );
    checkpoint(&f, heads, 1_764_307_220);
    f
}

/// One event of every action, with every optional field both ways.
pub fn every_kind() -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for (k, &action) in Action::ALL.iter().enumerate() {
        let role = Role::ALL[k % Role::ALL.len()];
        let mut e = event(action, patient_a(), (k as u8, role), T0 + k as u64);
        e.purpose = PurposeOfUse::ALL[k % PurposeOfUse::ALL.len()];
        out.push(e.clone());
        e.record = None;
        e.grant_chain = (0..16).map(|g| id(g as u8)).collect();
        e.outcome = Outcome::Denied {
            code: 65535,
            reason: "é".repeat(127),
        };
        e.emergency = Some("x".repeat(255));
        e.prev_for_patient = Some(i64::MAX as u64);
        e.refers_to = Some(0);
        out.push(e);
    }
    out
}
