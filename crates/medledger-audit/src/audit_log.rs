//! The audit log: appends events to the entry log and the Merkle tree,
//! keeps the per-patient chain, answers indexed queries, signs checkpoints
//! and hands out receipts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use medledger_chain::witness::WitnessStateStore;
use medledger_chain::{
    Checkpoint, Ed25519Signer, Hash, HashAlg, InclusionProof, MerkleLog, NodeStore, Note, Witness,
};
use medledger_store::EntryLog;

use crate::checkpoint_entry::{self, is_checkpoint_entry};
use crate::codec::is_audit_entry;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, Id32};
use crate::heads::{is_heads_entry, HeadsEntry, HeadsTree};
use crate::index::Indexes;
use crate::pseudonym::PatientKey;

/// Entries read per call while rebuilding the indexes on open.
const REBUILD_CHUNK: u64 = 4096;

/// What an append gives back: where the event is, and (once a checkpoint
/// covers it) the proof that it is in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The event's log index.
    pub index: u64,
    /// Its RFC 9162 leaf hash.
    pub leaf_hash: Hash,
    /// The latest checkpoint covering it (signed note text), if any.
    pub checkpoint: Option<String>,
    /// Its inclusion proof against that checkpoint.
    pub proof: Option<InclusionProof>,
}

/// A signed (and cosigned) checkpoint the log issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The signed note text with every cosignature.
    pub note: String,
}

struct Inner<S: NodeStore> {
    tree: MerkleLog<S>,
    index: Indexes,
    /// Last log index of each patient, including appends not yet in the tree.
    heads: HashMap<PatientKey, u64>,
    /// Patients with an append between choosing `prev` and learning the index.
    in_flight: HashSet<PatientKey>,
    /// Durable entries waiting for earlier indexes before entering the tree.
    done: BTreeMap<u64, (Hash, AuditEvent)>,
    checkpoints: Vec<IssuedCheckpoint>,
    /// The heads tree of the latest heads entry (its log index and tree).
    heads_tree: Option<(u64, Arc<HeadsTree>)>,
}

/// An audit trail over an [`EntryLog`] and a [`MerkleLog`].
///
/// The audit log must be the only writer of its entry log while it
/// appends: the tree's leaf `i` is entry `i`. Writers that share one entry
/// log take turns and start each turn with [`AuditLog::follow`]. Appends from many threads share the entry log's group
/// commit; per patient they are serialized, so `prev_for_patient` always
/// names the patient's previous event.
pub struct AuditLog<S: NodeStore> {
    origin: String,
    entries: Arc<dyn EntryLog>,
    inner: Mutex<Inner<S>>,
    appended: Condvar,
}

impl<S: NodeStore> core::fmt::Debug for AuditLog<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuditLog")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S: NodeStore> AuditLog<S> {
    /// Opens the audit log named `origin` over `entries` and `tree`: catches
    /// the tree up with the entries, then rebuilds the indexes by reading and
    /// decoding every entry (entries without the audit magic are skipped),
    /// and re-adopts the checkpoints kept in checkpoint entries
    /// ([`crate::checkpoint_entry`]).
    pub fn open(origin: &str, entries: Arc<dyn EntryLog>, mut tree: MerkleLog<S>) -> Result<Self> {
        let len = entries.len()?;
        if tree.size() > len {
            return Err(Error::LogMismatch {
                entries: len,
                leaves: tree.size(),
            });
        }
        let mut index = Indexes::new();
        let mut heads = HashMap::new();
        let mut restored = Vec::new();
        let mut at = 0;
        while at < len {
            let end = len.min(at + REBUILD_CHUNK);
            let chunk = entries.read_range(at..end)?;
            if tree.size() < end {
                let skip = usize::try_from(tree.size().saturating_sub(at)).unwrap_or(usize::MAX);
                tree.append_batch(chunk.iter().skip(skip))?;
            }
            for (i, bytes) in (at..end).zip(&chunk) {
                if is_checkpoint_entry(bytes) {
                    restored.push(checkpoint_entry::decode(bytes)?);
                    continue;
                }
                if !is_audit_entry(bytes) {
                    continue;
                }
                let event = AuditEvent::decode(bytes)?;
                heads.insert(event.patient, i);
                index.add(i, &event);
            }
            at = end;
        }
        let log = AuditLog {
            origin: origin.to_owned(),
            entries,
            inner: Mutex::new(Inner {
                tree,
                index,
                heads,
                in_flight: HashSet::new(),
                done: BTreeMap::new(),
                checkpoints: Vec::new(),
                heads_tree: None,
            }),
            appended: Condvar::new(),
        };
        for issued in restored {
            log.restore_checkpoint(issued)?;
        }
        Ok(log)
    }

    /// Waits until no single append of this log is between choosing its
    /// `prev` and learning its index.
    fn no_appends_in_flight<'a>(
        &self,
        mut g: MutexGuard<'a, Inner<S>>,
    ) -> MutexGuard<'a, Inner<S>> {
        while !g.in_flight.is_empty() {
            g = self
                .appended
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        g
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree's hash algorithm.
    pub fn alg(&self) -> HashAlg {
        lock(&self.inner).tree.alg()
    }

    /// Number of leaves in the tree.
    pub fn size(&self) -> u64 {
        lock(&self.inner).tree.size()
    }

    /// Root hash of the current tree.
    pub fn root(&self) -> Hash {
        lock(&self.inner).tree.root()
    }

    /// Appends one event, durably. `prev_for_patient` is overwritten with
    /// the patient's previous event. Returns the receipt (without proof:
    /// ask [`AuditLog::receipt`] once a checkpoint covers it).
    pub fn append(&self, mut event: AuditEvent) -> Result<Receipt> {
        let patient = event.patient;
        {
            let mut g = lock(&self.inner);
            while g.in_flight.contains(&patient) {
                g = self
                    .appended
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            event.prev_for_patient = g.heads.get(&patient).copied();
            g.in_flight.insert(patient);
        }
        let appended = event
            .encode()
            .and_then(|bytes| Ok((self.entries.append(&bytes)?, bytes)));
        let mut g = lock(&self.inner);
        g.in_flight.remove(&patient);
        let (index, bytes) = match appended {
            Ok(v) => v,
            Err(e) => {
                self.appended.notify_all();
                return Err(e);
            }
        };
        let alg = g.tree.alg();
        let leaf_hash = alg.leaf_hash(&bytes);
        g.heads.insert(patient, index);
        g.done.insert(index, (leaf_hash, event));
        let drained = drain(&mut g);
        self.appended.notify_all();
        drained?;
        Ok(Receipt {
            index,
            leaf_hash,
            checkpoint: None,
            proof: None,
        })
    }

    /// Appends events in order with one durable commit, chaining each to
    /// its patient's previous event (including earlier ones in the batch).
    pub fn append_batch(&self, events: Vec<AuditEvent>) -> Result<Vec<Receipt>> {
        let mut g = lock(&self.inner);
        // Wait for every single append in flight: the batch's indexes must
        // start exactly at the entry log's length.
        g = self.no_appends_in_flight(g);
        let mut encoded = Vec::with_capacity(events.len());
        let mut heads: HashMap<PatientKey, Option<u64>> = HashMap::new();
        let base = self.entries.len()?;
        let mut events = events;
        for (k, e) in events.iter_mut().enumerate() {
            let head = heads
                .get(&e.patient)
                .copied()
                .unwrap_or_else(|| g.heads.get(&e.patient).copied());
            e.prev_for_patient = head;
            heads.insert(e.patient, Some(base + k as u64));
            encoded.push(e.encode()?);
        }
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let range = self.entries.append_batch(&refs)?;
        if range.start != base {
            // Another writer appended to the entry log.
            return Err(Error::LogMismatch {
                entries: range.start,
                leaves: base,
            });
        }
        let alg = g.tree.alg();
        let mut receipts = Vec::with_capacity(events.len());
        for ((i, e), bytes) in range.zip(events).zip(&encoded) {
            let leaf_hash = alg.leaf_hash(bytes);
            g.heads.insert(e.patient, i);
            g.done.insert(i, (leaf_hash, e));
            receipts.push(Receipt {
                index: i,
                leaf_hash,
                checkpoint: None,
                proof: None,
            });
        }
        let drained = drain(&mut g);
        self.appended.notify_all();
        drained?;
        Ok(receipts)
    }

    /// Takes in entries another writer appended to the shared entry log:
    /// reads entries `size()..len`, adds them to the tree (checking them
    /// against the node store's committed nodes, as on open), the indexes
    /// and the per-patient heads, and adopts the checkpoints their
    /// checkpoint entries carry. Returns how many entries it took in.
    ///
    /// For writers that take turns on one store (the facade on PostgreSQL):
    /// call it at the start of a turn, with the log length read under the
    /// turn, before this process appends again. Appends of this process
    /// still in flight are waited for first; an append of this process
    /// whose outcome was unknown and which did land is taken in from the
    /// log like any other entry.
    pub fn follow(&self, len: u64) -> Result<u64> {
        let mut g = lock(&self.inner);
        g = self.no_appends_in_flight(g);
        let start = g.tree.size();
        if len < start {
            return Err(Error::LogMismatch {
                entries: len,
                leaves: start,
            });
        }
        let mut restored = Vec::new();
        let mut at = start;
        while at < len {
            let end = len.min(at.saturating_add(REBUILD_CHUNK));
            let chunk = self.entries.read_range(at..end)?;
            if chunk.len() as u64 != end - at {
                return Err(Error::LogMismatch {
                    entries: at + chunk.len() as u64,
                    leaves: end,
                });
            }
            let mut events = Vec::with_capacity(chunk.len());
            for (i, bytes) in (at..end).zip(&chunk) {
                g.done.remove(&i);
                if is_checkpoint_entry(bytes) {
                    restored.push(checkpoint_entry::decode(bytes)?);
                } else if is_audit_entry(bytes) {
                    events.push((i, AuditEvent::decode(bytes)?));
                }
            }
            g.tree.append_batch(chunk.iter())?;
            for (i, event) in events {
                let head = g.heads.entry(event.patient).or_insert(i);
                *head = (*head).max(i);
                g.index.add(i, &event);
            }
            // Adopted with their chunk: a later chunk's error must not
            // lose them (the next follow starts after this chunk).
            for issued in restored.drain(..) {
                self.adopt(&mut g, issued)?;
            }
            at = end;
        }
        let drained = drain(&mut g);
        self.appended.notify_all();
        drop(g);
        drained?;
        Ok(len.saturating_sub(start))
    }

    /// Signs a checkpoint of the current tree at `time` (Unix seconds),
    /// chained to the previous one, and collects a cosignature from each
    /// witness (each checks a consistency proof from the size it last saw).
    ///
    /// The checkpoint does not commit to the patients' heads, so patient
    /// exports under it cannot prove that no newer event was withheld:
    /// prefer [`AuditLog::checkpoint_with_heads`].
    pub fn checkpoint<W: WitnessStateStore>(
        &self,
        signer: &Ed25519Signer,
        time: u64,
        witnesses: &[&Witness<W>],
    ) -> Result<IssuedCheckpoint> {
        let mut g = lock(&self.inner);
        self.sign(&mut g, signer, time, witnesses)
    }

    /// Appends a heads entry (the root of a Merkle tree over every
    /// patient's last event index, see [`crate::heads`]) and signs a
    /// checkpoint at the size just after it, as [`AuditLog::checkpoint`];
    /// then appends the signed note as a checkpoint entry
    /// ([`crate::checkpoint_entry`]), which [`AuditLog::open`] restores.
    /// Patient exports under such a checkpoint prove the patient's head,
    /// so a withheld tail of its events is detected. Appends wait while
    /// the two entries are written (two durable appends).
    pub fn checkpoint_with_heads<W: WitnessStateStore>(
        &self,
        signer: &Ed25519Signer,
        time: u64,
        witnesses: &[&Witness<W>],
    ) -> Result<IssuedCheckpoint> {
        let mut g = lock(&self.inner);
        // Every event chosen a `prev` must be in the entry log first, so
        // the heads cover exactly the entries below the heads entry.
        g = self.no_appends_in_flight(g);
        let index = self.entries.len()?;
        if index != g.tree.size() {
            return Err(Error::LogMismatch {
                entries: index,
                leaves: g.tree.size(),
            });
        }
        let alg = g.tree.alg();
        let tree = HeadsTree::build(alg, g.heads.iter().map(|(p, i)| (*p, *i)))?;
        let bytes = tree.entry(index).encode()?;
        let at = self.entries.append(&bytes)?;
        if at != index {
            return Err(Error::LogMismatch {
                entries: at,
                leaves: index,
            });
        }
        g.tree.append_leaf_hash(alg.leaf_hash(&bytes))?;
        g.heads_tree = Some((index, Arc::new(tree)));
        let issued = self.sign(&mut g, signer, time, witnesses)?;
        // Keep the signed note in the log, so `open` restores it.
        let entry = checkpoint_entry::encode(&issued.note)?;
        let at = self.entries.append(&entry)?;
        if at != g.tree.size() {
            return Err(Error::LogMismatch {
                entries: at,
                leaves: g.tree.size(),
            });
        }
        g.tree.append_leaf_hash(alg.leaf_hash(&entry))?;
        Ok(issued)
    }

    fn sign<W: WitnessStateStore>(
        &self,
        g: &mut Inner<S>,
        signer: &Ed25519Signer,
        time: u64,
        witnesses: &[&Witness<W>],
    ) -> Result<IssuedCheckpoint> {
        let size = g.tree.size();
        let root = g.tree.root();
        let cp = match g.checkpoints.last() {
            None => Checkpoint::first(&self.origin, g.tree.alg(), size, root, time),
            // Chain time never goes back: a writer whose clock is behind
            // the one that signed `prev` (another server sharing the log)
            // stamps `prev`'s time instead.
            Some(prev) => {
                let floor = prev.checkpoint.chain.map_or(0, |l| l.time);
                prev.checkpoint.successor(size, root, time.max(floor))
            }
        };
        let mut note = Note::parse(cp.sign(signer)?.as_bytes())?;
        for w in witnesses {
            let old = w.state(&self.origin)?.map_or(0, |s| s.size);
            let proof = if old == 0 || old >= size {
                Vec::new()
            } else {
                g.tree.consistency_proof(old, size)?.path
            };
            let cos = w.add_checkpoint_at(note.to_text()?.as_bytes(), old, &proof, time)?;
            note.add_signature(cos.to_note_signature())?;
        }
        let issued = IssuedCheckpoint {
            checkpoint: cp,
            note: note.to_text()?,
        };
        g.checkpoints.push(issued.clone());
        Ok(issued)
    }

    /// The heads entry at log index `index` and its tree, if that entry is
    /// a heads entry (rebuilt from the indexes unless it is the latest).
    pub(crate) fn heads_at(&self, index: u64) -> Result<Option<(HeadsEntry, Arc<HeadsTree>)>> {
        let bytes = self.entries.read(index)?;
        if !is_heads_entry(&bytes) {
            return Ok(None);
        }
        let entry = HeadsEntry::decode(&bytes)?;
        if entry.size != index {
            return Err(Error::BadHeads {
                reason: "a heads entry names another log index",
            });
        }
        let g = lock(&self.inner);
        let tree = match &g.heads_tree {
            Some((i, t)) if *i == index => t.clone(),
            _ => Arc::new(HeadsTree::build(g.tree.alg(), g.index.heads_below(index))?),
        };
        if tree.entry(index) != entry {
            return Err(Error::BadHeads {
                reason: "the log's heads entry differs from its events",
            });
        }
        Ok(Some((entry, tree)))
    }

    /// Adopts a checkpoint issued earlier (e.g. persisted by the caller and
    /// restored after a restart). It must describe this tree (its root is
    /// the tree's at its size). It is placed among the adopted checkpoints
    /// by size and time, and checked as the successor of the one before it
    /// and as the predecessor of the one after it where their chain lines
    /// name each other; a gap (a checkpoint between them not adopted) is
    /// allowed, so checkpoints restored from checkpoint entries on open and
    /// checkpoints the embedder kept may be restored in any order.
    ///
    /// Adopting a checkpoint already adopted does nothing.
    pub fn restore_checkpoint(&self, issued: IssuedCheckpoint) -> Result<()> {
        let mut g = lock(&self.inner);
        self.adopt(&mut g, issued)
    }

    /// [`AuditLog::restore_checkpoint`] under the lock.
    fn adopt(&self, g: &mut Inner<S>, issued: IssuedCheckpoint) -> Result<()> {
        let cp = &issued.checkpoint;
        if g.checkpoints.iter().any(|c| c.checkpoint == *cp) {
            return Ok(());
        }
        if cp.origin != self.origin || cp.size > g.tree.size() {
            return Err(Error::CheckpointMismatch {
                reason: "origin or size is not this log's",
            });
        }
        if g.tree.root_at(cp.size)? != cp.root {
            return Err(Error::CheckpointMismatch {
                reason: "root differs from the tree at that size",
            });
        }
        let key = |c: &Checkpoint| (c.size, c.chain.map(|l| l.time));
        let at = g
            .checkpoints
            .partition_point(|c| key(&c.checkpoint) <= key(cp));
        let before = at.checked_sub(1).and_then(|k| g.checkpoints.get(k));
        if let Some(prev) = before {
            if cp.chain.and_then(|l| l.prev) == Some(prev.checkpoint.hash()) {
                prev.checkpoint.check_successor(cp)?;
            }
        }
        if let Some(next) = g.checkpoints.get(at) {
            if next.checkpoint.chain.and_then(|l| l.prev) == Some(cp.hash()) {
                cp.check_successor(&next.checkpoint)?;
            }
        }
        g.checkpoints.insert(at, issued);
        Ok(())
    }

    /// The checkpoints issued so far, oldest first.
    pub fn checkpoints(&self) -> Vec<IssuedCheckpoint> {
        lock(&self.inner).checkpoints.clone()
    }

    /// The receipt of the event at `index`, with its inclusion proof against
    /// the latest checkpoint if one covers it.
    pub fn receipt(&self, index: u64) -> Result<Receipt> {
        let g = lock(&self.inner);
        let leaf_hash = g.tree.leaf_hash(index)?;
        let covering = g.checkpoints.last().filter(|c| c.checkpoint.size > index);
        let (checkpoint, proof) = match covering {
            Some(c) => (
                Some(c.note.clone()),
                Some(g.tree.inclusion_proof(index, c.checkpoint.size)?),
            ),
            None => (None, None),
        };
        Ok(Receipt {
            index,
            leaf_hash,
            checkpoint,
            proof,
        })
    }

    /// The event at `index` (read from the entry log and decoded).
    pub fn event(&self, index: u64) -> Result<AuditEvent> {
        let bytes = self.entries.read(index)?;
        if !is_audit_entry(&bytes) {
            return Err(Error::NoSuchEvent { index });
        }
        Ok(AuditEvent::decode(&bytes)?)
    }

    /// The entry bytes at `index`.
    pub(crate) fn entry(&self, index: u64) -> Result<Vec<u8>> {
        Ok(self.entries.read(index)?)
    }

    fn events_at(&self, indexes: &[u64]) -> Result<Vec<(u64, AuditEvent)>> {
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            out.push((i, self.event(i)?));
        }
        Ok(out)
    }

    /// A patient's events, in log order.
    pub fn patient_events(&self, patient: &PatientKey) -> Result<Vec<(u64, AuditEvent)>> {
        let idx = lock(&self.inner).index.patient(patient).to_vec();
        self.events_at(&idx)
    }

    /// An actor's events, in log order.
    pub fn actor_activity(&self, actor: &Id32) -> Result<Vec<(u64, AuditEvent)>> {
        let idx = lock(&self.inner).index.actor(actor).to_vec();
        self.events_at(&idx)
    }

    /// Events with `from_ms <= time < to_ms`, by time.
    pub fn time_range(&self, from_ms: u64, to_ms: u64) -> Result<Vec<(u64, AuditEvent)>> {
        let idx = lock(&self.inner).index.time_range(from_ms, to_ms);
        self.events_at(&idx)
    }

    /// Emergency accesses no [`crate::Action::EmergencyReview`] has closed.
    pub fn emergency_pending(&self) -> Result<Vec<(u64, AuditEvent)>> {
        let idx = lock(&self.inner).index.emergency_open();
        self.events_at(&idx)
    }

    /// Log indexes of a patient's events (for exports).
    pub(crate) fn patient_indexes(&self, patient: &PatientKey) -> Vec<u64> {
        lock(&self.inner).index.patient(patient).to_vec()
    }

    /// Runs `f` with the tree locked (for exports: proofs against one state).
    pub(crate) fn with_tree<T>(&self, f: impl FnOnce(&MerkleLog<S>) -> Result<T>) -> Result<T> {
        let g = lock(&self.inner);
        f(&g.tree)
    }
}

/// Moves durable entries into the tree and the indexes in index order.
fn drain<S: NodeStore>(g: &mut Inner<S>) -> Result<()> {
    loop {
        let next = g.tree.size();
        let Some((leaf, event)) = g.done.remove(&next) else {
            return Ok(());
        };
        g.tree.append_leaf_hash(leaf)?;
        g.index.add(next, &event);
    }
}
