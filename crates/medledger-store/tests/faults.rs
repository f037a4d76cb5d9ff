//! Fault injection, property-tested over offsets: a flipped bit or a cut at
//! any offset of a segment, the node file, a blob or the state database
//! gives a precise typed error or a reported recovery, never a panic and
//! never altered bytes.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::*;
use medledger_chain::{HashAlg, MerkleLog};
use medledger_store::blob::{decode_blob_file, encode_blob_file};
use medledger_store::conformance::sample_entry;
use medledger_store::{BlobId, EmbeddedStore, EntryLog, Error, StateStore, StoreOptions};
use proptest::prelude::*;

const N: u64 = 30;

/// A pristine store with N entries, built once and copied per case.
fn pristine() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = filled(N);
        let (store, _) = open(dir.path());
        store
            .state()
            .transact(Some(N - 1), &mut |t| {
                for i in 0..200u64 {
                    t.put("wrapped_keys", &i.to_be_bytes(), &sample_entry(3, i))?;
                }
                Ok(())
            })
            .unwrap();
        dir
    })
    .path()
}

fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(pristine(), dir.path());
    dir
}

fn root_of_first(n: u64) -> medledger_chain::Hash {
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    for i in 0..n {
        mem.append(&sample_entry(1, i)).unwrap();
    }
    mem.root()
}

/// After damage to the segment: either a SegmentCorrupt error, or an open
/// whose every entry is the original and whose loss is a reported tail.
fn check_segment_outcome(dir: &Path, damaged_frame: usize) {
    match EmbeddedStore::open(dir, StoreOptions::default()) {
        Ok((store, report)) => {
            let len = store.log().len().unwrap();
            for i in 0..len {
                assert_eq!(
                    store.log().read(i).unwrap(),
                    sample_entry(1, i),
                    "entry {i} altered"
                );
            }
            if len < N {
                assert!(report.torn_tail.is_some(), "entries lost without a report");
                assert!(
                    len as usize >= damaged_frame,
                    "intact entries before the damage dropped"
                );
            }
            assert_eq!(store.merkle_log().unwrap().root(), root_of_first(len));
        }
        Err(Error::SegmentCorrupt {
            segment, offset, ..
        }) => {
            assert_eq!(segment, "00000000000000000000.seg");
            let offsets = frame_offsets(N);
            assert!(
                offset == 0 || offsets.contains(&offset),
                "offset {offset} is a frame start"
            );
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

fn frame_of(byte: u64) -> usize {
    frame_offsets(N)
        .iter()
        .filter(|&&o| o <= byte)
        .count()
        .saturating_sub(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn segment_bit_flip(bit in any::<u64>()) {
        let dir = copy();
        let seg = first_segment(dir.path());
        let bits = std::fs::metadata(&seg).unwrap().len() * 8;
        let bit = bit % bits;
        flip_bit(&seg, bit);
        check_segment_outcome(dir.path(), frame_of(bit / 8));
    }

    #[test]
    fn segment_truncation(cut in any::<u64>()) {
        let dir = copy();
        let seg = first_segment(dir.path());
        let len = std::fs::metadata(&seg).unwrap().len();
        let cut = cut % len;
        truncate(&seg, cut);
        let (store, report) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
        let whole = frame_offsets(N).iter().filter(|&&o| o < cut).count() as u64;
        let complete = if frame_offsets(N).contains(&cut) { whole } else { whole.saturating_sub(1) };
        let complete = if cut < 24 { 0 } else { complete };
        prop_assert_eq!(store.log().len().unwrap(), complete);
        prop_assert_eq!(report.torn_tail.is_some(), !frame_offsets(N).contains(&cut));
        for i in 0..complete {
            prop_assert_eq!(store.log().read(i).unwrap(), sample_entry(1, i));
        }
        prop_assert_eq!(store.merkle_log().unwrap().root(), root_of_first(complete));
        prop_assert_eq!(store.log().append(b"after").unwrap(), complete);
    }

    #[test]
    fn node_file_bit_flip_or_cut(bit in any::<u64>(), cut in any::<bool>()) {
        let dir = copy();
        let nodes = dir.path().join("nodes.dat");
        let len = std::fs::metadata(&nodes).unwrap().len();
        if cut {
            truncate(&nodes, bit % len);
        } else {
            flip_bit(&nodes, bit % (len * 8));
        }
        match EmbeddedStore::open(dir.path(), StoreOptions::default()) {
            Ok((store, _)) => {
                let tree = store.merkle_log().unwrap();
                prop_assert_eq!(tree.root(), root_of_first(N));
                let p = tree.inclusion_proof(7, N).unwrap();
                prop_assert!(p.verify(HashAlg::Blake3, &HashAlg::Blake3.leaf_hash(&sample_entry(1, 7)), &tree.root()).is_ok());
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn blob_bit_flip_or_cut_is_always_an_error(
        len in 0usize..200_000,
        at in any::<u64>(),
        cut in any::<bool>(),
    ) {
        let id = BlobId([9; 32]);
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut file = encode_blob_file(&id, &data);
        prop_assert_eq!(decode_blob_file(&file, id).unwrap(), data);
        if cut {
            file.truncate((at % file.len() as u64) as usize);
        } else {
            let bit = at % (file.len() as u64 * 8);
            file[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        let is_error = matches!(
            decode_blob_file(&file, id),
            Err(Error::BlobCorrupt { .. } | Error::UnsupportedVersion { .. })
        );
        prop_assert!(is_error);
    }
}

/// redb checks its page checksums only in `check_integrity` (which open
/// runs); every value also carries a tag. Damage anywhere in the database
/// file gives an error, a repair, or the right values: never a wrong one.
#[test]
fn state_database_damage_never_yields_a_wrong_value() {
    let db_len = std::fs::metadata(pristine().join("state.redb"))
        .unwrap()
        .len();
    let mut outcomes = std::collections::BTreeMap::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for case in 0..64u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let dir = copy();
        let path = dir.path().join("state.redb");
        let at = if case < 8 {
            case * 4096 + 100
        } else {
            rng % db_len
        };
        flip_bit(&path, at * 8 + case % 8);
        let outcome = match EmbeddedStore::open(dir.path(), StoreOptions::default()) {
            Err(Error::StateCorrupt { .. }) => "open: corrupt",
            Err(Error::Backend { .. }) => "open: backend error",
            Err(other) => panic!("case {case}: unexpected error {other:?}"),
            Ok((store, report)) => {
                let mut wrong = 0;
                let mut missing = 0;
                let mut errors = 0;
                for i in 0..200u64 {
                    match store.state().get("wrapped_keys", &i.to_be_bytes()) {
                        Ok(Some(v)) => wrong += usize::from(v != sample_entry(3, i)),
                        Ok(None) => missing += 1,
                        Err(_) => errors += 1,
                    }
                }
                assert_eq!(wrong, 0, "case {case}: a wrong value was returned");
                if missing > 0 {
                    assert_eq!(
                        report.state_check,
                        medledger_store::StateCheck::Repaired,
                        "case {case}: values vanished without a reported repair"
                    );
                    "open: repaired, values rolled back"
                } else if errors > 0 {
                    "read: corrupt"
                } else {
                    "no effect"
                }
            }
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    eprintln!("state database bit flips: {outcomes:?}");
}

/// Damage inside a stored value that redb's own structures do not notice
/// (open without the integrity check) is caught by the value's tag.
#[test]
fn damaged_state_value_fails_its_tag() {
    let dir = copy();
    let path = dir.path().join("state.redb");
    let mut db = std::fs::read(&path).unwrap();
    let needle = sample_entry(3, 5);
    let at = db
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap();
    db[at + needle.len() / 2] ^= 0x10;
    std::fs::write(&path, db).unwrap();
    let opts = StoreOptions {
        verify_state: false,
        ..StoreOptions::default()
    };
    let (store, _) = EmbeddedStore::open(dir.path(), opts).unwrap();
    assert!(matches!(
        store.state().get("wrapped_keys", &5u64.to_be_bytes()),
        Err(Error::StateCorrupt {
            reason: "stored value fails its checksum",
            ..
        })
    ));
    assert_eq!(
        store
            .state()
            .get("wrapped_keys", &6u64.to_be_bytes())
            .unwrap(),
        Some(sample_entry(3, 6))
    );
}
