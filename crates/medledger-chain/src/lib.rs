//! Tamper-evident history for medledger: an RFC 9162 Merkle log, inclusion
//! and consistency proofs, signed checkpoints chained like blocks, and
//! witness cosigning in the C2SP formats.
//!
//! # Example
//!
//! ```
//! use medledger_chain::{HashAlg, MerkleLog, verify_consistency};
//!
//! let mut log = MerkleLog::in_memory(HashAlg::Blake3);
//! log.append(b"first entry")?;
//! let old_root = log.root();
//! log.append(b"second entry")?;
//! log.append(b"third entry")?;
//!
//! // A light client holding only two roots checks that the log only grew.
//! let proof = log.consistency_proof(1, 3)?;
//! verify_consistency(HashAlg::Blake3, 1, 3, &old_root, &log.root(), &proof.path)?;
//! # Ok::<(), medledger_chain::Error>(())
//! ```
//!
//! # Security notes
//!
//! - The hash algorithm is part of a log's identity. Never verify a proof
//!   with an algorithm other than the one the log's checkpoints name.
//! - A root or proof means nothing until it is tied to a checkpoint signed by
//!   the log and cosigned by enough independent witnesses.
//! - Every parser in this crate is strict and bounded; malformed input is a
//!   typed [`Error`], never a panic.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod error;
pub mod hash;
pub mod node_store;
pub mod proof;
pub mod tree;

pub mod checkpoint;
pub mod cosignature;
pub mod note;
mod note_key;
pub mod policy;
pub mod split_view;
pub mod tlog_proof;
pub mod witness;

pub use error::{Error, Result};
pub use hash::{Hash, HashAlg, HASH_LEN};
pub use node_store::{MemoryNodeStore, NodeId, NodeStore};
pub use proof::{
    root_from_inclusion, verify_consistency, verify_inclusion, ConsistencyProof, InclusionProof,
};
pub use tree::MerkleLog;

pub use checkpoint::{Checkpoint, LogKey, SignedCheckpoint};
pub use cosignature::{Cosignature, CosignatureSigner, DEFAULT_MAX_FUTURE_SKEW};
pub use note::{Ed25519Signer, Note, NoteSignature, NoteSigner, NoteVerifier};
pub use policy::{Policy, VerifiedCheckpoint};
pub use split_view::SplitViewEvidence;
pub use tlog_proof::TlogProof;
pub use witness::{MemoryWitnessStateStore, Witness, WitnessState, WitnessStateStore};
