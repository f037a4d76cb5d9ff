//! The crate's one error type.

/// Everything that can go wrong in this crate. Each variant names what failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- tree and proofs -------------------------------------------------
    /// A leaf index at or beyond the tree size it was asked about.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size it was asked against.
        size: u64,
    },
    /// A tree size larger than the log has reached.
    #[error("tree size {requested} is beyond the log's size {size}")]
    SizeOutOfRange {
        /// The size asked for.
        requested: u64,
        /// The log's current size.
        size: u64,
    },
    /// A consistency proof asked for with sizes other than `0 < old <= new`.
    #[error("consistency proof needs 0 < old size <= new size, got {old} and {new}")]
    InvalidSizes {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// A proof with the wrong number of hashes for its index and sizes.
    #[error("proof has {got} hashes where {expected} are needed")]
    ProofLength {
        /// How many the sizes call for.
        expected: usize,
        /// How many the proof holds.
        got: usize,
    },
    /// An inclusion proof that does not lead to the expected root.
    #[error("inclusion proof does not reproduce the root hash")]
    InclusionRootMismatch,
    /// A consistency proof that does not reproduce the old root.
    #[error("consistency proof does not reproduce the old root hash")]
    ConsistencyOldRootMismatch,
    /// A consistency proof that does not reproduce the new root.
    #[error("consistency proof does not reproduce the new root hash")]
    ConsistencyNewRootMismatch,
    /// A consistency proof where none may be: equal sizes must come with an
    /// empty proof and equal roots.
    #[error("equal tree sizes need an empty proof and equal roots")]
    ConsistencyEqualSizes,
    /// The log cannot grow further (2^63 leaves).
    #[error("the log is full")]
    LogFull,
    /// A node the tree needs is not in the node store.
    #[error("node store has no node at level {level}, index {index}")]
    MissingNode {
        /// Height of the node above the leaves.
        level: u8,
        /// Index of the node within its level.
        index: u64,
    },
    /// The node store's backing storage failed.
    #[error("node store failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The node store holds nodes for a different number of leaves than the
    /// tree expects (for example after a partial write).
    #[error("node store holds {stored} node hashes, which is not a whole number of leaves")]
    NodeStoreTorn {
        /// How many node hashes are stored.
        stored: u64,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
