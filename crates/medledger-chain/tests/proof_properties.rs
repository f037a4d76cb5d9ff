//! Property tests: every inclusion and consistency proof from a log verifies,
//! and any single-bit change of a proof, leaf, root, index or size is caught.
//!
//! One subtlety is tested rather than hidden: a proof's *size* is bound by
//! the signed checkpoint that carries it, not by the audit path alone. Two
//! sizes whose paths have the same shape (for example leaf 5 in trees of 7
//! and 8 leaves) combine the same hashes the same way, so an RFC 9162
//! verifier cannot tell them apart. For a mutated size the tests therefore
//! require: verification fails, or the two sizes are indistinguishable for
//! *every* proof, which is checked with fresh random hashes.

use medledger_chain::proof::{root_from_inclusion, roots_from_consistency};
use medledger_chain::{
    verify_consistency, verify_inclusion, ConsistencyProof, Hash, HashAlg, MerkleLog,
};
use proptest::prelude::*;

fn build(alg: HashAlg, n: u64) -> MerkleLog {
    let mut log = MerkleLog::in_memory(alg);
    log.append_batch((0..n).map(|i| i.to_le_bytes())).unwrap();
    log
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash(b)
}

fn random_hashes(seed: u64, n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| HashAlg::Blake3.digest(&[&seed.to_le_bytes(), &(i as u64).to_le_bytes()]))
        .collect()
}

fn alg_strategy() -> impl Strategy<Value = HashAlg> {
    prop_oneof![
        Just(HashAlg::Blake3),
        Just(HashAlg::Sha3_256),
        Just(HashAlg::Sha256)
    ]
}

/// Whether an inclusion path for (index', size') combines any hashes exactly
/// as one for (index, size) does.
fn same_inclusion_shape(alg: HashAlg, a: (u64, u64), b: (u64, u64), len: usize, seed: u64) -> bool {
    let hs = random_hashes(seed, len + 1);
    let (leaf, path) = (hs[0], &hs[1..]);
    match (
        root_from_inclusion(alg, a.0, a.1, &leaf, path),
        root_from_inclusion(alg, b.0, b.1, &leaf, path),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn same_consistency_shape(
    alg: HashAlg,
    a: (u64, u64),
    b: (u64, u64),
    len: usize,
    seed: u64,
) -> bool {
    let hs = random_hashes(seed, len + 1);
    let (old_root, path) = (hs[0], &hs[1..]);
    match (
        roots_from_consistency(alg, a.0, a.1, &old_root, path),
        roots_from_consistency(alg, b.0, b.1, &old_root, path),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn inclusion_proofs_verify_and_every_bit_flip_is_caught(
        alg in alg_strategy(),
        n in 1u64..3000,
        pick in any::<u64>(),
        size_pick in any::<u64>(),
        bit in 0usize..256,
    ) {
        let log = build(alg, n);
        let size = 1 + size_pick % n;
        let index = pick % size;
        let root = log.root_at(size).unwrap();
        let leaf = alg.leaf_hash(&index.to_le_bytes());
        let proof = log.inclusion_proof(index, size).unwrap();
        prop_assert!(verify_inclusion(alg, index, size, &leaf, &proof.path, &root).is_ok());

        for i in 0..proof.path.len() {
            let mut p = proof.path.clone();
            p[i] = flip(&p[i], bit);
            prop_assert!(verify_inclusion(alg, index, size, &leaf, &p, &root).is_err());
        }
        prop_assert!(verify_inclusion(alg, index, size, &flip(&leaf, bit), &proof.path, &root).is_err());
        prop_assert!(verify_inclusion(alg, index, size, &leaf, &proof.path, &flip(&root, bit)).is_err());
        let mut longer = proof.path.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(alg, index, size, &leaf, &longer, &root).is_err());
        if !proof.path.is_empty() {
            let shorter = &proof.path[..proof.path.len() - 1];
            prop_assert!(verify_inclusion(alg, index, size, &leaf, shorter, &root).is_err());
        }
        for b in 0..64 {
            let idx2 = index ^ (1 << b);
            prop_assert!(verify_inclusion(alg, idx2, size, &leaf, &proof.path, &root).is_err(),
                "index {index} -> {idx2} in size {size}");
            let size2 = size ^ (1 << b);
            let ok = verify_inclusion(alg, index, size2, &leaf, &proof.path, &root).is_ok();
            let indistinguishable = same_inclusion_shape(
                alg, (index, size), (index, size2), proof.path.len(), pick ^ b);
            prop_assert_eq!(ok, indistinguishable, "size {} -> {}", size, size2);
        }
    }

    #[test]
    fn consistency_proofs_verify_and_every_bit_flip_is_caught(
        alg in alg_strategy(),
        n in 1u64..3000,
        a in any::<u64>(),
        b in any::<u64>(),
        bit in 0usize..256,
    ) {
        let log = build(alg, n);
        let new = 1 + a % n;
        let old = 1 + b % new;
        let (r1, r2) = (log.root_at(old).unwrap(), log.root_at(new).unwrap());
        let proof: ConsistencyProof = log.consistency_proof(old, new).unwrap();
        prop_assert!(proof.verify(alg, &r1, &r2).is_ok());

        for i in 0..proof.path.len() {
            let mut p = proof.path.clone();
            p[i] = flip(&p[i], bit);
            prop_assert!(verify_consistency(alg, old, new, &r1, &r2, &p).is_err());
        }
        prop_assert!(verify_consistency(alg, old, new, &flip(&r1, bit), &r2, &proof.path).is_err());
        prop_assert!(verify_consistency(alg, old, new, &r1, &flip(&r2, bit), &proof.path).is_err());
        let mut longer = proof.path.clone();
        longer.push(r1);
        prop_assert!(verify_consistency(alg, old, new, &r1, &r2, &longer).is_err());
        if !proof.path.is_empty() {
            let shorter = &proof.path[..proof.path.len() - 1];
            prop_assert!(verify_consistency(alg, old, new, &r1, &r2, shorter).is_err());
        }
        for bb in 0..64 {
            for (o2, n2) in [(old ^ (1 << bb), new), (old, new ^ (1 << bb))] {
                let ok = verify_consistency(alg, o2, n2, &r1, &r2, &proof.path).is_ok();
                let indistinguishable = o2 < n2 && same_consistency_shape(
                    alg, (old, new), (o2, n2), proof.path.len(), a ^ bb);
                prop_assert_eq!(ok, indistinguishable, "({}, {}) -> ({}, {})", old, new, o2, n2);
            }
        }
    }
}

/// Exhaustive for small trees: every (index, size) and every (old, new).
#[test]
fn every_proof_in_small_trees_verifies() {
    for alg in HashAlg::ALL {
        let log = build(alg, 100);
        for size in 1..=100u64 {
            let root = log.root_at(size).unwrap();
            for index in 0..size {
                let leaf = alg.leaf_hash(&index.to_le_bytes());
                log.inclusion_proof(index, size)
                    .unwrap()
                    .verify(alg, &leaf, &root)
                    .unwrap();
            }
            for old in 1..=size {
                let r1 = log.root_at(old).unwrap();
                log.consistency_proof(old, size)
                    .unwrap()
                    .verify(alg, &r1, &root)
                    .unwrap();
            }
        }
    }
}

/// A proof from one algorithm never verifies under another.
#[test]
fn algorithms_never_mix() {
    let log = build(HashAlg::Blake3, 37);
    let root = log.root();
    let p = log.inclusion_proof(11, 37).unwrap();
    for alg in [HashAlg::Sha3_256, HashAlg::Sha256] {
        let leaf = alg.leaf_hash(&11u64.to_le_bytes());
        assert!(p.verify(alg, &leaf, &root).is_err());
    }
}
