//! Offline tlog proofs: produced from a log, cosigned, written, parsed and
//! verified against a k-of-n policy.

use ed25519_dalek::SigningKey;
use medledger_chain::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Error, Hash, HashAlg, LogKey, MerkleLog, Note,
    Policy, TlogProof,
};

const ORIGIN: &str = "hospital.example/ledger";

struct Fixture {
    log: MerkleLog,
    note: String,
    policy: Policy,
}

fn fixture(alg: HashAlg, quorum: usize) -> Fixture {
    let mut log = MerkleLog::in_memory(alg);
    for i in 0..13u32 {
        log.append(format!("entry {i}").as_bytes()).unwrap();
    }
    let signer = Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).unwrap();
    let cp = Checkpoint::first(ORIGIN, alg, 13, log.root(), 1_700_000_000);
    let mut note = Note::parse(cp.sign(&signer).unwrap().as_bytes()).unwrap();
    let witnesses: Vec<CosignatureSigner> = (0..3u8)
        .map(|i| {
            CosignatureSigner::new(
                &format!("w{i}.example"),
                SigningKey::from_bytes(&[10 + i; 32]),
            )
            .unwrap()
        })
        .collect();
    for w in &witnesses[..2] {
        let c = w.cosign(note.text(), 1_700_000_100).unwrap();
        note.add_signature(c.to_note_signature()).unwrap();
    }
    let log_key = LogKey::new(ORIGIN, signer.verifier(), alg).unwrap();
    let keys = witnesses.iter().map(|w| w.verifier().unwrap()).collect();
    Fixture {
        log,
        note: note.to_text().unwrap(),
        policy: Policy::new(log_key, keys, quorum).unwrap(),
    }
}

#[test]
fn produce_write_parse_verify() {
    for alg in HashAlg::ALL {
        let f = fixture(alg, 2);
        for index in [0u64, 6, 12] {
            let extra = (index == 6).then(|| b"artifact metadata".to_vec());
            let p = TlogProof::for_entry(&f.log, index, f.note.as_bytes(), extra).unwrap();
            let text = p.to_text().unwrap();
            assert!(text.starts_with("c2sp.org/tlog-proof@v1\n"));
            assert!(text.contains(&format!("\nindex {index}\n")));
            let back = TlogProof::parse(text.as_bytes()).unwrap();
            assert_eq!(back, p);
            assert_eq!(back.to_text().unwrap(), text);
            let v = back
                .verify_entry(&f.policy, format!("entry {index}").as_bytes())
                .unwrap();
            assert_eq!(v.checkpoint.size, 13);
            assert_eq!(v.cosignatures.len(), 2);
            // Another entry's data, or another index, does not verify.
            assert!(matches!(
                back.verify_entry(&f.policy, b"entry 99"),
                Err(Error::InclusionRootMismatch)
            ));
            let mut moved = back.clone();
            moved.index = (index + 1) % 13;
            assert!(moved
                .verify_entry(&f.policy, format!("entry {index}").as_bytes())
                .is_err());
        }
    }
}

#[test]
fn quorum_and_log_key_are_enforced() {
    let f = fixture(HashAlg::Blake3, 3);
    let p = TlogProof::for_entry(&f.log, 2, f.note.as_bytes(), None).unwrap();
    assert!(matches!(
        p.verify_entry(&f.policy, b"entry 2"),
        Err(Error::QuorumNotMet { needed: 3, got: 2 })
    ));
    let g = fixture(HashAlg::Blake3, 0);
    let other = Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[2; 32])).unwrap();
    let policy = Policy::new(
        LogKey::new(ORIGIN, other.verifier(), HashAlg::Blake3).unwrap(),
        vec![],
        0,
    )
    .unwrap();
    assert!(matches!(
        p.verify_entry(&policy, b"entry 2"),
        Err(Error::NoKnownSignature)
    ));
    assert!(p.verify_entry(&g.policy, b"entry 2").is_ok());
}

#[test]
fn index_beyond_checkpoint_and_bad_extra_are_refused() {
    let f = fixture(HashAlg::Sha256, 2);
    assert!(matches!(
        TlogProof::for_entry(&f.log, 13, f.note.as_bytes(), None),
        Err(Error::IndexOutOfRange { .. })
    ));
    assert!(TlogProof::for_entry(&f.log, 1, f.note.as_bytes(), Some(vec![])).is_err());
    let mut p = TlogProof::for_entry(&f.log, 1, f.note.as_bytes(), None).unwrap();
    p.path.push(Hash([0; 32]));
    assert!(matches!(
        p.verify_entry(&f.policy, b"entry 1"),
        Err(Error::ProofLength { .. })
    ));
    let big = vec![7u8; medledger_chain::tlog_proof::MAX_EXTRA_LEN + 1];
    p.extra = Some(big);
    assert!(p.to_text().is_err());
}
