//! State writes under writer turns: a take sets `state_meta.epoch` with
//! the head's, and a store whose turn ended writes no state row
//! (`transact`, `transact_applied`, `reconcile`), even when its writer
//! session died without it noticing, or its state transaction was in
//! flight during the take.

mod common;

use common::{fenced, open, turn, NO_WAIT, SHORT};

use std::sync::mpsc;
use std::time::{Duration, Instant};

use medledger_postgres::PgStore;
use medledger_store::{StateStore, StateTxn};

/// The state table these tests write.
const T: &str = "fence";

/// `transact(reflects)` putting `key`, counting the closure's runs.
fn put(
    s: &PgStore,
    reflects: Option<u64>,
    key: &[u8],
    runs: &mut u32,
) -> medledger_store::Result<()> {
    s.state().transact(reflects, &mut |t: &mut dyn StateTxn| {
        *runs += 1;
        t.put(T, key, b"v")
    })
}

/// `transact_applied(index)` putting `key`, counting the closure's runs.
fn put_applied(s: &PgStore, index: u64, key: &[u8], runs: &mut u32) -> medledger_store::Result<()> {
    s.state()
        .transact_applied(index, &mut |t: &mut dyn StateTxn| {
            *runs += 1;
            t.put(T, key, b"v")
        })
}

/// `(log_head.epoch, state_meta.epoch)` as stored.
fn epochs(c: &mut postgres::Client, schema: &str) -> (i64, i64) {
    let row = c
        .query_one(
            &format!(
                "SELECT h.epoch, m.epoch FROM \"{schema}\".log_head h, \"{schema}\".state_meta m"
            ),
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn has(s: &PgStore, key: &[u8]) -> bool {
    s.state().get(T, key).unwrap().is_some()
}

#[test]
fn a_writer_whose_turn_ended_writes_no_state() {
    let Some(url) = common::url("state_fence::a_writer_whose_turn_ended_writes_no_state") else {
        return;
    };
    let schema = common::fresh_schema("stfence");
    let (a, b, plain) = (
        open(&url, &schema),
        open(&url, &schema),
        open(&url, &schema),
    );
    let mut c = common::client(&url);
    let (wa, wb) = (a.writer(), b.writer());
    let mut runs = 0u32;
    // Before any turn, nobody is fenced.
    put(&a, None, b"a before turns", &mut runs).unwrap();
    put(&b, None, b"b before turns", &mut runs).unwrap();
    assert_eq!(epochs(&mut c, &schema), (0, 0));

    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 0, false));
    assert_eq!(epochs(&mut c, &schema), (1, 1));
    put(&a, Some(1), b"a1", &mut runs).unwrap();
    put_applied(&a, 2, b"a2", &mut runs).unwrap();
    wa.release().unwrap();

    // B's turn: A is fenced on both paths, before its closure runs, and
    // writes nothing (no row, no stamp, no undo journal).
    assert_eq!(wb.take(SHORT).unwrap(), turn(2, 0, false));
    assert_eq!(epochs(&mut c, &schema), (2, 2));
    runs = 0;
    assert_eq!(fenced(put(&a, Some(3), b"a3", &mut runs)), (1, 2));
    assert_eq!(fenced(put_applied(&a, 4, b"a4", &mut runs)), (1, 2));
    assert_eq!(fenced(put(&a, None, b"a unstamped", &mut runs)), (1, 2));
    assert_eq!(runs, 0, "a fenced transaction never runs its closure");
    assert!(!has(&plain, b"a3") && !has(&plain, b"a4") && !has(&plain, b"a unstamped"));
    assert_eq!(plain.state().log_index().unwrap(), Some(2));
    let undo: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM \"{schema}\".state_undo WHERE idx >= 3"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(undo, 0);
    // Reads are not fenced.
    assert!(has(&a, b"a2"));
    // B writes on both paths.
    put(&b, Some(3), b"b3", &mut runs).unwrap();
    put_applied(&b, 4, b"b4", &mut runs).unwrap();
    assert_eq!(runs, 2);
    assert_eq!(plain.state().log_index().unwrap(), Some(4));
    // A store that never took a turn is not fenced.
    put(&plain, None, b"plain", &mut runs).unwrap();
    assert!(has(&b, b"plain"));
    wb.release().unwrap();

    // A's turn again: A writes, B is fenced (reconcile too).
    assert_eq!(wa.take(SHORT).unwrap(), turn(3, 0, false));
    assert_eq!(epochs(&mut c, &schema), (3, 3));
    put(&a, Some(5), b"a5", &mut runs).unwrap();
    put_applied(&a, 6, b"a6", &mut runs).unwrap();
    assert_eq!(fenced(put(&b, Some(7), b"b7", &mut runs)), (2, 3));
    assert_eq!(fenced(put_applied(&b, 7, b"b7", &mut runs)), (2, 3));
    assert_eq!(fenced_reconcile(b.state().reconcile(0)), (2, 3));
    assert!(!has(&plain, b"b7"));
    assert_eq!(plain.state().log_index().unwrap(), Some(6));
    // Nobody took a turn since: A resumes, writing nothing, and still writes.
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(3, 0, true));
    put(&a, Some(7), b"a7", &mut runs).unwrap();
    // A's reconcile runs (it is A's turn): undoes the journaled stamps
    // from index 5 on (transact 5 and 7; `transact_applied` journals none).
    assert_eq!(a.state().reconcile(5).unwrap(), 2);
    assert!(!has(&plain, b"a5") && !has(&plain, b"a7") && has(&plain, b"a6"));
    drop((wa, wb, a, b, plain));
    common::drop_schema(&url, &schema);
}

/// Fenced state errors reach the trait as `Backend`, still typed.
fn fenced_reconcile(r: medledger_store::Result<u64>) -> (u64, u64) {
    fenced(r.map(|_| ()))
}

#[test]
fn a_take_waits_for_a_state_transaction_in_flight_and_fences_the_next() {
    let Some(url) = common::url("state_fence::a_take_waits_for_a_state_transaction") else {
        return;
    };
    let schema = common::fresh_schema("stflight");
    let (a, b) = (open(&url, &schema), open(&url, &schema));
    let (wa, wb) = (a.writer(), b.writer());
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 0, false));
    // A's state transaction starts and holds `state_meta` open...
    let (started_tx, started) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let a_state = std::sync::Arc::clone(a.state());
    let writer = std::thread::spawn(move || {
        a_state.transact(Some(1), &mut |t: &mut dyn StateTxn| {
            t.put(T, b"in flight", b"v")?;
            started_tx.send(()).unwrap();
            go.recv().unwrap();
            Ok(())
        })
    });
    started.recv().unwrap();
    // ... while A's turn ends (as when its writer session dies) and B
    // takes: B's take waits for A's transaction.
    wa.release().unwrap();
    let taker = std::thread::spawn(move || {
        let began = Instant::now();
        let r = wb.take(Duration::from_secs(5));
        (r, began.elapsed(), wb)
    });
    let hold = Duration::from_millis(300);
    std::thread::sleep(hold);
    assert!(
        !taker.is_finished(),
        "B's take did not wait for A's state transaction"
    );
    go_tx.send(()).unwrap();
    writer.join().unwrap().unwrap();
    let (r, waited, wb) = taker.join().unwrap();
    assert_eq!(r.unwrap(), turn(2, 0, false));
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    // A's transaction committed before B's turn, and B sees it; A's next
    // one is fenced.
    assert_eq!(b.state().get(T, b"in flight").unwrap(), Some(b"v".to_vec()));
    let mut runs = 0;
    assert_eq!(fenced(put(&a, Some(2), b"a after", &mut runs)), (1, 2));
    assert_eq!(runs, 0);
    put(&b, Some(2), b"b after", &mut runs).unwrap();
    assert_eq!(b.state().log_index().unwrap(), Some(2));
    assert!(!has(&b, b"a after"));
    drop((wa, wb, a, b));
    common::drop_schema(&url, &schema);
}

/// The pid of the session holding `schema`'s writer lock, if any.
fn holder(c: &mut postgres::Client, schema: &str) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 7306)",
        &[&schema],
    )
    .unwrap()
    .map(|r| r.get(0))
}

#[test]
fn a_writer_whose_session_died_cannot_write_state_after_the_next_take() {
    let Some(url) = common::url("state_fence::a_writer_whose_session_died") else {
        return;
    };
    let schema = common::fresh_schema("stkill");
    let (a, b) = (open(&url, &schema), open(&url, &schema));
    let (wa, wb) = (a.writer(), b.writer());
    let mut c = common::client(&url);
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 0, false));
    let mut runs = 0;
    put(&a, Some(0), b"a0", &mut runs).unwrap();
    // A's writer session dies; A does not notice. B takes the writer and
    // catches up with the state.
    let pid = holder(&mut c, &schema).unwrap();
    let killed: bool = c
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap()
        .get(0);
    assert!(killed);
    assert_eq!(wb.take(Duration::from_secs(5)).unwrap(), turn(2, 0, false));
    assert_eq!(b.state().log_index().unwrap(), Some(0));
    // A's state writes (on its pool's connections, which are alive) are
    // refused, so B never misses one.
    assert_eq!(fenced(put(&a, Some(1), b"a1", &mut runs)), (1, 2));
    assert_eq!(fenced(put_applied(&a, 1, b"a1", &mut runs)), (1, 2));
    assert_eq!(fenced_reconcile(a.state().reconcile(0)), (1, 2));
    assert_eq!(runs, 1);
    assert!(!has(&b, b"a1"));
    assert_eq!(b.state().get(T, b"a0").unwrap(), Some(b"v".to_vec()));
    put(&b, Some(1), b"b1", &mut runs).unwrap();
    drop((wa, wb, a, b));
    common::drop_schema(&url, &schema);
}
