//! Batch (multi-leaf) inclusion proofs for RFC 9162 trees.
//!
//! A batch proof shows that leaves at several indexes are in a tree of a
//! given size, with every hash shared by their paths sent and computed
//! once. It follows the recursive definition of the tree (RFC 9162 §2.1.1:
//! `MTH(D[lo:hi]) = H(0x01 ‖ MTH(D[lo:lo+k]) ‖ MTH(D[lo+k:hi]))`, `k` the
//! largest power of two below `hi - lo`): walking from the root, a subtree
//! holding none of the proven leaves contributes its hash from the proof, a
//! subtree holding some is recomputed from its two halves, a proven leaf
//! contributes its leaf hash. The proof is the list of those untouched
//! subtree hashes in depth-first, left-to-right order, nothing else; a
//! proof with a hash too many or too few is refused.
//!
//! For `m` leaves spread over a tree of `n`, the proof holds at most
//! `m · ⌈log2 n⌉` hashes and the verifier computes one node hash per
//! internal node on the union of the paths (for 1,000 leaves spread evenly
//! over 100,000: about 8 per leaf instead of 17 with separate proofs).

use medledger_chain::{Hash, HashAlg, MerkleLog, NodeStore};

use crate::error::{Error, Result};

/// Largest tree size a batch proof is built or checked for (as the log's).
const MAX_SIZE: u64 = 1 << 62;

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

fn bad(reason: &'static str) -> Error {
    Error::BadBatchProof { reason }
}

/// Checks that `indexes` is non-empty, strictly ascending and below `size`.
fn check_indexes(indexes: &[u64], size: u64) -> Result<()> {
    if indexes.is_empty() || size > MAX_SIZE {
        return Err(bad(
            "needs at least one index in a tree of at most 2^62 leaves",
        ));
    }
    let ascending = indexes.windows(2).all(|w| matches!(w, [a, b] if a < b));
    if !ascending || indexes.last().is_some_and(|&l| l >= size) {
        return Err(bad(
            "indexes are not strictly ascending below the tree size",
        ));
    }
    Ok(())
}

/// Builds the batch proof of `indexes` (strictly ascending) in the tree of
/// `size` leaves of `tree`.
pub fn prove<S: NodeStore>(tree: &MerkleLog<S>, indexes: &[u64], size: u64) -> Result<Vec<Hash>> {
    check_indexes(indexes, size)?;
    // Every untouched subtree is the sibling of a node on some proven
    // leaf's path, so its hash is in that leaf's RFC 9162 inclusion path
    // (which lists siblings from the leaf up).
    let paths = indexes
        .iter()
        .map(|&i| Ok(tree.inclusion_proof(i, size)?.path))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    collect(0, size, indexes, &paths, 0, &mut out)?;
    Ok(out)
}

/// The sibling at `depth` (0 = the root's children) on `path`.
fn sibling(path: Option<&Vec<Hash>>, depth: usize) -> Result<Hash> {
    path.and_then(|p| p.len().checked_sub(depth + 1).and_then(|at| p.get(at)))
        .copied()
        .ok_or(bad("an inclusion path is shorter than the tree"))
}

fn collect(
    lo: u64,
    hi: u64,
    idx: &[u64],
    paths: &[Vec<Hash>],
    depth: usize,
    out: &mut Vec<Hash>,
) -> Result<()> {
    if hi - lo <= 1 {
        return Ok(());
    }
    let mid = lo + split(hi - lo);
    let cut = idx.partition_point(|&i| i < mid);
    let (l, r) = idx.split_at(cut);
    let (pl, pr) = paths.split_at(cut);
    if l.is_empty() {
        out.push(sibling(pr.first(), depth)?);
    } else {
        collect(lo, mid, l, pl, depth + 1, out)?;
    }
    if r.is_empty() {
        out.push(sibling(pl.first(), depth)?);
    } else {
        collect(mid, hi, r, pr, depth + 1, out)?;
    }
    Ok(())
}

/// What verifying a batch proof computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRoot {
    /// The root hash the proof and the leaves lead to.
    pub root: Hash,
    /// How many node hashes were computed on the way.
    pub node_hashes: u64,
}

/// Computes the root that leaf hashes `leaves` at `indexes` (strictly
/// ascending, below `size`) and `proof` lead to. Compare it with a signed
/// root; [`verify`] does both.
pub fn root(
    alg: HashAlg,
    size: u64,
    indexes: &[u64],
    leaves: &[Hash],
    proof: &[Hash],
) -> Result<BatchRoot> {
    let bytes: Vec<u8> = proof.iter().flat_map(|h| h.0).collect();
    root_of(alg, size, indexes, leaves, &bytes)
}

/// Checks that the leaves are in the tree of `size` with root `expected`.
pub fn verify(
    alg: HashAlg,
    size: u64,
    indexes: &[u64],
    leaves: &[Hash],
    proof: &[Hash],
    expected: &Hash,
) -> Result<BatchRoot> {
    check_root(root(alg, size, indexes, leaves, proof)?, expected)
}

/// [`verify`] with the proof hashes given as their concatenated bytes (as
/// an export carries them), read in place instead of copied into a vector.
/// Fails unless the length is a multiple of 32.
pub fn verify_concatenated(
    alg: HashAlg,
    size: u64,
    indexes: &[u64],
    leaves: &[Hash],
    proof: &[u8],
    expected: &Hash,
) -> Result<BatchRoot> {
    check_root(root_of(alg, size, indexes, leaves, proof)?, expected)
}

fn check_root(r: BatchRoot, expected: &Hash) -> Result<BatchRoot> {
    if r.root != *expected {
        return Err(bad("does not reproduce the root hash"));
    }
    Ok(r)
}

/// The root from a proof of hashes concatenated as bytes.
fn root_of(
    alg: HashAlg,
    size: u64,
    indexes: &[u64],
    leaves: &[Hash],
    proof: &[u8],
) -> Result<BatchRoot> {
    check_indexes(indexes, size)?;
    if leaves.len() != indexes.len() {
        return Err(bad("one leaf hash per index is needed"));
    }
    if !proof.len().is_multiple_of(HASH_LEN) {
        return Err(bad("proof length is not a multiple of 32"));
    }
    let mut walk = Walk {
        alg,
        proof,
        node_hashes: 0,
    };
    let root = walk.node(0, size, indexes, leaves)?;
    if !walk.proof.is_empty() {
        return Err(bad("proof has hashes left over"));
    }
    Ok(BatchRoot {
        root,
        node_hashes: walk.node_hashes,
    })
}

const HASH_LEN: usize = 32;

struct Walk<'a> {
    alg: HashAlg,
    /// The proof hashes not used yet, concatenated.
    proof: &'a [u8],
    node_hashes: u64,
}

fn too_few() -> Error {
    bad("proof has too few hashes")
}

/// A 32-byte chunk as a hash (`None` only for a short chunk).
fn hash_of(chunk: Option<&[u8]>) -> Result<Hash> {
    chunk.and_then(Hash::from_slice).ok_or_else(too_few)
}

impl<'a> Walk<'a> {
    /// The next `n` proof hashes, concatenated.
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let len = n.checked_mul(HASH_LEN).ok_or_else(too_few)?;
        let (head, rest) = self.proof.split_at_checked(len).ok_or_else(too_few)?;
        self.proof = rest;
        Ok(head)
    }

    /// `MTH(D[lo:hi])` for a range holding the (non-empty) `idx`.
    fn node(&mut self, lo: u64, hi: u64, idx: &[u64], leaves: &[Hash]) -> Result<Hash> {
        if let ([i], [leaf]) = (idx, leaves) {
            return self.path(lo, hi, *i, *leaf);
        }
        if hi - lo <= 1 {
            // `idx` is ascending and inside [lo, hi): it has one element,
            // handled above.
            return Err(bad("missing leaf hash"));
        }
        let mid = lo + split(hi - lo);
        let cut = idx.partition_point(|&i| i < mid);
        let (l, r) = idx.split_at(cut);
        let (ll, lr) = leaves.split_at(cut);
        let left = if l.is_empty() {
            hash_of(Some(self.take(1)?))?
        } else {
            self.node(lo, mid, l, ll)?
        };
        let right = if r.is_empty() {
            hash_of(Some(self.take(1)?))?
        } else {
            self.node(mid, hi, r, lr)?
        };
        self.node_hashes += 1;
        Ok(self.alg.node_hash(&left, &right))
    }

    /// [`Walk::node`] for a range holding one proven leaf `i`: its path,
    /// without recursion. Walking [`Walk::node`]'s order, the proof holds
    /// first the left siblings (where the path turns right) from the top
    /// down, then the right siblings (where it turns left) from the bottom
    /// up; the path is hashed from the bottom.
    fn path(&mut self, mut lo: u64, mut hi: u64, i: u64, leaf: Hash) -> Result<Hash> {
        // Bit d of `turns` is set when the path turns right at depth d.
        let (mut turns, mut depth, mut rights) = (0u64, 0u32, 0usize);
        while hi - lo > 1 && !(hi - lo).is_power_of_two() {
            let mid = lo + split(hi - lo);
            if i >= mid {
                turns |= 1 << depth;
                rights += 1;
                lo = mid;
            } else {
                hi = mid;
            }
            depth += 1;
        }
        // The rest is a perfect subtree of 2^m leaves: the path turns right
        // where the bits of the leaf's offset in it are set, top bit first.
        let m = (hi - lo).trailing_zeros();
        if m > 0 {
            let offset = i - lo;
            turns |= (offset.reverse_bits() >> (64 - m)) << depth;
            rights += offset.count_ones() as usize;
            depth += m;
        }
        let lefts = self.take(rights)?;
        let total = usize::try_from(depth).map_err(|_| too_few())?;
        let rights = self.take(total - rights)?;
        // Left siblings are read backwards, right siblings forwards.
        let mut lefts = lefts.chunks_exact(HASH_LEN).rev();
        let mut rights = rights.chunks_exact(HASH_LEN);
        let mut h = leaf;
        for d in (0..depth).rev() {
            h = if turns & (1 << d) != 0 {
                self.alg.node_hash(&hash_of(lefts.next())?, &h)
            } else {
                self.alg.node_hash(&h, &hash_of(rights.next())?)
            };
        }
        self.node_hashes += u64::from(depth);
        Ok(h)
    }
}

/// How many hashes a batch proof of `indexes` in a tree of `size` holds,
/// and how many node hashes verifying it computes (for cost estimates and
/// the benchmark's raw-hashing bound).
pub fn cost(indexes: &[u64], size: u64) -> Result<(u64, u64)> {
    check_indexes(indexes, size)?;
    fn walk(lo: u64, hi: u64, idx: &[u64], acc: &mut (u64, u64)) {
        if hi - lo <= 1 {
            return;
        }
        let mid = lo + split(hi - lo);
        let cut = idx.partition_point(|&i| i < mid);
        let (l, r) = idx.split_at(cut);
        acc.1 += 1;
        for (side, a, b) in [(l, lo, mid), (r, mid, hi)] {
            if side.is_empty() {
                acc.0 += 1;
            } else {
                walk(a, b, side, acc);
            }
        }
    }
    let mut acc = (0, 0);
    walk(0, size, indexes, &mut acc);
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(n: u64) -> MerkleLog {
        let mut t = MerkleLog::in_memory(HashAlg::Blake3);
        for i in 0..n {
            t.append(&i.to_be_bytes()).unwrap();
        }
        t
    }

    fn leaves(t: &MerkleLog, idx: &[u64]) -> Vec<Hash> {
        idx.iter().map(|&i| t.leaf_hash(i).unwrap()).collect()
    }

    #[test]
    fn single_leaf_equals_the_rfc_9162_path() {
        let t = tree(13);
        for i in 0..13 {
            // The same hashes, in depth-first order instead of bottom-up.
            let mut p = prove(&t, &[i], 13).unwrap();
            let mut rfc = t.inclusion_proof(i, 13).unwrap().path;
            p.sort_unstable_by_key(|h| h.0);
            rfc.sort_unstable_by_key(|h| h.0);
            assert_eq!(p, rfc, "leaf {i}");
        }
    }

    #[test]
    fn shared_nodes_are_sent_once() {
        let t = tree(8);
        // Leaves 0 and 1 share every node above them: one hash per level
        // above the pair, none between them.
        let p = prove(&t, &[0, 1], 8).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(cost(&[0, 1], 8).unwrap(), (2, 3));
        let all: Vec<u64> = (0..8).collect();
        assert!(prove(&t, &all, 8).unwrap().is_empty());
        let r = verify(HashAlg::Blake3, 8, &all, &leaves(&t, &all), &[], &t.root()).unwrap();
        assert_eq!(r.node_hashes, 7);
    }

    #[test]
    fn refuses_bad_index_sets() {
        let t = tree(5);
        for idx in [&[][..], &[2, 2], &[3, 1], &[5]] {
            assert!(prove(&t, idx, 5).is_err(), "{idx:?}");
            assert!(root(HashAlg::Blake3, 5, idx, &[], &[]).is_err());
        }
    }

    proptest! {
        #[test]
        fn round_trip_and_any_change_is_refused(
            n in 1u64..200,
            picks in proptest::collection::btree_set(0u64..200, 1..12),
            flip in any::<(usize, u8)>(),
        ) {
            let idx: Vec<u64> = picks.into_iter().filter(|&i| i < n).collect();
            prop_assume!(!idx.is_empty());
            let t = tree(n);
            let lv = leaves(&t, &idx);
            let proof = prove(&t, &idx, n).unwrap();
            let r = verify(HashAlg::Blake3, n, &idx, &lv, &proof, &t.root()).unwrap();
            prop_assert_eq!(cost(&idx, n).unwrap(), (proof.len() as u64, r.node_hashes));
            // The same proof read from its concatenated bytes.
            let bytes: Vec<u8> = proof.iter().flat_map(|h| h.0).collect();
            prop_assert_eq!(verify_concatenated(HashAlg::Blake3, n, &idx, &lv, &bytes, &t.root()).unwrap(), r);
            if !bytes.is_empty() {
                let mut b = bytes.clone();
                b[flip.0 % bytes.len()] ^= 1 << (flip.1 % 8);
                prop_assert!(verify_concatenated(HashAlg::Blake3, n, &idx, &lv, &b, &t.root()).is_err());
                prop_assert!(verify_concatenated(HashAlg::Blake3, n, &idx, &lv, &bytes[1..], &t.root()).is_err());
                prop_assert!(verify_concatenated(HashAlg::Blake3, n, &idx, &lv, &bytes[32..], &t.root()).is_err());
            }
            // A changed proof hash or leaf hash, or one hash more or less.
            if !proof.is_empty() {
                let mut p = proof.clone();
                p[flip.0 % proof.len()].0[usize::from(flip.1) % 32] ^= 1;
                prop_assert!(verify(HashAlg::Blake3, n, &idx, &lv, &p, &t.root()).is_err());
                prop_assert!(verify(HashAlg::Blake3, n, &idx, &lv, &proof[1..], &t.root()).is_err());
            }
            let mut l = lv.clone();
            l[flip.0 % lv.len()].0[0] ^= 1;
            prop_assert!(verify(HashAlg::Blake3, n, &idx, &l, &proof, &t.root()).is_err());
            let mut longer = proof.clone();
            longer.push(Hash([0; 32]));
            prop_assert!(verify(HashAlg::Blake3, n, &idx, &lv, &longer, &t.root()).is_err());
            // Claiming another position for the leaves.
            let shifted: Vec<u64> = idx.iter().map(|i| i + 1).collect();
            if shifted.last().is_some_and(|&l| l < n) {
                prop_assert!(verify(HashAlg::Blake3, n, &shifted, &lv, &proof, &t.root()).is_err());
            }
        }
    }
}
