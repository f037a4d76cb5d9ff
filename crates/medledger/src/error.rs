//! The one error type of the facade: every variant names the operation that
//! failed ([`Op`]) and, for errors of the composed crates, wraps theirs.

use core::fmt;

use medledger_grants::{ActorId, DenyReason};

/// The facade operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Opening or creating a ledger.
    Open,
    /// Registering an actor.
    RegisterActor,
    /// Loading an organization's membership statement.
    AddMembership,
    /// Trusting an organization for emergency roles.
    TrustOrganization,
    /// Writing a record version.
    Write,
    /// Reading a record.
    Read,
    /// Break-the-glass read.
    EmergencyRead,
    /// Appending a grant.
    Grant,
    /// Appending a revocation.
    Revoke,
    /// Erasing a record.
    Erase,
    /// Signing and cosigning a checkpoint.
    Checkpoint,
    /// Building a disclosure report.
    Report,
    /// Building a verifiable export.
    Export,
    /// Self-verification of the store.
    Verify,
    /// Exporting a share package for another organization.
    ShareExport,
    /// Verifying and importing another organization's share package.
    ShareImport,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open ledger",
            Op::RegisterActor => "register actor",
            Op::AddMembership => "add membership",
            Op::TrustOrganization => "trust organization",
            Op::Write => "write record",
            Op::Read => "read record",
            Op::EmergencyRead => "emergency read",
            Op::Grant => "grant",
            Op::Revoke => "revoke",
            Op::Erase => "erase record",
            Op::Checkpoint => "checkpoint",
            Op::Report => "disclosure report",
            Op::Export => "export",
            Op::Verify => "verify",
            Op::ShareExport => "export share package",
            Op::ShareImport => "import share package",
        })
    }
}

/// Everything a [`crate::Ledger`] operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Merkle log, a checkpoint or a witness failed.
    #[error("{op}: chain: {source}")]
    Chain {
        /// The operation.
        op: Op,
        /// The chain's error.
        #[source]
        source: medledger_chain::Error,
    },
    /// Sealing, opening or rewrapping a record envelope failed.
    #[error("{op}: envelope: {source}")]
    Envelope {
        /// The operation.
        op: Op,
        /// The envelope's error.
        #[source]
        source: medledger_envelope::Error,
    },
    /// A grant, membership or revocation was refused.
    #[error("{op}: grants: {source}")]
    Grants {
        /// The operation.
        op: Op,
        /// The grants crate's error.
        #[source]
        source: medledger_grants::Error,
    },
    /// The audit log failed.
    #[error("{op}: audit: {source}")]
    Audit {
        /// The operation.
        op: Op,
        /// The audit crate's error.
        #[source]
        source: medledger_audit::Error,
    },
    /// Another `Ledger` on this ledger's shared store (PostgreSQL: another
    /// process) kept its turn longer than this operation would wait for it
    /// (`TURN_WAIT`); nothing was done. Safe to retry.
    #[error("{op}: another ledger kept its turn on {store}")]
    LedgerInUse {
        /// The operation.
        op: Op,
        /// Which store (e.g. the PostgreSQL schema).
        store: String,
    },
    /// The storage backend failed (I/O, corruption, lock held).
    #[error("{op}: store: {source}")]
    Store {
        /// The operation.
        op: Op,
        /// The store's error.
        #[source]
        source: medledger_store::Error,
    },
    /// The application key (or passphrase) does not open the ledger's
    /// sealed secrets.
    #[error("{op}: the ledger key does not open this ledger's sealed secrets ({reason})")]
    WrongLedgerKey {
        /// The operation.
        op: Op,
        /// Why: wrong key, or a passphrase given for a raw-key ledger.
        reason: &'static str,
    },
    /// The actor is not registered with this ledger.
    #[error("{op}: unknown actor {actor}")]
    UnknownActor {
        /// The operation.
        op: Op,
        /// The actor.
        actor: ActorId,
    },
    /// No record has this id (or this version).
    #[error("{op}: unknown record {record:?} (version {version:?})")]
    UnknownRecord {
        /// The operation.
        op: Op,
        /// The record id.
        record: String,
        /// The version asked for, if one was.
        version: Option<u64>,
    },
    /// The record was erased (crypto-shredded).
    #[error("{op}: record {record:?} was erased")]
    RecordErased {
        /// The operation.
        op: Op,
        /// The record id.
        record: String,
    },
    /// The grants engine denied the access; the denial is in the log at
    /// `event`.
    #[error("{op}: access denied ({reason:?}), audit event {event}")]
    AccessDenied {
        /// The operation.
        op: Op,
        /// Why.
        reason: DenyReason,
        /// The log index of the audit event recording the denial.
        event: u64,
    },
    /// The policy allowed a read, but it failed afterwards: the caller's
    /// key did not unwrap the data key, or the stored ciphertext did not
    /// verify. The failure is logged (denied, code
    /// [`crate::UNWRAP_FAILED_CODE`]) at `event`; no plaintext was released.
    #[error("{op}: reading {record:?} v{version} failed after it was allowed (audit event {event}): {source}")]
    ReadFailed {
        /// The operation.
        op: Op,
        /// The record id.
        record: String,
        /// The version.
        version: u64,
        /// The log index of the audit event recording the failure.
        event: u64,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// An argument is malformed.
    #[error("{op}: invalid {what}: {reason}")]
    InvalidInput {
        /// The operation.
        op: Op,
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value in the state store does not decode.
    #[error("{op}: corrupt state in table {table}: {reason}")]
    CorruptState {
        /// The operation.
        op: Op,
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// No checkpoint has been issued yet.
    #[error("{op}: no checkpoint issued yet")]
    NoCheckpoint {
        /// The operation.
        op: Op,
    },
    /// A share package was malformed or failed verification.
    #[error("{op}: share package: {reason}")]
    SharePackage {
        /// The operation.
        op: Op,
        /// What was wrong.
        reason: crate::share_codec::ShareError,
    },
    /// Self-verification found a discrepancy.
    #[error("{op}: verification failed: {what}")]
    VerificationFailed {
        /// The operation.
        op: Op,
        /// What did not verify.
        what: String,
    },
}

/// The facade's result type.
pub type Result<T> = core::result::Result<T, Error>;

/// Errors of the composed crates, tagged with the operation.
pub(crate) trait During {
    fn during(self, op: Op) -> Error;
}

macro_rules! during {
    ($ty:ty, $variant:ident) => {
        impl During for $ty {
            fn during(self, op: Op) -> Error {
                Error::$variant { op, source: self }
            }
        }
    };
}
during!(medledger_chain::Error, Chain);

/// An envelope error, except that a store error a blob reader carried
/// through the envelope's `io::Error` (a corrupt or missing blob under a
/// streaming read) is reported as the store error it is.
impl During for medledger_envelope::Error {
    fn during(self, op: Op) -> Error {
        match self {
            medledger_envelope::Error::Io(e)
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<medledger_store::Error>()) =>
            {
                match e
                    .into_inner()
                    .map(|inner| inner.downcast::<medledger_store::Error>())
                {
                    Some(Ok(store)) => Error::Store { op, source: *store },
                    _ => Error::Envelope {
                        op,
                        source: medledger_envelope::Error::Io(std::io::Error::other(
                            "a blob reader failed",
                        )),
                    },
                }
            }
            source => Error::Envelope { op, source },
        }
    }
}
during!(medledger_grants::Error, Grants);
during!(medledger_audit::Error, Audit);
during!(medledger_store::Error, Store);

/// `result.at(op)` turns a composed crate's error into [`Error`].
pub(crate) trait At<T> {
    fn at(self, op: Op) -> Result<T>;
}

impl<T, E: During> At<T> for core::result::Result<T, E> {
    fn at(self, op: Op) -> Result<T> {
        self.map_err(|e| e.during(op))
    }
}
