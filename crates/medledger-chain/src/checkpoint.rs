//! Signed checkpoints: C2SP tlog-checkpoint bodies with medledger's chain
//! lines, inside signed notes.
//!
//! # Body
//!
//! c2sp.org/tlog-checkpoint "Note text": origin, decimal tree size (no
//! leading zeroes), base64 root hash, then extension lines. A medledger
//! checkpoint has exactly these extension lines, in this order:
//!
//! ```text
//! <origin>
//! <size>
//! <base64 root>
//! medledger/hash <blake3 | sha3-256 | sha256>
//! medledger/time <unix seconds, decimal, no leading zeroes, < 2^63>
//! medledger/prev <base64 hash of the previous checkpoint>   (absent in the first)
//! ```
//!
//! Any other extension line, a repeated or misordered one, or a `hash` line
//! without a `time` line is refused. A checkpoint with no extension line is a
//! plain C2SP checkpoint: it is accepted only by a verifier configured for
//! SHA-256 (RFC 6962 logs such as those the C2SP witnesses serve).
//!
//! # Chain hash
//!
//! The checkpoints of a log form a hash chain. The hash of a checkpoint is
//!
//! ```text
//! H_alg("medledger/checkpoint-hash/v1\n" ‖ body)
//! ```
//!
//! where `alg` is the log's algorithm and `body` the complete note text
//! (all lines above, with its final newline; signatures are not included, so
//! later cosignatures do not change it). The fixed prefix separates it from
//! tree leaves (`0x00`) and nodes (`0x01`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::hash::{Hash, HashAlg};
use crate::note::{Note, NoteSigner, NoteVerifier, SIG_TYPE_ED25519};

/// Domain-separation prefix of the checkpoint chain hash.
pub const CHECKPOINT_HASH_CONTEXT: &[u8] = b"medledger/checkpoint-hash/v1\n";

const HASH_LINE: &str = "medledger/hash ";
const TIME_LINE: &str = "medledger/time ";
const PREV_LINE: &str = "medledger/prev ";

/// What is wrong with a checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// One of the three mandatory lines is missing or empty.
    #[error("missing or empty {0} line")]
    MissingLine(&'static str),
    /// The body does not end in a newline.
    #[error("body does not end in a newline")]
    Unterminated,
    /// A size that is not a canonical decimal below 2^63.
    #[error("tree size is not a canonical decimal below 2^63")]
    InvalidSize,
    /// A root hash that is not the base64 of 32 bytes.
    #[error("root hash is not canonical base64 of 32 bytes")]
    InvalidRoot,
    /// An extension line that is unknown, repeated or out of order.
    #[error("unexpected extension line {line} (counting from 0 after the root)")]
    UnexpectedExtension {
        /// Zero-based index among the extension lines.
        line: usize,
    },
    /// A medledger extension line with a malformed value.
    #[error("malformed value in the medledger/{0} line")]
    InvalidExtensionValue(&'static str),
    /// A hash algorithm name this crate does not know.
    #[error("unknown hash algorithm name")]
    UnknownHashAlg,
    /// A checkpoint naming another algorithm than the verifier's.
    #[error("checkpoint names hash {found}, the log uses {expected}")]
    HashAlgMismatch {
        /// The log's configured algorithm.
        expected: HashAlg,
        /// The one the checkpoint names.
        found: HashAlg,
    },
    /// A plain checkpoint (no hash line) for a log that is not SHA-256.
    #[error("checkpoint names no hash algorithm; the log uses {expected}")]
    MissingHashLine {
        /// The log's configured algorithm.
        expected: HashAlg,
    },
    /// A checkpoint from another log.
    #[error("checkpoint origin {found:?} is not {expected:?}")]
    OriginMismatch {
        /// The configured origin.
        expected: String,
        /// The origin line found.
        found: String,
    },
    /// A checkpoint that does not extend the previous one (wrong previous
    /// hash, origin, algorithm, smaller size or earlier time).
    #[error("checkpoint does not follow the previous one: {0}")]
    BrokenChain(&'static str),
}

/// medledger's extension lines: algorithm, time and previous checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainLines {
    /// The log's hash algorithm.
    pub alg: HashAlg,
    /// When the log signed the checkpoint, in Unix seconds.
    pub time: u64,
    /// Chain hash of the previous checkpoint; `None` for the first.
    pub prev: Option<Hash>,
}

/// A checkpoint body (tlog-checkpoint "Note text").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash of the tree of `size` leaves.
    pub root: Hash,
    /// medledger's extension lines; `None` for a plain C2SP checkpoint.
    pub chain: Option<ChainLines>,
}

/// A canonical ASCII decimal below 2^63 (no sign, no leading zero).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse::<u64>().ok().filter(|v| *v <= i64::MAX as u64)
}

/// The canonical base64 of exactly 32 bytes.
pub(crate) fn parse_hash(s: &str) -> Option<Hash> {
    // 32 bytes are exactly 44 base64 characters; checking first bounds work.
    if s.len() != 44 {
        return None;
    }
    BASE64.decode(s).ok().and_then(|b| Hash::from_slice(&b))
}

fn cp_err(e: CheckpointError) -> Error {
    Error::Checkpoint(e)
}

impl Checkpoint {
    /// The log's hash algorithm: the one named, or SHA-256 for a plain
    /// C2SP checkpoint.
    pub fn alg(&self) -> HashAlg {
        self.chain.map_or(HashAlg::Sha256, |c| c.alg)
    }

    /// The note text of this checkpoint.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.0)
        );
        if let Some(c) = &self.chain {
            s.push_str(&format!(
                "{HASH_LINE}{}\n{TIME_LINE}{}\n",
                c.alg.name(),
                c.time
            ));
            if let Some(p) = &c.prev {
                s.push_str(&format!("{PREV_LINE}{}\n", BASE64.encode(p.0)));
            }
        }
        s
    }

    /// Parses a checkpoint body strictly (see the module docs).
    pub fn parse_body(text: &str) -> Result<Self> {
        let body = text
            .strip_suffix('\n')
            .ok_or(cp_err(CheckpointError::Unterminated))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(cp_err(CheckpointError::MissingLine("origin")))?;
        let size = lines
            .next()
            .ok_or(cp_err(CheckpointError::MissingLine("size")))?;
        let size = parse_decimal(size).ok_or(cp_err(CheckpointError::InvalidSize))?;
        let root = lines
            .next()
            .ok_or(cp_err(CheckpointError::MissingLine("root")))?;
        let root = parse_hash(root).ok_or(cp_err(CheckpointError::InvalidRoot))?;
        let ext: Vec<&str> = lines.take(4).collect();
        let chain = parse_chain_lines(&ext)?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            chain,
        })
    }

    /// The chain hash of this checkpoint (module docs, "Chain hash").
    pub fn hash(&self) -> Hash {
        self.alg()
            .digest(&[CHECKPOINT_HASH_CONTEXT, self.to_body().as_bytes()])
    }

    /// The first checkpoint of a medledger log.
    pub fn first(origin: &str, alg: HashAlg, size: u64, root: Hash, time: u64) -> Self {
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            chain: Some(ChainLines {
                alg,
                time,
                prev: None,
            }),
        }
    }

    /// The checkpoint that follows this one, naming its chain hash.
    pub fn successor(&self, size: u64, root: Hash, time: u64) -> Self {
        Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            chain: Some(ChainLines {
                alg: self.alg(),
                time,
                prev: Some(self.hash()),
            }),
        }
    }

    /// Checks that `next` extends this checkpoint's chain: same origin and
    /// algorithm, previous hash equal to this checkpoint's hash, size and time
    /// not going back. (Tree consistency is checked separately with a
    /// consistency proof.)
    pub fn check_successor(&self, next: &Checkpoint) -> Result<()> {
        let broken = |why| Err(cp_err(CheckpointError::BrokenChain(why)));
        let (Some(a), Some(b)) = (&self.chain, &next.chain) else {
            return broken("plain checkpoints carry no chain");
        };
        if self.origin != next.origin {
            return broken("origin differs");
        }
        if a.alg != b.alg {
            return broken("hash algorithm differs");
        }
        if b.prev != Some(self.hash()) {
            return broken("previous-checkpoint hash differs");
        }
        if next.size < self.size {
            return broken("size went back");
        }
        if b.time < a.time {
            return broken("time went back");
        }
        Ok(())
    }

    /// Signs the body with the log's key and returns the signed note text.
    pub fn sign<S: NoteSigner + ?Sized>(&self, signer: &S) -> Result<String> {
        let mut note = Note::new(&self.to_body())?;
        note.sign(signer)?;
        note.to_text()
    }
}

fn parse_chain_lines(ext: &[&str]) -> Result<Option<ChainLines>> {
    let unexpected = |line| cp_err(CheckpointError::UnexpectedExtension { line });
    let Some(first) = ext.first() else {
        return Ok(None);
    };
    let alg = first.strip_prefix(HASH_LINE).ok_or(unexpected(0))?;
    let alg = HashAlg::from_name(alg).ok_or(cp_err(CheckpointError::UnknownHashAlg))?;
    let time = ext
        .get(1)
        .ok_or(unexpected(1))?
        .strip_prefix(TIME_LINE)
        .ok_or(unexpected(1))?;
    let time = parse_decimal(time).ok_or(cp_err(CheckpointError::InvalidExtensionValue("time")))?;
    let prev = match ext.get(2) {
        None => None,
        Some(l) => {
            let p = l.strip_prefix(PREV_LINE).ok_or(unexpected(2))?;
            Some(parse_hash(p).ok_or(cp_err(CheckpointError::InvalidExtensionValue("prev")))?)
        }
    };
    if ext.len() > 3 {
        return Err(unexpected(3));
    }
    Ok(Some(ChainLines { alg, time, prev }))
}

/// A checkpoint whose log signature verified, with the note it came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The note (body and every signature line, verified or not).
    pub note: Note,
}

/// What a verifier must know about a log: its origin, its key (type `0x01`)
/// and its hash algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKey {
    origin: String,
    verifier: NoteVerifier,
    alg: HashAlg,
}

impl LogKey {
    /// A log identity. The verifier must be an Ed25519 note key (`0x01`).
    pub fn new(origin: &str, verifier: NoteVerifier, alg: HashAlg) -> Result<Self> {
        if origin.is_empty() || origin.contains('\n') {
            return Err(cp_err(CheckpointError::MissingLine("origin")));
        }
        if verifier.sig_type() != SIG_TYPE_ED25519 {
            return Err(Error::InvalidPolicy {
                reason: "a log key must be an Ed25519 note key (type 0x01)",
            });
        }
        Ok(LogKey {
            origin: origin.to_owned(),
            verifier,
            alg,
        })
    }

    /// A log identity from its vkey.
    pub fn from_vkey(origin: &str, vkey: &str, alg: HashAlg) -> Result<Self> {
        Self::new(origin, NoteVerifier::from_vkey(vkey)?, alg)
    }

    /// The origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's key.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The log's hash algorithm.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Parses a body and checks that it belongs to this log: origin and hash
    /// algorithm (a plain checkpoint only for a SHA-256 log).
    pub fn check_body(&self, body: &str) -> Result<Checkpoint> {
        let cp = Checkpoint::parse_body(body)?;
        if cp.origin != self.origin {
            return Err(cp_err(CheckpointError::OriginMismatch {
                expected: self.origin.clone(),
                found: cp.origin,
            }));
        }
        match cp.chain {
            Some(c) if c.alg != self.alg => Err(cp_err(CheckpointError::HashAlgMismatch {
                expected: self.alg,
                found: c.alg,
            })),
            None if self.alg != HashAlg::Sha256 => Err(cp_err(CheckpointError::MissingHashLine {
                expected: self.alg,
            })),
            _ => Ok(cp),
        }
    }

    /// Parses a signed checkpoint note, checks the log's signature and the
    /// body. Other signatures (cosignatures, unknown keys) are ignored here.
    pub fn verify(&self, note_text: &[u8]) -> Result<SignedCheckpoint> {
        self.verify_note(Note::parse(note_text)?)
    }

    /// [`LogKey::verify`] for a note already parsed. The signature is checked
    /// before the body is read.
    pub fn verify_note(&self, note: Note) -> Result<SignedCheckpoint> {
        note.verify(core::slice::from_ref(&self.verifier))?;
        let checkpoint = self.check_body(note.text())?;
        Ok(SignedCheckpoint { checkpoint, note })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example body of tlog-checkpoint (C2SP, CC BY 4.0).
    const SPEC_BODY: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn spec_example_body_parses_as_plain() {
        let cp = Checkpoint::parse_body(SPEC_BODY).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(cp.chain, None);
        assert_eq!(cp.alg(), HashAlg::Sha256);
        assert_eq!(cp.to_body(), SPEC_BODY);
    }

    #[test]
    fn chain_lines_round_trip_and_order_is_strict() {
        let a = Checkpoint::first("o.example/log", HashAlg::Blake3, 1, Hash([1; 32]), 10);
        let b = a.successor(2, Hash([2; 32]), 11);
        for cp in [&a, &b] {
            assert_eq!(&Checkpoint::parse_body(&cp.to_body()).unwrap(), cp);
        }
        a.check_successor(&b).unwrap();
        let body = b.to_body();
        let lines: Vec<&str> = body.lines().collect();
        let swapped = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n",
            lines[0], lines[1], lines[2], lines[4], lines[3], lines[5]
        );
        assert!(matches!(
            Checkpoint::parse_body(&swapped),
            Err(Error::Checkpoint(CheckpointError::UnexpectedExtension {
                line: 0
            }))
        ));
        let dup = format!("{body}{}\n", lines[5]);
        assert!(matches!(
            Checkpoint::parse_body(&dup),
            Err(Error::Checkpoint(CheckpointError::UnexpectedExtension {
                line: 3
            }))
        ));
    }

    #[test]
    fn rejects_noncanonical_numbers() {
        for size in ["01", "+1", "", "0x10", "9223372036854775808", "1 "] {
            let body = format!("o\n{size}\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
            assert!(
                matches!(
                    Checkpoint::parse_body(&body),
                    Err(Error::Checkpoint(CheckpointError::InvalidSize))
                ),
                "{size:?}"
            );
        }
    }

    #[test]
    fn chain_hash_is_domain_separated_body_hash() {
        let a = Checkpoint::first("o", HashAlg::Sha256, 0, HashAlg::Sha256.empty_root(), 5);
        let expect = HashAlg::Sha256.digest(&[
            b"medledger/checkpoint-hash/v1\n",
            b"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nmedledger/hash sha256\nmedledger/time 5\n",
        ]);
        assert_eq!(a.hash(), expect);
    }
}
