//! Replays every checked-in seed and kept crash of the `audit_export` fuzz
//! target (fuzz/corpus/audit_export/, fuzz/regressions/audit_export/)
//! through the same check the fuzzer runs.

use std::path::Path;

mod audit_export {
    include!("../../../fuzz/checks/audit_export.rs");
}

#[test]
fn audit_export_corpus_replays() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds = 0;
    for (dir, is_seed) in [("corpus", true), ("regressions", false)] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("audit_export")) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            audit_export::check(&std::fs::read(&path).unwrap());
            seeds += usize::from(is_seed);
        }
    }
    assert!(seeds >= 5, "found only {seeds} seeds");
}

/// The valid export seeds verify under the fuzz check's policy, so the
/// fuzzer starts from inputs that reach every verification step.
#[test]
fn valid_seeds_verify() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/audit_export");
    for name in [
        "export_patient_full.json",
        "export_patient_range.json",
        "export_events.json",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let policy = audit_export::policy().unwrap();
        medledger_audit::verify_export(&bytes, &policy).unwrap();
    }
}
