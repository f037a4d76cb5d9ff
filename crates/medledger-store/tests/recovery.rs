//! Reopen and recovery through the public API: persistence, torn tails,
//! corruption reports, versions, node recomputation, blobs, and the state
//! store in both crash orders.

mod common;

use std::io::Write;

use common::*;
use medledger_chain::{HashAlg, MerkleLog};
use medledger_store::conformance::sample_entry;
use medledger_store::{
    read_blob, BlobId, BlobStore, EmbeddedStore, EntryLog, Error, StateStore, StoreOptions,
};

#[test]
fn merkle_log_persists_through_the_node_file() {
    let dir = filled(1000);
    let (store, report) = open(dir.path());
    assert_eq!(report.entries, 1000);
    assert_eq!(
        report.leaves_recomputed, 0,
        "a clean reopen recomputes nothing"
    );
    assert!(!report.created);
    let tree = store.merkle_log().unwrap();
    assert_eq!(tree.size(), 1000);
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    for i in 0..1000 {
        mem.append(&sample_entry(1, i)).unwrap();
    }
    assert_eq!(tree.root(), mem.root());
    let proof = tree.inclusion_proof(617, 1000).unwrap();
    proof
        .verify(
            HashAlg::Blake3,
            &HashAlg::Blake3.leaf_hash(&sample_entry(1, 617)),
            &tree.root(),
        )
        .unwrap();
    let old_root = tree.root_at(400).unwrap();
    let c = tree.consistency_proof(400, 1000).unwrap();
    medledger_chain::verify_consistency(
        HashAlg::Blake3,
        400,
        1000,
        &old_root,
        &tree.root(),
        &c.path,
    )
    .unwrap();
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let dir = filled(10);
    let seg = first_segment(dir.path());
    let offsets = frame_offsets(10);
    let len = std::fs::metadata(&seg).unwrap().len();
    truncate(&seg, len - 3);
    let (store, report) = open(dir.path());
    let torn = report.torn_tail.unwrap();
    assert_eq!(torn.offset, offsets[9]);
    assert_eq!(torn.bytes_dropped, len - 3 - offsets[9]);
    assert_eq!(torn.segment, "00000000000000000000.seg");
    assert_eq!(report.entries, 9);
    assert_eq!(
        report.node_records_dropped, 2,
        "leaf 9 and node (1, 4) go with entry 9"
    );
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        offsets[9],
        "file cut at the torn frame"
    );
    assert_eq!(store.log().append(b"next").unwrap(), 9);
    assert_eq!(store.log().read(9).unwrap(), b"next");
    assert_eq!(store.log().read(8).unwrap(), sample_entry(1, 8));
}

#[test]
fn zero_filled_tail_is_torn() {
    let dir = filled(5);
    let seg = first_segment(dir.path());
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0u8; 300]).unwrap();
    drop(f);
    let (store, report) = open(dir.path());
    assert_eq!(report.torn_tail.unwrap().bytes_dropped, 300);
    assert_eq!(store.log().len().unwrap(), 5);
}

#[test]
fn corruption_before_the_tail_names_segment_and_offset() {
    let dir = filled(10);
    let seg = first_segment(dir.path());
    let offsets = frame_offsets(10);
    flip_bit(&seg, (offsets[3] + 25) * 8);
    let before = std::fs::read(&seg).unwrap();
    match EmbeddedStore::open(dir.path(), StoreOptions::default()) {
        Err(Error::SegmentCorrupt {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!(segment, "00000000000000000000.seg");
            assert_eq!(offset, offsets[3]);
            assert_eq!(reason, "payload checksum mismatch");
        }
        other => panic!("expected SegmentCorrupt, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        before,
        "nothing is cut or repaired"
    );
}

#[test]
fn damage_in_an_earlier_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::default();
    opts.log.segment_size = 1024;
    {
        let (store, _) = EmbeddedStore::open(dir.path(), opts).unwrap();
        for i in 0..40 {
            store.log().append(&sample_entry(1, i)).unwrap();
        }
        assert!(store.log().segment_count() >= 3);
    }
    let seg = first_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    truncate(&seg, len - 1);
    match EmbeddedStore::open(dir.path(), opts) {
        Err(Error::SegmentCorrupt { segment, .. }) => {
            assert_eq!(segment, "00000000000000000000.seg")
        }
        other => panic!("expected SegmentCorrupt, got {other:?}"),
    }
}

/// The log always starts at entry 0 (nothing prunes it), so a missing
/// first segment is corruption, not a log that silently starts later and
/// answers `IndexOutOfRange` for entries below its length.
#[test]
fn a_missing_first_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::default();
    opts.log.segment_size = 1024;
    {
        let (store, _) = EmbeddedStore::open(dir.path(), opts).unwrap();
        let mut tree = store.merkle_log().unwrap();
        for i in 0..40 {
            let e = sample_entry(1, i);
            store.log().append(&e).unwrap();
            tree.append(&e).unwrap();
        }
        assert!(store.log().segment_count() >= 3);
    }
    std::fs::remove_file(first_segment(dir.path())).unwrap();
    match EmbeddedStore::open(dir.path(), opts) {
        Err(Error::SegmentCorrupt {
            segment, offset, ..
        }) => {
            assert_ne!(segment, "00000000000000000000.seg");
            assert!(segment.ends_with(".seg"));
            assert_eq!(offset, 0);
        }
        other => panic!("expected SegmentCorrupt, got {other:?}"),
    }
}

/// A state file whose undo sequence number is already u64::MAX (checksum
/// intact) is a typed error on the next stamped transaction, not an
/// overflow that wraps the sequence and reuses undo journal keys.
#[test]
fn an_exhausted_undo_sequence_is_a_typed_error() {
    use medledger_store::StateStore;
    let dir = filled(1);
    {
        let db = redb::Database::open(dir.path().join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta = redb::TableDefinition::<&[u8], &[u8]>::new("m.meta");
            let mut t = txn.open_table(meta).unwrap();
            let v =
                medledger_store::state::wrap_value("m.meta", b"undo_seq", &u64::MAX.to_le_bytes());
            t.insert(b"undo_seq".as_slice(), v.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (store, _) = open(dir.path());
    match store
        .state()
        .transact(Some(0), &mut |t| t.put("t.x", b"k", b"v"))
    {
        Err(Error::StateCorrupt { table, reason }) => {
            assert_eq!(
                (table.as_str(), reason),
                ("m.meta", "undo sequence number overflows u64")
            );
        }
        other => panic!("expected StateCorrupt, got {other:?}"),
    }
    assert_eq!(store.state().get("t.x", b"k").unwrap(), None);
}

#[test]
fn corruption_after_open_is_caught_on_read() {
    let dir = filled(4);
    let (store, _) = open(dir.path());
    flip_bit(&first_segment(dir.path()), (frame_offsets(4)[2] + 21) * 8);
    assert!(matches!(
        store.log().read(2),
        Err(Error::SegmentCorrupt { .. })
    ));
    assert_eq!(store.log().read(1).unwrap(), sample_entry(1, 1));
}

#[test]
fn newer_versions_are_refused() {
    let dir = filled(2);
    let manifest = dir.path().join("MANIFEST");
    let good = std::fs::read(&manifest).unwrap();
    let mut m = good.clone();
    m[8] = 2;
    let crc = crc32fast::hash(&m[..16]);
    m[16..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&manifest, &m).unwrap();
    assert!(matches!(
        EmbeddedStore::open(dir.path(), StoreOptions::default()),
        Err(Error::UnsupportedVersion {
            what: "store",
            found: 2,
            supported: 1
        })
    ));
    std::fs::write(&manifest, &good).unwrap();
    let seg = first_segment(dir.path());
    let mut s = std::fs::read(&seg).unwrap();
    s[8] = 9;
    let crc = crc32fast::hash(&s[..20]);
    s[20..24].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &s).unwrap();
    assert!(matches!(
        EmbeddedStore::open(dir.path(), StoreOptions::default()),
        Err(Error::UnsupportedVersion {
            what: "log segment",
            found: 9,
            ..
        })
    ));
}

#[test]
fn hash_algorithm_is_fixed_at_creation() {
    let dir = filled(1);
    let opts = StoreOptions {
        hash_alg: HashAlg::Sha256,
        ..StoreOptions::default()
    };
    assert!(matches!(
        EmbeddedStore::open(dir.path(), opts),
        Err(Error::HashAlgMismatch {
            stored: 1,
            requested: 3
        })
    ));
}

#[test]
fn damaged_node_file_is_recomputed_from_the_entries() {
    let dir = filled(100);
    let root = open(dir.path()).0.merkle_log().unwrap().root();
    let nodes = dir.path().join("nodes.dat");
    flip_bit(&nodes, (20 + 36 * 50 + 7) * 8);
    let (store, report) = open(dir.path());
    assert_eq!(report.node_corruption_at, Some(20 + 36 * 50));
    assert!(report.leaves_recomputed > 0);
    assert_eq!(store.merkle_log().unwrap().root(), root);
    drop(store);
    // Torn mid-record.
    let len = std::fs::metadata(&nodes).unwrap().len();
    truncate(&nodes, len - 5);
    let (store, report) = open(dir.path());
    assert_eq!(report.leaves_recomputed, 1);
    assert_eq!(store.merkle_log().unwrap().root(), root);
}

#[test]
fn nodes_beyond_the_durable_entries_are_dropped() {
    let dir = filled(10);
    {
        // Nodes for entries the log never got (a crash between the two).
        let (store, _) = open(dir.path());
        let mut tree = store.merkle_log().unwrap();
        tree.append(b"never logged").unwrap();
        tree.append(b"never logged either").unwrap();
    }
    let (store, report) = open(dir.path());
    assert_eq!(
        report.node_records_dropped, 4,
        "stored_count(12) - stored_count(10)"
    );
    assert_eq!(store.merkle_log().unwrap().size(), 10);
}

#[test]
fn node_file_refuses_a_second_writer() {
    let dir = filled(3);
    let (store, _) = open(dir.path());
    let mut a = store.merkle_log().unwrap();
    let mut b = store.merkle_log().unwrap();
    a.append(b"x").unwrap();
    assert!(
        b.append(b"y").is_err(),
        "a stale handle cannot append at the wrong place"
    );
}

#[test]
fn blobs_survive_reopen_and_orphans_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, orphan) = (BlobId([1; 32]), BlobId([2; 32]));
    {
        let (store, _) = open(dir.path());
        for id in [kept, orphan] {
            let mut w = store.blobs().create(id).unwrap();
            w.write_all(&vec![id.0[0]; 100_000]).unwrap();
            w.commit().unwrap();
        }
        // The entry for `kept` became durable; the one for `orphan` did not.
        store.log().append(&kept.0).unwrap();
        // A write interrupted by a crash leaves a temporary file.
        std::fs::write(dir.path().join("blobs/tmp/stray.tmp"), b"partial").unwrap();
    }
    let (store, report) = open(dir.path());
    assert_eq!(report.temp_blobs_removed, 1);
    assert_eq!(report.pending_blobs, 2);
    let log = store.log();
    let deleted = store
        .blobs()
        .collect_pending(
            &mut |id| Ok((0..log.len()?).any(|i| log.read(i).is_ok_and(|e| e == id.0))),
        )
        .unwrap();
    assert_eq!(deleted, vec![orphan]);
    assert_eq!(read_blob(store.blobs(), &kept).unwrap(), vec![1u8; 100_000]);
    assert!(!store.blobs().exists(&orphan).unwrap());
}

#[test]
fn damaged_blobs_are_errors_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let id = BlobId([7; 32]);
    let (store, _) = open(dir.path());
    let mut w = store.blobs().create(id).unwrap();
    w.write_all(&vec![5u8; 150_000]).unwrap();
    w.commit().unwrap();
    let path = dir.path().join("blobs/pending").join(id.to_hex());
    flip_bit(&path, 100_000 * 8);
    assert!(matches!(
        read_blob(store.blobs(), &id),
        Err(Error::BlobCorrupt { .. })
    ));
    flip_bit(&path, 100_000 * 8);
    assert_eq!(read_blob(store.blobs(), &id).unwrap().len(), 150_000);
    let len = std::fs::metadata(&path).unwrap().len();
    truncate(&path, len - 16);
    assert!(matches!(
        read_blob(store.blobs(), &id),
        Err(Error::BlobCorrupt { .. })
    ));
}

const T: &str = "derived";

/// Entry first, then state: a crash between them leaves the state behind;
/// the open report says where it stands and the caller replays the rest.
#[test]
fn state_behind_the_log_is_caught_up_by_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        for i in 0..3u64 {
            store.log().append(&sample_entry(2, i)).unwrap();
            store
                .state()
                .transact(Some(i), &mut |t| t.put(T, &i.to_be_bytes(), b"applied"))
                .unwrap();
        }
        store.log().append(&sample_entry(2, 3)).unwrap();
        // Crash here: entry 3 is durable, its state transaction never ran.
    }
    let (store, report) = open(dir.path());
    assert_eq!(report.entries, 4);
    assert_eq!(report.state_log_index, Some(2));
    assert_eq!(report.state_undone, 0);
    for i in report.state_log_index.map_or(0, |i| i + 1)..report.entries {
        store
            .state()
            .transact(Some(i), &mut |t| t.put(T, &i.to_be_bytes(), b"applied"))
            .unwrap();
    }
    assert_eq!(store.state().scan(T, b"", 100).unwrap().len(), 4);
    assert_eq!(store.state().log_index().unwrap(), Some(3));
}

/// State first, then entry: a crash between them leaves the state ahead of
/// the log; open undoes the transaction so the state matches the log.
#[test]
fn state_ahead_of_the_log_is_undone_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        store
            .state()
            .transact(None, &mut |t| t.put("meta", b"k", b"unstamped"))
            .unwrap();
        for i in 0..2u64 {
            store
                .state()
                .transact(Some(i), &mut |t| t.put(T, &i.to_be_bytes(), b"applied"))
                .unwrap();
            store.log().append(&sample_entry(2, i)).unwrap();
        }
        store
            .state()
            .transact(Some(2), &mut |t| {
                t.put(T, &2u64.to_be_bytes(), b"applied")?;
                t.put(T, &0u64.to_be_bytes(), b"overwritten")?;
                t.delete(T, &1u64.to_be_bytes()).map(|_| ())
            })
            .unwrap();
        // Crash here: the state reflects entry 2, the log never got it.
    }
    let (store, report) = open(dir.path());
    assert_eq!(report.entries, 2);
    assert_eq!(report.state_undone, 1);
    assert_eq!(report.state_log_index, Some(1));
    let rows = store.state().scan(T, b"", 100).unwrap();
    assert_eq!(
        rows,
        vec![
            (0u64.to_be_bytes().to_vec(), b"applied".to_vec()),
            (1u64.to_be_bytes().to_vec(), b"applied".to_vec())
        ]
    );
    assert_eq!(
        store.state().get("meta", b"k").unwrap(),
        Some(b"unstamped".to_vec())
    );
}

/// An entry-first transaction (`transact_applied`) is stamped without an
/// undo journal; reconciling against a log that still holds its entry
/// keeps it, and a log that lost it is a typed error, not a silent undo.
#[test]
fn applied_transactions_skip_the_journal_and_a_lost_entry_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    let state = store.state();
    state
        .transact(Some(0), &mut |t| t.put("keys", b"a", b"journaled"))
        .unwrap();
    state
        .transact_applied(3, &mut |t| t.put("keys", b"b", b"applied"))
        .unwrap();
    assert_eq!(state.log_index().unwrap(), Some(3));
    assert!(matches!(
        state.transact_applied(2, &mut |_| Ok(())),
        Err(Error::StateIndexRegressed {
            current: 3,
            requested: 2
        })
    ));
    // The log holds entries 0..=3: nothing to undo, the journal of 0 goes.
    assert_eq!(state.reconcile(4).unwrap(), 0);
    assert_eq!(state.get("keys", b"b").unwrap(), Some(b"applied".to_vec()));
    // A log of 3 entries lost the applied entry 3.
    assert!(matches!(
        state.reconcile(3),
        Err(Error::StateAheadOfLog {
            stamp: 3,
            log_len: 3
        })
    ));
    assert_eq!(state.get("keys", b"b").unwrap(), Some(b"applied".to_vec()));
    assert_eq!(state.log_index().unwrap(), Some(3));
}
