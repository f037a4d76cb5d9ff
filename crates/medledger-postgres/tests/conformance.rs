//! medledger-store's conformance suite, unchanged, on PostgreSQL.

mod common;

use medledger_chain::HashAlg;
use medledger_store::conformance;

#[test]
fn entry_log() {
    let Some(url) = common::url("conformance::entry_log") else {
        return;
    };
    let (schema, s) = common::store(&url, "conf_log", HashAlg::Sha256);
    conformance::entry_log(s.entries().as_ref());
    // The tree the sequencer wrote beside the entries is the tree of them.
    let tree = s.merkle_log().unwrap();
    let mut mem = medledger_chain::MerkleLog::in_memory(HashAlg::Sha256);
    let n = medledger_store::EntryLog::len(s.entries().as_ref()).unwrap();
    mem.append_batch(medledger_store::EntryLog::read_range(s.entries().as_ref(), 0..n).unwrap())
        .unwrap();
    assert_eq!(tree.size(), n);
    assert_eq!(tree.root(), mem.root());
    common::drop_schema(&url, &schema);
}

#[test]
fn entry_log_without_group_commit() {
    let Some(url) = common::url("conformance::entry_log_without_group_commit") else {
        return;
    };
    let schema = common::fresh_schema("conf_nogc");
    let mut o = common::options(&schema, HashAlg::Blake3);
    o.group_commit = false;
    let s = medledger_postgres::PgStore::open(&url, o).unwrap();
    conformance::entry_log(s.entries().as_ref());
    common::drop_schema(&url, &schema);
}

#[test]
fn node_store() {
    let Some(url) = common::url("conformance::node_store") else {
        return;
    };
    let (schema, s) = common::store(&url, "conf_nodes", HashAlg::Sha256);
    conformance::node_store(s.nodes());
    common::drop_schema(&url, &schema);
}

#[test]
fn blob_store() {
    let Some(url) = common::url("conformance::blob_store") else {
        return;
    };
    let (schema, s) = common::store(&url, "conf_blobs", HashAlg::Blake3);
    conformance::blob_store(s.blobs().as_ref());
    common::drop_schema(&url, &schema);
}

#[test]
fn state_store() {
    let Some(url) = common::url("conformance::state_store") else {
        return;
    };
    let (schema, s) = common::store(&url, "conf_state", HashAlg::Blake3);
    conformance::state_store(s.state().as_ref());
    common::drop_schema(&url, &schema);
}
