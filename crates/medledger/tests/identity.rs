//! Registering actors, trusting organizations and loading memberships
//! each leave an audit event, and memberships survive reopening.

use medledger::audit::{Action, Role as AuditRole};
use medledger::grants::*;
use medledger::{Ledger, LedgerKey, LEDGER_ORGANIZATION};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn membership(org: &ActorKeys, member: &ActorKeys, role: &str) -> SignedMembership {
    SignedMembership::sign(
        Membership {
            organization: org.id(),
            member: member.id(),
            role: Role::new(role).unwrap(),
            validity: Validity::new(now() - 60, now() + 3600).unwrap(),
            issued_at: now(),
        },
        org,
    )
    .unwrap()
}

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
    let ledger = Ledger::in_memory("test.example/ledger", &LedgerKey::from_bytes([1; 32])).unwrap();
    let hospital = ActorKeys::generate(ActorKind::Organization).unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    ledger.register(hospital.actor(), "st-mary").unwrap();
    ledger.register(doctor.actor(), "st-mary").unwrap();
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
    let (_, logged) = ledger.patient_events(&doctor.id()).unwrap().pop().unwrap();
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
            .write(&medledger::NewRecord {
                id: "Observation/1",
                patient: patient.id(),
                author: patient.id(),
                content_type: "application/fhir+json",
                category: "Observation",
                labels: SensitivitySet::empty(),
                body: b"x",
            })
            .unwrap();
    }
    let ledger = Ledger::open(dir.path(), "test.example/ledger", &key).unwrap();
    let r = ledger
        .emergency_read(&doctor, "Observation/1", "unconscious patient")
        .unwrap();
    assert!(r.emergency);
}
