//! Offline verification of an export bundle.
//!
//! # What is checked, in order (the first failure is reported with the
//! JSON path of the bad item)
//!
//! 1. The bundle: size cap, schema, canonical form, format, the log's origin
//!    and hash algorithm as the [`Policy`] names them.
//! 2. `checkpoints[k]`: the log's signature and a quorum of witness
//!    cosignatures under the policy. Lines from keys the policy does not
//!    know are ignored (signed-note "Signatures"), unless the policy is
//!    [`Policy::strict`]; a line naming a known key whose signature fails
//!    rejects the checkpoint either way. Sizes
//!    and times never go back; adjacent checkpoints with a `prev` line
//!    naming their predecessor are checked against its hash.
//! 3. `consistency[k]`: proves `checkpoints[k]` is a prefix of
//!    `checkpoints[k+1]` (a fork or a swap fails here).
//! 4. `events[i]`: strictly ascending index (no duplicate, no reordering),
//!    below the last checkpoint's size, a canonical event encoding, and an
//!    inclusion proof against the last checkpoint's root.
//! 5. For a patient export, completeness: every event is the patient's, at
//!    or after `from_size`, and names the previous exported event as its
//!    `prev_for_patient`; the first names none or one before `from_size`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use medledger_chain::{verify_consistency, verify_inclusion, Checkpoint, HashAlg, Policy};

use crate::codec::MAX_EVENT_LEN;
use crate::error::{Error, Result};
use crate::event::AuditEvent;
use crate::export::{decode_path, Export};
use crate::pseudonym::PatientKey;

/// A checkpoint that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// Tree size.
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// Signing time (Unix seconds), if the checkpoint names one.
    pub time: Option<u64>,
    /// Names of the witnesses whose cosignature verified.
    pub cosigners: Vec<String>,
}

/// An event that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// Its log index.
    pub index: u64,
    /// The event.
    pub event: AuditEvent,
}

/// What a verified export shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The log's origin.
    pub origin: String,
    /// Its hash algorithm.
    pub alg: HashAlg,
    /// The checkpoints, oldest first.
    pub checkpoints: Vec<CheckpointSummary>,
    /// The patient of a patient export.
    pub patient: Option<PatientKey>,
    /// Start of the range the completeness check covers.
    pub from_size: u64,
    /// End of the range: the last checkpoint's size.
    pub to_size: u64,
    /// Every event, in log order.
    pub events: Vec<VerifiedEvent>,
    /// Whether the per-patient chain was checked complete over
    /// `[from_size, last exported event]`.
    pub complete: bool,
}

impl Report {
    /// The log index of the patient's latest exported event. Compare it
    /// with the newest receipt the patient holds to detect a withheld tail
    /// (see the README, "Completeness").
    pub fn patient_head(&self) -> Option<u64> {
        self.events.last().map(|e| e.index)
    }
}

fn cp_err(reason: &'static str) -> Error {
    Error::CheckpointOrder { reason }
}

/// Verifies an export bundle offline under `policy` (module docs).
pub fn verify_export(json: &[u8], policy: &Policy) -> Result<Report> {
    let export = Export::parse(json)?;
    let alg = policy.log().alg();
    if export.origin != policy.log().origin() {
        return Err(Error::ExportMalformed {
            reason: "origin is not the policy's log".into(),
        });
    }
    if export.hash != alg.name() {
        return Err(Error::ExportMalformed {
            reason: "hash algorithm is not the policy's log's".into(),
        });
    }
    let patient = match &export.patient {
        None => None,
        Some(h) => Some(PatientKey::from_hex(h).ok_or(Error::BadField { what: "patient" })?),
    };

    let mut checkpoints: Vec<Checkpoint> = Vec::with_capacity(export.checkpoints.len());
    let mut summaries = Vec::with_capacity(export.checkpoints.len());
    for (k, text) in export.checkpoints.iter().enumerate() {
        let item = || format!("checkpoints[{k}]");
        let v = policy
            .verify(text.as_bytes())
            .map_err(|e| Error::from(e).at(item()))?;
        let cp = v.checkpoint;
        if let Some(prev) = checkpoints.last() {
            if cp.size < prev.size {
                return Err(cp_err("tree size goes back").at(item()));
            }
            if let (Some(a), Some(b)) = (&prev.chain, &cp.chain) {
                if b.time < a.time {
                    return Err(cp_err("time goes back").at(item()));
                }
            }
            if cp.chain.and_then(|c| c.prev) == Some(prev.hash()) {
                prev.check_successor(&cp)
                    .map_err(|e| Error::from(e).at(item()))?;
            }
        }
        summaries.push(CheckpointSummary {
            size: cp.size,
            root: cp.root.to_hex(),
            time: cp.chain.map(|c| c.time),
            cosigners: v.cosignatures.into_iter().map(|c| c.name).collect(),
        });
        checkpoints.push(cp);
    }

    if export.consistency.len() != checkpoints.len() - 1 {
        return Err(Error::ExportMalformed {
            reason: "needs one consistency proof per pair of successive checkpoints".into(),
        });
    }
    for (k, (proof, pair)) in export
        .consistency
        .iter()
        .zip(checkpoints.windows(2))
        .enumerate()
    {
        let item = format!("consistency[{k}]");
        let [a, b] = pair else { continue };
        if proof.old_size != a.size || proof.new_size != b.size {
            return Err(cp_err("proof sizes are not the checkpoints'").at(item));
        }
        let path = decode_path(&proof.path).map_err(|e| e.at(item.clone()))?;
        if a.size == 0 {
            if !path.is_empty() || a.root != alg.empty_root() {
                return Err(cp_err("an empty tree needs an empty proof").at(item));
            }
        } else {
            verify_consistency(alg, a.size, b.size, &a.root, &b.root, &path)
                .map_err(|e| Error::from(e).at(item))?;
        }
    }

    let last = checkpoints.last().ok_or(Error::NoCheckpoint {
        what: "in the export",
    })?;
    let first_size = checkpoints.first().map_or(0, |c| c.size);
    if export.from_size != 0 && export.from_size != first_size {
        return Err(Error::ExportMalformed {
            reason: "from_size must be 0 or the first checkpoint's size".into(),
        });
    }

    let b64_cap = MAX_EVENT_LEN.div_ceil(3) * 4;
    let mut events = Vec::with_capacity(export.events.len());
    let mut previous: Option<u64> = None;
    for (i, e) in export.events.iter().enumerate() {
        let item = || format!("events[{i}]");
        if let Some(p) = previous {
            if e.index <= p {
                return Err(Error::EventOrder {
                    previous: p,
                    index: e.index,
                }
                .at(item()));
            }
        }
        if e.index >= last.size {
            return Err(Error::EventNotCovered {
                index: e.index,
                size: last.size,
            }
            .at(item()));
        }
        if e.event.len() > b64_cap {
            return Err(Error::BadField { what: "event" }.at(item()));
        }
        let bytes = BASE64.decode(&e.event).map_err(|_| {
            Error::BadField {
                what: "event base64",
            }
            .at(item())
        })?;
        let path = decode_path(&e.proof).map_err(|err| err.at(item()))?;
        verify_inclusion(
            alg,
            e.index,
            last.size,
            &alg.leaf_hash(&bytes),
            &path,
            &last.root,
        )
        .map_err(|err| Error::from(err).at(item()))?;
        let event = AuditEvent::decode(&bytes).map_err(|err| Error::from(err).at(item()))?;
        if let Some(p) = &patient {
            if event.patient != *p {
                return Err(Error::WrongPatient.at(item()));
            }
            let ok = match previous {
                None => {
                    e.index >= export.from_size
                        && event.prev_for_patient.is_none_or(|x| x < export.from_size)
                }
                Some(p) => event.prev_for_patient == Some(p),
            };
            if !ok {
                let expected = match previous {
                    None => format!("none or below {}", export.from_size),
                    Some(p) => p.to_string(),
                };
                return Err(Error::PatientChainBroken {
                    expected,
                    found: event.prev_for_patient,
                }
                .at(item()));
            }
        }
        previous = Some(e.index);
        events.push(VerifiedEvent {
            index: e.index,
            event,
        });
    }

    Ok(Report {
        origin: export.origin,
        alg,
        checkpoints: summaries,
        complete: patient.is_some(),
        patient,
        from_size: export.from_size,
        to_size: last.size,
        events,
    })
}
