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

/// Tests that kill writer sessions kill every ledger's (they are found
/// by application name), so they run alone ([`alone`]) while the others
/// share ([`shared`]).
static SESSIONS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    SESSIONS.read().unwrap_or_else(|e| e.into_inner())
}

fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    SESSIONS.write().unwrap_or_else(|e| e.into_inner())
}

/// The options of an existing test schema.
fn on(schema: &str) -> PgOptions {
    PgOptions {
        schema: schema.to_owned(),
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
    let _sessions = shared();
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
    let again = Ledger::open_postgres(&url, on(&schema), ORIGIN, &key).unwrap();
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
    let _sessions = shared();
    let opts = options("key");
    let schema = opts.schema.clone();
    drop(
        Ledger::open_postgres(&url, opts.clone(), ORIGIN, &LedgerKey::from_bytes([1; 32])).unwrap(),
    );
    assert!(Ledger::open_postgres(&url, opts, ORIGIN, &LedgerKey::from_bytes([2; 32])).is_err());
    drop_schema(&url, &schema);
}

fn open_pair(url: &str, tag: &str, key: u8) -> (Clinic<PgNodeStore>, Ledger<PgNodeStore>, String) {
    let opts = options(tag);
    let schema = opts.schema.clone();
    let key = LedgerKey::from_bytes([key; 32]);
    let a = clinic(Ledger::open_postgres(url, opts.clone(), ORIGIN, &key).unwrap());
    let b = Ledger::open_postgres(url, opts, ORIGIN, &key).unwrap();
    (a, b, schema)
}

/// Every event of the patient names the one before it as its `prev`.
fn assert_chained(events: &[(u64, medledger::audit::AuditEvent)]) {
    let mut prev = None;
    for (i, e) in events {
        assert_eq!(e.prev_for_patient, prev, "event {i}");
        prev = Some(*i);
    }
}

#[test]
fn two_ledgers_on_one_schema_take_turns_and_see_each_others_work() {
    let Some(url) = url("postgres::two_ledgers_on_one_schema_take_turns_and_see_each_others_work")
    else {
        return;
    };
    let _sessions = shared();
    let (a, b, schema) = open_pair(&url, "turns", 4);
    let w = &a;

    // A writes and grants; B (opened before the grant) decides with it.
    write(w, "Observation/1", b"written through A");
    assert_eq!(
        denied(b.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );
    let gid = grant_to(w, &w.doctor);
    assert_eq!(
        &b.read(&w.doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        b"written through A"
    );
    // A revokes; B refuses at once.
    w.ledger
        .revoke(&revocation(&w.patient, RevocationTarget::Grant(gid)))
        .unwrap();
    assert_eq!(
        denied(b.read(&w.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::Revoked
    );
    // B writes a new version; A reads it. The emergency role and the
    // trusted hospital A loaded hold on B.
    let v2 = b
        .write(&record(
            "Observation/1",
            &w.patient,
            &w.patient,
            b"v2 through B",
        ))
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        &w.ledger
            .read(&w.patient, "Observation/1", Purpose::PatientRequest)
            .unwrap()
            .body[..],
        b"v2 through B"
    );
    assert!(
        b.emergency_read(&w.er, "Observation/1", "patient unconscious")
            .unwrap()
            .emergency
    );
    // An actor registered through B is known to A.
    let nurse = actor(&b, ActorKind::Clinician, "st-luke");
    assert_eq!(
        denied(w.ledger.read(&nurse, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );

    // A guardian registered through B, appointed through A, reads through
    // B; the appointment revoked through A stops it on B.
    let guardian = actor(&b, ActorKind::Guardian, "family");
    let appointed = w
        .ledger
        .appoint_guardian(&appointment(&w.patient, &guardian, &w.patient))
        .unwrap();
    assert_eq!(
        &b.read(&guardian, "Observation/1", Purpose::PatientRequest)
            .unwrap()
            .body[..],
        b"v2 through B"
    );
    w.ledger
        .revoke(&revocation(
            &w.patient,
            RevocationTarget::Appointment(appointed),
        ))
        .unwrap();
    assert!(matches!(
        b.read(&guardian, "Observation/1", Purpose::PatientRequest),
        Err(Error::AccessDenied { .. })
    ));

    // Checkpoints chain across the two, with one witness.
    let witness = witness("w.example", &w.ledger);
    let cp1 = w.ledger.checkpoint(&[&witness]).unwrap();
    b.write(&record(
        "Observation/2",
        &w.patient,
        &w.patient,
        b"after cp1",
    ))
    .unwrap();
    let cp2 = b.checkpoint(&[&witness]).unwrap();
    assert_eq!(
        cp2.checkpoint.chain.and_then(|l| l.prev),
        Some(cp1.checkpoint.hash())
    );
    // Both see one history: the same events, one chain per patient.
    let from_a = w.ledger.patient_events(&w.patient.id()).unwrap();
    let from_b = b.patient_events(&w.patient.id()).unwrap();
    assert_eq!(from_a, from_b);
    assert_chained(&from_a);
    assert_eq!(w.ledger.size(), b.size());
    // B's export verifies offline and is complete.
    let json = b.export_patient(&w.patient.id()).unwrap();
    let exported = verify_export(json.as_bytes(), &policy(&b, &witness)).unwrap();
    assert!(exported.complete);
    assert_eq!(exported.events.len(), from_b.len(), "every event under cp2");
    let ra = w.ledger.verify().unwrap();
    let rb = b.verify().unwrap();
    assert_eq!(
        (ra.entries, ra.checkpoints, ra.versions),
        (rb.entries, 2, 3)
    );
    drop((a, b));
    drop_schema(&url, &schema);
}

#[test]
fn two_ledgers_write_at_once_into_one_history() {
    let Some(url) = url("postgres::two_ledgers_write_at_once_into_one_history") else {
        return;
    };
    let _sessions = shared();
    let (a, b, schema) = open_pair(&url, "concurrent", 5);
    let b = std::sync::Arc::new(b);
    let a = std::sync::Arc::new(a);
    const PER_THREAD: usize = 6;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    let id = format!("Observation/{t}-{n}");
                    let body = format!("body {t}-{n}");
                    let rec = record(&id, &a.patient, &a.patient, body.as_bytes());
                    // Threads 0 and 1 write through A, 2 and 3 through B,
                    // and each reads back through the other ledger.
                    let (mine, theirs) = if t < 2 {
                        (&a.ledger, &*b)
                    } else {
                        (&*b, &a.ledger)
                    };
                    mine.write(&rec).unwrap();
                    let read = theirs
                        .read(&a.patient, &id, Purpose::PatientRequest)
                        .unwrap();
                    assert_eq!(read.body[..], *body.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let from_a = a.ledger.patient_events(&a.patient.id()).unwrap();
    let from_b = b.patient_events(&a.patient.id()).unwrap();
    assert_eq!(from_a, from_b);
    assert_chained(&from_a);
    // Every write and every read, once each.
    let writes = from_a
        .iter()
        .filter(|(_, e)| e.action == medledger::audit::Action::Create && e.record.is_some())
        .count();
    assert_eq!(writes, 4 * PER_THREAD);
    assert_eq!(
        a.ledger.records_of(&a.patient.id()).unwrap().len(),
        4 * PER_THREAD
    );
    let (ra, rb) = (a.ledger.verify().unwrap(), b.verify().unwrap());
    assert_eq!(ra, rb);
    assert_eq!(ra.versions, 4 * PER_THREAD as u64);
    drop((a, b));
    drop_schema(&url, &schema);
}

#[test]
fn a_ledger_whose_writer_session_dies_goes_on_writing() {
    let Some(url) = url("postgres::a_ledger_whose_writer_session_dies_goes_on_writing") else {
        return;
    };
    let _sessions = alone();
    let (a, b, schema) = open_pair(&url, "killed", 6);
    write(&a, "Observation/1", b"one");
    // Kill every writer session (A's and B's): the next operations take
    // turns again on new sessions, and nothing is lost.
    let killed = kill_writer_sessions(&url);
    assert!(killed >= 1);
    write(&a, "Observation/2", b"two");
    b.write(&record("Observation/3", &a.patient, &a.patient, b"three"))
        .unwrap();
    drop(a);
    drop(b);
    let key = LedgerKey::from_bytes([6; 32]);
    let again = Ledger::open_postgres(&url, on(&schema), ORIGIN, &key).unwrap();
    assert_eq!(again.verify().unwrap().versions, 3);
    drop(again);
    drop_schema(&url, &schema);
}

#[test]
fn a_grant_whose_writer_lost_its_turn_before_storing_it_is_adopted() {
    let Some(url) =
        url("postgres::a_grant_whose_writer_lost_its_turn_before_storing_it_is_adopted")
    else {
        return;
    };
    let _sessions = shared();
    use medledger::store::StateStore;
    let (a, b, schema) = open_pair(&url, "adopt", 7);
    let w = &a;
    write(w, "Observation/1", b"one");
    let gid = grant_to(w, &w.doctor);
    // Put the grant back where it is between its log entry and its state
    // row: in `pending-objects` (as A left it had its session died there).
    let store = medledger::pg::PgStore::open(&url, on(&schema)).unwrap();
    let state = store.state();
    let (at, value) = state
        .scan("objects", b"", usize::MAX)
        .unwrap()
        .pop()
        .unwrap();
    let (tag, bytes) = value.split_first().unwrap();
    let mut pending = vec![*tag];
    pending.extend_from_slice(&at);
    pending.extend_from_slice(bytes);
    let id = gid.0.as_bytes().to_vec();
    state
        .transact(None, &mut |t| {
            t.delete("objects", &at)?;
            t.put("pending-objects", &id, &pending)
        })
        .unwrap();
    // B's next turn finds the grant's event in the log and adopts it.
    assert_eq!(
        &b.read(&w.doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        b"one"
    );
    assert!(state.get("pending-objects", &id).unwrap().is_none());
    assert_eq!(state.get("objects", &at).unwrap(), Some(value));
    drop((a, b, store));
    drop_schema(&url, &schema);
}

fn kill_writer_sessions(url: &str) -> i64 {
    let mut admin = url
        .parse::<medledger::pg::postgres::Config>()
        .unwrap()
        .connect(medledger::pg::postgres::NoTls)
        .unwrap();
    admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&medledger::pg::writer::WRITER_APPLICATION_NAME],
        )
        .unwrap()
        .get(0)
}

#[test]
fn a_failed_catch_up_fails_closed_and_is_retried_in_full() {
    let Some(url) = url("postgres::a_failed_catch_up_fails_closed_and_is_retried_in_full") else {
        return;
    };
    let _sessions = shared();
    use medledger::store::StateStore;
    let (a, b, schema) = open_pair(&url, "retry", 8);
    write(&a, "Observation/1", b"one");
    b.read(&a.patient, "Observation/1", Purpose::PatientRequest)
        .unwrap();
    // A bad `changes` row in B's next range, then A's grant.
    let store = medledger::pg::PgStore::open(&url, on(&schema)).unwrap();
    let key = b.size().to_be_bytes();
    store
        .state()
        .transact(None, &mut |t| t.put("changes", &key, &[9u8; 33]))
        .unwrap();
    grant_to(&a, &a.doctor);
    // B refuses to decide on a partial catch-up, every time, rather than
    // deciding without A's grant.
    for _ in 0..2 {
        assert!(matches!(
            b.read(&a.doctor, "Observation/1", Purpose::Treat),
            Err(Error::CorruptState {
                table: "changes",
                ..
            })
        ));
    }
    // Repaired, the next turn takes in the whole range, grant included.
    store
        .state()
        .transact(None, &mut |t| t.delete("changes", &key).map(|_| ()))
        .unwrap();
    assert_eq!(
        &b.read(&a.doctor, "Observation/1", Purpose::Treat)
            .unwrap()
            .body[..],
        b"one"
    );
    drop((a, b, store));
    drop_schema(&url, &schema);
}

/// A body reader that runs `f` when first read, then ends: a hook inside
/// a write's turn.
struct Hook<F: FnMut()>(Option<F>);

impl<F: FnMut()> std::io::Read for Hook<F> {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(mut f) = self.0.take() {
            f();
        }
        Ok(0)
    }
}

#[test]
fn a_grant_fenced_mid_turn_leaves_nothing_in_memory() {
    let Some(url) = url("postgres::a_grant_fenced_mid_turn_leaves_nothing_in_memory") else {
        return;
    };
    let _sessions = alone();
    let (a, b, schema) = open_pair(&url, "fenced", 9);
    write(&a, "Observation/1", b"one");
    let meta = medledger::StreamedRecord {
        id: "Observation/2",
        patient: a.patient.id(),
        author: a.patient.id(),
        content_type: "text/plain",
        category: "Observation",
        labels: SensitivitySet::empty(),
    };
    let mut granted = None;
    // Inside A's turn: A's writer session dies, B takes its turn and
    // writes, then A (still in its turn) grants.
    let written = a.ledger.write_from(
        &meta,
        &mut Hook(Some(|| {
            assert!(kill_writer_sessions(&url) >= 1);
            std::thread::scope(|s| {
                s.spawn(|| {
                    b.write(&record("Observation/3", &a.patient, &a.patient, b"three"))
                        .unwrap();
                });
            });
            let g = patient_grant(
                &a.patient,
                &a.doctor,
                observations(),
                ActionSet::empty().with(Action::Read),
            );
            granted = Some(a.ledger.grant(&g));
        })),
    );
    // Both of A's appends in the dead turn were fenced.
    let fenced = |r: String| r.contains("WriterFenced");
    assert!(fenced(format!("{granted:?}")), "{granted:?}");
    assert!(fenced(format!("{written:?}")), "{written:?}");
    // The grant is in no log, and neither ledger honours it.
    assert_eq!(
        denied(a.ledger.read(&a.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );
    assert_eq!(
        denied(b.read(&a.doctor, "Observation/1", Purpose::Treat)),
        DenyReason::NoGrant
    );
    // A's next turn takes in B's write.
    assert_eq!(
        &a.ledger
            .read(&a.patient, "Observation/3", Purpose::PatientRequest)
            .unwrap()
            .body[..],
        b"three"
    );
    assert_eq!(a.ledger.verify().unwrap(), b.verify().unwrap());
    drop((a, b));
    drop_schema(&url, &schema);
}
