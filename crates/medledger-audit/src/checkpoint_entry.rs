//! Checkpoints kept in the log itself: after signing a checkpoint,
//! [`crate::AuditLog::checkpoint_with_heads`] appends the signed note (with
//! its cosignatures) as a *checkpoint entry*, and [`crate::AuditLog::open`]
//! re-adopts every checkpoint entry it reads, so issued checkpoints survive
//! a restart without the embedder persisting them.
//!
//! # Checkpoint entry (version 1)
//!
//! ```text
//! off  len  field
//!   0    4  magic "MLAC"
//!   4    1  version 0x01
//!   5    n  the signed note text (C2SP signed note, 1 <= n <= 65,536 bytes)
//! ```
//!
//! The entry is not an audit event (the indexes skip it). The note is
//! verified against the tree on open (its root must be the tree's at its
//! size), not against the log key: the log is the operator's own record.

use medledger_chain::note::MAX_NOTE_LEN;
use medledger_chain::{Checkpoint, Note};

use crate::audit_log::IssuedCheckpoint;
use crate::codec::DecodeError;
use crate::error::{Error, Result};

/// The magic bytes of a checkpoint entry.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"MLAC";
/// The checkpoint entry version this build writes and reads.
pub const CHECKPOINT_VERSION: u8 = 1;

/// Whether a log entry is a checkpoint entry (by its magic).
pub fn is_checkpoint_entry(bytes: &[u8]) -> bool {
    bytes.starts_with(&CHECKPOINT_MAGIC)
}

/// The entry holding `note`.
pub fn encode(note: &str) -> Result<Vec<u8>> {
    if note.is_empty() || note.len() > MAX_NOTE_LEN {
        return Err(Error::InvalidEvent {
            field: "checkpoint entry",
            reason: "note is empty or longer than 64 KiB",
        });
    }
    let mut out = Vec::with_capacity(5 + note.len());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.push(CHECKPOINT_VERSION);
    out.extend_from_slice(note.as_bytes());
    Ok(out)
}

/// Decodes a checkpoint entry: its note must parse as a signed note whose
/// text is a checkpoint body.
pub fn decode(bytes: &[u8]) -> Result<IssuedCheckpoint> {
    let (magic, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(DecodeError::Truncated {
            field: "magic",
            offset: 0,
        })?;
    if *magic != CHECKPOINT_MAGIC {
        return Err(DecodeError::BadMagic.into());
    }
    let (&version, text) = rest.split_first().ok_or(DecodeError::Truncated {
        field: "version",
        offset: 4,
    })?;
    if version != CHECKPOINT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version).into());
    }
    let note = Note::parse(text)?;
    let checkpoint = Checkpoint::parse_body(note.text())?;
    let text = String::from_utf8(text.to_vec()).map_err(|_| DecodeError::InvalidUtf8 {
        field: "checkpoint note",
        offset: 5,
    })?;
    if note.to_text()? != text {
        return Err(Error::CheckpointMismatch {
            reason: "checkpoint entry's note is not in canonical form",
        });
    }
    Ok(IssuedCheckpoint {
        checkpoint,
        note: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_chain::{Ed25519Signer, Hash, HashAlg};
    use proptest::prelude::*;

    fn note() -> String {
        let s = Ed25519Signer::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .unwrap();
        Checkpoint::first("log.example", HashAlg::Blake3, 5, Hash([7; 32]), 9)
            .sign(&s)
            .unwrap()
    }

    #[test]
    fn round_trips_and_refuses_other_bytes() {
        let n = note();
        let e = encode(&n).unwrap();
        assert_eq!(&e[..5], b"MLAC\x01");
        let d = decode(&e).unwrap();
        assert_eq!((d.note.as_str(), d.checkpoint.size), (n.as_str(), 5));
        assert!(decode(b"MLAC").is_err());
        assert!(decode(b"MLAC\x02x").is_err());
        assert!(decode(&e[..e.len() - 1]).is_err());
        assert!(encode("").is_err());
    }

    proptest! {
        #[test]
        fn any_decodable_mutation_re_encodes_to_itself(pos in any::<usize>(), x in 1u8..=255) {
            let mut e = encode(&note()).unwrap();
            let at = pos % e.len();
            e[at] ^= x;
            if let Ok(d) = decode(&e) {
                prop_assert_eq!(encode(&d.note).unwrap(), e);
            }
        }
    }
}
