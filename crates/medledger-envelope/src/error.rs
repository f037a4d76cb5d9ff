//! The one error type of this crate.
//!
//! Variants are named by the check that failed. They carry positions (which
//! chunk, which stanza, which byte offset) but never key material or
//! plaintext. Where two causes cannot be told apart cryptographically (a
//! wrong context and a corrupted chunk both fail the same AEAD tag), the
//! message says so instead of guessing.

use std::io;

/// Everything that can go wrong while sealing, opening, rewrapping or
/// rotating an envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The header is malformed; `what` names the field or rule that failed.
    #[error("bad envelope header: {what}")]
    BadHeader {
        /// Which field or rule of the header format was violated.
        what: &'static str,
    },
    /// The header's magic is right but its format version is not one this
    /// implementation knows.
    #[error("unknown envelope format version {0} (this implementation reads version 1)")]
    UnknownVersion(u8),
    /// The header names an algorithm suite this implementation does not know.
    #[error("unknown algorithm suite {0:#04x} (this implementation knows 0x01)")]
    UnknownAlgorithm(u8),
    /// More recipients than [`MAX_RECIPIENTS`](crate::MAX_RECIPIENTS) were
    /// supplied or declared.
    #[error("too many recipients: {count} (at most {max})")]
    TooManyRecipients {
        /// How many were supplied or declared.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The same recipient key id appears twice.
    #[error("duplicate recipient")]
    DuplicateRecipient,
    /// An envelope needs at least one recipient.
    #[error("an envelope needs at least one recipient")]
    NoRecipients,
    /// The declared header length is above
    /// [`MAX_HEADER_LEN`](crate::MAX_HEADER_LEN).
    #[error("header too large: {len} bytes (at most {max})")]
    HeaderTooLarge {
        /// The declared length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The chunk size is outside the accepted range.
    #[error("chunk size {0} outside {min}..={max}", min = crate::MIN_CHUNK_SIZE, max = crate::MAX_CHUNK_SIZE)]
    BadChunkSize(u64),
    /// A record-context field is longer than its cap.
    #[error("record context field {field} is {len} bytes (at most {max})")]
    ContextFieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The canonical context encoding is malformed.
    #[error("bad record context encoding: {what}")]
    BadContext {
        /// Which rule of the encoding was violated.
        what: &'static str,
    },
    /// No recipient stanza carries the key id of the secret key supplied.
    #[error("no recipient stanza matches this key")]
    NoMatchingRecipient,
    /// A stanza carries this key's id, but its wrapped data key does not
    /// authenticate under the key agreed with this secret key.
    #[error(
        "recipient stanza {index} matches this key's id but fails to unwrap (corrupted stanza)"
    )]
    StanzaUnwrapFailed {
        /// Index of the stanza in the header.
        index: usize,
    },
    /// A recipient public key (when sealing) or a stanza's ephemeral key
    /// (when opening) is a low-order point: the X25519 shared secret would be
    /// all zero.
    #[error("recipient or stanza {index} has a low-order X25519 key")]
    LowOrderKey {
        /// Index of the stanza in the header.
        index: usize,
    },
    /// The unwrapped data key does not match the header's key commitment.
    #[error(
        "key commitment mismatch: the unwrapped data key is not the one this header commits to"
    )]
    KeyCommitmentMismatch,
    /// The header's MAC does not verify under the (committed) data key: a
    /// header byte was changed after sealing.
    #[error("header authentication failed (header modified)")]
    HeaderAuthentication,
    /// The context supplied for decryption is not the one the record was
    /// sealed under.
    #[error("wrong record context: the record was sealed under a different context")]
    WrongContext,
    /// A body chunk failed AEAD authentication.
    #[error("chunk {chunk} failed authentication (wrong context or corrupted; the two are indistinguishable)")]
    ChunkAuthentication {
        /// Zero-based index of the chunk.
        chunk: u64,
    },
    /// A chunk flagged as final is empty although chunks precede it (the
    /// format allows an empty final chunk only for an empty body).
    #[error("chunk {chunk} is an empty final chunk after non-empty chunks")]
    EmptyFinalChunk {
        /// Zero-based index of the chunk.
        chunk: u64,
    },
    /// The body ended before a chunk flagged as final.
    #[error(
        "truncated envelope: body ends after {chunks} authenticated chunks without a final chunk"
    )]
    Truncated {
        /// How many chunks authenticated before the end.
        chunks: u64,
    },
    /// Bytes follow the final chunk.
    #[error("trailing data after the final chunk {chunk}")]
    TrailingData {
        /// Index of the final chunk.
        chunk: u64,
    },
    /// The body is longer than the 2^32 chunks the nonce counter can number.
    #[error("body too long: chunk counter exhausted")]
    BodyTooLong,
    /// The stream was used after it failed or finished.
    #[error("stream already finished or failed")]
    StreamFinished,
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// Recovers an [`Error`] that travelled through `std::io::Read`/`Write`
    /// (the streaming types wrap theirs in an `io::Error`); any other I/O
    /// error becomes [`Error::Io`].
    pub fn from_io(err: io::Error) -> Self {
        if !err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io(err);
        }
        let kind = err.kind();
        match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            Some(Err(other)) => Error::Io(io::Error::new(kind, other)),
            None => Error::Io(kind.into()),
        }
    }

    /// Wraps this error in an `io::Error` for `Read`/`Write` impls.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Error::Io(err) => err,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
