//! The verifiable export: a JSON bundle of events with inclusion proofs,
//! the checkpoints (signed notes with cosignatures) and the consistency
//! proofs between successive checkpoints.
//!
//! # Schema (`medledger-audit-export/v1`)
//!
//! ```json
//! {
//!   "format": "medledger-audit-export/v1",
//!   "origin": "<log origin line>",
//!   "hash": "blake3 | sha3-256 | sha256",
//!   "patient": "<64 hex pseudonym>" | null,
//!   "from_size": <tree size where the patient range starts: 0 or checkpoints[0]'s size>,
//!   "checkpoints": ["<signed note text>", ...],             // ascending
//!   "consistency": [{"old_size": n, "new_size": m,
//!                    "path": ["<base64 hash>", ...]}, ...],  // checkpoints[k] -> [k+1]
//!   "events": [{"index": i, "event": "<base64 encoded event>",
//!               "proof": ["<base64 hash>", ...]}, ...]      // ascending index
//! }
//! ```
//!
//! Inclusion proofs are against the last checkpoint. The serialization is
//! canonical (the field order above, no whitespace, serde_json's string
//! escaping): the verifier re-serializes what it parsed and refuses any
//! other byte sequence, so no byte of a bundle can change unnoticed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use medledger_chain::{Hash, NodeStore};
use serde::{Deserialize, Serialize};

use crate::audit_log::AuditLog;
use crate::error::{Error, Result};
use crate::pseudonym::PatientKey;

/// The format line of version 1.
pub const FORMAT: &str = "medledger-audit-export/v1";
/// Largest export accepted, in bytes.
pub const MAX_EXPORT_LEN: usize = 256 * 1024 * 1024;
/// Most checkpoints in one export.
pub const MAX_CHECKPOINTS: usize = 4096;
/// Most hashes in one proof (a tree of at most 2^63 leaves needs fewer).
pub const MAX_PROOF_HASHES: usize = 64;

/// A consistency proof between two checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConsistency {
    /// The earlier checkpoint's size.
    pub old_size: u64,
    /// The later checkpoint's size.
    pub new_size: u64,
    /// The proof hashes, base64.
    pub path: Vec<String>,
}

/// One event with its inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEvent {
    /// Its log index.
    pub index: u64,
    /// Its canonical encoding, base64.
    pub event: String,
    /// Inclusion proof against the last checkpoint, base64 hashes.
    pub proof: Vec<String>,
}

/// An export bundle (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Always [`FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The log's hash algorithm name.
    pub hash: String,
    /// The patient whose complete history between the checkpoints this is,
    /// or `None` for any other query's events (no completeness claim).
    pub patient: Option<String>,
    /// Where the patient range starts.
    pub from_size: u64,
    /// Signed checkpoint notes, ascending.
    pub checkpoints: Vec<String>,
    /// Consistency proofs between successive checkpoints.
    pub consistency: Vec<ExportConsistency>,
    /// The events, ascending by index.
    pub events: Vec<ExportEvent>,
}

pub(crate) fn encode_path(path: &[Hash]) -> Vec<String> {
    path.iter().map(|h| BASE64.encode(h.0)).collect()
}

/// Decodes a proof path: at most [`MAX_PROOF_HASHES`] canonical base64
/// hashes.
pub(crate) fn decode_path(path: &[String]) -> Result<Vec<Hash>> {
    if path.len() > MAX_PROOF_HASHES {
        return Err(Error::BadField {
            what: "proof length",
        });
    }
    path.iter()
        .map(|s| {
            if s.len() != 44 {
                return Err(Error::BadField { what: "proof hash" });
            }
            BASE64
                .decode(s)
                .ok()
                .and_then(|b| Hash::from_slice(&b))
                .ok_or(Error::BadField { what: "proof hash" })
        })
        .collect()
}

impl Export {
    /// The canonical JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::ExportMalformed {
            reason: e.to_string(),
        })
    }

    /// Parses an export strictly: size cap, schema (unknown fields
    /// refused), canonical form, format line and count caps. Nothing is
    /// verified cryptographically here (see [`crate::verify_export`]).
    pub fn parse(json: &[u8]) -> Result<Self> {
        if json.len() > MAX_EXPORT_LEN {
            return Err(Error::ExportTooLarge {
                len: json.len(),
                max: MAX_EXPORT_LEN,
            });
        }
        let export: Export = serde_json::from_slice(json).map_err(|e| Error::ExportMalformed {
            reason: e.to_string(),
        })?;
        if export.to_json()?.as_bytes() != json {
            return Err(Error::ExportMalformed {
                reason: "not in canonical form (whitespace, escaping or number spelling)".into(),
            });
        }
        if export.format != FORMAT {
            return Err(Error::ExportMalformed {
                reason: format!("unknown format {:?}", export.format.get(..64).unwrap_or("")),
            });
        }
        if export.checkpoints.is_empty() || export.checkpoints.len() > MAX_CHECKPOINTS {
            return Err(Error::ExportMalformed {
                reason: "needs between 1 and 4096 checkpoints".into(),
            });
        }
        Ok(export)
    }
}

impl<S: NodeStore> AuditLog<S> {
    /// Exports `patient`'s complete history in the range between issued
    /// checkpoints `from` and `to` (positions in [`AuditLog::checkpoints`]):
    /// every event of the patient with `checkpoints[from].size <= index <
    /// checkpoints[to].size`. With `from = None` the range starts at 0 and
    /// only checkpoint `to` is included.
    pub fn export_patient(
        &self,
        patient: &PatientKey,
        from: Option<usize>,
        to: usize,
    ) -> Result<Export> {
        let (cps, from_size, to_size) = self.export_checkpoints(from, to)?;
        let indexes: Vec<u64> = self
            .patient_indexes(patient)
            .into_iter()
            .filter(|i| (from_size..to_size).contains(i))
            .collect();
        self.build_export(Some(patient), from_size, cps, &indexes)
    }

    /// Exports the events at `indexes` (ascending, each below checkpoint
    /// `to`'s size) under checkpoint `to` alone, with no completeness
    /// claim (e.g. an actor's activity or a time range).
    pub fn export_events(&self, indexes: &[u64], to: usize) -> Result<Export> {
        let (cps, _, _) = self.export_checkpoints(None, to)?;
        self.build_export(None, 0, cps, indexes)
    }

    fn export_checkpoints(
        &self,
        from: Option<usize>,
        to: usize,
    ) -> Result<(Vec<crate::audit_log::IssuedCheckpoint>, u64, u64)> {
        let all = self.checkpoints();
        let start = from.unwrap_or(to);
        let cps = all
            .get(start..=to)
            .ok_or(Error::NoCheckpoint {
                what: "at the requested positions",
            })?
            .to_vec();
        let from_size = match (from, cps.first()) {
            (Some(_), Some(c)) => c.checkpoint.size,
            _ => 0,
        };
        let to_size = cps.last().map_or(0, |c| c.checkpoint.size);
        Ok((cps, from_size, to_size))
    }

    fn build_export(
        &self,
        patient: Option<&PatientKey>,
        from_size: u64,
        cps: Vec<crate::audit_log::IssuedCheckpoint>,
        indexes: &[u64],
    ) -> Result<Export> {
        let to_size = cps.last().map_or(0, |c| c.checkpoint.size);
        let (consistency, proofs) = self.with_tree(|tree| {
            let mut consistency = Vec::new();
            for pair in cps.windows(2) {
                if let [a, b] = pair {
                    let (old, new) = (a.checkpoint.size, b.checkpoint.size);
                    let path = if old == 0 || old == new {
                        Vec::new()
                    } else {
                        tree.consistency_proof(old, new)?.path
                    };
                    consistency.push(ExportConsistency {
                        old_size: old,
                        new_size: new,
                        path: encode_path(&path),
                    });
                }
            }
            let proofs = indexes
                .iter()
                .map(|&i| Ok(tree.inclusion_proof(i, to_size)?.path))
                .collect::<Result<Vec<_>>>()?;
            Ok((consistency, proofs))
        })?;
        let mut events = Vec::with_capacity(indexes.len());
        for (&i, path) in indexes.iter().zip(proofs) {
            events.push(ExportEvent {
                index: i,
                event: BASE64.encode(self.entry(i)?),
                proof: encode_path(&path),
            });
        }
        Ok(Export {
            format: FORMAT.to_owned(),
            origin: self.origin().to_owned(),
            hash: self.alg().name().to_owned(),
            patient: patient.map(PatientKey::to_hex),
            from_size,
            checkpoints: cps.into_iter().map(|c| c.note).collect(),
            consistency,
            events,
        })
    }
}
