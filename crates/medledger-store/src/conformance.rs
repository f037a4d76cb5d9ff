//! The conformance suite every backend runs unchanged (feature
//! `conformance`): the in-memory stores, the embedded ones, PostgreSQL.
//!
//! Each check takes a fresh, empty store and panics with a message naming
//! the broken contract. Use from a backend's tests:
//!
//! ```ignore
//! medledger_store::conformance::entry_log(&my_log);
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};

use medledger_chain::{HashAlg, MerkleLog, NodeStore};

use crate::blob::{read_blob, BlobId, BlobStore};
use crate::entry_log::EntryLog;
use crate::error::Error;
use crate::segment::MAX_ENTRY_LEN;
use crate::state::StateStore;

/// A deterministic entry for (thread, sequence), of varying length.
pub fn sample_entry(thread: u64, seq: u64) -> Vec<u8> {
    let len = (thread
        .wrapping_mul(7919)
        .wrapping_add(seq.wrapping_mul(104_729))
        % 300) as usize;
    let mut v = format!("t{thread}s{seq}:").into_bytes();
    v.extend((0..len).map(|i| (i as u64 ^ seq ^ thread) as u8));
    v
}

/// [`EntryLog`]: indexes, reads, batches, limits, concurrency.
pub fn entry_log(log: &dyn EntryLog) {
    assert_eq!(log.len().unwrap(), 0, "a fresh log is empty");
    assert!(log.is_empty().unwrap());
    assert!(matches!(
        log.read(0),
        Err(Error::IndexOutOfRange { index: 0, len: 0 })
    ));
    assert_eq!(log.append(b"first").unwrap(), 0);
    assert_eq!(log.append(b"").unwrap(), 1, "empty entries are allowed");
    assert_eq!(
        log.append_batch(&[]).unwrap(),
        2..2,
        "an empty batch is a no-op"
    );
    let batch: Vec<Vec<u8>> = (0..100).map(|i| sample_entry(0, i)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
    assert_eq!(log.append_batch(&refs).unwrap(), 2..102);
    assert_eq!(log.read(0).unwrap(), b"first");
    assert_eq!(log.read(1).unwrap(), b"");
    for (i, b) in batch.iter().enumerate() {
        assert_eq!(&log.read(2 + i as u64).unwrap(), b);
    }
    assert_eq!(log.read_range(2..5).unwrap(), batch[..3].to_vec());
    assert!(matches!(
        log.read(102),
        Err(Error::IndexOutOfRange {
            index: 102,
            len: 102
        })
    ));
    // Over the maximum: refused, and the log stays usable.
    let big = vec![7u8; MAX_ENTRY_LEN + 1];
    assert!(matches!(log.append(&big), Err(Error::EntryTooLarge { .. })));
    assert!(matches!(
        log.append_batch(&[b"ok", &big]),
        Err(Error::EntryTooLarge { .. })
    ));
    assert_eq!(log.len().unwrap(), 102, "a refused batch appends nothing");
    let max = vec![9u8; MAX_ENTRY_LEN];
    assert_eq!(log.append(&max).unwrap(), 102);
    assert_eq!(log.read(102).unwrap().len(), MAX_ENTRY_LEN);
    // Concurrent appenders: every index handed out once, every entry readable.
    let acked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 1..=4u64 {
            let acked = &acked;
            s.spawn(move || {
                for i in 0..50 {
                    let e = sample_entry(t, i);
                    let idx = if i % 5 == 0 {
                        let two = sample_entry(t, i + 1000);
                        let r = log.append_batch(&[&e, &two]).unwrap();
                        assert_eq!(r.end - r.start, 2, "batches are contiguous");
                        acked.lock().unwrap().push((r.start + 1, two));
                        r.start
                    } else {
                        log.append(&e).unwrap()
                    };
                    acked.lock().unwrap().push((idx, e));
                }
            });
        }
    });
    let mut acked = acked.into_inner().unwrap();
    acked.sort();
    assert_eq!(acked.len(), 240);
    for w in acked.windows(2) {
        assert_eq!(w[0].0 + 1, w[1].0, "indexes are dense and unique");
    }
    for (i, e) in &acked {
        assert_eq!(&log.read(*i).unwrap(), e, "entry {i}");
    }
    assert_eq!(log.len().unwrap(), 103 + 240);
}

/// [`NodeStore`]: a [`MerkleLog`] over `store` (empty) agrees with one in
/// memory on roots and proofs.
pub fn node_store<S: NodeStore>(store: S) {
    let alg = HashAlg::Sha256;
    let mut tree = MerkleLog::open(alg, store).unwrap();
    let mut mem = MerkleLog::in_memory(alg);
    for i in 0..300u64 {
        let e = sample_entry(9, i);
        assert_eq!(tree.append(&e).unwrap(), i);
        mem.append(&e).unwrap();
    }
    let batch: Vec<Vec<u8>> = (300..333).map(|i| sample_entry(9, i)).collect();
    assert_eq!(tree.append_batch(batch.iter()).unwrap(), 300..333);
    mem.append_batch(batch.iter()).unwrap();
    assert_eq!(tree.root(), mem.root());
    assert_eq!(tree.store().leaf_count().unwrap(), 333);
    for size in [1u64, 2, 7, 64, 100, 333] {
        assert_eq!(tree.root_at(size).unwrap(), mem.root_at(size).unwrap());
        let p = tree.inclusion_proof(size - 1, size).unwrap();
        p.verify(
            alg,
            &alg.leaf_hash(&sample_entry(9, size - 1)),
            &tree.root_at(size).unwrap(),
        )
        .unwrap();
        let c = tree.consistency_proof(size, 333).unwrap();
        assert_eq!(c.path, mem.consistency_proof(size, 333).unwrap().path);
    }
    assert_eq!(tree.into_store().leaf_count().unwrap(), 333);
}

fn id(n: u8) -> BlobId {
    BlobId([n; 32])
}

/// [`BlobStore`]: streaming round trip, immutability, abort, delete, and
/// the pending life cycle.
pub fn blob_store(blobs: &dyn BlobStore) {
    assert!(!blobs.exists(&id(1)).unwrap());
    assert!(matches!(
        blobs.open(&id(1)),
        Err(Error::BlobNotFound { .. })
    ));
    // A multi-chunk body written in odd-sized pieces.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut w = blobs.create(id(1)).unwrap();
    for piece in body.chunks(7777) {
        w.write_all(piece).unwrap();
    }
    assert!(!blobs.exists(&id(1)).unwrap(), "invisible before commit");
    w.commit().unwrap();
    assert!(blobs.exists(&id(1)).unwrap());
    let mut r = blobs.open(&id(1)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    drop(r);
    assert_eq!(got, body);
    // Empty blob.
    blobs.create(id(2)).unwrap().commit().unwrap();
    assert_eq!(read_blob(blobs, &id(2)).unwrap(), b"");
    // Immutable.
    assert!(matches!(
        blobs.create(id(1)).map(|_| ()),
        Err(Error::BlobExists { .. })
    ));
    // Abort and drop leave nothing.
    let mut w = blobs.create(id(3)).unwrap();
    w.write_all(b"never").unwrap();
    w.abort().unwrap();
    let mut w = blobs.create(id(4)).unwrap();
    w.write_all(b"dropped").unwrap();
    drop(w);
    assert!(!blobs.exists(&id(3)).unwrap() && !blobs.exists(&id(4)).unwrap());
    // Pending life cycle.
    assert_eq!(blobs.pending().unwrap(), vec![id(1), id(2)]);
    blobs.mark_referenced(&id(1)).unwrap();
    blobs.mark_referenced(&id(1)).unwrap();
    assert_eq!(blobs.pending().unwrap(), vec![id(2)]);
    let mut w = blobs.create(id(5)).unwrap();
    w.write_all(b"orphan").unwrap();
    w.commit().unwrap();
    let deleted = blobs.collect_pending(&mut |b| Ok(*b == id(2))).unwrap();
    assert_eq!(deleted, vec![id(5)]);
    assert!(blobs.pending().unwrap().is_empty());
    assert!(blobs.exists(&id(2)).unwrap() && !blobs.exists(&id(5)).unwrap());
    assert_eq!(
        read_blob(blobs, &id(1)).unwrap(),
        body,
        "referenced blobs stay readable"
    );
    // Delete.
    assert!(blobs.delete(&id(1)).unwrap());
    assert!(!blobs.delete(&id(1)).unwrap());
    assert!(!blobs.exists(&id(1)).unwrap());
    assert!(matches!(
        blobs.open(&id(1)),
        Err(Error::BlobNotFound { .. })
    ));
    // An id can be reused after deletion.
    let mut w = blobs.create(id(1)).unwrap();
    w.write_all(b"again").unwrap();
    w.commit().unwrap();
    assert_eq!(read_blob(blobs, &id(1)).unwrap(), b"again");
}

/// [`StateStore`]: reads, scans, atomic transactions, stamps, limits and
/// reconcile.
pub fn state_store(state: &dyn StateStore) {
    assert_eq!(
        state.get("keys", b"a").unwrap(),
        None,
        "a new table is empty"
    );
    assert_eq!(state.log_index().unwrap(), None);
    assert!(matches!(
        state.get("Bad Name", b"a"),
        Err(Error::InvalidTableName { .. })
    ));
    state
        .transact(None, &mut |t| {
            t.put("keys", b"a", b"1")?;
            t.put("keys", b"ab", b"2")?;
            t.put("keys", b"b", b"3")?;
            t.put("other", b"a", b"x")?;
            assert_eq!(
                t.get("keys", b"ab")?,
                Some(b"2".to_vec()),
                "a txn sees its writes"
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(state.get("keys", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        state.scan("keys", b"a", 10).unwrap(),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"ab".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(state.scan("keys", b"", 2).unwrap().len(), 2, "limit holds");
    assert!(state.scan("nothing", b"", 10).unwrap().is_empty());
    // Ranges: start inclusive, end exclusive, in key order, limited.
    assert_eq!(
        state.scan_range("keys", b"a", b"b", 10).unwrap(),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"ab".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(
        state.scan_range("keys", b"aa", b"c", 10).unwrap(),
        vec![
            (b"ab".to_vec(), b"2".to_vec()),
            (b"b".to_vec(), b"3".to_vec())
        ]
    );
    assert_eq!(state.scan_range("keys", b"", b"z", 1).unwrap().len(), 1);
    assert!(state.scan_range("keys", b"b", b"b", 10).unwrap().is_empty());
    assert!(state.scan_range("keys", b"c", b"a", 10).unwrap().is_empty());
    assert!(state
        .scan_range("nothing", b"", b"z", 10)
        .unwrap()
        .is_empty());
    // A failing transaction writes nothing.
    let r = state.transact(None, &mut |t| {
        t.put("keys", b"a", b"changed")?;
        t.delete("keys", b"b")?;
        Err(Error::InvalidTableName {
            name: "abort".into(),
        })
    });
    assert!(r.is_err());
    assert_eq!(state.get("keys", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(state.get("keys", b"b").unwrap(), Some(b"3".to_vec()));
    // Limits.
    let big_key = vec![0u8; crate::state::MAX_STATE_KEY_LEN + 1];
    let r = state.transact(None, &mut |t| t.put("keys", &big_key, b"v"));
    assert!(matches!(r, Err(Error::StateTooLarge { what: "key", .. })));
    // Stamps: monotonic.
    state
        .transact(Some(0), &mut |t| t.put("keys", b"c", b"entry0"))
        .unwrap();
    state
        .transact(Some(1), &mut |t| {
            t.put("keys", b"c", b"entry1")?;
            t.delete("keys", b"a")?;
            Ok(())
        })
        .unwrap();
    state
        .transact(Some(1), &mut |t| t.put("keys", b"d", b"entry1b"))
        .unwrap();
    assert_eq!(state.log_index().unwrap(), Some(1));
    assert!(matches!(
        state.transact(Some(0), &mut |_| Ok(())),
        Err(Error::StateIndexRegressed {
            current: 1,
            requested: 0
        })
    ));
    assert_eq!(
        state
            .transact(None, &mut |t| t.delete("keys", b"zz").map(|_| ()))
            .ok(),
        Some(())
    );
    // The log holds only entry 0: undo both transactions stamped 1.
    assert_eq!(state.reconcile(1).unwrap(), 2);
    assert_eq!(state.log_index().unwrap(), Some(0));
    assert_eq!(state.get("keys", b"c").unwrap(), Some(b"entry0".to_vec()));
    assert_eq!(
        state.get("keys", b"a").unwrap(),
        Some(b"1".to_vec()),
        "deletes are undone"
    );
    assert_eq!(state.get("keys", b"d").unwrap(), None, "inserts are undone");
    // Reconciling again, or with the log ahead, undoes nothing.
    assert_eq!(state.reconcile(1).unwrap(), 0);
    assert_eq!(state.reconcile(5).unwrap(), 0);
    assert_eq!(
        state.reconcile(0).unwrap(),
        0,
        "journal below the log is forgotten"
    );
    assert_eq!(state.log_index().unwrap(), Some(0));
    // An applied (entry-first) transaction: stamped and monotonic like any
    // other, and kept by reconciling against a log that holds its entry.
    state
        .transact_applied(7, &mut |t| t.put("keys", b"e", b"entry7"))
        .unwrap();
    assert_eq!(state.log_index().unwrap(), Some(7));
    assert!(matches!(
        state.transact_applied(6, &mut |_| Ok(())),
        Err(Error::StateIndexRegressed {
            current: 7,
            requested: 6
        })
    ));
    assert_eq!(state.reconcile(8).unwrap(), 0);
    assert_eq!(state.get("keys", b"e").unwrap(), Some(b"entry7".to_vec()));
}
