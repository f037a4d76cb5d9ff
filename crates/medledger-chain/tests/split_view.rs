//! Split-view evidence: built from forked logs, checked by anyone with the
//! log's key, refused when it proves nothing.

use ed25519_dalek::SigningKey;
use medledger_chain::{
    Checkpoint, Ed25519Signer, Error, HashAlg, LogKey, MerkleLog, SplitViewEvidence,
};

const ORIGIN: &str = "hospital.example/ledger";

fn signer() -> Ed25519Signer {
    Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).unwrap()
}

fn key() -> LogKey {
    LogKey::new(ORIGIN, signer().verifier(), HashAlg::Sha256).unwrap()
}

/// A log of `n` entries whose entry `fork_at` (if below n) differs.
fn tree(n: u64, fork_at: u64) -> MerkleLog {
    let mut t = MerkleLog::in_memory(HashAlg::Sha256);
    for i in 0..n {
        let d = if i == fork_at {
            format!("forged {i}")
        } else {
            format!("entry {i}")
        };
        t.append(d.as_bytes()).unwrap();
    }
    t
}

fn sign(t: &MerkleLog, size: u64) -> String {
    Checkpoint::first(
        ORIGIN,
        HashAlg::Sha256,
        size,
        t.root_at(size).unwrap(),
        1_000 + size,
    )
    .sign(&signer())
    .unwrap()
}

#[test]
fn same_size_different_roots_is_evidence() {
    let honest = tree(6, u64::MAX);
    let forked = tree(6, 2);
    let (a, b) = (sign(&honest, 6), sign(&forked, 6));
    let ev = SplitViewEvidence::from_failed_proof(&key(), &a, &b, &[]).unwrap();
    assert!(matches!(ev, SplitViewEvidence::SameSize { .. }));
    ev.verify(&key()).unwrap();
    let text = ev.to_text();
    assert_eq!(SplitViewEvidence::parse(&text).unwrap(), ev);
    // The same checkpoint twice proves nothing.
    let same = SplitViewEvidence::SameSize {
        first: a.clone(),
        second: a.clone(),
    };
    assert!(matches!(
        same.verify(&key()),
        Err(Error::NotSplitView { .. })
    ));
    // Another key's checkpoints are not this log's evidence.
    let other = LogKey::new(
        ORIGIN,
        Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[2; 32]))
            .unwrap()
            .verifier(),
        HashAlg::Sha256,
    )
    .unwrap();
    assert!(matches!(ev.verify(&other), Err(Error::NoKnownSignature)));
}

#[test]
fn failed_proof_that_binds_another_prefix_is_evidence() {
    // Older view: 5 honest entries. Newer view: 8 entries, entry 3 rewritten.
    let honest = tree(5, u64::MAX);
    let forked = tree(8, 3);
    let older = sign(&honest, 5);
    let newer = sign(&forked, 8);
    // The log hands out a proof from its forked tree; it fails for the older root.
    let proof = forked.consistency_proof(5, 8).unwrap().path;
    assert!(medledger_chain::verify_consistency(
        HashAlg::Sha256,
        5,
        8,
        &honest.root(),
        &forked.root(),
        &proof
    )
    .is_err());
    let ev = SplitViewEvidence::from_failed_proof(&key(), &newer, &older, &proof).unwrap();
    match &ev {
        SplitViewEvidence::NotPrefix { prefix_root, .. } => {
            assert_eq!(*prefix_root, forked.root_at(5).unwrap());
        }
        other => panic!("{other:?}"),
    }
    ev.verify(&key()).unwrap();
    assert_eq!(SplitViewEvidence::parse(&ev.to_text()).unwrap(), ev);
}

#[test]
fn power_of_two_prefix_needs_the_prefix_root_explicitly() {
    let honest = tree(4, u64::MAX);
    let forked = tree(8, 1);
    let (older, newer) = (sign(&honest, 4), sign(&forked, 8));
    let proof = forked.consistency_proof(4, 8).unwrap().path;
    // With m a power of two the proof cannot name another prefix by itself.
    assert!(matches!(
        SplitViewEvidence::from_failed_proof(&key(), &older, &newer, &proof),
        Err(Error::NotSplitView { .. })
    ));
    let ev = SplitViewEvidence::NotPrefix {
        older,
        newer,
        prefix_root: forked.root_at(4).unwrap(),
        proof,
    };
    ev.verify(&key()).unwrap();
}

#[test]
fn honest_log_with_a_wrong_proof_is_not_evidence() {
    let t = tree(9, u64::MAX);
    let (older, newer) = (sign(&t, 5), sign(&t, 9));
    let mut proof = t.consistency_proof(5, 9).unwrap().path;
    let last = proof.len() - 1;
    proof[last].0[7] ^= 0x40;
    assert!(matches!(
        SplitViewEvidence::from_failed_proof(&key(), &older, &newer, &proof),
        Err(Error::NotSplitView { .. })
    ));
    // A claimed prefix root with an honest proof for it cannot verify.
    let ev = SplitViewEvidence::NotPrefix {
        older,
        newer,
        prefix_root: t.root_at(4).unwrap(),
        proof: t.consistency_proof(5, 9).unwrap().path,
    };
    assert!(matches!(ev.verify(&key()), Err(Error::NotSplitView { .. })));
}

#[test]
fn evidence_text_is_strict() {
    for bad in [
        "",
        "medledger/split-view/v2\nsame-size\nnote 0\nnote 0\n",
        "medledger/split-view/v1\nother\nnote 0\nnote 0\n",
        "medledger/split-view/v1\nsame-size\nnote 5\nabc",
        "medledger/split-view/v1\nsame-size\nnote 0\nnote 0\nextra",
        "medledger/split-view/v1\nsame-size\nnote 01\nanote 0\n",
    ] {
        assert!(
            matches!(
                SplitViewEvidence::parse(bad),
                Err(Error::NotSplitView { .. })
            ),
            "{bad:?}"
        );
    }
}
