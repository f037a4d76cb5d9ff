//! The [`Ledger`]: construction, key custody on open, identities, and the
//! audit-event glue every operation shares.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use medledger_audit::{
    Action, Actor as AuditActor, AuditEvent, AuditLog, Id32, IssuedCheckpoint, LedgerSecret,
    Outcome, PatientKey, PurposeOfUse, RecordRef, Role as AuditRole,
};
use medledger_chain::{
    Checkpoint, Ed25519Signer, HashAlg, LogKey, MemoryNodeStore, NodeStore, Note,
};
use medledger_grants::{Actor, ActorId, ActorKind, GrantIndex, LogPosition, Purpose};
use medledger_store::{
    BlobStore, EmbeddedStore, EntryLog, FileNodeStore, StateStore, StoreOptions,
};

use crate::backend::{self, Stores};
use crate::custody::{LedgerKey, Secrets};
use crate::error::{At, Error, Op, Result};
use crate::follow::Caught;
use crate::guardian::Guardians;
use crate::state_commit::StateCommits;
use crate::state_rows::{load_actor, load_object, Pending};
use crate::turns::Turns;

/// Number of lock stripes serializing writers of the same record.
const RECORD_STRIPES: usize = 64;
/// Longest organization label of an actor (the audit event's limit).
pub const MAX_ORGANIZATION_LEN: usize = 64;

pub(crate) const T_LEDGER: &str = "ledger";
pub(crate) const T_ACTORS: &str = "actors";
pub(crate) const T_TRUSTED: &str = "trusted";
pub(crate) const T_OBJECTS: &str = "objects";
pub(crate) const T_CHECKPOINTS: &str = "checkpoints";
/// Signed objects whose log entry may not be durable yet (see
/// `Ledger::append_object`).
pub(crate) const T_PENDING: &str = "pending-objects";
/// Log entries read per batch when resolving pending objects on open.
pub(crate) const PENDING_SCAN_CHUNK: u64 = 4096;

pub(crate) const OBJ_GRANT: u8 = 1;
pub(crate) const OBJ_MEMBERSHIP: u8 = 2;
pub(crate) const OBJ_REVOCATION: u8 = 3;
pub(crate) const OBJ_APPOINTMENT: u8 = 4;

/// A medical-record ledger: encrypted records, patient grants, one
/// tamper-evident log of every write, grant, revocation, access attempt,
/// erasure and key event, signed checkpoints and witness cosignatures.
///
/// `Send + Sync`: share it behind an `Arc`; operations on different
/// records run concurrently and their log appends share group commits.
pub struct Ledger<N: NodeStore = FileNodeStore> {
    pub(crate) origin: String,
    pub(crate) source: String,
    pub(crate) audit: AuditLog<N>,
    pub(crate) entries: Arc<dyn EntryLog>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) secrets: Secrets,
    pub(crate) signer: Ed25519Signer,
    pub(crate) pseudonyms: LedgerSecret,
    pub(crate) index: RwLock<GrantIndex>,
    /// Guardian appointments (locked after `index` when both are held).
    guardians: RwLock<Guardians>,
    pub(crate) organizations: RwLock<HashMap<ActorId, String>>,
    pub(crate) checkpoint_lock: Mutex<()>,
    /// The highest log index a state transaction was stamped with: stamps
    /// must not regress, but concurrent appends finish out of order.
    stamp: Mutex<u64>,
    /// One past the highest log position this ledger keyed an `objects` or
    /// `changes` row with: catch-up reads other writers' rows above it
    /// (see `follow`).
    pub(crate) rows_end: Mutex<u64>,
    /// Group commit of writes' state rows (see `state_commit`).
    pub(crate) state_commits: StateCommits,
    record_locks: Vec<Mutex<()>>,
    /// Turn-taking with the other writers of a shared store (PostgreSQL);
    /// `None` when this ledger is its store's only writer.
    pub(crate) turns: Option<Turns>,
    /// How far other writers' work is taken in (see `follow`).
    pub(crate) caught: Mutex<Caught>,
}

impl<N: NodeStore> core::fmt::Debug for Ledger<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin", &self.origin)
            .field("size", &self.audit.size())
            .finish_non_exhaustive()
    }
}

impl Ledger<FileNodeStore> {
    /// Opens (or creates) the ledger named `origin` in directory `dir` on
    /// the embedded store, unsealing its secrets with `key`. A wrong key is
    /// [`Error::WrongLedgerKey`]; a damaged store is [`Error::Store`].
    pub fn open(dir: impl AsRef<Path>, origin: &str, key: &LedgerKey) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|source| medledger_store::Error::Io {
                op: "create ledger directory",
                path: dir.to_owned(),
                source,
            })
            .at(Op::Open)?;
        let (store, _report) = EmbeddedStore::open(dir, StoreOptions::default()).at(Op::Open)?;
        let stores = backend::embedded(Arc::new(store)).at(Op::Open)?;
        Ledger::with_stores(stores, origin, key)
    }
}

impl Ledger<MemoryNodeStore> {
    /// A ledger entirely in memory (tests, examples), BLAKE3 tree.
    pub fn in_memory(origin: &str, key: &LedgerKey) -> Result<Self> {
        Ledger::with_stores(Stores::in_memory(HashAlg::Blake3), origin, key)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<N: NodeStore> Ledger<N> {
    /// A ledger over any implementation of the storage traits. Reconciles
    /// the state with the log, unseals (or creates and seals) the ledger's
    /// secrets, rebuilds the audit indexes, the grant index and the
    /// checkpoints, and removes blobs no durable entry references.
    pub fn with_stores(stores: Stores<N>, origin: &str, key: &LedgerKey) -> Result<Self> {
        let op = Op::Open;
        let Stores {
            entries,
            tree,
            blobs,
            state,
        } = stores;
        let len = entries.len().at(op)?;
        state.reconcile(len).at(op)?;
        let secrets = match state.get(T_LEDGER, b"secrets").at(op)? {
            Some(sealed) => Secrets::unseal(&sealed, key, origin)?,
            None => {
                let s = Secrets::generate();
                let sealed = s.seal(key, origin)?;
                state
                    .transact(None, &mut |t| t.put(T_LEDGER, b"secrets", &sealed))
                    .at(op)?;
                s
            }
        };
        let signer = Ed25519Signer::new(
            origin,
            ed25519_dalek::SigningKey::from_bytes(&secrets.signing),
        )
        .at(op)?;
        let pseudonyms = LedgerSecret::from_bytes(secrets.pseudonym);
        let audit = AuditLog::open(origin, entries.clone(), tree).at(op)?;
        let stamp = state.log_index().at(op)?.unwrap_or(0);
        let ledger = Ledger {
            origin: origin.to_owned(),
            source: source_node(origin),
            audit,
            entries,
            blobs,
            state,
            secrets,
            signer,
            pseudonyms,
            index: RwLock::new(GrantIndex::new()),
            guardians: RwLock::new(Guardians::default()),
            organizations: RwLock::new(HashMap::new()),
            checkpoint_lock: Mutex::new(()),
            stamp: Mutex::new(stamp),
            rows_end: Mutex::new(0),
            state_commits: StateCommits::default(),
            record_locks: (0..RECORD_STRIPES).map(|_| Mutex::new(())).collect(),
            turns: None,
            caught: Mutex::new(Caught { len, stale: false }),
        };
        ledger.restore()?;
        Ok(ledger)
    }

    /// Rebuilds what lives in memory from the state store.
    fn restore(&self) -> Result<()> {
        let op = Op::Open;
        self.resolve_pending()?;
        let corrupt = |table, reason| Error::CorruptState { op, table, reason };
        {
            let mut index = self.index_mut();
            let mut guardians = self.guardians_mut();
            let mut orgs = self
                .organizations
                .write()
                .unwrap_or_else(|e| e.into_inner());
            self.load_memory(&mut index, &mut guardians, &mut orgs, op)?;
        }
        for (_, v) in self.state.scan(T_CHECKPOINTS, b"", usize::MAX).at(op)? {
            let note = String::from_utf8(v).map_err(|_| corrupt(T_CHECKPOINTS, "not UTF-8"))?;
            let parsed = Note::parse(note.as_bytes()).at(op)?;
            let checkpoint = Checkpoint::parse_body(parsed.text()).at(op)?;
            self.audit
                .restore_checkpoint(IssuedCheckpoint { checkpoint, note })
                .at(op)?;
        }
        let state = &self.state;
        self.blobs
            .collect_pending(&mut |id| Ok(state.get(crate::record::T_BLOBS, &id.0)?.is_some()))
            .at(op)?;
        Ok(())
    }

    /// Replaces the grant index, guardians and organization labels with
    /// what the state store holds (actors, trusted organizations, signed
    /// objects).
    fn load_memory(
        &self,
        index: &mut GrantIndex,
        guardians: &mut Guardians,
        orgs: &mut HashMap<ActorId, String>,
        op: Op,
    ) -> Result<()> {
        let (mut i, mut g, mut o) = (GrantIndex::new(), Guardians::default(), HashMap::new());
        for (_, v) in self.state.scan(T_ACTORS, b"", usize::MAX).at(op)? {
            load_actor(&mut i, &mut o, &v, op)?;
        }
        for (k, _) in self.state.scan(T_TRUSTED, b"", usize::MAX).at(op)? {
            let id = id_from(&k).ok_or(Error::CorruptState {
                op,
                table: T_TRUSTED,
                reason: "bad id",
            })?;
            i.trust_organization(id).at(op)?;
        }
        for (k, v) in self.state.scan(T_OBJECTS, b"", usize::MAX).at(op)? {
            load_object(&mut i, &mut g, &k, &v, op)?;
        }
        (*index, *guardians, *orgs) = (i, g, o);
        Ok(())
    }

    /// The log's origin (its name in checkpoints).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Number of entries in the log (on a shared store: as of this
    /// ledger's last turn).
    pub fn size(&self) -> u64 {
        self.audit.size()
    }

    /// The public key that verifies this ledger's checkpoints, with its
    /// origin and hash algorithm: what witnesses and auditors configure.
    pub fn log_key(&self) -> Result<LogKey> {
        LogKey::new(&self.origin, self.signer.verifier(), self.audit.alg()).at(Op::Checkpoint)
    }

    /// The underlying audit log (queries: actor activity, time ranges,
    /// pending emergency reviews, receipts); on a shared store, as of this
    /// ledger's last turn.
    pub fn audit_log(&self) -> &AuditLog<N> {
        &self.audit
    }

    /// The pseudonymous partition key of `patient` in this ledger's log.
    pub fn patient_key(&self, patient: &ActorId) -> Result<PatientKey> {
        self.pseudonyms
            .patient_key(patient.as_bytes())
            .at(Op::Report)
    }

    /// Runs `f` in one state transaction reflecting log entry `index`
    /// (already durable). Stamps are kept monotonic: a transaction that
    /// finishes after a later entry's is stamped with that later index,
    /// which is durable too, so reconciliation never undoes it wrongly.
    pub(crate) fn commit_state(
        &self,
        index: u64,
        op: Op,
        f: &mut dyn FnMut(&mut dyn medledger_store::StateTxn) -> medledger_store::Result<()>,
    ) -> Result<()> {
        let mut stamp = lock(&self.stamp);
        let reflects = index.max(*stamp);
        // Entry first: nothing to journal for undo (see
        // `StateStore::transact_applied`).
        self.state.transact_applied(reflects, f).at(op)?;
        *stamp = reflects;
        Ok(())
    }

    /// Notes that this ledger keys an `objects` or `changes` row with log
    /// position `at`.
    pub(crate) fn wrote_rows_at(&self, at: u64) {
        let mut end = lock(&self.rows_end);
        *end = (*end).max(at.saturating_add(1));
    }

    pub(crate) fn index(&self) -> RwLockReadGuard<'_, GrantIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn index_mut(&self) -> RwLockWriteGuard<'_, GrantIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn guardians(&self) -> RwLockReadGuard<'_, Guardians> {
        self.guardians.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn guardians_mut(&self) -> RwLockWriteGuard<'_, Guardians> {
        self.guardians.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a signed object (grant, revocation, membership, guardian
    /// appointment) with its audit `event`, whose `commitment` is set to
    /// `object_id`. Under the index lock, `load` verifies and loads the
    /// object at the log position it takes effect from (the log size
    /// before the append). Returns the event's log index.
    ///
    /// Crash safety (the log is the source of truth): the object's bytes
    /// are made durable in the state table `pending-objects` *before* the
    /// event is appended, and moved to `objects` (stamped with the event's
    /// index) after. A crash between the two leaves a pending row, which
    /// [`Ledger::with_stores`] resolves on open: kept if a durable event
    /// commits to the object, dropped otherwise. So an object is either
    /// effective with its event in the log, or absent with no event.
    pub(crate) fn append_object(
        &self,
        op: Op,
        tag: u8,
        bytes: &[u8],
        mut event: AuditEvent,
        object_id: [u8; 32],
        load: &mut dyn FnMut(
            &mut GrantIndex,
            &mut Guardians,
            LogPosition,
        ) -> medledger_grants::Result<()>,
    ) -> Result<u64> {
        let mut index = self.index_mut();
        let mut guardians = self.guardians_mut();
        // Objects are keyed by position: never reuse one, even while the
        // tree waits behind an append whose outcome was unknown.
        let at = self.audit.size().max(*lock(&self.rows_end));
        load(&mut index, &mut guardians, LogPosition(at)).at(op)?;
        let mut pending = vec![tag];
        pending.extend_from_slice(&at.to_be_bytes());
        pending.extend_from_slice(bytes);
        event.commitment = Some(Id32(object_id));
        let appended = self
            .state
            .transact(None, &mut |t| t.put(T_PENDING, &object_id, &pending))
            .at(op)
            .and_then(|()| self.audit.append(event).at(op));
        let logged = match appended {
            Ok(r) => r.index,
            Err(e) => {
                // The object was loaded but is not logged: put memory back
                // to what the state holds. A pending row stays: the append
                // may still have landed (an unknown outcome), and then a
                // catch-up or the next open adopts it; otherwise the next
                // open drops it.
                let mut orgs = self
                    .organizations
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                self.load_memory(&mut index, &mut guardians, &mut orgs, op)?;
                return Err(e);
            }
        };
        let mut value = vec![tag];
        value.extend_from_slice(bytes);
        self.wrote_rows_at(at);
        self.commit_state(logged, op, &mut |t| {
            t.put(T_OBJECTS, &at.to_be_bytes(), &value)?;
            t.delete(T_PENDING, &object_id).map(|_| ())
        })?;
        Ok(logged)
    }

    /// Resolves objects left pending by a crash between their state row
    /// and their log entry (see [`Ledger::append_object`]): an object whose
    /// event (an audit entry at or after its position whose commitment is
    /// the object's id) is in the log becomes effective; any other is
    /// dropped.
    fn resolve_pending(&self) -> Result<()> {
        let op = Op::Open;
        let len = self.entries.len().at(op)?;
        for (id, v) in self.state.scan(T_PENDING, b"", usize::MAX).at(op)? {
            let pending = Pending::parse(&id, &v, op)?;
            let logged = self.commitment_logged(&pending.id, pending.at, len, op)?;
            self.state
                .transact(None, &mut |t| {
                    if logged {
                        t.put(T_OBJECTS, &pending.at.to_be_bytes(), &pending.value)?;
                    }
                    t.delete(T_PENDING, &id).map(|_| ())
                })
                .at(op)?;
        }
        Ok(())
    }

    /// Whether an audit entry in `from..len` commits to `id`.
    pub(crate) fn commitment_logged(
        &self,
        id: &[u8; 32],
        from: u64,
        len: u64,
        op: Op,
    ) -> Result<bool> {
        let mut from = from.min(len);
        while from < len {
            let end = len.min(from.saturating_add(PENDING_SCAN_CHUNK));
            let found = self
                .entries
                .read_range(from..end)
                .at(op)?
                .iter()
                .any(|e| AuditEvent::decode(e).is_ok_and(|e| e.commitment == Some(Id32(*id))));
            if found {
                return Ok(true);
            }
            from = end;
        }
        Ok(false)
    }

    pub(crate) fn record_lock(&self, record: &str) -> MutexGuard<'_, ()> {
        let h = blake3::hash(record.as_bytes());
        let stripe = usize::from(h.as_bytes().first().copied().unwrap_or(0)) % RECORD_STRIPES;
        match self.record_locks.get(stripe) {
            Some(m) => lock(m),
            None => lock(&self.checkpoint_lock),
        }
    }

    /// The registered actor `id`, or [`Error::UnknownActor`].
    pub(crate) fn actor(&self, id: &ActorId, op: Op) -> Result<Actor> {
        self.index()
            .actor(id)
            .copied()
            .ok_or(Error::UnknownActor { op, actor: *id })
    }

    /// An audit event for `actor` on `patient`'s data.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &self,
        op: Op,
        action: Action,
        actor: &ActorId,
        patient: &ActorId,
        record: Option<RecordRef>,
        purpose: PurposeOfUse,
        outcome: Outcome,
        grant_chain: Vec<Id32>,
        emergency: Option<String>,
    ) -> Result<AuditEvent> {
        let kind = self.actor(actor, op)?.kind();
        let organization = self
            .organizations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(actor)
            .cloned()
            .ok_or(Error::UnknownActor { op, actor: *actor })?;
        Ok(AuditEvent {
            action,
            actor: AuditActor {
                id: Id32(*actor.as_bytes()),
                role: audit_role(kind),
                organization,
            },
            patient: self.pseudonyms.patient_key(patient.as_bytes()).at(op)?,
            record,
            time_ms: now_ms(),
            source: self.source.clone(),
            purpose,
            outcome,
            grant_chain,
            emergency,
            prev_for_patient: None,
            refers_to: None,
            commitment: None,
        })
    }
}

/// The audit events' source node: the origin, cut at a character boundary
/// to the event encoding's 64-byte limit.
fn source_node(origin: &str) -> String {
    let mut end = origin.len().min(medledger_audit::codec::MAX_ID_LEN);
    while !origin.is_char_boundary(end) {
        end -= 1;
    }
    origin.get(..end).unwrap_or_default().to_owned()
}

/// The audit role of a grants actor kind.
pub(crate) fn audit_role(kind: ActorKind) -> AuditRole {
    match kind {
        ActorKind::Patient => AuditRole::Patient,
        ActorKind::Guardian => AuditRole::Guardian,
        ActorKind::Clinician => AuditRole::Clinician,
        ActorKind::Organization => AuditRole::ExternalParty,
        ActorKind::Auditor => AuditRole::Auditor,
        ActorKind::System => AuditRole::System,
    }
}

/// The audit PurposeOfUse of a grants purpose (HL7 codes; the audit
/// vocabulary is smaller, so family requests map to patient requests and
/// power of attorney to legal).
pub(crate) fn audit_purpose(p: Purpose) -> PurposeOfUse {
    match p {
        Purpose::Treat | Purpose::CareManagement => PurposeOfUse::Treatment,
        Purpose::EmergencyTreat | Purpose::BreakTheGlass => PurposeOfUse::EmergencyTreatment,
        Purpose::Payment => PurposeOfUse::Payment,
        Purpose::Operations => PurposeOfUse::Operations,
        Purpose::Research => PurposeOfUse::Research,
        Purpose::PatientRequest | Purpose::FamilyRequest => PurposeOfUse::PatientRequested,
        Purpose::PowerOfAttorney | Purpose::Legal => PurposeOfUse::Legal,
        Purpose::PublicHealth => PurposeOfUse::PublicHealth,
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn u64_from(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

pub(crate) fn id_from(b: &[u8]) -> Option<ActorId> {
    Some(ActorId(medledger_chain::Hash(b.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_node_fits_the_event_limit_at_a_character_boundary() {
        assert_eq!(source_node("clinic.example/log"), "clinic.example/log");
        // 40 two-byte characters: 80 bytes, cut to 32 characters (64 bytes).
        let long = "é".repeat(40);
        assert_eq!(source_node(&long), "é".repeat(32));
        // A three-byte character straddling byte 64 is dropped whole.
        let straddle = format!("{}€", "a".repeat(62));
        assert_eq!(source_node(&straddle), "a".repeat(62));
    }

    #[test]
    fn a_long_non_ascii_origin_still_logs_events() {
        let origin = "klinik-ümraniye-".repeat(5);
        assert!(origin.len() > 64);
        let ledger = Ledger::in_memory(&origin, &LedgerKey::from_bytes([5; 32])).unwrap();
        let patient = medledger_grants::ActorKeys::generate(ActorKind::Patient).unwrap();
        ledger.register(patient.actor(), "patients").unwrap();
        ledger
            .write(&crate::NewRecord {
                id: "Observation/1",
                patient: patient.id(),
                author: patient.id(),
                content_type: "application/fhir+json",
                category: "Observation",
                labels: medledger_grants::SensitivitySet::empty(),
                body: b"{}",
            })
            .unwrap();
        assert!(ledger.size() >= 2);
    }
}
