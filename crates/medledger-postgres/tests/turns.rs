//! Writers taking turns on one schema: the writer lock with a bounded
//! wait, the epoch each take bumps in `log_head`, and the fence that keeps
//! a writer whose turn ended from appending (on both append paths).

mod common;

use common::{fenced, open, turn, NO_WAIT, SHORT};

use std::time::{Duration, Instant};

use medledger_chain::{HashAlg, MerkleLog};
use medledger_postgres::{Error, PgStore};
use medledger_store::EntryLog;

#[test]
fn writers_take_turns_and_a_writer_whose_turn_ended_cannot_append() {
    let Some(url) = common::url("turns::writers_take_turns") else {
        return;
    };
    let schema = common::fresh_schema("turns");
    let (a, b, plain) = (
        open(&url, &schema),
        open(&url, &schema),
        open(&url, &schema),
    );
    let (wa, wb) = (a.writer(), b.writer());
    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut append = |s: &PgStore, body: &[u8]| -> medledger_store::Result<u64> {
        let r = s.entries().append(body);
        if r.is_ok() {
            expected.push(body.to_vec());
        }
        r
    };
    // Before any turn, appends are unguarded.
    assert_eq!(append(&a, b"before turns").unwrap(), 0);

    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 1, false));
    wa.release().unwrap();
    // Nobody took it meanwhile: resumed, same epoch, nothing written.
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 1, true));
    // Taking again while holding it does not lock twice (one release frees it).
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 1, true));
    assert_eq!(append(&a, b"a in turn 1").unwrap(), 1);

    let began = Instant::now();
    let e = wb.take(SHORT).unwrap_err();
    assert!(
        matches!(&e, Error::WriterClaimed { schema: s } if *s == schema),
        "{e:?}"
    );
    assert!(
        began.elapsed() >= Duration::from_millis(90),
        "waited {:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        began.elapsed()
    );

    wa.release().unwrap();
    assert_eq!(wb.take(SHORT).unwrap(), turn(2, 2, false));
    // A's turn ended: its next append (the one-statement path, A wrote the
    // head last) finds the epoch moved and writes nothing.
    assert_eq!(fenced(append(&a, b"a after its turn")), (1, 2));
    assert_eq!(a.entries().len().unwrap(), 2);
    assert_eq!(fenced(append(&a, b"a after its turn, again")), (1, 2));
    assert_eq!(append(&b, b"b in turn 2").unwrap(), 2);

    assert!(matches!(wa.take(SHORT), Err(Error::WriterClaimed { .. })));
    wb.release().unwrap();
    assert_eq!(wa.take(SHORT).unwrap(), turn(3, 3, false));
    assert_eq!(append(&a, b"a in turn 3").unwrap(), 3);
    // B never wrote the head last now: its append takes the locked path,
    // which reads the epoch with the head and rolls back.
    assert_eq!(fenced(append(&b, b"b after its turn")), (2, 3));
    // A store that never took a turn is not fenced.
    assert_eq!(append(&plain, b"from a store without turns").unwrap(), 4);
    assert_eq!(append(&a, b"a still in turn 3").unwrap(), 5);

    // The log is exactly the acknowledged appends, and one tree.
    let n = plain.entries().len().unwrap();
    assert_eq!(plain.entries().read_range(0..n).unwrap(), expected);
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    mem.append_batch(expected.iter()).unwrap();
    assert_eq!(plain.merkle_log().unwrap().root(), mem.root());
    drop((wa, wb, a, b, plain));
    common::drop_schema(&url, &schema);
}

/// The pid of the session holding `schema`'s writer lock, if any.
fn holder(c: &mut postgres::Client, schema: &str, granted: bool) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $2 AND objsubid = 1 \
         AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 7306)",
        &[&schema, &granted],
    )
    .unwrap()
    .map(|r| r.get(0))
}

#[test]
fn a_writer_whose_session_is_killed_hands_over_to_the_one_waiting() {
    let Some(url) = common::url("turns::a_writer_whose_session_is_killed") else {
        return;
    };
    let schema = common::fresh_schema("turnkill");
    let (a, b) = (open(&url, &schema), open(&url, &schema));
    let (wa, wb) = (a.writer(), b.writer());
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 0, false));
    assert_eq!(a.entries().append(b"a").unwrap(), 0);
    let mut c = common::client(&url);
    let held_by = holder(&mut c, &schema, true).unwrap();
    let waiter = std::thread::spawn(move || {
        let began = Instant::now();
        let r = wb.take(Duration::from_secs(5));
        (r, began.elapsed(), wb, b)
    });
    // Wait until B is queued on the lock, then kill A's session.
    let began = Instant::now();
    while holder(&mut c, &schema, false).is_none() {
        assert!(began.elapsed() < Duration::from_secs(4), "B never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed: bool = c
        .query_one("SELECT pg_terminate_backend($1)", &[&held_by])
        .unwrap()
        .get(0);
    assert!(killed);
    let (r, waited, wb, b) = waiter.join().unwrap();
    assert_eq!(r.unwrap(), turn(2, 1, false));
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // A's session and lock are gone, but its fence holds.
    assert_eq!(fenced(a.entries().append(b"a after the kill")), (1, 2));
    // Releasing a claim whose session died is fine (the lock died with it).
    wa.release().unwrap();
    assert!(matches!(wa.take(NO_WAIT), Err(Error::WriterClaimed { .. })));
    assert_eq!(b.entries().append(b"b").unwrap(), 1);
    wb.release().unwrap();
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(3, 2, false));
    drop((wa, wb, a, b));
    common::drop_schema(&url, &schema);
}

#[test]
fn a_take_waits_for_an_append_in_flight_and_confirm_follows_turns() {
    let Some(url) = common::url("turns::a_take_waits_for_an_append_in_flight") else {
        return;
    };
    let schema = common::fresh_schema("turnwait");
    let (a, b) = (open(&url, &schema), open(&url, &schema));
    let (wa, wb) = (a.writer(), b.writer());
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(1, 0, false));
    assert_eq!(a.entries().append(b"a").unwrap(), 0);
    wa.release().unwrap();
    // Another session holds the head row, as an append in flight does: the
    // take's epoch bump waits for it.
    let mut holder = common::client(&url);
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM \"{schema}\".log_head WHERE id = 0 FOR UPDATE"
        ))
        .unwrap();
    let hold = Duration::from_millis(300);
    let taker = std::thread::spawn(move || {
        let began = Instant::now();
        let r = wb.take(NO_WAIT);
        (r, began.elapsed(), wb)
    });
    std::thread::sleep(hold);
    holder.batch_execute("ROLLBACK").unwrap();
    let (r, waited, wb) = taker.join().unwrap();
    assert_eq!(r.unwrap(), turn(2, 1, false));
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(fenced(a.entries().append(b"a, fenced")), (1, 2));

    // `confirm` (the hold-for-good check) sees turns: while B holds the
    // writer, A's confirm is refused; once B releases, it takes the lock
    // (without a new epoch, so A stays fenced until it takes a turn).
    assert!(matches!(wa.confirm(), Err(Error::WriterClaimed { .. })));
    wb.release().unwrap();
    wa.confirm().unwrap();
    assert!(matches!(wb.take(NO_WAIT), Err(Error::WriterClaimed { .. })));
    assert_eq!(fenced(a.entries().append(b"a, still fenced")), (1, 2));
    assert_eq!(wa.take(NO_WAIT).unwrap(), turn(3, 1, false));
    assert_eq!(a.entries().append(b"a again").unwrap(), 1);
    drop((wa, wb, a, b));
    common::drop_schema(&url, &schema);
}
