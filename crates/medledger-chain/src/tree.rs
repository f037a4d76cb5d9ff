//! The append-only Merkle log (RFC 9162 §2.1).

use core::ops::Range;

use crate::error::{Error, Result};
use crate::hash::{Hash, HashAlg};
use crate::node_store::{MemoryNodeStore, NodeId, NodeStore};
use crate::proof::{ConsistencyProof, InclusionProof};

/// Largest tree this crate builds: 2^63 leaves keeps every size, index and
/// stored-hash position in a `u64`.
pub const MAX_LEAVES: u64 = 1 << 62;

/// An append-only Merkle log over a [`NodeStore`].
///
/// Appending costs amortized O(1) hashing: the log keeps the right-edge
/// frontier (the roots of the complete subtrees that make up the tree) and
/// never rebuilds. Every complete subtree's hash goes to the node store, so a
/// root or proof for any past size costs O(log n) node reads and no subtree
/// recomputation.
///
/// ```
/// use medledger_chain::{HashAlg, MerkleLog};
///
/// let mut log = MerkleLog::in_memory(HashAlg::Sha256);
/// for entry in [&b"a"[..], b"b", b"c"] {
///     log.append(entry)?;
/// }
/// let root = log.root();
/// let proof = log.inclusion_proof(1, 3)?;
/// proof.verify(HashAlg::Sha256, &HashAlg::Sha256.leaf_hash(b"b"), &root)?;
/// # Ok::<(), medledger_chain::Error>(())
/// ```
#[derive(Debug)]
pub struct MerkleLog<S: NodeStore = MemoryNodeStore> {
    alg: HashAlg,
    store: S,
    size: u64,
    /// Roots of the complete subtrees of the current tree, largest first.
    frontier: Vec<Hash>,
    /// Reused buffer of the nodes one append computes.
    pending: Vec<(NodeId, Hash)>,
}

impl MerkleLog<MemoryNodeStore> {
    /// An empty log whose nodes live in memory.
    pub fn in_memory(alg: HashAlg) -> Self {
        MerkleLog {
            alg,
            store: MemoryNodeStore::new(),
            size: 0,
            frontier: Vec::new(),
            pending: Vec::new(),
        }
    }
}

impl<S: NodeStore> MerkleLog<S> {
    /// Opens the log whose nodes are in `store` (empty or not): reads the
    /// O(log n) frontier nodes, nothing else.
    pub fn open(alg: HashAlg, store: S) -> Result<Self> {
        let size = store.leaf_count()?;
        if size > MAX_LEAVES {
            return Err(Error::LogFull);
        }
        let ids = perfect_subtrees(0, size);
        let frontier = store.get(&ids)?;
        Ok(MerkleLog {
            alg,
            store,
            size,
            frontier,
            pending: Vec::new(),
        })
    }

    /// The log's hash algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The node store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The node store, mutably (for backends that need to flush).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives back the node store.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Appends an entry; returns its index.
    pub fn append(&mut self, data: &[u8]) -> Result<u64> {
        self.append_leaf_hash(self.alg.leaf_hash(data))
    }

    /// Appends a leaf whose RFC 9162 leaf hash the caller computed.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> Result<u64> {
        self.pending.clear();
        let index = self.push_leaf(leaf)?;
        self.store.append(1, &self.pending)?;
        Ok(index)
    }

    /// Appends many entries with one call into the node store (one write
    /// for durable stores). Returns the range of their indexes.
    pub fn append_batch<I, D>(&mut self, entries: I) -> Result<Range<u64>>
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        let start = self.size;
        self.pending.clear();
        let saved = self.frontier.clone();
        for e in entries {
            let leaf = self.alg.leaf_hash(e.as_ref());
            if let Err(err) = self.push_leaf(leaf) {
                self.size = start;
                self.frontier = saved;
                return Err(err);
            }
        }
        if let Err(err) = self.store.append(self.size - start, &self.pending) {
            self.size = start;
            self.frontier = saved;
            return Err(err);
        }
        Ok(start..self.size)
    }

    /// Adds a leaf to the frontier and records the nodes it completes in
    /// `pending`.
    fn push_leaf(&mut self, leaf: Hash) -> Result<u64> {
        let index = self.size;
        if index >= MAX_LEAVES {
            return Err(Error::LogFull);
        }
        let mut h = leaf;
        let mut level = 0u8;
        let mut idx = index;
        self.pending.push((NodeId::new(0, idx), h));
        while idx & 1 == 1 {
            // The frontier holds the left sibling: a complete subtree of the
            // same height, because `idx` is odd.
            let Some(left) = self.frontier.pop() else {
                return Err(Error::MissingNode {
                    level,
                    index: idx - 1,
                });
            };
            h = self.alg.node_hash(&left, &h);
            idx >>= 1;
            level += 1;
            self.pending.push((NodeId::new(level, idx), h));
        }
        self.frontier.push(h);
        self.size = index + 1;
        Ok(index)
    }

    /// Root of the current tree.
    pub fn root(&self) -> Hash {
        fold_right(self.alg, &self.frontier)
    }

    /// Root of the tree when it had `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        self.check_size(size)?;
        if size == self.size {
            return Ok(self.root());
        }
        let ids = perfect_subtrees(0, size);
        let nodes = self.store.get(&ids)?;
        Ok(fold_right(self.alg, &nodes))
    }

    /// The leaf hash at `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash> {
        if index >= self.size {
            return Err(Error::IndexOutOfRange {
                index,
                size: self.size,
            });
        }
        let nodes = self.store.get(&[NodeId::new(0, index)])?;
        nodes
            .first()
            .copied()
            .ok_or(Error::MissingNode { level: 0, index })
    }

    /// Inclusion proof for the leaf at `index` in the tree of `size` leaves
    /// (RFC 9162 §2.1.3.1): O(log n) node reads in one store call.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof> {
        self.check_size(size)?;
        if index >= size {
            return Err(Error::IndexOutOfRange { index, size });
        }
        let ranges = inclusion_ranges(index, size);
        let path = self.range_hashes(&ranges)?;
        Ok(InclusionProof { index, size, path })
    }

    /// Consistency proof between the trees of `old` and `new` leaves
    /// (RFC 9162 §2.1.4.1), for `0 < old <= new <= size`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof> {
        if old == 0 || old > new {
            return Err(Error::InvalidSizes { old, new });
        }
        self.check_size(new)?;
        let ranges = consistency_ranges(old, new);
        let path = self.range_hashes(&ranges)?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            path,
        })
    }

    fn check_size(&self, size: u64) -> Result<()> {
        if size > self.size {
            Err(Error::SizeOutOfRange {
                requested: size,
                size: self.size,
            })
        } else {
            Ok(())
        }
    }

    /// The Merkle tree hash of each leaf range, reading every stored node
    /// they need in one call.
    fn range_hashes(&self, ranges: &[(u64, u64)]) -> Result<Vec<Hash>> {
        let mut ids = Vec::with_capacity(2 * ranges.len() + 64);
        let mut counts = Vec::with_capacity(ranges.len());
        for &(lo, hi) in ranges {
            let before = ids.len();
            push_perfect_subtrees(lo, hi, &mut ids);
            counts.push(ids.len() - before);
        }
        let nodes = self.store.get(&ids)?;
        if nodes.len() != ids.len() {
            return Err(Error::Storage(
                format!("node store returned {} of {} nodes", nodes.len(), ids.len()).into(),
            ));
        }
        let mut out = Vec::with_capacity(ranges.len());
        let mut rest = nodes.as_slice();
        for n in counts {
            let (these, tail) = rest.split_at(n.min(rest.len()));
            out.push(fold_right(self.alg, these));
            rest = tail;
        }
        Ok(out)
    }
}

/// Combines the roots of adjacent complete subtrees (largest first) into the
/// root of their union, as RFC 9162 §2.1.1 defines it: `node(a, node(b, c))`.
fn fold_right(alg: HashAlg, nodes: &[Hash]) -> Hash {
    let mut it = nodes.iter().rev();
    let Some(last) = it.next() else {
        return alg.empty_root();
    };
    it.fold(*last, |acc, left| alg.node_hash(left, &acc))
}

/// The complete subtrees that make up leaves `lo..hi`, largest first.
///
/// Every range a proof needs starts at a multiple of a power of two no
/// smaller than its length, so its binary decomposition is aligned; the
/// greedy split below is that decomposition.
fn perfect_subtrees(lo: u64, hi: u64) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(64);
    push_perfect_subtrees(lo, hi, &mut out);
    out
}

/// [`perfect_subtrees`], appended to `out` (no allocation per range).
fn push_perfect_subtrees(lo: u64, hi: u64, out: &mut Vec<NodeId>) {
    let mut at = lo;
    while at < hi {
        let remaining = hi - at;
        let max_by_len = 63 - remaining.leading_zeros();
        let max_by_align = if at == 0 { 63 } else { at.trailing_zeros() };
        let level = max_by_len.min(max_by_align);
        // `level` <= 63, so the cast is lossless.
        out.push(NodeId::new(level as u8, at >> level));
        at += 1u64 << level;
    }
}

/// Largest power of two strictly below `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The leaf ranges whose hashes form `PATH(index, D[0:size])`, leaf's
/// sibling first (RFC 9162 §2.1.3.1).
fn inclusion_ranges(index: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
        }
    }
    out.reverse();
    out
}

/// The leaf ranges whose hashes form `PROOF(old, D[0:new])`
/// (RFC 9162 §2.1.4.1 `SUBPROOF(m, D[n], true)`).
fn consistency_ranges(old: u64, new: u64) -> Vec<(u64, u64)> {
    let mut outer = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0u64, new);
    let mut m = old;
    let mut complete = true;
    let mut first = None;
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                first = Some((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            outer.push((lo + k, hi));
            hi = lo + k;
        } else {
            outer.push((lo, lo + k));
            lo += k;
            m -= k;
            complete = false;
        }
    }
    first.into_iter().chain(outer.into_iter().rev()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::{consistency_proof_len, inclusion_proof_len};

    /// RFC 9162 §2.1.1 MTH, computed recursively from the leaves.
    fn mth(alg: HashAlg, leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => alg.empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                alg.node_hash(&mth(alg, &leaves[..k]), &mth(alg, &leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_recursive_definition_for_every_size() {
        for alg in HashAlg::ALL {
            let mut log = MerkleLog::in_memory(alg);
            let mut leaves = Vec::new();
            assert_eq!(log.root(), alg.empty_root());
            for i in 0u32..130 {
                let d = i.to_be_bytes();
                leaves.push(alg.leaf_hash(&d));
                log.append(&d).unwrap();
                assert_eq!(log.root(), mth(alg, &leaves), "size {}", i + 1);
            }
            for n in 0..=130u64 {
                assert_eq!(log.root_at(n).unwrap(), mth(alg, &leaves[..n as usize]));
            }
        }
    }

    #[test]
    fn proof_lengths_match_generated_paths() {
        let mut log = MerkleLog::in_memory(HashAlg::Blake3);
        for i in 0u32..70 {
            log.append(&i.to_le_bytes()).unwrap();
        }
        for n in 1..=70 {
            for m in 0..n {
                let p = log.inclusion_proof(m, n).unwrap();
                assert_eq!(p.path.len(), inclusion_proof_len(m, n).unwrap());
                let c = log.consistency_proof(m + 1, n).unwrap();
                assert_eq!(c.path.len(), consistency_proof_len(m + 1, n).unwrap());
            }
        }
    }

    #[test]
    fn reopening_a_store_restores_the_frontier() {
        let mut log = MerkleLog::in_memory(HashAlg::Sha256);
        log.append_batch((0u32..1000).map(|i| i.to_be_bytes()))
            .unwrap();
        let root = log.root();
        let store = log.into_store();
        let mut again = MerkleLog::open(HashAlg::Sha256, store).unwrap();
        assert_eq!(again.size(), 1000);
        assert_eq!(again.root(), root);
        again.append(b"x").unwrap();
        let p = again.consistency_proof(1000, 1001).unwrap();
        p.verify(HashAlg::Sha256, &root, &again.root()).unwrap();
    }

    #[test]
    fn batch_and_single_appends_store_the_same_nodes() {
        let mut a = MerkleLog::in_memory(HashAlg::Blake3);
        let mut b = MerkleLog::in_memory(HashAlg::Blake3);
        for i in 0u32..300 {
            a.append(&i.to_be_bytes()).unwrap();
        }
        b.append_batch((0u32..150).map(|i| i.to_be_bytes()))
            .unwrap();
        b.append_batch((150u32..300).map(|i| i.to_be_bytes()))
            .unwrap();
        assert_eq!(a.root(), b.root());
        let ids: Vec<NodeId> = (0..9u8)
            .flat_map(|l| (0..(300u64 >> l)).map(move |i| NodeId::new(l, i)))
            .collect();
        assert_eq!(a.store().get(&ids).unwrap(), b.store().get(&ids).unwrap());
    }

    #[test]
    fn requests_beyond_the_log_are_typed_errors() {
        let mut log = MerkleLog::in_memory(HashAlg::Blake3);
        log.append(b"a").unwrap();
        assert!(matches!(
            log.inclusion_proof(1, 1),
            Err(Error::IndexOutOfRange { index: 1, size: 1 })
        ));
        assert!(matches!(
            log.inclusion_proof(0, 2),
            Err(Error::SizeOutOfRange {
                requested: 2,
                size: 1
            })
        ));
        assert!(matches!(
            log.consistency_proof(0, 1),
            Err(Error::InvalidSizes { old: 0, new: 1 })
        ));
        assert!(matches!(
            log.consistency_proof(2, 1),
            Err(Error::InvalidSizes { old: 2, new: 1 })
        ));
        assert!(matches!(
            log.leaf_hash(5),
            Err(Error::IndexOutOfRange { .. })
        ));
        assert!(matches!(log.root_at(2), Err(Error::SizeOutOfRange { .. })));
    }
}
