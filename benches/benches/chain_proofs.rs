//! Inclusion and consistency proofs at 1,000,000 leaves: generation from
//! stored nodes, and verification against the raw hash calls it needs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use medledger_chain::{verify_consistency, verify_inclusion, Hash, HashAlg, MerkleLog};
use sha2::Digest as _;

const N: u64 = 1_000_000;

/// A cheap deterministic index sequence (no RNG crate needed).
fn pick(i: u64, below: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % below
}

/// The raw cost floor of verifying a path of `len` hashes: `len` node hashes.
fn raw_node_hashes(alg: HashAlg, start: &Hash, path: &[Hash]) -> [u8; 32] {
    let mut buf = [1u8; 65];
    let mut acc = start.0;
    for p in path {
        buf[1..33].copy_from_slice(&p.0);
        buf[33..].copy_from_slice(&acc);
        acc = match alg {
            HashAlg::Blake3 => *blake3::hash(&buf).as_bytes(),
            HashAlg::Sha3_256 => sha3::Sha3_256::digest(buf).into(),
            HashAlg::Sha256 => sha2::Sha256::digest(buf).into(),
        };
    }
    acc
}

/// How many node hashes RFC 9162 §2.1.4.2 computes for a consistency proof
/// of `len` hashes from `old` to `new` (the control flow of the
/// verification, without the hashing).
fn consistency_hash_calls(old: u64, new: u64, len: usize) -> usize {
    let mut fnode = old - 1;
    let mut snode = new - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let elements = if old.is_power_of_two() { len } else { len - 1 };
    let mut calls = 0;
    for _ in 0..elements {
        if fnode & 1 == 1 || fnode == snode {
            calls += 2;
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            calls += 1;
        }
        fnode >>= 1;
        snode >>= 1;
    }
    calls
}

fn proofs(c: &mut Criterion) {
    for alg in [HashAlg::Blake3, HashAlg::Sha256] {
        let mut log = MerkleLog::in_memory(alg);
        log.append_batch((0..N).map(|i| i.to_le_bytes()))
            .expect("build");
        let root = log.root();
        let mut g = c.benchmark_group(format!("proofs_1m/{alg}"));

        let mut i = 0u64;
        g.bench_function("inclusion_generate", |b| {
            b.iter(|| {
                i += 1;
                black_box(log.inclusion_proof(pick(i, N), N).expect("proof"))
            })
        });
        let cases: Vec<_> = (0..1024u64)
            .map(|k| {
                let idx = pick(k, N);
                let leaf = alg.leaf_hash(&idx.to_le_bytes());
                (idx, leaf, log.inclusion_proof(idx, N).expect("proof").path)
            })
            .collect();
        let mut k = 0usize;
        g.bench_function("inclusion_verify", |b| {
            b.iter(|| {
                k = (k + 1) % cases.len();
                let (idx, leaf, path) = &cases[k];
                verify_inclusion(alg, *idx, N, leaf, path, &root).expect("verify");
            })
        });
        g.bench_function("inclusion_verify_raw_hash_floor", |b| {
            b.iter(|| {
                k = (k + 1) % cases.len();
                let (_, leaf, path) = &cases[k];
                black_box(raw_node_hashes(alg, leaf, path))
            })
        });

        let mut j = 0u64;
        g.bench_function("consistency_generate", |b| {
            b.iter(|| {
                j += 1;
                black_box(log.consistency_proof(1 + pick(j, N - 1), N).expect("proof"))
            })
        });
        let ccases: Vec<_> = (0..256u64)
            .map(|k| {
                let old = 1 + pick(k, N - 1);
                let r1 = log.root_at(old).expect("root");
                (old, r1, log.consistency_proof(old, N).expect("proof").path)
            })
            .collect();
        let mut m = 0usize;
        g.bench_function("consistency_verify", |b| {
            b.iter(|| {
                m = (m + 1) % ccases.len();
                let (old, r1, path) = &ccases[m];
                verify_consistency(alg, *old, N, r1, &root, path).expect("verify");
            })
        });
        // The floor: exactly as many raw node hashes as RFC 9162 §2.1.4.2
        // computes for each case (two per element that feeds both roots).
        let floors: Vec<usize> = ccases
            .iter()
            .map(|(old, _, path)| consistency_hash_calls(*old, N, path.len()))
            .collect();
        g.bench_function("consistency_verify_raw_hash_floor", |b| {
            b.iter(|| {
                m = (m + 1) % ccases.len();
                let (_, r1, path) = &ccases[m];
                let mut calls = floors[m];
                let mut acc = *r1;
                while calls > 0 {
                    let n = calls.min(path.len());
                    acc = Hash(raw_node_hashes(alg, &acc, &path[..n]));
                    calls -= n;
                }
                black_box(acc)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, proofs);
criterion_main!(benches);
