//! Checkpoints, the disclosure report, the verifiable export and full
//! self-verification.

use medledger_audit::{report::disclosures, Action, AuditEvent, Disclosure, IssuedCheckpoint};
use medledger_chain::witness::WitnessStateStore;
use medledger_chain::{Checkpoint, MerkleLog, NodeStore, Witness};
use medledger_envelope::Header;
use medledger_grants::ActorId;

use crate::error::{At, Error, Op, Result};
use crate::ledger::{now_ms, Ledger, T_CHECKPOINTS};
use crate::record::T_RECORDS;
use crate::record_state::RecordState;
use crate::streaming::commit_reader;

/// Entries re-read per batch by [`Ledger::verify`].
const VERIFY_CHUNK: u64 = 4096;

/// What [`Ledger::verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Log entries re-read and re-hashed.
    pub entries: u64,
    /// Checkpoints whose signature, root and chaining verified.
    pub checkpoints: usize,
    /// Record versions whose ciphertext matched the logged commitment.
    pub versions: u64,
    /// Erased records (nothing left to check but their log entries).
    pub erased: u64,
}

impl<N: NodeStore> Ledger<N> {
    /// Signs a checkpoint of the log (size, root, time, previous
    /// checkpoint's hash) and collects a cosignature from each witness,
    /// which first checks a consistency proof from the size it last
    /// cosigned. The checkpoint commits to every patient's last event (a
    /// heads entry appended just before it, medledger-audit's
    /// `checkpoint_with_heads`), so a patient export under it proves that
    /// no later event of the patient was withheld; the signed note is also
    /// appended to the log as a checkpoint entry (two entries in all) and
    /// kept with the ledger's state.
    pub fn checkpoint<W: WitnessStateStore>(
        &self,
        witnesses: &[&Witness<W>],
    ) -> Result<IssuedCheckpoint> {
        let op = Op::Checkpoint;
        let _turn = self.turn(op)?;
        let _guard = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let issued = self
            .audit
            .checkpoint_with_heads(&self.signer, now_ms() / 1000, witnesses)
            .at(op)?;
        let seq = (self.audit.checkpoints().len() as u64).saturating_sub(1);
        let note = issued.note.clone();
        self.state
            .transact(None, &mut |t| {
                t.put(T_CHECKPOINTS, &seq.to_be_bytes(), note.as_bytes())
            })
            .at(op)?;
        Ok(issued)
    }

    /// The patient's accounting of disclosures (HIPAA 45 CFR 164.528):
    /// every successful read, export or emergency access of their records
    /// by anyone but them or their guardian.
    pub fn disclosure_report(&self, patient: &ActorId) -> Result<Vec<Disclosure>> {
        let op = Op::Report;
        let _turn = self.turn(op)?;
        let pk = self.pseudonyms.patient_key(patient.as_bytes()).at(op)?;
        let events = self.audit.patient_events(&pk).at(op)?;
        Ok(disclosures(events.iter().map(|(i, e)| (*i, e))))
    }

    /// Every logged event of the patient, in log order (writes, grants,
    /// revocations, allowed and denied accesses, erasures).
    pub fn patient_events(&self, patient: &ActorId) -> Result<Vec<(u64, AuditEvent)>> {
        let op = Op::Report;
        let _turn = self.turn(op)?;
        let pk = self.pseudonyms.patient_key(patient.as_bytes()).at(op)?;
        self.audit.patient_events(&pk).at(op)
    }

    /// The patient's verifiable export (JSON) under the latest checkpoint:
    /// every event of the patient with its inclusion proof, the
    /// checkpoints with their cosignatures. An auditor checks it offline
    /// with `medledger_audit::verify_export` and this ledger's
    /// [`Ledger::log_key`] and witnesses.
    pub fn export_patient(&self, patient: &ActorId) -> Result<String> {
        let op = Op::Export;
        let _turn = self.turn(op)?;
        let n = self.audit.checkpoints().len();
        let last = n.checked_sub(1).ok_or(Error::NoCheckpoint { op })?;
        let pk = self.pseudonyms.patient_key(patient.as_bytes()).at(op)?;
        self.audit
            .export_patient(&pk, None, last)
            .at(op)?
            .to_json()
            .at(op)
    }

    /// Verifies the whole store: re-reads every log entry (each frame's
    /// checksum is checked by the store) and recomputes the Merkle tree,
    /// which must equal the live tree; checks every checkpoint's
    /// signature, its root against the recomputed tree and its chaining
    /// to the previous one; and checks every live record version's
    /// ciphertext against the blinded commitment in its log entry.
    pub fn verify(&self) -> Result<VerifyReport> {
        let op = Op::Verify;
        let _turn = self.turn(op)?;
        let fail = |what: String| Error::VerificationFailed { op, what };
        let len = self.entries.len().at(op)?;
        let mut tree = MerkleLog::in_memory(self.audit.alg());
        let mut at = 0;
        while at < len {
            let end = len.min(at + VERIFY_CHUNK);
            let chunk = self.entries.read_range(at..end).at(op)?;
            tree.append_batch(chunk.iter()).at(op)?;
            at = end;
        }
        if tree.size() != self.audit.size() || tree.root() != self.audit.root() {
            return Err(fail(format!(
                "recomputed tree ({} entries) differs from the live tree ({} leaves)",
                tree.size(),
                self.audit.size()
            )));
        }
        let key = self.log_key()?;
        let mut prev: Option<Checkpoint> = None;
        let checkpoints = self.audit.checkpoints();
        for (i, cp) in checkpoints.iter().enumerate() {
            let signed = key
                .verify(cp.note.as_bytes())
                .map_err(|e| fail(format!("checkpoint {i}: {e}")))?;
            let c = signed.checkpoint;
            let root = tree.root_at(c.size).at(op)?;
            if root != c.root {
                return Err(fail(format!(
                    "checkpoint {i} (size {}): root differs",
                    c.size
                )));
            }
            if let Some(p) = &prev {
                p.check_successor(&c)
                    .map_err(|e| fail(format!("checkpoint {i} does not follow {}: {e}", i - 1)))?;
            }
            prev = Some(c);
        }
        let mut versions = 0;
        let mut erased = 0;
        for (k, v) in self.state.scan(T_RECORDS, b"", usize::MAX).at(op)? {
            let record = String::from_utf8(k).map_err(|_| fail("record id not UTF-8".into()))?;
            let st = RecordState::decode(&v).ok_or(Error::CorruptState {
                op,
                table: T_RECORDS,
                reason: "record state does not decode",
            })?;
            if st.erased {
                erased += 1;
                continue;
            }
            for version in 1..=st.latest {
                // Streamed: a version is never held in memory whole.
                let vs = self.version_state(&record, version, op)?;
                let mut reader = self.open_body(&vs.blob, op)?;
                Header::read_from(&mut reader)
                    .map_err(|e| fail(format!("{record} v{version}: header: {e}")))?;
                let body_commitment = commit_reader(&vs.nonce, &mut reader).map_err(|e| {
                    fail(format!("{record} v{version}: body does not read back: {e}"))
                })?;
                let event = self.audit.event(vs.event).at(op)?;
                let logged = match (
                    &event.action,
                    event.record.as_ref(),
                    event.commitment.as_ref(),
                ) {
                    (Action::Create | Action::Update | Action::Import, Some(r), Some(c))
                        if r.id == record && r.version == version =>
                    {
                        c.0
                    }
                    _ => {
                        return Err(fail(format!(
                            "{record} v{version}: log entry {} is not its write",
                            vs.event
                        )))
                    }
                };
                if body_commitment != logged || logged != vs.commitment {
                    return Err(fail(format!(
                        "{record} v{version}: ciphertext does not match the commitment in log entry {}",
                        vs.event
                    )));
                }
                versions += 1;
            }
        }
        Ok(VerifyReport {
            entries: len,
            checkpoints: checkpoints.len(),
            versions,
            erased,
        })
    }
}
