//! Access: the one decision path of reads and writes, and reads (decision,
//! audit event either way, decryption only on allow). Grants and
//! revocations are in `consent`.

use std::io::Read;

use medledger_audit::Action as AuditAction;
use medledger_chain::NodeStore;
use medledger_envelope::{Decryptor, Header};
use medledger_grants::{
    Action, ActorId, Decision, DenyReason, LogPosition, Purpose, RecordId, RecordMeta,
};
use zeroize::Zeroizing;

use crate::error::{At, Error, Op, Result};
use crate::key_unwrap::KeyUnwrapper;
use crate::ledger::{now_ms, Ledger};
use crate::record_state::{commitment, RecordState};

/// A record as read: plaintext (wiped on drop) and where its access was
/// logged. `Debug` shows the body's length, never its bytes.
pub struct Record {
    /// The record id.
    pub id: String,
    /// The version read.
    pub version: u64,
    /// Its media type.
    pub content_type: String,
    /// The plaintext body.
    pub body: Zeroizing<Vec<u8>>,
    /// The log index of the access's audit event.
    pub event: u64,
    /// Whether this was break-the-glass access.
    pub emergency: bool,
}

impl core::fmt::Debug for Record {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .field("event", &self.event)
            .field("emergency", &self.emergency)
            .finish()
    }
}

/// The numeric code of a denial in the audit event.
pub fn deny_code(r: DenyReason) -> u16 {
    match r {
        DenyReason::NoGrant => 1,
        DenyReason::OutOfScope => 2,
        DenyReason::ExcludedSensitivity => 3,
        DenyReason::ActionNotAllowed => 4,
        DenyReason::PurposeNotAllowed => 5,
        DenyReason::BadSignature => 6,
        DenyReason::NotYetValid => 7,
        DenyReason::Expired => 8,
        DenyReason::Revoked => 9,
        DenyReason::UnknownIssuer => 10,
        DenyReason::NotDelegable => 11,
        DenyReason::DelegationTooDeep => 12,
        DenyReason::EmergencyReasonInvalid => 13,
        DenyReason::NoEmergencyRole => 14,
        _ => 0xffff,
    }
}

/// The denial code of an access the policy allowed but that failed
/// afterwards (the reader's key did not open its stanza, or the stored
/// ciphertext did not verify): outside the grants engine's codes.
pub const UNWRAP_FAILED_CODE: u16 = 0x0100;

pub(crate) fn meta(record: &str, st: &RecordState, op: Op) -> Result<RecordMeta> {
    Ok(RecordMeta {
        id: RecordId::new(record).at(op)?,
        category: medledger_grants::Category::new(&st.category).at(op)?,
        labels: st.labels,
    })
}

impl<N: NodeStore> Ledger<N> {
    /// The one decision path of reads and writes: the patient and their
    /// active guardians are allowed (they speak for the patient); anyone
    /// else is decided by the grants engine (deny by default) as of now
    /// and the current log size.
    pub(crate) fn decide(
        &self,
        actor: ActorId,
        patient: ActorId,
        record: RecordMeta,
        action: Action,
        purpose: Purpose,
        break_glass: Option<&str>,
    ) -> Decision {
        if self.speaks_for(&actor, &patient) {
            return Decision::Allow {
                chain: Vec::new(),
                emergency: None,
            };
        }
        self.index().decide(&medledger_grants::Request {
            actor,
            patient,
            record,
            action,
            purpose,
            time: now_ms() / 1000,
            position: LogPosition(self.audit.size()),
            break_glass: break_glass.map(str::to_owned),
        })
    }

    /// Reads the latest version of `record` as `reader` for `purpose`. The
    /// grants engine decides; the attempt is logged either way; only on
    /// allow is the data key unwrapped (by `reader`) and the body
    /// decrypted. A denial is [`Error::AccessDenied`] with its reason.
    pub fn read(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        purpose: Purpose,
    ) -> Result<Record> {
        self.access(reader, record, None, purpose, None, Op::Read)
    }

    /// Reads a given version (see [`Ledger::read`]).
    pub fn read_version(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        version: u64,
        purpose: Purpose,
    ) -> Result<Record> {
        self.access(reader, record, Some(version), purpose, None, Op::Read)
    }

    /// Break-the-glass: reads `record` with a stated `reason`. Allowed only
    /// to an actor with an active emergency role in a trusted
    /// organization; flagged in the log and in the patient's disclosure
    /// report.
    pub fn emergency_read(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        reason: &str,
    ) -> Result<Record> {
        self.access(
            reader,
            record,
            None,
            Purpose::EmergencyTreat,
            Some(reason),
            Op::EmergencyRead,
        )
    }

    fn access(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        version: Option<u64>,
        purpose: Purpose,
        break_glass: Option<&str>,
        op: Op,
    ) -> Result<Record> {
        let _turn = self.turn(op)?;
        let actor: ActorId = reader.actor();
        // Wrap only to the key registered for the actor the decision is
        // about, never to a key the caller supplies: otherwise a reader
        // claiming another actor's id would get the data key.
        let reader_key = crate::record::x25519_of(&self.actor(&actor, op)?);
        let allowed = self.decide_read(
            &actor,
            record,
            version,
            purpose,
            AuditAction::Read,
            break_glass,
            op,
        )?;
        // Allowed by policy: unwrap and decrypt first, and log the outcome
        // that really happened. A reader whose key does not open its stanza
        // (e.g. one claiming another actor's id) is logged as a failed
        // access, not as a read; plaintext is returned only after the
        // success event is durable, and wiped if that append fails.
        let plain = self.open_version(
            reader,
            record,
            &allowed.st,
            allowed.version,
            &reader_key,
            op,
        );
        let (body, event) = self.log_allowed(&allowed, record, plain, op)?;
        Ok(Record {
            id: record.to_owned(),
            version: allowed.version,
            content_type: allowed.st.content_type,
            body,
            event,
            emergency: allowed.by_emergency,
        })
    }

    /// Wraps `version`'s data key to the reader's registered key (if it is
    /// not yet), checks the ciphertext against its commitment, and has the
    /// caller's unwrapper open its stanza and decrypt.
    fn open_version(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        st: &RecordState,
        version: u64,
        reader_key: &medledger_envelope::RecipientPublicKey,
        op: Op,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let bytes = {
            let _guard = self.record_lock(record);
            self.add_reader(record, st, version, reader_key, op)?;
            let (vs, bytes) = self.envelope(record, version, op)?;
            let (_, body) = Header::parse_prefix(&bytes).at(op)?;
            if commitment(&vs.nonce, body) != vs.commitment {
                return Err(Error::VerificationFailed {
                    op,
                    what: format!(
                        "ciphertext of {record} v{version} does not match its commitment"
                    ),
                });
            }
            bytes
        };
        let (header, body) = Header::parse_prefix(&bytes).at(op)?;
        let ctx = self.context(record, st, version, op)?;
        let dk = reader.unwrap_data_key(&header, &ctx).at(op)?;
        let mut dec = Decryptor::with_data_key(body, header, &dk, &ctx).at(op)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(body.len()));
        dec.read_to_end(&mut plain)
            .map_err(medledger_envelope::Error::from_io)
            .at(op)?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use medledger_chain::MemoryNodeStore;
    use medledger_grants::{
        ActionSet, ActorKeys, ActorKind, Category, Grant, GrantId, Grantee, PurposeSet,
        RevocationTarget, Scope, SensitivitySet, SignedGrant, SignedRevocation, Validity,
    };

    use super::*;
    use crate::{LedgerKey, NewRecord};

    fn wrapped_to(ledger: &Ledger<MemoryNodeStore>, record: &str, who: &ActorKeys) -> bool {
        let (_, bytes) = ledger.envelope(record, 1, Op::Read).unwrap();
        let (header, _) = Header::parse_prefix(&bytes).unwrap();
        let key = crate::record::x25519_of(who.actor()).key_id();
        let found = header.recipients().any(|k| k == key);
        found
    }

    fn grant_by(issuer: &ActorKeys, patient: ActorId, grantee: ActorId) -> SignedGrant {
        let now = now_ms() / 1000;
        SignedGrant::sign(
            Grant {
                issuer: issuer.id(),
                patient,
                grantee: Grantee::Actor(grantee),
                parent: None,
                scope: Scope::Categories([Category::new("Observation").unwrap()].into()),
                sensitivity: SensitivitySet::empty(),
                actions: ActionSet::empty().with(Action::Read),
                purposes: PurposeSet::empty().with(Purpose::Treat),
                validity: Validity::new(now - 60, now + 3600).unwrap(),
                max_delegation_depth: 0,
                issued_at: now,
                nonce: Grant::fresh_nonce(),
            },
            issuer,
        )
        .unwrap()
    }

    /// A ledger holding one record, "Observation/1", written by its patient,
    /// with `others` registered at "st-mary". Returns the ledger and patient.
    fn ledger_with_record(others: &[&ActorKeys]) -> (Ledger<MemoryNodeStore>, ActorKeys) {
        let ledger =
            Ledger::in_memory("test.example/ledger", &LedgerKey::from_bytes([1; 32])).unwrap();
        let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        for a in others {
            ledger.register(a.actor(), "st-mary").unwrap();
        }
        ledger
            .write(&NewRecord {
                id: "Observation/1",
                patient: patient.id(),
                author: patient.id(),
                content_type: "application/fhir+json",
                category: "Observation",
                labels: SensitivitySet::empty(),
                body: b"body",
            })
            .unwrap();
        (ledger, patient)
    }

    fn revocation_by(patient: &ActorKeys, gid: GrantId) -> SignedRevocation {
        SignedRevocation::sign(
            medledger_grants::Revocation {
                revoker: patient.id(),
                target: RevocationTarget::Grant(gid),
                issued_at: now_ms() / 1000,
            },
            patient,
        )
        .unwrap()
    }

    #[test]
    fn only_an_authorized_grant_wraps_the_data_key_to_its_grantee() {
        let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
        let rogue = ActorKeys::generate(ActorKind::Clinician).unwrap();
        let (ledger, patient) = ledger_with_record(&[&doctor, &rogue]);
        // A grant the rogue signs for the patient's records is logged but
        // gives no authority, so no data key may be wrapped to the rogue.
        ledger
            .grant(&grant_by(&rogue, patient.id(), rogue.id()))
            .unwrap();
        assert!(!wrapped_to(&ledger, "Observation/1", &rogue));
        assert!(matches!(
            ledger.read(&rogue, "Observation/1", Purpose::Treat),
            Err(Error::AccessDenied {
                reason: DenyReason::UnknownIssuer,
                ..
            })
        ));
        // The patient's own grant wraps it right away.
        ledger
            .grant(&grant_by(&patient, patient.id(), doctor.id()))
            .unwrap();
        assert!(wrapped_to(&ledger, "Observation/1", &doctor));
    }

    #[test]
    fn reads_wrap_only_to_the_registered_key() {
        // The impostor test in tests/flows.rs covers the public path; here
        // the header is checked directly.
        let other = ActorKeys::generate(ActorKind::Clinician).unwrap();
        let (ledger, patient) = ledger_with_record(&[&other]);
        struct Claim<'a>(ActorId, &'a ActorKeys);
        impl KeyUnwrapper for Claim<'_> {
            fn actor(&self) -> ActorId {
                self.0
            }
            fn public_key(&self) -> medledger_envelope::RecipientPublicKey {
                self.1.public_key()
            }
            fn unwrap_data_key(
                &self,
                header: &Header,
                context: &medledger_envelope::RecordContext,
            ) -> medledger_envelope::Result<medledger_envelope::DataKey> {
                self.1.unwrap_data_key(header, context)
            }
        }
        let r = ledger.read(
            &Claim(patient.id(), &other),
            "Observation/1",
            Purpose::PatientRequest,
        );
        assert!(r.is_err());
        assert!(!wrapped_to(&ledger, "Observation/1", &other));
    }

    #[test]
    fn revoke_stops_at_a_corrupt_latest_version() {
        let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
        let (ledger, patient) = ledger_with_record(&[&doctor]);
        let gid = ledger
            .grant(&grant_by(&patient, patient.id(), doctor.id()))
            .unwrap();
        // A stored state claiming 2^64 - 1 versions (only one exists).
        let mut st = ledger.record_state("Observation/1", Op::Read).unwrap();
        st.latest = u64::MAX;
        let value = st.encode();
        ledger
            .state
            .transact(None, &mut |t| {
                t.put(crate::record::T_RECORDS, b"Observation/1", &value)
            })
            .unwrap();
        let rev = revocation_by(&patient, gid);
        assert!(matches!(
            ledger.revoke(&rev),
            Err(Error::UnknownRecord {
                version: Some(2),
                ..
            })
        ));
    }

    #[test]
    fn record_debug_hides_the_plaintext() {
        let r = Record {
            id: "Observation/1".into(),
            version: 1,
            content_type: "text/plain".into(),
            body: Zeroizing::new(b"HIV positive".to_vec()),
            event: 7,
            emergency: false,
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("72, 73, 86"), "{shown}");
        assert_eq!(
            shown,
            "Record { id: \"Observation/1\", version: 1, content_type: \"text/plain\", \
             body_len: 12, event: 7, emergency: false }"
        );
    }

    #[test]
    fn revocation_removes_the_grantees_wrap() {
        let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
        let (ledger, patient) = ledger_with_record(&[&doctor]);
        assert!(!wrapped_to(&ledger, "Observation/1", &doctor));
        let gid = ledger
            .grant(&grant_by(&patient, patient.id(), doctor.id()))
            .unwrap();
        assert!(wrapped_to(&ledger, "Observation/1", &doctor));
        let rev = revocation_by(&patient, gid);
        ledger.revoke(&rev).unwrap();
        assert!(!wrapped_to(&ledger, "Observation/1", &doctor));
        assert!(wrapped_to(&ledger, "Observation/1", &patient));
    }
}
