//! End-to-end tests of every data-flow path of DESIGN.md through the
//! public API, on the in-memory backend.

mod common;

use common::*;
use medledger::audit::verify_export;
use medledger::chain::{CosignatureSigner, MemoryNodeStore, Policy};
use medledger::grants::*;
use medledger::{Error, NewRecord};

/// The clinic of these tests, where the hospital writes the patient's
/// records under her write grant.
fn world() -> Clinic<MemoryNodeStore> {
    let w = clinic(ledger());
    let write = SignedGrant::sign(
        Grant {
            scope: Scope::All,
            sensitivity: SensitivitySet::all(),
            actions: ActionSet::empty().with(Action::Write),
            ..grant_body(&w.patient, &w.patient, &w.hospital)
        },
        &w.patient,
    )
    .unwrap();
    w.ledger.grant(&write).unwrap();
    w
}

fn write(
    w: &Clinic<MemoryNodeStore>,
    id: &str,
    body: &[u8],
    labels: SensitivitySet,
) -> medledger::Written {
    let rec = NewRecord {
        labels,
        ..record(id, &w.patient, &w.hospital, body)
    };
    w.ledger.write(&rec).unwrap()
}

#[test]
fn write_grant_read_revoke_and_versions() {
    let w = world();
    let base = w.ledger.size();
    let v1 = write(&w, "Observation/1", b"v1 body", SensitivitySet::empty());
    assert_eq!((v1.version, v1.event), (1, base));
    // The patient reads their own record; the doctor is denied by default.
    let own = w
        .ledger
        .read(&w.patient, "Observation/1", Purpose::PatientRequest)
        .unwrap();
    assert_eq!(&own.body[..], b"v1 body");
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );

    let gid = grant_to(&w, &w.doctor);
    let r = w
        .ledger
        .read(&w.doctor, "Observation/1", Purpose::Treat)
        .unwrap();
    assert_eq!(
        (&r.body[..], r.version, r.emergency),
        (&b"v1 body"[..], 1, false)
    );
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/1", Purpose::Research)),
        DenyReason::PurposeNotAllowed
    );
    let v2 = write(&w, "Observation/1", b"v2 body", SensitivitySet::empty());
    assert_eq!(v2.version, 2);
    assert_eq!(
        &w.ledger
            .read(&w.doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        b"v2 body"
    );
    assert_eq!(
        &w.ledger
            .read_version(&w.doctor, "Observation/1", 1, Purpose::Treat)
            .unwrap()
            .body[..],
        b"v1 body"
    );

    let rev = revocation(&w.patient, RevocationTarget::Grant(gid));
    w.ledger.revoke(&rev).unwrap();
    write(&w, "Observation/1", b"v3 body", SensitivitySet::empty());
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::Revoked
    );
    assert_eq!(
        denied(
            w.ledger
                .read_version(&w.doctor, "Observation/1", 1, Purpose::Treat)
        ),
        DenyReason::Revoked
    );

    // Every step is in the patient's history; only the doctor's two
    // successful reads (and none of the patient's own) are disclosures.
    let events = w.ledger.patient_events(&w.patient.id()).unwrap();
    let actions: Vec<&str> = events
        .iter()
        .filter(|(i, _)| *i >= base)
        .map(|(_, e)| e.action.name())
        .collect();
    assert_eq!(
        actions,
        [
            "create",
            "read",
            "read",
            "grant",
            "read",
            "read",
            "update",
            "read",
            "read",
            "revoke",
            "key-rotation",
            "update",
            "read",
            "read"
        ]
    );
    assert_eq!(
        w.ledger.disclosure_report(&w.patient.id()).unwrap().len(),
        3
    );
    let report = w.ledger.verify().unwrap();
    assert_eq!((report.entries, report.versions), (base + 14, 3));
}

#[test]
fn sensitive_records_need_the_label_in_the_grant() {
    let w = world();
    write(
        &w,
        "Observation/hiv",
        b"sensitive",
        SensitivitySet::empty().with(Sensitivity::Hiv),
    );
    grant_to(&w, &w.doctor);
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/hiv", Purpose::Treat)),
        DenyReason::ExcludedSensitivity
    );
}

/// Each version is decided with its own labels: a new version written
/// without a label is readable under a grant that excludes the label, but
/// it never opens the earlier labelled version, and a later labelled
/// version is excluded again.
#[test]
fn each_version_is_decided_with_its_own_labels() {
    let w = world();
    let hiv = SensitivitySet::empty().with(Sensitivity::Hiv);
    write(&w, "Observation/hiv", b"sensitive v1", hiv);
    write(&w, "Observation/hiv", b"plain v2", SensitivitySet::empty());
    grant_to(&w, &w.doctor);
    assert_eq!(
        denied(
            w.ledger
                .read_version(&w.doctor, "Observation/hiv", 1, Purpose::Treat)
        ),
        DenyReason::ExcludedSensitivity
    );
    assert_eq!(
        &w.ledger
            .read(&w.doctor, "Observation/hiv", Purpose::Treat)
            .unwrap()
            .body[..],
        b"plain v2"
    );
    write(&w, "Observation/hiv", b"sensitive v3", hiv);
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/hiv", Purpose::Treat)),
        DenyReason::ExcludedSensitivity
    );
    assert_eq!(
        &w.ledger
            .read_version(&w.doctor, "Observation/hiv", 2, Purpose::Treat)
            .unwrap()
            .body[..],
        b"plain v2"
    );
    // Streamed reads are decided the same way, per version.
    let mut out = Vec::new();
    let streamed = w
        .ledger
        .read_to(
            &w.doctor,
            "Observation/hiv",
            Some(2),
            Purpose::Treat,
            &mut out,
        )
        .unwrap();
    assert_eq!((streamed.version, &out[..]), (2, &b"plain v2"[..]));
    let mut out = Vec::new();
    match w.ledger.read_to(
        &w.doctor,
        "Observation/hiv",
        Some(1),
        Purpose::Treat,
        &mut out,
    ) {
        Err(Error::AccessDenied { reason, .. }) => {
            assert_eq!(reason, DenyReason::ExcludedSensitivity)
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert!(out.is_empty());
    // The patient reads every version.
    for v in 1..=3 {
        assert!(w
            .ledger
            .read_version(&w.patient, "Observation/hiv", v, Purpose::PatientRequest)
            .is_ok());
    }
}

#[test]
fn emergency_access_is_allowed_flagged_and_reported() {
    let w = world();
    write(&w, "Observation/1", b"allergies", SensitivitySet::empty());
    // Without an emergency role: denied.
    assert_eq!(
        denied(
            w.ledger
                .emergency_read(&w.doctor, "Observation/1", "patient unconscious")
        ),
        DenyReason::NoEmergencyRole
    );
    assert_eq!(
        denied(w.ledger.emergency_read(&w.er, "Observation/1", "   ")),
        DenyReason::EmergencyReasonInvalid
    );
    let r = w
        .ledger
        .emergency_read(&w.er, "Observation/1", "patient unconscious")
        .unwrap();
    assert!(r.emergency);
    assert_eq!(&r.body[..], b"allergies");
    let report = w.ledger.disclosure_report(&w.patient.id()).unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].emergency.as_deref(), Some("patient unconscious"));
    // Denied break-the-glass attempts carry their stated reason too, and
    // stay open for review with the allowed one.
    assert_eq!(w.ledger.audit_log().emergency_pending().unwrap().len(), 3);
}

#[test]
fn checkpoint_cosigned_export_verifies_offline() {
    let w = world();
    let base = w.ledger.size();
    write(&w, "Observation/1", b"x", SensitivitySet::empty());
    grant_to(&w, &w.doctor);
    w.ledger
        .read(&w.doctor, "Observation/1", Purpose::Treat)
        .unwrap();
    let witness = witness("w.example", &w.ledger);
    let cp1 = w.ledger.checkpoint(&[&witness]).unwrap();
    write(&w, "Observation/2", b"y", SensitivitySet::empty());
    let cp2 = w.ledger.checkpoint(&[&witness]).unwrap();
    // Each checkpoint covers a heads entry appended just before it and is
    // followed by its checkpoint entry: write, grant, read, heads | note,
    // write, heads.
    assert_eq!(
        (cp1.checkpoint.size, cp2.checkpoint.size),
        (base + 4, base + 7)
    );
    assert_eq!(w.ledger.verify().unwrap().checkpoints, 2);

    let json = w.ledger.export_patient(&w.patient.id()).unwrap();
    let policy = policy(&w.ledger, &witness);
    let report = verify_export(json.as_bytes(), &policy).unwrap();
    // The checkpoint commits to the patient's head: an auditor asking
    // about this patient knows no later event was withheld.
    let pk = w.ledger.patient_key(&w.patient.id()).unwrap();
    let own = medledger::audit::verify_patient_export(json.as_bytes(), &policy, &pk).unwrap();
    assert!(own.head.is_some());
    assert!(report.complete);
    let events = w.ledger.patient_events(&w.patient.id()).unwrap();
    assert_eq!(report.events.len(), events.len());
    assert_eq!(
        events.iter().filter(|(i, _)| *i >= base).count(),
        4,
        "write, grant, read, write"
    );
    assert_eq!(report.disclosures().len(), 1);
    // Dropping the last event breaks nothing visible only if the patient
    // holds no later receipt; altering one is always caught.
    let at = json.rfind("\"event\":\"").unwrap() + 40;
    let mut bad = json.clone().into_bytes();
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    assert!(verify_export(&bad, &policy).is_err());
    // A policy that requires a witness the log never asked fails.
    let other = CosignatureSigner::generate("other.example").unwrap();
    let strict = Policy::new(
        w.ledger.log_key().unwrap(),
        vec![other.verifier().unwrap()],
        1,
    )
    .unwrap();
    assert!(verify_export(json.as_bytes(), &strict).is_err());
}

#[test]
fn export_needs_a_checkpoint() {
    let w = world();
    assert!(matches!(
        w.ledger.export_patient(&w.patient.id()),
        Err(Error::NoCheckpoint { .. })
    ));
}

#[test]
fn erase_shreds_keys_and_keeps_the_log_verifiable() {
    let w = world();
    write(
        &w,
        "Observation/1",
        b"to be forgotten",
        SensitivitySet::empty(),
    );
    write(&w, "Observation/1", b"v2", SensitivitySet::empty());
    write(&w, "Observation/2", b"kept", SensitivitySet::empty());
    grant_to(&w, &w.doctor);
    let erased_at = w.ledger.erase(&w.patient.id(), "Observation/1").unwrap();
    assert!(matches!(
        w.ledger.read(&w.doctor, "Observation/1", Purpose::Treat),
        Err(Error::RecordErased { .. })
    ));
    assert!(matches!(
        w.ledger
            .read(&w.patient, "Observation/1", Purpose::PatientRequest),
        Err(Error::RecordErased { .. })
    ));
    assert!(matches!(
        w.ledger.erase(&w.patient.id(), "Observation/1"),
        Err(Error::RecordErased { .. })
    ));
    let body = b"resurrect";
    assert!(matches!(
        w.ledger.write(&NewRecord {
            content_type: "text/plain",
            ..record("Observation/1", &w.patient, &w.hospital, body)
        }),
        Err(Error::RecordErased { .. })
    ));
    let events = w.ledger.patient_events(&w.patient.id()).unwrap();
    assert_eq!(events.last().unwrap().0, erased_at);
    assert_eq!(events.last().unwrap().1.action.name(), "erase");
    assert_eq!(
        &w.ledger
            .read(&w.doctor, "Observation/2", Purpose::Treat)
            .unwrap()
            .body[..],
        b"kept"
    );
    let report = w.ledger.verify().unwrap();
    assert_eq!((report.versions, report.erased), (1, 1));
}

#[test]
fn grants_rewrap_for_the_grantee_and_revocation_unwraps() {
    // The grantee's key is in the header right after the grant (no read
    // needed) and gone after the revocation: checked through the share of
    // the envelope header the grantee can open.
    let w = world();
    write(&w, "Observation/1", b"x", SensitivitySet::empty());
    let gid = grant_to(&w, &w.doctor);
    assert!(w
        .ledger
        .read(&w.doctor, "Observation/1", Purpose::Treat)
        .is_ok());
    let rev = revocation(&w.patient, RevocationTarget::Grant(gid));
    let at = w.ledger.revoke(&rev).unwrap();
    // The revocation, then the key rotation of the one record the
    // doctor's wrap was removed from, pointing back at it.
    let events = w.ledger.patient_events(&w.patient.id()).unwrap();
    let [.., (ri, revoked), (ki, rotated)] = &events[..] else {
        panic!("too few events")
    };
    assert_eq!((*ri, revoked.action.name()), (at, "revoke"));
    assert_eq!(
        (*ki, rotated.action.name(), rotated.refers_to),
        (at + 1, "key-rotation", Some(at))
    );
    assert_eq!(rotated.record.as_ref().unwrap().id, "Observation/1");
    // A revocation signed by someone else is refused and not logged.
    let size = w.ledger.size();
    let forged = revocation(&w.doctor, RevocationTarget::Grant(gid));
    assert!(matches!(
        w.ledger.revoke(&forged),
        Err(Error::Grants { .. })
    ));
    assert_eq!(w.ledger.size(), size);
    w.ledger.verify().unwrap();
}

#[test]
fn a_reader_claiming_the_patient_with_another_key_gets_no_plaintext() {
    let w = world();
    write(&w, "Observation/1", b"secret body", SensitivitySet::empty());
    let impostor = Impostor {
        claimed: w.patient.id(),
        keys: &w.doctor,
    };
    let size = w.ledger.size();
    let r = w
        .ledger
        .read(&impostor, "Observation/1", Purpose::PatientRequest);
    let event = match r {
        Err(Error::ReadFailed { event, .. }) => event,
        other => panic!("impostor read the record: {other:?}"),
    };
    // The log tells the truth: one event, a failed (denied) read, not a
    // successful one.
    assert_eq!((event, w.ledger.size()), (size, size + 1));
    let (i, logged) = last_patient_event(&w.ledger, &w.patient);
    assert_eq!((i, logged.action.name()), (event, "read"));
    assert!(matches!(
        logged.outcome,
        medledger::audit::Outcome::Denied {
            code: medledger::UNWRAP_FAILED_CODE,
            ..
        }
    ));
    assert!(w
        .ledger
        .disclosure_report(&w.patient.id())
        .unwrap()
        .is_empty());
    // The doctor's key was not added as a recipient either.
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );
}

#[test]
fn emergency_read_allowed_by_a_grant_is_logged_with_its_reason() {
    // The patient (always allowed) invokes break-the-glass on their own
    // record: the read succeeds and is logged as emergency access with the
    // stated reason, though no emergency role was needed.
    let w = world();
    write(&w, "Observation/1", b"v1 body", SensitivitySet::empty());
    let r = w
        .ledger
        .emergency_read(&w.patient, "Observation/1", "checking my own chart")
        .unwrap();
    assert_eq!(&r.body[..], b"v1 body");
    assert!(!r.emergency);
    let (index, event) = last_patient_event(&w.ledger, &w.patient);
    assert_eq!(index, r.event);
    assert_eq!(event.emergency.as_deref(), Some("checking my own chart"));
}

#[test]
fn break_the_glass_without_a_reason_is_denied_and_logged() {
    let w = world();
    write(&w, "Observation/1", b"x", SensitivitySet::empty());
    let size = w.ledger.size();
    assert_eq!(
        denied(w.ledger.emergency_read(&w.er, "Observation/1", "")),
        DenyReason::EmergencyReasonInvalid
    );
    assert_eq!(w.ledger.size(), size + 1);
    let (_, event) = last_patient_event(&w.ledger, &w.patient);
    assert_eq!(event.emergency.as_deref(), Some("(no reason stated)"));
}
