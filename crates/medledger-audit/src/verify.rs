//! Offline verification of an export bundle.
//!
//! # What is checked, in order (the first failure is reported with the
//! JSON path of the bad item)
//!
//! 1. The bundle: size cap, the canonical grammar, format, the log's origin
//!    and hash algorithm as the [`Policy`] names them.
//! 2. `checkpoints[k]`: the log's signature and a quorum of witness
//!    cosignatures under the policy. Lines from keys the policy does not
//!    know are ignored (signed-note "Signatures"), unless the policy is
//!    [`Policy::strict`]; a line naming a known key whose signature fails
//!    rejects the checkpoint either way. Sizes and times never go back;
//!    adjacent checkpoints with a `prev` line naming their predecessor are
//!    checked against its hash.
//! 3. `consistency[k]`: proves `checkpoints[k]` is a prefix of
//!    `checkpoints[k+1]` (a fork or a swap fails here).
//! 4. `heads` (patient exports under a checkpoint with heads): the heads
//!    entry is the log entry just before the last checkpoint, and the
//!    leaves prove the patient's committed head, or that it has no event.
//! 5. `events[i]`: strictly ascending index (no duplicate, no reordering),
//!    below the last checkpoint's size (and below the heads entry), a
//!    canonical event encoding; for a patient export, every event is the
//!    patient's, at or after `from_size`, and names the previous exported
//!    event as its `prev_for_patient` (the first names none or one before
//!    `from_size`).
//! 6. `heads` again: the last exported event is the committed head (or,
//!    with no event exported, the head is before `from_size` or there is
//!    none) — [`Error::PatientHeadMismatch`] otherwise.
//! 7. `proof`: one batch inclusion proof of every event (and the heads
//!    entry) against the last checkpoint's root. Its hashes are shared by
//!    the events, so a changed event that still decodes and keeps the
//!    chain's shape is reported as `proof`, not as the event.

use medledger_chain::{verify_consistency, Checkpoint, Hash, HashAlg, Policy};

use crate::base64_codec::{append_base64, decode_base64};
use crate::batch_proof;
use crate::codec::{EventRef, MAX_EVENT_LEN};
use crate::error::{Error, Result};
use crate::event::AuditEvent;
use crate::export::{decode_hashes, ExportView, MAX_PROOF_HASHES};
use crate::heads::{verify_head, CommittedHead, HeadLeaf, HeadsEntry, HeadsProof};
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

/// The events of a verified export, in log order: their canonical
/// encodings, each checked by the verifier, kept in one buffer and decoded
/// into [`AuditEvent`]s when read. Verifying does not build the owned
/// events (four allocations each), so a caller that only counts them or
/// reads a few does not pay for all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifiedEvents {
    /// The encodings, concatenated.
    bytes: Vec<u8>,
    /// Per event: its log index and where its encoding ends in `bytes`.
    items: Vec<(u64, usize)>,
}

impl VerifiedEvents {
    /// How many events verified.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no event was exported.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Their log indexes, ascending.
    pub fn indexes(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.items.iter().map(|(i, _)| *i)
    }

    /// The `k`-th event (in log order) with its log index.
    pub fn get(&self, k: usize) -> Option<VerifiedEvent> {
        let (index, end) = *self.items.get(k)?;
        let start = match k.checked_sub(1) {
            None => 0,
            Some(p) => self.items.get(p)?.1,
        };
        self.decode(index, start, end)
    }

    /// The last event.
    pub fn last(&self) -> Option<VerifiedEvent> {
        self.get(self.items.len().checked_sub(1)?)
    }

    /// The canonical encoding of the `k`-th event (what its leaf hash
    /// covers).
    pub fn encoding(&self, k: usize) -> Option<&[u8]> {
        let end = self.items.get(k)?.1;
        let start = match k.checked_sub(1) {
            None => 0,
            Some(p) => self.items.get(p)?.1,
        };
        self.bytes.get(start..end)
    }

    /// Every event in log order, decoded (each encoding was checked by the
    /// verifier, so every one decodes).
    pub fn iter(&self) -> VerifiedEventsIter<'_> {
        VerifiedEventsIter {
            events: self,
            next: 0,
            start: 0,
        }
    }

    fn decode(&self, index: u64, start: usize, end: usize) -> Option<VerifiedEvent> {
        // The verifier decoded every encoding strictly before keeping it,
        // so this decodes again without error.
        let event = AuditEvent::decode(self.bytes.get(start..end)?).ok()?;
        Some(VerifiedEvent { index, event })
    }
}

/// The iterator of [`VerifiedEvents::iter`].
#[derive(Clone, Debug)]
pub struct VerifiedEventsIter<'a> {
    events: &'a VerifiedEvents,
    next: usize,
    start: usize,
}

impl Iterator for VerifiedEventsIter<'_> {
    type Item = VerifiedEvent;

    fn next(&mut self) -> Option<VerifiedEvent> {
        let (index, end) = *self.events.items.get(self.next)?;
        let start = core::mem::replace(&mut self.start, end);
        self.next += 1;
        self.events.decode(index, start, end)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.events.items.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl<'a> IntoIterator for &'a VerifiedEvents {
    type Item = VerifiedEvent;
    type IntoIter = VerifiedEventsIter<'a>;

    fn into_iter(self) -> VerifiedEventsIter<'a> {
        self.iter()
    }
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
    pub events: VerifiedEvents,
    /// Whether the per-patient chain was checked complete over
    /// `[from_size, last exported event]`.
    pub complete: bool,
    /// The patient's head as committed by the last checkpoint's heads
    /// entry, when the export carries one (then the tail is complete too:
    /// the last exported event is that head).
    pub head: Option<CommittedHead>,
}

impl Report {
    /// The log index of the patient's latest exported event.
    pub fn patient_head(&self) -> Option<u64> {
        self.events.items.last().map(|(i, _)| *i)
    }

    /// Whether the export holds every event of the patient in
    /// `[from_size, to_size)`: the chain was checked and the last
    /// checkpoint commits to the patient's head.
    pub fn tail_complete(&self) -> bool {
        self.complete && self.head.is_some()
    }
}

fn cp_err(reason: &'static str) -> Error {
    Error::CheckpointOrder { reason }
}

/// Verifies an export bundle offline under `policy` (module docs).
///
/// A patient export without a heads commitment verifies with
/// `head = None`: its tail is not proven. An auditor asking about one
/// patient should call [`verify_patient_export`], which requires it.
pub fn verify_export(json: &[u8], policy: &Policy) -> Result<Report> {
    let export = ExportView::parse(json)?;
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
    let patient = match export.patient {
        None => None,
        Some(h) => Some(
            core::str::from_utf8(h)
                .ok()
                .and_then(PatientKey::from_hex)
                .ok_or(Error::BadField { what: "patient" })?,
        ),
    };

    let (checkpoints, summaries) = verify_checkpoints(&export, policy)?;
    let last = checkpoints.last().ok_or(Error::NoCheckpoint {
        what: "in the export",
    })?;
    let first_size = checkpoints.first().map_or(0, |c| c.size);
    if export.from_size != 0 && export.from_size != first_size {
        return Err(Error::ExportMalformed {
            reason: "from_size must be 0 or the first checkpoint's size".into(),
        });
    }

    // The heads commitment: entry, leaves, proof in the heads tree.
    let heads = match (&export.heads, &patient) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(Error::ExportMalformed {
                reason: "heads in an export of no patient".into(),
            })
        }
        (Some(h), Some(p)) => Some(check_heads(alg, h, p, last.size).map_err(|e| e.at("heads"))?),
    };
    // Events below the heads entry when there is one.
    let covered = if heads.is_some() {
        last.size - 1
    } else {
        last.size
    };

    let n = export.events.len();
    let mut indexes: Vec<u64> = Vec::with_capacity(n + 1);
    let mut leaves: Vec<Hash> = Vec::with_capacity(n + 1);
    // Every event is decoded from base64 onto the end of one buffer, which
    // the report keeps; its size is bounded by the (capped) input.
    let b64_total: usize = export.events.iter().map(|(_, b64)| b64.len()).sum();
    let mut events = VerifiedEvents {
        bytes: Vec::with_capacity(b64_total / 4 * 3),
        items: Vec::with_capacity(n),
    };
    let b64_cap = MAX_EVENT_LEN.div_ceil(3) * 4;
    let mut previous: Option<u64> = None;
    for (i, (index, b64)) in export.events.iter().enumerate() {
        let item = || format!("events[{i}]");
        let index = *index;
        if let Some(p) = previous {
            if index <= p {
                return Err(Error::EventOrder { previous: p, index }.at(item()));
            }
        }
        if index >= covered {
            return Err(Error::EventNotCovered {
                index,
                size: covered,
            }
            .at(item()));
        }
        if b64.len() > b64_cap {
            return Err(Error::BadField { what: "event" }.at(item()));
        }
        let start = events.bytes.len();
        append_base64(b64, &mut events.bytes).map_err(|_| {
            Error::BadField {
                what: "event base64",
            }
            .at(item())
        })?;
        let bytes = events.bytes.get(start..).unwrap_or_default();
        let event = EventRef::decode(bytes).map_err(|err| Error::from(err).at(item()))?;
        if let Some(p) = &patient {
            check_chain(&event, p, index, previous, export.from_size).map_err(|e| e.at(item()))?;
        }
        indexes.push(index);
        leaves.push(alg.leaf_hash(bytes));
        previous = Some(index);
        events.items.push((index, events.bytes.len()));
    }

    let mut head = None;
    if let Some((committed, entry_leaf)) = heads {
        let ok = match (committed, previous) {
            (CommittedHead::At(h), Some(l)) => h == l,
            (CommittedHead::At(h), None) => h < export.from_size,
            (CommittedHead::NoEvents, l) => l.is_none(),
        };
        if !ok {
            let committed = match committed {
                CommittedHead::At(h) => Some(h),
                CommittedHead::NoEvents => None,
            };
            return Err(Error::PatientHeadMismatch {
                committed,
                last_exported: previous,
            }
            .at("heads"));
        }
        indexes.push(covered);
        leaves.push(entry_leaf);
        head = Some(committed);
    }

    // The proof's hashes are read in place from their decoded bytes.
    let proof_hashes = || {
        Error::BadField {
            what: "proof hashes",
        }
        .at("proof")
    };
    let mut proof = Vec::new();
    decode_base64(export.proof, &mut proof).map_err(|_| proof_hashes())?;
    if !proof.len().is_multiple_of(32) {
        return Err(proof_hashes());
    }
    if indexes.is_empty() {
        if !proof.is_empty() {
            return Err(Error::BadBatchProof {
                reason: "holds hashes but proves nothing",
            }
            .at("proof"));
        }
    } else {
        batch_proof::verify_concatenated(alg, last.size, &indexes, &leaves, &proof, &last.root)
            .map_err(|e| e.at("proof"))?;
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
        head,
    })
}

/// [`verify_export`] for an auditor asking about one patient: the export
/// must be `patient`'s ([`Error::NotThePatient`]) and its last checkpoint
/// must commit to the patient's head ([`Error::TailNotCommitted`]), so the
/// report holds every event of the patient in `[from_size, to_size)`.
pub fn verify_patient_export(json: &[u8], policy: &Policy, patient: &PatientKey) -> Result<Report> {
    let report = verify_export(json, policy)?;
    if report.patient != Some(*patient) {
        return Err(Error::NotThePatient);
    }
    if report.head.is_none() {
        return Err(Error::TailNotCommitted);
    }
    Ok(report)
}

type Verified = (Vec<Checkpoint>, Vec<CheckpointSummary>);

/// Steps 2 and 3: every checkpoint under the policy, in order, and the
/// consistency proofs between them.
fn verify_checkpoints(export: &ExportView<'_>, policy: &Policy) -> Result<Verified> {
    if export.checkpoints.is_empty() {
        return Err(Error::ExportMalformed {
            reason: "needs between 1 and 4096 checkpoints".into(),
        });
    }
    let alg = policy.log().alg();
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
    let mut path = Vec::new();
    for (k, ((old, new, b64), pair)) in export
        .consistency
        .iter()
        .zip(checkpoints.windows(2))
        .enumerate()
    {
        let item = format!("consistency[{k}]");
        let [a, b] = pair else { continue };
        if *old != a.size || *new != b.size {
            return Err(cp_err("proof sizes are not the checkpoints'").at(item));
        }
        decode_hashes(b64, &mut path, "proof hashes").map_err(|e| e.at(item.clone()))?;
        if path.len() > MAX_PROOF_HASHES {
            return Err(Error::BadField {
                what: "proof length",
            }
            .at(item));
        }
        if a.size == 0 {
            if !path.is_empty() || a.root != alg.empty_root() {
                return Err(cp_err("an empty tree needs an empty proof").at(item));
            }
        } else {
            verify_consistency(alg, a.size, b.size, &a.root, &b.root, &path)
                .map_err(|e| Error::from(e).at(item))?;
        }
    }
    Ok((checkpoints, summaries))
}

/// Step 4: the heads entry (at `last_size - 1`) and the patient's proof in
/// its tree. Returns what it commits and the entry's leaf hash in the log.
fn check_heads(
    alg: HashAlg,
    h: &crate::export::HeadsView<'_>,
    patient: &PatientKey,
    last_size: u64,
) -> Result<(CommittedHead, Hash)> {
    let field = |what| Error::BadField { what };
    let mut bytes = Vec::new();
    decode_base64(h.entry, &mut bytes).map_err(|_| field("heads entry base64"))?;
    let entry = HeadsEntry::decode(&bytes)?;
    if last_size == 0 || entry.size != last_size - 1 {
        return Err(Error::BadHeads {
            reason: "the heads entry is not the entry just before the last checkpoint",
        });
    }
    let mut leaves = Vec::with_capacity(h.leaves.len());
    let mut raw = Vec::new();
    for (position, b64) in &h.leaves {
        decode_base64(b64, &mut raw).map_err(|_| field("heads leaf base64"))?;
        leaves.push((*position, HeadLeaf::decode(&raw)?));
    }
    let mut proof = Vec::new();
    decode_hashes(h.proof, &mut proof, "heads proof hashes")?;
    let committed = verify_head(alg, &entry, patient, &HeadsProof { leaves, proof })?;
    Ok((committed, alg.leaf_hash(&bytes)))
}

/// Step 5 for a patient export: the event is the patient's and names the
/// previous exported event (or, first, none or one before `from_size`).
fn check_chain(
    event: &EventRef<'_>,
    patient: &PatientKey,
    index: u64,
    previous: Option<u64>,
    from_size: u64,
) -> Result<()> {
    if event.patient != *patient {
        return Err(Error::WrongPatient);
    }
    let ok = match previous {
        None => index >= from_size && event.prev_for_patient.is_none_or(|x| x < from_size),
        Some(p) => event.prev_for_patient == Some(p),
    };
    if !ok {
        let expected = match previous {
            None => format!("none or below {from_size}"),
            Some(p) => p.to_string(),
        };
        return Err(Error::PatientChainBroken {
            expected,
            found: event.prev_for_patient,
        });
    }
    Ok(())
}
