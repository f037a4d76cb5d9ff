//! Two audit logs taking turns on one entry log: each takes in what the
//! other appended (`AuditLog::follow`) and then agrees with it on the
//! tree, the indexes, the per-patient chains and the checkpoints.

mod common;

use std::sync::Arc;

use common::*;
use medledger_audit::*;
use medledger_chain::{HashAlg, MemoryNodeStore, MerkleLog};
use medledger_store::{EntryLog, MemoryLog};

fn open(entries: &Arc<MemoryLog>) -> AuditLog<MemoryNodeStore> {
    AuditLog::open(
        ORIGIN,
        entries.clone() as Arc<dyn EntryLog>,
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .unwrap()
}

#[test]
fn a_second_writer_follows_the_first_and_continues_its_chains() {
    let f = fixture();
    let entries = Arc::new(MemoryLog::new());
    let one = open(&entries);
    let two = open(&entries);
    let (a, b) = (patient_a(), patient_b());

    // One's turn: three events and a checkpoint (heads entry + checkpoint
    // entry).
    let first = one
        .append(event(Action::Create, a, (1, Role::Clinician), T0))
        .unwrap();
    one.append(event(Action::Read, b, (1, Role::Clinician), T0 + 1))
        .unwrap();
    let third = one
        .append(event(Action::Read, a, (2, Role::Nurse), T0 + 2))
        .unwrap();
    let issued = one
        .checkpoint_with_heads(&f.signer, T0 / 1000, &[&f.witness])
        .unwrap();
    assert_eq!(
        issued.checkpoint.size, 4,
        "three events and the heads entry"
    );

    // Two's turn: it takes in everything (the checkpoint entry too), then
    // appends for patient A.
    let len = entries.len().unwrap();
    assert_eq!(len, 5);
    assert_eq!(two.follow(len).unwrap(), 5);
    assert_eq!(two.size(), one.size());
    assert_eq!(two.root(), one.root());
    assert_eq!(two.checkpoints(), one.checkpoints());
    assert_eq!(
        two.patient_events(&a).unwrap(),
        one.patient_events(&a).unwrap()
    );
    let next = two
        .append(event(Action::Update, a, (1, Role::Clinician), T0 + 3))
        .unwrap();
    assert_eq!(next.index, 5);
    let chained = two.event(next.index).unwrap();
    assert_eq!(
        chained.prev_for_patient,
        Some(third.index),
        "A's chain continues from one's last event of A"
    );
    assert_eq!(
        two.event(third.index).unwrap().prev_for_patient,
        Some(first.index)
    );

    // Back to one: following again takes in only the new entry.
    assert_eq!(one.follow(entries.len().unwrap()).unwrap(), 1);
    assert_eq!(one.root(), two.root());
    let indexes: Vec<u64> = one
        .patient_events(&a)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(indexes, vec![0, 2, 5]);
    // One's next checkpoint chains to the first and covers two's event.
    let second = one
        .checkpoint_with_heads(&f.signer, T0 / 1000 + 1, &[&f.witness])
        .unwrap();
    assert_eq!(second.checkpoint.size, 7);
    assert_eq!(
        second.checkpoint.chain.and_then(|l| l.prev),
        Some(issued.checkpoint.hash())
    );
    assert_eq!(two.follow(entries.len().unwrap()).unwrap(), 2);
    assert_eq!(two.checkpoints(), one.checkpoints());
}

#[test]
fn following_nothing_new_changes_nothing_and_a_shorter_log_is_refused() {
    let entries = Arc::new(MemoryLog::new());
    let one = open(&entries);
    one.append(event(Action::Create, patient_a(), (1, Role::Clinician), T0))
        .unwrap();
    let root = one.root();
    assert_eq!(one.follow(1).unwrap(), 0);
    assert_eq!(one.root(), root);
    assert!(matches!(
        one.follow(0),
        Err(Error::LogMismatch {
            entries: 0,
            leaves: 1
        })
    ));
    // A length past the entry log's end is an error, not a partial catch-up.
    assert!(one.follow(3).is_err());
    assert_eq!(one.size(), 1);
}

#[test]
fn a_writer_whose_clock_is_behind_never_sends_chain_time_back() {
    let f = fixture();
    let entries = Arc::new(MemoryLog::new());
    let ahead = open(&entries);
    let behind = open(&entries);
    ahead
        .append(event(Action::Create, patient_a(), (1, Role::Clinician), T0))
        .unwrap();
    let first = ahead
        .checkpoint_with_heads(&f.signer, 2_000, &[&f.witness])
        .unwrap();
    behind.follow(entries.len().unwrap()).unwrap();
    behind
        .append(event(
            Action::Read,
            patient_a(),
            (1, Role::Clinician),
            T0 + 1,
        ))
        .unwrap();
    // This writer's clock says 1,000 s: 1,000 s behind the first.
    let second = behind
        .checkpoint_with_heads(&f.signer, 1_000, &[&f.witness])
        .unwrap();
    let time = |c: &IssuedCheckpoint| c.checkpoint.chain.map(|l| l.time);
    assert_eq!(time(&second), time(&first));
    first
        .checkpoint
        .check_successor(&second.checkpoint)
        .unwrap();
    // The other writer, and a fresh open, take it in.
    ahead.follow(entries.len().unwrap()).unwrap();
    assert_eq!(ahead.checkpoints().len(), 2);
    assert_eq!(open(&entries).checkpoints().len(), 2);
}
