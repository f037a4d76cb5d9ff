//! The crate's one error type.

use std::path::PathBuf;

use crate::blob::BlobId;

/// Everything that can go wrong in this crate. Each variant names what
/// failed and carries the context an operator needs (which file, which byte
/// offset, which operation), never stored secret bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- opening ---------------------------------------------------------
    /// An I/O operation failed; `op` says which and `path` on what.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "fsync segment".
        op: &'static str,
        /// The file or directory it acted on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store directory does not exist (it is never created implicitly,
    /// so a typo cannot start an empty store beside the real one).
    #[error("store directory {} does not exist", path.display())]
    MissingDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Something other than a directory is where the store should be.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given or expected.
        path: PathBuf,
    },
    /// Another open store (in this or another process) holds the lock.
    #[error("store directory {} is already in use by another open store", path.display())]
    AlreadyInUse {
        /// The store directory.
        path: PathBuf,
    },
    /// A file was written by a newer, incompatible format version.
    #[error("{what} has format version {found}; this build reads up to {supported}")]
    UnsupportedVersion {
        /// Which file kind (manifest, segment, node file, blob).
        what: &'static str,
        /// The version found.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The manifest is missing, malformed or fails its checksum.
    #[error("manifest {}: {reason}", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// The store was created with another hash algorithm.
    #[error("store uses hash algorithm id {stored}, opened with id {requested}")]
    HashAlgMismatch {
        /// The algorithm id in the manifest or node file.
        stored: u8,
        /// The algorithm id asked for.
        requested: u8,
    },

    // --- entry log -------------------------------------------------------
    /// A segment fails its checks before its tail: never skipped.
    #[error("log segment {segment} is corrupt at byte {offset}: {reason}")]
    SegmentCorrupt {
        /// The segment file name.
        segment: String,
        /// Byte offset of the failing frame or header in that file.
        offset: u64,
        /// What failed.
        reason: &'static str,
    },
    /// An entry larger than [`crate::MAX_ENTRY_LEN`].
    #[error("entry of {len} bytes exceeds the maximum of {max}")]
    EntryTooLarge {
        /// The entry's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A read at or beyond the durable length of the log.
    #[error("entry index {index} is not below the log length {len}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The log's durable length.
        len: u64,
    },
    /// A write or fsync failed earlier: the page cache can no longer be
    /// trusted, so the log refuses further appends until it is reopened.
    #[error("the log refuses appends after an earlier I/O failure; reopen the store")]
    LogFailed,

    // --- node file -------------------------------------------------------
    /// A node record fails its checksum.
    #[error("node file {} is corrupt at byte {offset}: {reason}", path.display())]
    NodeFileCorrupt {
        /// The node file.
        path: PathBuf,
        /// Byte offset of the failing record or header.
        offset: u64,
        /// What failed.
        reason: &'static str,
    },
    /// Nodes appended out of stored-hash order or in the wrong number.
    #[error("node append out of order: store holds {stored} hashes, append brings {got} for {leaves} leaves")]
    NodeAppendOutOfOrder {
        /// Hashes already stored.
        stored: u64,
        /// Hashes handed to append.
        got: usize,
        /// Leaves the append claimed.
        leaves: u64,
    },
    /// The Merkle tree code reported an error.
    #[error("merkle log: {0}")]
    Chain(#[from] medledger_chain::Error),

    // --- blobs -----------------------------------------------------------
    /// No blob with this id.
    #[error("no blob {id}")]
    BlobNotFound {
        /// The id asked for.
        id: BlobId,
    },
    /// A blob with this id was already committed (blobs are immutable).
    #[error("blob {id} already exists")]
    BlobExists {
        /// The id.
        id: BlobId,
    },
    /// A blob file fails its checks.
    #[error("blob {id} is corrupt at byte {offset}: {reason}")]
    BlobCorrupt {
        /// The blob.
        id: BlobId,
        /// Byte offset in the blob file.
        offset: u64,
        /// What failed.
        reason: &'static str,
    },

    // --- state -----------------------------------------------------------
    /// A table name outside `[a-z0-9_.-]{1,64}`.
    #[error("invalid state table name {name:?}")]
    InvalidTableName {
        /// The name given.
        name: String,
    },
    /// A state key or value over its size limit.
    #[error("state {what} of {len} bytes exceeds the maximum of {max}")]
    StateTooLarge {
        /// "key" or "value".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stored state value fails its checksum (or the database is damaged).
    #[error("state table {table:?} is corrupt: {reason}")]
    StateCorrupt {
        /// The table.
        table: String,
        /// What failed.
        reason: &'static str,
    },
    /// A transaction stamped with a log index below the one already stored.
    #[error(
        "state already reflects log index {current}; a transaction cannot reflect {requested}"
    )]
    StateIndexRegressed {
        /// The stored stamp.
        current: u64,
        /// The stamp asked for.
        requested: u64,
    },
    /// The state applied log entry `stamp` without an undo journal (the
    /// caller said it was durable), but the log now has only `log_len`
    /// entries: a durable entry was lost, and the state cannot be rolled
    /// back to match.
    #[error("state applied log entry {stamp} but the log has only {log_len} entries")]
    StateAheadOfLog {
        /// The state's stamp.
        stamp: u64,
        /// The durable log length reconciled against.
        log_len: u64,
    },
    /// The database engine (redb here, PostgreSQL elsewhere) failed.
    #[error("{op}: {source}")]
    Backend {
        /// The operation, e.g. "commit state transaction".
        op: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

impl From<Error> for medledger_chain::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Chain(inner) => inner,
            other => medledger_chain::Error::Storage(Box::new(other)),
        }
    }
}
