//! Opening: schema creation and versioning, the hash algorithm, bad
//! addresses, and the node store agreeing with what the log wrote.

mod common;

use medledger_chain::{HashAlg, MerkleLog};
use medledger_postgres::{Error, PgOptions, PgStore, SCHEMA_VERSION};
use medledger_store::EntryLog;

#[test]
fn reopening_finds_the_same_log() {
    let Some(url) = common::url("open::reopening_finds_the_same_log") else {
        return;
    };
    let (schema, s) = common::store(&url, "reopen", HashAlg::Sha3_256);
    s.entries().append_batch(&[b"a", b"b", b"c"]).unwrap();
    let root = s.merkle_log().unwrap().root();
    drop(s);
    let s = PgStore::open(&url, common::options(&schema, HashAlg::Sha3_256)).unwrap();
    assert_eq!(s.entries().len().unwrap(), 3);
    assert_eq!(s.merkle_log().unwrap().root(), root);
    common::drop_schema(&url, &schema);
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(url) = common::url("open::a_newer_schema_is_refused") else {
        return;
    };
    let (schema, s) = common::store(&url, "newer", HashAlg::Blake3);
    drop(s);
    common::client(&url)
        .execute(
            &format!("UPDATE \"{schema}\".schema_version SET version = $1"),
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    let e = PgStore::open(&url, common::options(&schema, HashAlg::Blake3)).unwrap_err();
    assert!(
        matches!(e, Error::SchemaTooNew { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{e}"
    );
    assert!(matches!(
        medledger_store::Error::from(e),
        medledger_store::Error::UnsupportedVersion { .. }
    ));
    common::drop_schema(&url, &schema);
}

#[test]
fn another_hash_algorithm_is_refused() {
    let Some(url) = common::url("open::another_hash_algorithm_is_refused") else {
        return;
    };
    let (schema, s) = common::store(&url, "alg", HashAlg::Blake3);
    drop(s);
    let e = PgStore::open(&url, common::options(&schema, HashAlg::Sha256)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::HashAlgMismatch {
                stored: 1,
                requested: HashAlg::Sha256
            }
        ),
        "{e}"
    );
    common::drop_schema(&url, &schema);
}

#[test]
fn bad_addresses_and_names_are_typed_errors() {
    // No server needed.
    let e = PgStore::open(
        "host=/nonexistent/medledger user=x connect_timeout=2",
        PgOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    let e = PgStore::open("postgresql://[bad", PgOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidUrl { .. }), "{e}");
    let o = PgOptions {
        schema: "Robert'); DROP TABLE".into(),
        ..PgOptions::default()
    };
    let e = PgStore::open("host=/nonexistent user=x", o).unwrap_err();
    assert!(matches!(e, Error::InvalidSchemaName { .. }), "{e}");
}

#[test]
fn the_node_store_checks_nodes_the_log_wrote() {
    let Some(url) = common::url("open::the_node_store_checks_nodes_the_log_wrote") else {
        return;
    };
    let (schema, s) = common::store(&url, "agree", HashAlg::Blake3);
    // The facade's order: the tree opened, the entry appended (with its
    // nodes), then the same entry appended to the tree: nodes agree.
    let mut tree = s.merkle_log().unwrap();
    for e in [&b"one"[..], b"two", b"three"] {
        let i = s.entries().append(e).unwrap();
        assert_eq!(tree.append(e).unwrap(), i);
    }
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    mem.append_batch([&b"one"[..], b"two", b"three"]).unwrap();
    assert_eq!(tree.root(), mem.root());
    // A tree that computes a different leaf than the one committed is
    // refused, not silently diverging.
    s.entries().append(b"four").unwrap();
    let e = tree.append(b"not four").unwrap_err();
    assert!(
        matches!(
            Error::in_chain_error(&e),
            Some(Error::Inconsistent { what: "nodes", .. })
        ),
        "{e}"
    );
    common::drop_schema(&url, &schema);
}
