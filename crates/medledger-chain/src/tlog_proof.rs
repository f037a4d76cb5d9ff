//! C2SP tlog-proof files.

/// What is malformed in a tlog-proof file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("first line is not c2sp.org/tlog-proof@v1")]
    BadHeader,
}
