//! A verifier's policy: accept a checkpoint only with the log's signature
//! and cosignatures from at least `k` of `n` named witnesses.
//!
//! Signatures from unknown keys are ignored (signed-note "Signatures"); a
//! signature from a known key (the log's or a witness's) that fails to
//! verify rejects the whole note. Witnesses are counted by name, so two keys
//! of one witness count once. This is the k-of-n rule of tlog-proof
//! "Verifying a tlog proof", step 3.
//!
//! A [`Policy::strict`] policy additionally refuses a note carrying any
//! signature line that is not from one of its keys: for a verifier that
//! wants every line it is shown to be accounted for (e.g. an auditor who
//! must be able to say who signed what it archives).

use crate::checkpoint::{Checkpoint, LogKey};
use crate::cosignature::DEFAULT_MAX_FUTURE_SKEW;
use crate::error::{Error, Result};
use crate::note::{Note, NoteVerifier, SIG_TYPE_COSIGNATURE_V1};

/// The log, the witnesses a verifier trusts, and how many must cosign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    log: LogKey,
    witnesses: Vec<NoteVerifier>,
    quorum: usize,
    strict: bool,
}

/// One witness cosignature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCosignature {
    /// The witness's key name.
    pub name: String,
    /// When it cosigned (Unix seconds, as the witness claims).
    pub timestamp: u64,
}

/// A checkpoint accepted by a [`Policy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The checkpoint body.
    pub checkpoint: Checkpoint,
    /// The note as received (all signature lines, including ignored ones).
    pub note: Note,
    /// The witness cosignatures that verified, one per witness name.
    pub cosignatures: Vec<VerifiedCosignature>,
}

impl VerifiedCheckpoint {
    /// Refuses the checkpoint if a counted cosignature is dated more than
    /// `max_skew` seconds after `now` (Unix seconds, the verifier's clock)
    /// with [`Error::CosignatureFromFuture`]; for checks such as
    /// [`crate::TlogProof::verify`] that verify through a [`Policy`] without
    /// a clock.
    pub fn check_cosignature_times(&self, now: u64, max_skew: u64) -> Result<()> {
        match self
            .cosignatures
            .iter()
            .find(|c| c.timestamp > now.saturating_add(max_skew))
        {
            Some(c) => Err(Error::CosignatureFromFuture {
                name: c.name.clone(),
                timestamp: c.timestamp,
                now,
                max_skew,
            }),
            None => Ok(()),
        }
    }
}

impl Policy {
    /// A policy. Witness keys must be cosignature keys (type `0x04`), no two
    /// may share name and key ID, and `quorum` may not exceed the number of
    /// distinct witness names (a quorum of 0 trusts the log alone).
    pub fn new(log: LogKey, witnesses: Vec<NoteVerifier>, quorum: usize) -> Result<Self> {
        if witnesses
            .iter()
            .any(|w| w.sig_type() != SIG_TYPE_COSIGNATURE_V1)
        {
            return Err(Error::InvalidPolicy {
                reason: "witness keys must be cosignature/v1 keys (type 0x04)",
            });
        }
        let mut names: Vec<&str> = witnesses.iter().map(NoteVerifier::name).collect();
        names.sort_unstable();
        names.dedup();
        if quorum > names.len() {
            return Err(Error::InvalidPolicy {
                reason: "quorum exceeds the number of named witnesses",
            });
        }
        Ok(Policy {
            log,
            witnesses,
            quorum,
            strict: false,
        })
    }

    /// The same policy, but refusing any note with a signature line from a
    /// key it does not know ([`Error::UnknownSigner`]), instead of ignoring
    /// such lines as signed-note "Signatures" prescribes.
    #[must_use]
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Whether unknown signature lines are refused ([`Policy::strict`]).
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The log this policy is for.
    pub fn log(&self) -> &LogKey {
        &self.log
    }

    /// How many distinct witnesses must cosign.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// Verifies a signed checkpoint note against the policy.
    pub fn verify(&self, note_text: &[u8]) -> Result<VerifiedCheckpoint> {
        self.verify_note(Note::parse(note_text)?)
    }

    /// [`Policy::verify`], and refuses the note if a policy witness's
    /// cosignature is dated more than [`DEFAULT_MAX_FUTURE_SKEW`] after `now`
    /// (Unix seconds, the verifier's clock) with
    /// [`Error::CosignatureFromFuture`]: such a timestamp proves nothing
    /// about when the witness saw the checkpoint. [`Policy::verify`] takes
    /// no clock and does not compare timestamps.
    pub fn verify_at(&self, note_text: &[u8], now: u64) -> Result<VerifiedCheckpoint> {
        self.verify_note_at(Note::parse(note_text)?, now, DEFAULT_MAX_FUTURE_SKEW)
    }

    /// [`Policy::verify_at`] for a parsed note, with an explicit skew in
    /// seconds.
    pub fn verify_note_at(
        &self,
        note: Note,
        now: u64,
        max_skew: u64,
    ) -> Result<VerifiedCheckpoint> {
        let verified = self.verify_note(note)?;
        verified.check_cosignature_times(now, max_skew)?;
        Ok(verified)
    }

    /// [`Policy::verify`] for a parsed note.
    pub fn verify_note(&self, note: Note) -> Result<VerifiedCheckpoint> {
        let mut known = Vec::with_capacity(1 + self.witnesses.len());
        known.push(self.log.verifier().clone());
        known.extend(self.witnesses.iter().cloned());
        // Checks every known signature; any failure rejects the note.
        let verified = note.verify(&known)?;
        if !verified.iter().any(|v| v.verifier_index == 0) {
            return Err(Error::MissingLogSignature);
        }
        if self.strict {
            let unknown = (0..note.signatures().len())
                .find(|line| verified.iter().all(|v| v.signature_index != *line));
            if let Some(sig) = unknown.and_then(|line| Some((line, note.signatures().get(line)?))) {
                return Err(Error::UnknownSigner {
                    line: sig.0,
                    name: sig.1.name.clone(),
                    key_id: sig.1.key_id,
                });
            }
        }
        let checkpoint = self.log.check_body(note.text())?;
        let mut cosignatures: Vec<VerifiedCosignature> = Vec::new();
        for v in verified.iter().filter(|v| v.verifier_index > 0) {
            let (Some(w), Some(timestamp)) = (known.get(v.verifier_index), v.timestamp) else {
                continue;
            };
            if cosignatures.iter().all(|c| c.name != w.name()) {
                cosignatures.push(VerifiedCosignature {
                    name: w.name().to_owned(),
                    timestamp,
                });
            }
        }
        if cosignatures.len() < self.quorum {
            return Err(Error::QuorumNotMet {
                needed: self.quorum,
                got: cosignatures.len(),
            });
        }
        Ok(VerifiedCheckpoint {
            checkpoint,
            note,
            cosignatures,
        })
    }
}
