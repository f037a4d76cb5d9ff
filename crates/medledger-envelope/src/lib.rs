//! Envelope encryption for medledger records of any size: one fresh data
//! key per record version, wrapped to each reader's X25519 public key; a
//! key-committing, context-bound, chunked AES-256-GCM body (STREAM) that is
//! encrypted and decrypted in bounded memory; rewrapping that rewrites only
//! the header; rotation under a fresh data key.
//!
//! # Example
//!
//! ```
//! use medledger_envelope::{open, rewrap, seal, Error, RecipientSecretKey, RecordContext};
//!
//! let clinician = RecipientSecretKey::generate();
//! let patient_app = RecipientSecretKey::generate();
//! let context = RecordContext::new("rec-42", "patient-7", 1, "application/fhir+json")?;
//!
//! let envelope = seal(b"{\"resourceType\":\"Observation\"}", &context, &[clinician.public_key()])?;
//! assert_eq!(open(&envelope, &context, &clinician)?, b"{\"resourceType\":\"Observation\"}");
//!
//! // A grant: rewrap the header for a second reader; the body is untouched.
//! let shared = rewrap(&envelope, &context, &clinician, &[clinician.public_key(), patient_app.public_key()])?;
//! assert_eq!(open(&shared, &context, &patient_app)?, b"{\"resourceType\":\"Observation\"}");
//!
//! // Another record's context does not open it.
//! let other = RecordContext::new("rec-43", "patient-7", 1, "application/fhir+json")?;
//! assert!(matches!(open(&shared, &other, &clinician), Err(Error::WrongContext)));
//! # Ok::<(), Error>(())
//! ```
//!
//! Large bodies go through [`Encryptor`] (a `std::io::Write`) and
//! [`Decryptor`] (a `std::io::Read`), whose memory is one chunk (64 KiB by
//! default) whatever the record size.
//!
//! # Format
//!
//! An envelope is a [`Header`] followed by the body. The byte layouts, key
//! schedule and test vectors are in the crate README; the module docs of
//! [`header`], [`keys`], [`stream`] and [`context`] give each part's layout
//! next to its code.
//!
//! # Security notes
//!
//! - **Key commitment.** AES-GCM alone is not committing: one ciphertext can
//!   be made to decrypt under two keys. The header stores
//!   `HKDF-Expand(dk, "…commit")` and a reader checks it (in constant time)
//!   against the data key it unwrapped before decrypting any chunk, so two
//!   recipients of one header can never obtain two different plaintexts.
//! - **Context binding.** The [`RecordContext`] (record id, patient,
//!   version, content type, extra) is authenticated with every chunk and in
//!   the header; opening under any other context fails. The context is
//!   not stored in the envelope.
//! - **Streaming.** A chunk's plaintext is released only after its tag
//!   verifies. A truncated body is an error, never a clean end of file. A
//!   caller that acts on the plaintext of early chunks before the stream
//!   ends must be prepared to roll back if a later chunk fails.
//! - **Revocation.** Removing a recipient's stanza stops them unwrapping
//!   the key from that header; a key they already unwrapped still opens
//!   that version. Versions written after a revocation must be
//!   [`rotate`]d (fresh data key).
//! - **Secrets.** [`DataKey`] and [`RecipientSecretKey`] are wiped on drop,
//!   have redacted `Debug`, and no `Clone`; plaintext chunk buffers are
//!   wiped too. Randomness is from the OS CSPRNG; the `*_with_rng` entry
//!   points exist for deterministic test vectors.
//! - Every parser is strict and bounded (at most [`MAX_RECIPIENTS`]
//!   recipients, [`MAX_HEADER_LEN`] header bytes, [`MAX_CHUNK_SIZE`] chunk
//!   bytes); malformed input is a typed [`Error`], never a panic.
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

pub mod context;
pub mod envelope;
pub mod error;
pub mod header;
pub mod keys;
mod stanza;
pub mod stream;

#[cfg(test)]
mod invisible_salamanders;

pub use context::{ContextDigest, RecordContext};
pub use envelope::{open, remove_recipients, rewrap, rewrap_stream, rotate, seal, seal_with};
pub use error::{Error, Result};
pub use header::{
    Header, DEFAULT_CHUNK_SIZE, FORMAT_VERSION, MAGIC, MAX_CHUNK_SIZE, MAX_HEADER_LEN,
    MAX_RECIPIENTS, MIN_CHUNK_SIZE, SUITE_X25519_AES256GCM,
};
pub use keys::{DataKey, KeyCommitment, KeyId, RecipientPublicKey, RecipientSecretKey};
pub use stream::{Decryptor, Encryptor, SealOptions};
