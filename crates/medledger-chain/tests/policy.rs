//! The k-of-n policy: signature lines from unknown keys are ignored by
//! default (signed-note "Signatures") and refused by a strict policy; a
//! line claiming a known key with a bad signature is refused by both.

use ed25519_dalek::SigningKey;
use medledger_chain::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Error, Hash, HashAlg, LogKey, Note,
    NoteSignature, Policy,
};

const ORIGIN: &str = "log.example/policy";

fn log_signer() -> Ed25519Signer {
    Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap()
}

fn witness(name: &str, seed: u8) -> CosignatureSigner {
    CosignatureSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

/// A checkpoint signed by the log and cosigned by `cosigners`.
fn note(cosigners: &[&CosignatureSigner]) -> Note {
    let cp = Checkpoint::first(ORIGIN, HashAlg::Sha256, 7, Hash([9; 32]), 1_764_307_200);
    let mut n = Note::parse(cp.sign(&log_signer()).unwrap().as_bytes()).unwrap();
    for w in cosigners {
        let c = w.cosign(n.text(), 1_764_307_201).unwrap();
        n.add_signature(c.to_note_signature()).unwrap();
    }
    n
}

fn policy(witnesses: &[&CosignatureSigner], quorum: usize) -> Policy {
    Policy::new(
        LogKey::new(ORIGIN, log_signer().verifier(), HashAlg::Sha256).unwrap(),
        witnesses.iter().map(|w| w.verifier().unwrap()).collect(),
        quorum,
    )
    .unwrap()
}

#[test]
fn unknown_cosigner_is_ignored_by_default_and_refused_when_strict() {
    let (a, b, outsider) = (
        witness("a.example", 4),
        witness("b.example", 5),
        witness("outsider.example", 6),
    );
    let text = note(&[&a, &outsider, &b]).to_text().unwrap();
    let lenient = policy(&[&a, &b], 2);
    assert!(!lenient.is_strict());
    let v = lenient.verify(text.as_bytes()).unwrap();
    let names: Vec<&str> = v.cosignatures.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a.example", "b.example"]);
    assert_eq!(v.note.signatures().len(), 4);

    let strict = lenient.clone().strict();
    assert!(strict.is_strict());
    match strict.verify(text.as_bytes()) {
        Err(Error::UnknownSigner { line, name, .. }) => {
            assert_eq!((line, name.as_str()), (2, "outsider.example"));
        }
        other => panic!("expected UnknownSigner, got {other:?}"),
    }
    // Without the outsider, the strict policy accepts the same checkpoint.
    let clean = note(&[&a, &b]).to_text().unwrap();
    assert_eq!(
        strict.verify(clean.as_bytes()).unwrap().cosignatures.len(),
        2
    );
}

#[test]
fn quorum_still_counts_only_policy_witnesses() {
    let (a, b, outsider) = (
        witness("a.example", 4),
        witness("b.example", 5),
        witness("outsider.example", 6),
    );
    // One policy witness plus an outsider does not make a quorum of two.
    let text = note(&[&a, &outsider]).to_text().unwrap();
    assert!(matches!(
        policy(&[&a, &b], 2).verify(text.as_bytes()),
        Err(Error::QuorumNotMet { needed: 2, got: 1 })
    ));
}

#[test]
fn known_key_with_bad_signature_is_refused_lenient_or_strict() {
    let (a, outsider) = (witness("a.example", 4), witness("outsider.example", 6));
    let mut n = note(&[&a, &outsider]);
    // Re-sign the witness line over another body: right name and key ID,
    // wrong signature.
    let other = Checkpoint::first(ORIGIN, HashAlg::Sha256, 8, Hash([9; 32]), 1_764_307_200);
    let forged = a.cosign(&other.to_body(), 1_764_307_201).unwrap();
    n.add_signature(forged.to_note_signature()).unwrap();
    let text = n.to_text().unwrap();
    for p in [policy(&[&a], 1), policy(&[&a], 1).strict()] {
        let err = p.verify(text.as_bytes()).unwrap_err();
        assert!(
            !matches!(
                err,
                Error::UnknownSigner { .. } | Error::QuorumNotMet { .. }
            ),
            "a bad known signature must fail as such, got {err:?}"
        );
    }
}

#[test]
fn known_name_with_unknown_key_id_is_an_unknown_signer() {
    let a = witness("a.example", 4);
    let mut n = note(&[&a]);
    // Same name, another key: signed-note identifies keys by name and ID,
    // so this line is from an unknown key.
    let impostor = witness("a.example", 7);
    let c = impostor.cosign(n.text(), 1_764_307_202).unwrap();
    n.add_signature(c.to_note_signature()).unwrap();
    let text = n.to_text().unwrap();
    assert_eq!(
        policy(&[&a], 1)
            .verify(text.as_bytes())
            .unwrap()
            .cosignatures
            .len(),
        1
    );
    assert!(matches!(
        policy(&[&a], 1).strict().verify(text.as_bytes()),
        Err(Error::UnknownSigner { line: 2, .. })
    ));
}

#[test]
fn strict_policy_refuses_an_unknown_non_cosignature_line() {
    let a = witness("a.example", 4);
    let mut n = note(&[&a]);
    n.add_signature(NoteSignature {
        name: "mirror.example".into(),
        key_id: 0x0102_0304,
        signature: vec![0; 64],
    })
    .unwrap();
    let text = n.to_text().unwrap();
    assert!(policy(&[&a], 1).verify(text.as_bytes()).is_ok());
    assert!(matches!(
        policy(&[&a], 1).strict().verify(text.as_bytes()),
        Err(Error::UnknownSigner { line: 2, .. })
    ));
}

#[test]
fn verify_at_refuses_a_cosignature_dated_beyond_the_skew() {
    let a = witness("a.example", 4);
    let text = note(&[&a]).to_text().unwrap();
    let p = policy(&[&a], 1);
    // The cosignature is dated 1_764_307_201; the default skew is 600 s.
    let in_time = p.verify_at(text.as_bytes(), 1_764_307_201 - 600).unwrap();
    assert_eq!(in_time.cosignatures[0].timestamp, 1_764_307_201);
    match p.verify_at(text.as_bytes(), 1_764_307_201 - 601) {
        Err(Error::CosignatureFromFuture {
            name,
            timestamp,
            max_skew,
            ..
        }) => assert_eq!(
            (name.as_str(), timestamp, max_skew),
            ("a.example", 1_764_307_201, 600)
        ),
        other => panic!("expected CosignatureFromFuture, got {other:?}"),
    }
    // Without a clock the timestamp is not compared.
    assert!(p.verify(text.as_bytes()).is_ok());
}
