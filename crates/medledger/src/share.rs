//! Sharing a record version between organizations: the exporting ledger
//! builds a share package (format in `share_codec`), the importing ledger
//! verifies it offline against the trust it configured for the exporter's
//! log and stores the record so its recipient reads it through the normal
//! read path.
//!
//! # Trust
//!
//! The importer calls [`Ledger::trust_log`] with the exporter's
//! [`LogKey`] (origin, Ed25519 key, hash algorithm), the witnesses it
//! accepts and how many must cosign; it is kept in the state store (table
//! `share-trust`). A package from an origin without trust is refused.
//!
//! # What import checks, in order
//!
//! 1. the package decodes strictly, and its recipient is the given key
//!    unwrapper's actor and a registered actor of this ledger;
//! 2. the checkpoint note carries the exporter's log signature and k of n
//!    trusted witness cosignatures (medledger-chain [`Policy`]);
//! 3. the inclusion proof leads from the event's leaf hash to that
//!    checkpoint's root (C2SP tlog-proof);
//! 4. the event is a successful Create or Update of the package's record
//!    id and version, with a commitment;
//! 5. the blinded commitment over the nonce and the envelope body equals
//!    the event's;
//! 6. the exporter's log key signed the whole package, which binds what
//!    the log does not (patient, category, labels, recipient);
//! 7. the envelope opens for the recipient under the exporter's context
//!    (record id, the patient's pseudonym in the event, version, content
//!    type), every chunk authenticated.
//!
//! Only then is the body re-sealed, streaming, as a version of a local
//! record (the importer's context, custody key and patient pseudonym),
//! written by the recipient under this ledger's write policy (the patient,
//! an active guardian or a grantee of write; a refusal is logged like any
//! refused write), logged as an Import by the recipient, with the
//! provenance (origin, exporter's event index and commitment, checkpoint
//! size) kept in the same state transaction. Nothing is stored or logged
//! for a package that fails verification.

use medledger_audit::{Action as AuditAction, AuditEvent, Id32, Outcome};
use medledger_chain::{
    HashAlg, LogKey, NodeStore, Note, NoteVerifier, Policy, TlogProof, DEFAULT_MAX_FUTURE_SKEW,
};
use medledger_envelope::{Decryptor, Header, RecordContext};
use medledger_grants::{ActorId, Purpose};

use crate::error::{At, Error, Op, Result};
use crate::key_unwrap::KeyUnwrapper;
use crate::ledger::{now_ms, Ledger};
use crate::record::x25519_of;
use crate::record_state::{commitment, version_key};
use crate::share_codec::{ShareError, SharePackage};
use crate::streaming::StreamedRecord;

const T_SHARE_TRUST: &str = "share-trust";
const T_IMPORTS: &str = "imports";

/// Where an imported record version came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The local record id it was stored under.
    pub record: String,
    /// The local version.
    pub version: u64,
    /// The log index of the local Import event (by the recipient).
    pub event: u64,
    /// The exporting log's origin.
    pub origin: String,
    /// The exporter's log index of the write event.
    pub origin_event: u64,
    /// The exporter's blinded commitment to the ciphertext.
    pub origin_commitment: [u8; 32],
    /// The size of the exporter's checkpoint the event was proven in.
    pub checkpoint_size: u64,
}

fn share_err(op: Op, reason: ShareError) -> Error {
    Error::SharePackage { op, reason }
}

/// The commitment a `trust_log` event carries: a hash of the stored trust
/// configuration (hash name, log vkey, quorum, witness vkeys, one a line).
fn trust_commitment(text: &str) -> [u8; 32] {
    blake3::derive_key("medledger/v1 trusted log policy", text.as_bytes())
}

fn corrupt_trust() -> Error {
    Error::CorruptState {
        op: Op::ShareImport,
        table: T_SHARE_TRUST,
        reason: "trust entry does not decode",
    }
}

impl<N: NodeStore> Ledger<N> {
    /// Trusts another organization's log for share packages: its
    /// checkpoints must be signed by `log` and cosigned by at least
    /// `quorum` of `witnesses` (cosignature/v1 keys). Replaces any earlier
    /// trust for the same origin. Logged as a `grant` event of the ledger
    /// whose subject is derived from the origin and whose commitment is a
    /// hash of the whole trust configuration, so an auditor sees when trust
    /// in another log was set or changed.
    pub fn trust_log(&self, log: &LogKey, witnesses: &[NoteVerifier], quorum: usize) -> Result<()> {
        let op = Op::TrustOrganization;
        let _turn = self.turn(op)?;
        Policy::new(log.clone(), witnesses.to_vec(), quorum).at(op)?;
        let mut text = format!(
            "{}\n{}\n{}\n",
            log.alg().name(),
            log.verifier().to_vkey(),
            quorum
        );
        for w in witnesses {
            text.push_str(&w.to_vkey());
            text.push('\n');
        }
        let subject = ActorId(medledger_chain::Hash(blake3::derive_key(
            "medledger/v1 trusted log origin",
            log.origin().as_bytes(),
        )));
        let mut event = self.system_event(op, AuditAction::Grant, &subject)?;
        event.commitment = Some(Id32(trust_commitment(&text)));
        let logged = self.audit.append(event).at(op)?.index;
        self.commit_state(logged, op, &mut |t| {
            t.put(T_SHARE_TRUST, log.origin().as_bytes(), text.as_bytes())
        })
    }

    /// The policy configured for `origin`.
    fn trusted_log(&self, origin: &str, op: Op) -> Result<Policy> {
        let text = self
            .state
            .get(T_SHARE_TRUST, origin.as_bytes())
            .at(op)?
            .ok_or_else(|| {
                share_err(
                    op,
                    ShareError::UntrustedLog {
                        origin: origin.to_owned(),
                    },
                )
            })?;
        let text = String::from_utf8(text).map_err(|_| corrupt_trust())?;
        let mut lines = text.lines();
        let alg = lines
            .next()
            .and_then(HashAlg::from_name)
            .ok_or_else(corrupt_trust)?;
        let log = LogKey::from_vkey(origin, lines.next().ok_or_else(corrupt_trust)?, alg)
            .map_err(|_| corrupt_trust())?;
        let quorum = lines
            .next()
            .and_then(|q| q.parse().ok())
            .ok_or_else(corrupt_trust)?;
        let witnesses = lines
            .map(NoteVerifier::from_vkey)
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|_| corrupt_trust())?;
        Policy::new(log, witnesses, quorum).map_err(|_| corrupt_trust())
    }

    /// Exports `version` of `record` for `recipient`, who must be allowed
    /// to read it for `purpose` (decided by the grants engine like a read,
    /// and logged as an Export disclosure either way). The package holds
    /// the envelope with its header rewrapped to the recipient alone, the
    /// record's metadata, the version's write event (Create, Update or
    /// Import) with its commitment nonce, the event's inclusion proof and
    /// the latest cosigned checkpoint, signed by this ledger's log key.
    ///
    /// The version's write must be covered by a checkpoint
    /// ([`Ledger::checkpoint`]), else [`Error::NoCheckpoint`] (checked
    /// before anything is logged).
    pub fn export_share(
        &self,
        recipient: &ActorId,
        record: &str,
        version: u64,
        purpose: Purpose,
    ) -> Result<Vec<u8>> {
        let op = Op::ShareExport;
        let _turn = self.turn(op)?;
        let recipient_key = x25519_of(&self.actor(recipient, op)?);
        let written = self.version_state(record, version, op)?;
        let receipt = self.audit.receipt(written.event).at(op)?;
        let (Some(note), Some(path)) = (receipt.checkpoint, receipt.proof) else {
            return Err(Error::NoCheckpoint { op });
        };
        let allowed = self.decide_read(
            recipient,
            record,
            Some(version),
            purpose,
            AuditAction::Export,
            None,
            op,
        )?;
        // Build first, then log what really happened (as `read` does).
        let built = self.build_package(
            recipient,
            record,
            version,
            &allowed.st,
            &recipient_key,
            (note, path.path),
            op,
        );
        let (package, _) = self.log_allowed(&allowed, record, built, op)?;
        Ok(package)
    }

    /// The encoded, signed package of `version` of `record` for
    /// `recipient`, against checkpoint `note` with inclusion `path`.
    #[allow(clippy::too_many_arguments)]
    fn build_package(
        &self,
        recipient: &ActorId,
        record: &str,
        version: u64,
        st: &crate::record_state::RecordState,
        recipient_key: &medledger_envelope::RecipientPublicKey,
        (note, path): (String, Vec<medledger_chain::Hash>),
        op: Op,
    ) -> Result<Vec<u8>> {
        let (vs, stored) = {
            let _guard = self.record_lock(record);
            self.envelope(record, version, op)?
        };
        let (_, body) = Header::parse_prefix(&stored).at(op)?;
        if commitment(&vs.nonce, body) != vs.commitment {
            return Err(Error::VerificationFailed {
                op,
                what: format!("ciphertext of {record} v{version} does not match its commitment"),
            });
        }
        let ctx = self.context(record, st, version, op)?;
        let custody = self.custody_key(record, st, op)?;
        let envelope =
            medledger_envelope::rewrap(&stored, &ctx, &custody, &[*recipient_key]).at(op)?;
        let event = self.audit.event(vs.event).at(op)?.encode().at(op)?;
        let leaf = self.audit.receipt(vs.event).at(op)?.leaf_hash;
        if self.audit.alg().leaf_hash(&event) != leaf {
            return Err(Error::VerificationFailed {
                op,
                what: format!("log entry {} does not re-encode to its leaf", vs.event),
            });
        }
        let proof = TlogProof {
            extra: None,
            index: vs.event,
            path,
            checkpoint: Note::parse(note.as_bytes()).at(op)?,
        }
        .to_text()
        .at(op)?;
        let mut package = SharePackage {
            origin: self.origin.clone(),
            record: record.to_owned(),
            version,
            content_type: st.content_type.clone(),
            category: st.category.clone(),
            labels: st.labels,
            patient: st.patient,
            recipient: *recipient,
            nonce: vs.nonce,
            event,
            proof,
            envelope,
            signature: [0; 64],
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&self.secrets.signing);
        package.signature =
            ed25519_dalek::Signer::sign(&key, &package.signature_message()).to_bytes();
        Ok(package.encode())
    }

    /// Verifies a share package from another organization's ledger
    /// (see the module docs for every check) and stores its record as a
    /// version of `local_id` in this ledger, patient `package.patient`
    /// (who must be registered here), written by the recipient, who must
    /// be allowed to write it here like any [`Ledger::write`] (the
    /// patient, an active guardian, or a grantee of write; a refusal is
    /// [`Error::AccessDenied`], logged as a denied Import). The
    /// recipient's key unwrapper opens the envelope; the recipient then
    /// reads it like any other record of this ledger, under this
    /// ledger's grants. A package that fails verification changes
    /// nothing. Importing again the package `local_id`'s latest version
    /// came from returns that import and changes nothing; a package of an
    /// older write of the same log is refused as [`ShareError::Stale`].
    ///
    /// ```
    /// use medledger::chain::{CosignatureSigner, Witness};
    /// use medledger::grants::*;
    /// use medledger::{Ledger, LedgerKey, NewRecord};
    ///
    /// let a = Ledger::in_memory("a.example/ledger", &LedgerKey::from_bytes([1; 32]))?;
    /// let b = Ledger::in_memory("b.example/ledger", &LedgerKey::from_bytes([2; 32]))?;
    /// let patient = ActorKeys::generate(ActorKind::Patient)?;
    /// let doctor = ActorKeys::generate(ActorKind::Clinician)?; // works at B
    /// for l in [&a, &b] {
    ///     l.register(patient.actor(), "patients")?;
    ///     l.register(doctor.actor(), "b-hospital")?;
    /// }
    /// a.write(&NewRecord {
    ///     id: "Observation/1", patient: patient.id(), author: patient.id(),
    ///     content_type: "application/fhir+json", category: "Observation",
    ///     labels: SensitivitySet::empty(), body: b"{}",
    /// })?;
    /// let grant = SignedGrant::sign(Grant {
    ///     issuer: patient.id(), patient: patient.id(),
    ///     grantee: Grantee::Actor(doctor.id()), parent: None, scope: Scope::All,
    ///     sensitivity: SensitivitySet::empty(),
    ///     actions: ActionSet::empty().with(Action::Read).with(Action::Write),
    ///     purposes: PurposeSet::empty().with(Purpose::Treat),
    ///     validity: Validity::new(0, u64::MAX / 2)?,
    ///     max_delegation_depth: 0, issued_at: 0, nonce: Grant::fresh_nonce(),
    /// }, &patient)?;
    /// a.grant(&grant)?;
    /// let mut witness = Witness::in_memory(CosignatureSigner::generate("w.example")?);
    /// witness.add_log(a.log_key()?);
    /// a.checkpoint(&[&witness])?;
    /// let package = a.export_share(&doctor.id(), "Observation/1", 1, Purpose::Treat)?;
    ///
    /// b.trust_log(&a.log_key()?, &[witness.signer().verifier()?], 1)?;
    /// b.grant(&grant)?; // B's writes and reads follow B's grants
    /// b.import_share(&package, &doctor, "a/Observation/1")?;
    /// let record = b.read(&doctor, "a/Observation/1", Purpose::Treat)?;
    /// assert_eq!(&record.body[..], b"{}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_share(
        &self,
        package: &[u8],
        recipient: &dyn KeyUnwrapper,
        local_id: &str,
    ) -> Result<Imported> {
        let op = Op::ShareImport;
        let _turn = self.turn(op)?;
        let fail = |reason| share_err(op, reason);
        let pkg = SharePackage::decode(package).map_err(fail)?;
        if recipient.actor() != pkg.recipient {
            return Err(fail(ShareError::WrongRecipient {
                expected: pkg.recipient,
                given: recipient.actor(),
            }));
        }
        if self.index().actor(&pkg.recipient).is_none() {
            return Err(fail(ShareError::RecipientNotMember {
                recipient: pkg.recipient,
            }));
        }
        let policy = self.trusted_log(&pkg.origin, op)?;
        let proof = TlogProof::parse(pkg.proof.as_bytes()).at(op)?;
        let verified = proof.verify_entry(&policy, &pkg.event).at(op)?;
        verified
            .check_cosignature_times(now_ms() / 1000, DEFAULT_MAX_FUTURE_SKEW)
            .at(op)?;
        let event = AuditEvent::decode(&pkg.event).map_err(|_| {
            fail(ShareError::BadField {
                field: "event",
                reason: "does not decode",
            })
        })?;
        let logged = check_event(&event, &pkg).map_err(fail)?;
        let (header, body) = Header::parse_prefix(&pkg.envelope).at(op)?;
        if commitment(&pkg.nonce, body) != logged {
            return Err(fail(ShareError::CommitmentMismatch));
        }
        let signature = ed25519_dalek::Signature::from_bytes(&pkg.signature);
        policy
            .log()
            .verifier()
            .public_key()
            .verify_strict(&pkg.signature_message(), &signature)
            .map_err(|_| fail(ShareError::BadSignature))?;
        // A replay of the package the local record's latest version came
        // from is answered with that import (nothing is written or logged
        // again); an older write of the same log is refused as stale.
        if let Some(latest) = self.latest_import(local_id, op)? {
            if latest.origin == pkg.origin && latest.origin_event == proof.index {
                return Ok(latest);
            }
            if latest.origin == pkg.origin && latest.origin_event > proof.index {
                return Err(fail(ShareError::Stale {
                    imported: latest.origin_event,
                    package: proof.index,
                }));
            }
        }
        let ctx = RecordContext::new(
            &pkg.record,
            event.patient.to_hex(),
            pkg.version,
            pkg.content_type.clone(),
        )
        .at(op)?;
        let dk = recipient.unwrap_data_key(&header, &ctx).at(op)?;
        let mut plain = Decryptor::with_data_key(body, header, &dk, &ctx).at(op)?;
        let mut provenance = Vec::with_capacity(1 + pkg.origin.len() + 48);
        provenance.push(u8::try_from(pkg.origin.len()).unwrap_or(u8::MAX));
        provenance.extend_from_slice(pkg.origin.as_bytes());
        provenance.extend_from_slice(&proof.index.to_be_bytes());
        provenance.extend_from_slice(&logged);
        provenance.extend_from_slice(&verified.checkpoint.size.to_be_bytes());
        let written = self.write_stream(
            &StreamedRecord {
                id: local_id,
                patient: pkg.patient,
                author: pkg.recipient,
                content_type: &pkg.content_type,
                category: &pkg.category,
                labels: pkg.labels,
            },
            &mut plain,
            op,
            Some((T_IMPORTS, provenance)),
        )?;
        Ok(Imported {
            record: written.record,
            version: written.version,
            event: written.event,
            origin: pkg.origin,
            origin_event: proof.index,
            origin_commitment: logged,
            checkpoint_size: verified.checkpoint.size,
        })
    }

    /// The provenance of `record`'s latest version, if the record exists
    /// and that version was imported.
    fn latest_import(&self, record: &str, op: Op) -> Result<Option<Imported>> {
        match self.record_state(record, op) {
            Ok(st) if !st.erased => self.imported_from(record, st.latest),
            Ok(_) | Err(Error::UnknownRecord { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The provenance of an imported version of `record`, or `None` if
    /// that version was written here.
    pub fn imported_from(&self, record: &str, version: u64) -> Result<Option<Imported>> {
        let op = Op::ShareImport;
        let Some(v) = self
            .state
            .get(T_IMPORTS, &version_key(record, version))
            .at(op)?
        else {
            return Ok(None);
        };
        let corrupt = || Error::CorruptState {
            op,
            table: T_IMPORTS,
            reason: "provenance does not decode",
        };
        let vs = self.version_state(record, version, op)?;
        let (&len, rest) = v.split_first().ok_or_else(corrupt)?;
        let (origin, rest) = rest
            .split_at_checked(usize::from(len))
            .ok_or_else(corrupt)?;
        let (index, rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let (c, rest) = rest.split_first_chunk::<32>().ok_or_else(corrupt)?;
        let size = rest
            .first_chunk::<8>()
            .filter(|_| rest.len() == 8)
            .ok_or_else(corrupt)?;
        Ok(Some(Imported {
            record: record.to_owned(),
            version,
            event: vs.event,
            origin: String::from_utf8(origin.to_vec()).map_err(|_| corrupt())?,
            origin_event: u64::from_be_bytes(*index),
            origin_commitment: *c,
            checkpoint_size: u64::from_be_bytes(*size),
        }))
    }
}

/// Checks that `event` is the successful write of the package's record
/// version; returns its commitment.
fn check_event(
    event: &AuditEvent,
    pkg: &SharePackage,
) -> core::result::Result<[u8; 32], ShareError> {
    let mismatch = |what| ShareError::EventMismatch { what };
    if !matches!(
        event.action,
        AuditAction::Create | AuditAction::Update | AuditAction::Import
    ) {
        return Err(mismatch("not a Create, Update or Import event"));
    }
    if event.outcome != Outcome::Success {
        return Err(mismatch("not a successful write"));
    }
    let r = event.record.as_ref().ok_or(mismatch("names no record"))?;
    if r.id != pkg.record {
        return Err(mismatch("record id"));
    }
    if r.version != pkg.version {
        return Err(mismatch("record version"));
    }
    event
        .commitment
        .as_ref()
        .map(|c| c.0)
        .ok_or(mismatch("carries no commitment"))
}
