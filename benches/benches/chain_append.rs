//! Appending 1,000,000 leaves, against the hashing lower bound of the same
//! algorithm (2N − 1 raw hash calls: N leaf hashes and N − 1 node hashes) and
//! against `rs_merkle` building the same SHA-256 tree.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use medledger_chain::{HashAlg, MerkleLog};
use sha2::Digest as _;

const N: u64 = 1_000_000;

fn entry(i: u64) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..8].copy_from_slice(&i.to_le_bytes());
    e
}

/// Exactly 2N − 1 calls of the raw primitive over the same input sizes our
/// tree hashes (33-byte leaf inputs, 65-byte node inputs).
fn lower_bound(alg: HashAlg, n: u64) -> [u8; 32] {
    let raw = |buf: &[u8]| -> [u8; 32] {
        match alg {
            HashAlg::Blake3 => *blake3::hash(buf).as_bytes(),
            HashAlg::Sha3_256 => sha3::Sha3_256::digest(buf).into(),
            HashAlg::Sha256 => sha2::Sha256::digest(buf).into(),
        }
    };
    let mut leaf_in = [0u8; 33];
    let mut node_in = [1u8; 65];
    let mut acc = [0u8; 32];
    for i in 0..n {
        leaf_in[1..].copy_from_slice(&entry(i));
        let leaf = raw(&leaf_in);
        if i == 0 {
            acc = leaf;
            continue;
        }
        node_in[1..33].copy_from_slice(&acc);
        node_in[33..].copy_from_slice(&leaf);
        acc = raw(&node_in);
    }
    acc
}

fn ours(alg: HashAlg, n: u64) -> medledger_chain::Hash {
    let mut log = MerkleLog::in_memory(alg);
    for i in 0..n {
        log.append(&entry(i)).expect("append");
    }
    log.root()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_1m");
    g.sample_size(10);
    for alg in HashAlg::ALL {
        g.bench_with_input(BenchmarkId::new("lower_bound", alg), &alg, |b, &alg| {
            b.iter(|| black_box(lower_bound(alg, N)))
        });
        g.bench_with_input(BenchmarkId::new("medledger", alg), &alg, |b, &alg| {
            b.iter(|| black_box(ours(alg, N)))
        });
    }
    // What storing the 2N − 1 node hashes costs by itself: writing 64 MB of
    // fresh memory (first-touch page faults dominate on small VMs).
    g.bench_function("fresh_memory_floor", |b| {
        b.iter(|| {
            let mut v: Vec<[u8; 32]> = Vec::new();
            for i in 0..(2 * N - 1) {
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&i.to_le_bytes());
                v.push(h);
            }
            black_box(v.len())
        })
    });
    g.bench_function("rs_merkle/sha256", |b| {
        b.iter(|| {
            use rs_merkle::{algorithms::Sha256, Hasher, MerkleTree};
            let leaves: Vec<[u8; 32]> = (0..N).map(|i| Sha256::hash(&entry(i))).collect();
            let tree = MerkleTree::<Sha256>::from_leaves(&leaves);
            black_box(tree.root())
        })
    });
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
