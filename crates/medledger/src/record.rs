//! Records: writing versions (envelope, body, log entry with a blinded
//! commitment), rewrapping headers, and erasure. Where a version's
//! envelope is kept (inline in the state, or a blob) is in `body`. The state kept beside
//! each record and the commitment's definition are in `record_state`.

use std::io::Read;

use medledger_audit::{Action, Outcome, PurposeOfUse, RecordRef};
use medledger_chain::NodeStore;
use medledger_envelope::{Header, RecipientPublicKey, RecipientSecretKey, RecordContext};
use medledger_grants::{
    Action as GrantAction, ActorId, Category, DenyReason, Purpose, RecordId, RecordMeta,
    SensitivitySet,
};

use crate::body::delete_body_rows;
use crate::error::{At, Error, Op, Result};
use crate::ledger::Ledger;
use crate::record_state::{
    decode_labels, version_key, RecordState, VersionState, T_VERSION_LABELS,
};
use crate::streaming::StreamedRecord;

pub(crate) const T_RECORDS: &str = "records";
pub(crate) const T_VERSIONS: &str = "versions";
pub(crate) const T_BLOBS: &str = "blobs";
pub(crate) const T_PATIENT_RECORDS: &str = "patient-records";
/// Longest record id (the audit event's limit).
pub const MAX_RECORD_ID_LEN: usize = 64;

/// A record version to write.
#[derive(Clone, Debug)]
pub struct NewRecord<'a> {
    /// The record id (1 to 64 bytes; an opaque id such as
    /// `"Observation/8f1c"`, never contents: it appears in the log).
    pub id: &'a str,
    /// Whose record.
    pub patient: ActorId,
    /// Who writes it (a registered actor; it receives a wrapped key).
    pub author: ActorId,
    /// Media type, e.g. `application/fhir+json`.
    pub content_type: &'a str,
    /// Category grants scope by (e.g. the FHIR resource type).
    pub category: &'a str,
    /// Sensitivity labels from the record's own metadata.
    pub labels: SensitivitySet,
    /// The body.
    pub body: &'a [u8],
}

/// What a write returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The record id.
    pub record: String,
    /// The version written (1 for a new record).
    pub version: u64,
    /// The log index of the write's entry.
    pub event: u64,
    /// The blinded commitment in that entry.
    pub commitment: [u8; 32],
}

impl<N: NodeStore> Ledger<N> {
    pub(crate) fn record_state(&self, record: &str, op: Op) -> Result<RecordState> {
        let v = self
            .state
            .get(T_RECORDS, record.as_bytes())
            .at(op)?
            .ok_or_else(|| Error::UnknownRecord {
                op,
                record: record.to_owned(),
                version: None,
            })?;
        RecordState::decode(&v).ok_or(Error::CorruptState {
            op,
            table: T_RECORDS,
            reason: "record state does not decode",
        })
    }

    pub(crate) fn version_state(&self, record: &str, version: u64, op: Op) -> Result<VersionState> {
        let v = self
            .state
            .get(T_VERSIONS, &version_key(record, version))
            .at(op)?
            .ok_or_else(|| Error::UnknownRecord {
                op,
                record: record.to_owned(),
                version: Some(version),
            })?;
        VersionState::decode(&v).ok_or(Error::CorruptState {
            op,
            table: T_VERSIONS,
            reason: "version state does not decode",
        })
    }

    /// The labels `version` is decided with: its own, or the record's
    /// union for a version stored without them (see `record_state`).
    pub(crate) fn version_labels(
        &self,
        record: &str,
        st: &RecordState,
        version: u64,
        op: Op,
    ) -> Result<SensitivitySet> {
        let row = self
            .state
            .get(T_VERSION_LABELS, &version_key(record, version))
            .at(op)?;
        decode_labels(row.as_deref(), st).ok_or(Error::CorruptState {
            op,
            table: T_VERSION_LABELS,
            reason: "version labels do not decode",
        })
    }

    /// The envelope context of a version: record id, the patient's
    /// pseudonym (never their id), version, content type.
    pub(crate) fn context(
        &self,
        record: &str,
        st: &RecordState,
        version: u64,
        op: Op,
    ) -> Result<RecordContext> {
        let patient = self.pseudonyms.patient_key(st.patient.as_bytes()).at(op)?;
        RecordContext::new(record, patient.to_hex(), version, st.content_type.clone()).at(op)
    }

    pub(crate) fn custody_key(
        &self,
        record: &str,
        st: &RecordState,
        op: Op,
    ) -> Result<RecipientSecretKey> {
        let k = self.secrets.open_record_key(record, &st.custody, op)?;
        Ok(RecipientSecretKey::from_bytes(*k))
    }

    /// The ids of `patient`'s records.
    pub fn records_of(&self, patient: &ActorId) -> Result<Vec<String>> {
        let rows = self
            .state
            .scan(T_PATIENT_RECORDS, patient.as_bytes(), usize::MAX)
            .at(Op::Report)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, _)| String::from_utf8(k.get(32..)?.to_vec()).ok())
            .collect())
    }

    /// Writes a record, or a new version of an existing one: a fresh data
    /// key, the body sealed (context-bound, chunked AES-256-GCM) for the
    /// ledger's per-record custody key, the patient and the author, the
    /// envelope stored (inline in the state store up to 64 KiB, as a blob
    /// beyond), and a Create/Update entry appended holding only the
    /// blinded commitment.
    ///
    /// The author must be the patient, an active guardian of the patient,
    /// or hold a grant of [`medledger_grants::Action::Write`] for purpose
    /// `Treat` covering the record (decided like a read, as of now).
    /// Anyone else gets [`Error::AccessDenied`] and the refused write is
    /// logged as a denied Create/Update event.
    pub fn write(&self, rec: &NewRecord<'_>) -> Result<Written> {
        let meta = StreamedRecord {
            id: rec.id,
            patient: rec.patient,
            author: rec.author,
            content_type: rec.content_type,
            category: rec.category,
            labels: rec.labels,
        };
        self.write_stream(&meta, &mut &*rec.body, Op::Write, None)
    }

    /// Why `rec.author` may not write `rec`, if they may not: the patient
    /// and active guardians may; anyone else needs a grant of `write` for
    /// purpose `Treat` covering the version's category and labels (and the
    /// record's previous category, when the write changes it).
    pub(crate) fn write_denied(
        &self,
        rec: &StreamedRecord<'_>,
        previous_category: &str,
        op: Op,
    ) -> Result<Option<DenyReason>> {
        let mut categories = vec![rec.category];
        if !previous_category.is_empty() && previous_category != rec.category {
            categories.push(previous_category);
        }
        for category in categories {
            let meta = RecordMeta {
                id: RecordId::new(rec.id).at(op)?,
                category: Category::new(category).at(op)?,
                labels: rec.labels,
            };
            let decision = self.decide(
                rec.author,
                rec.patient,
                meta,
                GrantAction::Write,
                Purpose::Treat,
                None,
            );
            if let Some(reason) = decision.deny_reason() {
                return Ok(Some(reason));
            }
        }
        Ok(None)
    }

    /// Replaces a version's header by `header` (same body), moving it to a
    /// new body. Caller holds the record lock.
    pub(crate) fn replace_header(
        &self,
        record: &str,
        version: u64,
        vs: &VersionState,
        header: &Header,
        body: &[u8],
        op: Op,
    ) -> Result<()> {
        let mut bytes = header.encode();
        bytes.extend_from_slice(body);
        let new = self.put_body(&bytes, op)?;
        self.swap_body(record, version, vs, new, op)
    }

    /// Erases a record (GDPR Art. 17, crypto-shredding): its per-record
    /// custody key, every version's envelope (header with every wrapped
    /// data key, and ciphertext; an inline row or a blob) and commitment
    /// nonce are destroyed, and an
    /// Erase entry is appended. The log keeps only the blinded
    /// commitments, which reveal nothing without the nonces. Copies of
    /// data keys that readers already unwrapped cannot be recalled.
    ///
    /// Only the patient, or a guardian with an active appointment
    /// ([`Ledger::appoint_guardian`]), may erase: anyone else gets
    /// [`Error::AccessDenied`] (`ActionNotAllowed`) and the refused attempt
    /// is logged as a denied Erase event.
    pub fn erase(&self, actor: &ActorId, record: &str) -> Result<u64> {
        let op = Op::Erase;
        let _turn = self.turn(op)?;
        self.actor(actor, op)?;
        let _guard = self.record_lock(record);
        let mut st = self.record_state(record, op)?;
        let target = Some(RecordRef {
            id: record.to_owned(),
            version: st.latest,
        });
        if !self.speaks_for(actor, &st.patient) {
            let reason = DenyReason::ActionNotAllowed;
            let outcome = Outcome::Denied {
                code: crate::access::deny_code(reason),
                reason: format!("{reason:?}: only the patient or an active guardian may erase"),
            };
            let event = self.event(
                op,
                Action::Erase,
                actor,
                &st.patient,
                target,
                PurposeOfUse::PatientRequested,
                outcome,
                Vec::new(),
                None,
            )?;
            let event = self.audit.append(event).at(op)?.index;
            return Err(Error::AccessDenied { op, reason, event });
        }
        if st.erased {
            return Err(Error::RecordErased {
                op,
                record: record.to_owned(),
            });
        }
        // Every version up to `latest` has a state; a gap is corruption
        // (typed error), and skipping it would let a corrupt `latest` spin
        // this loop for 2^64 steps. Collected before the Erase entry is
        // appended, so a corrupt record logs no erasure that did not happen.
        let mut versions = Vec::new();
        for v in 1..=st.latest {
            versions.push((version_key(record, v), self.version_state(record, v, op)?));
        }
        let event = self.event(
            op,
            Action::Erase,
            actor,
            &st.patient,
            target,
            PurposeOfUse::PatientRequested,
            Outcome::Success,
            Vec::new(),
            None,
        )?;
        let index = self.audit.append(event).at(op)?.index;
        st.erased = true;
        st.custody.clear();
        let rv = st.encode();
        self.commit_state(index, op, &mut |t| {
            t.put(T_RECORDS, record.as_bytes(), &rv)?;
            for (vk, vs) in &versions {
                t.delete(T_VERSIONS, vk)?;
                t.delete(T_VERSION_LABELS, vk)?;
                delete_body_rows(t, &vs.blob)?;
            }
            Ok(())
        })?;
        for (_, vs) in &versions {
            self.blobs.delete(&vs.blob).at(op)?;
        }
        Ok(index)
    }

    /// Reads the raw envelope of a version (for verification and sharing).
    pub(crate) fn envelope(
        &self,
        record: &str,
        version: u64,
        op: Op,
    ) -> Result<(VersionState, Vec<u8>)> {
        let vs = self.version_state(record, version, op)?;
        let mut bytes = Vec::new();
        self.open_body(&vs.blob, op)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::VerificationFailed {
                op,
                what: format!("body of {record} v{version} does not read back: {e}"),
            })?;
        Ok((vs, bytes))
    }
}

/// An actor's X25519 key as an envelope recipient.
pub(crate) fn x25519_of(actor: &medledger_grants::Actor) -> RecipientPublicKey {
    RecipientPublicKey::from_bytes(actor.encryption_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use medledger_grants::{ActorKeys, ActorKind};

    use super::*;
    use crate::LedgerKey;

    #[test]
    fn erase_stops_at_a_corrupt_latest_version_and_logs_nothing() {
        let ledger =
            Ledger::in_memory("test.example/ledger", &LedgerKey::from_bytes([1; 32])).unwrap();
        let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        ledger
            .write(&NewRecord {
                id: "Observation/1",
                patient: patient.id(),
                author: patient.id(),
                content_type: "text/plain",
                category: "Observation",
                labels: SensitivitySet::empty(),
                body: b"x",
            })
            .unwrap();
        // A stored state claiming 2^64 - 1 versions (only one exists).
        let mut st = ledger.record_state("Observation/1", Op::Erase).unwrap();
        st.latest = u64::MAX;
        let value = st.encode();
        ledger
            .state
            .transact(None, &mut |t| t.put(T_RECORDS, b"Observation/1", &value))
            .unwrap();
        let size = ledger.size();
        assert!(matches!(
            ledger.erase(&patient.id(), "Observation/1"),
            Err(Error::UnknownRecord {
                version: Some(2),
                ..
            })
        ));
        assert_eq!(ledger.size(), size);
    }
}
