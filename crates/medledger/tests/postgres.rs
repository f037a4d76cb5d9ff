//! The facade's end-to-end paths on PostgreSQL (feature `postgres`):
//! write, grant, read, revoke, emergency access, erase, checkpoint with a
//! witness, export, verify, and reopening. Needs `MEDLEDGER_PG_URL`
//! (`eval "$(scripts/pg-test-cluster start)"`); without it each test says
//! loudly that it was skipped.
#![cfg(feature = "postgres")]

mod common;

use common::*;
use medledger::audit::verify_export;
use medledger::grants::*;
use medledger::pg::{PgNodeStore, PgOptions};
use medledger::{Error, Ledger, LedgerKey};

const ORIGIN: &str = "pg.example/ledger";

fn url(test: &str) -> Option<String> {
    match std::env::var("MEDLEDGER_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "\n*** SKIPPED {test}: MEDLEDGER_PG_URL is not set; start a server with \
                 `eval \"$(scripts/pg-test-cluster start)\"` to run the PostgreSQL tests ***\n"
            );
            None
        }
    }
}

fn options(tag: &str) -> PgOptions {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    PgOptions {
        schema: format!("t_facade_{tag}_{}_{nanos}", std::process::id()),
        ..PgOptions::default()
    }
}

fn drop_schema(url: &str, schema: &str) {
    let mut c = url
        .parse::<medledger::pg::postgres::Config>()
        .unwrap()
        .connect(medledger::pg::postgres::NoTls)
        .unwrap();
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .unwrap();
}

fn write(w: &Clinic<PgNodeStore>, id: &str, body: &[u8]) -> medledger::Written {
    w.ledger
        .write(&record(id, &w.patient, &w.patient, body))
        .unwrap()
}

#[test]
fn every_path_end_to_end_on_postgres() {
    let Some(url) = url("postgres::every_path_end_to_end_on_postgres") else {
        return;
    };
    let opts = options("flows");
    let schema = opts.schema.clone();
    let key = LedgerKey::from_bytes([3; 32]);
    let w = clinic(Ledger::open_postgres(&url, opts, ORIGIN, &key).unwrap());
    let base = w.ledger.size();

    // Write, then read as the patient; the doctor is denied by default.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let v1 = write(&w, "Observation/1", &big);
    assert_eq!((v1.version, v1.event), (1, base));
    let own = w
        .ledger
        .read(&w.patient, "Observation/1", Purpose::PatientRequest)
        .unwrap();
    assert_eq!(&own.body[..], &big[..]);
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );

    // Grant, read, revoke.
    let gid = grant_to(&w, &w.doctor);
    assert_eq!(
        &w.ledger
            .read(&w.doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        &big[..]
    );
    let rev = revocation(&w.patient, RevocationTarget::Grant(gid));
    w.ledger.revoke(&rev).unwrap();
    write(&w, "Observation/1", b"v2 after revocation");
    assert_eq!(
        denied(w.ledger.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::Revoked
    );

    // Emergency access: allowed with the role, flagged, reported.
    assert_eq!(
        denied(
            w.ledger
                .emergency_read(&w.doctor, "Observation/1", "unconscious")
        ),
        DenyReason::NoEmergencyRole
    );
    let r = w
        .ledger
        .emergency_read(&w.er, "Observation/1", "patient unconscious")
        .unwrap();
    assert!(r.emergency);
    assert_eq!(&r.body[..], b"v2 after revocation");
    let report = w.ledger.disclosure_report(&w.patient.id()).unwrap();
    assert!(report
        .iter()
        .any(|d| d.emergency.as_deref() == Some("patient unconscious")));

    // Erase: keys shredded, log still verifies.
    write(&w, "Observation/2", b"to be forgotten");
    w.ledger.erase(&w.patient.id(), "Observation/2").unwrap();
    assert!(matches!(
        w.ledger
            .read(&w.patient, "Observation/2", Purpose::PatientRequest),
        Err(Error::RecordErased { .. })
    ));

    // Checkpoint with a witness, export, verify offline.
    let witness = witness("w.example", &w.ledger);
    let cp1 = w.ledger.checkpoint(&[&witness]).unwrap();
    write(&w, "Observation/3", b"after the first checkpoint");
    let cp2 = w.ledger.checkpoint(&[&witness]).unwrap();
    assert!(cp2.checkpoint.size > cp1.checkpoint.size);
    let json = w.ledger.export_patient(&w.patient.id()).unwrap();
    let policy = policy(&w.ledger, &witness);
    let exported = verify_export(json.as_bytes(), &policy).unwrap();
    assert!(exported.complete);
    assert_eq!(
        exported.events.len(),
        w.ledger.patient_events(&w.patient.id()).unwrap().len()
    );
    let report = w.ledger.verify().unwrap();
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.erased, 1);
    let size = w.ledger.size();
    drop(w);

    // Reopen on the same schema: same log, same records, still verifies.
    let again = Ledger::open_postgres(
        &url,
        PgOptions {
            schema: schema.clone(),
            ..PgOptions::default()
        },
        ORIGIN,
        &key,
    )
    .unwrap();
    assert_eq!(again.size(), size);
    let report = again.verify().unwrap();
    assert_eq!((report.entries, report.erased), (size, 1));
    drop(again);
    drop_schema(&url, &schema);
}

#[test]
fn a_wrong_ledger_key_is_refused_on_postgres() {
    let Some(url) = url("postgres::a_wrong_ledger_key_is_refused_on_postgres") else {
        return;
    };
    let opts = options("key");
    let schema = opts.schema.clone();
    drop(
        Ledger::open_postgres(&url, opts.clone(), ORIGIN, &LedgerKey::from_bytes([1; 32])).unwrap(),
    );
    assert!(Ledger::open_postgres(&url, opts, ORIGIN, &LedgerKey::from_bytes([2; 32])).is_err());
    drop_schema(&url, &schema);
}

#[test]
fn one_writing_ledger_per_schema() {
    let Some(url) = url("postgres::one_writing_ledger_per_schema") else {
        return;
    };
    let opts = options("writer");
    let schema = opts.schema.clone();
    let key = LedgerKey::from_bytes([4; 32]);
    let first = Ledger::open_postgres(&url, opts.clone(), ORIGIN, &key).unwrap();
    let patient = actor(&first, ActorKind::Patient, "patients");
    first
        .write(&record("Observation/1", &patient, &patient, b"one"))
        .unwrap();
    // A second writer on the same schema is refused before it reads or
    // writes anything; another schema is independent.
    match Ledger::open_postgres(&url, opts.clone(), ORIGIN, &key) {
        Err(Error::LedgerInUse { op, store }) => {
            assert_eq!(op, medledger::Op::Open);
            assert!(store.contains(&schema), "{store}");
        }
        other => panic!("expected LedgerInUse, got {other:?}"),
    }
    let other_opts = options("writer2");
    let other_schema = other_opts.schema.clone();
    drop(Ledger::open_postgres(&url, other_opts, ORIGIN, &key).unwrap());

    // The claim's session is killed: the next operation takes the claim
    // again (nobody else holds it) and writing goes on.
    let mut admin = url
        .parse::<medledger::pg::postgres::Config>()
        .unwrap()
        .connect(medledger::pg::postgres::NoTls)
        .unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&medledger::pg::writer::WRITER_APPLICATION_NAME],
        )
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    first
        .write(&record("Observation/2", &patient, &patient, b"two"))
        .unwrap();

    // Once the first is dropped, the schema opens again with everything.
    drop(first);
    let second = Ledger::open_postgres(&url, opts, ORIGIN, &key).unwrap();
    assert_eq!(second.verify().unwrap().versions, 2);
    drop(second);
    drop_schema(&url, &schema);
    drop_schema(&url, &other_schema);
}
