//! A crash between a grant's log entry and its state row: on reopening,
//! the grant is either effective with its event in the log, or absent with
//! no event — never logged but ineffective, nor effective but unlogged.
//! The crash is simulated by a storage wrapper that panics at the chosen
//! step (the ledger is then dropped and reopened over the same stores).

mod common;

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use medledger::chain::{HashAlg, MemoryNodeStore, MerkleLog};
use medledger::grants::*;
use medledger::store::{
    EntryLog, MemoryBlobStore, MemoryLog, MemoryStateStore, StateStore, StateTxn,
};
use medledger::{Error, Ledger, LedgerKey, Stores};

/// An entry log that "crashes" (panics) on append while armed.
#[derive(Default)]
struct CrashLog {
    inner: MemoryLog,
    armed: AtomicBool,
}

impl EntryLog for CrashLog {
    fn append(&self, entry: &[u8]) -> medledger::store::Result<u64> {
        assert!(!self.armed.load(Ordering::SeqCst), "simulated crash");
        self.inner.append(entry)
    }
    fn append_batch(&self, entries: &[&[u8]]) -> medledger::store::Result<Range<u64>> {
        assert!(!self.armed.load(Ordering::SeqCst), "simulated crash");
        self.inner.append_batch(entries)
    }
    fn read(&self, index: u64) -> medledger::store::Result<Vec<u8>> {
        self.inner.read(index)
    }
    fn len(&self) -> medledger::store::Result<u64> {
        self.inner.len()
    }
}

/// A state store that "crashes" on a transaction stamped with a log index
/// (the state commit that follows an append) while armed.
#[derive(Default)]
struct CrashState {
    inner: MemoryStateStore,
    armed: AtomicBool,
}

impl StateStore for CrashState {
    fn get(&self, table: &str, key: &[u8]) -> medledger::store::Result<Option<Vec<u8>>> {
        self.inner.get(table, key)
    }
    fn scan(
        &self,
        table: &str,
        prefix: &[u8],
        limit: usize,
    ) -> medledger::store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(table, prefix, limit)
    }
    fn scan_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> medledger::store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan_range(table, start, end, limit)
    }
    fn transact(
        &self,
        reflects: Option<u64>,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> medledger::store::Result<()>,
    ) -> medledger::store::Result<()> {
        assert!(
            reflects.is_none() || !self.armed.load(Ordering::SeqCst),
            "simulated crash"
        );
        self.inner.transact(reflects, f)
    }
    fn log_index(&self) -> medledger::store::Result<Option<u64>> {
        self.inner.log_index()
    }
    fn reconcile(&self, log_len: u64) -> medledger::store::Result<u64> {
        self.inner.reconcile(log_len)
    }
}

struct Disk {
    log: Arc<CrashLog>,
    state: Arc<CrashState>,
    blobs: Arc<MemoryBlobStore>,
}

impl Disk {
    fn open(&self) -> Ledger<MemoryNodeStore> {
        let stores = Stores {
            entries: self.log.clone(),
            tree: MerkleLog::in_memory(HashAlg::Blake3),
            blobs: self.blobs.clone(),
            state: self.state.clone(),
        };
        Ledger::with_stores(
            stores,
            "test.example/ledger",
            &LedgerKey::from_bytes([1; 32]),
        )
        .unwrap()
    }
}

/// A disk holding a patient's record and a signed (not yet appended)
/// grant of it to a doctor.
fn setup() -> (Disk, ActorKeys, ActorKeys, SignedGrant) {
    let disk = Disk {
        log: Arc::new(CrashLog::default()),
        state: Arc::new(CrashState::default()),
        blobs: Arc::new(MemoryBlobStore::new()),
    };
    let ledger = disk.open();
    let patient = actor(&ledger, ActorKind::Patient, "patients");
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    ledger
        .write(&record(
            "Observation/1",
            &patient,
            &patient,
            b"granted body",
        ))
        .unwrap();
    let grant = patient_grant(
        &patient,
        &doctor,
        Scope::All,
        ActionSet::empty().with(Action::Read),
    );
    (disk, patient, doctor, grant)
}

/// The log events committing to `grant`.
fn grant_events(
    ledger: &Ledger<MemoryNodeStore>,
    patient: &ActorKeys,
    grant: &SignedGrant,
) -> usize {
    ledger
        .patient_events(&patient.id())
        .unwrap()
        .iter()
        .filter(|(_, e)| {
            e.action == medledger::audit::Action::Grant
                && e.commitment.map(|c| c.0) == Some(*grant.id().0.as_bytes())
        })
        .count()
}

#[test]
fn a_crash_after_the_grants_entry_keeps_the_grant_effective() {
    let (disk, patient, doctor, grant) = setup();
    {
        let ledger = disk.open();
        disk.state.armed.store(true, Ordering::SeqCst);
        let crashed = catch_unwind(AssertUnwindSafe(|| ledger.grant(&grant)));
        assert!(crashed.is_err(), "the simulated crash did not happen");
        disk.state.armed.store(false, Ordering::SeqCst);
    }
    let ledger = disk.open();
    assert_eq!(grant_events(&ledger, &patient, &grant), 1);
    let r = ledger
        .read(&doctor, "Observation/1", Purpose::Treat)
        .unwrap();
    assert_eq!(&r.body[..], b"granted body");
    assert!(disk
        .state
        .scan("pending-objects", b"", 10)
        .unwrap()
        .is_empty());
    // Still effective after another reopening (the recovered row stays).
    drop(ledger);
    let ledger = disk.open();
    assert!(ledger
        .read(&doctor, "Observation/1", Purpose::Treat)
        .is_ok());
    ledger.verify().unwrap();
}

#[test]
fn a_crash_before_the_grants_entry_leaves_no_grant_and_no_event() {
    let (disk, patient, doctor, grant) = setup();
    {
        let ledger = disk.open();
        disk.log.armed.store(true, Ordering::SeqCst);
        let crashed = catch_unwind(AssertUnwindSafe(|| ledger.grant(&grant)));
        assert!(crashed.is_err(), "the simulated crash did not happen");
        disk.log.armed.store(false, Ordering::SeqCst);
        // The crash left the grant's bytes pending, without an entry.
        assert_eq!(
            disk.state.scan("pending-objects", b"", 10).unwrap().len(),
            1
        );
    }
    let ledger = disk.open();
    assert_eq!(grant_events(&ledger, &patient, &grant), 0);
    assert!(matches!(
        ledger.read(&doctor, "Observation/1", Purpose::Treat),
        Err(Error::AccessDenied {
            reason: DenyReason::NoGrant,
            ..
        })
    ));
    assert!(disk
        .state
        .scan("pending-objects", b"", 10)
        .unwrap()
        .is_empty());
    // Appending it again now works and takes effect.
    ledger.grant(&grant).unwrap();
    assert!(ledger
        .read(&doctor, "Observation/1", Purpose::Treat)
        .is_ok());
    ledger.verify().unwrap();
}
