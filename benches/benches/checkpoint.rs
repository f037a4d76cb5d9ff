//! Signing a checkpoint and collecting three witness cosignatures, and
//! verifying it under a 3-of-3 policy, against the raw Ed25519 operations
//! over the same bytes (four signatures, four verifications).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use medledger_chain::{
    Checkpoint, CosignatureSigner, Ed25519Signer, HashAlg, LogKey, MerkleLog, Note, Policy,
};

const ORIGIN: &str = "hospital-a.example/medledger";
const TIME: u64 = 1_795_000_000;

fn checkpoint(c: &mut Criterion) {
    let alg = HashAlg::Blake3;
    let mut log = MerkleLog::in_memory(alg);
    log.append_batch((0u32..1000).map(|i| i.to_le_bytes()))
        .expect("log");
    let cp = Checkpoint::first(ORIGIN, alg, log.size(), log.root(), TIME);
    let log_signer = Ed25519Signer::generate(ORIGIN).expect("log key");
    let witnesses: Vec<CosignatureSigner> = (0..3)
        .map(|i| CosignatureSigner::generate(&format!("witness-{i}.example")).expect("witness"))
        .collect();
    let log_key = LogKey::new(ORIGIN, log_signer.verifier(), alg).expect("log key");
    let policy = Policy::new(
        log_key,
        witnesses
            .iter()
            .map(|w| w.verifier().expect("vkey"))
            .collect(),
        3,
    )
    .expect("policy");

    let sign_and_cosign = || {
        let text = cp.sign(&log_signer).expect("sign");
        let mut note = Note::parse(text.as_bytes()).expect("parse");
        let body = note.text().to_owned();
        for w in &witnesses {
            let cos = w.cosign(&body, TIME + 1).expect("cosign");
            note.add_signature(cos.to_note_signature()).expect("add");
        }
        note.to_text().expect("text")
    };
    let signed = sign_and_cosign();
    policy.verify(signed.as_bytes()).expect("policy accepts");

    // The raw floor: the same four Ed25519 operations on the same messages.
    let body = cp.to_body();
    // C2SP tlog-cosignature, "Ed25519 signed message".
    let cos_msg = format!("cosignature/v1\ntime {}\n{body}", TIME + 1).into_bytes();
    let raw_keys: Vec<SigningKey> = (0u8..4)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let raw_sigs: Vec<_> = raw_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let m = if i == 0 {
                body.as_bytes()
            } else {
                &cos_msg[..]
            };
            (k.verifying_key(), k.sign(m))
        })
        .collect();

    let mut g = c.benchmark_group("checkpoint_3_witnesses");
    g.bench_function("medledger_sign_and_cosign", |b| {
        b.iter(|| black_box(sign_and_cosign()))
    });
    g.bench_function("raw_ed25519_sign_x4", |b| {
        b.iter(|| {
            for (i, k) in raw_keys.iter().enumerate() {
                let m = if i == 0 {
                    body.as_bytes()
                } else {
                    &cos_msg[..]
                };
                black_box(k.sign(m));
            }
        })
    });
    g.bench_function("medledger_policy_verify", |b| {
        b.iter(|| black_box(policy.verify(signed.as_bytes()).expect("verify")))
    });
    g.bench_function("raw_ed25519_verify_x4", |b| {
        b.iter(|| {
            for (i, (vk, sig)) in raw_sigs.iter().enumerate() {
                let m = if i == 0 {
                    body.as_bytes()
                } else {
                    &cos_msg[..]
                };
                vk.verify(m, sig).expect("raw verify");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, checkpoint);
criterion_main!(benches);
