//! Where a log keeps the hashes of its complete subtrees.
//!
//! A tree of `n` leaves has, for every level `l`, `n >> l` complete subtrees
//! of `2^l` leaves. Their hashes never change once computed, so they are
//! stored append-only, in the order [`crate::MerkleLog::append`] computes
//! them: appending leaf `i` stores its leaf hash, then one node for each
//! trailing one bit of `i`. This is the *stored-hash order* of Go's
//! `golang.org/x/mod/sumdb/tlog`; [`NodeId::stored_index`] maps a node to its
//! position in it, so a backend may keep one flat append-only array. The
//! nodes of level `l` are also exactly what C2SP tlog-tiles serves, so a
//! backend can lay them out as tiles instead.
//!
//! With every complete subtree stored, any root, inclusion proof or
//! consistency proof for any past size costs `O(log n)` node reads.

use crate::error::{Error, Result};
use crate::hash::Hash;

/// Identifies one complete subtree: `2^level` leaves starting at leaf
/// `index << level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 for a leaf hash). At most 63.
    pub level: u8,
    /// Position within the level.
    pub index: u64,
}

impl NodeId {
    /// The node at `level`, `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// Position of this node in stored-hash order (see the module docs).
    ///
    /// Returns `None` if the position does not fit in a `u64`.
    pub fn stored_index(self) -> Option<u64> {
        // The node is completed when leaf ((index + 1) << level) - 1 is
        // appended. Before that leaf, (index << level) + ... leaves were
        // appended; n leaves store 2n - popcount(n) hashes.
        let level = u32::from(self.level);
        if level > 62 {
            return None;
        }
        let first_leaf = self.index.checked_shl(level)?;
        if first_leaf >> level != self.index {
            return None;
        }
        let last_leaf = first_leaf.checked_add((1u64 << level) - 1)?;
        // Hashes stored before the last leaf's own group.
        let before = stored_count(last_leaf)?;
        // Within that leaf's group: the leaf hash, then one per level.
        before.checked_add(u64::from(self.level))
    }

    /// The leaves this node covers, as a half-open range; `None` for a node
    /// that cannot exist (its leaves would not fit in a `u64`).
    pub fn leaves(self) -> Option<core::ops::Range<u64>> {
        let width = 1u64.checked_shl(u32::from(self.level))?;
        let start = self.index.checked_mul(width)?;
        Some(start..start.checked_add(width)?)
    }
}

/// Number of hashes stored for a tree of `leaves` leaves: `2n - popcount(n)`.
pub fn stored_count(leaves: u64) -> Option<u64> {
    leaves
        .checked_mul(2)
        .map(|d| d - u64::from(leaves.count_ones()))
}

/// The number of leaves whose hashes make up exactly `stored` stored hashes,
/// or `None` if `stored` falls inside a leaf's group (a torn write).
pub fn leaves_for_stored(stored: u64) -> Option<u64> {
    // stored = 2n - popcount(n), so stored/2 <= n <= stored/2 + 32, and
    // stored_count is strictly increasing: a binary search over 33 values.
    let (mut lo, mut hi) = (stored / 2, stored / 2 + 32);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match stored_count(mid) {
            Some(c) if c < stored => lo = mid + 1,
            _ => hi = mid,
        }
    }
    (stored_count(lo) == Some(stored)).then_some(lo)
}

/// Storage for the hashes of complete subtrees.
///
/// Implementations: [`MemoryNodeStore`] here; durable ones in
/// `medledger-store` (files) and `medledger-postgres`. Nothing in this trait
/// assumes a local file.
///
/// Contract: [`NodeStore::append`] receives nodes in stored-hash order and
/// never a node twice. A store reports how many leaves' worth of nodes it
/// holds through [`NodeStore::leaf_count`]; a store whose last append was
/// interrupted must either hold a whole number of leaves or report
/// [`Error::NodeStoreTorn`] so the caller can recompute the missing nodes.
pub trait NodeStore {
    /// How many leaves' nodes are stored (the tree size the store can serve).
    fn leaf_count(&self) -> Result<u64>;

    /// Reads the node hashes `ids`, in order. A node that was never stored is
    /// [`Error::MissingNode`].
    fn get(&self, ids: &[NodeId]) -> Result<Vec<Hash>>;

    /// Appends the nodes computed by appending `leaves` leaves, in
    /// stored-hash order: exactly `stored_count(old + leaves) -
    /// stored_count(old)` hashes.
    fn append(&mut self, leaves: u64, nodes: &[(NodeId, Hash)]) -> Result<()>;
}

/// A [`NodeStore`] in memory: one flat vector in stored-hash order, the same
/// layout a durable backend appends to a file.
#[derive(Clone, Debug, Default)]
pub struct MemoryNodeStore {
    hashes: Vec<Hash>,
    leaves: u64,
}

impl MemoryNodeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl NodeStore for MemoryNodeStore {
    fn leaf_count(&self) -> Result<u64> {
        Ok(self.leaves)
    }

    fn get(&self, ids: &[NodeId]) -> Result<Vec<Hash>> {
        ids.iter()
            .map(|id| {
                id.stored_index()
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|_| id.leaves().is_some_and(|r| r.end <= self.leaves))
                    .and_then(|i| self.hashes.get(i))
                    .copied()
                    .ok_or(Error::MissingNode {
                        level: id.level,
                        index: id.index,
                    })
            })
            .collect()
    }

    fn append(&mut self, leaves: u64, nodes: &[(NodeId, Hash)]) -> Result<()> {
        self.hashes.extend(nodes.iter().map(|(_, h)| *h));
        self.leaves += leaves;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_of_impossible_nodes_are_none() {
        assert_eq!(NodeId::new(2, 3).leaves(), Some(12..16));
        assert_eq!(NodeId::new(64, 0).leaves(), None);
        assert_eq!(NodeId::new(255, 1).leaves(), None);
        assert_eq!(NodeId::new(1, u64::MAX).leaves(), None);
        assert_eq!(NodeId::new(0, u64::MAX).leaves(), None);
        let store = MemoryNodeStore::new();
        assert!(matches!(
            store.get(&[NodeId::new(200, 7)]),
            Err(Error::MissingNode {
                level: 200,
                index: 7
            })
        ));
    }

    #[test]
    fn stored_index_matches_append_order() {
        // Enumerate nodes in append order and check the formula.
        let mut pos = 0u64;
        for leaf in 0u64..2000 {
            let mut level = 0u8;
            let mut idx = leaf;
            loop {
                assert_eq!(NodeId::new(level, idx).stored_index(), Some(pos));
                pos += 1;
                if idx & 1 == 0 {
                    break;
                }
                idx >>= 1;
                level += 1;
            }
            assert_eq!(stored_count(leaf + 1), Some(pos));
        }
    }

    #[test]
    fn leaves_for_stored_inverts_stored_count_and_detects_torn_groups() {
        let mut last = 0;
        for n in 0u64..5000 {
            let c = stored_count(n).unwrap_or(0);
            assert_eq!(leaves_for_stored(c), Some(n));
            for torn in last + 1..c {
                assert_eq!(leaves_for_stored(torn), None, "{torn}");
            }
            last = c;
        }
        let big = 1u64 << 40;
        assert_eq!(leaves_for_stored(stored_count(big).unwrap_or(0)), Some(big));
    }
}
