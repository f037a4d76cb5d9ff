//! Guardian and delegation flows end to end through the facade: a
//! guardian appointed for a minor grants and reads; a delegated grant
//! that attenuates its parent allows, a broader one is refused.

mod common;

use common::*;
use medledger::chain::MemoryNodeStore;
use medledger::grants::*;
use medledger::{Error, Ledger, NewRecord};

/// The grant chain of the last event of `patient`.
fn last_chain(ledger: &Ledger<MemoryNodeStore>, patient: &ActorKeys) -> Vec<[u8; 32]> {
    let (_, e) = last_patient_event(ledger, patient);
    e.grant_chain.iter().map(|g| g.0).collect()
}

#[test]
fn a_guardian_appointed_for_a_minor_grants_and_reads() {
    let ledger = ledger();
    let minor = actor(&ledger, ActorKind::Patient, "patients");
    let registry = actor(&ledger, ActorKind::Organization, "court-registry");
    let parent = actor(&ledger, ActorKind::Guardian, "family");
    let pediatrician = actor(&ledger, ActorKind::Clinician, "st-mary");
    let appointment = appointment(&registry, &parent, &minor);
    // An organization the ledger does not trust cannot appoint.
    let size = ledger.size();
    assert!(matches!(
        ledger.appoint_guardian(&appointment),
        Err(Error::Grants { .. })
    ));
    assert_eq!(ledger.size(), size);
    ledger.trust_organization(registry.id()).unwrap();
    let appointment_id = ledger.appoint_guardian(&appointment).unwrap();

    // The guardian writes and reads the minor's record.
    ledger
        .write(&record("Observation/growth", &minor, &parent, b"{}"))
        .unwrap();
    assert!(ledger
        .read(&parent, "Observation/growth", Purpose::PatientRequest)
        .is_ok());
    // The pediatrician is denied until the guardian grants for the minor.
    assert_eq!(
        denied(ledger.read(&pediatrician, "Observation/growth", Purpose::Treat)),
        DenyReason::NoGrant
    );
    let grant = SignedGrant::sign(grant_body(&parent, &minor, &pediatrician), &parent).unwrap();
    let gid = ledger.grant(&grant).unwrap();
    let r = ledger
        .read(&pediatrician, "Observation/growth", Purpose::Treat)
        .unwrap();
    assert_eq!(&r.body[..], b"{}");
    assert_eq!(last_chain(&ledger, &minor), [*gid.0.as_bytes()]);
    // Only the pediatrician's read is a disclosure; the guardian's is not.
    let report = ledger.disclosure_report(&minor.id()).unwrap();
    assert_eq!(report.len(), 1);

    // Revoking the appointment ends the guardian's authority and the
    // grants it issued.
    let rev = revocation(&registry, RevocationTarget::Appointment(appointment_id));
    ledger.revoke(&rev).unwrap();
    assert_eq!(
        denied(ledger.read(&pediatrician, "Observation/growth", Purpose::Treat)),
        DenyReason::Revoked
    );
    assert_eq!(
        denied(ledger.read(&parent, "Observation/growth", Purpose::PatientRequest)),
        DenyReason::NoGrant
    );
    ledger.verify().unwrap();
}

#[test]
fn an_attenuated_delegation_allows_and_a_broader_one_is_refused() {
    let ledger = ledger();
    let patient = actor(&ledger, ActorKind::Patient, "patients");
    let gp = actor(&ledger, ActorKind::Clinician, "st-mary");
    let specialist = actor(&ledger, ActorKind::Clinician, "riverside");
    for (id, category) in [
        ("Observation/1", "Observation"),
        ("Condition/1", "Condition"),
    ] {
        let rec = NewRecord {
            category,
            ..record(id, &patient, &patient, b"{}")
        };
        ledger.write(&rec).unwrap();
    }
    // The patient lets the GP read observations for treatment and share
    // them one level further.
    let mut root = grant_body(&patient, &patient, &gp);
    root.actions = root.actions.with(Action::Share);
    root.max_delegation_depth = 1;
    let root = SignedGrant::sign(root, &patient).unwrap();
    let root_id = ledger.grant(&root).unwrap();

    // An attenuated delegation (read only, no further sharing) allows.
    let child = SignedGrant::delegate(&root, grant_body(&gp, &patient, &specialist), &gp).unwrap();
    let child_id = ledger.grant(&child).unwrap();
    assert!(ledger
        .read(&specialist, "Observation/1", Purpose::Treat)
        .is_ok());
    assert_eq!(
        last_chain(&ledger, &patient),
        [*root_id.0.as_bytes(), *child_id.0.as_bytes()]
    );
    // ...within the parent's scope and purposes only.
    assert_eq!(
        denied(ledger.read(&specialist, "Condition/1", Purpose::Treat)),
        DenyReason::OutOfScope
    );

    // A broader delegation is refused when it is issued...
    let mut broad = grant_body(&gp, &patient, &specialist);
    broad.scope = Scope::All;
    broad.purposes = broad.purposes.with(Purpose::Research);
    assert!(matches!(
        SignedGrant::delegate(&root, broad.clone(), &gp),
        Err(medledger::grants::Error::DelegationWidens { .. })
    ));
    // ...and when it is signed by hand and handed to the ledger, which
    // refuses it without logging it.
    broad.parent = Some(root_id);
    let forged = SignedGrant::sign(broad, &gp).unwrap();
    let size = ledger.size();
    assert!(matches!(
        ledger.grant(&forged),
        Err(Error::Grants {
            source: medledger::grants::Error::DelegationWidens { .. },
            ..
        })
    ));
    assert_eq!(ledger.size(), size);
    assert_eq!(
        denied(ledger.read(&specialist, "Observation/1", Purpose::Research)),
        DenyReason::PurposeNotAllowed
    );
    assert_eq!(
        denied(ledger.read(&specialist, "Condition/1", Purpose::Treat)),
        DenyReason::OutOfScope
    );

    // Revoking the root ends the delegated access too.
    let rev = revocation(&patient, RevocationTarget::Grant(root_id));
    ledger.revoke(&rev).unwrap();
    assert_eq!(
        denied(ledger.read(&specialist, "Observation/1", Purpose::Treat)),
        DenyReason::Revoked
    );
    ledger.verify().unwrap();
}
