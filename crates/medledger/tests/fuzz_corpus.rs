//! Replays the checked-in corpus and every kept crash of the facade's fuzz
//! targets through the same check the fuzzer runs.

use std::path::Path;

mod share_package {
    include!("../../../fuzz/checks/share_package.rs");
}

/// Runs `check` on every file of `fuzz/corpus/<target>/` and
/// `fuzz/regressions/<target>/`; returns how many seeds there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            if dir == "corpus" {
                seeds += 1;
            }
        }
    }
    seeds
}

#[test]
fn share_package_corpus_replays() {
    assert!(replay("share_package", share_package::check) >= 1);
}

#[test]
fn the_share_package_seed_imports_under_the_fixed_trust() {
    let seed = share_package::seed_package();
    let imported = share_package::importer()
        .import_share(&seed, &share_package::recipient(), "seed/1")
        .unwrap();
    assert_eq!((imported.record.as_str(), imported.version), ("seed/1", 1));
    assert_eq!(imported.checkpoint_size, 1);
    // One changed byte anywhere is refused.
    let mut bad = seed.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    assert!(share_package::importer()
        .import_share(&bad, &share_package::recipient(), "seed/2")
        .is_err());
}
