//! Reports against a scripted history, exports, tampering and completeness.

mod common;

use common::*;
use medledger_audit::*;
use medledger_chain::{CosignatureSigner, Ed25519Signer, HashAlg, LogKey, MerkleLog, Witness};
use medledger_store::MemoryLog;
use std::sync::Arc;

fn indexes(v: &[(u64, AuditEvent)]) -> Vec<u64> {
    v.iter().map(|(i, _)| *i).collect()
}

#[test]
fn queries_match_the_scripted_history() {
    let f = scripted();
    let a = f.log.patient_events(&patient_a()).unwrap();
    assert_eq!(indexes(&a), [0, 1, 2, 4, 5, 6, 7]);
    let prevs: Vec<Option<u64>> = a.iter().map(|(_, e)| e.prev_for_patient).collect();
    assert_eq!(
        prevs,
        [None, Some(0), Some(1), Some(2), Some(4), Some(5), Some(6)]
    );
    assert_eq!(
        indexes(&f.log.patient_events(&patient_b()).unwrap()),
        [3, 8]
    );
    assert_eq!(indexes(&f.log.actor_activity(&id(1)).unwrap()), [0, 2, 3]);
    assert_eq!(
        indexes(&f.log.time_range(T0 + 2000, T0 + 6000).unwrap()),
        [2, 3, 4, 5]
    );
    assert_eq!(indexes(&f.log.emergency_pending().unwrap()), [8]);

    let d = report::disclosures(a.iter().map(|(i, e)| (*i, e)));
    let summary: Vec<(u64, &str, &str)> = d
        .iter()
        .map(|x| (x.index, x.what.as_str(), x.purpose))
        .collect();
    assert_eq!(
        summary,
        [
            (2, "read of record rec-1 v1", "TREAT"),
            (5, "emergency-access of record rec-1 v1", "ETREAT"),
            (6, "export of record rec-1 v1", "HLEGAL"),
        ]
    );
    assert_eq!(d[0].time_ms, T0 + 2000);
    assert!(d[2].recipient.ends_with("(external-party, county-court)"));
    assert_eq!(d[1].emergency.as_deref(), Some("patient unconscious in ER"));
}

#[test]
fn receipts_carry_proofs_once_checkpointed() {
    let f = fixture();
    let r = f
        .log
        .append(event(Action::Read, patient_a(), (1, Role::Clinician), T0))
        .unwrap();
    assert_eq!((r.index, r.proof.clone()), (0, None));
    assert!(f.log.receipt(0).unwrap().proof.is_none());
    f.log
        .append(event(Action::Read, patient_a(), (1, Role::Clinician), T0))
        .unwrap();
    let cp = f.log.checkpoint(&f.signer, 10, &[&f.witness]).unwrap();
    let r = f.log.receipt(0).unwrap();
    let proof = r.proof.unwrap();
    assert_eq!(proof.size, 2);
    proof
        .verify(HashAlg::Blake3, &r.leaf_hash, &cp.checkpoint.root)
        .unwrap();
    assert_eq!(r.checkpoint.as_deref(), Some(cp.note.as_str()));
    f.policy.verify(cp.note.as_bytes()).unwrap();
}

#[test]
fn patient_exports_verify_and_report() {
    let f = scripted();
    let full = f
        .log
        .export_patient(&patient_a(), None, 1)
        .unwrap()
        .to_json()
        .unwrap();
    let r = verify_export(full.as_bytes(), &f.policy).unwrap();
    assert!(r.complete);
    assert_eq!(
        r.events.iter().map(|e| e.index).collect::<Vec<_>>(),
        [0, 1, 2, 4, 5, 6, 7]
    );
    assert_eq!((r.from_size, r.to_size, r.patient_head()), (0, 9, Some(7)));
    // The report's events are the log's, however they are read.
    let owned: Vec<_> = r.events.iter().collect();
    assert_eq!(owned.len(), r.events.len());
    for (k, v) in owned.iter().enumerate() {
        let logged = f.log.event(v.index).unwrap();
        assert_eq!(r.events.encoding(k), Some(&logged.encode().unwrap()[..]));
        assert_eq!(v.event, logged);
        assert_eq!(r.events.get(k).as_ref(), Some(v));
    }
    assert_eq!(r.events.last().as_ref(), owned.last());
    assert_eq!((r.events.get(7), r.events.encoding(7)), (None, None));
    assert_eq!(
        r.events.indexes().collect::<Vec<_>>(),
        [0, 1, 2, 4, 5, 6, 7]
    );
    assert_eq!(
        r.disclosures().iter().map(|d| d.index).collect::<Vec<_>>(),
        [2, 5, 6]
    );
    assert_eq!(r.checkpoints[0].cosigners, ["witness.example"]);
    let text = r.to_text();
    assert!(
        text.contains("accounting of disclosures (45 CFR 164.528): 3"),
        "{text}"
    );

    // Between the two checkpoints: events 5, 6, 7; 5 names 4, before the range.
    let range = f.log.export_patient(&patient_a(), Some(0), 1).unwrap();
    assert_eq!(range.from_size, 5);
    let r = verify_export(range.to_json().unwrap().as_bytes(), &f.policy).unwrap();
    assert_eq!(
        r.events.iter().map(|e| e.index).collect::<Vec<_>>(),
        [5, 6, 7]
    );
    assert_eq!(r.checkpoints.len(), 2);

    let actor = f.log.export_events(&[0, 2, 3], 1).unwrap();
    let r = verify_export(actor.to_json().unwrap().as_bytes(), &f.policy).unwrap();
    assert!(!r.complete);
    assert_eq!(r.events.len(), 3);
}

/// Verifies a modified export and returns the error's first bad item.
fn bad_item(f: &Fixture, export: &Export) -> String {
    match verify_export(export.to_json().unwrap().as_bytes(), &f.policy) {
        Err(Error::BadExportItem { item, .. }) => item,
        other => panic!("expected a bad item, got {other:?}"),
    }
}

#[test]
fn dropped_duplicated_reordered_events_fail() {
    let f = scripted();
    let export = f.log.export_patient(&patient_a(), None, 1).unwrap();
    for k in 0..export.events.len() {
        let mut e = export.clone();
        e.events.remove(k);
        if k + 1 < export.events.len() {
            // Completeness: the event after the gap names the dropped one.
            assert_eq!(bad_item(&f, &e), format!("events[{k}]"), "drop {k}");
            let err = verify_export(e.to_json().unwrap().as_bytes(), &f.policy).unwrap_err();
            assert!(matches!(err, Error::BadExportItem { source, .. }
                if matches!(*source, Error::PatientChainBroken { .. })));
        } else {
            // Dropped from the bundle alone, the tail breaks the batch proof.
            assert_eq!(bad_item(&f, &e), "proof", "drop {k}");
            // Re-proven by the operator under a checkpoint without heads,
            // it verifies: only the patient's own latest receipt reveals
            // it (tests/completeness.rs covers checkpoints with heads).
            let idx: Vec<u64> = e.events.iter().map(|x| x.index).collect();
            let reproven = f.log.export_events(&idx, 1).unwrap();
            e.proof = reproven.proof;
            let r = verify_export(e.to_json().unwrap().as_bytes(), &f.policy).unwrap();
            assert_ne!(r.patient_head(), Some(7));
            assert!(!r.tail_complete());
        }
        let mut d = export.clone();
        d.events.insert(k, export.events[k].clone());
        assert_eq!(bad_item(&f, &d), format!("events[{}]", k + 1), "dup {k}");
        if k + 1 < export.events.len() {
            let mut o = export.clone();
            o.events.swap(k, k + 1);
            assert_eq!(bad_item(&f, &o), format!("events[{k}]"), "swap {k}");
        }
    }
    // Another patient's event slipped in.
    let mut e = f.log.export_patient(&patient_a(), Some(0), 1).unwrap();
    let b = f.log.export_events(&[8], 1).unwrap();
    e.events.push(b.events[0].clone());
    assert_eq!(bad_item(&f, &e), "events[3]");
}

#[test]
fn swapped_and_forked_checkpoints_fail() {
    let f = scripted();
    let export = f.log.export_patient(&patient_a(), Some(0), 1).unwrap();
    let mut s = export.clone();
    s.checkpoints.swap(0, 1);
    assert_eq!(bad_item(&f, &s), "checkpoints[1]");

    // A fork: the same log key and witness key sign a different history of
    // the same size (e.g. a colluding or stolen witness key).
    let forked = AuditLog::open(
        ORIGIN,
        Arc::new(MemoryLog::new()),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap();
    for k in 0..9u64 {
        forked
            .append(event(
                Action::Read,
                patient_b(),
                (9, Role::Clinician),
                T0 + k,
            ))
            .unwrap();
    }
    let signer: Ed25519Signer = log_signer();
    let mut w = Witness::in_memory(witness_signer());
    w.add_log(LogKey::new(ORIGIN, signer.verifier(), HashAlg::Blake3).unwrap());
    let cp = forked.checkpoint(&signer, 1_764_307_220, &[&w]).unwrap();
    f.policy.verify(cp.note.as_bytes()).unwrap();
    let mut k = export.clone();
    k.checkpoints[1] = cp.note.clone();
    assert_eq!(bad_item(&f, &k), "consistency[0]");

    // A checkpoint cosigned by a witness outside the policy only.
    let mut w2 = Witness::in_memory(CosignatureSigner::generate("other.example").unwrap());
    w2.add_log(LogKey::new(ORIGIN, signer.verifier(), HashAlg::Blake3).unwrap());
    let other = AuditLog::open(
        ORIGIN,
        Arc::new(MemoryLog::new()),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap();
    let cp2 = other.checkpoint(&signer, 1, &[&w2]).unwrap();
    let mut q = export;
    q.checkpoints[0] = cp2.note;
    assert_eq!(bad_item(&f, &q), "checkpoints[0]");
}

#[test]
fn every_byte_flip_fails() {
    for f in [scripted(), scripted_with_heads()] {
        every_byte_flip_fails_in(&f);
    }
}

fn every_byte_flip_fails_in(f: &Fixture) {
    let json = f
        .log
        .export_patient(&patient_a(), Some(0), 1)
        .unwrap()
        .to_json()
        .unwrap();
    let bytes = json.as_bytes();
    verify_export(bytes, &f.policy).unwrap();
    for i in 0..bytes.len() {
        for x in [0x01u8, 0x20] {
            let mut m = bytes.to_vec();
            m[i] ^= x;
            assert!(
                verify_export(&m, &f.policy).is_err(),
                "flip {x:#x} at {i} accepted"
            );
        }
    }
    let mut extra = bytes.to_vec();
    extra.push(b'\n');
    assert!(verify_export(&extra, &f.policy).is_err());
    assert!(verify_export(&bytes[..bytes.len() - 1], &f.policy).is_err());
}

#[test]
fn fhir_audit_events_have_the_r4_shape() {
    let f = scripted();
    let events = f.log.patient_events(&patient_a()).unwrap();
    let b = fhir::bundle(ORIGIN, events.iter().map(|(i, e)| (*i, e)));
    assert_eq!(b["resourceType"], "Bundle");
    let entries = b["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 7);
    let denied = &entries[3]["resource"];
    assert_eq!(denied["resourceType"], "AuditEvent");
    assert_eq!(denied["type"]["code"], "110110");
    assert_eq!(denied["action"], "R");
    assert_eq!(denied["outcome"], "4");
    assert_eq!(denied["outcomeDesc"], "denied 403: no grant for research");
    assert_eq!(denied["recorded"], "2025-11-28T05:20:04.000Z");
    assert_eq!(denied["agent"][0]["requestor"], true);
    assert_eq!(denied["purposeOfEvent"][0]["coding"][0]["code"], "HRESCH");
    assert_eq!(
        denied["entity"][0]["what"]["identifier"]["value"],
        patient_a().to_hex()
    );
    assert_eq!(
        denied["source"]["observer"]["identifier"]["value"],
        "node-a"
    );
    let emergency = &entries[4]["resource"];
    assert_eq!(
        emergency["entity"][2]["detail"][2]["valueString"],
        "patient unconscious in ER"
    );
    // No patient identity in clear anywhere.
    assert!(!b.to_string().contains("MRN-A"));
}

#[test]
fn auditor_command_verifies_a_file() {
    let f = scripted_with_heads();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.json");
    let json = f
        .log
        .export_patient(&patient_a(), None, 1)
        .unwrap()
        .to_json()
        .unwrap();
    std::fs::write(&path, &json).unwrap();
    let args: Vec<String> = [
        path.to_str().unwrap(),
        "--log-key",
        &f.signer.verifier().to_vkey(),
        "--witness",
        &f.witness.signer().verifier().unwrap().to_vkey(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let parsed = auditor::AuditorArgs::parse(&args).unwrap();
    assert_eq!(parsed.origin, None);
    let report = auditor::run(&parsed).unwrap();
    assert_eq!(report.events.len(), 7);
    assert!(report
        .to_text()
        .contains("emergency: patient unconscious in ER"));

    let mut bad = json.into_bytes();
    let at = bad.windows(6).position(|w| w == b"\"index").unwrap() + 8;
    bad[at] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let err = auditor::run(&parsed).unwrap_err();
    // events[0] now claims index 1, which events[1] holds.
    assert!(err.to_string().starts_with("events[1]"), "{err}");
    assert!(auditor::AuditorArgs::parse(&["x".into()]).is_err());

    // A patient export whose checkpoint does not commit to the head is
    // refused unless the auditor accepts an unproven tail.
    let old = scripted();
    let json = old.log.export_patient(&patient_a(), None, 1).unwrap();
    std::fs::write(&path, json.to_json().unwrap()).unwrap();
    assert!(matches!(
        auditor::run(&parsed),
        Err(Error::TailNotCommitted)
    ));
    let mut lenient = parsed.clone();
    lenient.allow_uncommitted_tail = true;
    let r = auditor::run(&lenient).unwrap();
    assert!(r.to_text().contains("TAIL NOT COMMITTED"));
    // Naming another patient fails.
    let mut other = lenient;
    other.patient = Some(patient_b());
    assert!(matches!(auditor::run(&other), Err(Error::NotThePatient)));
}

#[test]
fn indexes_are_rebuilt_on_reopen_of_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let (store, _) =
            medledger_store::EmbeddedStore::open(dir.path(), Default::default()).unwrap();
        AuditLog::open_embedded(ORIGIN, Arc::new(store)).unwrap()
    };
    let root;
    {
        let log = open();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let log = &log;
                move || {
                    for k in 0..5u64 {
                        let p = if k % 2 == 0 { patient_a() } else { patient_b() };
                        log.append(event(Action::Read, p, (t, Role::Clinician), T0 + k))
                            .unwrap();
                    }
                }
            })
            .collect();
        std::thread::scope(|s| {
            for t in threads {
                s.spawn(t);
            }
        });
        assert_eq!(log.size(), 20);
        root = log.root();
    }
    let log = open();
    assert_eq!(log.size(), 20);
    assert_eq!(log.root(), root);
    for (p, n) in [(patient_a(), 12), (patient_b(), 8)] {
        let ev = log.patient_events(&p).unwrap();
        assert_eq!(ev.len(), n);
        // The per-patient chain links every event to the one before it.
        let mut prev = None;
        for (i, e) in ev {
            assert_eq!(e.prev_for_patient, prev);
            prev = Some(i);
        }
    }
    assert_eq!(log.actor_activity(&id(3)).unwrap().len(), 5);
}

/// Signed-note rules: a cosignature from a witness outside the policy is
/// ignored by default and refused by a strict policy.
#[test]
fn extra_cosignature_is_ignored_unless_the_policy_is_strict() {
    let f = scripted();
    let mut export = f.log.export_patient(&patient_a(), Some(0), 1).unwrap();
    let outsider = CosignatureSigner::generate("outsider.example").unwrap();
    let mut note = medledger_chain::Note::parse(export.checkpoints[1].as_bytes()).unwrap();
    let c = outsider.cosign(note.text(), 1_764_307_230).unwrap();
    note.add_signature(c.to_note_signature()).unwrap();
    export.checkpoints[1] = note.to_text().unwrap();
    let json = export.to_json().unwrap();
    let report = verify_export(json.as_bytes(), &f.policy).unwrap();
    assert_eq!(report.checkpoints[1].cosigners, ["witness.example"]);
    let strict = f.policy.clone().strict();
    let err = verify_export(json.as_bytes(), &strict).unwrap_err();
    assert!(
        matches!(&err, Error::BadExportItem { item, source }
            if item == "checkpoints[1]"
            && matches!(**source, Error::Chain(medledger_chain::Error::UnknownSigner { line: 2, .. }))),
        "{err}"
    );
    // The unaltered export verifies under the strict policy too.
    let clean = f.log.export_patient(&patient_a(), Some(0), 1).unwrap();
    verify_export(clean.to_json().unwrap().as_bytes(), &strict).unwrap();
}
