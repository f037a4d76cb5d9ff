//! Inclusion and consistency proofs, and their standalone verification
//! (RFC 9162 §2.1.3 and §2.1.4).
//!
//! Verification needs nothing but the proof, the hashes and the sizes: a light
//! client checks proofs without any storage.

use crate::error::{Error, Result};
use crate::hash::{Hash, HashAlg};

/// Proof that the leaf at `index` is in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1 `PATH`), ordered from the leaf's sibling up to a child
/// of the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Zero-based index of the leaf.
    pub index: u64,
    /// Size of the tree the proof is for.
    pub size: u64,
    /// The audit path.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Checks that `leaf_hash` is at `self.index` in the tree of `self.size`
    /// leaves whose root is `root`.
    pub fn verify(&self, alg: HashAlg, leaf_hash: &Hash, root: &Hash) -> Result<()> {
        verify_inclusion(alg, self.index, self.size, leaf_hash, &self.path, root)
    }
}

/// Proof that the tree of `old_size` leaves is a prefix of the tree of
/// `new_size` leaves (RFC 9162 §2.1.4.1 `PROOF`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// Size of the older tree.
    pub old_size: u64,
    /// Size of the newer tree.
    pub new_size: u64,
    /// The consistency path.
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks that `old_root` (of `self.old_size` leaves) and `new_root` (of
    /// `self.new_size` leaves) belong to one append-only log.
    pub fn verify(&self, alg: HashAlg, old_root: &Hash, new_root: &Hash) -> Result<()> {
        verify_consistency(
            alg,
            self.old_size,
            self.new_size,
            old_root,
            new_root,
            &self.path,
        )
    }
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize> {
    if index >= size {
        return Err(Error::IndexOutOfRange { index, size });
    }
    // The path has one hash per level where the leaf's ancestor has a
    // sibling: the bit length of `index ^ (size - 1)` for the levels where
    // both subtrees exist, plus the levels above them on the right edge.
    let last = size - 1;
    let inner = bit_len(index ^ last);
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    Ok((inner + border) as usize)
}

fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// Recomputes the root from an inclusion proof (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion(
    alg: HashAlg,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    path: &[Hash],
) -> Result<Hash> {
    let expected = inclusion_proof_len(index, size)?;
    if path.len() != expected {
        return Err(Error::ProofLength {
            expected,
            got: path.len(),
        });
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf_hash;
    for p in path {
        // Lengths were checked above, so `snode` cannot reach zero early;
        // the check stays as the RFC's defence in depth.
        if snode == 0 {
            return Err(Error::ProofLength {
                expected,
                got: path.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = alg.node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = alg.node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::ProofLength {
            expected,
            got: path.len(),
        });
    }
    Ok(r)
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    alg: HashAlg,
    index: u64,
    size: u64,
    leaf_hash: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<()> {
    let r = root_from_inclusion(alg, index, size, leaf_hash, path)?;
    if &r == root {
        Ok(())
    } else {
        Err(Error::InclusionRootMismatch)
    }
}

/// Number of hashes in a consistency proof from `old` to `new` leaves.
pub fn consistency_proof_len(old: u64, new: u64) -> Result<usize> {
    if old == 0 || old > new {
        return Err(Error::InvalidSizes { old, new });
    }
    if old == new {
        return Ok(0);
    }
    // RFC 9162 §2.1.4.1: below the largest complete subtree containing the
    // old tree's last leaf, the proof is an inclusion-style path.
    let shift = old.trailing_zeros();
    let inner = bit_len((old - 1) ^ (new - 1)) - shift;
    let border = (old - 1)
        .checked_shr(inner + shift)
        .unwrap_or(0)
        .count_ones();
    let start = u32::from(!old.is_power_of_two());
    Ok((start + inner + border) as usize)
}

/// Recomputes both roots from a consistency proof (RFC 9162 §2.1.4.2).
/// Returns `(old_root, new_root)`. Requires `0 < old < new`.
pub fn roots_from_consistency(
    alg: HashAlg,
    old: u64,
    new: u64,
    old_root: &Hash,
    path: &[Hash],
) -> Result<(Hash, Hash)> {
    if old == 0 || old >= new {
        return Err(Error::InvalidSizes { old, new });
    }
    let expected = consistency_proof_len(old, new)?;
    if path.len() != expected {
        return Err(Error::ProofLength {
            expected,
            got: path.len(),
        });
    }
    let mut it = path.iter();
    // Step 2: if old is a power of two, the old root is the first hash.
    let seed = if old.is_power_of_two() {
        *old_root
    } else {
        match it.next() {
            Some(h) => *h,
            None => {
                return Err(Error::ProofLength {
                    expected,
                    got: path.len(),
                })
            }
        }
    };
    let mut fnode = old - 1;
    let mut snode = new - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in it {
        if snode == 0 {
            return Err(Error::ProofLength {
                expected,
                got: path.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = alg.node_hash(c, &fr);
            sr = alg.node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = alg.node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(Error::ProofLength {
            expected,
            got: path.len(),
        });
    }
    Ok((fr, sr))
}

/// Verifies a consistency proof between a tree of `old` leaves with root
/// `old_root` and one of `new` leaves with root `new_root`
/// (RFC 9162 §2.1.4.2).
///
/// Edge cases, matching the transparency-dev verifier: `old == new` needs an
/// empty proof and equal roots; `old == 0` needs an empty proof and the empty
/// tree's root; `old > new` is always an error.
pub fn verify_consistency(
    alg: HashAlg,
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<()> {
    if old > new {
        return Err(Error::InvalidSizes { old, new });
    }
    if old == new || old == 0 {
        let roots_ok = if old == 0 {
            *old_root == alg.empty_root() && (new > 0 || old_root == new_root)
        } else {
            old_root == new_root
        };
        return if path.is_empty() && roots_ok {
            Ok(())
        } else {
            Err(Error::ConsistencyEqualSizes)
        };
    }
    let (fr, sr) = roots_from_consistency(alg, old, new, old_root, path)?;
    if &fr != old_root {
        return Err(Error::ConsistencyOldRootMismatch);
    }
    if &sr != new_root {
        return Err(Error::ConsistencyNewRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn huge_sizes_are_errors_not_overflows() {
        // Found by the property tests: a size with bit 63 set once shifted
        // an index by 64 bits.
        let leaf = Hash([1; 32]);
        // Leaf 0 (and the one-leaf tree) sit under a complete left subtree
        // of 2^63 leaves (63 hashes), plus one right sibling unless the tree
        // is exactly that subtree.
        for (size, len) in [(u64::MAX, 64), (1 << 63, 63), ((1 << 63) + 5, 64)] {
            assert_eq!(inclusion_proof_len(0, size).unwrap(), len);
            assert!(verify_inclusion(HashAlg::Sha256, 3, size, &leaf, &[], &leaf).is_err());
            assert_eq!(consistency_proof_len(1, size).unwrap(), len);
            assert!(verify_consistency(HashAlg::Sha256, 3, size, &leaf, &leaf, &[leaf]).is_err());
        }
    }

    #[test]
    fn proof_lengths_of_known_shapes() {
        assert_eq!(inclusion_proof_len(0, 1).unwrap(), 0);
        assert_eq!(inclusion_proof_len(5, 8).unwrap(), 3);
        assert_eq!(inclusion_proof_len(6, 7).unwrap(), 2);
        assert_eq!(consistency_proof_len(4, 8).unwrap(), 1);
        // RFC 9162 §2.1.4.1: leaves 2 and 3, MTH(D[0:2]) and MTH(D[4:7]).
        assert_eq!(consistency_proof_len(3, 7).unwrap(), 4);
        assert!(matches!(
            consistency_proof_len(0, 8),
            Err(Error::InvalidSizes { old: 0, new: 8 })
        ));
    }

    #[test]
    fn empty_and_equal_size_rules() {
        let alg = HashAlg::Blake3;
        let r = Hash([9; 32]);
        assert!(verify_consistency(alg, 0, 5, &alg.empty_root(), &r, &[]).is_ok());
        assert!(verify_consistency(alg, 0, 5, &r, &r, &[]).is_err());
        assert!(verify_consistency(alg, 0, 5, &alg.empty_root(), &r, &[r]).is_err());
        assert!(verify_consistency(alg, 5, 5, &r, &r, &[]).is_ok());
        assert!(verify_consistency(alg, 5, 5, &r, &Hash([8; 32]), &[]).is_err());
        assert!(verify_consistency(alg, 5, 5, &r, &r, &[r]).is_err());
    }

    proptest! {
        /// Verifiers see untrusted sizes, indexes and paths: none may panic,
        /// and random paths never verify.
        #[test]
        fn verifiers_never_panic_and_reject_random_paths(
            index in any::<u64>(),
            size in any::<u64>(),
            old in any::<u64>(),
            path in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
        ) {
            let path: Vec<Hash> = path.into_iter().map(Hash).collect();
            let (a, b) = (Hash([3; 32]), Hash([4; 32]));
            prop_assert!(verify_inclusion(HashAlg::Blake3, index, size, &a, &path, &b).is_err());
            prop_assert!(verify_consistency(HashAlg::Blake3, old, size, &a, &b, &path).is_err());
        }
    }
}
