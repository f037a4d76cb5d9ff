//! A witness: checks that a log only grows, then cosigns its checkpoints
//! (c2sp.org/tlog-witness "add-checkpoint", c2sp.org/tlog-cosignature).
//!
//! Per log (by origin) the witness keeps the size and root of the last
//! checkpoint it cosigned. A new checkpoint is cosigned only if it is signed
//! by the log's key, names the log's hash algorithm, and a consistency proof
//! leads from the stored tree to it. Otherwise the witness refuses with a
//! typed reason: [`Error::UnknownLog`], a bad log signature
//! ([`Error::InvalidSignature`] / [`Error::NoKnownSignature`]),
//! [`Error::Rollback`], [`Error::WitnessSizeConflict`] (HTTP 409, carrying
//! the witness's size), [`Error::OldSizeAboveCheckpoint`] (400),
//! [`Error::BadConsistencyProof`] (422).
//!
//! The state lives behind [`WitnessStateStore`], whose only write is a
//! compare-and-swap: the new state is stored only if the stored one is still
//! the one the proof was checked against, so two concurrent requests can
//! never roll the state back (tlog-witness "add-checkpoint", the race at its
//! end).
//!
//! # Example
//!
//! ```
//! use medledger_chain::{
//!     Checkpoint, CosignatureSigner, Ed25519Signer, HashAlg, LogKey, MerkleLog, Policy, Witness,
//! };
//!
//! let origin = "hospital.example/ledger";
//! let mut log = MerkleLog::in_memory(HashAlg::Blake3);
//! log.append(b"entry")?;
//! let log_signer = Ed25519Signer::generate(origin)?;
//! let log_key = LogKey::new(origin, log_signer.verifier(), HashAlg::Blake3)?;
//!
//! let mut witness = Witness::in_memory(CosignatureSigner::generate("regulator.example/w1")?);
//! witness.add_log(log_key.clone());
//!
//! let checkpoint = Checkpoint::first(origin, HashAlg::Blake3, log.size(), log.root(), 1_780_000_000);
//! let note = checkpoint.sign(&log_signer)?;
//! // First contact: old size 0 and an empty proof.
//! let cosignature = witness.add_checkpoint(note.as_bytes(), 0, &[])?;
//! let cosigned = format!("{note}{}", cosignature.to_line());
//!
//! // A client trusts the checkpoint with the log's signature and 1 of 1 witnesses.
//! let policy = Policy::new(log_key, vec![witness.signer().verifier()?], 1)?;
//! let verified = policy.verify(cosigned.as_bytes())?;
//! assert_eq!(verified.checkpoint.size, 1);
//! # Ok::<(), medledger_chain::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::checkpoint::LogKey;
use crate::cosignature::{Cosignature, CosignatureSigner};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::note::{Note, MAX_NOTE_LEN};
use crate::proof::verify_consistency;

/// Most consistency proof lines in an add-checkpoint request (tlog-witness).
pub const MAX_CONSISTENCY_LINES: usize = 63;

/// What a witness remembers about one log: the last cosigned tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WitnessState {
    /// Size of the last cosigned checkpoint.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// Storage of witness state, one entry per log origin.
///
/// Implementations must make [`WitnessStateStore::compare_and_swap`] atomic
/// (a transaction, a conditional update); medledger-store persists it.
pub trait WitnessStateStore {
    /// The state of `origin`, or `None` if the witness never cosigned it.
    fn load(&self, origin: &str) -> Result<Option<WitnessState>>;

    /// Stores `new` for `origin` only if the stored state equals `expected`
    /// (`None`: nothing stored). Returns whether it was stored.
    fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&WitnessState>,
        new: &WitnessState,
    ) -> Result<bool>;
}

/// An in-memory [`WitnessStateStore`] (tests, short-lived witnesses).
#[derive(Debug, Default)]
pub struct MemoryWitnessStateStore {
    states: Mutex<HashMap<String, WitnessState>>,
}

impl MemoryWitnessStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl WitnessStateStore for MemoryWitnessStateStore {
    fn load(&self, origin: &str) -> Result<Option<WitnessState>> {
        // A panic elsewhere while holding the lock cannot leave a torn entry
        // (each write is one insert), so a poisoned lock is still usable.
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        Ok(states.get(origin).copied())
    }

    fn compare_and_swap(
        &self,
        origin: &str,
        expected: Option<&WitnessState>,
        new: &WitnessState,
    ) -> Result<bool> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if states.get(origin) != expected {
            return Ok(false);
        }
        states.insert(origin.to_owned(), *new);
        Ok(true)
    }
}

/// An add-checkpoint request body (tlog-witness "add-checkpoint"):
/// `old <size>`, up to 63 base64 proof lines, an empty line, the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// Size of the checkpoint the client believes the witness holds.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AddCheckpointRequest {
    /// Parses a request body strictly.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let bad = |reason| Error::InvalidRequest { reason };
        if body.len() > MAX_NOTE_LEN + 4096 {
            return Err(bad("request too large"));
        }
        let text = core::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, checkpoint) = text.split_once("\n\n").ok_or(bad("no empty line"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .ok_or(bad("first line is not `old <size>`"))?;
        let old_size = crate::checkpoint::parse_decimal(old).ok_or(bad("old size"))?;
        let mut proof = Vec::new();
        for l in lines {
            if proof.len() == MAX_CONSISTENCY_LINES {
                return Err(bad("more than 63 proof lines"));
            }
            proof.push(crate::checkpoint::parse_hash(l).ok_or(bad("proof line"))?);
        }
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The request body.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&BASE64.encode(h.0));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }
}

/// A witness: one cosigning key, the logs it follows, and its state.
#[derive(Debug)]
pub struct Witness<S: WitnessStateStore = MemoryWitnessStateStore> {
    signer: CosignatureSigner,
    logs: Vec<LogKey>,
    store: S,
}

impl Witness<MemoryWitnessStateStore> {
    /// A witness with in-memory state.
    pub fn in_memory(signer: CosignatureSigner) -> Self {
        Self::new(signer, MemoryWitnessStateStore::new())
    }
}

impl<S: WitnessStateStore> Witness<S> {
    /// A witness over `store`, following no log yet.
    pub fn new(signer: CosignatureSigner, store: S) -> Self {
        Witness {
            signer,
            logs: Vec::new(),
            store,
        }
    }

    /// Follows a log. One key per origin: adding an origin again replaces it.
    pub fn add_log(&mut self, log: LogKey) {
        self.logs.retain(|l| l.origin() != log.origin());
        self.logs.push(log);
    }

    /// The witness's cosigning key.
    pub fn signer(&self) -> &CosignatureSigner {
        &self.signer
    }

    /// The state held for `origin`.
    pub fn state(&self, origin: &str) -> Result<Option<WitnessState>> {
        self.store.load(origin)
    }

    /// [`Witness::add_checkpoint_at`] with the system clock.
    pub fn add_checkpoint(
        &self,
        note_text: &[u8],
        old_size: u64,
        proof: &[Hash],
    ) -> Result<Cosignature> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.add_checkpoint_at(note_text, old_size, proof, now)
    }

    /// Checks a signed checkpoint against the stored state and cosigns it at
    /// `timestamp` (tlog-witness "add-checkpoint"; checks in its order).
    pub fn add_checkpoint_at(
        &self,
        note_text: &[u8],
        old_size: u64,
        proof: &[Hash],
        timestamp: u64,
    ) -> Result<Cosignature> {
        let note = Note::parse(note_text)?;
        let origin = note.text().split('\n').next().unwrap_or("");
        let log = self
            .logs
            .iter()
            .find(|l| l.origin() == origin)
            .ok_or_else(|| Error::UnknownLog {
                origin: origin.to_owned(),
            })?;
        let signed = log.verify_note(note)?;
        let cp = &signed.checkpoint;
        let alg = log.alg();
        let stored = self.store.load(log.origin())?;
        let stored_size = stored.map_or(0, |s| s.size);
        if cp.size < stored_size {
            return Err(Error::Rollback {
                stored: stored_size,
                size: cp.size,
            });
        }
        if old_size > cp.size {
            return Err(Error::OldSizeAboveCheckpoint {
                old: old_size,
                size: cp.size,
            });
        }
        if old_size != stored_size {
            return Err(Error::WitnessSizeConflict {
                stored: stored_size,
                claimed: old_size,
            });
        }
        if cp.size == 0 && cp.root != alg.empty_root() {
            return Err(Error::EmptyTreeRoot);
        }
        let old_root = stored.map_or_else(|| alg.empty_root(), |s| s.root);
        verify_consistency(alg, old_size, cp.size, &old_root, &cp.root, proof).map_err(|e| {
            Error::BadConsistencyProof {
                old: old_size,
                size: cp.size,
                source: Box::new(e),
            }
        })?;
        // Sign before storing so a refused timestamp leaves no trace; the
        // cosignature is only released once the state is stored.
        let cosignature = self.signer.cosign(signed.note.text(), timestamp)?;
        let new = WitnessState {
            size: cp.size,
            root: cp.root,
        };
        if !self
            .store
            .compare_and_swap(log.origin(), stored.as_ref(), &new)?
        {
            return Err(Error::WitnessStateChanged {
                origin: log.origin().to_owned(),
            });
        }
        Ok(cosignature)
    }

    /// Handles a whole add-checkpoint request body and returns the response
    /// body: the cosignature line.
    pub fn handle_request(&self, body: &[u8]) -> Result<String> {
        let req = AddCheckpointRequest::parse(body)?;
        let c = self.add_checkpoint(req.checkpoint.as_bytes(), req.old_size, &req.proof)?;
        Ok(c.to_line())
    }
}
