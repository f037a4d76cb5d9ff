//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use medledger_store::conformance::sample_entry;
use medledger_store::{EmbeddedStore, EntryLog, StoreOptions};

pub fn open(dir: &Path) -> (EmbeddedStore, medledger_store::OpenReport) {
    EmbeddedStore::open(dir, StoreOptions::default()).unwrap()
}

pub fn first_segment(dir: &Path) -> PathBuf {
    dir.join("log").join(format!("{:020}.seg", 0))
}

/// A store with `n` sample entries in its log and Merkle tree.
pub fn filled(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let mut tree = store.merkle_log().unwrap();
    for i in 0..n {
        let e = sample_entry(1, i);
        assert_eq!(store.log().append(&e).unwrap(), i);
        tree.append(&e).unwrap();
    }
    dir
}

/// Byte offset of each frame in the first segment of `filled(n)`.
pub fn frame_offsets(n: u64) -> Vec<u64> {
    let mut at = 24u64;
    (0..n)
        .map(|i| {
            let o = at;
            at += 20 + sample_entry(1, i).len() as u64;
            o
        })
        .collect()
}

pub fn flip_bit(path: &Path, bit: u64) {
    let mut b = std::fs::read(path).unwrap();
    let i = (bit / 8) as usize;
    b[i] ^= 1 << (bit % 8);
    std::fs::write(path, b).unwrap();
}

pub fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

pub fn copy_dir(from: &Path, to: &Path) {
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let dest = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&item.path(), &dest);
        } else if item.file_name() != "LOCK" {
            std::fs::copy(item.path(), dest).unwrap();
        }
    }
}
