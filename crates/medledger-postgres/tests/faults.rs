//! Faults on a real server: `pg_ctl stop -m immediate` in the middle of
//! appends, and `pg_terminate_backend` in the middle of transactions.
//!
//! These stop the shared test server, so they live in their own test
//! binary (cargo runs test binaries one at a time) and take a lock so they
//! never overlap each other.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use medledger_chain::{HashAlg, MerkleLog};
use medledger_postgres::{BatchToken, Error};
use medledger_store::{BlobId, BlobStore, EntryLog, StateStore};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pg_ctl(args: &[&str]) {
    let ctl =
        std::env::var("MEDLEDGER_PG_CTL").expect("MEDLEDGER_PG_CTL (scripts/pg-test-cluster)");
    let st = Command::new(ctl).args(args).status().unwrap();
    assert!(st.success(), "pg_ctl {args:?}");
}

/// Terminates the backend `query` (on pg_stat_activity) finds, waiting for
/// it to appear.
fn terminate(url: &str, condition: &str) {
    let mut c = common::client(url);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = c
            .query(
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'medledger' AND pid <> pg_backend_pid() AND {condition}"
                ),
                &[],
            )
            .unwrap();
        if rows.iter().any(|r| r.get::<_, bool>(0)) {
            return;
        }
        assert!(Instant::now() < deadline, "no backend matching {condition}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pg_error(e: &medledger_store::Error) -> &Error {
    Error::in_store_error(e).unwrap_or_else(|| panic!("not a PostgreSQL error: {e}"))
}

enum Outcome {
    Acked(std::ops::Range<u64>),
    Failed(Error),
}

#[test]
fn immediate_stop_mid_appends_loses_nothing_acknowledged() {
    let Some(url) = common::url("faults::immediate_stop_mid_appends") else {
        return;
    };
    let _g = serial();
    let (schema, store) = common::store(&url, "stop", HashAlg::Blake3);
    let log = store.entries();
    for i in 0..20u32 {
        log.append(format!("warm-up {i}").as_bytes()).unwrap();
    }
    let results = Mutex::new(Vec::<(BatchToken, Vec<Vec<u8>>, Outcome)>::new());
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let (log, results) = (log, &results);
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut failed = false;
                for n in 0u32.. {
                    assert!(Instant::now() < deadline, "appends never resumed");
                    let batch: Vec<Vec<u8>> = (0..1 + n % 4)
                        .map(|k| format!("t{t}n{n}k{k}").into_bytes())
                        .collect();
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    let token = BatchToken(rand_token(t, n));
                    let r = log.append_with_token(&refs, token);
                    let ok = r.is_ok();
                    let outcome = match r {
                        Ok(range) => Outcome::Acked(range),
                        Err(e) => Outcome::Failed(e),
                    };
                    results.lock().unwrap().push((token, batch, outcome));
                    if ok && failed {
                        break; // resumed through the same log after the error
                    }
                    if !ok {
                        failed = true;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(400));
        pg_ctl(&["stop", "-m", "immediate", "-w"]);
        std::thread::sleep(Duration::from_millis(300));
        pg_ctl(&["start", "-w", "-t", "60"]);
    });
    let results = results.into_inner().unwrap();
    let n = log.len().unwrap();
    let all = log.read_range(0..n).unwrap();
    let position: HashMap<&[u8], u64> = all
        .iter()
        .enumerate()
        .map(|(i, e)| (e.as_slice(), i as u64))
        .collect();
    assert_eq!(position.len() as u64, n, "no entry twice");
    let (mut acked, mut failed, mut unknown) = (0, 0, 0);
    for (token, batch, outcome) in &results {
        match outcome {
            Outcome::Acked(range) => {
                acked += 1;
                for (i, e) in range.clone().zip(batch) {
                    assert_eq!(&all[i as usize], e, "acknowledged entry {i} byte-identical");
                }
            }
            Outcome::Failed(e) => {
                failed += 1;
                let found: Vec<Option<u64>> = batch
                    .iter()
                    .map(|e| position.get(e.as_slice()).copied())
                    .collect();
                let present = found.iter().all(Option::is_some);
                assert!(
                    present || found.iter().all(Option::is_none),
                    "batch {token} is partly there: {found:?}"
                );
                if present {
                    let start = found[0].unwrap();
                    for (k, f) in found.iter().enumerate() {
                        assert_eq!(*f, Some(start + k as u64), "batch {token} contiguous");
                    }
                }
                match e {
                    Error::OutcomeUnknown { batch: Some(b), .. } => {
                        unknown += 1;
                        assert_eq!(b, token);
                        let outcome = log.batch_outcome(token).unwrap();
                        assert_eq!(outcome.is_some(), present, "batch_outcome for {token}");
                    }
                    Error::ConnectionLost { .. } | Error::Connect { .. } => {
                        assert!(!present, "{e} but batch {token} committed");
                        assert_eq!(log.batch_outcome(token).unwrap(), None);
                    }
                    other => panic!("unexpected error type: {other}"),
                }
            }
        }
    }
    eprintln!("immediate stop: {acked} acknowledged, {failed} failed ({unknown} outcome unknown)");
    assert!(failed >= 4, "every appender saw the stop");
    // The nodes committed with the entries are the tree of the entries.
    let tree = store.merkle_log().unwrap();
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    mem.append_batch(&all).unwrap();
    assert_eq!((tree.size(), tree.root()), (n, mem.root()));
    common::drop_schema(&url, &schema);
}

fn rand_token(t: u32, n: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    b[..4].copy_from_slice(&t.to_le_bytes());
    b[4..8].copy_from_slice(&n.to_le_bytes());
    b[8..].copy_from_slice(&(nanos as u64).to_le_bytes());
    b
}

#[test]
fn terminated_backend_mid_append_leaves_nothing() {
    let Some(url) = common::url("faults::terminated_backend_mid_append") else {
        return;
    };
    let _g = serial();
    let (schema, store) = common::store(&url, "term_log", HashAlg::Blake3);
    let log = store.entries();
    log.append(b"before").unwrap();
    let root = store.merkle_log().unwrap().root();
    // Hold the head lock so the append waits inside its transaction.
    let mut holder = common::client(&url);
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM \"{schema}\".log_head WHERE id = 0 FOR UPDATE"
        ))
        .unwrap();
    let r = std::thread::scope(|s| {
        let h = s.spawn(|| log.append_batch(&[b"lost 1", b"lost 2"]));
        terminate(&url, "wait_event_type = 'Lock' AND query LIKE '%log_head%'");
        h.join().unwrap()
    });
    holder.batch_execute("ROLLBACK").unwrap();
    let e = r.unwrap_err();
    assert!(
        matches!(pg_error(&e), Error::ConnectionLost { .. }),
        "typed error, got {e}"
    );
    assert_eq!(log.len().unwrap(), 1, "nothing of the batch");
    assert_eq!(store.merkle_log().unwrap().root(), root);
    // The same log goes on.
    assert_eq!(log.append(b"after").unwrap(), 1);
    assert_eq!(log.read(1).unwrap(), b"after");
    common::drop_schema(&url, &schema);
}

#[test]
fn terminated_backend_mid_state_transaction_leaves_nothing() {
    let Some(url) = common::url("faults::terminated_backend_mid_state") else {
        return;
    };
    let _g = serial();
    let (schema, store) = common::store(&url, "term_state", HashAlg::Blake3);
    let state = store.state();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let r = std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut first = true;
            state.transact(Some(0), &mut |t| {
                t.put("keys", b"a", b"1")?;
                if first {
                    first = false;
                    ready_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                }
                t.put("keys", b"b", b"2")
            })
        });
        ready_rx.recv().unwrap();
        terminate(&url, "state = 'idle in transaction'");
        go_tx.send(()).unwrap();
        h.join().unwrap()
    });
    let e = r.unwrap_err();
    assert!(
        matches!(pg_error(&e), Error::ConnectionLost { .. }),
        "typed error, got {e}"
    );
    assert_eq!(state.get("keys", b"a").unwrap(), None, "no partial state");
    assert_eq!(state.log_index().unwrap(), None, "no stamp");
    state
        .transact(Some(0), &mut |t| t.put("keys", b"a", b"1"))
        .unwrap();
    assert_eq!(state.get("keys", b"a").unwrap(), Some(b"1".to_vec()));
    common::drop_schema(&url, &schema);
}

#[test]
fn terminated_backend_mid_blob_write_leaves_nothing() {
    let Some(url) = common::url("faults::terminated_backend_mid_blob") else {
        return;
    };
    let _g = serial();
    let (schema, store) = common::store(&url, "term_blob", HashAlg::Blake3);
    let blobs = store.blobs();
    let id = BlobId([7; 32]);
    let mut w = blobs.create(id).unwrap();
    w.write_all(&vec![1u8; 1_500_000]).unwrap(); // one chunk sent
    terminate(&url, "state = 'idle in transaction'");
    let more = w.write_all(&vec![2u8; 1_000_000]); // the next chunk fails
    let e = match more {
        Err(e) => e,
        Ok(()) => panic!("write on a terminated backend succeeded"),
    };
    let inner = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<medledger_store::Error>())
        .unwrap();
    assert!(
        matches!(pg_error(inner), Error::ConnectionLost { .. }),
        "typed error, got {inner}"
    );
    assert!(w.commit().is_err(), "a failed writer cannot commit");
    assert!(!blobs.exists(&id).unwrap(), "no partial blob");
    assert!(blobs.pending().unwrap().is_empty());
    // The store goes on, and the id is free.
    let mut w = blobs.create(id).unwrap();
    w.write_all(b"whole").unwrap();
    w.commit().unwrap();
    assert_eq!(
        medledger_store::read_blob(blobs.as_ref(), &id).unwrap(),
        b"whole"
    );
    common::drop_schema(&url, &schema);
}

/// The first error of this crate in `e`'s source chain.
fn find_pg<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
    let mut at: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = at {
        if let Some(pe) = err.downcast_ref::<Error>() {
            return Some(pe);
        }
        at = err.source();
    }
    None
}

#[test]
fn the_same_ledger_writes_again_after_an_immediate_stop() {
    use medledger::grants::{ActorKeys, ActorKind, SensitivitySet};
    use medledger::{Ledger, LedgerKey, NewRecord};

    let Some(url) = common::url("faults::the_same_ledger_writes_again") else {
        return;
    };
    let _g = serial();
    let schema = common::fresh_schema("ledger_stop");
    let ledger = Ledger::open_postgres(
        &url,
        common::options(&schema, HashAlg::Blake3),
        "pg.example/ledger",
        &LedgerKey::from_bytes([5; 32]),
    )
    .unwrap();
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let hospital = ActorKeys::generate(ActorKind::Organization).unwrap();
    ledger.register(patient.actor(), "patients").unwrap();
    ledger.register(hospital.actor(), "st-mary").unwrap();
    ledger.trust_organization(hospital.id()).unwrap();
    let write = |id: &str, body: &[u8]| {
        ledger.write(&NewRecord {
            id,
            patient: patient.id(),
            author: patient.id(),
            content_type: "text/plain",
            category: "Observation",
            labels: SensitivitySet::empty(),
            body,
        })
    };
    write("Observation/1", b"before the stop").unwrap();
    let size = ledger.size();
    pg_ctl(&["stop", "-m", "immediate", "-w"]);
    let e = write("Observation/2", b"while down").unwrap_err();
    let typed = find_pg(&e).unwrap_or_else(|| panic!("no PostgreSQL error in {e}"));
    assert!(
        matches!(typed, Error::ConnectionLost { .. } | Error::Connect { .. }),
        "{typed}"
    );
    pg_ctl(&["start", "-w", "-t", "60"]);
    assert_eq!(ledger.size(), size, "nothing half-written entered the tree");
    write("Observation/3", b"after the restart").unwrap();
    let read = |id: &str| {
        ledger
            .read(&patient, id, medledger::grants::Purpose::PatientRequest)
            .unwrap()
            .body
            .to_vec()
    };
    assert_eq!(read("Observation/1"), b"before the stop");
    assert_eq!(read("Observation/3"), b"after the restart");
    ledger.verify().unwrap();
    drop(ledger);
    common::drop_schema(&url, &schema);
}
