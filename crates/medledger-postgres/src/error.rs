//! The crate's one error type, and how PostgreSQL's errors map onto it.
//!
//! The mapping decides what is safe to retry, so it is strict:
//!
//! | what happened | variant | retried here? |
//! |---|---|---|
//! | SQLSTATE 40001 (serialization failure) or 40P01 (deadlock), before or at `COMMIT` | [`Error::Conflict`] once retries run out | yes, the whole transaction, a bounded number of times: PostgreSQL rolled it back |
//! | the connection closed, an I/O error, or SQLSTATE class 57 (operator intervention: `pg_terminate_backend`, shutdown; not 57014, a canceled statement, which is [`Error::Server`]) *before* `COMMIT` was sent | [`Error::ConnectionLost`] | no: the transaction certainly did not commit; the caller may try again |
//! | the same *while* `COMMIT` was in flight | [`Error::OutcomeUnknown`], unless the entry log settles it at once (acknowledged if it committed, [`Error::ConnectionLost`] only when nothing can still commit it: see [`crate::sequencer`], "Failures") | never: it may have committed; [`crate::PgEntryLog::batch_outcome`] tells |
//! | an append or state write of a store whose writer turn has ended (another writer took the schema's writer since) | [`Error::WriterFenced`] | never: nothing was written |
//! | no connection could be opened | [`Error::Connect`] | no |
//! | any other server error (constraint, syntax, permissions) | [`Error::Server`] | no |

use std::sync::Arc;

use medledger_chain::HashAlg;

/// Everything that can go wrong talking to PostgreSQL. Each variant names
/// what failed and carries the operation, never stored bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string does not parse.
    #[error("invalid PostgreSQL connection string: {source}")]
    InvalidUrl {
        /// The client's parse error.
        #[source]
        source: Arc<postgres::Error>,
    },
    /// A schema name outside `[a-z_][a-z0-9_]{0,62}`.
    #[error("invalid schema name {name:?}: use 1 to 63 of [a-z0-9_], not starting with a digit")]
    InvalidSchemaName {
        /// The name given (cut to 80 characters).
        name: String,
    },
    /// No connection could be opened (server down, wrong address, refused
    /// authentication). Nothing was sent.
    #[error("connect to PostgreSQL: {source}")]
    Connect {
        /// The client's error.
        #[source]
        source: Arc<postgres::Error>,
    },
    /// No pooled connection became free within the pool's wait limit.
    #[error("no PostgreSQL connection free after {waited_ms} ms (pool of {max})")]
    PoolExhausted {
        /// How long the caller waited.
        waited_ms: u64,
        /// The pool's size.
        max: usize,
    },
    /// The connection broke, or the server ended it (SQLSTATE class 57,
    /// e.g. `pg_terminate_backend` or a shutdown), before `COMMIT` was sent:
    /// the transaction did not commit and nothing of it is visible.
    #[error("{op}: connection to PostgreSQL lost before commit (nothing written): {source}")]
    ConnectionLost {
        /// The operation.
        op: &'static str,
        /// The client's error.
        #[source]
        source: Arc<postgres::Error>,
    },
    /// The connection broke while `COMMIT` was in flight: the transaction
    /// may or may not have committed. Never retried blindly; an entry-log
    /// batch carries `batch` so [`crate::PgEntryLog::batch_outcome`] can
    /// tell which once the server is back.
    #[error("{op}: connection lost during commit; outcome unknown (batch {})", batch.map(|b| b.to_string()).unwrap_or_else(|| "-".into()))]
    OutcomeUnknown {
        /// The operation.
        op: &'static str,
        /// The entry-log transaction's token, if this was an append.
        batch: Option<crate::BatchToken>,
        /// The client's error.
        #[source]
        source: Arc<postgres::Error>,
    },
    /// A serialization failure (40001) or deadlock (40P01) persisted after
    /// every retry. Nothing was written.
    #[error("{op}: SQLSTATE {sqlstate} persisted after {attempts} attempts (nothing written)")]
    Conflict {
        /// The operation.
        op: &'static str,
        /// `40001` or `40P01`.
        sqlstate: &'static str,
        /// How many times the transaction ran.
        attempts: u32,
    },
    /// Any other error the server reported (the transaction rolled back).
    #[error("{op}: PostgreSQL error {sqlstate}: {source}")]
    Server {
        /// The operation.
        op: &'static str,
        /// The SQLSTATE code.
        sqlstate: String,
        /// The client's error.
        #[source]
        source: Arc<postgres::Error>,
    },
    /// The database holds a schema version newer than this build knows.
    #[error("schema {schema:?} has version {found}; this build reads up to {supported}")]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// The version found.
        found: i32,
        /// The newest version this build understands.
        supported: i32,
    },
    /// Another session holds this schema's writer claim (another `Ledger`
    /// writes to it; see [`crate::writer`]).
    #[error("schema {schema:?} is claimed by another writer")]
    WriterClaimed {
        /// The schema.
        schema: String,
    },
    /// This store's writer turn has ended: another writer took the
    /// schema's writer since (the epoch in `log_head`, or for a state
    /// write in `state_meta`, is no longer the one this store's claim
    /// took; see [`crate::writer`]). Nothing was written (no entry, no
    /// state row), and the write is never retried: take a turn again,
    /// catch up with the log, then write.
    #[error("schema {schema:?}: writer turn {ours} has ended, another writer took turn {current}; nothing was written")]
    WriterFenced {
        /// The schema.
        schema: String,
        /// The epoch of this store's last turn.
        ours: u64,
        /// The epoch in `log_head` (or `state_meta`) now.
        current: u64,
    },
    /// The log was created with another hash algorithm.
    #[error("log uses hash algorithm {stored:?}, opened with {requested:?}")]
    HashAlgMismatch {
        /// The algorithm id in the database.
        stored: i16,
        /// The algorithm asked for.
        requested: HashAlg,
    },
    /// Stored rows contradict each other (a gap in the entries, a node that
    /// differs from the one computed, a head row out of range).
    #[error("{what} is inconsistent: {reason}")]
    Inconsistent {
        /// Which table or row.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// SQLSTATE 40001, serialization_failure.
pub(crate) const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE 40P01, deadlock_detected.
pub(crate) const DEADLOCK_DETECTED: &str = "40P01";

/// Where in a transaction an error happened: it decides whether the
/// transaction may have committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Before `COMMIT` was sent (or in an autocommit read).
    BeforeCommit,
    /// While `COMMIT` was in flight.
    Commit,
}

/// What a PostgreSQL error means for the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 40001 / 40P01: rolled back, safe to run again.
    Retryable(&'static str),
    /// The connection is gone (the pool drops every idle connection).
    Lost,
    /// The server refused something; the connection is still usable.
    Refused,
}

/// Classifies by SQLSTATE and connection state.
pub(crate) fn classify(sqlstate: Option<&str>, closed: bool) -> Kind {
    match sqlstate {
        Some(SERIALIZATION_FAILURE) => Kind::Retryable(SERIALIZATION_FAILURE),
        Some(DEADLOCK_DETECTED) => Kind::Retryable(DEADLOCK_DETECTED),
        // 57014 query_canceled (`statement_timeout`, a cancel request):
        // the statement failed, the session goes on.
        Some("57014") if !closed => Kind::Refused,
        // Class 57: operator intervention (admin_shutdown 57P01,
        // crash_shutdown 57P02, cannot_connect_now 57P03, ...): the server
        // ends the session.
        Some(s) if s.starts_with("57") => Kind::Lost,
        // Class 08: connection exception.
        Some(s) if s.starts_with("08") => Kind::Lost,
        Some(_) if !closed => Kind::Refused,
        _ => Kind::Lost,
    }
}

impl Error {
    /// Maps a client error from `op` at `stage`.
    pub(crate) fn from_pg(
        op: &'static str,
        stage: Stage,
        batch: Option<crate::BatchToken>,
        e: postgres::Error,
    ) -> Self {
        let code = e.code().map(|c| c.code().to_owned());
        let kind = classify(code.as_deref(), e.is_closed());
        let source = Arc::new(e);
        match (kind, stage) {
            (Kind::Retryable(sqlstate), _) => Error::Conflict {
                op,
                sqlstate,
                attempts: 1,
            },
            (Kind::Lost, Stage::BeforeCommit) => Error::ConnectionLost { op, source },
            (Kind::Lost, Stage::Commit) => Error::OutcomeUnknown { op, batch, source },
            (Kind::Refused, _) => Error::Server {
                op,
                sqlstate: code.unwrap_or_default(),
                source,
            },
        }
    }

    /// Whether PostgreSQL rolled the transaction back for a reason that
    /// makes running it again safe (40001, 40P01).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Whether the connection is gone (the pool forgets its idle ones).
    pub(crate) fn connection_gone(&self) -> bool {
        matches!(
            self,
            Error::ConnectionLost { .. } | Error::OutcomeUnknown { .. } | Error::Connect { .. }
        )
    }

    /// Finds this crate's error inside a store error (how the traits carry
    /// it: [`medledger_store::Error::Backend`]).
    pub fn in_store_error(e: &medledger_store::Error) -> Option<&Error> {
        match e {
            medledger_store::Error::Backend { source, .. } => source.downcast_ref::<Error>(),
            _ => None,
        }
    }

    /// Finds this crate's error inside a chain error (how the
    /// [`medledger_chain::NodeStore`] trait carries it).
    pub fn in_chain_error(e: &medledger_chain::Error) -> Option<&Error> {
        match e {
            medledger_chain::Error::Storage(source) => {
                if let Some(inner) = source.downcast_ref::<medledger_store::Error>() {
                    return Error::in_store_error(inner);
                }
                source.downcast_ref::<Error>()
            }
            _ => None,
        }
    }

    fn op(&self) -> &'static str {
        match self {
            Error::ConnectionLost { op, .. }
            | Error::OutcomeUnknown { op, .. }
            | Error::Conflict { op, .. }
            | Error::Server { op, .. } => op,
            Error::Connect { .. } | Error::PoolExhausted { .. } => "connect to PostgreSQL",
            Error::InvalidUrl { .. } | Error::InvalidSchemaName { .. } => "configure PostgreSQL",
            Error::SchemaTooNew { .. } | Error::HashAlgMismatch { .. } => "open PostgreSQL schema",
            Error::WriterClaimed { .. } => "claim the ledger's writer",
            Error::WriterFenced { .. } => "write as the ledger's writer",
            Error::Inconsistent { what, .. } => what,
        }
    }
}

/// Every error of this crate reaches the traits as
/// [`medledger_store::Error::Backend`] (whose source downcasts back to
/// [`Error`], see [`Error::in_store_error`]), except a newer schema and a
/// hash mismatch, which have store variants of their own.
impl From<Error> for medledger_store::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::SchemaTooNew {
                found, supported, ..
            } => medledger_store::Error::UnsupportedVersion {
                what: "PostgreSQL schema",
                found: u32::try_from(found).unwrap_or(u32::MAX),
                supported: u32::try_from(supported).unwrap_or(0),
            },
            Error::HashAlgMismatch { stored, requested } => {
                medledger_store::Error::HashAlgMismatch {
                    stored: u8::try_from(stored).unwrap_or(u8::MAX),
                    requested: requested.id(),
                }
            }
            other => medledger_store::Error::Backend {
                op: other.op(),
                source: Box::new(other),
            },
        }
    }
}

impl From<Error> for medledger_chain::Error {
    fn from(e: Error) -> Self {
        medledger_chain::Error::Storage(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(Some("40001"), false), Kind::Retryable("40001"));
        assert_eq!(classify(Some("40P01"), false), Kind::Retryable("40P01"));
        assert_eq!(classify(Some("57P01"), false), Kind::Lost);
        assert_eq!(classify(Some("57P01"), true), Kind::Lost);
        assert_eq!(classify(Some("08006"), false), Kind::Lost);
        assert_eq!(classify(Some("57014"), false), Kind::Refused);
        assert_eq!(classify(Some("57014"), true), Kind::Lost);
        assert_eq!(classify(Some("23505"), false), Kind::Refused);
        assert_eq!(classify(Some("42P01"), false), Kind::Refused);
        assert_eq!(classify(None, true), Kind::Lost);
        assert_eq!(classify(None, false), Kind::Lost, "an I/O error");
    }

    #[test]
    fn store_mapping_keeps_the_typed_error() {
        let e = Error::Conflict {
            op: "append",
            sqlstate: SERIALIZATION_FAILURE,
            attempts: 5,
        };
        let s = medledger_store::Error::from(e);
        assert!(matches!(
            Error::in_store_error(&s),
            Some(Error::Conflict { attempts: 5, .. })
        ));
        let c = medledger_chain::Error::from(s);
        assert!(matches!(
            Error::in_chain_error(&c),
            Some(Error::Conflict { attempts: 5, .. })
        ));
        let s = medledger_store::Error::from(Error::SchemaTooNew {
            schema: "s".into(),
            found: 9,
            supported: 1,
        });
        assert!(matches!(
            s,
            medledger_store::Error::UnsupportedVersion {
                found: 9,
                supported: 1,
                ..
            }
        ));
    }
}
