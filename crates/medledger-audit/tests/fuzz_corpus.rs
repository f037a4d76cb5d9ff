//! Replays every checked-in seed and kept crash of the `audit_export` fuzz
//! target (fuzz/corpus/audit_export/, fuzz/regressions/audit_export/)
//! through the same check the fuzzer runs.

mod common;

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
        "export_patient_none.json",
        "export_patient_no_heads.json",
        "export_events.json",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let policy = audit_export::policy().unwrap();
        medledger_audit::verify_export(&bytes, &policy).unwrap();
    }
    let heads = std::fs::read(dir.join("heads_entry.bin")).unwrap();
    medledger_audit::heads::HeadsEntry::decode(&heads).unwrap();
    let cp = std::fs::read(dir.join("checkpoint_entry.bin")).unwrap();
    medledger_audit::checkpoint_entry::decode(&cp).unwrap();
}

/// Rewrites the valid seeds (exports of the scripted history, a heads
/// entry, a checkpoint entry, encoded events of every kind) and two invalid ones after a
/// format change:
/// `cargo test -p medledger-audit --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "rewrites fuzz/corpus/audit_export; run by hand after a format change"]
fn write_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/audit_export");
    let f = common::scripted_with_heads();
    let old = common::scripted();
    let a = common::patient_a();
    let nobody = common::secret().patient_key(b"MRN-NOBODY").unwrap();
    let full = f
        .log
        .export_patient(&a, None, 1)
        .unwrap()
        .to_json()
        .unwrap();
    for (name, export) in [
        (
            "export_patient_full.json",
            f.log.export_patient(&a, None, 1),
        ),
        (
            "export_patient_range.json",
            f.log.export_patient(&a, Some(0), 1),
        ),
        (
            "export_patient_none.json",
            f.log.export_patient(&nobody, None, 1),
        ),
        (
            "export_patient_no_heads.json",
            old.log.export_patient(&a, Some(0), 1),
        ),
        ("export_events.json", f.log.export_events(&[0, 2, 3], 1)),
    ] {
        std::fs::write(dir.join(name), export.unwrap().to_json().unwrap()).unwrap();
    }
    std::fs::write(
        dir.join("invalid_noncanonical.json"),
        full.replacen(",\"hash\"", ", \"hash\"", 1),
    )
    .unwrap();
    std::fs::write(dir.join("invalid_truncated.json"), &full[..full.len() / 2]).unwrap();
    let heads = medledger_audit::heads::HeadsEntry {
        size: 10,
        patients: 2,
        root: medledger_chain::Hash([0x5c; 32]),
    };
    std::fs::write(dir.join("heads_entry.bin"), heads.encode().unwrap()).unwrap();
    let note = &f.log.checkpoints()[0].note;
    std::fs::write(
        dir.join("checkpoint_entry.bin"),
        medledger_audit::checkpoint_entry::encode(note).unwrap(),
    )
    .unwrap();
    for (k, e) in common::every_kind().iter().enumerate().step_by(3) {
        std::fs::write(dir.join(format!("event_{k}.bin")), e.encode().unwrap()).unwrap();
    }
}
