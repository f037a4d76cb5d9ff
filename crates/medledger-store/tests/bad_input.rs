//! Bad input: wrong paths, a second opener, oversize entries. Each is a
//! typed error, and the store stays usable.

mod common;

use common::*;
use medledger_store::{EmbeddedStore, EntryLog, Error, StoreOptions, MAX_ENTRY_LEN};

#[test]
fn missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        EmbeddedStore::open(&missing, StoreOptions::default()),
        Err(Error::MissingDirectory { path }) if path == missing
    ));
    assert!(!missing.exists(), "nothing is created");
}

#[test]
fn file_where_the_directory_should_be() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        EmbeddedStore::open(&file, StoreOptions::default()),
        Err(Error::NotADirectory { .. })
    ));
    // A file where the log directory or the blob directory goes.
    for inner in ["log", "blobs"] {
        let d = tempfile::tempdir().unwrap();
        drop(open(d.path()));
        std::fs::remove_dir_all(d.path().join(inner)).unwrap();
        std::fs::write(d.path().join(inner), b"x").unwrap();
        let r = EmbeddedStore::open(d.path(), StoreOptions::default());
        assert!(
            matches!(r, Err(Error::NotADirectory { ref path }) if path.ends_with(inner)),
            "{inner}: {r:?}"
        );
    }
}

#[test]
fn unreadable_manifest_is_a_typed_error() {
    let dir = filled(1);
    std::fs::write(dir.path().join("MANIFEST"), b"garbage").unwrap();
    assert!(matches!(
        EmbeddedStore::open(dir.path(), StoreOptions::default()),
        Err(Error::BadManifest { .. })
    ));
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    assert!(matches!(
        EmbeddedStore::open(dir.path(), StoreOptions::default()),
        Err(Error::BadManifest {
            reason: "manifest missing beside an existing log",
            ..
        })
    ));
}

/// A huge (sparse, 1 TiB) manifest is refused by its length without
/// allocating or reading its size first.
#[test]
fn oversize_manifest_is_refused_without_reading_it_whole() {
    let dir = filled(1);
    let path = dir.path().join("MANIFEST");
    let good = std::fs::read(&path).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1 << 40).unwrap();
    drop(f);
    assert!(matches!(
        EmbeddedStore::open(dir.path(), StoreOptions::default()),
        Err(Error::BadManifest {
            reason: "manifest is not 20 bytes",
            ..
        })
    ));
    std::fs::write(&path, &good).unwrap();
    let (store, _) = open(dir.path());
    assert_eq!(store.log().len().unwrap(), 1);
}

#[test]
fn second_opener_is_refused_and_the_first_keeps_working() {
    let dir = filled(2);
    let (first, _) = open(dir.path());
    match EmbeddedStore::open(dir.path(), StoreOptions::default()) {
        Err(Error::AlreadyInUse { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected AlreadyInUse, got {other:?}"),
    }
    assert_eq!(first.log().append(b"still mine").unwrap(), 2);
    // A node handle keeps the lock too.
    let nodes = first.nodes();
    drop(first);
    assert!(matches!(
        EmbeddedStore::open(dir.path(), StoreOptions::default()),
        Err(Error::AlreadyInUse { .. })
    ));
    drop(nodes);
    let (again, _) = open(dir.path());
    assert_eq!(again.log().read(2).unwrap(), b"still mine");
}

#[test]
fn oversize_entry_is_refused_and_the_log_stays_usable() {
    let dir = filled(1);
    let (store, _) = open(dir.path());
    let big = vec![0u8; MAX_ENTRY_LEN + 1];
    assert!(matches!(
        store.log().append(&big),
        Err(Error::EntryTooLarge { len, max: MAX_ENTRY_LEN }) if len == MAX_ENTRY_LEN + 1
    ));
    assert_eq!(store.log().append(b"fine").unwrap(), 1);
    drop(store);
    let (store, report) = open(dir.path());
    assert_eq!(report.torn_tail, None);
    assert_eq!(store.log().read(1).unwrap(), b"fine");
}
