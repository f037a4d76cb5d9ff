//! The conformance suite on the in-memory and the embedded backends.

use medledger_store::{
    conformance, EmbeddedStore, MemoryBlobStore, MemoryLog, MemoryStateStore, StoreOptions,
};

fn embedded() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(report.created);
    (dir, store)
}

#[test]
fn memory_log() {
    conformance::entry_log(&MemoryLog::new());
}

#[test]
fn memory_nodes() {
    conformance::node_store(medledger_chain::MemoryNodeStore::new());
}

#[test]
fn memory_blobs() {
    conformance::blob_store(&MemoryBlobStore::new());
}

#[test]
fn memory_state() {
    conformance::state_store(&MemoryStateStore::new());
}

#[test]
fn embedded_log() {
    let (_d, s) = embedded();
    conformance::entry_log(s.log());
}

#[test]
fn embedded_log_small_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::default();
    opts.log.segment_size = 4096;
    let (s, _) = EmbeddedStore::open(dir.path(), opts).unwrap();
    conformance::entry_log(s.log());
    assert!(s.log().segment_count() > 5);
}

#[test]
fn embedded_log_without_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::default();
    opts.log.group_commit = false;
    let (s, _) = EmbeddedStore::open(dir.path(), opts).unwrap();
    conformance::entry_log(s.log());
}

#[test]
fn embedded_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        hash_alg: medledger_chain::HashAlg::Sha256,
        ..StoreOptions::default()
    };
    let (s, _) = EmbeddedStore::open(dir.path(), opts).unwrap();
    conformance::node_store(s.nodes());
}

#[test]
fn embedded_blobs() {
    let (_d, s) = embedded();
    conformance::blob_store(s.blobs());
}

#[test]
fn embedded_state() {
    let (_d, s) = embedded();
    conformance::state_store(s.state());
}
