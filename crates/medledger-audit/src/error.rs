//! The crate's one error type.

use crate::codec::DecodeError;

/// Everything that can go wrong in this crate. Each variant names what
/// failed; none carries a secret (patient ids never appear, only their
/// pseudonyms and log indexes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An audit event's binary encoding is malformed.
    #[error("audit event encoding: {0}")]
    Decode(#[from] DecodeError),
    /// An event that cannot be encoded (a field over its cap, or an
    /// inconsistent combination such as emergency access without a reason).
    #[error("invalid audit event: {field} {reason}")]
    InvalidEvent {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A failure in the Merkle log, a proof, a checkpoint or a signature.
    #[error("chain: {0}")]
    Chain(#[from] medledger_chain::Error),
    /// A failure in the storage backend.
    #[error("store: {0}")]
    Store(#[from] medledger_store::Error),
    /// The entry log and the Merkle log disagree (the log was appended to by
    /// another writer, or the tree is ahead of the entries).
    #[error("entry log holds {entries} entries but the Merkle log {leaves}")]
    LogMismatch {
        /// Entries in the entry log.
        entries: u64,
        /// Leaves in the Merkle log.
        leaves: u64,
    },
    /// A log index that holds no audit event.
    #[error("log index {index} holds no audit event")]
    NoSuchEvent {
        /// The index asked for.
        index: u64,
    },
    /// No checkpoint at the requested position, or none covering an index.
    #[error("no checkpoint {what}")]
    NoCheckpoint {
        /// What was asked for.
        what: &'static str,
    },
    /// A checkpoint offered to the log that does not describe it.
    #[error("checkpoint does not match the log: {reason}")]
    CheckpointMismatch {
        /// What differs.
        reason: &'static str,
    },
    /// The export file is larger than [`crate::export::MAX_EXPORT_LEN`].
    #[error("export is {len} bytes, above the cap of {max}")]
    ExportTooLarge {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The export is not well-formed JSON of the documented schema, or not
    /// in its canonical form.
    #[error("export is malformed: {reason}")]
    ExportMalformed {
        /// What is wrong.
        reason: String,
    },
    /// An item of an export failed verification; `item` names the first
    /// bad one (`checkpoints[2]`, `consistency[0]`, `events[17]`).
    #[error("{item}: {source}")]
    BadExportItem {
        /// The JSON path of the first bad item.
        item: String,
        /// Why it failed.
        source: Box<Error>,
    },
    /// Events of an export not in strictly ascending log order (a
    /// duplicate or a reordering).
    #[error("event at log index {index} does not follow index {previous}")]
    EventOrder {
        /// The index of the event before it in the export.
        previous: u64,
        /// Its own index.
        index: u64,
    },
    /// An event at or beyond the tree size of the last checkpoint.
    #[error("event index {index} is not covered by the last checkpoint (size {size})")]
    EventNotCovered {
        /// The event's index.
        index: u64,
        /// The last checkpoint's tree size.
        size: u64,
    },
    /// An event of another patient in a patient's export.
    #[error("event belongs to another patient")]
    WrongPatient,
    /// The per-patient chain is broken: an event of the patient is missing.
    #[error("patient chain broken: event names previous index {found:?}, expected {expected}")]
    PatientChainBroken {
        /// What the chain requires (`none or < N` rendered as text).
        expected: String,
        /// What the event names.
        found: Option<u64>,
    },
    /// A batch inclusion proof that is malformed or does not reproduce
    /// the signed root.
    #[error("batch inclusion proof {reason}")]
    BadBatchProof {
        /// What is wrong.
        reason: &'static str,
    },
    /// A heads entry or heads-tree proof that is malformed or does not
    /// place the patient.
    #[error("patient heads: {reason}")]
    BadHeads {
        /// What is wrong.
        reason: &'static str,
    },
    /// The checkpoint's heads commitment names a last event of the patient
    /// other than the export's last event: the patient's newest events
    /// were withheld (or events were added).
    #[error("the checkpoint commits the patient's last event at {committed:?} (None: no events) but the export ends at {last_exported:?}: events were withheld")]
    PatientHeadMismatch {
        /// The committed head (None: the patient had no events).
        committed: Option<u64>,
        /// The index of the export's last event of the patient, if any.
        last_exported: Option<u64>,
    },
    /// A patient export that carries no heads commitment, where one is
    /// required ([`crate::verify::verify_patient_export`]): its last
    /// checkpoint was not issued with `checkpoint_with_heads`.
    #[error("the export does not commit to the patient's last event (no heads entry before its last checkpoint)")]
    TailNotCommitted,
    /// An export of another patient than the one asked about, or of no
    /// patient at all.
    #[error("the export is not the requested patient's")]
    NotThePatient,
    /// Checkpoints out of order (size going back) or not the log's.
    #[error("checkpoint order: {reason}")]
    CheckpointOrder {
        /// What is wrong.
        reason: &'static str,
    },
    /// A JSON value in an export that does not decode (base64, hash length).
    #[error("bad {what}")]
    BadField {
        /// The field.
        what: &'static str,
    },
    /// An I/O failure reading an export file.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// Wraps this error as the failure of export item `item`.
    pub(crate) fn at(self, item: impl Into<String>) -> Error {
        Error::BadExportItem {
            item: item.into(),
            source: Box::new(self),
        }
    }
}
