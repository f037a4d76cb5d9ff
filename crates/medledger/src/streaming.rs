//! Record bodies as streams: [`Ledger::write_from`] seals any
//! [`std::io::Read`] chunk by chunk straight into its body store (a blob
//! once it outgrows the inline limit; see `body`), hashing the
//! ciphertext into the blinded commitment on the way, and
//! [`Ledger::read_to`] decrypts into any [`std::io::Write`] after the same
//! decision and audit step as [`Ledger::read`]. Memory stays bounded by
//! the envelope's chunk size (64 KiB) whatever the body's length.

use std::io::{Read, Write};

use medledger_audit::{Action as AuditAction, Id32, Outcome, PurposeOfUse, RecordRef};
use medledger_chain::NodeStore;
use medledger_envelope::header::PREAMBLE_LEN;
use medledger_envelope::{Decryptor, Encryptor, Header, RecipientPublicKey, RecipientSecretKey};
use medledger_grants::{ActorId, ActorKind, Category, Purpose, RecordId, SensitivitySet};

use crate::access::deny_code;
use crate::body::{BodySink, NewBody};
use rand_core::{OsRng, RngCore};

use crate::error::{At, Error, Op, Result};
use crate::key_unwrap::KeyUnwrapper;
use crate::ledger::Ledger;
use crate::record::{
    x25519_of, Written, MAX_RECORD_ID_LEN, T_PATIENT_RECORDS, T_RECORDS, T_VERSIONS,
};
use crate::record_state::{
    encode_labels, patient_record_key, version_key, RecordState, VersionState, COMMITMENT_CONTEXT,
    T_VERSION_LABELS,
};
use crate::state_commit::Put;

/// Bytes read from the caller's body stream per step.
const STEP: usize = 64 * 1024;

/// A record version whose body comes from a stream (see
/// [`Ledger::write_from`]); the fields mean what they mean in
/// [`crate::NewRecord`].
#[derive(Clone, Debug)]
pub struct StreamedRecord<'a> {
    /// The record id (1 to 64 bytes; opaque, it appears in the log).
    pub id: &'a str,
    /// Whose record.
    pub patient: ActorId,
    /// Who writes it (a registered actor; it receives a wrapped key).
    pub author: ActorId,
    /// Media type, e.g. `application/fhir+json`.
    pub content_type: &'a str,
    /// Category grants scope by.
    pub category: &'a str,
    /// Sensitivity labels.
    pub labels: SensitivitySet,
}

/// What [`Ledger::read_to`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedRead {
    /// The version read.
    pub version: u64,
    /// Its media type.
    pub content_type: String,
    /// Plaintext bytes written to the caller's writer.
    pub bytes: u64,
    /// The log index of the access's audit event.
    pub event: u64,
}

/// A body writer that hashes everything after the envelope header into
/// the blinded commitment (the header is skipped by parsing its declared
/// length, so rewraps never change the commitment).
struct CommitSink<'b> {
    body: BodySink<'b>,
    hasher: blake3::Hasher,
    preamble: Vec<u8>,
    header_left: Option<usize>,
}

impl Write for CommitSink<'_> {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        self.body.write_all(data)?;
        loop {
            match self.header_left {
                None => {
                    let want = PREAMBLE_LEN.saturating_sub(self.preamble.len());
                    let (head, rest) = data.split_at(want.min(data.len()));
                    self.preamble.extend_from_slice(head);
                    data = rest;
                    if self.preamble.len() < PREAMBLE_LEN {
                        return Ok(n);
                    }
                    let total = Header::declared_len(&self.preamble)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    self.header_left = Some(total.saturating_sub(PREAMBLE_LEN));
                }
                Some(0) => {
                    self.hasher.update(data);
                    return Ok(n);
                }
                Some(left) => {
                    let (_, rest) = data.split_at(left.min(data.len()));
                    self.header_left = Some(left - left.min(data.len()));
                    data = rest;
                    if data.is_empty() {
                        return Ok(n);
                    }
                }
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.body.flush()
    }
}

/// The hasher of the blinded commitment (see `record_state`), with the
/// nonce already absorbed: feed it the envelope body.
fn commitment_hasher(nonce: &[u8; 32]) -> blake3::Hasher {
    let mut h = blake3::Hasher::new_derive_key(COMMITMENT_CONTEXT);
    h.update(nonce);
    h
}

/// Hashes the body left in `reader` (after its header) into a commitment.
pub(crate) fn commit_reader(nonce: &[u8; 32], reader: &mut dyn Read) -> std::io::Result<[u8; 32]> {
    let mut h = commitment_hasher(nonce);
    let mut buf = vec![0u8; STEP];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(*h.finalize().as_bytes());
        }
        h.update(buf.get(..n).unwrap_or(&[]));
    }
}

impl<N: NodeStore> Ledger<N> {
    /// Adds `reader` as a recipient of `record`'s `version` without holding
    /// the version in memory: only the header is read; if `reader` must be
    /// added (the custody key unwraps the data key), the new header and the
    /// body, copied through, go to a new body that replaces the old one.
    /// Caller holds the record lock.
    pub(crate) fn add_reader(
        &self,
        record: &str,
        st: &RecordState,
        version: u64,
        reader: &RecipientPublicKey,
        op: Op,
    ) -> Result<()> {
        let vs = self.version_state(record, version, op)?;
        let mut old = self.open_body(&vs.blob, op)?;
        let header = Header::read_from(&mut old).at(op)?;
        if header.recipients().any(|k| k == reader.key_id()) {
            return Ok(());
        }
        let ctx = self.context(record, st, version, op)?;
        let dk = header
            .unwrap_data_key(&self.custody_key(record, st, op)?, &ctx)
            .at(op)?;
        let new = header.add_recipients(&dk, &[*reader]).at(op)?;
        let mut sink = BodySink::new(self.blobs.as_ref());
        let id = sink.id();
        let copied = sink
            .write_all(&new.encode())
            .and_then(|()| std::io::copy(&mut old, &mut sink).map(|_| ()));
        if let Err(e) = copied {
            return Err(medledger_envelope::Error::from_io(e)).at(op);
        }
        let body = NewBody::commit(id, sink.finish(), op)?;
        self.swap_body(record, version, &vs, body, op)
    }

    /// [`Ledger::write`] with the body read from `body` in 64 KiB steps:
    /// sealed chunk by chunk into its body, the ciphertext hashed into the
    /// blinded commitment as it is written. Memory use does not grow with
    /// the body. If `body` fails, nothing is stored or logged. Authorized
    /// like [`Ledger::write`] (the patient, an active guardian, or a
    /// grantee of write); a refusal is [`Error::AccessDenied`], logged.
    ///
    /// ```
    /// use medledger::{Ledger, LedgerKey, StreamedRecord};
    /// use medledger::grants::*;
    ///
    /// let ledger = Ledger::in_memory("clinic.example/ledger", &LedgerKey::from_bytes([7; 32]))?;
    /// let patient = ActorKeys::generate(ActorKind::Patient)?;
    /// ledger.register(patient.actor(), "patients")?;
    /// let scan = std::io::repeat(0x42).take(1 << 20); // 1 MiB, never in memory whole
    /// # use std::io::Read;
    /// let written = ledger.write_from(&StreamedRecord {
    ///     id: "ImagingStudy/7", patient: patient.id(), author: patient.id(),
    ///     content_type: "application/dicom", category: "ImagingStudy",
    ///     labels: SensitivitySet::empty(),
    /// }, &mut scan.take(1 << 20))?;
    /// let mut out = Vec::new();
    /// let read = ledger.read_to(&patient, "ImagingStudy/7", None, Purpose::PatientRequest, &mut out)?;
    /// assert_eq!((read.version, read.bytes), (written.version, 1 << 20));
    /// assert!(out.iter().all(|b| *b == 0x42));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_from(&self, rec: &StreamedRecord<'_>, body: &mut dyn Read) -> Result<Written> {
        self.write_stream(rec, body, Op::Write, None)
    }

    /// The streaming write, tagged with `op`; `provenance`, if given, is
    /// stored in the same state transaction (table, value) under the
    /// version's key.
    pub(crate) fn write_stream(
        &self,
        rec: &StreamedRecord<'_>,
        body: &mut dyn Read,
        op: Op,
        provenance: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Written> {
        let _turn = self.turn(op)?;
        let bad = |what, reason| Error::InvalidInput { op, what, reason };
        if rec.id.is_empty() || rec.id.len() > MAX_RECORD_ID_LEN {
            return Err(bad("record id", "must be 1 to 64 bytes"));
        }
        RecordId::new(rec.id).at(op)?;
        Category::new(rec.category).at(op)?;
        if rec.content_type.is_empty() || rec.content_type.len() > 255 {
            return Err(bad("content type", "must be 1 to 255 bytes"));
        }
        let patient = self.actor(&rec.patient, op)?;
        if patient.kind() != ActorKind::Patient {
            return Err(bad("patient", "is not an actor of kind patient"));
        }
        let author = self.actor(&rec.author, op)?;
        let _guard = self.record_lock(rec.id);
        let (mut st, custody) = match self.record_state(rec.id, op) {
            Ok(st) if st.erased => {
                return Err(Error::RecordErased {
                    op,
                    record: rec.id.to_owned(),
                })
            }
            Ok(st) if st.patient != rec.patient => {
                return Err(bad("patient", "the record belongs to another patient"))
            }
            Ok(mut st) => {
                let custody = self.custody_key(rec.id, &st, op)?;
                st.latest = st.latest.checked_add(1).ok_or(bad("version", "overflow"))?;
                (st, custody)
            }
            Err(Error::UnknownRecord { .. }) => {
                let custody = RecipientSecretKey::generate();
                let sealed = self.secrets.seal_record_key(rec.id, &custody.to_bytes())?;
                let st = RecordState {
                    patient: rec.patient,
                    latest: 1,
                    erased: false,
                    labels: rec.labels,
                    category: String::new(),
                    content_type: String::new(),
                    custody: sealed,
                };
                (st, custody)
            }
            Err(e) => return Err(e),
        };
        // Each version is decided with its own labels (kept in its version
        // state); the record keeps their union for code that has no version
        // at hand, which can then only be more restrictive.
        st.labels = st.labels.iter().chain(rec.labels.iter()).collect();
        let previous_category = core::mem::replace(&mut st.category, rec.category.to_owned());
        st.content_type = rec.content_type.to_owned();
        let version = st.latest;
        let action = if op == Op::ShareImport {
            AuditAction::Import
        } else if version == 1 {
            AuditAction::Create
        } else {
            AuditAction::Update
        };
        let target = RecordRef {
            id: rec.id.to_owned(),
            version,
        };
        // Authorized as `write` is: the patient, an active guardian, or a
        // grantee of write for Treat over the new and the previous
        // category; a refusal is logged as a denied Create/Update.
        if let Some(reason) = self.write_denied(rec, &previous_category, op)? {
            let outcome = Outcome::Denied {
                code: deny_code(reason),
                reason: format!("{reason:?}"),
            };
            let event = self.event(
                op,
                action,
                &rec.author,
                &rec.patient,
                Some(target),
                PurposeOfUse::Treatment,
                outcome,
                Vec::new(),
                None,
            )?;
            let event = self.audit.append(event).at(op)?.index;
            return Err(Error::AccessDenied { op, reason, event });
        }
        let ctx = self.context(rec.id, &st, version, op)?;
        let mut recipients = vec![custody.public_key(), x25519_of(&patient)];
        if rec.author != rec.patient {
            recipients.push(x25519_of(&author));
        }
        let mut nonce = [0u8; 32];
        OsRng.fill_bytes(&mut nonce);
        let stored = BodySink::new(self.blobs.as_ref());
        let blob = stored.id();
        let sink = CommitSink {
            body: stored,
            hasher: commitment_hasher(&nonce),
            preamble: Vec::with_capacity(PREAMBLE_LEN),
            header_left: None,
        };
        // Dropping the encryptor (on any error below) drops the blob
        // writer, which aborts the blob.
        let mut enc = Encryptor::new(sink, &ctx, &recipients).at(op)?;
        let mut buf = zeroize::Zeroizing::new(vec![0u8; STEP]);
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(medledger_envelope::Error::from_io(e)).at(op),
            };
            enc.write_plaintext(buf.get(..n).unwrap_or(&[])).at(op)?;
        }
        let sink = enc.finish().at(op)?;
        let c = *sink.hasher.finalize().as_bytes();
        let stored = NewBody::commit(blob, sink.body.finish(), op)?;
        let mut event = self.event(
            op,
            action,
            &rec.author,
            &rec.patient,
            Some(target),
            PurposeOfUse::Treatment,
            Outcome::Success,
            Vec::new(),
            None,
        )?;
        event.commitment = Some(Id32(c));
        let index = match self.audit.append(event) {
            Ok(r) => r.index,
            Err(e) => {
                let _ = self.blobs.delete(&blob);
                return Err(e).at(op);
            }
        };
        let vs = VersionState {
            blob,
            nonce,
            event: index,
            commitment: c,
        };
        let vk = version_key(rec.id, version);
        let put = |table, key: &[u8], value: &[u8]| Put {
            table,
            key: key.to_vec(),
            value: value.to_vec(),
        };
        let mut rows = vec![
            put(T_RECORDS, rec.id.as_bytes(), &st.encode()),
            put(T_VERSIONS, &vk, &vs.encode()),
            put(T_VERSION_LABELS, &vk, &encode_labels(rec.labels)),
            put(
                T_PATIENT_RECORDS,
                &patient_record_key(&rec.patient, rec.id),
                &[],
            ),
        ];
        rows.extend(stored.rows(&vk));
        if let Some((table, value)) = provenance {
            rows.push(put(table, &vk, &value));
        }
        self.commit_rows(index, op, rows)?;
        // No `mark_referenced` here: the `blobs` row committed above is the
        // durable reference. The blob stays pending until the next open,
        // whose `collect_pending` keeps (and marks) every pending blob a
        // `blobs` row names and deletes the rest — the same outcome as
        // marking now, one durable commit (a rename and two directory
        // syncs on the embedded store) fewer per write.
        Ok(Written {
            record: rec.id.to_owned(),
            version,
            event: index,
            commitment: c,
        })
    }

    /// Adds the reader's wrap if needed, checks the stored ciphertext
    /// against its commitment (first pass), has the caller's unwrapper
    /// open its stanza, and returns a decryptor over a second reader of
    /// the same blob.
    fn open_stream(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        st: &RecordState,
        version: u64,
        reader_key: &RecipientPublicKey,
        op: Op,
    ) -> Result<Decryptor<Box<dyn Read + Send + '_>>> {
        let (vs, mut check, mut blob) = {
            let _guard = self.record_lock(record);
            self.add_reader(record, st, version, reader_key, op)?;
            let vs = self.version_state(record, version, op)?;
            // Both opened under the lock: a concurrent rewrap replaces the
            // blob, and an open reader keeps the version it opened.
            (
                vs,
                self.open_body(&vs.blob, op)?,
                self.open_body(&vs.blob, op)?,
            )
        };
        Header::read_from(&mut check).at(op)?;
        let c = commit_reader(&vs.nonce, &mut check)
            .map_err(medledger_envelope::Error::from_io)
            .at(op)?;
        if c != vs.commitment {
            return Err(Error::VerificationFailed {
                op,
                what: format!("ciphertext of {record} v{version} does not match its commitment"),
            });
        }
        let header = Header::read_from(&mut blob).at(op)?;
        let ctx = self.context(record, st, version, op)?;
        let dk = reader.unwrap_data_key(&header, &ctx).at(op)?;
        Decryptor::with_data_key(blob, header, &dk, &ctx).at(op)
    }

    /// [`Ledger::read_version`] (or [`Ledger::read`] when `version` is
    /// `None`) into `out`: the same decision, the same audit event either
    /// way, and only on allow is the body decrypted, chunk by chunk, each
    /// chunk written only after its tag verified. The ciphertext is checked
    /// against its logged commitment before any plaintext is written.
    /// If a later chunk fails, `out` has received the chunks before it:
    /// discard what was written on error.
    pub fn read_to(
        &self,
        reader: &dyn KeyUnwrapper,
        record: &str,
        version: Option<u64>,
        purpose: Purpose,
        out: &mut dyn Write,
    ) -> Result<StreamedRead> {
        let op = Op::Read;
        let turn = self.turn(op)?;
        let actor = reader.actor();
        // Wrap only to the key registered for the actor (see `read`).
        let reader_key = x25519_of(&self.actor(&actor, op)?);
        let allowed = self.decide_read(
            &actor,
            record,
            version,
            purpose,
            AuditAction::Read,
            None,
            op,
        )?;
        let version = allowed.version;
        // Allowed by policy: wrap, check the commitment and unwrap first,
        // then log what really happened (as `read` does), and only then
        // write plaintext.
        let opened = self.open_stream(reader, record, &allowed.st, version, &reader_key, op);
        let (plain, event) = self.log_allowed(&allowed, record, opened, op)?;
        // Decided and logged: other servers need not wait for the caller's
        // `out` (see `turns`).
        drop(turn);
        let bytes = plain.copy_to(out).at(op)?;
        Ok(StreamedRead {
            version,
            content_type: allowed.st.content_type,
            bytes,
            event,
        })
    }
}
