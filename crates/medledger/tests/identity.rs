//! Registering actors, trusting organizations and loading memberships
//! each leave an audit event, and memberships survive reopening.

mod common;

use common::*;
use medledger::audit::{Action, Role as AuditRole};
use medledger::grants::*;
use medledger::{Ledger, LedgerKey, LEDGER_ORGANIZATION};

/// (action, actor role, actor organization) of each event logged under
/// `who`'s pseudonym.
fn events_of<N: medledger::chain::NodeStore>(
    ledger: &Ledger<N>,
    who: &ActorKeys,
) -> Vec<(Action, AuditRole, String)> {
    ledger
        .patient_events(&who.id())
        .unwrap()
        .into_iter()
        .map(|(_, e)| (e.action, e.actor.role, e.actor.organization))
        .collect()
}

#[test]
fn registration_trust_and_membership_are_logged() {
    let ledger = ledger();
    let hospital = actor(&ledger, ActorKind::Organization, "st-mary");
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    ledger.register(doctor.actor(), "riverside").unwrap();
    ledger.trust_organization(hospital.id()).unwrap();
    let m = membership(&hospital, &doctor, Role::EMERGENCY);
    ledger.add_membership(&m).unwrap();
    assert_eq!(ledger.size(), 5);
    let system = (AuditRole::System, LEDGER_ORGANIZATION.to_owned());
    assert_eq!(
        events_of(&ledger, &hospital),
        [
            (Action::Create, system.0, system.1.clone()),
            (Action::Grant, system.0, system.1.clone()),
        ]
    );
    assert_eq!(
        events_of(&ledger, &doctor),
        [
            (Action::Create, system.0, system.1.clone()),
            (Action::Update, system.0, system.1.clone()),
            (
                Action::Grant,
                AuditRole::ExternalParty,
                "st-mary".to_owned()
            ),
        ]
    );
    let (_, logged) = last_patient_event(&ledger, &doctor);
    assert_eq!(logged.commitment.unwrap().0, *m.id().0.as_bytes());
    ledger.verify().unwrap();
}

#[test]
fn memberships_added_back_to_back_all_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = LedgerKey::from_bytes([2; 32]);
    let hospital = ActorKeys::generate(ActorKind::Organization).unwrap();
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    {
        let ledger = Ledger::open(dir.path(), "test.example/ledger", &key).unwrap();
        for (a, label) in [
            (&hospital, "st-mary"),
            (&patient, "patients"),
            (&doctor, "st-mary"),
        ] {
            ledger.register(a.actor(), label).unwrap();
        }
        ledger.trust_organization(hospital.id()).unwrap();
        // Two memberships with nothing logged between them (they used to
        // share one state key, and the first was lost on reopening).
        ledger
            .add_membership(&membership(&hospital, &doctor, Role::EMERGENCY))
            .unwrap();
        ledger
            .add_membership(&membership(&hospital, &doctor, "cardiology"))
            .unwrap();
        ledger
            .write(&record("Observation/1", &patient, &patient, b"x"))
            .unwrap();
    }
    let ledger = Ledger::open(dir.path(), "test.example/ledger", &key).unwrap();
    let r = ledger
        .emergency_read(&doctor, "Observation/1", "unconscious patient")
        .unwrap();
    assert!(r.emergency);
}
