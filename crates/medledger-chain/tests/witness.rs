//! Witness cosigning, its refusals, atomic state, and k-of-n policies,
//! through the public API.

use ed25519_dalek::SigningKey;
use medledger_chain::checkpoint::CheckpointError;
use medledger_chain::witness::AddCheckpointRequest;
use medledger_chain::{
    Checkpoint, CosignatureSigner, Ed25519Signer, Error, Hash, HashAlg, LogKey, MerkleLog, Note,
    Policy, Witness, WitnessState, WitnessStateStore,
};

const ORIGIN: &str = "hospital.example/ledger";
const T0: u64 = 1_780_000_000;

struct Log {
    tree: MerkleLog,
    signer: Ed25519Signer,
    last: Option<Checkpoint>,
}

impl Log {
    fn new(alg: HashAlg) -> Self {
        Log {
            tree: MerkleLog::in_memory(alg),
            signer: Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).unwrap(),
            last: None,
        }
    }
    fn key(&self) -> LogKey {
        LogKey::new(ORIGIN, self.signer.verifier(), self.tree.alg()).unwrap()
    }
    /// Appends `n` entries and signs a checkpoint of the new size.
    fn grow(&mut self, n: u64) -> String {
        for _ in 0..n {
            let i = self.tree.size();
            self.tree.append(format!("entry {i}").as_bytes()).unwrap();
        }
        let time = T0 + self.tree.size();
        let cp = match &self.last {
            None => Checkpoint::first(
                ORIGIN,
                self.tree.alg(),
                self.tree.size(),
                self.tree.root(),
                time,
            ),
            Some(prev) => prev.successor(self.tree.size(), self.tree.root(), time),
        };
        let note = cp.sign(&self.signer).unwrap();
        self.last = Some(cp);
        note
    }
    fn proof(&self, old: u64) -> Vec<Hash> {
        if old == 0 {
            return Vec::new();
        }
        self.tree
            .consistency_proof(old, self.tree.size())
            .unwrap()
            .path
    }
}

fn witness(seed: u8, name: &str, log: &Log) -> Witness {
    let signer = CosignatureSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap();
    let mut w = Witness::in_memory(signer);
    w.add_log(log.key());
    w
}

#[test]
fn witness_cosigns_growth_and_refuses_each_bad_case() {
    let mut log = Log::new(HashAlg::Blake3);
    let w = witness(9, "w1.example", &log);
    let n1 = log.grow(5);
    let c1 = w.add_checkpoint_at(n1.as_bytes(), 0, &[], T0 + 10).unwrap();
    assert_eq!(c1.timestamp, T0 + 10);
    c1.verify(
        &w.signer().verifier().unwrap(),
        Note::parse(n1.as_bytes()).unwrap().text(),
    )
    .unwrap();
    assert_eq!(
        w.state(ORIGIN).unwrap(),
        Some(WitnessState {
            size: 5,
            root: log.tree.root()
        })
    );

    let n2 = log.grow(7);
    // Wrong old size: 409 with the witness's size.
    assert!(matches!(
        w.add_checkpoint_at(n2.as_bytes(), 3, &log.proof(3), T0 + 11),
        Err(Error::WitnessSizeConflict {
            stored: 5,
            claimed: 3
        })
    ));
    // Bad consistency proof: one hash flipped.
    let mut bad = log.proof(5);
    bad[0].0[0] ^= 1;
    assert!(matches!(
        w.add_checkpoint_at(n2.as_bytes(), 5, &bad, T0 + 11),
        Err(Error::BadConsistencyProof {
            old: 5,
            size: 12,
            ..
        })
    ));
    assert_eq!(
        w.state(ORIGIN).unwrap().unwrap().size,
        5,
        "refusal keeps state"
    );
    w.add_checkpoint_at(n2.as_bytes(), 5, &log.proof(5), T0 + 11)
        .unwrap();

    // Rollback: the old 5-leaf checkpoint again.
    assert!(matches!(
        w.add_checkpoint_at(n1.as_bytes(), 12, &[], T0 + 12),
        Err(Error::Rollback {
            stored: 12,
            size: 5
        })
    ));
    // Same checkpoint again is fine (old == size, equal roots).
    w.add_checkpoint_at(n2.as_bytes(), 12, &[], T0 + 13)
        .unwrap();

    // Unknown log.
    let other = Ed25519Signer::new("other.example/log", SigningKey::from_bytes(&[3; 32])).unwrap();
    let foreign = Checkpoint::first(
        "other.example/log",
        HashAlg::Blake3,
        0,
        HashAlg::Blake3.empty_root(),
        T0,
    )
    .sign(&other)
    .unwrap();
    assert!(matches!(
        w.add_checkpoint_at(foreign.as_bytes(), 0, &[], T0),
        Err(Error::UnknownLog { origin }) if origin == "other.example/log"
    ));

    // Right origin, signed by an impostor key: no known signature.
    let impostor = Ed25519Signer::new("impostor", SigningKey::from_bytes(&[4; 32])).unwrap();
    let forged = log.last.clone().unwrap().sign(&impostor).unwrap();
    assert!(matches!(
        w.add_checkpoint_at(forged.as_bytes(), 12, &[], T0),
        Err(Error::NoKnownSignature)
    ));
    // The log's key name and ID with a bad signature: rejected.
    let mut tampered = n2.clone().into_bytes();
    let sig_at = tampered.len() - 10;
    tampered[sig_at] = if tampered[sig_at] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        w.add_checkpoint_at(&tampered, 12, &[], T0),
        Err(Error::InvalidSignature { .. }) | Err(Error::Note(_))
    ));
}

#[test]
fn witness_refuses_other_hash_algorithm_and_bad_empty_root() {
    let mut log = Log::new(HashAlg::Sha3_256);
    let mut w = witness(9, "w1.example", &log);
    let note = log.grow(2);
    // The witness is told the log is BLAKE3: the hash line disagrees.
    w.add_log(LogKey::new(ORIGIN, log.signer.verifier(), HashAlg::Blake3).unwrap());
    assert!(matches!(
        w.add_checkpoint_at(note.as_bytes(), 0, &[], T0),
        Err(Error::Checkpoint(CheckpointError::HashAlgMismatch { .. }))
    ));
    w.add_log(log.key());
    let empty = Checkpoint::first(ORIGIN, HashAlg::Sha3_256, 0, Hash([0; 32]), T0)
        .sign(&log.signer)
        .unwrap();
    assert!(matches!(
        w.add_checkpoint_at(empty.as_bytes(), 0, &[], T0),
        Err(Error::EmptyTreeRoot)
    ));
    assert!(matches!(
        w.add_checkpoint_at(note.as_bytes(), 0, &[Hash([1; 32])], T0),
        Err(Error::BadConsistencyProof { .. })
    ));
    assert!(matches!(
        w.add_checkpoint_at(note.as_bytes(), 0, &[], 1 << 63),
        Err(Error::CosignatureTimestamp { .. })
    ));
    assert_eq!(w.state(ORIGIN).unwrap(), None, "no refusal stores state");
}

/// A store whose state changes between the witness's read and its write.
struct RacingStore {
    inner: medledger_chain::MemoryWitnessStateStore,
    intruder: WitnessState,
}

impl WitnessStateStore for RacingStore {
    fn load(&self, origin: &str) -> medledger_chain::Result<Option<WitnessState>> {
        let seen = self.inner.load(origin)?;
        // Another request wins the race right after this read.
        self.inner
            .compare_and_swap(origin, seen.as_ref(), &self.intruder)?;
        Ok(seen)
    }
    fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&WitnessState>,
        new: &WitnessState,
    ) -> medledger_chain::Result<bool> {
        self.inner.compare_and_swap(origin, expected, new)
    }
}

#[test]
fn lost_compare_and_swap_cosigns_nothing_and_keeps_the_winner() {
    let mut log = Log::new(HashAlg::Sha256);
    let intruder = WitnessState {
        size: 99,
        root: Hash([9; 32]),
    };
    let store = RacingStore {
        inner: medledger_chain::MemoryWitnessStateStore::new(),
        intruder,
    };
    let signer = CosignatureSigner::new("w", SigningKey::from_bytes(&[5; 32])).unwrap();
    let mut w = Witness::new(signer, store);
    w.add_log(log.key());
    let note = log.grow(3);
    assert!(matches!(
        w.add_checkpoint_at(note.as_bytes(), 0, &[], T0),
        Err(Error::WitnessStateChanged { .. })
    ));
    assert_eq!(w.state(ORIGIN).unwrap(), Some(intruder));
}

#[test]
fn add_checkpoint_request_body_round_trips_and_is_handled() {
    let mut log = Log::new(HashAlg::Sha256);
    let w = witness(9, "w1.example", &log);
    let n1 = log.grow(4);
    w.add_checkpoint_at(n1.as_bytes(), 0, &[], T0).unwrap();
    let n2 = log.grow(3);
    let req = AddCheckpointRequest {
        old_size: 4,
        proof: log.proof(4),
        checkpoint: n2.clone(),
    };
    let body = req.to_body();
    assert!(body.starts_with("old 4\n"));
    assert_eq!(AddCheckpointRequest::parse(body.as_bytes()).unwrap(), req);
    let line = w.handle_request(body.as_bytes()).unwrap();
    assert!(line.starts_with("\u{2014} w1.example "));
    // The response appended to the checkpoint satisfies a 1-of-1 policy.
    let policy = Policy::new(log.key(), vec![w.signer().verifier().unwrap()], 1).unwrap();
    let cosigned = format!("{n2}{line}");
    let v = policy.verify(cosigned.as_bytes()).unwrap();
    assert_eq!(v.checkpoint.size, 7);
    assert_eq!(v.cosignatures.len(), 1);
    assert!(matches!(
        AddCheckpointRequest::parse(b"old 01\n\nx"),
        Err(Error::InvalidRequest { .. })
    ));
    let too_many = format!(
        "old 1\n{}\n{}",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64),
        n2
    );
    assert!(AddCheckpointRequest::parse(too_many.as_bytes()).is_err());
}

#[test]
fn policy_needs_log_signature_and_k_distinct_witnesses() {
    let mut log = Log::new(HashAlg::Blake3);
    let ws: Vec<Witness> = (0..3u8)
        .map(|i| witness(20 + i, &format!("w{i}.example"), &log))
        .collect();
    let note = log.grow(10);
    let mut cosigned = note.clone();
    for w in &ws[..2] {
        cosigned.push_str(
            &w.add_checkpoint_at(note.as_bytes(), 0, &[], T0)
                .unwrap()
                .to_line(),
        );
    }
    // An unknown cosigner's line is ignored.
    let stranger = CosignatureSigner::new("stranger", SigningKey::from_bytes(&[77; 32])).unwrap();
    let body = Note::parse(note.as_bytes()).unwrap().text().to_owned();
    cosigned.push_str(&stranger.cosign(&body, T0).unwrap().to_line());
    let keys: Vec<_> = ws.iter().map(|w| w.signer().verifier().unwrap()).collect();

    let two = Policy::new(log.key(), keys.clone(), 2).unwrap();
    let v = two.verify(cosigned.as_bytes()).unwrap();
    let names: Vec<&str> = v.cosignatures.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["w0.example", "w1.example"]);

    let three = Policy::new(log.key(), keys.clone(), 3).unwrap();
    assert!(matches!(
        three.verify(cosigned.as_bytes()),
        Err(Error::QuorumNotMet { needed: 3, got: 2 })
    ));
    assert!(matches!(
        Policy::new(log.key(), keys.clone(), 4),
        Err(Error::InvalidPolicy { .. })
    ));
    assert!(matches!(
        Policy::new(log.key(), vec![log.signer.verifier()], 1),
        Err(Error::InvalidPolicy { .. })
    ));

    // A known witness whose cosignature is over another timestamp: rejected.
    let mut n = Note::parse(cosigned.as_bytes()).unwrap();
    let mut c = medledger_chain::Cosignature::from_note_signature(&n.signatures()[1]).unwrap();
    c.timestamp += 1;
    n.add_signature(c.to_note_signature()).unwrap();
    assert!(matches!(
        two.verify(n.to_text().unwrap().as_bytes()),
        Err(Error::InvalidSignature { name, .. }) if name == "w0.example"
    ));

    // Cosignatures without the log's signature: refused.
    let without_log: String = {
        let parsed = Note::parse(cosigned.as_bytes()).unwrap();
        let mut n2 = Note::new(parsed.text()).unwrap();
        for s in &parsed.signatures()[1..] {
            n2.add_signature(s.clone()).unwrap();
        }
        n2.to_text().unwrap()
    };
    assert!(matches!(
        two.verify(without_log.as_bytes()),
        Err(Error::MissingLogSignature)
    ));
}

#[test]
fn plain_c2sp_checkpoint_only_for_sha256_logs() {
    let signer = Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).unwrap();
    let plain = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root: HashAlg::Sha256.empty_root(),
        chain: None,
    };
    let note = plain.sign(&signer).unwrap();
    let sha = LogKey::new(ORIGIN, signer.verifier(), HashAlg::Sha256).unwrap();
    assert_eq!(sha.verify(note.as_bytes()).unwrap().checkpoint, plain);
    let b3 = LogKey::new(ORIGIN, signer.verifier(), HashAlg::Blake3).unwrap();
    assert!(matches!(
        b3.verify(note.as_bytes()),
        Err(Error::Checkpoint(CheckpointError::MissingHashLine {
            expected: HashAlg::Blake3
        }))
    ));
}

#[test]
fn concurrent_requests_never_roll_the_state_back() {
    // Two views of one honest log: 5 and 9 leaves, both first submissions
    // (old size 0). Whatever the interleaving, exactly the cosigned
    // checkpoints are ordered and the stored state is the last one cosigned.
    let mut log = Log::new(HashAlg::Blake3);
    let n5 = log.grow(5);
    let r5 = log.tree.root();
    let n9 = log.grow(4);
    let r9 = log.tree.root();
    for round in 0..50 {
        let w = witness(9, "w1.example", &log);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| w.add_checkpoint_at(n5.as_bytes(), 0, &[], T0 + round));
            let b = s.spawn(|| w.add_checkpoint_at(n9.as_bytes(), 0, &[], T0 + round));
            (a.join().unwrap(), b.join().unwrap())
        });
        let state = w.state(ORIGIN).unwrap().unwrap();
        match (a.is_ok(), b.is_ok()) {
            (true, false) => assert_eq!(state, WitnessState { size: 5, root: r5 }),
            (false, true) => assert_eq!(state, WitnessState { size: 9, root: r9 }),
            other => panic!("round {round}: both or neither cosigned: {other:?}"),
        }
        let loser = if a.is_ok() { b } else { a };
        assert!(matches!(
            loser,
            Err(Error::WitnessSizeConflict {
                stored: 5 | 9,
                claimed: 0
            }) | Err(Error::Rollback { stored: 9, size: 5 })
                | Err(Error::WitnessStateChanged { .. })
        ));
    }
}

/// A witness whose clock runs a day ahead cosigns; a verifier checking
/// against its own clock refuses that cosignature as from the future (typed
/// error) while one within the 10-minute skew verifies.
#[test]
fn cosignatures_dated_in_the_future_are_refused_against_the_callers_clock() {
    let mut log = Log::new(HashAlg::Sha256);
    let note = log.grow(3);
    let w = witness(9, "witness.example/w1", &log);
    let body = Note::parse(note.as_bytes()).unwrap().text().to_owned();
    let now = T0 + 100;
    let ahead = w
        .add_checkpoint_at(note.as_bytes(), 0, &[], now + 86_400)
        .unwrap();
    let verifier = w.signer().verifier().unwrap();
    ahead.verify(&verifier, &body).unwrap();
    assert!(matches!(
        ahead.verify_at(&verifier, &body, now),
        Err(Error::CosignatureFromFuture {
            timestamp,
            now: n,
            max_skew: 600,
            ..
        }) if timestamp == now + 86_400 && n == now
    ));
    let w2 = witness(10, "witness.example/w2", &log);
    let close = w2
        .add_checkpoint_at(note.as_bytes(), 0, &[], now + 599)
        .unwrap();
    close
        .verify_at(&w2.signer().verifier().unwrap(), &body, now)
        .unwrap();
}
