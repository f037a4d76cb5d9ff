//! Signed notes against the published vectors of Go's `sumdb/note` and the
//! C2SP specs' examples (tests/data/*/ORIGIN.md), plus property tests of
//! every text format: encode → parse round trips, and any single-byte
//! mutation of a signed object is refused.

use ed25519_dalek::SigningKey;
use medledger_chain::checkpoint::{ChainLines, CheckpointError};
use medledger_chain::note::{NoteError, MAX_SIGNATURES};
use medledger_chain::{
    Checkpoint, Cosignature, CosignatureSigner, Ed25519Signer, Error, Hash, HashAlg, LogKey,
    MerkleLog, Note, NoteSignature, NoteVerifier, Policy, TlogProof,
};
use proptest::prelude::*;

const TEXT: &str = include_str!("data/go-sumdb/text.txt");
const SIGNED_PETER: &str = include_str!("data/go-sumdb/signed-peter.note");
const SIGNED_BOTH: &str = include_str!("data/go-sumdb/signed-both.note");
const PETER_VKEY: &str = include_str!("data/go-sumdb/peterneumann.vkey");
const ENOCH_VKEY: &str = include_str!("data/go-sumdb/enochroot.vkey");
const PETER_SKEY: &str = include_str!("data/go-sumdb/peterneumann.skey");
const BAD_LENGTH_VKEY: &str = include_str!("data/go-sumdb/bad-length.vkey");
const BAD_ALG_VKEY: &str = include_str!("data/go-sumdb/bad-alg.vkey");
const TREE_BODY: &str = include_str!("data/go-sumdb/tree.note-body");
const SPEC_VKEY: &str = include_str!("data/c2sp/example.vkey");
const SPEC_NOTE: &str = include_str!("data/c2sp/example.note");
const SPEC_CHECKPOINT: &str = include_str!("data/c2sp/checkpoint.note");
const SPEC_COSIGNED: &str = include_str!("data/c2sp/cosigned-checkpoint.note");

fn peter() -> NoteVerifier {
    NoteVerifier::from_vkey(PETER_VKEY.trim_end()).unwrap()
}
fn enoch() -> NoteVerifier {
    NoteVerifier::from_vkey(ENOCH_VKEY.trim_end()).unwrap()
}

#[test]
fn go_vkeys_parse_and_print_back() {
    for vkey in [PETER_VKEY, ENOCH_VKEY, SPEC_VKEY] {
        let v = NoteVerifier::from_vkey(vkey.trim_end()).unwrap();
        assert_eq!(v.to_vkey(), vkey.trim_end());
    }
    assert_eq!(peter().key_id(), 0xc74f20a3);
    assert_eq!(enoch().key_id(), 0xaf0cfe78);
    // EnochRoot is the key of the all-zero seed (example_test.go).
    let zero = Ed25519Signer::new("EnochRoot", SigningKey::from_bytes(&[0; 32])).unwrap();
    assert_eq!(zero.verifier(), enoch());
}

#[test]
fn go_vkey_substrings_and_increments_are_refused() {
    let vkey = PETER_VKEY.trim_end();
    for i in 0..vkey.len() {
        for j in i..=vkey.len() {
            if (i, j) != (0, vkey.len()) {
                let sub = &vkey[i..j];
                assert!(NoteVerifier::from_vkey(sub).is_err(), "substring {sub:?}");
            }
        }
    }
    for i in 0..vkey.len() {
        let mut b = vkey.as_bytes().to_vec();
        b[i] += 1;
        if let Ok(s) = String::from_utf8(b) {
            assert!(NoteVerifier::from_vkey(&s).is_err(), "incremented {s:?}");
        }
    }
    assert!(NoteVerifier::from_vkey(BAD_LENGTH_VKEY.trim_end()).is_err());
    assert!(matches!(
        NoteVerifier::from_vkey(BAD_ALG_VKEY.trim_end()),
        Err(Error::Note(NoteError::UnsupportedSignatureType(0x65)))
    ));
}

#[test]
fn go_signer_key_signs_exactly_the_go_signature() {
    let s = Ed25519Signer::from_go_private_key(PETER_SKEY.trim_end()).unwrap();
    assert_eq!(s.verifier(), peter());
    assert_eq!(&*s.to_go_private_key(), PETER_SKEY.trim_end());
    let mut n = Note::new(TEXT).unwrap();
    n.sign(&s).unwrap();
    assert_eq!(n.to_text().unwrap(), SIGNED_PETER);
    let zero = Ed25519Signer::new("EnochRoot", SigningKey::from_bytes(&[0; 32])).unwrap();
    n.sign(&zero).unwrap();
    assert_eq!(n.to_text().unwrap(), SIGNED_BOTH);
}

#[test]
fn go_signed_notes_verify_under_each_known_key() {
    let n = Note::parse(SIGNED_BOTH.as_bytes()).unwrap();
    assert_eq!(n.text(), TEXT);
    assert_eq!(n.verify(&[peter(), enoch()]).unwrap().len(), 2);
    let only = n.verify(&[enoch()]).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].signature_index, 1);
    let stranger = Ed25519Signer::generate("PeterNeumann").unwrap().verifier();
    assert!(matches!(
        n.verify(&[stranger]),
        Err(Error::NoKnownSignature)
    ));
    assert!(matches!(
        n.verify(&[enoch(), enoch()]),
        Err(Error::AmbiguousKey {
            key_id: 0xaf0cfe78,
            ..
        })
    ));
}

#[test]
fn go_failure_cases_of_open() {
    let sig_line = SIGNED_PETER
        .strip_prefix(TEXT)
        .unwrap()
        .trim_start_matches('\n');
    // A known key whose signature does not verify (4 characters inserted).
    let (head, b64) = sig_line.rsplit_once(' ').unwrap();
    let bad = format!("{TEXT}\n{head} {}ABCD{}", &b64[..20], &b64[20..]);
    assert!(matches!(
        Note::parse(bad.as_bytes()).unwrap().verify(&[peter()]),
        Err(Error::InvalidSignature {
            key_id: 0xc74f20a3,
            ..
        })
    ));
    // More than 100 signatures.
    let mut many = format!("{TEXT}\n");
    for i in 0..=MAX_SIGNATURES {
        many.push_str(&format!("\u{2014} k{i} AAAAAAAA\n"));
    }
    assert!(matches!(
        Note::parse(many.as_bytes()),
        Err(Error::Note(NoteError::TooManySignatures { max: 100 }))
    ));
    let malformed: Vec<Vec<u8>> = vec![
        TEXT.into(),
        format!("{TEXT}\n").into(),
        SIGNED_PETER.trim_end_matches('\n').into(),
        [b"\x01".as_slice(), SIGNED_PETER.as_bytes()].concat(),
        [b"\xff".as_slice(), SIGNED_PETER.as_bytes()].concat(),
        format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").into(),
        format!("{SIGNED_PETER}not a signature\n").into(),
    ];
    for m in malformed {
        assert!(
            matches!(Note::parse(&m), Err(Error::Note(_))),
            "{:?}",
            String::from_utf8_lossy(&m)
        );
    }
}

#[test]
fn go_failure_cases_of_sign() {
    assert!(matches!(
        Note::new("abc"),
        Err(Error::Note(NoteError::TextNotTerminated))
    ));
    let mut n = Note::new(TEXT).unwrap();
    let sig = NoteSignature {
        name: "a+b".into(),
        key_id: 1,
        signature: vec![1; 64],
    };
    assert!(matches!(
        n.add_signature(sig),
        Err(Error::Note(NoteError::InvalidKeyName { .. }))
    ));
}

#[test]
fn go_tree_note_is_a_plain_checkpoint() {
    let cp = Checkpoint::parse_body(TREE_BODY).unwrap();
    assert_eq!(cp.origin, "go.sum database tree");
    assert_eq!(cp.size, 123456789012);
    assert_eq!(cp.root, HashAlg::Sha256.leaf_hash(b"hello world"));
    let hex = TREE_BODY.replace("123456789012", "0xabcdef");
    assert!(Checkpoint::parse_body(&hex).is_err());
    let changed = TREE_BODY.replace("TszzRg", "TszzRh");
    assert_ne!(Checkpoint::parse_body(&changed).unwrap().root, cp.root);
    let corrupt = TREE_BODY.replace("TszzRg", "TszzR");
    assert!(matches!(
        Checkpoint::parse_body(&corrupt),
        Err(Error::Checkpoint(CheckpointError::InvalidRoot))
    ));
}

#[test]
fn spec_examples_parse_and_verify() {
    let n = Note::parse(SPEC_NOTE.as_bytes()).unwrap();
    n.verify(&[NoteVerifier::from_vkey(SPEC_VKEY.trim_end()).unwrap()])
        .unwrap();
    let cp = Note::parse(SPEC_CHECKPOINT.as_bytes()).unwrap();
    let body = Checkpoint::parse_body(cp.text()).unwrap();
    assert_eq!((body.size, body.chain), (20852163, None));
    let cosigned = Note::parse(SPEC_COSIGNED.as_bytes()).unwrap();
    assert_eq!(cosigned.text(), cp.text());
    let c = Cosignature::from_note_signature(&cosigned.signatures()[1]).unwrap();
    assert_eq!(c.name, "witness.example.com/w1");
    // The timestamp of tlog-cosignature's example message, "time 1679315147".
    assert_eq!(c.timestamp, 1679315147);
    assert_eq!(
        Note::parse(SPEC_COSIGNED.as_bytes())
            .unwrap()
            .to_text()
            .unwrap(),
        SPEC_COSIGNED
    );
}

const OUR_COSIGNED: &str = include_str!("data/medledger/cosigned-checkpoint.note");
const OUR_PROOF: &str = include_str!("data/medledger/entry-6.tlog-proof");

#[test]
fn medledger_vectors() {
    let log = Ed25519Signer::new("log.example", SigningKey::from_bytes(&[1; 32])).unwrap();
    let wit = CosignatureSigner::new("w.example", SigningKey::from_bytes(&[2; 32])).unwrap();
    assert_eq!(
        log.verifier().to_vkey(),
        "log.example+1cc758f9+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"
    );
    assert_eq!(
        wit.verifier().unwrap().to_vkey(),
        "w.example+a26f2ad7+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU"
    );
    let mut tree = MerkleLog::in_memory(HashAlg::Sha256);
    for i in 0..11u32 {
        tree.append(&i.to_be_bytes()).unwrap();
    }
    let cp = Checkpoint::first(
        "log.example",
        HashAlg::Sha256,
        11,
        tree.root(),
        1_780_000_000,
    );
    assert_eq!(
        cp.hash().to_hex(),
        "b530ef1d50e2be1a4430cce8ad904ccf16de2442488d7ac962f8f6097624aa93"
    );
    let mut n = Note::parse(cp.sign(&log).unwrap().as_bytes()).unwrap();
    let c = wit.cosign(n.text(), 1_780_000_001).unwrap();
    n.add_signature(c.to_note_signature()).unwrap();
    assert_eq!(n.to_text().unwrap(), OUR_COSIGNED);
    let p = TlogProof::for_entry(&tree, 6, OUR_COSIGNED.as_bytes(), None).unwrap();
    assert_eq!(p.to_text().unwrap(), OUR_PROOF);
    let policy = Policy::new(
        LogKey::new("log.example", log.verifier(), HashAlg::Sha256).unwrap(),
        vec![wit.verifier().unwrap()],
        1,
    )
    .unwrap();
    TlogProof::parse(OUR_PROOF.as_bytes())
        .unwrap()
        .verify_entry(&policy, &6u32.to_be_bytes())
        .unwrap();
}

// ---- property tests -----------------------------------------------------

fn note_text() -> impl Strategy<Value = String> {
    // Lines of printable ASCII and a few non-ASCII letters, empty lines too.
    prop::collection::vec("[ -~éß—]{0,30}", 1..6).prop_map(|lines| {
        let mut s = lines.join("\n");
        s.push('\n');
        s
    })
}

fn key_name() -> impl Strategy<Value = String> {
    "[a-z0-9./_-]{1,20}"
}

fn mutate(text: &str, pos: usize, byte: u8) -> Option<Vec<u8>> {
    let mut b = text.as_bytes().to_vec();
    let i = pos % b.len();
    if b[i] == byte {
        return None;
    }
    b[i] = byte;
    Some(b)
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    let chain = prop::option::of((
        prop::sample::select(HashAlg::ALL.to_vec()),
        0..=i64::MAX as u64,
        prop::option::of(any::<[u8; 32]>()),
    ));
    ("[!-~]{1,40}", 0..=i64::MAX as u64, any::<[u8; 32]>(), chain).prop_map(
        |(origin, size, root, chain)| Checkpoint {
            origin,
            size,
            root: Hash(root),
            chain: chain.map(|(alg, time, prev)| ChainLines {
                alg,
                time,
                prev: prev.map(Hash),
            }),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn note_round_trips(text in note_text(), names in prop::collection::btree_set(key_name(), 1..4)) {
        let mut n = Note::new(&text).unwrap();
        let signers: Vec<Ed25519Signer> =
            names.iter().map(|k| Ed25519Signer::generate(k).unwrap()).collect();
        for s in &signers {
            n.sign(s).unwrap();
        }
        let t = n.to_text().unwrap();
        let back = Note::parse(t.as_bytes()).unwrap();
        prop_assert_eq!(&back, &n);
        prop_assert_eq!(back.to_text().unwrap(), t);
        let vs: Vec<NoteVerifier> = signers.iter().map(Ed25519Signer::verifier).collect();
        prop_assert_eq!(back.verify(&vs).unwrap().len(), signers.len());
        let v = NoteVerifier::from_vkey(&vs[0].to_vkey()).unwrap();
        prop_assert_eq!(&v, &vs[0]);
    }

    #[test]
    fn note_mutation_is_refused(text in note_text(), name in key_name(), pos in any::<usize>(), byte in any::<u8>()) {
        let s = Ed25519Signer::generate(&name).unwrap();
        let mut n = Note::new(&text).unwrap();
        n.sign(&s).unwrap();
        let t = n.to_text().unwrap();
        if let Some(m) = mutate(&t, pos, byte) {
            let ok = Note::parse(&m).and_then(|n| n.verify(&[s.verifier()]));
            prop_assert!(ok.is_err(), "mutated note verified: {:?}", String::from_utf8_lossy(&m));
        }
    }

    #[test]
    fn checkpoint_body_round_trips(cp in checkpoint()) {
        let body = cp.to_body();
        prop_assert_eq!(Checkpoint::parse_body(&body).unwrap(), cp);
    }

    #[test]
    fn signed_checkpoint_mutation_is_refused(cp in checkpoint(), pos in any::<usize>(), byte in any::<u8>()) {
        let s = Ed25519Signer::new("log.example", SigningKey::from_bytes(&[3; 32])).unwrap();
        let key = LogKey::new(&cp.origin, s.verifier(), cp.alg()).unwrap();
        let note = cp.sign(&s).unwrap();
        prop_assert_eq!(key.verify(note.as_bytes()).unwrap().checkpoint, cp);
        if let Some(m) = mutate(&note, pos, byte) {
            prop_assert!(key.verify(&m).is_err());
        }
    }

    #[test]
    fn cosignature_round_trips_and_mutation_is_refused(
        cp in checkpoint(), ts in 1..=i64::MAX as u64, pos in any::<usize>(), byte in any::<u8>()
    ) {
        let log = Ed25519Signer::new("log", SigningKey::from_bytes(&[3; 32])).unwrap();
        let w = CosignatureSigner::new("w.example", SigningKey::from_bytes(&[4; 32])).unwrap();
        let mut note = Note::parse(cp.sign(&log).unwrap().as_bytes()).unwrap();
        let c = w.cosign(note.text(), ts).unwrap();
        prop_assert_eq!(&Cosignature::parse_lines(c.to_line().as_bytes()).unwrap(), &vec![c.clone()]);
        note.add_signature(c.to_note_signature()).unwrap();
        let text = note.to_text().unwrap();
        let policy = Policy::new(
            LogKey::new(&cp.origin, log.verifier(), cp.alg()).unwrap(),
            vec![w.verifier().unwrap()],
            1,
        ).unwrap();
        let v = policy.verify(text.as_bytes()).unwrap();
        prop_assert_eq!(v.cosignatures[0].timestamp, ts);
        if let Some(m) = mutate(&text, pos, byte) {
            prop_assert!(policy.verify(&m).is_err());
        }
        if let Some(m) = mutate(&c.to_line(), pos, byte) {
            let ok = Cosignature::parse_lines(&m).and_then(|cs| {
                cs.first().ok_or(Error::NoKnownSignature)?.verify(&w.verifier()?, note.text())
            });
            prop_assert!(ok.is_err());
        }
    }

    #[test]
    fn tlog_proof_round_trips_and_mutation_is_refused(
        n in 1u64..40, idx in any::<u64>(), extra in prop::option::of(prop::collection::vec(any::<u8>(), 1..64)),
        pos in any::<usize>(), byte in any::<u8>()
    ) {
        let mut log = MerkleLog::in_memory(HashAlg::Sha256);
        for i in 0..n {
            log.append(&i.to_be_bytes()).unwrap();
        }
        let s = Ed25519Signer::new("o", SigningKey::from_bytes(&[5; 32])).unwrap();
        let note = Checkpoint::first("o", HashAlg::Sha256, n, log.root(), 9).sign(&s).unwrap();
        let index = idx % n;
        let p = TlogProof::for_entry(&log, index, note.as_bytes(), extra.clone()).unwrap();
        let text = p.to_text().unwrap();
        prop_assert_eq!(&TlogProof::parse(text.as_bytes()).unwrap(), &p);
        let policy = Policy::new(LogKey::new("o", s.verifier(), HashAlg::Sha256).unwrap(), vec![], 0).unwrap();
        p.verify_entry(&policy, &index.to_be_bytes()).unwrap();
        // The extra line is unauthenticated by design (tlog-proof "Format"),
        // so mutations are checked on a proof without one.
        let bare = TlogProof { extra: None, ..p }.to_text().unwrap();
        if let Some(m) = mutate(&bare, pos, byte) {
            let ok = TlogProof::parse(&m).and_then(|q| q.verify_entry(&policy, &index.to_be_bytes()));
            prop_assert!(ok.is_err(), "{}", String::from_utf8_lossy(&m));
        }
    }
}
