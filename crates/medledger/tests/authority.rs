//! Who may write, erase and speak for a patient, through the public API:
//! the patient, their active guardian, and (for writes) grantees of
//! `write`; everyone else is refused with a typed error and a denied
//! audit event.

mod common;

use common::*;
use medledger::chain::MemoryNodeStore;
use medledger::grants::*;
use medledger::{Error, Ledger, LedgerKey};

struct World {
    ledger: Ledger<MemoryNodeStore>,
    patient: ActorKeys,
    doctor: ActorKeys,
    guardian: ActorKeys,
}

fn world() -> World {
    let ledger = ledger();
    let patient = actor(&ledger, ActorKind::Patient, "patients");
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    let guardian = actor(&ledger, ActorKind::Guardian, "family");
    World {
        ledger,
        patient,
        doctor,
        guardian,
    }
}

fn appoint(w: &World) -> AppointmentId {
    let a = appointment(&w.patient, &w.guardian, &w.patient);
    w.ledger.appoint_guardian(&a).unwrap()
}

fn grant(w: &World, grantee: &ActorKeys, actions: ActionSet) -> GrantId {
    let g = patient_grant(&w.patient, grantee, observations(), actions);
    w.ledger.grant(&g).unwrap()
}

/// The last event of the patient: its action name and whether it was
/// denied.
fn last_event(w: &World) -> (u64, &'static str, bool) {
    let (i, e) = last_patient_event(&w.ledger, &w.patient);
    (
        i,
        e.action.name(),
        matches!(e.outcome, medledger::audit::Outcome::Denied { .. }),
    )
}

#[test]
fn only_the_patient_or_an_active_guardian_may_erase() {
    let w = world();
    w.ledger
        .write(&record("Observation/1", &w.patient, &w.patient, b"one"))
        .unwrap();
    w.ledger
        .write(&record("Observation/2", &w.patient, &w.patient, b"two"))
        .unwrap();
    // A clinician holding a read grant still may not erase.
    grant(&w, &w.doctor, ActionSet::empty().with(Action::Read));
    let size = w.ledger.size();
    let event = match w.ledger.erase(&w.doctor.id(), "Observation/1") {
        Err(Error::AccessDenied {
            reason: DenyReason::ActionNotAllowed,
            event,
            ..
        }) => event,
        other => panic!("expected a denial, got {other:?}"),
    };
    assert_eq!((event, w.ledger.size()), (size, size + 1));
    assert_eq!(last_event(&w), (event, "erase", true));
    // Nothing was erased.
    assert_eq!(
        &w.ledger
            .read(&w.doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        b"one"
    );
    // A guardian without an appointment is refused too.
    assert!(matches!(
        w.ledger.erase(&w.guardian.id(), "Observation/1"),
        Err(Error::AccessDenied { .. })
    ));
    // Appointed, the guardian erases; the patient erases their own.
    appoint(&w);
    let at = w.ledger.erase(&w.guardian.id(), "Observation/1").unwrap();
    assert_eq!(last_event(&w), (at, "erase", false));
    w.ledger.erase(&w.patient.id(), "Observation/2").unwrap();
    assert_eq!(w.ledger.verify().unwrap().erased, 2);
}

#[test]
fn a_revoked_guardian_may_not_erase() {
    let w = world();
    w.ledger
        .write(&record("Observation/1", &w.patient, &w.patient, b"one"))
        .unwrap();
    let appointment = appoint(&w);
    let rev = revocation(&w.patient, RevocationTarget::Appointment(appointment));
    w.ledger.revoke(&rev).unwrap();
    assert!(matches!(
        w.ledger.erase(&w.guardian.id(), "Observation/1"),
        Err(Error::AccessDenied {
            reason: DenyReason::ActionNotAllowed,
            ..
        })
    ));
    assert_eq!(last_event(&w).1, "erase");
}

#[test]
fn a_guardian_appointment_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = LedgerKey::from_bytes([2; 32]);
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let guardian = ActorKeys::generate(ActorKind::Guardian).unwrap();
    {
        let ledger = Ledger::open(dir.path(), "test.example/ledger", &key).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        ledger.register(guardian.actor(), "family").unwrap();
        ledger
            .appoint_guardian(&appointment(&patient, &guardian, &patient))
            .unwrap();
        ledger
            .write(&record("Observation/1", &patient, &patient, b"x"))
            .unwrap();
    }
    let ledger = Ledger::open(dir.path(), "test.example/ledger", &key).unwrap();
    ledger.erase(&guardian.id(), "Observation/1").unwrap();
    ledger.verify().unwrap();
}

#[test]
fn writes_need_the_patient_a_guardian_or_a_write_grant() {
    let w = world();
    // No grant: refused, logged as a denied create, nothing written.
    let (reason, event) = denial(w.ledger.write(&record(
        "Observation/1",
        &w.patient,
        &w.doctor,
        b"by doctor",
    )));
    assert_eq!(reason, DenyReason::NoGrant);
    assert_eq!(last_event(&w), (event, "create", true));
    assert!(matches!(
        w.ledger
            .read(&w.patient, "Observation/1", Purpose::PatientRequest),
        Err(Error::UnknownRecord { .. })
    ));
    // A read grant does not allow writing.
    grant(&w, &w.doctor, ActionSet::empty().with(Action::Read));
    assert_eq!(
        denial(w.ledger.write(&record(
            "Observation/1",
            &w.patient,
            &w.doctor,
            b"by doctor"
        )))
        .0,
        DenyReason::ActionNotAllowed
    );
    // A guardian without an appointment may not write either.
    assert_eq!(
        denial(w.ledger.write(&record(
            "Observation/1",
            &w.patient,
            &w.guardian,
            b"by guardian"
        )))
        .0,
        DenyReason::NoGrant
    );
    // A write grant allows, within its scope and labels only.
    grant(&w, &w.doctor, ActionSet::empty().with(Action::Write));
    let v1 = w
        .ledger
        .write(&record(
            "Observation/1",
            &w.patient,
            &w.doctor,
            b"by doctor",
        ))
        .unwrap();
    assert_eq!(v1.version, 1);
    let mut labelled = record("Observation/1", &w.patient, &w.doctor, b"hiv result");
    labelled.labels = SensitivitySet::empty().with(Sensitivity::Hiv);
    assert_eq!(
        denial(w.ledger.write(&labelled)).0,
        DenyReason::ExcludedSensitivity
    );
    let mut other = record("Condition/1", &w.patient, &w.doctor, b"condition");
    other.category = "Condition";
    assert_eq!(denial(w.ledger.write(&other)).0, DenyReason::OutOfScope);
    // Moving a record out of the grant's scope is refused too.
    let mut moved = record("Observation/1", &w.patient, &w.patient, b"by patient");
    moved.category = "Condition";
    w.ledger.write(&moved).unwrap();
    let mut back = record("Observation/1", &w.patient, &w.doctor, b"moved back");
    back.category = "Observation";
    assert_eq!(denial(w.ledger.write(&back)).0, DenyReason::OutOfScope);
    // The appointed guardian writes.
    appoint(&w);
    let v = w
        .ledger
        .write(&record(
            "Observation/1",
            &w.patient,
            &w.guardian,
            b"by guardian",
        ))
        .unwrap();
    assert_eq!(v.version, 3);
    assert_eq!(w.ledger.verify().unwrap().versions, 3);
}
