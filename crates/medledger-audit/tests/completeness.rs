//! The per-patient head commitment: checkpoints issued with a heads entry
//! let a patient export prove its tail, and a patient with no events get a
//! verifiable "no events" answer.

mod common;

use std::sync::Arc;

use common::*;
use medledger_audit::*;
use medledger_chain::{HashAlg, MemoryWitnessStateStore, MerkleLog, Note};
use medledger_store::MemoryLog;

fn indexes(r: &Report) -> Vec<u64> {
    r.events.iter().map(|e| e.index).collect()
}

fn source(err: Error) -> (String, Error) {
    match err {
        Error::BadExportItem { item, source } => (item, *source),
        other => panic!("expected a bad item, got {other:?}"),
    }
}

#[test]
fn heads_entries_sit_before_each_checkpoint() {
    let f = scripted_with_heads();
    let cps = f.log.checkpoints();
    assert_eq!(
        cps.iter().map(|c| c.checkpoint.size).collect::<Vec<_>>(),
        [6, 12]
    );
    // Heads entries (5, 11) and checkpoint entries (6, 12) are log entries
    // but not audit events.
    for i in [5, 6, 11, 12] {
        assert!(matches!(f.log.event(i), Err(Error::NoSuchEvent { index }) if index == i));
    }
    let a: Vec<u64> = f
        .log
        .patient_events(&patient_a())
        .unwrap()
        .iter()
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(a, [0, 1, 2, 4, 7, 8, 9]);
    assert_eq!(f.log.emergency_pending().unwrap().len(), 1);
}

#[test]
fn patient_export_proves_its_tail() {
    let f = scripted_with_heads();
    let json = f
        .log
        .export_patient(&patient_a(), None, 1)
        .unwrap()
        .to_json()
        .unwrap();
    let r = verify_patient_export(json.as_bytes(), &f.policy, &patient_a()).unwrap();
    assert_eq!(indexes(&r), [0, 1, 2, 4, 7, 8, 9]);
    assert_eq!(r.head, Some(CommittedHead::At(9)));
    assert!(r.tail_complete());
    assert_eq!(r.to_size, 12);
    assert!(r.to_text().contains("checkpoint commits last event #9"));

    // Between the checkpoints: 7, 8, 9.
    let range = f.log.export_patient(&patient_a(), Some(0), 1).unwrap();
    let r = verify_export(range.to_json().unwrap().as_bytes(), &f.policy).unwrap();
    assert_eq!((indexes(&r), r.from_size), (vec![7, 8, 9], 6));
    assert_eq!(r.head, Some(CommittedHead::At(9)));

    // Under the first checkpoint alone, B's head is 3.
    let first = f.log.export_patient(&patient_b(), None, 0).unwrap();
    let r = verify_export(first.to_json().unwrap().as_bytes(), &f.policy).unwrap();
    assert_eq!((indexes(&r), r.head), (vec![3], Some(CommittedHead::At(3))));

    // Asking about another patient, or an export without heads, fails.
    assert!(matches!(
        verify_patient_export(json.as_bytes(), &f.policy, &patient_b()),
        Err(Error::NotThePatient)
    ));
    let old = scripted();
    let no_heads = old.log.export_patient(&patient_a(), None, 1).unwrap();
    assert!(no_heads.heads.is_none());
    assert!(matches!(
        verify_patient_export(
            no_heads.to_json().unwrap().as_bytes(),
            &old.policy,
            &patient_a()
        ),
        Err(Error::TailNotCommitted)
    ));
}

#[test]
fn patient_with_no_events_gets_a_verifiable_answer() {
    let f = scripted_with_heads();
    let nobody = secret().patient_key(b"MRN-NOBODY").unwrap();
    let export = f.log.export_patient(&nobody, None, 1).unwrap();
    assert!(export.events.is_empty());
    let json = export.to_json().unwrap();
    let r = verify_patient_export(json.as_bytes(), &f.policy, &nobody).unwrap();
    assert_eq!(r.head, Some(CommittedHead::NoEvents));
    assert!(r.events.is_empty() && r.tail_complete());
    assert!(r.to_text().contains("checkpoint commits no events"));

    // B's events in [6, 12) are only 10; a range export from checkpoint 0
    // holds it, and B's head is 10.
    let b = f.log.export_patient(&patient_b(), Some(0), 1).unwrap();
    let r = verify_export(b.to_json().unwrap().as_bytes(), &f.policy).unwrap();
    assert_eq!(
        (indexes(&r), r.head),
        (vec![10], Some(CommittedHead::At(10)))
    );

    // Claiming "no events" for A with the leaves that prove nobody's
    // absence fails: they do not bracket A.
    let mut lie = f.log.export_patient(&patient_a(), None, 1).unwrap();
    lie.events.clear();
    lie.heads = export.heads.clone();
    let (item, _) =
        source(verify_export(lie.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
    assert_eq!(item, "heads");
}

/// The operator's options for hiding A's last events (8 and 9) from an
/// export under the checkpoint that covers them.
#[test]
fn tail_truncated_exports_fail_with_a_named_error() {
    let f = scripted_with_heads();
    let full = f.log.export_patient(&patient_a(), None, 1).unwrap();
    for keep in [5usize, 6] {
        // 1. Events dropped from the bundle, nothing else changed.
        let mut e = full.clone();
        e.events.truncate(keep);
        let (item, err) =
            source(verify_export(e.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
        assert_eq!(item, "heads");
        assert!(
            matches!(err, Error::PatientHeadMismatch { committed: Some(9), last_exported: Some(x) }
                if x == full.events[keep - 1].index),
            "{err:?}"
        );

        // 2. The batch proof rebuilt for the remaining events and the heads
        //    entry (the operator holds the tree).
        let mut idx: Vec<u64> = e.events.iter().map(|x| x.index).collect();
        idx.push(11);
        e.proof = f.log.export_events(&idx, 1).unwrap().proof;
        let (item, err) =
            source(verify_export(e.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
        assert_eq!(item, "heads");
        assert!(matches!(err, Error::PatientHeadMismatch { .. }), "{err:?}");

        // 3. The leaf rewritten to name the new last event: it is no longer
        //    in the committed heads tree.
        let mut forged = e.clone();
        let heads = forged.heads.as_mut().unwrap();
        let mut leaf = base64_decode(&heads.leaves[0].leaf);
        leaf[32..].copy_from_slice(&e.events[keep - 1].index.to_be_bytes());
        heads.leaves[0].leaf = base64_encode(&leaf);
        let (item, err) =
            source(verify_export(forged.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
        assert_eq!(item, "heads");
        assert!(matches!(err, Error::BadBatchProof { .. }), "{err:?}");
    }
}

/// 4. The operator re-signs: a fork of the log without A's last events,
///    with its own heads entry and a checkpoint under the log key. The
///    witness, which saw the real log, refuses to cosign it; the real
///    cosignature line does not verify on the fork's checkpoint.
#[test]
fn a_resigned_fork_without_the_tail_fails_the_witness_quorum() {
    let f = scripted_with_heads();
    let genuine = f.log.checkpoints()[1].note.clone();
    let fork = AuditLog::open(
        ORIGIN,
        Arc::new(MemoryLog::new()),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap();
    for (i, e) in f
        .log
        .patient_events(&patient_a())
        .unwrap()
        .into_iter()
        .take(5)
    {
        assert!(i < 8);
        fork.append(e).unwrap();
    }
    assert!(fork
        .checkpoint_with_heads(&f.signer, 1_764_307_230, &[&f.witness])
        .is_err());
    fork.checkpoint_with_heads::<MemoryWitnessStateStore>(&f.signer, 1_764_307_230, &[])
        .unwrap();
    let forged = fork.export_patient(&patient_a(), None, 0).unwrap();
    let (item, err) =
        source(verify_export(forged.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
    assert_eq!(item, "checkpoints[0]");
    assert!(
        matches!(
            err,
            Error::Chain(medledger_chain::Error::QuorumNotMet { .. })
        ),
        "{err:?}"
    );
    // With the genuine witness line pasted on.
    let mut note = Note::parse(forged.checkpoints[0].as_bytes()).unwrap();
    let real = Note::parse(genuine.as_bytes()).unwrap();
    let line = real
        .signatures()
        .iter()
        .find(|s| s.name == "witness.example")
        .unwrap()
        .clone();
    note.add_signature(line).unwrap();
    let mut pasted = forged;
    pasted.checkpoints[0] = note.to_text().unwrap();
    let (item, _) =
        source(verify_export(pasted.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
    assert_eq!(item, "checkpoints[0]");
}

#[test]
fn heads_export_tampering_names_the_item() {
    let f = scripted_with_heads();
    let export = f.log.export_patient(&patient_a(), None, 1).unwrap();
    let n = export.events.len();
    for k in 0..n {
        let mut e = export.clone();
        e.events.remove(k);
        let (item, _) =
            source(verify_export(e.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
        let want = if k + 1 < n {
            format!("events[{k}]")
        } else {
            "heads".into()
        };
        assert_eq!(item, want, "drop {k}");
        let mut d = export.clone();
        d.events.insert(k, export.events[k].clone());
        let (item, _) =
            source(verify_export(d.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
        assert_eq!(item, format!("events[{}]", k + 1), "dup {k}");
    }
    // The heads entry of the first checkpoint under the last one: stale.
    let mut stale = export.clone();
    let first = f.log.export_patient(&patient_a(), None, 0).unwrap();
    stale.heads = first.heads;
    let (item, err) =
        source(verify_export(stale.to_json().unwrap().as_bytes(), &f.policy).unwrap_err());
    assert_eq!(item, "heads");
    assert!(matches!(err, Error::BadHeads { .. }), "{err:?}");
    // Heads stripped: verifies, but the tail is not committed.
    let mut stripped = export;
    stripped.heads = None;
    let idx: Vec<u64> = stripped.events.iter().map(|x| x.index).collect();
    stripped.proof = f.log.export_events(&idx, 1).unwrap().proof;
    let r = verify_export(stripped.to_json().unwrap().as_bytes(), &f.policy).unwrap();
    assert!(r.complete && !r.tail_complete());
}

#[test]
fn checkpoints_and_heads_survive_reopen() {
    let entries = Arc::new(MemoryLog::new());
    let f = fixture();
    let log = AuditLog::open(
        ORIGIN,
        entries.clone(),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap();
    for k in 0..4 {
        log.append(event(
            Action::Read,
            patient_a(),
            (1, Role::Clinician),
            T0 + k,
        ))
        .unwrap();
    }
    log.checkpoint_with_heads(&f.signer, 1, &[&f.witness])
        .unwrap();
    log.append(event(
        Action::Read,
        patient_b(),
        (1, Role::Clinician),
        T0 + 9,
    ))
    .unwrap();
    log.checkpoint_with_heads(&f.signer, 2, &[&f.witness])
        .unwrap();
    let cps = log.checkpoints();
    drop(log);
    // The checkpoints come back from their checkpoint entries; restoring
    // them again (as an embedder that kept them would) changes nothing.
    let reopened = AuditLog::open(ORIGIN, entries, MerkleLog::in_memory(HashAlg::Blake3)).unwrap();
    assert_eq!(reopened.checkpoints(), cps);
    for c in cps.clone() {
        reopened.restore_checkpoint(c).unwrap();
    }
    assert_eq!(reopened.checkpoints(), cps);
    assert_eq!(reopened.size(), 4 + 2 + 1 + 2);
    // The older checkpoint's heads tree is rebuilt from the indexes.
    for (to, head) in [(0, 3), (1, 3)] {
        let e = reopened.export_patient(&patient_a(), None, to).unwrap();
        let r = verify_patient_export(e.to_json().unwrap().as_bytes(), &f.policy, &patient_a())
            .unwrap();
        assert_eq!(r.head, Some(CommittedHead::At(head)));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// An embedder that mixes plain checkpoints (kept by itself) with
/// checkpoints with heads (kept in the log) reopens and restores its own
/// list in order: the ones already restored from the log are skipped, the
/// others fall into place.
#[test]
fn mixed_checkpoints_restore_in_any_order() {
    let entries = Arc::new(MemoryLog::new());
    let f = fixture();
    let log = AuditLog::open(
        ORIGIN,
        entries.clone(),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap();
    for (t, heads) in (1u64..).zip([true, false, true, false]) {
        log.append(event(
            Action::Read,
            patient_a(),
            (1, Role::Clinician),
            T0 + t,
        ))
        .unwrap();
        if heads {
            log.checkpoint_with_heads(&f.signer, t, &[&f.witness])
                .unwrap();
        } else {
            log.checkpoint(&f.signer, t, &[&f.witness]).unwrap();
        }
    }
    let all = log.checkpoints();
    drop(log);
    let reopened = AuditLog::open(ORIGIN, entries, MerkleLog::in_memory(HashAlg::Blake3)).unwrap();
    assert_eq!(reopened.checkpoints(), vec![all[0].clone(), all[2].clone()]);
    for c in all.iter().rev() {
        reopened.restore_checkpoint(c.clone()).unwrap();
    }
    assert_eq!(reopened.checkpoints(), all);
    // A checkpoint of another tree is still refused.
    let mut bad = all[1].clone();
    bad.checkpoint.root = medledger_chain::Hash([0; 32]);
    assert!(matches!(
        reopened.restore_checkpoint(bad),
        Err(Error::CheckpointMismatch { .. })
    ));
    // New checkpoints chain to the newest adopted one.
    reopened
        .checkpoint::<MemoryWitnessStateStore>(&f.signer, 9, &[])
        .unwrap();
    let cps = reopened.checkpoints();
    cps[3]
        .checkpoint
        .check_successor(&cps[4].checkpoint)
        .unwrap();
}
