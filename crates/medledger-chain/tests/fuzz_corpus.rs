//! Replays every checked-in fuzz seed and every kept crash of this crate's
//! fuzz targets (fuzz/corpus/<target>/, fuzz/regressions/<target>/) through
//! the same check the fuzzer runs, so a fixed crash cannot come back.

use std::path::Path;

mod note {
    include!("../../../fuzz/checks/note.rs");
}
mod cosignature {
    include!("../../../fuzz/checks/cosignature.rs");
}
mod tlog_proof {
    include!("../../../fuzz/checks/tlog_proof.rs");
}
mod witness_request {
    include!("../../../fuzz/checks/witness_request.rs");
}
mod split_view {
    include!("../../../fuzz/checks/split_view.rs");
}

/// Runs `check` on every file of the target's corpus and regressions and
/// returns how many seeds (corpus files) there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds = 0;
    for (dir, is_seed) in [("corpus", true), ("regressions", false)] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            seeds += usize::from(is_seed);
        }
    }
    seeds
}

#[test]
fn note_corpus() {
    assert!(replay("note", note::check) >= 1);
}

#[test]
fn cosignature_corpus() {
    assert!(replay("cosignature", cosignature::check) >= 1);
}

#[test]
fn tlog_proof_corpus() {
    assert!(replay("tlog_proof", tlog_proof::check) >= 1);
}

#[test]
fn witness_request_corpus() {
    assert!(replay("witness_request", witness_request::check) >= 1);
}

#[test]
fn split_view_corpus() {
    assert!(replay("split_view", split_view::check) >= 1);
}
