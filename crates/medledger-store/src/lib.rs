//! Storage for medledger: the traits every backend implements, and the
//! crash-safe embedded default in one local directory.
//!
//! | trait | what it holds | embedded | in memory |
//! |---|---|---|---|
//! | [`EntryLog`] | the append-only entries (source of truth) | [`SegmentLog`] | [`MemoryLog`] |
//! | [`medledger_chain::NodeStore`] | Merkle subtree hashes | [`FileNodeStore`] | [`medledger_chain::MemoryNodeStore`] |
//! | [`BlobStore`] | record ciphertexts, streamed | [`DirBlobStore`] | [`MemoryBlobStore`] |
//! | [`StateStore`] | small mutable state (wrapped keys, indexes) | [`RedbStateStore`] | [`MemoryStateStore`] |
//!
//! No trait mentions a path, a file handle, mmap or redb, so a networked
//! backend (PostgreSQL) implements the same traits and runs the same
//! conformance suite (`conformance` feature).
//!
//! # Example
//!
//! ```
//! use medledger_store::{EmbeddedStore, EntryLog, StoreOptions};
//!
//! let dir = tempfile::tempdir().map_err(|e| medledger_store::Error::Io {
//!     op: "tempdir", path: "".into(), source: e })?;
//! let (store, report) = EmbeddedStore::open(dir.path(), StoreOptions::default())?;
//! assert!(report.created);
//! let mut tree = store.merkle_log()?;
//! for entry in [&b"grant"[..], b"read", b"revoke"] {
//!     let i = store.log().append(entry)?; // durable when it returns
//!     assert_eq!(tree.append(entry)?, i);
//! }
//! let root = tree.root();
//! drop((tree, store));
//!
//! let (store, report) = EmbeddedStore::open(dir.path(), StoreOptions::default())?;
//! assert_eq!(report.entries, 3);
//! assert_eq!(report.leaves_recomputed, 0);
//! assert_eq!(store.merkle_log()?.root(), root);
//! # Ok::<(), medledger_store::Error>(())
//! ```
//!
//! # Security notes
//!
//! - Durability: [`EntryLog::append`] returns only after `fdatasync` (and,
//!   for a new segment, a directory fsync). A crash never loses an
//!   acknowledged entry; a torn tail is cut and reported in [`OpenReport`];
//!   damage anywhere else is [`Error::SegmentCorrupt`] with file and offset,
//!   never skipped.
//! - Integrity against accidents, not adversaries: CRC-32 and BLAKE3 tags
//!   catch bit rot, torn writes and misplaced records. Tampering by someone
//!   with write access is caught by the Merkle tree, checkpoints and
//!   witnesses (medledger-chain), and by the AEAD on every ciphertext.
//! - Deletion cannot promise the bytes are gone: unlinked files, redb's
//!   freed pages, a journaling file system and SSD wear levelling all keep
//!   copies outside the store's control. Erasure is therefore
//!   crypto-shredding: delete the record's wrapped data keys (and the
//!   ciphertext for tidiness); the remaining ciphertext is unreadable.
//! - One process per directory: a lock file, [`Error::AlreadyInUse`].
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

pub mod blob;
pub mod blob_dir;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod embedded;
pub mod entry_log;
pub mod error;
pub mod memory;
pub mod node_file;
pub mod redb_state;
pub mod segment;
pub mod segment_log;
pub mod state;

pub use blob::{read_blob, BlobId, BlobStore, BlobWriter};
pub use blob_dir::DirBlobStore;
pub use embedded::{EmbeddedStore, OpenReport, StoreOptions};
pub use entry_log::EntryLog;
pub use error::{Error, Result};
pub use memory::{MemoryBlobStore, MemoryLog, MemoryStateStore};
pub use node_file::FileNodeStore;
pub use redb_state::{RedbStateStore, StateCheck};
pub use segment::MAX_ENTRY_LEN;
pub use segment_log::{LogOptions, SegmentLog, TornTail};
pub use state::{StateStore, StateTxn};

/// Fsyncs a directory, making renames and new files in it durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}
