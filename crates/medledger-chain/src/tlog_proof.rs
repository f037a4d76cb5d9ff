//! Offline proofs in the C2SP tlog-proof text format: an entry's index, its
//! inclusion proof, and the cosigned checkpoint it is included in.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional, unauthenticated application data)
//! index <decimal>
//! <base64 hash>             (0 to 63 lines, leaf's sibling first)
//!                           (empty line)
//! <signed checkpoint note, verbatim>
//! ```
//!
//! (tlog-proof "Format".) The hashes are those of the log's algorithm, which
//! the checkpoint names; for a plain C2SP checkpoint they are SHA-256 as the
//! spec says. Verification follows tlog-proof "Verifying a tlog proof":
//! the checkpoint must satisfy a [`Policy`] (log signature and k-of-n
//! cosignatures), then the inclusion proof must lead from the leaf hash to
//! its root. Limits: the file is at most [`MAX_PROOF_LEN`] bytes and `extra`
//! at most [`MAX_EXTRA_LEN`] bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::checkpoint::{parse_decimal, parse_hash, Checkpoint};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::node_store::NodeStore;
use crate::note::{Note, MAX_NOTE_LEN};
use crate::policy::{Policy, VerifiedCheckpoint};
use crate::proof::verify_inclusion;
use crate::tree::MerkleLog;

/// The first line of every proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Largest proof file accepted: a maximal note plus 8 KiB of header lines.
pub const MAX_PROOF_LEN: usize = MAX_NOTE_LEN + 8 * 1024;

/// Largest `extra` payload accepted, in bytes (decoded).
pub const MAX_EXTRA_LEN: usize = 4096;

/// Most inclusion proof hashes (a tree below 2^63 leaves needs at most 63).
pub const MAX_PATH_LEN: usize = 63;

/// What is malformed in a tlog-proof file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// Larger than [`MAX_PROOF_LEN`].
    #[error("proof is {len} bytes, above the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not UTF-8 text.
    #[error("proof is not UTF-8")]
    NotUtf8,
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("first line is not c2sp.org/tlog-proof@v1")]
    BadHeader,
    /// An `extra` line that is not canonical, non-empty base64 within
    /// [`MAX_EXTRA_LEN`].
    #[error("malformed extra line")]
    BadExtra,
    /// A missing or non-canonical `index` line.
    #[error("missing or malformed index line")]
    BadIndex,
    /// A proof line that is not the base64 of 32 bytes.
    #[error("proof hash line {line} is not the base64 of 32 bytes")]
    BadHash {
        /// Zero-based index of the hash line.
        line: usize,
    },
    /// More than [`MAX_PATH_LEN`] proof lines.
    #[error("more than {max} proof hashes")]
    TooManyHashes {
        /// The limit.
        max: usize,
    },
    /// No empty line followed by a checkpoint.
    #[error("no checkpoint after an empty line")]
    MissingCheckpoint,
}

fn err(e: TlogProofError) -> Error {
    Error::TlogProof(e)
}

/// A parsed tlog proof. Nothing in it is trusted until [`TlogProof::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque application data; unauthenticated.
    pub extra: Option<Vec<u8>>,
    /// Zero-based index of the entry.
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up.
    pub path: Vec<Hash>,
    /// The signed (and usually cosigned) checkpoint.
    pub checkpoint: Note,
}

impl TlogProof {
    /// Builds the proof of entry `index` of `log` against a signed checkpoint
    /// of that log (whose size the log must have reached).
    pub fn for_entry<S: NodeStore>(
        log: &MerkleLog<S>,
        index: u64,
        checkpoint_note: &[u8],
        extra: Option<Vec<u8>>,
    ) -> Result<Self> {
        let checkpoint = Note::parse(checkpoint_note)?;
        let cp = Checkpoint::parse_body(checkpoint.text())?;
        let proof = log.inclusion_proof(index, cp.size)?;
        let p = TlogProof {
            extra,
            index,
            path: proof.path,
            checkpoint,
        };
        p.check_extra()?;
        Ok(p)
    }

    fn check_extra(&self) -> Result<()> {
        match &self.extra {
            Some(e) if e.is_empty() || e.len() > MAX_EXTRA_LEN => {
                Err(err(TlogProofError::BadExtra))
            }
            _ => Ok(()),
        }
    }

    /// Parses a proof file strictly (tlog-proof "Format").
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_PROOF_LEN {
            return Err(err(TlogProofError::TooLarge {
                len: bytes.len(),
                max: MAX_PROOF_LEN,
            }));
        }
        let text = core::str::from_utf8(bytes).map_err(|_| err(TlogProofError::NotUtf8))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or(err(TlogProofError::MissingCheckpoint))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(HEADER) {
            return Err(err(TlogProofError::BadHeader));
        }
        let extra = match lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            Some(b64) => {
                if b64.len() > MAX_EXTRA_LEN.div_ceil(3) * 4 {
                    return Err(err(TlogProofError::BadExtra));
                }
                let e = BASE64
                    .decode(b64)
                    .map_err(|_| err(TlogProofError::BadExtra))?;
                lines.next();
                Some(e)
            }
            None => None,
        };
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .and_then(parse_decimal)
            .ok_or(err(TlogProofError::BadIndex))?;
        let mut path = Vec::new();
        for (line, l) in lines.enumerate() {
            if line >= MAX_PATH_LEN {
                return Err(err(TlogProofError::TooManyHashes { max: MAX_PATH_LEN }));
            }
            path.push(parse_hash(l).ok_or(err(TlogProofError::BadHash { line }))?);
        }
        let p = TlogProof {
            extra,
            index,
            path,
            checkpoint: Note::parse(checkpoint.as_bytes())?,
        };
        p.check_extra()?;
        Ok(p)
    }

    /// The proof file text.
    pub fn to_text(&self) -> Result<String> {
        self.check_extra()?;
        if self.path.len() > MAX_PATH_LEN {
            return Err(err(TlogProofError::TooManyHashes { max: MAX_PATH_LEN }));
        }
        let mut s = format!("{HEADER}\n");
        if let Some(e) = &self.extra {
            s.push_str(&format!("extra {}\n", BASE64.encode(e)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.path {
            s.push_str(&BASE64.encode(h.0));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint.to_text()?);
        Ok(s)
    }

    /// Verifies the proof for the entry whose leaf hash is `leaf_hash`
    /// (tlog-proof "Verifying a tlog proof", steps 2 to 4): the checkpoint
    /// satisfies `policy`, and the inclusion proof binds the leaf to its root.
    pub fn verify(&self, policy: &Policy, leaf_hash: &Hash) -> Result<VerifiedCheckpoint> {
        let v = policy.verify_note(self.checkpoint.clone())?;
        let cp = &v.checkpoint;
        verify_inclusion(
            cp.alg(),
            self.index,
            cp.size,
            leaf_hash,
            &self.path,
            &cp.root,
        )?;
        Ok(v)
    }

    /// [`TlogProof::verify`] for the entry bytes `data` (step 1: the leaf
    /// hash is the RFC 9162 leaf hash of `data` with the log's algorithm).
    pub fn verify_entry(&self, policy: &Policy, data: &[u8]) -> Result<VerifiedCheckpoint> {
        self.verify(policy, &policy.log().alg().leaf_hash(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_structure_errors_are_typed() {
        let cases: [(&[u8], TlogProofError); 5] = [
            (
                b"c2sp.org/tlog-proof@v2\nindex 0\n\nx",
                TlogProofError::BadHeader,
            ),
            (
                b"c2sp.org/tlog-proof@v1\nindex 00\n\nx",
                TlogProofError::BadIndex,
            ),
            (
                b"c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\nx",
                TlogProofError::BadExtra,
            ),
            (
                b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx",
                TlogProofError::BadHash { line: 0 },
            ),
            (
                b"c2sp.org/tlog-proof@v1\nindex 1\n",
                TlogProofError::MissingCheckpoint,
            ),
        ];
        for (input, want) in cases {
            match TlogProof::parse(input) {
                Err(Error::TlogProof(e)) => assert_eq!(e, want),
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }
}
