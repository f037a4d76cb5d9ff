//! Split-view evidence: two checkpoints signed by one log that cannot both
//! be true, in a form anyone holding the log's key can check without
//! trusting whoever reports it.
//!
//! tlog-checkpoint "Signatures": a log MUST NOT sign two checkpoints that no
//! consistency proof joins. Two shapes of proof are accepted:
//!
//! - **Same size, different roots.** Two signed checkpoints of one size.
//! - **Not a prefix.** An older checkpoint (size `m`) and a newer one (size
//!   `n > m`), with a root `R` and a consistency proof from `(m, R)` to the
//!   newer root that *verifies*, while `R` differs from the older root. By
//!   collision resistance the verified proof shows that `R` is the root of
//!   the newer tree's first `m` leaves, so the older checkpoint is not a
//!   prefix of the newer one.
//!
//! A consistency proof that merely *fails* proves nothing (anyone can write
//! a wrong proof). [`SplitViewEvidence::from_failed_proof`] turns a failed
//! proof into evidence when it can: when the proof reproduces the newer root
//! but implies another old root (possible when `m` is not a power of two).
//!
//! # Text form
//!
//! ```text
//! medledger/split-view/v1
//! same-size | not-prefix
//! prefix-root <base64>      (not-prefix only)
//! <base64 hash>             (not-prefix only: 0 to 63 proof lines)
//! note <byte length>        then that many bytes: the first / older note
//! note <byte length>        then the second / newer note
//! ```

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::checkpoint::{parse_decimal, parse_hash, LogKey, SignedCheckpoint};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::note::MAX_NOTE_LEN;
use crate::proof::{roots_from_consistency, verify_consistency};

const HEADER: &str = "medledger/split-view/v1";

/// Two conflicting signed checkpoints and what shows the conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitViewEvidence {
    /// Two signed checkpoints of one size with different roots.
    SameSize {
        /// One signed checkpoint note.
        first: String,
        /// The other.
        second: String,
    },
    /// A verified consistency proof binds `prefix_root` to the newer tree's
    /// first `older.size` leaves, and it is not the older checkpoint's root.
    NotPrefix {
        /// The smaller signed checkpoint note.
        older: String,
        /// The larger signed checkpoint note.
        newer: String,
        /// Root of the newer tree's first `older.size` leaves.
        prefix_root: Hash,
        /// Consistency proof from `prefix_root` to the newer root.
        proof: Vec<Hash>,
    },
}

fn next_line<'a>(rest: &mut &'a str) -> Result<&'a str> {
    let (l, r) = rest.split_once('\n').ok_or(not("truncated"))?;
    *rest = r;
    Ok(l)
}

fn not(reason: &'static str) -> Error {
    Error::NotSplitView { reason }
}

impl SplitViewEvidence {
    /// Checks the evidence against the log's key: both checkpoints carry a
    /// valid log signature and are of this log, and they conflict.
    pub fn verify(&self, log: &LogKey) -> Result<()> {
        match self {
            SplitViewEvidence::SameSize { first, second } => {
                let a = log.verify(first.as_bytes())?.checkpoint;
                let b = log.verify(second.as_bytes())?.checkpoint;
                if a.size != b.size {
                    return Err(not("sizes differ"));
                }
                if a.root == b.root {
                    return Err(not("roots are equal"));
                }
                Ok(())
            }
            SplitViewEvidence::NotPrefix {
                older,
                newer,
                prefix_root,
                proof,
            } => {
                let a = log.verify(older.as_bytes())?.checkpoint;
                let b = log.verify(newer.as_bytes())?.checkpoint;
                if a.size == 0 || a.size >= b.size {
                    return Err(not("need 0 < older size < newer size"));
                }
                if *prefix_root == a.root {
                    return Err(not("prefix root equals the older root"));
                }
                verify_consistency(log.alg(), a.size, b.size, prefix_root, &b.root, proof)
                    .map_err(|_| not("the proof does not bind the prefix root to the newer root"))
            }
        }
    }

    /// Builds evidence from two signed checkpoints and the consistency proof
    /// from the smaller to the larger that failed to verify. Fails with
    /// [`Error::NotSplitView`] when these prove no conflict (for example the
    /// proof is merely wrong), or with the verification error of a note.
    pub fn from_failed_proof(log: &LogKey, a: &str, b: &str, proof: &[Hash]) -> Result<Self> {
        let sa = log.verify(a.as_bytes())?;
        let sb = log.verify(b.as_bytes())?;
        let ((older, o), (newer, n)) = if sa.checkpoint.size <= sb.checkpoint.size {
            ((a, &sa), (b, &sb))
        } else {
            ((b, &sb), (a, &sa))
        };
        let ev = Self::build(log, older, o, newer, n, proof)?;
        ev.verify(log)?;
        Ok(ev)
    }

    fn build(
        log: &LogKey,
        older: &str,
        o: &SignedCheckpoint,
        newer: &str,
        n: &SignedCheckpoint,
        proof: &[Hash],
    ) -> Result<Self> {
        let (oc, nc) = (&o.checkpoint, &n.checkpoint);
        if oc.size == nc.size {
            return Ok(SplitViewEvidence::SameSize {
                first: older.to_owned(),
                second: newer.to_owned(),
            });
        }
        if oc.size == 0 {
            return Err(not("the empty tree is a prefix of every tree"));
        }
        let (prefix_root, new_root) =
            roots_from_consistency(log.alg(), oc.size, nc.size, &oc.root, proof)
                .map_err(|_| not("the proof is malformed for these sizes"))?;
        if new_root != nc.root {
            return Err(not("the proof does not reproduce the newer root"));
        }
        Ok(SplitViewEvidence::NotPrefix {
            older: older.to_owned(),
            newer: newer.to_owned(),
            prefix_root,
            proof: proof.to_vec(),
        })
    }

    /// The text form (module docs).
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\n");
        let (a, b) = match self {
            SplitViewEvidence::SameSize { first, second } => {
                s.push_str("same-size\n");
                (first, second)
            }
            SplitViewEvidence::NotPrefix {
                older,
                newer,
                prefix_root,
                proof,
            } => {
                s.push_str("not-prefix\n");
                s.push_str(&format!("prefix-root {}\n", BASE64.encode(prefix_root.0)));
                for h in proof {
                    s.push_str(&format!("{}\n", BASE64.encode(h.0)));
                }
                (older, newer)
            }
        };
        for n in [a, b] {
            s.push_str(&format!("note {}\n{n}", n.len()));
        }
        s
    }

    /// Parses the text form strictly (the notes are checked by
    /// [`SplitViewEvidence::verify`]).
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > 2 * MAX_NOTE_LEN + 4096 {
            return Err(not("evidence too large"));
        }
        let mut rest = text;
        if next_line(&mut rest)? != HEADER {
            return Err(not("bad header"));
        }
        let kind = next_line(&mut rest)?;
        let mut prefix = None;
        let mut proof = Vec::new();
        let mut l = next_line(&mut rest)?;
        if kind == "not-prefix" {
            let p = l
                .strip_prefix("prefix-root ")
                .ok_or(not("no prefix root"))?;
            prefix = Some(parse_hash(p).ok_or(not("bad prefix root"))?);
            l = next_line(&mut rest)?;
            while !l.starts_with("note ") {
                if proof.len() == 63 {
                    return Err(not("proof too long"));
                }
                proof.push(parse_hash(l).ok_or(not("bad proof hash"))?);
                l = next_line(&mut rest)?;
            }
        } else if kind != "same-size" {
            return Err(not("unknown kind"));
        }
        let mut notes = Vec::with_capacity(2);
        for i in 0..2 {
            if i == 1 {
                l = next_line(&mut rest)?;
            }
            let len = l
                .strip_prefix("note ")
                .and_then(parse_decimal)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|v| *v <= MAX_NOTE_LEN)
                .ok_or(not("bad note length"))?;
            let note = rest.get(..len).ok_or(not("truncated note"))?;
            rest = rest.get(len..).ok_or(not("truncated note"))?;
            notes.push(note.to_owned());
        }
        if !rest.is_empty() {
            return Err(not("trailing bytes"));
        }
        let second = notes.pop().ok_or(not("truncated"))?;
        let first = notes.pop().ok_or(not("truncated"))?;
        Ok(match prefix {
            None => SplitViewEvidence::SameSize { first, second },
            Some(prefix_root) => SplitViewEvidence::NotPrefix {
                older: first,
                newer: second,
                prefix_root,
                proof,
            },
        })
    }
}
