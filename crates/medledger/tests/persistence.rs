//! The embedded store: persistence across reopen, key custody, concurrent
//! writers and readers, and bad input (typed errors, store intact).

mod common;

use std::sync::Arc;

use common::*;
use medledger::grants::*;
use medledger::{Error, Ledger, LedgerKey};

const ORIGIN: &str = "persist.example/ledger";

fn key() -> LedgerKey {
    LedgerKey::from_bytes([42; 32])
}

/// `patient`'s grant to `grantee` of reading all their records for
/// treatment.
fn grant(patient: &ActorKeys, grantee: &ActorKeys) -> SignedGrant {
    patient_grant(
        patient,
        grantee,
        Scope::All,
        ActionSet::empty().with(Action::Read),
    )
}

#[test]
fn reopen_keeps_records_grants_checkpoints_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    let (size, root_cp) = {
        let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        ledger.register(doctor.actor(), "st-mary").unwrap();
        ledger
            .write(&record("Observation/1", &patient, &patient, b"persisted"))
            .unwrap();
        ledger.grant(&grant(&patient, &doctor)).unwrap();
        let cp = ledger
            .checkpoint::<medledger::chain::MemoryWitnessStateStore>(&[])
            .unwrap();
        (ledger.size(), cp.note)
    };
    assert!(matches!(
        Ledger::open(dir.path(), ORIGIN, &LedgerKey::from_bytes([43; 32])),
        Err(Error::WrongLedgerKey { .. })
    ));
    assert!(matches!(
        Ledger::open(dir.path(), ORIGIN, &LedgerKey::from_passphrase("x")),
        Err(Error::WrongLedgerKey { .. })
    ));
    let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
    assert_eq!(ledger.size(), size);
    assert_eq!(ledger.audit_log().checkpoints()[0].note, root_cp);
    let r = ledger
        .read(&doctor, "Observation/1", Purpose::Treat)
        .unwrap();
    assert_eq!(&r.body[..], b"persisted");
    let v = ledger
        .write(&record("Observation/1", &patient, &patient, b"second"))
        .unwrap();
    assert_eq!(v.version, 2);
    let report = ledger.verify().unwrap();
    assert_eq!(
        (report.entries, report.checkpoints, report.versions),
        (size + 2, 1, 2)
    );
}

#[test]
fn passphrase_custody_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let pass = LedgerKey::from_passphrase("correct horse battery staple");
    drop(Ledger::open(dir.path(), ORIGIN, &pass).unwrap());
    assert!(Ledger::open(dir.path(), ORIGIN, &pass).is_ok());
    assert!(matches!(
        Ledger::open(dir.path(), ORIGIN, &LedgerKey::from_passphrase("wrong")),
        Err(Error::WrongLedgerKey { .. })
    ));
}

#[test]
fn concurrent_patients_then_full_verification() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path(), ORIGIN, &key()).unwrap());
    let patients: Vec<ActorKeys> = (0..4)
        .map(|_| ActorKeys::generate(ActorKind::Patient).unwrap())
        .collect();
    for p in &patients {
        ledger.register(p.actor(), "patients").unwrap();
    }
    std::thread::scope(|s| {
        for (t, p) in patients.iter().enumerate() {
            let ledger = Arc::clone(&ledger);
            s.spawn(move || {
                for i in 0..3 {
                    let id = format!("Observation/{t}-{i}");
                    let body = format!("patient {t} record {i}");
                    ledger.write(&record(&id, p, p, body.as_bytes())).unwrap();
                    let r = ledger.read(p, &id, Purpose::PatientRequest).unwrap();
                    assert_eq!(&r.body[..], body.as_bytes());
                }
            });
        }
    });
    let report = ledger.verify().unwrap();
    // 4 registrations, then 12 writes and 12 reads.
    assert_eq!((report.entries, report.versions), (28, 12));
    for p in &patients {
        let events = ledger.patient_events(&p.id()).unwrap();
        assert_eq!(events.len(), 7);
        // Each event names the patient's previous one.
        for pair in events.windows(2) {
            assert_eq!(pair[1].1.prev_for_patient, Some(pair[0].0));
        }
    }
}

#[test]
fn bad_input_gets_typed_errors_and_the_store_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    let stranger = ActorKeys::generate(ActorKind::Clinician).unwrap();
    ledger.register(patient.actor(), "patients").unwrap();
    ledger.register(doctor.actor(), "st-mary").unwrap();
    // Longer than the inline limit (64 KiB): stored as a blob file.
    let body = vec![b'b'; 100_000];
    ledger
        .write(&record("Observation/1", &patient, &patient, &body))
        .unwrap();
    ledger.grant(&grant(&patient, &doctor)).unwrap();
    let size = ledger.size();

    assert!(matches!(
        ledger.read(&stranger, "Observation/1", Purpose::Treat),
        Err(Error::UnknownActor { .. })
    ));
    assert!(matches!(
        ledger.read(&doctor, "Observation/404", Purpose::Treat),
        Err(Error::UnknownRecord { .. })
    ));
    assert!(matches!(
        ledger.read_version(&doctor, "Observation/1", 9, Purpose::Treat),
        Err(Error::UnknownRecord {
            version: Some(9),
            ..
        })
    ));
    assert_eq!(ledger.size(), size, "refused requests are not logged");
    match ledger.read(&doctor, "Observation/1", Purpose::Research) {
        Err(Error::AccessDenied { reason, event, .. }) => {
            assert_eq!(reason, DenyReason::PurposeNotAllowed);
            assert_eq!(event, size);
        }
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(65);
    assert!(matches!(
        ledger.write(&record(&long, &patient, &patient, b"b")),
        Err(Error::InvalidInput { .. })
    ));
    let mut not_a_patient = record("Observation/2", &patient, &patient, b"b");
    not_a_patient.patient = doctor.id();
    assert!(matches!(
        ledger.write(&not_a_patient),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        ledger.register(stranger.actor(), ""),
        Err(Error::InvalidInput { .. })
    ));
    // A grant signed by someone other than its issuer never loads.
    let mut forged = grant(&patient, &doctor).body().clone();
    forged.grantee = Grantee::Actor(stranger.id());
    assert!(SignedGrant::sign(forged, &doctor).is_err());
    ledger.verify().unwrap();

    // Corrupt a stored ciphertext: reads and verification fail with typed
    // errors; restoring the file restores the store.
    drop(ledger);
    // Blobs written since the last open are still pending (the state row
    // is their reference); earlier ones were marked on that open.
    let blob = ["data", "pending"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.path().join("blobs").join(sub)).unwrap())
        .map(|item| item.unwrap().path())
        .min()
        .unwrap();
    let original = std::fs::read(&blob).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x80;
    std::fs::write(&blob, &bad).unwrap();
    let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
    assert!(matches!(
        ledger.verify(),
        Err(Error::VerificationFailed { .. })
    ));
    // Allowed by policy but unreadable: a typed error, logged as a failed
    // (not a successful) read.
    match ledger.read(&doctor, "Observation/1", Purpose::Treat) {
        Err(Error::ReadFailed { source, .. }) => assert!(
            matches!(
                *source,
                Error::Store {
                    op: medledger::Op::Read,
                    ..
                }
            ),
            "{source:?}"
        ),
        other => panic!("expected a failed read, got {other:?}"),
    }
    drop(ledger);
    // Opening marked the blob referenced (moved it to `data/`): restore it
    // wherever it is now.
    let now_at = ["data", "pending"]
        .iter()
        .map(|sub| {
            dir.path()
                .join("blobs")
                .join(sub)
                .join(blob.file_name().unwrap())
        })
        .find(|p| p.is_file())
        .unwrap();
    std::fs::write(&now_at, &original).unwrap();
    let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
    ledger.verify().unwrap();
    assert_eq!(
        &ledger
            .read(&doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        &body[..]
    );
}

#[test]
fn corrupted_inline_body_is_a_typed_error_and_restoring_it_restores_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    {
        let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        ledger.register(doctor.actor(), "st-mary").unwrap();
        // A 4 KiB body: its envelope is kept inline in the state database.
        ledger
            .write(&record("Observation/1", &patient, &patient, &[b'o'; 4096]))
            .unwrap();
        ledger.grant(&grant(&patient, &doctor)).unwrap();
        assert_eq!(ledger.verify().unwrap().versions, 1);
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs").join("pending"))
            .unwrap()
            .count(),
        0,
        "no blob file for an inline body"
    );
    // Flip a byte inside every copy of the envelope in the database file
    // (copy-on-write pages may hold older copies too).
    let db = dir.path().join("state.redb");
    let original = std::fs::read(&db).unwrap();
    let mut bad = original.clone();
    let starts: Vec<usize> = original
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"MLENV")
        .map(|(i, _)| i)
        .collect();
    assert!(!starts.is_empty(), "the envelope is in the state database");
    for i in starts {
        bad[i + 2000] ^= 0x01;
    }
    std::fs::write(&db, &bad).unwrap();
    // redb's page checksums catch it when the database is opened.
    match Ledger::open(dir.path(), ORIGIN, &key()) {
        Err(Error::Store {
            op: medledger::Op::Open,
            source,
        }) => assert!(
            matches!(source, medledger::store::Error::StateCorrupt { .. }),
            "{source:?}"
        ),
        other => panic!("expected a corrupt state database, got {other:?}"),
    }
    std::fs::write(&db, &original).unwrap();
    let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
    assert_eq!(ledger.verify().unwrap().versions, 1);
    assert_eq!(
        ledger
            .read(&doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        [b'o'; 4096]
    );
}

#[test]
fn corrupted_log_segment_is_a_typed_error_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    {
        let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        for i in 0..3 {
            let id = format!("Observation/{i}");
            ledger
                .write(&record(&id, &patient, &patient, b"entry"))
                .unwrap();
        }
    }
    let segment = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file() && std::fs::metadata(p).unwrap().len() > 64)
        .unwrap();
    let original = std::fs::read(&segment).unwrap();
    let mut bad = original.clone();
    // A byte inside the first entry's frame: damage before the tail is
    // corruption, never a torn tail to cut.
    bad[40] ^= 0x10;
    std::fs::write(&segment, &bad).unwrap();
    assert!(matches!(
        Ledger::open(dir.path(), ORIGIN, &key()),
        Err(Error::Store {
            op: medledger::Op::Open,
            ..
        })
    ));
    std::fs::write(&segment, &original).unwrap();
    let ledger = Ledger::open(dir.path(), ORIGIN, &key()).unwrap();
    assert_eq!(ledger.verify().unwrap().versions, 3);
}
