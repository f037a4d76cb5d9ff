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

    // --- notes, checkpoints, witnesses, offline proofs ------------------
    /// A signed note, signature line, verifier key or private key string that
    /// is malformed.
    #[error("malformed note: {0}")]
    Note(#[from] crate::note::NoteError),
    /// Two configured verifiers share a key name and key ID, so a signature
    /// cannot be attributed.
    #[error("ambiguous key {name}+{key_id:08x}")]
    AmbiguousKey {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// A signature from a known key that does not verify; the whole note is
    /// rejected (signed-note "Signatures").
    #[error("invalid signature from {name}+{key_id:08x}")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// A note with no signature from any known key.
    #[error("note has no signature from a known key")]
    NoKnownSignature,
    /// A checkpoint carrying cosignatures but no valid signature of its log.
    #[error("checkpoint has no signature from the log's key")]
    MissingLogSignature,
    /// A cosignature timestamp above 2^63 - 1 (tlog-cosignature "Format").
    #[error("cosignature timestamp {timestamp} exceeds 2^63 - 1")]
    CosignatureTimestamp {
        /// The timestamp found or asked for.
        timestamp: u64,
    },
    /// A cosignature dated further ahead of the verifier's clock than the
    /// allowed skew ([`crate::Cosignature::verify_at`]).
    #[error(
        "cosignature by {name} is dated {timestamp}, more than {max_skew} s after now ({now})"
    )]
    CosignatureFromFuture {
        /// The cosigner's key name.
        name: String,
        /// The cosignature's timestamp (Unix seconds).
        timestamp: u64,
        /// The verifier's clock (Unix seconds).
        now: u64,
        /// The skew allowed (seconds).
        max_skew: u64,
    },
    /// A checkpoint body that is malformed or not of the expected log.
    #[error("bad checkpoint: {0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A checkpoint for an origin the witness or verifier does not know.
    #[error("unknown log origin {origin:?}")]
    UnknownLog {
        /// The origin line of the checkpoint.
        origin: String,
    },
    /// The old size of an add-checkpoint request is not the size the witness
    /// last cosigned (tlog-witness: "409 Conflict"); retry from `stored`.
    #[error("witness last cosigned size {stored}, request claims old size {claimed}")]
    WitnessSizeConflict {
        /// The size the witness holds for the log.
        stored: u64,
        /// The old size the request claimed.
        claimed: u64,
    },
    /// A checkpoint smaller than the one the witness already cosigned.
    #[error("rollback: checkpoint size {size} is below the cosigned size {stored}")]
    Rollback {
        /// The size the witness holds for the log.
        stored: u64,
        /// The size of the refused checkpoint.
        size: u64,
    },
    /// An old size above the checkpoint's size (tlog-witness: "400").
    #[error("old size {old} is above the checkpoint size {size}")]
    OldSizeAboveCheckpoint {
        /// The old size.
        old: u64,
        /// The checkpoint size.
        size: u64,
    },
    /// A consistency proof from the witness's state to the new checkpoint
    /// that does not verify (tlog-witness: "422").
    #[error("bad consistency proof from size {old} to {size}: {source}")]
    BadConsistencyProof {
        /// The old size.
        old: u64,
        /// The new size.
        size: u64,
        /// Why verification failed.
        source: Box<Error>,
    },
    /// The witness state for a log changed while a checkpoint was checked
    /// (the compare-and-swap lost); nothing was cosigned, retry.
    #[error("witness state for {origin:?} changed concurrently")]
    WitnessStateChanged {
        /// The log's origin.
        origin: String,
    },
    /// The witness state store failed.
    #[error("witness state store failed: {0}")]
    WitnessStore(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A checkpoint of size zero whose root is not the empty tree's.
    #[error("a checkpoint of size 0 must carry the empty tree's root")]
    EmptyTreeRoot,
    /// An add-checkpoint request body that is malformed (tlog-witness: "400").
    #[error("malformed add-checkpoint request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer valid cosignatures from distinct named witnesses than the
    /// policy's quorum.
    #[error("{got} witness cosignatures where the policy needs {needed}")]
    QuorumNotMet {
        /// The quorum.
        needed: usize,
        /// Distinct witnesses whose cosignature verified.
        got: usize,
    },
    /// A signature line from a key the policy does not know, refused
    /// because the policy is strict ([`crate::Policy::strict`]).
    #[error("signature line {line} is from {name}+{key_id:08x}, a key outside the strict policy")]
    UnknownSigner {
        /// Zero-based position of the line in the note's signature block.
        line: usize,
        /// The key name the line claims.
        name: String,
        /// The key ID the line claims.
        key_id: u32,
    },
    /// A verification policy that can never be met or mixes key types.
    #[error("invalid policy: {reason}")]
    InvalidPolicy {
        /// What is wrong.
        reason: &'static str,
    },
    /// A tlog-proof file that is malformed.
    #[error("malformed tlog proof: {0}")]
    TlogProof(#[from] crate::tlog_proof::TlogProofError),
    /// Split-view evidence that does not prove two conflicting views.
    #[error("not split-view evidence: {reason}")]
    NotSplitView {
        /// Which check failed.
        reason: &'static str,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
